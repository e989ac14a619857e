"""What will be scored: each record's chunks and their kept frames, planned in blocks.

`iter_blocks` groups consecutive records into `PlanBlock`s (about a megabase, or a few thousand
records; a longer record is planned in pieces of whole chunks) and plans each block at once:
the six frames of every chunk come from two codon-to-amino-acid lookups over the block's bases
(numpy), then one strided slice per frame (bytes). The rules are those of `chunking` and
`translation` (FIDELITY 1-2), which stay the readable reference; the tests hold the two equal.
A block is columnar: numbers in arrays, ids and sequences in lists, no object per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from virnucpro.chunking import chunk_spans
from virnucpro.seqfile import SHORT_SEQUENCE_BP, SeqRecord
from virnucpro.translation import CODON_TABLE

EMPTY = "empty sequence"
BLOCK_BASES = 1 << 20  # bases planned at once: the arrays stay a few MB
BLOCK_RECORDS = 4096
FRAME_LETTERS = ("F1", "F2", "F3", "R1", "R2", "R3")  # frame code 0..5

_ACGT = b"ACGT"
# Base codes: A C G T -> 0..3, anything else -> 4 (the codon is dropped, FIDELITY 2).
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(_ACGT):
    _CODE[_b] = _i
_GAP = ord("-")  # amino-acid slot of a dropped codon (never a residue letter)


def _codon_tables() -> tuple[np.ndarray, np.ndarray]:
    """Amino acids by base-5 codon index x*25 + y*5 + z: of the codon read forward, and of
    its reverse complement (comp z, comp y, comp x); '-' where a base is not ACGT."""
    fwd = np.full(125, _GAP, dtype=np.uint8)
    rev = np.full(125, _GAP, dtype=np.uint8)
    for x in range(4):
        for y in range(4):
            for z in range(4):
                i = x * 25 + y * 5 + z
                fwd[i] = ord(CODON_TABLE[_ACGT[x:x + 1].decode() + _ACGT[y:y + 1].decode()
                                         + _ACGT[z:z + 1].decode()])
                rc = "".join("TGCA"[b] for b in (z, y, x))
                rev[i] = ord(CODON_TABLE[rc])
    return fwd, rev


_AA_FWD, _AA_REV = _codon_tables()
_UPPER = bytes(range(256)).upper()
_COMPLEMENT = bytes.maketrans(b"ACGT", b"TGCA")


@dataclass(frozen=True, slots=True)
class RecordInfo:
    """One input record, as the tables need it."""

    index: int
    id: str
    header: str
    original_id: str
    seq: bytes  # as given, for viral.fasta
    flags: tuple[str, ...]  # short, renamed_from:ID, rna
    unscored_reason: str  # empty, or why the record has no chunk
    n_chunks: int
    quality: bytes | None = None  # a FASTQ record's qualities, for viral.fastq
    known_length: int = -1  # the length when `seq` is not at hand (rescore without the input)
    raw_header: bytes | None = None  # the header's bytes as given, for the sequence files

    @property
    def length(self) -> int:
        return self.known_length if self.known_length >= 0 else len(self.seq)

    @property
    def renamed(self) -> bool:
        return self.id != self.original_id


@dataclass
class PlanBlock:
    """Consecutive record pieces (a piece: a record, or a run of whole chunks of a long one)
    with their chunks and kept frames, in input order. Frame `j` is the block's `frame0 + j`-th
    frame of the input."""

    frame0: int
    records: list[RecordInfo]  # one per piece
    piece_first_chunk: np.ndarray  # [pieces] chunk number (0-based) in its record
    piece_last: np.ndarray  # [pieces] bool: the piece ends its record
    piece_chunks: np.ndarray  # [pieces+1] offsets into the chunk columns
    piece_frames: np.ndarray  # [pieces+1] offsets into the frame columns
    chunk_ids: list[str]
    chunk_index: np.ndarray  # [chunks] 0-based in the record
    chunk_start: np.ndarray  # 0-based on the record
    chunk_end: np.ndarray
    chunk_frames: np.ndarray  # [chunks+1] offsets into the frame columns
    frame_ids: list[str]
    frame_code: np.ndarray  # [frames] 0..5 = F1 F2 F3 R1 R2 R3
    frame_start: np.ndarray  # 0-based, end-exclusive on the forward strand of the record
    frame_end: np.ndarray
    protein_length: np.ndarray
    nucleotides: list[str] | None  # dropped (None) once handed to the shards
    proteins: list[str] | None
    # [chunks] bool: no frame has a codon of A, C, G, T only (all N...), so none could be kept
    chunk_ambiguous: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frame_ids)


def record_flags(record: SeqRecord, rna: bool) -> tuple[str, ...]:
    flags = []
    if 0 < len(record.seq) < SHORT_SEQUENCE_BP:
        flags.append("short")
    if record.renamed:
        flags.append(f"renamed_from:{record.original_id}")
    if rna:
        flags.append("rna")
    return tuple(flags)


class _BlockBuilder:
    """Collects record pieces, then plans them all at once (`build`)."""

    def __init__(self, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.records: list[RecordInfo] = []
        self.first_chunk: list[int] = []
        self.last: list[bool] = []
        self.spans: list[list[tuple[int, int]]] = []  # per piece, record coordinates
        self.bases: list[bytes] = []  # per piece: the upper-case, U->T bases it covers
        self.offsets: list[int] = []  # per piece: record position of bases[0]
        self.size = 0

    def add(self, info: RecordInfo, first: int, spans: list[tuple[int, int]], bases: bytes,
            offset: int, last: bool) -> None:
        self.records.append(info)
        self.first_chunk.append(first)
        self.last.append(last)
        self.spans.append(spans)
        self.bases.append(bases)
        self.offsets.append(offset)
        self.size += len(bases)

    def build(self, frame0: int) -> PlanBlock:
        buf = b"".join(self.bases)
        n = len(buf)
        if n >= 3:
            code = _CODE[np.frombuffer(buf, dtype=np.uint8)]
            index = code[:-2] * np.uint8(25) + code[1:-1] * np.uint8(5) + code[2:]
            aa_fwd, aa_rev = _AA_FWD[index].tobytes(), _AA_REV[index].tobytes()
        else:
            aa_fwd = aa_rev = b""
        rc = buf.translate(_COMPLEMENT)[::-1]
        chunk_ids: list[str] = []
        c_index: list[int] = []
        c_start: list[int] = []
        c_end: list[int] = []
        c_frames = [0]
        c_ambiguous: list[bool] = []
        frame_ids: list[str] = []
        f_code: list[int] = []
        f_start: list[int] = []
        f_end: list[int] = []
        f_plen: list[int] = []
        nts: list[str] = []
        prots: list[str] = []
        p_chunks, p_frames = [0], [0]
        base = 0  # position of the piece's bases in buf
        for info, first, spans, bases, offset in zip(self.records, self.first_chunk, self.spans,
                                                      self.bases, self.offsets, strict=True):
            clean = not bases.translate(None, _ACGT)  # no dropped codon: no '-' to delete
            rid = info.id
            for k, (start, end) in enumerate(spans, start=first):
                cid = f"{rid}_chunk_{k + 1}"
                chunk_ids.append(cid)
                c_index.append(k)
                c_start.append(start)
                c_end.append(end)
                s = base + start - offset  # the chunk in buf: [s, e)
                e = s + (end - start)
                length = end - start
                stop = s - 1 if s else None  # reverse codons run down to the chunk's start
                codons = False
                for code in range(6):
                    f = code % 3
                    if length - f < 3:
                        continue
                    p = aa_fwd[s + f:e - 2:3] if code < 3 else aa_rev[e - 3 - f:stop:-3]
                    if not clean:
                        p = p.translate(None, b"-")
                    codons = codons or bool(p)
                    if not p or b"*" in p:
                        continue
                    m = min(3 * len(p) + 1, length - f)
                    if code < 3:
                        f_start.append(start + f)
                        nts.append(buf[s + f:s + f + m].decode("ascii"))
                    else:
                        # Positions f..f+m of the reverse strand cover, on the forward strand,
                        # end-f-m .. end-f.
                        f_start.append(end - f - m)
                        r0 = n - e + f
                        nts.append(rc[r0:r0 + m].decode("ascii"))
                    frame_ids.append(f"{cid}{FRAME_LETTERS[code]}")
                    f_code.append(code)
                    f_end.append(f_start[-1] + m)
                    f_plen.append(len(p))
                    prots.append(p.decode("ascii"))
                c_frames.append(len(frame_ids))
                # Under 3 bases there is no codon to be ambiguous about.
                c_ambiguous.append(not codons and length >= 3)
            base += len(bases)
            p_chunks.append(len(chunk_ids))
            p_frames.append(len(frame_ids))
        i64 = np.int64
        return PlanBlock(
            frame0=frame0, records=self.records,
            piece_first_chunk=np.array(self.first_chunk, dtype=i64),
            piece_last=np.array(self.last, dtype=bool),
            piece_chunks=np.array(p_chunks, dtype=i64), piece_frames=np.array(p_frames, dtype=i64),
            chunk_ids=chunk_ids, chunk_index=np.array(c_index, dtype=i64),
            chunk_start=np.array(c_start, dtype=i64), chunk_end=np.array(c_end, dtype=i64),
            chunk_frames=np.array(c_frames, dtype=i64), frame_ids=frame_ids,
            frame_code=np.array(f_code, dtype=np.int8), frame_start=np.array(f_start, dtype=i64),
            frame_end=np.array(f_end, dtype=i64), protein_length=np.array(f_plen, dtype=i64),
            nucleotides=nts, proteins=prots, chunk_ambiguous=np.array(c_ambiguous, dtype=bool))


def iter_blocks(records: Iterable[SeqRecord], chunk_size: int, min_length: int = 1, *,
                frame0: int = 0, block_bases: int | None = None,
                block_records: int | None = None) -> Iterator[PlanBlock]:
    """Plan `records` in order, in blocks (of BLOCK_BASES and BLOCK_RECORDS unless given);
    `frame0` numbers the first frame (a resumed run starts inside the input)."""
    block_bases = block_bases or BLOCK_BASES
    block_records = block_records or BLOCK_RECORDS
    builder = _BlockBuilder(chunk_size)
    for record in records:
        seq = record.seq
        length = len(seq)
        bases = seq.translate(_UPPER)
        rna = b"U" in bases
        if rna:
            # RNA input: the models only know DNA, and a U would make every codon untranslatable.
            bases = bases.replace(b"U", b"T")
        reason = EMPTY if length == 0 else (
            f"shorter than --min-length {min_length}" if length < min_length else "")
        spans = [] if reason else ([(0, length)] if length <= chunk_size
                                   else chunk_spans(length, chunk_size))
        info = RecordInfo(record.index, record.id, record.header, record.original_id, seq,
                          record_flags(record, rna), reason, len(spans),
                          record.quality, raw_header=record.raw_header or None)
        if length <= block_bases or not spans:
            if builder.records and builder.size + length > block_bases:
                block = builder.build(frame0)
                frame0 += block.n_frames
                yield block
                builder = _BlockBuilder(chunk_size)
            builder.add(info, 0, spans, bases if spans else b"", 0, True)
        else:
            # A long record is planned in runs of whole chunks, each with the bases it covers,
            # so that the arrays stay the size of a block whatever the record's length.
            first = 0
            while first < len(spans):
                room = max(1, (block_bases - builder.size) // chunk_size)
                part = spans[first:first + room]
                lo, hi = part[0][0], part[-1][1]
                builder.add(info, first, part, bases[lo:hi], lo, first + len(part) == len(spans))
                first += len(part)
                if first < len(spans):
                    block = builder.build(frame0)
                    frame0 += block.n_frames
                    yield block
                    builder = _BlockBuilder(chunk_size)
        if builder.size >= block_bases or len(builder.records) >= block_records:
            block = builder.build(frame0)
            frame0 += block.n_frames
            yield block
            builder = _BlockBuilder(chunk_size)
    if builder.records:
        yield builder.build(frame0)
