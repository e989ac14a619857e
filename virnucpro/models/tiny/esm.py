"""A tiny ESM-2 in the published checkpoint format: seeded random weights (the same bytes on
every machine) saved as fair-esm's files are, fairseq prefixes and contact-regression file
included, so that `esm_io.load_esm` reads it as it reads the published 3B file. Any size can be
written (the benchmarks write a random 3B); `training_cfg` gives `cfg` the training sections the
published files carry.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from virnucpro.models.esm_io import regression_path


def write_tiny_esm(
    folder: Path,
    seed: int = 0,
    *,
    num_layers: int = 2,
    embed_dim: int = 40,
    attention_heads: int = 4,
    dtype: torch.dtype = torch.float32,
    training_cfg: bool = False,
) -> Path:
    """Write a deterministic random ESM-2 in the published file format; returns the .pt path.
    `dtype` is the stored precision of the weights (the published 3B file stores float16).
    `training_cfg`: `cfg` as fair-esm's training wrote it (`training_cfg_sections`)."""
    import esm
    from esm.model.esm2 import ESM2

    if embed_dim % attention_heads or (embed_dim // attention_heads) % 2:
        raise ValueError("embed_dim / attention_heads must be an even whole number (rotary)")
    # Built on the meta device: we need names and shapes only, and a real build would draw its
    # initial weights from (and so disturb) torch's global RNG.
    with torch.device("meta"):
        template = ESM2(
            num_layers=num_layers,
            embed_dim=embed_dim,
            attention_heads=attention_heads,
            alphabet=esm.data.Alphabet.from_architecture("ESM-1b"),
        )
    shapes = {k: tuple(v.shape) for k, v in template.state_dict().items()}
    head_dim = embed_dim // attention_heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key in sorted(shapes):  # sorted: a fixed draw order whatever fair-esm's module order
        shape = shapes[key]
        if key.endswith("rot_emb.inv_freq"):
            state[key] = inv_freq.clone()  # a fixed buffer in the real model, not a weight
        elif "layer_norm" in key and key.endswith(".weight"):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith(".bias"):
            state[key] = 0.02 * torch.randn(shape, generator=gen)
        elif len(shape) == 2 and key != "embed_tokens.weight":
            state[key] = torch.randn(shape, generator=gen) / shape[1] ** 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
        # Narrowed as drawn: a 3B model in float16 never holds its float32 draw whole.
        state[key] = state[key].to(dtype)
    state["lm_head.weight"] = state["embed_tokens.weight"].clone()  # tied, as in ESM2
    regression = {k: state.pop(k) for k in list(state) if k.startswith("contact_head.")}
    # The published files keep fairseq's prefixes; fair-esm's upgrade_state_dict strips them.
    model_state = {
        (f"encoder.{k}" if k.startswith("lm_head.") else f"encoder.sentence_encoder.{k}"): v
        for k, v in state.items()
    }
    cfg = argparse.Namespace(
        _name="ESM2",
        encoder_layers=num_layers,
        encoder_embed_dim=embed_dim,
        encoder_ffn_embed_dim=4 * embed_dim,
        encoder_attention_heads=attention_heads,
        token_dropout=True,
        dropout=0.0,
        attention_dropout=0.0,
        max_positions=1024,
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"esm2_t{num_layers}_tiny.pt"
    full_cfg = training_cfg_sections(cfg) if training_cfg else {"model": cfg}
    torch.save({"model": model_state, "cfg": full_cfg}, path)
    torch.save({"model": regression}, regression_path(path))
    return path


def training_cfg_sections(model_cfg: argparse.Namespace) -> dict[str, Any]:
    """A `cfg` shaped as fair-esm's training saved it: what is known of the published files is
    that `cfg["model"]` is an argparse.Namespace beside other sections of plain data; the
    model section also carries fields the builder never reads."""
    model = argparse.Namespace(**vars(model_cfg), arch="esm2", activation_fn="gelu",
                               encoder_normalize_before=True, encoder_learned_pos=False,
                               layerdrop=0.0, untie_weights_roberta=False, checkpoint_activations=False)
    return {
        "_name": None,
        "common": {"fp16": True, "seed": 1, "log_interval": 100, "tensorboard_logdir": None},
        "distributed_training": {"distributed_world_size": 512, "ddp_backend": "c10d"},
        "dataset": argparse.Namespace(max_tokens=4096, batch_size=None, num_workers=1),
        "optimization": {"max_update": 500000, "lr": [0.0004], "clip_norm": 0.0},
        "checkpoint": {"save_dir": "checkpoints", "keep_last_epochs": -1},
        "model": model,
        "task": argparse.Namespace(_name="masked_lm", sample_break_mode="eos",
                                   tokens_per_sample=1024, mask_prob=0.15),
        "criterion": {"_name": "masked_lm", "tpu": False},
        "optimizer": {"_name": "adam", "adam_betas": "(0.9, 0.98)", "weight_decay": 0.01},
        "lr_scheduler": {"_name": "polynomial_decay", "warmup_updates": 2000},
    }
