"""GenBank input of training: the format told by content, the conversion to FASTA plus the CDS
sidecar, its refusals, and the committed fixtures (remade byte for byte by their script)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA
from tests.make_training_fixtures import MIN_ORF_NT, NOTE, find_orfs, genbank_id, read_fasta_text
from virnucpro.errors import InputError
from virnucpro.seqfile import read_fasta, scan_fasta
from virnucpro.training.cds import SIDECAR_HEADER
from virnucpro.training.genbank import genbank_to_fasta, sniff_format

TRAINING = DATA / "training"
FIXTURES = ("viral.gbff", "others.gbff", "unannotated.gbff")
REPO = Path(__file__).resolve().parents[2]


def _gzip(src: Path, dst: Path) -> Path:
    dst.write_bytes(gzip.compress(src.read_bytes()))
    return dst


def _convert(path: Path, tmp_path: Path):
    fasta, cds = tmp_path / "records.fasta", tmp_path / "cds.tsv"
    summary = genbank_to_fasta(path, fasta, cds)
    return summary, fasta, cds


def _sidecar(cds: Path) -> dict[str, list[str]]:
    lines = cds.read_text().splitlines(keepends=True)
    assert lines[0] == SIDECAR_HEADER
    out = {}
    for line in lines[1:]:
        rid, proteins = line.rstrip("\n").split("\t")
        out[rid] = proteins.split()
    return out


def _biopython_cds(path: Path) -> dict[str, list[str]]:
    from Bio import SeqIO

    return {r.id: [f.qualifiers["translation"][0] for f in r.features if f.type == "CDS"]
            for r in SeqIO.parse(path, "genbank")}


def _write_genbank(path: Path, cds: list[dict], seq: str = "ATG" + "GCT" * 60 + "TAA") -> Path:
    """One record NC_000001.1 whose CDS features have the given qualifiers."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import SeqFeature, SimpleLocation
    from Bio.SeqRecord import SeqRecord

    record = SeqRecord(Seq(seq), id="NC_000001.1", name="NC_000001", description="test record")
    record.annotations["molecule_type"] = "DNA"
    for qualifiers in cds:
        record.features.append(SeqFeature(SimpleLocation(0, len(seq), strand=1), type="CDS",
                                          qualifiers=qualifiers))
    SeqIO.write([record], path, "genbank")
    return path


# --- the format, told by content ---


@pytest.mark.parametrize("compressed", [False, True])
def test_genbank_fasta_and_fastq_are_told_by_content_plain_or_gzipped(tmp_path: Path,
                                                                      compressed: bool) -> None:
    fastq = tmp_path / "reads.fastq"
    fastq.write_text("@r1\nACGT\n+\nIIII\n")
    # The names lie: only the content counts.
    files = {"genbank": tmp_path / "a.fasta", "fasta": tmp_path / "b.gbff",
             "fastq": tmp_path / "c.txt"}
    files["genbank"].write_bytes((TRAINING / "viral.gbff").read_bytes())
    files["fasta"].write_bytes((DATA / "viral_reference.fasta").read_bytes())
    files["fastq"].write_bytes(fastq.read_bytes())
    for kind, path in files.items():
        if compressed:
            path = _gzip(path, path.with_name(path.name + ".z"))
        assert sniff_format(path) == kind


def test_the_committed_gzipped_fixture_is_sniffed_as_genbank() -> None:
    assert sniff_format(TRAINING / "others.gbff.gz") == "genbank"


def test_a_genbank_release_header_before_the_first_locus_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "gbvrl1.seq"
    path.write_text("GBVRL1.SEQ          Genetic Sequence Data Bank\n\n"
                    + (TRAINING / "others.gbff").read_text())
    assert sniff_format(path) == "genbank"
    summary, _fasta, _cds = _convert(path, tmp_path)
    assert summary.records == 1


@pytest.mark.parametrize("text", ["", "\n \n", "hello world\n"])
def test_an_empty_or_unknown_file_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odd.txt"
    path.write_text(text)
    with pytest.raises(InputError, match="empty|neither GenBank") as err:
        sniff_format(path)
    assert str(path) in str(err.value)


# --- the conversion ---


