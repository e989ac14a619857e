"""Six-frame translation rules of the reference (FIDELITY 2)."""

import random

import pytest

from virnucpro.translation import (
    CODON_TABLE,
    reverse_complement,
    translate_frame,
    translate_six_frames,
)


def _stop_free(n_codons: int, seed: int) -> str:
    """A sequence whose six frames are all free of stop codons is rare; build forward ones."""
    rng = random.Random(seed)
    sense = [c for c, aa in CODON_TABLE.items() if aa != "*"]
    return "".join(rng.choice(sense) for _ in range(n_codons))


def test_codon_table_is_ncbi_table_1():
    assert len(CODON_TABLE) == 64
    assert [c for c, aa in CODON_TABLE.items() if aa == "*"] == ["TAA", "TAG", "TGA"]
    assert CODON_TABLE["ATG"] == "M" and CODON_TABLE["TGG"] == "W" and CODON_TABLE["AGA"] == "R"
    # A protein translation check against Biopython's standard table for every codon.
    from Bio.Data.CodonTable import standard_dna_table

    for codon, aa in CODON_TABLE.items():
        assert standard_dna_table.forward_table.get(codon, "*") == aa


def test_codons_with_ambiguous_letters_are_dropped_without_shifting_the_frame():
    # GCN would be A for Biopython; the reference drops it and keeps reading in frame.
    assert translate_frame("ATGGCNTGG", 0) == "MW"
    assert translate_frame("ATG---TGG", 0) == "MW"
    assert translate_frame("ATGNNNTGGAAA", 0) == "MWK"


def test_reverse_complement_maps_only_acgt():
    assert reverse_complement("AACGTN-R") == "R-NACGTT"


def test_frames_are_named_and_ordered_f1_f2_f3_r1_r2_r3():
    seq = "ATGGCC" * 20
    frames = translate_six_frames(seq, "s_chunk_1")
    names = [f.frame_id for f in frames]
    order = ["F1", "F2", "F3", "R1", "R2", "R3"]
    assert names == sorted(names, key=lambda n: order.index(n[-2:]))
    assert all(n.startswith("s_chunk_1") for n in names)


def test_a_frame_with_a_stop_codon_is_not_kept():
    seq = "ATG" * 10 + "TAA" + "ATG" * 10  # F1 holds a stop
    ids = [f.frame_id[-2:] for f in translate_six_frames(seq, "x")]
    assert "F1" not in ids


def test_lower_case_is_translated_like_upper_case():
    seq = _stop_free(100, 1)
    up = translate_six_frames(seq, "x")
    low = translate_six_frames(seq.lower(), "x")
    assert [(f.frame_id, f.protein, f.nucleotides) for f in up] == [
        (f.frame_id, f.protein, f.nucleotides) for f in low]


def test_full_500_bp_chunk_carries_499_499_498_nucleotides_and_166_residues():
    chunk = "AAG" * 166 + "AA"  # every frame of both strands is open (K, R, E / L, F, S)
    frames = {f.frame_id[-2:]: f for f in translate_six_frames(chunk, "c")}
    assert list(frames) == ["F1", "F2", "F3", "R1", "R2", "R3"]
    assert [len(frames[n].nucleotides) for n in frames] == [499, 499, 498] * 2
    assert all(len(f.protein) == 166 for f in frames.values())


@pytest.mark.parametrize("seed", range(5))
def test_nucleotide_slice_starts_at_the_offset_and_holds_one_extra_base(seed):
    chunk = _stop_free(60, seed) + "A"  # 181 bp
    for f in translate_six_frames(chunk, "c", chunk_start=1000):
        strand = chunk if f.strand == "+" else reverse_complement(chunk)
        off = f.frame - 1
        assert f.nucleotides == strand[off:off + 3 * len(f.protein) + 1]
        # Coordinates on the forward strand of the sequence give back the same bases.
        span = chunk[f.start - 1000:f.end - 1000]
        assert (span if f.strand == "+" else reverse_complement(span)) == f.nucleotides


def test_slice_is_clipped_at_the_chunk_end():
    chunk = _stop_free(10, 3)  # 30 bp: F1 has 10 codons, and there is no 31st base
    f1 = translate_six_frames(chunk, "c")[0]
    assert f1.frame_id.endswith("F1")
    assert len(f1.protein) == 10 and f1.nucleotides == chunk


def test_dropped_codons_shorten_the_slice_as_in_the_reference():
    chunk = "ATG" * 5 + "NNN" + "ATG" * 5 + "A"
    f1 = translate_six_frames(chunk, "c")[0]
    assert f1.protein == "M" * 10
    assert f1.nucleotides == chunk[:31]


def test_a_chunk_of_only_n_has_no_kept_frame():
    assert translate_six_frames("N" * 300, "c") == []
