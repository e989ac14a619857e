"""The headless client verbs (`virnucpro submit|jobs|show|logs|watch|cancel|remove`) through the
real command line, against a real daemon on an ipc socket in a temp folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import DaemonHandle, daemon_env, start_daemon
from tests.helpers import DATA, read_table

VIRAL = DATA / "viral_reference.fasta"


@pytest.fixture(scope="module")
def completed(daemon: DaemonHandle, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A job submitted with relative paths from another folder and followed with --wait."""
    work = tmp_path_factory.mktemp("work")
    shutil.copy(VIRAL, work / "in.fa")
    proc = daemon.cli("submit", "in.fa", "-o", "out", "--models", "tiny", "--wait", "--name", "first",
                      cwd=work)
    return {"work": work, "proc": proc, "id": int(proc.stdout.strip() or 0)}


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc


def _duplicate_ids_fasta(path: Path) -> Path:
    """A FASTA the daemon takes at submission (it reads only its first bytes) but the job
    refuses; `virnucpro submit` reads it whole first and refuses it at once."""
    path.write_text(">same\n" + "ACGT" * 100 + "\n>same\n" + "TTGCA" * 80 + "\n")
    return path


@pytest.mark.slow
def test_submit_wait_resolves_relative_paths_and_matches_predict(completed, daemon, tmp_path):
    _ok(completed["proc"])
    assert "completed" in completed["proc"].stderr
    out = completed["work"] / "out"
    predicted = tmp_path / "predicted"
    _ok(subprocess.run([sys.executable, "-m", "virnucpro", "predict", VIRAL, "-o", predicted,
                        "--models", "tiny", "--devices", "cpu", "-q"],
                       capture_output=True, text=True, timeout=120))
    mine, theirs = read_table(out / "frames.tsv"), read_table(predicted / "frames.tsv")
    assert [(r["frame_id"], r["call"], r["status"]) for r in mine] == \
        [(r["frame_id"], r["call"], r["status"]) for r in theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert abs(float(a["p_virus"]) - float(b["p_virus"])) < 1e-6
        assert abs(float(a["p_others"]) - float(b["p_others"])) < 1e-6
    assert [r["call"] for r in read_table(out / "sequences.tsv")] == \
        [r["call"] for r in read_table(predicted / "sequences.tsv")]


@pytest.mark.slow
def test_submit_json_prints_the_job_with_absolute_paths(daemon, tmp_path):
    shutil.copy(VIRAL, tmp_path / "in.fa")
    proc = _ok(daemon.cli("submit", "in.fa", "-o", "o", "--models", "tiny", "--threshold", "0.7",
                          "--priority", "3", "--no-report", "--json", cwd=tmp_path))
    job = json.loads(proc.stdout)
    assert job["inputs"][0]["path"] == str(tmp_path / "in.fa")
    assert job["outdir"] == str(tmp_path / "o")
    assert job["options"]["threshold"] == 0.7 and job["options"]["report"] is False
    assert job["priority"] == 3 and job["state"] in ("queued", "loading", "running", "completed")
    watched = daemon.cli("watch", job["id"])
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout == ""  # progress is not data


@pytest.mark.slow
def test_submit_region_options_reach_the_job_and_its_run(daemon, tmp_path):
    shutil.copy(VIRAL, tmp_path / "in.fa")
    proc = _ok(daemon.cli("submit", "in.fa", "-o", "o", "--models", "tiny", "--region-gap", "2",
                          "--min-region-length", "500", "--wait", "--json", cwd=tmp_path))
    job = json.loads(proc.stdout)
    assert job["state"] == "completed"
    stored = json.loads(_ok(daemon.cli("show", job["id"], "--json")).stdout)["options"]
    # Those given, and the one not given with the daemon's default.
    assert (stored["region_gap"], stored["min_region_length"], stored["region_min_p"]) == \
        (2, 500, None)
    parameters = json.loads((tmp_path / "o" / "run.json").read_text())["parameters"]
    assert (parameters["region_gap"], parameters["min_region_length"]) == (2, 500)
    counts = job["progress"]["counts"]
    shown = _ok(daemon.cli("show", job["id"])).stdout
    regions = next(line for line in shown.splitlines() if line.startswith("regions "))
    assert regions.split()[1] == str(counts["regions"])
    assert f"in {counts['sequences_with_regions']} sequence" in regions


@pytest.mark.slow
def test_jobs_show_and_logs_describe_a_finished_job(daemon, completed):
    job_id = completed["id"]
    live = _ok(daemon.cli("jobs")).stdout
    assert f"\n{job_id} " not in live  # finished jobs only with --all
    table = _ok(daemon.cli("jobs", "--all")).stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "PROGRESS", "SEQUENCES", "PRIORITY", "AGE"]
    row = next(line.split() for line in table[1:] if line.split()[0] == str(job_id))
    assert row[1:5] == ["first", "completed", "100%", "4/4"]
    listed = json.loads(_ok(daemon.cli("jobs", "--all", "--json")).stdout)
    assert job_id in [j["id"] for j in listed]

    shown = _ok(daemon.cli("show", job_id)).stdout
    assert str(completed["work"] / "out") in shown
    assert "sequences=4" in shown and "sequences_virus=" in shown
    assert [line.split()[-1] for line in shown.split("history\n")[1].splitlines()] == \
        ["queued", "loading", "running", "completed"]
    as_json = json.loads(_ok(daemon.cli("show", job_id, "--json")).stdout)
    assert as_json["state"] == "completed" and as_json["options"]["models"] == "tiny"

    lines = _ok(daemon.cli("logs", job_id)).stdout
    assert "submitted" in lines and "completed: 4 sequences" in lines
    assert _ok(daemon.cli("logs", job_id, "--follow", timeout=20)).stdout == lines


