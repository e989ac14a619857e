"""ESM-2 through fair-esm: safe loading and the batched residue-mean embedding.

Contract (FIDELITY 4): the feature of a protein is the mean of fair-esm's last-layer
representation (after the closing layer norm) over its first 1024 residues, BOS, EOS and padding
excluded; a protein embedded in a padded batch equals its embedding alone within 1e-5.
Checkpoints are read by virnucpro.models.safe_pickle: tensors and plain data, `argparse.Namespace`,
other classes only inside `cfg` and only as inert records (never run); code-running globals refused.
Checkpoints in this format are written by `models/tiny/esm.py`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from virnucpro.errors import ModelError, StateDictError
from virnucpro.models import safe_pickle
from virnucpro.models.device_copy import to_device

log = logging.getLogger(__name__)

MAX_RESIDUES = 1024  # FIDELITY 4: only the first 1024 residues of a protein count
_REGRESSION_SUFFIX = "-contact-regression.pt"


@dataclass(frozen=True, eq=False)
class EsmBundle:
    """A loaded ESM-2 model (eval mode, on its device) and what it takes to feed it."""

    model: Any  # esm.model.esm2.ESM2; typed loosely so importing this module stays cheap
    alphabet: Any  # esm.data.Alphabet
    batch_converter: Any  # esm.data.BatchConverter truncating at MAX_RESIDUES
    embed_dim: int
    num_layers: int
    fast: bool = False  # QKV fused, run by esm_fast.last_layer (fair-esm's forward no longer can)


def regression_path(checkpoint: Path) -> Path:
    """The contact-regression file fair-esm expects beside `checkpoint`."""
    return checkpoint.with_name(checkpoint.stem + _REGRESSION_SUFFIX)


def _torch_load(path: Path, mmap: bool = False) -> Any:
    # Read by virnucpro.models.safe_pickle: tensors, torch's containers and argparse.Namespace
    # as themselves; any other class (fairseq dataclasses, enums, omegaconf containers in the
    # fairseq-style `cfg`) as an inert record whose code never runs; functions and anything
    # from os/subprocess/builtins... refused with the file and the global named.
    # `mmap`: the tensors stay in the file (page cache, shared between processes) until copied
    # elsewhere; only torch's zip format can be mapped, an older file is read whole.
    data = safe_pickle.load(path, what="ESM-2 checkpoint", inert=True, mmap=mmap)
    if not isinstance(data, dict):
        raise ModelError(f"not an ESM-2 checkpoint: it holds a {type(data).__name__}", path=path)
    misplaced = [r.pickled_name for r in safe_pickle.inert_records(data.get("model"))]
    if misplaced:  # a class where the weights are: nothing the model can use
        raise ModelError(
            f"unsafe ESM-2 checkpoint: refused {misplaced[0]} among the weights (only tensors "
            "belong there; other classes only in cfg)", path=path)
    # Only what fair-esm reads is kept: the weights and (main file) the model's fields of cfg.
    kept: dict[str, Any] = {"model": data.get("model")}
    if "cfg" in data:
        kept["cfg"] = _plain_cfg(data["cfg"], path)
    return kept


_CFG_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")


def _plain_cfg(cfg: Any, path: Path) -> dict[str, Any]:
    """The fields fair-esm's ESM-2 builder reads from cfg["model"], as an argparse.Namespace;
    the rest of cfg (possibly inert records) is dropped."""
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if model is None:
        raise ModelError("not an ESM-2 checkpoint: no cfg[\"model\"]", path=path)
    if isinstance(model, safe_pickle.Inert):
        fields = model.fields()
    elif isinstance(model, argparse.Namespace):
        fields = vars(model)
    elif isinstance(model, dict):
        fields = model
    else:
        raise ModelError(f"not an ESM-2 checkpoint: cfg[\"model\"] is a {type(model).__name__}",
                         path=path)
    missing = [f for f in _CFG_FIELDS if f not in fields]
    if missing:
        raise ModelError(f"not an ESM-2 checkpoint: cfg[\"model\"] lacks {', '.join(missing)}",
                         path=path)
    return {"model": argparse.Namespace(**{f: fields[f] for f in _CFG_FIELDS})}


def _checkpoint_files(checkpoint: Path) -> tuple[Path, Path]:
    """The checkpoint and its contact-regression file, both present, or a ModelError."""
    # fair-esm picks its ESM-2 loader by the name; any other name would go to the ESM-1 loader.
    if not (checkpoint.name.startswith("esm2") and checkpoint.suffix == ".pt"):
        raise ModelError("an ESM-2 checkpoint must be named esm2_*.pt", path=checkpoint)
    regression = regression_path(checkpoint)
    for needed in (checkpoint, regression):
        if not needed.is_file():
            raise ModelError("ESM-2 checkpoint file is missing", path=needed)
    return checkpoint, regression


def check_esm(checkpoint: Path) -> int:
    """What `load_esm` checks, without the weights: both files read through the restricted
    unpickler, the checkpoint mapped (its tensors never read: the published 5.7 GB file costs
    no memory), the architecture of its `cfg` built on the meta device and every key and
    shape compared with it. Returns the embedding size; raises ModelError subclasses."""
    checkpoint, regression = _checkpoint_files(Path(checkpoint))
    model_data = _torch_load(checkpoint, mmap=True)
    regression_data = _torch_load(regression)
    try:
        model, _alphabet, state = _build_on_meta(model_data, regression_data)
    except Exception as exc:  # odd cfg values, a "model" that is not a mapping
        raise ModelError(f"not a usable ESM-2 checkpoint: {exc}", path=checkpoint) from exc
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    mismatched = [f"{k} {got[k]} vs model {expected[k]}" for k in expected.keys() & got.keys()
                  if got[k] != expected[k]]
    unexpected = [k for k in state if k not in expected or k not in got]
    missing = [k for k in expected if k not in state]
    if missing or unexpected or mismatched:
        raise StateDictError("ESM-2", missing=missing, unexpected=unexpected,
                             mismatched=mismatched, path=checkpoint)
    return int(model.embed_dim)


def load_esm(checkpoint: Path, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32, fast: bool = False) -> EsmBundle:
    """Load an `esm2_*.pt` checkpoint (and its contact-regression file) onto `device`, its
    weights resident in `dtype` (the rotary frequencies stay float32). `fast`: the QKV
    projections fused and the forward run by `esm_fast.last_layer` (scaled-dot-product
    attention, no fair-esm forward); a bfloat16 model is always fast."""
    checkpoint, regression = _checkpoint_files(Path(checkpoint))
    fast = fast or dtype != torch.float32
    # For a GPU the file is mapped, not read into memory first: its tensors are copied
    # straight to the device (for the published 3B file: 5.7 GB of host memory a worker spared,
    # and the page cache shared by the workers of a machine). On the CPU they are read: mapped
    # float32 weights would stay file pages, paged in by the first batches.
    mapped = torch.device(device).type != "cpu"
    model_data = _torch_load(checkpoint, mmap=mapped)
    regression_data = _torch_load(regression)
    # To the device as stored, cast there, one tensor at a time: for the published float16 3B
    # file, half the bytes cross to a GPU, and the device holds the weights in `dtype` plus one
    # tensor in transit, never the file's copy beside the cast one. Outside the checkpoint's
    # `try`: a device that is absent or full is not the file's fault, and memory errors must
    # stay recognisable as such.
    for data in (model_data, regression_data):
        _move_tensors(data, torch.device(device), dtype)
    try:
        model, alphabet = _build_without_init(model_data, regression_data)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as exc:  # KeyError/AttributeError on odd cfg, RuntimeError on keys
        raise ModelError(f"not a usable ESM-2 checkpoint: {exc}", path=checkpoint) from exc
    model = model.eval().to(device)  # already there, unless fair-esm's own loader built it
    if next(model.parameters()).dtype != dtype:  # fair-esm's own loader gave float32
        with torch.no_grad():
            for param in model.parameters():  # buffers (the rotary frequencies) stay float32
                param.data = param.data.to(dtype)
    if fast:
        from virnucpro.models.esm_fast import fuse_qkv

        fuse_qkv(model)
    log.info("loaded %s: %d layers, %d dims, %s", checkpoint.name, model.num_layers,
             model.embed_dim, str(dtype).removeprefix("torch."))
    return EsmBundle(
        model=model,
        alphabet=alphabet,
        batch_converter=alphabet.get_batch_converter(truncation_seq_length=MAX_RESIDUES),
        embed_dim=int(model.embed_dim),
        num_layers=int(model.num_layers),
        fast=fast,
    )


def _move_tensors(data: Any, device: torch.device, dtype: torch.dtype) -> None:
    """The tensors of a checkpoint's "model" mapping moved to `device`, floating ones cast to
    `dtype` there (rotary frequencies to float32: their angles need it), each source tensor
    released as soon as it is copied (odd contents are left for the build to refuse)."""
    weights = data.get("model") if isinstance(data, dict) else None
    if not isinstance(weights, dict):
        return
    moved: dict[str, Any] = {}
    for key in list(weights):
        value = weights.pop(key)
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(torch.float32 if key.endswith("inv_freq") else dtype)
        moved[key] = value
    data["model"] = moved


def _build_without_init(model_data: dict, regression_data: dict) -> tuple[Any, Any]:
    """fair-esm's ESM-2 built on the meta device, then given the checkpoint's tensors.

    fair-esm's own `load_model_and_alphabet_core` first draws random initial weights for every
    parameter (three quarters of a load: 10 of 13 s for a 650M model on two cores), then copies
    the checkpoint over them. Here the same class is built by fair-esm's own v2 builder without
    storage, and the checkpoint is assigned: same modules, same keys (all required, as fair-esm
    requires them with regression weights), in the dtype `_move_tensors` gave them (float32
    as fair-esm's copy makes them, unless asked otherwise), the token embedding and the language-model head tied again as ESM2 builds them.
    The model is built where the checkpoint's tensors are (`load_esm` moves them first).
    """
    import esm.pretrained

    if getattr(esm.pretrained, "_load_model_and_alphabet_core_v2", None) is None:
        # Another fair-esm: its public loader, with the initial draw.
        return esm.pretrained.load_model_and_alphabet_core("esm2", model_data, regression_data)
    model, alphabet, state = _build_on_meta(model_data, regression_data)
    model.load_state_dict(state, strict=True, assign=True)
    # Tied again as ESM2 builds them. fair-esm's copy into the shared tensor loads lm_head last
    # (it is registered last), so its value is the one both modules keep there; the same here.
    model.embed_tokens.weight = model.lm_head.weight
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"no value in the checkpoint for {left[:5]}")
    return model, alphabet


def _build_on_meta(model_data: dict, regression_data: dict) -> tuple[Any, Any, dict]:
    """fair-esm's own ESM-2 v2 builder run on the meta device: the model without storage, its
    alphabet, and the checkpoint's state dict (regression weights merged, fairseq prefixes
    stripped) as fair-esm would load it."""
    import esm.pretrained

    build = esm.pretrained._load_model_and_alphabet_core_v2
    model_data["model"].update(regression_data["model"])
    with torch.device("meta"):
        return build(model_data)


@dataclass(frozen=True, eq=False)
class ProteinBatch:
    """A batch of proteins as ESM-2 reads it, made on the host (no device tensor is read back
    for it): tokens [B, T] (BOS, residues cut at MAX_RESIDUES, EOS, padding), `keep` [B, T] True
    at real tokens (None when nothing is padded: the fastest attention kernels), residues [B]."""

    tokens: torch.Tensor
    keep: torch.Tensor | None
    residues: torch.Tensor


def protein_batch(bundle: EsmBundle, proteins: Sequence[str], pin: bool = False) -> ProteinBatch:
    """The host side of `embed_protein_batch`; `pin`: in page-locked memory, for a GPU."""
    if any(not p for p in proteins):
        raise ValueError("cannot embed an empty protein")
    try:
        _, _, tokens = bundle.batch_converter([(str(i), p) for i, p in enumerate(proteins)])
    except KeyError as exc:
        raise ValueError(f"protein holds a letter ESM-2 has no token for: {exc}") from exc
    real = tokens.ne(bundle.alphabet.padding_idx)  # [B, T]
    # Residues sit at 1..n (BOS at 0, EOS at n+1, padding after); the converter already cut
    # each protein to MAX_RESIDUES, so the count comes from the tokens themselves.
    residues = real.sum(dim=1) - 2  # [B]
    keep = None if bool(real.all()) else real
    if pin:
        tokens, residues = tokens.pin_memory(), residues.pin_memory()
        keep = keep.pin_memory() if keep is not None else None
    return ProteinBatch(tokens=tokens, keep=keep, residues=residues)


def embed_protein_batch(
    bundle: EsmBundle, proteins: Sequence[str] | ProteinBatch,
    device: str | torch.device | None = None, *, to_cpu: bool = True,
) -> torch.Tensor:
    """Residue-mean last-layer embeddings: float32 tensor [n, embed_dim] on CPU (on the
    device with `to_cpu=False`, where nothing is read back: the host can queue the next batch).
    `proteins`: the sequences, or their `protein_batch` made ahead of time."""
    if not isinstance(proteins, ProteinBatch):
        if not proteins:
            return torch.empty(0, bundle.embed_dim, dtype=torch.float32)
        proteins = protein_batch(bundle, proteins)
    if device is None:
        device = next(bundle.model.parameters()).device
    device = torch.device(device)
    tokens = to_device(proteins.tokens, device)  # [B, T], T = longest kept residues + 2
    residues = to_device(proteins.residues, device)  # [B]
    keep = to_device(proteins.keep, device) if proteins.keep is not None else None
    layer = bundle.num_layers
    with torch.inference_mode():
        if bundle.fast:  # fused QKV, scaled-dot-product attention (esm_fast.py)
            from virnucpro.models.esm_fast import last_layer

            reps = last_layer(bundle.model, tokens, keep)  # [B, T, E]
        else:
            reps = bundle.model(tokens, repr_layers=[layer])["representations"][layer]  # [B, T, E]
        pos = torch.arange(tokens.shape[1], device=device)  # [T]
        mask = (pos[None, :] >= 1) & (pos[None, :] <= residues[:, None])  # [B, T]
        # Summed in float32 from the model's dtype: no float32 copy of [B, T, E] in bfloat16.
        summed = (reps * mask[:, :, None].to(reps.dtype)).sum(dim=1, dtype=torch.float32)  # [B, E]
        means = summed / residues[:, None].to(torch.float32)  # [B, E]
    return means.to("cpu", torch.float32) if to_cpu else means
