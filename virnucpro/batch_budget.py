"""`--batch-tokens auto`: a model batch's token budget from the memory a device has left.

On the CPU the budget is 4096 padded tokens (larger batches only add padding work). On a GPU it
is picked once the models are loaded, from the memory still free to this process (the device's
free memory and this process's cap, `torch.cuda.set_per_process_memory_fraction`, whichever is
smaller) and what one token of a batch costs at its peak. That cost is counted from the models'
shapes: ESM-2's feed-forward step holds the residual, the normalised input and two [tokens,
ffn] tensors, 2 x (width + ffn) values a token in the weights' dtype; DNABERT-S, whose width is a
fraction of ESM-2's, holds less. Twice that is planned (the allocator's rounding, the attention
kernel's workspace, the means), and an out-of-memory error still halves a batch. The pick is a
power of two: batches are cut from the input and the budget alone, so workers on like devices
pick the same budget, and so cut a shard the same way whichever takes it, even when their free
memory differs by a little (a mixed pool may differ: `--batch-tokens N` gives every worker N).
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO_BUDGET = 0  # a ShardTask's batch_tokens that leaves the budget to its scorer
CPU_BUDGET = 4096
GPU_FALLBACK = 32768  # a GPU whose free memory cannot be read (and the stand-in scorers)
AUTO_MIN, AUTO_MAX = 1024, 65536  # beyond 64k tokens a batch adds padding, not speed
HEADROOM = 2.0  # planned bytes a token over the counted peak
SPARE_BYTES = 1 << 30  # left to the CUDA context's growth and to other libraries


@dataclass(frozen=True)
class Budget:
    tokens: int
    reason: str  # the sentence a run log and run.json carry


def bytes_per_token(width: int, ffn: int, itemsize: int) -> int:
    """The planned device bytes of one token of an ESM-2 batch (see the module doc)."""
    return int(HEADROOM * 2 * (width + ffn) * itemsize)


def pick(free_bytes: int, per_token: int) -> int:
    """The largest power of two of tokens that `free_bytes` allows, within [AUTO_MIN,
    AUTO_MAX]."""
    fits = max(0, free_bytes - SPARE_BYTES) // max(1, per_token)
    tokens = AUTO_MIN
    while tokens * 2 <= min(fits, AUTO_MAX):
        tokens *= 2
    return tokens


def free_to_process(device: str) -> tuple[int, int]:
    """(bytes this process may still allocate on `device`, the device's total)."""
    import torch

    free, total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device)
    allocated = torch.cuda.memory_allocated(device)
    available = free + reserved - allocated  # the allocator's cached blocks are ours to reuse
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", lambda _d: 1.0)(device)
    return int(min(available, fraction * total - allocated)), int(total)


def auto_batch_tokens(models) -> Budget:
    """The budget for `models` (a LoadedModels) where they are loaded."""
    if not models.device.startswith("cuda"):
        return Budget(CPU_BUDGET, f"{CPU_BUDGET} tokens (auto: the CPU's budget)")
    import torch

    esm = models.esm.model
    first = esm.layers[0]
    itemsize = torch.finfo(next(esm.parameters()).dtype).bits // 8
    per_token = bytes_per_token(int(esm.embed_dim), int(first.fc1.out_features), itemsize)
    try:
        free, total = free_to_process(models.device)
    except RuntimeError as exc:  # a driver that cannot say: the budget of a large GPU
        return Budget(GPU_FALLBACK, f"{GPU_FALLBACK} tokens (auto: the free memory of "
                      f"{models.device} could not be read: {exc})")
    tokens = pick(free, per_token)
    gib = 1 << 30
    return Budget(tokens, f"{tokens} tokens (auto: {free / gib:.1f} of {total / gib:.1f} GiB "
                  f"free to this process on {models.device} after loading, "
                  f"~{per_token // 1024} KiB a token)")


def resolve(models, tokens: int) -> int:
    """`tokens`, or the automatic budget for `models` where it is 0 (AUTO_BUDGET)."""
    return tokens or auto_batch_tokens(models).tokens
