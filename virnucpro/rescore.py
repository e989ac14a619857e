"""`virnucpro rescore`: new calls and regions from a finished run's scores, without a model.

The frame scores in frames.tsv read back to the very float32s the classifier gave (they are
written in their shortest exact form), and the chunk layout follows from each sequence's
length and the chunk size, so every table that depends on the call settings (chunks.tsv,
sequences.tsv, regions.tsv) is rebuilt through the same `TableWriter` code as in `predict`;
the frame-level files do not depend on them and are kept. The FASTA outputs need the input's
bases: they are rewritten only when the input is still where run.json says, with the same
size and SHA-256; otherwise the tables are written and the reason is said and recorded.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

import numpy as np

from virnucpro import __version__
from virnucpro.chunking import chunk_spans
from virnucpro.errors import InputError, OutputError
from virnucpro.layout import OutputLayout
from virnucpro.plan import RecordInfo
from virnucpro.regions import RegionRule
from virnucpro.rollup import AMBIGUOUS, call_chunks
from virnucpro.run_record import RunRecord, read_finished_run, run_subfolders
from virnucpro.seqfile import read_fasta, scan_fasta
from virnucpro.table_text import CHUNKS_COLUMNS, FRAMES_COLUMNS, SEQUENCES_COLUMNS
from virnucpro.tables import TableWriter

log = logging.getLogger(__name__)

_OLD_SEQUENCE_COLUMNS = SEQUENCES_COLUMNS[:11]  # before regions: no `regions` column


@dataclass(frozen=True)
class RescoreSettings:
    """What changes; None keeps the run's own value. `region_min_p` "call" goes back to the
    chunk calls."""

    threshold: float | None = None
    region_gap: int | None = None
    region_min_p: float | str | None = None
    min_region_length: int | None = None

    def apply(self, params: dict) -> tuple[float, RegionRule]:
        old = RegionRule.from_parameters(params)
        min_p = old.min_p if self.region_min_p is None else (
            None if self.region_min_p == "call" else float(self.region_min_p))
        rule = RegionRule(gap=old.gap if self.region_gap is None else self.region_gap,
                          min_p=min_p,
                          min_length=old.min_length if self.min_region_length is None
                          else self.min_region_length)
        threshold = float(params.get("threshold", 0.5) if self.threshold is None
                          else self.threshold)
        return threshold, rule


def run_folders(root: Path) -> list[Path]:
    """The run folders under `root`: itself, or its input subfolders (several inputs)."""
    root = Path(root)
    if not root.is_dir():
        raise OutputError("no such folder (give the output folder of a finished run)", path=root)
    if OutputLayout(root).run_json.is_file():
        return [root]
    subs = run_subfolders(root)
    if not subs:
        raise OutputError(f"no {OutputLayout.RUN}: not the output folder of a finished run",
                          path=root)
    return subs


def rescore(root: Path, settings: RescoreSettings, *, outdir: Path | None = None,
            in_place: bool = False, force: bool = False, report: bool = True) -> list[RunRecord]:
    """Rescore the run in `root` (or each input subfolder of it) into `outdir`, or in place;
    return each folder's new run.json."""
    if (outdir is None) == (not in_place):
        raise OutputError("give either a new folder (-o NEWDIR) or --in-place", path=root)
    root = Path(root)
    folders = run_folders(root)
    several = folders != [root]
    if outdir is not None:
        outdir = Path(outdir)
        if outdir.resolve() == root.resolve():
            raise OutputError("is the run's own folder: use --in-place to rescore it there",
                              path=outdir)
    targets = [f if in_place else (outdir / f.name if several else outdir) for f in folders]
    for source in folders:
        _read_info(source)  # every folder checked before any is written
    if not in_place:
        for target in targets:
            _claim(target, force)
    return [rescore_run(source, target, settings, report=report)
            for source, target in zip(folders, targets, strict=True)]


def _claim(target: Path, force: bool) -> None:
    layout = OutputLayout(target)
    try:
        if target.exists() and not target.is_dir():
            raise OutputError("exists and is not a folder", path=target)
        if target.exists() and any(target.iterdir()):
            if not force:
                raise OutputError("is not empty; use --force to overwrite", path=target)
            layout.remove_owned()
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot be used: {exc.strerror or exc}", path=target) from exc


def _read_info(root: Path) -> RunRecord:
    run = read_finished_run(root)
    layout = OutputLayout(root)
    if run.chunk_size is None:
        raise OutputError(f"{layout.RUN} names no chunk size", path=layout.run_json)
    if not layout.frames.is_file():
        raise OutputError(f"{layout.FRAMES} is missing: the scores are read from it", path=root)
    return run


