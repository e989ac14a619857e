"""The submit dialog takes FASTQ as it takes FASTA: in the file tree's filter and in its checks."""

import bz2
from pathlib import Path

import pytest

from virnucpro.tui.submission import FormError, check_submission, is_fasta_name


@pytest.mark.parametrize(("name", "shown"), [
    ("reads.fastq", True), ("reads.fq", True), ("R1.FQ.GZ", True), ("R2.fastq.bz2", True),
    ("reads.fq.xz", True), ("contigs.fa.gz", True), ("notes.txt", False), ("reads.fq.zip", False),
    ("fastq", False),
])
def test_the_file_tree_shows_fasta_and_fastq_names_plain_or_compressed(name, shown):
    assert is_fasta_name(Path(name)) is shown


def test_a_fastq_input_passes_the_form_and_a_broken_one_is_reported(tmp_path):
    good = tmp_path / "R1.fq.bz2"
    good.write_bytes(bz2.compress(b"@r1 1:N:0:ACGT\nACGT\n+\nIIII\n"))
    sub = check_submission([str(good)], chunk_size=300, models="tiny", outdir="", priority="0",
                           name="")
    assert sub.inputs == (str(good),)
    broken = tmp_path / "R2.fastq"
    broken.write_text("@r1\nACGT\n+\nIII\n")
    with pytest.raises(FormError) as err:
        check_submission([str(broken)], chunk_size=300, models="tiny", outdir="", priority="0",
                         name="")
    assert err.value.problems == [f"{broken}, line 4, record 'r1': the quality line has 3 "
                                  "characters and the sequence 4: they must be the same length; "
                                  "multi-line FASTQ, with a sequence or quality wrapped over "
                                  "several lines, is not supported"]
