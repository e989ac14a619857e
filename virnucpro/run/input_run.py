"""`InputRun`: one input's run, from its folder claim to the last table and its manifest.

`claim_runs` claims every input's folder (`RunMode`: fresh, resume or done) before any is
scored. A run to score hands out its shard tasks (`tasks(engine)`: a `ShardFeed`), takes
their results in any order (`done`), and once `complete` publishes its tables, run.json and
report (`finish`); a finished run is taken up instead (`take_up`). What happens is told to
its `RunListener`; a failure abandons the run (staged tables and shards kept for a resume)
and is raised unless the listener takes it. `predict` drives runs one after another; the
daemon drives the runs of its jobs over one engine's task stream.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from virnucpro.config import PredictConfig
from virnucpro.errors import OutputError, VirNucProError
from virnucpro.logs import NOTE
from virnucpro.run.events import RunListener
from virnucpro.run.feed import ShardFeed, default_batch_tokens
from virnucpro.run.finished import add_report, run_info, take_up_finished
from virnucpro.run.folder import RESUME_WAY_ON, RunMode, model_fingerprint, no_space, prepare_folder
from virnucpro.run.inputs import ValidatedInput
from virnucpro.seqfile import SHORT_SEQUENCE_BP

if TYPE_CHECKING:
    from pathlib import Path

    from virnucpro.engine import Engine
    from virnucpro.models.sets import ModelSet
    from virnucpro.pool.worker import ShardTask
    from virnucpro.scoring import ShardScores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunModels:
    """The model set a run scores with, and its fingerprint (the resume key's `models`)."""

    model_set: ModelSet
    key: dict

    @classmethod
    def of(cls, model_set: ModelSet, chunk_size: int, precision: str) -> RunModels:
        return cls(model_set, model_fingerprint(model_set, chunk_size, precision))


class InputRun:
    """One input's run; see the module doc. `started`: when the command (or the job) began,
    for run.json; `way_on`: what a full disk's message says to do after freeing space."""

    def __init__(self, item: ValidatedInput, config: PredictConfig, models: RunModels, *,
                 listener: RunListener | None = None, started: datetime | None = None,
                 way_on: str = RESUME_WAY_ON) -> None:
        self.item = item
        self.config = config
        self.models = models
        self.listener = listener or RunListener()
        self.started = started or datetime.now(timezone.utc)
        self.way_on = way_on
        # The first part of its tasks' keys: a pool kept across inputs or jobs may still
        # deliver a late result of an abandoned run, never to be taken for one of these.
        self.key = f"{item.name}@{uuid.uuid4().hex[:8]}"
        self.mode: RunMode | None = None
        self.timings: dict = {"validate_s": item.validate_s}
        self.info: dict | None = None  # run.json's content, once finished
        self.failure: str | None = None  # why it stopped, once failed
        self._feed: ShardFeed | None = None
        self._engine: Engine | None = None
        self.workers: dict[tuple, dict] = {}  # (worker, device) -> its report (ShardScores.worker)
        self._t0 = 0.0

    @property
    def root(self) -> Path:
        return self.item.layout.root

    @property
    def complete(self) -> bool:
        """Every shard is in the staged tables: `finish` publishes them."""
        return self._feed is not None and self._feed.complete and self.failure is None

    def claim(self) -> RunMode:
        """Decide what the run does in its folder, and claim it (folder.prepare_folder)."""
        self.mode = prepare_folder(self.item, self.config, self.models.key, then=self.way_on)
        return self.mode

    # -- scoring ---------------------------------------------------------------------------

    def tasks(self, engine: Engine) -> Iterator[ShardTask]:
        """The shard tasks not on disk yet, for `engine` (its devices set the default batch
        budget; its facts go into run.json). Their results go to `done`; a failed run hands
        out no more. The run starts here, before the engine pulls a task (a pool loads its
        workers' models first): its clock, its `started` event, its feed."""
        assert self.mode in (RunMode.FRESH, RunMode.RESUME), self.mode
        self._engine = engine
        self._t0 = time.perf_counter()
        self.listener.started(self)
        budget = self.config.batch_tokens or default_batch_tokens(engine.devices)
        with self._failing("internal error"):
            self._feed = ShardFeed(self.item, self.config, budget, self._progress, self.key)
            if self._feed.resume_note:
                self.listener.note(self, self._feed.resume_note)
        return iter(()) if self.failure is not None else self._hand_out()

    def _hand_out(self) -> Iterator[ShardTask]:
        with self._failing("internal error"):
            for task in self._feed:
                if self.failure is not None:
                    return
                yield task
            self._scored()  # complete here when every shard was on disk (a resumed run)

    def done(self, task: ShardTask, scores: ShardScores) -> None:
        """One scored shard: on disk, then merged into the staged tables as far as it can
        be. A change of the input seen meanwhile fails the run (it hands out no more shards;
        those already with the engine are dropped as they come back)."""
        if self.failure is not None or self._feed is None:
            return
        if scores.worker is not None:
            self._worker_report(scores.worker)
        with self._failing("writing a shard failed"):
            self._feed.done(task, scores)
            if self._feed.input_change is not None:
                raise self._feed.input_change
            self._scored()

    def _worker_report(self, report: dict) -> None:
        """The latest word of each worker that scored this run's shards, for run.json; its
        automatic batch budget said once in the run's log."""
        key = (report.get("worker"), report.get("device"))
        if key not in self.workers and report.get("batch_tokens_auto"):
            self.listener.note(self, f"worker {key[0]} on {key[1]}: batch budget "
                               f"{report['batch_tokens_auto']}")
        self.workers[key] = report

    def _progress(self, sequences: int, chunks: int, scored: int) -> None:
        self.listener.progress(self, sequences, chunks, scored)

    def _scored(self) -> None:
        """Once every shard is in: how long scoring took, and the models' load (before the
        engine's `end_input`, which may unload them)."""
        if not self._feed.complete or "score_s" in self.timings:
            return
        self.timings["score_s"] = round(time.perf_counter() - self._t0, 3)
        if self._engine.load_seconds is not None:
            self.timings["load_models_s"] = round(self._engine.load_seconds, 3)

    # -- the end ---------------------------------------------------------------------------

    def finish(self) -> dict | None:
        """Close the staged tables, move them into place, write run.json and the report;
        run.json's content (None if the run failed and its listener took the failure)."""
        if self.info is not None or self.failure is not None:
            return self.info
        with self._failing("writing results failed"):
            if not self.complete:
                raise OutputError("the engine stopped before every shard was scored",
                                  path=self.root)
            self.info = self._publish()
        if self.info is not None:
            self.listener.finished(self, self.info)
        return self.info

    def _publish(self) -> dict:
        item, feed, engine, timings = self.item, self._feed, self._engine, self.timings
        if engine.load_seconds is not None:
            timings["load_models_s"] = round(engine.load_seconds, 3)
        if (change := feed.check_input()) is not None:
            # Nothing may claim to be complete: the staged tables stay, unpublished, and a
            # --resume finds a different input and says so.
            raise change
        t1 = time.perf_counter()
        writer = feed.writer
        writer.close()
        record = run_info(item, self.config, self.models.model_set, self.models.key, engine,
                        started=self.started, resumed=self.mode is RunMode.RESUME,
                        shards_scored_now=feed.scored, counts=writer.counts, timings=timings,
                        published=writer.published,
                        workers=[self.workers[k] for k in sorted(self.workers, key=_by_worker)])
        writer.publish()
        now = time.perf_counter()
        timings["write_s"] = round(now - t1, 3)  # what is left of the tables after scoring
        if feed.last_result_at is not None:  # how long the tables took once the devices were done
            timings["tables_after_last_shard_s"] = round(now - feed.last_result_at, 4)
        record.write(item.layout.run_json)  # last: a run.json means a finished run
        shutil.rmtree(item.layout.work, ignore_errors=True)
        if self.config.report:
            add_report(item, record)
        counts = writer.counts
        if counts["short_sequences"]:
            log.warning("%s: %d sequence(s) shorter than %d bp, flagged 'short': the model was "
                        "trained on %d bp chunks", item.source, counts["short_sequences"],
                        SHORT_SEQUENCE_BP, self.config.chunk_size)
        if counts["frames_failed"]:
            log.warning("%s: %d frame(s) could not be scored (see the status column of frames.tsv)",
                        item.source, counts["frames_failed"])
        return record.to_json()

    def take_up(self) -> dict | None:
        """A finished run (mode DONE): taken up as `--resume` does (finished.take_up_finished);
        its run.json's content (None if that failed and the listener took the failure)."""
        assert self.mode is RunMode.DONE, self.mode
        with self._failing("taking up the finished run failed"):
            self.info = take_up_finished(self.item, self.config, self._note)
        if self.info is not None:
            self.listener.finished(self, self.info)
        return self.info

    def _note(self, message: str) -> None:
        log.log(NOTE, "%s: %s", self.item.source, message)
        self.listener.note(self, f"{self.item.name}: {message}")

    def abandon(self) -> None:
        """Stop here: the staged tables stay, cut back to their last checkpoint on resume."""
        if self._feed is not None and self.info is None:
            self._feed.abandon()

    @contextmanager
    def _failing(self, doing: str) -> Iterator[None]:
        """A failure inside: the run abandoned, a full disk said as one line (NoSpaceError),
        the listener told in predict's words (`doing` prefixes an unexpected error), and
        the error raised unless the listener takes it."""
        try:
            yield
        except Exception as exc:
            self.abandon()
            error = no_space(exc, self.root, self.item.index.total_bp, then=self.way_on) or exc
            message = (str(error) if isinstance(error, VirNucProError)
                       else f"{doing}: {type(exc).__name__}: {exc}")
            self.failure = message
            if not self.listener.failed(self, message, error):
                if error is exc:
                    raise
                raise error from exc
        except GeneratorExit:  # the driver stopped pulling tasks (a daemon stopping): results
            raise              # in flight still come to `done`; the driver abandons the run
        except BaseException:  # an interrupt
            self.abandon()
            raise


def claim_runs(items: Sequence[ValidatedInput], config: PredictConfig, models: RunModels, *,
               listener: RunListener | None = None, started: datetime | None = None,
               way_on: str = RESUME_WAY_ON) -> list[InputRun]:
    """One run per validated input, every folder claimed before any is scored: a refusal
    for the last input must not come after hours spent on the first."""
    runs = [InputRun(item, config, models, listener=listener, started=started, way_on=way_on)
            for item in items]
    for run in runs:
        run.claim()
    return runs


def _by_worker(key: tuple) -> tuple:
    """(worker id, device) in numeric order of the ids, whatever their types."""
    worker, device = key
    return (isinstance(worker, int), worker if isinstance(worker, int) else str(worker), str(device))
