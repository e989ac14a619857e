"""What the command lines share: the click group that turns library errors into exit codes.

Both front ends use it: `virnucpro` (virnucpro/cli/) and `virnucpro-daemon` (daemon/cli.py). It
lives in the core, next to `errors.py`, so that neither CLI imports the other; it imports only
click and `virnucpro.errors` (tests/unit/test_boundaries.py checks it).
"""

from __future__ import annotations

import sys

import click

from virnucpro.errors import VirNucProError


class ErrorExitGroup(click.Group):
    """Turns library errors into one clear line on stderr and the error's exit code."""

    interrupt_message = ("interrupted: finished shards are kept; run the same command with "
                         "--resume to continue")

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except VirNucProError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo(self.interrupt_message, err=True)
            sys.exit(130)
