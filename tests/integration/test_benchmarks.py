"""`python -m benchmarks` runs end to end on the tiny set and keeps its JSON contract.

Nothing here is timed: the figures are only checked to be what they claim to be (fractions,
positive ratios, the inputs they were measured on), so a broken benchmark fails CI instead of
the one accelerator session that needs it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_tiny_benchmark_writes_every_promised_figure(tmp_path: Path, tiny_set_dir: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--size", "tiny", "--quick",
                           "--daemon-jobs", "1", "--memory-runs", "2", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    for key in ("padding_waste_dnabert", "padding_waste_esm"):
        assert 0.0 <= r[key] < 1.0, key
    for key in ("working_memory_ratio_10x", "persistent_speedup", "reference_speedup",
                "reference_speedup_long_input", "esm_tokens_per_s"):
        assert math.isfinite(r[key]) and r[key] > 0, key
    assert r["frames_kept"]["synthetic"] > 0 and r["frames_kept"]["real_tests_data"] > 0
    assert r["end_to_end"]["frames"] == r["frames_kept"]["synthetic"]
    mem = r["working_memory"]
    # 10x the sequences (other random draws, so not exactly 10x the kept frames)
    assert 9 * mem["1x"]["frames"] <= mem["10x"]["frames"] <= 11 * mem["1x"]["frames"]
    for size in ("1x", "10x"):  # the median run is the one reported
        assert len(mem[size]["runs_working_bytes"]) == 2
        assert mem[size]["working_bytes"] == min(mem[size]["runs_working_bytes"])
    assert mem["worst_ratio_10x"] == r["working_memory_worst_ratio_10x"] >= mem["ratio_10x"] * 0.999
    assert mem["worst_ratio_10x"] == max(mem["10x"]["runs_working_bytes"]) / min(mem["1x"]["runs_working_bytes"])
    assert r["daemon_small_jobs"]["jobs"] == 1
    assert r["reference"]["load_s"] <= r["reference"]["wall_s"]
    table = done.stdout
    for row in ("end to end", "padding waste", "DNABERT-S alone", "ESM-2 alone", "reference style",
                "1 small jobs", "working memory"):
        assert row in table, row


def _numbers(tree, path=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


@pytest.mark.slow
def test_the_host_benchmark_gives_finite_positive_figures_on_every_frame(tmp_path: Path) -> None:
    from benchmarks.host import inputs

    out = tmp_path / "host.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--size", "host", "--quick",
                           "--json", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert set(r["inputs"]) == {"contigs", "reads"}
    figures = dict(_numbers(r["inputs"]))
    assert len(figures) > 60
    bad = {k: v for k, v in figures.items() if not (math.isfinite(v) and v > 0)}
    assert not bad, bad
    from virnucpro.chunking import chunk_spans
    from virnucpro.translation import translate_six_frames

    written = inputs(tmp_path / "again", quick=True)  # the same seeds: the same inputs
    for name, part in r["inputs"].items():
        seqs = [s.replace("\n", "") for s in written[name].read_text().split(">")[1:]]
        seqs = [s.split(" frames", 1)[1] for s in seqs]  # headers: "synthetic_N open frames"
        assert part["records"] == len(seqs) and part["bases"] == sum(map(len, seqs))
        kept = sum(len(translate_six_frames(s[a:b], "c", a)) for s in seqs
                   for a, b in chunk_spans(len(s), 500))  # the reference rules, not the planner
        assert part["frames"] == kept
        for engine in ("pool", "local"):  # every planned frame went through each engine
            assert part[engine]["frames"] == part["frames"]
            assert part[engine]["records"] == part["records"]
        assert set(part["stages"]) == {"validate", "read", "plan", "dispatch", "tokenize", "merge",
                                       "write", "feed"}
    assert "pool / tokenizer alone" in done.stdout
    assert r["inputs"]["contigs"]["rescore"]["rescore_s"] > 0  # the tiny predict: full runs only
    assert "rescore" in done.stdout and "the tiny set's predict left out" in done.stdout


@pytest.mark.slow
def test_the_verify_memory_benchmark_reports_its_figures_on_a_set(tiny_set_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.verify_memory", str(tiny_set_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(done.stdout)
    assert r["problems"] == []  # the check itself ran to its end on a loadable set
    assert r["check_peak_mb"] > r["imports_peak_mb"] > 0
    assert r["check_extra_mb"] == r["check_peak_mb"] - r["imports_peak_mb"]


def _gpu_check(tmp_path: Path, **knobs: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`bash benchmarks/gpu_check.sh` on this machine: its CPU path (the tiny set), in the
    current environment (no install), the GPU tests left out; one torch thread, so that a busy
    machine's cores do not spin against each other."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "SIZE": "tiny", "INSTALL": "0", "GPU_TESTS": "0",
           "PYTHON": sys.executable, "WORK": str(tmp_path / "work"), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", **knobs}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    return done, out / "gpu_check.json"


@pytest.mark.slow
def test_the_gpu_check_runs_its_steps_on_the_cpu_and_writes_every_figure(
        tmp_path: Path, tiny_set_dir: Path) -> None:
    done, path = _gpu_check(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    r = json.loads(path.read_text())
    assert [(s["name"], s["rc"]) for s in r["steps"]] == [
        ("set", "0"), ("speed", "0"), ("auto", "0"), ("agreement", "0")]
    s = r["settings"]
    assert (s["size"], s["device"], s["precision"], s["passes"], s["shards"]) == (
        "tiny", "cpu", "float32", 3, 3)
    frames = s["shards"] * s["shard_frames"]
    assert r["model_set"]["root"] == str(tiny_set_dir)
    assert r["gemm"]["ceiling_tflops"] > 0 and r["load"]["weights_bytes"] > 0
    e2e = r["end_to_end"]
    assert e2e["frames"] == frames and len(e2e["pass_seconds"]) == 3
    assert e2e["frames_per_s"] > 0 and e2e["failed_frames"] == e2e["nan_frames"] == 0
    for model in ("dnabert", "esm"):
        m = r[model]
        assert m["tokens"] > frames and m["tokens_per_s"] > 0 and len(m["pass_seconds"]) == 3
        assert m["share_of_gemm_ceiling"] > 0 and m["tflops"] * 1e12 == pytest.approx(
            m["flops_per_pass"] / sorted(m["pass_seconds"])[1], rel=0.01)  # the median pass
    assert r["esm"]["tokens"] == frames * 168  # 166 residues + BOS + EOS in every frame
    assert r["memory"]["peak_reserved_bytes"] is None  # no CUDA here
    assert r["attention"]["kind"] == "math (softmax + bmm)"  # fair-esm's forward on the CPU
    a = r["agreement"]
    assert a["precisions"] == ["bfloat16", "float32"] and a["compared"] == a["frames"] == frames
    assert 0.99 < a["feature_cosine_min"] <= a["feature_cosine_median"] <= 1.0 + 1e-9
    assert 0 <= a["max_abs_dp_virus"] < 0.2 and a["nan_frames"] == {"bfloat16": 0, "float32": 0}
    auto = r["auto_budget"]
    assert auto["completed"] is True and auto["batch_tokens"] == 4096 if "error" not in auto \
        else auto["completed"] is None and "batch_budget" in auto["error"]
    assert [c["result"] for c in r["checks"]][1] == "NOT RUN"  # the memory check needs CUDA
    assert {c["result"] for c in r["checks"]} <= {"PASS", "FAIL", "NOT RUN"}
    assert "VirNucPro device check" in done.stdout and "== done in" in done.stdout
    assert (path.parent / "gpu_check.log").read_text().count("== ") >= 8


def test_a_deadline_too_short_skips_every_step_and_still_reports(tmp_path: Path) -> None:
    done, path = _gpu_check(tmp_path, DEADLINE="20")
    assert done.returncode == 1
    r = json.loads(path.read_text())
    assert [(s["name"], s["rc"]) for s in r["steps"]] == [("set", "skipped")]
    assert [c["result"] for c in r["checks"]] == ["NOT RUN"] * 5
    assert "set: skipped" in done.stdout
