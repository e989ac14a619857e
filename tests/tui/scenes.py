"""The pictures of the dashboard, as scenes on the fake daemon (`fakes.sample_daemon`, a clock
moved by hand, UTC), shared by the snapshot tests and `tests/tui/screenshot.py` (the
SVGs under docs/ that docs/daemon.md shows). Each scene is `async (pilot, app, daemon, clock)` and leaves the app on the
screen to take; `scene_app()` gives the app and what drives it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.pilot import Pilot

from tests.tui.driving import FROZEN, Clock, fake_app, progress_steps, until
from tests.tui.fakes import FakeDaemon, memory_wave, sample_daemon, with_state
from virnucpro.tui.app import DashboardApp
from virnucpro.tui.screens.confirm import ConfirmScreen
from virnucpro.tui.screens.help import HelpScreen
from virnucpro.tui.screens.job_detail import JobDetailScreen

Scene = Callable[[Pilot, DashboardApp, FakeDaemon, Clock], Awaitable[None]]


def scene_app() -> tuple[DashboardApp, FakeDaemon, Clock]:
    daemon = sample_daemon(FROZEN)
    clock = Clock(FROZEN)
    return fake_app(daemon, clock=clock), daemon, clock


async def connected(pilot, app, daemon, clock, *, memory: int = 24) -> None:
    """The first snapshot, a minute of memory and job 1's last 20 s of progress (6 chunks/s)."""
    await until(pilot, lambda: app.state.connected, what="the first snapshot")
    memory_wave(daemon, samples=memory)
    await until(pilot, lambda: app.state.seq == daemon.seq)
    await progress_steps(pilot, app, daemon, clock, 1, [(20.0, 9240), (10.0, 9300), (0.0, 9360)])
    await pilot.pause(0.1)


async def open_detail(pilot, app, job_id: int) -> JobDetailScreen:
    app.queue.select(job_id)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.job_id == job_id)
    await pilot.pause(0.1)
    return app.screen


async def main_screen(pilot, app, daemon, clock) -> None:
    await connected(pilot, app, daemon, clock)


async def completed_detail(pilot, app, daemon, clock) -> None:
    await connected(pilot, app, daemon, clock)
    await open_detail(pilot, app, 4)
    await until(pilot, lambda: app.screen.results is not None and app.screen.log_since == 4)
    await pilot.pause(0.1)


async def help_screen(pilot, app, daemon, clock) -> None:
    """`?` on the main screen, the queue focused."""
    await connected(pilot, app, daemon, clock)
    await pilot.press("question_mark")
    await until(pilot, lambda: isinstance(app.screen, HelpScreen))
    await pilot.pause(0.1)


async def confirm_cancel(pilot, app, daemon, clock) -> None:
    """`c` on the running job: asked first."""
    await connected(pilot, app, daemon, clock)
    app.queue.select(1)
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.pause(0.1)


async def detail_lost(pilot, app, daemon, clock) -> None:
    """The running job's detail, then the daemon gone for 20 s: the banner, figures as heard."""
    await connected(pilot, app, daemon, clock)
    screen = await open_detail(pilot, app, 1)
    app.link.backoff = (60.0,)  # one attempt: the banner's count is fixed
    daemon.go_down()
    await until(pilot, lambda: screen.banner.display, what="the banner on the detail")
    clock.t += 20
    screen.tick()
    await pilot.pause(0.1)


# -- a resumed job at three moments -------------------------------------------------------------
# Job 6 was cancelled with 1,200 of 15,000 chunks scored; retried, it resumes and scores 50
# chunks a second. The rate and ETA count only what this run scores. (Its results are the
# fake reader's: 1,840 sequences.)

RESUMED = 6
CHUNKS = 15_000
SEQUENCES = 1840


def _log(daemon, clock, line: str) -> None:
    lines = daemon.logs.setdefault(RESUMED, [])
    lines.append({"n": len(lines) + 1, "time": clock.t, "line": line})


async def _logs_shown(pilot, app, daemon) -> None:
    n = len(daemon.logs.get(RESUMED, []))
    await until(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.log_since == n,
                what="the log lines")


async def _retried_and_running(pilot, app, daemon, clock) -> None:
    await connected(pilot, app, daemon, clock)
    daemon.client().retry(RESUMED)
    job = daemon.jobs[RESUMED]
    for state, later in (("loading", 1.0), ("running", 3.0)):
        job = with_state(job, state, clock.t + later)
    job = {**job, "progress": {"chunks_done": 0, "chunks_total": CHUNKS,
                               "sequences_done": 0, "sequences_total": SEQUENCES}}
    daemon.set_job(job)
    _log(daemon, clock, "retry requested")
    _log(daemon, clock, "attempt 1: loading model set 'published'")
    _log(daemon, clock, "scoring old_run (1840 sequences); resuming: 1,200 chunks already written")
    await until(pilot, lambda: app.state.seq == daemon.seq)
    await open_detail(pilot, app, RESUMED)
    await _logs_shown(pilot, app, daemon)


async def _scoring(pilot, app, daemon, clock, *, start: float, until_s: float, every: float) -> None:
    """Progress from `start` (seconds after running began: chunks = 1200 + 50/s) to `until_s`."""
    t0 = FROZEN + 3.0  # running began
    steps, t = [], start
    while t <= until_s + 1e-9:
        steps.append((t, 1200 + int(50 * (t - 1.0))))
        t += every
    clock.t = t0 + until_s
    await progress_steps(pilot, app, daemon, clock, RESUMED,
                         [(until_s - s, chunks) for s, chunks in steps],
                         sequences=lambda chunks: chunks * SEQUENCES // CHUNKS)
    app.screen.tick()
    await pilot.pause(0.1)


async def progress_1(pilot, app, daemon, clock) -> None:
    """11 s into the new run: 8 % already done by the first attempt, 50/s since."""
    await _retried_and_running(pilot, app, daemon, clock)
    await _scoring(pilot, app, daemon, clock, start=1.0, until_s=11.0, every=1.0)


async def progress_2(pilot, app, daemon, clock) -> None:
    """Three minutes on: 68 %."""
    await progress_1(pilot, app, daemon, clock)
    await _scoring(pilot, app, daemon, clock, start=150.0, until_s=180.0, every=2.0)


async def progress_3(pilot, app, daemon, clock) -> None:
    """Completed: 100 %, the results."""
    await progress_2(pilot, app, daemon, clock)
    clock.t += 98.0  # the ETA was 1m37s
    job = daemon.jobs[RESUMED]
    counts = {"sequences": SEQUENCES, "sequences_virus": 212, "sequences_others": 1601,
              "sequences_unscored": 27}
    job = {**job, "progress": {"chunks_done": CHUNKS, "chunks_total": CHUNKS,
                               "sequences_done": SEQUENCES, "sequences_total": SEQUENCES,
                               "counts": counts}}
    _log(daemon, clock, "completed: 1840 sequences, 212 viral")
    daemon.set_job(with_state(job, "completed", clock.t))
    await until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                and app.screen.job.state.value == "completed" and app.screen.results is not None)
    await _logs_shown(pilot, app, daemon)
    await pilot.pause(0.1)


SCENES: dict[str, Scene] = {
    "main": main_screen, "detail": completed_detail, "help": help_screen,
    "confirm": confirm_cancel, "detail-lost": detail_lost,
    "progress-1": progress_1, "progress-2": progress_2, "progress-3": progress_3,
}
