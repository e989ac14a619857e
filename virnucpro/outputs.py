"""The output folder of one input, and every file written into it.

`OutputLayout` owns the paths (one object, so no stage invents a file name). `ResultWriter`
takes each record's plan and frame probabilities in input order and writes all tables in one
streaming pass into a staging folder; `publish` then moves the finished files into place, so
an interrupted run never leaves a half-written table where a user would read it.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from virnucpro.errors import OutputError
from virnucpro.plan import RecordPlan
from virnucpro.rollup import (
    UNSCORED,
    VIRUS,
    ChunkCall,
    SequenceCall,
    call_chunk,
    call_sequence,
    frame_call,
)

FRAMES_COLUMNS = ["frame_id", "sequence_id", "chunk_index", "strand", "frame", "start", "end",
                  "protein_length", "p_others", "p_virus", "call", "status"]
CHUNKS_COLUMNS = ["chunk_id", "sequence_id", "chunk_index", "start", "end", "kept_frames",
                  "max_p_virus", "max_p_others", "call", "reason"]
SEQUENCES_COLUMNS = ["sequence_id", "length", "chunks", "scored_chunks", "viral_chunks",
                     "viral_share", "max_p_virus", "mean_p_virus", "call", "flags", "reason"]
FASTA_LINE = 80


def fmt_score(x: float | None) -> str:
    """The reference's score text: the shortest form that reads back to the same float32."""
    return "" if x is None else str(np.float32(x))


