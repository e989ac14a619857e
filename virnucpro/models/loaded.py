"""A model set's three models, loaded once on one device, and the frame scorer.

`load_models` reads DNABERT-S, ESM-2 and the classifier that matches the chunk size, checks
that the classifier's input size is DNABERT-S's hidden size plus ESM-2's embedding size, and
fixes float32 matmul precision (TF32 would move scores by ~1e-3, FIDELITY 3). With bfloat16 the
two language models' weights are resident in bfloat16 (half the bytes, no per-batch cast), the
rotary tables, LayerNorm statistics, softmax and means in float32; the classifier stays float32.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from virnucpro.models.modelset import ModelSet

log = logging.getLogger(__name__)


@dataclass
class LoadedModels:
    """Models resident on one device; `feature_dim` = DNABERT hidden + ESM embedding."""

    model_set: ModelSet
    chunk_size: int
    device: str
    dnabert: Any  # dnabert_io.DnaBertBundle
    esm: Any  # esm_io.EsmBundle
    classifier: Any  # classifier.MLPClassifier
    load_seconds: float = 0.0
    precision: str = "float32"  # or "bfloat16": both models' weights resident in bfloat16
    extra: dict = field(default_factory=dict)

    @property
    def dna_dim(self) -> int:
        return int(self.dnabert.hidden_size)

    @property
    def protein_dim(self) -> int:
        return int(self.esm.embed_dim)

    @property
    def feature_dim(self) -> int:
        return self.dna_dim + self.protein_dim

    def weights_bytes(self) -> int:
        """Bytes of the three models' weights as they sit on the device (see `resident_bytes`)."""
        return resident_bytes(self.dnabert.model, self.esm.model, self.classifier)


def resident_bytes(*modules) -> int:
    """Bytes of the storages behind the modules' parameters and buffers, each storage counted
    once (tied weights, views of a fused tensor): what the weights hold in memory, not what
    their shapes would say."""
    seen: dict[tuple[str, int], int] = {}
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            storage = tensor.untyped_storage()
            seen[(str(tensor.device), storage.data_ptr())] = storage.nbytes()
    return sum(seen.values())


def load_models(model_set: ModelSet, chunk_size: int, device: str,
                precision: str = "float32") -> LoadedModels:
    import torch

    from virnucpro.errors import ModelError
    from virnucpro.models.classifier_io import load_classifier
    from virnucpro.models.dnabert_io import load_dnabert
    from virnucpro.models.esm_io import load_esm

    exact_float32()
    started = time.perf_counter()
    classifier_path = model_set.classifier_path(chunk_size)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[precision]
    dnabert = load_dnabert(model_set.dnabert_dir, device=device, dtype=dtype)
    esm = load_esm(model_set.esm_checkpoint, device=device, dtype=dtype,
                   fast=device.startswith("cuda"))
    expected = int(dnabert.hidden_size) + int(esm.embed_dim)
    classifier = load_classifier(classifier_path, input_dim=expected, device=device)
    if classifier.hidden_layer.in_features != expected:  # load_classifier checks; be sure
        raise ModelError(
            f"classifier expects {classifier.hidden_layer.in_features} features but the models give {expected}",
            path=classifier_path)
    seconds = time.perf_counter() - started
    if device.startswith("cuda"):  # what the load's transient copies held is given back
        with torch.cuda.device(device):
            torch.cuda.empty_cache()
    log.info("models of set %s loaded on %s in %s in %.1f s", model_set.name, device, precision,
             seconds)
    return LoadedModels(model_set=model_set, chunk_size=chunk_size, device=device,
                        dnabert=dnabert, esm=esm, classifier=classifier, load_seconds=seconds,
                        precision=precision)


def exact_float32() -> None:
    """float32 matmuls and convolutions in full precision, never TF32: through torch's
    `fp32_precision` settings where torch has them (mixing them with the legacy TF32 flags
    raises there), else the legacy flags."""
    import torch

    if hasattr(torch.backends, "fp32_precision"):
        torch.backends.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
