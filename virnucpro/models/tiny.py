"""The tiny model set: for tests, demos and CI only, never for real predictions.

`build_tiny_set(folder)` writes a complete set with seeded random weights in the real file
formats (an HF-style DNABERT-S folder with a real BPE tokenizer, a fair-esm ESM-2 checkpoint and
its contact-regression file, reference-style pickled classifiers for chunk sizes 300 and 500),
so that the real loading code runs on it. The same seeds give the same bytes on every machine.
The cache logic (where it lives, generating it once) is in `sets.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from virnucpro.chunking import CHUNK_SIZES

log = logging.getLogger(__name__)

# Bump when the generated files change, so that caches made by an older version are rebuilt.
TINY_VERSION = 2

# One seed per file: changing one model's recipe must not shift the weights of the others.
SEEDS = {"dnabert": 11, "esm": 23, 300: 300, 500: 500}
MARKER_TEXT = (
    "This is the tiny VirNucPro model set: seeded random weights for tests, demos and CI.\n"
    "Its predictions mean nothing. Use the `published` set for real work.\n"
)


def build_tiny_set(folder: Path, *, published_like: bool = False) -> None:
    """Write the tiny set into `folder` (created if needed), with its `TINY` marker.

    `published_like`: the same weights written as the published files come (see
    `_as_published`); a run gives the same tables as with the plain tiny set.
    """
    # Imported here: each pulls torch (and fair-esm), which `virnucpro --help` must not pay for.
    from virnucpro.models.classifier_io import make_tiny_classifier, write_reference_classifier
    from virnucpro.models.dnabert_io import write_tiny_dnabert
    from virnucpro.models.esm_io import write_tiny_esm
    from virnucpro.models.sets import TINY_MARKER

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_dnabert(folder / "dnabert-s", seed=SEEDS["dnabert"])
    if published_like:
        _as_published(folder / "dnabert-s")
    checkpoint = write_tiny_esm(folder, seed=SEEDS["esm"], training_cfg=published_like)
    features = _calibration_features(folder / "dnabert-s", checkpoint)
    input_dim = features.shape[1]
    for chunk_size in CHUNK_SIZES:
        model = make_tiny_classifier(input_dim, seed=SEEDS[chunk_size])
        calibrate_classifier(model, features)
        write_reference_classifier(folder / f"{chunk_size}_model.pth", model,
                                   location="cuda:0" if published_like else None)
    (folder / TINY_MARKER).write_text(MARKER_TEXT)
    log.info("wrote the tiny model set in %s (classifier input %d)", folder, input_dim)


def _as_published(dnabert_dir: Path) -> None:
    """Rewrite a DNABERT-S folder's text files as the published ones come: the tokenizer saved
    with truncation at 2000 and fixed padding to 2000 (as `save_pretrained` leaves it after a
    padded training run), config.json with the hub's `auto_map`, `_name_or_path` and
    `transformers_version`. (The classifiers are tagged `cuda:0` and ESM-2's `cfg` has its
    training sections: `build_tiny_set` asks their writers.)"""
    import json

    from tokenizers import Tokenizer

    from virnucpro.models.dnabert_io import SPECIAL_TOKENS

    tokenizer = Tokenizer.from_file(str(dnabert_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=2000)
    tokenizer.enable_padding(length=2000, pad_id=SPECIAL_TOKENS["[PAD]"], pad_token="[PAD]")
    tokenizer.save(str(dnabert_dir / "tokenizer.json"))
    config = json.loads((dnabert_dir / "config.json").read_text())
    config.update({
        "_name_or_path": "zhihan1996/DNABERT-2-117M",
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig",
                     "AutoModel": "bert_layers.BertModel",
                     "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
                     "AutoModelForSequenceClassification":
                         "bert_layers.BertForSequenceClassification"},
        "transformers_version": "4.28.0",
    })
    (dnabert_dir / "config.json").write_text(json.dumps(config, indent=4, sort_keys=True))


def _calibration_features(dnabert_dir: Path, checkpoint: Path):
    """Features of fixed stop-free frames, through the real loaders and embedders."""
    import random

    import torch

    from virnucpro.models.dnabert_io import embed_dna_batch, load_dnabert, tokenize_dna
    from virnucpro.models.esm_io import embed_protein_batch, load_esm
    from virnucpro.translation import CODON_TABLE, translate_six_frames

    rng = random.Random(SEEDS["esm"])
    sense = sorted(c for c, aa in CODON_TABLE.items() if aa != "*")
    frames = []
    for k in range(48):
        chunk = "".join(rng.choice(sense) for _ in range(rng.randint(30, 166)))
        frames += translate_six_frames(chunk, f"cal_chunk_{k}")
    dnabert = load_dnabert(dnabert_dir, "cpu")
    esm = load_esm(checkpoint, "cpu")
    dna = embed_dna_batch(dnabert, tokenize_dna(dnabert.tokenizer, [f.nucleotides for f in frames]))
    prot = embed_protein_batch(esm, [f.protein for f in frames])
    return torch.cat([dna, prot], dim=1)


def calibrate_classifier(model, features) -> None:
    """Fit the batch-norm statistics and the output bias to the tiny models' own features.

    Random weights over these features would call nearly every frame the same class, which
    makes demos and tests blind; with the statistics of real tiny features the calls split
    about evenly (the median frame sits on the decision boundary).
    """
    import torch

    with torch.no_grad():
        hidden = model.hidden_layer(features)
        model.bn1.running_mean.copy_(hidden.mean(0))
        model.bn1.running_var.copy_(hidden.var(0) + 1e-3)
        model.output_layer.bias.zero_()
        model.eval()
        logits = model(features)
        margin = (logits[:, 1] - logits[:, 0]).median()
        model.output_layer.bias[1] = -margin
