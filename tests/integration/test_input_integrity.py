"""Input integrity through the installed `virnucpro` command (issue 24, items 1-3): endless
and binary streams, an input that changes during the run, and what errors and outputs say of
an input's letters and headers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DATA, mounted_tmpfs, read_table

VIRNUCPRO = str(Path(sys.executable).with_name("virnucpro"))
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def predict(*args: object, timeout: float = 120, env: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([VIRNUCPRO, "predict", *map(str, args), "--models", "tiny",
                           "--devices", "cpu"], capture_output=True, text=True,
                          timeout=timeout, env=env or ENV, **kwargs)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 1 GiB + 16 MiB (root only): with the bound of 1 GiB kept free, a spool may
    take 16 MiB of it (memory is used only as it is written)."""
    with mounted_tmpfs(tmp_path / "tmpfs", "1040m") as mount:
        yield mount


# -- item 1: endless input -------------------------------------------------------------------


def test_a_link_to_dev_zero_is_refused_as_binary_before_any_spooling(tmp_path, tiny_set_dir):
    (tmp_path / "z.fa").symlink_to("/dev/zero")
    started = time.monotonic()
    proc = predict("z.fa", "-o", "o", "--json", cwd=tmp_path, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "z.fa, line 1: binary data" in proc.stderr and time.monotonic() - started < 30
    assert json.loads(proc.stdout)["error"] == {"code": "input", "exit": 3,
                                                "message": proc.stderr.strip()[len("error: "):]}
    assert not (tmp_path / "o").exists()


def test_binary_data_on_stdin_or_from_a_fifo_is_refused(tmp_path, tiny_set_dir):
    proc = predict("-", "-o", tmp_path / "o", input="\x00" * 100)
    assert proc.returncode == 3 and "<stdin>, line 1: binary data" in proc.stderr
    fifo = tmp_path / "reads.fq"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat /dev/zero > {fifo}"], stderr=subprocess.DEVNULL)
    try:
        proc = predict(fifo, "-o", tmp_path / "o", timeout=60)
    finally:
        writer.kill()
        writer.wait()
    assert proc.returncode == 3 and f"{fifo}, line 1: binary data" in proc.stderr


def test_endless_text_on_stdin_stops_at_the_free_space_bound(tmpfs, tiny_set_dir):
    yes = subprocess.Popen(["sh", "-c", "echo '>s'; yes ACGT"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    try:
        proc = predict("-", "-o", tmpfs.parent / "o", stdin=yes.stdout, timeout=120,
                       env={**ENV, "TMPDIR": str(tmpfs)})
    finally:
        yes.kill()
        yes.wait()
    assert proc.returncode == 3, proc.stderr
    assert "stopped reading after 1" in proc.stderr and "less than 1.0 GiB free" in proc.stderr
    assert "max(1 GiB, 5 % of the file system)" in proc.stderr
    assert list(tmpfs.iterdir()) == []  # the spool is gone
    assert not (tmpfs.parent / "o").exists()


@pytest.mark.slow
def test_submit_refuses_a_device_without_reading_it(daemon, tmp_path):
    (tmp_path / "z.fa").symlink_to("/dev/zero")
    proc = daemon.cli("submit", "z.fa", "-o", tmp_path / "d", cwd=tmp_path, timeout=60)
    assert proc.returncode == 7 and "z.fa: not a regular file" in proc.stderr, proc.stderr


# -- item 2: an input that changes during the run ----------------------------------------------


def _reads(n: int, prefix: str = "r") -> str:
    seq = DATA.joinpath("viral_reference.fasta").read_text().split("\n")[1][:150]
    return "".join(f"@{prefix}{i}\n{seq}\n+\n{'I' * len(seq)}\n" for i in range(n))


@pytest.mark.slow
def test_records_appended_during_the_run_fail_it_with_exit_12(tmp_path, tiny_set_dir):
    reads = tmp_path / "reads.fq"
    reads.write_text(_reads(6))
    out = tmp_path / "o"
    slow = {**ENV, "VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.1"}
    run = subprocess.Popen([VIRNUCPRO, "predict", str(reads), "-o", str(out), "--models", "tiny",
                            "--devices", "cpu", "--shard-frames", "1", "--json", "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slow)
    deadline = time.monotonic() + 60
    while not (out / ".virnucpro" / "state.json").exists():  # validated, folder claimed
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    with open(reads, "a") as fh:
        fh.write(_reads(2))  # r0 and r1 again: duplicate ids the first pass never saw
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 12, stderr
    assert f"{reads}: the input changed while the run read it (its size went from" in stderr
    error = json.loads(stdout)["error"]
    assert error["code"] == "input_changed" and error["exit"] == 12
    published = {p.name for p in out.iterdir()} - {".virnucpro"}
    assert published == set()  # no run.json, no tables, no report
    again = predict(reads, "-o", out, "--resume")  # the input as it is now is validated again
    assert again.returncode == 3 and "duplicate sequence ids: 'r0', 'r1'" in again.stderr


# -- item 3: reasons and places ------------------------------------------------------------------


def test_a_protein_error_names_the_line_of_the_first_bad_letter(tmp_path, tiny_set_dir):
    (tmp_path / "p.fa").write_text(">ok\nACGT\n>p1 a protein\nACGTNN\nMKLVEF\n")
    proc = predict("p.fa", "-o", "o", cwd=tmp_path)
    assert proc.returncode == 3 and "p.fa, line 5, record 'p1'" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_viral_fasta_keeps_a_latin1_header_byte_for_byte(tmp_path, tiny_set_dir):
    seq = DATA.joinpath("viral_reference.fasta").read_text().split("\n")[1][:600]
    (tmp_path / "l.fa").write_bytes(b">s1 souche de Caf\xe9\n" + seq.encode() + b"\n")
    proc = predict("l.fa", "-o", "o", "--threshold", "0", cwd=tmp_path)  # everything viral
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "viral.fasta").read_bytes().startswith(b">s1 souche de Caf\xe9\n")
    assert [r["sequence_id"] for r in read_table(tmp_path / "o" / "sequences.tsv")] == ["s1"]


def test_a_record_of_n_is_unscored_as_ambiguous_not_for_stop_codons(tmp_path, tiny_set_dir):
    # TTAA repeated has a stop codon in all six frames (TAA, TTA; the reverse strand is the same)
    (tmp_path / "n.fa").write_text(f">allN\n{'N' * 5000}\n>stops\n{'TTAA' * 200}\n"
                                   f">mixed\n{'N' * 500}{'TTAA' * 150}\n")
    proc = predict("n.fa", "-o", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    seqs = {r["sequence_id"]: r for r in read_table(tmp_path / "o" / "sequences.tsv")}
    assert seqs["allN"]["call"] == "unscored" and seqs["allN"]["reason"] == (
        "every chunk is ambiguous: no codon of A, C, G, T only in any reading frame "
        "(N or other IUPAC codes)")
    assert seqs["stops"]["reason"] == "no chunk has a reading frame without a stop codon"
    mixed = seqs["mixed"]["reason"]
    assert mixed.startswith("no chunk has a reading frame to score: 1 of ") and (
        "are ambiguous (no codon of A, C, G, T only), the others have a stop codon" in mixed)
    chunks = read_table(tmp_path / "o" / "chunks.tsv")
    assert {c["reason"] for c in chunks if c["sequence_id"] == "allN"} == {
        "ambiguous: no codon of A, C, G, T only in any reading frame"}
    assert {c["reason"] for c in chunks if c["sequence_id"] == "stops"} == {
        "no reading frame without a stop codon"}
    # rescore reads which chunks were ambiguous back from chunks.tsv: the same rows, even
    # with the input gone
    before = {n: (tmp_path / "o" / n).read_bytes() for n in ("chunks.tsv", "sequences.tsv")}
    (tmp_path / "n.fa").unlink()
    again = subprocess.run([VIRNUCPRO, "rescore", "o", "-o", "o2"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120, env=ENV)
    assert again.returncode == 0, again.stderr
    assert {n: (tmp_path / "o2" / n).read_bytes() for n in before} == before
