"""How the client verbs show jobs: tables, one-line summaries, a followed job's progress, and
the errors that end a followed job. Rendering only (client_cli.py parses and asks).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

from virnucpro.errors import VirNucProError

if TYPE_CHECKING:
    from virnucpro.daemon.jobs import JobRecord

PLAIN_EVERY_S = 2.0  # plain progress lines (stderr not a terminal): at most one per this


class JobFailed(VirNucProError):
    """A followed job ended failed; `job`: its record as JSON, when known (--json prints it)."""

    exit_code = 9
    job: dict | None = None


class JobCancelled(VirNucProError):
    """A followed job ended cancelled."""

    exit_code = 10
    job: dict | None = None


def echo_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2))


def when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"


def progress_cells(job: JobRecord) -> tuple[str, str]:
    """(percent of chunks scored, sequences done/total); '-' while the totals are not known
    yet (queued, loading). 100% only for a completed job (JobRecord.share_done)."""
    share, p = job.share_done(), job.progress
    if share is None:
        return "-", "-"
    done = p.sequences_total if share == 1.0 and p.sequences_total else p.sequences_done
    return f"{int(100 * share)}%", f"{done}/{p.sequences_total or 0}"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def summary(job: JobRecord) -> str:
    """One line on how a job ended, for stderr."""
    from virnucpro.daemon.jobs import JobState

    head = f"job {job.id} ({job.name}) {job.state.value}"
    if job.state is JobState.COMPLETED:
        c = job.progress.counts
        return (f"{head}: {c.get('sequences', 0)} sequences, {c.get('sequences_virus', 0)} viral "
                f"-> {job.outdir}")
    return f"{head}: {job.reason}" if job.reason else head


REGION_KINDS = ("provirus", "partial", "whole")  # virnucpro.regions.KINDS, in the order shown


def regions_summary(counts: dict) -> str | None:
    """A finished run's viral regions in words, from run.json's counts (`regions`,
    `regions_<kind>`, `sequences_with_regions`): "5 (2 provirus, 1 partial, 2 whole) in 4
    sequences"; None for a run without regions (one made before them). The dashboard says
    it in the same words."""
    if "regions" not in counts:
        return None
    total, holders = counts["regions"], counts.get("sequences_with_regions", 0)
    if not total:
        return "0"
    kinds = ", ".join(f"{counts[f'regions_{k}']} {k}" for k in REGION_KINDS
                      if counts.get(f"regions_{k}"))
    return (f"{total}" + (f" ({kinds})" if kinds else "")
            + f" in {holders} sequence{'' if holders == 1 else 's'}")


class ProgressView:
    """A followed job on stderr: a rich bar on a terminal, plain lines (state changes, then at
    most one every PLAIN_EVERY_S) otherwise, so logs of CI runs stay short."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.bar = None
        self.task = None
        self.last_line = ""
        self.last_state = ""
        self.last_time = 0.0
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("chunks"), TimeElapsedColumn(),
                                console=Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(f"job {job_id}", total=None)

    def show(self, job: JobRecord) -> None:
        p = job.progress
        if self.bar is not None:
            self.bar.update(self.task, description=f"job {job.id} {job.state.value}",
                            total=p.chunks_total or None, completed=p.chunks_done)
            return
        pct, counts = progress_cells(job)
        line = f"job {job.id} {job.state.value}" + (
            "" if pct == "-" else f" {pct} ({p.chunks_done}/{p.chunks_total} chunks, "
                                  f"{counts} sequences)")
        now = time.monotonic()
        if line != self.last_line and (job.state != self.last_state
                                       or now - self.last_time >= PLAIN_EVERY_S):
            click.echo(line, err=True)
            self.last_line, self.last_state, self.last_time = line, job.state, now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def error_json(exc: VirNucProError) -> dict:
    """An error as `--json` prints it (the group adds the exit code): the daemon's code, or
    `unavailable` when no daemon answers; a followed job that failed carries its record."""
    from virnucpro.daemon.client import ClientError, DaemonUnavailable

    if isinstance(exc, ClientError):
        return {"code": exc.code, "message": exc.message}
    if isinstance(exc, DaemonUnavailable):
        return {"code": "unavailable", "message": str(exc)}
    if isinstance(exc, (JobFailed, JobCancelled)):
        return {"code": "failed" if isinstance(exc, JobFailed) else "cancelled",
                "message": str(exc), **({"job": exc.job} if exc.job else {})}
    return {"code": "invalid", "message": str(exc)}


def print_job(job: JobRecord) -> None:
    """`virnucpro show`: a job's parameters, progress, counts and history, a line each."""
    from virnucpro.daemon.jobs import JobState

    p = job.progress
    lines = [("job", f"{job.id}  {job.name}"), ("state", job.state.value)]
    if job.reason:
        lines.append(("reason", job.reason))
    lines.append(("outdir", job.outdir))
    lines += [("input", f"{i.path} ({i.size} bytes)") for i in job.inputs]
    lines += [("options", " ".join(f"{k}={v}" for k, v in job.options.items())),
              ("priority", str(job.priority)), ("attempts", str(job.attempts)),
              ("created", when(job.created)), ("started", when(job.started)),
              ("finished", when(job.finished))]
    if p.chunks_total is not None:
        lines.append(("progress", f"{p.chunks_done}/{p.chunks_total} chunks, "
                                  f"{p.sequences_done}/{p.sequences_total} sequences"))
    if job.state is JobState.COMPLETED and p.counts:
        lines.append(("counts", " ".join(f"{k}={v}" for k, v in p.counts.items())))
        if (regions := regions_summary(p.counts)) is not None:
            lines.append(("regions", regions))
    lines += [("report", path) for path in p.reports]
    for key, value in lines:
        click.echo(f"{key:<10} {value}")
    click.echo("history")
    for h in job.history:
        click.echo(f"  {when(h.time)}  {h.state.value:<10} {h.reason}".rstrip())
