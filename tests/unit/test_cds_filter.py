"""The CDS filter of training: substring hits and misses of the k-mer index, one record at a
time; the ambiguous-chunk rule; and the pipeline's own frames judged against a fixture's CDS."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers import DATA
from virnucpro.errors import InputError
from virnucpro.plan import iter_blocks
from virnucpro.seqfile import read_fasta, scan_fasta
from virnucpro.training.cds import (
    SIDECAR_HEADER,
    CdsIndex,
    K,
    RecordCds,
    chunk_is_ambiguous,
    format_sidecar_line,
)
from virnucpro.training.genbank import genbank_to_fasta

AMINO = "ACDEFGHIKLMNPQRSTVWY"
CDS_A1 = "MSQVTEQSVRFQTALASIKLIQASAVLDLTEDDFDFLTSNKVWIATDRSRARRCVEACVYGT"
CDS_A2 = "MVRSYYPSECHADYFDFERIEALKPAIEACGISTLSQSPMLGFHKQMDNRIKLLEEILSFR"
CDS_B1 = "MGARASVLSGGELDRWEKIRLRPGGKKKYKLKHIVWASRELERFAVNPGLLETSEGCRQILG"


def _sidecar(tmp_path: Path, records: dict[str, list[str]]) -> Path:
    path = tmp_path / "cds.tsv"
    with open(path, "w") as out:
        out.write(SIDECAR_HEADER)
        for rid, proteins in records.items():
            out.write(format_sidecar_line(rid, proteins))
    return path


@pytest.fixture
def index(tmp_path: Path) -> CdsIndex:
    path = _sidecar(tmp_path, {"A": [CDS_A1, CDS_A2], "B": [CDS_B1], "C": []})
    return CdsIndex(path, source="viral.gbff")


def test_a_protein_inside_a_cds_is_found(index: CdsIndex) -> None:
    assert index.contains("A", CDS_A1[10:50])
    assert index.contains("A", CDS_A2[5:45])
    assert index.contains("A", CDS_A1)  # the whole CDS


def test_a_protein_at_the_very_start_or_end_of_a_cds_is_found_and_one_past_it_is_not(
        index: CdsIndex) -> None:
    assert index.contains("A", CDS_A1[:30])
    assert index.contains("A", CDS_A1[-30:])
    assert index.contains("A", CDS_A2[-30:])
    assert not index.contains("A", CDS_A1[-30:] + "W")  # runs past the end
    assert not index.contains("A", "W" + CDS_A2[:30])  # starts before the start
    assert not index.contains("A", CDS_A1[-15:] + CDS_A2[:15])  # across two CDS


def test_a_protein_off_by_one_residue_is_not_found(index: CdsIndex) -> None:
    mutated = CDS_A1[10:20] + ("A" if CDS_A1[20] != "A" else "C") + CDS_A1[21:50]
    assert not index.contains("A", mutated)


def test_a_protein_shorter_than_k_is_found_by_a_scan(index: CdsIndex) -> None:
    short = CDS_A2[-(K - 1):]
    assert len(short) < K
    assert index.contains("A", short)
    assert index.contains("A", CDS_A1[3:6])
    assert not index.contains("A", "WWWWW")
    assert not index.contains("A", CDS_A1[-3:] + CDS_A2[:3])  # across two CDS, short
    assert not index.contains("A", "")


def test_a_protein_of_another_records_cds_only_is_not_found(index: CdsIndex) -> None:
    assert index.contains("B", CDS_B1[20:60])
    assert not index.contains("A", CDS_B1[20:60])
    assert not index.contains("B", CDS_A1[20:60])


def test_records_asked_for_out_of_order_are_found_again(index: CdsIndex) -> None:
    assert index.contains("B", CDS_B1[:20])
    assert index.contains("A", CDS_A1[:20])  # before the last one found: read from the start
    assert index.contains("B", CDS_B1[:20])


def test_only_the_record_asked_for_last_is_kept(index: CdsIndex) -> None:
    a = index.for_record("A")
    assert index.for_record("A") is a  # kept while asked for
    b = index.for_record("B")
    assert b.record_id == "B" and b.n_cds == 1
    assert index.for_record("A") is not a  # was dropped, built again


def test_a_record_without_cds_translations_is_an_error_naming_it(index: CdsIndex) -> None:
    with pytest.raises(InputError, match="no CDS translation") as err:
        index.for_record("C")
    assert err.value.record_id == "C" and err.value.path == "viral.gbff"


def test_a_record_missing_from_the_sidecar_is_an_error_naming_it(index: CdsIndex) -> None:
    with pytest.raises(InputError, match="no line in the CDS sidecar") as err:
        index.contains("D", CDS_A1)
    assert err.value.record_id == "D"


def test_a_file_that_is_not_a_sidecar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.tsv"
    path.write_text("id\tprotein\nA\tMKV\n")
    with pytest.raises(InputError, match="not a CDS sidecar"):
        CdsIndex(path)


def test_the_kmer_index_agrees_with_a_plain_scan() -> None:
    rng = random.Random(7)
    proteins = tuple("".join(rng.choice(AMINO) for _ in range(rng.randint(5, 400)))
                     for _ in range(30))
    # Low-complexity stretches make k-mers with many occurrences.
    proteins += ("M" + "A" * 200 + "K" + "A" * 50, "MKKKKKKKKKKKKKKKKKKKKKKKKKKKK")
    record = RecordCds("R", proteins)
    for _ in range(3000):
        p = rng.choice(proteins)
        n = rng.randint(1, 180)
        i = rng.randint(0, max(0, len(p) - 1))
        query = p[i:i + n]
        roll = rng.random()
        if roll < 0.3 and query:  # a point change
            j = rng.randrange(len(query))
            query = query[:j] + rng.choice(AMINO) + query[j + 1:]
        elif roll < 0.4:  # across two proteins
            query = p[-rng.randint(1, 20):] + rng.choice(proteins)[:rng.randint(1, 20)]
        expected = bool(query) and any(query in q for q in proteins)
        assert record.contains(query) is expected, query
    assert record.contains("A" * 150)
    assert not record.contains("A" * 201)


@pytest.mark.parametrize("letter", list("NRYMKSWHBVD"))
def test_a_chunk_with_an_ambiguity_code_of_either_case_is_dropped(letter: str) -> None:
    chunk = b"ACGT" * 40
    assert chunk_is_ambiguous(chunk[:77] + letter.encode() + chunk[78:])
    assert chunk_is_ambiguous(chunk[:77] + letter.lower().encode() + chunk[78:])
    assert chunk_is_ambiguous("ACGT" * 20 + letter)  # a str too


def test_a_chunk_of_acgt_gaps_or_u_is_kept() -> None:
    assert not chunk_is_ambiguous(b"ACGTacgt" * 30)
    assert not chunk_is_ambiguous(b"ACGU-.acgu")  # not in the rule's list
    assert not chunk_is_ambiguous(b"")


def _chunk_frame(s: int, e: int, cds: list[tuple[int, int, int]]) -> int | None:
    """The frame code (0-5) of the reading frame of a CDS that the chunk [s, e) lies inside,
    its stop codon left out; None if it lies inside none."""
    for start, end, strand in cds:
        if strand == 1 and start <= s and e <= end - 3:
            return (start - s) % 3  # F1..F3: offset from the chunk start
        if strand == -1 and start + 3 <= s and e <= end:
            return 3 + (e - end) % 3  # R1..R3: offset from the chunk end
    return None


def _in_cds_frame(code: int, first: int, last: int, cds: list[tuple[int, int, int]]) -> bool:
    """Whether a frame's codons, [first, last) on the forward strand, are codons of a CDS
    (its stop left out): on its strand, inside it and in its phase."""
    for start, end, strand in cds:
        if code < 3 and strand == 1 and start <= first and last <= end - 3:
            return (first - start) % 3 == 0
        if code >= 3 and strand == -1 and start + 3 <= first and last <= end:
            return (end - last) % 3 == 0
    return False


def _frames_against_cds(gbff: Path, folder: Path, own: dict[int, int],
                        others: list[int]) -> None:
    """Plan the converted fixture at chunk size 300 and judge every kept frame with the
    filter: one whose codons are codons of a CDS (by the plan's coordinates) must be kept;
    `others` counts the rest (other reading frames, frames across a CDS's ends or between
    CDS) and how many of them the filter kept. A chunk inside a CDS must have the frame of
    the CDS's reading frame among its frames."""
    from Bio import SeqIO

    fasta, sidecar = folder / "records.fasta", folder / "cds.tsv"
    genbank_to_fasta(gbff, fasta, sidecar)
    locations = {r.id: [(int(f.location.start), int(f.location.end), f.location.strand)
                        for f in r.features if f.type == "CDS"]
                 for r in SeqIO.parse(gbff, "genbank")}
    index = CdsIndex(sidecar)
    for block in iter_blocks(read_fasta(scan_fasta(fasta)), 300):
        rec_of_chunk = [info.id for info, a, b in zip(block.records, block.piece_chunks,
                                                      block.piece_chunks[1:], strict=False)
                        for _ in range(int(b - a))]
        for c in range(len(block.chunk_ids)):
            rid = rec_of_chunk[c]
            record = index.for_record(rid)
            codes = set()
            for f in range(int(block.chunk_frames[c]), int(block.chunk_frames[c + 1])):
                code = int(block.frame_code[f])
                codes.add(code)
                span = 3 * int(block.protein_length[f])
                # The codons: from the frame's start (F), or up to its end (R); the extra
                # base DNABERT-S gets is not a codon.
                first = int(block.frame_start[f]) if code < 3 else int(block.frame_end[f]) - span
                kept = record.contains(block.proteins[f])
                if _in_cds_frame(code, first, first + span, locations[rid]):
                    assert kept, block.frame_ids[f]
                    own[1 if code < 3 else -1] += 1
                else:
                    others[0] += 1
                    others[1] += kept
            expected = _chunk_frame(int(block.chunk_start[c]), int(block.chunk_end[c]),
                                    locations[rid])
            assert expected is None or expected in codes, block.chunk_ids[c]


def test_the_pipelines_frames_inside_a_cds_are_kept_and_other_frames_are_not(
        tmp_path: Path) -> None:
    own = {1: 0, -1: 0}  # frames in a CDS's own reading frame, per strand
    others = [0, 0]  # frames in other reading frames: seen, kept
    for name in ("viral.gbff", "others.gbff"):
        folder = tmp_path / name
        folder.mkdir()
        _frames_against_cds(DATA / "training" / name, folder, own, others)
    assert own[1] >= 10 and own[-1] >= 3, own  # the test saw CDS of both strands
    assert others[0] >= 10, others  # few: a 100-codon frame off a gene mostly has a stop
    assert others[1] == 0, others
