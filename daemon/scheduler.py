"""The scheduler: takes queued jobs and streams them through an engine, one tick at a time.

`Scheduler.step()` is one tick: claim the next job and stream it (and, with persistent models,
the jobs queued behind it that use the same model set: stream.py) through an engine to an end
state; the runner thread calls it in a loop. Every state change goes through the job service.
The engines come from an `EngineCache` (engines.py) or, in tests, anything with its four
methods, and model sets from `resolve`: so the whole of it runs in memory with a fake engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from virnucpro.daemon.jobs import JobRecord
from virnucpro.daemon.service import JobService
from virnucpro.errors import ModelError, VirNucProError

if TYPE_CHECKING:
    from virnucpro.config import PredictConfig
    from virnucpro.daemon.engines import RunnerConfig
    from virnucpro.engine import DaemonEngine
    from virnucpro.models.modelset import ModelSet

log = logging.getLogger(__name__)


class Engines(Protocol):
    """Where the scheduler gets an engine for a model set folder (engines.EngineCache)."""

    def get(self, models_root: str) -> DaemonEngine: ...
    def after_job(self) -> None: ...
    def close(self) -> None: ...


def resolve_offline(models: str) -> ModelSet:
    """A job's model set from the cache; a daemon never starts a download for a job."""
    from virnucpro.models.sets import resolve_model_set

    return resolve_model_set(models, fetch_missing=False, progress=False)


def resolve_loadable(models: str) -> ModelSet:
    """`resolve_offline`, then the load check `models verify` makes (in a child process: the
    daemon never imports torch; the verdict is kept while the set's files are unchanged), so
    that no job is queued, and no daemon starts, on a set that cannot load."""
    from virnucpro.models.loadcheck import problems_in_subprocess

    model_set = resolve_offline(models)
    problems = problems_in_subprocess(model_set)
    if problems:
        raise ModelError(f"model set {model_set.name!r} would not load: " + "; ".join(problems)
                         + " (`virnucpro models verify` checks it)", path=model_set.root)
    return model_set


class Scheduler:
    def __init__(self, service: JobService, config: RunnerConfig, engines: Engines, *,
                 resolve: Callable[[str], ModelSet] = resolve_offline) -> None:
        self.service = service
        self.config = config
        self.engines = engines
        self.resolve = resolve
        self.stopping = threading.Event()
        self.current: int | None = None  # the job whose shards are being handed out
        self.stream = None  # the JobStream running now, if any
        service.on_cancel = self.cancel_running

    def claim_next(self, same_models: str | None = None) -> JobRecord | None:
        """The next queued job, marked loading; with `same_models`, only if it uses the model
        set in that folder (a job whose set cannot be resolved waits for a stream of its own,
        which reports the error)."""
        def accept(job: JobRecord) -> bool:
            if same_models is None:
                return True
            try:
                return str(self.resolve(job.options["models"]).root) == same_models
            except VirNucProError:
                return False

        job = self.service.claim(accept)
        if job is not None:
            self.current = job.id
        return job

    def step(self) -> JobRecord | None:
        """One tick: run the next queued job (with persistent models, those queued behind it
        with the same models too) to an end state, or back to the queue when stopping. Returns
        the last job it ran, None when there was nothing to do."""
        from virnucpro.daemon.stream import JobStream

        if self.stopping.is_set():
            return None
        job = self.claim_next()
        if job is None:
            return None
        try:
            model_set = self.resolve(job.options["models"])
        except VirNucProError as exc:
            self.current = None
            return self.service.fail(job.id, str(exc))
        stream = None
        try:
            engine = self.engines.get(str(model_set.root))
            stream = self.stream = JobStream(self, engine, job)
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
                self.service.fail(job.id, reason)
            else:
                log.exception("scoring failed")
                stream.fail_all(reason)
        finally:
            if stream is not None:
                stream.close()
            self.stream = None
            self.current = None
            self.engines.after_job()
        return stream.last if stream is not None else self.service.get(job.id)

    def cancel_running(self, job_id: int) -> None:
        """A job now being cancelled: if it is in the running stream, its shards in flight
        are dropped at once rather than scored to their end (called from the request loop)."""
        stream = self.stream
        if stream is not None:
            stream.cancel_in_flight(job_id)

    def predict_config(self, job: JobRecord) -> PredictConfig:
        from virnucpro.config import PredictConfig
        from virnucpro.options import job_settings

        # Every submit option of the option table; one that a job stored by an earlier version
        # lacks (the region options before protocol 4) takes its default.
        settings = job_settings(job.options)
        # A job owns its folder: every run of it resumes its own shards (after a crash, a stop
        # or a retry); --force applies to the first run only.
        forced = settings["force"] and job.attempts == 1
        return PredictConfig.of(
            [i.path for i in job.inputs], job.outdir, settings, force=forced, resume=not forced,
            progress=False,
            # What the job's run.json says of its engine: the daemon's mode, not a default.
            engine=replace(self.config.engine, persistent=self.config.persistent),
            **({"shard_frames": self.config.shard_frames} if self.config.shard_frames else {}))


class RunnerThread(threading.Thread):
    """Calls `scheduler.step` until stopped; waits for a wake-up when there is nothing to do."""

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
