"""The published chunk layout (FIDELITY 1), pinned on its worked examples."""

import pytest

from virnucpro.chunking import chunk_id, chunk_spans

WORKED = [
    (300, 301, [(0, 300), (150, 301)]),
    (300, 400, [(0, 300), (199, 400)]),
    (300, 599, [(0, 300), (299, 599)]),
    (300, 601, [(0, 300), (200, 500), (400, 601)]),
    (300, 1000, [(0, 300), (249, 549), (498, 798), (747, 1000)]),
    (500, 501, [(0, 500), (250, 501)]),
    (500, 700, [(0, 500), (349, 700)]),
    (500, 1000, [(0, 500), (500, 1000)]),
    (500, 1100, [(0, 500), (366, 866), (732, 1100)]),
]


@pytest.mark.parametrize(("cs", "length", "spans"), WORKED)
def test_worked_examples_of_the_fidelity_table(cs, length, spans):
    assert chunk_spans(length, cs) == spans


def test_3001_bp_at_500_gives_seven_chunks_every_428():
    spans = chunk_spans(3001, 500)
    assert len(spans) == 7
    assert [s for s, _ in spans] == [428 * k for k in range(7)]
    assert spans[-1] == (2568, 3001)


@pytest.mark.parametrize("length", [1, 50, 299, 300])
def test_a_sequence_no_longer_than_the_chunk_is_one_unpadded_chunk(length):
    assert chunk_spans(length, 300) == [(0, length)]


@pytest.mark.parametrize("length", range(1, 3000, 37))
def test_chunks_cover_the_sequence_start_at_zero_and_end_at_its_end(length):
    for cs in (300, 500):
        spans = chunk_spans(length, cs)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert len(spans) == -(-length // cs)
        for (s0, e0), (s1, _e1) in zip(spans, spans[1:], strict=False):
            assert s1 <= e0  # no gap
            assert e0 - s0 == cs  # every chunk but the last is full


def test_empty_sequence_has_no_chunk():
    assert chunk_spans(0, 500) == []


def test_chunk_ids_count_from_one():
    assert chunk_id("contig7", 0) == "contig7_chunk_1"
    assert chunk_id("contig7", 2) == "contig7_chunk_3"
