"""Cutting a sequence into the chunks the published classifier was trained on (FIDELITY 1).

Pure functions: `chunk_spans(length, chunk_size)` gives the (start, end) of each chunk, with
the reference's overlap rule (the overlap is spread over the chunks, dividing by n, not n-1),
and `chunk_id` names them `{record_id}_chunk_{k}` with k counted from 1.
"""

from __future__ import annotations

CHUNK_SIZES = (300, 500)


def chunk_spans(length: int, chunk_size: int) -> list[tuple[int, int]]:
    """Return 0-based, end-exclusive spans of the chunks of a sequence of `length` bases.

    A sequence no longer than `chunk_size` is one chunk, not padded; a multiple of
    `chunk_size` is plain tiles; otherwise chunks overlap and the last is often shorter.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if length <= 0:
        return []
    n = -(-length // chunk_size)  # ceil
    spare = n * chunk_size - length
    q = spare // n
    need = spare - q * (n - 1)
    spans = []
    shift = 0
    for k in range(n):
        start = k * chunk_size - shift
        spans.append((start, min(start + chunk_size, length)))
        # The k-th step back is q+1 for the first `need` steps, q afterwards.
        shift += q + 1 if k < need else q
    return spans


def chunk_id(record_id: str, k: int) -> str:
    """Name of chunk `k` (0-based) of a record: `{record_id}_chunk_{k+1}`."""
    return f"{record_id}_chunk_{k + 1}"
