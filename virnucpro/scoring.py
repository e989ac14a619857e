"""From kept frames to classifier features and scores: the shard function.

`score_frames` batches the frames by token budget, separately for DNABERT-S (nucleotide
tokens) and ESM-2 (residues + BOS/EOS), concatenates the two means per frame, DNABERT-S first
(FIDELITY 5), and applies the classifier. The output depends only on the frames and the budget,
never on how many workers share the input. A batch that runs out of memory is cut again with
half the budget; a frame that does not fit alone is marked failed instead of crashing the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from virnucpro.batching import batch_by_token_budget
from virnucpro.heap import release_free_memory
from virnucpro.models.loaded import LoadedModels

log = logging.getLogger(__name__)

ESM_MAX_RESIDUES = 1024

# Per-frame status codes kept in shard files; 0 is a scored frame.
OK, FAILED_OOM, FAILED_WORKER = 0, 1, 2
STATUS_REASONS = {
    FAILED_OOM: "out of memory even alone in a batch",
    FAILED_WORKER: "the shard crashed its worker 3 times",
}


class ShardCancelled(Exception):
    """A shard abandoned between two model batches: its job was cancelled (`stop` said so)."""


@dataclass(frozen=True)
class ShardScores:
    """Per-frame results of one shard: probabilities [n, 2] (others, virus), optional
    features [n, D], and a status code per frame (NaN probabilities where it is not OK).
    `cancelled`: not scored at all, its job was cancelled; such a result is never written."""

    probs: np.ndarray
    features: np.ndarray | None = None
    status: np.ndarray | None = None
    cancelled: bool = False

    def status_codes(self) -> np.ndarray:
        return self.status if self.status is not None else np.zeros(len(self.probs), np.uint8)

    @classmethod
    def failed(cls, n: int, code: int, dim: int | None = None) -> ShardScores:
        probs = np.full((n, 2), np.nan, dtype=np.float32)
        feats = np.full((n, dim), np.nan, dtype=np.float32) if dim else None
        return cls(probs, feats, np.full(n, code, dtype=np.uint8))

    @classmethod
    def abandoned(cls, n: int) -> ShardScores:
        """The answer for a shard whose job was cancelled before or while it was scored."""
        return cls(np.full((n, 2), np.nan, dtype=np.float32), cancelled=True)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or an allocator failure reported as a plain RuntimeError."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class Embedder:
    """The two models behind two methods, so a test can stand in for a device's limits.
    Both return float32 means where the model ran (on a GPU: not yet copied back)."""

    def __init__(self, models: LoadedModels) -> None:
        self.models = models

    def _autocast(self):
        import torch

        device_type = "cuda" if self.models.device.startswith("cuda") else "cpu"
        return torch.autocast(device_type, dtype=torch.bfloat16,
                              enabled=self.models.precision == "bfloat16")

    def dna(self, token_ids: list[list[int]]):
        from virnucpro.models.dnabert_io import embed_dna_batch

        with self._autocast():
            return embed_dna_batch(self.models.dnabert, token_ids, self.models.device,
                                   to_cpu=False).float()

    def protein(self, proteins: list[str]):
        from virnucpro.models.esm_io import embed_protein_batch

        with self._autocast():
            return embed_protein_batch(self.models.esm, proteins, self.models.device,
                                       fast=self.models.fast_attention, to_cpu=False).float()

    def free_memory(self) -> None:
        import torch

        if self.models.device.startswith("cuda"):
            with torch.cuda.device(self.models.device):
                torch.cuda.empty_cache()


def _run_batches(lengths: Sequence[int], budget: int, run: Callable[[list[int]], None],
                 free_memory: Callable[[], None], what: str) -> set[int]:
    """Run `run` on token-budget batches; on out-of-memory, halve that batch's budget.

    Returns the indices that failed even alone. The cut depends only on lengths and budget.
    """
    failed: set[int] = set()
    pending = [(b, budget) for b in batch_by_token_budget(lengths, budget)]
    while pending:
        batch, limit = pending.pop(0)
        try:
            run(batch)
            continue
        except Exception as exc:  # noqa: BLE001 - only memory errors are retried, others re-raised
            if not is_out_of_memory(exc):
                raise
        # Outside the except block, so the traceback's tensors are gone before retrying.
        free_memory()
        if len(batch) == 1:
            log.warning("%s: a frame of %d tokens does not fit in memory; marked failed",
                        what, lengths[batch[0]])
            failed.add(batch[0])
            continue
        half = max(1, limit // 2)
        log.warning("%s: out of memory on a batch of %d; retrying with a budget of %d tokens",
                    what, len(batch), half)
        sub = batch_by_token_budget([lengths[i] for i in batch], half)
        if len(sub) == 1:  # the budget no longer splits it: one frame at a time
            sub = [[k] for k in range(len(batch))]
        pending[:0] = [([batch[k] for k in b], half) for b in sub]
    return failed


def embed_frames(nucleotides: Sequence[str], proteins: Sequence[str], models: LoadedModels,
                 batch_tokens: int, embedder: Embedder | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, set[int]]:
    """Features [n, dna_dim + protein_dim] in float32 of the frames given by their
    nucleotides and proteins, in their order, and the indices of frames that could not be
    embedded (their rows are NaN). `stop` is asked before each model batch: True raises
    ShardCancelled (a cancel takes effect within one batch, not one shard)."""
    from virnucpro.models.dnabert_tokenizer import tokenize_dna

    embedder = embedder or Embedder(models)
    n = len(nucleotides)
    out = np.zeros((n, models.feature_dim), dtype=np.float32)
    if n == 0:
        return out, set()
    dna_dim = models.dna_dim
    token_ids = tokenize_dna(models.dnabert.tokenizer, list(nucleotides))
    # On a GPU, results stay there until all batches are queued: copying each one back at once
    # would make the host wait for the device before it cuts the next batch. On the CPU they
    # are copied at once: kept alive between the freed batch tensors, they fragmented the heap
    # (measured: resident memory grew by ~60 KB per frame of a shard).
    done: list[tuple[list[int], slice, object]] = []
    dna_cols, protein_cols = slice(0, dna_dim), slice(dna_dim, None)

    def keep(batch: list[int], cols: slice, means) -> None:
        if means.device.type == "cpu":
            out[batch, cols] = means.numpy()
            release_free_memory()  # see virnucpro.heap: host memory stays flat batch after batch
        else:
            done.append((batch, cols, means))

    def check() -> None:
        if stop is not None and stop():
            raise ShardCancelled()

    def run_dna(batch: list[int]) -> None:
        check()
        keep(batch, dna_cols, embedder.dna([token_ids[i] for i in batch]))

    def run_protein(batch: list[int]) -> None:
        check()
        keep(batch, protein_cols, embedder.protein([proteins[i] for i in batch]))

    failed = _run_batches([len(t) for t in token_ids], batch_tokens, run_dna,
                          embedder.free_memory, "DNABERT-S")
    failed |= _run_batches([min(len(p), ESM_MAX_RESIDUES) + 2 for p in proteins], batch_tokens,
                           run_protein, embedder.free_memory, "ESM-2")
    for batch, cols, means in done:
        out[batch, cols] = means.cpu().numpy()
    if failed:
        out[sorted(failed)] = np.nan
    return out, failed


def classify_features(features: np.ndarray, models: LoadedModels) -> np.ndarray:
    """Softmax probabilities [n, 2] in float32: column 0 = others, column 1 = virus."""
    import torch

    from virnucpro.models.classifier import predict_proba

    if len(features) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    tensor = torch.from_numpy(features).to(models.device)
    return predict_proba(models.classifier, tensor).float().cpu().numpy()


def score_frames(nucleotides: Sequence[str], proteins: Sequence[str], models: LoadedModels,
                 batch_tokens: int, keep_features: bool = False,
                 embedder: Embedder | None = None,
                 stop: Callable[[], bool] | None = None) -> ShardScores:
    n = len(nucleotides)
    features, failed = embed_frames(nucleotides, proteins, models, batch_tokens, embedder, stop)
    status = np.zeros(n, dtype=np.uint8)
    probs = np.full((n, 2), np.nan, dtype=np.float32)
    ok = np.ones(n, dtype=bool)
    if failed:
        ok[sorted(failed)] = False
        status[~ok] = FAILED_OOM
    probs[ok] = classify_features(features[ok], models)
    return ShardScores(probs=probs, features=features if keep_features else None, status=status)
