"""The text of FASTA and FASTQ files as raw records, with the structural checks.

`records_of` reads an open stream line by line (LF, CRLF or CR line ends, a BOM removed), tells
the format from the first non-blank line ('@': FASTQ, else FASTA) and yields `RawRecord`s; it
raises `InputError` naming the file, the line and the record for binary data, an empty input,
text before the first header, a malformed or truncated FASTQ record and a mix of the two
formats. Letters and ids are checked by the caller (`virnucpro.seqfile`).
"""

from __future__ import annotations

import io
import lzma
import re
import zlib
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from typing import BinaryIO

from virnucpro.errors import InputError

# IUPAC nucleotide codes (both cases), U for RNA, and the gap symbols '-' and '.'.
NUCLEOTIDE_LETTERS = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn-."
MAX_ID_LENGTH = 1000  # characters of a sequence id (the header's first word); every row repeats it
_WHITESPACE = b" \t\r\n\x0b\x0c"
# Control bytes that never occur in a text FASTA or FASTQ file (tab, CR, LF, VT, FF excluded).
_BINARY_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13)) + b"\x7f"
_BINARY_BYTE = re.compile(b"[" + re.escape(_BINARY_BYTES) + b"]")
_LINE_ENDS = (b"\n", b"\r")
_NO_HEADER = ("no FASTA or FASTQ header: the first record must start with '>' (FASTA) "
              "or '@' (FASTQ)")
_MULTI_LINE = ("multi-line FASTQ, with a sequence or quality wrapped over several lines, "
               "is not supported")
_MIXED = "mixing FASTA and FASTQ records is refused"


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


# A raw record: (header line number, header without '>' or '@', letters, quality or None).
RawRecord = tuple[int, bytes, bytes, "bytes | None"]


def records_of(fh: BinaryIO, path: str | Path, *, cut: bool = False) -> Iterator[RawRecord]:
    """The raw records of an open stream (closed at the end); `path` names it in errors.
    `cut`: the stream is the start of a longer input, so its last record may be incomplete."""
    try:
        with fh:
            lines = enumerate(_lines(fh), start=1)
            first = next((at for at in lines if at[1].strip()), None)
            if first is None:
                raise InputError("the input is empty: no FASTA or FASTQ record found", path=path)
            # The first non-blank line tells the format; FASTA's parser says what is wrong
            # with a first line that is neither '>' nor '@'.
            parse = _fastq_records if first[1].startswith(b"@") else _fasta_records
            yield from parse(chain([first], lines), path, cut)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read (corrupt compressed data?): {exc}", path=path) from exc


def _fasta_records(lines: Iterator[tuple[int, bytes]], path: str | Path,
                   cut: bool) -> Iterator[RawRecord]:
    """Records of '>' headers followed by any number of sequence lines (`cut` changes nothing:
    a cut sequence is still a sequence)."""
    header: bytes | None = None
    header_line = 0
    parts: list[bytes] = []
    for line_no, line in lines:
        if line.translate(None, _BINARY_BYTES) != line:
            raise _binary(path, line_no, header)
        if line.startswith(b">"):
            if header is not None:
                yield header_line, header, b"".join(parts), None
            header, header_line, parts = line[1:].strip(), line_no, []
        elif header is None:
            if line.strip() and not line.startswith(b";"):
                raise InputError(_NO_HEADER, path=path, line=line_no)
        elif line.startswith((b"@", b"+")):
            # Neither is a nucleotide code, so the line is wrong either way: say what it is.
            kind = "a FASTQ header" if line.startswith(b"@") else "a FASTQ '+' line"
            raise InputError(f"a FASTQ record inside a FASTA file: {_shown(line)} is {kind}, "
                             f"not sequence; {_MIXED}",
                             path=path, line=line_no, record_id=_rid(header))
        else:
            parts.append(line.translate(None, _WHITESPACE))
    if header is None:  # only blank lines and ';' comments
        raise InputError("the input is empty: no FASTA or FASTQ record found", path=path)
    yield header_line, header, b"".join(parts), None


