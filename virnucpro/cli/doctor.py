"""`virnucpro doctor`: one table of what a run would meet; exit 11 on any problem.

The checks are in `virnucpro.doctor`; the daemon's check is here, because the core must not
import `virnucpro.daemon` (the front end may). stdout carries the table or the JSON.
"""

from __future__ import annotations

import json

import click

from virnucpro.doctor import OK, PROBLEM, WARNING, Check

DAEMON_TIMEOUT_S = 2.0


def check_daemon() -> list[Check]:
    """Whether a daemon answers on its socket, and in which mode."""
    from virnucpro.daemon.client import Client, ClientError, DaemonUnavailable

    with Client(timeout=DAEMON_TIMEOUT_S) as client:
        try:
            client.check_reachable()
        except DaemonUnavailable:
            return [Check("daemon", "socket", WARNING,
                          f"not running (nothing listens on {client.endpoint})",
                          "optional: `virnucpro-daemon start` keeps the models loaded between "
                          "jobs; `virnucpro predict` runs without it")]
        try:
            st = client.status()
        except DaemonUnavailable as exc:
            return [Check("daemon", "socket", WARNING,
                          f"{client.endpoint}: no answer within {DAEMON_TIMEOUT_S:.0f} s ({exc})",
                          "busy or stuck: `virnucpro-daemon status`; restart it if it stays so")]
        except ClientError as exc:
            return [Check("daemon", "socket", PROBLEM, f"{client.endpoint}: {exc}",
                          "a daemon of another version? `virnucpro-daemon stop`, then start "
                          "this one")]
    mode = ("persistent models" if st.persistent_models else "models loaded per job")
    return [Check("daemon", "socket", OK,
                  f"{st.state.value} (pid {st.pid}) on {client.endpoint}: {mode}, devices "
                  f"{', '.join(st.devices) or '-'}, default models {st.default_models!r}, "
                  f"{st.queued} queued")]


check_daemon.section = "daemon"  # type: ignore[attr-defined]

_MARK = {OK: "ok", WARNING: "WARNING", PROBLEM: "PROBLEM"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--verify", is_flag=True,
              help="Recompute every model file's sha256 (slow for the published set) and open "
                   "each file through the loaders predict uses (weights mapped, not read).")
@click.option("--no-run", is_flag=True, help="Skip the end-to-end run of the tiny set.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, verify: bool, no_run: bool) -> None:
    """Check this machine: versions, devices, the model cache and sets, the daemon, and a
    ~10 s end-to-end run of the tiny set. Never downloads.

    Each line is ok, a warning (works, but see the fix) or a problem; exits with status 11
    when there is any problem.
    """
    from virnucpro.doctor import EXIT_PROBLEMS, run_checks, summary

    checks = run_checks(verify=verify, tiny_run=not no_run, extra=(check_daemon,))
    result = summary(checks)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        width = max(len(f"{c.section}: {c.name}") for c in checks)
        for c in checks:
            click.echo(f"{_MARK[c.status]:<8} {f'{c.section}: {c.name}':<{width}}  {c.detail}")
            if c.fix and c.status != OK:
                click.echo(f"{'':<8} {'':<{width}}  -> {c.fix}")
        click.echo(f"\n{result['problems']} problem(s), {result['warnings']} warning(s)")
    if result["problems"]:
        ctx.exit(EXIT_PROBLEMS)
