"""`virnucpro predict` end to end with the tiny model set, through the real command line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import DATA, read_table
from virnucpro.table_text import CHUNKS_COLUMNS, FRAMES_COLUMNS, SEQUENCES_COLUMNS

VIRAL = DATA / "viral_reference.fasta"
NONVIRAL = DATA / "nonviral_reference.fasta"


def run_cli(*args, input=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "virnucpro", *map(str, args)], input=input,
                          capture_output=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr.decode()}")
    return proc


@pytest.fixture(scope="module")
def viral_run(tmp_path_factory, tiny_set_dir):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = run_cli("predict", VIRAL, "-o", out, "--models", "tiny", "--json")
    return out, proc


def test_every_output_file_exists_with_its_documented_columns(viral_run):
    out, _ = viral_run
    for name in ("frames.tsv", "chunks.tsv", "sequences.tsv", "run.json", "viral.fasta",
                 "prediction_results.txt", "prediction_results_highestscore.csv"):
        assert (out / name).is_file(), name
    assert (out / "frames.tsv").read_text().splitlines()[0].split("\t") == FRAMES_COLUMNS
    assert (out / "chunks.tsv").read_text().splitlines()[0].split("\t") == CHUNKS_COLUMNS
    assert (out / "sequences.tsv").read_text().splitlines()[0].split("\t") == SEQUENCES_COLUMNS
    assert not (out / ".virnucpro").exists()  # the work folder is gone after success


def test_tables_agree_with_each_other_and_the_input(viral_run):
    out, _ = viral_run
    frames = read_table(out / "frames.tsv")
    chunks = read_table(out / "chunks.tsv")
    seqs = read_table(out / "sequences.tsv")
    assert [s["sequence_id"] for s in seqs] == ["NC_001422.1", "gi|9629357|ref|NC_001802.1|",
                                                 "HM138502.1", "KF527485.1"]
    assert int(seqs[0]["length"]) == 5386  # phiX174
    for s in seqs:
        mine = [c for c in chunks if c["sequence_id"] == s["sequence_id"]]
        assert len(mine) == int(s["chunks"])
        scored = [c for c in mine if c["call"] != "unscored"]
        assert len(scored) == int(s["scored_chunks"])
        assert sum(c["call"] == "virus" for c in scored) == int(s["viral_chunks"])
    for c in chunks:
        mine = [f for f in frames if f["frame_id"].startswith(c["chunk_id"] + "F")
                or f["frame_id"].startswith(c["chunk_id"] + "R")]
        assert len(mine) == int(c["kept_frames"])
        if mine:
            assert c["max_p_virus"] == max((f["p_virus"] for f in mine), key=float)
            expect = "virus" if float(c["max_p_virus"]) >= float(c["max_p_others"]) else "others"
            assert c["call"] == expect
        else:
            assert c["call"] == "unscored" and c["reason"]
    for f in frames:
        assert abs(float(f["p_others"]) + float(f["p_virus"]) - 1) < 1e-6
        assert int(f["end"]) - int(f["start"]) + 1 == 3 * int(f["protein_length"]) + (
            1 if int(f["end"]) - int(f["start"]) + 1 > 3 * int(f["protein_length"]) else 0)


def test_reference_format_files_are_byte_compatible(viral_run):
    out, _ = viral_run
    frames = read_table(out / "frames.tsv")
    ref = (out / "prediction_results.txt").read_text().splitlines()
    assert ref[0] == "Sequence_ID\tPrediction\tscore1\tscore2"
    assert ref[1:] == [f"{f['frame_id']}\t{f['call']}\t{f['p_others']}\t{f['p_virus']}" for f in frames]
    for f in frames:  # shortest text that reads back to the same float32
        assert str(np.float32(f["p_virus"])) == f["p_virus"]
    best = (out / "prediction_results_highestscore.csv").read_text().splitlines()
    assert best[0] == "Modified_ID\tIs_Virus"
    ids = [line.split("\t")[0] for line in best[1:]]
    assert ids == sorted(ids)
    chunks = {c["chunk_id"]: c for c in read_table(out / "chunks.tsv")}
    for line in best[1:]:
        cid, flag = line.split("\t")
        assert flag == str(chunks[cid]["call"] == "virus")
    assert len(best) - 1 == sum(c["call"] != "unscored" for c in chunks.values())


def test_run_json_records_parameters_models_counts_and_tiny(viral_run):
    out, proc = viral_run
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["tiny"] is True
    assert run["parameters"]["chunk_size"] == 500 and run["models"]["name"] == "tiny"
    assert all(f["sha256"] for f in run["models"]["files"])
    assert run["counts"]["sequences"] == 4
    # The worker that scored it, as it said of itself: a CPU's budget, weights in float32.
    [worker] = run["engine"]["workers"]
    assert worker["device"] == "cpu" and worker["precision"] == "float32"
    assert worker["batch_tokens"] == 4096 and "peak_reserved_bytes" not in worker
    from virnucpro.models.loaded import load_models
    from virnucpro.models.sets import resolve_model_set

    assert worker["weights_bytes"] == load_models(resolve_model_set("tiny"), 500,
                                                  "cpu").weights_bytes()
    assert "tiny" in proc.stderr.decode()  # the warning goes to stderr, not into the tables
    summary = json.loads(proc.stdout)
    assert summary[0]["sequences"] == 4


@pytest.mark.slow
def test_viral_fasta_holds_the_records_called_virus(tmp_path, tiny_set_dir):
    out = tmp_path / "o"
    both = tmp_path / "both.fasta"
    both.write_text(VIRAL.read_text() + NONVIRAL.read_text())
    run_cli("predict", both, "-o", out, "--models", "tiny", "-q")
    seqs = read_table(out / "sequences.tsv")
    viral = [s["sequence_id"] for s in seqs if s["call"] == "virus"]
    headers = [line[1:].split()[0] for line in (out / "viral.fasta").read_text().splitlines()
               if line.startswith(">")]
    assert headers == viral
    assert len(seqs) == 11


@pytest.mark.slow
def test_several_inputs_go_to_named_subfolders_and_stdin_is_read(tmp_path, tiny_set_dir):
    gz = tmp_path / "viral_reference.fa.gz"
    gz.write_bytes(gzip.compress(VIRAL.read_bytes()))
    out = tmp_path / "o"
    run_cli("predict", VIRAL, gz, "-", "-o", out, "--models", "tiny", "-q",
            input=NONVIRAL.read_bytes())
    assert sorted(p.name for p in out.iterdir()) == ["stdin", "viral_reference", "viral_reference_2"]
    a = (out / "viral_reference" / "frames.tsv").read_text()
    b = (out / "viral_reference_2" / "frames.tsv").read_text()
    assert a == b  # compressed and plain inputs give the same rows and scores
    assert len(read_table(out / "stdin" / "sequences.tsv")) == 7


@pytest.mark.slow
def test_short_and_empty_records_get_unscored_rows_with_reasons(tmp_path, tiny_set_dir):
    fasta = tmp_path / "mixed.fasta"
    fasta.write_text(">empty\n>tiny_read\nACGTACGTAC\n>long\n" + VIRAL.read_text().split("\n", 1)[1])
    out = tmp_path / "o"
    run_cli("predict", fasta, "-o", out, "--models", "tiny", "--min-length", "20", "-q")
    seqs = {s["sequence_id"]: s for s in read_table(out / "sequences.tsv")}
    assert seqs["empty"]["call"] == "unscored" and seqs["empty"]["reason"] == "empty sequence"
    assert seqs["tiny_read"]["call"] == "unscored" and "--min-length 20" in seqs["tiny_read"]["reason"]
    assert "short" in seqs["tiny_read"]["flags"]
    assert seqs["long"]["call"] in ("virus", "others")


BAD_INPUTS = {
    "empty": (b"", "empty"),
    "no_header": (b"ACGTACGT\n", "no FASTA or FASTQ header"),
    "protein": (b">p1\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ\n", "looks like a protein"),
    "binary": (bytes(range(256)), "binary"),
    "duplicates": (b">a\nACGT\n>b\nACGT\n>a\nAC\n>b\nA\n", "duplicate sequence ids: 'a', 'b'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_clearly_and_leaves_no_output(tmp_path, case):
    data, message = BAD_INPUTS[case]
    path = tmp_path / "bad.fasta"
    path.write_bytes(data)
    out = tmp_path / "o"
    proc = run_cli("predict", path, "-o", out, "--models", "tiny", check=False)
    assert proc.returncode == 3, proc.stderr
    assert message in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()
    assert not out.exists()


def test_a_bad_second_input_stops_before_the_first_is_scored(tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_bytes(b">x\nMKTAYIAKQRQISFVKSH\n")
    out = tmp_path / "o"
    proc = run_cli("predict", VIRAL, bad, "-o", out, "--models", "tiny", check=False)
    assert proc.returncode == 3 and "bad.fasta" in proc.stderr.decode()
    assert not out.exists()


@pytest.mark.slow
def test_rename_duplicates_accepts_and_flags_them(tmp_path, tiny_set_dir):
    path = tmp_path / "dups.fasta"
    seq = VIRAL.read_text().split("\n>")[2].split("\n", 1)[1]
    path.write_text(f">a\n{seq}\n>a\n{seq}\n")
    out = tmp_path / "o"
    run_cli("predict", path, "-o", out, "--models", "tiny", "--rename-duplicates", "-q")
    seqs = read_table(out / "sequences.tsv")
    assert [s["sequence_id"] for s in seqs] == ["a", "a_2"]
    assert seqs[1]["flags"] == "renamed_from:a"
    assert seqs[0]["max_p_virus"] == seqs[1]["max_p_virus"]


@pytest.mark.slow
def test_non_empty_outdir_is_refused_unless_force(tmp_path, tiny_set_dir):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    proc = run_cli("predict", VIRAL, "-o", out, "--models", "tiny", check=False)
    assert proc.returncode == 5 and "--force" in proc.stderr.decode()
    (out / "evaluation.json").write_text("{}")  # `evaluate`'s verdict on the run replaced
    run_cli("predict", VIRAL, "-o", out, "--models", "tiny", "--force", "-q")
    assert (out / "sequences.tsv").exists()
    assert (out / "notes.txt").read_text() == "mine"  # --force removes only our own files
    assert not (out / "evaluation.json").exists()


def test_unknown_model_set_and_missing_file_are_clear_errors(tmp_path):
    proc = run_cli("predict", VIRAL, "-o", tmp_path / "o", "--models", "nosuchset", check=False)
    assert proc.returncode == 4 and "nosuchset" in proc.stderr.decode()
    proc = run_cli("predict", tmp_path / "missing.fa", "-o", tmp_path / "o2", "--models", "tiny",
                   check=False)
    assert proc.returncode != 0 and "no such file" in proc.stderr.decode()


def test_version_and_help_are_instant_entry_points():
    proc = run_cli("--version")
    assert b"virnucpro" in proc.stdout
    proc = run_cli("predict", "--help")
    assert b"--chunk-size" in proc.stdout


@pytest.mark.slow
def test_a_pipe_is_read_like_a_file(tmp_path, tiny_set_dir):
    out = tmp_path / "o"
    script = (f"{sys.executable} -m virnucpro predict <(cat {VIRAL}) -o {out} --models tiny -q")
    subprocess.run(["bash", "-c", script], check=True, timeout=300)
    assert len(read_table(out / "sequences.tsv")) == 4


@pytest.mark.slow
def test_inputs_named_dot_dot_stay_inside_the_output_folder(tmp_path, tiny_set_dir):
    weird = tmp_path / "in"
    weird.mkdir()
    (weird / "...fa").write_bytes(VIRAL.read_bytes())
    (weird / "A.fa").write_bytes(VIRAL.read_bytes())
    (weird / "a.fa").write_bytes(VIRAL.read_bytes())
    out = tmp_path / "o"
    run_cli("predict", weird / "...fa", weird / "A.fa", weird / "a.fa", "-o", out,
            "--models", "tiny", "-q")
    assert sorted(p.name for p in out.iterdir()) == ["A", "a_2", "input"]


@pytest.mark.slow
def test_an_unusable_output_folder_is_a_clear_error_before_any_work(tmp_path, tiny_set_dir):
    proc = run_cli("predict", VIRAL, "-o", "/proc/virnucpro-out", "--models", "tiny", check=False)
    assert proc.returncode == 5 and "Traceback" not in proc.stderr.decode()
    # The second input's folder is refused before the first input is scored.
    out = tmp_path / "o"
    (out / "nonviral_reference").mkdir(parents=True)
    (out / "nonviral_reference" / "x").write_text("x")
    proc = run_cli("predict", VIRAL, NONVIRAL, "-o", out, "--models", "tiny", check=False)
    assert proc.returncode == 5 and "nonviral_reference" in proc.stderr.decode()
    assert not (out / "viral_reference" / "frames.tsv").exists()
