"""Driving the dashboard in tests: an app on a fake daemon with a frozen clock, waiting for a
condition while the app runs, and the text a widget shows."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Coroutine

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from tests.tui.fakes import ENDPOINT, FakeDaemon, sample_results
from virnucpro.tui.app import DashboardApp
from virnucpro.tui.results import Results
from virnucpro.tui.screens.submit import SubmitScreen

FROZEN = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SIZE = (120, 36)


class Clock:
    """A clock a test moves by hand (`clock.t += 10`): the app's `clock`."""

    def __init__(self, t: float = FROZEN) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def fake_app(daemon: FakeDaemon, *, frozen: bool = True, clock: Callable[[], float] | None = None,
             reader: Callable[[str], Results] = sample_results, **kwargs) -> DashboardApp:
    """The dashboard on `daemon`; a job's results are `reader(outdir)`: the fixed sample, or
    `read_results` for a real folder."""
    clock = clock or ((lambda: FROZEN) if frozen else time.time)
    app = DashboardApp(daemon.client, ENDPOINT, clock=clock, reader=reader, **kwargs)
    # Notice a silent daemon and retry quickly: the defaults are seconds, for people.
    app.link.liveness_s = 0.3
    app.link.backoff = (0.1, 0.2)
    return app


def run(scenario: Callable[[], Coroutine]) -> None:
    asyncio.run(scenario())


async def until(pilot: Pilot, condition: Callable[[], object], timeout: float = 15.0,
                what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


async def progress_steps(pilot: Pilot, app: DashboardApp, daemon: FakeDaemon, clock: Clock,
                         job_id: int, steps: list[tuple[float, int]],
                         sequences: Callable[[int], int] | None = None) -> None:
    """Publish job `job_id`'s progress as (seconds before the clock's time now, chunks done),
    each folded in at its time; the clock ends where it was. `sequences(chunks)`: the
    sequences done with them (else left as they were)."""
    end = clock.t
    for ago, chunks in steps:
        clock.t = end - ago
        daemon.progress_of(job_id, chunks, None if sequences is None else sequences(chunks))
        await until(pilot, lambda: app.state.seq == daemon.seq, what="the progress event")
    clock.t = end


async def open_submit_dialog(pilot: Pilot, app: DashboardApp) -> SubmitScreen:
    """`n` on the main screen; the submit dialog once it is up and laid out."""
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, SubmitScreen), what="the submit dialog")
    await pilot.pause()
    return app.screen


def text_of(widget: Static) -> str:
    """The plain text a Static shows (its content, a string or a rich renderable)."""
    content = widget.content
    if isinstance(content, str):
        return content
    console = Console(width=max(widget.content_size.width, 40), record=True, color_system=None,
                      file=io.StringIO())
    console.print(content)
    return console.export_text()
