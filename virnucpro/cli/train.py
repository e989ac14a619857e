"""`virnucpro train`: parse the options into a `TrainConfig` and train a new model set
(virnucpro.training)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from virnucpro.cli.flags import table_options
from virnucpro.options import TRAIN


@click.command()
@click.option("--viral", multiple=True, required=True, metavar="FILE",
              help="Sequences labelled viral: GenBank, FASTA or FASTQ, plain or compressed "
              "(repeat for several files).")
@click.option("--others", multiple=True, required=True, metavar="FILE",
              help="Sequences labelled non-viral (repeat for several files).")
@click.option("-o", "--outdir", "newset", required=True, type=click.Path(path_type=Path),
              help="The new model set's folder (usable as --models NEWSET).")
@table_options(TRAIN, "chunk_size", "models")  # virnucpro/options.py
@click.option("--cds-filter/--no-cds-filter", default=None,
              help="Keep only frames inside an annotated CDS [default: on for GenBank inputs, "
              "off for the others].")
@click.option("--groups", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="TSV", help="record id -> group: records of one group (segments, "
              "plasmids, contigs of one genome) stay on one side of the split.")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=0.1, show_default=True, help="Share of each label's groups held out.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the split, the initial weights, the batches and dropout.")
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True,
              help="Epochs without a better validation loss before training stops.")
@table_options(TRAIN, "device", "engine", "persistent_models", "batch_tokens", "threads",
               "shard_frames")  # how the features are embedded, as for predict
@click.option("--force", is_flag=True, help="Replace an existing NEWSET (never the feature cache).")
@click.option("--json", "as_json", is_flag=True, help="Print training.json's summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", count=True, help="More log lines (-vv for debug).")
def train(viral: tuple[str, ...], others: tuple[str, ...], newset: Path, chunk_size: int,
          models: str, cds_filter: bool | None, groups: Path | None, val_fraction: float,
          seed: int, epochs: int, patience: int, device: str, engine: str,
          persistent_models: bool, threads: int | None, batch_tokens: int | None,
          shard_frames: int, force: bool, as_json: bool, quiet: bool,
          verbose: int) -> None:
    """Train a classifier of your own on features from a base set's two big models, and
    write it as a new model set, NEWSET.

    The recipe is the published one (the MLP, SGD, StepLR, early stopping) with its leaks
    fixed: the split is by record (or by --groups), never by frame, and the best epoch's
    weights are the ones saved. The features are cached (keyed by the inputs' content, the
    base set, the chunk size and the filter), so another training on the same inputs embeds
    nothing, and a killed one resumes from its last embedded shard.
    """
    from virnucpro.engine_config import EngineConfig
    from virnucpro.logs import setup_logging
    from virnucpro.training.run import TrainConfig, run_training

    setup_logging(-1 if quiet else verbose)
    from virnucpro.cli.common import stop_cleanly_on_sigterm

    stop_cleanly_on_sigterm()
    config = TrainConfig(
        viral=viral, others=others, newset=newset, chunk_size=chunk_size, models=models,
        cds_filter=cds_filter, groups=groups, val_fraction=val_fraction,
        seed=seed, epochs=epochs, patience=patience, device=device, force=force,
        batch_tokens=batch_tokens, progress=not quiet,
        engine=EngineConfig(engine=engine, threads=threads, persistent=persistent_models),
        shard_frames=shard_frames)
    training = run_training(config)
    best = training["epochs"][training["best_epoch"]]
    summary = {"newset": str(newset), "best_epoch": training["best_epoch"] + 1,
               "epochs_run": len(training["epochs"]), "val_loss": best["val_loss"],
               "val_metrics": best.get("val_metrics"), "split": training["split"],
               "feature_cache": training["feature_cache"]}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(f"{newset}: best epoch {summary['best_epoch']} of {summary['epochs_run']} "
                   f"(validation loss {best['val_loss']:.4f}); use it with --models {newset}",
                   err=True)
