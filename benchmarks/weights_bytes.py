"""What the models' weights hold where they are loaded, float32 against bfloat16.

  python -m benchmarks.weights_bytes [--size full|mid|tiny] [--device cpu|cuda:0] [--json FILE]

Each precision is loaded in its own process, as `predict` loads it (`load_models`), and
measured as the storages actually resident behind every parameter and buffer, shared ones once
(`LoadedModels.weights_bytes`); on a GPU also `torch.cuda.memory_allocated()` after the load,
and the process's peak resident host memory. `--size full` is the published set when present,
else random weights of its shapes (benchmarks/workload.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path


def measure(models_root: str, device: str, precision: str) -> dict:
    """One load, in this process."""
    import torch

    from virnucpro.models.loaded import load_models
    from virnucpro.models.modelset import scan_set_folder

    started = time.perf_counter()
    models = load_models(scan_set_folder(models_root), 500, device, precision)
    out = {"precision": precision, "device": device,
           "load_s": round(time.perf_counter() - started, 2),
           "weights_bytes": models.weights_bytes(),
           "dnabert_dtype": str(next(models.dnabert.model.parameters()).dtype),
           "esm_dtype": str(next(models.esm.model.parameters()).dtype),
           "peak_host_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.startswith("cuda"):
        out["allocated_bytes"] = int(torch.cuda.memory_allocated(device))
    return out


def _child(queue, *args) -> None:
    queue.put(measure(*args))


def in_own_process(models_root: str, device: str, precision: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, models_root, device, precision))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    from benchmarks.workload import device as default_device
    from benchmarks.workload import model_set_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "mid", "full"], default="full")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    root, device = model_set_for(args.size), args.device or default_device()
    rows = [in_own_process(root, device, p) for p in ("float32", "bfloat16")]
    ratio = rows[1]["weights_bytes"] / rows[0]["weights_bytes"]
    gb = 1e9
    print(f"{'precision':<10} {'weights GB':>11} {'allocated GB':>13} {'host peak GB':>13} "
          f"{'load s':>7}  dtypes (DNABERT-S, ESM-2)")
    for r in rows:
        allocated = f"{r['allocated_bytes'] / gb:.3f}" if "allocated_bytes" in r else "-"
        print(f"{r['precision']:<10} {r['weights_bytes'] / gb:>11.3f} {allocated:>13} "
              f"{r['peak_host_bytes'] / gb:>13.2f} {r['load_s']:>7.1f}  "
              f"{r['dnabert_dtype']}, {r['esm_dtype']}")
    print(f"bfloat16 / float32 weights: {ratio:.3f} (target <= 0.55) on {device}, set {root}")
    if args.json:
        args.json.write_text(json.dumps({"set": root, "device": device, "rows": rows,
                                         "ratio": round(ratio, 4)}, indent=2))


if __name__ == "__main__":
    main()
