"""Write a model set of random weights in the published formats and sizes, for measuring speed
where the published files are absent (an offline accelerator machine, a laptop).

  python -m benchmarks.random_set DIR --size full   # DNABERT-S 117M + ESM-2 3B (36 x 2560)
  python -m benchmarks.random_set DIR --size mid    # DNABERT-S 117M + ESM-2 35M (12 x 480)

The DNABERT-S tokenizer is a BPE of 4096 tokens trained (deterministically) on random and
real DNA, so token counts per frame are close to the published tokenizer's. ESM-2's weights are
drawn as `models/tiny/esm.py` draws them, but one tensor per thread, each from its own generator
(seeded by the set's seed and the tensor's name): the same set whatever the number of cores,
the 3B one written in ~33 s on 2 cores instead of ~57 s (half of it the file), in 10-25 s on 16.
The calls of such a set mean nothing; only its speed and memory do.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ESM_SIZES = {"full": (36, 2560, 40), "mid": (12, 480, 20), "tiny": (2, 40, 4)}


def train_dna_tokenizer(vocab_size: int = 4096, seed: int = 0):
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors, trainers

    from virnucpro.models.dnabert_tokenizer import SPECIAL_TOKENS

    rng = random.Random(seed)
    corpus = ["".join(rng.choice("ACGT") for _ in range(2000)) for _ in range(400)]
    data = Path(__file__).resolve().parents[1] / "tests" / "data"
    for fasta in sorted(data.glob("*.fasta")):
        corpus += [line.strip().upper() for line in fasta.read_text().splitlines()
                   if line and not line.startswith(">")]
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=list("ACGT"), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tokenizer


def write_random_set(folder: Path, size: str, seed: int = 0) -> dict:
    import torch

    from virnucpro.models.classifier_io import write_reference_classifier
    from virnucpro.models.dnabert import DnaBertConfig
    from virnucpro.models.tiny.classifier import make_tiny_classifier
    from virnucpro.models.tiny.dnabert import tiny_state_dict, write_dnabert

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tokenizer = train_dna_tokenizer(seed=seed)
    config = DnaBertConfig(vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
                           hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072)
    write_dnabert(folder / "dnabert-s", config, tiny_state_dict(config, seed), tokenizer)
    layers, dim, heads = ESM_SIZES[size]
    # Stored as the published files are: the 3B one in float16 (half the bytes to read per load).
    write_random_esm(folder, seed, num_layers=layers, embed_dim=dim, attention_heads=heads,
                     dtype=torch.float16 if size == "full" else torch.float32)
    for chunk_size in (300, 500):
        model = make_tiny_classifier(768 + dim, seed=chunk_size, hidden_dim=512)
        write_reference_classifier(folder / f"{chunk_size}_model.pth", model)
    return {"folder": str(folder), "size": size, "seconds": round(time.perf_counter() - t0, 1),
            "vocab": config.vocab_size, "esm": {"layers": layers, "dim": dim, "heads": heads}}


_scratch = threading.local()


def _draw(key: str, shape: tuple[int, ...], seed: int, dtype):
    """One tensor of the random ESM-2 as `write_tiny_esm` draws it (the rotary frequencies
    aside): N(0, 1) scaled as there, narrowed to `dtype`, from a generator of its own."""
    import torch

    # The float32 draw goes to a buffer each thread keeps: a fresh one per tensor faulted in
    # 11 GB of pages for the 3B model. normal_ lets go of the GIL, so threads draw in parallel.
    n = math.prod(shape)
    if getattr(_scratch, "buffer", torch.empty(0)).numel() < n:
        _scratch.buffer = torch.empty(n)
    x = _scratch.buffer[:n].view(shape)
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    x.normal_(generator=torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1))
    if "layer_norm" in key and key.endswith(".weight"):
        x.mul_(0.1).add_(1.0)
    elif key.endswith(".bias"):
        x.mul_(0.02)
    elif len(shape) == 2 and key != "embed_tokens.weight":
        x.mul_(1.0 / shape[1] ** 0.5)
    return x.to(dtype, copy=True)


def write_random_esm(folder: Path, seed: int = 0, *, num_layers: int, embed_dim: int,
                     attention_heads: int, dtype=None, threads: int | None = None) -> Path:
    """A random ESM-2 in the published checkpoint format, the files `write_tiny_esm` writes
    (same names, keys, shapes, dtypes, cfg; held equal by tests/unit/test_random_set.py),
    drawn on `threads` threads (default: every core). Returns the .pt path."""
    import esm
    import torch
    from esm.model.esm2 import ESM2

    from virnucpro.models.esm_io import regression_path

    dtype = dtype or torch.float32
    with torch.device("meta"):  # names and shapes only
        template = ESM2(num_layers=num_layers, embed_dim=embed_dim, attention_heads=attention_heads,
                        alphabet=esm.data.Alphabet.from_architecture("ESM-1b"))
    shapes = {k: tuple(v.shape) for k, v in template.state_dict().items()}
    head_dim = embed_dim // attention_heads
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    drawn = [k for k in sorted(shapes) if not k.endswith("rot_emb.inv_freq")]
    # One torch thread per draw: the tensors are the parallel grain; torch's own threads inside
    # each of 16 concurrent narrowings would start 16 x 16 of them.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
            values = dict(zip(drawn, pool.map(lambda k: _draw(k, shapes[k], seed, dtype), drawn),
                              strict=True))
    finally:
        torch.set_num_threads(before)
    state = {k: values.pop(k) if k in values else inv_freq.to(dtype)  # a buffer, not a weight
             for k in sorted(shapes)}
    state["lm_head.weight"] = state["embed_tokens.weight"].clone()  # tied, as in ESM2
    regression = {k: state.pop(k) for k in list(state) if k.startswith("contact_head.")}
    model_state = {(f"encoder.{k}" if k.startswith("lm_head.") else f"encoder.sentence_encoder.{k}"): v
                   for k, v in state.items()}
    cfg = argparse.Namespace(_name="ESM2", encoder_layers=num_layers, encoder_embed_dim=embed_dim,
                             encoder_ffn_embed_dim=4 * embed_dim,
                             encoder_attention_heads=attention_heads, token_dropout=True,
                             dropout=0.0, attention_dropout=0.0, max_positions=1024)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"esm2_t{num_layers}_tiny.pt"
    torch.save({"model": model_state, "cfg": {"model": cfg}}, path)
    torch.save({"model": regression}, regression_path(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", choices=sorted(ESM_SIZES), default="mid")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_random_set(args.folder, args.size, args.seed))


if __name__ == "__main__":
    main()
