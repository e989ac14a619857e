"""`benchmarks.esm_layer` runs at a tiny width and keeps its contract, so that it cannot rot
between the sessions that time it at ESM-2 3B's width. Nothing here is timed."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.esm_layer import CHUNK_TOKENS, batch_lengths, measure, old_layer, table


def test_batches_are_500_bp_frames_with_a_few_shorter_ones():
    lengths = batch_lengths(4096)
    assert len(lengths) * CHUNK_TOKENS <= 4096 and lengths.count(CHUNK_TOKENS) == len(lengths) - 4
    assert max(lengths) == CHUNK_TOKENS and min(lengths) < CHUNK_TOKENS
    assert batch_lengths(100) == [CHUNK_TOKENS]  # at least one protein


def test_the_layer_benchmark_measures_both_layers_in_both_precisions():
    r = measure(width=128, heads=2, tokens=400, repeats=1)
    assert r["lengths"] == batch_lengths(400) and r["padded_tokens"] == 2 * CHUNK_TOKENS
    assert r["real_tokens"] == sum(r["lengths"]) < r["padded_tokens"]
    assert set(r["results"]) == {"float32", "bfloat16"}
    for m in r["results"].values():
        for name in ("old", "new"):
            assert m[name]["median_s"] > 0 and len(m[name]["runs_s"]) == 1
            assert m[name]["tokens_per_s"] == pytest.approx(r["real_tokens"] / m[name]["median_s"])
        assert math.isfinite(m["speedup"]) and m["speedup"] > 0
        assert m["paired_speedup"] == pytest.approx(m["old"]["median_s"] / m["new"]["median_s"])
    text = table(r)
    assert "float32" in text and "bfloat16" in text and "E=128" in text


def test_the_old_layer_is_the_fused_layer_in_float32():
    # The baseline must compute what the new layer computes, or the comparison means nothing.
    from benchmarks.esm_layer import OneLayerModel, _old_rotary_tables, random_layer
    from virnucpro.models.esm_fast import _rotary_tables, fuse_qkv, run_layer

    old = random_layer(128, 2, seed=3, device="cpu")
    new = random_layer(128, 2, seed=3, device="cpu")
    fuse_qkv(OneLayerModel(new))
    x = torch.randn(3, 20, 128)
    keep = torch.arange(20)[None, :] < torch.tensor([20, 11, 4])[:, None]
    inv_freq = old.self_attn.rot_emb.inv_freq
    with torch.inference_mode():
        a = old_layer(old, x, *_old_rotary_tables(inv_freq, 20, "cpu"), keep[:, None, None, :])
        b = run_layer(new, x, *_rotary_tables(inv_freq, 20, torch.float32), keep[:, None, None, :])
    assert (a - b).abs().max().item() < 1e-4
