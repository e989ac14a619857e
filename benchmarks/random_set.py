"""Write a model set of random weights in the published formats and sizes, for measuring speed
where the published files are absent (an offline accelerator machine, a laptop).

  python -m benchmarks.random_set DIR --size full   # DNABERT-S 117M + ESM-2 3B (36 x 2560)
  python -m benchmarks.random_set DIR --size mid    # DNABERT-S 117M + ESM-2 35M (12 x 480)

The DNABERT-S tokenizer is a BPE of 4096 tokens trained (deterministically) on random and
real DNA, so token counts per frame are close to the published tokenizer's. The calls of such a
set mean nothing; only its speed and memory do.
"""

from __future__ import annotations

import argparse
import random
import time
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
    from virnucpro.models.tiny.esm import write_tiny_esm

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tokenizer = train_dna_tokenizer(seed=seed)
    config = DnaBertConfig(vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
                           hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072)
    write_dnabert(folder / "dnabert-s", config, tiny_state_dict(config, seed), tokenizer)
    layers, dim, heads = ESM_SIZES[size]
    # Stored as the published files are: the 3B one in float16 (half the bytes to read per load).
    write_tiny_esm(folder, seed, num_layers=layers, embed_dim=dim, attention_heads=heads,
                   dtype=torch.float16 if size == "full" else torch.float32)
    for chunk_size in (300, 500):
        model = make_tiny_classifier(768 + dim, seed=chunk_size, hidden_dim=512)
        write_reference_classifier(folder / f"{chunk_size}_model.pth", model)
    return {"folder": str(folder), "size": size, "seconds": round(time.perf_counter() - t0, 1),
            "vocab": config.vocab_size, "esm": {"layers": layers, "dim": dim, "heads": heads}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", choices=sorted(ESM_SIZES), default="mid")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_random_set(args.folder, args.size, args.seed))


if __name__ == "__main__":
    main()
