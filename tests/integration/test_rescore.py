"""`virnucpro rescore`: new calls and regions from the stored scores equal a fresh predict with
the same settings, without a model; the FASTA outputs only from the very input scored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import standin_cases
from tests.helpers import DATA
from virnucpro.errors import OutputError
from virnucpro.pipeline import run_predict
from virnucpro.rescore import RescoreSettings, rescore
from virnucpro.table_text import SEQUENCES_COLUMNS

REPO = Path(__file__).resolve().parents[2]
COMPARED = ("frames.tsv", "chunks.tsv", "sequences.tsv", "regions.tsv", "prediction_results.txt",
            "prediction_results_highestscore.csv", "viral.fasta", "regions.fasta")
NEW = {"threshold": 0.6, "region_gap": 0, "min_region_length": 400}


def differing(a: Path, b: Path, names=COMPARED) -> list[str]:
    return [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]


@pytest.fixture
def edge_run(tmp_path: Path, monkeypatch) -> Path:
    standin_cases.use_standin(monkeypatch)
    out = tmp_path / "run"
    run_predict(standin_cases.config("edge300", out))
    return out


def fresh(tmp_path: Path, case: str = "edge300", **settings) -> Path:
    out = tmp_path / "fresh"
    run_predict(standin_cases.config(case, out, **settings))
    return out


def test_rescore_equals_a_fresh_predict_with_the_new_settings(edge_run: Path, tmp_path: Path) -> None:
    want = fresh(tmp_path, **NEW)
    assert differing(edge_run, want, ("sequences.tsv", "regions.tsv")) != []  # they do change
    [info] = rescore(edge_run, RescoreSettings(**NEW), outdir=tmp_path / "new", report=False)
    assert differing(tmp_path / "new", want) == []
    assert sorted(p.name for p in (tmp_path / "new" / "embeddings").iterdir()) == sorted(
        p.name for p in (edge_run / "embeddings").iterdir())
    # The run's own folder is untouched; run.json says what was done.
    assert json.loads((edge_run / "run.json").read_text())["parameters"]["threshold"] == 0.3
    assert info.parameters["threshold"] == 0.6 and info.parameters["region_gap"] == 0
    [entry] = info.rescored
    assert entry["before"] == {"threshold": 0.3, "region_gap": 1, "region_min_p": None,
                               "min_region_length": 1000}
    assert entry["settings"]["min_region_length"] == 400
    assert entry["sequence_files"] == "written" and not entry["in_place"]
    assert info.counts == json.loads((want / "run.json").read_text())["counts"]
    assert not (tmp_path / "new" / ".virnucpro").exists()


def test_rescore_in_place_with_region_min_p(edge_run: Path, tmp_path: Path) -> None:
    want = fresh(tmp_path, region_min_p=0.75, min_region_length=1)
    frames = (edge_run / "frames.tsv").stat().st_ino
    rescore(edge_run, RescoreSettings(region_min_p=0.75, min_region_length=1), in_place=True,
            report=False)
    assert differing(edge_run, want) == []
    assert (edge_run / "frames.tsv").stat().st_ino == frames  # kept, not rewritten
    info = json.loads((edge_run / "run.json").read_text())
    assert info["rescored"][0]["in_place"] and info["parameters"]["region_min_p"] == 0.75
    # Back to the calls ("call"), and the history grows.
    rescore(edge_run, RescoreSettings(region_min_p="call", min_region_length=1000),
            in_place=True, report=False)
    assert differing(edge_run, fresh(tmp_path / "b"), ("sequences.tsv", "regions.tsv")) == []
    assert len(json.loads((edge_run / "run.json").read_text())["rescored"]) == 2


def test_a_folder_of_several_inputs_is_rescored_subfolder_by_subfolder(tmp_path: Path,
                                                                        monkeypatch) -> None:
    standin_cases.use_standin(monkeypatch)
    run_predict(standin_cases.config("reference", tmp_path / "run"))
    want = fresh(tmp_path, "reference", threshold=0.9, min_region_length=1)
    infos = rescore(tmp_path / "run", RescoreSettings(threshold=0.9, min_region_length=1),
                    outdir=tmp_path / "new", report=True)
    assert len(infos) == 2
    for sub in standin_cases.folders("reference", tmp_path / "new"):
        assert differing(sub, want / sub.name) == []
        assert (sub / "report.html").is_file()


def test_without_the_input_the_tables_are_written_and_the_fasta_files_skipped(
        tmp_path: Path, monkeypatch, caplog) -> None:
    standin_cases.use_standin(monkeypatch)
    source = tmp_path / "input.fasta"
    shutil.copyfile(standin_cases.EDGE_INPUT, source)
    spec = {**standin_cases.CASES["edge300"], "inputs": (source,)}
    monkeypatch.setitem(standin_cases.CASES, "moved", spec)
    run_predict(standin_cases.config("moved", tmp_path / "run"))
    want = fresh(tmp_path, **NEW)

    source.unlink()
    caplog.set_level("WARNING", logger="virnucpro")  # whatever an earlier test set
    [info] = rescore(tmp_path / "run", RescoreSettings(**NEW), outdir=tmp_path / "gone",
                     report=False)
    tables = ("chunks.tsv", "sequences.tsv", "regions.tsv", "frames.tsv")
    assert differing(tmp_path / "gone", want, tables) == []
    assert not (tmp_path / "gone" / "viral.fasta").exists()
    assert not (tmp_path / "gone" / "regions.fasta").exists()
    assert "viral.fasta" not in info.outputs
    assert info.rescored[0]["sequence_files"] == f"skipped: the input {source} is gone"
    assert "is gone" in caplog.text

    # Same size, other bases: the SHA-256 tells. In place, the old FASTA files stay and say so.
    text = standin_cases.EDGE_INPUT.read_text()
    source.write_text(text.replace("ACG", "ACT", 1))
    assert source.stat().st_size == standin_cases.EDGE_INPUT.stat().st_size
    before = (tmp_path / "run" / "viral.fasta").read_bytes()
    [info] = rescore(tmp_path / "run", RescoreSettings(**NEW), in_place=True, report=False)
    assert info.rescored[0]["sequence_files"].startswith(
        f"skipped: the input {source} has changed (its SHA-256); viral.fasta, regions.fasta "
        "still hold the calls of the earlier settings")
    assert (tmp_path / "run" / "viral.fasta").read_bytes() == before
    assert differing(tmp_path / "run", want, tables) == []


def test_a_folder_written_before_regions_existed_is_rescored(edge_run: Path, tmp_path: Path) -> None:
    # What 0.1 wrote: no regions column, no region files, no region settings in run.json.
    seqs = edge_run / "sequences.tsv"
    seqs.write_text("".join(line.rsplit("\t", 1)[0] + "\n"
                            for line in seqs.read_text().splitlines()))
    assert seqs.read_text().splitlines()[0].split("\t") == SEQUENCES_COLUMNS[:-1]
    for name in ("regions.tsv", "regions.fasta"):
        (edge_run / name).unlink()
    info = json.loads((edge_run / "run.json").read_text())
    for key in ("region_gap", "region_min_p", "min_region_length"):
        del info["parameters"][key]
    for key in [k for k in info["counts"] if "regions" in k]:
        del info["counts"][key]
    (edge_run / "run.json").write_text(json.dumps(info))

    rescore(edge_run, RescoreSettings(), outdir=tmp_path / "new", report=True)
    assert differing(tmp_path / "new", fresh(tmp_path)) == []
    assert (tmp_path / "new" / "report.html").is_file()


def test_what_rescore_refuses(edge_run: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="busy: is not empty; use --force"):
        rescore(edge_run, RescoreSettings(), outdir=tmp_path / "busy")
    assert (tmp_path / "busy" / "mine.txt").exists()
    with pytest.raises(OutputError, match="use --in-place"):
        rescore(edge_run, RescoreSettings(), outdir=edge_run)
    with pytest.raises(OutputError, match="no run.json"):
        rescore(tmp_path / "busy", RescoreSettings(), outdir=tmp_path / "x")
    (edge_run / "frames.tsv").rename(tmp_path / "frames.tsv")
    with pytest.raises(OutputError, match="frames.tsv is missing"):
        rescore(edge_run, RescoreSettings(), in_place=True)
    # A frames.tsv of another run: named, and nothing of the folder replaced.
    shutil.copyfile(DATA / "standin" / "expected" / "edge500" / "frames.tsv",
                    edge_run / "frames.tsv")
    before = (edge_run / "sequences.tsv").read_bytes()
    with pytest.raises(OutputError, match="frames"):
        rescore(edge_run, RescoreSettings(threshold=0.9), in_place=True)
    assert (edge_run / "sequences.tsv").read_bytes() == before
    assert not (edge_run / ".virnucpro").exists()
    # A frames.tsv cut short.
    lines = (tmp_path / "frames.tsv").read_text().splitlines(keepends=True)
    (edge_run / "frames.tsv").write_text("".join(lines[:-3]))
    with pytest.raises(OutputError, match=f"{len(lines) - 4:,} frame rows, run.json counts "
                       f"{len(lines) - 1:,}: frames.tsv is not whole"):
        rescore(edge_run, RescoreSettings(threshold=0.9), in_place=True)
    assert (edge_run / "sequences.tsv").read_bytes() == before


@pytest.mark.slow
def test_the_command_loads_no_model(edge_run: Path, tmp_path: Path) -> None:
    """The installed command, in a fresh process: torch is never imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    code = ("import sys; from virnucpro.cli.root import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "rescore", str(edge_run), "-o",
                           str(tmp_path / "new"), "--threshold", "0.6", "--region-gap", "0",
                           "--min-region-length", "400", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [summary] = json.loads(done.stdout)
    assert summary["sequence_files"] == "written" and summary["outdir"] == str(tmp_path / "new")
    assert differing(tmp_path / "new", fresh(tmp_path, **NEW)) == []
    bad = subprocess.run([sys.executable, "-m", "virnucpro", "rescore", str(edge_run)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "-o NEWDIR or --in-place" in bad.stderr
