"""Write the GenBank fixtures of the training tests (`tests/data/training/`), deterministically.

The sequences are those of `tests/data/viral_reference.fasta` and `nonviral_reference.fasta`;
their CDS features are NOT real annotations: they are the open reading frames (ATG to a stop,
at least 300 nt, either strand, chosen longest first without overlaps) that this script finds,
each marked synthetic in a /note, and each record says so in its COMMENT. `viral.gbff` and
`others.gbff` hold the records with at least one ORF (every record annotated, so they train
under the CDS filter); `unannotated.gbff` holds those of both files with none. Run:

    python -m tests.make_training_fixtures [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from virnucpro.translation import CODON_TABLE, reverse_complement

DATA = Path(__file__).parent / "data"
OUT = DATA / "training"
MIN_ORF_NT = 300  # ATG to stop, the stop included
STOPS = frozenset({"TAA", "TAG", "TGA"})
NOTE = ("synthetic: open reading frame annotated by tests/make_training_fixtures.py, "
        "not a real annotation")
SOURCES = {"viral.gbff": "viral_reference.fasta", "others.gbff": "nonviral_reference.fasta"}
# Records with no ORF of MIN_ORF_NT go here, not into the two above: the CDS filter refuses a
# record without a CDS translation, and the two above should train under it.
UNANNOTATED = "unannotated.gbff"
COMPRESSED = "others.gbff"  # also written as .gbff.gz, for the compressed-input tests


@dataclass(frozen=True)
class Orf:
    start: int  # 0-based, end-exclusive on the forward strand; the stop codon included
    end: int
    strand: int  # +1 or -1
    protein: str  # without the stop


def genbank_id(fasta_id: str) -> str:
    """The accession.version a GenBank record has: an NCBI 'gi|...|ref|ACC|' id gives ACC."""
    if "|" in fasta_id:
        words = fasta_id.strip("|").split("|")
        for db, acc in zip(words, words[1:], strict=False):
            if db in ("ref", "gb", "emb", "dbj") and acc:
                return acc
    return fasta_id


def read_fasta_text(path: Path) -> list[tuple[str, str, str]]:
    """(id, description, upper-case bases) of each record."""
    records = []
    for block in path.read_text().split(">")[1:]:
        header, *lines = block.splitlines()
        rid, _, description = header.partition(" ")
        records.append((rid, description.strip(), "".join(lines).strip().upper()))
    return records


def _strand_orfs(seq: str) -> list[tuple[int, int, str]]:
    """ORFs of one strand: (start, end, protein) in that strand's coordinates. A codon with a
    letter other than ACGT breaks the frame (no ORF runs through it)."""
    found = []
    for frame in range(3):
        start = None
        protein: list[str] = []
        for i in range(frame, len(seq) - 2, 3):
            codon = seq[i:i + 3]
            aa = CODON_TABLE.get(codon)
            if aa is None:
                start = None
            elif codon in STOPS:
                if start is not None and i + 3 - start >= MIN_ORF_NT:
                    found.append((start, i + 3, "".join(protein)))
                start = None
            elif start is not None:
                protein.append(aa)
            elif codon == "ATG":
                start, protein = i, [aa]
    return found


def find_orfs(seq: str) -> list[Orf]:
    """Both strands' ORFs, the longest first, kept when they overlap no kept one; by start."""
    n = len(seq)
    candidates = [Orf(s, e, 1, p) for s, e, p in _strand_orfs(seq)]
    candidates += [Orf(n - e, n - s, -1, p) for s, e, p in _strand_orfs(reverse_complement(seq))]
    candidates.sort(key=lambda o: (o.start - o.end, o.start, -o.strand))
    kept: list[Orf] = []
    for orf in candidates:
        if all(orf.end <= k.start or orf.start >= k.end for k in kept):
            kept.append(orf)
    return sorted(kept, key=lambda o: (o.start, o.strand))


def _record(fasta_name: str, fasta_id: str, description: str, bases: str,
            orfs: list[Orf]):
    from Bio.Seq import Seq
    from Bio.SeqFeature import SeqFeature, SimpleLocation
    from Bio.SeqRecord import SeqRecord

    rid = genbank_id(fasta_id)
    accession = rid.split(".")[0]
    record = SeqRecord(Seq(bases), id=rid, name=accession, description=description)
    what = ("its CDS features are open reading frames found by tests/make_training_fixtures.py"
            if orfs else f"it has no open reading frame of {MIN_ORF_NT} nt or more, so no CDS")
    record.annotations.update({
        "molecule_type": "DNA", "data_file_division": "SYN", "accessions": [accession],
        "comment": (f"synthetic: the sequence is {fasta_id} of tests/data/{fasta_name}; "
                    f"{what}; not a real annotation"),
    })
    if "." in rid:
        record.annotations["sequence_version"] = int(rid.rsplit(".", 1)[1])
    for orf in orfs:
        record.features.append(SeqFeature(
            SimpleLocation(orf.start, orf.end, strand=orf.strand), type="CDS",
            qualifiers={"note": [NOTE], "codon_start": ["1"], "transl_table": ["1"],
                        "translation": [orf.protein]}))
    return record


def _genbank_text(records: list) -> str:
    from Bio import BiopythonWarning, SeqIO

    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BiopythonWarning)
        SeqIO.write(records, out, "genbank")
    return out.getvalue()


def write_fixtures(out: Path) -> dict[str, tuple[int, int]]:
    """Write the fixtures into `out`; (records, ORFs) of each GenBank file."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list] = {name: [] for name in (*SOURCES, UNANNOTATED)}
    counts: dict[str, tuple[int, int]] = {}
    for name, source in SOURCES.items():
        for fasta_id, description, bases in read_fasta_text(DATA / source):
            orfs = find_orfs(bases)
            files[name if orfs else UNANNOTATED].append(
                (_record(source, fasta_id, description, bases, orfs), len(orfs)))
    for name, records in files.items():
        text = _genbank_text([r for r, _n in records])
        counts[name] = (len(records), sum(n for _r, n in records))
        (out / name).write_text(text)
        if name == COMPRESSED:
            # mtime 0 and no file name in the header: the same bytes on every run.
            with open(out / f"{name}.gz", "wb") as raw, \
                    gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(text.encode())
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder (default {OUT})")
    args = parser.parse_args(argv)
    for name, (records, orfs) in write_fixtures(args.out).items():
        size = (args.out / name).stat().st_size
        print(f"{args.out / name}: {records} records, {orfs} open reading frames, "
              f"{size:,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
