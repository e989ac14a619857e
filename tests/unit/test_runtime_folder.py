"""VIRNUCPRO_RUNTIME_DIR: the daemon's socket folder named outright (a container's daemon
puts its sockets in the host's folder, mounted at the same path), held to the same rules as
the folders platformdirs gives; and how `virnucpro-daemon stop` sees a daemon go whose pid is
not ours to see."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest

from virnucpro.daemon.cli import _gone
from virnucpro.daemon.paths import DaemonPaths, UnsafeFolder, runtime_dir


@pytest.fixture
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="vnp-rt-", dir="/tmp"))


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


def test_a_named_folder_that_cannot_be_made_or_is_too_long_says_so(short, monkeypatch):
    (short / "file").write_text("x")
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(short / "file" / "sockets"))
    with pytest.raises(UnsafeFolder, match=r"cannot be made \("):
        runtime_dir()
    monkeypatch.setenv("VIRNUCPRO_RUNTIME_DIR", str(short / ("x" * 100)))
    with pytest.raises(UnsafeFolder, match="too long for a socket path"):
        runtime_dir()
    assert not (short / ("x" * 100)).exists()


def test_stop_sees_a_daemon_go_by_its_pid_or_by_its_socket(short):
    path = short / "daemon.sock"
    endpoint = f"ipc://{path}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    try:
        # A pid that is alive (ours, standing in for a container's pid 1 seen from the host)
        # and a socket that answers: not gone.
        assert not _gone(os.getpid(), endpoint)
    finally:
        listener.close()
    assert _gone(os.getpid(), endpoint)  # the socket closed: gone, whatever the pid
    path.unlink()
    assert _gone(os.getpid(), endpoint)
    assert not _gone(os.getpid(), "tcp://127.0.0.1:7450")  # over tcp only the pid can tell
