"""What the command lines share: the click group that turns library errors into exit codes.

Both front ends use it: `virnucpro` (virnucpro/cli/) and `virnucpro-daemon` (daemon/cli.py). It
lives in the core, next to `errors.py`, so that neither CLI imports the other; it imports only
click and `virnucpro.errors` (tests/unit/test_boundaries.py checks it).
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable

import click

from virnucpro.errors import VirNucProError

# `ctx.meta` key (shared by a group's context and its commands'): a command asked for JSON sets
# it to a function that describes an error (exc -> {"code", "message", ...}); the group then
# prints errors as JSON on stdout too, with the same exit code.
JSON_ERRORS = "virnucpro.json_errors"
ErrorNamer = Callable[[VirNucProError], dict]


def json_errors(ctx: click.Context, namer: ErrorNamer) -> None:
    """Make the errors of this command JSON on stdout: {"error": {"code", "exit", "message"}}."""
    ctx.meta[JSON_ERRORS] = namer


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's kill, `kill PID`) turned into the stop Ctrl-C makes: the same
    clean-up on the way out (workers stopped, temporary folders removed, finished shards kept),
    then exit 128 + the signal, as the shell reports a process killed by it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_cleanly_on_sigterm() -> None:
    """For long commands: SIGTERM raises `Terminated` in the main thread."""

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)


class ErrorExitGroup(click.Group):
    """Turns library errors into one clear line on stderr and the error's exit code; for a
    command that asked for JSON (`json_errors`), also an error object on stdout."""

    interrupt_message = ("interrupted: finished shards are kept; run the same command with "
                         "--resume to continue")

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except VirNucProError as exc:
            click.echo(f"error: {exc}", err=True)
            namer = ctx.meta.get(JSON_ERRORS)
            if namer is not None:
                described = namer(exc)
                click.echo(json.dumps({"error": {"code": described.pop("code"),
                                                 "exit": exc.exit_code, **described}}))
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            if ctx.meta.get(JSON_ERRORS) is None:
                raise
            exc.show()
            click.echo(json.dumps({"error": {"code": "usage", "exit": exc.exit_code,
                                             "message": exc.format_message()}}))
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            click.echo(self.interrupt_message, err=True)
            sys.exit(128 + exc.signum if isinstance(exc, Terminated) else 130)
