"""A stream of jobs through one engine, so that no device idles between jobs.

`JobStream` is the task iterator given to `engine.map`: it yields the shards of the first job,
and, in persistent mode, goes on with the next queued job of the same model set as soon as the
previous job's shards are all handed out, while its last shards are still being scored. Each
result is written to its own job's shard store; a job is finished (tables, run.json, report,
`completed`) when its last shard is in. Cancel and stop are checked before each shard is
handed out; shards already in flight finish and are kept (stop) or dropped (cancel).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro.daemon.jobs import JobRecord
from virnucpro.daemon.protocol import JobState
from virnucpro.errors import VirNucProError

if TYPE_CHECKING:
    from virnucpro.daemon.runner import Scheduler

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """A job being scored: its inputs (each with its shard feed) and what is finished."""

    record: JobRecord
    config: object  # pipeline.PredictConfig
    items: list  # pipeline.InputJob
    modes: list[str]
    models_key: dict
    feeds: list = field(default_factory=list)  # pipeline.ShardFeed, one per input
    results: list[dict] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)  # indices of finished inputs
    all_fed: bool = False
    ended: bool = False
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    spool: tempfile.TemporaryDirectory | None = None


class JobStream:
    def __init__(self, scheduler: Scheduler, engine, first: JobRecord) -> None:
        self.s = scheduler
        self.engine = engine
        self.first = first
        self.jobs: list[_Job] = []
        self.by_run: dict[str, tuple[_Job, int, object]] = {}  # run -> (job, input, feed)
        self.last: JobRecord = first

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
        from virnucpro.pipeline import default_batch_tokens

        budget = ctx.config.batch_tokens or default_batch_tokens(self.engine.devices)
        done_before = 0
        total = sum(i.index.n_records for i in ctx.items)
        for n, (item, mode) in enumerate(zip(ctx.items, ctx.modes, strict=True)):
            if mode == "done":  # finished by an earlier attempt: its run.json has the counts
                from virnucpro.pipeline import _read_json

                self._record(ctx, n, _read_json(item.layout.run_json) or {})
                continue
            progress = _Progress(self.s, ctx.record, done_before, total)
            feed = ShardFeed(item, ctx.config, budget, progress.update)
            ctx.feeds.append(feed)
            self.by_run[feed.run] = (ctx, n, feed)
            self.s._log(ctx.record, f"scoring {item.name} ({item.index.n_records} sequences)")
            for task in feed:
                if self._halted(ctx):
                    return
                yield task
            if feed.complete:  # nothing was left to score (a resumed input)
                self._finish_input(ctx, n, feed)
            done_before += item.index.n_records
        ctx.all_fed = True
        self._maybe_complete(ctx)

    def _halted(self, ctx: _Job) -> bool:
        if ctx.record.id in self.s.cancel_requested and not ctx.ended:
            self._end(ctx, JobState.CANCELLED, "cancelled by request")
        return ctx.ended or self.s.stopping.is_set()

    # -- results ---------------------------------------------------------------------------

    def on_result(self, task, scores) -> None:
        ctx, n, feed = self.by_run[task.key[0]]
        if ctx.ended:
            return  # a cancelled or failed job: its late shards are dropped
        try:
            feed.done(task, scores)
        except Exception as exc:  # noqa: BLE001 - its own job fails (a full disk...), not the stream
            log.exception("job %d: a shard could not be written", ctx.record.id)
            self._end(ctx, JobState.FAILED, f"writing a shard failed: {type(exc).__name__}: {exc}")
            return
        if ctx.record.id in self.s.cancel_requested:
            self._end(ctx, JobState.CANCELLED, "cancelled by request")
        elif feed.complete:
            self._finish_input(ctx, n, feed)
            self._maybe_complete(ctx)

    def _finish_input(self, ctx: _Job, n: int, feed) -> None:
        from virnucpro.pipeline import finish_input

        try:
            info = finish_input(ctx.items[n], ctx.modes[n], ctx.config, self.engine,
                                self.engine.model_set, ctx.models_key, ctx.started, feed)
        except Exception as exc:  # noqa: BLE001 - this job fails; the stream goes on
            log.exception("job %d: writing results failed", ctx.record.id)
            self._end(ctx, JobState.FAILED, f"writing results failed: {type(exc).__name__}: {exc}")
            return
        self._record(ctx, n, info)

    def _record(self, ctx: _Job, n: int, info: dict) -> None:
        report = info.get("outputs", {}).get("report.html")
        ctx.results.append({**info, "report_path": str(ctx.items[n].layout.root / report) if report else ""})
        ctx.finished.add(n)

    def _maybe_complete(self, ctx: _Job) -> None:
        if ctx.ended or not ctx.all_fed or len(ctx.finished) < len(ctx.items):
            return
        counts: dict = {}
        for r in ctx.results:
            for k, v in r.get("counts", {}).items():
                counts[k] = counts.get(k, 0) + v
        total = sum(i.index.n_records for i in ctx.items)
        # Each input's report, so that `show` and the dashboard can point at it.
        reports = [r["report_path"] for r in ctx.results if r.get("report_path")]
        latest = self.s.store.get(ctx.record.id) or ctx.record
        self.s.store.set_progress(ctx.record.id, {**latest.progress, "sequences_done": total,
                                                  "sequences_total": total, "counts": counts,
                                                  "reports": reports})
        self.s._log(ctx.record, f"completed: {counts.get('sequences', 0)} sequences, "
                                f"{counts.get('sequences_virus', 0)} viral")
        self._end(ctx, JobState.COMPLETED, "")

    # -- starting and ending jobs ----------------------------------------------------------

    def _start(self, job: JobRecord) -> _Job | None:
        """Validate a claimed job's inputs and claim its folders; None if it failed."""
        from virnucpro import pipeline

        self.last = job
        s = self.s
        s._log(job, f"attempt {job.attempts}: model set {job.options['models']!r}")
        ctx = _Job(record=job, config=None, items=[], modes=[], models_key={})
        self.jobs.append(ctx)
        try:
            from virnucpro.daemon.runner import changed_content, changed_inputs

            if changed := changed_inputs(job):
                self._end(ctx, JobState.FAILED, f"input changed since submission: {changed}")
                return None
            ctx.config = s.predict_config(job)
            ctx.spool = tempfile.TemporaryDirectory(prefix="virnucpro-job-")
            ctx.items = pipeline.validate_inputs(ctx.config, Path(ctx.spool.name))
            changed, inputs = changed_content(job, [i.index.sha256 for i in ctx.items])
            if changed:
                self._end(ctx, JobState.FAILED, f"input changed since its first attempt: {changed}")
                return None
            ctx.models_key = pipeline.model_fingerprint(self.engine.model_set, ctx.config.chunk_size,
                                                        s.config.effective_precision)
            ctx.modes = [pipeline.prepare_folder(i, ctx.config, ctx.models_key) for i in ctx.items]
        except VirNucProError as exc:
            self._end(ctx, JobState.FAILED, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - a job's bug must never take the daemon down
            log.exception("job %d failed to start", job.id)
            self._end(ctx, JobState.FAILED, f"internal error: {type(exc).__name__}: {exc}")
            return None
        with s.lock:
            if job.id in s.cancel_requested:  # cancelled while loading
                cancelled = True
            else:
                cancelled = False
                ctx.record = s._transition(job, JobState.RUNNING, inputs=inputs)
        if cancelled:
            self._end(ctx, JobState.CANCELLED, "cancelled by request")
            return None
        total = sum(i.index.n_records for i in ctx.items)
        start = {"sequences_done": 0, "sequences_total": total, "chunks_done": 0}
        s.store.set_progress(job.id, start)  # a total to show before the first shard is in
        s.emit("progress", {"job_id": job.id, **start})
        return ctx

    def _end(self, ctx: _Job, state: JobState, reason: str) -> None:
        if ctx.ended:
            return
        ctx.ended = True
        for feed in ctx.feeds:
            if not feed.complete:
                feed.abandon()  # its staged tables stay for the next attempt
        if ctx.spool is not None:
            ctx.spool.cleanup()
        # Under the claim lock: a cancel served at this moment then reads the final state
        # instead of writing "cancelling" over it.
        with self.s.lock:
            if state == JobState.QUEUED and ctx.record.id in self.s.cancel_requested:
                state, reason = JobState.CANCELLED, "cancelled by request"
            self.s.cancel_requested.discard(ctx.record.id)
            if reason:
                self.s._log(ctx.record, f"{state.value}: {reason}")
            self.last = self.s._transition(ctx.record, state, reason)

    def fail_all(self, reason: str) -> None:
        for ctx in self.jobs:
            self._end(ctx, JobState.FAILED, reason)

    def close(self) -> None:
        """Jobs left unfinished (the daemon is stopping) go back to the queue: their finished
        shards are on disk and the next start resumes them."""
        for ctx in self.jobs:
            if not ctx.ended:
                self._end(ctx, JobState.QUEUED, "daemon stopped; will resume")


class _Progress:
    """Records a job's progress (throttled) and publishes it as an event."""

    def __init__(self, scheduler: Scheduler, job: JobRecord, done_before: int, total: int) -> None:
        self.s = scheduler
        self.job = job
        self.done_before = done_before
        self.total = total
        self.last = 0.0

    def update(self, sequences: int, chunks: int) -> None:
        now = self.s.clock()
        if now - self.last < 0.5:
            return
        self.last = now
        progress = {"sequences_done": self.done_before + sequences, "sequences_total": self.total,
                    "chunks_done": chunks}
        self.s.store.set_progress(self.job.id, progress)
        self.s.emit("progress", {"job_id": self.job.id, **progress})
