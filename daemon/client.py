"""The Python client of the daemon: requests over DEALER, events over SUB. Never imports torch.

    with Client() as c:                      # finds the local daemon's ipc endpoint
        job = c.submit(["/data/s1.fa"], outdir="/data/out/s1", options={"models": "tiny"})
        for job in c.watch(job.id):          # the job's record after each change, to its end
            print(job.state.value, job.progress.chunks_done, job.progress.chunks_total)

Every request is a record (daemon/requests.py) and every reply is decoded into its record
(daemon/messages.py; `to_dict()` gives the JSON form), both through one codec (wire.py).
Every error reply raises `ClientError` with the protocol's code. A daemon that does not answer
within `timeout`, or a local one that is not running at all (nothing listens on its socket:
known at once), raises `DaemonUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq

from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.client_errors import ClientError, DaemonUnavailable
from virnucpro.daemon.follow import Follower, JobWatch
from virnucpro.daemon.jobs import JobRecord
from virnucpro.daemon.paths import (
    DaemonPaths,
    UnsafeFolder,
    events_endpoint_for,
    ipc_listening,
    real_path,
    state_dir,
)
from virnucpro.daemon.wire import WireError


def default_endpoint() -> str:
    """The running daemon's endpoint if it wrote one, else the default ipc socket. A file left
    by a daemon that was killed (its pid gone) is ignored: over tcp nothing else could tell
    that nobody listens, and every request would wait out its timeout. A runtime folder that
    is not safely ours (`paths.UnsafeFolder`) holds no socket we should talk to."""
    try:
        paths = DaemonPaths.default()
    except UnsafeFolder as exc:
        raise DaemonUnavailable(str(exc)) from None
    try:
        written = json.loads(paths.endpoint_file.read_text())
        endpoint, pid = written["requests"], int(written["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return paths.requests
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return paths.requests
    except PermissionError:
        pass  # alive, another user's: let the request say what is wrong
    return endpoint


class Client:
    def __init__(self, endpoint: str | None = None, *, timeout: float = 10.0,
                 curve_keys: Path | None = None) -> None:
        self.endpoint = endpoint or os.environ.get("VIRNUCPRO_ENDPOINT") or default_endpoint()
        self.events_endpoint = events_endpoint_for(self.endpoint)
        self.timeout = timeout
        self.curve_keys = curve_keys
        self.ctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    # -- plumbing --------------------------------------------------------------------------

    def _secure(self, sock: zmq.Socket) -> None:
        if not self.endpoint.startswith("tcp://"):
            return
        import zmq.auth

        keys = self.curve_keys or Path(os.environ.get("VIRNUCPRO_KEYS", state_dir() / "keys"))
        try:
            public, secret = zmq.auth.load_certificate(str(keys / "client.key_secret"))
            server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
        except OSError as exc:
            raise DaemonUnavailable(f"tcp needs CurveZMQ keys in {keys} (client.key_secret, "
                                    f"server.key): {exc}") from None
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_public

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            self.check_reachable()
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            self._secure(sock)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def check_reachable(self) -> None:
        """Raise DaemonUnavailable at once when a local daemon is not running (no socket
        file, or nothing listening on it) or its socket is not ours to use (permission
        denied), instead of after a whole timeout."""
        try:
            listening = ipc_listening(self.endpoint)
        except PermissionError as exc:
            raise DaemonUnavailable(f"permission denied on the daemon's socket "
                                    f"{exc.filename or self.endpoint[6:]}: it is another user's "
                                    f"daemon, or its folder is not yours") from None
        if not listening:
            raise DaemonUnavailable(f"the daemon is not running (nothing listens on "
                                    f"{self.endpoint}); start it with `virnucpro-daemon start`")

    def subscriber(self, topics: tuple[str, ...] = P.TOPICS) -> zmq.Socket:
        """A SUB socket on the daemon's events (the caller closes it); see follow.py."""
        self.check_reachable()
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        self._secure(sub)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.events_endpoint)
        return sub

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, request: R.Request | str, body: dict | None = None, *,
             timeout: float | None = None) -> dict:
        """Send one request and return its reply's raw body (skipping stale replies of
        earlier requests); `request` decodes it. The request is a record, or its type and
        JSON body, which are read into the record here as the daemon reads them (a bad one
        raises ClientError with the daemon's code and words, unsent)."""
        request = _record(request, body)
        sock = self._socket()
        rid = os.urandom(8).hex()
        sock.send(R.encode_request(request, rid))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000)):
                # The socket may now hold a late reply: start afresh next time.
                self.close()
                raise DaemonUnavailable(f"no answer from the daemon at {self.endpoint} "
                                        f"(is it running? `virnucpro-daemon start`)")
            reply = json.loads(sock.recv())
            if reply.get("id") not in (rid, ""):
                continue
            if reply.get("ok"):
                return reply["body"]
            err = reply.get("error", {})
            raise ClientError(err.get("code", "internal"), err.get("message", "unknown error"))

    def request(self, request: R.Request | str, body: dict | None = None, *,
                timeout: float | None = None) -> Any:
        """One request (as `call` takes it); its reply as the record of
        `messages.REPLIES[type]`."""
        request = _record(request, body)
        raw = self.call(request, timeout=timeout)
        try:
            return M.decode_reply(request.TYPE, raw)
        except WireError as exc:
            raise ClientError("bad_reply", f"the daemon's reply does not fit: {exc}") from None

    # -- verbs -----------------------------------------------------------------------------

    def hello(self) -> M.Hello:
        return self.request(R.HelloRequest(client="virnucpro", versions=(P.PROTOCOL_VERSION,)))

    def status(self) -> M.DaemonStatus:
        return self.request(R.StatusRequest())

    def snapshot(self) -> M.Snapshot:
        return self.request(R.SnapshotRequest())

    def submit(self, inputs: list[str], *, outdir: str | None = None, name: str | None = None,
               priority: int = 0, options: dict | None = None,
               client_request_id: str | None = None, upload: bool = False) -> JobRecord:
        """Submit a job; relative paths are made absolute here, where they make sense (as the
        file system reads them: `paths.real_path`). With
        `upload`, the files' content is sent instead (a daemon on another host)."""
        if upload:
            uploads, paths = tuple(self.upload(p) for p in inputs), None
        else:
            uploads, paths = None, tuple(real_path(str(p), keep_name=True) for p in inputs)
        return self.request(R.SubmitRequest(
            priority=priority, options=dict(options or {}),
            client_request_id=client_request_id or os.urandom(12).hex(), uploads=uploads,
            inputs=paths, outdir=real_path(str(outdir), keep_name=True) if outdir else None,
            name=name or None)).job

    def upload(self, path: str | Path) -> str:
        """Send a file in chunks, read as they go (a large input never sits in memory)."""
        import base64

        path = Path(path)
        size = path.stat().st_size
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        begin = self.request(R.UploadBeginRequest(name=path.name, size=size,
                                                  sha256=digest.hexdigest()))
        offset = 0
        with open(path, "rb") as fh:
            while offset < size and (data := fh.read(min(begin.chunk_bytes, size - offset))):
                self.request(R.UploadChunkRequest(upload_id=begin.upload_id, offset=offset,
                                                  data=base64.b64encode(data).decode()))
                offset += len(data)
        self.request(R.UploadEndRequest(upload_id=begin.upload_id))
        return begin.upload_id

    def download(self, job_id: int, file: str, dest: str | Path) -> Path:
        dest = Path(dest)
        offset = 0
        with open(dest, "wb") as fh:
            while True:
                part = self.request(R.DownloadRequest(job_id=job_id, file=file, offset=offset))
                chunk = part.content
                fh.write(chunk)
                offset += len(chunk)
                if part.eof:
                    return dest

    def jobs(self, all: bool = False) -> list[JobRecord]:  # noqa: A002 - the protocol's word
        return list(self.request(R.JobsRequest(all=all)).jobs)

    def show(self, job_id: int) -> JobRecord:
        return self.request(R.ShowRequest(job_id=job_id)).job

    def cancel(self, job_id: int) -> JobRecord:
        return self.request(R.CancelRequest(job_id=job_id)).job

    def retry(self, job_id: int, *, force: bool = False,
              rename_duplicates: bool = False) -> JobRecord:
        """Queue a failed or cancelled job again; `force` or `rename_duplicates` (what its
        failure's hint names) change that option for this and later attempts."""
        # False is sent as absence: a retry without them has always been `{"job_id"}`.
        return self.request(R.RetryRequest(job_id=job_id, force=force or None,
                                           rename_duplicates=rename_duplicates or None)).job

    def logs(self, job_id: int, since: int = 0) -> list[M.LogLine]:
        return list(self.request(R.LogsRequest(job_id=job_id, since=since)).lines)

    def remove(self, job_id: int | None = None, older_than_s: float | None = None) -> int:
        """Remove one finished job, or the finished jobs older than `older_than_s` (the
        daemon's default when neither is given: a week)."""
        older = older_than_s if job_id is None else None
        return self.request(R.RemoveRequest(job_id=job_id, older_than_s=older)).removed

    def drain(self) -> M.DaemonStatus:
        return self.request(R.DrainRequest())

    def stop(self) -> M.DaemonStatus:
        return self.request(R.StopRequest())

    # -- events ----------------------------------------------------------------------------

    def follow(self, **kwargs: Any) -> Follower:
        """The event stream: a Snapshot, then newer Events (None when idle); follow.py."""
        return Follower(self, **kwargs)

    def watch(self, job_id: int, *, timeout: float | None = None) -> Iterator[JobRecord]:
        """The job's record after each change, until it reaches an end state."""
        return iter(JobWatch(self, job_id, timeout=timeout))


def _record(request: R.Request | str, body: dict | None) -> R.Request:
    """A request record; a type and a JSON body are read as the daemon would read them."""
    if isinstance(request, R.Request):
        if body is not None:
            raise TypeError("a request record carries its own body")
        return request
    try:
        return R.decode_body(request, {} if body is None else body)
    except P.ProtocolError as exc:
        raise ClientError(exc.code.value, exc.message) from None
