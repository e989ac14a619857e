"""A stand-in for the two big models, for tests and benchmarks only (never a user option).

`HashScorer` does a worker's host work as the real scorer does it (the set's DNABERT-S
tokenizer over every frame, in the same slices, and the token-budget batches of both models),
then gives each frame probabilities from a hash of its id and protein instead of a forward
pass. The hash is BLAKE2b, so the numbers are the same on every platform; because the id is
hashed, a score attached to the wrong frame changes the tables, which byte-identity catches.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from virnucpro.batch_budget import GPU_FALLBACK
from virnucpro.scoring import ESM_MAX_RESIDUES, ShardScores

STANDIN_SCORER = "virnucpro.standin:HashScorer"
FEATURE_DIM = 16  # features of the stand-in, for --save-embeddings


def frame_scores(frame_id: str, protein: str) -> tuple[np.ndarray, np.ndarray]:
    """(P(others), P(virus)) and FEATURE_DIM features of one frame, from its hash alone.

    P(virus) is k / 2**24 for a 24-bit k, so both probabilities are exact in float32 and sum
    to one; the features are 16-bit fractions.
    """
    digest = hashlib.blake2b(f"{frame_id}\t{protein}".encode(), digest_size=3 + 2 * FEATURE_DIM).digest()
    p_virus = np.float32(int.from_bytes(digest[:3], "little") / (1 << 24))
    probs = np.array([np.float32(1) - p_virus, p_virus], dtype=np.float32)
    features = np.frombuffer(digest[3:], dtype="<u2").astype(np.float32) / np.float32(65535)
    return probs, features


class HashScorer:
    """Loads only the set's tokenizer; `score` has the real scorer's signature."""

    feature_dim = FEATURE_DIM

    def __init__(self, spec, device: str) -> None:
        from tokenizers import Tokenizer

        from virnucpro.models.dnabert_tokenizer import TOKENIZER_FILE
        from virnucpro.models.sets import resolve_model_set

        started = time.perf_counter()
        self.device = device
        model_set = resolve_model_set(spec.models, fetch_missing=False, progress=False)
        self.tokenizer = Tokenizer.from_file(str(model_set.dnabert_dir / TOKENIZER_FILE))
        self.load_seconds = time.perf_counter() - started

    def models_for(self, chunk_size: int):
        return self

    def prepare(self, task) -> None:
        """Nothing is made ahead: the stand-in's host work is its whole score."""
        return None

    def score(self, task, stop=None, prepared=None) -> ShardScores:
        from virnucpro.batching import batch_by_token_budget
        from virnucpro.models.dnabert_tokenizer import tokenize_dna
        from virnucpro.scoring import ShardCancelled

        if stop is not None and stop():
            raise ShardCancelled()
        n = task.n_frames
        token_ids = tokenize_dna(self.tokenizer, task.nucleotides)
        budget = task.batch_tokens or GPU_FALLBACK  # 0: auto, a GPU's (see batch_budget)
        batch_by_token_budget([len(t) for t in token_ids], budget)
        batch_by_token_budget([min(len(p), ESM_MAX_RESIDUES) + 2 for p in task.proteins], budget)
        probs = np.zeros((n, 2), dtype=np.float32)
        features = np.zeros((n, FEATURE_DIM), dtype=np.float32)
        for i, (fid, protein) in enumerate(zip(task.frame_ids, task.proteins, strict=True)):
            probs[i], features[i] = frame_scores(fid, protein)
        return ShardScores(probs=probs, features=features if task.keep_features else None,
                           status=np.zeros(n, dtype=np.uint8))

    def clear_cache(self) -> None:
        pass
