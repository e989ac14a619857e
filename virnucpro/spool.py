"""Inputs that can be read only once (stdin, a pipe, a device, `<(cmd)`) copied to a temp file.

The run reads an input twice (the validating pass, then the scoring pass), so such a stream is
spooled first. Its first `SNIFF_BYTES` (decompressed) are checked before a byte is written:
binary data (a NUL or another control byte, as from /dev/zero) is refused at once. Endless
text cannot be told that way, so the copy stops, with an `InputError`, before the spool's file
system would have less than `min_free(size)` free: max(1 GiB, 5 % of its size).
"""

from __future__ import annotations

import bz2
import lzma
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

from virnucpro.errors import InputError
from virnucpro.seqfile import compression_of
from virnucpro.seqparse import check_text

SNIFF_BYTES = 64 * 1024  # the start of an input checked for binary data (decompressed)
MIN_FREE_BYTES = 1 << 30  # the spool never leaves less than this free on its file system...
MIN_FREE_SHARE = 0.05  # ...nor less than this share of it
_BLOCK = 1 << 20


def min_free(total: int) -> int:
    """The free space the spool leaves on a file system of `total` bytes."""
    return max(MIN_FREE_BYTES, int(MIN_FREE_SHARE * total))


def read_start(stream: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes from the start of a stream (a pipe gives them in several reads)."""
    parts: list[bytes] = []
    got = 0
    while got < n and (part := stream.read(n - got)):
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def decompressed_start(data: bytes, n: int = SNIFF_BYTES) -> bytes:
    """What the first bytes of a (possibly compressed) stream hold, up to `n` bytes, as far as
    `data` reaches: the bytes themselves when not compressed, nothing when they do not
    decompress (the first pass then says the data are corrupt)."""
    kind = compression_of(data)
    if kind == "none":
        return data[:n]
    unpack = {"gzip": lambda: zlib.decompressobj(wbits=31), "bzip2": bz2.BZ2Decompressor,
              "xz": lzma.LZMADecompressor}[kind]()
    try:
        return unpack.decompress(data, n)
    except (OSError, EOFError, lzma.LZMAError, zlib.error):
        return data[:0]


def spool_input(directory: str | Path, stream: BinaryIO | None = None, *,
                shown: str = "<stdin>") -> Path:
    """Copy a stream (default: standard input) to a new file in `directory`; its path.

    InputError (naming `shown`) for binary data in its first bytes, before anything is
    written, and for a stream that would leave its file system less than `min_free` free
    (the partial copy is removed)."""
    src = stream if stream is not None else sys.stdin.buffer
    head = read_start(src, SNIFF_BYTES)
    check_text(decompressed_start(head), shown)
    fd, name = tempfile.mkstemp(prefix="virnucpro-stdin-", suffix=".fasta", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            block, written = head, 0
            while block:
                _check_room(directory, len(block), written, shown)
                out.write(block)
                written += len(block)
                block = src.read(_BLOCK)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _check_room(directory: str | Path, more: int, written: int, shown: str) -> None:
    # Asked before every block rather than trusting ENOSPC: a full /tmp breaks every other
    # program on the machine long before this one gets its error.
    usage = shutil.disk_usage(directory)
    keep = min_free(usage.total)
    if usage.free - more < keep:
        bound = f"{keep / 2**30:.1f} GiB" if keep >= 2**30 else f"{keep / 2**20:.0f} MiB"
        raise InputError(
            f"stopped reading after {written / 2**20:,.0f} MiB: copying this input (a stream, "
            f"read twice, so kept in a temporary file) would leave less than "
            f"{bound} free in {directory} (the bound is max(1 GiB, 5 % of the "
            "file system)); is the input endless? Give it as a file, or set TMPDIR to a "
            "folder with more room", path=shown)
