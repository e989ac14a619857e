"""The daemon's pool workers, in real processes: a cancel stops the shard being scored between
two model batches, workers end with a supervisor killed by SIGKILL, and a worker's death is in
its job's log. Bounds are generous: the mechanism is tested, the figures are measured in
docs/performance.md."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import start_daemon, wait_for
from tests.helpers import DATA, ten_times_viral
from virnucpro.daemon.jobs import JobState

VIRAL = DATA / "viral_reference.fasta"


@pytest.fixture
def many_frames(tmp_path: Path) -> Path:
    """The viral reference ten times over (new ids): one shard of a few hundred frames, dozens
    of model batches at the CPU's token budget."""
    return ten_times_viral(tmp_path)


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_cancel_stops_the_running_shard_between_two_batches(tmp_path, tiny_set_dir,
                                                             many_frames) -> None:
    env = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:BatchSleepScorer", "FAKE_BATCH_DELAY": "0.5"}
    with start_daemon(tmp_path / "d", "--persistent-models", "--models", "tiny",
                      env_extra=env) as daemon, daemon.client() as c:
        job = c.submit([str(many_frames)], outdir=str(tmp_path / "out"),
                       options={"models": "tiny", "report": False})
        wait_for(c, job.id, ("running",), timeout=60)
        time.sleep(1.5)  # a few batches into a shard of dozens (half a second each)
        asked = time.monotonic()
        c.cancel(job.id)
        done = wait_for(c, job.id, timeout=60)
        took = time.monotonic() - asked
        assert done.state is JobState.CANCELLED
        assert took < 5.0, f"the cancel took {took:.1f} s: it waited for the shard"
        shards = list((tmp_path / "out" / ".virnucpro").rglob("shard-*"))
        assert shards == []  # the unfinished shard was discarded, not written


@pytest.mark.slow
def test_workers_end_soon_after_their_supervisor_is_killed(tmp_path, tiny_set_dir,
                                                          many_frames) -> None:
    # A shard of about 25 s: a worker that only noticed at the shard's end would be seen.
    env = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:BatchSleepScorer", "FAKE_BATCH_DELAY": "1.0"}
    daemon = start_daemon(tmp_path / "d", "--devices", "cpu,cpu", "--persistent-models",
                          "--models", "tiny", env_extra=env)
    try:
        with daemon.client() as c:
            job = c.submit([str(many_frames)], outdir=str(tmp_path / "out"),
                           options={"models": "tiny", "report": False})
            wait_for(c, job.id, ("running",), timeout=60)
        time.sleep(1.0)  # a worker is in the middle of a long shard
        workers = children(daemon.proc.pid)
        assert len(workers) >= 2, workers
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in workers):
            time.sleep(0.1)
        left = [p for p in workers if alive(p)]
        assert left == [], f"workers {left} outlived their supervisor"
    finally:
        daemon.kill()


@pytest.mark.slow
def test_a_worker_death_and_a_resume_are_in_the_jobs_log(tmp_path, tiny_set_dir) -> None:
    state = tmp_path / "fake-state"
    state.mkdir()
    env = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:DieOnceScorer", "FAKE_DIE_SHARD": "1",
           "FAKE_STATE_DIR": str(state)}
    with start_daemon(tmp_path / "d", "--persistent-models", "--models", "tiny",
                      "--shard-frames", "4", env_extra=env) as daemon, daemon.client() as c:
        job = c.submit([str(VIRAL)], outdir=str(tmp_path / "out"),
                       options={"models": "tiny", "report": False})
        done = wait_for(c, job.id, timeout=60)
        assert done.state is JobState.COMPLETED
        lines = [entry.line for entry in c.logs(job.id)]
        died = [line for line in lines if "died" in line]
        assert died and "worker 0 on cpu died" in died[0] and "shard 1" in died[0], lines
        assert "restarting it" in died[0]
