"""Reading and writing a DNABERT-S folder, tokenizing, and the batched mean embedding.

A folder holds what the hub publishes: config.json, model.safetensors or pytorch_model.bin,
tokenizer.json (+ tokenizer_config.json, special_tokens_map.json). `load_dnabert` checks keys and
tokenizer strictly (typed errors); `embed_dna_batch` gives each sequence the plain mean of its
last hidden state over all its tokens, [CLS]/[SEP] included (FIDELITY 3), padding-independent.
Also builds the deterministic tiny DNABERT-S used by tests and the tiny model set.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors

from virnucpro.errors import ModelError, StateDictError
from virnucpro.models import safe_pickle
from virnucpro.models.device_copy import to_device
from virnucpro.models.dnabert import DnaBertConfig, DnaBertModel

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
BIN_FILE = "pytorch_model.bin"
TOKENIZER_FILE = "tokenizer.json"

# The published tokenizer's special ids (DNABERT_S.md §4). Pad is [PAD]=3, not config.pad_token_id.
SPECIAL_TOKENS: dict[str, int] = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "[MASK]": 4}
_TOKEN_ROLES = {
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "mask_token": "[MASK]",
}
_MODEL_NAME = "DNABERT-S"


@dataclass
class DnaBertBundle:
    """A loaded DNABERT-S: the model (eval mode, on its device), its tokenizer and config."""

    model: DnaBertModel
    tokenizer: Tokenizer
    config: DnaBertConfig

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def pad_id(self) -> int:
        # From the tokenizer, never config.pad_token_id (0 = [UNK] in the published config).
        return self.tokenizer.token_to_id("[PAD]")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_dnabert(
    folder: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> DnaBertBundle:
    """Load a DNABERT-S (or DNABERT-2) folder without remote code; raises ModelError subclasses."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError("DNABERT-S model folder not found", path=folder)
    config = read_config(folder / CONFIG_FILE)
    tokenizer = read_tokenizer(folder / TOKENIZER_FILE, config)
    weights_path = _weights_file(folder)
    state = _read_state_dict(weights_path)
    # Built directly on a real device: the hub code's meta-device init is what loses its ALiBi.
    with torch.device(device):
        model = DnaBertModel(config)
    model.load_state_dict(_fit_state_dict(state, model, weights_path), strict=True)
    model.to(dtype=dtype).eval()
    return DnaBertBundle(model=model, tokenizer=tokenizer, config=config)


def read_config(path: Path) -> DnaBertConfig:
    if not path.is_file():
        raise ModelError("config.json not found", path=path)
    try:
        return DnaBertConfig.from_json(path)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"unusable config: {exc}", path=path) from exc


def read_tokenizer(path: Path, config: DnaBertConfig) -> Tokenizer:
    if not path.is_file():
        raise ModelError("tokenizer.json not found", path=path)
    text = _inference_json(path)  # ModelError naming the file when it is not JSON
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises a bare Exception on a malformed file
        raise ModelError(f"unreadable tokenizer: {exc}", path=path) from exc
    wrong = [
        f"{tok}={tokenizer.token_to_id(tok)} (expected {want})"
        for tok, want in SPECIAL_TOKENS.items()
        if tokenizer.token_to_id(tok) != want
    ]
    if wrong:
        raise ModelError(
            "tokenizer special ids differ from DNABERT-S: " + ", ".join(wrong), path=path
        )
    ids = tokenizer.encode("ACGT").ids
    if ids[0] != SPECIAL_TOKENS["[CLS]"] or ids[-1] != SPECIAL_TOKENS["[SEP]"]:
        raise ModelError("tokenizer does not add [CLS] ... [SEP] around a sequence", path=path)
    if SPECIAL_TOKENS["[PAD]"] in ids:
        raise ModelError("tokenizer pads a sequence on its own", path=path)
    if tokenizer.get_vocab_size(with_added_tokens=True) > config.vocab_size:
        raise ModelError(
            f"tokenizer has more tokens than vocab_size {config.vocab_size}", path=path
        )
    return tokenizer


