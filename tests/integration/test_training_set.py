"""A trained classifier written as a model set: usable at once, links checked, never half-made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from virnucpro.cli.root import main
from virnucpro.errors import ModelError, OutputError
from virnucpro.models.cache import sets_dir
from virnucpro.models.classifier_io import load_classifier
from virnucpro.models.manifest import read_manifest
from virnucpro.models.set_checks import is_complete, verify_set
from virnucpro.models.set_import import import_set
from virnucpro.models.sets import list_sets, resolve_model_set
from virnucpro.training import newset
from virnucpro.training.fit import state_sha256, train_classifier
from virnucpro.training.newset import write_new_set

REPO = Path(__file__).resolve().parents[2]
VIRAL = REPO / "tests" / "data" / "viral_reference.fasta"


@pytest.fixture
def base(tmp_path: Path, tiny_set_dir: Path):
    """A copy of the tiny set as the base: tests touch and edit its files."""
    shutil.copytree(tiny_set_dir, tmp_path / "base")
    return resolve_model_set(str(tmp_path / "base"))


def _fit(width: int, hidden: int, seed: int = 0, epochs: int = 12):
    """A run on noisy labels with a large learning rate: the best epoch comes early."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(160, width)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=1.5, size=160) > 0).astype(np.int64)
    return train_classifier(x[:96], y[:96], x[96:], y[96:], seed=seed, hidden=hidden,
                            epochs=epochs, patience=epochs, lr=0.05, threads=1)


def _training(fit) -> dict:
    return {"epochs": fit.history, "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early, "hyperparameters": fit.params}


@pytest.fixture
def trained(base):
    reference = load_classifier(base.classifier_path(500))
    return _fit(reference.input_dim, reference.hidden_dim)


def test_the_new_set_loads_and_holds_the_best_epochs_classifier(base, trained, tmp_path):
    dest = tmp_path / "newset"
    model_set = write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    assert model_set.root == dest and model_set.is_tiny
    assert resolve_model_set(str(dest)).classifiers == {500: dest / "500_model.safetensors"}
    assert is_complete(dest) and verify_set(model_set) == []

    record = json.loads((dest / "training.json").read_text())
    best = record["epochs"][record["best_epoch"]]
    assert record["best_epoch"] < len(record["epochs"]) - 1
    for name in ("500_model.pth", "500_model.safetensors"):
        assert state_sha256(load_classifier(dest / name).state_dict()) == best["weights_sha256"]
    assert best["weights_sha256"] != record["epochs"][-1]["weights_sha256"]
    assert record["model_set"]["weights_sha256"] == best["weights_sha256"]
    assert record["virnucpro_version"]

    manifest = read_manifest(dest)
    assert manifest["source"] == "trained" and manifest["base"]["name"] == base.name
    for rel in ("esm2_t2_tiny.pt", "esm2_t2_tiny-contact-regression.pt",
                "dnabert-s/pytorch_model.bin", "dnabert-s/tokenizer.json"):
        link = dest / rel
        assert link.is_symlink() and os.path.isabs(os.readlink(link))
        assert Path(os.readlink(link)) == base.root / rel
        entry = manifest["files"][rel]
        assert entry["link"] == str(base.root / rel)
        assert entry["size"] == link.stat().st_size
        assert entry["mtime_ns"] == link.stat().st_mtime_ns
        assert entry["sha256"] == read_manifest(base.root)["files"][rel]["sha256"]
    assert not (dest / "300_model.pth").exists()
    with pytest.raises(ModelError, match=r"no classifier for chunk size 300 \(available: 500\)"):
        model_set.classifier_path(300)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.slow
def test_predict_runs_with_the_new_set(base, trained, tmp_path):
    dest = tmp_path / "newset"
    write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "virnucpro", "predict", str(VIRAL), "-o", str(out),
                           "--models", str(dest), "--devices", "cpu", "-q", "--no-report"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / "sequences.tsv").is_file()
    assert len((out / "sequences.tsv").read_text().splitlines()) > 1


def test_a_base_file_touched_after_training_makes_the_load_fail_clearly(base, trained, tmp_path):
    dest = tmp_path / "newset"
    write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    target = base.root / "esm2_t2_tiny.pt"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    with pytest.raises(ModelError, match="changed since training") as err:
        resolve_model_set(str(dest))
    assert f"esm2_t2_tiny.pt -> {target}" in str(err.value)
    assert not is_complete(dest)
    problems = verify_set(resolve_model_set(str(dest), check=False))
    assert any("changed since training" in p for p in problems)
    assert any("content is unchanged" in p for p in problems)
    result = CliRunner().invoke(main, ["models", "verify", str(dest)], catch_exceptions=False)
    assert result.exit_code == 4 and "esm2_t2_tiny.pt" in result.stdout


def test_a_missing_base_file_is_named_with_its_link(base, trained, tmp_path):
    dest = tmp_path / "newset"
    write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    (base.root / "dnabert-s" / "pytorch_model.bin").unlink()
    with pytest.raises(ModelError, match=r"dnabert-s/pytorch_model.bin -> .*: the base set's "
                                         "file is missing"):
        resolve_model_set(str(dest))


