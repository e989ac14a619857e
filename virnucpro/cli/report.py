"""`virnucpro report`: parse the options and write the HTML report of a finished run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("-o", "--output", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="The HTML file to write [default: OUTDIR/report.html].")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Sequences that get a track of chunk scores (longest viral signal first).")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Also write every plot into this folder as PNG and SVG.")
@click.option("--max-rows", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Table rows: a run with more sequences lists only those called viral, "
              "at most this many.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", count=True, help="More log lines (-vv for debug).")
def report(outdir: Path, html_path: Path | None, top: int, plots_dir: Path | None,
           max_rows: int, quiet: bool, verbose: int) -> None:
    """Write a self-contained HTML report of the finished run in OUTDIR.

    The page holds the run's summary, the score distributions, a track of chunk scores for
    the sequences with the longest viral signal and a sortable table. Its path is printed
    on stdout.
    """
    from virnucpro.logs import setup_logging
    from virnucpro.report import write_report

    setup_logging(-1 if quiet else verbose)
    path = write_report(outdir, html_path, top=top, plots_dir=plots_dir, max_rows=max_rows)
    click.echo(str(path))