def test_the_fixtures_give_back_the_sequences_of_tests_data(tmp_path: Path) -> None:
    got = {}
    for name in FIXTURES:
        out = tmp_path / name
        out.mkdir()
        _summary, fasta, _cds = _convert(TRAINING / name, out)
        for record in read_fasta(scan_fasta(fasta)):
            got[record.id] = (record.header, record.seq)
    expected = {}
    for source in ("viral_reference.fasta", "nonviral_reference.fasta"):
        for fasta_id, description, bases in read_fasta_text(DATA / source):
            rid = genbank_id(fasta_id)
            expected[rid] = (f"{rid} {description}", bases.encode())
    assert got == expected
    assert "NC_001802.1" in got  # the 'gi|...|ref|NC_001802.1|' header's accession


def test_the_sidecar_lists_each_records_cds_translations_in_order(tmp_path: Path) -> None:
    summary, fasta, cds = _convert(TRAINING / "viral.gbff", tmp_path)
    sidecar = _sidecar(cds)
    assert sidecar == _biopython_cds(TRAINING / "viral.gbff")
    assert list(sidecar) == [r.id for r in read_fasta(scan_fasta(fasta))]
    assert summary.records == 3 and summary.cds == sum(map(len, sidecar.values())) == 10
    assert summary.bases == 5386 + 9181 + 1410
    assert summary.n_records_without_cds == 0 and summary.records_without_cds == ()


def test_a_compressed_genbank_converts_like_the_plain_one(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "gz").mkdir()
    plain = _convert(TRAINING / "others.gbff", tmp_path / "plain")
    packed = _convert(TRAINING / "others.gbff.gz", tmp_path / "gz")
    assert plain[1].read_bytes() == packed[1].read_bytes()
    assert plain[2].read_bytes() == packed[2].read_bytes()
    assert packed[0].cds == 6


def test_records_without_cds_translations_are_reported_by_id(tmp_path: Path) -> None:
    summary, _fasta, cds = _convert(TRAINING / "unannotated.gbff", tmp_path)
    ids = ("KF527485.1", "X55053.1", "X62281.1", "M81224.1", "AJ237582.1", "L31939.1",
           "AF297471.1")
    assert summary.records_without_cds == ids
    assert summary.n_records_without_cds == 7 and summary.cds == 0
    assert _sidecar(cds) == {rid: [] for rid in ids}


def test_pseudo_cds_and_cds_without_translation_are_skipped_and_counted(tmp_path: Path) -> None:
    protein = "M" + "A" * 60
    path = _write_genbank(tmp_path / "one.gbff", [
        {"translation": [protein]},
        {"translation": ["MKKK"], "pseudo": [""]},
        {"note": ["no translation"]},
        {"translation": ["MRRR"], "pseudogene": ["unknown"]},
    ])
    summary, _fasta, cds = _convert(path, tmp_path)
    assert _sidecar(cds) == {"NC_000001.1": [protein]}
    assert (summary.cds, summary.cds_pseudo, summary.cds_untranslated) == (1, 2, 1)


def test_a_record_whose_only_cds_is_pseudo_is_reported(tmp_path: Path) -> None:
    path = _write_genbank(tmp_path / "one.gbff", [{"translation": ["MKKK"], "pseudo": [""]}])
    summary, _fasta, _cds = _convert(path, tmp_path)
    assert summary.records_without_cds == ("NC_000001.1",)


# --- refusals ---


def test_a_fasta_file_is_refused_as_not_genbank(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not GenBank: this is FASTA") as err:
        _convert(DATA / "viral_reference.fasta", tmp_path)
    assert "viral_reference.fasta" in str(err.value)


def test_an_empty_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.gbff"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as err:
        _convert(path, tmp_path)
    assert err.value.path == str(path)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.5, 0.7, 0.9, 0.999])
@pytest.mark.parametrize("on_a_line_end", [False, True])
def test_a_truncated_file_is_refused_naming_the_file_and_the_record(
        tmp_path: Path, fraction: float, on_a_line_end: bool) -> None:
    text = (TRAINING / "viral.gbff").read_text()
    cut = int(len(text) * fraction)
    if on_a_line_end:
        cut = text.rindex("\n", 0, cut) + 1
    path = tmp_path / "cut.gbff"
    path.write_text(text[:cut])
    # The record cut is the one whose LOCUS line comes last before the cut.
    locus = text[:cut].rsplit("\nLOCUS", 1)[-1].removeprefix("LOCUS").split()[0]
    with pytest.raises(InputError) as err:
        _convert(path, tmp_path)
    assert err.value.path == str(path)
    assert err.value.record_id == locus
    assert str(path) in str(err.value) and repr(locus) in str(err.value)


