"""Token-budget batching: a pure function over lengths, tested on its own.

Items are sorted by length (longest first, ties in input order) and packed so that a batch's
padded size, `len(batch) * longest`, stays within the budget. Sorting first keeps padding
small; an item longer than the budget still gets a batch of its own rather than being lost.
"""

from __future__ import annotations

from collections.abc import Sequence


def batch_by_token_budget(lengths: Sequence[int], budget: int,
                          max_items: int | None = None) -> list[list[int]]:
    """Group item indices into batches whose padded token count is at most `budget`.

    Returns lists of indices into `lengths`. Every index appears exactly once. The result
    depends only on the lengths and the budget, so every engine cuts the same batches.
    """
    if budget <= 0:
        raise ValueError("the token budget must be positive")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = max(lengths[i], 1)
        # Sorted longest first, so the batch's longest item is its first one.
        width = longest if current else n
        full = max_items is not None and len(current) >= max_items
        if current and (full or (len(current) + 1) * width > budget):
            batches.append(current)
            current = []
            width = n
        if not current:
            longest = n
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padding_waste(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of padded positions among all positions the batches occupy."""
    real = sum(lengths[i] for b in batches for i in b)
    total = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return 0.0 if total == 0 else (total - real) / total
