"""Finished run folders written straight in predict's file formats, for report tests.

`write_run(folder, sequences)` writes run.json, sequences.tsv and chunks.tsv for sequences
given as (id, length, chunk calls, chunk scores, reason): the real cheap thing instead of a
mock, and fast enough to build a 100,000-sequence run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from virnucpro.outputs import CHUNKS_COLUMNS, SEQUENCES_COLUMNS

FakeSequence = tuple[str, int, Sequence[str], Sequence[float | None], str]


def write_run(folder: Path, sequences: Iterable[FakeSequence], *, threshold: float = 0.5,
              tiny: bool = False, status: str = "completed", chunk_size: int = 500) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {"sequences": 0, "sequences_virus": 0, "sequences_others": 0,
              "sequences_unscored": 0, "bases": 0}
    with open(folder / "sequences.tsv", "w") as seqs, open(folder / "chunks.tsv", "w") as chunks:
        seqs.write("\t".join(SEQUENCES_COLUMNS) + "\n")
        chunks.write("\t".join(CHUNKS_COLUMNS) + "\n")
        for sid, length, calls, scores, reason in sequences:
            step = length / max(len(calls), 1)
            scored = [s for c, s in zip(calls, scores, strict=True) if c != "unscored"]
            viral = sum(c == "virus" for c in calls)
            for k, (c, s) in enumerate(zip(calls, scores, strict=True)):
                start, end = int(k * step) + 1, min(length, int((k + 1) * step) + 10)
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
            seqs.write("\t".join(map(str, [sid, length, len(calls), *row])) + "\n")
            counts["sequences"] += 1
            counts[f"sequences_{call}"] += 1
            counts["bases"] += length
    info = {"virnucpro_version": "0.1.0", "status": status, "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T01:00:00+00:00",
            "input": {"source": "sample.fasta", "name": "sample", "records": counts["sequences"],
                      "bases": counts["bases"]},
            "parameters": {"chunk_size": chunk_size, "threshold": threshold, "min_length": 1,
                           "models": "tiny" if tiny else "published"},
            "models": {"name": "tiny" if tiny else "published", "is_tiny": tiny}, "tiny": tiny,
            "counts": counts, "outputs": {"sequences.tsv": "sequences.tsv"}}
    (folder / "run.json").write_text(json.dumps(info, indent=2))
    return folder
