"""Native PyTorch DNABERT-S: the MosaicBERT / DNABERT-2 encoder (ALiBi, GLU MLP, post-LN).

Owns the layers and the forward pass only; loading weights lives in `dnabert_io`. The module tree
and state_dict keys are those of the published `bert_layers.BertModel` (docs/DNABERT_S.md §2), and
`forward` reproduces its fp32 PyTorch attention path (§3): same unpadding, same op order, exact
0.0 at padded positions (bitwise equal to the hub code's PyTorch path in fp32). Half precision
(autocast or a bf16/fp16 model) upcasts the scores to fp32 for the fp32 bias and softmax and casts
P back to V's dtype; the hub code crashes there. Inference only: dropout is left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

# transformers.BertConfig defaults: the DNABERT-S configuration class subclasses it, so any key
# the JSON leaves out takes these values (DNABERT_S.md §1).
_BERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}

# The reference's additive key mask: exp(-10000) underflows to exactly 0 in fp32 softmax.
_MASK_VALUE = -10000.0


@dataclass(frozen=True)
class DnaBertConfig:
    """The architecture numbers the forward uses; everything else in config.json is ignored."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0  # only padding_idx of the word embeddings; the tokenizer pads with [PAD]

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DnaBertConfig:
        """Read a config.json dict: missing keys take BERT defaults, unknown keys are ignored."""
        values = {
            f.name: _BERT_DEFAULTS[f.name] if d.get(f.name) is None else d[f.name]
            for f in fields(cls)
        }
        # JSON numbers may come back as floats (e.g. 768.0) from other writers.
        for name in values:
            if name != "layer_norm_eps":
                values[name] = int(values[name])
        values["layer_norm_eps"] = float(values["layer_norm_eps"])
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> DnaBertConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi slopes per head, float32 [n_heads], the MosaicBERT recipe (DNABERT_S.md §3.3).

    Computed in float64 Python floats and rounded once to float32, as the reference does. For a
    head count that is not a power of two, the slopes of the next power of two are interleaved
    (every other one), not the naive 2^(-8(h+1)/n).
    """

    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    def slopes(n: int) -> list[float]:
        if math.log2(n).is_integer():
            return power_of_2(n)
        closest = 2 ** math.floor(math.log2(n))
        return power_of_2(closest) + slopes(2 * closest)[0::2][: n - closest]

    if n_heads < 1:
        raise ValueError(f"n_heads must be positive, got {n_heads}")
    # Explicit device: a default device set by the caller (or a meta context) must not leak in.
    return torch.tensor(slopes(n_heads), dtype=torch.float32, device="cpu")


_SLOPES_ON_DEVICE: dict[tuple[int, str], torch.Tensor] = {}


def _device_slopes(n_heads: int, device: torch.device) -> torch.Tensor:
    """`alibi_slopes` copied to `device` once per process: a copy from pageable host memory
    per batch would make the host wait for the device."""
    key = (n_heads, str(device))
    if key not in _SLOPES_ON_DEVICE:
        _SLOPES_ON_DEVICE[key] = alibi_slopes(n_heads).to(device)
    return _SLOPES_ON_DEVICE[key]


def alibi_bias(n_heads: int, seq_len: int, device: str | torch.device) -> torch.Tensor:
    """The symmetric, negative ALiBi bias [n_heads, T, T] (fp32): slope[h] * -|j - i|.

    Built on `device` at every call instead of being kept as a tensor attribute: the hub code's
    `encoder.alibi` attribute is what breaks under meta-device init (DNABERT_S.md §5.3). Values do
    not depend on the reference's table size (512, grown on demand), so no table is kept.
    """
    device = torch.device(device)
    pos = torch.arange(seq_len, device=device)
    distance = -(pos[None, :] - pos[:, None]).abs()  # [T, T] int64, j = key, i = query
    # fp32 slope x int64 distance: one rounding, as the reference computes it.
    slopes = alibi_slopes(n_heads) if device.type == "meta" else _device_slopes(n_heads, device)
    return slopes.to(device)[:, None, None] * distance  # [h, T, T]


def attention_bias(attention_mask: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Key mask plus ALiBi, fp32 [B, h, T, T]: 0 / -10000 per key, plus slope * -|j - i|.

    Positions are indices in the padded tensor, as in the reference. Always fp32, whatever the
    model dtype: the bias loses precision at long distances in half precision.
    """
    seq_len = attention_mask.shape[1]
    ext = (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * _MASK_VALUE  # [B,1,1,T]
    return ext + alibi_bias(n_heads, seq_len, attention_mask.device)[None]  # [B, h, T, T]


class DnaBertEmbeddings(nn.Module):
    """Word + token-type embeddings, then LayerNorm. No position embeddings (ALiBi instead)."""

    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)  # [B, T, H]


