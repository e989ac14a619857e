"""Moving batches between the host and a GPU without stalling the host."""

from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, target: torch.device) -> torch.Tensor:
    """A host tensor onto `target`. To a GPU it goes through pinned memory without blocking,
    so the host does not wait for the kernels already queued (a pageable copy would). The
    caching host allocator keeps the pinned block until the copy has run."""
    if target.type == "cuda":
        return tensor.pin_memory().to(target, non_blocking=True)
    return tensor.to(target)
