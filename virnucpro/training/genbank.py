"""GenBank input of training: its format told by content, and its conversion to FASTA plus a
CDS sidecar, so that the planner reads the FASTA it always reads.

`sniff_format` tells GenBank (`LOCUS`), FASTA (`>`) and FASTQ (`@`) apart, compressed or not.
`genbank_to_fasta` streams the records with Biopython and writes, per record, `>ID description`
and its sequence (ID: accession.version) and a sidecar line with its CDS translations (format:
`virnucpro.training.cds`). A file that is not GenBank, an empty one, a truncated record and a
record without sequence raise `InputError` naming the file and the record; on an error the
outputs are incomplete (write them somewhere temporary).
"""

from __future__ import annotations

import io
import logging
import lzma
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from virnucpro.errors import InputError
from virnucpro.seqfile import SNIFF_BYTES, check_path, open_binary, read_head
from virnucpro.training.cds import format_sidecar_line, write_sidecar_header

log = logging.getLogger(__name__)

SHOWN_WITHOUT_CDS = 1000  # ids of records without a CDS translation kept in the summary
_LOCUS_LINE = re.compile(rb"^LOCUS ", re.MULTILINE)
_LOCUS_LENGTH = re.compile(r"\s(\d+)\s+(bp|aa)\b")
# Biopython only warns about these; the checks below turn them into errors naming the record.
_REPORTED_AS_ERRORS = (r"Premature end of file in sequence data", r"Expected sequence length")


@dataclass(frozen=True)
class GenbankSummary:
    """What a conversion wrote and skipped."""

    path: str
    records: int
    bases: int
    cds: int  # CDS translations written to the sidecar
    cds_pseudo: int  # CDS features marked /pseudo (or /pseudogene): skipped
    cds_untranslated: int  # CDS features without a /translation: skipped
    n_records_without_cds: int
    records_without_cds: tuple[str, ...]  # their ids (the first SHOWN_WITHOUT_CDS)


def _first_line(head: bytes) -> bytes:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return next((line.strip() for line in head.splitlines() if line.strip()), b"")


def sniff_format(path: str | Path, *, display_name: str | None = None) -> str:
    """"genbank", "fasta" or "fastq", told by the (decompressed) content: the first non-blank
    line starts with `LOCUS`, `>` or `@`. A GenBank release file's header before its first
    `LOCUS` line is allowed. InputError for an empty, unreadable or unknown file."""
    shown = display_name or str(path)
    head = read_head(check_path(path, shown), SNIFF_BYTES, shown)
    first = _first_line(head)
    if not first:
        raise InputError("the input is empty: no GenBank, FASTA or FASTQ record found",
                         path=shown)
    if first.startswith(b"LOCUS"):
        return "genbank"
    if first.startswith(b">"):
        return "fasta"
    if first.startswith(b"@"):
        return "fastq"
    if _LOCUS_LINE.search(head):
        return "genbank"
    raise InputError(f"neither GenBank, FASTA nor FASTQ: the first line starts with "
                     f"{first[:40].decode('latin-1')!r} (GenBank starts with 'LOCUS', FASTA "
                     "with '>', FASTQ with '@')", path=shown)


