"""Weights resident in the compute precision: a bfloat16 set holds about half the bytes of a
float32 one (the fused QKV replaces, never adds), its scores stay close to float32's, and the
fused fast path in float32 scores as fair-esm's forward does."""

import numpy as np
import pytest
import torch

from tests.helpers import columns, read_first_sequence
from virnucpro.chunking import chunk_spans
from virnucpro.models.loaded import load_models, resident_bytes
from virnucpro.scoring import score_frames
from virnucpro.translation import translate_six_frames


@pytest.fixture(scope="module")
def frames():
    genome = read_first_sequence("viral_reference.fasta")
    return [f for k, (s, e) in enumerate(chunk_spans(len(genome), 500))
            for f in translate_six_frames(genome[s:e], f"g_chunk_{k + 1}", s)]


@pytest.fixture(scope="module")
def tiny(tiny_set_dir):
    from virnucpro.models.sets import resolve_model_set

    return resolve_model_set("tiny")


@pytest.fixture(scope="module")
def float32(tiny):
    return load_models(tiny, 500, "cpu", "float32")


@pytest.fixture(scope="module")
def bfloat16(tiny):
    return load_models(tiny, 500, "cpu", "bfloat16")


def test_bfloat16_weights_are_resident_in_bfloat16_with_float32_rotary_tables(bfloat16):
    for model in (bfloat16.dnabert.model, bfloat16.esm.model):
        dtypes = {p.dtype for p in model.parameters()}
        assert dtypes == {torch.bfloat16}, dtypes
    assert bfloat16.esm.fast
    assert {b.dtype for n, b in bfloat16.esm.model.named_buffers()
            if n.endswith("inv_freq")} == {torch.float32}
    assert next(bfloat16.classifier.parameters()).dtype == torch.float32


def test_bfloat16_weights_hold_at_most_055_of_float32s_bytes(float32, bfloat16):
    ratio = bfloat16.weights_bytes() / float32.weights_bytes()
    assert ratio <= 0.55, ratio


def test_published_width_esm2_in_bfloat16_holds_half_the_bytes(tmp_path):
    # One layer of ESM-2 3B's shape (2560 wide, 40 heads): fused in bfloat16 against the
    # float32 model as fair-esm builds it.
    from virnucpro.models.esm_io import load_esm
    from virnucpro.models.tiny.esm import write_tiny_esm

    path = write_tiny_esm(tmp_path, seed=3, num_layers=1, embed_dim=2560, attention_heads=40)
    wide = resident_bytes(load_esm(path).model)
    half = resident_bytes(load_esm(path, dtype=torch.bfloat16).model)
    assert half / wide <= 0.5 + 1e-6, half / wide


def test_bfloat16_scores_stay_close_to_float32(float32, bfloat16, frames):
    a = score_frames(*columns(frames), float32, 4096)
    b = score_frames(*columns(frames), bfloat16, 4096)
    assert b.probs.dtype == np.float32 and np.isfinite(b.probs).all()
    assert np.abs(a.probs - b.probs).max() < 0.05
    assert (a.probs.argmax(1) != b.probs.argmax(1)).mean() < 0.05


def test_the_fused_path_in_float32_scores_as_fair_esms_forward(float32, frames, tiny):
    from dataclasses import replace

    from virnucpro.models.esm_io import load_esm

    fused = replace(float32, esm=load_esm(tiny.esm_checkpoint, fast=True))
    assert fused.esm.fast and not float32.esm.fast
    a = score_frames(*columns(frames), float32, 4096, keep_features=True)
    b = score_frames(*columns(frames), fused, 4096, keep_features=True)
    assert np.abs(a.features - b.features).max() < 1e-4
    assert np.abs(a.probs - b.probs).max() < 1e-5


def test_bfloat16_features_point_where_float32_features_do(float32, bfloat16, frames):
    # Both models apart: DNABERT-S's columns, then ESM-2's (FIDELITY 5's order).
    a = score_frames(*columns(frames), float32, 4096, keep_features=True).features
    b = score_frames(*columns(frames), bfloat16, 4096, keep_features=True).features
    for cols in (slice(0, float32.dna_dim), slice(float32.dna_dim, None)):
        cos = torch.nn.functional.cosine_similarity(torch.from_numpy(a[:, cols]),
                                                    torch.from_numpy(b[:, cols]), dim=1)
        assert cos.min().item() > 0.999, (cols, cos.min().item())
