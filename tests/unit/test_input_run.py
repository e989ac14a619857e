"""One input's run (`virnucpro.run.input_run.InputRun`) driven by hand, as a driver does: a
fake engine scores each shard from its frame ids, a listener records what the run says, real
temp folders, reports off."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DATA
from virnucpro.config import PredictConfig
from virnucpro.errors import NoSpaceError
from virnucpro.models.sets import resolve_model_set
from virnucpro.run.events import RunListener
from virnucpro.run.folder import RunMode
from virnucpro.run.input_run import InputRun, RunModels, claim_runs
from virnucpro.run.inputs import validate_inputs
from virnucpro.scoring import ShardScores
from virnucpro.shards import ShardStore

VIRAL = DATA / "viral_reference.fasta"


class FakeEngine:
    name, devices, model_loads, worker_deaths, load_seconds = "fake", ["cpu"], 0, 0, None
    handed = 0

    def map(self, tasks: Iterable):
        for task in tasks:
            self.handed += 1
            p = np.array([(hash(f) % 1000) / 1000 for f in task.frame_ids], dtype=np.float32)
            yield task, ShardScores(np.stack([1 - p, p], axis=1))


class Heard(RunListener):
    def __init__(self, take_failures: bool = False) -> None:
        self.events: list[tuple] = []
        self.take_failures = take_failures

    def started(self, run):
        self.events.append(("started", run.item.name))

    def note(self, run, line):
        self.events.append(("note", line))

    def progress(self, run, sequences, chunks, scored):
        self.events.append(("progress", sequences, chunks, scored))

    def finished(self, run, info):
        self.events.append(("finished", info))

    def failed(self, run, message, error):
        self.events.append(("failed", message, type(error).__name__))
        return self.take_failures


def _runs(tmp: Path, heard: RunListener, **options) -> list[InputRun]:
    config = PredictConfig(inputs=(str(VIRAL),), outdir=tmp / "out", models="tiny",
                           report=False, shard_frames=4, **options)
    items = validate_inputs(config, tmp)
    model_set = resolve_model_set("tiny", fetch_missing=False, progress=False)
    return claim_runs(items, config, RunModels.of(model_set, 500, "float32"), listener=heard)


def _drive(run: InputRun, engine: FakeEngine) -> dict | None:
    for task, scores in engine.map(run.tasks(engine)):
        run.done(task, scores)
    return run.finish()


def test_a_run_says_it_started_its_progress_and_its_run_json(tmp_path, tiny_set_dir):
    heard = Heard()
    [run] = _runs(tmp_path, heard)
    assert run.mode is RunMode.FRESH
    info = _drive(run, FakeEngine())
    kinds = [e[0] for e in heard.events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and set(kinds[1:-1]) == {"progress"}
    chunks = [e[2] for e in heard.events if e[0] == "progress"]
    assert chunks == sorted(chunks) and chunks[-1] == info["counts"]["chunks"] > 0
    assert heard.events[-1][1] == info == json.loads(run.item.layout.run_json.read_text())
    assert info["engine"]["name"] == "fake" and not info["parameters"]["resumed"]
    assert list(info["timings"])[:2] == ["validate_s", "score_s"]


def test_a_finished_run_under_resume_is_taken_up_and_says_so(tmp_path, tiny_set_dir):
    [run] = _runs(tmp_path, Heard())
    first = _drive(run, FakeEngine())
    heard = Heard()
    [again] = _runs(tmp_path, heard, resume=True)
    assert again.mode is RunMode.DONE
    assert again.take_up() == first
    assert heard.events == [
        ("note", f"viral_reference: already complete in {tmp_path / 'out'} (nothing to resume)"),
        ("finished", first)]


def test_a_failure_is_raised_or_taken_by_the_listener_in_predicts_words(tmp_path, tiny_set_dir,
                                                                       monkeypatch):
    def full(self, k, frame_ids, scores):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ShardStore, "write", full)
    heard = Heard()
    [run] = _runs(tmp_path / "a", heard)
    with pytest.raises(NoSpaceError, match="then run the same command with --resume"):
        _drive(run, FakeEngine())
    [(_, message, error)] = [e for e in heard.events if e[0] == "failed"]
    assert message.startswith(f"{tmp_path / 'a' / 'out'}: no space left") and error == "NoSpaceError"

    taken = Heard(take_failures=True)
    [run] = _runs(tmp_path / "b", taken)
    run.way_on = "then retry the job"
    engine = FakeEngine()
    assert _drive(run, engine) is None  # each call returned, and no shard after the failure
    assert engine.handed == 1
    failed = [e for e in taken.events if e[0] == "failed"]
    assert len(failed) == 1 and failed[0][1].endswith("free some space, then retry the job")
    assert run.failure == failed[0][1] and not run.complete
    assert not run.item.layout.run_json.exists()


def test_results_in_flight_when_the_driver_stops_pulling_tasks_are_still_taken(
        tmp_path, tiny_set_dir):
    """A daemon stopping stops pulling a run's tasks (the generator is closed) while shards
    are still with the engine: those results are written and merged, nothing fails, and the
    run resumes from them afterwards."""
    fasta = tmp_path / "short.fa"
    fasta.write_text("".join(f">r{i}\n{'ACGTTGCAAGCT' * 10}\n" for i in range(40)))
    heard = Heard()
    config = PredictConfig(inputs=(str(fasta),), outdir=tmp_path / "out", models="tiny",
                           report=False, shard_frames=4)
    items = validate_inputs(config, tmp_path)
    model_set = resolve_model_set("tiny", fetch_missing=False, progress=False)
    [run] = claim_runs(items, config, RunModels.of(model_set, 500, "float32"), listener=heard)
    tasks = run.tasks(FakeEngine())
    handed = [next(tasks) for _ in range(4)]
    tasks.close()  # the driver stops pulling
    for task, scores in FakeEngine().map(handed):
        run.done(task, scores)
    assert not [e for e in heard.events if e[0] == "failed"], heard.events
    assert run.failure is None
    store = ShardStore(run.item.layout.shards)
    assert all(store.is_done(t.key[1], t.frame_ids) for t in handed)
    run.abandon()  # what the daemon does at close: the staged tables stay for the next start


class GpuWorkersEngine(FakeEngine):
    """Two GPU workers taking shards in turn, each reporting itself as ModelScorer does: an
    automatic budget and a peak that grows."""

    devices = ["cuda:0", "cuda:1"]

    def map(self, tasks: Iterable):
        from dataclasses import replace

        for k, (task, scores) in enumerate(super().map(tasks)):
            worker = k % 2
            yield task, replace(scores, worker={
                "worker": worker, "device": f"cuda:{worker}", "precision": "bfloat16",
                "weights_bytes": 100, "batch_tokens": 65536, "peak_reserved_bytes": 1000 + k,
                "batch_tokens_auto": f"65536 tokens (auto: 70.0 of 80.0 GiB free on cuda:{worker})"})


def test_each_workers_last_report_goes_into_run_json_and_its_auto_budget_is_said_once(
        tmp_path, tiny_set_dir):
    heard = Heard()
    [run] = _runs(tmp_path, heard)
    engine = GpuWorkersEngine()
    assert [t.batch_tokens for t in run.tasks(engine)][:1] == [0]  # 0: each worker picks
    run.abandon()
    heard = Heard()
    [run] = _runs(tmp_path / "again", heard)
    _drive(run, engine)
    said = [e[1] for e in heard.events if e[0] == "note" and "batch budget" in e[1]]
    assert said == ["worker 0 on cuda:0: batch budget 65536 tokens (auto: 70.0 of 80.0 GiB free "
                    "on cuda:0)", "worker 1 on cuda:1: batch budget 65536 tokens (auto: 70.0 of "
                    "80.0 GiB free on cuda:1)"]
    workers = json.loads(run.item.layout.run_json.read_text())["engine"]["workers"]
    assert [w["device"] for w in workers] == ["cuda:0", "cuda:1"]
    shards = engine.handed
    assert shards > 2 and max(w["peak_reserved_bytes"] for w in workers) == 1000 + shards - 1
