"""`virnucpro evaluate` on a real tiny-set run of tests/data: both reference files in one input,
evaluated with --viral and --others. The tiny set's scores mean nothing, so only the counts and
the ranges are checked here; the figures themselves are checked by hand in
tests/unit/test_evaluate.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, read_table

VIRAL, OTHERS = DATA / "viral_reference.fasta", DATA / "nonviral_reference.fasta"
TABLES = {"frame": "frames.tsv", "chunk": "chunks.tsv", "sequence": "sequences.tsv"}


def run_cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "virnucpro", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_set_dir) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("evaluate")
    both = tmp / "both.fasta"
    both.write_text(VIRAL.read_text() + OTHERS.read_text())
    out = tmp / "out"
    done = run_cli("predict", both, "-o", out, "--models", "tiny", "--devices", "cpu", "-q",
                   "--no-report")
    assert done.returncode == 0, done.stderr
    done = run_cli("evaluate", out, "--viral", VIRAL, "--others", OTHERS)
    assert done.returncode == 0, done.stderr
    return out, done


def _scored(row: dict[str, str], level: str) -> bool:
    if level == "frame":
        return row["status"] == "ok" and row["p_virus"] != ""
    return row["max_p_virus"] != "" and row["call"] != "unscored"


def test_each_level_counts_the_scored_rows_of_its_table(evaluated):
    out, _done = evaluated
    ev = json.loads((out / "evaluation.json").read_text())
    assert list(ev["levels"]) == ["frame", "chunk", "sequence"]
    for level, table in TABLES.items():
        rows = read_table(out / table)
        entry = ev["levels"][level]
        assert entry["table"] == table
        assert entry["n"] == sum(_scored(r, level) for r in rows) > 0
        assert entry["rows"] == len(rows) == entry["n"] + entry["unscored"] + entry["without_truth"]
        assert entry["without_truth"] == 0
        c = entry["confusion"]
        assert c["tp"] + c["fp"] + c["tn"] + c["fn"] == entry["n"]
        assert entry["positives"] == c["tp"] + c["fn"] and entry["negatives"] == c["tn"] + c["fp"]
        called = sum(r["call"] == "virus" for r in rows)
        assert c["tp"] + c["fp"] == called
        for key, value in entry["metrics"].items():
            if value is None:
                assert key in entry["undefined"]
            else:
                assert (-1.0 if key == "mcc" else 0.0) <= value <= 1.0, (level, key, value)
        if entry["roc"]:
            assert entry["roc"]["fpr"][-1] == entry["roc"]["tpr"][-1] == 1.0
    # Every sequence has truth (11 records in the two files), none is missing from the run.
    assert ev["truth"]["sequences"] == 11 and ev["truth"]["virus"] == 4
    assert ev["sequences_without_truth"]["count"] == ev["truth_ids_not_in_run"]["count"] == 0
    assert ev["levels"]["sequence"]["positives"] + ev["levels"]["sequence"]["negatives"] + \
        ev["levels"]["sequence"]["unscored"] == 11
    info = json.loads((out / "run.json").read_text())
    assert ev["run"]["input_sha256"] == info["input"]["sha256"] and ev["run"]["tiny"] is True
    assert [f["sha256"] for f in ev["truth"]["files"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (VIRAL, OTHERS)]


def test_the_table_on_stdout_has_the_three_levels_and_the_report_its_section(evaluated):
    out, done = evaluated
    ev = json.loads((out / "evaluation.json").read_text())
    lines = [line.split() for line in done.stdout.splitlines()]
    assert lines[0] == ["level", "n", "unscored", "no-truth", "accuracy", "precision", "recall",
                        "F1", "MCC", "AUROC"]
    assert [tuple(row[:4]) for row in lines[1:]] == [
        (level, *(str(ev["levels"][level][k]) for k in ("n", "unscored", "without_truth")))
        for level in TABLES]
    assert "max_p_virus" in done.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<h2 id="evaluation">Evaluation</h2>' in page
    assert all(f'<tr id="evaluation-{level}">' in page for level in TABLES)
    assert 'id="plot-evaluation-roc"><svg' in page and 'id="plot-evaluation-pr"><svg' in page


def test_json_output_and_a_missing_truth_file(evaluated, tmp_path):
    out, _done = evaluated
    done = run_cli("evaluate", out, "--viral", VIRAL, "--others", OTHERS, "--json",
                   "--no-report")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["levels"].keys() == {"frame", "chunk", "sequence"}
    bad = run_cli("evaluate", out, "--truth", tmp_path / "none.tsv")
    assert bad.returncode == 3 and "no such file" in bad.stderr
