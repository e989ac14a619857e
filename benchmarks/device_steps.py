"""The steps of the device check (see `device_check`): set, agreement and auto here, speed in
`device_speed`; each fills its sections of the shared JSON as it goes.
"""

from __future__ import annotations

import time
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
    load_set,
    model_set,
    note,
    release_memory,
    scores_file,
    shards_of,
)
from benchmarks.device_speed import step_speed


def step_set(cfg: CheckConfig, results: Results) -> None:
    """The device, the settings and the model set (written on first use, then found)."""
    results.put("device", device_facts(cfg))
    results.put("settings", {**asdict(cfg), "chunk_bp": CHUNK,
                             "frames": cfg.shards * cfg.shard_frames})
    t0 = time.perf_counter()
    found = model_set(cfg)
    results.put("model_set", {"root": str(found.root), "size": cfg.size,
                              "random_weights": "bench-sets" in found.root.parts or found.is_tiny,
                              "seconds": round(time.perf_counter() - t0, 1)})
    note("set", f"{found.root} in {time.perf_counter() - t0:.1f} s")


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
        del models, scored
        release_memory(cfg)
    models, load = load_set(cfg, other)
    note("agreement", f"{other} set loaded in {load['seconds']} s")
    t0 = time.perf_counter()
    scored = score_frames(nucleotides, proteins, models, cfg.batch_tokens, keep_features=True)
    fig.sync(cfg.device)
    seconds = time.perf_counter() - t0
    dna_dim = models.dna_dim
    del models  # the other precision's models, freed before anything else runs
    release_memory(cfg)
    order = sorted([(cfg.precision, ours["features"], ours["probs"]),
                    (other, scored.features, scored.probs)], key=lambda x: x[0])  # bfloat16 first
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
        seconds = time.perf_counter() - t0
        section.update(completed=failed == 0, frames=len(nucleotides), failed_frames=failed,
                       oom_retries=retries.count, seconds=round(seconds, 2),
                       frames_per_s=len(nucleotides) / seconds,
                       peak_reserved_bytes=torch.cuda.max_memory_reserved(cfg.device) if cfg.cuda else None)
    except Exception as exc:  # noqa: BLE001 - out of memory or a crash: the budget did not hold
        section.update(completed=False, error=f"{type(exc).__name__}: {exc}"[:600])
    results.put("auto_budget", section)
    note("auto", f"completed {section['completed']}, {section.get('batch_tokens')} tokens")


STEPS = {"set": step_set, "speed": step_speed, "auto": step_auto, "agreement": step_agreement}

