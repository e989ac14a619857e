"""The job runner: a thread that takes queued jobs from the store and runs them on the pool.

`Scheduler.step(now)` is one iteration (pick the next job, run it to an end state); the
runner thread calls it in a loop. A job runs through the same pipeline functions as
`virnucpro predict` (validation, shards on disk, resume, the tables), with the pool engine
or (`--engine ray`) Ray actors, so this process never imports torch. Pools are kept per model set: in persistent mode
they outlive jobs (least recently used evicted beyond `max_loaded_sets`); otherwise one is
started for a job and stopped after it, freeing the device memory.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from virnucpro.daemon.jobs import JobRecord
from virnucpro.daemon.protocol import JobState
from virnucpro.errors import VirNucProError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class Cancelled(Exception):
    """Raised from the progress callback when the job was asked to stop."""


class Interrupted(Exception):
    """Raised from the progress callback when the daemon is stopping: the job goes back to
    the queue with its finished shards kept."""


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

    def step(self, now: float | None = None) -> JobRecord | None:
        """Run the next queued job to an end state (or back to the queue when stopping)."""
        if self.stopping.is_set() or not self.accepting.is_set():
            return None
        with self.lock:
            job = self.store.next_queued()
            if job is None:
                return None
            self.current = job.id
            job = self._transition(job, JobState.LOADING, attempts=job.attempts + 1)
        try:
            return self._run(job)
        finally:
            self.current = None
            self.cancel_requested.discard(job.id)

    def _run(self, job: JobRecord) -> JobRecord:
        from virnucpro.models.sets import resolve_model_set

        self._log(job, f"attempt {job.attempts}: loading model set {job.options['models']!r}")
        try:
            changed = _changed_inputs(job)
            if changed:
                return self._transition(job, JobState.FAILED, f"input changed since submission: {changed}")
            model_set = resolve_model_set(job.options["models"], fetch_missing=False, progress=False)
            engine = self.engines.get(str(model_set.root))
            job = self._execute(job, engine)
            return job
        except Cancelled:
            self._log(job, "cancelled")
            return self._transition(job, JobState.CANCELLED, "cancelled by request")
        except Interrupted:
            self._log(job, "daemon stopping: finished shards kept, back in the queue")
            return self._transition(job, JobState.QUEUED, "daemon stopped; will resume")
        except VirNucProError as exc:
            self._log(job, f"failed: {exc}")
            return self._transition(job, JobState.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - a job's bug must never take the daemon down
            log.exception("job %d failed", job.id)
            self._log(job, f"failed: {type(exc).__name__}: {exc}")
            return self._transition(job, JobState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.engines.after_job()

    def _execute(self, job: JobRecord, engine) -> JobRecord:
        from virnucpro import pipeline

        config = pipeline.PredictConfig(
            inputs=tuple(i.path for i in job.inputs), outdir=Path(job.outdir),
            chunk_size=job.options["chunk_size"], models=job.options["models"],
            threshold=float(job.options["threshold"]), min_length=job.options["min_length"],
            save_embeddings=job.options["save_embeddings"],
            rename_duplicates=job.options["rename_duplicates"],
            # A job owns its folder: it resumes its own shards; --force is taken at submit.
            force=job.options["force"] and job.attempts == 1, resume=job.attempts > 1,
            progress=False, engine=self.config.engine, report=job.options.get("report", True),
            **({"shard_frames": self.config.shard_frames} if self.config.shard_frames else {}))
        with tempfile.TemporaryDirectory(prefix="virnucpro-job-") as spool:
            inputs = pipeline.validate_inputs(config, Path(spool))
            model_set = engine.model_set
            models_key = pipeline.model_fingerprint(model_set, config.chunk_size,
                                                    self.config.effective_precision)
            modes = [pipeline.prepare_folder(i, config, models_key) for i in inputs]
            total = sum(i.index.n_records for i in inputs)
            job = self._transition(job, JobState.RUNNING)
            done_before = 0
            results = []
            for item, mode in zip(inputs, modes, strict=True):
                reporter = _Progress(self, job, done_before, total)
                results.append(pipeline.run_input(item, mode, config, engine, model_set, models_key,
                                                 reporter.started, reporter))
                done_before += item.index.n_records
        counts = _sum_counts(results)
        self._log(job, f"completed: {counts.get('sequences', 0)} sequences, "
                       f"{counts.get('sequences_virus', 0)} viral")
        latest = self.store.get(job.id) or job  # progress ticks were written behind `job`
        self.store.set_progress(job.id, {**latest.progress, "sequences_done": total,
                                         "sequences_total": total, "counts": counts})
        return self._transition(job, JobState.COMPLETED, "")


class _Progress:
    """The pipeline's reporter: records progress and turns cancel/stop requests into
    exceptions between shards (a shard in flight finishes and is kept)."""

    def __init__(self, scheduler: Scheduler, job: JobRecord, done_before: int, total: int) -> None:
        from datetime import datetime, timezone

        self.scheduler = scheduler
        self.job = job
        self.done_before = done_before
        self.total = total
        self.started = datetime.now(timezone.utc)
        self.last = 0.0

    def start(self, name: str, n: int) -> None:
        self.scheduler._log(self.job, f"scoring {name} ({n} sequences)")

    def update(self, sequences: int, chunks: int) -> None:
        s = self.scheduler
        if self.job.id in s.cancel_requested:
            raise Cancelled
        if s.stopping.is_set():
            raise Interrupted
        now = s.clock()
        if now - self.last < 0.5:
            return
        self.last = now
        progress = {"sequences_done": self.done_before + sequences, "sequences_total": self.total,
                    "chunks_done": chunks}
        s.store.set_progress(self.job.id, progress)
        s.emit("progress", {"job_id": self.job.id, **progress})

    def finish(self) -> None:
        pass


def _sum_counts(results: list[dict]) -> dict:
    total: dict = {}
    for r in results:
        for k, v in r.get("counts", {}).items():
            total[k] = total.get(k, 0) + v
    return total


def _changed_inputs(job: JobRecord) -> str:
    """Name an input that is not what was submitted (gone, other size, mtime or content)."""
    from virnucpro.fasta import file_sha256

    for item in job.inputs:
        path = Path(item.path)
        if not path.exists():
            return f"{item.path} no longer exists"
        st = path.stat()
        if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
            return f"{item.path} (size or modification time differ)"
        if job.attempts > 1 and file_sha256(path) != item.sha256:
            return f"{item.path} (content differs)"
    return ""


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
