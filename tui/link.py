"""The dashboard's line to the daemon: the event stream, requests, reconnection, starting one.

Everything here blocks and runs off the UI thread. `DaemonLink.stream` iterates the client's
`Follower` (`Client.follow()`: a snapshot, then newer events, a new snapshot after a gap, and
`DaemonUnavailable` when the daemon stops answering) in a worker thread and reports through
`post`; when the daemon is lost it reports `Disconnected` and retries with backoff, and a
reconnection starts with a fresh snapshot. `call` runs one request on its own short-lived client
(zmq sockets belong to one thread) inside a daemon thread, so that quitting never waits for a
slow request. Only the daemon package's client is used: no torch, no server code.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.daemon.follow import LIVENESS_S
from virnucpro.daemon.messages import Snapshot
from virnucpro.tui.messages import DaemonEvent, Disconnected

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
STREAM_TIMEOUT_S = 5.0  # snapshot / status on the stream's client
REQUEST_TIMEOUT_S = 10.0
# The daemon hashes every input while it answers a submit: a large FASTA takes a while.
SUBMIT_TIMEOUT_S = 600.0


class DaemonClient(Protocol):
    """What the dashboard uses of `virnucpro.daemon.client.Client` (and the tests' fake)."""

    endpoint: str

    def status(self) -> Any: ...
    def follow(self, **kwargs: Any) -> Any: ...
    def close(self) -> None: ...


ClientFactory = Callable[[float], Any]  # timeout -> a new client


class Abandoned(Exception):
    """The caller went away (the app is closing) before the daemon answered."""


def is_local(endpoint: str) -> bool:
    """Whether the daemon shares our file system (its outdirs are readable here)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[6:].rpartition(":")[0].strip("[]")
    return host in ("localhost", "127.0.0.1", "::1")


class DaemonLink:
    def __init__(self, connect: ClientFactory, endpoint: str, *, liveness_s: float = LIVENESS_S,
                 backoff: tuple[float, ...] = BACKOFF_S) -> None:
        self.connect = connect
        self.endpoint = endpoint
        self.liveness_s = liveness_s
        self.backoff = backoff
        self.attempt = 0  # failed connections in a row
        self._wake = threading.Event()

    def wake(self) -> None:
        """Retry now instead of at the end of the backoff (a daemon was just started)."""
        self._wake.set()

    # -- the event stream ------------------------------------------------------------------

    def stream(self, post: Callable[[Any], Any], cancelled: Callable[[], bool]) -> None:
        """Post `DaemonEvent`s until `cancelled()`; on silence or loss, `Disconnected` and retry."""
        self.attempt = 0
        while not cancelled():
            try:
                self._follow(post, cancelled)
                return
            except (DaemonUnavailable, ClientError, OSError) as exc:
                delay = self.backoff[min(self.attempt, len(self.backoff) - 1)]
                self.attempt += 1
                post(Disconnected(str(exc), delay, self.attempt))
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not cancelled():
                if self._wake.wait(0.05):
                    self._wake.clear()
                    break

    def _follow(self, post: Callable[[Any], Any], cancelled: Callable[[], bool]) -> None:
        client = self.connect(STREAM_TIMEOUT_S)
        items = None
        try:
            # The follower resyncs after a gap and raises DaemonUnavailable on silence.
            items = iter(client.follow(liveness_s=self.liveness_s))
            for item in items:
                if cancelled():
                    return
                if item is None:
                    continue  # idle: a chance to notice `cancelled`
                if isinstance(item, Snapshot):
                    self.attempt = 0
                post(DaemonEvent(item))
        finally:
            if items is not None:
                with contextlib.suppress(Exception):
                    items.close()  # the follower's SUB socket, now, not when collected
            client.close()

    # -- requests --------------------------------------------------------------------------

    def call(self, verb: str, *args: Any, cancelled: Callable[[], bool] = lambda: False,
             timeout: float = REQUEST_TIMEOUT_S, **kwargs: Any) -> Any:
        """`Client.<verb>(*args, **kwargs)` on a fresh client; raises what the client raises,
        or `Abandoned` once `cancelled()` (the request's thread is left to time out alone)."""
        box: dict[str, Any] = {}

        def run() -> None:
            client = self.connect(timeout)
            try:  # a local daemon that is not running: the client raises at once
                box["result"] = getattr(client, verb)(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc
            finally:
                client.close()

        thread = threading.Thread(target=run, name=f"virnucpro-tui-{verb}", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
            if cancelled():
                raise Abandoned(verb)
        if "error" in box:
            raise box["error"]
        return box.get("result")


def start_daemon(*, persistent: bool, devices: str, endpoint: str | None,
                 models: str | None = None, cancelled: Callable[[], bool] = lambda: False) -> str:
    """`virnucpro-daemon start` (it returns once the daemon answers); its message, or raise
    RuntimeError with what it printed. The same interpreter runs it, so no PATH is assumed.
    `models`: the set it starts with (`--models`), the default of the submits it takes."""
    args = [sys.executable, "-m", "virnucpro.daemon.cli", "start", "--devices", devices,
            "--persistent-models" if persistent else "--no-persistent-models"]
    if models:
        args += ["--models", models]
    if endpoint:
        args += ["--endpoint", endpoint]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        if cancelled():
            proc.terminate()
            raise Abandoned("start")
        time.sleep(0.1)
    out, err = proc.communicate()
    message = (err or out).strip()
    if proc.returncode != 0:
        raise RuntimeError(message or f"virnucpro-daemon start exited with {proc.returncode}")
    return message
