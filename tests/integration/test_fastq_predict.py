"""FASTQ through `predict` and `rescore`: the same records give the same tables as FASTA
(plain and gzip), and the viral records come back with their qualities in viral.fastq."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from tests import standin_cases
from virnucpro.pipeline import run_predict
from virnucpro.rescore import RescoreSettings, rescore
from virnucpro.run.inputs import input_name
from virnucpro.seqfile import read_fasta, scan_fasta

TABLES = ("frames.tsv", "chunks.tsv", "sequences.tsv", "regions.tsv", "prediction_results.txt",
          "prediction_results_highestscore.csv", "viral.fasta", "regions.fasta")


def fastq_of(fasta: Path, out: Path, seed: int = 5) -> dict[str, tuple[str, bytes, bytes]]:
    """Write `fasta`'s records as FASTQ (random qualities); id (renamed as the runs rename)
    -> (header, bases, qualities)."""
    rng = random.Random(seed)
    records = {}
    opener = gzip.open if out.suffix == ".gz" else open
    with opener(out, "wb") as fh:
        for r in read_fasta(scan_fasta(fasta, rename_duplicates=True)):
            qual = bytes(rng.randrange(33, 75) for _ in r.seq)
            fh.write(b"@" + r.header.encode() + b"\n" + r.seq + b"\n+\n" + qual + b"\n")
            records[r.id] = (r.header, r.seq, qual)
    return records


def run_case(inputs: tuple[Path, ...], outdir: Path, monkeypatch) -> None:
    spec = {**standin_cases.CASES["edge300"], "inputs": inputs}
    monkeypatch.setitem(standin_cases.CASES, "fastq", spec)
    run_predict(standin_cases.config("fastq", outdir))


def read_fastq(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    return [(lines[i], lines[i + 1], lines[i + 3]) for i in range(0, len(lines) - 1, 4)]


@pytest.mark.parametrize("name", ["reads.fastq", "reads.fq.gz"])
def test_fastq_gives_the_tables_of_the_same_records_as_fasta(tmp_path: Path, monkeypatch,
                                                             name: str) -> None:
    standin_cases.use_standin(monkeypatch)
    fastq = tmp_path / name
    records = fastq_of(standin_cases.EDGE_INPUT, fastq)
    run_case((fastq,), tmp_path / "q", monkeypatch)
    want = standin_cases.EXPECTED / "edge300"  # the pinned FASTA run of the same records
    assert [n for n in TABLES if (tmp_path / "q" / n).read_bytes() != (want / n).read_bytes()] == []

    # viral.fastq: the records of viral.fasta, in order, with their bases and qualities as given.
    viral_ids = [line[1:].split()[0] for line in (want / "viral.fasta").read_text().splitlines()
                 if line.startswith(">")]
    entries = read_fastq(tmp_path / "q" / "viral.fastq")
    assert [h.decode()[1:].split()[0] for h, _, _ in entries] == viral_ids and viral_ids
    for header, seq, qual in entries:
        _header, bases, quality = records[header.decode()[1:].split()[0]]
        assert (seq, qual) == (bases, quality)
    assert input_name(str(fastq)) == "reads"


def test_a_fastq_next_to_a_fasta_gets_its_own_folder_and_rescore_rewrites_viral_fastq(
        tmp_path: Path, monkeypatch) -> None:
    standin_cases.use_standin(monkeypatch)
    fastq = tmp_path / "edge.fq"
    fastq_of(standin_cases.EDGE_INPUT, fastq)
    run_case((fastq, standin_cases.EDGE_INPUT), tmp_path / "both", monkeypatch)
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["edge", "edge_2"]
    assert (tmp_path / "both" / "edge" / "viral.fastq").is_file()
    assert not (tmp_path / "both" / "edge_2" / "viral.fastq").exists()  # a FASTA input

    run_case((fastq,), tmp_path / "strict", monkeypatch)
    monkeypatch.setitem(standin_cases.CASES["fastq"], "threshold", 0.9)
    run_predict(standin_cases.config("fastq", tmp_path / "fresh"))
    rescore(tmp_path / "strict", RescoreSettings(threshold=0.9), in_place=True, report=False)
    for name in (*TABLES, "viral.fastq"):
        assert (tmp_path / "strict" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    assert (tmp_path / "strict" / "viral.fastq").read_bytes() != (
        tmp_path / "both" / "edge" / "viral.fastq").read_bytes()  # fewer viral at 0.9
