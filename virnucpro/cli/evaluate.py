"""`virnucpro evaluate`: parse the options, read the truth, and print the figures of a finished
run against it (the work is virnucpro.evaluate)."""

from __future__ import annotations

import json
from pathlib import Path

import click

_TABLE = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"),
          ("f1", "F1"), ("mcc", "MCC"), ("auroc", "AUROC"))


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_table(evaluation: dict) -> str:
    """The short table on stdout: one line per level (the rows counted, the unscored rows
    and the rows without truth that were left out, then the figures), columns aligned with
    spaces (split on whitespace to parse it), undefined figures `-`."""
    # The rows left out beside the rows counted: unscored ones and those without a truth label.
    rows = [("level", "n", "unscored", "no-truth", *(label for _, label in _TABLE))]
    for level, entry in evaluation["levels"].items():
        rows.append((level, str(entry["n"]), str(entry["unscored"]), str(entry["without_truth"]),
                     *(_cell(entry["metrics"][key]) for key, _ in _TABLE)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


@click.command()
@click.argument("outdir", type=click.Path(path_type=Path))
@click.option("--truth", type=click.Path(path_type=Path), default=None, metavar="LABELS.tsv",
              help="Tab-separated sequence id and label per line: virus/viral/1/true or "
              "others/non-viral/nonviral/0/false (any case); an optional header line.")
@click.option("--viral", type=click.Path(path_type=Path), multiple=True, metavar="FILE",
              help="FASTA/FASTQ of sequences known to be viral (repeat for several files).")
@click.option("--others", type=click.Path(path_type=Path), multiple=True, metavar="FILE",
              help="FASTA/FASTQ of sequences known not to be viral (repeat for several files).")
@click.option("--report/--no-report", "write_report", default=True, show_default=True,
              help="Rewrite OUTDIR/report.html with an Evaluation section.")
@click.option("--json", "as_json", is_flag=True,
              help="Print evaluation.json's content on stdout instead of the table.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", count=True, help="More log lines (-vv for debug).")
def evaluate(outdir: Path, truth: Path | None, viral: tuple[Path, ...], others: tuple[Path, ...],
             write_report: bool, as_json: bool, quiet: bool, verbose: int) -> None:
    """Score the calls of the finished run in OUTDIR against known labels, given as
    --truth LABELS.tsv or as --viral and --others FASTA/FASTQ files (ids: the first word of
    each header, not renamed).

    For each level, frame, chunk and sequence: the confusion matrix (positive: virus),
    accuracy, precision, recall, specificity, F1, MCC, AUROC and average precision, with the
    ROC and precision-recall curves. The rates are of the calls at the run's settings; AUROC
    and the curves rank the scores: a frame's p_virus, a chunk's max_p_virus and a
    sequence's max_p_virus (while a sequence's call is its viral share >= the threshold).
    A frame or chunk takes its sequence's truth. Unscored rows and rows of sequences
    without truth are left out and counted; sequences without truth and truth ids absent
    from the run are counted and named (the first 20) on stderr. A figure that is undefined
    (no row called virus, a single class) is '-' here and null in the JSON, with its reason.

    Writes OUTDIR/evaluation.json (the curves are exact up to 500 scores per class, else
    taken at 500 quantiles of each) and prints a table on stdout. A folder holding several
    inputs' runs is refused: evaluate each subfolder.
    """
    from virnucpro.evaluate import evaluate as run_evaluate
    from virnucpro.evaluate import read_truth_files, read_truth_table
    from virnucpro.layout import OutputLayout
    from virnucpro.logs import setup_logging

    setup_logging(-1 if quiet else verbose)
    if truth is not None and (viral or others):
        raise click.UsageError("give either --truth or --viral/--others, not both")
    if truth is None and not (viral or others):
        raise click.UsageError("give the truth: --truth LABELS.tsv, or --viral and --others "
                               "FASTA/FASTQ files")
    labels = (read_truth_table(truth) if truth is not None
              else read_truth_files(list(viral), list(others)))
    evaluation = run_evaluate(outdir, labels, report=write_report)
    if as_json:
        click.echo(json.dumps(evaluation, indent=2))
        return
    click.echo(format_table(evaluation))
    if not quiet:
        threshold = evaluation["run"]["threshold"]
        click.echo(f"sequence level: AUROC ranks max_p_virus; the call is viral share >= "
                   f"{threshold:g}. Written: {OutputLayout(Path(outdir)).evaluation}", err=True)