class DnaBertSelfAttention(nn.Module):
    """Packed QKV projection and eager attention; columns are laid out as t*H + h*d + d."""

    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, batch: int, seq_len: int, bias: torch.Tensor
    ) -> torch.Tensor:
        # x: [nnz, H] real rows only; bias: [B, h, T, T] fp32.
        qkv = self.Wqkv(x)  # [nnz, 3H]
        # Scatter back with exact zeros at padded rows (no projection bias there), as pad_input does.
        padded = qkv.new_zeros(batch * seq_len, qkv.shape[1])
        padded[indices] = qkv
        qkv = padded.view(batch, seq_len, 3, self.n_heads, self.head_dim)  # [B, T, 3, h, d]
        q = qkv[:, :, 0].permute(0, 2, 1, 3)  # [B, h, T, d]
        k = qkv[:, :, 1].permute(0, 2, 3, 1)  # [B, h, d, T]
        v = qkv[:, :, 2].permute(0, 2, 1, 3)  # [B, h, T, d]
        # Reference order: matmul, then divide by sqrt(d), then add the bias.
        scores = torch.matmul(q, k) / math.sqrt(self.head_dim)  # [B, h, T, T]
        # In fp32 the bias add is the reference's own promotion. In half precision the scores are
        # upcast so the bias keeps its precision and -10000 still zeroes masked keys; P is cast
        # back to V's dtype (the reference raises a dtype error here instead).
        probs = torch.softmax(scores.to(torch.float32) + bias, dim=-1)
        ctx = torch.matmul(probs.to(v.dtype), v).permute(0, 2, 1, 3)  # [B, T, h, d]
        ctx = ctx.reshape(batch * seq_len, self.n_heads * self.head_dim)  # heads in order
        return ctx[indices]  # [nnz, H]


class DnaBertSelfOutput(nn.Module):
    """Output projection, residual, post-LN."""

    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ctx: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(ctx) + residual)  # [nnz, H]


class DnaBertAttention(nn.Module):
    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.self = DnaBertSelfAttention(config)
        self.output = DnaBertSelfOutput(config)

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, batch: int, seq_len: int, bias: torch.Tensor
    ) -> torch.Tensor:
        return self.output(self.self(x, indices, batch, seq_len, bias), x)  # [nnz, H]


class DnaBertGatedMLP(nn.Module):
    """GLU: rows [0:I] of gated_layers go through exact GELU, rows [I:2I] stay linear; post-LN."""

    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        # Exact (erf) GELU whatever config.hidden_act says: the reference hard-codes it.
        self.act = nn.GELU(approximate="none")
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gated_layers(x)  # [nnz, 2I]
        h = self.act(g[:, : self.intermediate_size]) * g[:, self.intermediate_size :]  # [nnz, I]
        return self.layernorm(self.wo(h) + x)  # [nnz, H]


class DnaBertLayer(nn.Module):
    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.attention = DnaBertAttention(config)
        self.mlp = DnaBertGatedMLP(config)

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, batch: int, seq_len: int, bias: torch.Tensor
    ) -> torch.Tensor:
        return self.mlp(self.attention(x, indices, batch, seq_len, bias))  # [nnz, H]


class DnaBertEncoder(nn.Module):
    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.layer = nn.ModuleList(DnaBertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor,
                indices: torch.Tensor | None = None) -> torch.Tensor:
        batch, seq_len, width = hidden.shape  # [B, T, H]
        # Every Linear and LayerNorm runs on the gathered real rows, like the reference's
        # unpad_input: a padded-tensor GEMM gives other rounding (~1e-6, DNABERT_S.md §3.7).
        # `indices` (the mask's nonzero positions, flattened) may come from the host: found on
        # the device, they make the host wait for it.
        if indices is None:
            indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()  # [nnz]
        bias = attention_bias(attention_mask, self.n_heads)  # [B, h, T, T] fp32
        x = hidden.reshape(batch * seq_len, width)[indices]  # [nnz, H]
        for layer in self.layer:
            x = layer(x, indices, batch, seq_len, bias)
        out = x.new_zeros(batch * seq_len, width)  # padded rows stay exactly 0.0
        out[indices] = x
        return out.view(batch, seq_len, width)  # [B, T, H]


class DnaBertPooler(nn.Module):
    """tanh(dense(hidden[:, 0])). Untrained in DNABERT-S; kept only so the keys load."""

    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # [B, H]


class DnaBertModel(nn.Module):
    """DNABERT-S / DNABERT-2 `BertModel` with the published state_dict keys and no buffers."""

    def __init__(self, config: DnaBertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = DnaBertEmbeddings(config)
        self.encoder = DnaBertEncoder(config)
        self.pooler = DnaBertPooler(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (last hidden state [B, T, H], pooled [B, H]).

        Unlike the hub code, the second positional argument is `attention_mask` (the hub's is
        token_type_ids). A missing mask attends to every position, [PAD] tokens included, as the
        reference does. Rows where the mask is 0 come back as exact zeros. `indices`: the flat
        positions where the mask is 1, when the caller has them (see DnaBertEncoder).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)  # [B, T]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # [B, T]
        hidden = self.embeddings(input_ids, token_type_ids)  # [B, T, H]
        hidden = self.encoder(hidden, attention_mask, indices)  # [B, T, H]
        return hidden, self.pooler(hidden)