# Fields of a BPE model that newer `tokenizers` write with their default value; an older
# library that does not know one refuses the whole file, and at its default it changes nothing.
_DEFAULT_MODEL_FIELDS = {"byte_fallback": False, "ignore_merges": False}


def _inference_json(path: Path) -> str:
    """The file's JSON as the reference ran it: no truncation, no padding.

    The published tokenizer.json carries truncation at 2000 and fixed padding to 2000 (what
    `save_pretrained` writes after a padded training run). The reference called the tokenizer
    through transformers with default arguments, which switch both off for every call; left on,
    every chunk would gain [PAD] tokens and long sequences would be cut. They are dropped before
    the tokenizer is built, so no probe or encoding ever sees them.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"unreadable tokenizer: {exc}", path=path) from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelError("unreadable tokenizer: not a tokenizers JSON file", path=path)
    for setting in ("truncation", "padding"):
        if data.get(setting) is not None:
            logger.debug("%s: ignoring its saved %s (%s)", path, setting, data[setting])
        data[setting] = None
    model = data["model"]
    for name, default in _DEFAULT_MODEL_FIELDS.items():
        if name in model and model[name] == default:
            del model[name]
    return json.dumps(data)


def check_dnabert(folder: Path) -> DnaBertConfig:
    """What `load_dnabert` checks, without the weights: the config, the tokenizer (a probe
    encoding) and every checkpoint key and shape against the architecture built on the meta
    device. The checkpoint is mapped, not read (a .bin in torch's zip format; safetensors by
    its header), so a 468 MB file costs next to no memory. Raises ModelError subclasses."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError("DNABERT-S model folder not found", path=folder)
    config = read_config(folder / CONFIG_FILE)
    read_tokenizer(folder / TOKENIZER_FILE, config)
    weights_path = _weights_file(folder)
    state = _read_state_dict(weights_path, shapes_only=True)
    with torch.device("meta"):
        model = DnaBertModel(config)
    _fit_state_dict(state, model, weights_path)
    return config


def _weights_file(folder: Path) -> Path:
    for name in (SAFETENSORS_FILE, BIN_FILE):  # safetensors first: no pickle involved
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"no {SAFETENSORS_FILE} or {BIN_FILE}", path=folder)


def _read_state_dict(path: Path, *, shapes_only: bool = False) -> dict[str, Any]:
    """The weights; with `shapes_only`, tensors whose bytes are not read (meta tensors for
    safetensors, mapped file pages for a .bin)."""
    if path.name.endswith(".safetensors"):
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            if shapes_only:
                with safe_open(str(path), framework="pt") as fh:
                    state = {k: _meta_like(fh.get_slice(k)) for k in fh.keys()}  # noqa: SIM118
            else:
                state = load_file(str(path), device="cpu")
        except Exception as exc:  # corrupt or truncated
            raise ModelError(f"cannot read weights: {exc}", path=path) from exc
    else:
        # A plain state dict: tensors and torch's containers only, any other global refused
        # (virnucpro.models.safe_pickle, no inert records).
        state = safe_pickle.load(path, what="weights", mmap=shapes_only)
    if not isinstance(state, dict):
        raise ModelError(f"weights are a {type(state).__name__}, not a state dict", path=path)
    return state


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                      "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                      "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def _meta_like(view: Any) -> torch.Tensor:
    """A meta tensor of a safetensors entry's shape and dtype (from the header alone)."""
    return torch.empty(view.get_shape(), dtype=_SAFETENSORS_DTYPES.get(view.get_dtype(),
                                                                        torch.float32),
                       device="meta")


