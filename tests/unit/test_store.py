"""The job store: one suite run against both versions, then what only SQLite promises
(reopening, surviving SIGKILL, refusing a corrupt file)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from virnucpro.daemon.jobs import MOVES, HistoryEntry, IllegalMove, InputFile, JobRecord, Progress
from virnucpro.daemon.protocol import JobState
from virnucpro.daemon.store import JobStore, MemoryJobStore, StoreError
from virnucpro.daemon.store_sqlite import SqliteJobStore

DATA = Path(__file__).resolve().parents[1] / "data" / "daemon"

MakeStore = Callable[..., JobStore]


def job(name: str = "job", priority: int = 0, request: str | None = None) -> JobRecord:
    return JobRecord(id=0, name=name, state=JobState.QUEUED, outdir=f"/out/{name}",
                     inputs=(InputFile(f"/in/{name}.fa", 10, 123, "ab" * 32),),
                     options={"chunk_size": 500, "threshold": 0.5}, priority=priority,
                     client_request_id=request)


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    opened: list[JobStore] = []

    def make(**kwargs) -> JobStore:
        store = (MemoryJobStore(**kwargs) if request.param == "memory"
                 else SqliteJobStore(tmp_path / "state" / "jobs.sqlite3", **kwargs))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> JobStore:
    return make_store()


def H(time: float, state: str, reason: str = "") -> HistoryEntry:  # noqa: N802 - reads as a row
    return HistoryEntry(time, JobState(state), reason)


# A legal way from queued to each state (jobs.MOVES).
PATHS = {JobState.QUEUED: (), JobState.LOADING: (JobState.LOADING,),
         JobState.RUNNING: (JobState.LOADING, JobState.RUNNING),
         JobState.COMPLETED: (JobState.LOADING, JobState.RUNNING, JobState.COMPLETED),
         JobState.FAILED: (JobState.LOADING, JobState.FAILED),
         JobState.CANCELLING: (JobState.LOADING, JobState.CANCELLING),
         JobState.CANCELLED: (JobState.CANCELLED,)}


def reach(store: JobStore, job_id: int, state: JobState, now: float) -> None:
    for step in PATHS[state]:
        store.transition(job_id, step, now)


def finish(store: JobStore, job_id: int, now: float, state: JobState = JobState.COMPLETED) -> None:
    if state is JobState.CANCELLED:
        reach(store, job_id, JobState.CANCELLING, now - 1)
    else:
        reach(store, job_id, JobState.RUNNING, now - 1)
    store.transition(job_id, state, now)


def test_ids_increase_from_one_and_are_never_reused(store: JobStore) -> None:
    first, second = store.add(job("a"), 1.0), store.add(job("b"), 2.0)
    assert (first.id, second.id) == (1, 2)
    assert (second.created, second.state, second.history) == (2.0, JobState.QUEUED,
                                                              (H(2.0, "queued"),))
    finish(store, 2, 5.0)
    assert store.remove(2)
    assert store.add(job("c"), 6.0).id == 3


def test_a_stored_job_reads_back_as_it_was_added(store: JobStore) -> None:
    added = store.add(job("a", priority=3, request="r1"), 1.0)
    assert store.get(added.id) == added == job("a", 3, "r1").with_(
        id=1, created=1.0, history=(H(1.0, "queued"),))
    assert store.get(99) is None


def test_a_job_that_is_not_queued_is_refused(store: JobStore) -> None:
    with pytest.raises(ValueError, match="queued"):
        store.add(job().with_(state=JobState.RUNNING), 1.0)


def test_duplicate_client_request_id_returns_the_first_job(store: JobStore) -> None:
    first = store.add(job("a", request="req-1"), 1.0)
    again = store.add(job("b", request="req-1"), 2.0)
    assert again == first
    assert store.find_by_request("req-1") == first
    assert store.find_by_request("other") is None
    assert store.add(job("c"), 3.0).id == 2 and store.add(job("d"), 4.0).id == 3  # None never clashes
    assert len(store.list()) == 3


def test_next_queued_honours_priority_then_submission_order(store: JobStore) -> None:
    assert store.next_queued() is None
    for name, priority in [("low", 0), ("high", 5), ("high2", 5), ("mid", 1)]:
        store.add(job(name, priority), 1.0)
    assert store.next_queued().name == "high"
    store.transition(2, JobState.LOADING, 2.0)
    assert store.next_queued().name == "high2"
    store.transition(3, JobState.CANCELLED, 3.0)
    assert store.next_queued().name == "mid"


def test_list_puts_jobs_on_the_devices_first_then_the_queue_in_run_order_then_finished_newest_first(
        store: JobStore) -> None:
    for name, priority in [("a", 0), ("b", 0), ("c", 2), ("d", 1), ("e", 0), ("f", 0), ("g", 0),
                           ("h", 5)]:
        store.add(job(name, priority), 1.0)
    finish(store, 1, 10.0)
    finish(store, 4, 30.0, JobState.FAILED)
    finish(store, 5, 20.0, JobState.CANCELLED)
    reach(store, 6, JobState.CANCELLING, 2.0)
    reach(store, 7, JobState.RUNNING, 2.0)
    # A queued job of priority 5 comes after the running one of priority 0 (issue 15).
    assert [j.name for j in store.list()] == ["f", "g", "h", "c", "b", "d", "e", "a"]
    assert [j.name for j in store.list(include_finished=False)] == ["f", "g", "h", "c", "b"]
    assert store.list()[3].history == (H(1.0, "queued"),)


def test_transitions_set_started_finished_fields_and_history(store: JobStore) -> None:
    store.add(job(), 1.0)
    loading = store.transition(1, JobState.LOADING, 2.0, "worker 0", attempts=1)
    assert (loading.state, loading.started, loading.finished, loading.attempts) == (
        JobState.LOADING, 2.0, None, 1)
    running = store.transition(1, JobState.RUNNING, 3.0, outdir="/elsewhere")
    assert (running.started, running.outdir, running.reason) == (2.0, "/elsewhere", "")
    failed = store.transition(1, JobState.FAILED, 4.0, "worker died")
    assert (failed.finished, failed.reason) == (4.0, "worker died")
    retried = store.transition(1, JobState.QUEUED, 5.0, "retry", started=None)
    assert (retried.started, retried.finished, retried.attempts) == (None, None, 1)
    assert store.get(1) == retried
    assert retried.history == (H(1.0, "queued"), H(2.0, "loading", "worker 0"),
                               H(3.0, "running"), H(4.0, "failed", "worker died"),
                               H(5.0, "queued", "retry"))
    with pytest.raises(TypeError, match="created"):
        store.transition(1, JobState.RUNNING, 6.0, created=0.0)


def test_unknown_job_raises_key_error(store: JobStore) -> None:
    for call in (lambda: store.transition(7, JobState.RUNNING, 1.0),
                 lambda: store.set_progress(7, Progress()), lambda: store.append_log(7, 1.0, "x"),
                 lambda: store.logs(7)):
        with pytest.raises(KeyError):
            call()
    assert store.remove(7) is False


def test_progress_is_replaced(store: JobStore) -> None:
    store.add(job(), 1.0)
    store.set_progress(1, Progress(chunks_done=3, chunks_total=10, sequences_total=2))
    assert store.get(1).progress == Progress(chunks_done=3, chunks_total=10, sequences_total=2)
    assert store.get(1).progress.fraction == 0.3
    done = Progress(chunks_done=10, chunks_total=10, counts={"sequences": 2}, reports=("/r.html",))
    store.set_progress(1, done)
    assert store.get(1).progress == done and store.get(1).progress.fraction == 1.0
    with pytest.raises(TypeError, match="Progress"):
        store.transition(1, JobState.LOADING, 2.0, progress={"chunks_done": 1})


def test_count_counts_jobs_in_the_given_states(store: JobStore) -> None:
    for _ in range(3):
        store.add(job(), 1.0)
    store.transition(2, JobState.LOADING, 2.0)
    assert store.count([JobState.QUEUED]) == 2
    assert store.count([JobState.QUEUED, JobState.LOADING]) == 3
    assert store.count([]) == 0


def test_logs_since_returns_later_lines_and_the_cap_drops_the_oldest(make_store) -> None:
    store = make_store(log_cap=3)
    store.add(job("a"), 1.0)
    store.add(job("b"), 1.0)
    assert [store.append_log(1, 10.0 + i, f"line {i}") for i in range(1, 6)] == [1, 2, 3, 4, 5]
    assert store.append_log(2, 1.0, "other job") == 1
    assert store.logs(1) == [(3, 13.0, "line 3"), (4, 14.0, "line 4"), (5, 15.0, "line 5")]
    assert store.logs(1, since=4) == [(5, 15.0, "line 5")]
    assert store.logs(1, since=5) == []
    assert store.logs(2) == [(1, 1.0, "other job")]


def test_remove_refuses_live_jobs_and_takes_logs_with_finished_ones(store: JobStore) -> None:
    store.add(job(), 1.0)
    store.append_log(1, 1.0, "hello")
    for state in (JobState.LOADING, JobState.CANCELLING):
        with pytest.raises(ValueError, match="finished"):
            store.remove(1)
        store.transition(1, state, 2.0)
    with pytest.raises(ValueError, match="finished"):
        store.remove(1)
    store.transition(1, JobState.CANCELLED, 3.0)
    assert store.remove(1) is True
    assert store.get(1) is None and store.list() == []
    with pytest.raises(KeyError):
        store.logs(1)


def test_remove_finished_removes_only_finished_jobs_older_than_the_age(store: JobStore) -> None:
    for _ in range(4):
        store.add(job(), 1.0)
    finish(store, 1, 100.0)
    finish(store, 2, 500.0, JobState.FAILED)
    reach(store, 3, JobState.RUNNING, 50.0)
    assert store.remove_finished(older_than=600.0, now=1000.0) == 1
    assert [j.id for j in store.list()] == [3, 4, 2]
    assert store.remove_finished(older_than=0.0, now=1000.0) == 1
    assert store.remove_finished(older_than=0.0, now=1000.0) == 0


def test_two_threads_using_one_store_lose_nothing(store: JobStore) -> None:
    store.add(job("a"), 1.0)
    store.add(job("b"), 1.0)

    def work(job_id: int) -> None:
        for i in range(200):  # claimed, put back, claimed... (loading <-> queued)
            state = JobState.LOADING if i % 2 == 0 else JobState.QUEUED
            store.transition(job_id, state, float(i), f"tick {i}", attempts=i)
            store.append_log(1, float(i), f"{job_id}:{i}")  # both threads write job 1's log
            store.set_progress(job_id, Progress(chunks_done=i))

    threads = [threading.Thread(target=work, args=(job_id,)) for job_id in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job_id in (1, 2):
        rec = store.get(job_id)
        assert len(rec.history) == 201 and rec.attempts == 199
        assert rec.progress == Progress(chunks_done=199)
    lines = store.logs(1)
    assert [n for n, _t, _l in lines] == list(range(1, 401))
    assert sorted(line for _n, _t, line in lines) == sorted(
        f"{j}:{i}" for j in (1, 2) for i in range(200))


@pytest.mark.parametrize("current", list(JobState))
def test_exactly_the_moves_of_the_lifecycle_are_accepted(store: JobStore, current: JobState) -> None:
    for n, wanted in enumerate(JobState, start=1):
        store.add(job(f"{current.value}-{n}"), 1.0)
        reach(store, n, current, 2.0)
        before = store.get(n)
        if (current, wanted) in MOVES:
            moved = store.transition(n, wanted, 3.0, "ok")
            assert (moved.state, moved.history[-1]) == (wanted, H(3.0, wanted.value, "ok"))
            assert store.get(n) == moved
        else:
            with pytest.raises(IllegalMove, match=f"is {current.value}; it cannot become "
                                                  f"{wanted.value}") as info:
                store.transition(n, wanted, 3.0, "refused")
            assert (info.value.job_id, info.value.current, info.value.wanted) == (n, current, wanted)
            assert store.get(n) == before  # nothing written, not even the history


# -- SQLite only ------------------------------------------------------------------------------


def test_sqlite_store_reopened_sees_jobs_history_and_logs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with SqliteJobStore(path) as store:
        store.add(job("a", request="r"), 1.0)
        store.add(job("b"), 1.0)
        store.transition(1, JobState.LOADING, 2.0, "go", attempts=1)
        store.set_progress(1, Progress(chunks_done=4))
        store.append_log(1, 2.5, "started")
        before = store.list()
        finish(store, 2, 3.0)
        store.remove(2)
    with SqliteJobStore(path) as store:
        assert store.list() == before[:1]
        assert store.logs(1) == [(1, 2.5, "started")]
        assert store.add(job("c"), 4.0).id == 3
        assert store.add(job("d", request="r"), 5.0).id == 1


def test_sqlite_state_change_survives_sigkill_right_after_transition(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    with SqliteJobStore(path) as store:
        store.add(job(), 1.0)
    script = f"""
