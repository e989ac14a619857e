"""What `submit` checks and what the client verbs say (issue 15), through the installed command
line and the Python client, against real daemon processes: the daemon's model set as the
default, predict's refusals before a job exists, finished folders, retry's overrides, the
order of `jobs`, JSON errors and over-long ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tests.daemon_helpers import DaemonHandle, daemon_env, ok, small_input, start_daemon, wait_for
from tests.helpers import DATA
from virnucpro.daemon.client import ClientError

VIRAL = DATA / "viral_reference.fasta"
SLOW = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.3"}


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory, tiny_set_dir: Path) -> Iterator[DaemonHandle]:
    """Jobs of one-frame shards at 0.3 s each: the viral reference stays running ~7 s."""
    handle = start_daemon(tmp_path_factory.mktemp("slow"), "--persistent-models", "--models", "tiny",
                          "--shard-frames", "1", env_extra=SLOW)
    try:
        yield handle
    finally:
        handle.stop()




def _count(daemon: DaemonHandle) -> int:
    with daemon.client() as c:
        return len(c.jobs(all=True))


# -- 7: the daemon's set is the default ----------------------------------------------------------


@pytest.mark.slow
def test_submit_without_models_uses_the_set_the_daemon_was_started_with(daemon, tmp_path):
    shutil.copy(VIRAL, tmp_path / "x.fa")
    proc = ok(daemon.cli("submit", "x.fa", "-o", "out", "--wait", "--json", cwd=tmp_path))
    job = json.loads(proc.stdout)
    assert job["state"] == "completed" and job["options"]["models"] == "tiny"  # recorded at submit
    with daemon.client() as c:
        assert c.status().default_models == "tiny"
        # docs/daemon.md's Client example: no models option; the daemon fills it in.
        mine = c.submit([str(tmp_path / "x.fa")], outdir=str(tmp_path / "py"))
        assert mine.options["models"] == "tiny"
        assert wait_for(c, mine.id).state.value == "completed"


@pytest.mark.slow
def test_the_default_is_published_unless_the_daemon_names_exactly_one_set(tmp_path, tiny_set_dir):
    with start_daemon(tmp_path / "plain") as plain, start_daemon(
            tmp_path / "named", "--no-persistent-models", "--models", "tiny") as named:
        with plain.client() as c:
            assert c.status().default_models == "published"
        with named.client() as c:
            assert c.status().default_models == "tiny"  # persistent or not
        status = json.loads(ok(subprocess.run(
            [sys.executable, "-m", "virnucpro.daemon.cli", "status", "--json"], env=named.env,
            capture_output=True, text=True, timeout=60)).stdout)
        assert status["default_models"] == "tiny"


# -- 8: what a submit refuses before a job exists ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name,data,message", [
    ("empty.fa", b"", "the input is empty"),
    ("protein.fa", b">p\nMKLVEFILPQ\n", "it looks like a protein sequence"),
    ("binary.fa", b"\x00\x01\x02\x03PK\x03\x04", "binary data"),
    ("dups.fa", b">same\nACGT\n>same\nACGA\n", "duplicate sequence ids: 'same'"),
    ("long.fa", b">" + b"x" * 200_000 + b"\nACGT\n", "at most 1,000 are accepted"),  # 15
    ("mates.fq", b"@M1:7 1:N:0:A\nACGT\n+\nIIII\n@M1:7 2:N:0:A\nACGA\n+\nIIII\n",
     "look like the two mates of paired reads"),  # 16: FASTQ, checked as strictly
    ("short-quality.fastq", b"@r1\nACGT\n+\nIII\n", "the quality line has 3 characters"),
    ("mixed.fq", b"@r1\nACGT\n+\nIIII\n>r2\nACGT\n", "mixing FASTA and FASTQ"),
])
def test_submit_refuses_what_predict_refuses_with_its_message(daemon, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    before = _count(daemon)
    proc = daemon.cli("submit", path, "-o", tmp_path / "out")
    assert proc.returncode == 7 and message in proc.stderr, proc.stderr
    assert proc.stdout == "" and _count(daemon) == before  # no job id, no job
    predicted = subprocess.run([sys.executable, "-m", "virnucpro", "predict", path, "-o",
                                tmp_path / "p", "--models", "tiny", "--devices", "cpu", "-q"],
                               capture_output=True, text=True, timeout=120, env=daemon.env)
    assert message in predicted.stderr  # the same words


@pytest.mark.slow
def test_a_folder_is_refused_as_a_folder_by_the_client_and_by_the_daemon(daemon, tmp_path):
    proc = daemon.cli("submit", tmp_path, "-o", tmp_path / "out")
    assert proc.returncode == 7 and "is a folder, not a FASTA or FASTQ file" in proc.stderr, proc.stderr
    with daemon.client() as c:  # another client: the daemon checks the first bytes itself
        with pytest.raises(ClientError, match="is a folder, not a FASTA or FASTQ file"):
            c.submit([str(tmp_path)], outdir=str(tmp_path / "out"))
        for name, data, message in [("e.fa", b"", "empty"), ("b.fa", b"\x00\x01", "binary"),
                                    ("p.fa", b">p\nMKLEF\n", "protein")]:
            (tmp_path / name).write_bytes(data)
            with pytest.raises(ClientError, match=message) as err:
                c.submit([str(tmp_path / name)], outdir=str(tmp_path / "out"))
            assert err.value.code == "invalid"


@pytest.mark.slow
def test_an_unusable_output_location_is_refused(daemon, tmp_path):
    small = small_input(tmp_path / "s.fa")
    (tmp_path / "a-file").write_text("x")
    for outdir, message in [(tmp_path / "a-file", "exists and is not a folder"),
                            (tmp_path / "a-file" / "out", "a-file is not a folder")]:
        proc = daemon.cli("submit", small, "-o", outdir)
        assert proc.returncode == 7 and message in proc.stderr, proc.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    proc = daemon.cli("submit", small, "-o", tmp_path / "junk")
    assert proc.returncode == 7 and "is not empty; use --force to overwrite" in proc.stderr


@pytest.mark.slow
def test_output_folders_of_live_jobs_are_not_shared_nor_nested(slow, tmp_path):
    with slow.client() as c:
        running = c.submit([str(VIRAL)], outdir=str(tmp_path / "runs" / "a"))
        try:
            for outdir, word in [(tmp_path / "runs" / "a", "is"), (tmp_path / "runs", "holds"),
                                 (tmp_path / "runs" / "a" / "inner", "lies inside")]:
                with pytest.raises(ClientError, match=f"{word} the output folder of live job "
                                                      f"{running.id}"):
                    c.submit([str(VIRAL)], outdir=str(outdir))
            # A sibling folder is fine.
            c.cancel(c.submit([str(VIRAL)], outdir=str(tmp_path / "runs" / "b")).id)
        finally:
            c.cancel(running.id)
            wait_for(c, running.id)


# -- 9: a finished folder is not reused silently -------------------------------------------------


@pytest.mark.slow
def test_a_folder_with_a_finished_run_is_refused_unless_force(daemon, tmp_path):
    shutil.copy(VIRAL, tmp_path / "x.fa")
    first = ok(daemon.cli("submit", "x.fa", "-o", "out", "--wait", cwd=tmp_path)).stdout.strip()
    proc = daemon.cli("submit", "x.fa", "-o", "out", "--wait", cwd=tmp_path)
    assert proc.returncode == 7, proc.stderr
    assert ("out: is not empty (it holds a finished run; --resume applies other table "
            "settings to it); use --force to overwrite") in proc.stderr
    again = ok(daemon.cli("submit", "x.fa", "-o", "out", "--wait", "--force", cwd=tmp_path))
    assert again.stdout.strip() != first
    lines = ok(daemon.cli("logs", again.stdout.strip())).stdout
    assert "reusing" not in lines and "completed: 4 sequences" in lines  # scored again


@pytest.mark.slow
def test_a_job_that_resumes_an_earlier_run_says_so_in_its_log(slow, tmp_path):
    with slow.client() as c:
        first = c.submit([str(VIRAL)], outdir=str(tmp_path / "o"))
        shards = tmp_path / "o" / ".virnucpro" / "shards"
        deadline = time.monotonic() + 60
        while len(list(shards.glob("shard-*"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        c.cancel(first.id)
        assert wait_for(c, first.id).state.value == "cancelled"
    # The folder holds an unfinished run: a new job takes it up and says so.
    proc = ok(slow.cli("submit", VIRAL, "-o", tmp_path / "o", "--wait", timeout=120))
    lines = ok(slow.cli("logs", proc.stdout.strip())).stdout
    assert f"reusing {tmp_path / 'o'}: 0 of 1 input(s) already complete, 1 resumed" in lines


# -- 10: retry takes the overrides its failure names ---------------------------------------------


@pytest.mark.slow
def test_retry_rename_duplicates_does_what_the_failure_says(daemon, tmp_path):
    dups = tmp_path / "dups.fa"
    dups.write_text(">same\n" + "ACGT" * 100 + "\n>same\n" + "TTGCA" * 80 + "\n")
    with daemon.client() as c:  # a client that does not read the whole file: the job finds out
        job = c.submit([str(dups)], outdir=str(tmp_path / "out"))
        failed = wait_for(c, job.id)
    assert failed.state.value == "failed" and "use --rename-duplicates" in failed.reason
    assert "--rename-duplicates" in ok(daemon.cli("retry", "--help")).stdout
    ok(daemon.cli("retry", job.id, "--rename-duplicates"))
    ok(daemon.cli("watch", job.id))
    # The retry's first attempt is named as such, not "attempt 1" right after "attempt 1".
    lines = ok(daemon.cli("logs", job.id)).stdout
    assert "attempt 1: model set" in lines and "retry 1, attempt 1: model set" in lines
    done = json.loads(ok(daemon.cli("show", job.id, "--json")).stdout)
    assert done["state"] == "completed" and done["options"]["rename_duplicates"] is True
    assert done["progress"]["counts"]["sequences"] == 2


@pytest.mark.slow
def test_retry_force_overwrites_the_folder_its_failure_names(slow, tmp_path):
    small = small_input(tmp_path / "s.fa")
    with slow.client() as c:
        ahead = c.submit([str(VIRAL)], outdir=str(tmp_path / "ahead"))
        wait_for(c, ahead.id, states=("running",))
        behind = c.submit([str(small)], outdir=str(tmp_path / "out"))
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "notes.txt").write_text("written after the submit")
        c.cancel(ahead.id)
        failed = wait_for(c, behind.id)
        assert failed.state.value == "failed" and "use --force to overwrite" in failed.reason
        ok(slow.cli("retry", behind.id))  # no --force: it fails the same way
        assert wait_for(c, behind.id).state.value == "failed"
        proc = ok(slow.cli("retry", behind.id, "--force", "--json"))
        assert json.loads(proc.stdout)["options"]["force"] is True
        assert wait_for(c, behind.id).state.value == "completed"
        assert (tmp_path / "out" / "frames.tsv").exists()


# -- 12: the order of `jobs`; help on every option -------------------------------------------------


@pytest.mark.slow
def test_jobs_lists_the_running_job_above_a_queued_one_of_higher_priority(slow, tmp_path):
    small = small_input(tmp_path / "s.fa")
    with slow.client() as c:
        running = c.submit([str(VIRAL)], outdir=str(tmp_path / "a"))
        wait_for(c, running.id, states=("running",))
        queued = c.submit([str(small)], outdir=str(tmp_path / "b"), priority=5)
        low = c.submit([str(small)], outdir=str(tmp_path / "c"), priority=0)
        try:
            listed = json.loads(ok(slow.cli("jobs", "--json")).stdout)
            assert [j["id"] for j in listed] == [running.id, queued.id, low.id]
            table = ok(slow.cli("jobs")).stdout.splitlines()
            assert [row.split()[0] for row in table[1:]] == [str(running.id), str(queued.id),
                                                             str(low.id)]
        finally:
            for job in (low, queued, running):
                c.cancel(job.id)
            wait_for(c, running.id)


@pytest.mark.slow
def test_every_option_of_every_client_command_has_help_text():
    from virnucpro.daemon.client_cli import COMMANDS

    missing = [f"{cmd.name} {opt.opts[0]}" for cmd in COMMANDS for opt in cmd.params
               if isinstance(opt, click.Option) and not (opt.help or "").strip()]
    assert missing == []


# -- 13: --json errors are JSON ------------------------------------------------------------------


@pytest.mark.slow
def test_json_errors_are_json_on_stdout_with_the_same_exit_code(daemon, tmp_path):
    proc = daemon.cli("remove", 999, "--json")
    assert proc.returncode == daemon.cli("remove", 999).returncode == 7
    assert json.loads(proc.stdout) == {"error": {"code": "unknown_job", "exit": 7,
                                                 "message": "no job 999"}}
    for args in (("show", 999), ("cancel", 999), ("retry", 999), ("jobs", "--all")):
        proc = daemon.cli(*args, "--json")
        if args[0] == "jobs":
            assert proc.returncode == 0 and isinstance(json.loads(proc.stdout), list)
        else:
            assert proc.returncode == 7 and json.loads(proc.stdout)["error"]["code"] == "unknown_job"
    (tmp_path / "e.fa").write_bytes(b"")
    proc = daemon.cli("submit", tmp_path / "e.fa", "-o", tmp_path / "o", "--json")
    error = json.loads(proc.stdout)["error"]
    assert proc.returncode == 7 and error["code"] == "invalid" and "empty" in error["message"]
    proc = daemon.cli("remove", "--json")  # a usage error found by the command
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["code"] == "usage"


@pytest.mark.slow
def test_json_errors_say_unavailable_when_no_daemon_answers(tmp_path):
    env = daemon_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "virnucpro", "jobs", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 8
    error = json.loads(proc.stdout)["error"]
    assert error["code"] == "unavailable" and error["exit"] == 8
    assert "virnucpro-daemon start" in error["message"]


@pytest.mark.slow
def test_a_failed_job_followed_with_json_is_one_error_object_with_its_record(slow, tmp_path):
    small = small_input(tmp_path / "s.fa")
    with slow.client() as c:
        ahead = c.submit([str(VIRAL)], outdir=str(tmp_path / "ahead"))
        wait_for(c, ahead.id, states=("running",))
        proc = subprocess.Popen([sys.executable, "-m", "virnucpro", "submit", small, "-o",
                                 tmp_path / "out", "--wait", "--json"], env=slow.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not [j for j in c.jobs() if j.outdir == str(tmp_path / "out")]:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        small.unlink()  # gone before the job starts: it fails
        c.cancel(ahead.id)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 9, err
    error = json.loads(out)["error"]  # one JSON document on stdout
    assert error["code"] == "failed" and error["exit"] == 9
    assert error["job"]["state"] == "failed" and "no longer exists" in error["job"]["reason"]


@pytest.mark.slow
def test_retry_of_a_job_whose_input_changed_is_refused_up_front(slow, tmp_path):
    """Issue 24, item 18: accepted, the retry failed at once with the same reason."""
    small = small_input(tmp_path / "s.fa")
    with slow.client() as c:
        ahead = c.submit([str(VIRAL)], outdir=str(tmp_path / "ahead"))
        wait_for(c, ahead.id, states=("running",))
        behind = c.submit([str(small)], outdir=str(tmp_path / "out"))
        with small.open("a") as fh:  # changed while it waits in the queue
            fh.write(">two\nACGTACGTACGT\n")
        c.cancel(ahead.id)
        failed = wait_for(c, behind.id)
        assert failed.state.value == "failed" and "input changed" in failed.reason
    proc = slow.cli("retry", behind.id)
    assert proc.returncode == 7, proc.stderr
    assert "cannot be retried" in proc.stderr and str(small) in proc.stderr
    with slow.client() as c:
        assert c.show(behind.id).state.value == "failed"


@pytest.mark.slow
def test_a_pipe_submitted_by_a_client_is_refused_without_blocking_the_daemon(daemon, tmp_path):
    """Another client than ours may name a FIFO: the daemon must not read it (its first read
    would block the request loop, every client waiting)."""
    import os

    fifo = tmp_path / "reads.fa"
    os.mkfifo(fifo)
    with daemon.client() as c:
        before = len(c.jobs(all=True))
        with pytest.raises(ClientError) as err:
            c.submit([str(fifo)], outdir=str(tmp_path / "out"))
        assert "not a regular file" in str(err.value) and str(fifo) in str(err.value)
        assert len(c.jobs(all=True)) == before and c.status().state == "running"


@pytest.mark.slow
def test_submit_resume_takes_up_a_finished_run_with_other_table_settings(daemon, tmp_path):
    """Issue 24, item 4, in the daemon: a finished folder is refused without --resume; with it,
    the job applies the table-only settings from the stored scores, as predict --resume does,
    and refuses a setting that shapes the shards, naming it."""
    shutil.copy(VIRAL, tmp_path / "x.fa")
    ok(daemon.cli("submit", "x.fa", "-o", "out", "--wait", cwd=tmp_path))
    ok(daemon.cli("predict", "x.fa", "-o", "fresh", "--models", "tiny", "--threshold", "0.9",
                   "-q", cwd=tmp_path))
    job = ok(daemon.cli("submit", "x.fa", "-o", "out", "--resume", "--threshold", "0.9",
                         "--wait", "--json", cwd=tmp_path))
    done = json.loads(job.stdout)
    assert done["state"] == "completed", done
    for table in ("sequences.tsv", "chunks.tsv", "regions.tsv"):
        assert (tmp_path / "out" / table).read_bytes() == \
            (tmp_path / "fresh" / table).read_bytes(), table
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["parameters"]["threshold"] == 0.9 and run["rescored"]
    lines = ok(daemon.cli("logs", str(done["id"]))).stdout
    assert "tables rewritten from the stored scores with --threshold 0.9 (was 0.5)" in lines
    other = daemon.cli("submit", "x.fa", "-o", "out", "--resume", "--chunk-size", "300",
                       "--wait", "--json", cwd=tmp_path)
    assert other.returncode == 9, other.stderr
    assert "--chunk-size 500 (now 300)" in other.stdout + other.stderr
