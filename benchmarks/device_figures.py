"""The figures of the device check (`benchmarks/gpu_check.sh`), each measured or counted alone:
the matrix-product ceiling of the device, a model's forward FLOPs, the median of timed passes,
the attention kernels a profiled batch ran, and the agreement of two precisions' scores.

Timings synchronise the device around the timed work (`sync`); FLOPs count useful work only
(unpadded tokens), so a padded batch shows as a lower share of the ceiling, not a higher count.
"""

from __future__ import annotations

import re
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

# Kernel and operator names that belong to attention, for each of the kernels PyTorch's
# scaled-dot-product attention may pick (and the math fallback: a softmax between two bmm).
ATTENTION_NAMES = re.compile(r"flash|fmha|efficient_attention|attention|attn|sdpa|softmax|bmm",
                             re.IGNORECASE)
# In this order: cuDNN's attention kernels may have "flash" in their names too.
KINDS = (("cudnn", re.compile(r"cudnn_attention|cudnn.*(sdpa|attn|fmha)", re.I)),
         ("flash", re.compile(r"flash", re.I)),
         ("memory-efficient (cutlass fmha)", re.compile(r"efficient_attention|fmha|cutlassF", re.I)),
         ("math (softmax + bmm)", re.compile(r"attention_math|softmax", re.I)))


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed_passes(run_pass: Callable[[], object], passes: int, device: str) -> list[float]:
    """Seconds of each of `passes` calls of `run_pass`, the device synchronised around each."""
    seconds = []
    for _ in range(passes):
        sync(device)
        t0 = time.perf_counter()
        run_pass()
        sync(device)
        seconds.append(time.perf_counter() - t0)
    return seconds


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def gemm_ceiling(device: str, sizes: Sequence[int], repeats: int = 10, samples: int = 7) -> dict:
    """TFLOP/s of square matrix products on `device`: bfloat16 on a GPU, float32 on the CPU
    (its precision there); for each size the median of `samples` timings of `repeats`
    products, and the ceiling: the best size's median."""
    import torch

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    by_size = {}
    for n in sizes:
        gen = torch.Generator(device=device).manual_seed(n)
        a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.matmul(a, b, out=out)  # warm-up: cuBLAS picks its kernel, clocks ramp

        def product(a=a, b=b, out=out) -> None:
            for _ in range(repeats):
                torch.matmul(a, b, out=out)

        product()
        seconds = median(timed_passes(product, samples, device))
        by_size[str(n)] = 2 * n**3 * repeats / seconds / 1e12
        del a, b, out
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    best = max(by_size, key=by_size.get)
    return {"dtype": str(dtype).removeprefix("torch."), "tflops_by_size": by_size,
            "ceiling_tflops": by_size[best], "ceiling_size": int(best),
            "repeats": repeats, "samples": samples}


def forward_flops(lengths: Sequence[int], params: int, layers: int, width: int) -> float:
    """FLOPs of a transformer's forward over sequences of `lengths` tokens (each as it is fed,
    unpadded): 2 x non-embedding parameters per token for the matrix products, plus attention's
    4 x layers x width x length^2 per sequence (QK^T and AV)."""
    tokens = sum(lengths)
    return 2.0 * params * tokens + 4.0 * layers * width * sum(n * n for n in lengths)


def run_parameters(module, skip: tuple[str, ...]) -> int:
    """Parameters of `module` but those whose name holds one of `skip` (embeddings, heads that
    the forward does not run)."""
    return sum(p.numel() for n, p in module.named_parameters() if not any(s in n for s in skip))


def attention_kernels(run_batch: Callable[[], object], device: str) -> dict:
    """The attention kernels (device) and operators (host) one call of `run_batch` ran, under
    torch.profiler, and the kind they say: flash, memory-efficient, cudnn or math."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    sync(device)
    with warnings.catch_warnings():  # torch 2.11 warns that a profile's events end with it
        warnings.simplefilter("ignore", UserWarning)
        with profile(activities=activities) as prof:
            run_batch()
            sync(device)
        events = prof.events()
    kernels, ops = {}, {}
    for event in events:
        if not ATTENTION_NAMES.search(event.name):
            continue
        on_device = str(getattr(event, "device_type", "")).endswith("CUDA")
        table = kernels if on_device else ops
        entry = table.setdefault(event.name, {"name": event.name, "calls": 0, "ms": 0.0})
        entry["calls"] += 1
        # device_time_total: torch >= 2.4's name; cuda_time_total before it
        total = (getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
                 if on_device else event.cpu_time_total)
        entry["ms"] += (total or 0.0) / 1000
    return {"kind": kind_of(list(ops)) or kind_of(list(kernels)) or "none found",
            "kernels": [_rounded(e) for e in sorted(kernels.values(), key=lambda e: -e["ms"])[:12]],
            "ops": sorted(ops)[:12]}


def kind_of(names: list[str]) -> str | None:
    """The attention kind that profiled names say (the host's operator names first: they name
    the kernel PyTorch chose, `aten::_scaled_dot_product_flash_attention`...)."""
    return next((label for label, pattern in KINDS if any(pattern.search(n) for n in names)),
                None)


def _rounded(entry: dict) -> dict:
    return {**entry, "ms": round(entry["ms"], 3)}


def agreement(features: dict[str, np.ndarray], probs: dict[str, np.ndarray], dna_dim: int) -> dict:
    """How far two precisions' results on the same frames are apart: per-frame cosine of the
    features (whole, and each model's part), the largest |difference| of P(virus), the calls
    (argmax) that differ, per 10,000 frames, and the frames that came out NaN in each."""
    (name_a, fa), (name_b, fb) = features.items()
    pa, pb = probs[name_a], probs[name_b]
    if fa.shape != fb.shape or pa.shape != pb.shape:
        raise ValueError(f"the two precisions scored different frames: {fa.shape} vs {fb.shape}")
    nan = {name: int(np.isnan(f).any(axis=1).sum()) for name, f in features.items()}
    both = ~(np.isnan(fa).any(axis=1) | np.isnan(fb).any(axis=1)
             | np.isnan(pa).any(axis=1) | np.isnan(pb).any(axis=1))
    fa, fb, pa, pb = (x[both].astype(np.float64) for x in (fa, fb, pa, pb))

    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return (a * b).sum(axis=1) / np.where(norms > 0, norms, 1.0)

    whole = cosine(fa, fb)
    flips = int((pa.argmax(axis=1) != pb.argmax(axis=1)).sum())
    compared = int(both.sum())

    def low(values: np.ndarray) -> float | None:
        return float(values.min()) if len(values) else None

    return {"precisions": [name_a, name_b], "frames": len(both), "compared": compared,
            "feature_cosine_min": low(whole),
            "feature_cosine_median": float(np.median(whole)) if len(whole) else None,
            "dnabert_cosine_min": low(cosine(fa[:, :dna_dim], fb[:, :dna_dim])),
            "esm_cosine_min": low(cosine(fa[:, dna_dim:], fb[:, dna_dim:])),
            "max_abs_dp_virus": float(np.abs(pa[:, 1] - pb[:, 1]).max()) if compared else None,
            "call_flips": flips,
            "call_flips_per_10000": flips * 10_000 / compared if compared else None,
            "nan_frames": nan}
