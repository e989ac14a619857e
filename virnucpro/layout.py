"""The output folder of one input: every file name in it, declared once (`OutputLayout`, as
geNomad's `GenomadOutputs` names its outputs, so that no stage spells a file name), the
nearest existing folder of a path to be made, and atomic JSON writes. A test fails on a file
name written anywhere else (tests/unit/test_file_names.py)."""

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
    """Every path of one input's output folder: a name (class attribute, upper case) and a
    path (property) per file."""

    root: Path

    # -- the names: the only place they are spelled -----------------------------------------
    FRAMES = "frames.tsv"
    CHUNKS = "chunks.tsv"
    SEQUENCES = "sequences.tsv"
    REGIONS = "regions.tsv"
    PREDICTIONS = "prediction_results.txt"  # the reference's two files
    HIGHEST = "prediction_results_highestscore.csv"
    VIRAL_FASTA = "viral.fasta"
    REGIONS_FASTA = "regions.fasta"
    VIRAL_FASTQ = "viral.fastq"  # written too when the input is FASTQ
    RUN = "run.json"  # written last: a run.json means a finished run (virnucpro.run_record)
    REPORT = "report.html"  # written after run.json by virnucpro.report
    EVALUATION = "evaluation.json"  # written by `virnucpro evaluate`
    EMBEDDINGS = "embeddings"  # --save-embeddings: a folder of safetensors files
    EMBEDDING_INDEX = f"{EMBEDDINGS}/index.tsv"
    WORK = ".virnucpro"  # what an unfinished run keeps; removed when it finishes
    STATE = "state.json"  # in WORK: the resume key
    SHARDS = "shards"  # in WORK: the shard files
    STAGING = "staging"  # in WORK: the tables being written
    CHECKPOINT = "checkpoint.json"  # in STAGING
    HIGHEST_UNSORTED = "highest-unsorted.txt"  # in STAGING; sorted into HIGHEST at the end
    SORT_RUNS = "sort-runs"  # in STAGING: the external sort's runs

    FILES = (FRAMES, CHUNKS, SEQUENCES, REGIONS, PREDICTIONS, HIGHEST, VIRAL_FASTA,
             REGIONS_FASTA)
    FASTQ_FILES = (VIRAL_FASTQ,)
    SEQUENCE_FILES = (VIRAL_FASTA, REGIONS_FASTA, VIRAL_FASTQ)  # need the input's bases
    FRAME_FILES = (FRAMES, PREDICTIONS, HIGHEST)  # independent of the call settings

    @staticmethod
    def embedding_file(shard: int) -> str:
        """The name, in EMBEDDINGS, of shard `shard`'s features."""
        return f"features-{shard:06d}.safetensors"

    # -- the paths ------------------------------------------------------------------------------
    @property
    def frames(self) -> Path:
        return self.root / self.FRAMES

    @property
    def chunks(self) -> Path:
        return self.root / self.CHUNKS

    @property
    def sequences(self) -> Path:
        return self.root / self.SEQUENCES

    @property
    def regions(self) -> Path:
        return self.root / self.REGIONS

    @property
    def predictions(self) -> Path:
        return self.root / self.PREDICTIONS

    @property
    def highest(self) -> Path:
        return self.root / self.HIGHEST

    @property
    def viral_fasta(self) -> Path:
        return self.root / self.VIRAL_FASTA

    @property
    def regions_fasta(self) -> Path:
        return self.root / self.REGIONS_FASTA

    @property
    def viral_fastq(self) -> Path:
        return self.root / self.VIRAL_FASTQ

    @property
    def run_json(self) -> Path:
        return self.root / self.RUN

    @property
    def report(self) -> Path:
        return self.root / self.REPORT

    @property
    def evaluation(self) -> Path:
        return self.root / self.EVALUATION

    @property
    def embeddings(self) -> Path:
        return self.root / self.EMBEDDINGS

    @property
    def embedding_index(self) -> Path:
        return self.root / self.EMBEDDING_INDEX

    @property
    def work(self) -> Path:
        return self.root / self.WORK

    @property
    def state(self) -> Path:
        return self.work / self.STATE

    @property
    def shards(self) -> Path:
        return self.work / self.SHARDS

    @property
    def staging(self) -> Path:
        return self.work / self.STAGING

    @property
    def checkpoint(self) -> Path:
        return self.staging / self.CHECKPOINT

    @property
    def highest_unsorted(self) -> Path:
        return self.staging / self.HIGHEST_UNSORTED

    @property
    def sort_runs(self) -> Path:
        return self.staging / self.SORT_RUNS

    def owned(self) -> list[Path]:
        """Everything a run writes here (what --force may remove), `evaluate`'s file too: it
        judged the calls of the run being replaced."""
        return [self.root / f for f in (*self.FILES, *self.FASTQ_FILES, self.RUN, self.REPORT,
                                        self.EVALUATION, self.EMBEDDINGS, self.WORK)]

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
