"""The output folder of one input: every path in it (`OutputLayout`, so that no stage invents a
file name), the nearest existing folder of a path to be made, and atomic JSON writes."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


def existing_ancestor(path: Path) -> Path:
    """`path` itself, or its nearest ancestor that exists: where a folder to be made would go
    (its file system, its permissions)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True)
class OutputLayout:
    """Every path of one input's output folder."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / ".virnucpro"

    @property
    def state(self) -> Path:
        return self.work / "state.json"

    @property
    def shards(self) -> Path:
        return self.work / "shards"

    @property
    def staging(self) -> Path:
        return self.work / "staging"

    @property
    def checkpoint(self) -> Path:
        return self.staging / "checkpoint.json"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    FILES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "regions.tsv",
             "prediction_results.txt", "prediction_results_highestscore.csv", "viral.fasta",
             "regions.fasta")
    FASTQ_FILES = ("viral.fastq",)  # written too when the input is FASTQ
    SEQUENCE_FILES = ("viral.fasta", "regions.fasta", "viral.fastq")  # need the input's bases
    EMBEDDINGS = "embeddings"
    EMBEDDING_INDEX = "embeddings/index.tsv"
    HIGHEST_UNSORTED = "highest-unsorted.txt"  # staged; sorted into the .csv at the end
    REPORT = "report.html"  # written after run.json by virnucpro.report
    EVALUATION = "evaluation.json"  # written by `virnucpro evaluate`

    def owned(self) -> list[Path]:
        """Everything a run writes here (what --force may remove), `evaluate`'s file too: it
        judged the calls of the run being replaced."""
        return [self.root / f for f in (*self.FILES, *self.FASTQ_FILES, "run.json", self.REPORT,
                                        self.EVALUATION, self.EMBEDDINGS, ".virnucpro")]

    def remove_owned(self) -> None:
        """Remove what a run wrote here (`owned`), nothing else: what --force clears."""
        for path in self.owned():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def files(self, fastq: bool) -> tuple[str, ...]:
        """The tables and sequence files of a run of a FASTA (or a FASTQ) input."""
        return (*self.FILES, *self.FASTQ_FILES) if fastq else self.FILES


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
