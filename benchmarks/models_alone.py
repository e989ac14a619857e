"""Each model alone on the same frames: real tokens/s and model TFLOP/s at the product's token
budget and precision, the share of the GPU's bfloat16 peak where it is known (or given as
VIRNUCPRO_PEAK_TFLOPS), ESM-2 at other budgets on a GPU; and the padding waste of the batches.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from benchmarks.workload import load_as_predict

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

    from virnucpro.batch_budget import resolve
    from virnucpro.batching import batch_by_token_budget
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
    from virnucpro.run.feed import default_batch_tokens
    from virnucpro.scoring import ESM_MAX_RESIDUES, Embedder

    models = load_as_predict(models_root, dev)
    embedder, budget = Embedder(models), resolve(models, default_batch_tokens([dev]))
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
