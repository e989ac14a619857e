"""The daemon's progress tells the truth, through a real daemon and the installed `virnucpro`:
each shard written shows at once (the throttle never drops the last update of a burst)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon_helpers import start_daemon, wait_for
from tests.helpers import DATA

VIRAL = DATA / "viral_reference.fasta"
VIRNUCPRO = Path(sys.executable).with_name("virnucpro")  # the installed entry point


def virnucpro(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(VIRNUCPRO), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=True).stdout


def shards_on_disk(outdir: Path) -> int:
    return len(list((outdir / ".virnucpro" / "shards").glob("shard-*.safetensors")))


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
