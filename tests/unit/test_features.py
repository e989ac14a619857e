"""Frame features from the tiny set: batching does not change them, and the layout is fixed."""

import numpy as np
import pytest

from tests.helpers import columns, read_first_sequence
from virnucpro.chunking import chunk_spans
from virnucpro.scoring import embed_frames, score_frames
from virnucpro.translation import translate_six_frames


@pytest.fixture(scope="module")
def tiny_models(tiny_set_dir):
    from virnucpro.models.loaded import load_models
    from virnucpro.models.sets import resolve_model_set

    return load_models(resolve_model_set("tiny"), 300, "cpu")


@pytest.fixture(scope="module")
def frames():
    genome = read_first_sequence("viral_reference.fasta")
    out = []
    for k, (s, e) in enumerate(chunk_spans(len(genome), 300)):
        out.extend(translate_six_frames(genome[s:e], f"g_chunk_{k + 1}", s))
    # Add short and lopsided frames so batches hold very different lengths.
    out.extend(translate_six_frames("ATGAAACCC" * 3 + "A", "short_chunk_1"))
    return out


def test_batched_features_equal_one_at_a_time_features(tiny_models, frames):
    assert len(frames) > 20
    batched, failed = embed_frames(*columns(frames), tiny_models, batch_tokens=4096)
    assert not failed
    single = np.stack([embed_frames(*columns([f]), tiny_models, batch_tokens=4096)[0][0] for f in frames])
    assert np.abs(batched - single).max() < 1e-5


def test_features_put_dnabert_first_then_esm(tiny_models, frames):
    from virnucpro.models.dnabert_io import embed_dna_batch
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.models.esm_io import embed_protein_batch

    f = frames[0]
    feat = embed_frames(*columns([f]), tiny_models, batch_tokens=4096)[0][0]
    dna = embed_dna_batch(tiny_models.dnabert, tokenize_dna(tiny_models.dnabert.tokenizer, [f.nucleotides]))
    prot = embed_protein_batch(tiny_models.esm, [f.protein])
    assert feat.shape == (tiny_models.dna_dim + tiny_models.protein_dim,)
    np.testing.assert_allclose(feat[: tiny_models.dna_dim], dna[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(feat[tiny_models.dna_dim:], prot[0].numpy(), atol=1e-6)


def test_scores_do_not_depend_on_the_token_budget(tiny_models, frames):
    a = score_frames(*columns(frames), tiny_models, batch_tokens=64).probs
    b = score_frames(*columns(frames), tiny_models, batch_tokens=100_000).probs
    assert np.abs(a - b).max() < 1e-6
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-6)


def test_tiny_classifier_splits_real_frames_into_both_classes(tiny_models, frames):
    calls = score_frames(*columns(frames), tiny_models, batch_tokens=4096).probs.argmax(axis=1)
    share = calls.mean()
    assert 0.1 < share < 0.9, share  # a tiny set that always says one class would test nothing


class _SmallDevice:
    """Stands in for a GPU with little memory: batches over `limit` padded tokens fail."""

    def __init__(self, models, limit, dna=True, error=None):
        import torch

        from virnucpro.scoring import Embedder

        self.real = Embedder(models)
        self.limit = limit
        self.limit_dna = dna
        self.seen = []
        self.error = error or torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to "
                                                          "allocate 2.00 GiB")

    def _check(self, width, n):
        self.seen.append(width * n)
        if width * n > self.limit:
            raise self.error

    def dna(self, token_ids, prepared=None):
        if self.limit_dna:
            self._check(max(map(len, token_ids)), len(token_ids))
        return self.real.dna(token_ids, prepared)

    def protein(self, proteins, prepared=None):
        self._check(max(map(len, proteins)) + 2, len(proteins))
        return self.real.protein(proteins, prepared)

    def free_memory(self):
        pass

    def __getattr__(self, name):  # the host-side batch making, as the real one does it
        return getattr(self.real, name)


@pytest.mark.parametrize("error", [None, RuntimeError(
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")],
    ids=["torch", "cublas"])
def test_out_of_memory_halves_the_batch_and_gives_the_same_scores(tiny_models, frames, error):
    plain = score_frames(*columns(frames), tiny_models, batch_tokens=8192)
    device = _SmallDevice(tiny_models, limit=1500, error=error)
    small = score_frames(*columns(frames), tiny_models, batch_tokens=8192, embedder=device)
    assert any(s > 1500 for s in device.seen)  # it did run out of memory, then recovered
    assert (small.status == 0).all()
    assert np.abs(small.probs - plain.probs).max() < 1e-6


def test_a_frame_that_never_fits_is_marked_failed_not_fatal(tiny_models, frames):
    from virnucpro.scoring import FAILED_OOM

    longest = max(range(len(frames)), key=lambda i: len(frames[i].protein))
    limit = len(frames[longest].protein) + 1  # everything fits alone except the longest protein
    scores = score_frames(*columns(frames), tiny_models, batch_tokens=8192,
                          embedder=_SmallDevice(tiny_models, limit=limit, dna=False))
    failed = np.flatnonzero(scores.status)
    assert set(failed) == {i for i, f in enumerate(frames) if len(f.protein) + 2 > limit}
    assert (scores.status[failed] == FAILED_OOM).all() and np.isnan(scores.probs[failed]).all()
    ok = scores.status == 0
    assert ok.sum() > 0 and np.isfinite(scores.probs[ok]).all()


def test_a_shard_prepared_ahead_scores_as_one_prepared_in_place(tiny_models, frames):
    from virnucpro.scoring import Embedder, prepare_shard

    used = []

    class Watching(Embedder):
        def dna(self, token_ids, prepared=None):
            used.append(prepared is not None)
            return super().dna(token_ids, prepared)

        def protein(self, proteins, prepared=None):
            used.append(prepared is not None)
            return super().protein(proteins, prepared)

    embedder = Watching(tiny_models)
    ahead = prepare_shard(*columns(frames), tiny_models, 2048, embedder)
    in_place = score_frames(*columns(frames), tiny_models, batch_tokens=2048)
    scores = score_frames(*columns(frames), tiny_models, batch_tokens=2048, embedder=embedder,
                          prepared=ahead)
    assert len(used) == len(ahead.dna) + len(ahead.protein) > 2 and all(used)
    assert np.array_equal(scores.probs, in_place.probs)
    # Prepared for another budget: not used, made again here.
    used.clear()
    again = score_frames(*columns(frames), tiny_models, batch_tokens=4096, embedder=embedder,
                         prepared=ahead)
    assert all(used) and np.abs(again.probs - in_place.probs).max() < 1e-6
