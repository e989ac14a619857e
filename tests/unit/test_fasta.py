"""The validating first pass and the streaming reader."""

import bz2
import gzip
import io
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


def ids_of(index):
    return [r.id for r in read_fasta(index)]


def lengths_of(index):
    return [len(r.seq) for r in read_fasta(index)]


def _write(tmp_path, text, name="in.fasta"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_wrapped_lines_crlf_and_lower_case_are_read_as_one_sequence(tmp_path):
    path = _write(tmp_path, ">a first one\r\nacgt\r\nNNRY\r\n\r\n>b\nAC GT\n")
    index = scan_fasta(path)
    assert ids_of(index) == ["a", "b"] and lengths_of(index) == [8, 4]
    assert (index.n_records, index.total_bp) == (2, 12)
    records = list(read_fasta(index))
    assert records[0].seq == b"acgtNNRY" and records[0].header == "a first one"
    assert records[1].seq == b"ACGT"
    assert [r.id for r in read_fasta(index, start=1)] == ["b"]  # a resumed run reads past


@pytest.mark.parametrize("opener,suffix", [(gzip.open, ".gz"), (bz2.open, ".bz2"), (lzma.open, ".xz")])
def test_compressed_inputs_are_detected_by_content(tmp_path, opener, suffix):
    raw = (DATA / "viral_reference.fasta").read_bytes()
    path = tmp_path / ("input" + suffix)
    with opener(path, "wb") as fh:
        fh.write(raw)
    plain = scan_fasta(DATA / "viral_reference.fasta")
    packed = scan_fasta(path)
    assert ids_of(packed) == ids_of(plain) and lengths_of(packed) == lengths_of(plain)
    assert packed.compression != "none" and plain.compression == "none"
    # The name does not matter: the same file renamed to .fasta still reads.
    renamed = path.rename(tmp_path / "misnamed.fasta")
    assert ids_of(scan_fasta(renamed)) == ids_of(plain)


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="empty"):
        scan_fasta(_write(tmp_path, ""))


def test_text_without_a_header_is_refused_with_its_line(tmp_path):
    with pytest.raises(InputError, match="line 2.*no FASTA or FASTQ header"):
        scan_fasta(_write(tmp_path, "\nACGT\n>a\nACGT\n"))


def test_protein_sequence_is_refused_and_called_protein(tmp_path):
    path = _write(tmp_path, ">ok\nACGT\n>prot1 some protein\nMKLVFFEPQ\n")
    with pytest.raises(InputError, match="prot1.*looks like a protein") as info:
        scan_fasta(path)
    assert info.value.record_id == "prot1"


def test_digits_in_a_sequence_are_refused_as_non_nucleotide(tmp_path):
    with pytest.raises(InputError, match="'1'.*nucleotide codes"):
        scan_fasta(_write(tmp_path, ">a\nACGT 1 ACGT\n"))


def test_binary_data_is_refused(tmp_path):
    with pytest.raises(InputError, match="binary"):
        scan_fasta(_write(tmp_path, b">a\nAC\x00\x01GT\n"))
    with pytest.raises(InputError, match="binary"):
        scan_fasta(_write(tmp_path, bytes(range(256)) * 4, name="b.bin"))


