"""FASTQ input: the same first pass, reader and checks as FASTA, told apart by content."""

import bz2
import gzip
import lzma

import pytest

from tests.helpers import DATA
from virnucpro.errors import DuplicateIdError, InputError
from virnucpro.seqfile import (
    MAX_ID_LENGTH,
    check_fasta,
    read_fasta,
    scan_fasta,
    sniff_fasta,
)

GOOD = (
    "@r1 first read\nACGTNRY\n+\nIIII@+!\n"
    "@r2\nacguu\n+r2\n+@III\n"  # lowercase and U kept; '+' repeats the header; a quality may start with '+'
    "@r3 x y\n\n+r3 x y\n\n"  # an empty read
)


def _write(tmp_path, text, name="in.fastq"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _refused(tmp_path, text, name="in.fastq"):
    with pytest.raises(InputError) as info:
        scan_fasta(_write(tmp_path, text, name))
    return info.value


def _as_fastq(fasta_path, out_path):
    """The records of a FASTA file as four-line FASTQ records, with made-up qualities."""
    text = fasta_path.read_text()
    parts = []
    for block in text.split(">")[1:]:
        header, _, body = block.partition("\n")
        seq = "".join(body.split())
        quals = "".join(chr(33 + i % 41) for i in range(len(seq)))
        parts.append(f"@{header}\n{seq}\n+\n{quals}\n")
    out_path.write_text("".join(parts))
    return out_path


def test_fastq_records_keep_ids_descriptions_qualities_and_case(tmp_path):
    index = scan_fasta(_write(tmp_path, GOOD))
    assert (index.format, index.n_records, index.total_bp) == ("fastq", 3, 12)
    records = list(read_fasta(index))
    assert [r.id for r in records] == ["r1", "r2", "r3"]
    assert [r.header for r in records] == ["r1 first read", "r2", "r3 x y"]
    assert [r.seq for r in records] == [b"ACGTNRY", b"acguu", b""]
    assert [r.quality for r in records] == [b"IIII@+!", b"+@III", b""]
    assert [r.id for r in read_fasta(index, start=2)] == ["r3"]


def test_fasta_records_have_no_quality_and_their_index_says_fasta(tmp_path):
    index = scan_fasta(_write(tmp_path, ">a\nACGT\n", "in.fa"))
    assert index.format == "fasta"
    assert [r.quality for r in read_fasta(index)] == [None]


def test_a_quality_of_another_length_is_refused_with_both_lengths(tmp_path):
    err = _refused(tmp_path, "@ok\nAC\n+\nII\n@r2 d\nACGTA\n+\nIIII\n@r3\nA\n+\nI\n")
    assert (err.line, err.record_id) == (8, "r2")
    assert "quality line has 4 characters and the sequence 5" in str(err)
    assert "multi-line FASTQ" in str(err)  # shorter: maybe wrapped
    longer = _refused(tmp_path, "@r1\nAC\n+\nIII\n")
    assert (longer.line, longer.record_id) == (4, "r1")
    assert "3 characters and the sequence 2" in str(longer)


def test_a_missing_plus_line_is_refused_saying_what_was_found(tmp_path):
    err = _refused(tmp_path, "@r1\nACGT\nIIII\n@r2\nA\n+\nI\n")
    assert (err.line, err.record_id) == (3, "r1")
    assert "'+' line is missing: found 'IIII'" in str(err)
    assert "multi-line" not in str(err)
    wrapped = _refused(tmp_path, "@r1\nACGT\nACGT\n+\nIIII\nIIII\n")
    assert (wrapped.line, wrapped.record_id) == (3, "r1")
    assert "found 'ACGT'" in str(wrapped) and "multi-line FASTQ" in str(wrapped)
    blank = _refused(tmp_path, "@r1\nACGT\n\nIIII\n")
    assert blank.line == 3 and "found an empty line" in str(blank)


def test_a_plus_line_naming_another_record_is_refused_naming_both(tmp_path):
    err = _refused(tmp_path, "@r1 sample A\nACGT\n+r2\nIIII\n")
    assert (err.line, err.record_id) == (3, "r1")
    assert "'r2'" in str(err) and "'r1 sample A'" in str(err)


def test_a_line_after_the_quality_that_is_no_header_is_refused(tmp_path):
    err = _refused(tmp_path, "@r1\nACGT\n+\nIIII\nIIII\n@r2\nA\n+\nI\n")
    assert (err.line, err.record_id) == (5, "r1")
    assert "found 'IIII'" in str(err) and "four lines" in str(err)


@pytest.mark.parametrize(("tail", "line", "after", "missing"), [
    ("@r2 d\n", 5, "its header", "the sequence, '+' and quality lines"),
    ("@r2 d\nACGT\n", 6, "its sequence line", "the '+' and quality lines"),
    ("@r2 d\nACGT\n+\n", 7, "its '+' line", "the quality line"),
])
@pytest.mark.parametrize("end", ["", "\n\n", "\r\n"])
def test_a_truncated_last_record_names_what_is_missing(tmp_path, tail, line, after, missing, end):
    err = _refused(tmp_path, "@r1\nACGT\n+\nIIII\n" + tail + end)
    assert (err.line, err.record_id) == (line, "r2")
    assert f"truncated record: the input ends after {after}; missing: {missing}" in str(err)


def test_a_fasta_record_in_a_fastq_file_is_refused_as_a_mix(tmp_path):
    err = _refused(tmp_path, "@r1\nACGT\n+\nIIII\n>f1 a FASTA one\nACGT\n")
    assert (err.line, err.record_id) == (5, "f1")
    assert "a FASTA record in a FASTQ file" in str(err) and "mixing FASTA and FASTQ" in str(err)


@pytest.mark.parametrize(("text", "line", "what"), [
    (">f1\nACGT\n@r1\nACGT\n+\nIIII\n", 3, "'@r1' is a FASTQ header"),
    (">f1\nACGT\n+\nIIII\n", 3, "'+' is a FASTQ '+' line"),
])
def test_a_fastq_record_in_a_fasta_file_is_refused_as_a_mix(tmp_path, text, line, what):
    err = _refused(tmp_path, text, "in.fa")
    assert (err.line, err.record_id) == (line, "f1")
    assert "a FASTQ record inside a FASTA file" in str(err) and what in str(err)
    assert "mixing FASTA and FASTQ" in str(err) and "nucleotide codes" not in str(err)


def test_binary_empty_and_blank_inputs_are_refused(tmp_path):
    err = _refused(tmp_path, b"@r1\nAC\x00T\n+\nIIII\n")
    assert (err.line, err.record_id) == (2, "r1") and "binary data" in str(err)
    assert "binary" in str(_refused(tmp_path, b"@r1\nACGT\n+\nII\x01I\n"))
    assert "no FASTA or FASTQ record found" in str(_refused(tmp_path, ""))
    assert "no FASTA or FASTQ record found" in str(_refused(tmp_path, "\n \r\n\n"))


def test_protein_letters_are_refused_with_the_fasta_words(tmp_path):
    err = _refused(tmp_path, "@ok\nACGT\n+\nIIII\n@p1 protein\nMKLVEFQ\n+\nIIIIIII\n")
    assert (err.line, err.record_id) == (6, "p1")  # the sequence line, not the header
    assert "looks like a protein" in str(err)
    digits = _refused(tmp_path, "@d1\nAC1T\n+\nIIII\n")
    assert digits.record_id == "d1" and "'1'" in str(digits) and "nucleotide codes" in str(digits)


def test_an_over_long_id_is_refused_and_a_header_without_id_too(tmp_path):
    long_id = "x" * (MAX_ID_LENGTH + 1)
    err = _refused(tmp_path, f"@ok\nA\n+\nI\n@{long_id} d\nACGT\n+\nIIII\n")
    assert err.line == 5 and "1,001 characters; at most 1,000" in str(err)
    assert len(str(err)) < 400
    assert scan_fasta(_write(tmp_path, f"@{'y' * MAX_ID_LENGTH}\nA\n+\nI\n", "edge.fq")).n_records == 1
    noid = _refused(tmp_path, "@ok\nA\n+\nI\n@  \nACGT\n+\nIIII\n")
    assert noid.line == 5 and "no sequence id" in str(noid)


def test_duplicate_ids_are_refused_with_the_generic_way_out(tmp_path):
    with pytest.raises(DuplicateIdError) as info:
        scan_fasta(_write(tmp_path, "@a\nA\n+\nI\n@b\nA\n+\nI\n@c\nA\n+\nI\n@a x\nC\n+\nI\n"))
    assert info.value.ids == ["a"] and info.value.hint is None
    assert "(use --rename-duplicates to suffix them instead)" in str(info.value)


def test_rename_duplicates_suffixes_later_copies_and_keeps_qualities(tmp_path):
    path = _write(tmp_path, "@a\nA\n+\nI\n@a\nC\n+\nJ\n@a_2\nG\n+\nK\n")
    records = list(read_fasta(scan_fasta(path, rename_duplicates=True)))
    assert [r.id for r in records] == ["a", "a_3", "a_2"]
    assert [r.quality for r in records] == [b"I", b"J", b"K"]


@pytest.mark.parametrize("text", [
    # Casava 1.8, R1 then R2 in one file: the mates are not next to each other.
    "@M01:1:FC:1:1:1:1 1:N:0:ACGT\nACGT\n+\nIIII\n@M01:1:FC:1:1:1:2 1:N:0:ACGT\nACGT\n+\nIIII\n"
    "@M01:1:FC:1:1:1:1 2:N:0:ACGT\nTTTT\n+\nIIII\n@M01:1:FC:1:1:1:2 2:N:0:ACGT\nTTTT\n+\nIIII\n",
    # Interleaved mates with bare headers: each pair in consecutive records.
    "@p1\nACGT\n+\nIIII\n@p1\nTTTT\n+\nIIII\n@p2\nACGT\n+\nIIII\n@p2\nTTTT\n+\nIIII\n",
])
def test_paired_mates_sharing_their_first_word_get_the_way_out(tmp_path, text):
    with pytest.raises(DuplicateIdError) as info:
        scan_fasta(_write(tmp_path, text))
    message = str(info.value)
    assert len(info.value.ids) == 2 and info.value.hint is not None
    assert "mates of paired reads" in message and "separate files" in message
    assert "--rename-duplicates" in message
    assert scan_fasta(_write(tmp_path, text, "again.fq"), rename_duplicates=True).n_records == 4


def test_consecutive_duplicates_in_fasta_keep_the_generic_message(tmp_path):
    with pytest.raises(DuplicateIdError) as info:
        scan_fasta(_write(tmp_path, ">p1\nACGT\n>p1\nTTTT\n", "in.fa"))
    assert info.value.hint is None and "mates" not in str(info.value)


@pytest.mark.parametrize("opener", [gzip.open, bz2.open, lzma.open])
def test_compressed_fastq_is_recognised_by_content_whatever_its_name(tmp_path, opener):
    path = tmp_path / "reads.fasta"  # the name says FASTA and plain: neither matters
    with opener(path, "wb") as fh:
        fh.write(GOOD.encode())
    index = scan_fasta(path)
    assert index.format == "fastq" and index.compression != "none"
    assert [r.quality for r in read_fasta(index)] == [b"IIII@+!", b"+@III", b""]
    assert check_fasta(path) is True
    sniff_fasta(path)


@pytest.mark.parametrize("end", ["\r\n", "\r"])
def test_crlf_and_cr_line_ends_and_a_byte_order_mark_are_read(tmp_path, end):
    text = "\ufeff" + GOOD.replace("\n", end)
    records = list(read_fasta(scan_fasta(_write(tmp_path, text.encode()))))
    assert [r.seq for r in records] == [b"ACGTNRY", b"acguu", b""]
    assert [r.quality for r in records] == [b"IIII@+!", b"+@III", b""]


def test_blank_lines_before_between_and_after_records_are_tolerated(tmp_path):
    text = "\n\n@r1\nACGT\n+\nIIII\n\n\n@r2\nGG\n+\nII\n\n \n"
    index = scan_fasta(_write(tmp_path, text))
    assert [r.id for r in read_fasta(index)] == ["r1", "r2"] and index.total_bp == 6
    # Errors then name the line as counted in the file, blank lines included.
    assert _refused(tmp_path, "\n\n@r1\nACGT\n+\nIII\n").line == 6


def test_sniffing_a_fastq_larger_than_the_window_tolerates_the_cut_record(tmp_path):
    reads = [f"@read{i} d\n{'ACGT' * 40}\n+read{i} d\n{'I' * 160}\n" for i in range(600)]
    records = "".join(reads)
    path = _write(tmp_path, records + "@p1\nMKLVEF\n+\nIIIIII\n")
    assert path.stat().st_size > 64 * 1024
    sniff_fasta(path)  # the 64 KiB window ends inside a record, and the protein is past it
    assert check_fasta(path, whole_limit=1000) is False
    with pytest.raises(InputError, match="protein"):
        check_fasta(path)
    # Wherever the window ends (in a header, a sequence, a '+' or a quality line), it passes.
    small = _write(tmp_path, records[:2000].replace("\n", "\r\n"), "small.fq")
    for head in range(1, 1990):
        sniff_fasta(small, head_bytes=head)
    # ...and what was read is checked: a fault before the cut is found.
    bad = _write(tmp_path, "@a\nACGT\n+\nIII\n" + records, "bad.fq")
    with pytest.raises(InputError, match="quality line has 3 characters") as info:
        sniff_fasta(bad)
    assert (info.value.line, info.value.record_id) == (4, "a")
    start = "".join(reads[:180])
    assert 60_000 < len(start) < 64 * 1024
    cut_protein = _write(tmp_path, start + "@p1\n" + "MKLVEF" * 2000, "cut.fq")
    with pytest.raises(InputError, match="protein"):
        sniff_fasta(cut_protein)  # the cut record's sequence is checked as far as it was read


def test_check_fasta_checks_a_small_fastq_whole(tmp_path):
    dups = _write(tmp_path, "@a\nACGT\n+\nIIII\n@a\nACGT\n+\nIIII\n")
    sniff_fasta(dups)  # duplicates need the whole file
    with pytest.raises(DuplicateIdError, match="mates"):
        check_fasta(dups)
    assert check_fasta(dups, rename_duplicates=True) is True
    with pytest.raises(InputError, match="truncated record"):
        check_fasta(_write(tmp_path, "@a\nACGT\n+\nIIII\n@b\nAC\n", "cut.fq"))
    with pytest.raises(InputError, match="is a folder, not a FASTA or FASTQ file"):
        check_fasta(tmp_path)


@pytest.mark.parametrize("name", ["viral_reference.fasta", "nonviral_reference.fasta"])
def test_the_same_records_as_fasta_and_as_fastq_give_the_same_figures(tmp_path, name):
    fasta = DATA / name
    fastq = _as_fastq(fasta, tmp_path / "same.fastq")
    a = scan_fasta(fasta, chunk_size=300)
    q = scan_fasta(fastq, chunk_size=300)
    assert (a.format, q.format) == ("fasta", "fastq")
    assert (q.n_records, q.total_bp, q.n_chunks) == (a.n_records, a.total_bp, a.n_chunks)
    assert a.n_chunks > a.n_records > 1
    fa, fq = list(read_fasta(a)), list(read_fasta(q))
    assert [(r.id, r.header, r.seq) for r in fq] == [(r.id, r.header, r.seq) for r in fa]
    assert all(len(r.quality) == len(r.seq) for r in fq)
