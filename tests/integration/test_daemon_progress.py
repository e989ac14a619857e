"""The daemon's progress tells the truth, through a real daemon and the installed `virnucpro`:
each shard written shows at once (the throttle never drops the last update of a burst)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import start_daemon, wait_for
from tests.helpers import DATA

VIRAL = DATA / "viral_reference.fasta"
VIRNUCPRO = Path(sys.executable).with_name("virnucpro")  # the installed entry point


def virnucpro(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(VIRNUCPRO), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=True).stdout


def shards_on_disk(outdir: Path) -> int:
    return len(list((outdir / ".virnucpro" / "shards").glob("shard-*.safetensors")))


@pytest.mark.slow
def test_a_written_shard_shows_in_jobs_at_once(tmp_path, tiny_set_dir) -> None:
    """A two-shard job held before its second shard: `jobs` must show the first one's work
    (it showed 0 % until the job completed)."""
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:GateScorer", "FAKE_GATE_SHARD": "1",
           "FAKE_STATE_DIR": str(gate)}
    with start_daemon(tmp_path / "d", "--persistent-models", "--models", "tiny",
                      "--shard-frames", "11", env_extra=env) as daemon, daemon.client() as c:
        outdir = tmp_path / "out"
        job = c.submit([str(VIRAL)], outdir=str(outdir), options={"models": "tiny"})
        deadline = time.monotonic() + 60
        while shards_on_disk(outdir) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shards_on_disk(outdir) == 1
        # Nothing else will happen until the gate opens: the shard on disk must show by itself.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = json.loads(virnucpro(daemon.env, "jobs", "--json"))
            if listed[0]["progress"]["chunks_done"] > 0:
                break
            time.sleep(0.2)
        progress = listed[0]["progress"]
        assert 0 < progress["chunks_done"] < progress["chunks_total"], progress
        assert shards_on_disk(outdir) == 1  # still held: what showed is the first shard's
        row = virnucpro(daemon.env, "jobs").splitlines()[1].split()
        assert row[2] == "running" and row[3] != "0%", row
        (gate / "go").touch()
        assert wait_for(c, job.id, timeout=60).state.value == "completed"


@pytest.mark.slow
def test_a_job_that_advances_at_every_restart_is_never_failed_for_them(tmp_path, tiny_set_dir
                                                                        ) -> None:
    """The daemon killed three times, each time after the job wrote a new shard: the job
    resumes and completes (it failed "interrupted 3 times"); only attempts in a row that wrote
    nothing count against the cap."""
    env = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "1.0"}
    args = ("--persistent-models", "--models", "tiny", "--shard-frames", "2")
    outdir = tmp_path / "out"
    job_id, written = None, 0
    for _ in range(3):
        daemon = start_daemon(tmp_path / "d", *args, env_extra=env)
        try:
            with daemon.client() as c:
                if job_id is None:
                    job_id = c.submit([str(VIRAL)], outdir=str(outdir),
                                      options={"models": "tiny"}).id
            deadline = time.monotonic() + 60
            while shards_on_disk(outdir) <= written and time.monotonic() < deadline:
                time.sleep(0.05)
            assert shards_on_disk(outdir) > written, "no new shard in this attempt"
            written = shards_on_disk(outdir)
        finally:
            daemon.kill()  # a crash: the job stays running in the store
    with start_daemon(tmp_path / "d", *args, env_extra=env) as daemon, daemon.client() as c:
        done = wait_for(c, job_id, timeout=120)
        assert done.state.value == "completed", done.reason
        assert done.attempts == 4
