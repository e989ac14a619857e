"""Viral regions inside a sequence, cut from its chunk calls along its coordinates.

The rule (as docs/outputs.md states it; tests/unit/test_regions.py holds this code to it):
- a chunk counts as viral by its call, or, with a `min_p`, when its highest P(virus) is at
  least `min_p` (instead of the call); an unscored chunk never counts;
- a region is a maximal run of viral chunks in which runs of at most `gap` chunks that do not
  count (non-viral or unscored) are bridged; its bounds are the start of its first viral chunk
  and the end of its last one (chunks may overlap: the bounds are the chunks' own);
- `kind` is `whole` when the region runs from the sequence's first scored chunk to its last,
  `provirus` when scored chunks that do not count lie on both sides of it, `partial` otherwise;
- a region is kept when it is at least `min_length` bp long; a `whole` region always is;
- `mean_p_virus` and `max_p_virus` are over the scored chunks inside the bounds, bridged ones
  included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WHOLE, PROVIRUS, PARTIAL = "whole", "provirus", "partial"
KINDS = (WHOLE, PROVIRUS, PARTIAL)
REGIONS_COLUMNS = ["sequence_id", "region", "start", "end", "length", "chunks", "viral_chunks",
                   "mean_p_virus", "max_p_virus", "kind"]


@dataclass(frozen=True)
class RegionRule:
    """The three settings of the rule."""

    gap: int = 1  # chunks that do not count, bridged inside a region
    min_p: float | None = None  # a chunk counts when its max P(virus) >= min_p (not its call)
    min_length: int = 1000  # bp; shorter regions are dropped unless `whole`

    def __post_init__(self) -> None:
        if self.gap < 0:
            raise ValueError("the region gap is a number of chunks, at least 0")
        if self.min_p is not None and not 0.0 <= self.min_p <= 1.0:
            raise ValueError("the region min P(virus) is between 0 and 1")
        if self.min_length < 1:
            raise ValueError("the minimum region length is at least 1 bp")

    def parameters(self) -> dict:
        return {"region_gap": self.gap, "region_min_p": self.min_p,
                "min_region_length": self.min_length}

    @classmethod
    def from_parameters(cls, params: dict) -> RegionRule:
        """The rule of a run's parameters (run.json); the defaults for a run made before
        regions existed."""
        default = cls()
        return cls(gap=int(params.get("region_gap", default.gap)),
                   min_p=params.get("region_min_p", default.min_p),
                   min_length=int(params.get("min_region_length", default.min_length)))


@dataclass(frozen=True, slots=True)
class Region:
    number: int  # 1..n within its sequence
    start: int  # 1-based, inclusive
    end: int  # inclusive
    chunks: int  # chunks inside the bounds
    viral_chunks: int  # of those, the ones that count as viral
    mean_p_virus: float
    max_p_virus: float
    kind: str

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _as_list(values) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def find_regions(chunk_start, chunk_end, scored, viral, max_p_virus,
                 rule: RegionRule) -> list[Region]:
    """The kept regions of one sequence, from its chunks in order: 0-based, end-exclusive
    `chunk_start`/`chunk_end`, `scored` and `viral` (the chunk calls) as bools, `max_p_virus`
    the float32 values (NaN where unscored); arrays or lists. Plain Python over the chunks: a
    read is one chunk, a megabase contig 2,000, and a numpy call costs more than a chunk."""
    scored, viral, p = _as_list(scored), _as_list(viral), _as_list(max_p_virus)
    if rule.min_p is None:
        counts = [bool(s and v) for s, v in zip(scored, viral, strict=True)]
    else:
        floor = float(np.float32(rule.min_p))  # the chunk scores are float32
        counts = [bool(s and x >= floor) for s, x in zip(scored, p, strict=True)]
    hits = [i for i, c in enumerate(counts) if c]
    if not hits:
        return []
    starts, ends = _as_list(chunk_start), _as_list(chunk_end)
    scored_at = [i for i, s in enumerate(scored) if s]
    first_scored, last_scored = scored_at[0], scored_at[-1]
    # Scored chunks that do not count: a region with some on both sides is a provirus.
    others = [i for i in scored_at if not counts[i]]
    runs, a = [], hits[0]
    for prev, i in zip(hits, hits[1:], strict=False):
        if i - prev > rule.gap + 1:
            runs.append((a, prev))
            a = i
    runs.append((a, hits[-1]))
    regions = []
    for a, b in runs:
        start, end = int(starts[a]) + 1, int(ends[b])
        if a == first_scored and b == last_scored:
            kind = WHOLE
        elif others and others[0] < a and others[-1] > b:
            kind = PROVIRUS
        else:
            kind = PARTIAL
        if kind != WHOLE and end - start + 1 < rule.min_length:
            continue
        inside = [p[i] for i in range(a, b + 1) if scored[i]]
        mean = inside[0] if len(inside) == 1 else float(np.mean(np.array(inside, np.float64)))
        regions.append(Region(len(regions) + 1, start, end, b - a + 1, sum(counts[a:b + 1]),
                              float(mean), float(max(inside)), kind))
    return regions
