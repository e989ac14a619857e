"""The Snakemake workflow (workflow/Snakefile) run for real: `snakemake --cores 2` on a copy of
it in a temp folder, over two samples (a FASTA file and a FASTQ one) with the tiny set.

Snakemake lives in its own environment (Snakemake 8+ needs Python 3.11+, ours is 3.10+) and
calls the `virnucpro` of this one, on PATH. It is found as `$VIRNUCPRO_SNAKEMAKE`, else the
repository's `.venv-snakemake/bin/snakemake`, else `snakemake` on PATH; without one the tests
skip, naming what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_helpers import start_daemon
from tests.helpers import DATA, read_table
from tests.integration.test_fastq_predict import fastq_of
from tests.integration.test_pool import assert_same_results
from tests.workflow_scripts import REPO, summarize

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

INSTALL = ("python3 -m venv .venv-snakemake && .venv-snakemake/bin/pip install "
           "'snakemake>=8.30,<10'")
SAMPLES = {"viral": "viral.fasta", "reads": "reads.fastq"}


def find_snakemake() -> str | None:
    named = os.environ.get("VIRNUCPRO_SNAKEMAKE")
    if named:
        return named
    local = REPO / ".venv-snakemake" / "bin" / "snakemake"
    return str(local) if local.exists() else shutil.which("snakemake")


SNAKEMAKE = find_snakemake()
if SNAKEMAKE is None:
    pytest.skip(f"no snakemake: install it in its own environment ({INSTALL}, from the "
                "repository root) or name it in $VIRNUCPRO_SNAKEMAKE", allow_module_level=True)


def project(root: Path, inputs: Path, samples: dict[str, str] = SAMPLES, **config) -> Path:
    """A copy of the workflow in `root`, with its config/ (JSON is YAML) naming `samples` (name
    -> file under `inputs`, written as absolute paths) and the tiny set."""
    shutil.copytree(REPO / "workflow", root / "workflow")
    (root / "config").mkdir()
    lines = ["sample\tpath"] + [f"{name}\t{inputs / file}" for name, file in samples.items()]
    (root / "config" / "samples.tsv").write_text("\n".join(lines) + "\n")
    settings = {"samples": "config/samples.tsv", "outdir": "results", "models": "tiny",
                "predict": {"devices": "cpu", "threads": 1, "gpus": 0}} | config
    (root / "config" / "config.yaml").write_text(json.dumps(settings, indent=2))
    return root


def snakemake(root: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """`snakemake --cores 2 ARGS` in `root`, with this environment's `virnucpro` first on PATH;
    text output, any exit."""
    env = {**(env or os.environ), "HF_HUB_OFFLINE": "1", "VIRNUCPRO_OFFLINE": "1",
           "XDG_CACHE_HOME": str(root / ".cache")}  # Snakemake's source cache, not the user's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=240)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-6000:]}"
    return proc


def records(path: Path) -> int:
    """The records of a FASTA file (wrapped) or a FASTQ one (four lines each)."""
    lines = path.read_text().splitlines()
    if lines[0].startswith(">"):
        return sum(line.startswith(">") for line in lines)
    return len(lines) // 4


def figures_from_tables(sample: str, folder: Path) -> summarize.SampleSummary:
    """A summary row counted from the run's tables, not from run.json as the workflow reads it."""
    sequences = read_table(folder / "sequences.tsv")
    regions = read_table(folder / "regions.tsv")
    viral = [row for row in sequences if row["call"] == "virus"]
    return summarize.SampleSummary(
        sample=sample, sequences=len(sequences), viral=len(viral), regions=len(regions),
        proviruses=sum(row["kind"] == "provirus" for row in regions),
        viral_bases=sum(int(row["length"]) for row in viral))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The samples' files: the viral reference as FASTA, the non-viral one as FASTQ."""
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(DATA / "viral_reference.fasta", folder / "viral.fasta")
    fastq_of(DATA / "nonviral_reference.fasta", folder / "reads.fastq")
    return folder


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, inputs: Path, tiny_set_dir: Path) -> Path:
    """The workflow run once, plain (a `virnucpro predict` per sample)."""
    root = project(tmp_path_factory.mktemp("plain"), inputs)
    ok(snakemake(root))
    return root


