"""From kept frames to classifier features and scores: the shard function.

`embed_frames` batches the frames by token budget, separately for DNABERT-S (nucleotide
tokens) and ESM-2 (residues + BOS/EOS), and concatenates the two means per frame, DNABERT-S
first (FIDELITY 5). `score_frames` adds the classifier. The output depends only on the frames
and the budget, never on how many workers share the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from virnucpro.batching import batch_by_token_budget
from virnucpro.models.loaded import LoadedModels
from virnucpro.translation import Frame

ESM_MAX_RESIDUES = 1024


@dataclass(frozen=True)
class ShardScores:
    """Per-frame results of one shard: probabilities [n, 2] (others, virus), features or None."""

    probs: np.ndarray
    features: np.ndarray | None = None


def embed_frames(frames: Sequence[Frame], models: LoadedModels, batch_tokens: int) -> np.ndarray:
    """Features [n, dna_dim + protein_dim] in float32, in the order of `frames`."""
    from virnucpro.models.dnabert_io import embed_dna_batch, tokenize_dna
    from virnucpro.models.esm_io import embed_protein_batch

    n = len(frames)
    out = np.zeros((n, models.feature_dim), dtype=np.float32)
    if n == 0:
        return out
    token_ids = tokenize_dna(models.dnabert.tokenizer, [f.nucleotides for f in frames])
    for batch in batch_by_token_budget([len(t) for t in token_ids], batch_tokens):
        emb = embed_dna_batch(models.dnabert, [token_ids[i] for i in batch], models.device)
        out[batch, : models.dna_dim] = emb.numpy()
    proteins = [f.protein for f in frames]
    esm_lengths = [min(len(p), ESM_MAX_RESIDUES) + 2 for p in proteins]
    for batch in batch_by_token_budget(esm_lengths, batch_tokens):
        emb = embed_protein_batch(models.esm, [proteins[i] for i in batch], models.device)
        out[batch, models.dna_dim:] = emb.numpy()
    return out


def classify_features(features: np.ndarray, models: LoadedModels) -> np.ndarray:
    """Softmax probabilities [n, 2] in float32: column 0 = others, column 1 = virus."""
    import torch

    from virnucpro.models.classifier import predict_proba

    if len(features) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    tensor = torch.from_numpy(features).to(models.device)
    return predict_proba(models.classifier, tensor).float().cpu().numpy()


def score_frames(frames: Sequence[Frame], models: LoadedModels, batch_tokens: int,
                 keep_features: bool = False) -> ShardScores:
    features = embed_frames(frames, models, batch_tokens)
    probs = classify_features(features, models)
    return ShardScores(probs=probs, features=features if keep_features else None)
