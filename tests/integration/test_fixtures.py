"""Every engine writes the pinned bytes: the stand-in scorer's runs (tests/standin_cases.py)
through the local engine, the worker pool and a daemon job equal the fixtures file for file,
embeddings included. The stand-in hashes each frame's id, so a score given to the wrong frame,
a row out of order or a changed number format fails here."""

from __future__ import annotations

import pytest

from tests import standin_cases
from tests.daemon_helpers import wait_for
from tests.integration.test_daemon import daemons  # noqa: F401
from virnucpro.pipeline import run_predict


@pytest.mark.parametrize("case", sorted(standin_cases.CASES))
def test_the_local_engine_writes_the_pinned_files(tmp_path, monkeypatch, tiny_set_dir, case):
    standin_cases.use_standin(monkeypatch)
    run_predict(standin_cases.config(case, tmp_path / "o"))
    assert standin_cases.differences(case, tmp_path / "o") == []


@pytest.mark.parametrize("case", sorted(standin_cases.CASES))
def test_blocks_of_a_few_records_and_long_records_in_pieces_write_the_same_files(
        tmp_path, monkeypatch, tiny_set_dir, case):
    import virnucpro.plan

    monkeypatch.setattr(virnucpro.plan, "BLOCK_BASES", 900)  # records over 900 bp in pieces
    monkeypatch.setattr(virnucpro.plan, "BLOCK_RECORDS", 3)
    standin_cases.use_standin(monkeypatch)
    run_predict(standin_cases.config(case, tmp_path / "o"))
    assert standin_cases.differences(case, tmp_path / "o") == []


@pytest.mark.slow
@pytest.mark.parametrize("case", ["edge300", "reference"])
def test_the_worker_pool_writes_the_pinned_files(tmp_path, monkeypatch, tiny_set_dir, case):
    standin_cases.use_standin(monkeypatch)  # the spawned workers inherit it
    run_predict(standin_cases.config(case, tmp_path / "o", device="cpu,cpu", engine="pool"))
    assert standin_cases.differences(case, tmp_path / "o") == []


@pytest.mark.slow
def test_a_daemon_job_writes_the_pinned_files(tmp_path, daemons):  # noqa: F811
    spec = standin_cases.CASES["edge300"]
    d = daemons("--devices", "cpu", "--persistent-models", "--models", "tiny",
                "--shard-frames", str(spec["shard_frames"]), env=standin_cases.SCORER_ENV).start()
    c = d.client()
    options = {"models": "tiny", "report": False,
               **{k: spec[k] for k in ("chunk_size", "rename_duplicates", "min_length",
                                       "threshold", "save_embeddings")}}
    job = c.submit([str(p) for p in spec["inputs"]], outdir=str(tmp_path / "o"), options=options)
    assert wait_for(c, job.id).state.value == "completed"
    assert standin_cases.differences("edge300", tmp_path / "o") == []
