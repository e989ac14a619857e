"""FASTA and FASTQ input: opening (plain, gzip, bzip2, xz, stdin), the validating first pass,
and reading.

The format is told by content, like the compression: the first non-blank character is '>' for
FASTA, '@' for FASTQ (four-line records; qualities are kept but checked only for their length).
`scan_fasta` reads the whole input once, before any model runs, and either returns a
`FastaIndex` (counts, renames, a content hash) or raises an `InputError` that names the record,
the line and the problem. `read_fasta` then streams `SeqRecord`s one at a time, so memory does
not grow with the input; it trusts that the same file was scanned first. The line-level
parsing of both formats is `virnucpro.seqparse`; letters, ids and duplicates are checked here.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from virnucpro.errors import DuplicateIdError, InputChangedError, InputError
from virnucpro.input_watch import HashedFile, Stamp, changes
from virnucpro.seqparse import (
    MAX_ID_LENGTH,
    NUCLEOTIDE_LETTERS,
    RawRecord,
    check_text,
    decode_header,
    letter_line,
    records_of,
)

# Letters that occur in proteins but are not nucleotide codes: seeing them means "protein".
_PROTEIN_ONLY = set("EFILPQJOXZefilpqjoxz*")
_NOT_NUCLEOTIDE = re.compile(b"[^" + re.escape(NUCLEOTIDE_LETTERS) + b"]")
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_MATES_HINT = ("they look like the two mates of paired reads (interleaved, or Casava 1.8 headers "
               "'1:...' and '2:...'), which share their first word: give the mates in separate "
               "files, or use --rename-duplicates to suffix the second one")

SHORT_SEQUENCE_BP = 150
SNIFF_BYTES = 64 * 1024  # what `sniff_fasta` reads (decompressed) of an input's start
WHOLE_CHECK_BYTES = 64 * 1024 * 1024  # `check_fasta` validates inputs up to this size whole


@dataclass(frozen=True, slots=True)
class SeqRecord:
    """One input sequence: `id` is the first word of the header (renamed if asked)."""

    index: int
    id: str
    header: str
    seq: bytes  # letters as given (case kept), whitespace removed
    original_id: str
    quality: bytes | None = None  # FASTQ: the quality line as given, one byte a letter; FASTA: None
    raw_header: bytes = b""  # the header's bytes as given (`header` decodes them, lossily)

    @property
    def renamed(self) -> bool:
        return self.id != self.original_id


@dataclass(frozen=True)
class FastaIndex:
    """What the first pass learned: counts, renames and a content hash (not the ids: a read
    set of millions of records should not keep them all in memory for the whole run)."""

    path: Path
    n_records: int
    total_bp: int
    renames: dict[int, str] = field(default_factory=dict)  # record index -> new id
    sha256: str = ""
    size: int = 0
    compression: str = "none"
    n_chunks: int | None = None  # chunks to score at the scan's chunk size (None: not asked)
    format: str = "fasta"  # "fasta" or "fastq", told by the first record
    mtime_ns: int = 0  # the file's modification time when it was validated

    @property
    def stamp(self) -> Stamp:
        """The file as validated: a later read must find the same."""
        return Stamp(self.size, self.mtime_ns, self.sha256)


def compression_of(head: bytes) -> str:
    """The compression a stream's first bytes (6 are enough) announce: gzip, bzip2, xz or
    none."""
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), "none")


def detect_compression(path: Path) -> str:
    """Tell the compression from the file's first bytes, not from its name."""
    with open(path, "rb") as fh:
        return compression_of(fh.read(6))


