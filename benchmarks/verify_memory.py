"""Memory and time of the load check (`models verify`'s second half) on a model set:

  python -m benchmarks.random_set /scratch/full --size full     # published shapes, 6.1 GB
  python -m benchmarks.verify_memory /scratch/full

Runs `python -m virnucpro.models.loadcheck SET` in a child process and, for comparison, a child
that only imports what the check imports; prints one JSON line with both peak resident sizes
(the kernel's ru_maxrss of each child), their difference (what checking the set itself costs)
and the seconds. The check maps the checkpoints instead of reading them, so the difference stays
far below the set's size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

_IMPORTS = ("import torch, esm.pretrained, tokenizers, virnucpro.models.loadcheck, "
            "virnucpro.models.dnabert_io, virnucpro.models.esm_io, virnucpro.models.classifier_io")


def _child_peak(cmd: list[str]) -> tuple[int, float, str]:
    """Peak RSS (bytes) and seconds of one child process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss of children is the largest so far: run the larger one last
        raise RuntimeError("measure the smaller process first")
    return peak * 1024, seconds, done.stdout.strip() or done.stderr.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    size = sum(p.stat().st_size for p in args.folder.rglob("*") if p.is_file())
    base, base_s, _ = _child_peak([sys.executable, "-c", _IMPORTS])
    peak, seconds, out = _child_peak([sys.executable, "-m", "virnucpro.models.loadcheck",
                                      str(args.folder), "--json"])
    base_mb, peak_mb = round(base / 1e6), round(peak / 1e6)
    print(json.dumps({"set": str(args.folder), "set_mb": round(size / 1e6),
                      "imports_peak_mb": base_mb, "check_peak_mb": peak_mb,
                      "check_extra_mb": peak_mb - base_mb,
                      "imports_s": round(base_s, 1), "check_s": round(seconds, 1),
                      "problems": json.loads(out)["problems"] if out.startswith("{") else out}))


if __name__ == "__main__":
    main()
