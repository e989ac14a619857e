"""Working memory of `predict` for an input and for 10x that input, each run in its own process
(`benchmarks/memory_probe.py`), the median of several runs counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.synthetic_input import write_input

REPO = Path(__file__).resolve().parents[1]


def working_memory(models_root: str, dev: str, work: Path, sequences: int, runs: int = 3) -> dict:
    """`sequences` synthetic 3000 bp records (12 kept frames each at 500 bp) and 10x as many.
    The 1x input fills at least one token budget of each model, so that the comparison is about
    what grows with the input, not about a first batch too small to be full.

    Each size runs `runs` times, each in its own process, and the median run counts: glibc's
    malloc moves its mmap threshold as a run frees large blocks, and how much freed memory it
    keeps varies by ~±150 MB from one run to the next of the same input (measured on `mid`:
    412, 418 and 543 MB; with the threshold pinned at 1 MB, 273-274 MB but 30 % slower)."""
    import statistics

    from virnucpro.batch_budget import GPU_FALLBACK
    from virnucpro.run.feed import default_batch_tokens

    budget = default_batch_tokens([dev]) or GPU_FALLBACK  # 0: auto, a GPU's
    per_budget = -(-budget // (110 * 12))  # ~110 DNABERT-S tokens a frame
    sequences = max(sequences, per_budget + 1)
    res = {}
    for factor in (1, 10):
        fasta = work / f"mem{factor}.fasta"
        write_input(fasta, sequences * factor, 3000, seed=factor)
        probes = []
        for run in range(runs):
            done = subprocess.run([sys.executable, "-m", "benchmarks.memory_probe", str(fasta),
                                   str(work / f"mem-out{factor}-{run}"), "--models", models_root,
                                   "--devices", dev], capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:  # say why: a CalledProcessError would hide the probe's stderr
                raise RuntimeError(f"memory probe {factor}x run {run} exited {done.returncode}:\n"
                                   f"{done.stderr[-2000:]}")
            probes.append(json.loads(done.stdout.strip().splitlines()[-1]))
        median = statistics.median_low([p["working_bytes"] for p in probes])
        res[factor] = {**next(p for p in probes if p["working_bytes"] == median),
                       "runs_working_bytes": [p["working_bytes"] for p in probes]}
    # The worst case the runs allow: the largest 10x run against the smallest 1x run.
    worst = max(res[10]["runs_working_bytes"]) / max(1, min(res[1]["runs_working_bytes"]))
    return {"sequences_1x": sequences, "runs": runs, "1x": res[1], "10x": res[10],
            "ratio_10x": res[10]["working_bytes"] / max(1, res[1]["working_bytes"]),
            "worst_ratio_10x": worst}
