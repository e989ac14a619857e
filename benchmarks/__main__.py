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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.synthetic_input import write_input

REPO = Path(__file__).resolve().parents[1]


def model_set_for(size: str) -> str:
    from virnucpro.models.cache import cache_root
    from virnucpro.models.sets import resolve_model_set

    if size == "tiny":
        return str(resolve_model_set("tiny").root)
    if size == "full":
        try:
            return str(resolve_model_set("published", fetch_missing=False, progress=False).root)
        except Exception:  # noqa: BLE001 - absent offline: random weights of the same sizes
            pass
    folder = cache_root() / "bench-sets" / size
    if not (folder / "300_model.pth").exists():
        from benchmarks.random_set import write_random_set

        print(f"writing a random {size} model set in {folder} ...", file=sys.stderr)
        write_random_set(folder, size)
    return str(folder)


def device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def end_to_end(fasta: Path, models: str, dev: str, work: Path) -> dict:
    from virnucpro.config import PredictConfig
    from virnucpro.engine_config import EngineConfig
    from virnucpro.pipeline import run_predict

    t0 = time.perf_counter()
    [run] = run_predict(PredictConfig(inputs=(str(fasta),), outdir=work / "e2e", models=models,
                                      device=dev, engine=EngineConfig(engine="local"),
                                      progress=False, force=True, report=False))
    wall = time.perf_counter() - t0
    c, t = run["counts"], run["timings"]
    return {"wall_s": round(wall, 2), "frames": c["frames"], "chunks": c["chunks"],
            "bases": c["bases"], "precision": run["resume_key"]["models"]["precision"],
            "stages_s": t, "frames_per_s": c["frames"] / t["score_s"],
            "chunks_per_s": c["chunks"] / t["score_s"], "mbp_per_h": c["bases"] / wall * 3600 / 1e6}


@dataclass(frozen=True, slots=True)
class Frame:
    """What the models read of one kept frame."""

    nucleotides: str
    protein: str


def frames_of(fasta: Path, chunk_size: int = 500) -> list[Frame]:
    from virnucpro.plan import iter_blocks
    from virnucpro.seqfile import read_fasta, scan_fasta

    return [Frame(n, p) for b in iter_blocks(read_fasta(scan_fasta(fasta)), chunk_size)
            for n, p in zip(b.nucleotides, b.proteins, strict=True)]


def columns(frames: list[Frame]) -> tuple[list[str], list[str]]:
    return [f.nucleotides for f in frames], [f.protein for f in frames]


def load_as_predict(models_root: str, dev: str):
    """The set loaded as `predict` loads it on `dev` (bfloat16 autocast on a GPU)."""
    from virnucpro.devices import effective_precision
    from virnucpro.models.loaded import load_models
    from virnucpro.models.modelset import scan_set_folder

    return load_models(scan_set_folder(models_root), 500, dev, effective_precision("auto", [dev]))


def ours_on_frames(frames: list, models_root: str, dev: str) -> dict:
    """This project's scoring of the same frames: one load, token-budget batches."""
    from virnucpro.pipeline import default_batch_tokens
    from virnucpro.scoring import score_frames

    t0 = time.perf_counter()
    models = load_as_predict(models_root, dev)
    score_frames(*columns(frames), models, default_batch_tokens([dev]))
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "load_s": round(models.load_seconds, 2),
            "frames_per_s": len(frames) / wall, "scoring_s_per_frame": (wall - models.load_seconds) / len(frames)}


# Dense bfloat16 tensor peaks (TFLOP/s, no sparsity) from the vendors' data sheets.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0,
                    "H100 NVL": 835.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0}


def bf16_peak_tflops(dev: str) -> tuple[float | None, str]:
    if os.environ.get("VIRNUCPRO_PEAK_TFLOPS"):
        return float(os.environ["VIRNUCPRO_PEAK_TFLOPS"]), "VIRNUCPRO_PEAK_TFLOPS"
    if not dev.startswith("cuda"):
        return None, "cpu"
    import torch

    name = torch.cuda.get_device_name(dev)
    for key in sorted(BF16_PEAK_TFLOPS, key=len, reverse=True):  # "L40S" before "L40" before "L4"
        if key in name:
            return BF16_PEAK_TFLOPS[key], name
    return None, name


