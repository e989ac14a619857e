"""A rich progress bar on stderr for `predict`, silent when stderr is not a terminal.

The pipeline calls `start(name, total_sequences)`, `update(sequences_done, chunks_done)` and
`finish()`; the bar shows sequences, chunks per second and the time left.
"""

from __future__ import annotations

import sys
import time


class ProgressReporter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress = None
        self._task = None
        self._t0 = 0.0

    def start(self, name: str, total: int) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("sequences"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self._progress.start()
        self._task = self._progress.add_task(name, total=total, rate="")
        self._t0 = time.perf_counter()

    def update(self, sequences: int, chunks: int) -> None:
        if self._progress is None:
            return
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, completed=sequences, rate=f"{chunks / elapsed:.1f} chunks/s")

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
