"""`virnucpro train`: labelled inputs in, a new model set out.

Order of work, so that a refusal costs nothing and a kill loses at most a shard: the new set's
folder is checked first; every input is read whole (GenBank turned into FASTA plus a CDS
sidecar, once per file content); record ids must be unique over all inputs; the features are
embedded through the base set's engines into the cache (`feature_cache.py`); the records' groups
are split (`split.py`); the classifier is fitted (`fit.py`) and the set written last, in one
move (`newset.py`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from virnucpro import __version__
from virnucpro.engine_config import EngineConfig
from virnucpro.errors import InputError, VirNucProError
from virnucpro.logs import NOTE
from virnucpro.seqfile import check_path, file_sha256, read_fasta, scan_fasta
from virnucpro.shards import DEFAULT_SHARD_FRAMES
from virnucpro.training.feature_cache import LABEL_NAMES, OTHERS, VIRAL, TrainingInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    viral: tuple[str, ...]
    others: tuple[str, ...]
    newset: Path
    chunk_size: int = 500
    models: str = "published"
    cds_filter: bool | None = None  # None: on for GenBank inputs, off for the others
    groups: Path | None = None
    val_fraction: float = 0.1
    seed: int = 0
    epochs: int = 200
    patience: int = 5
    device: str = "auto"
    force: bool = False
    batch_tokens: int | None = None
    shard_frames: int = DEFAULT_SHARD_FRAMES
    engine: EngineConfig = field(default_factory=EngineConfig)
    progress: bool = True


def training_cache() -> Path:
    from virnucpro.models.cache import cache_root

    return cache_root() / "training"


def _prepare(source: str, label: int, cds_filter: bool | None, cache: Path) -> TrainingInput:
    """Read one input: GenBank becomes FASTA plus a CDS sidecar (once per content)."""
    from virnucpro.training.genbank import genbank_to_fasta, sniff_format

    path = check_path(source)
    kind = sniff_format(path)
    sha = file_sha256(path)
    if kind != "genbank":
        if cds_filter:
            raise InputError("--cds-filter needs GenBank input (its CDS translations); this is "
                             f"{kind.upper()}", path=source)
        return TrainingInput(source, label, kind, sha, path, None, False)
    folder = cache / "inputs" / sha
    fasta, cds = folder / "records.fasta", folder / "cds.tsv"
    if not (fasta.is_file() and cds.is_file()):
        tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=cache))
        try:
            genbank_to_fasta(path, tmp / "records.fasta", tmp / "cds.tsv")
            if folder.exists():
                shutil.rmtree(folder)
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    use = cds_filter is not False
    return TrainingInput(source, label, kind, sha, fasta, cds, use)


def prepare_inputs(config: TrainConfig, cache: Path) -> tuple[list[TrainingInput], dict[str, int]]:
    """The inputs, read whole and checked, and every record's label (record id -> 0/1)."""
    cache.mkdir(parents=True, exist_ok=True)
    if not config.viral or not config.others:
        which = "--viral" if not config.viral else "--others"
        raise InputError(f"no {which} input: training needs both labels")
    seen: dict[str, str] = {}
    items = []
    for sources, label in ((config.viral, VIRAL), (config.others, OTHERS)):
        for source in sources:
            if source in seen:
                raise InputError(f"given twice (as {seen[source]} and as {LABEL_NAMES[label]})",
                                 path=source)
            seen[source] = LABEL_NAMES[label]
            items.append(_prepare(source, label, config.cds_filter, cache))
    for item in items:
        if item.kind == "genbank":
            state = "on" if item.cds_filter else "off (--no-cds-filter)"
            log.log(NOTE, "%s: GenBank, the CDS filter is %s", item.source, state)
        else:
            log.log(NOTE, "%s: %s, no CDS filter (it needs GenBank annotations)", item.source,
                        item.kind.upper())
    # Record ids name the groups: one id in two inputs would tie their frames together.
    owner: dict[str, str] = {}
    labels: dict[str, int] = {}
    for item in items:
        index = scan_fasta(item.fasta, display_name=item.source)
        if not index.n_records:
            raise InputError(f"no sequence for label {LABEL_NAMES[item.label]}", path=item.source)
        for record in read_fasta(index):
            if record.id in owner:
                raise InputError(f"record {record.id!r} is also in {owner[record.id]}: a record "
                                 "id must be unique over all the training inputs",
                                 path=item.source)
            owner[record.id] = item.source
            labels[record.id] = item.label
    return items, labels


