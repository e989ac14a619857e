"""The headless client verbs of `virnucpro`: submit, jobs, show, cancel, retry, logs, watch, remove.

Parsing and rendering only: each verb is a request or two through `virnucpro.daemon.client`,
imported inside the command so that `virnucpro --help` never loads zmq. stdout carries data (job
ids, tables, JSON, log lines); progress and messages go to stderr. Following a job (`watch`,
`submit --wait`) is `Client.watch` (daemon/follow.py) and exits 0 when it completes,
`JobFailed`/`JobCancelled`'s code otherwise. Progress is counted in chunks scored, of a total
the daemon counted before scoring.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from virnucpro.cli.common import json_errors
from virnucpro.cli.flags import asked, table_options
from virnucpro.daemon.client_checks import absolute, check_inputs, models_spec_of
from virnucpro.daemon.client_views import (
    JobCancelled,
    JobFailed,
    ProgressView,
    age,
    echo_json,
    error_json,
    print_job,
    progress_cells,
    summary,
    table,
    when,
)
from virnucpro.options import SUBMIT

if TYPE_CHECKING:
    from virnucpro.daemon.client import Client
    from virnucpro.daemon.jobs import JobRecord

# A submit only stats its inputs, but a daemon on a loaded machine (or an upload's last chunk)
# may take longer than the usual 10 s; the liveness check before it keeps a dead daemon from
# costing that long.
SUBMIT_TIMEOUT_S = 60.0


endpoint_option = click.option(
    "--endpoint", default=None, metavar="URL",
    help="Daemon endpoint [default: $VIRNUCPRO_ENDPOINT, else the local daemon's ipc socket].")


def _json_errors(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        json_errors(ctx, error_json)
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_json_errors,
                           help="Print JSON on stdout, errors too: "
                           '{"error": {"code", "exit", "message"}}.')


# -- connecting ------------------------------------------------------------------------------


def _connect(endpoint: str | None) -> Client:
    from virnucpro.daemon.client import Client

    client = Client(endpoint)
    client.check_reachable()  # a local daemon that is not running: said at once
    return client


# -- following a job -------------------------------------------------------------------------


def _watch_to_end(client: Client, job_id: int) -> JobRecord:
    """Show the job's progress until it ends; return its final record (with counts) or raise
    JobFailed / JobCancelled."""
    view = ProgressView(job_id)
    try:
        for job in client.watch(job_id):
            view.show(job)
    except KeyboardInterrupt:
        view.close()
        # The group's own message speaks of --resume, which is about `predict`, not this.
        click.echo(f"stopped watching; job {job_id} goes on in the daemon "
                   f"(`virnucpro watch {job_id}`)", err=True)
        sys.exit(130)
    finally:
        view.close()
    from virnucpro.daemon.jobs import JobState

    job = client.show(job_id)  # the event stream's copy may lack the final counts
    if job.state is JobState.FAILED:
        raise JobFailed(summary(job))
    if job.state is JobState.CANCELLED:
        raise JobCancelled(summary(job))
    click.echo(summary(job), err=True)
    return job


# -- commands --------------------------------------------------------------------------------


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="FILE...")
@click.option("-o", "--outdir", default=None, metavar="OUTDIR",
              help="Output folder (required unless --upload; there it is a folder on the daemon's "
              "machine, by default the daemon's results folder).")
@table_options(SUBMIT)  # virnucpro/options.py: what predict takes of a job's settings
@click.option("--priority", type=int, default=0, show_default=True, help="Higher runs first.")
@click.option("--name", default=None, help="Job name [default: the first input's file name].")
@click.option("--wait", is_flag=True, help="Follow the job to its end; non-zero exit unless it completes.")
@click.option("--upload", is_flag=True, help="Send the files' content (a daemon on another host).")
@json_option
@endpoint_option
def submit(inputs: tuple[str, ...], outdir: str | None, priority: int, name: str | None,
           wait: bool, upload: bool, as_json: bool, endpoint: str | None, **given: Any) -> None:
    """Queue a prediction of FILE... in the daemon.

    Prints the job id on stdout (the job object with --json)."""
    if outdir is None and not upload:
        raise click.UsageError("missing option '-o' / '--outdir'")
    if upload and outdir is not None and not Path(outdir).is_absolute():
        # A relative folder would be resolved here, on a machine that is not the daemon's.
        raise click.UsageError("with --upload, -o names a folder on the daemon's machine: "
                               "give it as an absolute path, or omit it")
    # Only what was asked for travels: the daemon fills in the defaults (protocol.SUBMIT_OPTIONS).
    options = asked(given)
    if "models" in options:
        options["models"] = models_spec_of(options["models"])
    if options.get("force") and options.get("resume"):
        raise click.UsageError("--force and --resume exclude each other")
    paths = list(inputs) if upload else [absolute(p) for p in inputs]
    if upload and name is None:
        name = Path(inputs[0]).name  # the daemon would name it after its stored copy (uuid-name)
    client = _connect(endpoint)
    client.status()  # a daemon that cannot answer fails fast, before the long submit timeout
    check_inputs(inputs, rename_duplicates=options.get("rename_duplicates", False))
    client.timeout = SUBMIT_TIMEOUT_S
    job = client.submit(paths, outdir=absolute(outdir) if outdir else None, name=name,
                        priority=priority, options=options, upload=upload)
    client.timeout = 10.0
    click.echo(f"submitted job {job.id} ({job.name}) -> {job.outdir}", err=True)
    if not as_json:
        click.echo(str(job.id))
    if wait:
        try:
            job = _watch_to_end(client, job.id)
        except (JobFailed, JobCancelled) as exc:
            exc.job = client.show(job.id).to_dict()  # --json prints it in the error object
            raise
    if as_json:
        echo_json(job.to_dict())


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include finished jobs.")
@json_option
@endpoint_option
def jobs(show_all: bool, as_json: bool, endpoint: str | None) -> None:
    """List the daemon's jobs.

    Those on the devices (loading, running, cancelling), then the queue in run order, then
    (with --all) finished ones, newest first."""
    listed = _connect(endpoint).jobs(all=show_all)
    if as_json:
        echo_json([j.to_dict() for j in listed])
        return
    if not listed:
        click.echo("no jobs" + ("" if show_all else " (--all shows finished ones)"), err=True)
        return
    now = time.time()
    rows = [["ID", "NAME", "STATE", "PROGRESS", "SEQUENCES", "PRIORITY", "AGE"]]
    for j in listed:
        pct, counts = progress_cells(j)
        rows.append([str(j.id), j.name, j.state.value, pct, counts, str(j.priority),
                     age(now - j.created)])
    click.echo(table(rows))


@click.command()
@click.argument("job_id", type=int, metavar="ID")
@json_option
@endpoint_option
def show(job_id: int, as_json: bool, endpoint: str | None) -> None:
    """Show one job in detail.

    Its parameters, state history, reason, output folder and counts."""
    job = _connect(endpoint).show(job_id)
    if as_json:
        echo_json(job.to_dict())
        return
    print_job(job)


@click.command()
@click.argument("job_id", type=int, metavar="ID")
@json_option
@endpoint_option
def cancel(job_id: int, as_json: bool, endpoint: str | None) -> None:
    """Cancel a job.

    A queued job at once, a running one within a model batch (on Ray: after its shards in
    flight); the shards it finished are kept for a retry."""
    from virnucpro.daemon.jobs import JobState

    job = _connect(endpoint).cancel(job_id)
    if as_json:
        echo_json(job.to_dict())
    elif job.state is JobState.CANCELLING:
        click.echo(f"job {job_id} cancelling: it stops within a model batch", err=True)
    elif job.state is JobState.CANCELLED:
        click.echo(f"job {job_id} cancelled", err=True)
    else:
        click.echo(f"job {job_id} had already ended: {job.state.value}", err=True)


@click.command()
@click.argument("job_id", type=int, metavar="ID")
@click.option("--force", is_flag=True,
              help="Overwrite its output folder this time instead of resuming its shards.")
@click.option("--rename-duplicates", is_flag=True,
              help="Suffix repeated sequence ids from now on (the job's option changes).")
@json_option
@endpoint_option
def retry(job_id: int, force: bool, rename_duplicates: bool, as_json: bool,
          endpoint: str | None) -> None:
    """Queue a failed or cancelled job again.

    Shards it finished before are reused, unless --force. The options its failure may name
    (--force, --rename-duplicates) can be given here."""
    job = _connect(endpoint).retry(job_id, force=force, rename_duplicates=rename_duplicates)
    if as_json:
        echo_json(job.to_dict())
    else:
        click.echo(f"job {job_id} {job.state.value} again", err=True)


@click.command()
@click.argument("job_id", type=int, metavar="ID")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@endpoint_option
def logs(job_id: int, follow: bool, endpoint: str | None) -> None:
    """Print a job's log lines, oldest first."""
    client = _connect(endpoint)
    since = 0
    while True:
        # The state is read before the lines: once it says finished, those lines are the last.
        ended = not follow or client.show(job_id).state.finished
        for entry in client.logs(job_id, since):
            click.echo(f"{when(entry.time)}  {entry.line}")
            since = entry.n
        if ended:
            return
        sys.stdout.flush()
        time.sleep(0.5)


