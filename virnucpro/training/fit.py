"""Fitting the classifier (FIDELITY 5) on features: the published recipe, deterministic on CPU.

Xavier-uniform on both Linear weights (biases keep PyTorch's default init, as the reference's
did), cross-entropy, SGD (lr 2e-4, momentum 0.9), StepLR (step 10, gamma 0.85), shuffled batches
of 32, up to 200 epochs, early stopping on the validation loss with patience 5. The best
epoch's weights are copied when they are seen, and those are the model returned. The same
seed, data and thread count give the same weights bit for bit (`torch.use_deterministic_
algorithms`, a seeded generator for the shuffle and the global RNG, forked, for dropout).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from virnucpro.errors import InputError

log = logging.getLogger(__name__)

PUBLISHED_HIDDEN = 512
_EVAL_BATCH = 8192  # rows per forward pass for the validation set (eval mode: no statistics)

# progress(epoch index from 0, epochs at most, that epoch's history record)
EpochCallback = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class FitResult:
    """`model`: the best epoch's weights in a fresh eval-mode module. `history[i]` is epoch i
    (from 0): losses, metrics, learning rate and `weights_sha256`; `best_epoch` indexes it."""

    model: object  # MLPClassifier (torch is imported lazily)
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    params: dict = field(default_factory=dict)

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch]


def state_sha256(state: Mapping) -> str:
    """SHA-256 over a state dict in key order: each key, shape and the tensor's bytes
    (floating tensors as contiguous float32, others as they are, e.g. int64 counters)."""
    import torch

    h = hashlib.sha256()
    for key, tensor in state.items():
        t = tensor.detach().to("cpu")
        t = (t.to(torch.float32) if t.is_floating_point() else t).contiguous()
        h.update(f"{key}:{list(t.shape)}:{t.dtype}\0".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def auroc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve by ranks (Mann-Whitney U, ties averaged); None with one class."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Runs of equal scores share the mean of the ranks they span (1-based).
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(y_true: np.ndarray, p_virus: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 (class 1 = viral is positive; call at p >= 0.5) and
    AUROC. A ratio whose denominator is zero is None, not 0."""
    y = np.asarray(y_true).astype(bool)
    call = np.asarray(p_virus) >= 0.5
    tp = int(np.count_nonzero(call & y))
    fp = int(np.count_nonzero(call & ~y))
    fn = int(np.count_nonzero(~call & y))

    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return {"accuracy": ratio(int(np.count_nonzero(call == y)), len(y)),
            "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "auroc": auroc(y, p_virus)}


def _check(x: np.ndarray, y: np.ndarray, side: str, min_rows: int) -> None:
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise InputError(f"{side} features {list(x.shape)} and labels {list(y.shape)} do not "
                         "match: features [n, d] and one label per row")
    if len(x) < min_rows:
        raise InputError(f"{side}: {len(x)} frame(s), at least {min_rows} needed")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise InputError(f"{side} labels must be 0 (others) or 1 (viral)")
    if not np.isfinite(x).all():
        raise InputError(f"{side} features hold NaN or infinite values")


def train_classifier(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                     val_y: np.ndarray, *, seed: int, epochs: int = 200, patience: int = 5,
                     lr: float = 2e-4, momentum: float = 0.9, step: int = 10,
                     gamma: float = 0.85, batch: int = 32, hidden: int | None = None,
                     threads: int | None = None,
                     progress: EpochCallback | None = None) -> FitResult:
    """Fit a fresh MLPClassifier; stop when the validation loss has not improved for
    `patience` epochs. `hidden`: None is the published 512 (pass the base set's classifier's
    width for tiny features). A final training batch of one row is dropped for that epoch:
    BatchNorm cannot take the statistics of a single row in train mode."""
    import torch

    train_x = np.ascontiguousarray(train_x, dtype=np.float32)
    val_x = np.ascontiguousarray(val_x, dtype=np.float32)
    train_y = np.asarray(train_y, dtype=np.int64)
    val_y = np.asarray(val_y, dtype=np.int64)
    _check(train_x, train_y, "training", 2)
    _check(val_x, val_y, "validation", 1)
    if val_x.shape[1] != train_x.shape[1]:
        raise InputError(f"training features have {train_x.shape[1]} columns, validation "
                         f"features {val_x.shape[1]}")
    if epochs < 1 or patience < 1 or batch < 2:
        raise InputError("epochs and patience must be at least 1 and the batch at least 2")
    hidden = hidden or PUBLISHED_HIDDEN
    params = {"seed": seed, "epochs": epochs, "patience": patience, "lr": lr,
              "momentum": momentum, "step": step, "gamma": gamma, "batch": batch,
              "hidden": hidden, "threads": threads, "input_dim": int(train_x.shape[1]),
              "optimizer": "SGD", "loss": "cross-entropy", "scheduler": "StepLR",
              "init": "xavier_uniform_ on both Linear weights, default biases"}
    # The shuffle and the dropout draw from separate streams of the one seed.
    shuffle_seed, init_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
        # Forked: the caller's global RNG state is the same after training as before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            return _fit(train_x, train_y, val_x, val_y, params, shuffle_seed, progress)
    finally:
        torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)
        torch.set_num_threads(threads_before)


