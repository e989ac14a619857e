"""FASTA input: opening (plain, gzip, bzip2, xz, stdin), the validating first pass, and reading.

`scan_fasta` reads the whole input once, before any model runs, and either returns a
`FastaIndex` (ids, lengths, renames, a content hash) or raises an `InputError` that names the
record and the problem. `read_fasta` then streams `SeqRecord`s one at a time, so memory does
not grow with the input; it trusts that the same file was scanned first.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import shutil
import sys
import tempfile
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from virnucpro.errors import DuplicateIdError, InputError

# IUPAC nucleotide codes (both cases), U for RNA, and the gap symbols '-' and '.'.
_NUCLEOTIDE_LETTERS = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn-."
# Letters that occur in proteins but are not nucleotide codes: seeing them means "protein".
_PROTEIN_ONLY = set("EFILPQJOXZefilpqjoxz*")
_WHITESPACE = b" \t\r\n\x0b\x0c"
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
# Control bytes that never occur in a text FASTA file (tab, CR, LF, VT, FF excluded).
_BINARY_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13)) + b"\x7f"

SHORT_SEQUENCE_BP = 150
MAX_ID_LENGTH = 1000  # characters of a sequence id (the header's first word); every row repeats it
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


def detect_compression(path: Path) -> str:
    """Tell the compression from the file's first bytes, not from its name."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return "none"


def open_binary(path: Path) -> BinaryIO:
    kind = detect_compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def spool_stdin(directory: str | Path | None = None, stream: BinaryIO | None = None) -> Path:
    """Copy standard input to a temporary file so that it can be read twice."""
    src = stream if stream is not None else sys.stdin.buffer
    fd, name = tempfile.mkstemp(prefix="virnucpro-stdin-", suffix=".fasta", dir=directory)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, length=1 << 20)
    return Path(name)


def _lines(fh: BinaryIO) -> Iterator[bytes]:
    """Lines of a text file whatever its line ends (LF, CRLF, or old Mac CR), BOM removed."""
    first = True
    for line in fh:
        if first:
            first = False
            if line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
        if b"\r" in line[:-2]:  # a lone CR inside: CR-only line ends
            yield from line.replace(b"\r\n", b"\n").replace(b"\r", b"\n").splitlines(keepends=True)
        else:
            yield line


