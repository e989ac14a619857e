"""A stream of jobs through one engine, so that no device idles between jobs.

`JobStream` is the task iterator given to `engine.map`: it yields the shards of the first job,
and, in persistent mode, goes on with the next queued job of the same model set as soon as the
previous job's shards are all handed out, while its last shards are still being scored. Each
result is written to its own job's shard store; a job is finished (tables, run.json, report,
`completed`) when its last shard is in. Cancel and stop are checked before each shard is
handed out; shards already in flight finish and are kept (stop) or dropped (cancel). Every
state change is a verb of the job service.
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

if TYPE_CHECKING:
    from virnucpro.config import PredictConfig
    from virnucpro.daemon.scheduler import Scheduler
    from virnucpro.engine import Engine
    from virnucpro.feed import ShardFeed
    from virnucpro.pipeline import InputJob

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # at most this often a job's progress is stored and published (throttle.py)


@dataclass
class _Job:
    """A job being scored: its inputs (each with its shard feed) and what is finished."""

    record: JobRecord
    config: PredictConfig | None = None
    items: list[InputJob] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    models_key: dict = field(default_factory=dict)
    feeds: list[ShardFeed] = field(default_factory=list)  # one per input with work
    results: list[dict] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)  # indices of finished inputs
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


class JobStream:
    def __init__(self, scheduler: Scheduler, engine: Engine, first: JobRecord) -> None:
        self.s = scheduler
        self.service = scheduler.service
        self.engine = engine
        self.first = first
        self.jobs: list[_Job] = []
        self.by_run: dict[str, tuple[_Job, int, ShardFeed]] = {}  # run -> (job, input, feed)
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
        from virnucpro.feed import ShardFeed
        from virnucpro.pipeline import default_batch_tokens, reuse_finished

        budget = ctx.config.batch_tokens or default_batch_tokens(self.engine.devices)
        before = Progress()  # the work of the inputs before this one
        for n, (item, mode) in enumerate(zip(ctx.items, ctx.modes, strict=True)):
            if mode == "done":  # finished (by an earlier attempt, or a run taken up with
                # resume): its table-only settings applied, as predict --resume does
                try:
                    info = reuse_finished(item, ctx.config,
                                          say=lambda line: self.service.log(ctx.id, line))
                except Exception as exc:  # noqa: BLE001 - this job fails; the stream goes on
                    log.exception("job %d: taking up the finished run failed", ctx.id)
                    self._fail(ctx, str(exc) if isinstance(exc, VirNucProError) else
                               f"taking up the finished run failed: {type(exc).__name__}: {exc}")
                    return
                self._record(ctx, n, info)
            else:
                feed = ShardFeed(item, ctx.config, budget, self._reporter(ctx, before))
                ctx.feeds.append(feed)
                self.by_run[feed.run] = (ctx, n, feed)
                self.service.log(ctx.id, f"scoring {item.name} ({item.index.n_records} sequences)")
                if feed.resume_note:
                    self.service.log(ctx.id, feed.resume_note)
                for task in feed:
                    if self._halted(ctx):
                        return
                    with self._lock:
                        self._in_flight.setdefault(ctx.id, set()).add(task.key)
                    yield task
                if feed.complete:  # nothing was left to score (a resumed input)
                    self._finish_input(ctx, n, feed)
            before = before.with_(chunks_done=before.chunks_done + (item.index.n_chunks or 0),
                                  sequences_done=before.sequences_done + item.index.n_records)
        ctx.all_fed = True
        self._maybe_complete(ctx)

    def _halted(self, ctx: _Job) -> bool:
        if not ctx.ended and self.service.cancel_requested(ctx.id):
            self._end(ctx, self.service.halt)
        return ctx.ended or self.s.stopping.is_set()

    def _reporter(self, ctx: _Job, before: Progress) -> Callable[..., None]:
        """The feed's progress callback (sequences and chunks written so far in one input):
        the job's progress, stored and published through the job's throttle when it changed
        (the feed also calls it while handing out shards, with nothing new)."""

        def update(sequences: int, chunks: int, *_scored: int) -> None:
            p = ctx.progress
            ctx.progress = p.with_(
                chunks_done=max(p.chunks_done, before.chunks_done + chunks),
                sequences_done=max(p.sequences_done, before.sequences_done + sequences))
            if ctx.progress != p and ctx.publisher is not None and not ctx.ended:
                ctx.publisher.push(ctx.progress)

        return update

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
        ctx, n, feed = self.by_run[task.key[0]]
        with self._lock:
            self._in_flight.get(ctx.id, set()).discard(task.key)
        if scores.cancelled and not ctx.ended:  # dropped by the engine: never written
            self._end(ctx, self.service.halt)
        if ctx.ended:
            return  # a cancelled or failed job: its late shards are dropped
        try:
            feed.done(task, scores)
            if not ctx.advanced:  # this attempt wrote a shard: it is not a stalled one
                ctx.advanced = True
                self.service.advanced(ctx.id)
        except Exception as exc:  # noqa: BLE001 - its own job fails (a full disk...), not the stream
            if (full := self._no_space(exc, ctx, n)) is not None:
                self._fail(ctx, full)
                return
            log.exception("job %d: a shard could not be written", ctx.id)
            self._fail(ctx, f"writing a shard failed: {type(exc).__name__}: {exc}")
            return
        if self.service.cancel_requested(ctx.id):
            self._end(ctx, self.service.halt)
        elif feed.complete:
            self._finish_input(ctx, n, feed)
            self._maybe_complete(ctx)

    def _finish_input(self, ctx: _Job, n: int, feed) -> None:
        from virnucpro.pipeline import finish_input

        try:
            info = finish_input(ctx.items[n], ctx.modes[n], ctx.config, self.engine,
                                self.engine.model_set, ctx.models_key, ctx.started, feed)
        except Exception as exc:  # noqa: BLE001 - this job fails; the stream goes on
            if isinstance(exc, VirNucProError):  # said as predict says it (a changed input...)
                self._fail(ctx, str(exc))
                return
            if (full := self._no_space(exc, ctx, n)) is not None:
                self._fail(ctx, full)
                return
            log.exception("job %d: writing results failed", ctx.id)
            self._fail(ctx, f"writing results failed: {type(exc).__name__}: {exc}")
            return
        self._record(ctx, n, info)

    @staticmethod
    def _no_space(exc: BaseException, ctx: _Job, n: int) -> str | None:
        """predict's one line for a full disk (`pipeline.no_space`), or None for another error;
        a retry resumes from the shards written."""
        from virnucpro.pipeline import no_space

        item = ctx.items[n]
        full = no_space(exc, item.layout.root, item.index.total_bp,
                        then="then retry the job (the finished shards are kept)")
        return None if full is None else str(full)

    def _record(self, ctx: _Job, n: int, info: dict) -> None:
        report = info.get("outputs", {}).get("report.html")
        ctx.results.append({**info, "report_path": str(ctx.items[n].layout.root / report) if report else ""})
        ctx.finished.add(n)

    def _maybe_complete(self, ctx: _Job) -> None:
        if ctx.ended or not ctx.all_fed or len(ctx.finished) < len(ctx.items):
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
        """Validate a claimed job's inputs and claim its folders; None if it failed."""
        from virnucpro import pipeline
        from virnucpro.daemon.engines import changed_content, changed_inputs

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
            ctx.config = self.s.predict_config(job)
            ctx.spool = tempfile.TemporaryDirectory(prefix="virnucpro-job-")
            ctx.items = pipeline.validate_inputs(ctx.config, Path(ctx.spool.name))
            changed, inputs = changed_content(job, [i.index.sha256 for i in ctx.items])
            if changed:
                self._fail(ctx, f"input changed since its first attempt: {changed}")
                return None
            ctx.models_key = pipeline.model_fingerprint(self.engine.model_set,
                                                        ctx.config.chunk_size,
                                                        self.s.config.effective_precision)
            ctx.modes = [pipeline.prepare_folder(i, ctx.config, ctx.models_key) for i in ctx.items]
            if set(ctx.modes) - {"fresh"}:  # say what of an earlier run is reused
                self.service.log(job.id, f"reusing {job.outdir}: {ctx.modes.count('done')} of {len(ctx.modes)} input(s) already complete, {ctx.modes.count('resume')} resumed from their shards")
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
        ctx.progress = Progress(chunks_total=sum(i.index.n_chunks or 0 for i in ctx.items),
                                sequences_total=sum(i.index.n_records for i in ctx.items))
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
        for feed in ctx.feeds:
            if not feed.complete:
                feed.abandon()  # its staged tables stay for the next attempt
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
