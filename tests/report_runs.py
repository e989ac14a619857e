"""Finished run folders written straight in predict's file formats, for report tests.

`write_run(folder, sequences)` writes run.json, sequences.tsv, chunks.tsv and regions.tsv for
sequences given as (id, length, chunk calls, chunk scores, reason): the real cheap thing
instead of a mock, and fast enough to build a 100,000-sequence run. The regions are cut by the
real rule (virnucpro.regions); `regions=False` writes a folder as runs made before regions
existed wrote it (no regions.tsv, no `regions` column, no region counts or settings).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from virnucpro.regions import KINDS, REGIONS_COLUMNS, RegionRule, find_regions
from virnucpro.table_text import CHUNKS_COLUMNS, SEQUENCES_COLUMNS, fmt_score

FakeSequence = tuple[str, int, Sequence[str], Sequence[float | None], str]
# The sequences.tsv columns before regions existed: the writer's, less the last one.
OLD_SEQUENCES_COLUMNS = [c for c in SEQUENCES_COLUMNS if c != "regions"]


def write_run(folder: Path, sequences: Iterable[FakeSequence], *, threshold: float = 0.5,
              tiny: bool = False, status: str = "completed", chunk_size: int = 500,
              regions: bool = True, rule: RegionRule | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rule = rule or RegionRule()
    counts = {"sequences": 0, "sequences_virus": 0, "sequences_others": 0,
              "sequences_unscored": 0, "bases": 0}
    if regions:
        counts |= {"regions": 0, **{f"regions_{k}": 0 for k in KINDS},
                   "sequences_with_regions": 0}
    columns = SEQUENCES_COLUMNS if regions else OLD_SEQUENCES_COLUMNS
    with (open(folder / "sequences.tsv", "w") as seqs, open(folder / "chunks.tsv", "w") as chunks,
          open(folder / "regions.tsv" if regions else os.devnull, "w") as regs):
        seqs.write("\t".join(columns) + "\n")
        chunks.write("\t".join(CHUNKS_COLUMNS) + "\n")
        regs.write("\t".join(REGIONS_COLUMNS) + "\n")
        for sid, length, calls, scores, reason in sequences:
            step = length / max(len(calls), 1)
            scored = [s for c, s in zip(calls, scores, strict=True) if c != "unscored"]
            viral = sum(c == "virus" for c in calls)
            bounds = []
            for k, (c, s) in enumerate(zip(calls, scores, strict=True)):
                start, end = int(k * step) + 1, min(length, int((k + 1) * step) + 10)
                bounds.append((start - 1, end))
                p = "" if s is None else str(s)
                q = "" if s is None else str(round(1 - s, 6))
                chunks.write(f"{sid}_chunk_{k + 1}\t{sid}\t{k + 1}\t{start}\t{end}\t"
                             f"{0 if s is None else 6}\t{p}\t{q}\t{c}\t"
                             f"{'no reading frame without a stop codon' if c == 'unscored' else ''}\n")
            if scored:
                share = viral / len(scored)
                call = "virus" if share >= threshold else "others"
                row = [len(scored), viral, f"{share:.6g}", max(scored),
                       round(sum(scored) / len(scored), 6), call, "", ""]
            else:
                call = "unscored"
                row = [0, 0, "", "", "", call, "", reason or "no chunk has a reading frame "
                       "without a stop codon"]
            if regions:
                found = _regions(bounds, calls, scores, rule)
                row.append(len(found))
                regs.writelines(
                    f"{sid}\t{r.number}\t{r.start}\t{r.end}\t{r.length}\t{r.chunks}\t"
                    f"{r.viral_chunks}\t{fmt_score(r.mean_p_virus)}\t"
                    f"{fmt_score(r.max_p_virus)}\t{r.kind}\n" for r in found)
                counts["regions"] += len(found)
                counts["sequences_with_regions"] += bool(found)
                for r in found:
                    counts[f"regions_{r.kind}"] += 1
            seqs.write("\t".join(map(str, [sid, length, len(calls), *row])) + "\n")
            counts["sequences"] += 1
            counts[f"sequences_{call}"] += 1
            counts["bases"] += length
    parameters = {"chunk_size": chunk_size, "threshold": threshold, "min_length": 1,
                  "models": "tiny" if tiny else "published",
                  **(rule.parameters() if regions else {})}
    info = {"virnucpro_version": "0.1.0", "status": status, "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T01:00:00+00:00",
            "input": {"source": "sample.fasta", "name": "sample", "records": counts["sequences"],
                      "bases": counts["bases"]},
            "parameters": parameters,
            "models": {"name": "tiny" if tiny else "published", "is_tiny": tiny}, "tiny": tiny,
            "counts": counts, "outputs": {"sequences.tsv": "sequences.tsv"}}
    (folder / "run.json").write_text(json.dumps(info, indent=2))
    return folder


def _regions(bounds: list[tuple[int, int]], calls: Sequence[str],
             scores: Sequence[float | None], rule: RegionRule) -> list:
    if not bounds:
        return []
    start, end = (np.array(b, dtype=np.int64) for b in zip(*bounds, strict=True))
    return find_regions(start, end, np.array([c != "unscored" for c in calls]),
                        np.array([c == "virus" for c in calls]),
                        np.array([np.nan if s is None else s for s in scores], dtype=np.float32),
                        rule)


def write_regions(folder: Path, regions: dict[str, list[tuple[int, int, str]]]) -> Path:
    """Give a run written with `regions=False` the regions named here by hand, as
    (start, end, kind) per sequence id: regions.tsv and the `regions` column of sequences.tsv.
    The numbers besides the bounds are made up; the report only shows them."""
    lines = (folder / "sequences.tsv").read_text().splitlines()
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    assert "regions" not in header, "write the run with regions=False"
    with open(folder / "sequences.tsv", "w") as seqs, open(folder / "regions.tsv", "w") as regs:
        seqs.write("\t".join([*header, "regions"]) + "\n")
        regs.write("\t".join(REGIONS_COLUMNS) + "\n")
        for row in rows:
            mine = regions.get(row[0], [])
            seqs.write("\t".join([*row, str(len(mine))]) + "\n")
            for k, (start, end, kind) in enumerate(mine, 1):
                regs.write(f"{row[0]}\t{k}\t{start}\t{end}\t{end - start + 1}\t3\t2\t"
                           f"{fmt_score(0.75)}\t{fmt_score(0.875)}\t{kind}\n")
    return folder
