"""The NOTE log level (25): what a command tells at its default verbosity that is not a warning
(a run resumed, what a training reused, which filter applies). Shown as `NOTE: ...` on stderr
between INFO and WARNING, so `-q` hides it and `-v` keeps it; a WARNING is kept for what the
user should act on or doubt. `setup_logging` is the command lines' set-up of it (-q, default,
-v, -vv), one place for the front end's group and each of its subcommands."""

from __future__ import annotations

import logging
import sys

NOTE = 25
logging.addLevelName(NOTE, "NOTE")


def setup_logging(verbosity: int) -> None:
    """stderr logging at `verbosity`: -1 errors only, 0 notes and warnings, 1 info, 2+ debug
    (with the logger's name)."""
    levels = {-1: logging.ERROR, 0: NOTE, 1: logging.INFO}  # by default notes and warnings
    level = levels.get(verbosity, logging.DEBUG)
    fmt = "%(levelname)s: %(message)s" if verbosity < 2 else "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    logging.captureWarnings(True)
