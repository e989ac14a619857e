"""The native DNABERT-S: architecture facts of docs/DNABERT_S.md, loading, tokenizing, embedding.

`_reference_hidden` is an independent, deliberately plain re-derivation of DNABERT_S.md §3 (one
unpadded sequence, float64, per-head slicing) used to cross-check the module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from virnucpro.errors import ModelError, StateDictError
from virnucpro.models.dnabert import (
    DnaBertConfig,
    DnaBertModel,
    alibi_bias,
    alibi_slopes,
    attention_bias,
)
from virnucpro.models.dnabert_io import BIN_FILE, SAFETENSORS_FILE, embed_dna_batch, load_dnabert
from virnucpro.models.dnabert_tokenizer import tokenize_dna
from virnucpro.models.tiny.dnabert import (
    dnabert_state_shapes,
    make_tiny_tokenizer,
    published_config_dict,
    tiny_state_dict,
    write_dnabert,
    write_tiny_dnabert,
)

# 6 heads: not a power of two, like the published 12, so the interleaved slopes are exercised.
SMALL = DnaBertConfig(
    vocab_size=100, hidden_size=48, num_hidden_layers=2, num_attention_heads=6, intermediate_size=40
)
PUBLISHED = DnaBertConfig(
    vocab_size=4096,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "dnabert-s"
    write_tiny_dnabert(folder, seed=0)
    return folder


def _model(config: DnaBertConfig = SMALL, seed: int = 0) -> DnaBertModel:
    model = DnaBertModel(config).eval()
    model.load_state_dict(tiny_state_dict(config, seed))
    return model


def _reference_hidden(
    state: dict[str, torch.Tensor], cfg: DnaBertConfig, ids: list[int], qkv_layout: str = "t h d"
) -> torch.Tensor:
    """Last hidden state [T, H] of one unpadded sequence, computed in float64 from §3."""
    s = {k: v.double() for k, v in state.items()}
    hid, n_heads, inter = cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size
    d = hid // n_heads

    def ln(x: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.layer_norm(x, (hid,), s[prefix + ".weight"], s[prefix + ".bias"], eps=1e-12)

    def cols(t: int, h: int) -> slice:  # feature index t*H + h*d (+ 0..d-1)
        start = t * hid + h * d if qkv_layout == "t h d" else h * 3 * d + t * d
        return slice(start, start + d)

    x = ln(
        s["embeddings.word_embeddings.weight"][torch.tensor(ids)]
        + s["embeddings.token_type_embeddings.weight"][0],
        "embeddings.LayerNorm",
    )
    pos = torch.arange(len(ids))
    dist = (pos[None, :] - pos[:, None]).abs().double()
    slopes = alibi_slopes(n_heads).double()
    for n in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{n}."
        qkv = x @ s[p + "attention.self.Wqkv.weight"].T + s[p + "attention.self.Wqkv.bias"]
        heads = []
        for h in range(n_heads):
            q, k, v = qkv[:, cols(0, h)], qkv[:, cols(1, h)], qkv[:, cols(2, h)]
            scores = q @ k.T / math.sqrt(d) - slopes[h] * dist
            heads.append(torch.softmax(scores, dim=-1) @ v)
        ctx = torch.cat(heads, dim=1)
        a = ln(
            ctx @ s[p + "attention.output.dense.weight"].T
            + s[p + "attention.output.dense.bias"]
            + x,
            p + "attention.output.LayerNorm",
        )
        g = a @ s[p + "mlp.gated_layers.weight"].T
        m = F.gelu(g[:, :inter]) * g[:, inter:]
        x = ln(m @ s[p + "mlp.wo.weight"].T + s[p + "mlp.wo.bias"] + a, p + "mlp.layernorm")
    return x


# ---- ALiBi ---------------------------------------------------------------------------------


def test_alibi_slopes_for_twelve_heads_match_mosaicbert() -> None:
    slopes = alibi_slopes(12)
    assert slopes.dtype == torch.float32
    assert slopes[:8].tolist() == [2.0 ** -(i + 1) for i in range(8)]
    bits = [hex(b) for b in slopes[8:].view(torch.int32).tolist()]
    assert bits == ["0x3f3504f3", "0x3eb504f3", "0x3e3504f3", "0x3db504f3"]
    naive = torch.tensor([2 ** (-8 * (h + 1) / 12) for h in range(12)], dtype=torch.float32)
    assert not torch.allclose(slopes, naive)


def test_alibi_slopes_for_powers_of_two_are_a_geometric_series() -> None:
    assert alibi_slopes(8).tolist() == [2.0 ** -(i + 1) for i in range(8)]
    assert alibi_slopes(4).tolist() == [4.0 ** -(i + 1) for i in range(4)]
    expected16 = torch.tensor([2 ** (-(i + 1) / 2) for i in range(16)], dtype=torch.float32)
    assert torch.equal(alibi_slopes(16), expected16)


def test_alibi_slopes_for_six_heads_take_every_other_slope_of_eight() -> None:
    assert alibi_slopes(6).tolist() == [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]


def test_alibi_bias_is_symmetric_negative_and_built_on_the_input_device() -> None:
    bias = alibi_bias(12, 7, torch.device("cpu"))
    assert bias.shape == (12, 7, 7) and bias.dtype == torch.float32
    assert bias.device == torch.device("cpu")
    assert torch.equal(bias, bias.transpose(1, 2))
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0)
    assert torch.all(bias <= 0)
    slopes = alibi_slopes(12)
    assert bias[8, 0, 5].item() == (slopes[8] * -5).item()
    assert bias[3, 6, 2].item() == -4 * 0.0625


def test_a_masked_key_gets_exactly_zero_attention_weight() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    bias = attention_bias(mask, 4)  # [1, 4, 5, 5]
    assert bias.dtype == torch.float32
    assert torch.equal(
        bias[0, :, :, 3:] - alibi_bias(4, 5, "cpu")[:, :, 3:], torch.full((4, 5, 2), -10000.0)
    )
    scores = torch.randn(1, 4, 5, 5, generator=torch.Generator().manual_seed(1)) * 10
    probs = torch.softmax(scores + bias, dim=-1)
    assert torch.all(probs[..., 3:] == 0.0)


# ---- config and architecture ---------------------------------------------------------------


def test_config_from_dict_fills_bert_defaults_and_ignores_unknown_keys(tmp_path: Path) -> None:
    cfg = DnaBertConfig.from_dict({"vocab_size": 4096, "alibi_starting_size": 512, "foo": [1]})
    assert cfg == PUBLISHED
    assert cfg.layer_norm_eps == 1e-12 and cfg.type_vocab_size == 2 and cfg.pad_token_id == 0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(published_config_dict(SMALL)))
    assert DnaBertConfig.from_json(path) == SMALL
    assert DnaBertConfig.from_dict(SMALL.to_dict()) == SMALL


def test_every_layernorm_uses_eps_1e_12() -> None:
    norms = [m for m in DnaBertModel(SMALL).modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 1 + 2 * SMALL.num_hidden_layers
    assert all(m.eps == 1e-12 for m in norms)


def test_full_size_model_has_the_published_parameter_count_and_key_table() -> None:
    table = {
        "embeddings.word_embeddings.weight": (4096, 768),
        "embeddings.token_type_embeddings.weight": (2, 768),
        "embeddings.LayerNorm.weight": (768,),
        "embeddings.LayerNorm.bias": (768,),
        "pooler.dense.weight": (768, 768),
        "pooler.dense.bias": (768,),
    }
    for i in range(12):
        p = f"encoder.layer.{i}."
        table |= {
            p + "attention.self.Wqkv.weight": (2304, 768),
            p + "attention.self.Wqkv.bias": (2304,),
            p + "attention.output.dense.weight": (768, 768),
            p + "attention.output.dense.bias": (768,),
            p + "attention.output.LayerNorm.weight": (768,),
            p + "attention.output.LayerNorm.bias": (768,),
            p + "mlp.gated_layers.weight": (6144, 768),
            p + "mlp.wo.weight": (768, 3072),
            p + "mlp.wo.bias": (768,),
            p + "mlp.layernorm.weight": (768,),
            p + "mlp.layernorm.bias": (768,),
        }
    model = DnaBertModel(PUBLISHED)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 138
    assert shapes == table == dnabert_state_shapes(PUBLISHED)
    assert sum(p.numel() for p in model.parameters()) == 117_068_544


def test_model_keeps_no_buffers_or_tensor_attributes_that_could_be_left_on_meta() -> None:
    model = DnaBertModel(SMALL)
    assert list(model.buffers()) == []
    for module in model.modules():
        stray = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        assert stray == [], f"{type(module).__name__} holds plain tensors {stray}"


# ---- forward semantics ---------------------------------------------------------------------


@pytest.mark.parametrize("layers", [1, 2])
def test_model_matches_a_hand_written_per_head_forward(layers: int) -> None:
    cfg = DnaBertConfig(**(SMALL.to_dict() | {"num_hidden_layers": layers}))
    model = _model(cfg, seed=3)
    ids = torch.randint(0, cfg.vocab_size, (37,), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        hidden, pooled = model(ids[None])
    state = model.state_dict()
    expected = _reference_hidden(state, cfg, ids.tolist())
    assert torch.allclose(hidden[0].double(), expected, atol=1e-5)
    pooled_ref = torch.tanh(
        expected[0] @ state["pooler.dense.weight"].double().T + state["pooler.dense.bias"].double()
    )
    assert torch.allclose(pooled[0].double(), pooled_ref, atol=1e-5)
    # The test can tell the layouts apart: head-major columns give another result.
    wrong = _reference_hidden(state, cfg, ids.tolist(), qkv_layout="h t d")
    assert (wrong - expected).abs().max() > 1e-2


def test_glu_sends_the_first_half_of_gated_layers_through_exact_gelu() -> None:
    mlp = _model().encoder.layer[0].mlp
    inter = SMALL.intermediate_size
    x = torch.randn(5, SMALL.hidden_size, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        out = mlp(x)
    g = x @ mlp.gated_layers.weight.T

    def finish(h: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(
            h @ mlp.wo.weight.T + mlp.wo.bias + x,
            (SMALL.hidden_size,),
            mlp.layernorm.weight,
            mlp.layernorm.bias,
            eps=1e-12,
        )

    first_gelu = finish(F.gelu(g[:, :inter]) * g[:, inter:])
    second_gelu = finish(g[:, :inter] * F.gelu(g[:, inter:]))
    tanh_gelu = finish(F.gelu(g[:, :inter], approximate="tanh") * g[:, inter:])
    assert torch.allclose(out, first_gelu, atol=1e-6)
    assert not torch.allclose(out, second_gelu, atol=1e-3)
    assert not torch.equal(out, tanh_gelu)


def test_padding_does_not_change_real_rows_and_padded_rows_are_exact_zeros() -> None:
    model = _model()
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 100, (1, 20), generator=gen)
    padded = torch.cat([ids, torch.randint(0, 100, (1, 9), generator=gen)], dim=1)
    mask = torch.cat([torch.ones(1, 20), torch.zeros(1, 9)], dim=1).long()
    other_pad = padded.clone()
    other_pad[0, 20:] = 3
    with torch.inference_mode():
        alone, _ = model(ids)
        out, _ = model(padded, mask)
        out2, _ = model(other_pad, mask)
        unmasked, _ = model(padded)
    assert torch.all(out[0, 20:] == 0.0)
    assert torch.equal(out, out2)  # a padded token's id never reaches a real row
    assert torch.allclose(out[0, :20], alone[0], atol=1e-6)
    # Without the mask the padded keys are attended: the -10000 mask is what removes them.
    assert (unmasked[0, :20] - alone[0]).abs().max() > 1e-3


def test_left_padding_keeps_relative_distances() -> None:
    model = _model()
    ids = torch.randint(4, 100, (1, 15), generator=torch.Generator().manual_seed(6))
    left = torch.cat([torch.full((1, 4), 3), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 4), torch.ones(1, 15)], dim=1).long()
    with torch.inference_mode():
        alone, _ = model(ids)
        out, _ = model(left, mask)
    assert torch.all(out[0, :4] == 0.0)
    assert torch.allclose(out[0, 4:], alone[0], atol=1e-6)


def test_missing_mask_attends_every_position_and_token_types_default_to_zero() -> None:
    model = _model()
    ids = torch.randint(0, 100, (2, 11), generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        plain, _ = model(ids)
        explicit, _ = model(ids, torch.ones_like(ids), torch.zeros_like(ids))
        typed, _ = model(ids, None, torch.ones_like(ids))
    assert torch.equal(plain, explicit)
    assert not torch.allclose(plain, typed)


def test_bfloat16_autocast_keeps_the_bias_in_fp32_and_stays_close() -> None:
    model = _model()
    ids = torch.randint(0, 100, (2, 30), generator=torch.Generator().manual_seed(8))
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    with torch.inference_mode():
        ref, _ = model(ids, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto, _ = model(ids, mask)
        half, _ = model.to(torch.bfloat16)(ids, mask)
    for out in (auto, half):
        assert torch.all(out[1, 20:] == 0)
        cos = F.cosine_similarity(out.float()[mask.bool()], ref[mask.bool()], dim=-1)
        assert cos.min() > 0.99


# ---- tokenizer -----------------------------------------------------------------------------


def test_tiny_tokenizer_has_the_published_special_ids_and_template() -> None:
    tok = make_tiny_tokenizer()
    assert tok.get_vocab_size() == 100
    specials = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
    assert [tok.token_to_id(t) for t in specials] == list(range(5))
    assert [tok.token_to_id(b) for b in "ACGT"] == [5, 6, 7, 8]
    assert tok.encode("").ids == [1, 2]
    assert tok.encode("acgt").ids == [1, 0, 0, 0, 0, 2]  # no normalizer: lower case is unknown
    assert tok.encode("ACGTNNACGT").tokens == ["[CLS]", "ACGT", "[UNK]", "[UNK]", "ACGT", "[SEP]"]
    pair = tok.encode("ACGT", "TTGA")
    assert pair.tokens[0] == "[CLS]" and pair.tokens.count("[SEP]") == 2
    assert pair.type_ids == [0, 0, 0, 1, 1, 1]


def test_tokenize_dna_upper_cases_and_keeps_n_as_one_unk_per_base() -> None:
    tok = make_tiny_tokenizer()
    ids = tokenize_dna(tok, ["acgt", "ACGTNNACGT", ""])
    assert ids[0] == tokenize_dna(tok, ["ACGT"])[0] == [1, tok.token_to_id("ACGT"), 2]
    assert ids[1].count(0) == 2
    assert ids[2] == [1, 2]
    long = tokenize_dna(tok, ["ACG" * 1000])[0]
    assert len(long) == 1002  # no truncation


def test_tokenize_dna_in_slices_keeps_every_sequence_in_order() -> None:
    import random

    from virnucpro.models.dnabert_tokenizer import TOKENIZE_SLICE

    tok = make_tiny_tokenizer()
    rng = random.Random(3)
    seqs = ["".join(rng.choice("ACGTN") for _ in range(rng.randint(1, 60)))
            for _ in range(2 * TOKENIZE_SLICE + 7)]
    assert tokenize_dna(tok, seqs) == [tok.encode(s).ids for s in seqs]


# ---- folders: write, load, embed -----------------------------------------------------------


def test_write_dnabert_writes_the_published_file_set(tiny_folder: Path) -> None:
    names = sorted(p.name for p in tiny_folder.iterdir())
    assert names == [
        "config.json",
        BIN_FILE,
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    config = json.loads((tiny_folder / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["model_type"] == "bert"
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 2
    assert config["vocab_size"] == 100 and config["layer_norm_eps"] == 1e-12
    tok_cfg = json.loads((tiny_folder / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok_cfg["pad_token"] == "[PAD]" and tok_cfg["mask_token"] == "[MASK]"
    # Same bytes count as the published files (268 and 125 B, DNABERT_S.md §4).
    assert (tiny_folder / "tokenizer_config.json").stat().st_size == 268
    assert (tiny_folder / "special_tokens_map.json").stat().st_size == 125


def test_tiny_generation_is_deterministic_and_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    rng = torch.get_rng_state()
    cfg_a = write_tiny_dnabert(tmp_path / "a", seed=0)
    cfg_b = write_tiny_dnabert(tmp_path / "b", seed=0)
    write_tiny_dnabert(tmp_path / "c", seed=1)
    assert torch.equal(rng, torch.get_rng_state())
    assert cfg_a == cfg_b and cfg_a.hidden_size == 32

    def load(name: str) -> dict[str, torch.Tensor]:
        return torch.load(tmp_path / name / BIN_FILE, weights_only=True)

    a, b, c = load("a"), load("b"), load("c")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.layer.0.mlp.wo.weight"], c["encoder.layer.0.mlp.wo.weight"])
    ln_w, ln_b = a["embeddings.LayerNorm.weight"], a["embeddings.LayerNorm.bias"]
    assert not torch.equal(ln_w, torch.ones_like(ln_w))
    assert not torch.equal(ln_b, torch.zeros_like(ln_b))
    for file in (tmp_path / "a").iterdir():  # same bytes, so a cache can be verified by hash
        assert file.read_bytes() == (tmp_path / "b" / file.name).read_bytes(), file.name


def test_loaded_bundle_embeds_as_the_plain_mean_of_the_last_hidden_state(tiny_folder: Path) -> None:
    bundle = load_dnabert(tiny_folder)
    assert bundle.hidden_size == 32 and bundle.pad_id == 3 and bundle.config.pad_token_id == 0
    assert not bundle.model.training
    ids = tokenize_dna(bundle.tokenizer, ["ACGTTGCAAGGCTTA"])
    with torch.inference_mode():
        hidden, _ = bundle.model(torch.tensor(ids))
    emb = embed_dna_batch(bundle, ids, "cpu")
    assert emb.shape == (1, 32) and emb.dtype == torch.float32
    assert torch.allclose(emb[0], hidden[0].mean(dim=0), atol=1e-6)
    assert embed_dna_batch(bundle, []).shape == (0, 32)


def test_batched_embeddings_equal_single_sequence_runs(tiny_folder: Path) -> None:
    bundle = load_dnabert(tiny_folder)
    gen = torch.Generator().manual_seed(9)
    random = [
        "".join("ACGT"[i] for i in torch.randint(0, 4, (n,), generator=gen))
        for n in (30, 499, 2400)
    ]
    seqs = ["A", "acgtn", *random]
    ids = tokenize_dna(bundle.tokenizer, seqs)
    assert max(map(len, ids)) > 512  # past the reference's initial ALiBi table
    batch = embed_dna_batch(bundle, ids)
    for i, row in enumerate(ids):
        assert (batch[i] - embed_dna_batch(bundle, [row])[0]).abs().max() <= 1e-5


def test_bfloat16_load_embeds_in_float32_close_to_fp32(tiny_folder: Path) -> None:
    ref = load_dnabert(tiny_folder)
    half = load_dnabert(tiny_folder, dtype=torch.bfloat16)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    ids = tokenize_dna(ref.tokenizer, ["ACGTAGCATCGGATCTATCTATCGACACTTGG", "GATTACA"])
    a, b = embed_dna_batch(ref, ids), embed_dna_batch(half, ids)
    assert b.dtype == torch.float32
    assert F.cosine_similarity(a, b).min() > 0.99


def _write(folder: Path, state: dict[str, torch.Tensor], fmt: str = "bin") -> Path:
    cfg = write_tiny_dnabert(folder.parent / "source")
    write_dnabert(folder, cfg, state, make_tiny_tokenizer(), fmt=fmt)
    return folder


def test_loader_strips_bert_prefix_ignores_cls_head_and_tolerates_missing_pooler(
    tmp_path: Path, tiny_folder: Path
) -> None:
    state = torch.load(tiny_folder / BIN_FILE, weights_only=True)
    dnabert2 = {"bert." + k: v for k, v in state.items() if not k.startswith("pooler.")}
    dnabert2["cls.predictions.decoder.weight"] = state["embeddings.word_embeddings.weight"]
    dnabert2["cls.predictions.decoder.bias"] = torch.zeros(100)
    bundle = load_dnabert(_write(tmp_path / "dnabert2", dnabert2))
    loaded = bundle.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("pooler."))
    ids = tokenize_dna(bundle.tokenizer, ["ACGTACGGT"])
    assert torch.equal(
        embed_dna_batch(bundle, ids), embed_dna_batch(load_dnabert(tiny_folder), ids)
    )


@pytest.mark.parametrize(
    ("change", "field", "name"),
    [
        ("drop", "missing", "encoder.layer.1.mlp.wo.bias"),
        ("drop", "missing", "pooler.dense.bias"),  # a partial pooler is not an absent one
        ("add", "unexpected", "encoder.layer.0.attention.self.extra"),
        ("reshape", "mismatched", "encoder.layer.0.mlp.gated_layers.weight"),
    ],
)
def test_missing_unexpected_or_misshapen_keys_raise_state_dict_error_naming_them(
    tmp_path: Path, tiny_folder: Path, change: str, field: str, name: str
) -> None:
    state = torch.load(tiny_folder / BIN_FILE, weights_only=True)
    if change == "drop":
        del state[name]
    elif change == "add":
        state[name] = torch.zeros(3)
    else:
        state[name] = state[name][:-1]
    with pytest.raises(StateDictError) as info:
        load_dnabert(_write(tmp_path / "broken", state))
    assert any(item.startswith(name) for item in getattr(info.value, field))
    assert name in str(info.value)


def test_safetensors_and_bin_load_equal_and_safetensors_wins(
    tmp_path: Path, tiny_folder: Path
) -> None:
    state = torch.load(tiny_folder / BIN_FILE, weights_only=True)
    st_folder = _write(tmp_path / "st", state, fmt="safetensors")
    assert (st_folder / SAFETENSORS_FILE).is_file() and not (st_folder / BIN_FILE).exists()
    a, b = load_dnabert(tiny_folder).model.state_dict(), load_dnabert(st_folder).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = tiny_state_dict(load_dnabert(tiny_folder).config, seed=5)
    from safetensors.torch import save_file

    both = tmp_path / "both"
    _write(both, state)
    save_file(other, str(both / SAFETENSORS_FILE))
    loaded = load_dnabert(both).model.state_dict()
    assert all(torch.equal(loaded[k], other[k]) for k in other)


@pytest.mark.parametrize("remove", [None, "config.json", "tokenizer.json", BIN_FILE])
def test_a_missing_folder_or_file_raises_model_error_naming_the_path(
    tmp_path: Path, remove: str | None
) -> None:
    folder = tmp_path / "m"
    if remove is not None:
        write_tiny_dnabert(folder)
        (folder / remove).unlink()
    with pytest.raises(ModelError) as info:
        load_dnabert(folder)
    assert str(folder) in str(info.value)


def test_corrupt_weights_raise_model_error(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_tiny_dnabert(folder)
    (folder / BIN_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_dnabert(folder)


def test_a_tokenizer_with_other_special_ids_is_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    folder = tmp_path / "m"
    write_tiny_dnabert(folder)
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[MASK]": 3, "[PAD]": 4, "A": 5}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))
    with pytest.raises(ModelError, match=r"\[PAD\]=4 \(expected 3\)"):
        load_dnabert(folder)
