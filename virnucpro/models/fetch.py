"""Resumable HTTP(S) download of one model file, with a progress bar and a checksum.

`download(url, dest)` streams into `dest.part`, resumes a partial file with a `Range` request,
verifies the hash, then renames into place atomically and returns the file's sha256. Failures
raise `FetchError` (naming the url) or `ChecksumError` (the bad file and its `.part` are removed,
so a retry starts clean). Only the standard library's urllib is used: no extra dependency.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from virnucpro.errors import ChecksumError, FetchError

log = logging.getLogger(__name__)

# Waits between attempts after a connection error; tests set them to zero. An attempt that
# received bytes does not use one up: a flaky link on a 6 GB file must still finish.
RETRY_DELAYS_S: tuple[float, ...] = (1.0, 3.0, 9.0)
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Checksum:
    """An expected hash: a plain sha256, or a git blob id (SHA-1 of `blob <size>\\0` + content)."""

    kind: Literal["sha256", "git-blob-sha1"]
    hex: str

    def __post_init__(self) -> None:
        if self.kind not in ("sha256", "git-blob-sha1"):
            raise ValueError(f"unknown checksum kind {self.kind!r}")
        object.__setattr__(self, "hex", self.hex.lower())

    def compute(self, path: Path) -> str:
        """The hash of this kind of the file at `path`, as hex."""
        return hash_file(path, git_blob=self.kind == "git-blob-sha1")[self.kind]

    def __str__(self) -> str:
        return f"{self.kind}:{self.hex}"


def hash_file(path: Path, *, git_blob: bool = False) -> dict[str, str]:
    """sha256 (and the git blob id when asked) of a file, in one pass over it."""
    sha = hashlib.sha256()
    blob = None
    if git_blob:
        blob = hashlib.sha1(usedforsecurity=False)
        blob.update(b"blob %d\0" % Path(path).stat().st_size)
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            sha.update(block)
            if blob is not None:
                blob.update(block)
    out = {"sha256": sha.hexdigest()}
    if blob is not None:
        out["git-blob-sha1"] = blob.hexdigest()
    return out


def download(url: str, dest: Path, *, expected: Checksum | None = None,
             size: int | None = None, progress: bool = True, timeout: float = 60) -> str:
    """Download `url` to `dest` (resuming `dest.part`), verify it, return its sha256.

    `size`, when known, is checked before the hash; a file of another size or hash is removed
    with its `.part` and refused. The folder of `dest` is made only once a byte arrives.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    with _progress_bar(dest.name, enabled=progress) as bar:
        _transfer(url, part, bar, timeout)
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        part.unlink(missing_ok=True)
        raise ChecksumError(dest, expected=f"{size:,} bytes", actual=f"{got:,} bytes")
    hashes = hash_file(part, git_blob=expected is not None and expected.kind == "git-blob-sha1")
    if expected is not None and hashes[expected.kind] != expected.hex:
        part.unlink(missing_ok=True)
        dest.unlink(missing_ok=True)
        raise ChecksumError(dest, expected=str(expected),
                            actual=f"{expected.kind}:{hashes[expected.kind]}")
    os.replace(part, dest)
    log.info("downloaded %s -> %s (sha256 %s)", url, dest, hashes["sha256"])
    return hashes["sha256"]


def _transfer(url: str, part: Path, bar: _Bar, timeout: float) -> None:
    """Fill `part` with the whole body of `url`, retrying and resuming as needed."""
    failures = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        try:
            if _attempt(url, part, offset, bar, timeout):
                return
            reason = "the connection closed before the end of the file"
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_HTTP:
                raise FetchError(f"HTTP {exc.code} {exc.reason}", url=url) from exc
            reason = f"HTTP {exc.code}"
        except ValueError as exc:  # urllib's word for a malformed url or unknown scheme
            raise FetchError(f"cannot download: {exc}", url=url) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            cause = getattr(exc, "reason", exc)
            reason = str(cause) or type(exc).__name__
            if _no_network(cause):
                # Retrying cannot help a machine that cannot resolve or route to the host.
                raise FetchError(f"no network: {reason}", url=url) from exc
        new_size = part.stat().st_size if part.exists() else 0
        if new_size <= offset:  # no progress: this attempt counts
            if failures >= len(RETRY_DELAYS_S):
                raise FetchError(f"download failed after {failures + 1} attempts: {reason}",
                                 url=url)
            delay = RETRY_DELAYS_S[failures]
            failures += 1
        else:
            delay = RETRY_DELAYS_S[0] if RETRY_DELAYS_S else 0.0
        log.warning("%s: %s; retrying from byte %d in %.0f s", url, reason, new_size, delay)
        time.sleep(delay)


_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN}


def _no_network(cause: object) -> bool:
    """The host's name does not resolve, or no route leads to it: what an offline machine
    meets. A refused or reset connection is retried: a server can come back."""
    return isinstance(cause, socket.gaierror) or (
        isinstance(cause, OSError) and cause.errno in _NO_ROUTE)


def _attempt(url: str, part: Path, offset: int, bar: _Bar, timeout: float) -> bool:
    """One request; True once `part` holds the whole file."""
    headers = {"User-Agent": "virnucpro", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        # Range not satisfiable: the part is already whole, unless it is longer than the file.
        total = _total_from_content_range(exc.headers.get("Content-Range"))
        if total is not None and total != offset:
            log.warning("%s: partial file larger than the remote one; restarting", url)
            part.unlink()
            return False
        return True
    with resp:
        status = getattr(resp, "status", None) or 200
        start = offset
        if status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range") or "")
            if not m or int(m.group(1)) != offset:
                raise http.client.HTTPException("the server sent the wrong range")
        elif offset:  # the server ignored Range: start again from the first byte
            log.info("%s: the server does not resume; restarting", url)
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        bar.start(total, start)
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "r+b" if start else "wb") as fh:
            fh.seek(start)
            fh.truncate()
            while block := resp.read(_BLOCK):
                fh.write(block)
                bar.advance(len(block))
            fh.flush()
            os.fsync(fh.fileno())
        size = part.stat().st_size
    return total is None or size == total


def _total_from_content_range(value: str | None) -> int | None:
    m = re.search(r"/(\d+)\s*$", value or "")
    return int(m.group(1)) if m else None


class _Bar:
    """A rich progress bar on stderr, or nothing at all (not a terminal, or not wanted)."""

    def __init__(self, progress=None, task=None) -> None:
        self._progress = progress
        self._task = task

    def start(self, total: int | None, completed: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, total=total, completed=completed)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


@contextlib.contextmanager
def _progress_bar(label: str, *, enabled: bool) -> Iterator[_Bar]:
    if not enabled or not sys.stderr.isatty():
        yield _Bar()
        return
    # Imported here: rich is only needed when someone watches.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield _Bar(progress, progress.add_task(label, total=None))