@click.command()
@click.argument("job_id", type=int, metavar="ID")
@endpoint_option
def watch(job_id: int, endpoint: str | None) -> None:
    """Follow a job's progress until it ends.

    Progress goes to stderr; the exit code is 0 only if the job completes."""
    _watch_to_end(_connect(endpoint), job_id)


@click.command()
@click.argument("job_id", type=int, metavar="[ID]", required=False)
@click.option("--older-than", type=click.FloatRange(min=0), default=None, metavar="DAYS",
              help="Remove every finished job that ended more than DAYS ago.")
@json_option
@endpoint_option
def remove(job_id: int | None, older_than: float | None, as_json: bool,
           endpoint: str | None) -> None:
    """Forget finished jobs.

    One (ID) or every one that ended more than DAYS ago; outputs stay on disk."""
    if (job_id is None) == (older_than is None):
        raise click.UsageError("give a job ID or --older-than DAYS (one of them)")
    client = _connect(endpoint)
    if job_id is not None:
        removed = client.remove(job_id=job_id)
    else:
        removed = client.remove(older_than_s=older_than * 86400)
    if as_json:
        echo_json({"removed": removed})
    else:
        click.echo(f"removed {removed} job(s)", err=True)


COMMANDS = (submit, jobs, show, cancel, retry, logs, watch, remove)
