"""A rich progress bar on stderr for `predict`, silent when stderr is not a terminal.

The pipeline calls `start(name, total_sequences, total_chunks)`, then `update(sequences_done,
chunks_done, shards_scored)` from the shard feed, and `finish()`; the bar shows sequences, the
chunks per second of this run and the time left by chunks.

The speed is this run's own (`RunRate`): chunks written before the first shard this run scored
(a resume's shards already on disk, and the first shard, which carries the model load) set its
starting point, never its speed; rejected: rich's own speed, which counted the resumed rows as
speed (26,957 chunks/s) and, measured over its last 30 s of updates, never had two when shards
took longer than that (no ETA after minutes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunRate:
    """Chunks per second since this run's first scored shard, and the time left from it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.origin: tuple[float, int] | None = None  # (time, chunks) at the first scored shard
        self.rate: float | None = None

    def update(self, chunks: int, scored: int) -> None:
        now = self.clock()
        if scored == 0 or self.origin is None:
            if scored:
                self.origin = (now, chunks)
            return
        t0, c0 = self.origin
        if chunks > c0 and now > t0:
            self.rate = (chunks - c0) / (now - t0)

    def eta(self, chunks: int, total: int | None) -> float | None:
        if not self.rate or total is None:
            return None
        return max(0.0, (total - chunks) / self.rate)


class ProgressReporter:
    def __init__(self, enabled: bool, *, console=None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self._console = console
        self._clock = clock
        self._progress = None
        self._task = None
        self._chunks_total: int | None = None
        self._rate = RunRate(clock)

    def start(self, name: str, total: int, total_chunks: int | None = None) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._chunks_total = total_chunks
        self._rate = RunRate(self._clock)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("sequences"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            console=self._console or Console(stderr=True), transient=False,
            get_time=self._clock)
        self._progress.start()
        self._task = self._progress.add_task(name, total=total, rate="- chunks/s", eta="-")

    def update(self, sequences: int, chunks: int, scored: int = 0) -> None:
        if self._progress is None:
            return
        self._rate.update(chunks, scored)
        rate, eta = self._rate.rate, self._rate.eta(chunks, self._chunks_total)
        self._progress.update(self._task, completed=sequences,
                              rate="- chunks/s" if rate is None else f"{rate:.1f} chunks/s",
                              eta="-" if eta is None else clock_text(eta))

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
