"""Calls at three levels: frame -> chunk (the reference rule) -> sequence (this project's).

A frame is viral when P(virus) > P(others) (a tie is `others`, FIDELITY 6). A chunk is viral
when the highest P(virus) over its scored frames is at least the highest P(others). A sequence
is viral when the share of its scored chunks that are viral reaches the threshold. Chunks and
sequences without a score say why. `call_chunks` works on whole columns (the writer's blocks);
`call_chunk` and `call_sequence` are the one-at-a-time forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VIRUS, OTHERS, UNSCORED = "virus", "others", "unscored"
NO_KEPT_FRAME = "no reading frame without a stop codon"
# A frame is kept when it has a codon of A, C, G, T only and no stop; a chunk of N (or other
# IUPAC codes) has no such codon in any frame: it is ambiguous, not full of stops.
AMBIGUOUS = "ambiguous: no codon of A, C, G, T only in any reading frame"
SCORING_FAILED = "scoring failed"


@dataclass(frozen=True, slots=True)
class ChunkCall:
    chunk_id: str
    kept_frames: int
    scored_frames: int
    max_p_virus: float | None
    max_p_others: float | None
    call: str  # virus, others or unscored
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SequenceCall:
    sequence_id: str
    length: int
    chunks: int
    scored_chunks: int
    viral_chunks: int
    viral_share: float | None
    max_p_virus: float | None
    mean_p_virus: float | None
    call: str
    reason: str = ""


@dataclass(frozen=True)
class ChunkColumns:
    """The calls of consecutive chunks, one array entry per chunk."""

    kept: np.ndarray  # frames kept
    scored: np.ndarray  # frames scored (kept and not failed)
    max_p_virus: np.ndarray  # float32, NaN where the chunk is unscored
    max_p_others: np.ndarray
    viral: np.ndarray  # bool: called virus (False where unscored)
    ambiguous: np.ndarray  # bool: no codon of A, C, G, T only in any frame (see AMBIGUOUS)

    @property
    def is_scored(self) -> np.ndarray:
        return self.scored > 0

    def calls(self) -> np.ndarray:
        """Per chunk: virus, others, or unscored (object array of str)."""
        return np.where(self.is_scored, np.where(self.viral, VIRUS, OTHERS),
                        UNSCORED).astype(object)

    def reasons(self) -> np.ndarray:
        """Per chunk: why it is unscored, empty where it is scored (object array of str)."""
        return np.where(self.is_scored, "", np.where(
            self.kept > 0, SCORING_FAILED,
            np.where(self.ambiguous, AMBIGUOUS, NO_KEPT_FRAME))).astype(object)


def frame_calls(probs: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per frame: the argmax call, `unscored` where not ok (object array of str)."""
    calls = np.where(probs[:, 1] > probs[:, 0], VIRUS, OTHERS).astype(object)
    calls[~ok] = UNSCORED
    return calls


def frame_call(p_others: float, p_virus: float) -> str:
    """Argmax of the two probabilities; a tie goes to `others` as in the reference."""
    return VIRUS if p_virus > p_others else OTHERS


def call_chunks(frame_offsets: np.ndarray, probs: np.ndarray, ok: np.ndarray,
                ambiguous: np.ndarray | None = None) -> ChunkColumns:
    """Roll frames up into chunks. Chunk i holds frames frame_offsets[i]:frame_offsets[i+1]
    (offsets from 0, len(probs) last); `ok` is False for failed frames; `ambiguous` marks the
    chunks without any codon of A, C, G, T only (None: none known)."""
    kept = np.diff(frame_offsets)
    n = len(kept)
    scored = np.zeros(n, dtype=np.int64)
    max_v = np.full(n, np.nan, dtype=np.float32)
    max_o = np.full(n, np.nan, dtype=np.float32)
    has = kept > 0
    if has.any():
        starts = frame_offsets[:-1][has]
        scored[has] = np.add.reduceat(ok.astype(np.int64), starts)
        for col, out in ((1, max_v), (0, max_o)):
            values = np.where(ok, probs[:, col], np.float32(-np.inf)).astype(np.float32)
            out[has] = np.maximum.reduceat(values, starts)
    good = scored > 0
    max_v[~good] = np.nan
    max_o[~good] = np.nan
    viral = good & (max_v >= max_o)
    if ambiguous is None:
        ambiguous = np.zeros(n, dtype=bool)
    return ChunkColumns(kept=kept, scored=scored, max_p_virus=max_v, max_p_others=max_o,
                        viral=viral, ambiguous=np.asarray(ambiguous, dtype=bool))


def call_chunk(chunk_id: str, probs: np.ndarray, ok: Sequence[bool]) -> ChunkCall:
    """One chunk's call from its frames ([n, 2] probabilities; `ok` False for failed ones)."""
    cols = call_chunks(np.array([0, len(ok)]), np.asarray(probs, dtype=np.float32).reshape(-1, 2),
                       np.asarray(ok, dtype=bool))
    scored = int(cols.scored[0])
    return ChunkCall(chunk_id, int(cols.kept[0]), scored,
                     float(cols.max_p_virus[0]) if scored else None,
                     float(cols.max_p_others[0]) if scored else None, cols.calls()[0],
                     cols.reasons()[0])


def call_sequence(sequence_id: str, length: int, n_chunks: int, maxima: np.ndarray | Sequence[float],
                  viral_chunks: int, threshold: float, *, unscored_reason: str = "",
                  failed_chunks: int = 0, ambiguous_chunks: int = 0) -> SequenceCall:
    """The sequence call from its scored chunks: `maxima` holds each scored chunk's highest
    P(virus) (float32), `viral_chunks` how many of them are viral; `failed_chunks` counts
    chunks whose every frame failed, `ambiguous_chunks` those without a codon of A, C, G, T
    only. `unscored_reason` marks a sequence never chunked."""
    if unscored_reason:
        return SequenceCall(sequence_id, length, 0, 0, 0, None, None, None, UNSCORED,
                            unscored_reason)
    scored = len(maxima)
    if not scored:
        reason = ("scoring failed for every chunk" if failed_chunks
                  else _no_frame_reason(n_chunks, ambiguous_chunks))
        return SequenceCall(sequence_id, length, n_chunks, 0, 0, None, None, None, UNSCORED,
                            reason)
    share = viral_chunks / scored
    if scored == 1:
        top = mean = float(maxima[0])
    else:
        maxima = np.asarray(maxima, dtype=np.float32)
        top = float(maxima.max())
        mean = float(np.mean(maxima.astype(np.float64)))
    return SequenceCall(sequence_id, length, n_chunks, scored, viral_chunks, share, top, mean,
                        VIRUS if share >= threshold else OTHERS)


def _no_frame_reason(n_chunks: int, ambiguous: int) -> str:
    """Why no chunk of a sequence has a kept frame, by the rule (a codon of A, C, G, T only,
    no stop): ambiguous letters, stops, or some chunks of each."""
    if ambiguous >= n_chunks:
        return ("every chunk is ambiguous: no codon of A, C, G, T only in any reading frame "
                "(N or other IUPAC codes)")
    if ambiguous:
        return (f"no chunk has a reading frame to score: {ambiguous} of {n_chunks} are ambiguous "
                "(no codon of A, C, G, T only), the others have a stop codon in every frame")
    return "no chunk has a reading frame without a stop codon"