def _fastq_records(lines: Iterator[tuple[int, bytes]], path: str | Path,
                   cut: bool) -> Iterator[RawRecord]:
    """Four-line records: '@' header, sequence, '+' (bare or repeating the header's text),
    quality of the sequence's length; blank lines between records. Multi-line FASTQ is
    refused rather than guessed at: a quality line may itself start with '@' or '+'."""
    header = b""
    for line_no, line in lines:
        if line.translate(None, _BINARY_BYTES) != line:
            raise _binary(path, line_no, None)
        if not line.startswith(b"@"):
            if not line.strip():
                continue
            if line.startswith(b">"):
                raise InputError(f"a FASTA record in a FASTQ file: a '>' header where a FASTQ "
                                 f"'@' header should be; {_MIXED}",
                                 path=path, line=line_no, record_id=_rid(line[1:]))
            raise InputError(f"found {_shown(line)} after this record's quality line, where the "
                             "next FASTQ header ('@' and an id) should be: a FASTQ record is "
                             f"four lines ('@' header, sequence, '+', quality); {_MULTI_LINE}",
                             path=path, line=line_no, record_id=_rid(header))
        header = line[1:].strip()
        got = list(islice(lines, 3))
        for at, text in got:
            if text.translate(None, _BINARY_BYTES) != text:
                raise _binary(path, at, header)
        seq_at, plus_at, qual_at = got + [None] * (3 - len(got))
        if _blank(plus_at) and _blank(qual_at) and _rest_blank(lines):
            present = 0 if _blank(seq_at) else 1
            if cut:
                seq = seq_at[1].translate(None, _WHITESPACE) if present else b""
                yield line_no, header, seq, None
                return
            raise _truncated(path, header, present, seq_at[0] if present else line_no)
        # From here on the '+' and quality lines are there (the input went on after them).
        if not plus_at[1].startswith(b"+"):
            text = plus_at[1].strip()
            found = _shown(text) if text else "an empty line"
            wrapped = ""
            if text and not text.translate(None, NUCLEOTIDE_LETTERS):
                wrapped = f"; if it is more sequence: {_MULTI_LINE}"
            raise InputError(f"the '+' line is missing: found {found} where this record's "
                             f"third line, '+', should be{wrapped}",
                             path=path, line=plus_at[0], record_id=_rid(header))
        seq = seq_at[1].translate(None, _WHITESPACE)
        plus = plus_at[1][1:].strip()
        if plus and plus != header and not (
                cut and not plus_at[1].endswith(_LINE_ENDS) and header.startswith(plus)):
            raise InputError(f"the '+' line names {_shown(plus)} and the header {_shown(header)}: "
                             "a '+' line is bare or repeats the header's text after '@'",
                             path=path, line=plus_at[0], record_id=_rid(header))
        qual = qual_at[1].strip() if qual_at else b""
        if len(qual) != len(seq) or qual_at is None:
            if cut and (qual_at is None or not qual_at[1].endswith(_LINE_ENDS)):
                yield line_no, header, seq, qual  # the input's start was cut inside it
                return
            if qual_at is None or (not qual and _rest_blank(lines)):
                raise _truncated(path, header, 2, plus_at[0])
            wrapped = f"; {_MULTI_LINE}" if len(qual) < len(seq) else ""
            raise InputError(f"the quality line has {len(qual):,} characters and the sequence "
                             f"{len(seq):,}: they must be the same length{wrapped}",
                             path=path, line=qual_at[0], record_id=_rid(header))
        yield line_no, header, seq, qual


_FASTQ_LINES = ("the sequence, '+' and quality lines", "the '+' and quality lines",
                "the quality line")


def _truncated(path: str | Path, header: bytes, present: int, line: int) -> InputError:
    after = ("its header", "its sequence line", "its '+' line")[present]
    return InputError(f"truncated record: the input ends after {after}; missing: "
                      f"{_FASTQ_LINES[present]}", path=path, line=line, record_id=_rid(header))


def _blank(at: tuple[int, bytes] | None) -> bool:
    return at is None or not at[1].strip()


def _rest_blank(lines: Iterator[tuple[int, bytes]]) -> bool:
    """Whether nothing but blank lines is left (read on error paths only: it consumes)."""
    return not any(text.strip() for _at, text in lines)


def letter_line(fh: BinaryIO, header_line: int, offset: int) -> int:
    """The line that holds letter `offset` (0-based, whitespace not counted) of the record
    whose header is on line `header_line` of the stream (read on error paths only)."""
    with fh:
        for line_no, line in enumerate(_lines(fh), start=1):
            if line_no <= header_line:
                continue
            n = len(line.translate(None, _WHITESPACE))
            if offset < n:
                return line_no
            offset -= n
    return header_line


def check_text(data: bytes, path: str | Path) -> None:
    """InputError ("binary data", naming the line and record) when `data`, the start of an
    input, holds a byte that no text FASTA or FASTQ file holds. Checked before the line
    parsers read the whole: a binary file may have no line end for gigabytes."""
    found = _BINARY_BYTE.search(data)
    if found is None:
        return
    end = data.find(b"\n", found.start())
    # The parsers, on the start up to that line, raise what a whole read would raise first
    # (with the record's id).
    for _record in records_of(io.BytesIO(data[:None if end < 0 else end + 1]), path, cut=True):
        pass
    raise _binary(path, data.count(b"\n", 0, found.start()) + 1, None)


def _binary(path: str | Path, line: int, header: bytes | None) -> InputError:
    return InputError("binary data (control or NUL bytes): this is not a FASTA or FASTQ text file",
                      path=path, line=line, record_id=_rid(header) if header else None)


def _shown(raw: bytes) -> str:
    """A line's text for a message, shortened."""
    text = decode_header(raw.strip())
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _rid(raw_header: bytes | None) -> str | None:
    """A header's id for an error, an over-long one shortened as `virnucpro.seqfile` shortens it
    (None: no id)."""
    words = decode_header(raw_header or b"").split(None, 1)
    if not words:
        return None
    return words[0] if len(words[0]) <= MAX_ID_LENGTH else words[0][:40] + "..."


def decode_header(raw: bytes) -> str:
    # Headers are free text; a stray non-UTF-8 byte must not make a sequence unusable.
    return raw.decode("utf-8", errors="replace")
