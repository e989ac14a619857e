"""The local engine's overlap: shard k scores on a helper thread while the caller's iterator
builds shard k+1. Order, results and errors must be those of the plain loop. Then the engine
interface: every engine satisfies the `Engine` protocol, `make_engine` builds from an
`EngineConfig`, and a stand-in scorer is chosen by $VIRNUCPRO_TEST_SCORER."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import DATA
from tests.integration.test_pool import assert_same_results
from virnucpro.config import PredictConfig
from virnucpro.engine import DaemonEngine, Engine, LocalEngine, PoolEngine, make_engine
from virnucpro.engine_config import EngineConfig
from virnucpro.errors import VirNucProError
from virnucpro.models.sets import resolve_model_set
from virnucpro.pipeline import run_predict
from virnucpro.pool.worker import ShardTask
from virnucpro.scoring import ShardScores


def _task(k: int) -> ShardTask:
    return ShardTask(key=("input", k), frame_ids=[], nucleotides=[], proteins=[], batch_tokens=64,
                     keep_features=False, chunk_size=500)


class _Scorer:
    """Stands in for the models: records what the feed had produced when each shard began."""

    def __init__(self, produced: list[int], fail_at: int | None = None, wait_s: float = 5) -> None:
        self.produced = produced
        self.wait_s = wait_s
        self.fail_at = fail_at
        self.seen: dict[int, list[int]] = {}
        self.next_built = threading.Event()
        self.prepared_on: dict[int, str] = {}  # shard -> the thread that made its batches
        self.scored_with: dict[int, object] = {}

    def prepare(self, task: ShardTask) -> str:
        self.prepared_on[task.key[1]] = threading.current_thread().name
        return f"batches of {task.key[1]}"

    def score(self, task: ShardTask, stop=None, prepared=None) -> ShardScores:
        k = task.key[1]
        self.scored_with[k] = prepared
        if k == 0:  # wait (bounded) for the feed to build shard 1 while this one "computes"
            self.next_built.wait(self.wait_s)
        self.seen[k] = list(self.produced)
        if k == self.fail_at:
            raise RuntimeError(f"scoring failed on shard {k}")
        return ShardScores.failed(1, 0)


def _engine(tiny_set_dir: Path, scorer: _Scorer, overlap: bool) -> LocalEngine:
    engine = LocalEngine("tiny", "cpu", 500, persistent=True, overlap=overlap)
    engine._scorer = scorer  # the exact moment under test, without loading models
    return engine


def _feed(produced: list[int], scorer: _Scorer, n: int):
    for k in range(n):
        produced.append(k)
        if k == 1:
            scorer.next_built.set()
        yield _task(k)


@pytest.mark.parametrize("overlap", [True, False])
def test_overlap_builds_the_next_shard_while_one_scores_and_keeps_order(tiny_set_dir, overlap):
    produced: list[int] = []
    scorer = _Scorer(produced, wait_s=5 if overlap else 0.3)  # without overlap it cannot come
    engine = _engine(tiny_set_dir, scorer, overlap)
    keys = [task.key[1] for task, _ in engine.map(_feed(produced, scorer, 5))]
    assert keys == [0, 1, 2, 3, 4]
    # With overlap, shard 1 was built while shard 0 scored; without, strictly one after another.
    assert scorer.seen[0] == ([0, 1] if overlap else [0])
    if overlap:  # each shard's host work done by the thread that builds shards, not the scorer's
        assert set(scorer.prepared_on.values()) == {threading.current_thread().name}
        assert scorer.scored_with == {k: f"batches of {k}" for k in range(5)}


def test_overlap_raises_a_scoring_error_at_its_shard_after_the_earlier_ones(tiny_set_dir):
    produced: list[int] = []
    scorer = _Scorer(produced, fail_at=2)
    engine = _engine(tiny_set_dir, scorer, overlap=True)
    got = []
    with pytest.raises(RuntimeError, match="shard 2"):
        for task, _ in engine.map(_feed(produced, scorer, 5)):
            got.append(task.key[1])
    assert got == [0, 1]


def test_a_feed_error_while_building_the_next_shard_still_delivers_the_scored_one(tiny_set_dir):
    def feed():
        yield _task(0)
        yield _task(1)
        raise ValueError("record 9 is not DNA")  # while shard 2 is being built

    engine = _engine(tiny_set_dir, _Scorer([], wait_s=0), overlap=True)
    got = []
    with pytest.raises(ValueError, match="record 9"):
        for task, _ in engine.map(feed()):
            got.append(task.key[1])
    assert got == [0, 1]  # shard 1 was scored: it is handed over (and written) before the error


def test_leaving_while_a_shard_scores_drops_the_queued_one_instead_of_scoring_it(tiny_set_dir):
    class Stop(Exception):
        pass

    release, started = threading.Event(), []

    class Blocking:
        def prepare(self, task: ShardTask) -> None:
            return None

        def score(self, task: ShardTask, stop=None, prepared=None) -> ShardScores:
            started.append(task.key[1])
            if task.key[1] == 0:
                release.wait(10)
            return ShardScores.failed(1, 0)

    engine = LocalEngine(str(tiny_set_dir), "cpu", 500, persistent=True, overlap=True)
    engine._scorer = Blocking()

    def stop(signum, frame):
        raise Stop

    def interrupt() -> None:  # while this thread waits for shard 0 and shard 1 is queued
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.3)
        release.set()

    old = signal.signal(signal.SIGUSR1, stop)
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(Stop):
            for _ in engine.map(_task(k) for k in range(5)):
                pass
    finally:
        signal.signal(signal.SIGUSR1, old)
        release.set()
    assert started == [0]  # shard 1 was dropped, not scored while the caller was leaving


def test_overlap_is_on_for_gpus_only_by_default(tiny_set_dir):
    tiny = resolve_model_set(str(tiny_set_dir))
    assert not make_engine(EngineConfig(engine="local"), tiny, ["cpu"], 500).overlap
    assert LocalEngine(str(tiny_set_dir), "cuda:0", 500, persistent=False).overlap


def test_an_overlapped_run_writes_what_the_plain_loop_writes(tmp_path, tiny_set_dir):
    inputs = (str(DATA / "viral_reference.fasta"), str(DATA / "nonviral_reference.fasta"))

    def run(out: Path, overlap: bool) -> None:
        config = PredictConfig(inputs=inputs, outdir=out, models="tiny", progress=False,
                               shard_frames=4, device="cpu", report=False)
        engine = LocalEngine(str(tiny_set_dir), "cpu", 500, persistent=True, overlap=overlap)
        try:
            run_predict(config, engine=engine)
        finally:
            engine.close()

    run(tmp_path / "plain", False)
    run(tmp_path / "overlap", True)
    for name in ("viral_reference", "nonviral_reference"):
        assert_same_results(tmp_path / "plain" / name, tmp_path / "overlap" / name)


def _members(protocol: type) -> set[str]:
    """What a protocol declares: its annotated attributes, methods and properties."""
    return set(vars(protocol).get("__annotations__", {})) | {
        k for k, v in vars(protocol).items()
        if not k.startswith("_") and (callable(v) or isinstance(v, property))}


ENGINE = {"name", "model_set", "devices", "model_loads", "worker_deaths", "load_seconds", "map",
          "end_input", "close"}
DAEMON_ENGINE = {"start", "describe_workers", "kill", "cancel", "notify"}


def test_every_engine_class_has_what_the_protocols_ask():
    from virnucpro.ray_engine import RayEngine  # importing it needs no Ray

    assert _members(Engine) == ENGINE and _members(DaemonEngine) == DAEMON_ENGINE
    for cls, wanted in ((LocalEngine, ENGINE), (PoolEngine, ENGINE | DAEMON_ENGINE),
                        (RayEngine, ENGINE | DAEMON_ENGINE)):
        # A member is a class attribute (method, property, constant) or, set per instance,
        # declared at class level.
        declared = vars(cls).get("__annotations__", {})
        missing = {m for m in wanted if not hasattr(cls, m) and m not in declared}
        assert not missing, (cls.__name__, missing)


def test_engines_made_by_make_engine_are_engines(tiny_set_dir):
    tiny = resolve_model_set(str(tiny_set_dir))
    local = make_engine(EngineConfig(), tiny, ["cpu"], 500)  # auto: one device
    pool = make_engine(EngineConfig(), tiny, ["cpu", "cpu"], 500)  # auto: several (not started)
    assert isinstance(local, LocalEngine) and isinstance(local, Engine)
    assert not isinstance(local, DaemonEngine)
    assert isinstance(pool, PoolEngine) and isinstance(pool, DaemonEngine)
    assert local.model_set is tiny and pool.model_set is tiny
    assert local.precision == "float32"  # auto, on a CPU
    pool.close()


@pytest.mark.parametrize(("config", "devices", "message"), [
    (EngineConfig(engine="pool", workers=2), ["cpu"], "need --engine ray"),
    (EngineConfig(ray_address="auto"), ["cpu"], "need --engine ray"),
    (EngineConfig(engine="local"), ["cpu", "cpu"], "the local engine runs on one device, not 2"),
    (EngineConfig(engine="gpu"), ["cpu"], "unknown engine 'gpu'"),
    (EngineConfig(precision="half"), ["cpu"], "unknown precision 'half'"),
])
def test_make_engine_refuses_what_does_not_fit(tiny_set_dir, config, devices, message):
    with pytest.raises(VirNucProError, match=message):
        make_engine(config, resolve_model_set(str(tiny_set_dir)), devices, 500)


def test_the_test_scorer_variable_chooses_the_stand_in(tiny_set_dir, monkeypatch):
    from virnucpro.pool.worker import ModelScorer
    from virnucpro.standin import HashScorer

    monkeypatch.setenv("VIRNUCPRO_TEST_SCORER", "virnucpro.standin:HashScorer")
    engine = LocalEngine(str(tiny_set_dir), "cpu", 500, persistent=False)
    assert isinstance(engine._get_scorer(), HashScorer) and engine.model_loads == 1
    engine.close()
    monkeypatch.delenv("VIRNUCPRO_TEST_SCORER")
    assert isinstance(engine._get_scorer(), ModelScorer)
    engine.close()


def test_shards_prepared_on_the_feeding_thread_score_as_shards_prepared_in_place(tiny_set_dir):
    # The real scorer, bfloat16 weights: with overlap each shard's batches are made by
    # ModelScorer.prepare on this thread and scored on the helper; the scores are the same.
    import numpy as np

    from tests.helpers import columns, read_first_sequence
    from virnucpro.chunking import chunk_spans
    from virnucpro.translation import translate_six_frames

    genome = read_first_sequence("viral_reference.fasta")
    frames = [f for k, (s, e) in enumerate(chunk_spans(len(genome), 500))
              for f in translate_six_frames(genome[s:e], f"g_chunk_{k + 1}", s)]
    nucleotides, proteins = columns(frames)
    tasks = [ShardTask(("in", k), [f"f{k}_{j}" for j in range(len(nucleotides[k::3]))],
                       nucleotides[k::3], proteins[k::3], batch_tokens=0, keep_features=False,
                       chunk_size=500) for k in range(3)]
    got = {}
    for overlap in (True, False):
        engine = LocalEngine("tiny", "cpu", 500, persistent=True, overlap=overlap,
                             precision="bfloat16")
        got[overlap] = [(task.key, scores) for task, scores in engine.map(iter(tasks))]
        engine.close()
    for (key, ahead), (same, in_place) in zip(got[True], got[False], strict=True):
        assert key == same and np.array_equal(ahead.probs, in_place.probs)
        assert ahead.worker["precision"] == "bfloat16" and ahead.worker["batch_tokens"] == 4096
