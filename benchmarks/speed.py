"""Speed of the whole: `predict` end to end (frames/s, chunks/s, Mbp/h, time per stage), and
this project's scoring against the reference scripts' way on the same frames (FIDELITY 7: both
models reloaded per 10,000 records, DNABERT-S one sequence at a time, ESM-2 in 2048-token
batches, float32).
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.workload import columns, load_as_predict


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


def ours_on_frames(frames: list, models_root: str, dev: str) -> dict:
    """This project's scoring of the same frames: one load, token-budget batches."""
    from virnucpro.batch_budget import resolve
    from virnucpro.run.feed import default_batch_tokens
    from virnucpro.scoring import score_frames

    t0 = time.perf_counter()
    models = load_as_predict(models_root, dev)
    score_frames(*columns(frames), models, resolve(models, default_batch_tokens([dev])))
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "load_s": round(models.load_seconds, 2),
            "frames_per_s": len(frames) / wall, "scoring_s_per_frame": (wall - models.load_seconds) / len(frames)}


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
