"""An interrupted run resumes from its last finished shard and ends with the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import virnucpro.features
from tests.helpers import DATA
from virnucpro.pipeline import PredictConfig, run_predict

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
    real = virnucpro.features.score_frames
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C while the 4th shard is being scored
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(virnucpro.features, "score_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_predict(config)
    assert len(list((out / ".virnucpro" / "shards").glob("shard-*.safetensors"))) == 3
    assert not (out / "frames.tsv").exists() and not (out / "run.json").exists()

    monkeypatch.setattr(virnucpro.features, "score_frames", real)
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
        patch.setattr(virnucpro.features, "score_frames", boom)
        with pytest.raises(KeyboardInterrupt):
            run_predict(config)


def test_resume_refuses_other_parameters(tmp_path, monkeypatch, reference_run):
    fasta, _ = reference_run
    out = tmp_path / "o"
    config = PredictConfig(inputs=(str(fasta),), outdir=out, models="tiny", device="cpu",
                           shard_frames=7, progress=False)
    _interrupted_at_the_first_shard(config, monkeypatch)
    from virnucpro.errors import OutputError

    with pytest.raises(OutputError, match="other parameters"):
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

    with pytest.raises(OutputError, match="finished run of other parameters"):
        run_predict(PredictConfig(**{**config.__dict__, "resume": True, "chunk_size": 300}))


def _tiny_root() -> Path:
    from virnucpro.models.sets import resolve_model_set

    return resolve_model_set("tiny").root
