"""One job in full: its parameters, state history, log lines and, once it completed, results.

The app feeds it the job's newer records (`update_job`) from the event stream. Logs have no
events, so the screen polls them (only lines after the last seen) while the job is live, and
once more when it ends. Results are read from the output folder in a thread, only when the
daemon shares this file system; for a remote daemon the screen says they are on the server.
Cancel, retry and remove post `JobActionRequested`, which the app confirms and acts on, as it
does for the table. While the daemon is lost, the banner shows here too, and the title gives the
figures as last heard, marked so, without an ETA.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, Static
from textual.worker import get_current_worker

from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.daemon.jobs import JobRecord, JobState
from virnucpro.daemon.messages import LogLine
from virnucpro.options import OPTIONS
from virnucpro.tui import render
from virnucpro.tui.link import Abandoned, DaemonLink
from virnucpro.tui.messages import JobActionRequested
from virnucpro.tui.results import Results, read_results
from virnucpro.tui.state import DashboardState, JobRow
from virnucpro.tui.widgets.banner import ConnectionBanner
from virnucpro.tui.widgets.results_view import ResultsView

LOG_POLL_S = 1.5
# A job's options as its detail shows them: those the option table gives a label, in its order.
OPTION_LABELS = tuple((o.name, o.label) for o in OPTIONS if o.label)


def title_text(job: JobRecord, row: JobRow, heard: float | None = None) -> Text:
    """Name, state, the bar (by chunks), the sequences as figures, rate, elapsed, ETA; when the
    row is stale (the daemon lost), a mark with the time it was last heard instead of an ETA."""
    text = Text(f"Job {job.id}  ", style="bold")
    text.append(job.name, style="bold")
    text.append("  ")
    text.append_text(render.state_text(job.state))
    if row.fraction is not None or row.sequences_total is not None:
        text.append("  ")
        text.append_text(render.bar(row.fraction, 20, style=render.STATE_STYLES.get(job.state, "cyan")))
        if row.sequences_total is not None:
            text.append(f"  {row.sequences_done:,}/{row.sequences_total:,} sequences")
    if row.rate:
        text.append(f"  ·  {render.rate(row.rate, 'chunks')}")
    if row.elapsed is not None:
        text.append(f"  ·  {render.duration(row.elapsed)} elapsed")
    if row.eta is not None:
        text.append(f"  ·  ETA {render.duration(row.eta)}")
    if row.stale:
        text.append(f"\n⚠ as last heard at {render.clock_time(heard)}: possibly out of date "
                    "(no daemon)", style="bold yellow")
    if job.reason:
        text.append(f"\n{job.reason}", style="red" if job.state is JobState.FAILED else "dim")
    return text


def _option(value: object) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def parameters_table(job: JobRecord) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for i, item in enumerate(job.inputs):
        grid.add_row("inputs" if i == 0 else "", f"{item.path}  ({render.human_bytes(item.size)})")
    grid.add_row("output", job.outdir or "-")
    options = job.options
    # A job stored before the region options has none; region_min_p None is the chunk's call.
    shown = [f"{label} {_option(options[key])}" for key, label in OPTION_LABELS
             if options.get(key) is not None]
    for i in range(0, len(shown), 3):
        grid.add_row("options" if i == 0 else "", "  ·  ".join(shown[i:i + 3]))
    grid.add_row("queue", f"priority {job.priority}  ·  attempts {job.attempts}")
    grid.add_row("submitted", render.clock_time(job.created or None, date=True))
    grid.add_row("started", render.clock_time(job.started, date=True))
    grid.add_row("finished", render.clock_time(job.finished, date=True))
    return grid


def history_table(job: JobRecord) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for h in job.history:
        grid.add_row(render.clock_time(h.time), render.state_text(h.state), h.reason)
    return grid


class LogsLoaded(Message):
    def __init__(self, lines: list[LogLine]) -> None:
        super().__init__()
        self.lines = lines


class ResultsLoaded(Message):
    def __init__(self, results: Results) -> None:
        super().__init__()
        self.results = results


class JobDetailScreen(Screen):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back"),
        Binding("c", "job('cancel')", "Cancel"),
        Binding("r", "job('retry')", "Retry"),
        Binding("x,delete", "job('remove')", "Remove"),
    ]

    def __init__(self, job: JobRecord, link: DaemonLink, *, state: DashboardState, local: bool,
                 reader: Callable[[str], Results] = read_results) -> None:
        super().__init__()
        self.job = job
        self.link = link
        self.state = state
        self.local = local
        self.reader = reader
        self.log_since = 0
        self.results: Results | None = None
        self.results_for: tuple[int, float | None] | None = None  # (id, finished) it was read for
        self.ready = False  # composed and mounted: the app may feed a pushed screen before that

    @property
    def job_id(self) -> int:
        return self.job.id

    def compose(self) -> ComposeResult:
        # Kept as attributes, not queried: the app's timer may tick while the screen is torn down.
        self.banner = ConnectionBanner(classes="banner")
        self.title_view = Static(id="detail-title")
        self.params_view = Static(id="detail-params", classes="panel")
        self.history_view = Static(id="detail-history", classes="panel")
        self.results_view = ResultsView(id="detail-results", classes="panel")
        self.log_view = Log(id="detail-log", classes="panel", highlight=False)
        yield Header()
        yield self.banner
        with VerticalScroll(id="detail-body"):
            yield self.title_view
            with Horizontal(id="detail-top"):
                yield self.params_view
                yield self.history_view
            yield self.results_view
            yield self.log_view
        yield Footer()

    def on_mount(self) -> None:
        self.params_view.border_title = "parameters"
        self.history_view.border_title = "state history"
        self.results_view.border_title = "results"
        self.log_view.border_title = "log"
        self.sub_title = f"job {self.job_id}"
        self.banner.hide()  # the app shows it while the daemon is lost
        self.ready = True
        self.update_job(self.job)
        self.fetch_logs()
        self.set_interval(LOG_POLL_S, self._poll_logs)

    # -- fed by the app ----------------------------------------------------------------------

    def update_job(self, job: JobRecord) -> None:
        was_live = self.job.state.live
        self.job = job
        if not self.ready:
            return  # on_mount draws it
        self._show_title()
        self.params_view.update(parameters_table(job))
        self.history_view.update(history_table(job))
        completed = job.state is JobState.COMPLETED
        if completed and self.results_for != (job.id, job.finished):
            self.results_for = (job.id, job.finished)
            if self.local:
                self._show_results(None, "reading the output folder…")
                self.load_results(job.outdir)
            else:
                self._show_results(None, "the daemon is remote: results are on its machine")
        elif not completed:
            self.results, self.results_for = None, None
            self._show_results(None, "")
        if was_live and job.state.finished:
            self.fetch_logs()  # the last lines (completed / failed / cancelled)

    def tick(self) -> None:
        if self.ready:
            self._show_title()

    def _show_title(self) -> None:
        self.title_view.update(title_text(self.job, self.state.row(self.job), self.state.heard))

    def _show_results(self, results: Results | None, note: str) -> None:
        self.results_view.show(self.job, results, note)

    # -- requests (thread workers) -----------------------------------------------------------

    def _poll_logs(self) -> None:
        if self.job.state.live:
            self.fetch_logs()

    @work(thread=True, group="logs", exclusive=True, exit_on_error=False)
    def fetch_logs(self) -> None:
        worker = get_current_worker()
        try:
            lines = self.link.call("logs", self.job_id, since=self.log_since,
                                   cancelled=lambda: worker.is_cancelled)
        except (ClientError, DaemonUnavailable, Abandoned):
            return  # the banner says why; the next poll tries again
        # post_message, not call_from_thread: it never blocks, even while the app closes.
        self.post_message(LogsLoaded(lines))

    @on(LogsLoaded)
    def _add_logs(self, message: LogsLoaded) -> None:
        fresh = [entry for entry in message.lines if entry.n > self.log_since]
        if not fresh:
            return
        self.log_since = fresh[-1].n
        self.log_view.write_lines(f"{render.clock_time(e.time)}  {e.line}" for e in fresh)

    @work(thread=True, group="results", exclusive=True, exit_on_error=False)
    def load_results(self, outdir: str) -> None:
        try:
            results = self.reader(outdir)
        except OSError as exc:
            results = Results(outdir=outdir, error=f"could not read {outdir}: {exc}")
        self.post_message(ResultsLoaded(results))

    @on(ResultsLoaded)
    def _results_loaded(self, message: ResultsLoaded) -> None:
        self.results = message.results
        self._show_results(message.results, "")

    # -- actions --------------------------------------------------------------------------

    def action_job(self, action: str) -> None:
        self.post_message(JobActionRequested(action, self.job_id))
