"""The tiny DNABERT-S, and the hub's folder format it is written in.

`write_dnabert` writes a folder that `dnabert_io.load_dnabert` (and the hub's own loader) reads:
config.json as published (minus auto_map), the weights (.bin or safetensors), tokenizer.json and
the two small tokenizer files. `write_tiny_dnabert` writes the tiny model (hidden 32, 2 layers, 4
heads, GLU 2x64) with a 100-token BPE tokenizer shaped like DNABERT-S's, the same bytes on every
machine; `as_published` rewrites its text files as the published ones come.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors

from virnucpro.models.dnabert import DnaBertConfig
from virnucpro.models.dnabert_io import BIN_FILE, CONFIG_FILE, SAFETENSORS_FILE
from virnucpro.models.dnabert_tokenizer import SPECIAL_TOKENS, TOKENIZER_FILE

_TOKEN_ROLES = {
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "mask_token": "[MASK]",
}


def published_config_dict(config: DnaBertConfig, torch_dtype: str = "float32") -> dict[str, Any]:
    """config.json as published (minus auto_map: no remote code is shipped with our folders)."""
    return {
        "alibi_starting_size": 512,
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.0,
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": config.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": config.intermediate_size,
        "layer_norm_eps": config.layer_norm_eps,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute",
        "torch_dtype": torch_dtype,
        "type_vocab_size": config.type_vocab_size,
        "use_cache": True,
        "vocab_size": config.vocab_size,
    }


def write_dnabert(
    folder: Path,
    config: DnaBertConfig,
    state_dict: dict[str, torch.Tensor],
    tokenizer: Tokenizer,
    *,
    fmt: str = "bin",
) -> None:
    """Write a folder that `load_dnabert` (and the hub's own loader) can read."""
    if fmt not in ("bin", "safetensors"):
        raise ValueError(f"fmt must be 'bin' or 'safetensors', not {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Own contiguous copies: safetensors refuses shared storage, torch.save would save whole views.
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    dtype = next(
        (str(v.dtype).removeprefix("torch.") for v in plain.values() if v.is_floating_point()),
        "float32",
    )
    _write_json(folder / CONFIG_FILE, published_config_dict(config, dtype))
    if fmt == "bin":
        torch.save(plain, folder / BIN_FILE)
    else:
        from safetensors.torch import save_file

        save_file(plain, str(folder / SAFETENSORS_FILE), metadata={"format": "pt"})
    tokenizer.save(str(folder / TOKENIZER_FILE))
    _write_json(
        folder / "tokenizer_config.json",
        {
            "clean_up_tokenization_spaces": True,
            **{role: tok for role, tok in _TOKEN_ROLES.items() if role != "unk_token"},
            "model_max_length": int(1e30),  # transformers' "no limit" value, as published
            "tokenizer_class": "PreTrainedTokenizerFast",
            "unk_token": "[UNK]",
        },
    )
    _write_json(folder / "special_tokens_map.json", dict(sorted(_TOKEN_ROLES.items())))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# Fixed longer tokens of the tiny vocabulary, each merged from two dinucleotides.
_FOUR_MERS = "ACGT AAAA TTTT GGGG CCCC TATA CGCG GATC AATT TTAA GCGC"


def make_tiny_tokenizer() -> Tokenizer:
    """A 100-token BPE tokenizer shaped like DNABERT-S's: same specials, template and splitting.

    Vocab: the five specials (0-4), A C G T (5-8), 16 dinucleotides, 64 trinucleotides and 11
    four-mers, in merge order. Built from fixed lists, so it is identical everywhere.
    """
    bases = "ACGT"
    merges = [(a, b) for a in bases for b in bases]
    merges += [(a + b, c) for a in bases for b in bases for c in bases]
    merges += [(k[:2], k[2:]) for k in _FOUR_MERS.split()]
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *bases])}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]", fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", SPECIAL_TOKENS["[CLS]"]), ("[SEP]", SPECIAL_TOKENS["[SEP]"])],
    )
    tokenizer.add_special_tokens(
        [AddedToken(tok, special=True, normalized=False) for tok in SPECIAL_TOKENS]
    )
    return tokenizer


def dnabert_state_shapes(config: DnaBertConfig) -> dict[str, tuple[int, ...]]:
    """Every state_dict key and shape, in module order (DNABERT_S.md §2)."""
    h, i = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config.num_hidden_layers):
        p = f"encoder.layer.{n}."
        shapes.update(
            {
                p + "attention.self.Wqkv.weight": (3 * h, h),
                p + "attention.self.Wqkv.bias": (3 * h,),
                p + "attention.output.dense.weight": (h, h),
                p + "attention.output.dense.bias": (h,),
                p + "attention.output.LayerNorm.weight": (h,),
                p + "attention.output.LayerNorm.bias": (h,),
                p + "mlp.gated_layers.weight": (2 * i, h),
                p + "mlp.wo.weight": (h, i),
                p + "mlp.wo.bias": (h,),
                p + "mlp.layernorm.weight": (h,),
                p + "mlp.layernorm.bias": (h,),
            }
        )
    shapes.update({"pooler.dense.weight": (h, h), "pooler.dense.bias": (h,)})
    return shapes


def tiny_state_dict(config: DnaBertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights drawn in a fixed key order from a private generator (global RNG untouched).

    Matrices get std 1/sqrt(fan_in) rather than BERT's 0.02 so activations stay O(1) and the
    attention depends on content, not only on ALiBi; LayerNorms are 1 and 0 perturbed by 0.1 so
    weight and bias mistakes show.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in dnabert_state_shapes(config).items():
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if "LayerNorm" in key or "layernorm" in key:
            state[key] = (1.0 + 0.1 * noise) if key.endswith("weight") else 0.1 * noise
        elif "embeddings" in key:
            state[key] = noise
        elif len(shape) == 2:
            state[key] = noise / math.sqrt(shape[1])
        else:
            state[key] = 0.1 * noise
    return state


TINY_HIDDEN_SIZE = 32


def write_tiny_dnabert(folder: Path, seed: int = 0) -> DnaBertConfig:
    """Write a tiny DNABERT-S (hidden 32, 2 layers, 4 heads, GLU 2x64) identical on every machine."""
    tokenizer = make_tiny_tokenizer()
    config = DnaBertConfig(
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        hidden_size=TINY_HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    write_dnabert(folder, config, tiny_state_dict(config, seed), tokenizer, fmt="bin")
    return config


def as_published(dnabert_dir: Path) -> None:
    """Rewrite a DNABERT-S folder's text files as the published ones come: the tokenizer saved
    with truncation at 2000 and fixed padding to 2000 (as `save_pretrained` leaves it after a
    padded training run), config.json with the hub's `auto_map`, `_name_or_path` and
    `transformers_version`."""
    tokenizer = Tokenizer.from_file(str(dnabert_dir / TOKENIZER_FILE))
    tokenizer.enable_truncation(max_length=2000)
    tokenizer.enable_padding(length=2000, pad_id=SPECIAL_TOKENS["[PAD]"], pad_token="[PAD]")
    tokenizer.save(str(dnabert_dir / TOKENIZER_FILE))
    config = json.loads((dnabert_dir / CONFIG_FILE).read_text())
    config.update({
        "_name_or_path": "zhihan1996/DNABERT-2-117M",
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig",
                     "AutoModel": "bert_layers.BertModel",
                     "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
                     "AutoModelForSequenceClassification":
                         "bert_layers.BertForSequenceClassification"},
        "transformers_version": "4.28.0",
    })
    (dnabert_dir / CONFIG_FILE).write_text(json.dumps(config, indent=4, sort_keys=True))