def test_a_record_without_origin_is_refused_as_without_sequence(tmp_path: Path) -> None:
    text = (TRAINING / "others.gbff").read_text()
    path = tmp_path / "no-origin.gbff"
    path.write_text(text[:text.index("ORIGIN")] + "//\n")
    with pytest.raises(InputError, match="no sequence") as err:
        _convert(path, tmp_path)
    assert err.value.record_id == "NC_005816"


def test_a_contig_record_without_bases_is_refused(tmp_path: Path) -> None:
    text = (TRAINING / "others.gbff").read_text()
    path = tmp_path / "contig.gbff"
    path.write_text(text[:text.index("ORIGIN")] + "CONTIG      join(AE017043.1:1..9609)\n//\n")
    with pytest.raises(InputError, match="no sequence") as err:
        _convert(path, tmp_path)
    assert err.value.record_id == "NC_005816"


def test_a_sequence_shorter_than_its_locus_line_is_refused(tmp_path: Path) -> None:
    text = (TRAINING / "others.gbff").read_text()
    path = tmp_path / "short.gbff"
    path.write_text(text.replace("9609 bp", "9700 bp", 1))
    with pytest.raises(InputError, match="LOCUS line says 9,700") as err:
        _convert(path, tmp_path)
    assert err.value.record_id == "NC_005816"


# --- the fixtures ---


def test_the_fixture_script_remakes_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "tests.make_training_fixtures", "--out", str(tmp_path)],
                   cwd=REPO, check=True, capture_output=True)
    committed = sorted(p.name for p in TRAINING.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        if name.endswith(".gz"):
            # gzip's bytes depend on the zlib build: the content is what must not change.
            assert gzip.decompress((tmp_path / name).read_bytes()) == \
                gzip.decompress((TRAINING / name).read_bytes()), name
        else:
            assert (tmp_path / name).read_bytes() == (TRAINING / name).read_bytes(), name


def test_the_fixtures_are_small_and_marked_synthetic() -> None:
    from Bio import SeqIO

    for name in FIXTURES:
        path = TRAINING / name
        assert path.stat().st_size < 64_000
        for record in SeqIO.parse(path, "genbank"):
            assert record.annotations["comment"].startswith("synthetic:")
            for feature in record.features:
                assert feature.qualifiers["note"] == [NOTE]
    assert (TRAINING / "others.gbff.gz").stat().st_size < 16_000


def test_the_annotated_orfs_run_from_atg_to_a_stop_and_translate_to_their_protein() -> None:
    from Bio import SeqIO

    from virnucpro.translation import translate_frame

    n = 0
    for name in ("viral.gbff", "others.gbff"):
        for record in SeqIO.parse(TRAINING / name, "genbank"):
            assert record.features, record.id  # every record of these two is annotated
            for feature in record.features:
                dna = str(feature.location.extract(record.seq))
                assert len(dna) >= MIN_ORF_NT and len(dna) % 3 == 0
                assert dna.startswith("ATG") and dna[-3:] in ("TAA", "TAG", "TGA")
                assert translate_frame(dna, 0) == feature.qualifiers["translation"][0] + "*"
                n += 1
    assert n == 16


def test_orfs_are_found_on_both_strands_without_overlaps() -> None:
    forward = "CC" + "ATG" + "GCT" * 110 + "TAA" + "GG"
    from virnucpro.translation import reverse_complement

    seq = forward + "T" * 10 + reverse_complement("ATG" + "AAA" * 120 + "TGA")
    orfs = find_orfs(seq)
    assert [(o.strand, o.end - o.start) for o in orfs] == [(1, 336), (-1, 366)]
    assert orfs[0].start == 2 and orfs[0].protein == "M" + "A" * 110
    assert orfs[1].end == len(seq) and orfs[1].protein == "M" + "K" * 120
