# The samples and settings that every job depends on: the sample sheet and the option strings are
# checked here, when the workflow is read, so a bad sheet or option fails before any job runs.
# The checks are plain Python in workflow/scripts/ (tested without Snakemake).

import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from samples import SampleSheetError, read_sample_sheet  # noqa: E402
from settings import SettingsError, check_extra, check_options  # noqa: E402

try:
    SAMPLES = {s.name: s for s in read_sample_sheet(config["samples"])}
    OPTIONS = check_options(config["options"])
    EXTRA = check_extra(config["predict"]["extra"])
except SampleSheetError as exc:
    raise WorkflowError(
        f"bad sample sheet {exc.sheet}:\n" + "\n".join(f"  {p}" for p in exc.problems)
    )
except SettingsError as exc:
    raise WorkflowError(str(exc))

OUT = str(Path(config["outdir"]))  # "results/" -> "results"
SUMMARY = f"{OUT}/summary.tsv"
# What a finished run writes that the workflow names (the run writes more: docs/outputs.md).
RUN_FILES = {
    "run": f"{OUT}/{{sample}}/run.json",
    "report": f"{OUT}/{{sample}}/report.html",
    "sequences": f"{OUT}/{{sample}}/sequences.tsv",
}


def sample_file(wildcards):
    return str(SAMPLES[wildcards.sample].path)


def sample_folder(wildcards):
    return f"{OUT}/{wildcards.sample}"


def common_args():
    """What predict and submit are both given, quoted for the shell."""
    return shlex.join(
        ["--models", config["models"], "--chunk-size", str(config["chunk_size"]), *OPTIONS]
    )


def engine_args():
    """predict's own: its devices, precision and `predict.extra`."""
    settings = config["predict"]
    return shlex.join(
        ["--devices", settings["devices"], "--precision", settings["precision"], *EXTRA]
    )


def daemon_args():
    """submit's own: the priority, and the endpoint when one is set."""
    settings = config["daemon"]
    endpoint = ["--endpoint", settings["endpoint"]] if settings["endpoint"] else []
    return shlex.join(["--priority", str(settings["priority"]), *endpoint])
