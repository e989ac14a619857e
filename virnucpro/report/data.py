"""A finished run read back from its folder, into the small records a report is drawn from.

`read_run(root)` checks that `root` holds a completed run (run.json with status "completed",
sequences.tsv and chunks.tsv), then reads those tables, and regions.tsv when the run has one,
in one streaming pass in input order. Memory stays bounded for any run size: per-sequence
scores go into flat arrays, regions into counts per kind, and only the `top` tracks (with
their regions) and the `max_rows` table rows are kept as records. A run written before
regions existed (no regions.tsv, no `regions` column) reads with `RunData.regions` None.
An evaluated run (`virnucpro evaluate`) also carries its evaluation.json, as written.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np

from virnucpro.errors import OutputError
from virnucpro.layout import OutputLayout
from virnucpro.regions import KINDS, PROVIRUS, Region
from virnucpro.rollup import OTHERS, UNSCORED, VIRUS
from virnucpro.run_record import RunRecord, read_finished_run

log = logging.getLogger(__name__)

CALLS = (VIRUS, OTHERS, UNSCORED)
# The reader's own lists, not the writer's (outputs.SEQUENCES_COLUMNS): folders written by
# older versions must still read when the writer gains a column. A test checks that every
# column the writer writes is read here.
SEQUENCE_COLUMNS = ("sequence_id", "length", "chunks", "scored_chunks", "viral_chunks",
                    "viral_share", "max_p_virus", "mean_p_virus", "call", "flags", "reason")
SEQUENCE_OPTIONAL = ("regions",)  # absent in runs written before regions existed
REGION_COLUMNS = ("sequence_id", "region", "start", "end", "length", "chunks", "viral_chunks",
                  "mean_p_virus", "max_p_virus", "kind")
_CHUNK_COLUMNS = ("sequence_id", "start", "end", "max_p_virus", "call")


@dataclass(frozen=True, slots=True)
class Chunk:
    start: int  # 1-based, inclusive
    end: int
    max_p_virus: float | None
    call: str


@dataclass(frozen=True, slots=True)
class SequenceRow:
    sequence_id: str
    length: int
    chunks: int
    scored_chunks: int
    viral_chunks: int
    viral_share: float | None
    max_p_virus: float | None
    mean_p_virus: float | None
    call: str
    flags: str
    reason: str
    viral_bases: int  # bases covered by the union of its viral chunks
    regions: int | None = None  # None: the run predates regions


@dataclass(frozen=True, slots=True)
class Track:
    """One sequence's chunk scores along its length."""

    row: SequenceRow
    chunks: tuple[Chunk, ...]
    regions: tuple[Region, ...] = ()


@dataclass(frozen=True)
class RegionCounts:
    """The regions of a run, counted from regions.tsv."""

    kinds: dict[str, int]  # per kind, in KINDS order
    sequences: int  # sequences with at least one region
    provirus_sequences: int  # sequences with at least one provirus

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


@dataclass(frozen=True)
class RunData:
    root: Path
    record: RunRecord  # run.json
    sequences: dict[str, int]  # per call
    bases: dict[str, int]  # per call
    unscored_reasons: tuple[tuple[str, int], ...]  # most frequent first
    viral_share: np.ndarray  # of scored sequences, in input order
    max_p_virus: np.ndarray
    scored_is_viral: np.ndarray  # bool, aligned with the two arrays above
    tracks: tuple[Track, ...]  # longest viral signal first
    table: tuple[SequenceRow, ...]
    table_scope: str  # "all" (every sequence) or "viral" (called viral ones, maybe capped)
    viral_total: int  # sequences called viral (the table may show fewer)
    regions: RegionCounts | None = None  # None: the run predates regions
    evaluation: dict | None = None  # evaluation.json, when the run was evaluated

    @property
    def total_sequences(self) -> int:
        return sum(self.sequences.values())

    @property
    def tiny(self) -> bool:
        return self.record.is_tiny


def viral_bases(chunks: list[tuple[int, int, str]]) -> int:
    """Bases covered by the chunks called virus: the union of their [start, end] intervals."""
    covered, reach = 0, 0  # reach: the last base already counted
    for start, end, _call in sorted(c for c in chunks if c[2] == VIRUS):
        if end > reach:
            covered += end - max(start, reach + 1) + 1
            reach = end
    return covered


