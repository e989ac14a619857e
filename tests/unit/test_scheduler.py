"""The scheduler and its job stream in memory: the memory store, a fake engine that keeps two
shards in flight and yields scripted results, real temp folders and the real pipeline pieces
(validation, shards, tables), reports off, and a list that collects the events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DATA
from virnucpro.daemon.engines import RunnerConfig
from virnucpro.daemon.jobs import InputFile, JobRecord, JobState
from virnucpro.daemon.messages import JobProgress
from virnucpro.daemon.scheduler import Scheduler, resolve_offline
from virnucpro.daemon.service import JobService
from virnucpro.daemon.store import MemoryJobStore
from virnucpro.engine_config import EngineConfig
from virnucpro.scoring import ShardScores

VIRAL = DATA / "viral_reference.fasta"
SHARD_FRAMES = 4  # the viral reference makes several shards


class FakeEngine:
    """Scores a shard from its frame ids (a stable hash), keeping `ahead` shards in flight:
    the next shard is taken from the stream before the oldest result is given back. `before`
    runs just before each result is yielded (the scripted moment of a test)."""

    name = "fake"
    load_seconds = None
    persistent = True

    def __init__(self, model_set, ahead: int = 2) -> None:
        self.model_set = model_set
        self.devices = ["cpu"]
        self.ahead = ahead
        self.model_loads = 0
        self.worker_deaths = 0
        self.trace: list[tuple[str, int, int]] = []  # ("task" | "result", job, shard)
        self.before: Callable[[object], None] = lambda task: None
        self.scored = 0
        self.dropped: set[tuple] = set()  # keys a cancel told it to drop

    def map(self, tasks: Iterable):
        pending = []
        for task in tasks:  # the JobStream: it knows each shard's job
            job_id = tasks.by_run[task.key[0]][0].id
            self.trace.append(("task", job_id, task.key[1]))
            pending.append((job_id, task))
            while len(pending) >= self.ahead:
                yield self._result(*pending.pop(0))
        while pending:
            yield self._result(*pending.pop(0))

    def cancel(self, keys: list[tuple]) -> None:
        self.dropped.update(keys)

    def _result(self, job_id: int, task):
        self.before(task)
        self.trace.append(("result", job_id, task.key[1]))
        if task.key in self.dropped:
            return task, ShardScores.abandoned(task.n_frames)
        self.scored += 1
        p = np.array([(hash(f) % 1000) / 1000 for f in task.frame_ids], dtype=np.float32)
        return task, ShardScores(np.stack([1 - p, p], axis=1))

    def end_input(self) -> None: ...
    def close(self) -> None: ...


class FakeEngines:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def get(self, models_root: str) -> FakeEngine:
        return self.engine

    def after_job(self) -> None: ...
    def close(self) -> None: ...


class Harness:
    def __init__(self, tmp: Path, persistent: bool) -> None:
        self.tmp = tmp
        self.events: list[tuple[str, object]] = []
        self.clock = [1000.0]
        self.service = JobService(MemoryJobStore(), lambda t, b: self.events.append((t, b)),
                                  clock=self._tick)
        model_set = resolve_offline("tiny")
        self.engine = FakeEngine(model_set)
        config = RunnerConfig(devices=["cpu"], persistent=persistent,
                              engine=EngineConfig(engine="pool"), shard_frames=SHARD_FRAMES)
        self.resolve = resolve_offline
        self.scheduler = Scheduler(self.service, config, FakeEngines(self.engine),
                                   resolve=lambda models: self.resolve(models))

    def _tick(self) -> float:
        self.clock[0] += 1.0
        return self.clock[0]

    def submit(self, name: str, priority: int = 0, fasta: Path = VIRAL) -> JobRecord:
        st = fasta.stat()
        options = {"chunk_size": 500, "models": "tiny", "threshold": 0.5, "min_length": 1,
                   "save_embeddings": False, "rename_duplicates": False, "force": False,
                   "report": False}
        job, _ = self.service.submit(JobRecord(
            id=0, name=name, state=JobState.QUEUED, outdir=str(self.tmp / name), options=options,
            inputs=(InputFile(str(fasta), st.st_size, st.st_mtime_ns, ""),), priority=priority))
        return job

    def states(self, job_id: int) -> list[JobState]:
        return [h.state for h in self.service.get(job_id).history]

    def shard_files(self, job: JobRecord) -> int:
        return len(list((Path(job.outdir) / ".virnucpro").rglob("shard-*")))


@pytest.fixture
def harness(tmp_path: Path, tiny_set_dir: Path) -> Callable[..., Harness]:
    return lambda persistent=False: Harness(tmp_path, persistent)


def test_jobs_run_by_priority_then_submission_order(harness) -> None:
    h = harness()
    low, high, low2 = h.submit("low"), h.submit("high", priority=5), h.submit("low2")
    ran = [h.scheduler.step().id for _ in range(3)]
    assert ran == [high.id, low.id, low2.id] and h.scheduler.step() is None
    for job in (low, high, low2):
        done = h.service.get(job.id)
        assert h.states(job.id) == [JobState.QUEUED, JobState.LOADING, JobState.RUNNING,
                                    JobState.COMPLETED]
        assert done.progress.chunks_done == done.progress.chunks_total > 0
        assert done.progress.counts["sequences"] == done.progress.sequences_total
    claimed = [b.id for t, b in h.events if t == "job" and b.state is JobState.LOADING]
    assert claimed == ran


def test_a_cancel_between_claim_and_running_ends_cancelled(harness) -> None:
    h = harness()
    job = h.submit("a")

    def cancel_then_resolve(models: str):
        h.service.cancel(job.id)  # the claim is done; the job is not running yet
        return resolve_offline(models)

    h.resolve = cancel_then_resolve
    assert h.scheduler.step().state is JobState.CANCELLED
    assert h.states(job.id) == [JobState.QUEUED, JobState.LOADING, JobState.CANCELLING,
                                JobState.CANCELLED]
    assert h.engine.trace == []


def test_a_late_shard_of_a_cancelled_job_is_dropped(harness) -> None:
    h = harness()
    job = h.submit("a")
    h.engine.cancel = lambda keys: None  # an engine that cannot drop work in flight (Ray)
    h.engine.before = lambda task: task.key[1] == 0 and h.service.cancel(job.id)
    assert h.scheduler.step().state is JobState.CANCELLED
    # Shard 0 was written when the cancel came; shard 1 was in flight and is dropped.
    assert [e for e in h.engine.trace if e[0] == "result"] == [("result", job.id, 0),
                                                               ("result", job.id, 1)]
    assert h.shard_files(job) == 1
    assert h.states(job.id)[-2:] == [JobState.CANCELLING, JobState.CANCELLED]


def test_a_cancel_drops_the_shards_in_flight_at_once(harness) -> None:
    h = harness()
    job = h.submit("a")
    h.engine.before = lambda task: task.key[1] == 0 and h.service.cancel(job.id)
    assert h.scheduler.step().state is JobState.CANCELLED
    # The cancel reached the engine while shards 0 and 1 were in flight: neither is written.
    assert len(h.engine.dropped) == 2 and h.engine.scored == 0 and h.shard_files(job) == 0
    assert h.scheduler.stream is None  # and a cancel after the stream ended reaches nobody
    h.engine.before = lambda task: None
    h.service.retry(job.id)
    assert h.scheduler.step().state is JobState.COMPLETED


def test_a_resumed_job_never_shows_less_than_before_and_says_it_resumed(harness) -> None:
    h = harness()
    job = h.submit("a")
    h.engine.before = lambda task: task.key[1] == 2 and h.scheduler.stopping.set()
    stopped = h.scheduler.step()
    assert stopped.state is JobState.QUEUED and stopped.progress.chunks_done > 0
    h.scheduler.stopping.clear()
    h.engine.before = lambda task: None
    h.events.clear()
    h.scheduler.step()
    shown = [b.progress.chunks_done for t, b in h.events if t == "progress"]
    assert shown[0] == stopped.progress.chunks_done and shown == sorted(shown)
    assert any(line.startswith("resuming viral_reference from shard")
               for _n, _t, line in h.service.store.logs(job.id))


def test_stop_puts_an_unfinished_job_back_in_the_queue_and_a_retry_resumes_its_folder(
        harness) -> None:
    h = harness()
    job = h.submit("a")
    h.engine.before = lambda task: task.key[1] == 1 and h.scheduler.stopping.set()
    back = h.scheduler.step()
    assert (back.state, back.reason) == (JobState.QUEUED, "daemon stopped; will resume")
    kept = h.shard_files(job)
    handed_out = [e for e in h.engine.trace if e[0] == "task"]
    assert kept == len(handed_out) == 3  # no shard after the stop; those in flight are kept
    h.scheduler.stopping.clear()
    h.engine.before = lambda task: None
    h.engine.scored = 0
    h.service.cancel(job.id)  # queued: cancelled at once; a retry queues it again
    h.service.retry(job.id)
    assert h.scheduler.step().state is JobState.COMPLETED
    rescored, h.engine.scored = h.engine.scored, 0
    fresh = h.submit("fresh")
    h.scheduler.step()
    assert rescored == h.engine.scored - kept > 0  # only the shards that were not on disk
    for table in ("sequences.tsv", "chunks.tsv", "frames.tsv"):
        resumed = (Path(job.outdir) / table).read_bytes()
        assert resumed == (Path(fresh.outdir) / table).read_bytes(), table


def test_the_next_job_is_handed_out_before_the_last_result_of_the_one_before(harness) -> None:
    h = harness(persistent=True)
    a, b = h.submit("a"), h.submit("b")
    last = h.scheduler.step()
    assert last.id == b.id and h.service.get(a.id).state is JobState.COMPLETED
    trace = h.engine.trace
    first_b_task = trace.index(("task", b.id, 0))
    last_a_result = max(i for i, e in enumerate(trace) if e[0] == "result" and e[1] == a.id)
    assert first_b_task < last_a_result
    assert last.state is JobState.COMPLETED


def test_progress_events_count_chunks_of_a_total_known_at_start(harness) -> None:
    h = harness()
    job = h.submit("a")
    h.scheduler.step()
    updates = [b.progress for t, b in h.events if t == "progress" and b.job_id == job.id]
    assert isinstance(h.events[-1][1], JobRecord)
    assert updates[0].chunks_done == 0 and updates[0].chunks_total > 0
    assert len({u.chunks_total for u in updates}) == 1
    done = [u.chunks_done for u in updates]
    assert done == sorted(done) and all(isinstance(b, (JobRecord, JobProgress))
                                        for _t, b in h.events)
