"""`RunListener`: what one input's run tells the code that drives it.

A run reports as it goes instead of its driver working it out: `predict` shows some of it on
a progress bar and lets failures rise as errors (exit codes); the daemon turns all of it into
job service verbs (the job's log, progress, completion, failure). Every method does nothing
here; a driver overrides those it shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from virnucpro.run.input_run import InputRun


class RunListener:
    def started(self, run: InputRun) -> None:
        """Scoring begins (a finished run taken up has no scoring, and no `started`)."""

    def note(self, run: InputRun, line: str) -> None:
        """A line for the run's log, in words: what of an earlier run is reused or rewritten
        (`resuming NAME from shard k ...`). Already logged (logging) by the run."""

    def progress(self, run: InputRun, sequences: int, chunks: int, scored: int) -> None:
        """Sequences and chunks in the tables so far, and shards scored by this pass (not
        read from disk): what those count before the first is where the run's speed starts.
        Also called while shards are handed out, with nothing new."""

    def finished(self, run: InputRun, info: dict) -> None:
        """Its tables and run.json are in place; `info`: run.json's content."""

    def failed(self, run: InputRun, message: str, error: BaseException) -> bool:
        """The run cannot go on (its staged tables and shards stay, for a resume): `message`
        says why as `predict` says it (a library error's own words, a full disk as one line,
        anything else prefixed with what was being done). True takes the failure: the run's
        call returns and the run is over; False (here) has the call raise `error`."""
        return False
