"""On a CUDA device: the same features and scores as on the CPU (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_tiny_features_on_cuda_equal_cpu(tiny_set_dir):
    from tests.helpers import columns, read_first_sequence
    from virnucpro.chunking import chunk_spans
    from virnucpro.models.loaded import load_models
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.scoring import score_frames
    from virnucpro.translation import translate_six_frames

    genome = read_first_sequence("viral_reference.fasta")
    frames = []
    for k, (s, e) in enumerate(chunk_spans(len(genome), 500)):
        frames += translate_six_frames(genome[s:e], f"g_chunk_{k + 1}", s)
    model_set = resolve_model_set("tiny")
    cpu = score_frames(*columns(frames), load_models(model_set, 500, "cpu"), 4096, keep_features=True)
    gpu = score_frames(*columns(frames), load_models(model_set, 500, "cuda:0"), 32768, keep_features=True)
    assert np.abs(cpu.features - gpu.features).max() < 1e-4
    assert np.abs(cpu.probs - gpu.probs).max() < 1e-5


def test_predict_on_cuda_gives_the_cpu_calls(tmp_path, tiny_set_dir):
    from tests.helpers import DATA, read_table
    from virnucpro.config import PredictConfig
    from virnucpro.engine_config import EngineConfig
    from virnucpro.pipeline import run_predict

    for device in ("cpu", "cuda:0"):  # float32 on both: `auto` would be bfloat16 on the GPU
        run_predict(PredictConfig(inputs=(str(DATA / "viral_reference.fasta"),),
                                  outdir=tmp_path / device, models="tiny", device=device,
                                  engine=EngineConfig(precision="float32"), progress=False))
    a = read_table(tmp_path / "cpu" / "frames.tsv")
    b = read_table(tmp_path / "cuda:0" / "frames.tsv")
    assert [r["frame_id"] for r in a] == [r["frame_id"] for r in b]
    assert [r["call"] for r in a] == [r["call"] for r in b]
    assert max(abs(float(x["p_virus"]) - float(y["p_virus"])) for x, y in zip(a, b, strict=True)) < 1e-5


def test_a_pool_worker_on_the_gpu_matches_the_local_engine(tmp_path, tiny_set_dir):
    from tests.helpers import DATA, read_table
    from virnucpro.config import PredictConfig
    from virnucpro.engine_config import EngineConfig
    from virnucpro.pipeline import run_predict

    for engine in ("local", "pool"):
        [run] = run_predict(PredictConfig(inputs=(str(DATA / "viral_reference.fasta"),),
                                          outdir=tmp_path / engine, models="tiny",
                                          device="cuda:0", engine=EngineConfig(engine=engine),
                                          progress=False))
        assert run["engine"]["name"] == engine
    a = read_table(tmp_path / "local" / "frames.tsv")
    b = read_table(tmp_path / "pool" / "frames.tsv")
    assert [r["call"] for r in a] == [r["call"] for r in b]
    assert max(abs(float(x["p_virus"]) - float(y["p_virus"])) for x, y in zip(a, b, strict=True)) < 1e-6


def test_a_float16_esm_file_widened_on_the_gpu_equals_the_cpu_load(tmp_path):
    from virnucpro.models.esm_io import load_esm
    from virnucpro.models.tiny.esm import write_tiny_esm

    path = write_tiny_esm(tmp_path, seed=3, num_layers=2, embed_dim=40, attention_heads=4,
                          dtype=torch.float16)
    cpu, gpu = load_esm(path).model, load_esm(path, device="cuda:0").model
    a, b = cpu.state_dict(), gpu.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert b[key].device.type == "cuda" and b[key].dtype == a[key].dtype, key
        assert torch.equal(a[key], b[key].cpu()), key
    assert gpu.lm_head.weight is gpu.embed_tokens.weight


@pytest.fixture(scope="module")
def esm_head_dim_64(tmp_path_factory):
    """Heads of 64, as ESM-2 3B's (2560 / 40), which the fused attention kernels take; the tiny
    set's heads of 10 go to the plain kernel. Unfused, float32: fair-esm's reference."""
    from virnucpro.models.esm_io import load_esm
    from virnucpro.models.tiny.esm import write_tiny_esm

    path = write_tiny_esm(tmp_path_factory.mktemp("esm64"), seed=7, num_layers=4, embed_dim=256,
                          attention_heads=4)
    return load_esm(path, device="cuda:0")


def _long_and_padded_tokens(bundle, padded: bool = True):
    """Tokens on the GPU and `keep` as the caller makes it: decided on the host (None without
    padding), then moved."""
    rng = np.random.default_rng(0)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    proteins = ["".join(rng.choice(letters, n)) for n in (1000, 333, 170, 7)]
    if not padded:  # one protein: no mask, the flash kernel can take the bfloat16 pass
        proteins = proteins[:1]
    _, _, tokens = bundle.batch_converter([(str(i), p) for i, p in enumerate(proteins)])
    keep = tokens.ne(bundle.alphabet.padding_idx)
    keep = None if bool(keep.all()) else keep.to("cuda:0")
    return tokens.to("cuda:0"), keep


def _fused_copies(model):
    """A fused float32 copy and a fused copy with bfloat16-resident weights (rotary inv_freq
    kept float32, as load_esm(..., dtype=torch.bfloat16) does); `model` stays unfused."""
    import copy

    from virnucpro.models.esm_fast import fuse_qkv

    fused = copy.deepcopy(model)
    fuse_qkv(fused)
    half = copy.deepcopy(fused).to(torch.bfloat16)
    for layer in half.layers:
        layer.self_attn.rot_emb.inv_freq = layer.self_attn.rot_emb.inv_freq.float()
    return fused, half


def test_rotary_angles_stay_float32_under_cuda_autocast():
    from virnucpro.models.esm_fast import _rotary_tables

    inv_freq = (1.0 / (10000 ** (torch.arange(0, 64, 2).float() / 64))).to("cuda:0")
    plain = _rotary_tables(inv_freq, 1026, torch.float32)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        cast = _rotary_tables(inv_freq, 1026, torch.float32)
        half = _rotary_tables(inv_freq, 1026, torch.bfloat16)
    for a, b, h in zip(plain, cast, half, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)
        # bfloat16 tables are the float32 ones cast: the angles were never bfloat16
        assert h.dtype == torch.bfloat16 and torch.equal(h, a.to(torch.bfloat16))


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "one-protein"])
def test_fast_esm_on_cuda_equals_fair_esm_in_the_fused_kernels(esm_head_dim_64, padded: bool):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from virnucpro.models.esm_fast import last_layer

    b = esm_head_dim_64
    tokens, keep = _long_and_padded_tokens(b, padded)
    assert (keep is None) == (not padded)
    real = tokens.ne(b.alphabet.padding_idx)
    fused, half_model = _fused_copies(b.model)
    # Forced, so that a fallback to the plain kernel cannot pass for the fused ones (a kernel
    # that cannot take these inputs raises instead).
    half_kernel = SDPBackend.EFFICIENT_ATTENTION if padded else SDPBackend.FLASH_ATTENTION
    with torch.inference_mode():
        ref = b.model(tokens, repr_layers=[b.num_layers])["representations"][b.num_layers]
        with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
            fast = last_layer(fused, tokens, keep)
        with sdpa_kernel(half_kernel):
            half = last_layer(half_model, tokens, keep)
    assert fast.dtype == torch.float32 and half.dtype == torch.bfloat16
    assert (ref - fast)[real].abs().max().item() < 1e-4
    cos = torch.nn.functional.cosine_similarity(ref[real], half.float()[real], dim=-1)
    assert cos.min().item() > 0.999


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "one-protein"])
def test_a_fast_esm_batch_never_waits_on_the_host(esm_head_dim_64, padded: bool):
    from virnucpro.models.esm_fast import last_layer

    b = esm_head_dim_64
    tokens, keep = _long_and_padded_tokens(b, padded)
    _, half_model = _fused_copies(b.model)
    with torch.inference_mode():
        last_layer(half_model, tokens, keep)  # warm-up: kernels chosen, memory pools grown
        torch.cuda.synchronize()
        before = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
        try:
            out = last_layer(half_model, tokens, keep)
        finally:
            torch.cuda.set_sync_debug_mode(before)
    assert out.shape == (*tokens.shape, b.embed_dim)
    assert torch.isfinite(out.float()).all()


def test_a_prepared_shards_batches_never_wait_on_the_host(tiny_set_dir):
    # The whole batch loop of a shard, both models in bfloat16, its batches made ahead on the
    # host (scoring.prepare_shard): nothing in it may make the host wait for the device.
    from tests.helpers import columns, read_first_sequence
    from virnucpro.chunking import chunk_spans
    from virnucpro.models.loaded import load_models
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.scoring import Embedder, prepare_shard
    from virnucpro.translation import translate_six_frames

    genome = read_first_sequence("viral_reference.fasta")
    frames = [f for k, (s, e) in enumerate(chunk_spans(len(genome), 500))
              for f in translate_six_frames(genome[s:e], f"g_chunk_{k + 1}", s)]
    nucleotides, proteins = columns(frames)
    models = load_models(resolve_model_set("tiny"), 500, "cuda:0", "bfloat16")
    embedder = Embedder(models)

    def run_batches(prepared):
        out = [embedder.dna([prepared.token_ids[i] for i in batch], made)
               for batch, made in prepared.dna.items()]
        return out + [embedder.protein([proteins[i] for i in batch], made)
                      for batch, made in prepared.protein.items()]

    run_batches(prepare_shard(nucleotides, proteins, models, 2048, embedder))  # warm-up
    prepared = prepare_shard(nucleotides, proteins, models, 2048, embedder)
    assert len(prepared.dna) > 1 and len(prepared.protein) > 1
    torch.cuda.synchronize()
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        out = run_batches(prepared)
    finally:
        torch.cuda.set_sync_debug_mode(before)
    assert all(o.is_cuda and o.dtype == torch.float32 and torch.isfinite(o).all() for o in out)

