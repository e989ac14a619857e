"""Working memory of one `predict` run, measured in its own process:

  python -m benchmarks.memory_probe INPUT OUTDIR --models SET --devices cpu

Loads the models first (as `predict` does), reads the resident memory, runs `predict` through
the library, and prints one JSON line: resident memory after loading, peak resident memory,
and their difference, the working memory. The kernel's peak (VmHWM) is reset after loading, so
the transient peak of reading the weights is not counted as the run's; where it cannot be reset
the peak since the process began is used (and said). Each size needs its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
from pathlib import Path


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> bool:
    """Set the kernel's peak resident memory to the current one (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_bytes(reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as fh:
            return int(re.search(r"VmHWM:\s+(\d+) kB", fh.read()).group(1)) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--models", default="tiny")
    parser.add_argument("--devices", default="cpu")
    parser.add_argument("--shard-frames", type=int, default=None, help="default: predict's")
    args = parser.parse_args()

    from virnucpro.config import PredictConfig
    from virnucpro.engine import make_engine
    from virnucpro.engine_config import EngineConfig
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.pipeline import run_predict
    from virnucpro.shards import DEFAULT_SHARD_FRAMES

    model_set = resolve_model_set(args.models, fetch_missing=False, progress=False)
    # Load once here and keep it loaded: the run below reuses the same process's allocator
    # state, so "after load" is the base the run's working memory sits on.
    engine_config = EngineConfig(engine="local", persistent=True)
    engine = make_engine(engine_config, model_set, [args.devices], 500)
    engine._get_scorer()
    after_load = rss_bytes()
    reset = reset_peak()
    config = PredictConfig(inputs=(args.input,), outdir=args.outdir, models=str(model_set.root),
                           device=args.devices, engine=engine_config, progress=False, force=True,
                           report=False,
                           shard_frames=args.shard_frames or DEFAULT_SHARD_FRAMES)
    [run] = run_predict(config, engine=engine)
    peak = peak_bytes(reset)
    print(json.dumps({"after_load_bytes": after_load, "peak_bytes": peak,
                      "peak_since": "models loaded" if reset else "process start",
                      "working_bytes": max(0, peak - after_load), "frames": run["counts"]["frames"]}))


if __name__ == "__main__":
    main()
