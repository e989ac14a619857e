"""Fitting the classifier: it learns, keeps the best epoch's weights, and is reproducible."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from virnucpro.errors import InputError
from virnucpro.training.fit import auroc, classification_metrics, state_sha256, train_classifier


def blobs(n: int, d: int = 16, seed: int = 0, shift: float = 1.5):
    """Two Gaussian blobs, label 1 shifted by +shift in every coordinate and label 0 by -shift."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    x = rng.normal(size=(n, d)) + (2 * y[:, None] - 1) * shift / np.sqrt(d) * 2
    return x.astype(np.float32), y


def noisy(n: int = 160, d: int = 16, seed: int = 1):
    """Weakly informative features with noisy labels: a large learning rate overfits them, so
    the validation loss falls for a few epochs, then rises."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=1.5, size=n) > 0).astype(np.int64)
    return x[:96], y[:96], x[96:], y[96:]


OVERFIT = dict(seed=0, hidden=64, epochs=15, patience=15, lr=0.05, threads=1)


def test_auroc_ranks_with_ties_averaged():
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert auroc(np.array([0, 1, 1]), np.array([0.2, 0.2, 0.9])) == 0.75
    assert auroc(np.array([1, 1]), np.array([0.2, 0.9])) is None


def test_metrics_take_viral_as_positive_and_leave_undefined_ratios_none():
    m = classification_metrics(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.6, 0.1]))
    assert m == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "auroc": 0.75}
    none_called = classification_metrics(np.array([1, 0]), np.array([0.1, 0.2]))
    assert none_called["precision"] is None and none_called["recall"] == 0.0
    assert none_called["f1"] == 0.0


def test_separable_blobs_are_learned():
    tx, ty = blobs(600)
    vx, vy = blobs(200, seed=1)
    result = train_classifier(tx, ty, vx, vy, seed=0, hidden=8, epochs=30, threads=1)
    best = result.best
    assert best["val_metrics"]["accuracy"] > 0.9 and best["val_metrics"]["auroc"] > 0.95
    assert result.history[0]["val_loss"] > best["val_loss"]
    assert result.model.hidden_dim == 8 and not result.model.training
    record = result.history[0]
    assert set(record) == {"epoch", "lr", "train_loss", "val_loss", "train_metrics",
                           "val_metrics", "weights_sha256"}
    assert set(record["val_metrics"]) == {"accuracy", "precision", "recall", "f1", "auroc"}


def test_the_model_returned_is_the_best_epochs_not_the_last():
    result = train_classifier(*noisy(), **OVERFIT)
    assert result.best_epoch < len(result.history) - 1
    assert state_sha256(result.model.state_dict()) == result.best["weights_sha256"]
    assert result.best["weights_sha256"] != result.history[-1]["weights_sha256"]
    losses = [h["val_loss"] for h in result.history]
    assert result.best["val_loss"] == min(losses)


def test_training_stops_after_patience_epochs_without_improvement():
    result = train_classifier(*noisy(), **{**OVERFIT, "epochs": 200, "patience": 3})
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 3 + 1
    assert result.params["patience"] == 3 and result.params["hidden"] == 64


def test_the_learning_rate_steps_down_every_ten_epochs():
    result = train_classifier(*noisy(), **{**OVERFIT, "epochs": 12, "lr": 0.01})
    lrs = [h["lr"] for h in result.history]
    assert lrs[:10] == [0.01] * 10 and lrs[10] == pytest.approx(0.01 * 0.85)


def test_the_default_hidden_size_is_the_published_one():
    tx, ty = blobs(40)
    result = train_classifier(tx, ty, tx, ty, seed=0, epochs=1, threads=1)
    assert result.model.hidden_dim == 512


def test_a_last_batch_of_one_row_is_dropped_not_fatal():
    tx, ty = blobs(33)  # batches of 32 and 1
    result = train_classifier(tx, ty, tx, ty, seed=0, hidden=4, epochs=2, threads=1)
    assert len(result.history) == 2


def test_the_callers_rng_threads_and_determinism_flag_are_left_as_they_were():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_classifier(*noisy(), **{**OVERFIT, "epochs": 2, "threads": 1})
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_the_same_seed_gives_the_same_weights_and_another_seed_others():
    a = train_classifier(*noisy(), **{**OVERFIT, "epochs": 3})
    b = train_classifier(*noisy(), **{**OVERFIT, "epochs": 3})
    c = train_classifier(*noisy(), **{**OVERFIT, "epochs": 3, "seed": 1})
    assert [h["weights_sha256"] for h in a.history] == [h["weights_sha256"] for h in b.history]
    assert a.history[-1]["weights_sha256"] != c.history[-1]["weights_sha256"]


@pytest.mark.slow
def test_two_trainings_in_separate_processes_give_the_same_classifier_bit_for_bit():
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, {tests!r})
        from test_training_fit import OVERFIT, noisy
        from virnucpro.training.fit import state_sha256, train_classifier
        result = train_classifier(*noisy(), **{{**OVERFIT, "epochs": 6}})
        print(state_sha256(result.model.state_dict()), result.best_epoch)
    """).format(tests=os.path.dirname(__file__))
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].split()[0]) == 64


@pytest.mark.parametrize("change, says", [
    (lambda a: {**a, "train_y": a["train_y"][:-1]}, "do not match"),
    (lambda a: {**a, "train_x": a["train_x"][:1], "train_y": a["train_y"][:1]}, "at least 2"),
    (lambda a: {**a, "val_y": a["val_y"] + 2}, "must be 0 .others. or 1"),
    (lambda a: {**a, "val_x": a["val_x"][:, :3]}, "columns"),
    (lambda a: {**a, "train_x": np.full_like(a["train_x"], np.nan)}, "NaN"),
])
def test_unusable_inputs_are_refused_before_training(change, says):
    tx, ty, vx, vy = noisy()
    args = change({"train_x": tx, "train_y": ty, "val_x": vx, "val_y": vy})
    with pytest.raises(InputError, match=says):
        train_classifier(args["train_x"], args["train_y"], args["val_x"], args["val_y"], seed=0)
