"""Frame, chunk and sequence calls."""

import numpy as np

from virnucpro.rollup import (
    NO_KEPT_FRAME,
    OTHERS,
    UNSCORED,
    VIRUS,
    call_chunk,
    call_chunks,
    call_sequence,
    frame_call,
)


def test_frame_tie_goes_to_others():
    assert frame_call(0.5, 0.5) == OTHERS
    assert frame_call(0.4, 0.6) == VIRUS


def test_chunk_is_viral_when_best_virus_score_reaches_best_others_score():
    # Frame 1 says others strongly, frame 2 says virus weakly: max(virus)=0.55 < max(others)=0.9.
    probs = np.array([[0.9, 0.1], [0.45, 0.55]], dtype=np.float32)
    assert call_chunk("c", probs, [True, True]).call == OTHERS
    probs = np.array([[0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    cc = call_chunk("c", probs, [True, True])
    assert cc.call == VIRUS and cc.max_p_virus == np.float32(0.7) and cc.max_p_others == np.float32(0.6)
    # Equality counts as virus (>=), unlike the frame tie.
    assert call_chunk("c", np.array([[0.5, 0.5]], np.float32), [True]).call == VIRUS


def test_failed_frames_are_left_out_of_the_chunk_call():
    probs = np.array([[np.nan, np.nan], [0.8, 0.2]], dtype=np.float32)
    cc = call_chunk("c", probs, [False, True])
    assert cc.call == OTHERS and cc.scored_frames == 1 and cc.kept_frames == 2
    assert call_chunk("c", probs[:1], [False]).reason == "scoring failed"


def test_chunk_without_kept_frame_is_unscored_with_reason():
    cc = call_chunk("c", np.zeros((0, 2), np.float32), [])
    assert cc.call == UNSCORED and cc.reason == NO_KEPT_FRAME


def test_sequence_call_uses_the_viral_share_and_threshold():
    maxima = np.array([0.8, 0.2], np.float32)  # two scored chunks, one of them viral; one unscored
    seq = call_sequence("s", 1500, 3, maxima, 1, threshold=0.5)
    assert (seq.chunks, seq.scored_chunks, seq.viral_chunks, seq.viral_share) == (3, 2, 1, 0.5)
    assert seq.call == VIRUS
    assert call_sequence("s", 1500, 3, maxima, 1, threshold=0.51).call == OTHERS
    assert seq.max_p_virus == np.float32(0.8)
    assert seq.mean_p_virus == np.mean(maxima.astype(np.float64))


def test_sequence_with_no_scored_chunk_says_why():
    none = np.zeros(0, np.float32)
    seq = call_sequence("s", 300, 1, none, 0, threshold=0.5)
    assert seq.call == UNSCORED and "stop codon" in seq.reason
    failed = call_sequence("s", 300, 2, none, 0, threshold=0.5, failed_chunks=1)
    assert failed.call == UNSCORED and failed.reason == "scoring failed for every chunk"
    empty = call_sequence("s", 0, 0, none, 0, 0.5, unscored_reason="empty sequence")
    assert empty.reason == "empty sequence" and empty.chunks == 0


def test_column_chunk_calls_equal_one_chunk_at_a_time():
    rng = np.random.default_rng(3)
    kept = rng.integers(0, 7, 200)
    offsets = np.concatenate([[0], np.cumsum(kept)])
    probs = rng.random((offsets[-1], 2)).astype(np.float32)
    ok = rng.random(offsets[-1]) > 0.15
    cols = call_chunks(offsets, probs, ok)
    for i in range(len(kept)):
        one = call_chunk("c", probs[offsets[i]:offsets[i + 1]], ok[offsets[i]:offsets[i + 1]])
        assert cols.calls()[i] == one.call and cols.reasons()[i] == one.reason
        assert cols.scored[i] == one.scored_frames and cols.kept[i] == one.kept_frames
        if one.scored_frames:
            good = probs[offsets[i]:offsets[i + 1]][ok[offsets[i]:offsets[i + 1]]]
            assert cols.max_p_virus[i] == good[:, 1].max() and cols.max_p_others[i] == good[:, 0].max()


def test_external_sorter_merges_spilled_runs_in_string_order(tmp_path):
    import random

    from virnucpro.table_text import sort_lines

    rng = random.Random(0)
    lines = [f"c{rng.randint(0, 10**6)}_chunk_{rng.randint(1, 20)}\tTrue\n" for _ in range(1000)]
    merged = sort_lines(iter(lines), tmp_path / "runs", run_lines=64)
    first = next(merged)  # the runs are spilled before the first line comes out
    assert len(list((tmp_path / "runs").iterdir())) == 1000 // 64
    assert [first, *merged] == sorted(lines)
    assert not (tmp_path / "runs").exists()