def _iter_raw_records(path: Path) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield (header line number, header bytes without '>', sequence bytes) per record.

    Raises InputError for binary data, an empty input and text before the first header.
    """
    try:
        fh = open_binary(path)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=path) from exc
    yield from _records_of(fh, path)


def _records_of(fh: BinaryIO, path: str | Path) -> Iterator[tuple[int, bytes, bytes]]:
    """`_iter_raw_records` of an open stream (closed at the end); `path` names it in errors."""
    header: bytes | None = None
    header_line = 0
    parts: list[bytes] = []
    seen_text = False
    try:
        with fh:
            for line_no, line in enumerate(_lines(fh), start=1):
                if line.translate(None, _BINARY_BYTES) != line:
                    raise InputError(
                        "binary data (control or NUL bytes): this is not a FASTA text file",
                        path=path, line=line_no)
                if line.startswith(b">"):
                    if header is not None:
                        yield header_line, header, b"".join(parts)
                    header, header_line, parts = line[1:].strip(), line_no, []
                    seen_text = True
                elif header is None:
                    if line.strip() and not line.startswith(b";"):
                        raise InputError(
                            "no FASTA header: the first record must start with '>'",
                            path=path, line=line_no)
                else:
                    parts.append(line.translate(None, _WHITESPACE))
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read (corrupt compressed data?): {exc}", path=path) from exc
    if header is not None:
        yield header_line, header, b"".join(parts)
    elif not seen_text:
        raise InputError("the input is empty: no FASTA record found", path=path)


def _decode_header(raw: bytes) -> str:
    # Headers are free text; a stray non-UTF-8 byte must not make a sequence unusable.
    return raw.decode("utf-8", errors="replace")


def _check_letters(seq: bytes, *, path: Path, record_id: str, line: int) -> None:
    bad = seq.translate(None, _NUCLEOTIDE_LETTERS)
    if not bad:
        return
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


def _iter_ids(path: Path) -> Iterator[str]:
    for _line, raw_header, _seq in _iter_raw_records(path):
        yield _decode_header(raw_header).split()[0]


def _find_duplicates(path: Path, hashes: np.ndarray) -> list[str]:
    """Ids that occur more than once. Only 8-byte hashes were kept in the first pass, so the
    ids behind repeated hashes are collected by a second read (hash collisions drop out)."""
    uniq, counts = np.unique(hashes, return_counts=True)
    suspects = set(uniq[counts > 1].tolist())
    if not suspects:
        return []
    seen: Counter[str] = Counter(rid for rid in _iter_ids(path) if _id_hash(rid) in suspects)
    return [rid for rid, n in seen.items() if n > 1]


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
    for i, rid in enumerate(_iter_ids(path)):
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
    hashes = array("Q")
    total_bp = 0
    n_chunks = 0
    for line, raw_header, seq in _iter_raw_records(path):
        record_id = _check_record(raw_header, seq, path=shown, line=line)
        hashes.append(_id_hash(record_id))
        total_bp += len(seq)
        if chunk_size and len(seq) >= max(1, min_length):
            n_chunks += -(-len(seq) // chunk_size)  # chunking.chunk_spans makes ceil(L / size)
    as_array = np.frombuffer(hashes, dtype=np.uint64) if hashes else np.zeros(0, np.uint64)
    dups = _find_duplicates(path, as_array)
    renames: dict[int, str] = {}
    if dups:
        if not rename_duplicates:
            raise DuplicateIdError(dups, path=shown)
        renames = _rename_duplicates(path, as_array, dups)
    return FastaIndex(path=path, n_records=len(hashes), total_bp=total_bp,
                      renames=renames, sha256=file_sha256(path),
                      size=path.stat().st_size, compression=detect_compression(path),
                      n_chunks=n_chunks if chunk_size else None)


def _check_record(raw_header: bytes, seq: bytes, *, path: str, line: int,
                  cut: bool = False) -> str:
    """A record's id, once its header and letters are checked (InputError otherwise); `cut`:
    the header may go on past what was read."""
    words = _decode_header(raw_header).split()
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
    _check_letters(seq, path=path, record_id=record_id, line=line)
    return record_id


def check_path(path: str | Path, display_name: str | None = None) -> Path:
    """The checks of a named input before any reading: it exists and is not a folder."""
    shown = display_name or str(path)
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=shown)
    if path.is_dir():
        raise InputError("is a folder, not a FASTA file", path=shown)
    return path


def sniff_fasta(path: str | Path, *, display_name: str | None = None,
                head_bytes: int = SNIFF_BYTES) -> None:
    """Check an input's first `head_bytes` (decompressed) as `scan_fasta` would check the
    whole, with the same errors: a folder, a missing, unreadable, empty or binary file, text
    before the first header, a protein or an over-long id in the records it reaches. Cheap
    (one read of the start), for a submission of any size; duplicates need the whole file."""
    shown = display_name or str(path)
    path = check_path(path, shown)
    try:
        with open_binary(path) as fh:
            head = fh.read(head_bytes)
    except OSError as exc:  # includes gzip.BadGzipFile
        raise InputError(f"cannot open: {exc.strerror or exc}", path=shown) from exc
    except (EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read (corrupt compressed data?): {exc}", path=shown) from exc
    # The last record read may be cut short (its header too): what was read of it is checked.
    records = list(_records_of(io.BytesIO(head), shown))
    cut = len(head) == head_bytes
    for n, (line, raw_header, seq) in enumerate(records):
        _check_record(raw_header, seq, path=shown, line=line, cut=cut and n == len(records) - 1)


def check_fasta(path: str | Path, *, display_name: str | None = None,
                rename_duplicates: bool = False, whole_limit: int = WHOLE_CHECK_BYTES) -> bool:
    """What can be known of an input before a job runs it: for a file of at most
    `whole_limit` bytes (as stored), the whole of `scan_fasta`; else `sniff_fasta`. True if
    checked whole."""
    path = check_path(path, display_name)
    if path.stat().st_size > whole_limit:
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


def read_fasta(index: FastaIndex, start: int = 0) -> Iterator[SeqRecord]:
    """Stream the records of a scanned input, with the ids (and renames) of its index, from
    record number `start` (0-based; those before it are read past, not decoded)."""
    for i, (_line, raw_header, seq) in enumerate(_iter_raw_records(index.path)):
        if i < start:
            continue
        header = _decode_header(raw_header)
        original = header.split()[0]
        yield SeqRecord(index=i, id=index.renames.get(i, original), header=header, seq=seq,
                        original_id=original)
