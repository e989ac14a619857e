"""Devices: parsing `--devices`, mapping them to what a worker process sees, thread counts.

`auto` means every visible GPU, or the CPU when there is none. Indices in `cuda:N` are those
the parent sees (after `CUDA_VISIBLE_DEVICES`); a worker is given the physical id in its own
`CUDA_VISIBLE_DEVICES`, so inside the worker its GPU is always `cuda:0`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from virnucpro.errors import VirNucProError
from virnucpro.options import PRECISIONS


def number_gpus_as_nvidia_smi() -> None:
    """`cuda:N` (and the ids in `CUDA_VISIBLE_DEVICES`) in nvidia-smi's order, the PCI bus
    order NVML uses too, unless the user chose an order. CUDA's own default puts the fastest
    GPU first, so on a machine of mixed GPUs `cuda:1` could be another card than the one
    nvidia-smi shows as 1 (a colleague's, on a shared server). Called by the command lines
    before CUDA starts; workers inherit it."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(spec: str, gpu_count: Callable[[], int] | None = None) -> list[str]:
    """`auto`, `cpu`, `cuda:N` or a comma list of them (`cpu,cpu` is allowed, for tests).

    `gpu_count` counts the visible GPUs (default: torch); the daemon's supervisor passes an
    NVML count instead, so that CUDA never starts there.
    """
    count = gpu_count or _cuda_count
    spec = spec.strip().lower()
    if spec == "auto":
        n = count()
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    devices = []
    for part in spec.split(","):
        part = part.strip()
        if part == "cpu":
            devices.append("cpu")
            continue
        if part == "cuda":
            part = "cuda:0"
        if not (part.startswith("cuda:") and part[5:].isdigit()):
            raise VirNucProError(f"unknown device {part!r}: use auto, cpu, cuda:N or a comma list")
        n = count()
        if n == 0:
            raise VirNucProError(f"device {part} asked for, but no CUDA device is visible")
        if int(part[5:]) >= n:
            raise VirNucProError(f"device {part} asked for, but only {n} CUDA device(s) are visible")
        if part in devices:
            raise VirNucProError(f"device {part} is listed twice")
        devices.append(part)
    if not devices:
        raise VirNucProError("no device given")
    return devices


def resolve_device(spec: str) -> str:
    """One device for the local engine."""
    devices = parse_devices(spec)
    if len(devices) != 1:
        raise VirNucProError(f"{spec!r} names {len(devices)} devices; the local engine runs on one")
    return devices[0]


def physical_gpu(device: str) -> str:
    """The id to put in a worker's CUDA_VISIBLE_DEVICES for the parent's `cuda:N`."""
    index = int(device.split(":")[1])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return str(index)
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    return ids[index]


def effective_precision(precision: str, devices: list[str]) -> str:
    """`auto`: bfloat16 weights when every device is a GPU (the fast path), float32 on the CPU
    (and for a pool that mixes both, so that all shards of a run share one precision)."""
    if precision not in PRECISIONS:
        raise VirNucProError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bfloat16" if all(d.startswith("cuda") for d in devices) else "float32"


def threads_per_worker(devices: list[str], threads: int | None) -> dict[int, int]:
    """Torch threads for each worker: CPU workers share `threads` (default: all cores), so
    `cpu,cpu` on 2 cores runs one thread each instead of oversubscribing."""
    total = threads or os.cpu_count() or 1
    n_cpu = sum(d == "cpu" for d in devices)
    out = {}
    for i, d in enumerate(devices):
        # A GPU worker only feeds its device; a few threads do for tokenizing and copying.
        out[i] = max(1, total // n_cpu) if d == "cpu" else max(1, min(4, total // len(devices)))
    return out


def host_memory() -> tuple[int, int]:
    """(available, total) bytes of this machine, from /proc/meminfo; (0, 0) elsewhere."""
    info = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, value = line.split(":", 1)
                info[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    total = info.get("MemTotal", 0)
    return info.get("MemAvailable", total), total
