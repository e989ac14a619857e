"""`virnucpro predict`: parse the options into a `PredictConfig` (with its `EngineConfig`) and
run the pipeline. Its settings are the option table's (virnucpro/options.py); --help lists them
under headings (basic, engine, regions, output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from virnucpro.cli.common import json_errors, stop_cleanly_on_sigterm
from virnucpro.cli.flags import GroupedCommand, grouped, table_options
from virnucpro.options import PREDICT


def _json_errors(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # Errors as JSON too: a script reading stdout learns why (exit 12: the input changed).
    if value:
        json_errors(ctx, lambda exc: {"code": exc.code, "message": str(exc)})
    return value


@click.command(cls=GroupedCommand)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@grouped("basic", "-o", "--outdir", required=True, type=click.Path(path_type=Path),
         help="Output folder (one subfolder per input when several are given).")
@table_options(PREDICT)  # virnucpro/options.py: chunk size, models, devices, engine, regions...
@grouped("output", "--json", "as_json", is_flag=True, callback=_json_errors,
         help='Print a JSON summary on stdout; an error as {"error": {"code", "exit", '
         '"message"}}.')
@grouped("output", "-q", "--quiet", is_flag=True, help="No progress bar, only errors.")
@grouped("output", "-v", "--verbose", count=True, help="More log lines (-vv for debug).")
def predict(inputs: tuple[str, ...], outdir: Path, as_json: bool, quiet: bool, verbose: int,
            **settings: Any) -> None:
    """Score the sequences of INPUT (FASTA or FASTQ; plain, .gz, .bz2, .xz; '-' for stdin)."""
    from virnucpro.cli.progress import ProgressReporter
    from virnucpro.config import PredictConfig
    from virnucpro.logs import setup_logging
    from virnucpro.pipeline import run_predict
    from virnucpro.ray_cluster import check_ray_options

    setup_logging(-1 if quiet else verbose)
    stop_cleanly_on_sigterm()
    if settings["force"] and settings["resume"]:
        raise click.UsageError("--force and --resume exclude each other")
    if problem := check_ray_options(*(settings[k] for k in (
            "engine", "ray_address", "workers", "gpus_per_worker", "device"))):
        raise click.UsageError(problem)
    config = PredictConfig.of(inputs, outdir, settings, progress=not quiet)
    results = run_predict(config, reporter=ProgressReporter(enabled=not quiet))
    summary = [{"input": r["input"]["source"], "outdir": str(_outdir(config, r)),
                **r.get("counts", {})} for r in results]
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        from virnucpro.cli.summary import summary_line

        for s in summary:
            click.echo(summary_line(s), err=True)


def _outdir(config, run: dict) -> Path:
    return config.outdir if len(config.inputs) == 1 else config.outdir / run["input"]["name"]
