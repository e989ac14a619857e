"""`TableWriter`: the tables of one input, written while it is scored.

The caller hands it the record pieces whose frames are all scored, in input order, and it
formats their rows in bulk (whole columns at once) into a staging folder. At each record
boundary it can `checkpoint`: the staged files are synced and their lengths recorded, so a
resumed run cuts them back to that boundary and goes on. `close` sorts the highest-score file,
`publish` moves everything into place, so a table in the output folder is always whole.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from virnucpro import table_text as T
from virnucpro.errors import OutputError
from virnucpro.layout import OutputLayout as L
from virnucpro.layout import write_json_atomic
from virnucpro.plan import PlanBlock, RecordInfo
from virnucpro.regions import KINDS, Region, RegionRule, find_regions
from virnucpro.rollup import VIRUS, ChunkColumns, call_chunks, call_sequence, frame_calls
from virnucpro.scoring import OK, STATUS_REASONS
from virnucpro.seqfile import SHORT_SEQUENCE_BP

STAGING_FORMAT = 2  # of the staged tables and their checkpoint; a mismatch starts them over


@dataclass
class _OpenRecord:
    """A record written in several pieces (a long one): its chunks so far, for its sequence row
    and its regions."""

    starts: list[np.ndarray] = field(default_factory=list)
    ends: list[np.ndarray] = field(default_factory=list)
    chunks: list[ChunkColumns] = field(default_factory=list)


def _new_counts() -> dict[str, int]:
    return {"sequences": 0, "sequences_virus": 0, "sequences_others": 0,
            "sequences_unscored": 0, "bases": 0, "chunks": 0, "chunks_scored": 0,
            "chunks_virus": 0, "frames": 0, "frames_failed": 0, "short_sequences": 0,
            "regions": 0, **{f"regions_{kind}": 0 for kind in KINDS},
            "sequences_with_regions": 0}


def _concat(parts: list[ChunkColumns]) -> ChunkColumns:
    if len(parts) == 1:
        return parts[0]
    return ChunkColumns(*(np.concatenate([getattr(p, name) for p in parts])
                          for name in ("kept", "scored", "max_p_virus", "max_p_others", "viral",
                                       "ambiguous")))


class TableWriter:
    """Writes the tables of one input into `layout.staging`, piece by piece, in input order.

    `settings` are the parameters the rows depend on; a checkpoint left with other settings
    (or another staging format) is not resumed: the tables start over from the shard files.
    `frames` False leaves out the frame-level files (frames.tsv, the reference's two files, the
    embeddings' index), which do not depend on the calls' settings: `rescore` keeps them.
    `sequence_files` False leaves out the files that need the input's bases (viral.fasta,
    regions.fasta, viral.fastq); `fastq`: the input is FASTQ, so viral.fastq is written too.
    """

    def __init__(self, layout: L, *, threshold: float, save_embeddings: bool,
                 shard_frames: int, settings: dict, resume: bool,
                 regions: RegionRule | None = None, fastq: bool = False, frames: bool = True,
                 sequence_files: bool = True) -> None:
        self.layout = layout
        self.threshold = threshold
        self.shard_frames = shard_frames
        self.save_embeddings = save_embeddings and frames
        self.regions = regions or RegionRule()
        self.frames = frames
        self.sequence_files = sequence_files
        self.fastq = fastq and sequence_files
        self.settings = {**settings, "format": STAGING_FORMAT, "threshold": threshold,
                         "save_embeddings": save_embeddings, "shard_frames": shard_frames,
                         **self.regions.parameters(), "fastq": fastq}
        tables = [L.CHUNKS, L.SEQUENCES, L.REGIONS]
        if frames:
            tables = [L.FRAMES, *tables, L.PREDICTIONS, L.HIGHEST_UNSORTED]
        if sequence_files:
            tables += [L.VIRAL_FASTA, L.REGIONS_FASTA, *(L.FASTQ_FILES if fastq else ())]
        if self.save_embeddings:
            tables.append(L.EMBEDDING_INDEX)
        self._names = tables
        self._rows: dict[str, list[str]] = {L.SEQUENCES: [], L.REGIONS: []}
        self._bytes: dict[str, list[bytes]] = {n: [] for n in L.SEQUENCE_FILES if n in tables}
        self._open: _OpenRecord | None = None
        self.counts = _new_counts()
        self.position: dict | None = None  # where the staged tables end, when resumed
        self.restart_reason = ""  # why staged tables were not resumed, if there were some
        if resume:
            self.position, self.restart_reason = self._resume()
        if self.position is None:
            self._start_over()
        self._files: dict[str, BinaryIO] = {n: open(layout.staging / n, "ab") for n in self._names}

    @property
    def published(self) -> list[str]:
        """The files `publish` moves into the output folder."""
        names = [n for n in self._names if n in self.layout.files(True)]
        if self.frames:
            names.append(L.HIGHEST)
        return names

    # -- staging, checkpoints ---------------------------------------------------------------

    def _start_over(self) -> None:
        stage = self.layout.staging
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        if self.save_embeddings:
            (stage / L.EMBEDDINGS).mkdir()
        for name in self._names:
            header = T.HEADERS.get(name)
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
        save_file({"features": np.ascontiguousarray(features, dtype=np.float32)},
                  str(self.layout.staging / L.EMBEDDINGS / L.embedding_file(shard)),
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
        chunks = call_chunks(c_offsets, probs, ok, None if block.chunk_ambiguous is None
                             else block.chunk_ambiguous[ca:cb])
        self._write_chunks(block.chunk_ids[ca:cb], ids[chunk_piece], block.chunk_index[ca:cb],
                           block.chunk_start[ca:cb], block.chunk_end[ca:cb], chunks)
        offsets = (block.piece_chunks[p0:p1 + 1] - ca).tolist()
        last = block.piece_last[p0:p1].tolist()
        small = None  # the chunk columns as Python lists, for records of at most one chunk
        for i, p in enumerate(range(p0, p1)):
            lo, hi = offsets[i], offsets[i + 1]
            if hi - lo <= 1 and last[i] and self._open is None:  # reads: no array per record
                if small is None:
                    small = (chunks.scored.tolist(), chunks.viral.tolist(),
                             chunks.max_p_virus.tolist(), chunks.kept.tolist(),
                             block.chunk_start[ca:cb].tolist(), block.chunk_end[ca:cb].tolist(),
                             chunks.ambiguous.tolist())
                self._finish_small(block.records[p], lo, hi, small)
                continue
            self._add_piece(block.records[p], last[i], block.chunk_start[ca + lo:ca + hi],
                            block.chunk_end[ca + lo:ca + hi], _slice(chunks, lo, hi))
        self._flush_rows()

    def write_record(self, info: RecordInfo, chunk_ids: list[str], chunk_start: np.ndarray,
                     chunk_end: np.ndarray, chunks: ChunkColumns) -> None:
        """The chunk, sequence and region rows of one whole record from its chunk calls (what
        `rescore` rebuilds from frames.tsv; `write` comes here by pieces)."""
        n = len(chunk_ids)
        self._write_chunks(chunk_ids, np.full(n, info.id, dtype=object), np.arange(n),
                           chunk_start, chunk_end, chunks)
        self._add_piece(info, True, chunk_start, chunk_end, chunks)
        self._flush_rows()

    def _flush_rows(self) -> None:
        """Write the rows of the records finished since the last call, a file at a time."""
        for name, rows in self._rows.items():
            if rows:
                self._put(name, rows)
                rows.clear()
        for name, entries in self._bytes.items():
            if entries:
                self._files[name].write(b"".join(entries))
                entries.clear()

    def _write_frames(self, block: PlanBlock, fa: int, fb: int, ca: int, cb: int,
                      probs: np.ndarray, status: np.ndarray, ok: np.ndarray, seq_ids: np.ndarray,
                      c_offsets: np.ndarray) -> None:
        p_others, p_virus = T.format_scores(probs[:, 0]), T.format_scores(probs[:, 1])
        calls = frame_calls(probs, ok)
        states = np.full(len(ok), "ok", dtype=object)
        for i in np.flatnonzero(~ok):
            p_others[i] = p_virus[i] = ""
            states[i] = f"failed: {STATUS_REASONS.get(int(status[i]), 'not scored')}"
        chunk_no = np.repeat(block.chunk_index[ca:cb] + 1, np.diff(c_offsets))
        fids = block.frame_ids[fa:fb]
        self._put(L.FRAMES, (
            f"{r[0]}\t{r[1]}\t{r[2]}\t{r[3]}\t{r[4] + 1}\t{r[5]}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\t{r[10]}\n"
            for r in zip(fids, seq_ids.tolist(), chunk_no.tolist(),
                         T.STRAND_FRAME[block.frame_code[fa:fb]].tolist(),
                         block.frame_start[fa:fb].tolist(), block.frame_end[fa:fb].tolist(),
                         block.protein_length[fa:fb].tolist(), p_others, p_virus, calls.tolist(),
                         states.tolist(), strict=True)))
        good = np.flatnonzero(ok).tolist()
        self._put(L.PREDICTIONS, (
            f"{fids[i]}\t{calls[i]}\t{p_others[i]}\t{p_virus[i]}\n" for i in good))
        if self.save_embeddings:
            first = block.frame0 + fa
            size = self.shard_frames
            self._put(L.EMBEDDING_INDEX, (
                f"{fid}\t{L.embedding_file(g // size)}\t{g % size}\n"
                for g, fid in enumerate(fids, start=first)))
        self.counts["frames"] += len(ok)
        self.counts["frames_failed"] += len(ok) - len(good)

    def _write_chunks(self, cids: list[str], seq_ids: np.ndarray, chunk_index: np.ndarray,
                      chunk_start: np.ndarray, chunk_end: np.ndarray, chunks: ChunkColumns) -> None:
        scored = chunks.is_scored
        max_v = np.full(len(scored), "", dtype=object)
        max_o = np.full(len(scored), "", dtype=object)
        if scored.any():
            max_v[scored] = T.format_scores(chunks.max_p_virus[scored])
            max_o[scored] = T.format_scores(chunks.max_p_others[scored])
        calls, reasons = chunks.calls(), chunks.reasons()
        self._put(L.CHUNKS, (
            f"{r[0]}\t{r[1]}\t{r[2] + 1}\t{r[3] + 1}\t{r[4]}\t{r[5]}\t{r[6]}\t{r[7]}\t{r[8]}\t{r[9]}\n"
            for r in zip(cids, seq_ids.tolist(), chunk_index.tolist(), chunk_start.tolist(),
                         chunk_end.tolist(), chunks.kept.tolist(), max_v.tolist(),
                         max_o.tolist(), calls.tolist(), reasons.tolist(), strict=True)))
        if self.frames:
            self._put(L.HIGHEST_UNSORTED, (
                f"{cids[i]}\t{bool(chunks.viral[i])}\n" for i in np.flatnonzero(scored).tolist()))
        c = self.counts
        c["chunks"] += len(scored)
        c["chunks_scored"] += int(np.count_nonzero(scored))
        c["chunks_virus"] += int(np.count_nonzero(chunks.viral))

    def _add_piece(self, info: RecordInfo, last: bool, chunk_start: np.ndarray,
                   chunk_end: np.ndarray, chunks: ChunkColumns) -> None:
        """One piece of a record; its sequence row and regions once its last piece is in."""
        if not last or self._open is not None:  # a long record's pieces
            acc = self._open or _OpenRecord()
            acc.starts.append(chunk_start)
            acc.ends.append(chunk_end)
            acc.chunks.append(chunks)
            self._open = acc
            if not last:
                return
            self._open = None
            chunk_start, chunk_end = np.concatenate(acc.starts), np.concatenate(acc.ends)
            chunks = _concat(acc.chunks)
        self._finish_record(info, chunk_start, chunk_end, chunks)

    def _finish_small(self, info: RecordInfo, lo: int, hi: int, cols: tuple[list, ...]) -> None:
        """`_finish_record` of a record of no chunk or one (chunk `lo` of the lists `cols`),
        with the same results, in plain Python: a read set has millions of them."""
        if hi == lo:
            self._record_rows(info, call_sequence(info.id, info.length, info.n_chunks, (), 0,
                                                  self.threshold,
                                                  unscored_reason=info.unscored_reason), [])
            return
        scored, viral, p, kept, start, end, ambiguous = (c[lo] for c in cols)
        seq = call_sequence(info.id, info.length, info.n_chunks, (p,) if scored else (),
                            int(viral), self.threshold, unscored_reason=info.unscored_reason,
                            failed_chunks=int(kept > 0 and not scored),
                            ambiguous_chunks=int(ambiguous))
        self._record_rows(info, seq, find_regions((start,), (end,), (scored > 0,), (viral,),
                                                  (p,), self.regions))

    def _finish_record(self, info: RecordInfo, chunk_start: np.ndarray, chunk_end: np.ndarray,
                       chunks: ChunkColumns) -> None:
        good = chunks.is_scored
        seq = call_sequence(info.id, info.length, info.n_chunks, chunks.max_p_virus[good],
                            int(np.count_nonzero(chunks.viral)), self.threshold,
                            unscored_reason=info.unscored_reason,
                            failed_chunks=int(np.count_nonzero(chunks.kept[~good])),
                            ambiguous_chunks=int(np.count_nonzero(chunks.ambiguous)))
        regions = find_regions(chunk_start, chunk_end, good, chunks.viral, chunks.max_p_virus,
                               self.regions) if len(good) else []
        self._record_rows(info, seq, regions)

    def _record_rows(self, info: RecordInfo, seq, regions: list[Region]) -> None:
        """A finished record's sequence row, region rows and sequence file entries."""
        self._rows[L.SEQUENCES].append(
            f"{info.id}\t{seq.length}\t{seq.chunks}\t{seq.scored_chunks}\t"
            f"{seq.viral_chunks}\t{T.fmt_share(seq.viral_share)}\t"
            f"{T.fmt_score(seq.max_p_virus)}\t{T.fmt_score(seq.mean_p_virus)}\t{seq.call}\t"
            f"{','.join(info.flags)}\t{seq.reason}\t{len(regions)}\n")
        if regions:
            self._rows[L.REGIONS].extend(
                f"{info.id}\t{r.number}\t{r.start}\t{r.end}\t{r.length}\t{r.chunks}\t"
                f"{r.viral_chunks}\t{T.fmt_score(r.mean_p_virus)}\t{T.fmt_score(r.max_p_virus)}\t"
                f"{r.kind}\n" for r in regions)
        if self.sequence_files:
            if seq.call == VIRUS:
                self._bytes[L.VIRAL_FASTA].append(T.fasta_entry(info))
                if self.fastq:
                    self._bytes[L.VIRAL_FASTQ].append(T.fastq_entry(info))
            self._bytes[L.REGIONS_FASTA].extend(T.region_entry(info, r) for r in regions)
        c = self.counts
        c["sequences"] += 1
        c[f"sequences_{seq.call}"] += 1
        c["bases"] += info.length
        c["short_sequences"] += 0 < info.length < SHORT_SEQUENCE_BP  # its "short" flag
        c["regions"] += len(regions)
        c["sequences_with_regions"] += bool(regions)
        for r in regions:
            c[f"regions_{r.kind}"] += 1

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync the staged tables and sort the highest-score file into its .csv."""
        for fh in self._files.values():
            fh.flush()
        stage = self.layout.staging
        if not self.frames:
            for fh in self._files.values():
                os.fsync(fh.fileno())
                fh.close()
            self._files = {}
            return
        with open(stage / L.HIGHEST, "w", encoding="utf-8", newline="\n") as out:
            # Sorted as plain strings, as pandas sorts the reference's ids. Sorting whole
            # lines is sorting by id: ids hold no tab and no byte below it.
            out.write("Modified_ID\tIs_Virus\n")
            with open(self.layout.highest_unsorted, encoding="utf-8", newline="\n") as src:
                out.writelines(T.sort_lines(src, self.layout.sort_runs))
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
        for name in self.published:
            os.replace(self.layout.staging / name, root / name)
        if self.save_embeddings:
            target = self.layout.embeddings
            if target.exists():
                shutil.rmtree(target)
            os.replace(self.layout.staging / L.EMBEDDINGS, target)


def _slice(chunks: ChunkColumns, lo: int, hi: int) -> ChunkColumns:
    return ChunkColumns(chunks.kept[lo:hi], chunks.scored[lo:hi], chunks.max_p_virus[lo:hi],
                        chunks.max_p_others[lo:hi], chunks.viral[lo:hi], chunks.ambiguous[lo:hi])
