"""`python -m benchmarks.esm_layer [--device cpu|cuda:0] [--tokens N] [--repeats R] [--json FILE]`:
one ESM-2 3B layer (E 2560, 40 heads of 64, FFN 10240, random weights) over a padded batch of
protein-like lengths, the layer as `esm_fast` ran it before the fused path (`old_layer`: float32
weights, bfloat16 by autocast) against `esm_fast.run_layer` (fused QKV, weights resident in the
compute dtype), in float32 and bfloat16: the median of the repeats, real tokens per second.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

CHUNK_TOKENS = 168  # a 500 bp chunk's frame: 166 residues, BOS and EOS
SHORTER = (131, 97, 64, 38)  # frames cut short by a stop codon or a sequence's end


def batch_lengths(tokens: int) -> list[int]:
    """Token counts (BOS and EOS included) of a batch of about `tokens` padded tokens: frames of
    a 500 bp chunk, the last few shorter, as a token-budget batch of real frames looks."""
    count = max(1, tokens // CHUNK_TOKENS)
    shorter = list(SHORTER[: min(len(SHORTER), count - 1)]) if count > 1 else []
    return [CHUNK_TOKENS] * (count - len(shorter)) + shorter


# -- the layer before the fused path (esm_fast.last_layer's loop body, kept as the baseline) --


def _old_rotary_tables(inv_freq, length: int, device):
    import torch

    device = torch.device(device)
    with torch.autocast(device.type, enabled=False):
        t = torch.arange(length, device=device).type_as(inv_freq)
        freqs = t[:, None] * inv_freq.to(device)[None, :]  # [T, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, T, D]


def _old_rotate(x, cos, sin):
    import torch

    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _old_gelu(x):
    import torch

    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def old_layer(layer, x, cos, sin, keep):
    """One unfused fair-esm layer as `last_layer` ran it: x [B, T, E], cos/sin [1, 1, T, D]
    float32, keep [B, 1, 1, T] bool or None."""
    import torch.nn.functional as F

    batch, length, dim = x.shape
    attn = layer.self_attn
    heads, head_dim = attn.num_heads, attn.head_dim
    residual = x
    h = layer.self_attn_layer_norm(x)
    q = (attn.q_proj(h) * attn.scaling).view(batch, length, heads, head_dim).transpose(1, 2)
    k = attn.k_proj(h).view(batch, length, heads, head_dim).transpose(1, 2)
    v = attn.v_proj(h).view(batch, length, heads, head_dim).transpose(1, 2)  # [B, H, T, D]
    q, k = _old_rotate(q, cos, sin).to(v.dtype), _old_rotate(k, cos, sin).to(v.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)  # [B, H, T, D]
    x = residual + attn.out_proj(out.transpose(1, 2).reshape(batch, length, dim))
    residual = x
    h = layer.final_layer_norm(x)
    return residual + layer.fc2(_old_gelu(layer.fc1(h)))


# -- the measurement -------------------------------------------------------------------------


def random_layer(width: int, heads: int, seed: int, device: str):
    """A fair-esm ESM-2 layer (FFN 4 x width, rotary, pre-LN) with seeded random weights."""
    import torch
    from esm.modules import TransformerLayer

    torch.manual_seed(seed)
    layer = TransformerLayer(width, 4 * width, heads, add_bias_kv=False,
                             use_esm1b_layer_norm=True, use_rotary_embeddings=True)
    with torch.no_grad():  # LayerNorms and biases off their trivial init: the real thing's work
        for name, p in layer.named_parameters():
            if name.endswith("bias") or "layer_norm" in name:
                p.add_(0.05 * torch.randn_like(p))
    return layer.eval().to(device)


class OneLayerModel:
    """What `fuse_qkv` takes: a model whose `layers` hold the one layer."""

    def __init__(self, layer) -> None:
        self.layers = [layer]


def measure(width: int = 2560, heads: int = 40, tokens: int = 4096, repeats: int = 5,
            device: str = "cpu", seed: int = 0) -> dict:
    """Old and new layer in float32 and bfloat16, repeats interleaved after a warm-up of each;
    returns the lengths, and per precision each layer's median seconds and tokens/s."""
    import torch

    from virnucpro.models.esm_fast import _rotary_tables, fuse_qkv, run_layer

    lengths = batch_lengths(tokens)
    batch, length = len(lengths), max(lengths)
    keep = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]  # [B, T]
    keep = keep.to(device)
    mask = keep[:, None, None, :]  # [B, 1, 1, T]
    old = random_layer(width, heads, seed, device)
    inv_freq = old.self_attn.rot_emb.inv_freq
    gen = torch.Generator().manual_seed(seed + 1)
    x32 = torch.randn(batch, length, width, generator=gen).to(device)  # [B, T, E]

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    def timed(run) -> float:
        sync()
        started = time.perf_counter()
        run()
        sync()
        return time.perf_counter() - started

    results: dict[str, dict] = {}
    old_cos, old_sin = _old_rotary_tables(inv_freq, length, device)
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        new = copy.deepcopy(old)
        fuse_qkv(OneLayerModel(new))
        new = new.to(dtype)  # weights resident in the compute dtype, inv_freq float32 again
        new.self_attn.rot_emb.inv_freq = inv_freq.clone()
        cos, sin = _rotary_tables(inv_freq, length, dtype)
        x = x32.to(dtype)

        def run_old(precision=precision) -> None:
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                                enabled=precision == "bfloat16"):
                old_layer(old, x32, old_cos, old_sin, mask)

        def run_new(new=new, x=x, cos=cos, sin=sin) -> None:
            run_layer(new, x, cos, sin, mask)

        seconds: dict[str, list[float]] = {"old": [], "new": []}
        with torch.inference_mode():
            run_old(), run_new()  # warm-up: kernels chosen, memory pools grown
            for _ in range(repeats):  # interleaved: a drift of the machine hits both alike
                seconds["old"].append(timed(run_old))
                seconds["new"].append(timed(run_new))
        real = sum(lengths)
        results[precision] = {
            name: {"median_s": statistics.median(s), "runs_s": s,
                   "tokens_per_s": real / statistics.median(s)}
            for name, s in seconds.items()}
        results[precision]["speedup"] = (results[precision]["new"]["tokens_per_s"]
                                         / results[precision]["old"]["tokens_per_s"])
        # Each repeat's old/new pair ran back to back: on a shared machine the median of their
        # ratios is steadier than the ratio of the medians.
        results[precision]["paired_speedup"] = statistics.median(
            o / n for o, n in zip(seconds["old"], seconds["new"], strict=True))
        del new
    return {"width": width, "heads": heads, "ffn": 4 * width, "device": device,
            "lengths": lengths, "real_tokens": sum(lengths), "padded_tokens": batch * length,
            "repeats": repeats, "threads": torch.get_num_threads(), "results": results}


