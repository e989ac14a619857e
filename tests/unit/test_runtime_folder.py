"""VIRNUCPRO_RUNTIME_DIR: the daemon's socket folder named outright (a container's daemon
puts its sockets in the host's folder, mounted at the same path), held to the same rules as
the folders platformdirs gives; and how `virnucpro-daemon stop` sees a daemon go whose pid is
not ours to see (the lock file it holds to its end, in the mounted folder)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from virnucpro.daemon.cli import _gone
from virnucpro.daemon.paths import DaemonPaths, UnsafeFolder, runtime_dir


@pytest.fixture
def short() -> Iterator[Path]:
    """A folder whose socket paths fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="vnp-rt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_named_folder_is_made_ours_alone_and_holds_the_sockets(short, monkeypatch):
    named = short / "sockets"
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(named))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(short))  # not used when the folder is named
    assert runtime_dir() == named
    info = os.lstat(named)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert DaemonPaths.default().requests == f"ipc://{named}/daemon.sock"


@pytest.mark.parametrize("plant, problem", [
    (lambda p: (p.mkdir(), os.chmod(p, 0o755)), "is open to others (mode 0755"),
    (lambda p: p.write_text("x"), "exists and is not a folder"),
    (lambda p: p.parent.joinpath("elsewhere").mkdir(mode=0o700) or p.symlink_to("elsewhere"),
     "is a symbolic link"),
])
def test_a_named_folder_that_is_not_safely_ours_is_refused(short, monkeypatch, plant, problem):
    named = short / "sockets"
    plant(named)
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(named))
    with pytest.raises(UnsafeFolder, match=re.escape(problem)) as caught:
        runtime_dir()
    assert "VIRNUCPRO_RUNTIME_DIR" in str(caught.value)  # the way out is named


def test_a_named_folder_that_cannot_be_made_is_relative_or_too_long_says_so(short, monkeypatch):
    (short / "file").write_text("x")
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(short / "file" / "sockets"))
    with pytest.raises(UnsafeFolder, match=r"cannot be made \("):
        runtime_dir()
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(short / ("x" * 100)))
    with pytest.raises(UnsafeFolder, match="too long for a socket path"):
        runtime_dir()
    assert not (short / ("x" * 100)).exists()
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", "sockets")
    with pytest.raises(UnsafeFolder, match="is not an absolute path"):
        runtime_dir()


def test_stop_waits_for_the_lock_beside_the_socket_then_for_a_virnucpro_pid(short, monkeypatch):
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(short))
    paths = DaemonPaths.default()
    with _process("virnucpro-daemon") as daemon, _process("init") as other:
        with open(paths.lock, "a+") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            # Held: not gone, whatever the pid names (a container's daemon, seen from the host).
            for pid in (daemon.pid, other.pid, _dead_pid()):
                assert not _gone(pid, paths.requests)
        # Released: a virnucpro process of that pid is the daemon in its last moment: not gone
        # until it ends; a pid naming another process (the host's own pid 1, say) is not it.
        assert not _gone(daemon.pid, paths.requests)
        assert _gone(other.pid, paths.requests)
        assert _gone(_dead_pid(), paths.requests)
        paths.lock.unlink()  # unlinked by a daemon that stopped cleanly
        assert not _gone(daemon.pid, paths.requests)
        assert _gone(other.pid, paths.requests)
        # Exiting, or exited and not yet reaped (no command line then): still its last moment.
        daemon.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{daemon.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not _gone(daemon.pid, paths.requests)
        daemon.wait()
        assert _gone(daemon.pid, paths.requests)
        kernel_thread = 2  # kthreadd: no command line either, never a daemon
        stat_2 = Path("/proc/2/stat")
        if stat_2.exists() and stat_2.read_text().startswith("2 (kthreadd)"):
            assert _gone(kernel_thread, paths.requests)


def test_a_daemon_elsewhere_is_gone_when_its_pid_is(short, monkeypatch):
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(short))
    with _process("init") as other:
        for endpoint in (f"ipc://{short}/other/daemon.sock", "tcp://127.0.0.1:7450"):
            assert not _gone(other.pid, endpoint)
            assert _gone(_dead_pid(), endpoint)


@contextlib.contextmanager
def _process(name: str) -> Iterator[subprocess.Popen]:
    """A live process: `virnucpro-daemon` names itself so on its command line (as the daemon
    does); any other is `sleep` (not this venv's python, whose path may hold "virnucpro")."""
    argv = ([sys.executable, "-c", "import time; time.sleep(60)", name]
            if name == "virnucpro-daemon" else ["sleep", "60"])
    proc = subprocess.Popen(argv)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
