"""`virnucpro doctor` through the installed command line: every section, the tiny run, the
daemon absent (a warning), and a corrupted set found by `--verify` (a problem, exit 11)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro.doctor import EXIT_PROBLEMS

SECTIONS = {"versions", "devices", "cache", "model sets", "daemon", "tiny run"}


def run_doctor(*args: str, home: Path, runtime: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VIRNUCPRO_HOME": str(home),
           "XDG_RUNTIME_DIR": str(runtime)}  # an empty runtime folder: no daemon is found
    env.pop("VIRNUCPRO_ENDPOINT", None)
    exe = Path(sys.executable).with_name("virnucpro")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "virnucpro"]
    return subprocess.run([*cmd, "doctor", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runtime")
    os.chmod(path, 0o700)
    return path


@pytest.fixture(scope="module")
def healthy(tiny_set_dir, runtime) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_doctor("--json", home=tiny_set_dir.parents[1], runtime=runtime)
    return proc, json.loads(proc.stdout)


def test_every_section_is_there_with_a_status_and_exit_0(healthy):
    proc, result = healthy
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = result["checks"]
    assert {c["section"] for c in checks} == SECTIONS
    for c in checks:
        assert set(c) == {"section", "name", "status", "detail", "fix"}
        assert c["status"] in ("ok", "warning", "problem"), c
        assert c["status"] == "ok" or c["fix"], c  # every warning says what to do
    assert result["problems"] == 0
    assert result["warnings"] == sum(c["status"] == "warning" for c in checks)
    names = {(c["section"], c["name"]) for c in checks}
    for name in ("python", "torch", "torch CUDA build", "fair-esm", "tokenizers"):
        assert ("versions", name) in names
    assert ("model sets", "published") in names and ("model sets", "tiny") in names


def test_the_tiny_run_is_ok_and_the_daemon_is_a_warning(healthy):
    _, result = healthy
    by = {(c["section"], c["name"]): c for c in result["checks"]}
    run = by[("tiny run", "predict")]
    assert run["status"] == "ok" and "completed" in run["detail"], run
    daemon = by[("daemon", "socket")]
    assert daemon["status"] == "warning" and "not running" in daemon["detail"], daemon
    tiny = by[("model sets", "tiny")]
    assert tiny["status"] == "ok" and "recorded sha256" in tiny["detail"], tiny
    published = by[("model sets", "published")]  # absent here: a warning naming the fetch
    assert published["status"] == "warning"
    assert "virnucpro models fetch published" in published["fix"]
    cache = by[("cache", "model cache")]
    assert "free of" in cache["detail"]


@pytest.mark.slow
def test_a_corrupted_file_is_a_problem_with_verify(tiny_set_dir, runtime, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(tiny_set_dir, home / "sets" / "tiny")  # a copy: the session's set stays
    target = next((home / "sets" / "tiny").glob("*_model.*"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only a hash check can tell
    target.write_bytes(bytes(data))

    plain = run_doctor("--json", "--no-run", home=home, runtime=runtime)
    assert plain.returncode == 0, plain.stdout + plain.stderr

    proc = run_doctor("--json", "--no-run", "--verify", home=home, runtime=runtime)
    assert proc.returncode == EXIT_PROBLEMS, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["problems"] >= 1
    tiny = next(c for c in result["checks"] if c["section"] == "model sets"
                and c["name"] == "tiny")
    assert tiny["status"] == "problem" and target.name in tiny["detail"], tiny
    assert tiny["fix"]


def test_the_human_table(tiny_set_dir, runtime):
    proc = run_doctor("--no-run", home=tiny_set_dir.parents[1], runtime=runtime)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("ok") and "versions: python" in line for line in lines)
    assert any(line.startswith("WARNING") and "daemon: socket" in line for line in lines)
    assert any("-> " in line for line in lines)  # the fix under a warning
    assert lines[-1].startswith("0 problem(s), ")
    assert not proc.stdout.lstrip().startswith("{")
