"""The job runner: a thread that takes queued jobs from the store and runs them on the pool.

`Scheduler.step(now)` is one iteration: claim the next job and stream it (and, with persistent
models, the jobs queued behind it: stream.py) through an engine to an end state; the runner
thread calls it in a loop. Jobs run through the same pipeline pieces as `virnucpro predict`
(validation, shards on disk, resume, the tables), on the pool engine or (`--engine ray`) Ray
actors, so this process never imports torch. Engines are kept per model set: in persistent
mode they outlive jobs (least recently used evicted beyond `max_loaded_sets`); otherwise one is
started for a job and stopped after it, freeing the device memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from virnucpro.daemon.jobs import InputFile, JobRecord
from virnucpro.daemon.protocol import JobState
from virnucpro.errors import VirNucProError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


@dataclass
class RunnerConfig:
    devices: list[str]
    persistent: bool
    engine: str = "pool"
    threads: int | None = None
    max_loaded_sets: int = 1
    worker_timeout: float = 600.0
    scorer: str | None = None  # tests only: a stand-in scorer class for the workers
    shard_frames: int | None = None
    precision: str = "auto"
    ray_address: str | None = None  # engine ray only
    workers: int | None = None
    gpus_per_worker: float | None = None

    @property
    def effective_precision(self) -> str:
        from virnucpro.devices import effective_precision

        return effective_precision(self.precision, self.devices)


class EngineCache:
    """Engines (worker pools) by model set folder, least recently used first."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.engines: OrderedDict[str, object] = OrderedDict()
        self.lock = threading.Lock()
        self._loads_of_closed = 0  # model loads of engines already closed

    def get(self, models_root: str):
        from virnucpro.engine import make_engine

        with self.lock:
            if models_root in self.engines:
                self.engines.move_to_end(models_root)
                return self.engines[models_root]
            while len(self.engines) >= self.config.max_loaded_sets:
                root, old = self.engines.popitem(last=False)
                log.info("evicting the models of %s to load another set", root)
                old.close()
                self._loads_of_closed += old.model_loads
            engine = make_engine(self.config.engine, models_root, self.config.devices, 500,
                                 persistent=True, threads=self.config.threads,
                                 ready_timeout=self.config.worker_timeout,
                                 scorer=self.config.scorer,
                                 precision=self.config.effective_precision,
                                 ray_address=self.config.ray_address, workers=self.config.workers,
                                 gpus_per_worker=self.config.gpus_per_worker)
            self.engines[models_root] = engine
            return engine

    def after_job(self) -> None:
        if not self.config.persistent:
            self.close()

    def close(self) -> None:
        with self.lock:
            while self.engines:
                _, engine = self.engines.popitem()
                engine.close()
                self._loads_of_closed += engine.model_loads

    def describe(self) -> list[dict]:
        """What is loaded where, for `status`."""
        out = []
        with self.lock:
            for root, engine in self.engines.items():
                out.append({"models": root, "workers": engine.describe_workers()})
        return out

    @property
    def model_loads(self) -> int:
        """Times a worker loaded models, over every engine this daemon ran."""
        return self._loads_of_closed + sum(e.model_loads for e in self.engines.values())


