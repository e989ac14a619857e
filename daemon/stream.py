"""A stream of jobs through one engine, so that no device idles between jobs.

`JobStream` is the task iterator given to `engine.map`: it yields the shard tasks of the first
job's input runs (`virnucpro.run.input_run.InputRun`, the run `predict` drives too), and, in
persistent mode, goes on with the next queued job of the same model set as soon as the
previous job's shards are all handed out, while its last shards are still being scored. Each
result goes to its own run; what a run reports (`RunListener`) becomes the job service's
verbs: its log lines, its progress, its failure, and, once every run of the job has finished,
`completed`. Cancel and stop are checked before each shard is handed out; shards already in
flight finish and are kept (stop) or dropped (cancel).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro.daemon.jobs import JobRecord, Progress
from virnucpro.daemon.throttle import Throttle
from virnucpro.errors import VirNucProError
from virnucpro.layout import OutputLayout
from virnucpro.run.events import RunListener

if TYPE_CHECKING:
    from virnucpro.daemon.scheduler import Scheduler
    from virnucpro.engine import Engine
    from virnucpro.run.input_run import InputRun

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # at most this often a job's progress is stored and published (throttle.py)
RETRY_WAY_ON = "then retry the job (the finished shards are kept)"  # after a full disk


@dataclass
class _Job:
    """A job being scored: its input runs, the work of the inputs before each, and what is
    finished."""

    record: JobRecord
    runs: list[InputRun] = field(default_factory=list)
    before: dict[InputRun, Progress] = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)
    all_fed: bool = False
    ended: bool = False
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    spool: tempfile.TemporaryDirectory | None = None
    progress: Progress = field(default_factory=Progress)
    publisher: Throttle[Progress] | None = None  # stores and publishes `progress`, throttled
    advanced: bool = False  # this attempt wrote a shard

    @property
    def id(self) -> int:
        return self.record.id


class _JobEvents(RunListener):
    """The events of one job's runs, as the job service's verbs."""

    def __init__(self, stream: JobStream, ctx: _Job) -> None:
        self.stream, self.ctx = stream, ctx
        self.service = stream.service

    def started(self, run: InputRun) -> None:
        self.service.log(self.ctx.id, f"scoring {run.item.name} "
                                      f"({run.item.index.n_records} sequences)")

    def note(self, run: InputRun, line: str) -> None:
        self.service.log(self.ctx.id, line)

    def progress(self, run: InputRun, sequences: int, chunks: int, scored: int) -> None:
        """The job's progress, stored and published through its throttle when it changed (a
        run also reports while handing out shards, with nothing new)."""
        ctx, before = self.ctx, self.ctx.before[run]
        p = ctx.progress
        ctx.progress = p.with_(
            chunks_done=max(p.chunks_done, before.chunks_done + chunks),
            sequences_done=max(p.sequences_done, before.sequences_done + sequences))
        if ctx.progress != p and ctx.publisher is not None and not ctx.ended:
            ctx.publisher.push(ctx.progress)

    def finished(self, run: InputRun, info: dict) -> None:
        report = info.get("outputs", {}).get(OutputLayout.REPORT)
        self.ctx.results.append({**info, "report_path": str(run.root / report) if report else ""})
        self.stream._maybe_complete(self.ctx)

    def failed(self, run: InputRun, message: str, error: BaseException) -> bool:
        if not isinstance(error, VirNucProError):  # a bug, or the system: its traceback
            log.error("job %d: %s", self.ctx.id, message, exc_info=error)
        self.stream._fail(self.ctx, message)
        return True  # this job fails; the stream goes on


class JobStream:
    def __init__(self, scheduler: Scheduler, engine: Engine, first: JobRecord) -> None:
        self.s = scheduler
        self.service = scheduler.service
        self.engine = engine
        self.first = first
        self.jobs: list[_Job] = []
        self.by_run: dict[str, tuple[_Job, InputRun]] = {}  # a run's task key -> (job, run)
        self.last: JobRecord = first
        # Shards handed out and not yet back, by job: what a cancel tells the engine to drop.
        # Read from the request loop's thread (`cancel_in_flight`), hence the lock.
        self._in_flight: dict[int, set[tuple]] = {}
        self._lock = threading.Lock()
        engine.notify = self._worker_note  # a worker's death goes into its jobs' logs

    # -- handing out shards ----------------------------------------------------------------

    def __iter__(self):
        job: JobRecord | None = self.first
        while job is not None:
            ctx = self._start(job)
            if ctx is not None:
                yield from self._tasks(ctx)
            if self.s.stopping.is_set() or not self.s.config.persistent:
                return  # per-job models: the engine is freed after each job
            job = self.s.claim_next(same_models=str(self.engine.model_set.root))

    def _tasks(self, ctx: _Job):
        from virnucpro.run.folder import RunMode

        for run in ctx.runs:
            if run.mode is RunMode.DONE:  # finished (by an earlier attempt, or a run taken up
                run.take_up()             # with resume): as predict --resume does
            else:
                for task in run.tasks(self.engine):
                    if self._halted(ctx):
                        return
                    with self._lock:
                        self._in_flight.setdefault(ctx.id, set()).add(task.key)
                    yield task
                if run.complete:  # nothing was left to score (a resumed input)
                    run.finish()
            if ctx.ended:  # a run failed (and said why)
                return
        ctx.all_fed = True
        self._maybe_complete(ctx)

    def _halted(self, ctx: _Job) -> bool:
        if not ctx.ended and self.service.cancel_requested(ctx.id):
            self._end(ctx, self.service.halt)
        return ctx.ended or self.s.stopping.is_set()

    # -- results ---------------------------------------------------------------------------

    def cancel_in_flight(self, job_id: int) -> None:
        """A cancel came (from the request loop): the engine drops this job's shards in
        flight, the one being scored stopping between two model batches (engine.cancel)."""
        with self._lock:
            keys = sorted(self._in_flight.get(job_id, ()))
        self.engine.cancel(keys)

    def _worker_note(self, message: str, keys: list[tuple]) -> None:
        """The engine lost a worker holding these shards: say so in their jobs' logs."""
        for job_id in sorted({self.by_run[k[0]][0].id for k in keys if k[0] in self.by_run}):
            self.service.log(job_id, message)

    def on_result(self, task, scores) -> None:
        ctx, run = self.by_run[task.key[0]]
        with self._lock:
            self._in_flight.get(ctx.id, set()).discard(task.key)
        if scores.cancelled and not ctx.ended:  # dropped by the engine: never written
            self._end(ctx, self.service.halt)
        if ctx.ended:
            return  # a cancelled or failed job: its late shards are dropped
        run.done(task, scores)
        if ctx.ended:
            return  # the shard could not be written: the run failed the job
        if not ctx.advanced:  # this attempt wrote a shard: it is not a stalled one
            ctx.advanced = True
            self.service.advanced(ctx.id)
        if self.service.cancel_requested(ctx.id):
            self._end(ctx, self.service.halt)
        elif run.complete:
            run.finish()  # then, the job's last run finished, `completed`

    def _maybe_complete(self, ctx: _Job) -> None:
        if ctx.ended or not ctx.all_fed or len(ctx.results) < len(ctx.runs):
            return
        counts: dict[str, int] = {}
        for r in ctx.results:
            for k, v in r.get("counts", {}).items():
                counts[k] = counts.get(k, 0) + v
        # Each input's report, so that `show` and the dashboard can point at it.
        reports = tuple(r["report_path"] for r in ctx.results if r.get("report_path"))
        done = ctx.progress.with_(chunks_done=ctx.progress.chunks_total or 0,
                                  sequences_done=ctx.progress.sequences_total or 0,
                                  counts=counts, reports=reports)
        self.service.log(ctx.id, f"completed: {counts.get('sequences', 0)} sequences, "
                                 f"{counts.get('sequences_virus', 0)} viral")
        self._end(ctx, lambda job_id: self.service.finish(job_id, done))

    # -- starting and ending jobs ----------------------------------------------------------

    def _start(self, job: JobRecord) -> _Job | None:
        """A claimed job's runs: its inputs validated (and still those submitted), their
        folders claimed; None if it failed."""
        from virnucpro.daemon.engines import changed_content, changed_inputs
        from virnucpro.run.folder import RunMode
        from virnucpro.run.input_run import RunModels, claim_runs
        from virnucpro.run.inputs import validate_inputs

        self.last = job
        # Attempts count again from 1 after a retry (the crash cap is per run): the log says
        # which run, so that "attempt 1" after "attempt 2" reads as what it is.
        retries = sum(h.reason == "retry requested" for h in job.history)
        run = f"retry {retries}, " if retries else ""
        self.service.log(job.id, f"{run}attempt {job.attempts}: model set "
                                 f"{job.options['models']!r}")
        ctx = _Job(record=job)
        self.jobs.append(ctx)
        try:
            if changed := changed_inputs(job):
                self._fail(ctx, f"input changed since submission: {changed}")
                return None
            config = self.s.predict_config(job)
            ctx.spool = tempfile.TemporaryDirectory(prefix="virnucpro-job-")
            items = validate_inputs(config, Path(ctx.spool.name))
            changed, inputs = changed_content(job, [i.index.sha256 for i in items])
            if changed:
                self._fail(ctx, f"input changed since its first attempt: {changed}")
                return None
            models = RunModels.of(self.engine.model_set, config.chunk_size,
                                  self.s.config.effective_precision)
            ctx.runs = claim_runs(items, config, models, listener=_JobEvents(self, ctx),
                                  started=ctx.started, way_on=RETRY_WAY_ON)
            modes = [r.mode for r in ctx.runs]
            if set(modes) - {RunMode.FRESH}:  # say what of an earlier run is reused
                self.service.log(job.id, f"reusing {job.outdir}: {modes.count(RunMode.DONE)} of {len(modes)} input(s) already complete, {modes.count(RunMode.RESUME)} resumed from their shards")
        except VirNucProError as exc:
            self._fail(ctx, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - a job's bug must never take the daemon down
            log.exception("job %d failed to start", job.id)
            self._fail(ctx, f"internal error: {type(exc).__name__}: {exc}")
            return None
        # The total is known before any scoring: the first pass counted every chunk. A job
        # that ran before starts from what it had shown (its staged tables may restart from a
        # slightly earlier checkpoint: progress never goes back).
        before = Progress()  # the work of the inputs before each
        for r in ctx.runs:
            ctx.before[r] = before
            self.by_run[r.key] = (ctx, r)
            before = before.with_(chunks_done=before.chunks_done + (r.item.index.n_chunks or 0),
                                  sequences_done=before.sequences_done + r.item.index.n_records)
        ctx.progress = Progress(chunks_total=before.chunks_done,
                                sequences_total=before.sequences_done)
        earlier = job.progress
        if (earlier.chunks_total, earlier.sequences_total) == (ctx.progress.chunks_total,
                                                               ctx.progress.sequences_total):
            ctx.progress = ctx.progress.with_(chunks_done=earlier.chunks_done,
                                              sequences_done=earlier.sequences_done)
        started = self.service.start(job.id, inputs, ctx.progress)
        if started is None:  # cancelled while loading: the service ended it
            self._end(ctx, None)
            return None
        ctx.record = self.last = started
        ctx.publisher = Throttle(lambda p, job_id=job.id: self.service.progress(job_id, p),
                                 PROGRESS_EVERY_S)
        return ctx

    def _fail(self, ctx: _Job, reason: str) -> None:
        self._end(ctx, lambda job_id: self.service.fail(job_id, reason))

    def _end(self, ctx: _Job, verb: Callable[[int], JobRecord] | None) -> None:
        """Leave the job to `verb` (a service verb that ends it), once."""
        if ctx.ended:
            return
        ctx.ended = True
        if ctx.publisher is not None:  # no late progress after the verb's own record
            ctx.publisher.close()
        for run in ctx.runs:
            run.abandon()  # an unfinished one's staged tables stay for the next attempt
        if ctx.spool is not None:
            ctx.spool.cleanup()
        self.last = verb(ctx.id) if verb is not None else self.service.get(ctx.id)

    def fail_all(self, reason: str) -> None:
        for ctx in self.jobs:
            self._fail(ctx, reason)

    def close(self) -> None:
        """Jobs left unfinished (the daemon is stopping) go back to the queue: their finished
        shards are on disk and the next start resumes them."""
        for ctx in self.jobs:
            self._end(ctx, lambda job_id: self.service.requeue(job_id,
                                                               "daemon stopped; will resume"))