import os, signal
from pathlib import Path
from virnucpro.daemon.protocol import JobState
from virnucpro.daemon.store_sqlite import SqliteJobStore
store = SqliteJobStore(Path({str(path)!r}))
store.transition(1, JobState.LOADING, 2.0, "killed next", attempts=1)
print("done", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert proc.stdout.strip() == "done" and proc.returncode == -9, proc.stderr
    with SqliteJobStore(path) as store:
        rec = store.get(1)
        assert (rec.state, rec.reason, rec.attempts, rec.started) == (
            JobState.LOADING, "killed next", 1, 2.0)
        assert rec.history[-1] == H(2.0, "loading", "killed next")


def test_a_corrupt_database_file_raises_store_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    with pytest.raises(StoreError, match="jobs.sqlite3") as info:
        SqliteJobStore(path)
    assert info.value.path == path
    damaged = tmp_path / "damaged.sqlite3"
    with SqliteJobStore(damaged) as store:
        for _ in range(20):
            store.add(job("x" * 500), 1.0)
    data = damaged.read_bytes()
    damaged.write_bytes(data[:4096] + b"\xab" * (len(data) - 4096))  # keep page 1, the header
    with pytest.raises(StoreError, match="damaged.sqlite3"):
        SqliteJobStore(damaged)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(StoreError, match="a-folder"):
        SqliteJobStore(folder)


def test_sqlite_commits_state_changes_with_full_sync_and_progress_with_normal(
        tmp_path: Path) -> None:
    with SqliteJobStore(tmp_path / "jobs.sqlite3") as store:
        store.add(job(), 1.0)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        store.set_progress(1, Progress(chunks_done=1))
        store.transition(1, JobState.LOADING, 2.0)
        store.append_log(1, 2.0, "x")
    assert [s for s in statements if s.startswith(("PRAGMA", "BEGIN", "COMMIT"))] == [
        "PRAGMA synchronous=NORMAL", "BEGIN IMMEDIATE", "COMMIT",
        "PRAGMA synchronous=FULL", "BEGIN IMMEDIATE", "COMMIT",
        "PRAGMA synchronous=NORMAL", "BEGIN IMMEDIATE", "COMMIT"]


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "jobs.sqlite3"
    SqliteJobStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=2")
    with pytest.raises(StoreError, match="newer"):
        SqliteJobStore(path)


def test_the_sqlite_file_uses_wal_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "jobs.sqlite3"
    with SqliteJobStore(path) as store:
        store.add(job(), 1.0)
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_store_written_by_version_0_1_0_opens_and_serves_its_history(tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "jobs.sqlite3"
    shutil.copy(DATA / "jobs-v0.1.0.sqlite", path)  # made by the 0.1.0 daemon's store
    with SqliteJobStore(path) as store:
        jobs = {j.name: j for j in store.list()}
        assert [j.id for j in store.list()] == [3, 4, 6, 5, 2, 1]  # loading, running... then queued
        done = jobs["done"]
        assert done.state is JobState.COMPLETED and done.client_request_id == "req-done"
        assert [h.state for h in done.history] == [JobState.QUEUED, JobState.LOADING,
                                                   JobState.RUNNING, JobState.COMPLETED]
        # 0.1.0 kept a free dict; what fits the typed record is read.
        assert done.progress == Progress(chunks_done=40, sequences_done=12, sequences_total=12,
                                         counts={"sequences": 12, "sequences_virus": 5,
                                                 "chunks": 40},
                                         reports=("/data/out/done/report.html",))
        assert done.inputs[0].sha256 == "ab" * 32
        assert store.logs(done.id)[-1][2] == "completed: 12 sequences, 5 viral"
        assert jobs["bad"].reason.startswith("/data/viral.fasta: record 3")
        assert [h.reason for h in jobs["stopped"].history][1:3] == ["cancelled by request",
                                                                    "retry requested"]
        # The upgraded store goes on: its jobs move by the lifecycle, new ones get new ids.
        assert store.transition(jobs["cancelling"].id, JobState.CANCELLED, 10.0).finished == 10.0
        with pytest.raises(IllegalMove):
            store.transition(done.id, JobState.RUNNING, 11.0)
        assert store.add(job("new"), 12.0).id == 7


def test_the_design_documents_every_move_of_the_lifecycle_and_no_other() -> None:
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    section = text[text.index("### One job lifecycle"):text.index("### Typed messages")]
    documented = set()
    for row in re.findall(r"^\| ([a-z, ]+) \| ([a-z]+) \| `(\w+)` \|", section, flags=re.M):
        for current in row[0].split(", "):
            documented.add((JobState(current), JobState(row[1]), row[2]))
    assert documented == {(a, b, verb) for (a, b), verb in MOVES.items()}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_only_attempts_in_a_row_that_wrote_no_shard_count_against_the_crash_cap(tmp_path, kind):
    from virnucpro.daemon.service import JobService

    store = MemoryJobStore() if kind == "memory" else SqliteJobStore(tmp_path / "jobs.sqlite3")
    service = JobService(store, emit=lambda topic, body: None)
    for name in ("advancing", "stuck"):
        service.submit(JobRecord(id=0, name=name, state=JobState.QUEUED, inputs=(),
                                 outdir=f"/o/{name}", options={}))
    for _crash in range(4):
        for job_id in (1, 2):
            if store.get(job_id).state is JobState.QUEUED:
                service.claim(lambda job, job_id=job_id: job.id == job_id)
        service.advanced(1)  # job 1 writes a shard in every attempt; job 2 never does
        service.reconcile()
    advancing, stuck = store.get(1), store.get(2)
    assert (advancing.state, advancing.attempts, advancing.stalls) == (JobState.QUEUED, 4, 0)
    assert stuck.state is JobState.FAILED and stuck.attempts == 3
    assert stuck.reason == "interrupted 3 times in a row without writing a new shard; giving up"
    store.close()
