"""The block planner gives exactly the frames of the reference rules (chunking.py and
translation.py, FIDELITY 1-2), whatever the block size, and the records' flags and reasons."""

from __future__ import annotations

import random

import numpy as np
import pytest

from virnucpro.chunking import chunk_id, chunk_spans
from virnucpro.plan import EMPTY, FRAME_LETTERS, iter_blocks
from virnucpro.seqfile import SeqRecord
from virnucpro.translation import translate_six_frames


def _record(seq: str, rid: str = "r", original: str | None = None, index: int = 0) -> SeqRecord:
    return SeqRecord(index=index, id=rid, header=f"{rid} text", seq=seq.encode(),
                     original_id=original or rid)


def _reference(records, chunk_size: int, min_length: int = 1) -> list[tuple]:
    out = []
    for r in records:
        seq = r.seq.decode().upper().replace("U", "T")
        if not seq or len(seq) < min_length:
            continue
        for k, (s, e) in enumerate(chunk_spans(len(seq), chunk_size)):
            for f in translate_six_frames(seq[s:e], chunk_id(r.id, k), s):
                out.append((f.frame_id, f.strand, f.frame, f.start, f.end, f.nucleotides,
                            f.protein, len(f.protein)))
    return out


def _planned(records, chunk_size: int, **kw) -> list[tuple]:
    out = []
    for b in iter_blocks(records, chunk_size, **kw):
        for j in range(b.n_frames):
            code = FRAME_LETTERS[b.frame_code[j]]
            out.append((b.frame_ids[j], "+" if code[0] == "F" else "-", int(code[1]),
                        int(b.frame_start[j]), int(b.frame_end[j]), b.nucleotides[j],
                        b.proteins[j], int(b.protein_length[j])))
    return out


def _random_records(n: int, seed: int) -> list[SeqRecord]:
    rng = random.Random(seed)
    messy = "ACGT" * 8 + "acgtNRYU-.n"
    records = []
    for i in range(n):
        length = rng.choice([0, 1, 2, 3, 4, 5, 50, 149, 299, 300, 301, 499, 500, 501, 601, 1000,
                             3001, rng.randint(0, 4000)])
        letters = "ACGT" if rng.random() < 0.5 else messy
        records.append(_record("".join(rng.choice(letters) for _ in range(length)), f"r{i}",
                               index=i))
    return records


@pytest.mark.parametrize("chunk_size", [300, 500])
@pytest.mark.parametrize("blocks", [{}, {"block_bases": 700, "block_records": 3},
                                    {"block_bases": 301}])
def test_planned_frames_equal_the_reference_rules(chunk_size, blocks):
    records = _random_records(600, seed=chunk_size)
    expected = _reference(records, chunk_size)
    assert len(expected) > 300
    assert _planned(records, chunk_size, **blocks) == expected


def test_blocks_number_frames_on_and_split_long_records_by_whole_chunks():
    records = _random_records(50, seed=1) + [_record("ATGGCC" * 2000, "long", index=50)]
    blocks = list(iter_blocks(records, 300, block_bases=1000, frame0=17))
    assert [b.frame0 for b in blocks] == list(17 + np.cumsum([0] + [b.n_frames for b in blocks[:-1]]))
    pieces = [(b.records[p].id, int(b.piece_first_chunk[p]), bool(b.piece_last[p]))
              for b in blocks for p in range(len(b.records))]
    long = [p for p in pieces if p[0] == "long"]
    assert len(long) > 1 and long[0][1] == 0 and long[-1][2] and not any(p[2] for p in long[:-1])
    for b in blocks:  # each piece of it covers about a block's bases, not the whole record
        for p, r in enumerate(b.records):
            lo, hi = b.piece_chunks[p], b.piece_chunks[p + 1]
            if r.id == "long":
                assert b.chunk_end[hi - 1] - b.chunk_start[lo] <= 1000 + 300


def test_records_are_flagged_short_renamed_and_rna():
    [block] = iter_blocks([_record("ACGU" * 10, "r_2", "r")], 500)
    info = block.records[0]
    assert info.flags == ("short", "renamed_from:r", "rna")
    assert block.n_frames and all("U" not in n for n in block.nucleotides)


def test_empty_and_too_short_records_are_left_unchunked_with_a_reason():
    [block] = iter_blocks([_record(""), _record("ACGT" * 10, "b", index=1)], 500, min_length=100)
    assert [r.unscored_reason for r in block.records] == [EMPTY, "shorter than --min-length 100"]
    assert [r.n_chunks for r in block.records] == [0, 0] and block.n_frames == 0
