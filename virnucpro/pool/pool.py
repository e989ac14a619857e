"""`PersistentWorkerPool`: one spawned worker process per device, watched by the supervisor.

The supervisor waits on every worker's pipe and process sentinel at once, so a worker that
dies (killed, segfault, out of host memory) is noticed as soon as the OS reaps it, not when a
timeout expires. Workers are restarted on demand; a restarted worker loads its models again
and reports ready asynchronously while the others keep working. Not a ProcessPoolExecutor:
that one breaks as a whole when a single worker dies.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from virnucpro.devices import physical_gpu, threads_per_worker
from virnucpro.errors import VirNucProError
from virnucpro.pool.worker import ShardTask, WorkerSpec, worker_main

log = logging.getLogger(__name__)

STARTING, READY, DEAD = "starting", "ready", "dead"


class WorkerStartError(VirNucProError):
    """A worker could not load its models (or not in time)."""

    def __init__(self, message: str, *, worker: int, device: str) -> None:
        super().__init__(f"worker {worker} on {device}: {message}")
        self.worker = worker
        self.device = device


@dataclass
class Worker:
    spec: WorkerSpec
    process: Any
    tasks: Connection  # supervisor -> worker
    out: Connection  # worker -> supervisor
    state: str = STARTING
    started_at: float = field(default_factory=time.monotonic)
    ready_info: dict = field(default_factory=dict)
    in_flight: dict = field(default_factory=dict)  # key -> ShardTask, in the order sent
    running: tuple | None = None  # key of the task it said it started
    restarts: int = 0

    @property
    def id(self) -> int:
        return self.spec.worker_id


@dataclass(frozen=True)
class Event:
    kind: str  # ready, result, error, died
    worker: Worker
    key: tuple | None = None
    payload: Any = None


class PersistentWorkerPool:
    """Workers over `devices`, each holding the model set `models`; see the module doc."""

    def __init__(self, devices: list[str], models: str, chunk_size: int, *,
                 threads: int | None = None, cache_clear_interval: int = 50,
                 ready_timeout: float = 600.0, log_level: int = logging.WARNING,
                 precision: str = "float32") -> None:
        self.devices = devices
        self.ready_timeout = ready_timeout
        # Tasks are sent from the thread that runs the pool; cancels may come from another
        # (the daemon's request loop): one sender at a time per pipe.
        self._send_lock = threading.Lock()
        per = threads_per_worker(devices, threads)
        self.specs = [
            WorkerSpec(worker_id=i, device=d, models=models, chunk_size=chunk_size,
                       threads=per[i], visible_gpu=physical_gpu(d) if d.startswith("cuda") else None,
                       cache_clear_interval=cache_clear_interval, log_level=log_level,
                       precision=precision)
            for i, d in enumerate(devices)]
        self.workers: list[Worker] = []
        self.model_loads = 0  # ready reports received: how many times models were loaded
        self._ctx = mp.get_context("spawn")
        self.closed = False

    # -- life cycle ------------------------------------------------------------------------

    def _spawn(self, spec: WorkerSpec) -> Worker:
        task_recv, task_send = self._ctx.Pipe(duplex=False)
        out_recv, out_send = self._ctx.Pipe(duplex=False)
        # Our pid goes with it: the worker watches this process from its first line on.
        proc = self._ctx.Process(target=worker_main,
                                 args=(spec, task_recv, out_send, os.getpid()),
                                 name=f"virnucpro-worker-{spec.worker_id}", daemon=True)
        proc.start()
        # The child holds its own ends; closing ours lets EOF reach the other side.
        task_recv.close()
        out_send.close()
        return Worker(spec=spec, process=proc, tasks=task_send, out=out_recv)

    def start(self) -> None:
        """Spawn every worker and wait until all report ready (their models load in parallel)."""
        self.workers = [self._spawn(spec) for spec in self.specs]
        try:
            while any(w.state == STARTING for w in self.workers):
                for event in self.poll(timeout=1.0):
                    if event.kind == "died":
                        raise WorkerStartError(f"exited while loading models ({event.payload})",
                                               worker=event.worker.id, device=event.worker.spec.device)
        except BaseException:
            self.close()
            raise
        for w in self.workers:
            log.info("worker %d ready on %s: models loaded in %.1f s, %.2f GB", w.id,
                     w.spec.device, w.ready_info.get("load_seconds", 0),
                     w.ready_info.get("memory_bytes", 0) / 1e9)

    def restart(self, worker: Worker) -> Worker:
        """Replace a dead worker; the new one reports ready through `poll`."""
        self._reap(worker)
        fresh = self._spawn(worker.spec)
        fresh.restarts = worker.restarts + 1
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker: ask, wait, then terminate and kill what is left. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for w in self.workers:
            with contextlib.suppress(OSError, ValueError):
                w.tasks.send(("stop", None))
        deadline = time.monotonic() + timeout
        for w in self.workers:
            if w.state == STARTING:
                # Still loading: it reads no message until ready, so asking would only wait.
                w.process.terminate()
            w.process.join(max(0.0, deadline - time.monotonic()))
        for w in self.workers:
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(2)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(2)
            self._reap(w)

    def _reap(self, worker: Worker) -> None:
        worker.state = DEAD
        for conn in (worker.tasks, worker.out):
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> PersistentWorkerPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- work ------------------------------------------------------------------------------

    def ready_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.state == READY]

    def send(self, worker: Worker, task: ShardTask) -> None:
        worker.in_flight[task.key] = task
        # A dying worker's pipe may be broken: its sentinel reports the death, then the task
        # is retried elsewhere.
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            worker.tasks.send(("task", task))

    def cancel(self, keys: list[tuple]) -> None:
        """Tell every live worker to drop these shards: the one it is scoring stops before its
        next model batch, queued ones are skipped; each answers `cancelled`. Thread-safe."""
        if not keys:
            return
        for w in list(self.workers):
            if w.state != DEAD:
                with self._send_lock, contextlib.suppress(OSError, ValueError):
                    w.tasks.send(("cancel", list(keys)))

    def poll(self, timeout: float) -> list[Event]:
        """Wait up to `timeout` s for messages or deaths; return them as events."""
        live = [w for w in self.workers if w.state != DEAD]
        waitables: dict[Any, Worker] = {}
        for w in live:
            waitables[w.out] = w
            waitables[w.process.sentinel] = w
        events: list[Event] = []
        now = time.monotonic()
        for w in live:
            if w.state == STARTING and now - w.started_at > self.ready_timeout:
                raise WorkerStartError(
                    f"not ready after {self.ready_timeout:.0f} s (raise --worker-timeout if "
                    "loading the models is just slow)", worker=w.id, device=w.spec.device)
        for obj in wait(list(waitables), timeout=timeout):
            w = waitables[obj]
            if w.state == DEAD:
                continue
            if obj is w.out:
                events.extend(self._drain(w))
            if w.state != DEAD and not w.process.is_alive():
                events.extend(self._drain(w))  # results sent just before dying still count
                self._reap(w)
                events.append(Event("died", w, payload=f"exit code {w.process.exitcode}"))
        return events

    def _drain(self, w: Worker) -> list[Event]:
        events = []
        try:
            while w.out.poll():
                events.append(self._message(w, w.out.recv()))
        except (EOFError, OSError):
            pass
        return [e for e in events if e is not None]

    def _message(self, w: Worker, msg: tuple) -> Event | None:
        kind = msg[0]
        if kind == "ready":
            w.state, w.ready_info = READY, msg[1]
            self.model_loads += 1
            return Event("ready", w, payload=msg[1])
        if kind == "fatal":
            raise WorkerStartError(msg[1], worker=w.id, device=w.spec.device)
        if kind == "start":
            w.running = msg[1]
            return None
        key = msg[1]
        w.in_flight.pop(key, None)
        w.running = None
        return Event(kind, w, key=key, payload=msg[2])
