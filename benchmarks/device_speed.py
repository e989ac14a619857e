"""The speed step of the device check: the matrix-product ceiling, the set loaded (its time and
bytes), frames/s end to end through `score_frames` (the shard function of every engine, fed as
the engines feed it: the next shard prepared on a helper thread), peak memory, ESM-2's
attention kernel, then each model alone; medians of timed passes over the same shards after a
warm-up, the model load never inside a timing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from benchmarks import device_figures as fig
from benchmarks.device_setup import (
    CheckConfig,
    OomRetries,
    Results,
    check_frames,
    load_set,
    note,
    scores_file,
    shards_of,
)


@dataclass(frozen=True)
class ModelWork:
    """One model's share of the shards: its batches as the product cuts them (per shard, at
    the budget), what each batch runs on, and the forward FLOPs of their unpadded tokens."""

    name: str
    batches: list  # per shard, the inputs of each batch
    tokens: int
    flops: float
    parameters: int
    layers: int
    width: int


def model_work(cfg: CheckConfig, models, shards: list) -> tuple[ModelWork, ModelWork]:
    from virnucpro.batching import batch_by_token_budget
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.scoring import ESM_MAX_RESIDUES

    ids = [tokenize_dna(models.dnabert.tokenizer, list(n)) for n, _ in shards]
    dna_lengths = [[len(t) for t in shard] for shard in ids]
    esm_lengths = [[min(len(p), ESM_MAX_RESIDUES) + 2 for p in proteins] for _, proteins in shards]
    out = []
    for name, inputs, lengths, params, layers, width in (
            ("dnabert", ids, dna_lengths,
             fig.run_parameters(models.dnabert.model, ("embeddings", "pooler")),
             models.dnabert.config.num_hidden_layers, models.dna_dim),
            ("esm", [p for _, p in shards], esm_lengths,
             fig.run_parameters(models.esm.model, ("embed_tokens", "lm_head", "contact_head")),
             models.esm.num_layers, models.protein_dim)):
        batches = [[[shard[i] for i in b] for b in batch_by_token_budget(n, cfg.batch_tokens)]
                   for shard, n in zip(inputs, lengths, strict=True)]
        flat = [n for shard in lengths for n in shard]
        out.append(ModelWork(name, batches, sum(flat), fig.forward_flops(flat, params, layers, width),
                             params, layers, width))
    return out[0], out[1]


def alone(cfg: CheckConfig, models, work: ModelWork, ceiling: float) -> dict:
    """One model over its batches of every shard, `cfg.passes` times: tokens/s and TFLOP/s of
    the median pass."""
    from virnucpro.scoring import Embedder

    run = getattr(Embedder(models), "dna" if work.name == "dnabert" else "protein")

    def one_pass() -> None:
        for shard in work.batches:
            for batch in shard:
                run(batch)

    seconds = fig.timed_passes(one_pass, cfg.passes, cfg.device)
    tflops = work.flops / fig.median(seconds) / 1e12
    return {"tokens": work.tokens, "tokens_per_s": work.tokens / fig.median(seconds),
            "pass_seconds": [round(s, 3) for s in seconds], "flops_per_pass": work.flops,
            "tflops": tflops, "share_of_gemm_ceiling": tflops / ceiling if ceiling else None,
            "parameters_counted": work.parameters, "layers": work.layers, "width": work.width}


def attention(cfg: CheckConfig, models, esm: ModelWork) -> dict:
    """ESM-2's attention kernel on the first batch of the first shard, and on the same batch
    with its first protein cut to half (a padding mask, which some kernels cannot take)."""
    from virnucpro.scoring import Embedder

    embedder = Embedder(models)
    batch = esm.batches[0][0]
    padded = [batch[0][: len(batch[0]) // 2], *batch[1:]]
    found = fig.attention_kernels(lambda: embedder.protein(batch), cfg.device)
    masked = fig.attention_kernels(lambda: embedder.protein(padded), cfg.device)
    return {**found, "batch_sequences": len(batch), "batch_padded": len({len(p) for p in batch}) > 1,
            "with_padding": {"kind": masked["kind"], "kernels": masked["kernels"][:4],
                             "ops": masked["ops"]}}


def step_speed(cfg: CheckConfig, results: Results) -> None:
    import numpy as np
    import torch

    from virnucpro.scoring import prepare_shard, score_frames

    nucleotides, proteins = check_frames(cfg)
    shards = shards_of(cfg, nucleotides, proteins)
    gemm = fig.gemm_ceiling(cfg.device, (8192, 16384) if cfg.cuda else (1024,))
    results.put("gemm", gemm)
    note("speed", f"GEMM ceiling {gemm['ceiling_tflops']:.1f} TFLOP/s ({gemm['dtype']})")
    models, load = load_set(cfg, cfg.precision)
    results.put("load", load)
    note("speed", f"set loaded in {load['seconds']} s, {load['weights_bytes'] / 1e9:.2f} GB of weights")
    dna, esm = model_work(cfg, models, shards)
    if cfg.cuda:
        torch.cuda.reset_peak_memory_stats(cfg.device)
    retries = OomRetries()
    score_frames(*shards[0], models, cfg.batch_tokens)  # warm-up: kernels picked, pools grown
    first: list = []

    def end_to_end() -> None:
        # As the engines feed it: the next shard's host side (tokens, batches) made on a helper
        # thread while this one scores (the first shard's is inside the pass).
        scored = []
        with ThreadPoolExecutor(1) as helper:
            ahead = helper.submit(prepare_shard, *shards[0], models, cfg.batch_tokens)
            for k, (n, p) in enumerate(shards):
                prepared = ahead.result()
                if k + 1 < len(shards):
                    ahead = helper.submit(prepare_shard, *shards[k + 1], models, cfg.batch_tokens)
                scored.append(score_frames(n, p, models, cfg.batch_tokens, keep_features=True,
                                           prepared=prepared))
        if not first:  # the first pass's scores: the agreement's bf16 side
            first.extend(scored)

    seconds = fig.timed_passes(end_to_end, cfg.passes, cfg.device)
    probs = np.concatenate([s.probs for s in first])
    tflops = (dna.flops + esm.flops) / fig.median(seconds) / 1e12
    results.put("end_to_end", {
        "frames": len(nucleotides), "frames_per_s": len(nucleotides) / fig.median(seconds),
        "pass_seconds": [round(s, 3) for s in seconds], "tflops": tflops,
        "share_of_gemm_ceiling": tflops / gemm["ceiling_tflops"],
        "failed_frames": int(sum((s.status_codes() != 0).sum() for s in first)),
        "nan_frames": int(np.isnan(probs).any(axis=1).sum()), "oom_retries": retries.count})
    note("speed", f"end to end {results.data['end_to_end']['frames_per_s']:,.1f} frames/s")
    results.put("memory", {
        "batch_tokens": cfg.batch_tokens, "weights_bytes": load["weights_bytes"],
        "allocated_after_load_bytes": load["allocated_after_load_bytes"],
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(cfg.device) if cfg.cuda else None,
        "peak_allocated_bytes": torch.cuda.max_memory_allocated(cfg.device) if cfg.cuda else None})
    features = np.concatenate([s.features for s in first])
    np.savez(scores_file(cfg), features=features[:cfg.agree_frames], probs=probs[:cfg.agree_frames])
    try:
        found = attention(cfg, models, esm)
    except Exception as exc:  # noqa: BLE001 - a profiler that cannot run here: the rest still can
        found = {"kind": f"not profiled ({type(exc).__name__}: {exc})"[:300], "kernels": [],
                 "ops": [], "with_padding": {"kind": "not profiled"}}
    results.put("attention", found)
    note("speed", f"attention: {found['kind']}")
    for work in (esm, dna):  # ESM-2 first: its share is a release target
        figures = alone(cfg, models, work, gemm["ceiling_tflops"])
        results.put(work.name, figures)
        note("speed", f"{work.name} alone {figures['tokens_per_s']:,.0f} tokens/s, "
                      f"{figures['tflops']:.2f} TFLOP/s ({figures['share_of_gemm_ceiling']:.0%})")
