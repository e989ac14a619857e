"""`python -m benchmarks --size host [--quick]`: the host side alone, with the models' forward
passes replaced by the stand-in scorer (virnucpro.standin: the published DNABERT-S tokenizer
still runs over every frame, then a hash gives the scores).

Two inputs from benchmarks/synthetic_input.py: contigs (3 kb, >= 10 Mbp) and reads (150 bp,
>= 100,000 records); `--quick` takes a tenth. For each it prints:
- each stage alone on one core, on the same frames: validate (the first pass), read, plan,
  shard build and dispatch (tasks pickled as they cross a pipe), tokenization, result merge
  (results back from a pipe into their shard files) and writing (the tables); then `feed`,
  the whole supervisor side (plan, cut, shard files, tables) with each result given at once;
- end to end on the pool engine (one CPU worker) and the local engine, with the engine's
  scorer loaded first (a worker's start is a per-run constant, not a rate); the frames/s of
  the pool run against the tokenizer alone;
- the supervisor process's own CPU seconds per 1,000 frames on the pool run, and the time from
  the last shard's result to the tables being in place;
- on the contigs, `rescore` of the local run (other threshold and region settings) next to a
  `predict` of the same input with the tiny set's real models.
"""

from __future__ import annotations

import os
import pickle
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.synthetic_input import write_input

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_TOKENIZER = REPO / "tests" / "data" / "dnabert-s-tokenizer.json"
SCORER = "virnucpro.standin:HashScorer"
CHUNK_SIZE = 500


def host_model_set() -> str:
    """The tiny set with the published DNABERT-S tokenizer: the stand-in reads only that."""
    from virnucpro.models.cache import cache_root
    from virnucpro.models.sets import resolve_model_set

    folder = cache_root() / "bench-sets" / "host"
    tokenizer = folder / "dnabert-s" / "tokenizer.json"
    if not tokenizer.exists() or tokenizer.read_bytes() != PUBLISHED_TOKENIZER.read_bytes():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(resolve_model_set("tiny").root, folder)
        (folder / "manifest.json").unlink(missing_ok=True)  # its tokenizer hash is the tiny one's
        shutil.copyfile(PUBLISHED_TOKENIZER, tokenizer)
    return str(folder)


def _cpu() -> float:
    """CPU seconds of this process (all its threads), not of its children."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def stages(fasta: Path, models: str, work: Path) -> dict:
    """Each stage alone, one after the other in this process, on one thread, through the
    product's own pieces; then the whole supervisor side (the feed) with scoring free."""
    import numpy as np
    from tokenizers import Tokenizer

    from virnucpro.config import PredictConfig
    from virnucpro.layout import OutputLayout
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.plan import iter_blocks
    from virnucpro.pool.worker import ShardTask
    from virnucpro.run.feed import ShardCutter, ShardFeed
    from virnucpro.run.inputs import ValidatedInput
    from virnucpro.scoring import ShardScores
    from virnucpro.seqfile import read_fasta, scan_fasta
    from virnucpro.shards import DEFAULT_SHARD_FRAMES, ShardStore
    from virnucpro.standin import frame_scores
    from virnucpro.tables import TableWriter

    config = PredictConfig(inputs=(str(fasta),), outdir=work, models=models)
    index, t_validate = _timed(scan_fasta, fasta)
    records, t_read = _timed(lambda: list(read_fasta(index)))
    blocks, t_plan = _timed(lambda: list(iter_blocks(records, CHUNK_SIZE, 1)))
    nucleotides = [n for b in blocks for n in b.nucleotides]
    scores_of = {fid: frame_scores(fid, p)[0] for b in blocks
                 for fid, p in zip(b.frame_ids, b.proteins, strict=True)}

    def dispatch():
        cutter, out = ShardCutter(DEFAULT_SHARD_FRAMES), []
        for shard in [s for b in blocks for s in cutter.take(b)] + [cutter.rest()]:
            task = ShardTask(key=("bench", shard.number), frame_ids=shard.frame_ids,
                             nucleotides=shard.nucleotides, proteins=shard.proteins,
                             batch_tokens=4096, keep_features=False, chunk_size=CHUNK_SIZE)
            out.append((task, pickle.dumps(("task", task), protocol=pickle.HIGHEST_PROTOCOL)))
        return [t for t, _ in out]

    tasks, t_dispatch = _timed(dispatch)
    tokenizer = Tokenizer.from_file(str(Path(models) / "dnabert-s" / "tokenizer.json"))
    _, t_tokenize = _timed(tokenize_dna, tokenizer, nucleotides)
    results = [pickle.dumps(ShardScores(probs=np.stack([scores_of[f] for f in t.frame_ids]),
                                        status=np.zeros(t.n_frames, np.uint8))) for t in tasks]
    store = ShardStore(work / "merge")

    def merge():  # results back from a pipe, into their shard files
        for t, blob in zip(tasks, results, strict=True):
            store.write(t.key[1], t.frame_ids, pickle.loads(blob))

    _, t_merge = _timed(merge)

    def write():
        writer = TableWriter(OutputLayout(work / "write"), threshold=0.5, save_embeddings=False,
                             shard_frames=DEFAULT_SHARD_FRAMES, settings={}, resume=False)
        for b in blocks:
            p = (np.stack([scores_of[f] for f in b.frame_ids]) if b.n_frames
                 else np.zeros((0, 2), np.float32))
            writer.write(b, 0, len(b.records), p, np.zeros(b.n_frames, np.uint8))
        writer.close()

    _, t_write = _timed(write)

    def supervisor():  # the feed end to end, each shard's result given back at once
        layout = OutputLayout(work / "feed")
        layout.work.mkdir(parents=True)
        feed = ShardFeed(ValidatedInput(str(fasta), "bench", index, layout), config, 4096)
        for task in feed:
            feed.done(task, ShardScores(probs=np.stack([scores_of[f] for f in task.frame_ids]),
                                        status=np.zeros(task.n_frames, np.uint8)))
        feed.writer.close()

    _, t_feed = _timed(supervisor)
    n, bases = len(nucleotides), index.total_bp
    return {"records": index.n_records, "bases": bases, "frames": n, "stages": {
        name: {"seconds": s, "frames_per_s": n / s, "mbp_per_s": bases / s / 1e6}
        for name, s in (("validate", t_validate), ("read", t_read), ("plan", t_plan),
                        ("dispatch", t_dispatch), ("tokenize", t_tokenize), ("merge", t_merge),
                        ("write", t_write), ("feed", t_feed))}}