def test_the_summary_has_a_row_per_sample_with_the_figures_of_its_own_run(plain: Path,
                                                                          inputs: Path) -> None:
    rows = summarize.read_summary(plain / "results" / "summary.tsv")
    assert [row.sample for row in rows] == list(SAMPLES)
    for row in rows:
        folder = plain / "results" / row.sample
        assert row == figures_from_tables(row.sample, folder)
        assert row.sequences == records(inputs / SAMPLES[row.sample])
        run = json.loads((folder / "run.json").read_text())
        assert run["input"]["path"] == str(inputs / SAMPLES[row.sample])
        assert run["parameters"]["models"] == "tiny"
        assert (folder / "report.html").stat().st_size > 10_000
        assert (plain / "results" / "logs" / f"{row.sample}.log").exists()
    assert (plain / "results" / "reads" / "viral.fastq").exists()  # a FASTQ run's own file
    assert [r.viral for r in rows] != [0, 0]  # the tiny set calls some: figures worth comparing


def test_a_second_run_finds_everything_up_to_date(plain: Path) -> None:
    summary = plain / "results" / "summary.tsv"
    before = summary.stat().st_mtime_ns
    again = ok(snakemake(plain))
    assert "Nothing to be done" in again.stdout + again.stderr
    assert summary.stat().st_mtime_ns == before


def test_a_bad_sample_sheet_fails_before_any_job_naming_each_problem(tmp_path: Path,
                                                                     inputs: Path) -> None:
    root = project(tmp_path, inputs, samples={"a sample": "viral.fasta", "x": "none.fa",
                                              "viral": "viral.fasta"})
    with (root / "config" / "samples.tsv").open("a") as fh:
        fh.write(f"viral\t{inputs / 'reads.fastq'}\n")
    failed = snakemake(root)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert "bad sample sheet config/samples.tsv:" in said
    assert "line 2: bad sample name 'a sample'" in said
    assert f"line 3: the file of sample 'x', {inputs / 'none.fa'}, does not exist" in said
    assert "line 5: duplicate sample name 'viral' (first on line 4)" in said
    assert not (root / "results").exists()


def test_under_apptainer_each_prediction_runs_in_the_configured_image(tmp_path: Path,
                                                                      inputs: Path,
                                                                      tiny_set_dir: Path) -> None:
    """With a stand-in `apptainer` (and `singularity`) on PATH that records its arguments and runs the command it
    is given here: Snakemake wraps each predict job in the config's image, and the summary
    (standard library only) runs on the host."""
    root = project(tmp_path / "w", inputs, samples={"viral": "viral.fasta"},
                   container="images/virnucpro-test.sif")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apptainer"
    fake.write_text(FAKE_APPTAINER.format(python=sys.executable))
    fake.chmod(0o755)
    (bin_dir / "singularity").symlink_to(fake)  # the name Snakemake 8 calls (apptainer has it)
    calls = tmp_path / "apptainer-calls.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_APPTAINER_LOG": str(calls)}
    ok(snakemake(root, "--software-deployment-method", "apptainer", env=env))
    runs = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(runs) == 1
    [argv] = runs
    image = argv.index("images/virnucpro-test.sif")
    assert argv[0] == "exec" and argv[image + 1:image + 3] == ["bash", "-c"]
    assert "virnucpro predict " in argv[image + 3]
    [row] = summarize.read_summary(root / "results" / "summary.tsv")
    assert row == figures_from_tables("viral", root / "results" / "viral")


FAKE_APPTAINER = """#!{python}
# A stand-in for apptainer: answers --version, records each `exec` and runs its command here.
import json, os, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("apptainer version 1.3.4")
    sys.exit(0)
with open(os.environ["FAKE_APPTAINER_LOG"], "a") as fh:
    fh.write(json.dumps(args) + "\\n")
shell = next(i for i in range(len(args) - 1) if args[i] in ("bash", "sh") and args[i + 1] == "-c")
os.execvp(args[shell], args[shell:])
"""


def test_the_daemon_mode_gives_the_tables_of_the_plain_mode(tmp_path: Path, inputs: Path,
                                                             plain: Path) -> None:
    """Each sample submitted to a running daemon (`virnucpro submit --wait`) instead."""
    with start_daemon(tmp_path / "d", "--persistent-models", "--models", "tiny") as daemon:
        root = project(tmp_path / "w", inputs,
                       daemon={"use": True, "endpoint": daemon.endpoint, "priority": 3})
        ran = ok(snakemake(root, env=daemon.env))
        with daemon.client() as client:
            jobs = client.jobs(all=True)
    assert "rule submit:" in ran.stdout + ran.stderr
    assert sorted((job.name, job.state.value) for job in jobs) == [
        ("reads", "completed"), ("viral", "completed")]
    assert (root / "results" / "summary.tsv").read_text() == (
        plain / "results" / "summary.tsv").read_text()
    for sample in SAMPLES:  # the same rows and calls, scores within 1e-6 (other threads)
        assert_same_results(root / "results" / sample, plain / "results" / sample)