def open_binary(path: Path) -> BinaryIO:
    kind = detect_compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _decompressing(raw: BinaryIO, kind: str) -> BinaryIO:
    """A reader of `raw`'s decompressed bytes (closing it leaves `raw` open)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb")  # type: ignore[return-value]
    return raw


def _open_hashed(path: Path, shown: str | Path) -> HashedFile:
    try:
        return HashedFile(path)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=shown) from exc


def _hashed_records(hashed: HashedFile, path: Path, shown: str | Path) -> Iterator[RawRecord]:
    """The raw records of an input read through `hashed` (released at the end), whose hash
    covers the whole file once the last record is out."""
    try:
        raw = io.BufferedReader(hashed, buffer_size=1 << 20)
        fh = _decompressing(raw, detect_compression(path))
        yield from records_of(fh, shown)
        hashed.drain()
    finally:
        hashed.release()


def _iter_raw_records(path: Path, shown: str | None = None) -> Iterator[RawRecord]:
    """Yield the raw records of a FASTA or FASTQ file, told apart by content; errors name the
    file as `shown` (default: its path).

    Raises InputError for binary data, an empty input, text before the first header and a
    malformed FASTQ record.
    """
    try:
        fh = open_binary(path)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=shown or path) from exc
    yield from records_of(fh, shown or path)


def _check_letters(seq: bytes, *, path: str, record_id: str, line: int,
                   source: Callable[[], BinaryIO] | None) -> None:
    """InputError for a letter that is no nucleotide code, naming the line of the first one
    (`source` reopens the input to find it; None: the header's line is named)."""
    bad = seq.translate(None, NUCLEOTIDE_LETTERS)
    if not bad:
        return
    if source is not None:
        line = letter_line(source(), line, _NOT_NUCLEOTIDE.search(seq).start())
    letters = sorted(set(bad.decode("latin-1")))
    shown = ", ".join(repr(c) for c in letters[:10])
    if any(c in _PROTEIN_ONLY for c in letters):
        hint = "it looks like a protein sequence; VirNucPro takes nucleotide sequences"
    else:
        hint = "only IUPAC nucleotide codes and gaps are accepted"
    raise InputError(f"characters that are not nucleotide codes ({shown}): {hint}",
                     path=path, record_id=record_id, line=line)


def _id_hash(record_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "little")


def _iter_words(path: Path) -> Iterator[list[str]]:
    """Each record's id and (if any) the second word of its header."""
    for _line, raw_header, _seq, _qual in _iter_raw_records(path):
        yield decode_header(raw_header).split(None, 2)[:2]


def _find_duplicates(path: Path, hashes: np.ndarray, *,
                     fastq: bool = False) -> tuple[list[str], bool]:
    """Ids that occur more than once, and whether they look like the mates of paired reads
    (FASTQ only: every repeated id occurs twice, in consecutive records or with Casava 1.8's
    '1:'/'2:' second words). Only 8-byte hashes were kept in the first pass, so the ids behind
    repeated hashes are collected by a second read (hash collisions drop out)."""
    uniq, counts = np.unique(hashes, return_counts=True)
    suspects = set(uniq[counts > 1].tolist())
    if not suspects:
        return [], False
    seen: Counter[str] = Counter()
    apart: set[str] = set()  # not a pair of consecutive records
    not_casava: set[str] = set()
    previous = None
    for words in _iter_words(path):
        rid = words[0]
        if _id_hash(rid) in suspects:
            n = seen[rid] = seen[rid] + 1
            if n > 2 or (n == 2 and previous != rid):
                apart.add(rid)
            if n > 2 or len(words) < 2 or not words[1].startswith(("1:", "2:")):
                not_casava.add(rid)
        previous = rid
    dups = [rid for rid, n in seen.items() if n > 1]
    mates = fastq and bool(dups) and (apart.isdisjoint(dups) or not_casava.isdisjoint(dups))
    return dups, mates


def _rename_duplicates(path: Path, hashes: np.ndarray, dups: list[str]) -> dict[int, str]:
    """Give the 2nd, 3rd... record of a repeated id the suffix _2, _3..., never reusing an
    id of the file (checked against the sorted hashes) or a name given earlier."""
    sorted_hashes = np.sort(hashes)

    def taken(name: str) -> bool:
        h = np.uint64(_id_hash(name))
        i = int(np.searchsorted(sorted_hashes, h))
        return name in given or (i < len(sorted_hashes) and sorted_hashes[i] == h)

    wanted = set(dups)
    seen: Counter[str] = Counter()
    given: set[str] = set()
    renames: dict[int, str] = {}
    for i, (rid, *_second) in enumerate(_iter_words(path)):
        if rid not in wanted:
            continue
        seen[rid] += 1
        if seen[rid] == 1:
            continue
        n = seen[rid]
        while taken(new := f"{rid}_{n}"):
            n += 1
        given.add(new)
        renames[i] = new
    return renames


def scan_fasta(path: str | Path, *, rename_duplicates: bool = False,
               display_name: str | None = None, chunk_size: int | None = None,
               min_length: int = 1) -> FastaIndex:
    """Validate the whole input and index it; raise InputError naming the first problem.
    With `chunk_size`, also count the chunks a run will score (records of at least
    `min_length` bases), the total that progress is reported against.

    Duplicate ids are collected over the whole file and all named in one error, unless
    `rename_duplicates` is set, in which case later copies get a numeric suffix. Memory: 8
    bytes per record (a hash of its id), so a read set of 100 million records still fits.
    """
    path = Path(path)
    shown = display_name or str(path)
    # Binary data before the line parser: a binary file may hold no line end for gigabytes.
    check_text(read_head(path, SNIFF_BYTES, shown), shown)
    before = Stamp.of(path)
    hashes = array("Q")
    total_bp = 0
    n_chunks = 0
    fastq = False
    hashed = _open_hashed(path, shown)
    for line, raw_header, seq, qual in _hashed_records(hashed, path, shown):
        fastq = qual is not None  # one format a file: the parsers refuse a mix
        record_id = _check_record(raw_header, seq, path=shown, line=line,
                                  source=lambda: open_binary(path))
        hashes.append(_id_hash(record_id))
        total_bp += len(seq)
        if chunk_size and len(seq) >= max(1, min_length):
            n_chunks += -(-len(seq) // chunk_size)  # chunking.chunk_spans makes ceil(L / size)
    if path.is_file():  # a spooled stream is a file; a device's size says nothing
        after = Stamp.after(path, hashed, before)
        if what := changes(before, after) or changes(Stamp(hashed.bytes_read, 0),
                                                     Stamp(after.size, 0)):
            raise InputChangedError(shown, what, when="while it was validated")
    as_array = np.frombuffer(hashes, dtype=np.uint64) if hashes else np.zeros(0, np.uint64)
    dups, mates = _find_duplicates(path, as_array, fastq=fastq)
    renames: dict[int, str] = {}
    if dups:
        if not rename_duplicates:
            raise DuplicateIdError(dups, path=shown, hint=_MATES_HINT if mates else None)
        renames = _rename_duplicates(path, as_array, dups)
    return FastaIndex(path=path, n_records=len(hashes), total_bp=total_bp,
                      renames=renames, sha256=hashed.digest.hexdigest(),
                      size=hashed.bytes_read, compression=detect_compression(path),
                      n_chunks=n_chunks if chunk_size else None,
                      format="fastq" if fastq else "fasta", mtime_ns=before.mtime_ns)


def _check_record(raw_header: bytes, seq: bytes, *, path: str, line: int,
                  cut: bool = False, source: Callable[[], BinaryIO] | None = None) -> str:
    """A record's id, once its header and letters are checked (InputError otherwise); `cut`:
    the header may go on past what was read; `source` reopens the input (decompressed) to
    name the line of a bad letter."""
    words = decode_header(raw_header).split()
    if not words:
        raise InputError("a header with no sequence id", path=path, line=line)
    record_id = words[0]
    if len(record_id) > MAX_ID_LENGTH:
        # The id is repeated in every chunk and frame row: name it, shortened.
        length = f"more than {len(record_id):,}" if cut else f"{len(record_id):,}"
        raise InputError(f"a sequence id of {length} characters; at most "
                         f"{MAX_ID_LENGTH:,} are accepted (the id is the header's first word; "
                         "put the rest after a space)",
                         path=path, record_id=record_id[:40] + "...", line=line)
    _check_letters(seq, path=path, record_id=record_id, line=line, source=source)
    return record_id


def check_path(path: str | Path, display_name: str | None = None) -> Path:
    """The checks of a named input before any reading: it exists and is not a folder."""
    shown = display_name or str(path)
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=shown)
    if path.is_dir():
        raise InputError("is a folder, not a FASTA or FASTQ file", path=shown)
    return path


def read_head(path: Path, n: int, shown: str) -> bytes:
    """The first `n` bytes of an input, decompressed; InputError (naming `shown`) for a file
    that cannot be opened or whose compressed data is corrupt."""
    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except OSError as exc:  # includes gzip.BadGzipFile
        raise InputError(f"cannot open: {exc.strerror or exc}", path=shown) from exc
    except (EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read (corrupt compressed data?): {exc}", path=shown) from exc


def sniff_fasta(path: str | Path, *, display_name: str | None = None,
                head_bytes: int = SNIFF_BYTES) -> None:
    """Check an input's first `head_bytes` (decompressed) as `scan_fasta` would check the
    whole, with the same errors: a folder, a missing, unreadable, empty or binary file, text
    before the first header, a malformed FASTQ record, a protein or an over-long id in the
    records it reaches. Cheap (one read of the start), for a submission of any size;
    duplicates need the whole file."""
    shown = display_name or str(path)
    head = read_head(check_path(path, shown), head_bytes, shown)
    # The last record read may be cut short (its header too): what was read of it is checked.
    cut = len(head) == head_bytes
    records = list(records_of(io.BytesIO(head), shown, cut=cut))
    for n, (line, raw_header, seq, _qual) in enumerate(records):
        last = cut and n == len(records) - 1
        if last and not raw_header and not seq:
            continue  # cut right after its '>' or '@': nothing of it was read
        _check_record(raw_header, seq, path=shown, line=line, cut=last,
                      source=lambda: io.BytesIO(head))


def check_fasta(path: str | Path, *, display_name: str | None = None,
                rename_duplicates: bool = False, whole_limit: int = WHOLE_CHECK_BYTES) -> bool:
    """What can be known of an input before a job runs it: for a file of at most
    `whole_limit` bytes (as stored), the whole of `scan_fasta`; else (a larger file, or not a
    regular file) `sniff_fasta`. True if checked whole."""
    path = check_path(path, display_name)
    # A pipe or a device (/dev/zero) is never read whole: its size says nothing of its end.
    if not path.is_file() or path.stat().st_size > whole_limit:
        sniff_fasta(path, display_name=display_name)
        return False
    scan_fasta(path, rename_duplicates=rename_duplicates, display_name=display_name)
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_fasta(index: FastaIndex, start: int = 0, *,
               on_change: Callable[[InputChangedError], None] | None = None
               ) -> Iterator[SeqRecord]:
    """Stream the records of a scanned input, with the ids (and renames) of its index, from
    record number `start` (0-based; those before it are read past, not decoded).

    Its bytes are hashed as they are read: after the last record, a file whose size,
    modification time or SHA-256 is not the index's raises InputChangedError, or hands it to
    `on_change` (a caller that must first finish what the records started); a record that
    no longer parses because the file changed raises it too."""
    hashed = _open_hashed(index.path, index.path)
    try:
        for i, (_line, raw_header, seq, qual) in enumerate(
                _hashed_records(hashed, index.path, index.path)):
            if i < start:
                continue
            header = decode_header(raw_header)
            original = header.split()[0]
            yield SeqRecord(index=i, id=index.renames.get(i, original), header=header, seq=seq,
                            original_id=original, quality=qual, raw_header=raw_header)
    except InputError as exc:
        try:
            what = changes(index.stamp, Stamp.of(index.path))
        except OSError:
            what = "it was removed"
        if what:
            raise InputChangedError(index.path, what) from exc
        raise
    if what := changes(index.stamp, Stamp.after(index.path, hashed, index.stamp)):
        error = InputChangedError(index.path, what)
        if on_change is None:
            raise error
        on_change(error)
