"""The daemon's supervisor: its start, its request loop, its events, and an explicit shutdown
state (running -> draining -> stopping -> stopped).

The parts it puts together, each in its own module: the lock and sockets (sockets.py), the job
store (store.py), the job service, the only code that changes a job's state (service.py), the
scheduler and its runner thread (scheduler.py), the request handlers (handlers.py, one table)
and the uploads (uploads.py). Never imports torch: scoring happens in the engines' workers.
Every request is decoded into its record (requests.decode_request); anything malformed gets
an error reply or, when it cannot be answered (no identity frame), is dropped. No request can
raise out of the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro import __version__
from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.engines import EngineCache, RunnerConfig
from virnucpro.daemon.handlers import HANDLERS, default_models
from virnucpro.daemon.jobs import IllegalMove, JobState
from virnucpro.daemon.memory import MemoryMonitor
from virnucpro.daemon.paths import DaemonPaths, make_state_dir
from virnucpro.daemon.protocol import DaemonState, ErrorCode, ProtocolError
from virnucpro.daemon.scheduler import RunnerThread, Scheduler, resolve_loadable
from virnucpro.daemon.service import JobService, UnknownJob
from virnucpro.daemon.sockets import DaemonError, DaemonSockets
from virnucpro.daemon.uploads import Uploads
from virnucpro.daemon.wire import from_wire
from virnucpro.engine_config import EngineConfig
from virnucpro.errors import VirNucProError

__all__ = ["Daemon", "DaemonConfig", "DaemonError"]

log = logging.getLogger(__name__)

MEMORY_EVERY_S = 1.0  # a memory report a second: the dashboard's sparkline and the followers' heartbeat


@dataclass
class DaemonConfig:
    devices: list[str]  # engine ray: filled in from the cluster at start
    persistent: bool = False  # the daemon's own: engines kept across jobs (engine.persistent unused)
    models: list[str] = field(default_factory=list)  # sets to load at start (persistent mode)
    endpoint: str | None = None  # default: ipc in the runtime folder
    max_queued: int = 1000
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(engine="pool"))  # pool, ray
    shutdown_timeout: float = 60.0
    max_loaded_sets: int = 1
    curve_keys: Path | None = None  # folder with server.key_secret and authorized/ (tcp only)
    shard_frames: int | None = None  # tests only


class Daemon:
    def __init__(self, config: DaemonConfig, paths: DaemonPaths | None = None) -> None:
        self.config = config
        self.paths = paths or DaemonPaths.default()
        self.sockets = DaemonSockets(self.paths, config.endpoint, config.curve_keys)
        self.state = DaemonState.RUNNING
        self.started = time.time()
        self.seq = 0
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.wake = threading.Event()
        self.uploads = Uploads(self.paths.uploads)
        self._signals = 0
        self._stop_deadline = float("inf")
        self.runner: RunnerThread | None = None

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        """Lock, join Ray if asked, check the sets of `--models`, open the store, bind, start
        the runner. A start that fails gives back what it took (the lock, the socket files)
        before its error goes on: nothing is left for the next start or a client to trip on."""
        self.sockets.lock()
        try:
            self._start_locked()
        except BaseException:
            self._abandon_start()
            raise

    def _start_locked(self) -> None:
        from virnucpro.daemon.store_sqlite import SqliteJobStore

        # Join Ray now, for the daemon's life: the devices (and precision) are the cluster's,
        # and ray.init installs a SIGTERM handler that ours must replace (serve_forever).
        if self.config.engine.engine == "ray":
            self.config.devices = self.config.engine.cluster_devices()
        # The lock file says who holds it, for a second start's refusal.
        self.sockets.describe(persistent=self.config.persistent, devices=self.config.devices,
                              engine=self.config.engine.engine)
        # A set named at start that is not there, or would not load, is refused now, not at
        # each job (either mode).
        preload = [str(resolve_loadable(models).root) for models in self.config.models]
        make_state_dir(self.paths.state)  # 0700: the store and the log are the user's own
        self.store = SqliteJobStore(self.paths.store)
        self.service = JobService(self.store, self.emit)
        runner_config = RunnerConfig(devices=self.config.devices, persistent=self.config.persistent,
                                     engine=self.config.engine,
                                     max_loaded_sets=self.config.max_loaded_sets,
                                     shard_frames=self.config.shard_frames)
        self.engines = EngineCache(runner_config)
        self.scheduler = Scheduler(self.service, runner_config, self.engines)
        self.service.reconcile()
        self.sockets.bind()
        self.monitor = MemoryMonitor(self.config.devices, self.engines.describe)
        if self.config.persistent:
            for root in preload:
                # Start the workers now, not at the first job.
                self.engines.get(root).start()
        self.runner = RunnerThread(self.scheduler, self.wake)
        self.runner.start()
        if not self.config.models:  # those of --models were checked above
            threading.Thread(target=self._check_default_set, name="set-check", daemon=True).start()
        log.info("daemon %s ready on %s (events %s), %s models, devices %s", __version__,
                 self.sockets.requests_endpoint, self.sockets.events_endpoint,
                 "persistent" if self.config.persistent else "per-job", ",".join(self.config.devices))

    def _check_default_set(self) -> None:
        """The default set's load check (a child process: seconds), made in the background
        now, so that the first submit without --models finds its verdict kept instead of
        holding the request loop while it is made."""
        try:
            resolve_loadable(default_models(self))
        except Exception as exc:  # noqa: BLE001 - a submit on that set says why, then
            log.info("the default model set cannot be used yet: %s", exc)

    def _abandon_start(self) -> None:
        """What a failed start took, given back in reverse (the runner never started)."""
        for held in (getattr(self, "engines", None), getattr(self, "store", None)):
            if held is not None:
                with contextlib.suppress(Exception):
                    held.close()
        self.sockets.close()

    # -- what it reports -------------------------------------------------------------------

    def status(self) -> M.DaemonStatus:
        return M.DaemonStatus(
            state=self.state, version=__version__, protocol=P.PROTOCOL_VERSION, pid=os.getpid(),
            uptime_s=round(time.time() - self.started, 1),
            persistent_models=self.config.persistent, devices=tuple(self.config.devices),
            engine=self.config.engine.engine, precision=self.scheduler.config.effective_precision,
            requests=self.sockets.requests_endpoint, events=self.sockets.events_endpoint,
            loaded=tuple(from_wire(M.LoadedSet, e) for e in self.engines.describe()),
            model_loads=self.engines.model_loads, queued=self.store.count([JobState.QUEUED]),
            running=self.scheduler.current, max_queued=self.config.max_queued,
            default_models=default_models(self))

    def memory(self) -> tuple[M.DeviceMemory, ...]:
        return tuple(from_wire(M.DeviceMemory, row) for row in self.monitor.read())

    # -- events ----------------------------------------------------------------------------

    def emit(self, topic: str, body: object) -> None:
        """Thread-safe: the runner thread queues events; the loop thread publishes them."""
        self.events.put((topic, body))

    def publish_pending(self) -> None:
        while True:
            try:
                topic, body = self.events.get_nowait()
            except queue.Empty:
                return
            self.seq += 1
            self.sockets.publish(P.make_event(self.seq, topic, M.event_body(topic, body),
                                              time.time()))

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        import zmq

        self._install_signals()
        poller = zmq.Poller()
        poller.register(self.sockets.router, zmq.POLLIN)
        last_memory = 0.0
        try:
            while self.state in (DaemonState.RUNNING, DaemonState.DRAINING) or not self.runner.done.is_set():
                if self.state is DaemonState.STOPPING and time.time() > self._stop_deadline:
                    log.warning("shutdown timeout: stopping workers now")
                    break
                for _sock, _ in poller.poll(100):
                    self._serve_one()
                now = time.time()
                if now - last_memory >= MEMORY_EVERY_S:
                    last_memory = now
                    self.emit("memory", M.MemoryReport(self.memory()))
                if self.state is DaemonState.DRAINING and self.service.idle():
                    self.begin_stop("drained")
                self.publish_pending()
        finally:
            self.shutdown()

    def _serve_one(self) -> None:
        frames = self.sockets.receive()
        if frames is None or len(frames) < 2:
            return  # nothing to answer to
        identity, payload = frames[0], frames[-1]
        # A REQ client puts an empty delimiter before its frame and expects it back.
        envelope = [identity, b""] if len(frames) == 3 and frames[1] == b"" else [identity]
        if len(frames) > 3 or (len(frames) == 3 and frames[1] != b""):
            self.sockets.reply([identity], P.error_reply("", ErrorCode.BAD_REQUEST,
                                                         "one frame per request"))
            return
        self.sockets.reply(envelope, self.answer(payload))

    def answer(self, payload: bytes) -> bytes:
        """The reply to one request frame; never raises."""
        rid = ""
        try:
            rid, request = R.decode_request(payload)
            return P.ok_reply(rid, HANDLERS[request.TYPE](self, request).to_dict())
        except ProtocolError as exc:
            return P.error_reply(rid or R.request_id_of(payload), exc.code, exc.message)
        except UnknownJob as exc:
            return P.error_reply(rid, ErrorCode.UNKNOWN_JOB, str(exc))
        except IllegalMove as exc:
            return P.error_reply(rid, ErrorCode.CONFLICT, str(exc))
        except VirNucProError as exc:
            return P.error_reply(rid, ErrorCode.INVALID, str(exc))
        except Exception as exc:  # noqa: BLE001 - nothing a client sends may stop the daemon
            log.exception("request failed")
            return P.error_reply(rid, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    # -- draining and stopping -------------------------------------------------------------

    def begin_drain(self) -> None:
        if self.state is DaemonState.RUNNING:
            self.state = DaemonState.DRAINING
            self.emit("daemon", self.status())

    def begin_stop(self, why: str) -> None:
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
            self.begin_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _kill_workers(self) -> None:
        for engine in list(self.engines.engines.values()):
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
            self.publish_pending()
        self.sockets.close()
        self.store.close()
        log.info("stopped")
