"""Where the daemon keeps its sockets, lock, pid, log and job store, its default endpoints, and
how a client's path is resolved.

platformdirs decides (so XDG_RUNTIME_DIR / XDG_STATE_HOME move everything, which is how tests
isolate a daemon): sockets, lock and pid in the user runtime folder, mode 0700; jobs and logs in
the user state folder, mode 0700. `VIRNUCPRO_RUNTIME_DIR` names the socket folder itself: a
daemon in a container puts its sockets in the host's folder, mounted at the same path, where
the host's clients look (platformdirs would refuse a runtime root the user does not own). An
ipc:// path must fit in 107 bytes; when the runtime folder's would not, or there is none, a
short folder under /tmp named for the user is used instead, made or accepted as tmux and
ssh-agent do (`private_dir`), else `UnsafeFolder`.
"""

from __future__ import annotations

import getpass
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from virnucpro.errors import VirNucProError

IPC_PATH_LIMIT = 107


class UnsafeFolder(VirNucProError):
    """A folder for the daemon's sockets that someone else could control: not ours, open to
    others, a symbolic link or not a folder. Exit code 6 (the daemon cannot start); a client
    says it as `DaemonUnavailable`."""

    exit_code = 6

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}; refusing to use it for the daemon's sockets "
                         f"(remove it, or set VIRNUCPRO_RUNTIME_DIR to a private folder)")
        self.path = str(path)


def _runtime_root() -> Path | None:
    import platformdirs

    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not Path(base).is_dir():
        return None
    return Path(platformdirs.user_runtime_dir("virnucpro"))


def private_dir(path: Path) -> Path:
    """`path`, a folder only we can use: made with mode 0700, or, when it exists, checked
    without following a link (lstat): a folder, not a symbolic link, ours, no group or other
    bits. Anything else raises `UnsafeFolder` and is left as it is. Rejected: chmod of a folder
    found open (the old way): in /tmp it may be another user's, planted to receive our sockets
    (or a link to their folder), and its mode is not ours to change."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, or that we may not write in
        raise UnsafeFolder(path, f"cannot be made ({exc.strerror or exc})") from None
    try:
        os.mkdir(path, 0o700)
        return path
    except FileExistsError:
        pass
    except OSError as exc:  # a folder we may not write in (a container's /run, say)
        raise UnsafeFolder(path, f"cannot be made ({exc.strerror or exc})") from None
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFolder(path, f"is a symbolic link (to {os.readlink(path)})")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolder(path, "exists and is not a folder")
    if info.st_uid != os.getuid():
        raise UnsafeFolder(path, f"belongs to another user (uid {info.st_uid})")
    if mode := stat.S_IMODE(info.st_mode) & 0o077:
        raise UnsafeFolder(path, f"is open to others (mode {stat.S_IMODE(info.st_mode):04o}, "
                                 f"group/other bits {mode:03o}; `chmod 700` it if it is yours)")
    return path


def runtime_dir() -> Path:
    if named := os.environ.get("VIRNUCPRO_RUNTIME_DIR"):
        path = Path(named)
        if not path.is_absolute():  # a client and a daemon in other folders would differ
            raise UnsafeFolder(path, "is not an absolute path (VIRNUCPRO_RUNTIME_DIR)")
        if len(f"ipc://{path}/daemon-events.sock") > IPC_PATH_LIMIT:
            raise UnsafeFolder(path, f"is too long for a socket path ({IPC_PATH_LIMIT} bytes "
                                     f"with daemon-events.sock)")
        return private_dir(path)
    root = _runtime_root()
    # The longest socket name decides (the events socket, daemon-events.sock).
    if root is not None and len(f"ipc://{root}/daemon-events.sock") <= IPC_PATH_LIMIT:
        return private_dir(root)
    return private_dir(Path("/tmp") / f"virnucpro-{_user()}")


def _user() -> str:
    """The login name, or the uid where there is none (a container's --user with no passwd
    entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("virnucpro"))


def tighten(path: Path, mode: int) -> None:
    """An existing file or folder of ours that others may read (left by an earlier version)
    made `mode`; another user's is left alone."""
    info = os.stat(path)
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, mode)


def make_state_dir(path: Path) -> Path:
    """The state folder (job store, log, uploads, results, keys), mode 0700. One made by an
    earlier version (0755) is tightened when it is ours; another user's is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    tighten(path, 0o700)
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """A file descriptor on `path`, created with mode 0600 (never wider for a moment, whatever
    the umask), and an existing file of ours tightened to 0600 (written by an earlier version)."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    info = os.fstat(fd)
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.fchmod(fd, 0o600)
    return fd


def real_path(path: str, *, keep_name: bool = False) -> str:
    """An absolute path resolved as the file system resolves it (`realpath`): `link/..` is the
    link target's parent, not the folder holding the link, as `normpath` would say. With
    `keep_name` the last part is kept as given (an input's name names its output subfolder, as
    in `predict`, even when the file is a link)."""
    path = os.path.expanduser(path)
    head, name = os.path.split(path)
    if keep_name and name not in ("", ".", ".."):
        return os.path.join(os.path.realpath(head or "."), name)
    return os.path.realpath(path)


@dataclass(frozen=True)
class DaemonPaths:
    """Every file of one daemon; `requests`/`events` are the default ipc endpoints."""

    runtime: Path
    state: Path

    @classmethod
    def default(cls) -> DaemonPaths:
        return cls(runtime=runtime_dir(), state=state_dir())

    @property
    def requests(self) -> str:
        return f"ipc://{self.runtime / 'daemon.sock'}"

    @property
    def events(self) -> str:
        return events_endpoint_for(self.requests)

    @property
    def lock(self) -> Path:
        return self.runtime / "daemon.lock"

    @property
    def pid(self) -> Path:
        return self.runtime / "daemon.pid"

    @property
    def endpoint_file(self) -> Path:
        """Where a running daemon writes its endpoints, so clients find a non-default one."""
        return self.runtime / "endpoints.json"

    @property
    def store(self) -> Path:
        return self.state / "jobs.sqlite3"

    @property
    def log(self) -> Path:
        return self.state / "daemon.log"

    @property
    def uploads(self) -> Path:
        return self.state / "uploads"

    @property
    def results(self) -> Path:
        return self.state / "results"

    @property
    def keys(self) -> Path:
        return self.state / "keys"


def events_endpoint_for(requests: str) -> str:
    """The PUB endpoint paired with a request endpoint: ipc `x.sock` -> `x-events.sock`,
    tcp port P -> P+1."""
    if requests.startswith("ipc://"):
        base = requests[:-5] if requests.endswith(".sock") else requests
        return f"{base}-events.sock" if base != requests else f"{requests}-events"
    if requests.startswith("tcp://"):
        host, _, port = requests.rpartition(":")
        return f"{host}:{int(port) + 1}"
    raise ValueError(f"unsupported endpoint {requests!r}: use ipc:// or tcp://")


def ipc_listening(endpoint: str) -> bool:
    """Whether something accepts connections on an ipc endpoint's socket file (True for any
    other endpoint: only a request can tell). zmq's connect never fails (it retries in the
    background), so without this a stopped local daemon would cost a whole request timeout.
    PermissionError (another user's socket, or a folder we cannot enter) goes to the caller:
    zmq would retry it silently too, and the request would end in a timeout."""
    if not endpoint.startswith("ipc://"):
        return True
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(endpoint[6:])
        return True
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        return False
    except PermissionError:
        raise
    except OSError:
        return True  # anything else: let the request say what is wrong
    finally:
        sock.close()
