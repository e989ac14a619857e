"""What the daemon holds of the operating system: its lock, its two ZeroMQ sockets, the CurveZMQ
authenticator, and the files that point clients at it. `DaemonSockets` takes them in order
(`lock`, then `bind`) and gives every one back in `close`, socket files and lock file included,
so that a stopped daemon leaves nothing behind for a client to trip on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import IO

import zmq

from virnucpro.daemon import protocol as P
from virnucpro.daemon.paths import DaemonPaths, events_endpoint_for, ipc_listening
from virnucpro.errors import VirNucProError

log = logging.getLogger(__name__)


class DaemonError(VirNucProError):
    exit_code = 6


def _ipc_file(endpoint: str) -> Path | None:
    return Path(endpoint[6:]) if endpoint.startswith("ipc://") else None


def _check_socket_path(path: Path) -> None:
    """Refuse an endpoint's path that is not a socket file left by a dead daemon: a regular
    file (or anything else) would be replaced by our socket and unlinked at stop, and a socket
    something listens on is another daemon's (one with another runtime folder, so another lock),
    which unlinking would cut off."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise DaemonError(f"{path} exists and is not a socket; refusing to replace it (choose "
                          f"another --endpoint)")
    try:
        listening = ipc_listening(f"ipc://{path}")
    except PermissionError:
        listening = True  # another user's socket: not ours to remove either
    if listening:
        raise DaemonError(f"{path} is in use: another process listens on it (choose another "
                          f"--endpoint, or stop that daemon)")


def _read_description(fh: IO[str]) -> dict:
    """The lock holder's description; a moment's retry, as the holder rewrites it in place."""
    text = ""
    for _ in range(10):
        fh.seek(0)
        text = fh.read().strip()
        try:
            found = json.loads(text)
        except ValueError:
            found = None
        if isinstance(found, dict) and "pid" in found:
            return found
        if isinstance(found, int):  # written by a daemon of 0.1: its pid only
            return {"pid": found}
        time.sleep(0.02)
    return {"pid": text or "?"}


def describe_holder(description: dict) -> str:
    """`pid 123; persistent models; devices cuda:0,cuda:1; ipc:///...` (what is known of it)."""
    parts = [f"pid {description.get('pid', '?')}"]
    if "mode" not in description:
        return parts[0] + "; starting"
    parts.append(f"{description['mode']} models")
    parts.append(f"devices {','.join(description.get('devices') or []) or '-'}")
    if description.get("engine", "pool") != "pool":
        parts.append(f"engine {description['engine']}")
    if description.get("endpoint"):
        parts.append(str(description["endpoint"]))
    return "; ".join(parts)