class _Lines(io.TextIOBase):
    """A text stream for Biopython that notes where it is: the line number, the last LOCUS
    line (its name, line and declared length) and whether that record's `//` was read."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self._stream = stream
        self.line = 0
        self.locus = ""
        self.locus_line = 0
        self.locus_length: int | None = None
        self.locus_unit = "bp"
        self.closed_record = True

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:  # Biopython calls read(0) to see the mode
        return self._stream.read(size)

    def readline(self, size: int | None = -1) -> str:
        line = self._stream.readline()
        if line:
            self.line += 1
            if line.startswith("LOCUS"):
                words = line.split()
                self.locus = words[1] if len(words) > 1 else ""
                self.locus_line = self.line
                m = _LOCUS_LENGTH.search(line[12:])
                self.locus_length = int(m.group(1)) if m else None
                self.locus_unit = m.group(2) if m else "bp"
                self.closed_record = False
            elif line.startswith("//"):
                self.closed_record = True
        return line


def _cds_translations(record, counts: dict[str, int]) -> list[str]:
    out = []
    for feature in record.features:
        if feature.type != "CDS":
            continue
        q = feature.qualifiers
        if "pseudo" in q or "pseudogene" in q:
            counts["pseudo"] += 1
            continue
        protein = "".join("".join(q.get("translation", [])).split()).upper()
        if not protein:
            counts["untranslated"] += 1
            continue
        out.append(protein)
    return out


def genbank_to_fasta(path: str | Path, fasta_out: str | Path, cds_out: str | Path, *,
                     display_name: str | None = None) -> GenbankSummary:
    """Write the records of a GenBank file (plain or compressed) as FASTA and their CDS
    translations as the sidecar; see the module. A CDS marked /pseudo or without a
    /translation is skipped and counted; a record left without any is listed (the CDS filter
    refuses it later, `CdsIndex.for_record`)."""
    from Bio import BiopythonParserWarning, SeqIO
    from Bio.Seq import UndefinedSequenceError

    shown = display_name or str(path)
    kind = sniff_format(path, display_name=shown)
    if kind != "genbank":
        raise InputError(f"not GenBank: this is {kind.upper()} (a GenBank record starts with "
                         "'LOCUS')", path=shown)
    counts = {"pseudo": 0, "untranslated": 0}
    n_records = n_bases = n_cds = n_without = 0
    without: list[str] = []
    binary = open_binary(Path(path))
    lines = _Lines(io.TextIOWrapper(binary, encoding="utf-8", errors="replace"))

    def error(message: str) -> InputError:
        return InputError(message, path=shown, record_id=lines.locus or None, line=lines.line)

    with binary, open(fasta_out, "w", encoding="utf-8") as fasta, \
            open(cds_out, "w", encoding="ascii") as cds, warnings.catch_warnings():
        for pattern in _REPORTED_AS_ERRORS:
            warnings.filterwarnings("ignore", message=pattern, category=BiopythonParserWarning)
        write_sidecar_header(cds)
        records = SeqIO.parse(lines, "genbank")
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except (ValueError, AssertionError, IndexError, KeyError) as exc:
                text = str(exc)
                hint = " (no ORIGIN: the record has no sequence)" if "'//' found" in text else ""
                # Biopython may quote a whole feature over many lines: its first line says it.
                lines_of = text.splitlines() or [type(exc).__name__]
                first = lines_of[0]
                if first.endswith(":") and len(lines_of) > 1:  # "Problem with 'CDS' feature:"
                    first = f"{first} {lines_of[1].strip()}"
                raise error(f"not valid GenBank: {first[:200]}{hint}") from exc
            except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
                raise error(f"cannot read (corrupt compressed data?): {exc}") from exc
            if not lines.closed_record:
                raise error("the record ends without its closing '//' (a truncated file?)")
            if lines.locus_unit == "aa":
                raise error("a protein record (GenPept); training takes nucleotide GenBank")
            try:
                seq = bytes(record.seq)
            except UndefinedSequenceError as exc:
                raise error("no sequence (no ORIGIN section: a CONTIG or WGS record?); "
                            "training needs the bases") from exc
            if lines.locus_length is not None and lines.locus_length != len(seq):
                raise error(f"the sequence has {len(seq):,} bases but its LOCUS line says "
                            f"{lines.locus_length:,} (a truncated file?)")
            proteins = _cds_translations(record, counts)
            description = record.description
            header = record.id if description in ("", ".", record.id) else (
                f"{record.id} {description}")
            fasta.write(f">{header}\n")
            fasta.write(seq.decode("ascii", "replace"))
            fasta.write("\n")
            cds.write(format_sidecar_line(record.id, proteins))
            n_records += 1
            n_bases += len(seq)
            n_cds += len(proteins)
            if not proteins:
                n_without += 1
                if len(without) < SHOWN_WITHOUT_CDS:
                    without.append(record.id)
    if not n_records:
        raise InputError("no GenBank record found (no 'LOCUS' line starts a record)", path=shown)
    if n_without:
        more = f" and {n_without - 5} more" if n_without > 5 else ""
        log.warning("%s: %d of %d records have no CDS translation: %s%s", shown, n_without,
                    n_records, ", ".join(without[:5]), more)
    return GenbankSummary(path=shown, records=n_records, bases=n_bases, cds=n_cds,
                          cds_pseudo=counts["pseudo"], cds_untranslated=counts["untranslated"],
                          n_records_without_cds=n_without, records_without_cds=tuple(without))
