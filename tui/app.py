"""`virnucpro-tui`: the terminal dashboard of the VirNucPro daemon.

Composition, bindings and message routing only. The event stream runs in a thread worker
(`link.DaemonLink.stream`, on the client's `Follower`) and posts `DaemonEvent`/`Disconnected`;
the app folds the typed records into `state.DashboardState` and hands the views to the
widgets; requests (cancel, retry) run in thread workers too, so the UI never waits on the
network. The client comes from a factory, which is how the tests put a fake daemon behind the
same app. Never imports torch.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Header
from textual.worker import get_current_worker

from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.daemon.jobs import JobRecord, JobState
from virnucpro.tui.link import Abandoned, ClientFactory, DaemonLink, is_local
from virnucpro.tui.messages import (
    DaemonEvent,
    Disconnected,
    JobActionDone,
    JobActionFailed,
    JobActionRequested,
    JobOpened,
    JobRemoved,
)
from virnucpro.tui.results import Results, read_results
from virnucpro.tui.screens.confirm import ConfirmScreen
from virnucpro.tui.screens.connect import ConnectScreen, StartFinished
from virnucpro.tui.screens.help import HelpScreen, bindings_of
from virnucpro.tui.screens.job_detail import JobDetailScreen
from virnucpro.tui.screens.submit import SubmitScreen
from virnucpro.tui.state import DashboardState
from virnucpro.tui.widgets.banner import ConnectionBanner
from virnucpro.tui.widgets.device_panel import DevicePanel
from virnucpro.tui.widgets.queue_table import QueueTable
from virnucpro.tui.widgets.status_bar import StatusBar


class DashboardApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "VirNucPro"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("n", "submit", "Submit"),
        Binding("d", "connect", "Start daemon"),
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help"),
    ]

    def __init__(self, connect: ClientFactory, endpoint: str, *,
                 clock: Callable[[], float] = time.time,
                 reader: Callable[[str], Results] = read_results,
                 start_endpoint: str | None = None, files_root: Path | None = None) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.local = is_local(endpoint)
        self.start_endpoint = start_endpoint
        self.files_root = files_root
        self.clock = clock
        self.reader = reader
        self.state = DashboardState(clock)
        self.link = DaemonLink(connect, endpoint)
        self.ever_connected = False
        self.offered_start = False
        self.lost_because = ""  # the last Disconnected's reason, for the connect dialog
        self.lost: Disconnected | None = None  # while the daemon does not answer: the banners
        self.sub_title = endpoint

    # -- composition -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        self.status_bar = StatusBar(id="status")
        self.banner = ConnectionBanner(id="banner")
        self.queue = QueueTable(id="queue")
        self.devices = DevicePanel(id="devices")
        yield Header()
        yield self.status_bar
        yield self.banner
        with Vertical(id="main"):
            yield self.queue
            yield self.devices
        yield Footer()

    def on_mount(self) -> None:
        self.queue.border_title = "queue"
        self.devices.border_title = "devices"
        self.banner.hide()
        self._show_status()
        self.queue.focus()
        self.stream()
        self.set_interval(1.0, self._tick)

    @work(thread=True, group="stream", exclusive=True, exit_on_error=False)
    def stream(self) -> None:
        worker = get_current_worker()
        self.link.stream(self.post_message, lambda: worker.is_cancelled)

    # -- the event stream ------------------------------------------------------------------

    def on_daemon_event(self, message: DaemonEvent) -> None:
        topic = self.state.apply(message.item)
        if topic == "snapshot":
            if self.lost is not None:
                self.notify("Connected to the daemon.", timeout=3)
            self.ever_connected = True
            self.lost = None
            self._show_connection()
            if isinstance(self.screen, ConnectScreen):
                self.screen.dismiss(None)
            self.refresh_bindings()
        if topic in ("snapshot", "job", "progress"):
            self._show_jobs()
        if topic in ("snapshot", "memory"):
            self.devices.show(self.state.device_views())
        self._show_status()

    def on_disconnected(self, message: Disconnected) -> None:
        self.state.connected = False
        self.lost_because = message.reason
        self.lost = message
        self._show_connection()
        self._show_jobs()  # as last heard: no ETA
        self._show_status()
        self.refresh_bindings()
        if not self.ever_connected and not self.offered_start:
            self.offered_start = True
            self.action_connect(message.reason)

    def _tick(self) -> None:
        if not self.screen_stack:  # the app is closing: its last tick finds no screen
            return
        self._show_jobs()
        self._show_status()
        if isinstance(self.screen, JobDetailScreen):
            self.screen.tick()

    def _show_jobs(self) -> None:
        self.queue.show(self.state.rows())
        screen = self.screen
        if isinstance(screen, JobDetailScreen):
            job = self.state.jobs.get(screen.job_id)
            if job is not None and job is not screen.job:
                screen.update_job(job)

    def _show_connection(self) -> None:
        """The lost-daemon banner on every screen that has one (or none, connected), and the
        job detail's stale mark."""
        lost = self.lost
        for screen in self.screen_stack:
            for banner in screen.query(ConnectionBanner):
                if lost is None:
                    banner.hide()
                else:
                    banner.show_lost(lost.reason, lost.retry_in, lost.attempt,
                                     ever_connected=self.ever_connected, can_start=self.local)
            if isinstance(screen, JobDetailScreen):
                screen.tick()

    def _show_status(self) -> None:
        self.status_bar.show(self.state.daemon, self.state.uptime(), connected=self.state.connected,
                             endpoint=self.endpoint, queued=self.state.queued())

    # -- screens ---------------------------------------------------------------------------

    def action_submit(self) -> None:
        self.push_screen(SubmitScreen(self.link, local=self.local, models=self.state.usual_models(),
                                      start=self.files_root), self._submitted)

    def _submitted(self, job: JobRecord | None) -> None:
        if job is None:
            return
        self.state.merge_job(job)
        self._show_jobs()
        self.queue.select(job.id)
        self.notify(f"Job {job.id} ({job.name}) submitted.", timeout=4)

    @on(JobOpened)
    async def _open(self, message: JobOpened) -> None:
        job = self.state.jobs.get(message.job_id)
        if job is not None:
            await self.push_screen(JobDetailScreen(job, self.link, state=self.state,
                                                   local=self.local, reader=self.reader))
            self._show_connection()

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_title(screen), bindings_of(screen)))

    def action_connect(self, reason: str = "") -> None:
        if self.state.connected:
            self.notify("The daemon is running and connected.", timeout=3)
            return
        if not isinstance(self.screen, ConnectScreen):
            why = reason or self.lost_because or "not connected"
            self.push_screen(ConnectScreen(self.endpoint, why, can_start=self.local,
                                           start_endpoint=self.start_endpoint))

    @on(StartFinished)
    def _daemon_started(self, message: StartFinished) -> None:
        if message.ok:
            self.link.wake()  # connect now, not at the end of the backoff

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action in ("submit", "connect", "quit"):
            return False  # a dialog is open: its keys only (ctrl+q still quits)
        if action == "connect":
            # In the footer only while disconnected, and only where a daemon could start here.
            return not self.state.connected and self.local
        return True

    # -- cancel, retry and remove: confirmed first -------------------------------------------

    @on(JobActionRequested)
    def _job_action(self, message: JobActionRequested) -> None:
        action, job_id = message.action, message.job_id
        job = self.state.jobs.get(job_id)
        if job is None:
            return
        why_not = refusal(action, job)
        if why_not:
            self.notify(why_not, severity="warning", timeout=5)
            return
        title, text, yes = question(action, job)

        def answered(yes: bool | None) -> None:
            if yes:
                self.job_action(action, job_id)

        self.push_screen(ConfirmScreen(title, text, yes=yes), answered)

    @work(thread=True, group="requests", exit_on_error=False)
    def job_action(self, action: str, job_id: int) -> None:
        worker = get_current_worker()
        try:
            if action == "remove":
                result = self.link.call("remove", job_id=job_id, cancelled=lambda: worker.is_cancelled)
            else:
                result = self.link.call(action, job_id, cancelled=lambda: worker.is_cancelled)
        except (ClientError, DaemonUnavailable) as exc:
            self.post_message(JobActionFailed(action, job_id, getattr(exc, "message", str(exc))))
        except Abandoned:
            pass
        else:
            self.post_message(JobRemoved(job_id, int(result)) if action == "remove"
                              else JobActionDone(action, result))

    def on_job_removed(self, message: JobRemoved) -> None:
        self.state.forget(message.job_id)  # no event tells the stream
        screen = self.screen
        if isinstance(screen, JobDetailScreen) and screen.job_id == message.job_id:
            self.pop_screen()
        self._show_jobs()
        self._show_status()
        gone = "removed" if message.removed else "was already gone"
        self.notify(f"Job {message.job_id} {gone}; its output folder is left as it is.", timeout=4)

    def on_job_action_done(self, message: JobActionDone) -> None:
        job = message.job
        self.state.merge_job(job)
        self._show_jobs()
        self.notify(f"{message.action}: job {job.id} is {job.state.value}.", timeout=4)

    def on_job_action_failed(self, message: JobActionFailed) -> None:
        self.notify(f"{message.action} job {message.job_id}: {message.error}", severity="error",
                    timeout=6)


