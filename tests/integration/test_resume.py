"""An interrupted run resumes from its last finished shard and ends with the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import virnucpro.scoring
from tests.helpers import DATA
from virnucpro.config import PredictConfig
from virnucpro.pipeline import run_predict

REPO = Path(__file__).resolve().parents[2]
FILES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "prediction_results.txt",
         "prediction_results_highestscore.csv", "viral.fasta")


def _big_input(tmp_path: Path, copies: int) -> Path:
    """The viral reference repeated under new ids, so that a run has many shards."""
    text = (DATA / "viral_reference.fasta").read_text()
    path = tmp_path / "big.fasta"
    with open(path, "w") as fh:
        for k in range(copies):
            fh.write(text.replace(">", f">copy{k}_"))
    return path


def _same_outputs(a: Path, b: Path) -> None:
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_set_dir):
    tmp = tmp_path_factory.mktemp("resume")
    fasta = _big_input(tmp, 3)
    out = tmp / "uninterrupted"
    run_predict(PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                              shard_frames=7, progress=False, save_embeddings=True))
    return fasta, out


def test_interrupted_run_resumes_and_gives_the_same_files(tmp_path, monkeypatch, reference_run):
    fasta, reference = reference_run
    out = tmp_path / "o"
    config = PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                           shard_frames=7, progress=False, save_embeddings=True)
    real = virnucpro.scoring.score_frames
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C while the 4th shard is being scored
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(virnucpro.scoring, "score_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_predict(config)
    assert len(list((out / ".virnucpro" / "shards").glob("shard-*.safetensors"))) == 3
    assert not (out / "frames.tsv").exists() and not (out / "run.json").exists()

    monkeypatch.setattr(virnucpro.scoring, "score_frames", real)
    # Without --resume the half-done folder is refused rather than silently mixed.
    from virnucpro.errors import OutputError

    with pytest.raises(OutputError, match="--resume"):
        run_predict(config)
    [info] = run_predict(PredictConfig(**{**config.__dict__, "resume": True}))
    total = len(list(reference.glob("embeddings/features-*.safetensors")))
    assert info["parameters"]["resumed"] is True
    assert info["parameters"]["shards_scored_now"] == total - 3
    _same_outputs(out, reference)
    assert (out / "embeddings" / "index.tsv").read_text() == (reference / "embeddings" / "index.tsv").read_text()


def _interrupted_at_the_first_shard(config: PredictConfig, monkeypatch) -> None:
    """Run `config` and stop it (as Ctrl-C would) when the first shard is to be scored."""

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(virnucpro.scoring, "score_frames", boom)
        with pytest.raises(KeyboardInterrupt):
            run_predict(config)


def test_resume_refuses_other_parameters(tmp_path, monkeypatch, reference_run):
    fasta, _ = reference_run
    out = tmp_path / "o"
    config = PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                           shard_frames=7, progress=False)
    _interrupted_at_the_first_shard(config, monkeypatch)
    from virnucpro.errors import OutputError

    with pytest.raises(OutputError, match=r"other settings that shape its shards: --chunk-size "
                       r"500 \(now 300\)"):
        run_predict(PredictConfig(**{**config.__dict__, "resume": True, "chunk_size": 300}))


def test_resume_of_a_finished_run_does_nothing(tmp_path, reference_run):
    fasta, _ = reference_run
    out = tmp_path / "o"
    config = PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                           progress=False)
    run_predict(config)
    before = (out / "run.json").stat().st_mtime_ns
    run_predict(PredictConfig(**{**config.__dict__, "resume": True}))
    assert (out / "run.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_killed_process_resumes_with_the_same_files(tmp_path, tiny_set_dir):
    fasta = _big_input(tmp_path, 25)
    base = [sys.executable, "-m", "virnucpro", "predict", str(fasta), "--models", "tiny",
            "--devices", "cpu", "--shard-frames", "4", "-q"]
    subprocess.run([*base, "-o", str(tmp_path / "ref")], check=True, timeout=300)

    out = tmp_path / "o"
    proc = subprocess.Popen([*base, "-o", str(out)])
    shards = out / ".virnucpro" / "shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(shards.glob("shard-*.safetensors"))) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed; make the input bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "run.json").exists()
    subprocess.run([*base, "-o", str(out), "--resume"], check=True, timeout=300)
    _same_outputs(out, tmp_path / "ref")


def test_resume_refuses_other_model_files(tmp_path, monkeypatch, reference_run):
    import shutil

    fasta, _ = reference_run
    other = tmp_path / "other-set"
    shutil.copytree(_tiny_root(), other)
    (other / "500_model.pth").unlink()
    shutil.copy(other / "300_model.pth", other / "500_model.pth")  # other weights, same names
    (other / "manifest.json").unlink()
    out = tmp_path / "o"
    config = PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                           shard_frames=7, progress=False)
    _interrupted_at_the_first_shard(config, monkeypatch)
    from virnucpro.errors import OutputError

    with pytest.raises(OutputError, match="other model files"):
        run_predict(PredictConfig(**{**config.__dict__, "resume": True, "models": str(other)}))


def test_resume_of_a_finished_run_with_other_parameters_is_refused(tmp_path, reference_run):
    fasta, _ = reference_run
    out = tmp_path / "o"
    config = PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                           progress=False)
    run_predict(config)
    from virnucpro.errors import OutputError

    with pytest.raises(OutputError, match=r"finished run of other settings that shape its "
                       r"shards: --chunk-size 500 \(now 300\)"):
        run_predict(PredictConfig(**{**config.__dict__, "resume": True, "chunk_size": 300}))


def _tiny_root() -> Path:
    from virnucpro.models.sets import resolve_model_set

    return resolve_model_set("tiny").root


# -- the staged tables: cut back to a record boundary on resume --------------------------------

def _stop_at_shard(monkeypatch, k: int) -> None:
    """Ctrl-C when the stand-in is about to score shard k (shards before it are on disk)."""
    from virnucpro.standin import HashScorer

    real = HashScorer.score

    def score(self, task):
        if task.key[1] == k:
            raise KeyboardInterrupt
        return real(self, task)

    monkeypatch.setattr(HashScorer, "score", score)


def _staged(out: Path) -> Path:
    return out / ".virnucpro" / "staging"


@pytest.mark.parametrize(("checkpoint_s", "block_bases"), [
    (0.0, None),  # a checkpoint at every record boundary
    (1e9, None),  # the first one only: the staged files run past it and are cut back
    (0.0, 900),  # records over 900 bp planned in pieces: no checkpoint inside one
])
@pytest.mark.slow
def test_a_run_stopped_at_any_shard_resumes_to_the_pinned_files(tmp_path, monkeypatch, tiny_set_dir,
                                                               caplog, checkpoint_s, block_bases):
    import virnucpro.plan
    import virnucpro.run.feed
    from tests import standin_cases

    monkeypatch.setattr(virnucpro.run.feed, "CHECKPOINT_S", checkpoint_s)
    standin_cases.use_standin(monkeypatch)
    if block_bases:
        monkeypatch.setattr(virnucpro.plan, "BLOCK_BASES", block_bases)
    total = len(list((standin_cases.EXPECTED / "edge300" / "embeddings").glob("features-*")))
    caplog.set_level("INFO", logger="virnucpro.run.feed")
    for k in range(1, total, 4):
        out = tmp_path / f"stop{k}"
        with monkeypatch.context() as patch:
            _stop_at_shard(patch, k)
            with pytest.raises(KeyboardInterrupt):
                run_predict(standin_cases.config("edge300", out))
        caplog.clear()
        [info] = run_predict(standin_cases.config("edge300", out, resume=True))
        assert info["parameters"]["shards_scored_now"] == total - k
        assert standin_cases.differences("edge300", out) == [], k
        went_on = [r.message for r in caplog.records if "staged tables go on" in r.message]
        assert went_on or k == 1, k  # stopped in the first record, nothing was staged yet
    assert went_on and "from record 0" not in went_on[0]


def test_staged_tables_shorter_than_their_checkpoint_are_rebuilt_from_the_shards(
        tmp_path, monkeypatch, tiny_set_dir, caplog):
    from tests import standin_cases

    standin_cases.use_standin(monkeypatch)
    out = tmp_path / "o"
    with monkeypatch.context() as patch:
        _stop_at_shard(patch, 30)
        with pytest.raises(KeyboardInterrupt):
            run_predict(standin_cases.config("edge300", out))
    import json

    recorded = json.loads((_staged(out) / "checkpoint.json").read_text())["sizes"]["frames.tsv"]
    # As after a power cut that lost the file's last writes but not the checkpoint.
    os.truncate(_staged(out) / "frames.tsv", recorded - 1)
    with caplog.at_level("WARNING", logger="virnucpro.run.feed"):
        run_predict(standin_cases.config("edge300", out, resume=True))
    assert "frames.tsv is shorter than its checkpoint says" in caplog.text
    assert standin_cases.differences("edge300", out) == []


def test_a_resume_with_another_threshold_calls_every_sequence_with_the_new_one(
        tmp_path, monkeypatch, tiny_set_dir):
    from tests import standin_cases

    standin_cases.use_standin(monkeypatch)
    fresh, out = tmp_path / "fresh", tmp_path / "o"
    run_predict(standin_cases.config("edge300", fresh, threshold=0.6))
    with monkeypatch.context() as patch:
        _stop_at_shard(patch, 30)
        with pytest.raises(KeyboardInterrupt):
            run_predict(standin_cases.config("edge300", out))  # threshold 0.3 so far
    run_predict(standin_cases.config("edge300", out, resume=True, threshold=0.6))
    for name in FILES:
        assert (out / name).read_bytes() == (fresh / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "pool"])
def test_a_sigkilled_run_with_staged_rows_resumes_to_the_pinned_files(tmp_path, tiny_set_dir, engine):
    from tests import standin_cases

    spec = standin_cases.CASES["edge300"]
    out, state = tmp_path / "o", tmp_path / "state"
    state.mkdir()
    base = [sys.executable, "-m", "virnucpro", "predict", str(standin_cases.EDGE_INPUT), "-o", str(out),
            "--models", "tiny", "--devices", "cpu", "--engine", engine, "--chunk-size", "300",
            "--shard-frames", str(spec["shard_frames"]), "--rename-duplicates", "--min-length", "20",
            "--threshold", "0.3", "--save-embeddings", "--no-report", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_STATE_DIR": str(state), "FAKE_STALL_SHARD": "25"}
    proc = subprocess.Popen(base, env={**env, "VIRNUCPRO_TEST_SCORER": "tests.fakes:StallingScorer"})
    try:
        deadline = time.monotonic() + 120
        while not (state / "stalled").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before shard 25"
            time.sleep(0.02)
        time.sleep(0.3)  # the shards before it are merged by now
        assert len(list((out / ".virnucpro" / "shards").glob("shard-*.safetensors"))) >= 1
        assert len((_staged(out) / "frames.tsv").read_text().splitlines()) > 1
        assert (_staged(out) / "checkpoint.json").exists()
    finally:
        proc.kill()
        proc.wait()
    assert not (out / "frames.tsv").exists()
    resumed = subprocess.run([*base[:-1], "-v", "--resume"], env={**env, **standin_cases.SCORER_ENV},
                             timeout=300, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "the staged tables go on from record" in resumed.stderr
    assert standin_cases.differences("edge300", out) == []