class DaemonSockets:
    def __init__(self, paths: DaemonPaths, endpoint: str | None, curve_keys: Path | None) -> None:
        self.paths = paths
        self.requests_endpoint = endpoint or paths.requests
        self.events_endpoint = events_endpoint_for(self.requests_endpoint)
        self.curve_keys = curve_keys
        self._lock_fh: IO[str] | None = None
        self.ctx: zmq.Context | None = None
        self.router: zmq.Socket | None = None
        self.pub: zmq.Socket | None = None
        self._auth = None
        self._bound: dict[Path, tuple[int, int]] = {}  # socket files we made: (device, inode)

    # -- taking ----------------------------------------------------------------------------

    def lock(self) -> None:
        """flock, taken before binding: a second daemon refuses instead of stealing the socket.
        The kernel drops it when a daemon dies, so a stale lock never blocks a restart. The
        file holds the holder's description (JSON: its pid now, the rest from `describe`), which
        a refused daemon reads to say which daemon runs."""
        self.paths.lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fh = open(self.paths.lock, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = _read_description(fh)
                fh.close()
                raise DaemonError(f"another daemon ({describe_holder(other)}) is running; stop "
                                  f"it first (`virnucpro-daemon stop`), its lock is "
                                  f"{self.paths.lock}") from None
            # A stopping daemon unlinks the file it held: a lock on that one would be no lock.
            try:
                if os.stat(self.paths.lock).st_ino == os.fstat(fh.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            fh.close()
        self._lock_fh = fh
        self._write_description({"pid": os.getpid()})

    def describe(self, *, persistent: bool, devices: list[str], engine: str = "pool") -> None:
        """Complete the lock file's description once the daemon's configuration is final
        (with Ray the devices are the cluster's, known only after joining it)."""
        self._write_description({"pid": os.getpid(), "mode": "persistent" if persistent else
                                 "per-job", "devices": list(devices), "engine": engine,
                                 "endpoint": self.requests_endpoint})

    def _write_description(self, description: dict) -> None:
        fh = self._lock_fh
        if fh is None:
            raise RuntimeError("describe() before lock()")
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(description))
        fh.flush()

    def bind(self) -> None:
        """The ROUTER for requests and the PUB for events, then the files naming them."""
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        for sock in (self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, P.MAX_MESSAGE_BYTES + 4096)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if self.requests_endpoint.startswith("tcp://"):
            self._setup_curve()
        files = [p for e in (self.requests_endpoint, self.events_endpoint)
                 if (p := _ipc_file(e)) is not None]
        for path in files:  # both checked before either is touched
            _check_socket_path(path)
        for path in files:
            # A socket file left by a killed daemon: nothing listens, and we hold the lock.
            path.unlink(missing_ok=True)
        self.router.bind(self.requests_endpoint)
        self.pub.bind(self.events_endpoint)
        for path in files:
            os.chmod(path, 0o600)
            info = os.lstat(path)
            self._bound[path] = (info.st_dev, info.st_ino)
        self.paths.pid.write_text(str(os.getpid()))
        self.paths.endpoint_file.write_text(json.dumps(
            {"requests": self.requests_endpoint, "events": self.events_endpoint,
             "pid": os.getpid()}))

    def _setup_curve(self) -> None:
        """tcp is opt-in and needs CurveZMQ with an allow-list of client public keys."""
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        keys = self.curve_keys
        secret = keys / "server.key_secret" if keys else None
        allowed = keys / "authorized" if keys else None
        if not secret or not secret.is_file() or not allowed or not allowed.is_dir():
            raise DaemonError("a tcp:// endpoint needs CurveZMQ keys: run `virnucpro-daemon keygen` "
                              "and put authorized client public keys in KEYS/authorized/")
        self._auth = ThreadAuthenticator(self.ctx)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(allowed))
        public, private = zmq.auth.load_certificate(str(secret))
        for sock in (self.router, self.pub):
            sock.curve_secretkey = private
            sock.curve_publickey = public
            sock.curve_server = True

    # -- using -----------------------------------------------------------------------------

    def receive(self) -> list[bytes] | None:
        try:
            return self.router.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError:
            return None

    def reply(self, envelope: list[bytes], payload: bytes) -> None:
        with contextlib.suppress(zmq.ZMQError):  # the client went away: nobody to tell
            self.router.send_multipart([*envelope, payload], zmq.NOBLOCK)

    def publish(self, frames: list[bytes]) -> None:
        self.pub.send_multipart(frames)

    # -- giving back -----------------------------------------------------------------------

    def close(self) -> None:
        """Everything taken, in reverse; safe to call after a partial start."""
        if self.router is not None:
            self.router.close(0)
        if self.pub is not None:
            self.pub.close(500)  # let the last "stopped" event reach the subscribers
        if self._auth is not None:
            self._auth.stop()
        if self.ctx is not None:
            self.ctx.term()
        if self._lock_fh is None:
            return  # never held the lock: the files are another daemon's
        for path, identity in self._bound.items():
            # Only the socket we bound: whatever has its name now (replaced since) is not ours.
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if (info.st_dev, info.st_ino) == identity:
                    path.unlink()
        self._bound.clear()
        for path in (self.paths.pid, self.paths.endpoint_file, self.paths.lock):
            path.unlink(missing_ok=True)
        # Unlinked before the lock is dropped: a daemon starting now takes a fresh file.
        self._lock_fh.close()
        self._lock_fh = None
