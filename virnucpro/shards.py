"""Shards: the unit of work, of resume and of distribution over workers.

Frames are cut into shards of a fixed number of frames, in input order, from the input alone
(never from the number of workers). A finished shard is one safetensors file written to a
temporary name, synced and renamed, so a shard file either exists whole or not at all; its
metadata (frame count and a hash of the frame ids) lets a resumed run trust it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from virnucpro.errors import OutputError
from virnucpro.options import default
from virnucpro.scoring import ShardScores

DEFAULT_SHARD_FRAMES = default("shard_frames")  # the option's (virnucpro/options.py)


def ids_digest(frame_ids: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(frame_ids).encode()).hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardStore:
    """Finished shards of one run, as files `shard-NNNNNN.safetensors` in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, k: int) -> Path:
        return self.folder / f"shard-{k:06d}.safetensors"

    def is_done(self, k: int, frame_ids: Sequence[str]) -> bool:
        """True when shard `k` is on disk and holds exactly these frames."""
        from safetensors import safe_open

        path = self.path(k)
        if not path.exists():
            return False
        try:
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
        except Exception:  # a torn or foreign file: not done, it will be rewritten
            return False
        # A shard with failed frames is kept for the tables but scored again on resume:
        # the next attempt may have more memory or a healthier worker.
        return (meta.get("frames") == str(len(frame_ids)) and meta.get("ids") == ids_digest(frame_ids)
                and meta.get("failed", "0") == "0")

    def write(self, k: int, frame_ids: Sequence[str], scores: ShardScores) -> Path:
        from safetensors.numpy import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        tensors = {"probs": np.ascontiguousarray(scores.probs, dtype=np.float32)}
        tensors["status"] = np.ascontiguousarray(scores.status_codes(), dtype=np.uint8)
        if scores.features is not None:
            tensors["features"] = np.ascontiguousarray(scores.features, dtype=np.float32)
        meta = {"frames": str(len(frame_ids)), "ids": ids_digest(frame_ids),
                "failed": str(int(np.count_nonzero(scores.status_codes())))}
        final = self.path(k)
        tmp = final.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(self.folder)
        return final

    def read(self, k: int, n_frames: int | None) -> ShardScores:
        from safetensors.numpy import load_file

        path = self.path(k)
        try:
            data = load_file(str(path))
        except Exception as exc:
            raise OutputError(f"cannot read a finished shard: {exc}", path=path) from exc
        probs = data["probs"]
        if probs.ndim != 2 or probs.shape[1] != 2 or (n_frames is not None and len(probs) != n_frames):
            raise OutputError(f"shard holds {probs.shape[0]} frames, expected {n_frames}", path=path)
        return ShardScores(probs=probs, features=data.get("features"), status=data.get("status"))
