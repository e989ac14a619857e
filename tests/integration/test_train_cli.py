"""`virnucpro train` as a user runs it: the installed command in its own process, the tiny
set's real models, GenBank fixtures (tests/data/training) and synthetic open-frame contigs.

A set it makes is used at once by `predict --models NEWSET`; the features are cached (a second
training embeds nothing) and a killed training resumes from its last embedded shard; the same
seed gives the same classifier bit for bit in separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.synthetic_input import write_input
from tests.helpers import DATA

REPO = Path(__file__).resolve().parents[2]
GENBANK = DATA / "training"


def contigs(path: Path, prefix: str, n: int, seed: int, length: int = 2000) -> Path:
    write_input(path, n, length, seed=seed)
    path.write_text(path.read_text().replace(">synthetic_", f">{prefix}_"))
    return path


def own_home(home: Path, tiny: Path) -> dict:
    """An environment with its own VIRNUCPRO_HOME (so its own feature cache), the tiny set
    linked in."""
    (home / "sets").mkdir(parents=True)
    os.symlink(tiny, home / "sets" / "tiny")
    return {**os.environ, "HF_HUB_OFFLINE": "1", "VIRNUCPRO_HOME": str(home)}


@pytest.fixture
def env(tmp_path: Path, tiny_set_dir: Path) -> dict:
    return own_home(tmp_path / "home", tiny_set_dir)


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    viral = contigs(tmp_path / "viral.fasta", "vir", 10, seed=4)
    others = contigs(tmp_path / "others.fasta", "oth", 10, seed=3)
    return ["--viral", str(GENBANK / "viral.gbff"), "--viral", str(viral),
            "--others", str(others), "--others", str(DATA / "nonviral_reference.fasta")]


def train(env: dict, *args, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "virnucpro", "train", "--models", "tiny",
                           "--devices", "cpu", "--chunk-size", "300", "--threads", "1", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def training_json(folder: Path) -> dict:
    return json.loads((folder / "training.json").read_text())


@pytest.mark.slow
def test_a_trained_set_predicts_and_a_second_training_embeds_nothing(tmp_path: Path, env: dict,
                                                                     inputs: list[str]) -> None:
    done = train(env, *inputs, "-o", str(tmp_path / "set1"), "--val-fraction", "0.3")
    assert "GenBank, the CDS filter is on" in done.stderr
    assert "FASTA, no CDS filter" in done.stderr
    info = training_json(tmp_path / "set1")
    embedded = info["feature_cache"]["shards_embedded"]
    assert embedded > 0 and info["feature_cache"]["shards_reused"] == 0
    # No group on both sides, and held-out records never in training.
    split = info["split"]
    assert not set(split["training"]["groups"]) & set(split["validation"]["groups"])
    for side in ("training", "validation"):
        assert all(n > 0 for n in split[side]["frames"].values())
    # The saved classifier is the best epoch's.
    best = info["epochs"][info["best_epoch"]]
    assert info["model_set"]["weights_sha256"] == best["weights_sha256"]

    out = tmp_path / "pred"
    pred = subprocess.run([sys.executable, "-m", "virnucpro", "predict",
                           str(DATA / "viral_reference.fasta"), "-o", str(out), "--models",
                           str(tmp_path / "set1"), "--devices", "cpu", "--chunk-size", "300",
                           "-q", "--no-report"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert pred.returncode == 0, pred.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["models"]["root"] == str((tmp_path / "set1").absolute())
    assert run["counts"]["chunks_scored"] > 0

    # Other hyper-parameters, the same inputs: every shard comes from the cache.
    done = train(env, *inputs, "-o", str(tmp_path / "set2"), "--val-fraction", "0.3",
                 "--patience", "2", "--seed", "7")
    again = training_json(tmp_path / "set2")["feature_cache"]
    assert again["shards_embedded"] == 0 and again["shards_reused"] == embedded
    assert "0 shard(s) embedded now" in done.stderr


@pytest.mark.slow
def test_the_same_seed_gives_the_same_classifier_in_separate_processes(
        tmp_path: Path, tiny_set_dir: Path, inputs: list[str]) -> None:
    for name in ("a", "b"):  # each its own cache: both embed, both fit
        own = own_home(tmp_path / f"home-{name}", tiny_set_dir)
        train(own, *inputs, "-o", str(tmp_path / name), "--val-fraction", "0.3", "--seed", "11")
        assert training_json(tmp_path / name)["feature_cache"]["shards_reused"] == 0
    a, b = (tmp_path / n / "300_model.safetensors" for n in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    assert training_json(tmp_path / "a")["epochs"] == training_json(tmp_path / "b")["epochs"]


@pytest.mark.slow
def test_a_killed_training_resumes_without_embedding_its_finished_shards(
        tmp_path: Path, env: dict) -> None:
    viral = contigs(tmp_path / "viral.fasta", "vir", 16, seed=4)  # ~ 12 shards of 20 frames
    others = contigs(tmp_path / "others.fasta", "oth", 8, seed=3)  # fewer than 6 shards
    args = ["--viral", str(viral), "--others", str(others), "-o", str(tmp_path / "set"),
            "--val-fraction", "0.3", "--shard-frames", "20", "--engine", "local"]
    dying = {**env, "VIRNUCPRO_TEST_SCORER": "tests.fakes:DieOnceScorer",
             "FAKE_DIE_SHARD": "6", "FAKE_STATE_DIR": str(tmp_path)}
    killed = train(dying, *args, check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "died-train-0-6").exists()
    assert not (tmp_path / "set").exists()  # nothing that looks like a set

    train(dying, *args)
    cache = training_json(tmp_path / "set")["feature_cache"]
    assert cache["shards_reused"] == 6  # shards 0-5 of the first input, embedded before the kill
    stats = training_json(tmp_path / "set")["inputs"]
    assert cache["shards_embedded"] == sum(i["frames"]["shards"] for i in stats) - 6


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--others", "OTHERS"], "Missing option '--viral'"),
    (["--viral", str(GENBANK / "unannotated.gbff"), "--others", "OTHERS"], "no CDS translation"),
    (["--viral", "VIRAL", "--others", str(GENBANK / "others.gbff")],
     "at least 2 are needed"),
    (["--viral", "VIRAL", "--others", "OTHERS", "--cds-filter"], "--cds-filter needs GenBank"),
    (["--viral", "VIRAL", "--others", "VIRAL"], "given twice"),
])
def test_what_train_refuses(tmp_path: Path, env: dict, args: list[str], message: str) -> None:
    viral = contigs(tmp_path / "viral.fasta", "vir", 4, seed=4)
    others = contigs(tmp_path / "others.fasta", "oth", 4, seed=3)
    args = [str(viral) if a == "VIRAL" else str(others) if a == "OTHERS" else a for a in args]
    done = train(env, *args, "-o", str(tmp_path / "set"), check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "set").exists()


@pytest.mark.slow
def test_an_existing_set_needs_force(tmp_path: Path, env: dict, inputs: list[str]) -> None:
    train(env, *inputs, "-o", str(tmp_path / "set"), "--val-fraction", "0.3")
    before = (tmp_path / "set" / "300_model.safetensors").read_bytes()
    done = train(env, *inputs, "-o", str(tmp_path / "set"), check=False)
    assert done.returncode == 5 and "use --force" in done.stderr
    assert (tmp_path / "set" / "300_model.safetensors").read_bytes() == before
    train(env, *inputs, "-o", str(tmp_path / "set"), "--val-fraction", "0.3", "--seed", "5",
          "--force")
    assert training_json(tmp_path / "set")["feature_cache"]["shards_embedded"] == 0
