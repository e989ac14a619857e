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

log = logging.getLogger(__name__)

# Bump when the generated files change, so that caches made by an older version are rebuilt.
TINY_VERSION = 1

# One seed per file: changing one model's recipe must not shift the weights of the others.
SEEDS = {"dnabert": 11, "esm": 23, 300: 300, 500: 500}
CHUNK_SIZES = (300, 500)
MARKER_TEXT = (
    "This is the tiny VirNucPro model set: seeded random weights for tests, demos and CI.\n"
    "Its predictions mean nothing. Use the `published` set for real work.\n"
)


def build_tiny_set(folder: Path) -> None:
    """Write the tiny set into `folder` (created if needed), with its `TINY` marker."""
    # Imported here: each pulls torch (and fair-esm), which `virnucpro --help` must not pay for.
    from virnucpro.models.classifier_io import make_tiny_classifier, write_reference_classifier
    from virnucpro.models.dnabert_io import write_tiny_dnabert
    from virnucpro.models.esm_io import write_tiny_esm
    from virnucpro.models.sets import TINY_MARKER

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = write_tiny_dnabert(folder / "dnabert-s", seed=SEEDS["dnabert"])
    checkpoint = write_tiny_esm(folder, seed=SEEDS["esm"])
    input_dim = int(config.hidden_size) + _esm_embed_dim(checkpoint)
    for chunk_size in CHUNK_SIZES:
        model = make_tiny_classifier(input_dim, seed=SEEDS[chunk_size])
        write_reference_classifier(folder / f"{chunk_size}_model.pth", model)
    (folder / TINY_MARKER).write_text(MARKER_TEXT)
    log.info("wrote the tiny model set in %s (classifier input %d)", folder, input_dim)


def _esm_embed_dim(checkpoint: Path) -> int:
    # Loading it through the real loader (milliseconds at this size) also proves it loads;
    # reading cfg by hand was rejected as a second reader of the same format.
    from virnucpro.models.esm_io import load_esm

    return int(load_esm(checkpoint, "cpu").embed_dim)
