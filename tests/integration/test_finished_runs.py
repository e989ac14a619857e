"""Finished runs reused, leftovers, a stop by SIGTERM and a full disk (issue 24, items 4-6),
through the installed `virnucpro`: `--resume` on a finished run applies the table-only settings
from its stored scores and refuses those that shape the shards, naming them; what a kill left
is cleaned; a report that cannot be written says so even under -q and leaves no temp file;
SIGTERM stops as Ctrl-C does (with the hint), exit 143; a full disk is one line, exit 13."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DATA, mounted_tmpfs
from virnucpro.layout import OutputLayout

VIRAL = DATA / "viral_reference.fasta"
BIN = Path(sys.executable).parent
TABLES = ("sequences.tsv", "chunks.tsv", "regions.tsv")


def _cli(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "virnucpro"), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_set_dir) -> Path:
    out = tmp_path_factory.mktemp("finished") / "out"
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "-q")
    assert done.returncode == 0, done.stderr
    return out


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# -- item 4: a finished run with other settings --------------------------------------------


@pytest.mark.parametrize("option, value", [("--threshold", "0.9"), ("--region-gap", "3"),
                                           ("--min-region-length", "400")])
@pytest.mark.slow
def test_resume_with_a_table_setting_rewrites_the_tables_as_a_fresh_run_would(
        finished, tmp_path, option, value):
    out = _copy(finished, tmp_path / "out")
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "--resume", option, value)
    assert done.returncode == 0, done.stderr
    note = next(line for line in done.stderr.splitlines() if "rewritten" in line)
    assert note.startswith("NOTE: ") and f"{option} {value}" in note, note
    fresh = tmp_path / "fresh"
    assert _cli("predict", VIRAL, "-o", fresh, "--models", "tiny", "-q", option,
                value).returncode == 0
    for table in TABLES:
        assert (out / table).read_bytes() == (fresh / table).read_bytes(), table
    run = json.loads((out / "run.json").read_text())
    key = option.removeprefix("--").replace("-", "_")
    assert str(run["parameters"][key]) == value
    assert not (out / ".virnucpro").exists()


def test_resume_with_a_setting_that_shapes_the_shards_is_refused_naming_it(finished, tmp_path):
    out = _copy(finished, tmp_path / "out")
    before = (out / "sequences.tsv").read_bytes()
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "--resume", "--chunk-size",
                "300")
    assert done.returncode == 5, done.stderr
    assert "--chunk-size 500 (now 300)" in done.stderr
    assert (out / "sequences.tsv").read_bytes() == before


# -- item 5: leftovers ---------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_a_kill_right_after_run_json_cleans_up_and_writes_the_report(finished,
                                                                                  tmp_path):
    out = _copy(finished, tmp_path / "out")
    layout = OutputLayout(out)
    # What a kill between run.json and the clean-up leaves: the work folder, no report.
    layout.work.mkdir()
    run = json.loads(layout.run_json.read_text())
    layout.state.write_text(json.dumps(run["resume_key"]))
    (layout.work / "shards").mkdir()
    (layout.work / "shards" / "000000.npz").write_bytes(b"\0" * 4096)
    (out / "report.html").unlink()
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "--resume")
    assert done.returncode == 0, done.stderr
    assert not layout.work.exists() and (out / "report.html").is_file()
    assert "removed what the finished run left" in done.stderr
    assert "report.html" in json.loads(layout.run_json.read_text())["outputs"]


@pytest.mark.slow
def test_a_report_that_cannot_be_written_says_so_under_quiet_and_leaves_no_temp_file(
        finished, tmp_path):
    out = _copy(finished, tmp_path / "out")
    (out / "report.html").unlink()
    (out / "report.html").mkdir()  # the page cannot replace a folder
    (out / "report.html" / "keep").write_text("x")
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "--resume", "-q")
    assert done.returncode == 0  # the tables are complete
    assert "no report written" in done.stderr and done.stderr.startswith("ERROR: ")
    assert not list(out.glob(".*.tmp")), list(out.iterdir())


@pytest.mark.slow
def test_sigterm_stops_as_ctrl_c_does_with_the_hint_and_exit_143(tmp_path):
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**os.environ, "VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.5",
           "TMPDIR": str(spool), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = tmp_path / "out"
    proc = subprocess.Popen([str(BIN / "virnucpro"), "predict", str(VIRAL), "-o", str(out),
                             "--models", "tiny", "--shard-frames", "2", "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    shards = out / ".virnucpro" / "shards"
    while time.monotonic() < deadline and not (shards.is_dir() and any(shards.iterdir())):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "--resume" in err and "Traceback" not in err
    assert list(spool.glob("virnucpro-*")) == []  # our temporary folder went with it
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "--resume", "-q",
                "--shard-frames", "2", env=env)
    assert done.returncode == 0, done.stderr


# -- item 6: a full disk -------------------------------------------------------------------


def _big_input(path: Path) -> Path:
    """120 records of 3 kbp without a stop in their first frame: every chunk is scored, and
    the tables take more than the small disks below hold."""
    rng = random.Random(6)
    sense = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"
             if a + b + c not in ("TAA", "TAG", "TGA")]
    with path.open("w") as fh:
        for k in range(120):
            fh.write(f">seq{k}\n" + "".join(rng.choice(sense) for _ in range(1000)) + "\n")
    return path


@pytest.mark.slow
def test_a_full_disk_is_one_line_exit_13_and_json_and_resume_finishes_the_run(tmp_path):
    fasta = _big_input(tmp_path / "big.fa")
    with mounted_tmpfs(tmp_path / "disk", "128k") as disk:
        out = disk / "out"
        done = _cli("predict", fasta, "-o", out, "--models", "tiny", "--json", "--no-report")
        assert done.returncode == 13, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "no space left" in errors[0] and str(out) in errors[0]
        assert "--resume" in errors[0] and "Traceback" not in done.stderr
        reply = json.loads(done.stdout)
        assert reply["error"]["code"] == "no_space" and reply["error"]["exit"] == 13
        kept = tmp_path / "kept"
        shutil.copytree(out, kept)  # the shards written so far, onto a disk with room
    done = _cli("predict", fasta, "-o", kept, "--models", "tiny", "--resume", "-q",
                "--no-report")
    assert done.returncode == 0, done.stderr
    assert (kept / "sequences.tsv").read_text().count("\n") == 121


@pytest.mark.slow
def test_a_daemon_job_on_a_full_disk_fails_with_the_same_one_line_reason(daemon, tmp_path):
    from tests.daemon_helpers import wait_for

    fasta = _big_input(tmp_path / "big.fa")
    with mounted_tmpfs(tmp_path / "disk", "128k") as disk:
        with daemon.client() as c:
            job = c.submit([str(fasta)], outdir=str(disk / "out"))
            failed = wait_for(c, job.id)
        assert failed.state.value == "failed", failed
        assert failed.reason.startswith(f"{disk / 'out'}: no space left"), failed.reason
        assert "retry the job" in failed.reason and "Error" not in failed.reason
        with daemon.client() as c:
            assert c.status().state == "running"  # the daemon goes on