def end_to_end(fasta: Path, models: str, engine_name: str, work: Path) -> dict:
    """One `predict` of `fasta` with the stand-in, its engine (and worker) started first."""
    from virnucpro.config import PredictConfig
    from virnucpro.engine import make_engine
    from virnucpro.engine_config import EngineConfig
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.pipeline import run_predict

    t0 = time.perf_counter()
    engine_config = EngineConfig(engine=engine_name, persistent=True, threads=1)
    model_set = resolve_model_set(models, fetch_missing=False, progress=False)
    engine = make_engine(engine_config, model_set, ["cpu"], CHUNK_SIZE)  # the stand-in: see run()
    if engine_name == "pool":
        engine.start()
    else:
        engine._get_scorer()
    start_s = time.perf_counter() - t0
    config = PredictConfig(inputs=(str(fasta),), outdir=work / f"e2e-{engine_name}", models=models,
                           device="cpu", engine=engine_config, progress=False, force=True,
                           report=False)
    try:
        cpu0, t0 = _cpu(), time.perf_counter()
        [run] = run_predict(config, engine=engine)
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        engine.close()
    frames = run["counts"]["frames"]
    return {"engine": engine_name, "frames": frames, "records": run["counts"]["sequences"],
            "wall_s": wall, "engine_start_s": start_s, "frames_per_s": frames / wall,
            "supervisor_cpu_s_per_1000_frames": cpu / frames * 1000,
            "tables_after_last_shard_s": run["timings"]["tables_after_last_shard_s"],
            "stages_s": run["timings"]}


def rescore_vs_predict(folder: Path, fasta: Path, work: Path, quick: bool) -> dict:
    """`rescore` of a finished run (new threshold and region settings; the FASTA outputs
    rewritten, the input re-read) against a `predict` of the same input with the tiny set's
    real models (local engine, loaded first: the scoring, not a start). `quick` leaves the
    predict out: it takes a minute even on a tenth of the contigs."""
    from virnucpro.config import PredictConfig
    from virnucpro.engine import make_engine
    from virnucpro.engine_config import EngineConfig
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.pipeline import run_predict
    from virnucpro.pool.worker import TEST_SCORER_ENV
    from virnucpro.rescore import RescoreSettings, rescore

    t0 = time.perf_counter()
    [info] = rescore(folder, RescoreSettings(threshold=0.3, region_gap=2, min_region_length=600),
                     outdir=work / "rescored", report=False)
    rescore_s = time.perf_counter() - t0
    assert info.rescored[-1]["sequence_files"] == "written"
    if quick:
        return {"rescore_s": rescore_s}
    standin = os.environ.pop(TEST_SCORER_ENV)
    try:
        engine_config = EngineConfig(engine="local", threads=1)
        engine = make_engine(engine_config, resolve_model_set("tiny", progress=False), ["cpu"],
                             CHUNK_SIZE)
        engine._get_scorer()
        config = PredictConfig(inputs=(str(fasta),), outdir=work / "tiny-predict", models="tiny",
                               device="cpu", engine=engine_config, progress=False, report=False)
        t0 = time.perf_counter()
        try:
            run_predict(config, engine=engine)
        finally:
            engine.close()
        predict_s = time.perf_counter() - t0
    finally:
        os.environ[TEST_SCORER_ENV] = standin
    return {"rescore_s": rescore_s, "tiny_predict_s": predict_s,
            "rescore_share_of_tiny_predict": rescore_s / predict_s}


