"""The tiny set written whole (`build_tiny_set`) and kept in the cache (`ensure_tiny`).

`build_tiny_set(folder)` writes a complete set with seeded random weights in the real file
formats (an HF-style DNABERT-S folder with a real BPE tokenizer, a fair-esm ESM-2 checkpoint and
its contact-regression file, reference-style pickled classifiers for chunk sizes 300 and 500,
calibrated on the tiny models' own features), so that the real loading code runs on it. The same
seeds give the same bytes on every machine. `ensure_tiny` generates it into the cache once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from virnucpro.chunking import CHUNK_SIZES
from virnucpro.models.cache import file_lock, move_into_place, sets_dir, staging
from virnucpro.models.manifest import read_manifest, record_files, write_manifest
from virnucpro.models.modelset import TINY_MARKER, ModelSet, scan_set_folder
from virnucpro.models.set_checks import is_complete

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

    `published_like`: the same weights written as the published files come (the DNABERT-S text
    files by `dnabert.as_published`, the classifiers tagged `cuda:0`, ESM-2's `cfg` with its
    training sections); a run gives the same tables as with the plain tiny set.
    """
    # Imported here: each pulls torch (and fair-esm), which `virnucpro --help` must not pay for.
    from virnucpro.models.classifier_io import write_reference_classifier
    from virnucpro.models.tiny.classifier import make_tiny_classifier
    from virnucpro.models.tiny.dnabert import as_published, write_tiny_dnabert
    from virnucpro.models.tiny.esm import write_tiny_esm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_dnabert(folder / "dnabert-s", seed=SEEDS["dnabert"])
    if published_like:
        as_published(folder / "dnabert-s")
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


def _calibration_features(dnabert_dir: Path, checkpoint: Path):
    """Features of fixed stop-free frames, through the real loaders and embedders."""
    import random

    import torch

    from virnucpro.models.dnabert_io import embed_dna_batch, load_dnabert
    from virnucpro.models.dnabert_tokenizer import tokenize_dna
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


def ensure_tiny() -> ModelSet:
    """The tiny set, generated deterministically into the cache on first use."""
    root = sets_dir() / "tiny"

    def current() -> bool:
        return (read_manifest(root).get("tiny_version") == TINY_VERSION
                and is_complete(root))

    if not current():
        with file_lock(sets_dir() / ".tiny.lock"):
            if not current():  # another process may have made it while we waited
                log.info("generating the tiny model set in %s", root)
                with staging(".tiny-") as tmp:
                    build_tiny_set(tmp)
                    files = record_files(tmp, scan_set_folder(tmp).files())
                    write_manifest(tmp, {"name": "tiny", "source": "tiny", "is_tiny": True,
                                         "tiny_version": TINY_VERSION, "files": files})
                    move_into_place(tmp, root)
    return scan_set_folder(root, name="tiny")