def table(r: dict) -> str:
    rows = [f"ESM-2 layer E={r['width']} H={r['heads']} FFN={r['ffn']} on {r['device']}: "
            f"{len(r['lengths'])} proteins, {r['real_tokens']} real tokens "
            f"({r['padded_tokens']} padded), median of {r['repeats']}",
            f"{'precision':<10}{'old tok/s':>12}{'new tok/s':>12}{'old s':>9}{'new s':>9}"
            f"{'speed-up':>10}{'paired':>9}"]
    for precision, m in r["results"].items():
        rows.append(f"{precision:<10}{m['old']['tokens_per_s']:>12.0f}"
                    f"{m['new']['tokens_per_s']:>12.0f}{m['old']['median_s']:>9.3f}"
                    f"{m['new']['median_s']:>9.3f}{m['speedup']:>9.2f}x"
                    f"{m['paired_speedup']:>8.2f}x")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.esm_layer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N (default cpu)")
    parser.add_argument("--tokens", type=int, default=4096,
                        help="padded tokens of the batch (default 4096)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs, after a warm-up")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.repeats < 1 or args.tokens < 1:
        parser.error("--tokens and --repeats must be at least 1")
    print(f"measuring on {args.device} ...", file=sys.stderr)
    r = measure(tokens=args.tokens, repeats=args.repeats, device=args.device)
    r["machine"] = f"{platform.node()} {platform.processor() or platform.machine()} " \
                   f"{os.cpu_count()} cores"
    print(table(r))
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
