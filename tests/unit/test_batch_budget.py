"""`--batch-tokens auto`: the budget from a device's free memory (its figures faked: this
machine has no GPU), and the words that mean a failed allocation."""

import pytest
import torch

from virnucpro import batch_budget
from virnucpro.batch_budget import AUTO_MAX, AUTO_MIN, SPARE_BYTES, bytes_per_token, pick

GIB = 1 << 30
ESM_3B_BF16 = bytes_per_token(2560, 10240, 2)


def test_a_token_of_esm2_3b_in_bfloat16_is_planned_at_twice_its_feed_forward_peak():
    assert ESM_3B_BF16 == 2 * 2 * (2560 + 10240) * 2  # 102,400 bytes
    assert bytes_per_token(2560, 10240, 4) == 2 * ESM_3B_BF16  # float32 plans twice as much


@pytest.mark.parametrize(("free_gib", "expected"), [
    (70, AUTO_MAX),  # an H100 after loading: capped, beyond it only padding grows
    (4, 16384),  # 3 GiB usable: 31,457 tokens fit, the power of two below
    (4.1, 16384),  # a little more free memory picks the same budget (like cards cut alike)
    (1, AUTO_MIN),  # nothing left: the smallest budget, and out-of-memory halving after it
])
def test_pick_uses_what_is_free_less_a_spare_gib(free_gib, expected):
    got = pick(int(free_gib * GIB), ESM_3B_BF16)
    assert got == expected and got & (got - 1) == 0
    assert got == AUTO_MIN or got * ESM_3B_BF16 <= free_gib * GIB - SPARE_BYTES


class _Device:
    """A GPU's memory figures, as torch.cuda reports them."""

    def __init__(self, monkeypatch, free, total, reserved, allocated, fraction=1.0):
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "mem_get_info", lambda _d=None: (free, total))
        monkeypatch.setattr(cuda, "memory_reserved", lambda _d=None: reserved)
        monkeypatch.setattr(cuda, "memory_allocated", lambda _d=None: allocated)
        monkeypatch.setattr(cuda, "get_per_process_memory_fraction", lambda _d=None: fraction)


def test_the_allocators_cached_blocks_count_as_free(monkeypatch):
    _Device(monkeypatch, free=10 * GIB, total=80 * GIB, reserved=8 * GIB, allocated=6 * GIB)
    assert batch_budget.free_to_process("cuda:0") == (12 * GIB, 80 * GIB)


def test_a_per_process_fraction_caps_what_is_free(monkeypatch):
    # An 80 GB card shared as 24 GB per process (set_per_process_memory_fraction): the cap
    # counts, not the card's free memory.
    _Device(monkeypatch, free=70 * GIB, total=80 * GIB, reserved=7 * GIB, allocated=6 * GIB,
            fraction=24 / 80)
    assert batch_budget.free_to_process("cuda:0")[0] == 18 * GIB


def test_auto_on_a_gpu_says_what_it_picked_and_from_what(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from virnucpro.models.esm_io import load_esm
    from virnucpro.models.tiny.esm import write_tiny_esm

    esm = load_esm(write_tiny_esm(tmp_path, seed=1), dtype=torch.bfloat16)
    _Device(monkeypatch, free=3 * GIB, total=24 * GIB, reserved=GIB, allocated=GIB)
    budget = batch_budget.auto_batch_tokens(SimpleNamespace(device="cuda:0", esm=esm))
    width, ffn = esm.model.embed_dim, esm.model.layers[0].fc1.out_features
    assert budget.tokens == pick(3 * GIB, bytes_per_token(width, ffn, 2))
    assert f"{budget.tokens} tokens" in budget.reason
    assert "3.0 of 24.0 GiB free" in budget.reason and "cuda:0" in budget.reason


def test_auto_on_the_cpu_is_the_cpus_budget():
    from types import SimpleNamespace

    assert batch_budget.auto_batch_tokens(SimpleNamespace(device="cpu")).tokens == 4096


@pytest.mark.parametrize("text", [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA error: out of memory",
    "DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes",
])
def test_library_allocation_failures_are_out_of_memory(text):
    from virnucpro.scoring import is_out_of_memory

    assert is_out_of_memory(RuntimeError(text))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))


def test_other_errors_are_not():
    from virnucpro.scoring import is_out_of_memory

    assert not is_out_of_memory(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator's RuntimeError


def test_a_device_whose_memory_cannot_be_read_gets_a_large_gpus_budget(monkeypatch):
    from types import SimpleNamespace

    def broken(_device=None):
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    budget = batch_budget.auto_batch_tokens(SimpleNamespace(device="cuda:0", esm=_Esm()))
    assert budget.tokens == batch_budget.GPU_FALLBACK and "could not be read" in budget.reason


class _Esm:
    """What the budget reads of a loaded ESM-2: its width, its feed-forward width, a dtype."""

    def __init__(self):
        layer = torch.nn.Module()
        layer.fc1 = torch.nn.Linear(8, 32)
        self.model = torch.nn.Module()
        self.model.embed_dim, self.model.layers = 8, [layer]
        self.model.weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.bfloat16))