def model_throughput(frames: list, models_root: str, dev: str, sweep: tuple[int, ...] = ()) -> dict:
    """Each model alone over the frames at the product's budget and precision: real (unpadded)
    tokens per second and model FLOP/s: 2 x weights per token for the matrix products plus
    4 x layers x width x length for attention, the usual forward count."""
    import torch

    from virnucpro.batching import batch_by_token_budget
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.pipeline import default_batch_tokens
    from virnucpro.scoring import ESM_MAX_RESIDUES, Embedder

    models = load_as_predict(models_root, dev)
    embedder, budget = Embedder(models), default_batch_tokens([dev])
    ids = tokenize_dna(models.dnabert.tokenizer, [f.nucleotides for f in frames])
    proteins = [f.protein[:ESM_MAX_RESIDUES] for f in frames]

    def sync() -> None:
        if dev.startswith("cuda"):
            torch.cuda.synchronize(dev)

    def timed(lengths: list[int], run, params: int, layers: int, width: int,
              tokens_per_batch: int = budget) -> dict:
        batches = batch_by_token_budget(lengths, tokens_per_batch)
        run(batches[0])  # warm-up: kernels chosen, memory pools grown
        sync()
        t0 = time.perf_counter()
        for batch in batches:
            run(batch)
        sync()
        seconds = time.perf_counter() - t0
        tokens = sum(lengths)
        mean_len = tokens / len(lengths)
        flops = tokens * (2 * params + 4 * layers * width * mean_len)
        return {"tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": tokens / seconds,
                "tflops": flops / seconds / 1e12}

    def weights(module, skip: tuple[str, ...]) -> int:
        return sum(p.numel() for n, p in module.named_parameters() if not any(s in n for s in skip))

    dna_model, esm = models.dnabert.model, models.esm.model
    dna = timed([len(t) for t in ids], lambda b: embedder.dna([ids[i] for i in b]),
                weights(dna_model, ("embeddings", "pooler")), models.dnabert.config.num_hidden_layers,
                models.dna_dim)
    esm_args = ([len(p) + 2 for p in proteins], lambda b: embedder.protein([proteins[i] for i in b]),
                weights(esm, ("embed_tokens", "lm_head", "contact_head")), models.esm.num_layers,
                models.protein_dim)
    prot = timed(*esm_args)
    peak, device_name = bf16_peak_tflops(dev)
    for part in (dna, prot):
        part["share_of_bf16_peak"] = part["tflops"] / peak if peak else None
    by_budget = {}
    for tokens_per_batch in sweep:  # does the product's budget fill the device? ESM-2 at others
        try:
            by_budget[tokens_per_batch] = round(timed(*esm_args, tokens_per_batch)["tokens_per_s"])
        except torch.cuda.OutOfMemoryError:
            by_budget[tokens_per_batch] = "out of memory"
            torch.cuda.empty_cache()
    if by_budget:
        by_budget[budget] = round(prot["tokens_per_s"])
    return {"precision": models.precision, "batch_tokens": budget, "device_name": device_name,
            "bf16_peak_tflops": peak, "dnabert": dna, "esm": prot,
            "esm_tokens_per_s_by_budget": dict(sorted(by_budget.items()))}


def reference_style(frames: list, models_root: str, dev: str) -> dict:
    """The reference scripts' processing, from FIDELITY 7, written here: models reloaded for
    every 10,000 records, DNABERT-S one sequence at a time, ESM-2 in 2048-token batches."""
    import numpy as np

    from virnucpro.batching import batch_by_token_budget
    from virnucpro.models.dnabert_io import embed_dna_batch
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.models.esm_io import embed_protein_batch
    from virnucpro.models.loaded import load_models
    from virnucpro.models.modelset import scan_set_folder
    from virnucpro.scoring import classify_features

    t0 = time.perf_counter()
    loading, loads = 0.0, 0
    model_set = scan_set_folder(models_root)
    for start in range(0, len(frames), 10_000):
        block = frames[start:start + 10_000]
        models = load_models(model_set, 500, dev)  # a fresh load per 10,000 records
        loading += models.load_seconds
        loads += 1
        dna = np.stack([embed_dna_batch(models.dnabert, tokenize_dna(models.dnabert.tokenizer,
                                                                     [f.nucleotides]))[0].numpy()
                        for f in block])
        proteins = [f.protein for f in block]
        prot = np.zeros((len(block), models.protein_dim), np.float32)
        for batch in batch_by_token_budget([len(p) + 2 for p in proteins], 2048):
            prot[batch] = embed_protein_batch(models.esm, [proteins[i] for i in batch]).numpy()
        classify_features(np.concatenate([dna, prot], axis=1), models)
        del models
    wall = time.perf_counter() - t0
    # Per frame on a long input: the scoring, plus one load shared by 10,000 records.
    per_frame = (wall - loading) / len(frames) + loading / loads / 10_000
    return {"wall_s": round(wall, 2), "load_s": round(loading, 2), "frames_per_s": len(frames) / wall,
            "long_input_s_per_frame": per_frame}


def padding(frames: list, models_root: str, batch_tokens: int) -> dict:
    from virnucpro.batching import batch_by_token_budget, padding_waste
    from virnucpro.models.dnabert_io import load_dnabert
    from virnucpro.models.dnabert_tokenizer import tokenize_dna

    tok = load_dnabert(Path(models_root) / "dnabert-s").tokenizer
    dna = [len(t) for t in tokenize_dna(tok, [f.nucleotides for f in frames])]
    esm = [min(len(f.protein), 1024) + 2 for f in frames]
    return {"dnabert": padding_waste(dna, batch_by_token_budget(dna, batch_tokens)),
            "esm": padding_waste(esm, batch_by_token_budget(esm, batch_tokens)),
            "batch_tokens": batch_tokens}


