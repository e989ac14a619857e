"""The scaled-dot-product ESM-2 forward equals fair-esm's: float32 within 1e-4, bfloat16
within cosine 0.999, and the pipeline's scores do not move when it is used."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from virnucpro.models.esm_fast import last_layer
from virnucpro.models.esm_io import load_esm
from virnucpro.models.tiny.esm import write_tiny_esm

PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MSTNPKPQRKTKRNTNRRPQDVKFPGG" * 3,
            "ACDEFGHIKLMNPQRSTVWY" * 8, "MXBZU", "W"]


@pytest.fixture(scope="module")
def esm_6_layers(tmp_path_factory):
    # Wider and deeper than the tiny set: 6 layers, 20 heads of 16, like the small ESM-2s.
    path = write_tiny_esm(tmp_path_factory.mktemp("esm6"), seed=5, num_layers=6, embed_dim=320,
                          attention_heads=20)
    return load_esm(path)


def _tokens(bundle):
    _, _, tokens = bundle.batch_converter([(str(i), p) for i, p in enumerate(PROTEINS)])
    return tokens


def test_float32_equals_fair_esm_within_1e4(esm_6_layers):
    b = esm_6_layers
    tokens = _tokens(b)
    with torch.inference_mode():
        ref = b.model(tokens, repr_layers=[b.num_layers])["representations"][b.num_layers]
        fast = last_layer(b.model, tokens)
    assert (ref - fast).abs().max().item() < 1e-4


def test_no_padding_path_equals_too(esm_6_layers):
    b = esm_6_layers
    _, _, tokens = b.batch_converter([("0", PROTEINS[2])])
    with torch.inference_mode():
        ref = b.model(tokens, repr_layers=[b.num_layers])["representations"][b.num_layers]
        assert (ref - last_layer(b.model, tokens)).abs().max().item() < 1e-4


def test_bfloat16_autocast_keeps_cosine_above_0999(esm_6_layers):
    b = esm_6_layers
    tokens = _tokens(b)
    with torch.inference_mode():
        ref = b.model(tokens, repr_layers=[b.num_layers])["representations"][b.num_layers]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = last_layer(b.model, tokens).float()
    real = tokens.ne(b.alphabet.padding_idx)
    cos = torch.nn.functional.cosine_similarity(ref[real], half[real], dim=-1)
    assert cos.min().item() > 0.999


def test_pipeline_scores_do_not_move_with_the_fast_attention(tiny_set_dir):
    from tests.helpers import columns, read_first_sequence
    from virnucpro.chunking import chunk_spans
    from virnucpro.models.loaded import LoadedModels, load_models
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.scoring import score_frames
    from virnucpro.translation import translate_six_frames

    genome = read_first_sequence("viral_reference.fasta")
    frames = [f for k, (s, e) in enumerate(chunk_spans(len(genome), 500))
              for f in translate_six_frames(genome[s:e], f"g_chunk_{k + 1}", s)]
    models = load_models(resolve_model_set("tiny"), 500, "cpu")

    class Fast(LoadedModels):
        fast_attention = True

    fast = Fast(**{f: getattr(models, f) for f in models.__dataclass_fields__})
    a = score_frames(*columns(frames), models, 4096)
    b = score_frames(*columns(frames), fast, 4096)
    assert np.abs(a.probs - b.probs).max() < 1e-5
    assert (a.probs.argmax(1) == b.probs.argmax(1)).all()
    # bfloat16 autocast: features in float32 still, calls nearly all kept on this random set.
    half = score_frames(*columns(frames), replace(models, precision="bfloat16"), 4096)
    assert half.probs.dtype == np.float32 and np.isfinite(half.probs).all()
    assert np.abs(a.probs - half.probs).max() < 0.05
