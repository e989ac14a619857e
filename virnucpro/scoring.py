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
    `cancelled`: not scored at all, its job was cancelled; such a result is never written.
    `worker`: what the scorer that made it reports of itself (`ModelScorer.report`: device,
    precision, weights' bytes, batch budget, peak memory), for run.json."""

    probs: np.ndarray
    features: np.ndarray | None = None
    status: np.ndarray | None = None
    cancelled: bool = False
    worker: dict | None = None

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


# How libraries under torch say that an allocation failed, besides torch's OutOfMemoryError:
# the caching allocator's and CUDA's own words, cuBLAS and cuDNN failing to get workspace, and
# the CPU allocator. Each is worth a smaller batch; any other error is a bug to report.
_OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "CUBLAS_STATUS_ALLOC_FAILED",
                        "CUDNN_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
                        "CUDA_ERROR_OUT_OF_MEMORY", "cudaErrorMemoryAllocation")


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: torch's OutOfMemoryError, or a library's failure to allocate
    reported as a plain RuntimeError (cuBLAS, cuDNN, CUDA, the CPU allocator)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(w in text for w in _OUT_OF_MEMORY_WORDS)


class Embedder:
    """The two models behind two methods, so a test can stand in for a device's limits.
    Both return float32 means where the model ran (on a GPU: not yet copied back). The
    models run in the dtype their weights are resident in (float32, or bfloat16 with the
    means summed in float32): no autocast, so no per-batch cast copy of the weights.
    `prepared`: the batch as `prepare_dna`/`prepare_protein` made it ahead of time."""

    def __init__(self, models: LoadedModels) -> None:
        self.models = models
        self.pin = models.device.startswith("cuda")

    def prepare_dna(self, token_ids: list[list[int]]):
        from virnucpro.models.dnabert_io import dna_batch

        return dna_batch(self.models.dnabert, token_ids, pin=self.pin)

    def prepare_protein(self, proteins: list[str]):
        from virnucpro.models.esm_io import protein_batch

        return protein_batch(self.models.esm, proteins, pin=self.pin)

    def dna(self, token_ids: list[list[int]], prepared=None):
        from virnucpro.models.dnabert_io import embed_dna_batch

        return embed_dna_batch(self.models.dnabert, prepared or token_ids, self.models.device,
                               to_cpu=False)

    def protein(self, proteins: list[str], prepared=None):
        from virnucpro.models.esm_io import embed_protein_batch

        return embed_protein_batch(self.models.esm, prepared or proteins, self.models.device,
                                   to_cpu=False)

    def free_memory(self) -> None:
        import torch

        if self.models.device.startswith("cuda"):
            with torch.cuda.device(self.models.device):
                torch.cuda.empty_cache()


@dataclass(frozen=True, eq=False)
class PreparedShard:
    """A shard's host-side work done ahead of its scoring (by the thread that builds shards,
    or a worker's prefetch thread), so that the device does not wait for the host: DNABERT-S's
    token ids and both models' batches as the budget cuts them, ready to copy."""

    token_ids: list[list[int]]
    budget: int
    dna: dict[tuple[int, ...], object]
    protein: dict[tuple[int, ...], object]


def _protein_lengths(proteins: Sequence[str]) -> list[int]:
    return [min(len(p), ESM_MAX_RESIDUES) + 2 for p in proteins]


def prepare_shard(nucleotides: Sequence[str], proteins: Sequence[str], models: LoadedModels,
                  batch_tokens: int, embedder: Embedder | None = None) -> PreparedShard:
    """Tokenize and cut a shard's batches on the host; `embed_frames` takes the result."""
    from virnucpro.models.dnabert_tokenizer import tokenize_dna

    embedder = embedder or Embedder(models)
    token_ids = tokenize_dna(models.dnabert.tokenizer, list(nucleotides)) if nucleotides else []
    dna = {tuple(b): embedder.prepare_dna([token_ids[i] for i in b])
           for b in batch_by_token_budget([len(t) for t in token_ids], batch_tokens)}
    protein = {tuple(b): embedder.prepare_protein([proteins[i] for i in b])
               for b in batch_by_token_budget(_protein_lengths(proteins), batch_tokens)}
    return PreparedShard(token_ids, batch_tokens, dna, protein)


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
                 stop: Callable[[], bool] | None = None,
                 prepared: PreparedShard | None = None) -> tuple[np.ndarray, set[int]]:
    """Features [n, dna_dim + protein_dim] in float32 of the frames given by their
    nucleotides and proteins, in their order, and the indices of frames that could not be
    embedded (their rows are NaN). `stop` is asked before each model batch: True raises
    ShardCancelled (a cancel takes effect within one batch, not one shard). `prepared`: the
    shard's `prepare_shard` for this budget, made ahead; else its host work is done here."""
    embedder = embedder or Embedder(models)
    n = len(nucleotides)
    out = np.zeros((n, models.feature_dim), dtype=np.float32)
    if n == 0:
        return out, set()
    if prepared is None or prepared.budget != batch_tokens:
        prepared = prepare_shard(nucleotides, proteins, models, batch_tokens, embedder)
    token_ids = prepared.token_ids
    # On a GPU, results stay there until all batches are queued: copying each one back at once
    # would make the host wait for the device before it cuts the next batch. On the CPU they
    # are copied at once: kept alive between the freed batch tensors, they fragmented the heap
    # (measured: resident memory grew by ~60 KB per frame of a shard).
    done: list[tuple[list[int], slice, object]] = []
    dna_cols, protein_cols = slice(0, models.dna_dim), slice(models.dna_dim, None)

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
        # A batch cut again after an out-of-memory error was not prepared: made here.
        keep(batch, dna_cols, embedder.dna([token_ids[i] for i in batch],
                                           prepared.dna.get(tuple(batch))))

    def run_protein(batch: list[int]) -> None:
        check()
        keep(batch, protein_cols, embedder.protein([proteins[i] for i in batch],
                                                   prepared.protein.get(tuple(batch))))

    failed = _run_batches([len(t) for t in token_ids], batch_tokens, run_dna,
                          embedder.free_memory, "DNABERT-S")
    failed |= _run_batches(_protein_lengths(proteins), batch_tokens, run_protein,
                           embedder.free_memory, "ESM-2")
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
                 stop: Callable[[], bool] | None = None,
                 prepared: PreparedShard | None = None) -> ShardScores:
    n = len(nucleotides)
    features, failed = embed_frames(nucleotides, proteins, models, batch_tokens, embedder, stop,
                                    prepared)
    status = np.zeros(n, dtype=np.uint8)
    probs = np.full((n, 2), np.nan, dtype=np.float32)
    ok = np.ones(n, dtype=bool)
    if failed:
        ok[sorted(failed)] = False
        status[~ok] = FAILED_OOM
    probs[ok] = classify_features(features[ok], models)
    return ShardScores(probs=probs, features=features if keep_features else None, status=status)