def daemon_jobs(models_root: str, dev: str, work: Path, n_jobs: int = 10) -> dict:
    """10 small jobs of 5 sequences each, one after the other, persistent vs per-job models."""
    small = work / "small.fasta"
    write_input(small, 5, 500, seed=7)  # 5 contigs of 500 bp: a small job
    out = {}
    for persistent in (True, False):
        runtime = work / f"run-{persistent}"
        runtime.mkdir(mode=0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(work / f"st-{persistent}")}
        flag = "--persistent-models" if persistent else "--no-persistent-models"
        args = ["--devices", dev, flag] + (["--models", models_root] if persistent else [])
        log = work / f"daemon-{persistent}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start",
                                     "--foreground", *args], env=env, stderr=err)
        try:
            client = _client(env, proc, log)
            t0 = time.perf_counter()
            for i in range(n_jobs):
                job = client.submit([str(small)], outdir=str(work / f"jobs-{persistent}" / str(i)),
                                    options={"models": models_root, "report": False})
                while client.show(job.id).state.live:
                    time.sleep(0.05)
            out["persistent" if persistent else "per_job"] = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(60)
    floor = small_job_compute(small, models_root, dev)
    return {"jobs": n_jobs, "persistent_s": round(out["persistent"], 2),
            "per_job_s": round(out["per_job"], 2), "speedup": out["per_job"] / out["persistent"],
            "compute_s_per_job": round(floor, 3),
            "speedup_ceiling": out["per_job"] / (n_jobs * floor)}


def small_job_compute(fasta: Path, models_root: str, dev: str) -> float:
    """The scoring of one small job with the models resident and warm (best of 3): what no
    daemon can go below per job, so per-job time / this bounds the persistent speed-up."""
    from virnucpro.pipeline import default_batch_tokens
    from virnucpro.scoring import score_frames

    frames = frames_of(fasta)
    models = load_as_predict(models_root, dev)
    best = float("inf")
    for _ in range(4):  # the first is a warm-up
        t0 = time.perf_counter()
        score_frames(*columns(frames), models, default_batch_tokens([dev]))
        best = min(best, time.perf_counter() - t0)
    return best


def _client(env: dict, proc: subprocess.Popen, log: Path):
    """A client of the daemon just started; its log's end if it exits or never answers."""
    os.environ.update({k: env[k] for k in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME")})
    from virnucpro.daemon.client import Client, DaemonUnavailable

    deadline = time.monotonic() + 300  # a persistent daemon loads its models before answering
    while True:
        try:
            client = Client(timeout=2)
            client.status()
            return Client(timeout=60)
        except DaemonUnavailable:
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "no answer"
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the benchmark's daemon failed to start ({why}):\n{tail}") from None
            time.sleep(0.2)


def working_memory(models_root: str, dev: str, work: Path, sequences: int, runs: int = 3) -> dict:
    """`sequences` synthetic 3000 bp records (12 kept frames each at 500 bp) and 10x as many.
    The 1x input fills at least one token budget of each model, so that the comparison is about
    what grows with the input, not about a first batch too small to be full.

    Each size runs `runs` times, each in its own process, and the median run counts: glibc's
    malloc moves its mmap threshold as a run frees large blocks, and how much freed memory it
    keeps varies by ~±150 MB from one run to the next of the same input (measured on `mid`:
    412, 418 and 543 MB; with the threshold pinned at 1 MB, 273-274 MB but 30 % slower)."""
    import statistics

    from virnucpro.pipeline import default_batch_tokens

    per_budget = -(-default_batch_tokens([dev]) // (110 * 12))  # ~110 DNABERT-S tokens a frame
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

    def done(section: str, figures: str) -> None:
        # Each part as it ends, with the partial JSON: a run cut short keeps what it measured.
        print(f"[{time.perf_counter() - started:6.0f} s] {section}: {figures}", file=sys.stderr,
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")

    if args.size == "host":
        from benchmarks import host

        result = {"size": "host", "quick": args.quick, "machine": machine,
                  "python": platform.python_version()}
        host.run(args.quick, result, done)
        done("host", "finished")
        return
    dev = device()
    models = model_set_for(args.size)
    n = {"tiny": 200, "mid": 12, "full": 600}[args.size] // (4 if args.quick else 1)
    result = {"size": args.size, "device": dev, "quick": args.quick, "models": models,
              "machine": machine, "python": platform.python_version()}

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
    _print_table(result)


def _print_table(r: dict) -> None:
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


if __name__ == "__main__":
    main()
