"""The device check's pure parts: the FLOP count, the attention kind read from profiled names,
the agreement of two precisions' scores, and the verdicts the report draws from its JSON.
The script itself runs in tests/integration/test_benchmarks.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.device_figures import agreement, forward_flops, kind_of
from benchmarks.device_report import checks, report


def test_forward_flops_count_the_weights_per_token_and_attention_per_sequence():
    # 2 sequences of 3 and 5 tokens, 10 weights, 2 layers of width 4
    assert forward_flops([3, 5], 10, 2, 4) == 2 * 10 * 8 + 4 * 2 * 4 * (9 + 25)


@pytest.mark.parametrize("names, kind", [
    (["aten::_scaled_dot_product_flash_attention", "aten::_flash_attention_forward"], "flash"),
    (["aten::_scaled_dot_product_efficient_attention"], "memory-efficient (cutlass fmha)"),
    (["fmha_cutlassF_bf16_aligned_64x64_rf_sm80"], "memory-efficient (cutlass fmha)"),
    (["aten::_scaled_dot_product_cudnn_attention"], "cudnn"),
    (["cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3"], "cudnn"),
    (["aten::bmm", "aten::softmax", "aten::bmm"], "math (softmax + bmm)"),
    (["aten::linear"], None),
])
def test_the_attention_kind_is_read_from_the_profiled_names(names, kind):
    assert kind_of(names) == kind


def _scores(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 6)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, size=n).astype(np.float32)
    return features, np.stack([1 - p, p], axis=1)


def test_identical_scores_agree_fully():
    f, p = _scores(50)
    a = agreement({"bfloat16": f, "float32": f.copy()}, {"bfloat16": p, "float32": p.copy()}, 2)
    assert a["compared"] == a["frames"] == 50
    assert a["feature_cosine_min"] == pytest.approx(1.0)
    assert a["dnabert_cosine_min"] == pytest.approx(1.0) and a["esm_cosine_min"] == pytest.approx(1.0)
    assert a["max_abs_dp_virus"] == 0.0 and a["call_flips"] == 0
    assert a["nan_frames"] == {"bfloat16": 0, "float32": 0}


def test_a_flipped_call_and_a_nan_frame_are_counted_apart():
    f, p = _scores(20)
    g, q = f.copy(), p.copy()
    p[3] = [0.51, 0.49]
    q[3] = [0.49, 0.51]  # the call flips, P(virus) moves by 0.02
    g[7, 0] = np.nan  # one frame NaN in float32: counted there, left out of the comparison
    g[1, 2:] *= -1  # the ESM-2 part of a frame reversed
    a = agreement({"bfloat16": f, "float32": g}, {"bfloat16": p, "float32": q}, 2)
    assert a["nan_frames"] == {"bfloat16": 0, "float32": 1}
    assert a["compared"] == 19 and a["call_flips"] == 1
    assert a["call_flips_per_10000"] == pytest.approx(10_000 / 19)
    assert a["max_abs_dp_virus"] == pytest.approx(0.02, abs=1e-6)
    assert a["esm_cosine_min"] == pytest.approx(-1.0) and a["dnabert_cosine_min"] == pytest.approx(1.0)


def test_frames_scored_differently_are_refused():
    f, p = _scores(4)
    with pytest.raises(ValueError, match="different frames"):
        agreement({"a": f, "b": f[:3]}, {"a": p, "b": p[:3]}, 2)


GPU_RESULTS = {
    "settings": {"device": "cuda:0"},
    "esm": {"share_of_gemm_ceiling": 0.62},
    "memory": {"batch_tokens": 32768, "peak_reserved_bytes": 13.5e9},
    "auto_budget": {"fraction_gib": 24, "completed": True, "batch_tokens": 40960},
    "agreement": {"call_flips_per_10000": 4.9, "call_flips": 1, "compared": 2048,
                  "nan_frames": {"bfloat16": 0, "float32": 0}},
}


def test_each_target_is_judged_on_its_figure():
    results = {c["name"].split(" ")[0]: c["result"] for c in checks(GPU_RESULTS)}
    assert list(results.values()) == ["PASS", "FAIL", "PASS", "PASS", "PASS"]


def test_what_was_not_measured_is_not_run_and_says_why():
    found = checks({"settings": {"device": "cpu"},
                    "memory": {"batch_tokens": 4096, "peak_reserved_bytes": None},
                    "auto_budget": {"completed": None, "error": "not run: no batch_budget"}})
    assert [c["result"] for c in found] == ["NOT RUN"] * 5
    assert "no CUDA device" in found[1]["shown"] and "batch_budget" in found[2]["shown"]
    other_budget = checks({**GPU_RESULTS, "memory": {"batch_tokens": 16384,
                                                     "peak_reserved_bytes": 5e9}})
    assert other_budget[1]["result"] == "NOT RUN" and "16384" in other_budget[1]["shown"]


def test_the_report_adds_checks_and_step_times_to_the_json(tmp_path, capsys):
    path, steps = tmp_path / "gpu_check.json", tmp_path / "steps.tsv"
    path.write_text(json.dumps(GPU_RESULTS))
    steps.write_text("speed\t95\t0\t180\nauto\t0\tskipped\t3\n")
    assert report(path, steps) == 0
    r = json.loads(path.read_text())
    assert r["steps"] == [{"name": "speed", "seconds": 95, "rc": "0", "cap_s": "180"},
                          {"name": "auto", "seconds": 0, "rc": "skipped", "cap_s": "3"}]
    assert [c["result"] for c in r["checks"]] == ["PASS", "FAIL", "PASS", "PASS", "PASS"]
    out = capsys.readouterr().out
    assert "FAIL    peak reserved <= 12 GB at 32768 batch tokens: 13.50 GB" in out
    assert "auto 0 (rc skipped)" in out
