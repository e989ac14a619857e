"""run.json through `RunRecord` on a real run: today's reads and writes back byte for byte, and a
folder as the first release wrote it (tests/earlier_runs.py) is still rescored, reported and
evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import standin_cases
from tests.earlier_runs import as_first_release
from tests.helpers import read_table
from virnucpro.evaluate import Truth, evaluate_run
from virnucpro.pipeline import run_predict
from virnucpro.report import write_report
from virnucpro.rescore import RescoreSettings, rescore
from virnucpro.run_record import RunRecord


@pytest.fixture
def edge_run(tmp_path: Path, monkeypatch) -> Path:
    standin_cases.use_standin(monkeypatch)
    out = tmp_path / "run"
    run_predict(standin_cases.config("edge300", out, report=True))
    return out


def test_today_s_run_json_reads_and_writes_back_byte_for_byte(edge_run: Path,
                                                               tmp_path: Path) -> None:
    record = RunRecord.read(edge_run / "run.json")
    record.write(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (edge_run / "run.json").read_bytes()
    assert record.engine is not None and record.resume_key is not None
    assert record.outputs["report.html"] == "report.html"


def test_a_first_release_folder_is_rescored_reported_and_evaluated(edge_run: Path,
                                                                   tmp_path: Path) -> None:
    old = as_first_release(edge_run)
    record = RunRecord.read(old / "run.json")
    assert record.engine is None and "region_gap" not in record.parameters
    assert "threads" in record.parameters

    page = write_report(old).read_text()
    assert "0.3" in page and "edge" in page

    ids = [row["sequence_id"] for row in read_table(old / "sequences.tsv")]
    truth = Truth({sid: n % 2 == 0 for n, sid in enumerate(ids)}, {"made": "here"})
    evaluation = evaluate_run(old, truth)
    assert evaluation["run"]["chunk_size"] == 300 and evaluation["run"]["tiny"] is True
    assert evaluation["run"]["threshold"] == 0.3 and evaluation["run"]["rescored"] == 0

    [new] = rescore(old, RescoreSettings(threshold=0.5), outdir=tmp_path / "new", report=True)
    written = json.loads((tmp_path / "new" / "run.json").read_text())
    assert written == new.to_json()
    # Its own keys kept as they were (none of today's invented), the rescore recorded.
    assert "engine" not in written and "resume_key" not in written
    assert written["parameters"]["threads"] is None and written["parameters"]["threshold"] == 0.5
    assert written["rescored"][0]["before"]["threshold"] == 0.3
    assert (tmp_path / "new" / "regions.tsv").is_file()
    assert (tmp_path / "new" / "report.html").is_file()