def _input_problem(run: RunRecord) -> tuple[object | None, str]:
    """The input's index when it is the one the run scored, else None and why not."""
    source = run.input
    path = source.get("path")
    if not path or path == "-":
        return None, "the input was read from standard input"
    p = Path(path)
    if not p.is_file():
        return None, f"the input {path} is gone"
    if p.stat().st_size != source.get("size"):
        return None, f"the input {path} has changed (its size)"
    try:
        index = scan_fasta(p, rename_duplicates=bool(run.parameters.get("rename_duplicates")))
    except InputError as exc:
        return None, f"the input {path} no longer reads ({exc.reason})"
    if index.sha256 != source.get("sha256"):
        return None, f"the input {path} has changed (its SHA-256)"
    return index, ""


def _tsv(path: Path, expected: list[str] | tuple[list[str], ...]) -> Iterator[list[str]]:
    options = expected if isinstance(expected, tuple) else (expected,)
    with open(path, encoding="utf-8", newline="\n") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header not in options:
            raise OutputError(f"unexpected columns {header[:12]}: not a table this version "
                              "reads", path=path)
        for line in fh:
            yield line.rstrip("\n").split("\t")


def rescore_run(source: Path, target: Path, settings: RescoreSettings, *,
                report: bool = True) -> RunRecord:
    """Rebuild the call tables of one run folder into `target` (the same folder: in place)."""
    t0 = time.perf_counter()
    run = _read_info(source)
    params = run.parameters
    chunk_size = run.chunk_size
    threshold, rule = settings.apply(params)
    index, why = _input_problem(run)
    tables = OutputLayout(source)
    fastq = index is not None and index.format == "fastq"
    layout = OutputLayout(target)
    writer = TableWriter(layout, threshold=threshold, save_embeddings=False,
                         shard_frames=int(params.get("shard_frames", 1)), settings={},
                         resume=False, regions=rule, fastq=fastq, frames=False,
                         sequence_files=index is not None)
    records = read_fasta(index) if index is not None else None
    frames = _tsv(tables.frames, FRAMES_COLUMNS)
    # Which chunks had no codon of A, C, G, T only is a fact of the input, not of the
    # scores: it is read back from the run's own chunks.tsv (the input may be gone).
    chunk_rows = _tsv(tables.chunks, CHUNKS_COLUMNS)
    pending = next(frames, None)
    frames_read = 0
    try:
        for n, row in enumerate(_tsv(tables.sequences,
                                     (SEQUENCES_COLUMNS, _OLD_SEQUENCE_COLUMNS))):
            sid, length, n_chunks, flags, reason = row[0], int(row[1]), int(row[2]), row[9], row[10]
            record = next(records) if records is not None else None
            if record is not None and (record.id != sid or len(record.seq) != length):
                raise OutputError(f"record {n + 1} of the input is {record.id!r}, sequences.tsv "
                                  f"has {sid!r}: the tables are not of this input",
                                  path=tables.sequences)
            rows: list[list[str]] = []
            while pending is not None and pending[1] == sid:
                rows.append(pending)
                pending = next(frames, None)
            frames_read += len(rows)
            info_ = RecordInfo(
                n, sid, record.header if record else sid, record.original_id if record else sid,
                record.seq if record else b"", (flags,) if flags else (),
                reason if n_chunks == 0 else "", n_chunks,
                record.quality if record else None, length,
                raw_header=record.raw_header if record else None)
            chunks = list(islice(chunk_rows, n_chunks))
            if len(chunks) != n_chunks or any(c[1] != sid for c in chunks):
                raise OutputError(f"chunks.tsv does not hold the {n_chunks} chunk rows of "
                                  f"{sid!r} in their place", path=tables.chunks)
            ambiguous = np.array([c[9] == AMBIGUOUS for c in chunks], dtype=bool)
            _write(writer, info_, rows, chunk_size, tables, ambiguous)
        if pending is not None:
            raise OutputError(f"frames.tsv has rows of {pending[1]!r}, which sequences.tsv "
                              "does not list in that place", path=tables.frames)
        expected = run.counts.get("frames")
        if expected is not None and frames_read != expected:
            raise OutputError(f"{frames_read:,} frame rows, run.json counts {expected:,}: "
                              "frames.tsv is not whole", path=tables.frames)
        writer.close()
    except BaseException:
        writer.abandon()
        shutil.rmtree(layout.work, ignore_errors=True)
        raise
    return _publish(source, target, writer, run, threshold, rule, why, t0, report)


