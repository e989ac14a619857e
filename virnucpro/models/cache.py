"""The model cache on disk: where sets live (`cache_root()/sets/<name>/`), the names a set may
take there, the advisory locks that keep two processes from writing one set, and the staging
folders a set is written into before one rename puts it in place.

Environment: `VIRNUCPRO_HOME` (the cache root; else the user cache folder of virnucpro).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# What a set's folder in the cache may be called (a name given to `models import`, say).
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def cache_root() -> Path:
    """`$VIRNUCPRO_HOME` when set, else the user cache folder of virnucpro."""
    home = os.environ.get("VIRNUCPRO_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("virnucpro"))


def sets_dir() -> Path:
    return cache_root() / "sets"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl.flock) held for the block; a no-op where fcntl is absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: racing processes are the user's problem there
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def staging(prefix: str) -> Iterator[Path]:
    """A hidden temp folder next to the sets, renamed into place by the caller, else removed."""
    sets_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=sets_dir()))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would lock others out of a shared cache
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_into_place(tmp: Path, root: Path) -> None:
    """`tmp` renamed to `root`; a folder already there (stale or broken) is set aside first."""
    if root.exists():  # a folder rename cannot overwrite
        old = root.with_name(f".{root.name}-old-{os.getpid()}")
        root.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, root)