@pytest.mark.slow
def test_a_failing_job_makes_watch_exit_non_zero(daemon, tmp_path):
    bad = _duplicate_ids_fasta(tmp_path / "dups.fa")
    proc = daemon.cli("submit", bad, "-o", tmp_path / "out", "--models", "tiny", "--wait")
    assert proc.returncode == 7 and "duplicate sequence ids" in proc.stderr  # refused at once
    with daemon.client() as c:  # a client that sends it anyway: the job fails
        job = c.submit([str(bad)], outdir=str(tmp_path / "out"), options={"models": "tiny"})
    watched = daemon.cli("watch", job.id)
    assert watched.returncode == 9 and "duplicate sequence ids" in watched.stderr
    assert "failed" in watched.stderr


@pytest.mark.slow
def test_unknown_jobs_and_bad_options_are_clear_errors(daemon, tmp_path):
    proc = daemon.cli("show", "9999")
    assert proc.returncode == 7 and "no job 9999" in proc.stderr
    proc = daemon.cli("submit", tmp_path / "missing.fa", "-o", tmp_path, "--models", "tiny")
    assert proc.returncode == 7 and "no such file" in proc.stderr
    assert daemon.cli("submit", VIRAL).returncode == 2  # -o is required without --upload
    for option, value in (("--region-gap", "-1"), ("--region-min-p", "1.5"),
                          ("--min-region-length", "0")):
        proc = daemon.cli("submit", VIRAL, "-o", tmp_path / "o", option, value)
        assert proc.returncode == 2 and option in proc.stderr
    assert daemon.cli("remove").returncode == 2


@pytest.mark.slow
def test_remove_forgets_a_finished_job(daemon, tmp_path):
    shutil.copy(VIRAL, tmp_path / "in.fa")
    job_id = _ok(daemon.cli("submit", tmp_path / "in.fa", "-o", tmp_path / "o", "--models", "tiny",
                            "--wait")).stdout.strip()
    assert json.loads(_ok(daemon.cli("remove", job_id, "--json")).stdout) == {"removed": 1}
    assert daemon.cli("show", job_id).returncode == 7


@pytest.mark.slow
def test_cancel_and_changed_inputs_behind_a_slow_job(tmp_path, tiny_set_dir):
    with start_daemon(tmp_path / "d", "--persistent-models", "--models", "tiny",
                      "--shard-frames", "1",
                      env_extra={"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer",
                                 "FAKE_DELAY": "0.5"}) as d:
        inputs = []
        for name in ("a.fa", "b.fa", "c.fa"):
            shutil.copy(VIRAL, tmp_path / name)
            inputs.append(tmp_path / name)
        ids = [_ok(d.cli("submit", path, "-o", tmp_path / f"out-{path.stem}", "--models", "tiny")
                   ).stdout.strip() for path in inputs]
        # a would run ~11 s (22 one-frame shards of 0.5 s); b and c wait behind it.
        proc = _ok(d.cli("cancel", ids[2]))
        assert "cancelled" in proc.stderr
        assert json.loads(_ok(d.cli("show", ids[2], "--json")).stdout)["state"] == "cancelled"
        inputs[1].unlink()  # b's input is gone by the time b starts: b must fail, not run
        _ok(d.cli("cancel", ids[0]))
        # --follow returns once the job has ended, with its last lines.
        assert "cancelled" in _ok(d.cli("logs", ids[0], "--follow", timeout=30)).stdout
        watched = d.cli("watch", ids[0])
        assert watched.returncode == 10, watched.stderr  # a: cancelled
        watched = d.cli("watch", ids[1])
        assert watched.returncode == 9 and "no longer exists" in watched.stderr


@pytest.mark.slow
def test_a_daemon_that_is_not_running_gives_a_clear_error(tmp_path, tiny_set_dir):
    env = daemon_env(tmp_path)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "virnucpro", "jobs"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 8
    assert "not running" in proc.stderr and "virnucpro-daemon start" in proc.stderr
    # A daemon that was killed leaves its socket file behind: still an immediate, clear error.
    handle = start_daemon(tmp_path, "--no-persistent-models")
    handle.kill()
    proc = handle.cli("submit", VIRAL, "-o", tmp_path / "o", "--wait")
    assert proc.returncode == 8 and "virnucpro-daemon start" in proc.stderr
    assert time.monotonic() - started < 30  # no client timeout was waited out


@pytest.mark.slow
def test_the_client_verbs_import_neither_torch_nor_zmq_for_help(daemon):
    code = ("import sys\n"
            "from virnucpro.cli.root import main\n"
            "assert 'zmq' not in sys.modules, 'zmq at import'\n"
            "try:\n"
            "    main(['jobs', '--all'])\n"
            "except SystemExit as exc:\n"
            "    assert exc.code in (0, None), exc.code\n"
            "assert 'torch' not in sys.modules, 'torch in a client verb'\n")
    proc = subprocess.run([sys.executable, "-c", code], env=daemon.env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_a_relative_model_folder_is_sent_absolute_and_names_stay_names(tmp_path, monkeypatch):
    from virnucpro.daemon.client_checks import models_spec_of as _models_spec

    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _models_spec("./mine") == str(tmp_path / "mine")
    assert _models_spec("mine") == str(tmp_path / "mine")  # no imported set of that name
    assert _models_spec("tiny") == "tiny"
    assert _models_spec("./absent") == "./absent"  # the daemon says what is wrong with it
