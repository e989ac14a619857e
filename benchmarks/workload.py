"""What the model benchmarks run on: the model set of a size (the tiny set, random weights of the
published sizes, or the published set when present), the device, and the kept frames of an input
(what the models read), with the set loaded as `predict` loads it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path


def model_set_for(size: str) -> str:
    from virnucpro.models.cache import cache_root
    from virnucpro.models.sets import resolve_model_set

    if size == "tiny":
        return str(resolve_model_set("tiny").root)
    if size == "full":
        try:
            return str(resolve_model_set("published", fetch_missing=False, progress=False).root)
        except Exception:  # noqa: BLE001 - absent offline: random weights of the same sizes
            pass
    folder = cache_root() / "bench-sets" / size
    if not (folder / "300_model.pth").exists():
        from benchmarks.random_set import write_random_set

        print(f"writing a random {size} model set in {folder} ...", file=sys.stderr)
        write_random_set(folder, size)
    return str(folder)


def device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True, slots=True)
class Frame:
    """What the models read of one kept frame."""

    nucleotides: str
    protein: str


def frames_of(fasta: Path, chunk_size: int = 500) -> list[Frame]:
    from virnucpro.plan import iter_blocks
    from virnucpro.seqfile import read_fasta, scan_fasta

    return [Frame(n, p) for b in iter_blocks(read_fasta(scan_fasta(fasta)), chunk_size)
            for n, p in zip(b.nucleotides, b.proteins, strict=True)]


def columns(frames: list[Frame]) -> tuple[list[str], list[str]]:
    return [f.nucleotides for f in frames], [f.protein for f in frames]


def load_as_predict(models_root: str, dev: str):
    """The set loaded as `predict` loads it on `dev` (bfloat16 weights on a GPU)."""
    from virnucpro.devices import effective_precision
    from virnucpro.models.loaded import load_models
    from virnucpro.models.modelset import scan_set_folder

    return load_models(scan_set_folder(models_root), 500, dev, effective_precision("auto", [dev]))
