"""The fused ESM-2 forward equals fair-esm's: float32 within 1e-4 at the published head shape
(2560 wide, 40 heads of 64), bfloat16-resident weights within cosine 0.999 per real token; the
fusion replaces the q/k/v projections without growing the model, and is asked for."""

from __future__ import annotations

import copy
import weakref
from types import SimpleNamespace

import pytest
import torch

from virnucpro.models.esm_fast import FUSED, _rotary_tables, fuse_qkv, last_layer
from virnucpro.models.esm_io import load_esm
from virnucpro.models.loaded import resident_bytes
from virnucpro.models.tiny.esm import write_tiny_esm

PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MSTNPKPQRKTKRNTNRRPQDVKFPGG" * 3,
            "ACDEFGHIKLMNPQRSTVWY" * 8, "MXBZU", "W"]
SHORT_PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MSTNPKPQRKTKRNTNRRPQ", "MXBZU"]


@pytest.fixture(scope="module")
def esm_published_heads(tmp_path_factory):
    """One layer at ESM-2 3B's width: 2560, 40 heads of 64 (a 36-layer float32 model beside its
    reference does not fit a small machine; the shape of the heads is what the kernels see)."""
    path = write_tiny_esm(tmp_path_factory.mktemp("esm2560"), seed=11, num_layers=1,
                          embed_dim=2560, attention_heads=40)
    return load_esm(path)


@pytest.fixture(scope="module")
def esm_6_layers(tmp_path_factory):
    # Deeper than the tiny set, heads of 64 as the published model's: 6 layers, 5 heads.
    path = write_tiny_esm(tmp_path_factory.mktemp("esm6"), seed=5, num_layers=6, embed_dim=320,
                          attention_heads=5)
    return load_esm(path)


@pytest.fixture(scope="module")
def six_layer_batch(esm_6_layers):
    """The padded batch, its `keep` and fair-esm's float32 representation of it, once."""
    tokens = _tokens(esm_6_layers, PROTEINS)
    return tokens, _keep(esm_6_layers, tokens), _reference(esm_6_layers, tokens)


def _tokens(bundle, proteins):
    _, _, tokens = bundle.batch_converter([(str(i), p) for i, p in enumerate(proteins)])
    return tokens


def _keep(bundle, tokens):
    """As the caller decides on the host: None for a batch without padding."""
    keep = tokens.ne(bundle.alphabet.padding_idx)
    return None if bool(keep.all()) else keep


def _reference(bundle, tokens):
    with torch.inference_mode():
        return bundle.model(tokens, repr_layers=[bundle.num_layers])["representations"][
            bundle.num_layers]


def _fused(model):
    fused = copy.deepcopy(model)  # the bundle's model stays unfused: fair-esm's reference
    fuse_qkv(fused)
    return fused


def _to_bfloat16(model):
    """The floating weights narrowed to bfloat16, the rotary inv_freq buffers kept float32 (as
    load_esm(..., dtype=torch.bfloat16) does in production)."""
    model = model.to(torch.bfloat16)
    for layer in model.layers:
        rot = layer.self_attn.rot_emb
        rot.inv_freq = rot.inv_freq.float()
    return model


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "one-protein"])
def test_float32_equals_fair_esm_within_1e4_at_the_published_head_shape(
        esm_published_heads, padded: bool):
    b = esm_published_heads
    tokens = _tokens(b, SHORT_PROTEINS if padded else SHORT_PROTEINS[:1])
    keep = _keep(b, tokens)
    assert (keep is not None) == padded
    ref = _reference(b, tokens)
    with torch.inference_mode():
        fast = last_layer(_fused(b.model), tokens, keep)
    assert fast.dtype == torch.float32 and fast.shape == ref.shape
    assert (ref - fast).abs().max().item() < 1e-4


def test_float32_equals_fair_esm_through_six_layers(esm_6_layers, six_layer_batch):
    tokens, keep, ref = six_layer_batch
    with torch.inference_mode():
        fast = last_layer(_fused(esm_6_layers.model), tokens, keep)
    assert (ref - fast).abs().max().item() < 1e-4


def test_mask_tokens_are_counted_and_zeroed_as_fair_esm_does(esm_6_layers):
    b = esm_6_layers
    tokens = _tokens(b, PROTEINS)
    tokens[0, 3:9] = b.alphabet.mask_idx  # token dropout's rescaling sees 6 of 35 observed
    tokens[2, 40] = b.alphabet.mask_idx
    with torch.inference_mode():
        fast = last_layer(_fused(b.model), tokens, _keep(b, tokens))
    assert (_reference(b, tokens) - fast).abs().max().item() < 1e-4


@pytest.mark.parametrize("fuse_first", [True, False], ids=["fused-then-narrowed",
                                                           "narrowed-then-fused"])
def test_bfloat16_resident_weights_keep_cosine_above_0999(esm_6_layers, six_layer_batch,
                                                          fuse_first: bool):
    b = esm_6_layers
    tokens, keep, ref = six_layer_batch
    if fuse_first:
        half_model = _to_bfloat16(_fused(b.model))
    else:
        half_model = _to_bfloat16(copy.deepcopy(b.model))
        fuse_qkv(half_model)
    assert half_model.layers[0].self_attn.qkv_proj.weight.dtype == torch.bfloat16
    with torch.inference_mode():
        half = last_layer(half_model, tokens, keep)
    assert half.dtype == torch.bfloat16
    cos = torch.nn.functional.cosine_similarity(ref[keep], half.float()[keep], dim=-1)
    assert cos.min().item() > 0.999


