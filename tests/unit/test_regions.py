"""The region rule (virnucpro.regions) on constructed chunk tracks.

A track is written as a string, one letter per chunk: V viral, o scored non-viral, - unscored;
chunks are 500 bp tiles unless a test gives the layout (overlaps come from `chunk_spans`).
"""

from __future__ import annotations

import numpy as np
import pytest

from virnucpro.chunking import chunk_spans
from virnucpro.regions import PARTIAL, PROVIRUS, WHOLE, RegionRule, find_regions

P = {"V": 0.9, "o": 0.2, "-": np.nan}


def track(calls: str, size: int = 500, length: int | None = None, p: list[float] | None = None):
    """Chunk columns for a call string; `length` lays the chunks out as the pipeline does."""
    n = len(calls)
    spans = chunk_spans(length, size) if length is not None else [(k * size, (k + 1) * size)
                                                                   for k in range(n)]
    assert len(spans) == n
    scored = np.array([c != "-" for c in calls], dtype=bool)
    viral = np.array([c == "V" for c in calls], dtype=bool)
    probs = np.array(p if p is not None else [P[c] for c in calls], dtype=np.float32)
    probs[~scored] = np.nan
    return (np.array([s for s, _ in spans]), np.array([e for _, e in spans]), scored, viral,
            probs)


def cut(calls: str, rule: RegionRule | None = None, **kw):
    return find_regions(*track(calls, **kw), rule or RegionRule(min_length=1))


def spans(regions) -> list[tuple[int, int, str]]:
    return [(r.start, r.end, r.kind) for r in regions]


def test_a_provirus_has_scored_non_viral_chunks_on_both_sides() -> None:
    [r] = cut("ooVVVoo")
    assert (r.start, r.end, r.kind, r.chunks, r.viral_chunks) == (1001, 2500, PROVIRUS, 3, 3)
    assert r.length == 1500 and r.number == 1


def test_gaps_of_at_most_region_gap_chunks_are_bridged() -> None:
    assert spans(cut("oVoVoo")) == [(501, 2000, PROVIRUS)]  # one chunk bridged by default
    assert spans(cut("oVooVo")) == [(501, 1000, PROVIRUS), (2001, 2500, PROVIRUS)]
    assert spans(cut("oVooVo", RegionRule(gap=2, min_length=1))) == [(501, 2500, PROVIRUS)]
    assert spans(cut("oVoVo", RegionRule(gap=0, min_length=1))) == [
        (501, 1000, PROVIRUS), (1501, 2000, PROVIRUS)]


def test_bridged_chunks_count_in_the_scores_but_not_as_viral() -> None:
    [r] = cut("oVoVo", p=[0.1, 0.8, 0.3, 0.6, 0.1])
    assert (r.chunks, r.viral_chunks) == (3, 2)
    assert r.max_p_virus == pytest.approx(0.8)
    assert r.mean_p_virus == pytest.approx(np.mean(np.float32([0.8, 0.3, 0.6]), dtype=np.float64))


def test_unscored_chunks_are_bridged_like_non_viral_ones_and_left_out_of_the_mean() -> None:
    [r] = cut("oV-Vo", p=[0.1, 0.8, 0.0, 0.6, 0.1])
    assert (r.start, r.end, r.chunks, r.viral_chunks) == (501, 2000, 3, 2)
    assert r.mean_p_virus == pytest.approx(0.7)


def test_the_kind_at_the_ends() -> None:
    assert spans(cut("VVoo")) == [(1, 1000, PARTIAL)]
    assert spans(cut("ooVV")) == [(1001, 2000, PARTIAL)]
    assert spans(cut("VVVV")) == [(1, 2000, WHOLE)]
    # Unscored chunks at the ends do not make a provirus: no scored host chunk lies there.
    assert spans(cut("--VV--")) == [(1001, 2000, WHOLE)]
    assert spans(cut("-oVV--")) == [(1001, 2000, PARTIAL)]


def test_two_regions_with_host_between_and_outside() -> None:
    regions = cut("oVVoooVVo")
    assert spans(regions) == [(501, 1500, PROVIRUS), (3001, 4000, PROVIRUS)]
    assert [r.number for r in regions] == [1, 2]
    # Without host on the outer sides, each region touches one end.
    assert spans(cut("VVoooVV")) == [(1, 1000, PARTIAL), (2501, 3500, PARTIAL)]


def test_short_regions_are_dropped_but_a_whole_one_is_kept() -> None:
    rule = RegionRule(min_length=1000)
    assert spans(cut("oVoo", rule)) == []  # 500 bp provirus
    assert spans(cut("oVVo", rule)) == [(501, 1500, PROVIRUS)]
    assert spans(cut("V", rule)) == [(1, 500, WHOLE)]  # a one-chunk sequence
    # Numbers count the kept regions only.
    assert [r.number for r in cut("oVoooVVo", rule)] == [1]


def test_a_one_chunk_sequence_that_is_not_viral_has_no_region() -> None:
    assert cut("o") == [] and cut("-") == [] and cut("") == []


def test_region_min_p_replaces_the_call() -> None:
    p = [0.1, 0.55, 0.75, 0.8, 0.3]
    calls = "oVVVo"
    assert spans(cut(calls, p=p)) == [(501, 2000, PROVIRUS)]
    higher = RegionRule(min_p=0.7, min_length=1)
    assert spans(cut(calls, higher, p=p)) == [(1001, 2000, PROVIRUS)]
    [r] = cut(calls, higher, p=p)
    assert r.viral_chunks == 2
    # A chunk called non-viral counts when its P(virus) reaches min_p.
    lower = RegionRule(min_p=0.25, min_length=1)
    assert spans(cut(calls, lower, p=p)) == [(501, 2500, PARTIAL)]


def test_overlapping_chunks_take_their_own_bounds() -> None:
    # 1,234 bp at 500: three chunks that overlap (0-500, 411-911, 822-1234).
    s, e, *_ = track("ooo", length=1234)
    assert list(zip(s.tolist(), e.tolist(), strict=True)) == [(0, 500), (411, 911), (822, 1234)]
    assert spans(cut("oVo", length=1234)) == [(412, 911, PROVIRUS)]
    assert spans(cut("VVo", length=1234)) == [(1, 911, PARTIAL)]
    [r] = cut("oVV", length=1234)
    assert (r.start, r.end, r.length, r.kind) == (412, 1234, 823, PARTIAL)


def test_the_rule_refuses_settings_that_mean_nothing() -> None:
    with pytest.raises(ValueError, match="gap"):
        RegionRule(gap=-1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        RegionRule(min_p=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        RegionRule(min_length=0)


def test_old_parameters_give_the_defaults() -> None:
    assert RegionRule.from_parameters({}) == RegionRule()
    rule = RegionRule(gap=3, min_p=0.6, min_length=200)
    assert RegionRule.from_parameters(rule.parameters()) == rule



def test_lists_and_arrays_give_the_same_regions() -> None:
    s, e, scored, viral, probs = track("oVVo-VVVoooVo", p=[0.1, 0.8, 0.6, 0.2, 0.0, 0.9, 0.7,
                                                           0.75, 0.3, 0.1, 0.2, 0.95, 0.4])
    for rule in (RegionRule(min_length=1), RegionRule(gap=0, min_length=1),
                 RegionRule(min_p=0.7, min_length=1)):
        assert find_regions(s, e, scored, viral, probs, rule) == find_regions(
            s.tolist(), e.tolist(), scored.tolist(), viral.tolist(), probs.tolist(), rule)