def help_title(screen) -> str:
    if isinstance(screen, JobDetailScreen):
        return f"job {screen.job_id}"
    return getattr(screen, "HELP_TITLE", "the queue")


ACTION_STATES = {
    "cancel": (JobState.QUEUED, JobState.LOADING, JobState.RUNNING),
    "retry": (JobState.FAILED, JobState.CANCELLED),
    "remove": (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED),
}


def refusal(action: str, job: JobRecord) -> str:
    """Why `action` cannot apply to `job` as we last saw it ("" when it can): not asked, then."""
    if job.state in ACTION_STATES.get(action, ()):
        return ""
    which = {"cancel": "a queued, loading or running job can be cancelled",
             "retry": "only failed or cancelled jobs can be retried",
             "remove": "only a finished job can be removed (cancel it first)"}[action]
    return f"Job {job.id} is {job.state.value}: {which}."


def question(action: str, job: JobRecord) -> tuple[str, str, str]:
    """The confirmation's title, text and yes-button word."""
    name = f"job {job.id} ({job.name})"
    if action == "cancel":
        what = ("It leaves the queue." if job.state is JobState.QUEUED else
                "It stops within a model batch; the shards it finished stay in its output folder.")
        return f"Cancel {name}?", f"{what} Retry resumes it.", "Cancel it"
    if action == "retry":
        return (f"Retry {name}?", f"It goes back in the queue and resumes in {job.outdir}.",
                "Retry")
    return (f"Remove {name}?", "The daemon forgets the job and its log; its output folder "
            f"{job.outdir} is left as it is.", "Remove")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--endpoint", default=None, metavar="URL",
              help="Daemon endpoint [default: $VIRNUCPRO_ENDPOINT, else the local daemon's ipc socket].")
@click.option("--keys", type=click.Path(path_type=Path), default=None,
              help="CurveZMQ keys for a tcp:// endpoint [default: $VIRNUCPRO_KEYS].")
def main(endpoint: str | None, keys: Path | None) -> None:
    """The VirNucPro dashboard: the daemon's queue, progress and GPU memory, live."""
    from virnucpro.daemon.client import Client

    # Without --endpoint, resolve on every connection: a daemon started later with another
    # endpoint writes it where Client() looks.
    try:
        shown = endpoint or os.environ.get("VIRNUCPRO_ENDPOINT") or Client(None).endpoint
    except DaemonUnavailable as exc:  # a runtime folder that is not safely ours: say it, once
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    DashboardApp(lambda timeout: Client(endpoint, timeout=timeout, curve_keys=keys), shown,
                 start_endpoint=endpoint).run()


if __name__ == "__main__":
    main()
