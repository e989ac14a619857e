"""The output folder of one input, and every file written into it.

`OutputLayout` owns the paths (one object, so no stage invents a file name). `TableWriter`
writes the tables while the input is scored: the caller hands it the record pieces whose
frames are all scored, in input order, and it formats their rows in bulk (whole columns at
once) into a staging folder. At each record boundary it can `checkpoint`: the staged files
are synced and their lengths recorded, so a resumed run cuts them back to that boundary and
goes on. `close` sorts the highest-score file, `publish` moves everything into place, so a
table in the output folder is always whole.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from virnucpro.errors import OutputError
from virnucpro.features import OK, STATUS_REASONS
from virnucpro.plan import FRAME_LETTERS, PlanBlock, RecordInfo
from virnucpro.rollup import VIRUS, call_chunks, call_sequence, frame_calls

FRAMES_COLUMNS = ["frame_id", "sequence_id", "chunk_index", "strand", "frame", "start", "end",
                  "protein_length", "p_others", "p_virus", "call", "status"]
CHUNKS_COLUMNS = ["chunk_id", "sequence_id", "chunk_index", "start", "end", "kept_frames",
                  "max_p_virus", "max_p_others", "call", "reason"]
SEQUENCES_COLUMNS = ["sequence_id", "length", "chunks", "scored_chunks", "viral_chunks",
                     "viral_share", "max_p_virus", "mean_p_virus", "call", "flags", "reason"]
FASTA_LINE = 80
STAGING_FORMAT = 1  # of the staged tables and their checkpoint; a mismatch starts them over
_STRAND_FRAME = np.array([f"{'+' if c[0] == 'F' else '-'}\t{c[1]}" for c in FRAME_LETTERS],
                         dtype=object)


def format_scores(values: np.ndarray) -> list[str]:
    """The reference's score text, for a whole column: the shortest form that reads back to
    the same float32, i.e. `str(numpy.float32(x))` (numpy's own formatting, per element)."""
    return list(map(str, np.asarray(values, dtype=np.float32)))


def fmt_score(x: float | None) -> str:
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
    def checkpoint(self) -> Path:
        return self.staging / "checkpoint.json"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    FILES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "prediction_results.txt",
             "prediction_results_highestscore.csv", "viral.fasta")
    EMBEDDINGS = "embeddings"
    EMBEDDING_INDEX = "embeddings/index.tsv"
    HIGHEST_UNSORTED = "highest-unsorted.txt"  # staged; sorted into the .csv at the end
    REPORT = "report.html"  # written after run.json by virnucpro.report

    def owned(self) -> list[Path]:
        """Everything a run writes here (what --force may remove)."""
        return [self.root / f for f in (*self.FILES, "run.json", self.REPORT, self.EMBEDDINGS,
                                        ".virnucpro")]


_HEADERS = {
    "frames.tsv": FRAMES_COLUMNS, "chunks.tsv": CHUNKS_COLUMNS,
    "sequences.tsv": SEQUENCES_COLUMNS,
    "prediction_results.txt": ["Sequence_ID", "Prediction", "score1", "score2"],
    OutputLayout.EMBEDDING_INDEX: ["frame_id", "file", "row"],
}


@dataclass
class _OpenRecord:
    """A record written in several pieces (a long one): what its sequence row needs."""

    maxima: list[np.ndarray] = field(default_factory=list)
    viral: int = 0
    failed: int = 0


def _new_counts() -> dict[str, int]:
    return {"sequences": 0, "sequences_virus": 0, "sequences_others": 0,
            "sequences_unscored": 0, "bases": 0, "chunks": 0, "chunks_scored": 0,
            "chunks_virus": 0, "frames": 0, "frames_failed": 0, "short_sequences": 0}


