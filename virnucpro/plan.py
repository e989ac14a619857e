"""What will be scored for each record: its chunks and their kept frames, plus flags.

`plan_record` is a pure function of a record and the run's parameters, so the scoring pass
and the writing pass can each rebuild the plan while streaming, instead of keeping it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from virnucpro.chunking import chunk_id, chunk_spans
from virnucpro.fasta import SHORT_SEQUENCE_BP, SeqRecord
from virnucpro.translation import Frame, translate_six_frames

EMPTY = "empty sequence"


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    chunk_id: str
    index: int  # 0-based
    start: int  # 0-based, end-exclusive on the sequence
    end: int
    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class RecordPlan:
    record: SeqRecord
    chunks: tuple[ChunkPlan, ...]
    unscored_reason: str
    flags: tuple[str, ...]

    @property
    def length(self) -> int:
        return len(self.record.seq)

    def frames(self) -> Iterator[Frame]:
        for chunk in self.chunks:
            yield from chunk.frames

    @property
    def n_frames(self) -> int:
        return sum(len(c.frames) for c in self.chunks)


def plan_record(record: SeqRecord, chunk_size: int, min_length: int = 1) -> RecordPlan:
    length = len(record.seq)
    flags = []
    if 0 < length < SHORT_SEQUENCE_BP:
        flags.append("short")
    if record.renamed:
        flags.append(f"renamed_from:{record.original_id}")
    seq = record.seq.upper()
    if "U" in seq:
        # RNA input: the models only know DNA, and a U would make every codon untranslatable.
        seq = seq.replace("U", "T")
        flags.append("rna")
    if length == 0:
        return RecordPlan(record, (), EMPTY, tuple(flags))
    if length < min_length:
        return RecordPlan(record, (), f"shorter than --min-length {min_length}", tuple(flags))
    chunks = []
    for k, (start, end) in enumerate(chunk_spans(length, chunk_size)):
        cid = chunk_id(record.id, k)
        chunks.append(ChunkPlan(cid, k, start, end, tuple(translate_six_frames(seq[start:end], cid, start))))
    return RecordPlan(record, tuple(chunks), "", tuple(flags))


def iter_plans(records: Iterable[SeqRecord], chunk_size: int, min_length: int) -> Iterator[RecordPlan]:
    for record in records:
        yield plan_record(record, chunk_size, min_length)