def _fit_state_dict(state: dict[str, Any], model: DnaBertModel, path: Path) -> dict[str, Any]:
    """Strip `bert.`, drop the MLM head `cls.*`, allow a missing pooler; raise on anything else."""
    expected = model.state_dict()
    fixed: dict[str, Any] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        name = key.removeprefix("bert.")
        if name.startswith("cls."):  # DNABERT-2's MLM head, not part of the encoder
            continue
        if name in fixed or name not in expected or not isinstance(value, torch.Tensor):
            unexpected.append(key)
            continue
        fixed[name] = value
    pooler = [k for k in expected if k.startswith("pooler.")]
    pooler_absent = not any(k in fixed for k in pooler)
    missing = [k for k in expected if k not in fixed and not (pooler_absent and k in pooler)]
    mismatched = [
        f"{k} {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in fixed.items()
        if v.shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        raise StateDictError(
            _MODEL_NAME, missing=missing, unexpected=unexpected, mismatched=mismatched, path=path
        )
    if pooler_absent:
        # DNABERT-2 has no pooler; it is unused by the mean embedding, so its init is kept.
        logger.debug("%s: no pooler weights, keeping the initialised pooler", path)
        fixed.update({k: expected[k] for k in pooler})
    return fixed


def tokenize_dna(tokenizer: Tokenizer, sequences: list[str]) -> list[list[int]]:
    """Token ids per sequence, [CLS] ... [SEP], no truncation.

    Upper-cases first: the published tokenizer has no normalizer, so lower-case bases would each
    become [UNK]. Non-ACGT letters (N, IUPAC) still become one [UNK] per character, as published.
    """
    if tokenizer.truncation is not None or tokenizer.padding is not None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    # In slices: an Encoding holds strings, offsets and masks per token, and a whole shard's
    # worth at once raised resident memory by ~19 KB per frame (measured on 8192 frames of
    # 499 nt: 158 MB at once, 20 MB in slices of 256).
    ids: list[list[int]] = []
    for start in range(0, len(sequences), TOKENIZE_SLICE):
        part = [s.upper() for s in sequences[start:start + TOKENIZE_SLICE]]
        ids += [enc.ids for enc in tokenizer.encode_batch(part, add_special_tokens=True)]
    return ids


TOKENIZE_SLICE = 256


def embed_dna_batch(
    bundle: DnaBertBundle, token_ids: list[list[int]], device: str | torch.device | None = None,
    *, to_cpu: bool = True,
) -> torch.Tensor:
    """Mean last hidden state over each sequence's tokens, float32 [n, H] on CPU (on the
    device with `to_cpu=False`, so that a GPU caller can queue the next batch without waiting).

    Right-pads with [PAD] under a 0 mask, so each row equals the sequence run alone (within
    ~1e-6 in fp32). `device` is where the inputs go; it defaults to the model's device.
    """
    if not token_ids:
        return torch.zeros(0, bundle.hidden_size, dtype=torch.float32)
    lengths = [len(row) for row in token_ids]
    if min(lengths) == 0:
        raise ValueError("an empty token list cannot be embedded (tokenize_dna adds [CLS]/[SEP])")
    n, seq_len = len(token_ids), max(lengths)
    ids = torch.full((n, seq_len), bundle.pad_id, dtype=torch.long)  # [n, T]
    mask = torch.zeros((n, seq_len), dtype=torch.long)  # [n, T]
    for i, row in enumerate(token_ids):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    target = torch.device(device) if device is not None else bundle.device
    ids, mask = to_device(ids, target), to_device(mask, target)
    with torch.inference_mode():
        hidden, _ = bundle.model(ids, mask)  # [n, T, H]
        weights = mask.to(torch.float32)[..., None]  # [n, T, 1]
        # sum(out * mask) / sum(mask), as the DNABERT-S evaluation code computes it.
        mean = (hidden.to(torch.float32) * weights).sum(dim=1) / weights.sum(dim=1)  # [n, H]
    return mean.cpu() if to_cpu else mean


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
