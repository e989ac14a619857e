"""Whether an input file is still the one that was validated.

A run reads its input twice: the validating pass, then the scoring pass. Both read the file's
bytes through a `HashedFile`, which hashes (SHA-256) and counts them on the way to the
decompressor, so the scoring pass checks, at no extra read, that it saw the bytes the first
pass validated: `Stamp` is a file's size, modification time and hash, and `changes` says in
words what differs between two of them. A file appended to, truncated or rewritten during a
run must never give tables that mix two versions under the old hash.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class HashedFile(io.RawIOBase):
    """A file's raw bytes, hashed and counted as they are read. Closing it (as a buffered or
    decompressing reader above does) keeps the file open for `drain`; `release` closes it."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = self._fh.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.bytes_read += n
        return n

    def drain(self) -> None:
        """Read what the readers above left (a decompressor stops at trailing garbage), so
        that the hash covers the whole file."""
        while block := self._fh.read(1 << 20):
            self.digest.update(block)
            self.bytes_read += len(block)

    def release(self) -> None:
        self._fh.close()
        self.close()


@dataclass(frozen=True)
class Stamp:
    """What identifies a file's content: its size, modification time and SHA-256 ("" when
    only stat was asked)."""

    size: int
    mtime_ns: int
    sha256: str = ""

    @classmethod
    def of(cls, path: Path, sha256: str = "") -> Stamp:
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns, sha256)

    @classmethod
    def after(cls, path: Path, hashed: HashedFile, before: Stamp) -> Stamp:
        """A file just read whole through `hashed`: its size and time now, and the hash of
        the bytes read. A file removed or renamed since is judged by what was read: the open
        file still held the bytes that were validated."""
        try:
            return cls.of(path, hashed.digest.hexdigest())
        except FileNotFoundError:
            return cls(hashed.bytes_read, before.mtime_ns, hashed.digest.hexdigest())


def changes(before: Stamp, after: Stamp) -> str:
    """What differs from `before` to `after`, in words ("" when nothing does; a hash missing
    on either side is not compared)."""
    said = []
    if after.size != before.size:
        said.append(f"its size went from {before.size:,} to {after.size:,} bytes")
    if after.mtime_ns != before.mtime_ns:
        when = datetime.fromtimestamp(after.mtime_ns / 1e9).isoformat(sep=" ", timespec="seconds")
        said.append(f"it was modified at {when}")
    if before.sha256 and after.sha256 and after.sha256 != before.sha256:
        said.append(f"its SHA-256 went from {before.sha256[:12]}... to {after.sha256[:12]}...")
    return "; ".join(said)
