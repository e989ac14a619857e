"""The tiny set's classifiers: a seeded random `MLPClassifier` whose calls split about evenly
on N(0, 1) inputs (`build.calibrate_classifier` then fits it to the tiny models' own features);
written by `classifier_io.write_reference_classifier` as the reference script saved its own.
"""

from __future__ import annotations

import math

import torch

from virnucpro.models.classifier import MLPClassifier
from virnucpro.models.classifier_io import classifier_from_state


def make_tiny_classifier(input_dim: int, seed: int = 0, hidden_dim: int = 32) -> MLPClassifier:
    """A deterministic random classifier that says 'virus' for about half of N(0, 1) inputs."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(hidden_dim, input_dim, generator=gen) / math.sqrt(input_dim)
    b1 = 0.1 * torch.randn(hidden_dim, generator=gen)
    w2 = torch.randn(2, hidden_dim, generator=gen) * (2.0 / math.sqrt(hidden_dim))
    # ReLU outputs are positive on average, which would tilt every logit the same way; centre
    # the output on the expected hidden activation for N(0, 1) features so both classes occur.
    # For z ~ N(mu, s^2): E[relu(z)] = mu * Phi(mu / s) + s * phi(mu / s).
    s = w1.norm(dim=1)
    t = b1 / s
    cdf = 0.5 * (1 + torch.erf(t / math.sqrt(2)))
    pdf = torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    expected = b1 * cdf + s * pdf  # [H]
    state = {
        "hidden_layer.weight": w1,
        "hidden_layer.bias": b1,
        "bn1.weight": torch.ones(hidden_dim),
        "bn1.bias": torch.zeros(hidden_dim),
        "bn1.running_mean": torch.zeros(hidden_dim),
        "bn1.running_var": torch.ones(hidden_dim),
        "bn1.num_batches_tracked": torch.tensor(0),
        "output_layer.weight": w2,
        "output_layer.bias": -(w2 @ expected),
    }
    return classifier_from_state(state)