def fmt_share(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


@dataclass(frozen=True)
class OutputLayout:
    """Every path of one input's output folder."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / ".virnucpro"

    @property
    def state(self) -> Path:
        return self.work / "state.json"

    @property
    def shards(self) -> Path:
        return self.work / "shards"

    @property
    def staging(self) -> Path:
        return self.work / "staging"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    FILES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "prediction_results.txt",
             "prediction_results_highestscore.csv", "viral.fasta")
    EMBEDDINGS = "embeddings"
    REPORT = "report.html"  # written after run.json by virnucpro.report

    def owned(self) -> list[Path]:
        """Everything a run writes here (what --force may remove)."""
        return [self.root / f for f in (*self.FILES, "run.json", self.REPORT, self.EMBEDDINGS,
                                        ".virnucpro")]


class ResultWriter:
    """Writes the tables of one input into `layout.staging`, one record at a time."""

    def __init__(self, layout: OutputLayout, threshold: float, save_embeddings: bool,
                 shard_frames: int) -> None:
        self.layout = layout
        self.shard_frames = shard_frames
        self._frame_counter = 0
        self.threshold = threshold
        stage = layout.staging
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        self._files: dict[str, TextIO] = {
            name: open(stage / name, "w", encoding="utf-8", newline="\n") for name in layout.FILES
        }
        self._write("frames.tsv", FRAMES_COLUMNS)
        self._write("chunks.tsv", CHUNKS_COLUMNS)
        self._write("sequences.tsv", SEQUENCES_COLUMNS)
        self._write("prediction_results.txt", ["Sequence_ID", "Prediction", "score1", "score2"])
        self._highest = ExternalSorter(stage / "sort-runs")
        self.counts = {"sequences": 0, "sequences_virus": 0, "sequences_others": 0,
                       "sequences_unscored": 0, "bases": 0, "chunks": 0, "chunks_scored": 0,
                       "chunks_virus": 0, "frames": 0, "frames_failed": 0,
                       "short_sequences": 0}
        self._embeddings = stage / layout.EMBEDDINGS if save_embeddings else None
        self._embedding_index: TextIO | None = None
        if self._embeddings is not None:
            self._embeddings.mkdir()
            self._embedding_index = open(self._embeddings / "index.tsv", "w", encoding="utf-8")
            self._embedding_index.write("frame_id\tfile\trow\n")

    def _write(self, name: str, fields: list[str]) -> None:
        self._files[name].write("\t".join(fields) + "\n")

    def add_embeddings(self, shard: int, features: np.ndarray | None) -> None:
        """Keep one shard's features as `embeddings/features-NNNNNN.safetensors`."""
        from safetensors.numpy import save_file

        if features is None:
            raise OutputError("--save-embeddings: a finished shard holds no features", path=self.layout.shards)
        assert self._embeddings is not None
        name = f"features-{shard:06d}.safetensors"
        save_file({"features": np.ascontiguousarray(features, dtype=np.float32)},
                  str(self._embeddings / name), metadata={"frames": str(len(features))})

    def add_record(self, plan: RecordPlan, probs: np.ndarray, ok: list[bool],
                   reasons: list[str]) -> SequenceCall:
        """Write one record's frames, chunks and sequence rows; `probs` is [frames, 2]."""
        rid = plan.record.id
        row = 0
        chunk_calls: list[ChunkCall] = []
        for chunk in plan.chunks:
            n = len(chunk.frames)
            cprobs, cok = probs[row:row + n], ok[row:row + n]
            for j, frame in enumerate(chunk.frames):
                p_others, p_virus = (float(cprobs[j, 0]), float(cprobs[j, 1])) if cok[j] else (None, None)
                call = frame_call(p_others, p_virus) if cok[j] else UNSCORED
                status = "ok" if cok[j] else f"failed: {reasons[row + j]}"
                self._write("frames.tsv", [
                    frame.frame_id, rid, str(chunk.index + 1), frame.strand, str(frame.frame),
                    str(frame.start + 1), str(frame.end), str(len(frame.protein)),
                    fmt_score(p_others), fmt_score(p_virus), call, status])
                if self._embedding_index is not None:
                    shard, shard_row = divmod(self._frame_counter, self.shard_frames)
                    self._embedding_index.write(
                        f"{frame.frame_id}\tfeatures-{shard:06d}.safetensors\t{shard_row}\n")
                self._frame_counter += 1
                if cok[j]:
                    self._write("prediction_results.txt",
                                [frame.frame_id, call, fmt_score(p_others), fmt_score(p_virus)])
                else:
                    self.counts["frames_failed"] += 1
            cc = call_chunk(chunk.chunk_id, cprobs, cok)
            chunk_calls.append(cc)
            self._write("chunks.tsv", [
                chunk.chunk_id, rid, str(chunk.index + 1), str(chunk.start + 1), str(chunk.end),
                str(cc.kept_frames), fmt_score(cc.max_p_virus), fmt_score(cc.max_p_others),
                cc.call, cc.reason])
            if cc.call != UNSCORED:
                self._highest.add(f"{chunk.chunk_id}\t{cc.call == VIRUS}\n")
            row += n
        seq = call_sequence(rid, plan.length, chunk_calls, self.threshold, plan.unscored_reason)
        self._write("sequences.tsv", [
            rid, str(seq.length), str(seq.chunks), str(seq.scored_chunks), str(seq.viral_chunks),
            fmt_share(seq.viral_share), fmt_score(seq.max_p_virus), fmt_score(seq.mean_p_virus),
            seq.call, ",".join(plan.flags), seq.reason])
        if seq.call == VIRUS:
            self._write_fasta(plan)
        c = self.counts
        c["sequences"] += 1
        c[f"sequences_{seq.call}"] += 1
        c["bases"] += plan.length
        c["chunks"] += len(chunk_calls)
        c["chunks_scored"] += seq.scored_chunks
        c["chunks_virus"] += seq.viral_chunks
        c["frames"] += plan.n_frames
        c["short_sequences"] += "short" in plan.flags
        return seq

    def _write_fasta(self, plan: RecordPlan) -> None:
        out = self._files["viral.fasta"]
        record = plan.record
        header = record.header if not record.renamed else f"{record.id} {record.header}"
        out.write(f">{header}\n")
        for i in range(0, len(record.seq), FASTA_LINE):
            out.write(record.seq[i:i + FASTA_LINE] + "\n")

    def close(self) -> None:
        # Sorted as plain strings, as pandas sorts the reference's ids. Sorting whole lines
        # is sorting by id: ids hold no tab and no byte below it.
        out = self._files["prediction_results_highestscore.csv"]
        out.write("Modified_ID\tIs_Virus\n")
        out.writelines(self._highest.sorted_lines())
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        if self._embedding_index is not None:
            self._embedding_index.close()

    def publish(self, run_info: dict) -> None:
        """Move the staged files into the output folder, then write run.json last."""
        root = self.layout.root
        for name in self.layout.FILES:
            os.replace(self.layout.staging / name, root / name)
        if self._embeddings is not None:
            target = root / self.layout.EMBEDDINGS
            if target.exists():
                shutil.rmtree(target)
            os.replace(self._embeddings, target)
        write_json_atomic(self.layout.run_json, run_info)


class ExternalSorter:
    """Sorts text lines in bounded memory: sorted runs spill to files, then merge."""

    def __init__(self, folder: Path, run_lines: int = 500_000) -> None:
        self.folder = folder
        self.run_lines = run_lines
        self._lines: list[str] = []
        self._runs: list[Path] = []

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.run_lines:
            self._spill()

    def _spill(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"run-{len(self._runs):05d}.txt"
        self._lines.sort()
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(self._lines)
        self._runs.append(path)
        self._lines = []

    def sorted_lines(self) -> Iterator[str]:
        self._lines.sort()
        if not self._runs:
            yield from self._lines
            return
        files = [open(p, encoding="utf-8", newline="\n") for p in self._runs]
        try:
            yield from heapq.merge(self._lines, *files)
        finally:
            for fh in files:
                fh.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