def _float(text: str) -> float | None:
    return float(text) if text else None


def _rows(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
          ) -> Iterator[tuple[str | None, ...]]:
    """The named columns of a table, row by row, in the order asked, then the `optional` ones:
    None in every row where the table has no such column."""
    # Plain split, not csv and not dicts: the tables are tab-separated without quoting (ids
    # hold no tab), and this is the inner loop of a run with millions of chunks.
    try:
        with open(path, encoding="utf-8", newline="\n") as fh:
            header = fh.readline().rstrip("\n").split("\t")
            if missing := [c for c in columns if c not in header]:
                raise OutputError(f"no column {', '.join(missing)} (the header is "
                                  f"{' '.join(header)!r})", path=path)
            width = len(header)
            # An absent optional column picks the None appended past the row's last field.
            pick = itemgetter(*(header.index(c) for c in columns),
                              *(header.index(c) if c in header else width for c in optional))
            pad = any(c not in header for c in optional)
            for line in fh:
                fields: list[str | None] = line.rstrip("\n").split("\t")
                if len(fields) != width:
                    raise OutputError(f"a row has {len(fields)} fields, not {width}", path=path)
                if pad:
                    fields.append(None)
                yield pick(fields)
    except OSError as exc:
        raise OutputError(f"cannot read: {exc.strerror or exc}", path=path) from exc


