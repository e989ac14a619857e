"""The text of the output files: the tables' columns and headers, the score formats, the FASTA and
FASTQ entries of viral sequences and regions, and an external sort for the highest-score table.
`TableWriter` (tables.py) writes them."""

from __future__ import annotations

import heapq
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from virnucpro.layout import OutputLayout
from virnucpro.plan import FRAME_LETTERS, RecordInfo
from virnucpro.regions import REGIONS_COLUMNS, Region

FRAMES_COLUMNS = ["frame_id", "sequence_id", "chunk_index", "strand", "frame", "start", "end",
                  "protein_length", "p_others", "p_virus", "call", "status"]
CHUNKS_COLUMNS = ["chunk_id", "sequence_id", "chunk_index", "start", "end", "kept_frames",
                  "max_p_virus", "max_p_others", "call", "reason"]
SEQUENCES_COLUMNS = ["sequence_id", "length", "chunks", "scored_chunks", "viral_chunks",
                     "viral_share", "max_p_virus", "mean_p_virus", "call", "flags", "reason",
                     "regions"]
FASTA_LINE = 80
STRAND_FRAME = np.array([f"{'+' if c[0] == 'F' else '-'}\t{c[1]}" for c in FRAME_LETTERS],
                         dtype=object)

def format_scores(values: np.ndarray) -> list[str]:
    """The reference's score text, for a whole column: the shortest form that reads back to
    the same float32, i.e. `str(numpy.float32(x))` (numpy's own formatting, per element)."""
    return list(map(str, np.asarray(values, dtype=np.float32)))


def fmt_score(x: float | None) -> str:
    return "" if x is None else str(np.float32(x))


def fmt_share(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


HEADERS = {
    OutputLayout.FRAMES: FRAMES_COLUMNS, OutputLayout.CHUNKS: CHUNKS_COLUMNS,
    OutputLayout.SEQUENCES: SEQUENCES_COLUMNS, OutputLayout.REGIONS: REGIONS_COLUMNS,
    OutputLayout.PREDICTIONS: ["Sequence_ID", "Prediction", "score1", "score2"],
    OutputLayout.EMBEDDING_INDEX: ["frame_id", "file", "row"],
}


def header_bytes(info: RecordInfo) -> bytes:
    """The input's header line (its text after '>' or '@') byte for byte, the new id first if
    renamed: a header in Latin-1 or another encoding is kept, not decoded."""
    raw = info.raw_header if info.raw_header is not None else info.header.encode("utf-8")
    return raw if not info.renamed else info.id.encode("utf-8") + b" " + raw


def wrapped(seq: bytes) -> bytes:
    return b"".join(seq[i:i + FASTA_LINE] + b"\n" for i in range(0, len(seq), FASTA_LINE))


def fasta_entry(info: RecordInfo) -> bytes:
    return b">" + header_bytes(info) + b"\n" + wrapped(info.seq)


def fastq_entry(info: RecordInfo) -> bytes:
    """The record as it came (bases and qualities), for viral.fastq."""
    return b"@" + header_bytes(info) + b"\n" + info.seq + b"\n+\n" + (info.quality or b"") + b"\n"


def region_entry(info: RecordInfo, region: Region) -> bytes:
    """`>SEQ|region_2|provirus|start-end`, then the region's bases as given."""
    name = f">{info.id}|region_{region.number}|{region.kind}|{region.start}-{region.end}\n"
    return name.encode("utf-8") + wrapped(info.seq[region.start - 1:region.end])


def sort_lines(lines: Iterable[str], folder: Path, run_lines: int = 200_000) -> Iterator[str]:
    """Text lines in sorted order, in bounded memory: sorted runs spill to files under
    `folder`, then merge (the folder is removed at the end)."""
    runs: list[Path] = []
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= run_lines:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"run-{len(runs):05d}.txt"
            batch.sort()
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(batch)
            runs.append(path)
            batch = []
    batch.sort()
    if not runs:
        yield from batch
        return
    files = [open(p, encoding="utf-8", newline="\n") for p in runs]
    try:
        yield from heapq.merge(batch, *files)
    finally:
        for fh in files:
            fh.close()
        shutil.rmtree(folder, ignore_errors=True)
