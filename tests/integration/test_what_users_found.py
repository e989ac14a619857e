"""The small things a new user met (issue 24, item 19), through the installed command line:
counts in words that agree with their numbers, information not labelled as a warning, the
report naming the command that wrote it, a process substitution's output folder named for
what it is, one size for a model set, and the evaluation table saying what it left out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA
from virnucpro.cli.summary import summary_line
from virnucpro.models.sets import human_size

VIRAL = DATA / "viral_reference.fasta"
BIN = Path(sys.executable).parent


def _cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "virnucpro"), *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300, check=False)


def test_the_closing_line_counts_in_words_that_agree_with_the_numbers():
    one = summary_line({"input": "a.fa", "outdir": "o", "sequences": 1, "sequences_virus": 1,
                        "regions": 1, "regions_provirus": 1})
    assert "1 sequence," in one and "1 viral region (1 provirus)" in one
    many = summary_line({"input": "a.fa", "outdir": "o", "sequences": 3, "regions": 2,
                         "regions_provirus": 0})
    assert "3 sequences," in many and "2 viral regions (0 proviruses)" in many


@pytest.mark.slow
def test_a_finished_run_resumed_says_so_as_a_note_not_a_warning(tmp_path):
    out = tmp_path / "out"
    assert _cli("predict", VIRAL, "-o", out, "--models", "tiny", "-q").returncode == 0
    done = _cli("predict", VIRAL, "-o", out, "--models", "tiny", "--resume")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "already complete" in line]
    assert notes and all(line.startswith("NOTE: ") for line in notes), done.stderr
    assert not any(line.startswith("WARNING: ") and "complete" in line
                   for line in done.stderr.splitlines())


@pytest.mark.slow
def test_the_report_names_the_command_that_wrote_it(tmp_path):
    out = tmp_path / "out"
    assert _cli("predict", VIRAL, "-o", out, "--models", "tiny", "-q").returncode == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Written by <code>virnucpro predict</code>" in page
    assert _cli("report", out).returncode == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Written by <code>virnucpro report</code>" in page


@pytest.mark.slow
def test_a_process_substitution_gets_a_folder_named_for_a_pipe(tmp_path):
    shutil.copy(VIRAL, tmp_path / "b.fa")
    script = (f"'{BIN / 'virnucpro'}' predict <(cat b.fa) b.fa -o out --models tiny -q "
              "--no-report")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    folders = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(folders) == 2 and "b" in folders, folders
    (piped,) = [f for f in folders if f != "b"]
    assert piped.startswith("pipe-") and piped.removeprefix("pipe-").isdigit(), folders


def test_doctor_and_models_list_give_a_set_one_size(tiny_set_dir):
    listed = json.loads(_cli("models", "list", "--json").stdout)
    tiny = next(s for s in listed if s["name"] == "tiny")
    doctor = json.loads(_cli("doctor", "--no-run", "--json").stdout)
    detail = next(c["detail"] for c in doctor["checks"] if c["name"] == "tiny")
    assert f", {human_size(tiny['size_bytes'])}," in detail, (detail, tiny)
