"""A finished job's results as the detail screen shows them, read from its output folder.

`read_results(outdir)` streams every `sequences.tsv` of the job (the folder itself for one
input, one subfolder per input for several) once: calls counted, `max_p_virus` binned into a
histogram, the top viral calls kept in a heap; and each `regions.tsv` beside one, when there is
one, for the viral regions counted by kind in run.json's words (`regions`, `regions_<kind>`,
`sequences_with_regions`; a folder written before regions has none, and shows none). Pure file
reading (csv, no numpy, no torch); the dashboard runs it in a thread, and only when the daemon
shares this file system.
"""

from __future__ import annotations

import csv
import heapq
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.layout import OutputLayout

BINS = 10
TOP = 8


@dataclass(frozen=True)
class Call:
    sequence_id: str
    length: int
    viral_share: float
    max_p_virus: float
    folder: str  # the input's subfolder ("" for a one-input job)


@dataclass
class Results:
    outdir: str
    tables: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"virus": 0, "others": 0, "unscored": 0})
    histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    top: list[Call] = field(default_factory=list)
    regions: dict[str, int] | None = None  # None: no regions.tsv (a run made before regions)
    error: str = ""

    @property
    def edges(self) -> list[float]:
        return [i / BINS for i in range(BINS + 1)]

    @property
    def sequences(self) -> int:
        return sum(self.counts.values())


def result_folders(outdir: Path) -> list[Path]:
    """The folders holding a `sequences.tsv`: the outdir, else its input subfolders."""
    if OutputLayout(outdir).sequences.is_file():
        return [outdir]
    return sorted(p.parent for p in outdir.glob(f"*/{OutputLayout.SEQUENCES}"))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def count_regions(path: Path, counts: dict[str, int]) -> None:
    """Add one regions.tsv's regions, by kind (`regions_<kind>`, added when first seen), and
    the sequences holding them, to `counts`. A sequence's regions are consecutive rows (the
    writer puts them out record by record), so counting changes of id needs no set of ids."""
    last = None
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            counts["regions"] += 1
            kind = f"regions_{row.get('kind', '')}"
            counts[kind] = counts.get(kind, 0) + 1
            if row.get("sequence_id") != last:
                last = row.get("sequence_id")
                counts["sequences_with_regions"] += 1


def read_results(outdir: str, *, top: int = TOP) -> Results:
    root = Path(outdir)
    results = Results(outdir=outdir)
    folders = result_folders(root)
    if not folders:
        results.error = f"no {OutputLayout.SEQUENCES} in {outdir}"
        return results
    heap: list[tuple[float, float, int, Call]] = []  # a min-heap of the best `top`
    n = 0
    for folder in folders:
        layout = OutputLayout(folder)
        results.tables.append(str(layout.sequences))
        if layout.report.is_file():
            results.reports.append(str(layout.report))
        name = "" if folder == root else folder.name
        if layout.regions.is_file():
            if results.regions is None:
                results.regions = {"regions": 0, "sequences_with_regions": 0}
            count_regions(layout.regions, results.regions)
        with open(layout.sequences, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                call = row.get("call", "")
                results.counts[call] = results.counts.get(call, 0) + 1
                score = _float(row.get("max_p_virus", ""))
                if score is None:
                    continue
                results.histogram[min(int(score * BINS), BINS - 1)] += 1
                if call != "virus":
                    continue
                share = _float(row.get("viral_share", "")) or 0.0
                item = Call(row["sequence_id"], int(row.get("length") or 0), share, score, name)
                n += 1
                key = (share, score, -n, item)  # ties: the earlier row
                if len(heap) < top:
                    heapq.heappush(heap, key)
                elif key[:3] > heap[0][:3]:
                    heapq.heapreplace(heap, key)
    report = OutputLayout(root).report
    if report.is_file() and str(report) not in results.reports:
        results.reports.insert(0, str(report))
    results.top = [k[3] for k in sorted(heap, key=lambda k: k[:3], reverse=True)]
    return results