def _fit(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
         params: dict, shuffle_seed: int, progress: EpochCallback | None) -> FitResult:
    import torch
    from torch import nn

    from virnucpro.models.classifier import MLPClassifier

    n, dim = train_x.shape
    model = MLPClassifier(dim, params["hidden"])
    nn.init.xavier_uniform_(model.hidden_layer.weight)
    nn.init.xavier_uniform_(model.output_layer.weight)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=params["momentum"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=params["step"],
                                                gamma=params["gamma"])
    generator = torch.Generator().manual_seed(shuffle_seed)
    xt, yt = torch.from_numpy(train_x), torch.from_numpy(train_y)
    xv, yv = torch.from_numpy(val_x), torch.from_numpy(val_y)
    batch = params["batch"]
    history: list[dict] = []
    best_epoch, best_loss, best_state, waited = 0, float("inf"), None, 0
    stopped_early = False
    for epoch in range(params["epochs"]):
        lr_now = optimizer.param_groups[0]["lr"]
        model.train()
        order = torch.randperm(n, generator=generator)
        total, seen = 0.0, 0
        train_p, train_t = [], []
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            if len(idx) < 2:  # a lone last row: BatchNorm in train mode needs two
                continue
            logits = model(xt[idx])  # [B, 2]
            loss = loss_fn(logits, yt[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            train_p.append(torch.softmax(logits.detach(), dim=-1)[:, 1])
            train_t.append(yt[idx])
        scheduler.step()
        val_loss, val_p = _evaluate(model, xv, yv)
        record = {
            "epoch": epoch, "lr": lr_now, "train_loss": total / seen, "val_loss": val_loss,
            # Training metrics come from the epoch's own train-mode outputs (dropout on).
            "train_metrics": classification_metrics(torch.cat(train_t).numpy(),
                                                    torch.cat(train_p).numpy()),
            "val_metrics": classification_metrics(val_y, val_p),
            "weights_sha256": state_sha256(model.state_dict()),
        }
        history.append(record)
        log.info("epoch %d: train loss %.5f, validation loss %.5f", epoch + 1,
                 record["train_loss"], val_loss)
        if val_loss < best_loss:
            # A copy, not the live state dict: later steps must not move the kept weights.
            best_epoch, best_loss, waited = epoch, val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
        if progress is not None:
            progress(epoch, params["epochs"], record)
        if waited >= params["patience"]:
            stopped_early = epoch + 1 < params["epochs"]
            break
    if best_state is None:  # every validation loss was NaN
        raise InputError("the validation loss was never finite: the features or labels are "
                         "unusable for training")
    best = MLPClassifier(dim, params["hidden"])
    best.load_state_dict(best_state, strict=True)
    best.eval()
    return FitResult(model=best, history=history, best_epoch=best_epoch,
                     stopped_early=stopped_early, params=params)


def _evaluate(model, xv, yv) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and virus probabilities over the validation set, in eval mode."""
    import torch

    model.eval()
    total = 0.0
    probs = []
    with torch.inference_mode():
        for start in range(0, len(xv), _EVAL_BATCH):
            logits = model(xv[start:start + _EVAL_BATCH])  # [B, 2]
            total += float(torch.nn.functional.cross_entropy(
                logits, yv[start:start + _EVAL_BATCH], reduction="sum"))
            probs.append(torch.softmax(logits, dim=-1)[:, 1])
    return total / len(xv), torch.cat(probs).numpy()
