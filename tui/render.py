"""Numbers as terminal text: sizes, durations, rates, bars, sparklines and histograms.

Pure functions returning `str` or `rich.text.Text`, shared by the widgets so that a figure reads
the same everywhere (the queue's bar and the device panel's bar are one function). They draw
with block characters; no plotting library.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text

from virnucpro.daemon.jobs import JobState

BLOCKS = " ▁▂▃▄▅▆▇█"
STATE_STYLES = {
    JobState.QUEUED: "dim",
    JobState.LOADING: "yellow",
    JobState.RUNNING: "bold cyan",
    JobState.CANCELLING: "magenta",
    JobState.COMPLETED: "green",
    JobState.FAILED: "bold red",
    JobState.CANCELLED: "dim magenta",
}


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def bytes_pair(used: float | None, total: float | None) -> str:
    """`61.4/143.8 GB`: both in the unit of the larger."""
    if used is None:
        return "-"
    if not total:
        return human_bytes(used)
    unit, size = next(((u, z) for u, z in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3))
                       if total >= z), ("B", 1))
    return f"{used / size:.1f}/{total / size:.1f} {unit}"


def duration(seconds: float | None) -> str:
    """`42s`, `3m07s`, `2h05m`, `3d04h`; `-` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def rate(per_second: float | None, unit: str = "") -> str:
    """`12.3/s`, `30.0/min`; with a unit, `12.3 chunks/s`."""
    if not per_second:
        return "-"
    unit = f" {unit}" if unit else ""
    if per_second >= 1:
        return f"{per_second:.1f}{unit}/s"
    return f"{per_second * 60:.1f}{unit}/min"


def clock_time(t: float | None, *, date: bool = False) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(t))


def state_text(state: JobState) -> Text:
    return Text(state.value, style=STATE_STYLES.get(state, ""))


def bar(fraction: float | None, width: int, *, style: str = "cyan", label: bool = True,
        track: str = "━") -> Text:
    """A bar of `width` cells (eighths of a cell resolution), then the percentage; both round
    down, so that only all of it (a completed job) fills the bar and reads 100%."""
    if fraction is None:
        return Text("·" * width + ("     " if label else ""), style="dim")
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = int(fraction * width * 8 + 1e-9)
    full, part = divmod(eighths, 8)
    filled = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
    text = Text(filled, style=style)
    text.append(track * (width - len(filled)), style="grey37")
    if label:
        text.append(f" {int(fraction * 100 + 1e-9):3d}%")
    return text


def spark(values: Sequence[float], top: float, width: int, *, style: str = "green") -> Text:
    """One block per value, the newest at the right, on a fixed 0..top scale (unlike Textual's
    Sparkline, which stretches min..max and would turn 0.1% noise into full-height swings)."""
    values = list(values)[-width:]
    cells = []
    for v in values:
        level = 0 if top <= 0 else round(min(max(v / top, 0.0), 1.0) * 8)
        cells.append(BLOCKS[max(level, 1)])  # never blank: a sample at 0 still shows
    return Text(" " * (width - len(cells)) + "".join(cells), style=style)


def histogram(counts: Sequence[int], edges: Sequence[float], width: int) -> Text:
    """Horizontal bars, one line per bin: `0.90-1.00 ██████▌ 12`."""
    top = max(counts, default=0)
    text = Text()
    for i, n in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        text.append(f"{lo:.1f}-{hi:.1f} ", style="dim")
        text.append_text(bar(n / top if top else 0.0, width, style="magenta", label=False, track=" "))
        text.append(f" {n}")
        if i < len(counts) - 1:
            text.append("\n")
    return text