def run_training(config: TrainConfig) -> dict:
    """Train and write the new set; return its training.json content."""
    from virnucpro.devices import parse_devices
    from virnucpro.engine import make_engine
    from virnucpro.models.classifier_io import load_classifier
    from virnucpro.models.sets import resolve_model_set
    from virnucpro.run.feed import default_batch_tokens
    from virnucpro.run.folder import model_fingerprint
    from virnucpro.training.feature_cache import cache_key, extract
    from virnucpro.training.fit import train_classifier
    from virnucpro.training.newset import check_new_set_dest, write_new_set
    from virnucpro.training.split import read_groups_tsv, split_groups

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    check_new_set_dest(config.newset, force=config.force)  # before the base set is fetched
    base = resolve_model_set(config.models, progress=config.progress)
    dest = check_new_set_dest(config.newset, force=config.force, base=base)
    base_classifier = load_classifier(base.classifier_path(config.chunk_size))
    cache = training_cache()
    inputs, labelled = prepare_inputs(config, cache)

    devices = config.engine.cluster_devices() if config.engine.engine == "ray" else \
        parse_devices(config.device)
    precision = config.engine.effective_precision(devices)
    models_key = model_fingerprint(base, config.chunk_size, precision)
    key = cache_key(inputs, models_key, config.chunk_size)
    folder = cache / "features" / key
    folder.mkdir(parents=True, exist_ok=True)
    log.info("feature cache %s", folder)
    t_embed = time.perf_counter()
    table = extract(inputs, folder, config.chunk_size,
                    lambda: make_engine(config.engine, base, devices, config.chunk_size),
                    batch_tokens=config.batch_tokens or default_batch_tokens(devices),
                    shard_frames=config.shard_frames)
    embed_s = time.perf_counter() - t_embed
    scored = sum(s["shards_scored"] for s in table.stats.values())
    reused = sum(s["shards_reused"] for s in table.stats.values())
    log.log(NOTE, "features: %d shard(s) embedded now, %d reused from the cache", scored, reused)

    # Only records with a kept frame take part in the split: one without any cannot hold out
    # anything, and counting it would let a side of the split end up empty.
    with_frames = set(table.records.tolist())
    all_records = {r: v for r, v in labelled.items() if r in with_frames}
    for label, name in LABEL_NAMES.items():
        unused = sum(1 for r, v in labelled.items() if v == label and r not in with_frames)
        if unused:
            log.warning("%d %s record(s) kept no frame for training (short, stop codons in every "
                        "frame, ambiguous bases, or no frame inside a CDS)", unused, name)
    groups = {r: r for r in all_records}
    if config.groups is not None:
        table_of_groups = read_groups_tsv(config.groups, list(all_records))
        for line in table_of_groups.warnings:
            log.warning("%s", line)
        groups.update(table_of_groups.groups)
    split = split_groups(groups, all_records, val_fraction=config.val_fraction, seed=config.seed)
    val_records = set(split.val_records)
    is_val = np.fromiter((r in val_records for r in table.records.tolist()), dtype=bool,
                         count=len(table.records))
    x, y = table.features, table.labels
    for side, mask in (("training", ~is_val), ("validation", is_val)):
        for label, name in LABEL_NAMES.items():
            if not np.any(y[mask] == label):
                raise InputError(f"the {side} side has no {name} frame: the {name} records "
                                 f"there kept no frame (too few groups, or too few frames); "
                                 "give more records or another --val-fraction")
    fit = train_classifier(x[~is_val], y[~is_val], x[is_val], y[is_val], seed=config.seed,
                           epochs=config.epochs, patience=config.patience,
                           hidden=base_classifier.hidden_dim, threads=config.engine.threads,
                           progress=_epoch_bar(config.progress))
    training = {
        "virnucpro_version": __version__,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "base_models": base.describe(),
        "chunk_size": config.chunk_size,
        "inputs": [{"source": i.source, "label": LABEL_NAMES[i.label], "format": i.kind,
                    "sha256": i.sha256, "cds_filter": i.cds_filter,
                    "frames": table.stats[i.source]} for i in inputs],
        "feature_cache": {"key": key, "folder": str(folder), "shards_embedded": scored,
                          "shards_reused": reused, "seconds": round(embed_s, 3)},
        "split": _split_counts(split, groups, all_records, y, is_val),
        "hyperparameters": {**fit.params, "val_fraction": config.val_fraction,
                            "batch_shuffled": True, "early_stopping": "validation loss"},
        "engine": {"devices": devices, "precision": precision, **config.engine.parameters()},
        "epochs": fit.history,
        "best_epoch": fit.best_epoch,
        "stopped_early": fit.stopped_early,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_new_set(dest, base, fit.model, config.chunk_size, training, force=config.force)
    return training


def _split_counts(split, groups: dict[str, str], labels: dict[str, int], y: np.ndarray,
                  is_val: np.ndarray) -> dict:
    val = set(split.val_records)
    out = {}
    for side, mask, pick in (("training", ~is_val, lambda r: r not in val),
                             ("validation", is_val, lambda r: r in val)):
        records = [r for r in labels if pick(r)]
        out[side] = {
            "records": {LABEL_NAMES[k]: sum(labels[r] == k for r in records) for k in LABEL_NAMES},
            "frames": {LABEL_NAMES[k]: int(np.count_nonzero(y[mask] == k)) for k in LABEL_NAMES},
            "groups": sorted({groups[r] for r in records}),
        }
    return out


def _epoch_bar(enabled: bool):
    """A line per epoch on a terminal (stderr), nothing elsewhere."""
    if not (enabled and sys.stderr.isatty()):
        return None

    def show(epoch: int, epochs: int, record: dict) -> None:
        print(f"\repoch {epoch + 1}/{epochs}: train loss {record['train_loss']:.4f}, "
              f"validation loss {record['val_loss']:.4f}", end="", file=sys.stderr, flush=True)
    return show


__all__ = ["TrainConfig", "run_training", "VirNucProError"]