def _write(writer: TableWriter, info: RecordInfo, rows: list[list[str]], chunk_size: int,
           source: OutputLayout, ambiguous: np.ndarray) -> None:
    n = info.n_chunks
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        writer.write_record(info, [], empty, empty, call_chunks(np.zeros(1, np.int64),
                                                                np.zeros((0, 2), np.float32),
                                                                np.zeros(0, bool)))
        return
    length = info.length
    spans = [(0, length)] if length <= chunk_size else chunk_spans(length, chunk_size)
    if len(spans) != n:
        raise OutputError(f"{info.id!r} has {n} chunks in sequences.tsv, but {len(spans)} at "
                          f"chunk size {chunk_size}", path=source.sequences)
    chunk_no = np.fromiter((int(r[2]) for r in rows), dtype=np.int64, count=len(rows))
    if len(rows) and (chunk_no.min() < 1 or chunk_no.max() > n or np.any(np.diff(chunk_no) < 0)):
        raise OutputError(f"the frames of {info.id!r} are not in chunk order",
                          path=source.frames)
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    if len(rows):  # each frame inside its chunk: frames.tsv is of this layout
        f_start = np.fromiter((int(r[5]) - 1 for r in rows), dtype=np.int64, count=len(rows))
        f_end = np.fromiter((int(r[6]) for r in rows), dtype=np.int64, count=len(rows))
        if np.any(f_start < starts[chunk_no - 1]) or np.any(f_end > ends[chunk_no - 1]):
            raise OutputError(f"the frames of {info.id!r} lie outside their chunks at chunk "
                              f"size {chunk_size}: frames.tsv is not of this run",
                              path=source.frames)
    offsets = np.searchsorted(chunk_no, np.arange(1, n + 2)).astype(np.int64)
    probs = np.array([(float(r[8]) if r[8] else np.nan, float(r[9]) if r[9] else np.nan)
                      for r in rows], dtype=np.float32).reshape(-1, 2)
    ok = np.fromiter((r[11] == "ok" for r in rows), dtype=bool, count=len(rows))
    writer.write_record(info, [f"{info.id}_chunk_{k + 1}" for k in range(n)], starts, ends,
                        call_chunks(offsets, probs, ok, ambiguous))


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    """A hard link where the file system allows it (outputs are replaced, never rewritten in
    place, so the two names never see each other's changes), else a copy."""
    Path(dst).unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _publish(source: Path, target: Path, writer: TableWriter, run: RunRecord,
             threshold: float, rule: RegionRule, why: str, t0: float, report: bool) -> RunRecord:
    layout = writer.layout
    in_place = source.resolve() == target.resolve()
    stage = layout.staging
    kept_from = OutputLayout(source)
    if not in_place:
        for name in layout.FRAME_FILES:
            if (source / name).is_file():
                _link_or_copy(source / name, stage / name)
        if kept_from.embeddings.is_dir():
            shutil.copytree(kept_from.embeddings, stage / layout.EMBEDDINGS,
                            copy_function=_link_or_copy)
    names = writer.published + ([n for n in layout.FRAME_FILES if (stage / n).exists()]
                                if not in_place else [])
    for name in names:
        os.replace(stage / name, target / name)
    if not in_place and (stage / layout.EMBEDDINGS).is_dir():
        os.replace(stage / layout.EMBEDDINGS, layout.embeddings)
    params = run.parameters
    before = {"threshold": params.get("threshold"), **RegionRule.from_parameters(params).parameters()}
    after = {"threshold": threshold, **rule.parameters()}
    if why:
        kept = [n for n in layout.SEQUENCE_FILES if (target / n).exists()] if in_place else []
        note = f"skipped: {why}"
        if kept:
            note += f"; {', '.join(kept)} still hold the calls of the earlier settings"
        log.warning("%s: the tables are rescored, the FASTA outputs are not: %s", target,
                    note.removeprefix("skipped: "))
    else:
        note = "written"
    counts = dict(writer.counts)
    for key in ("frames", "frames_failed"):  # frame-level: unchanged
        counts[key] = run.counts.get(key, 0)
    outputs = {k: v for k, v in run.outputs.items()
               if k not in layout.SEQUENCE_FILES and k != layout.REPORT}
    outputs.update({n: n for n in writer.published})
    if in_place:
        outputs.update({n: n for n in layout.SEQUENCE_FILES if (target / n).exists()})
    new = replace(run, parameters={**params, **after}, counts=counts, outputs=outputs,
                  rescored=[*run.rescored, {
                      "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "virnucpro_version": __version__, "command": sys.argv, "from": str(source),
                      "to": str(target), "in_place": in_place, "before": before,
                      "settings": after, "sequence_files": note,
                      "seconds": round(time.perf_counter() - t0, 3)}])
    new.write(layout.run_json)
    shutil.rmtree(layout.work, ignore_errors=True)
    if report:
        from virnucpro.report import write_report

        try:
            write_report(target, writer="virnucpro rescore")
        except Exception as exc:  # noqa: BLE001 - the tables are done; the report can be redone
            log.error("%s: no report written (%s); the tables are complete: run `virnucpro report %s` to retry",
                        target, exc, target)
        else:
            new.outputs[layout.REPORT] = layout.REPORT
            new.write(layout.run_json)
    elif layout.report.exists() and in_place:
        layout.report.unlink()  # it showed the earlier calls
    return new
