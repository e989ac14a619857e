"""run.json's codec: today's file reads and writes back byte for byte, the files of earlier
versions read (and write back as they were), unknown keys are kept, a wrong type is named, and
the module stays light (the dashboard and the daemon read it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.earlier_runs import first_release_run_json
from virnucpro.errors import OutputError
from virnucpro.layout import write_json_atomic
from virnucpro.run_record import RunRecord, read_finished_run

TODAY_KEYS = ["virnucpro_version", "status", "started", "finished", "command", "input",
              "parameters", "engine", "models", "tiny", "resume_key", "counts", "timings",
              "outputs"]


def today_info() -> dict:
    """A run.json's content as `run.finished.run_info` builds it today, key for key in its order."""
    return {
        "virnucpro_version": "0.1.0", "status": "completed",
        "started": "2026-12-07T10:00:00+00:00", "finished": "2026-12-07T10:01:02+00:00",
        "command": ["virnucpro", "predict", "in.fa.gz", "-o", "out"],
        "input": {"source": "in.fa.gz", "name": "in", "path": "/data/in.fa.gz",
                  "compression": "gzip", "sha256": "ab" * 32, "size": 1234, "records": 3,
                  "bases": 4567},
        "parameters": {"inputs": ["in.fa.gz"], "outdir": "out", "chunk_size": 500,
                       "models": "tiny", "device": "auto", "batch_tokens": None,
                       "threshold": 0.5, "min_length": 1, "save_embeddings": False,
                       "rename_duplicates": False, "force": False, "resume": False,
                       "shard_frames": 4096, "progress": True, "engine": "auto",
                       "ray_address": None, "workers": None, "gpus_per_worker": 1.0,
                       "persistent_models": False, "cache_clear_interval": 0,
                       "worker_timeout": 600.0, "threads": None, "precision": "auto",
                       "report": True, "region_gap": 1, "region_min_p": None,
                       "min_region_length": 1000, "resumed": False, "shards_scored_now": 2},
        "engine": {"name": "local", "devices": ["cpu"], "persistent_models": False,
                   "model_loads_so_far": 1, "worker_deaths": 0},
        "models": {"name": "tiny", "root": "/cache/tiny", "is_tiny": True, "source": None,
                   "files": [{"path": "classifier_500.pth", "size": 10, "sha256": None}]},
        "tiny": True,
        "resume_key": {"input": {"sha256": "ab" * 32, "size": 1234, "records": 3},
                       "parameters": {"chunk_size": 500}, "models": {"files": {},
                                                                      "precision": "float32"}},
        "counts": {"sequences": 3, "sequences_virus": 1, "frames": 42, "regions": 1},
        "timings": {"validate_s": 0.01, "score_s": 1.5, "write_s": 0.002,
                    "tables_after_last_shard_s": 0.0001, "report_s": 0.4},
        "outputs": {"frames.tsv": "frames.tsv", "sequences.tsv": "sequences.tsv",
                    "report.html": "report.html"},
    }


def test_today_s_run_json_round_trips_byte_for_byte(tmp_path: Path) -> None:
    info = today_info()
    first, again = tmp_path / "run.json", tmp_path / "again.json"
    write_json_atomic(first, info)
    record = RunRecord.read(first)
    record.write(again)
    assert again.read_bytes() == first.read_bytes()
    assert list(record.to_json()) == TODAY_KEYS
    assert RunRecord.from_json(info).to_json() == info


def test_the_record_answers_what_readers_ask() -> None:
    record = RunRecord.from_json(today_info())
    assert record.completed and record.is_tiny and record.model_set == "tiny"
    assert record.chunk_size == 500 and record.threshold == 0.5
    assert record.input["sha256"] == "ab" * 32 and record.engine["name"] == "local"
    assert record.rescored == [] and record.extra == {}


def test_a_first_release_run_json_reads_and_writes_back_as_it_was(tmp_path: Path) -> None:
    old = first_release_run_json(today_info())
    path = tmp_path / "run.json"
    write_json_atomic(path, old)
    record = RunRecord.read(path)
    assert record.engine is None and record.resume_key is None
    assert record.parameters["threads"] is None and "region_gap" not in record.parameters
    assert record.chunk_size == 500 and record.completed
    before = path.read_bytes()
    record.write(path)
    assert path.read_bytes() == before  # no key of today's invented for it


def test_a_run_json_of_the_pool_era_with_a_scorer_reads() -> None:
    info = today_info()
    info["parameters"] = {**info["parameters"], "scorer": None}  # the engine's own, then
    record = RunRecord.from_json(info)
    assert record.parameters["scorer"] is None and record.to_json() == info


def test_a_hand_written_run_json_reads_with_what_it_has() -> None:
    record = RunRecord.from_json({"status": "completed", "parameters": {"chunk_size": 300},
                                  "models": {"name": "published"}})
    assert record.completed and not record.is_tiny and record.model_set == "published"
    assert record.finished is None and record.counts == {} and record.threshold == 0.5
    assert "finished" not in record.to_json() and "engine" not in record.to_json()
    assert RunRecord.from_json({"parameters": {"models": "tiny"}}).model_set == "tiny"


def test_rescore_entries_and_unknown_keys_are_kept_in_their_place() -> None:
    info = today_info() | {"rescored": [{"at": "later", "from": "a", "to": "b"}],
                           "note": {"by": "a later version"}}
    record = RunRecord.from_json(info)
    assert record.rescored[0]["from"] == "a" and record.extra == {"note": {"by": "a later version"}}
    assert list(record.to_json()) == [*TODAY_KEYS, "rescored", "note"]
    assert record.to_json() == info


@pytest.mark.parametrize(("data", "named"), [
    ([], "not an object but a list"), ({"counts": [1]}, "'counts' is a list, not an object"),
    ({"status": 1}, "'status' is a number, not text"), ({"command": "x"}, "'command' is text"),
    ({"engine": "local"}, "'engine' is text, not an object"),
])
def test_a_wrong_type_is_named(data: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        RunRecord.from_json(data)


def test_an_unreadable_file_is_an_output_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("{")
    with pytest.raises(OutputError, match="unreadable run.json"):
        RunRecord.read(path)
    path.write_text(json.dumps({"counts": "many"}))
    with pytest.raises(OutputError, match="'counts' is text"):
        RunRecord.read(path)


def test_find_gives_none_for_a_file_absent_or_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    assert RunRecord.find(path) is None
    path.write_text("[1,")
    assert RunRecord.find(path) is None
    write_json_atomic(path, today_info())
    assert RunRecord.find(path).completed


def test_a_finished_run_needs_its_two_tables(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "run.json", today_info())
    with pytest.raises(OutputError, match="sequences.tsv is missing"):
        read_finished_run(tmp_path)
    (tmp_path / "sequences.tsv").write_text("")
    (tmp_path / "chunks.tsv").write_text("")
    assert read_finished_run(tmp_path).finished == "2026-12-07T10:01:02+00:00"


def test_the_module_imports_only_the_standard_library() -> None:
    code = ("import sys, virnucpro.run_record; "
            "print(sorted(m for m in ('numpy', 'torch', 'click', 'zmq', 'textual') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
