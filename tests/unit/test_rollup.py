"""Frame, chunk and sequence calls."""

import numpy as np

from virnucpro.fasta import SeqRecord
from virnucpro.plan import plan_record
from virnucpro.rollup import (
    NO_KEPT_FRAME,
    OTHERS,
    UNSCORED,
    VIRUS,
    call_chunk,
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
    v = call_chunk("a", np.array([[0.2, 0.8]], np.float32), [True])
    o = call_chunk("b", np.array([[0.8, 0.2]], np.float32), [True])
    u = call_chunk("c", np.zeros((0, 2), np.float32), [])
    seq = call_sequence("s", 1500, [v, o, u], threshold=0.5)
    assert (seq.chunks, seq.scored_chunks, seq.viral_chunks, seq.viral_share) == (3, 2, 1, 0.5)
    assert seq.call == VIRUS
    assert call_sequence("s", 1500, [v, o, u], threshold=0.51).call == OTHERS
    assert seq.max_p_virus == np.float32(0.8)
    assert abs(seq.mean_p_virus - (0.8 + 0.2) / 2) < 1e-6


def test_sequence_with_no_scored_chunk_says_why():
    u = call_chunk("c", np.zeros((0, 2), np.float32), [])
    seq = call_sequence("s", 300, [u], threshold=0.5)
    assert seq.call == UNSCORED and "stop codon" in seq.reason
    assert call_sequence("s", 0, [], 0.5, unscored_reason="empty sequence").reason == "empty sequence"


def _record(seq, rid="r", original=None):
    return SeqRecord(index=0, id=rid, header=rid, seq=seq, original_id=original or rid)


def test_plan_flags_short_renamed_and_rna_records():
    plan = plan_record(_record("ACGU" * 10, "r_2", "r"), 500)
    assert plan.flags == ("short", "renamed_from:r", "rna")
    assert plan.chunks and all("U" not in f.nucleotides for f in plan.frames())


def test_plan_leaves_empty_and_too_short_records_unchunked_with_reason():
    assert plan_record(_record(""), 500).unscored_reason == "empty sequence"
    plan = plan_record(_record("ACGT" * 10), 500, min_length=100)
    assert plan.chunks == () and "--min-length 100" in plan.unscored_reason


def test_external_sorter_merges_spilled_runs_in_string_order(tmp_path):
    import random

    from virnucpro.outputs import ExternalSorter

    rng = random.Random(0)
    lines = [f"c{rng.randint(0, 10**6)}_chunk_{rng.randint(1, 20)}\tTrue\n" for _ in range(1000)]
    sorter = ExternalSorter(tmp_path / "runs", run_lines=64)
    for line in lines:
        sorter.add(line)
    assert len(list((tmp_path / "runs").iterdir())) == 1000 // 64
    assert list(sorter.sorted_lines()) == sorted(lines)
    assert not (tmp_path / "runs").exists()
