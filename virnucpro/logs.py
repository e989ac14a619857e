"""The NOTE log level (25): what a command tells at its default verbosity that is not a warning
(a run resumed, what a training reused, which filter applies). Shown as `NOTE: ...` on stderr
between INFO and WARNING, so `-q` hides it and `-v` keeps it; a WARNING is kept for what the
user should act on or doubt."""

from __future__ import annotations

import logging

NOTE = 25
logging.addLevelName(NOTE, "NOTE")
