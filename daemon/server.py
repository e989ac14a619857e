"""The daemon's supervisor: ZeroMQ ROUTER for requests, PUB for events, the job store, the
runner thread, and an explicit shutdown state (running -> draining -> stopping -> stopped).

Never imports torch: scoring happens in the pool's worker processes. Every request is
validated (protocol.decode_request); anything malformed gets an error reply or, when it cannot
be answered (no identity frame), is dropped. No request can raise out of the loop.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import queue
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from virnucpro import __version__
from virnucpro.daemon import protocol as P
from virnucpro.daemon.jobs import InputFile, JobRecord
from virnucpro.daemon.memory import MemoryMonitor
from virnucpro.daemon.paths import DaemonPaths, events_endpoint_for
from virnucpro.daemon.protocol import DaemonState, ErrorCode, JobState, ProtocolError
from virnucpro.daemon.runner import RunnerConfig, RunnerThread, Scheduler
from virnucpro.errors import VirNucProError

log = logging.getLogger(__name__)


class DaemonError(VirNucProError):
    exit_code = 6


@dataclass
class DaemonConfig:
    devices: list[str]
    persistent: bool = False
    models: list[str] = field(default_factory=list)  # sets to load at start (persistent mode)
    endpoint: str | None = None  # default: ipc in the runtime folder
    max_queued: int = 1000
    engine: str = "pool"
    threads: int | None = None
    worker_timeout: float = 600.0
    shutdown_timeout: float = 60.0
    max_loaded_sets: int = 1
    curve_keys: Path | None = None  # folder with server.key_secret and authorized/ (tcp only)
    scorer: str | None = None  # tests only
    shard_frames: int | None = None  # tests only
    precision: str = "auto"
    ray_address: str | None = None  # engine ray: the cluster (None: a local Ray instance)
    workers: int | None = None  # engine ray: actors
    gpus_per_worker: float | None = None  # engine ray


class Daemon:
    def __init__(self, config: DaemonConfig, paths: DaemonPaths | None = None) -> None:
        self.config = config
        self.paths = paths or DaemonPaths.default()
        self.requests_endpoint = config.endpoint or self.paths.requests
        self.events_endpoint = events_endpoint_for(self.requests_endpoint)
        self.state = DaemonState.RUNNING
        self.started = time.time()
        self.seq = 0
        self.events: queue.Queue = queue.Queue()
        self.wake = threading.Event()
        self._lock_fh = None
        self._signals = 0
        self.uploads: dict[str, dict] = {}

    # -- start -----------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """flock, taken before binding: a second daemon refuses instead of stealing the socket.
        The kernel drops it when a daemon dies, so a stale lock never blocks a restart."""
        self.paths.lock.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.paths.lock, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            other = fh.read().strip() or "?"
            fh.close()
            raise DaemonError(f"another daemon (pid {other}) is running with {self.paths.lock}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def _bind(self) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        for sock in (self.router, self.pub):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, P.MAX_MESSAGE_BYTES + 4096)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if self.requests_endpoint.startswith("tcp://"):
            self._setup_curve()
        for endpoint in (self.requests_endpoint, self.events_endpoint):
            if endpoint.startswith("ipc://"):
                # A socket file left by a killed daemon: ours to remove, we hold the lock.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(endpoint[6:])
        self.router.bind(self.requests_endpoint)
        self.pub.bind(self.events_endpoint)
        for endpoint in (self.requests_endpoint, self.events_endpoint):
            if endpoint.startswith("ipc://"):
                os.chmod(endpoint[6:], 0o600)

    def _setup_curve(self) -> None:
        """tcp is opt-in and needs CurveZMQ with an allow-list of client public keys."""
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        keys = self.config.curve_keys
        secret = keys / "server.key_secret" if keys else None
        allowed = keys / "authorized" if keys else None
        if not secret or not secret.is_file() or not allowed or not allowed.is_dir():
            raise DaemonError("a tcp:// endpoint needs CurveZMQ keys: run `virnucpro-daemon keygen` "
                              "and put authorized client public keys in KEYS/authorized/")
        self.auth = ThreadAuthenticator(self.ctx)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(allowed))
        public, private = zmq.auth.load_certificate(str(secret))
        for sock in (self.router, self.pub):
            sock.curve_secretkey = private
            sock.curve_publickey = public
            sock.curve_server = True

    def start(self) -> None:
        from virnucpro.daemon.store import SqliteJobStore

        self.acquire_lock()
        # Join Ray now, for the daemon's life: the devices (and precision) are the cluster's,
        # and ray.init installs a SIGTERM handler that ours must replace (serve_forever).
        if self.config.engine == "ray":
            from virnucpro.ray_cluster import cluster_devices

            self.config.devices = cluster_devices(self.config.ray_address, self.config.workers,
                                                  self.config.gpus_per_worker, self.config.threads)
        self.paths.state.mkdir(parents=True, exist_ok=True)
        self.store = SqliteJobStore(self.paths.store)
        self.scheduler = Scheduler(self.store, RunnerConfig(
            devices=self.config.devices, persistent=self.config.persistent, engine=self.config.engine,
            threads=self.config.threads, max_loaded_sets=self.config.max_loaded_sets,
            worker_timeout=self.config.worker_timeout, scorer=self.config.scorer,
            shard_frames=self.config.shard_frames, precision=self.config.precision,
            ray_address=self.config.ray_address, workers=self.config.workers,
            gpus_per_worker=self.config.gpus_per_worker), emit=self.emit)
        self.reconcile()
        self._bind()
        self.paths.pid.write_text(str(os.getpid()))
        self.paths.endpoint_file.write_text(json.dumps(
            {"requests": self.requests_endpoint, "events": self.events_endpoint, "pid": os.getpid()}))
        self.monitor = MemoryMonitor(self.config.devices, self.scheduler.engines.describe)
        if self.config.persistent:
            for models in self.config.models:
                self._preload(models)
        self.runner = RunnerThread(self.scheduler, self.wake)
        self.runner.start()
        log.info("daemon %s ready on %s (events %s), %s models, devices %s", __version__,
                 self.requests_endpoint, self.events_endpoint,
                 "persistent" if self.config.persistent else "per-job", ",".join(self.config.devices))

    def _preload(self, models: str) -> None:
        from virnucpro.models.sets import resolve_model_set

        model_set = resolve_model_set(models, fetch_missing=False, progress=False)
        engine = self.scheduler.engines.get(str(model_set.root))
        engine.start()  # start the workers now, not at the first job

    def reconcile(self) -> None:
        """After a crash: loading/running jobs go back to the queue (attempts are counted
        when they start again, at most MAX_ATTEMPTS), cancelling ones end as cancelled."""
        from virnucpro.daemon.runner import MAX_ATTEMPTS

        now = time.time()
        for job in self.store.list(include_finished=False):
            if job.state in (JobState.LOADING, JobState.RUNNING):
                if job.attempts >= MAX_ATTEMPTS:
                    self.store.transition(job.id, JobState.FAILED, now,
                                          f"interrupted {job.attempts} times; giving up")
                else:
                    self.store.transition(job.id, JobState.QUEUED, now, "daemon restarted; resuming")
                    self.store.append_log(job.id, now, "daemon restarted: back in the queue")
            elif job.state == JobState.CANCELLING:
                self.store.transition(job.id, JobState.CANCELLED, now, "cancelled (daemon restarted)")

    # -- events ----------------------------------------------------------------------------

    def emit(self, topic: str, body: dict) -> None:
        """Thread-safe: the runner thread queues events; the loop thread publishes them."""
        self.events.put((topic, body))

    def _publish_pending(self) -> None:
        while True:
            try:
                topic, body = self.events.get_nowait()
            except queue.Empty:
                return
            self.seq += 1
            self.pub.send_multipart(P.make_event(self.seq, topic, body, time.time()))

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._install_signals()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        last_memory = 0.0
        try:
            while self.state in (DaemonState.RUNNING, DaemonState.DRAINING) or not self.runner.done.is_set():
                if self.state == DaemonState.STOPPING:
                    self.scheduler.stopping.set()
                    self.wake.set()
                    if time.time() > self._stop_deadline:
                        log.warning("shutdown timeout: stopping workers now")
                        break
                for sock, _ in poller.poll(100):
                    if sock is self.router:
                        self._serve_one()
                now = time.time()
                if now - last_memory >= 1.0:
                    last_memory = now
                    self.emit("memory", {"devices": self.monitor.read()})
                if self.state == DaemonState.DRAINING and self._idle():
                    self._begin_stop("drained")
                self._publish_pending()
        finally:
            self.shutdown()

    def _idle(self) -> bool:
        # Under the claim lock, so that a job being claimed right now is seen as live.
        with self.scheduler.lock:
            return self.store.count([JobState.QUEUED, JobState.LOADING, JobState.RUNNING,
                                     JobState.CANCELLING]) == 0

    def _serve_one(self) -> None:
        try:
            frames = self.router.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError:
            return
        if len(frames) < 2:
            return  # nothing to answer to
        identity, payload = frames[0], frames[-1]
        # A REQ client puts an empty delimiter before its frame and expects it back.
        envelope = [identity, b""] if len(frames) == 3 and frames[1] == b"" else [identity]
        if len(frames) > 3 or (len(frames) == 3 and frames[1] != b""):
            self._reply([identity], P.error_reply("", ErrorCode.BAD_REQUEST, "one frame per request"))
            return
        rid = ""
        try:
            request = P.decode_request(payload)
            rid = request.id
            body = self.handle(request)
            reply = P.ok_reply(rid, body)
        except ProtocolError as exc:
            reply = P.error_reply(rid or P.request_id_of(payload), exc.code, exc.message)
        except VirNucProError as exc:
            reply = P.error_reply(rid, ErrorCode.INVALID, str(exc))
        except Exception as exc:  # noqa: BLE001 - nothing a client sends may stop the daemon
            log.exception("request failed")
            reply = P.error_reply(rid, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        self._reply(envelope, reply)

    def _reply(self, envelope: list[bytes], payload: bytes) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.router.send_multipart([*envelope, payload], zmq.NOBLOCK)

    # -- requests --------------------------------------------------------------------------

    def handle(self, req: P.Request) -> dict:
        handler = getattr(self, f"_on_{req.type}")
        return handler(req.body)

    def status(self) -> dict:
        return {"state": self.state.value, "version": __version__, "protocol": P.PROTOCOL_VERSION,
                "pid": os.getpid(), "uptime_s": round(time.time() - self.started, 1),
                "persistent_models": self.config.persistent, "devices": self.config.devices,
                "engine": self.config.engine, "precision": self.scheduler.config.effective_precision,
                "requests": self.requests_endpoint,
                "events": self.events_endpoint, "loaded": self.scheduler.engines.describe(),
                "model_loads": self.scheduler.engines.model_loads,
                "queued": self.store.count([JobState.QUEUED]), "running": self.scheduler.current,
                "max_queued": self.config.max_queued}

    def _on_hello(self, body: dict) -> dict:
        versions = body.get("versions", [P.PROTOCOL_VERSION])
        if P.PROTOCOL_VERSION not in versions:
            raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                                f"client speaks {versions}; this daemon speaks {P.PROTOCOL_VERSION}")
        return {"daemon": self.status()}

    def _on_status(self, body: dict) -> dict:
        return self.status()

    def _on_snapshot(self, body: dict) -> dict:
        self._publish_pending()  # so that seq covers everything the snapshot shows
        return {"seq": self.seq, "daemon": self.status(), "devices": self.monitor.read(),
                "jobs": [j.to_wire() for j in self.store.list(include_finished=True)]}

    def _on_submit(self, body: dict) -> dict:
        if self.state != DaemonState.RUNNING:
            raise ProtocolError(ErrorCode.REFUSED, f"the daemon is {self.state.value}: no new jobs")
        rid = body.get("client_request_id")
        if rid and (existing := self.store.find_by_request(rid)):
            return {"job": existing.to_wire(), "duplicate": True}
        options = P.check_options(body.get("options", {}))
        uploads = body.get("uploads", [])
        paths = [self._upload_path(u) for u in uploads] + list(body.get("inputs", []))
        if not paths:
            raise ProtocolError(ErrorCode.INVALID, "a job needs at least one input")
        inputs = tuple(self._fingerprint(p) for p in paths)
        self._check_models(options)
        if self.store.count([JobState.QUEUED]) >= self.config.max_queued:
            raise ProtocolError(ErrorCode.BUSY, f"the queue is full ({self.config.max_queued} jobs)")
        outdir = body.get("outdir")
        if outdir is not None and not os.path.isabs(outdir):
            raise ProtocolError(ErrorCode.INVALID, "outdir must be an absolute path")
        if outdir is not None:
            # Two live jobs in one folder would claim (or --force away) each other's shards.
            same = [j.id for j in self.store.list(include_finished=False)
                    if os.path.normpath(j.outdir) == os.path.normpath(outdir)]
            if same:
                raise ProtocolError(ErrorCode.INVALID, f"{outdir} is the output folder of live job "
                                    f"{same[0]}; choose another or wait for it")
        first = self.uploads[uploads[0]]["name"] if uploads else Path(paths[0]).name
        # Without an outdir: a fresh folder in the daemon's results, named before the job has
        # an id so that its history records one "queued", not two.
        default = self.paths.results / f"job-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        record = JobRecord(id=0, name=body.get("name") or first, state=JobState.QUEUED,
                           inputs=inputs, outdir=outdir or str(default), options=options,
                           priority=body.get("priority", 0), client_request_id=rid)
        job = self.store.add(record, time.time())
        for u in uploads:  # the file now belongs to the job
            self.uploads.pop(u, None)
        self.store.append_log(job.id, time.time(), f"submitted: {len(inputs)} input(s) -> {job.outdir}")
        self.emit("job", job.to_wire())
        self.wake.set()
        return {"job": job.to_wire(), "duplicate": False}

    def _check_models(self, options: dict) -> None:
        from virnucpro.models.sets import resolve_model_set

        # Offline by design here: a daemon must not start a 12 GB download for a submission.
        try:
            model_set = resolve_model_set(options["models"], fetch_missing=False, progress=False)
            model_set.classifier_path(options["chunk_size"])
        except VirNucProError as exc:
            raise ProtocolError(ErrorCode.INVALID, str(exc)) from None

    def _fingerprint(self, path: str) -> InputFile:
        """Size and modification time only: hashing a 50 GB input here would stall every
        client for a minute. The runner fills in the sha256 from the job's first read."""
        if not os.path.isabs(path):
            raise ProtocolError(ErrorCode.INVALID, f"{path}: input paths must be absolute")
        p = Path(path)
        if not p.is_file():
            raise ProtocolError(ErrorCode.INVALID, f"{path}: no such file")
        st = p.stat()
        return InputFile(path=str(p), size=st.st_size, mtime_ns=st.st_mtime_ns, sha256="")

    def _job(self, job_id: int) -> JobRecord:
        job = self.store.get(job_id)
        if job is None:
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no job {job_id}")
        return job

    def _on_jobs(self, body: dict) -> dict:
        return {"jobs": [j.to_wire() for j in self.store.list(include_finished=body.get("all", False))]}

    def _on_show(self, body: dict) -> dict:
        return {"job": self._job(body["job_id"]).to_wire()}

    def _on_cancel(self, body: dict) -> dict:
        with self.scheduler.lock:
            job = self._job(body["job_id"])
            if job.state.finished or job.state == JobState.CANCELLING:
                return {"job": job.to_wire()}
            if job.state == JobState.QUEUED:
                job = self.store.transition(job.id, JobState.CANCELLED, time.time(), "cancelled by request")
            else:
                job = self.store.transition(job.id, JobState.CANCELLING, time.time(), "cancel requested")
                self.scheduler.request_cancel(job.id)
        self.emit("job", job.to_wire())
        return {"job": job.to_wire()}

    def _on_retry(self, body: dict) -> dict:
        job = self._job(body["job_id"])
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise ProtocolError(ErrorCode.INVALID, f"job {job.id} is {job.state.value}; only failed "
                                "or cancelled jobs can be retried")
        with self.scheduler.lock:
            self.scheduler.cancel_requested.discard(job.id)  # an old cancel is not for this run
            job = self.store.transition(job.id, JobState.QUEUED, time.time(), "retry requested",
                                        attempts=0, finished=None)
        self.emit("job", job.to_wire())
        self.wake.set()
        return {"job": job.to_wire()}

    def _on_logs(self, body: dict) -> dict:
        job = self._job(body["job_id"])
        lines = self.store.logs(job.id, body.get("since", 0))
        return {"lines": [{"n": n, "time": t, "line": line} for n, t, line in lines]}

    def _on_remove(self, body: dict) -> dict:
        if "job_id" in body:
            job = self._job(body["job_id"])
            if job.state.live:
                raise ProtocolError(ErrorCode.INVALID, f"job {job.id} is {job.state.value}; cancel it first")
            return {"removed": int(self.store.remove(job.id))}
        older = float(body.get("older_than_s", 7 * 86400))
        return {"removed": self.store.remove_finished(older, time.time())}

    def _on_drain(self, body: dict) -> dict:
        if self.state == DaemonState.RUNNING:
            self.state = DaemonState.DRAINING
            self.emit("daemon", self.status())
        return self.status()

    def _on_stop(self, body: dict) -> dict:
        self._begin_stop("stop requested")
        return self.status()

    # -- uploads and downloads (remote clients over tcp) -------------------------------------

    def _on_upload_begin(self, body: dict) -> dict:
        if body["size"] < 0 or len(self.uploads) >= 100:
            raise ProtocolError(ErrorCode.INVALID, "bad size or too many uploads in progress")
        upload_id = uuid.uuid4().hex
        self.paths.uploads.mkdir(parents=True, exist_ok=True)
        name = "".join(c for c in Path(body["name"]).name if c.isalnum() or c in "._-") or "input"
        path = self.paths.uploads / f"{upload_id}-{name}"
        path.write_bytes(b"")
        # Hashed as the chunks arrive: reading a large upload back at the end would stall
        # the request loop (and hold the whole file in memory).
        self.uploads[upload_id] = {"path": path, "size": body["size"], "sha256": body["sha256"],
                                   "received": 0, "done": False, "name": name,
                                   "digest": hashlib.sha256()}
        return {"upload_id": upload_id, "chunk_bytes": P.UPLOAD_CHUNK_BYTES}

    def _on_upload_chunk(self, body: dict) -> dict:
        up = self.uploads.get(body["upload_id"])
        if up is None or up["done"]:
            raise ProtocolError(ErrorCode.INVALID, "unknown or finished upload")
        if body["offset"] != up["received"]:
            raise ProtocolError(ErrorCode.INVALID, f"expected offset {up['received']}")
        try:
            data = base64.b64decode(body["data"], validate=True)
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "data is not base64") from None
        if up["received"] + len(data) > up["size"]:
            raise ProtocolError(ErrorCode.INVALID, "more data than the announced size")
        with open(up["path"], "ab") as fh:
            fh.write(data)
        up["digest"].update(data)
        up["received"] += len(data)
        return {"received": up["received"]}

    def _on_upload_end(self, body: dict) -> dict:
        up = self.uploads.get(body["upload_id"])
        if up is None:
            raise ProtocolError(ErrorCode.INVALID, "unknown upload")
        if up["received"] != up["size"] or up["digest"].hexdigest() != up["sha256"]:
            up["path"].unlink(missing_ok=True)
            del self.uploads[body["upload_id"]]
            raise ProtocolError(ErrorCode.INVALID, "upload incomplete or its sha256 differs")
        up["done"] = True
        return {"upload_id": body["upload_id"], "path": str(up["path"])}

    def _upload_path(self, upload_id: str) -> str:
        up = self.uploads.get(upload_id)
        if up is None or not up["done"]:
            raise ProtocolError(ErrorCode.INVALID, f"upload {upload_id} is unknown or unfinished")
        return str(up["path"])

    def _on_download(self, body: dict) -> dict:
        job = self._job(body["job_id"])
        root = Path(job.outdir).resolve()
        target = (root / body["file"]).resolve()
        if root not in target.parents or not target.is_file():
            raise ProtocolError(ErrorCode.INVALID, f"{body['file']}: not a file of job {job.id}")
        offset = max(0, body.get("offset", 0))
        with open(target, "rb") as fh:
            fh.seek(offset)
            data = fh.read(P.UPLOAD_CHUNK_BYTES)
        return {"data": base64.b64encode(data).decode(), "offset": offset,
                "eof": offset + len(data) >= target.stat().st_size, "size": target.stat().st_size}

    # -- stopping --------------------------------------------------------------------------

    def _begin_stop(self, why: str) -> None:
        if self.state in (DaemonState.STOPPING, DaemonState.STOPPED):
            return
        log.info("stopping: %s", why)
        self.state = DaemonState.STOPPING
        self._stop_deadline = time.time() + self.config.shutdown_timeout
        self.scheduler.stopping.set()
        self.wake.set()
        self.emit("daemon", self.status())

    def _install_signals(self) -> None:
        def on_signal(signum, frame):
            self._signals += 1
            if self._signals > 1:
                log.warning("second signal: exiting now")
                self._kill_workers()
                os._exit(1)
            self._begin_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _kill_workers(self) -> None:
        for engine in list(self.scheduler.engines.engines.values()):
            with contextlib.suppress(Exception):
                engine.kill()

    def shutdown(self) -> None:
        self.state = DaemonState.STOPPING
        self.scheduler.stopping.set()
        self.wake.set()
        if not self.runner.done.wait(timeout=max(1.0, self.config.shutdown_timeout)):
            # Past the timeout: kill the workers so the runner's wait ends; it puts its jobs
            # back in the queue (their finished shards are on disk) and closes the engines.
            self._kill_workers()
            self.runner.done.wait(timeout=10)
        self.state = DaemonState.STOPPED
        with contextlib.suppress(Exception):
            self.emit("daemon", self.status())
            self._publish_pending()
        self.router.close(0)
        self.pub.close(500)  # let the last "stopped" event reach the subscribers
        if getattr(self, "auth", None):
            self.auth.stop()
        self.ctx.term()
        self.store.close()
        for path in (self.paths.pid, self.paths.endpoint_file):
            path.unlink(missing_ok=True)
        if self._lock_fh:
            self._lock_fh.close()
        log.info("stopped")
