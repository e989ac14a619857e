"""The CDS filter of training: is a frame's protein inside one of its record's annotated CDS?

The sidecar (written by `virnucpro.training.genbank`) is a TSV file with one line per GenBank
record, in file order: `record_id<TAB>translations`, the record's CDS translations separated by
single spaces (empty when it has none), after a header line. `CdsIndex` reads it one record at
a time: `for_record(id)` builds that record's k-mer index lazily and drops the previous one, so
memory holds one record's proteins; a caller going through records in file order reads the
sidecar once. The chunk rule (`chunk_is_ambiguous`) is here too: both decide what training keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import numpy as np

from virnucpro.errors import InputError

SIDECAR_HEADER = "record_id\ttranslations\n"
K = 8  # residues of a k-mer: 8 x 5 bits fit an int64, and 20^8 k-mers make chance hits rare

# A chunk holding any of these is not trained on (the reference's data rule).
AMBIGUOUS_LETTERS = b"NRYMKSWHBVD"
_NOT_AMBIGUOUS = bytes(b for b in range(256)
                       if b not in AMBIGUOUS_LETTERS + AMBIGUOUS_LETTERS.lower())

# 5-bit residue codes: A..Z -> 1..26, anything else (the separator, odd bytes) -> 31. Codes only
# narrow the candidates; every hit is checked by a direct comparison, so collisions are harmless.
_CODE = np.full(256, 31, dtype=np.uint64)
for _i in range(26):
    _CODE[ord("A") + _i] = _i + 1
_CODE_OF = {chr(ord("A") + i): i + 1 for i in range(26)}
_SEP = "\n"  # between a record's CDS in the concatenation: never in a frame's protein


def chunk_is_ambiguous(bases: bytes | str) -> bool:
    """True when a chunk holds any of `N R Y M K S W H B V D` (either case): it is dropped."""
    if isinstance(bases, str):
        bases = bases.encode("ascii", "replace")
    return bool(bases.translate(None, _NOT_AMBIGUOUS))


def format_sidecar_line(record_id: str, translations: Iterable[str]) -> str:
    """One record's line of the sidecar (its CDS translations, in feature order)."""
    return f"{record_id}\t{' '.join(translations)}\n"


def write_sidecar_header(out: TextIO) -> None:
    out.write(SIDECAR_HEADER)


def _kmer_code(protein: str, at: int, k: int) -> int:
    code = 0
    get = _CODE_OF.get
    for ch in protein[at:at + k]:
        code = (code << 5) | get(ch, 31)
    return code


class RecordCds:
    """One record's CDS translations and their k-mer index (sorted k-mer codes with their
    positions in the concatenated proteins)."""

    def __init__(self, record_id: str, proteins: tuple[str, ...], k: int = K) -> None:
        self.record_id = record_id
        self.proteins = proteins
        self.k = k
        # One string, the proteins separated by a letter no frame holds: a protein found in it
        # lies inside one CDS, never across two.
        self._text = _SEP.join(proteins)
        self._codes: np.ndarray | None = None
        self._positions: np.ndarray | None = None

    @property
    def n_cds(self) -> int:
        return len(self.proteins)

    def _build(self) -> None:
        k = self.k
        letters = np.frombuffer(self._text.encode("ascii", "replace"), dtype=np.uint8)
        m = len(letters) - k + 1
        if m <= 0:
            self._codes = np.zeros(0, dtype=np.uint64)
            self._positions = np.zeros(0, dtype=np.int64)
            return
        codes = _CODE[letters]
        kmers = np.zeros(m, dtype=np.uint64)
        for j in range(k):
            kmers = (kmers << np.uint64(5)) | codes[j:j + m]
        order = np.argsort(kmers, kind="stable")
        self._codes = kmers[order]
        self._positions = order.astype(np.int64)

    def contains(self, protein: str) -> bool:
        """True when `protein` (a frame's translation: upper case, no '*') is a substring of
        one of this record's CDS translations. An empty protein is never inside."""
        n = len(protein)
        if not n:
            return False
        k = self.k
        if n < k:
            # Too short for a k-mer: a scan (rare: chunks make frames of ~100 or ~166 residues).
            return protein in self._text
        if self._codes is None:
            self._build()
        codes, positions = self._codes, self._positions
        assert codes is not None and positions is not None
        # Three anchors (start, middle, end); the one with the fewest occurrences is verified.
        anchors = sorted({0, (n - k) // 2, n - k})
        wanted = np.array([_kmer_code(protein, a, k) for a in anchors], dtype=np.uint64)
        lo = np.searchsorted(codes, wanted, side="left")
        hi = np.searchsorted(codes, wanted, side="right")
        counts = hi - lo
        best = int(np.argmin(counts))
        if counts[best] == 0:
            return False
        anchor = anchors[best]
        text = self._text
        for pos in positions[int(lo[best]):int(hi[best])].tolist():
            start = pos - anchor
            if start >= 0 and text.startswith(protein, start):
                return True
        return False


class CdsIndex:
    """The CDS translations of a converted GenBank file, looked up record by record.

    `for_record(id)` returns that record's `RecordCds`, built when first asked for and kept
    until another record is asked for (then dropped): memory is one record's proteins and
    index. The sidecar is read forward from where the last record was found, so records asked
    for in file order cost one read of the file; one asked for out of order is found by reading
    again from the start. `source` names the input in errors (default: the sidecar's path).
    """

    def __init__(self, path: str | Path, *, source: str | Path | None = None, k: int = K) -> None:
        self.path = Path(path)
        self.source = str(source) if source is not None else str(self.path)
        self.k = k
        self._current: RecordCds | None = None
        with open(self.path, "rb") as fh:
            header = fh.readline()
        if header.decode("ascii", "replace") != SIDECAR_HEADER:
            raise InputError(f"not a CDS sidecar (its first line is {header[:60]!r})",
                             path=self.path)
        self._first = len(header)  # where the first record's line starts
        self._offset = self._first  # where the line after the last one found starts

    def _find(self, record_id: str) -> tuple[str, int] | None:
        """The record's translations and the offset after its line, or None."""
        key = record_id.encode() + b"\t"
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            for line in iter(fh.readline, b""):
                if line.startswith(key):
                    return line[len(key):].decode("ascii").strip(), fh.tell()
            # Not after the last one found: from the start (a caller going back).
            fh.seek(self._first)
            while fh.tell() < self._offset:
                line = fh.readline()
                if not line:
                    break
                if line.startswith(key):
                    return line[len(key):].decode("ascii").strip(), fh.tell()
        return None

    def for_record(self, record_id: str) -> RecordCds:
        """The record's CDS (see the class); InputError when the record is not in the sidecar
        or has no CDS translation (the filter cannot judge its frames)."""
        current = self._current
        if current is not None and current.record_id == record_id:
            return current
        self._current = None  # drop the previous record's index first
        found = self._find(record_id)
        if found is None:
            raise InputError("no line in the CDS sidecar for this record (the sidecar was not "
                             "made from this input?)", path=self.source, record_id=record_id)
        translations, self._offset = found
        if not translations:
            raise InputError("no CDS translation (no CDS feature with a /translation "
                             "qualifier): the CDS filter cannot judge its frames; annotate it, "
                             "leave it out, or turn the filter off", path=self.source,
                             record_id=record_id)
        self._current = RecordCds(record_id, tuple(translations.split(" ")), self.k)
        return self._current

    def contains(self, record_id: str, protein: str) -> bool:
        """True when `protein` is a substring of one of the record's CDS translations."""
        return self.for_record(record_id).contains(protein)