class Scheduler:
    """Runs jobs from the store one at a time; `step(now)` is one iteration."""

    def __init__(self, store, config: RunnerConfig, emit: Callable[[str, dict], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.config = config
        self.emit = emit
        self.clock = clock
        self.engines = EngineCache(config)
        self.cancel_requested: set[int] = set()
        self.stopping = threading.Event()
        self.accepting = threading.Event()
        self.accepting.set()
        self.current: int | None = None
        # Held while a job is claimed from the queue or cancelled while queued, so that a
        # cancel cannot slip between "picked" and "loading".
        self.lock = threading.Lock()

    # -- called from the request loop ------------------------------------------------------

    def request_cancel(self, job_id: int) -> None:
        self.cancel_requested.add(job_id)

    # -- state changes ---------------------------------------------------------------------

    def _transition(self, job: JobRecord, state: JobState, reason: str = "", **fields) -> JobRecord:
        job = self.store.transition(job.id, state, self.clock(), reason, **fields)
        self.emit("job", job.to_wire())
        return job

    def _log(self, job: JobRecord, line: str) -> None:
        self.store.append_log(job.id, self.clock(), line)

    # -- one iteration ---------------------------------------------------------------------

    def claim_next(self, same_models: str | None = None) -> JobRecord | None:
        """Take the next queued job (priority, then submission order) and mark it loading.
        With `same_models`, only if that job uses the model set in that folder."""
        from virnucpro.models.sets import resolve_model_set

        with self.lock:
            job = self.store.next_queued()
            if job is None:
                return None
            if same_models is not None:
                try:
                    root = str(resolve_model_set(job.options["models"], fetch_missing=False,
                                                 progress=False).root)
                except VirNucProError:
                    return None  # let a stream of its own report the error
                if root != same_models:
                    return None
            self.current = job.id
            return self._transition(job, JobState.LOADING, attempts=job.attempts + 1)

    def step(self, now: float | None = None) -> JobRecord | None:
        """Run the next queued job (and, with persistent models, those queued behind it that
        use the same models) to an end state, or back to the queue when stopping."""
        from virnucpro.daemon.stream import JobStream
        from virnucpro.models.sets import resolve_model_set

        if self.stopping.is_set() or not self.accepting.is_set():
            return None
        job = self.claim_next()
        if job is None:
            return None
        try:
            model_set = resolve_model_set(job.options["models"], fetch_missing=False, progress=False)
        except VirNucProError as exc:
            self.current = None
            return self._transition(job, JobState.FAILED, str(exc))
        stream = None
        try:
            engine = self.engines.get(str(model_set.root))
            stream = JobStream(self, engine, job)
            for task, scores in engine.map(stream):
                stream.on_result(task, scores)
        except Exception as exc:  # noqa: BLE001 - a failure of the engine fails its jobs, not the daemon
            reason = str(exc) if isinstance(exc, VirNucProError) else f"internal error: {type(exc).__name__}: {exc}"
            if self.stopping.is_set():
                # Workers killed at the shutdown deadline: not the jobs' fault; close() below
                # puts them back in the queue.
                log.warning("scoring stopped by the shutdown: %s", reason)
            elif stream is None:
                log.exception("scoring failed")
                self._transition(job, JobState.FAILED, reason)
            else:
                log.exception("scoring failed")
                stream.fail_all(reason)
        finally:
            if stream is not None:
                stream.close()
            self.current = None
            self.engines.after_job()
        return stream.last if stream is not None else job

    def predict_config(self, job: JobRecord):
        from virnucpro import pipeline

        return pipeline.PredictConfig(
            inputs=tuple(i.path for i in job.inputs), outdir=Path(job.outdir),
            chunk_size=job.options["chunk_size"], models=job.options["models"],
            threshold=float(job.options["threshold"]), min_length=job.options["min_length"],
            save_embeddings=job.options["save_embeddings"],
            rename_duplicates=job.options["rename_duplicates"],
            # A job owns its folder: every run of it resumes its own shards (after a crash, a
            # stop or a retry); --force applies to the first run only.
            force=job.options["force"] and job.attempts == 1,
            resume=not (job.options["force"] and job.attempts == 1),
            progress=False, engine=self.config.engine, report=job.options.get("report", True),
            **({"shard_frames": self.config.shard_frames} if self.config.shard_frames else {}))


def changed_inputs(job: JobRecord) -> str:
    """Name an input that is not what was submitted: gone, or another size or mtime (a stat,
    before any reading; the content is compared after the first pass, `changed_content`)."""
    for item in job.inputs:
        path = Path(item.path)
        if not path.exists():
            return f"{item.path} no longer exists"
        st = path.stat()
        if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
            return f"{item.path} (size or modification time differ)"
    return ""


def changed_content(job: JobRecord, digests: list[str]) -> tuple[str, tuple[InputFile, ...]]:
    """Compare the first pass's sha256 of each input with the one recorded by an earlier
    attempt; return what differs (or "") and the inputs with their hashes filled in."""
    for item, digest in zip(job.inputs, digests, strict=True):
        if item.sha256 and item.sha256 != digest:
            return f"{item.path} (content differs)", job.inputs
    return "", tuple(replace(item, sha256=digest) for item, digest in zip(job.inputs, digests, strict=True))


class RunnerThread(threading.Thread):
    """Calls `scheduler.step` until stopped; sleeps briefly when there is nothing to do."""

    def __init__(self, scheduler: Scheduler, wake: threading.Event) -> None:
        super().__init__(name="virnucpro-runner", daemon=True)
        self.scheduler = scheduler
        self.wake = wake
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.scheduler.stopping.is_set():
                if self.scheduler.step() is None:
                    self.wake.wait(0.5)
                    self.wake.clear()
        finally:
            self.scheduler.engines.close()
            self.done.set()