KILL = textwrap.dedent("""
    import os, sys
    import numpy as np
    from pathlib import Path
    from virnucpro.models.classifier_io import load_classifier
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.training import newset
    from virnucpro.training.fit import train_classifier

    base = resolve_model_set(sys.argv[1])
    width = load_classifier(base.classifier_path(500)).input_dim
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, width)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    fit = train_classifier(x[:48], y[:48], x[48:], y[48:], seed=0, hidden=8, epochs=1)
    real_swap = newset._swap

    def killed(staging, dest):
        if sys.argv[3] == "after":
            real_swap(staging, dest)
        os._exit(9)  # as a SIGKILL would: no finally block runs

    newset._swap = killed
    newset.write_new_set(Path(sys.argv[2]), base, fit.model, 500, {}, force=False)
""")


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_killed_write_leaves_a_folder_listed_incomplete_and_unusable(base, when):
    dest = sets_dir() / f"killed-{when}"
    done = subprocess.run([sys.executable, "-c", KILL, str(base.root), str(dest), when],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    left = [p for p in sets_dir().iterdir() if p.name.startswith(f"killed-{when}")]
    assert len(left) == 1
    folder = left[0]
    assert (folder == dest) == (when == "after")
    assert (folder / "500_model.safetensors").is_file()  # written, yet the set is not usable
    assert not (folder / "training.json").exists()
    listed = {s["name"]: s for s in list_sets()}
    assert listed[folder.name]["present"] and not listed[folder.name]["complete"]
    assert listed[folder.name]["source"] == "trained"
    with pytest.raises(ModelError, match="did not finish"):
        resolve_model_set(folder.name)
    with pytest.raises(ModelError, match="did not finish"):
        resolve_model_set(str(folder))
    table = CliRunner().invoke(main, ["models", "list"], catch_exceptions=False).stdout
    assert any(line.split()[:2] == [folder.name, "incomplete"] for line in table.splitlines())
    shutil.rmtree(folder)


def test_a_failed_write_leaves_nothing_behind(base, trained, tmp_path, monkeypatch):
    from virnucpro.models import classifier_io

    def broken(path, model):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(classifier_io, "write_reference_classifier", broken)
    with pytest.raises(OSError, match="No space left"):
        write_new_set(tmp_path / "newset", base, trained.model, 500, {}, force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_an_existing_set_needs_force_and_is_replaced_only_at_the_swap(base, trained, tmp_path,
                                                                       monkeypatch):
    dest = tmp_path / "newset"
    write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    first = json.loads((dest / "training.json").read_text())["model_set"]["weights_sha256"]
    with pytest.raises(OutputError, match=f"{dest}: exists; use --force"):
        write_new_set(dest, base, trained.model, 500, {}, force=False)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]

    other = _fit(trained.model.input_dim, trained.model.hidden_dim, seed=1, epochs=2)

    def interrupted(staging: Path, dest: Path) -> None:
        raise OSError("interrupted")

    monkeypatch.setattr(newset, "_swap", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        write_new_set(dest, base, other.model, 500, _training(other), force=True)
    assert resolve_model_set(str(dest)) and json.loads(
        (dest / "training.json").read_text())["model_set"]["weights_sha256"] == first
    monkeypatch.undo()

    write_new_set(dest, base, other.model, 500, _training(other), force=True)
    second = json.loads((dest / "training.json").read_text())["model_set"]["weights_sha256"]
    assert second == other.best["weights_sha256"] != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "newset"]


def test_force_never_replaces_what_is_not_a_model_set_nor_the_base(base, trained, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="not a model set"):
        write_new_set(notes, base, trained.model, 500, {}, force=True)
    assert (notes / "thesis.tex").read_text() == "precious"
    with pytest.raises(OutputError, match="holds the base set's"):
        write_new_set(base.root, base, trained.model, 500, {}, force=True)
    assert verify_set(base) == []


def test_a_classifier_of_another_width_is_refused(base, tmp_path):
    fit = _fit(16, 8, epochs=1)
    with pytest.raises(OutputError, match="takes 16 features"):
        write_new_set(tmp_path / "newset", base, fit.model, 500, {}, force=False)
    assert not (tmp_path / "newset").exists()


def test_importing_a_trained_set_copies_what_its_links_point_to(base, trained, tmp_path):
    dest = tmp_path / "newset"
    write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    imported = import_set(dest, "retrained")
    assert imported.root == sets_dir() / "retrained"
    files = [p for p in imported.root.rglob("*") if p.is_file() or p.is_symlink()]
    assert files and not [p for p in files if p.is_symlink()]
    assert (imported.root / "500_model.pth").is_file()
    assert (imported.root / "training.json").is_file()
    assert verify_set(imported) == []
    assert resolve_model_set("retrained").classifiers == {
        500: imported.root / "500_model.safetensors"}
    listed = {s["name"]: s for s in list_sets()}
    assert listed["retrained"]["complete"]
    shutil.rmtree(imported.root)


def test_models_list_counts_a_trained_sets_own_bytes_only(base, trained):
    dest = sets_dir() / "listed"
    write_new_set(dest, base, trained.model, 500, _training(trained), force=False)
    listed = {s["name"]: s for s in list_sets()}["listed"]
    own = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    assert listed["complete"] and listed["source"] == "trained" and listed["size_bytes"] == own
    shutil.rmtree(dest)