class TableWriter:
    """Writes the tables of one input into `layout.staging`, piece by piece, in input order.

    `settings` are the parameters the rows depend on; a checkpoint left with other settings
    (or another staging format) is not resumed: the tables start over from the shard files.
    """

    def __init__(self, layout: OutputLayout, *, threshold: float, save_embeddings: bool,
                 shard_frames: int, settings: dict, resume: bool) -> None:
        self.layout = layout
        self.threshold = threshold
        self.shard_frames = shard_frames
        self.save_embeddings = save_embeddings
        self.settings = {**settings, "format": STAGING_FORMAT, "threshold": threshold,
                         "save_embeddings": save_embeddings, "shard_frames": shard_frames}
        self._names = ["frames.tsv", "chunks.tsv", "sequences.tsv", "prediction_results.txt",
                       "viral.fasta", layout.HIGHEST_UNSORTED]
        if save_embeddings:
            self._names.append(layout.EMBEDDING_INDEX)
        self._open: _OpenRecord | None = None
        self.counts = _new_counts()
        self.position: dict | None = None  # where the staged tables end, when resumed
        self.restart_reason = ""  # why staged tables were not resumed, if there were some
        if resume:
            self.position, self.restart_reason = self._resume()
        if self.position is None:
            self._start_over()
        self._files: dict[str, BinaryIO] = {n: open(layout.staging / n, "ab") for n in self._names}

    # -- staging, checkpoints ---------------------------------------------------------------

    def _start_over(self) -> None:
        stage = self.layout.staging
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        if self.save_embeddings:
            (stage / self.layout.EMBEDDINGS).mkdir()
        for name in self._names:
            header = _HEADERS.get(name)
            (stage / name).write_bytes(("\t".join(header) + "\n").encode() if header else b"")
        self.counts = _new_counts()

    def _resume(self) -> tuple[dict | None, str]:
        """Cut the staged files back to the last checkpoint: its position, or None and why
        the staged files cannot be trusted (empty when there were none)."""
        try:
            state = json.loads(self.layout.checkpoint.read_text())
        except FileNotFoundError:
            return None, ""
        except (OSError, ValueError) as exc:
            return None, f"unreadable checkpoint ({exc})"
        if state.get("settings") != self.settings:
            return None, "written with other settings (threshold, embeddings or format)"
        sizes = state.get("sizes", {})
        stage = self.layout.staging
        for name in self._names:
            path = stage / name
            if name not in sizes or not path.is_file() or path.stat().st_size < sizes[name]:
                return None, f"{name} is shorter than its checkpoint says"
        for name in self._names:
            os.truncate(stage / name, sizes[name])
        self.counts = {**_new_counts(), **state["counts"]}
        return state["position"], ""

    def checkpoint(self, position: dict) -> None:
        """Record that the staged files hold whole records up to `position` (the feed's
        restart point). Only between records; the files are synced first."""
        assert self._open is None, "a checkpoint falls between records"
        sizes = {}
        for name, fh in self._files.items():
            fh.flush()
            os.fsync(fh.fileno())
            sizes[name] = fh.tell()
        write_json_atomic(self.layout.checkpoint, {"settings": self.settings, "sizes": sizes,
                                                   "counts": self.counts, "position": position})

    # -- rows ----------------------------------------------------------------------------------

    def _put(self, name: str, rows: Iterable[str]) -> None:
        text = "".join(rows)
        if text:
            self._files[name].write(text.encode("utf-8"))

    def add_embeddings(self, shard: int, features: np.ndarray | None) -> None:
        """Keep one shard's features as `embeddings/features-NNNNNN.safetensors`."""
        from safetensors.numpy import save_file

        if features is None:
            raise OutputError("--save-embeddings: a finished shard holds no features",
                              path=self.layout.shards)
        name = f"features-{shard:06d}.safetensors"
        save_file({"features": np.ascontiguousarray(features, dtype=np.float32)},
                  str(self.layout.staging / self.layout.EMBEDDINGS / name),
                  metadata={"frames": str(len(features))})

    @property
    def between_records(self) -> bool:
        return self._open is None

    def write(self, block: PlanBlock, p0: int, p1: int, probs: np.ndarray, status: np.ndarray) -> None:
        """Write the rows of pieces p0..p1-1 of `block`, whose frames are all scored: `probs`
        [frames, 2] and `status` are those of exactly these pieces' frames."""
        fa, fb = int(block.piece_frames[p0]), int(block.piece_frames[p1])
        ca, cb = int(block.piece_chunks[p0]), int(block.piece_chunks[p1])
        n = fb - fa
        assert len(probs) == n == len(status)
        ok = (status == OK) & np.isfinite(probs).all(axis=1)
        ids = np.array([r.id for r in block.records[p0:p1]], dtype=object)
        frame_piece = np.repeat(np.arange(p1 - p0), np.diff(block.piece_frames[p0:p1 + 1]))
        chunk_piece = np.repeat(np.arange(p1 - p0), np.diff(block.piece_chunks[p0:p1 + 1]))
        c_offsets = block.chunk_frames[ca:cb + 1] - fa
        if n:
            self._write_frames(block, fa, fb, ca, cb, probs, status, ok, ids[frame_piece], c_offsets)
        chunks = call_chunks(c_offsets, probs, ok)
        self._write_chunks(block, ca, cb, chunks, ids[chunk_piece])
        self._write_sequences(block, p0, p1, ca, chunks)

    def _write_frames(self, block: PlanBlock, fa: int, fb: int, ca: int, cb: int,
                      probs: np.ndarray, status: np.ndarray, ok: np.ndarray, seq_ids: np.ndarray,
                      c_offsets: np.ndarray) -> None:
        p_others, p_virus = format_scores(probs[:, 0]), format_scores(probs[:, 1])
        calls = frame_calls(probs, ok)
        states = np.full(len(ok), "ok", dtype=object)
        for i in np.flatnonzero(~ok):
            p_others[i] = p_virus[i] = ""
            states[i] = f"failed: {STATUS_REASONS.get(int(status[i]), 'not scored')}"
        chunk_no = np.repeat(block.chunk_index[ca:cb] + 1, np.diff(c_offsets))
        fids = block.frame_ids[fa:fb]
        self._put("frames.tsv", (
            f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4] + 1}\t{r[5]}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\t{r[10]}\n"
            for r in zip(fids, seq_ids.tolist(), chunk_no.tolist(),
                         _STRAND_FRAME[block.frame_code[fa:fb]].tolist(),
                         block.frame_start[fa:fb].tolist(), block.frame_end[fa:fb].tolist(),
                         block.protein_length[fa:fb].tolist(), p_others, p_virus, calls.tolist(),
                         states.tolist(), strict=True)))
        good = np.flatnonzero(ok).tolist()
        self._put("prediction_results.txt", (
            f"{fids[i]}\t{calls[i]}\t{p_others[i]}\t{p_virus[i]}\n" for i in good))
        if self.save_embeddings:
            first = block.frame0 + fa
            size = self.shard_frames
            self._put(self.layout.EMBEDDING_INDEX, (
                f"{fid}\tfeatures-{g // size:06d}.safetensors\t{g % size}\n"
                for g, fid in enumerate(fids, start=first)))
        self.counts["frames"] += len(ok)
        self.counts["frames_failed"] += len(ok) - len(good)

    def _write_chunks(self, block: PlanBlock, ca: int, cb: int, chunks, seq_ids: np.ndarray) -> None:
        scored = chunks.is_scored
        max_v = np.full(len(scored), "", dtype=object)
        max_o = np.full(len(scored), "", dtype=object)
        if scored.any():
            max_v[scored] = format_scores(chunks.max_p_virus[scored])
            max_o[scored] = format_scores(chunks.max_p_others[scored])
        calls, reasons = chunks.calls(), chunks.reasons()
        cids = block.chunk_ids[ca:cb]
        self._put("chunks.tsv", (
            f"{r[0]}\t{r[1]}\t{r[2] + 1}\t{r[3] + 1}\t{r[4]}\t{r[5]}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\n"
            for r in zip(cids, seq_ids.tolist(), block.chunk_index[ca:cb].tolist(),
                         block.chunk_start[ca:cb].tolist(), block.chunk_end[ca:cb].tolist(),
                         chunks.kept.tolist(), max_v.tolist(), max_o.tolist(), calls.tolist(),
                         reasons.tolist(), strict=True)))
        self._put(self.layout.HIGHEST_UNSORTED, (
            f"{cids[i]}\t{bool(chunks.viral[i])}\n" for i in np.flatnonzero(scored).tolist()))
        c = self.counts
        c["chunks"] += len(scored)
        c["chunks_scored"] += int(np.count_nonzero(scored))
        c["chunks_virus"] += int(np.count_nonzero(chunks.viral))

    def _write_sequences(self, block: PlanBlock, p0: int, p1: int, ca: int, chunks) -> None:
        rows, fasta = [], []
        offsets = block.piece_chunks[p0:p1 + 1] - ca
        for p in range(p0, p1):
            lo, hi = int(offsets[p - p0]), int(offsets[p - p0 + 1])
            good = chunks.is_scored[lo:hi]
            maxima = chunks.max_p_virus[lo:hi][good]
            viral = int(np.count_nonzero(chunks.viral[lo:hi]))
            failed = int(np.count_nonzero(chunks.kept[lo:hi][~good]))
            info = block.records[p]
            if not block.piece_last[p] or self._open is not None:  # a long record's pieces
                acc = self._open or _OpenRecord()
                acc.maxima.append(maxima)
                acc.viral += viral
                acc.failed += failed
                self._open = acc
                if not block.piece_last[p]:
                    continue
                self._open = None
                maxima = np.concatenate(acc.maxima)
                viral, failed = acc.viral, acc.failed
            seq = call_sequence(info.id, info.length, info.n_chunks, maxima, viral, self.threshold,
                                unscored_reason=info.unscored_reason, failed_chunks=failed)
            rows.append(f"{info.id}\t{seq.length}\t{seq.chunks}\t{seq.scored_chunks}\t"
                        f"{seq.viral_chunks}\t{fmt_share(seq.viral_share)}\t"
                        f"{fmt_score(seq.max_p_virus)}\t{fmt_score(seq.mean_p_virus)}\t{seq.call}\t"
                        f"{','.join(info.flags)}\t{seq.reason}\n")
            if seq.call == VIRUS:
                fasta.append(_fasta_entry(info))
            c = self.counts
            c["sequences"] += 1
            c[f"sequences_{seq.call}"] += 1
            c["bases"] += info.length
            c["short_sequences"] += "short" in info.flags
        self._put("sequences.tsv", rows)
        if fasta:
            self._files["viral.fasta"].write(b"".join(fasta))

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync the staged tables and sort the highest-score file into its .csv."""
        for fh in self._files.values():
            fh.flush()
        stage = self.layout.staging
        with open(stage / "prediction_results_highestscore.csv", "w", encoding="utf-8",
                  newline="\n") as out:
            # Sorted as plain strings, as pandas sorts the reference's ids. Sorting whole
            # lines is sorting by id: ids hold no tab and no byte below it.
            out.write("Modified_ID\tIs_Virus\n")
            with open(stage / self.layout.HIGHEST_UNSORTED, encoding="utf-8", newline="\n") as src:
                out.writelines(sort_lines(src, stage / "sort-runs"))
            out.flush()
            os.fsync(out.fileno())
        for fh in self._files.values():
            os.fsync(fh.fileno())
            fh.close()
        self._files = {}

    def abandon(self) -> None:
        """Close the staged files as they are (the run stops here; a resume goes on)."""
        for fh in self._files.values():
            fh.close()
        self._files = {}

    def publish(self) -> None:
        """Move the staged tables (and embeddings) into the output folder."""
        root = self.layout.root
        for name in self.layout.FILES:
            os.replace(self.layout.staging / name, root / name)
        if self.save_embeddings:
            target = root / self.layout.EMBEDDINGS
            if target.exists():
                shutil.rmtree(target)
            os.replace(self.layout.staging / self.layout.EMBEDDINGS, target)


def _fasta_entry(info: RecordInfo) -> bytes:
    header = info.header if not info.renamed else f"{info.id} {info.header}"
    seq = info.seq
    lines = [seq[i:i + FASTA_LINE] for i in range(0, len(seq), FASTA_LINE)]
    return b">" + header.encode("utf-8") + b"\n" + b"".join(line + b"\n" for line in lines)


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


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
