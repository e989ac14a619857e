"""`virnucpro rescore`: parse the options and rebuild a finished run's calls and regions from
its stored scores (virnucpro.rescore), without loading a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from virnucpro.cli.flags import table_options
from virnucpro.options import RESCORE


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("-o", "--output", "newdir", type=click.Path(path_type=Path), default=None,
              help="Write the rescored run into this new folder (the frame tables are linked "
              "or copied).")
@click.option("--in-place", is_flag=True, help="Replace the call tables in OUTDIR itself.")
@table_options(RESCORE)  # virnucpro/options.py: --threshold and the region options
@click.option("--force", is_flag=True, help="Overwrite a non-empty NEWDIR.")
@click.option("--report/--no-report", "write_report", default=True, show_default=True,
              help="Write the HTML report of the rescored run.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", count=True, help="More log lines (-vv for debug).")
def rescore(outdir: Path, newdir: Path | None, in_place: bool, threshold: float | None,
            region_gap: int | None, region_min_p: float | str | None,
            min_region_length: int | None,
            force: bool, write_report: bool, as_json: bool, quiet: bool, verbose: int) -> None:
    """Call the sequences and cut the viral regions of the finished run in OUTDIR again, with
    other settings, from its stored scores (frames.tsv): no model is loaded.

    The FASTA outputs (viral.fasta, regions.fasta, viral.fastq) are rewritten when the input
    file is still there, unchanged (size and SHA-256 of run.json); otherwise only the tables.
    A folder holding several inputs' runs is rescored one subfolder at a time.
    """
    from virnucpro.logs import setup_logging
    from virnucpro.rescore import RescoreSettings
    from virnucpro.rescore import rescore as run_rescore

    setup_logging(-1 if quiet else verbose)
    if (newdir is None) == (not in_place):
        raise click.UsageError("give either -o NEWDIR or --in-place")
    if force and in_place:
        raise click.UsageError("--force is for -o NEWDIR (--in-place replaces the tables anyway)")
    settings = RescoreSettings(threshold=threshold, region_gap=region_gap,
                               region_min_p=region_min_p,
                               min_region_length=min_region_length)
    runs = run_rescore(outdir, settings, outdir=newdir, in_place=in_place, force=force,
                       report=write_report)
    summary = [{"input": r.input["source"], "outdir": r.rescored[-1].get("to", ""),
                "sequence_files": r.rescored[-1]["sequence_files"], **r.counts}
               for r in runs]
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        from virnucpro.cli.summary import summary_line

        for s in summary:
            click.echo(summary_line(s, unscored=False), err=True)
