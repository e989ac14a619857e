"""`virnucpro-daemon start`, `stop`, `status`, `drain` as a user runs them: the installed entry
point, real daemon processes (in the background as well as `--foreground`), CPU, the tiny set,
isolated XDG folders (tests/daemon_helpers.py `daemon_env`).

A second start refuses (exit 6) naming the running daemon; a failed start says its own reason,
never an older start's lines of the shared log; with no daemon the verbs answer at once; a start
that ends, cleanly or not, leaves no socket, lock or pid file.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import click
import pytest

from tests.daemon_helpers import REPO
from tests.daemon_helpers import run_daemon as run

LEFTOVERS = ("daemon.sock", "daemon-events.sock", "daemon.lock", "daemon.pid", "endpoints.json")


def documented_exit_code(meaning: str) -> int:
    """The code the docs' exit-code table gives to the row starting with `meaning`."""
    for line in (REPO / "docs" / "troubleshooting.md").read_text().splitlines():
        m = re.fullmatch(r"\| (\d+) \| (.*) \|", line.strip())
        if m and m.group(2).startswith(meaning):
            return int(m.group(1))
    raise AssertionError(f"docs/troubleshooting.md has no exit code for {meaning!r}")


def runtime_of(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "virnucpro"


def log_of(env: dict[str, str]) -> Path:
    return Path(env["XDG_STATE_HOME"]) / "virnucpro" / "daemon.log"


def start_background(env: dict[str, str], *args: str) -> int:
    """`virnucpro-daemon start ARGS` in the background; the pid it reports."""
    done = run(env, "start", "--devices", "cpu", *args)
    assert done.returncode == 0, done.stderr + log_of(env).read_text(errors="replace")
    m = re.search(r"virnucpro daemon started \(pid (\d+)\)", done.stderr)
    assert m, done.stderr
    return int(m.group(1))


@pytest.mark.slow
def test_a_second_start_exits_6_and_names_the_running_daemon(env):
    pid = start_background(env, "--persistent-models")
    status = json.loads(run(env, "status", "--json").stdout)
    assert status["pid"] == pid  # the daemon it launched, not another

    cannot_start = documented_exit_code("the daemon cannot start")
    assert cannot_start == 6
    for extra in ((), ("--foreground",), ("--no-persistent-models", "--max-queued", "5")):
        t0 = time.monotonic()
        again = run(env, "start", "--devices", "cpu", *extra, timeout=60)
        took = time.monotonic() - t0
        assert again.returncode == cannot_start, (extra, again.returncode, again.stderr)
        assert "started" not in again.stderr, again.stderr
        # pid, mode and devices of the daemon that runs, on stderr, on one line.
        assert re.search(rf"^error: another daemon \(pid {pid}; persistent models; devices cpu;"
                         rf"[^\n]*\) is running", again.stderr, re.M), (extra, again.stderr)
        assert took < 30, took  # the refusal does not wait for a start timeout

    # The refused starts took nothing from the running daemon.
    after = run(env, "status", "--json")
    assert after.returncode == 0 and json.loads(after.stdout)["pid"] == pid, after.stderr
    description = json.loads((runtime_of(env) / "daemon.lock").read_text())
    assert description["pid"] == pid and description["mode"] == "persistent"
    assert description["devices"] == ["cpu"] and description["endpoint"].startswith("ipc://")


OLD_LOG = """\
2020-01-01 00:00:00,000 INFO virnucpro.daemon.cli: ---- start (pid 1): virnucpro-daemon 0.0 start
Traceback (most recent call last):
  File "/old/place.py", line 1, in <module>
RuntimeError: an old failure of an earlier daemon
error: another daemon (pid 1; per-job models; devices cuda:9; ipc:///old.sock) is running
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["background", "foreground"])
def test_a_failed_start_says_only_its_own_reason(env, mode):
    log_of(env).parent.mkdir(parents=True, exist_ok=True)
    log_of(env).write_text(OLD_LOG)
    args = ["start", "--models", "nosuchset", "--devices", "cpu"]
    if mode == "foreground":
        args.append("--foreground")
    t0 = time.monotonic()
    done = run(env, *args, timeout=60)
    assert time.monotonic() - t0 < 30
    assert done.returncode == documented_exit_code("the daemon cannot start"), (done.returncode,
                                                                                 done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "unknown model set 'nosuchset'" in errors[0], done.stderr
    for old in ("old failure", "Traceback", "cuda:9", "/old/place.py"):
        assert old not in done.stderr, done.stderr
    assert "started" not in done.stderr
    text = log_of(env).read_text()
    assert text.startswith(OLD_LOG)
    if mode == "background":  # the log keeps both, this start's lines after its own marker
        assert re.search(r"---- start \(pid \d+\): .*nosuchset", text), text
    assert not [n for n in LEFTOVERS if (runtime_of(env) / n).exists()]


@pytest.mark.slow
def test_with_no_daemon_status_stop_drain_answer_at_once(env):
    """No daemon ever, then after a failed start that had bound its sockets (persistent models,
    a set not installed): the local ipc endpoint is probed, so each verb says so at once."""
    for attempt in ("never started", "after a failed start"):
        if attempt == "after a failed start":
            failed = run(env, "start", "--devices", "cpu", "--persistent-models", "--models",
                         "nosuchset", timeout=60)
            assert failed.returncode == 6, failed.stderr
            assert not [n for n in LEFTOVERS if (runtime_of(env) / n).exists()]
        for verb in ("status", "stop", "drain"):
            t0 = time.monotonic()
            done = run(env, verb, timeout=60)
            took = time.monotonic() - t0
            assert done.returncode == 8, (attempt, verb, done.returncode, done.stderr)
            assert "not running" in done.stderr, done.stderr
            assert took < 5, (attempt, verb, took)


@pytest.mark.slow
def test_a_clean_background_start_and_stop_leave_nothing(env):
    runtime = runtime_of(env)
    pid = start_background(env)
    assert all((runtime / n).exists() for n in LEFTOVERS), sorted(os.listdir(runtime))
    assert json.loads((runtime / "daemon.lock").read_text())["mode"] == "per-job"
    assert int((runtime / "daemon.pid").read_text()) == pid

    stopped = run(env, "stop", "--timeout", "60", timeout=90)
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not [n for n in LEFTOVERS if (runtime / n).exists()], sorted(os.listdir(runtime))
    # And a start after it is a start, not a refusal.
    again = start_background(env)
    assert again != pid


@pytest.mark.slow
def test_every_option_of_every_command_has_help():
    from virnucpro.daemon.cli import main

    missing = [f"{name} {'/'.join(p.opts)}" for name, command in main.commands.items()
               for p in command.params
               if isinstance(p, click.Option) and not p.hidden and not p.help]
    assert not missing, missing
    start = main.commands["start"]
    models = next(p for p in start.params if p.name == "preload")
    assert "repeat" in models.help and "--persistent-models" in models.help