def test_corrupt_gzip_is_refused(tmp_path):
    data = gzip.compress(b">a\n" + b"ACGT" * 10000)
    with pytest.raises(InputError):
        scan_fasta(_write(tmp_path, data[: len(data) // 2], name="cut.fa.gz"))


def test_all_duplicate_ids_are_named(tmp_path):
    path = _write(tmp_path, ">a\nAC\n>b\nAC\n>a\nAC\n>c\nA\n>b x\nA\n")
    with pytest.raises(DuplicateIdError) as info:
        scan_fasta(path)
    assert info.value.ids == ["a", "b"]
    assert "'a'" in str(info.value) and "'b'" in str(info.value) and "--rename-duplicates" in str(info.value)


def test_rename_duplicates_suffixes_later_copies_without_collisions(tmp_path):
    path = _write(tmp_path, ">a\nAC\n>a\nAC\n>a_2\nAC\n>a\nAC\n")
    index = scan_fasta(path, rename_duplicates=True)
    records = list(read_fasta(index))
    assert [r.id for r in records] == ["a", "a_3", "a_2", "a_4"]
    assert [r.renamed for r in records] == [False, True, False, True]
    assert records[1].original_id == "a"


def test_a_record_without_sequence_is_accepted(tmp_path):
    index = scan_fasta(_write(tmp_path, ">empty\n>b\nACGT\n"))
    assert lengths_of(index) == [0, 4]


def test_a_header_without_id_is_refused(tmp_path):
    with pytest.raises(InputError, match="line 3.*no sequence id"):
        scan_fasta(_write(tmp_path, ">a\nAC\n>   \nAC\n"))


def test_stdin_is_spooled_to_a_file(tmp_path):
    from virnucpro.spool import spool_input

    path = spool_input(tmp_path, io.BytesIO(b">s\nACGT\n"))
    assert ids_of(scan_fasta(path)) == ["s"]


def test_index_records_size_and_hash(tmp_path):
    path = _write(tmp_path, ">a\nACGT\n")
    index = scan_fasta(path)
    import hashlib

    assert index.sha256 == hashlib.sha256(b">a\nACGT\n").hexdigest() and index.size == 8


def test_old_mac_line_ends_and_a_byte_order_mark_are_read(tmp_path):
    index = scan_fasta(_write(tmp_path, b"\xef\xbb\xbf>a\rACGT\rAC\r>b\rGGCC\r"))
    assert ids_of(index) == ["a", "b"] and lengths_of(index) == [6, 4]


def test_gzip_with_a_corrupt_body_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="corrupt"):
        scan_fasta(_write(tmp_path, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-garbage",
                          name="bad.fa.gz"))


def test_duplicates_are_found_among_many_records(tmp_path):
    lines = [f">r{i}\nACGT\n" for i in range(5000)] + [">r17\nA\n", ">r4242 again\nA\n"]
    with pytest.raises(DuplicateIdError) as info:
        scan_fasta(_write(tmp_path, "".join(lines)))
    assert info.value.ids == ["r17", "r4242"]


@pytest.mark.parametrize(("chunk_size", "min_length"), [(300, 1), (500, 1), (500, 450)])
def test_the_first_pass_counts_the_chunks_the_planner_will_make(tmp_path, chunk_size, min_length):
    from virnucpro.plan import iter_blocks

    text = ">empty\n\n>short\nACGT\n>edge\n" + "A" * 500 + "\n>long\n" + "ACGTN" * 301 + "\n"
    for path in (_write(tmp_path, text), DATA / "viral_reference.fasta"):
        index = scan_fasta(path, chunk_size=chunk_size, min_length=min_length)
        planned = sum(len(block.chunk_ids) for block in iter_blocks(
            read_fasta(index), chunk_size, min_length))
        assert index.n_chunks == planned > 0
    assert scan_fasta(path).n_chunks is None


def test_an_id_over_1000_characters_is_refused_with_its_record_named(tmp_path):
    # Issue 15: a 200,000-character first word was taken and repeated in every row.
    path = _write(tmp_path, ">ok\nACGT\n>" + "x" * 200_000 + " a description\nACGT\n")
    with pytest.raises(InputError) as err:
        scan_fasta(path)
    assert "line 3" in str(err.value) and "record 'xxxxxxxx" in str(err.value)
    assert "200,000 characters; at most 1,000" in str(err.value)
    assert len(str(err.value)) < 400  # the id is named shortened, not repeated whole
    with pytest.raises(InputError, match="at most 1,000"):  # the first bytes tell already
        sniff_fasta(path)
    edge = _write(tmp_path, ">" + "y" * MAX_ID_LENGTH + " " + "d" * 50_000 + "\nACGT\n", "edge.fa")
    assert scan_fasta(edge).n_records == 1  # a 1,000-character id and a long description pass


def test_sniffing_the_first_bytes_gives_predicts_errors(tmp_path):
    cases = {"empty.fa": (b"", "the input is empty"),
             "protein.fa": (b">p\nMKLVEFILPQ\n", "looks like a protein"),
             "binary.fa": (b"\x00\x01\x02\x03PK", "binary data"),
             "notes.fa": (b"hello\n", "no FASTA or FASTQ header")}
    for name, (data, message) in cases.items():
        path = _write(tmp_path, data, name)
        for check in (sniff_fasta, check_fasta, scan_fasta):
            with pytest.raises(InputError, match=message):
                check(path)
    with pytest.raises(InputError, match="is a folder, not a FASTA or FASTQ file"):
        sniff_fasta(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        check_fasta(tmp_path / "missing.fa")
    # Past the head nothing is read: a protein after 64 KiB of good records passes the sniff;
    # check_fasta reads a file under its limit whole, as does the job.
    late = _write(tmp_path, ">a\n" + "ACGT" * 20_000 + "\n>p\nMKLVEF\n", "late.fa")
    sniff_fasta(late)
    assert check_fasta(late, whole_limit=10) is False
    with pytest.raises(InputError, match="protein"):
        check_fasta(late)
    dups = _write(tmp_path, ">a\nACGT\n>a\nACGT\n", "dups.fa")
    sniff_fasta(dups)  # duplicates need the whole file
    with pytest.raises(DuplicateIdError):
        check_fasta(dups)
    assert check_fasta(dups, rename_duplicates=True) is True
    gz = tmp_path / "ok.fa.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(b">a\nACGT\n")
    assert check_fasta(gz) is True


def test_sniffing_passes_wherever_the_window_cuts_a_good_fasta(tmp_path):
    # Also right after a '>' (nothing of that header read yet): not "a header with no id".
    path = _write(tmp_path, "".join(f">r{i} d\nACGTN\n{'A' * i}\n" for i in range(20)))
    for head in range(1, path.stat().st_size):
        sniff_fasta(path, head_bytes=head)
    with pytest.raises(InputError, match="no sequence id"):
        sniff_fasta(_write(tmp_path, ">a\nACGT\n>  \nACGT\n" + "A" * 70_000, "noid.fa"))
