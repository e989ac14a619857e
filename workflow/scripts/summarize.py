"""The workflow's aggregate table: one row per sample, read from each sample's own run files.

`summarize_run(sample, folder)` reads a finished `virnucpro predict` folder: the counts its
run.json records (sequences, sequences called virus, regions, proviruses) and, for the bases of
the sequences called virus (the report's "bases called viral", which run.json does not count),
the `length` and `call` columns of its sequences.tsv. `write_summary` writes the rows as
summary.tsv. Standard library only: Snakemake runs this file with its own Python (or the
container's), where virnucpro need not be installed.

Run by Snakemake's `script:` directive, or by hand:
`python workflow/scripts/summarize.py -o summary.tsv NAME=FOLDER...`.
"""

# No `from __future__ import annotations`: Snakemake's script directive puts its preamble above
# this file's code, where a __future__ import is a SyntaxError. Python 3.10+ reads `X | Y`.
import argparse
import csv
import json
from dataclasses import astuple, dataclass, fields
from pathlib import Path

RUN_JSON = "run.json"
SEQUENCES = "sequences.tsv"
VIRUS = "virus"
# run.json's `counts` key of each figure read from it.
COUNT_KEYS = {"sequences": "sequences", "viral": "sequences_virus", "regions": "regions",
              "proviruses": "regions_provirus"}


class SummaryError(ValueError):
    """A sample folder that does not hold the finished run the table needs."""


@dataclass(frozen=True)
class SampleSummary:
    sample: str
    sequences: int  # records in the input
    viral: int  # sequences called virus
    regions: int  # viral regions (regions.tsv rows)
    proviruses: int  # those of kind provirus
    viral_bases: int  # total length of the sequences called virus

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def summarize_run(sample: str, folder: Path | str) -> SampleSummary:
    """The summary row of the finished run in `folder`; SummaryError naming what is wrong."""
    folder = Path(folder)
    try:
        record = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SummaryError(f"sample {sample}: no readable {RUN_JSON} in {folder}: {exc}") from exc
    if record.get("status") != "completed":
        raise SummaryError(f"sample {sample}: the run in {folder} is not completed")
    counts = record.get("counts") or {}
    missing = [key for key in COUNT_KEYS.values() if not isinstance(counts.get(key), int)]
    if missing:
        raise SummaryError(f"sample {sample}: {folder / RUN_JSON} has no counts "
                           f"{', '.join(missing)} (a run of an older virnucpro?)")
    figures = {name: counts[key] for name, key in COUNT_KEYS.items()}
    return SampleSummary(sample=sample, **figures,
                         viral_bases=viral_bases(folder / SEQUENCES, sample))


def viral_bases(sequences_tsv: Path, sample: str = "") -> int:
    """The summed `length` of the rows of sequences.tsv whose `call` is virus."""
    try:
        with open(sequences_tsv, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            if not {"length", "call"} <= set(reader.fieldnames or ()):
                raise SummaryError(f"sample {sample}: {sequences_tsv} has no length and call "
                                   "columns")
            return sum(int(row["length"]) for row in reader if row["call"] == VIRUS)
    except OSError as exc:
        raise SummaryError(f"sample {sample}: cannot read {sequences_tsv}: {exc}") from exc


def write_summary(rows: list[SampleSummary], path: Path | str) -> None:
    """summary.tsv: a header line, then one line per row, in the order given."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(SampleSummary.columns())
        writer.writerows(astuple(row) for row in rows)


def read_summary(path: Path | str) -> list[SampleSummary]:
    """The rows of a summary.tsv (what the tests compare)."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        return [SampleSummary(row["sample"], *(int(row[c]) for c in SampleSummary.columns()[1:]))
                for row in reader]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="summary.tsv to write")
    parser.add_argument("runs", nargs="+", metavar="NAME=FOLDER",
                        help="a sample's name and its predict output folder")
    args = parser.parse_args(argv)
    pairs = [run.partition("=")[::2] for run in args.runs]
    write_summary([summarize_run(name, folder) for name, folder in pairs], args.output)
    return 0


def _from_snakemake(smk) -> None:
    """The `script:` entry: params.samples and input.runs (each sample's run.json), in order."""
    rows = [summarize_run(name, Path(run).parent)
            for name, run in zip(smk.params.samples, smk.input.runs, strict=True)]
    write_summary(rows, smk.output[0])
    if smk.log:
        Path(smk.log[0]).write_text(f"{smk.output[0]}: {len(rows)} samples\n", encoding="utf-8")


if __name__ == "__main__":
    if "snakemake" in globals():  # injected by Snakemake's script directive
        _from_snakemake(snakemake)  # noqa: F821
    else:
        raise SystemExit(main())
