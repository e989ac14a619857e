"""ESM-2's forward with less memory traffic, over fair-esm's own modules (`esm.model.esm2.ESM2`).

`fuse_qkv(model)` replaces each layer's q/k/v projections by one `qkv_proj` (queries pre-scaled),
in place; `last_layer(model, tokens, keep)` then runs the same order of operations as
`ESM2.forward` (token-dropout scaling, pre-LN layers, rotary embeddings on the scaled queries,
exact GELU, the closing layer norm) in the weights' dtype: one QKV GEMM, q and k rotated in one
pass from float32 angles, attention through `F.scaled_dot_product_attention` (flash or
memory-efficient kernels on a GPU), no host sync. Equal to fair-esm within 1e-4 in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FUSED = "qkv_fused"  # attribute set True on a model whose layers carry `self_attn.qkv_proj`


def fuse_qkv(model) -> None:
    """Replace, in place, every layer's `self_attn.q_proj`, `k_proj`, `v_proj` by one linear
    `self_attn.qkv_proj` (weight [3E, E] = [q * scaling; k; v], bias [3E] likewise) and mark the
    model `qkv_fused`. A fused model is left as it is. fair-esm's own forward no longer runs on
    it (it reads q_proj): the fused model is for `last_layer` only."""
    if getattr(model, FUSED, False):
        return
    for layer in model.layers:
        attn = layer.self_attn
        if hasattr(attn, "qkv_proj"):  # a fusion stopped half-way: this layer is done
            continue
        parts = (attn.q_proj, attn.k_proj, attn.v_proj)
        # Under no_grad, outside inference mode: plain tensors whether or not the caller is in
        # inference mode (inference tensors as parameters could not be saved for backward, nor
        # updated in place, once outside it).
        with torch.inference_mode(False), torch.no_grad():
            # fair-esm scales the projected queries, bias included, by head_dim**-0.5; folded
            # into the rows it is exact for heads of 64 (0.125, a power of two).
            weight = torch.cat((parts[0].weight * attn.scaling, parts[1].weight, parts[2].weight))
            bias = None
            if parts[0].bias is not None:
                bias = torch.cat((parts[0].bias * attn.scaling, parts[1].bias, parts[2].bias))
        # Built on the meta device, then given the tensors: nn.Linear's own init would draw
        # [3E, E] random numbers only to throw them away.
        fused = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
        grad = parts[0].weight.requires_grad
        fused.weight = nn.Parameter(weight, requires_grad=grad)
        if bias is not None:
            fused.bias = nn.Parameter(bias, requires_grad=grad)
        # The originals go now, before the next layer: the peak stays one layer's QKV above the
        # model, and the model's resident bytes do not grow.
        del attn.q_proj, attn.k_proj, attn.v_proj, parts
        attn.qkv_proj = fused
    setattr(model, FUSED, True)


def _rotary_tables(inv_freq: torch.Tensor, length: int,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [T, D] of fair-esm's RotaryEmbedding, on inv_freq's device, in `dtype`.

    The angles are float32 whatever `dtype`, as fair-esm's (positions in float32, cat(freqs,
    freqs)); only the cos and sin are cast. In bfloat16 an angle of ~1000 rad would be off by
    up to 4 rad, which is why the product is a plain one: CUDA's autocast runs einsum (fair-esm's
    outer product) in bfloat16, never a multiplication."""
    inv_freq = inv_freq.float()
    t = torch.arange(length, device=inv_freq.device, dtype=torch.float32)  # [T]
    freqs = t[:, None] * inv_freq[None, :]  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate(qk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """fair-esm's rotation x * cos + rotate_half(x) * sin of q and k at once: qk [B, T, 2, H, D]
    (a view into the QKV projection), cos, sin [1, T, 1, 1, D]; returns [B, T, 2, H, D]
    contiguous. Three kernels, each half finished in place, instead of rotate_half's negation
    and cat, two products and a sum (sin's halves are equal: cat(freqs, freqs))."""
    half = qk.shape[-1] // 2
    out = qk * cos
    out[..., :half].addcmul_(qk[..., half:], sin[..., :half], value=-1)
    out[..., half:].addcmul_(qk[..., :half], sin[..., half:])
    return out


def _embed(model, tokens: torch.Tensor, keep: torch.Tensor | None,
           dtype: torch.dtype) -> torch.Tensor:
    """fair-esm's embedding in eval [B, T, E]: mask tokens zeroed and the rest scaled by
    0.88 / (1 - observed mask share), padding rows zeroed; one factor per token, one product."""
    x = model.embed_tokens(tokens)  # [B, T, E]
    if not model.token_dropout:
        scale = float(model.embed_scale)
        if keep is None:
            return x * scale if scale != 1 else x
        return x * (keep[..., None].to(dtype) * scale)  # [B, T, E]
    mask_ratio_train = 0.15 * 0.8  # as fair-esm trained: 15% masked, 80% of those as <mask>
    masked = tokens.eq(model.mask_idx)  # [B, T]
    # Counted on the device: no host sync. Float32 even for bfloat16 weights (a count over 256
    # is not exact in bfloat16).
    lengths = keep.sum(-1) if keep is not None else tokens.shape[1]  # [B] or T
    observed = masked.sum(-1).float() / lengths  # [B]
    scale = float(model.embed_scale) * (1 - mask_ratio_train) / (1 - observed)  # [B]
    kept = ~masked if keep is None else keep & ~masked  # [B, T]
    factor = kept.float() * scale[:, None]  # [B, T]
    # The product in float32, rounded once: 0.88 itself rounded to bfloat16 (0.8789) would
    # scale every embedding 0.1 % off.
    return (x * factor[..., None]).to(dtype)  # [B, T, E]


def last_layer(model, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """The last layer's representation [B, T, E] (after emb_layer_norm_after), as fair-esm's
    `model(tokens, repr_layers=[num_layers])["representations"][num_layers]`, in the weights'
    dtype, from a `fuse_qkv`'d model.

    `tokens` [B, T] long on the model's device. `keep` [B, T] bool on that device, True at real
    tokens (BOS, EOS, residues), False at padding; None when the batch has no padding (the
    caller knows it on the host, and the mask-free kernels are the fastest)."""
    if not getattr(model, FUSED, False):
        raise ValueError("last_layer needs a model whose q/k/v projections are fused: call "
                         "esm_fast.fuse_qkv(model) once after loading it")
    first = model.layers[0].self_attn
    dtype = first.qkv_proj.weight.dtype
    if first.rot_emb.inv_freq.dtype != torch.float32:
        # The frequencies themselves rounded to bfloat16 move the angles of the last positions
        # by radians; keep the buffer float32 when narrowing the weights.
        raise ValueError(f"the rotary inv_freq buffers must stay float32, got "
                         f"{first.rot_emb.inv_freq.dtype}")
    if keep is not None and keep.dtype != torch.bool:
        # A float mask would be added to the attention scores, not select keys: refused.
        raise ValueError(f"keep must be a bool tensor (True at real tokens), got {keep.dtype}")
    x = _embed(model, tokens, keep, dtype)  # [B, T, E]
    cos, sin = _rotary_tables(first.rot_emb.inv_freq, tokens.shape[1], dtype)  # [T, D]
    # True where a key takes part; None without padding (the fastest kernels).
    mask = None if keep is None else keep[:, None, None, :]  # [B, 1, 1, T]
    for layer in model.layers:
        x = run_layer(layer, x, cos, sin, mask)
    return model.emb_layer_norm_after(x)  # [B, T, E]


def run_layer(layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              mask: torch.Tensor | None) -> torch.Tensor:
    """One fused fair-esm `TransformerLayer` over x [B, T, E] in the weights' dtype: cos, sin
    [T, D] from `_rotary_tables`, mask [B, 1, 1, T] bool (True at keys that take part) or None.
    Returns [B, T, E]."""
    attn = layer.self_attn
    batch, length, dim = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    cos, sin = cos.view(1, length, 1, 1, head_dim), sin.view(1, length, 1, 1, head_dim)
    h = layer.self_attn_layer_norm(x)  # [B, T, E]
    qkv = attn.qkv_proj(h).view(batch, length, 3, heads, head_dim)  # [B, T, 3, H, D]
    qk = _rotate(qkv[:, :, :2], cos, sin)  # [B, T, 2, H, D]
    # Views in [B, H, T, D]: the kernels take strided heads, no copy is made for them.
    q, k = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2)
    v = qkv[:, :, 2].transpose(1, 2)
    # The queries carry fair-esm's 1/sqrt(D) already (fuse_qkv): no second scaling here.
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)  # [B, H, T, D]
    # The kernels write [B, T, H, D] memory: transposed back it is a view, not a copy.
    x = x + attn.out_proj(out.transpose(1, 2).reshape(batch, length, dim))
    h = layer.final_layer_norm(x)
    return x + layer.fc2(F.gelu(layer.fc1(h)))  # exact GELU, one kernel over [B, T, 4E]
