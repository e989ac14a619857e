"""`python -m benchmarks --size tiny|mid|full [--quick] [--json FILE]`: how fast the product does
its job, side by side in one run, printed as a table and written as JSON.

- end to end: frames/s, chunks/s, Mbp/h and time per stage of `predict` (local engine);
- each model alone on the same frames: tokens/s, model TFLOP/s and, on a GPU whose bfloat16
  peak is known (or given as VIRNUCPRO_PEAK_TFLOPS), the share of that peak; on a GPU, ESM-2
  at other token budgets than the product's (does 32,768 fill the device?);
- the reference scripts' way (FIDELITY 7: DNABERT-S one sequence at a time, both models
  reloaded per 10,000 records, ESM-2 batches of 2048 tokens, float32) and the speed-up;
- padding waste of the DNABERT-S and ESM-2 batches;
- 10 small jobs (5 sequences each) through the daemon, persistent vs not;
- working memory of `predict` for an input and for 10x that input (separate processes).
Sizes: tiny (the tiny set), mid (full DNABERT-S + an ESM-2 of the 35M architecture, random),
full (the published set when present, else random weights of the full sizes; for a GPU).
This module parses and dispatches: the sections are `suite.py` (their order, the table),
`speed.py`, `models_alone.py`, `small_jobs.py`, `memory.py`, on `workload.py`'s set and frames;
`--size host` is `host.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import suite


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of runs, at least 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "mid", "full", "host"], default="tiny",
                        help="host: the host side alone, with a stand-in for the models "
                        "(benchmarks/host.py)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--memory-runs", type=_at_least_one, default=3,
                        help="runs of each working-memory size; the median counts (default 3)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["reference", "daemon", "memory"])
    parser.add_argument("--daemon-jobs", type=int, default=10,
                        help="small jobs per daemon mode (fewer on a GPU with the full set, where "
                        "each per-job load of ESM-2 3B takes tens of seconds)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from virnucpro.devices import number_gpus_as_nvidia_smi

    number_gpus_as_nvidia_smi()  # `cuda:0` here is the daemon's `cuda:0` too
    started = time.perf_counter()
    machine = (f"{platform.node()} {platform.processor() or platform.machine()} "
               f"{os.cpu_count()} cores")

    result: dict = {}

    def done(section: str, figures: str) -> None:
        # Each part as it ends, with the partial JSON: a run cut short keeps what it measured.
        print(f"[{time.perf_counter() - started:6.0f} s] {section}: {figures}", file=sys.stderr,
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")

    if args.size == "host":
        from benchmarks import host

        result.update({"size": "host", "quick": args.quick, "machine": machine,
                       "python": platform.python_version()})
        host.run(args.quick, result, done)
        done("host", "finished")
        return
    suite.run(args, machine, result, done)


if __name__ == "__main__":
    main()
