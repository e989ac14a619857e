"""Calls at three levels: frame -> chunk (the reference rule) -> sequence (this project's).

A chunk is viral when the highest P(virus) over its kept frames is at least the highest
P(others) (FIDELITY 6). A sequence is viral when the share of its scored chunks that are
viral reaches the threshold. Chunks and sequences without a score say why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VIRUS, OTHERS, UNSCORED = "virus", "others", "unscored"
NO_KEPT_FRAME = "no reading frame without a stop codon"
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


def frame_call(p_others: float, p_virus: float) -> str:
    """Argmax of the two probabilities; a tie goes to `others` as in the reference."""
    return VIRUS if p_virus > p_others else OTHERS


def call_chunk(chunk_id: str, probs: np.ndarray, ok: Sequence[bool]) -> ChunkCall:
    """Roll the chunk's frames ([n, 2] probabilities; `ok` False for failed frames) up."""
    kept = len(ok)
    good = probs[np.asarray(ok, dtype=bool)] if kept else probs[:0]
    if kept == 0:
        return ChunkCall(chunk_id, 0, 0, None, None, UNSCORED, NO_KEPT_FRAME)
    if len(good) == 0:
        return ChunkCall(chunk_id, kept, 0, None, None, UNSCORED, SCORING_FAILED)
    max_others = float(good[:, 0].max())
    max_virus = float(good[:, 1].max())
    call = VIRUS if max_virus >= max_others else OTHERS
    return ChunkCall(chunk_id, kept, len(good), max_virus, max_others, call)


def call_sequence(sequence_id: str, length: int, chunks: Sequence[ChunkCall], threshold: float,
                  unscored_reason: str = "") -> SequenceCall:
    """The sequence call from its chunks; `unscored_reason` marks a sequence never chunked."""
    if unscored_reason:
        return SequenceCall(sequence_id, length, 0, 0, 0, None, None, None, UNSCORED,
                            unscored_reason)
    scored = [c for c in chunks if c.call != UNSCORED]
    if not scored:
        reasons = {c.reason for c in chunks}
        reason = ("no chunk has a reading frame without a stop codon"
                  if reasons <= {NO_KEPT_FRAME} else "scoring failed for every chunk")
        return SequenceCall(sequence_id, length, len(chunks), 0, 0, None, None, None,
                            UNSCORED, reason)
    viral = sum(c.call == VIRUS for c in scored)
    share = viral / len(scored)
    maxima = [c.max_p_virus for c in scored if c.max_p_virus is not None]
    return SequenceCall(
        sequence_id, length, len(chunks), len(scored), viral, share,
        float(max(maxima)), float(np.mean(np.asarray(maxima, dtype=np.float64))),
        VIRUS if share >= threshold else OTHERS)