def inputs(work: Path, quick: bool) -> dict[str, Path]:
    work.mkdir(parents=True, exist_ok=True)
    scale = 10 if quick else 1
    contigs, reads = work / "contigs.fasta", work / "reads.fasta"
    write_input(contigs, 3400 // scale, 3000, seed=1)  # 10.2 Mbp
    write_input(reads, 100_000 // scale, 150, seed=2)  # 100,000 reads
    return {"contigs": contigs, "reads": reads}


def run(quick: bool, result: dict, done) -> None:
    from virnucpro.pool.worker import TEST_SCORER_ENV

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread, as in a worker
    # The stand-in for every engine built here, and for their workers (they inherit it).
    os.environ[TEST_SCORER_ENV] = SCORER
    import torch

    torch.set_num_threads(1)
    models = host_model_set()
    result["models"] = models
    result["inputs"] = {}
    with tempfile.TemporaryDirectory(prefix="vnp-host-") as tmp:
        work = Path(tmp)
        for name, fasta in inputs(work, quick).items():
            part = stages(fasta, models, work / f"{name}-stages")
            result["inputs"][name] = part
            done(f"{name} stages", ", ".join(f"{k} {v['frames_per_s']:,.0f} frames/s"
                                             for k, v in part["stages"].items()))
            for engine in ("pool", "local"):
                e2e = end_to_end(fasta, models, engine, work)
                assert e2e["frames"] == part["frames"], (e2e["frames"], part["frames"])
                part[engine] = e2e
                done(f"{name} {engine}", f"{e2e['frames_per_s']:,.0f} frames/s, supervisor "
                                         f"{e2e['supervisor_cpu_s_per_1000_frames']:.3f} CPU s "
                                         "per 1,000 frames")
            part["pool_vs_tokenizer"] = (part["pool"]["frames_per_s"]
                                         / part["stages"]["tokenize"]["frames_per_s"])
            if name == "contigs":
                r = part["rescore"] = rescore_vs_predict(work / "e2e-local", fasta, work, quick)
                done("contigs rescore", f"{r['rescore_s']:.2f} s" + (
                    f", the tiny set's predict {r['tiny_predict_s']:.2f} s"
                    if "tiny_predict_s" in r else ""))
    print_table(result)


def print_table(r: dict) -> None:
    print(f"VirNucPro host-side benchmark on {r['machine']} (stand-in scorer, published tokenizer)")
    for name, part in r["inputs"].items():
        print(f"  {name}: {part['records']:,} records, {part['bases'] / 1e6:.1f} Mbp, "
              f"{part['frames']:,} frames")
        for stage, v in part["stages"].items():
            print(f"    {stage:<10} {v['frames_per_s']:>10,.0f} frames/s  {v['mbp_per_s']:7.2f} Mbp/s"
                  f"  ({v['seconds']:.3f} s)")
        for engine in ("pool", "local"):
            e = part[engine]
            print(f"    {engine + ' e2e':<10} {e['frames_per_s']:>10,.0f} frames/s  ({e['wall_s']:.2f} s; "
                  f"supervisor {e['supervisor_cpu_s_per_1000_frames']:.3f} CPU s / 1,000 frames; "
                  f"tables {e['tables_after_last_shard_s']:.3f} s after the last shard)")
        print(f"    pool / tokenizer alone: {part['pool_vs_tokenizer']:.0%}")
        if "rescore" in part:
            x = part["rescore"]
            against = (f", the tiny set's predict {x['tiny_predict_s']:.2f} s: "
                       f"{x['rescore_share_of_tiny_predict']:.1%} of it"
                       if "tiny_predict_s" in x else " (--quick: the tiny set's predict left out)")
            print(f"    rescore    {x['rescore_s']:.2f} s{against}")


if __name__ == "__main__":
    sys.exit("run it as: python -m benchmarks --size host [--quick]")
