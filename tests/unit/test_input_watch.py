"""An input that changes between the validating pass and the scoring pass is noticed: by its
size and modification time, and by the SHA-256 of the bytes the second pass read (issue 24,
item 2); the places and bytes of input errors and headers (item 3)."""

from __future__ import annotations

import gzip
import hashlib
import os

import pytest

from virnucpro.errors import InputChangedError, InputError
from virnucpro.seqfile import read_fasta, scan_fasta, sniff_fasta

FASTQ = b"@r1\nACGTACGT\n+\nIIIIIIII\n@r2\nGGGGCCCC\n+\nIIIIIIII\n"


def test_the_first_pass_hashes_the_bytes_it_reads(tmp_path):
    path = tmp_path / "in.fq.gz"
    path.write_bytes(gzip.compress(FASTQ))
    index = scan_fasta(path)
    assert index.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert index.size == path.stat().st_size and index.mtime_ns == path.stat().st_mtime_ns


def test_records_appended_after_validation_fail_the_read_naming_the_change(tmp_path):
    path = tmp_path / "in.fq"
    path.write_bytes(FASTQ)
    index = scan_fasta(path)
    with open(path, "ab") as fh:
        fh.write(b"@r1\nACGT\n+\nIIII\n")  # a duplicate id, never validated
    records = read_fasta(index)
    assert [next(records).id, next(records).id, next(records).id] == ["r1", "r2", "r1"]
    with pytest.raises(InputChangedError, match=r"size went from 48 to 64 bytes") as err:
        next(records)
    assert err.value.exit_code == 12 and err.value.code == "input_changed"


def test_a_rewrite_of_the_same_size_and_time_is_caught_by_the_hash(tmp_path):
    path = tmp_path / "in.fq"
    path.write_bytes(FASTQ)
    index = scan_fasta(path)
    st = path.stat()
    path.write_bytes(FASTQ.replace(b"GGGGCCCC", b"TTTTAAAA"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(InputChangedError, match="SHA-256") as err:
        list(read_fasta(index))
    assert "size" not in str(err.value) and "modified" not in str(err.value)


def test_an_unchanged_input_reads_through_and_a_change_can_be_handed_on(tmp_path):
    path = tmp_path / "in.fq"
    path.write_bytes(FASTQ)
    index = scan_fasta(path)
    assert [r.id for r in read_fasta(index)] == ["r1", "r2"]
    assert [r.id for r in read_fasta(index, start=1)] == ["r2"]
    path.write_bytes(FASTQ + FASTQ.replace(b"@r", b"@s"))
    seen: list[InputChangedError] = []
    assert [r.id for r in read_fasta(index, on_change=seen.append)] == ["r1", "r2", "s1", "s2"]
    assert len(seen) == 1 and "size went from 48 to 96 bytes" in str(seen[0])


def test_a_record_cut_by_a_writer_is_reported_as_a_change_not_as_bad_input(tmp_path):
    path = tmp_path / "in.fq"
    path.write_bytes(FASTQ)
    index = scan_fasta(path)
    with open(path, "ab") as fh:
        fh.write(b"@r3\nACGT\n")  # a writer half-way through a record
    with pytest.raises(InputChangedError) as err:
        list(read_fasta(index))
    assert isinstance(err.value.__cause__, InputError)  # what the parser said, kept


# -- item 3: places and bytes ------------------------------------------------------------


@pytest.mark.parametrize("text,line", [
    (b">ok\nACGT\n>p1 protein\nACGTAC\nACGT\nMKLVEF\n", 6),  # FASTA: the third sequence line
    (b">p1\n\nACGTNNMKLV\n", 3),  # after a blank line
    (b"@ok\nACGT\n+\nIIII\n@p1\nMKLV\n+\nIIII\n", 6),  # FASTQ: the sequence line
])
def test_a_bad_letter_is_placed_on_its_own_line(tmp_path, text, line):
    path = tmp_path / "in.txt"
    path.write_bytes(text)
    for check in (scan_fasta, sniff_fasta):
        with pytest.raises(InputError, match="protein") as err:
            check(path)
        assert (err.value.line, err.value.record_id) == (line, "p1"), check
    path.write_bytes(gzip.compress(text))  # read again, decompressed, to find the line
    with pytest.raises(InputError) as err:
        scan_fasta(path)
    assert err.value.line == line


def test_a_header_keeps_its_bytes_through_the_read(tmp_path):
    path = tmp_path / "in.fa"
    path.write_bytes(b">s1 Caf\xe9 souche\nACGT\n")  # Latin-1
    (record,) = read_fasta(scan_fasta(path))
    assert record.raw_header == b"s1 Caf\xe9 souche" and record.id == "s1"
