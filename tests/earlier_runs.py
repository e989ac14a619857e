"""Run folders as earlier versions wrote them, made from a folder (or a run.json) of today's:
what users hold must keep working (rescore, report and evaluate read them).

The first release (run.json of 2026-11-29, git 132ccf9) had no `engine` and no `resume_key`,
its parameters were the config's fields (`threads` among them, no engine or region settings),
its counts had no regions or short sequences; it wrote no regions.tsv nor regions.fasta, and
sequences.tsv had no `regions` column.
"""

from __future__ import annotations

import json
from pathlib import Path

FIRST_PARAMETERS = ("inputs", "outdir", "chunk_size", "models", "device", "batch_tokens",
                    "threads", "threshold", "min_length", "save_embeddings", "rename_duplicates",
                    "force", "resume", "shard_frames", "progress", "resumed", "shards_scored_now")
FIRST_COUNTS = ("sequences", "sequences_virus", "sequences_others", "sequences_unscored",
                "bases", "chunks", "chunks_scored", "chunks_virus", "frames", "frames_failed")
FIRST_FILES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "prediction_results.txt",
               "prediction_results_highestscore.csv", "viral.fasta")


def first_release_run_json(info: dict) -> dict:
    """The run.json the first release wrote for the run today's `info` describes."""
    params = info["parameters"]
    out = {k: v for k, v in info.items() if k not in ("engine", "resume_key")}
    out["parameters"] = {k: params.get(k) for k in FIRST_PARAMETERS}
    out["counts"] = {k: v for k, v in info["counts"].items() if k in FIRST_COUNTS}
    out["outputs"] = {k: v for k, v in info["outputs"].items()
                      if k in FIRST_FILES or k == "embeddings"}
    return out


def as_first_release(folder: Path) -> Path:
    """Turn today's finished run in `folder` into the first release's (in place)."""
    run_json = folder / "run.json"
    info = json.loads(run_json.read_text())
    run_json.write_text(json.dumps(first_release_run_json(info), indent=2) + "\n")
    seqs = folder / "sequences.tsv"
    seqs.write_text("".join(line.rsplit("\t", 1)[0] + "\n"
                            for line in seqs.read_text().splitlines()))
    for name in ("regions.tsv", "regions.fasta", "report.html"):
        (folder / name).unlink(missing_ok=True)
    return folder
