"""The VirNucPro classifier (FIDELITY 5): Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear.

Layer names match the published `300_model.pth` / `500_model.pth` state keys exactly; weights
are loaded elsewhere (`classifier_io`). Class 0 = others (non-viral), class 1 = virus.
`predict_proba` always runs in eval mode (BatchNorm running statistics, no dropout).
"""

from __future__ import annotations

import torch
from torch import nn

OTHERS, VIRUS = 0, 1  # column order of logits and probabilities


class MLPClassifier(nn.Module):
    """Two-layer perceptron over concat(dnabert, esm) features."""

    def __init__(self, input_dim: int, hidden_dim: int = 512, num_classes: int = 2) -> None:
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.5)
        self.output_layer = nn.Linear(hidden_dim, num_classes)

    @property
    def input_dim(self) -> int:
        return self.hidden_layer.in_features

    @property
    def hidden_dim(self) -> int:
        return self.hidden_layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, D] features, D = input_dim (3328 for the published model)
        h = self.hidden_layer(x)  # [B, H]
        h = self.bn1(h)  # [B, H]
        h = self.relu(h)  # [B, H]
        h = self.dropout(h)  # [B, H]
        return self.output_layer(h)  # [B, 2] logits: others, virus


def predict_proba(model: MLPClassifier, features: torch.Tensor) -> torch.Tensor:
    """Class probabilities [B, 2] (others, virus) as a float32 CPU tensor; rows sum to 1."""
    # eval() is forced here, not trusted to the caller: in train mode BatchNorm would use the
    # batch's own statistics and dropout would zero half the units, so scores would depend on
    # which frames share a batch.
    model.eval()
    param = next(model.parameters())
    with torch.inference_mode():
        x = features.to(device=param.device, dtype=param.dtype)  # [B, D]
        logits = model(x).float()  # [B, 2]
        probs = torch.softmax(logits, dim=-1)  # [B, 2]
    return probs.cpu()