def read_columns(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The named columns of one of a run's tables, row by row, as text; OutputError for a
    missing column or a malformed row."""
    rows = _rows(path, columns)
    # One column: itemgetter gives the field itself, not a 1-tuple.
    return rows if len(columns) > 1 else ((row,) for row in rows)  # type: ignore[return-value]


def read_evaluation(root: Path) -> dict | None:
    """evaluation.json of `root`, or None when there is none; one that cannot be read is
    logged and left out, not an error: the rest of the report does not depend on it."""
    path = OutputLayout(Path(root)).evaluation
    if not path.is_file():
        return None
    try:
        evaluation = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable, left out of the report: %s", path, exc)
        return None
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("levels"), dict):
        log.warning("%s: not an evaluation written by `virnucpro evaluate`; left out", path)
        return None
    return evaluation


def read_run(root: Path, *, top: int = 10, max_rows: int = 5000) -> RunData:
    """Read a finished run for a report: counts, score arrays, `top` tracks, table rows."""
    root = Path(root)
    layout = OutputLayout(root)
    record = read_finished_run(root)
    expected = int(record.counts.get("sequences", 0))
    # A small run lists every sequence; a large one only those called viral (see table_scope).
    # Without counts in run.json the size is unknown: list the viral ones, which is never wrong.
    scope = "all" if 0 < expected <= max_rows else "viral"
    sequences, bases, reasons = Counter(), Counter(), Counter()
    shares, maxima, viral = [], [], []
    tracks: list[tuple[tuple, Track]] = []  # min-heaps keyed for "keep the largest"
    table: list[tuple[tuple, SequenceRow]] = []
    regions = _RegionReader(layout.regions) if layout.regions.is_file() else None
    # The tables are in input order, a sequence's chunks (and regions) together: read in step.
    chunk_rows = _rows(layout.chunks, _CHUNK_COLUMNS)
    for n, s in enumerate(_rows(layout.sequences, SEQUENCE_COLUMNS, SEQUENCE_OPTIONAL)):
        sid, length, n_chunks, scored, n_viral, share, p_max, p_mean, call, flags, reason, n_reg = s
        raw = [next(chunk_rows, None) for _ in range(int(n_chunks))]
        if any(c is None or c[0] != sid for c in raw):
            raise OutputError(f"chunks.tsv does not match sequences.tsv at {sid!r}", path=root)
        mine = _sequence_regions(regions, sid, n_reg, root)
        covered = viral_bases([(int(c[1]), int(c[2]), c[4]) for c in raw if c[4] == VIRUS])
        row = SequenceRow(sid, int(length), int(n_chunks), int(scored), int(n_viral),
                          _float(share), _float(p_max), _float(p_mean), call, flags, reason,
                          covered, None if regions is None else len(mine))
        sequences[call] += 1
        bases[call] += row.length
        if call == UNSCORED:
            reasons[row.reason or "not given"] += 1
        else:
            shares.append(row.viral_share or 0.0)
            maxima.append(row.max_p_virus or 0.0)
            viral.append(call == VIRUS)
        # Ties go to the higher score, then to the earlier sequence (-n).
        key = (row.viral_bases, row.max_p_virus or 0.0, -n)
        if row.viral_bases and top > 0 and (len(tracks) < top or key > tracks[0][0]):
            chunks = tuple(Chunk(int(c[1]), int(c[2]), _float(c[3]), c[4]) for c in raw)
            _push(tracks, (key, Track(row, chunks, tuple(mine))), top)
        if scope == "all" or call == VIRUS:
            _push(table, (key, row), max_rows)
    if next(chunk_rows, None) is not None:
        raise OutputError("chunks.tsv has rows for sequences not in sequences.tsv", path=root)
    top_tracks = tuple(t for _, t in sorted(tracks, key=lambda kt: kt[0], reverse=True))
    rows = sorted(table, key=lambda kr: kr[0], reverse=True)
    return RunData(
        root=root, record=record,
        sequences={c: sequences[c] for c in CALLS}, bases={c: bases[c] for c in CALLS},
        unscored_reasons=tuple(reasons.most_common()),
        viral_share=np.asarray(shares, dtype=float), max_p_virus=np.asarray(maxima, dtype=float),
        scored_is_viral=np.asarray(viral, dtype=bool), tracks=top_tracks,
        table=tuple(r for _, r in rows), table_scope=scope, viral_total=sequences[VIRUS],
        regions=None if regions is None else regions.close(), evaluation=read_evaluation(root))


def _sequence_regions(regions: _RegionReader | None, sid: str, count: str | None,
                      root: Path) -> list[Region]:
    """The regions of the next sequence, checked against its `regions` count when it has one."""
    if regions is None:
        if count is not None:
            raise OutputError(f"{OutputLayout.REGIONS} is missing (sequences.tsv counts the "
                              "regions of each sequence)", path=root)
        return []
    mine = regions.take(sid)
    # Without the column (a folder half way between versions) regions.tsv alone counts.
    if count is not None and count != str(len(mine)):
        raise OutputError(f"{OutputLayout.REGIONS} does not match sequences.tsv at {sid!r}: "
                          f"{len(mine)} regions, not {count}", path=root)
    return mine


class _RegionReader:
    """regions.tsv read in step with sequences.tsv: `take(sid)` gives the next sequence's
    regions (those rows come next, or the sequence has none), `close()` the counts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows = _rows(path, REGION_COLUMNS)
        self._next = next(self._rows, None)
        self._kinds: Counter[str] = Counter()
        self._sequences = self._provirus_sequences = 0

    def take(self, sid: str) -> list[Region]:
        found = []
        while self._next is not None and self._next[0] == sid:
            found.append(self._region(self._next))
            self._next = next(self._rows, None)
        kinds = {r.kind for r in found}
        self._kinds.update(r.kind for r in found)
        self._sequences += bool(found)
        self._provirus_sequences += PROVIRUS in kinds
        return found

    def close(self) -> RegionCounts:
        if self._next is not None:
            raise OutputError(f"region {self._next[1]} of {self._next[0]!r} follows no sequence "
                              "of sequences.tsv (or is out of their order)", path=self.path)
        return RegionCounts({k: self._kinds[k] for k in KINDS}, self._sequences,
                            self._provirus_sequences)

    def _region(self, fields: tuple[str, ...]) -> Region:
        sid, number, start, end, _length, chunks, viral, mean, p_max, kind = fields
        if kind not in KINDS:
            raise OutputError(f"region {number} of {sid!r} is of kind {kind!r}, not one of "
                              f"{', '.join(KINDS)}", path=self.path)
        try:
            return Region(int(number), int(start), int(end), int(chunks), int(viral),
                          float(mean), float(p_max), kind)
        except ValueError as exc:
            raise OutputError(f"region {number} of {sid!r}: {exc}", path=self.path) from exc


def _push(heap: list, item: tuple, cap: int) -> None:
    if len(heap) < cap:
        heapq.heappush(heap, item)
    elif item[0] > heap[0][0]:
        heapq.heapreplace(heap, item)
