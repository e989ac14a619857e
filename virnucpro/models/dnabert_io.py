"""Reading a DNABERT-S folder into a `DnaBertBundle`, and the bundle's batched mean embedding.

A folder holds what the hub publishes: config.json, model.safetensors or pytorch_model.bin,
tokenizer.json (+ tokenizer_config.json, special_tokens_map.json). `load_dnabert` checks keys and
tokenizer strictly (typed errors; the tokenizer is `dnabert_tokenizer`'s); `check_dnabert` makes
the same checks with the weights mapped, not read; `embed_dna_batch` gives each sequence the plain
mean of its last hidden state over all its tokens, [CLS]/[SEP] included (FIDELITY 3),
padding-independent. Folders in this format are written by `models/tiny/dnabert.py`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from virnucpro.errors import ModelError, StateDictError
from virnucpro.models import safe_pickle
from virnucpro.models.device_copy import to_device
from virnucpro.models.dnabert import DnaBertConfig, DnaBertModel
from virnucpro.models.dnabert_tokenizer import TOKENIZER_FILE, read_tokenizer

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
BIN_FILE = "pytorch_model.bin"
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


@dataclass(frozen=True, eq=False)
class DnaBatch:
    """Token ids as DNABERT-S reads them, made on the host: ids [n, T] right-padded with [PAD],
    mask [n, T] (1 at real tokens), the mask's flat nonzero positions [nnz], counts [n, 1]."""

    ids: torch.Tensor
    mask: torch.Tensor
    indices: torch.Tensor
    counts: torch.Tensor


def dna_batch(bundle: DnaBertBundle, token_ids: list[list[int]], pin: bool = False) -> DnaBatch:
    """The host side of `embed_dna_batch`; `pin`: in page-locked memory, for a GPU."""
    lengths = [len(row) for row in token_ids]
    if min(lengths) == 0:
        raise ValueError("an empty token list cannot be embedded (tokenize_dna adds [CLS]/[SEP])")
    n, seq_len = len(token_ids), max(lengths)
    ids = torch.full((n, seq_len), bundle.pad_id, dtype=torch.long)  # [n, T]
    mask = torch.zeros((n, seq_len), dtype=torch.long)  # [n, T]
    for i, row in enumerate(token_ids):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    indices = torch.nonzero(mask.flatten(), as_tuple=False).flatten()  # [nnz]
    counts = torch.tensor(lengths, dtype=torch.float32)[:, None]  # [n, 1]
    parts = (ids, mask, indices, counts)
    if pin:
        parts = tuple(t.pin_memory() for t in parts)
    return DnaBatch(*parts)


def embed_dna_batch(
    bundle: DnaBertBundle, token_ids: list[list[int]] | DnaBatch,
    device: str | torch.device | None = None, *, to_cpu: bool = True,
) -> torch.Tensor:
    """Mean last hidden state over each sequence's tokens, float32 [n, H] on CPU (on the
    device with `to_cpu=False`, so that a GPU caller can queue the next batch without waiting).

    Right-pads with [PAD] under a 0 mask, so each row equals the sequence run alone (within
    ~1e-6 in fp32). `device` is where the inputs go; it defaults to the model's device.
    `token_ids`: the sequences' ids, or their `dna_batch` made ahead of time.
    """
    if not isinstance(token_ids, DnaBatch):
        if not token_ids:
            return torch.zeros(0, bundle.hidden_size, dtype=torch.float32)
        token_ids = dna_batch(bundle, token_ids)
    target = torch.device(device) if device is not None else bundle.device
    ids, mask, indices, counts = (to_device(t, target) for t in (
        token_ids.ids, token_ids.mask, token_ids.indices, token_ids.counts))
    with torch.inference_mode():
        hidden, _ = bundle.model(ids, mask, indices=indices)  # [n, T, H]
        # sum(out * mask) / sum(mask), as the DNABERT-S evaluation code computes it; summed in
        # float32 from the model's dtype (padded rows are exact zeros, the mask keeps them so).
        weights = mask.to(hidden.dtype)[..., None]  # [n, T, 1]
        mean = (hidden * weights).sum(dim=1, dtype=torch.float32) / counts  # [n, H]
    return mean.cpu() if to_cpu else mean