def test_bfloat16_at_the_published_head_shape_keeps_cosine_above_0999(esm_published_heads):
    b = esm_published_heads
    tokens = _tokens(b, SHORT_PROTEINS)
    keep = _keep(b, tokens)
    with torch.inference_mode():
        half = last_layer(_to_bfloat16(_fused(b.model)), tokens, keep).float()
    cos = torch.nn.functional.cosine_similarity(_reference(b, tokens)[keep], half[keep], dim=-1)
    assert cos.min().item() > 0.999


def test_fusion_replaces_the_projections_and_the_model_does_not_grow(esm_6_layers):
    model = copy.deepcopy(esm_6_layers.model)
    before = resident_bytes(model)
    attn = model.layers[0].self_attn
    parts = [attn.q_proj, attn.k_proj, attn.v_proj]
    weight_bytes = sum(p.weight.nbytes for p in parts)
    bias_bytes = sum(p.bias.nbytes for p in parts)
    fuse_qkv(model)
    assert resident_bytes(model) == before
    for layer in model.layers:
        attn = layer.self_attn
        assert not any(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj"))
        assert attn.qkv_proj.weight.shape == (3 * 320, 320)
        assert attn.qkv_proj.weight.nbytes == weight_bytes
        assert attn.qkv_proj.bias.nbytes == bias_bytes
    modules = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert modules.isdisjoint({"q_proj", "k_proj", "v_proj"}) and "qkv_proj" in modules
    assert getattr(model, FUSED) is True


def test_each_layers_projections_are_freed_before_the_next_layer_is_fused(esm_6_layers):
    model = copy.deepcopy(esm_6_layers.model)
    originals: list[weakref.ref] = []

    def layers():
        for layer in model.layers:
            # the previous layer's q/k/v weights are gone when this one's turn comes: the peak
            # is one layer's QKV above the model, not a second copy of them all
            assert all(r() is None for r in originals)
            attn = layer.self_attn
            originals[:] = [weakref.ref(p.weight) for p in (attn.q_proj, attn.k_proj, attn.v_proj)]
            yield layer

    fuse_qkv(SimpleNamespace(layers=layers()))
    assert originals and all(r() is None for r in originals)


def test_the_query_rows_carry_fair_esms_scaling(esm_6_layers):
    model = esm_6_layers.model
    attn = model.layers[2].self_attn
    fused = _fused(model).layers[2].self_attn.qkv_proj
    dim = model.embed_dim
    assert attn.scaling == 0.125  # heads of 64: the folding is exact
    assert torch.equal(fused.weight[:dim], attn.q_proj.weight * 0.125)
    assert torch.equal(fused.bias[:dim], attn.q_proj.bias * 0.125)
    assert torch.equal(fused.weight[dim:2 * dim], attn.k_proj.weight)
    assert torch.equal(fused.bias[2 * dim:], attn.v_proj.bias)


def test_fusing_twice_changes_nothing(esm_6_layers):
    model = _fused(esm_6_layers.model)
    weights = [layer.self_attn.qkv_proj.weight for layer in model.layers]
    fuse_qkv(model)
    assert all(layer.self_attn.qkv_proj.weight is w for layer, w in zip(model.layers, weights,
                                                                          strict=True))


def test_fusion_under_inference_mode_gives_plain_parameters(esm_6_layers):
    model = _to_bfloat16(copy.deepcopy(esm_6_layers.model))
    with torch.inference_mode():
        fuse_qkv(model)
    qkv = model.layers[0].self_attn.qkv_proj
    assert qkv.weight.dtype == torch.bfloat16 and not qkv.weight.is_inference()
    assert isinstance(qkv.weight, torch.nn.Parameter)


def test_last_layer_refuses_an_unfused_model(esm_6_layers):
    b = esm_6_layers
    with pytest.raises(ValueError, match="fuse_qkv"):
        last_layer(b.model, _tokens(b, PROTEINS[:1]))


def test_last_layer_refuses_rotary_frequencies_narrowed_to_bfloat16(esm_6_layers):
    b = esm_6_layers
    model = _fused(b.model).to(torch.bfloat16)  # inv_freq narrowed with the weights
    with pytest.raises(ValueError, match="inv_freq"):
        last_layer(model, _tokens(b, PROTEINS[:1]))


def test_last_layer_refuses_a_keep_mask_that_is_not_bool(esm_6_layers):
    b = esm_6_layers
    tokens = _tokens(b, PROTEINS[:2])
    with pytest.raises(ValueError, match="bool"):
        last_layer(_fused(b.model), tokens, tokens.ne(b.alphabet.padding_idx).float())


def test_rotary_angles_are_float32_before_the_tables_are_cast():
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 64, 2).float() / 64))
    cos32, sin32 = _rotary_tables(inv_freq, 1026, torch.float32)
    cos16, sin16 = _rotary_tables(inv_freq, 1026, torch.bfloat16)
    assert cos16.dtype == sin16.dtype == torch.bfloat16 and cos32.shape == (1026, 64)
    assert torch.equal(cos16, cos32.to(torch.bfloat16))
    assert torch.equal(sin16, sin32.to(torch.bfloat16))
    # bfloat16 angles would be radians off at the last positions
    angles16 = torch.arange(1026).bfloat16()[:, None] * inv_freq.bfloat16()[None, :]
    assert (angles16.float().cos() - cos32[:, :32]).abs().max() > 0.5
