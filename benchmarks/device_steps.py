"""The steps of the device check (see `device_check`): set, speed, agreement and auto, each
filling its sections of the shared JSON as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict

from benchmarks import device_figures as fig
from benchmarks.device_setup import (
    CHUNK,
    GIB,
    CheckConfig,
    OomRetries,
    Results,
    check_frames,
    device_facts,
    free,
    load_set,
    model_set,
    note,
    scores_file,
    shards_of,
)


def step_set(cfg: CheckConfig, results: Results) -> None:
    t0 = time.perf_counter()
    found = model_set(cfg)
    results.put("model_set", {"root": str(found.root), "size": cfg.size,
                              "random_weights": "bench-sets" in found.root.parts or found.is_tiny,
                              "seconds": round(time.perf_counter() - t0, 1)})
    note("set", f"{found.root} in {time.perf_counter() - t0:.1f} s")


def step_speed(cfg: CheckConfig, results: Results) -> None:
    import numpy as np
    import torch

    from virnucpro.scoring import score_frames

    results.put("device", device_facts(cfg))
    results.put("settings", {**asdict(cfg), "chunk_bp": CHUNK,
                             "frames": cfg.shards * cfg.shard_frames})
    nucleotides, proteins = check_frames(cfg)
    shards = shards_of(cfg, nucleotides, proteins)
    sizes = (8192, 16384) if cfg.cuda else (1024,)
    results.put("gemm", fig.gemm_ceiling(cfg.device, sizes))
    note("speed", f"GEMM ceiling {results.data['gemm']['ceiling_tflops']:.1f} TFLOP/s")
    models, load = load_set(cfg, cfg.precision)
    results.put("load", load)
    note("speed", f"set loaded in {load['seconds']} s ({load['weights_bytes'] / 1e9:.2f} GB of weights)")
    if cfg.cuda:
        torch.cuda.reset_peak_memory_stats(cfg.device)
    retries = OomRetries()
    score_frames(*shards[0], models, cfg.batch_tokens)  # warm-up: kernels picked, pools grown
    first: list = []

    def end_to_end() -> None:
        scored = [score_frames(n, p, models, cfg.batch_tokens, keep_features=True) for n, p in shards]
        if not first:
            first.extend(scored)

    seconds = fig.timed_passes(end_to_end, cfg.passes, cfg.device)
    probs = np.concatenate([s.probs for s in first])
    results.put("end_to_end", {
        "frames": len(nucleotides), "frames_per_s": len(nucleotides) / fig.median(seconds),
        "pass_seconds": [round(s, 3) for s in seconds],
        "failed_frames": int(sum((s.status_codes() != 0).sum() for s in first)),
        "nan_frames": int(np.isnan(probs).any(axis=1).sum()), "oom_retries": retries.count})
    note("speed", f"end to end {results.data['end_to_end']['frames_per_s']:,.1f} frames/s")
    features = np.concatenate([s.features for s in first])
    np.savez(scores_file(cfg), features=features[:cfg.agree_frames], probs=probs[:cfg.agree_frames])
    results.put("memory", {
        "batch_tokens": cfg.batch_tokens, "weights_bytes": load["weights_bytes"],
        "allocated_after_load_bytes": load["allocated_after_load_bytes"],
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(cfg.device) if cfg.cuda else None,
        "peak_allocated_bytes": torch.cuda.max_memory_allocated(cfg.device) if cfg.cuda else None})
    ceiling = results.data["gemm"]["ceiling_tflops"]
    for name, figures in alone(cfg, models, shards, ceiling):
        results.put(name, figures)
        note("speed", f"{name} alone {figures['tokens_per_s']:,.0f} tokens/s, "
                      f"{figures['tflops']:.2f} TFLOP/s ({figures['share_of_gemm_ceiling']:.0%})")
    results.put("attention", attention(cfg, models, shards[0][1]))
    note("speed", f"attention: {results.data['attention']['kind']}")


def step_agreement(cfg: CheckConfig, results: Results) -> None:
    import numpy as np

    from virnucpro.scoring import score_frames

    nucleotides, proteins = (c[:cfg.agree_frames] for c in check_frames(cfg))
    other = "float32" if cfg.precision != "float32" else "bfloat16"
    saved = scores_file(cfg)
    if saved.exists():  # the speed step's scores of these frames
        with np.load(saved) as kept:
            ours = {"features": kept["features"], "probs": kept["probs"]}
    else:  # that step was cut before it had them: scored here
        models, _ = load_set(cfg, cfg.precision)
        scored = score_frames(nucleotides, proteins, models, cfg.batch_tokens, keep_features=True)
        ours = {"features": scored.features, "probs": scored.probs}
        free(models, cfg)
        del scored
    models, load = load_set(cfg, other)
    note("agreement", f"{other} set loaded in {load['seconds']} s")
    t0 = time.perf_counter()
    scored = score_frames(nucleotides, proteins, models, cfg.batch_tokens, keep_features=True)
    fig.sync(cfg.device)
    seconds = time.perf_counter() - t0
    dna_dim = models.dna_dim
    free(models, cfg)
    order = sorted([(cfg.precision, ours["features"], ours["probs"]),
                    (other, scored.features, scored.probs)])  # bfloat16 first, then float32
    figures = fig.agreement({n: f for n, f, _ in order}, {n: p for n, _, p in order}, dna_dim)
    figures.update({"batch_tokens": cfg.batch_tokens, "scores_from": "speed step" if saved.exists()
                    else "this step", f"{other}_load_s": load["seconds"],
                    f"{other}_frames_per_s": len(nucleotides) / seconds})
    results.put("agreement", figures)
    note("agreement", f"{figures['call_flips']} call flips in {figures['compared']} frames, "
                      f"cosine min {figures['feature_cosine_min']}")


def step_auto(cfg: CheckConfig, results: Results) -> None:
    import torch

    from virnucpro.scoring import score_frames

    section: dict = {"fraction_gib": cfg.fraction_gib, "completed": None}
    try:
        from virnucpro.batch_budget import auto_batch_tokens
    except ImportError as exc:
        section["error"] = (f"not run: virnucpro.batch_budget.auto_batch_tokens is not in this "
                            f"checkout ({exc})")
        results.put("auto_budget", section)
        note("auto", section["error"])
        return
    if cfg.cuda:
        total = torch.cuda.get_device_properties(cfg.device).total_memory
        fraction = min(1.0, cfg.fraction_gib * GIB / total)
        torch.cuda.set_per_process_memory_fraction(fraction, cfg.device)
        section.update(memory_fraction=round(fraction, 4), fraction_bytes=int(fraction * total))
    else:
        section["note"] = "on the CPU: no memory fraction, the CPU's budget"
    results.put("auto_budget", section)  # a crash below still shows that it started
    try:
        models, load = load_set(cfg, cfg.precision)
        budget = auto_batch_tokens(models)
        tokens, reason = (budget.tokens, budget.reason) if hasattr(budget, "tokens") else budget
        section.update(batch_tokens=int(tokens), reason=reason, load_s=load["seconds"])
        if cfg.cuda:
            torch.cuda.reset_peak_memory_stats(cfg.device)
        retries = OomRetries()
        nucleotides, proteins = check_frames(cfg)
        t0 = time.perf_counter()
        scored = [score_frames(n, p, models, int(tokens)) for n, p in shards_of(cfg, nucleotides, proteins)]
        fig.sync(cfg.device)
        failed = int(sum((s.status_codes() != 0).sum() for s in scored))
        section.update(completed=failed == 0, frames=len(nucleotides), failed_frames=failed,
                       oom_retries=retries.count, seconds=round(time.perf_counter() - t0, 2),
                       peak_reserved_bytes=torch.cuda.max_memory_reserved(cfg.device) if cfg.cuda else None)
    except Exception as exc:  # noqa: BLE001 - out of memory or a crash: the budget did not hold
        section.update(completed=False, error=f"{type(exc).__name__}: {exc}"[:600])
    results.put("auto_budget", section)
    note("auto", f"completed {section['completed']}, {section.get('batch_tokens')} tokens")


def alone(cfg: CheckConfig, models, shards: list, ceiling: float) -> Iterator[tuple[str, dict]]:
    """Each model alone over the shards' batches as the product cuts them (per shard, at the
    budget): DNABERT-S on token ids made beforehand, ESM-2 on the proteins; tokens/s of the
    median pass and model TFLOP/s (`forward_flops` of the unpadded tokens)."""
    from virnucpro.batching import batch_by_token_budget
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.scoring import ESM_MAX_RESIDUES, Embedder

    embedder = Embedder(models)
    ids = [tokenize_dna(models.dnabert.tokenizer, list(n)) for n, _ in shards]
    esm_lengths = [[min(len(p), ESM_MAX_RESIDUES) + 2 for p in proteins] for _, proteins in shards]
    dna_batches = [[[t[i] for i in b] for b in batch_by_token_budget([len(x) for x in t], cfg.batch_tokens)]
                   for t in ids]
    esm_batches = [[[proteins[i] for i in b] for b in batch_by_token_budget(lengths, cfg.batch_tokens)]
                   for (_, proteins), lengths in zip(shards, esm_lengths, strict=True)]
    parts = (("dnabert", dna_batches, embedder.dna, [len(x) for t in ids for x in t],
              fig.run_parameters(models.dnabert.model, ("embeddings", "pooler")),
              models.dnabert.config.num_hidden_layers, models.dna_dim),
             ("esm", esm_batches, embedder.protein, [n for lengths in esm_lengths for n in lengths],
              fig.run_parameters(models.esm.model, ("embed_tokens", "lm_head", "contact_head")),
              models.esm.num_layers, models.protein_dim))
    for name, batches, run, lengths, params, layers, width in parts:
        def one_pass(batches=batches, run=run) -> None:
            for shard in batches:
                for batch in shard:
                    run(batch)

        seconds = fig.timed_passes(one_pass, cfg.passes, cfg.device)
        flops = fig.forward_flops(lengths, params, layers, width)
        tflops = flops / fig.median(seconds) / 1e12
        yield name, {"tokens": sum(lengths), "tokens_per_s": sum(lengths) / fig.median(seconds),
                     "pass_seconds": [round(s, 3) for s in seconds], "flops_per_pass": flops,
                     "tflops": tflops, "share_of_gemm_ceiling": tflops / ceiling if ceiling else None,
                     "parameters_counted": params, "layers": layers, "width": width}


def attention(cfg: CheckConfig, models, proteins: list[str]) -> dict:
    """The attention kernel of ESM-2 on the first batch of a shard, and on the same batch with
    its first protein cut to half (a padding mask, which some kernels cannot take)."""
    from virnucpro.batching import batch_by_token_budget
    from virnucpro.scoring import Embedder

    embedder = Embedder(models)
    first = batch_by_token_budget([len(p) + 2 for p in proteins], cfg.batch_tokens)[0]
    batch = [proteins[i] for i in first]
    padded = [batch[0][: len(batch[0]) // 2], *batch[1:]]
    found = fig.attention_kernels(lambda: embedder.protein(batch), cfg.device)
    masked = fig.attention_kernels(lambda: embedder.protein(padded), cfg.device)
    return {**found, "batch_sequences": len(batch), "batch_padded": len({len(p) for p in batch}) > 1,
            "with_padding": {"kind": masked["kind"], "kernels": masked["kernels"][:4],
                             "ops": masked["ops"]}}


STEPS = {"set": step_set, "speed": step_speed, "auto": step_auto, "agreement": step_agreement}

