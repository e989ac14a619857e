"""The model benchmark of one size (tiny, mid, full): its sections in order on one synthetic
input, each reported as it ends (`done`), then the table of figures printed on stdout.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.memory import working_memory
from benchmarks.models_alone import model_throughput, padding
from benchmarks.small_jobs import daemon_jobs
from benchmarks.speed import end_to_end, ours_on_frames, reference_style
from benchmarks.synthetic_input import write_input
from benchmarks.workload import device, frames_of, model_set_for

REPO = Path(__file__).resolve().parents[1]


def run(args: argparse.Namespace, machine: str, result: dict,
        done: Callable[[str, str], None]) -> None:
    """The sections of `args.size` in order, less those in `args.skip`, into `result`; then the
    table. `done(section, figures)` reports each section as it ends."""
    dev = device()
    models = model_set_for(args.size)
    n = {"tiny": 200, "mid": 12, "full": 600}[args.size] // (4 if args.quick else 1)
    result.update({"size": args.size, "device": dev, "quick": args.quick, "models": models,
                   "machine": machine, "python": platform.python_version()})

    done("model set", f"{models} on {dev}")
    with tempfile.TemporaryDirectory(prefix="vnp-bench-") as tmp:
        work = Path(tmp)
        fasta = work / "input.fasta"
        write_input(fasta, n, 3000)
        (work / "real.fasta").write_text("".join(p.read_text() for p in sorted((REPO / "tests" / "data").glob("*.fasta"))))
        e2e = end_to_end(fasta, models, dev, work)
        result["end_to_end"] = e2e
        frames = frames_of(fasta)
        result["frames_kept"] = {"synthetic": len(frames), "real_tests_data": len(frames_of(work / "real.fasta"))}
        done("end to end", f"{e2e['frames_per_s']:.1f} frames/s, {e2e['stages_s']}")
        pad = padding(frames, models, 4096 if dev == "cpu" else 32768)
        result["padding_waste_dnabert"], result["padding_waste_esm"] = pad["dnabert"], pad["esm"]
        on_gpu = dev.startswith("cuda")
        result["models_alone"] = model_throughput(frames, models, dev,
                                                  (8192, 16384, 65536) if on_gpu else ())
        result["esm_tokens_per_s"] = result["models_alone"]["esm"]["tokens_per_s"]
        done("models alone", f"ESM-2 {result['esm_tokens_per_s']:,.0f} tokens/s, "
                             f"{result['models_alone']['esm']['tflops']:.1f} TFLOP/s")
        if "reference" not in args.skip:
            # Like for like: the same frames, models loaded and scored, translation excluded.
            ref = reference_style(frames, models, dev)
            ours = ours_on_frames(frames, models, dev)
            result["reference"] = ref
            result["ours_same_frames"] = ours
            result["reference_speedup"] = ref["wall_s"] / ours["wall_s"]
            # What the ratio tends to on a long input: our one load vanishes, the reference's
            # load every 10,000 records does not (a short input's loads weigh on both sides).
            result["reference_speedup_long_input"] = (ref["long_input_s_per_frame"]
                                                      / ours["scoring_s_per_frame"])
            done("reference style", f"x{result['reference_speedup']:.1f}, "
                                    f"x{result['reference_speedup_long_input']:.1f} on a long input")
        if "daemon" not in args.skip:
            jobs = daemon_jobs(models, dev, work, args.daemon_jobs)
            result["daemon_small_jobs"] = jobs
            result["persistent_speedup"] = jobs["speedup"]
            done("small jobs", f"x{jobs['speedup']:.1f} ({jobs['persistent_s']} s vs {jobs['per_job_s']} s)")
        if "memory" not in args.skip:
            mem = working_memory(models, dev, work, max(2, n // 10), args.memory_runs)
            result["working_memory"] = mem
            result["working_memory_ratio_10x"] = mem["ratio_10x"]
            result["working_memory_worst_ratio_10x"] = mem["worst_ratio_10x"]
            done("working memory", f"ratio {mem['ratio_10x']:.2f} (medians), "
                                   f"{mem['worst_ratio_10x']:.2f} at worst")
    print_table(result)

def print_table(r: dict) -> None:
    e = r["end_to_end"]
    rows = [("size / device", f"{r['size']} / {r['device']} ({e['precision']})"),
            ("frames kept", f"{r['frames_kept']['synthetic']} synthetic, {r['frames_kept']['real_tests_data']} in tests/data"),
            ("end to end", f"{e['frames_per_s']:.1f} frames/s, {e['chunks_per_s']:.1f} chunks/s, {e['mbp_per_h']:.2f} Mbp/h"),
            ("stages (s)", ", ".join(f"{k[:-2]} {v}" for k, v in e["stages_s"].items())),
            ("padding waste", f"DNABERT-S {r['padding_waste_dnabert']:.1%}, ESM-2 {r['padding_waste_esm']:.1%}")]
    m = r["models_alone"]
    for label, key in (("DNABERT-S alone", "dnabert"), ("ESM-2 alone", "esm")):
        part = m[key]
        share = (f", {part['share_of_bf16_peak']:.0%} of {m['device_name']}'s bf16 peak "
                 f"({m['bf16_peak_tflops']:.0f})" if part["share_of_bf16_peak"] is not None else "")
        rows.append((label, f"{part['tokens_per_s']:,.0f} tokens/s, {part['tflops']:.2f} TFLOP/s "
                            f"({m['precision']}, {m['batch_tokens']}-token batches){share}"))
    if m.get("esm_tokens_per_s_by_budget"):
        rows.append(("ESM-2 by budget", ", ".join(f"{b}: {v:,} tokens/s" if isinstance(v, int) else f"{b}: {v}"
                                                   for b, v in m["esm_tokens_per_s_by_budget"].items())))
    if "reference" in r:
        rows.append(("reference style", f"{r['reference']['frames_per_s']:.2f} frames/s vs ours "
                     f"{r['ours_same_frames']['frames_per_s']:.2f} on the same frames; speed-up x{r['reference_speedup']:.1f}, "
                     f"x{r['reference_speedup_long_input']:.1f} on a long input (loads {r['reference']['load_s']} s "
                     f"vs {r['ours_same_frames']['load_s']} s)"))
    if "daemon_small_jobs" in r:
        d = r["daemon_small_jobs"]
        rows.append((f"{d['jobs']} small jobs", f"persistent {d['persistent_s']} s, per-job {d['per_job_s']} s; "
                     f"x{d['speedup']:.1f} (scoring alone {d['compute_s_per_job']} s a job: "
                     f"x{d['speedup_ceiling']:.1f} at most)"))
    if "working_memory" in r:
        m = r["working_memory"]
        spread = {k: "/".join(f"{b / 1e6:.0f}" for b in m[k]["runs_working_bytes"]) for k in ("1x", "10x")}
        rows.append(("working memory", f"1x {m['1x']['working_bytes'] / 1e6:.0f} MB, 10x {m['10x']['working_bytes'] / 1e6:.0f} MB; "
                     f"ratio {m['ratio_10x']:.2f} (medians of {m['runs']} runs: {spread['1x']} and {spread['10x']} MB), "
                     f"{m['worst_ratio_10x']:.2f} at worst (largest 10x run / smallest 1x run)"))
    width = max(len(k) for k, _ in rows)
    print(f"VirNucPro benchmark on {r['machine']}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
