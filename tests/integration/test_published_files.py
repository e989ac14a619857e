"""The published model files as they come (issue 23), through the installed command lines.

A published-like set (`build_tiny_set(published_like=True)`: the tiny weights, with the
tokenizer saved with truncation and padding, config.json with the hub's fields, classifiers
pickled after `.cuda()`, ESM-2's `cfg` with its training sections) runs to the plain tiny set's
tables. `models verify`, `models import`, `doctor --verify`, `virnucpro-daemon start` and
`submit` open every file as `predict` would, and refuse a set that would not load, naming the
file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from tests.daemon_helpers import daemon_env
from tests.helpers import DATA
from virnucpro.layout import OutputLayout
from virnucpro.models import safe_pickle
from virnucpro.models.cache import sets_dir
from virnucpro.models.classifier_io import load_classifier
from virnucpro.models.manifest import record_files, write_manifest
from virnucpro.models.modelset import scan_set_folder
from virnucpro.models.tiny.build import build_tiny_set

VIRAL = DATA / "viral_reference.fasta"
BIN = Path(sys.executable).parent


def _cli(*args: object, env: dict | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "virnucpro"), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300, check=False)


@pytest.fixture(scope="module")
def published_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pub") / "published-like"
    build_tiny_set(folder, published_like=True)
    return folder


def _with_manifest(folder: Path) -> Path:
    """Sizes and hashes recorded as they are now, so that only loading can find a fault."""
    files = record_files(folder, scan_set_folder(folder).files())
    write_manifest(folder, {"name": folder.name, "source": "import", "files": files})
    return folder


def _broken(tmp_path: Path, tiny_set_dir: Path, how: str) -> tuple[Path, str]:
    """A copy of the tiny set broken `how`, its manifest rewritten to match; the file named."""
    folder = tmp_path / f"broken-{how}"
    shutil.copytree(tiny_set_dir, folder)
    (folder / "manifest.json").unlink()
    if how == "tokenizer":
        text = (folder / "dnabert-s" / "tokenizer.json").read_text()
        (folder / "dnabert-s" / "tokenizer.json").write_text(text[: len(text) // 2])
        named = "dnabert-s/tokenizer.json"
    elif how == "dnabert-keys":
        state = torch.load(folder / "dnabert-s" / "pytorch_model.bin", weights_only=True)
        del state["encoder.layer.1.mlp.wo.bias"]
        torch.save(state, folder / "dnabert-s" / "pytorch_model.bin")
        named = "dnabert-s/pytorch_model.bin"
    elif how == "esm-shapes":
        ckpt = torch.load(folder / "esm2_t2_tiny.pt", weights_only=False)
        key = "encoder.sentence_encoder.layers.0.fc1.weight"
        ckpt["model"][key] = ckpt["model"][key][:, :-1].clone()
        torch.save(ckpt, folder / "esm2_t2_tiny.pt")
        named = "esm2_t2_tiny.pt"
    else:  # classifier-width: a whole ESM-2 of another width, which the classifiers do not fit
        from virnucpro.models.tiny.esm import write_tiny_esm

        other = write_tiny_esm(tmp_path / "other", seed=5, embed_dim=48)
        shutil.copyfile(other, folder / "esm2_t2_tiny.pt")
        named = "300_model.pth"
    return _with_manifest(folder), named


# -- the published-like set ---------------------------------------------------------------


def test_the_published_like_set_carries_what_the_published_files_carry(published_like):
    tokenizer = json.loads((published_like / "dnabert-s" / "tokenizer.json").read_text())
    assert tokenizer["truncation"]["max_length"] == 2000
    assert tokenizer["padding"]["strategy"] == {"Fixed": 2000}
    assert tokenizer["model"]["byte_fallback"] is False
    config = json.loads((published_like / "dnabert-s" / "config.json").read_text())
    assert {"auto_map", "_name_or_path", "transformers_version"} <= config.keys()
    for cs in (300, 500):
        with zipfile.ZipFile(published_like / f"{cs}_model.pth") as z:
            pickled = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        assert b"cuda:0" in pickled and b"\x03\x00\x00\x00cpu" not in pickled
        assert b"__main__" in pickled and b"MLPClassifier" in pickled
    raw = safe_pickle.load(published_like / "esm2_t2_tiny.pt", inert=True)
    cfg = raw["cfg"]
    assert {"model", "task", "common", "optimization"} <= cfg.keys()
    assert type(cfg["model"]).__name__ == "Namespace" and cfg["model"].arch == "esm2"


def test_classifiers_saved_after_cuda_load_on_a_machine_without_a_gpu(published_like,
                                                                        tiny_set_dir):
    for cs in (300, 500):
        theirs = load_classifier(published_like / f"{cs}_model.pth")
        ours = load_classifier(tiny_set_dir / f"{cs}_model.pth")
        assert next(theirs.parameters()).device.type == "cpu"
        for (name, a), (_, b) in zip(theirs.state_dict().items(), ours.state_dict().items(),
                                     strict=True):
            assert torch.equal(a, b), name


@pytest.mark.slow
@pytest.mark.parametrize("engine, devices", [("local", "cpu"), ("pool", "cpu,cpu")])
def test_the_published_like_set_gives_the_plain_tiny_sets_tables_byte_for_byte(
        published_like, tiny_set_dir, tmp_path, engine, devices):
    outs = {}
    for name, models in (("published-like", published_like), ("tiny", "tiny")):
        outs[name] = tmp_path / name
        done = _cli("predict", VIRAL, "-o", outs[name], "--models", models, "--engine", engine,
                    "--devices", devices, "--no-report", "-q")
        assert done.returncode == 0, done.stderr
    for table in OutputLayout.FILES:
        published, plain = (outs[n] / table for n in ("published-like", "tiny"))
        assert published.read_bytes() == plain.read_bytes(), table
        assert plain.stat().st_size > 0 or table.endswith("regions.fasta"), table


# -- verify means load ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tokenizer", "dnabert-keys", "esm-shapes", "classifier-width"])
def test_verify_of_a_set_that_would_not_load_exits_4_naming_the_file(tmp_path, tiny_set_dir,
                                                                      how):
    folder, named = _broken(tmp_path, tiny_set_dir, how)
    done = _cli("models", "verify", folder)
    assert done.returncode == 4, done.stdout + done.stderr
    assert str(folder / named) in done.stdout
    assert "sha256" not in done.stdout  # the hashes match: only loading finds it


@pytest.mark.slow
def test_verify_loads_a_published_like_set(published_like, tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(published_like, folder)
    _with_manifest(folder)
    done = _cli("models", "verify", folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified and loaded" in done.stdout


@pytest.mark.slow
def test_import_refuses_a_set_that_would_not_load_and_imports_nothing(tmp_path, tiny_set_dir):
    folder, named = _broken(tmp_path, tiny_set_dir, "tokenizer")
    done = _cli("models", "import", folder, "--name", "mine")
    assert done.returncode == 4, done.stderr
    assert str(folder / named) in done.stderr and "would not load" in done.stderr
    assert not (sets_dir() / "mine").exists()


@pytest.mark.slow
def test_doctor_verify_reports_a_set_that_would_not_load(tmp_path, tiny_set_dir):
    folder, named = _broken(tmp_path, tiny_set_dir, "esm-shapes")
    shutil.copytree(folder, sets_dir() / "doctor-broken")
    try:
        done = _cli("doctor", "--verify", "--no-run", "--json")
        checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]
                  if c["section"] == "model sets"}
        assert done.returncode == 11
        bad = checks["doctor-broken"]
        assert bad["status"] == "problem" and named in bad["detail"], bad
        assert checks["tiny"]["status"] == "ok" and "every file loads" in checks["tiny"]["detail"]
    finally:
        shutil.rmtree(sets_dir() / "doctor-broken")


# -- the daemon checks the set it will use -------------------------------------------------


@pytest.mark.slow
def test_daemon_start_refuses_a_set_that_would_not_load(tmp_path, tiny_set_dir):
    folder, named = _broken(tmp_path, tiny_set_dir, "tokenizer")
    env = daemon_env(tmp_path)
    done = subprocess.run([str(BIN / "virnucpro-daemon"), "start", "--devices", "cpu",
                           "--persistent-models", "--models", str(folder)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 6, done.stderr
    assert str(folder / named) in done.stderr and "would not load" in done.stderr


@pytest.mark.slow
def test_submit_on_a_set_that_would_not_load_is_refused_and_nothing_is_queued(
        daemon, tmp_path, tiny_set_dir):
    folder, named = _broken(tmp_path, tiny_set_dir, "dnabert-keys")
    shutil.copy(VIRAL, tmp_path / "in.fa")
    with daemon.client() as c:
        before = len(c.jobs(all=True))
    done = daemon.cli("submit", "in.fa", "-o", "out", "--models", folder, cwd=tmp_path)
    assert done.returncode == 7, done.stderr
    assert str(folder / named) in done.stderr
    with daemon.client() as c:
        assert len(c.jobs(all=True)) == before
    assert not (tmp_path / "out").exists()
    # Repaired, the same path is taken: the verdict was kept only for the broken files.
    shutil.rmtree(folder)
    shutil.copytree(tiny_set_dir, folder)
    done = daemon.cli("submit", "in.fa", "-o", "out", "--models", folder, "--wait",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_load_check_runs_without_torch_in_the_daemon():
    # The daemon imports the module that runs the check; torch stays in the child process.
    code = ("import sys, virnucpro.models.loadcheck, virnucpro.daemon.server; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, check=True)
    assert done.stdout.strip() == "False"
