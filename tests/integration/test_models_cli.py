"""`virnucpro models ...` end to end: data on stdout, messages on stderr, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from virnucpro.cli.root import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_set_dir: Path) -> Path:
    """A fresh cache holding a copy of the tiny set, offline."""
    home = tmp_path / "home"
    shutil.copytree(tiny_set_dir, home / "sets" / "tiny")
    monkeypatch.setenv("VIRNUCPRO_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def run(*args: str):
    return CliRunner().invoke(main, ["models", *args], catch_exceptions=False)


def test_path_prints_the_cache_root_and_a_sets_folder(home):
    assert run("path").stdout == f"{home}\n"
    assert run("path", "tiny").stdout == f"{home / 'sets' / 'tiny'}\n"


def test_list_json_reports_each_set(home):
    result = run("list", "--json")
    assert result.exit_code == 0
    listed = {s["name"]: s for s in json.loads(result.stdout)}
    assert listed["tiny"]["complete"] and listed["tiny"]["is_tiny"]
    assert listed["published"]["present"] is False


def test_list_prints_a_table(home):
    lines = run("list").stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "KIND"]
    assert lines[2].split()[:3] == ["tiny", "ready", "tiny"]


def test_fetch_offline_fails_with_exit_4_and_says_how_to_import(home):
    result = run("fetch", "--quiet")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert "virnucpro models import DIR" in result.stderr


def test_fetch_tiny_prints_the_folder(home):
    result = run("fetch", "tiny", "--quiet")
    assert result.exit_code == 0 and result.stdout == f"{home / 'sets' / 'tiny'}\n"


def test_import_then_verify_then_a_flipped_byte_fails_verify(home, tmp_path):
    src = tmp_path / "offline"
    shutil.copytree(home / "sets" / "tiny", src)
    (src / "README.txt").write_text("ignored")
    result = run("import", str(src), "--name", "lab")
    assert result.exit_code == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder == home / "sets" / "lab"
    assert "imported 10 files as 'lab' (tiny set)" in result.stderr
    assert not (folder / "README.txt").exists()

    result = run("verify", "lab", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ok"] is True

    checkpoint = folder / "500_model.pth"
    data = bytearray(checkpoint.read_bytes())
    data[-10] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    result = run("verify", "lab")
    assert result.exit_code == 4
    assert result.stdout.startswith("500_model.pth: sha256")
    report = json.loads(run("verify", str(folder), "--json").stdout)
    assert report["ok"] is False and report["problems"][0].startswith("500_model.pth")


def test_verify_of_an_unknown_set_names_the_known_ones(home):
    result = run("verify", "nonesuch")
    assert result.exit_code == 4
    assert "published, tiny" in result.stderr


def test_the_installed_command_runs_in_a_subprocess(home):
    env = {**os.environ, "VIRNUCPRO_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "virnucpro", "models", "path", "tiny"],
                         capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout == f"{home / 'sets' / 'tiny'}\n"


def test_predict_without_models_on_a_machine_that_cannot_reach_the_hub(home, tmp_path,
                                                                        monkeypatch):
    """The default set cannot be fetched: exit 4 naming the ways out; afterwards nothing in the
    cache looks broken (`models list`, `doctor`)."""
    from virnucpro.models import fetch

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("VIRNUCPRO_OFFLINE", raising=False)
    monkeypatch.setattr(fetch, "RETRY_DELAYS_S", (0.0, 0.0, 0.0))
    for var in ("VIRNUCPRO_HF_ENDPOINT", "VIRNUCPRO_ESM_URL", "VIRNUCPRO_CLASSIFIER_URL"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    fasta = Path(__file__).resolve().parents[1] / "data" / "viral_reference.fasta"
    # Not -q: the in-process CLI sets the root logger's level, which later tests would inherit.
    result = CliRunner().invoke(main, ["predict", str(fasta), "-o", str(tmp_path / "out")])
    assert result.exit_code == 4, result.output
    for way_out in ("virnucpro models import DIR", "--models PATH", "--models tiny"):
        assert way_out in result.stderr
    listed = {s["name"]: s for s in json.loads(run("list", "--json").stdout)}
    assert listed["published"]["state"] == "absent"
    assert not (home / "sets" / "published").exists()
    doctor = CliRunner().invoke(main, ["doctor", "--no-run", "--json"])
    checks = json.loads(doctor.stdout)["checks"]
    published = next(c for c in checks if c["name"] == "published")
    assert published["status"] == "warning" and doctor.exit_code == 0, doctor.stdout
