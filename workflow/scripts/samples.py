"""The workflow's sample sheet: a TSV with a `sample` and a `path` column, read and checked.

`read_sample_sheet(path)` gives one `Sample` per row, in sheet order, or raises
`SampleSheetError` listing every problem at once (a missing column, a bad or repeated sample
name, a missing or unreadable file), so the Snakefile refuses a bad sheet before any job runs.
Standard library only: Snakemake's own Python (its venv, or the container's) imports it, and
so do our tests.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("sample", "path")
# A sample names a folder (results/<sample>/) and a wildcard value: no spaces, no slashes, no
# shell or glob characters; a leading dot would hide the folder.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Names the workflow's own files under the output folder take.
RESERVED = ("logs", "summary.tsv")


class SampleSheetError(ValueError):
    """A sample sheet that cannot be used; `problems` lists each one, with its line."""

    def __init__(self, sheet: Path, problems: list[str]) -> None:
        self.sheet = sheet
        self.problems = problems
        super().__init__(f"sample sheet {sheet}: " + "; ".join(problems))


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path  # as written in the sheet; relative paths are from the working directory

    @property
    def absolute(self) -> Path:
        """The path from the root, for a daemon, which resolves paths from its own folder."""
        return Path(os.path.abspath(self.path))


def read_sample_sheet(sheet: Path | str, base: Path | str | None = None) -> list[Sample]:
    """The samples of `sheet` (tab-separated, a header line naming at least `sample` and `path`;
    other columns are kept out; blank lines and lines starting with `#` are skipped). Relative
    paths are checked from `base` (default: the working directory) and kept as written."""
    sheet = Path(sheet)
    base = Path.cwd() if base is None else Path(base)
    try:
        text = sheet.read_text(encoding="utf-8")
    except OSError as exc:
        raise SampleSheetError(sheet, [f"cannot be read ({exc.strerror or exc})"]) from exc
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise SampleSheetError(sheet, ["is empty: a header line `sample<TAB>path` comes first"])
    header_line, header_text = rows[0]
    header = [h.strip() for h in next(csv.reader([header_text], delimiter="\t"))]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        hint = " (is it tab-separated?)" if len(header) == 1 else ""
        raise SampleSheetError(sheet, [
            f"line {header_line}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} in the header {header!r}{hint}"])
    at = {c: header.index(c) for c in REQUIRED}

    samples, problems, first_line = [], [], {}
    for line_no, line in rows[1:]:
        fields = next(csv.reader([line], delimiter="\t"))
        name = fields[at["sample"]].strip() if len(fields) > at["sample"] else ""
        path = fields[at["path"]].strip() if len(fields) > at["path"] else ""
        where = f"line {line_no}"
        if not NAME_RE.fullmatch(name):
            problems.append(f"{where}: bad sample name {name!r}: use letters, digits, '.', '_' "
                            "and '-' (no spaces, no slashes), starting with a letter or digit")
            continue
        if name in RESERVED:
            problems.append(f"{where}: the sample name {name!r} is taken by the workflow's own "
                            "files")
            continue
        if name in first_line:
            problems.append(f"{where}: duplicate sample name {name!r} (first on line "
                            f"{first_line[name]})")
            continue
        first_line[name] = line_no
        if not path:
            problems.append(f"{where}: sample {name!r} has no path")
            continue
        found = base / path
        if not found.is_file():
            what = "is not a file" if found.exists() else "does not exist"
            problems.append(f"{where}: the file of sample {name!r}, {path}, {what}")
            continue
        if not os.access(found, os.R_OK):
            problems.append(f"{where}: the file of sample {name!r}, {path}, cannot be read")
            continue
        samples.append(Sample(name, Path(path)))
    if problems:
        raise SampleSheetError(sheet, problems)
    if not samples:
        raise SampleSheetError(sheet, ["lists no sample"])
    return samples
