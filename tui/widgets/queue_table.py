"""The queue: one row per job, live ones first, finished ones below them.

`show(rows)` takes `state.JobRow`s in display order. The bar, the rate and the ETA are by
chunks (the work unit the daemon counts before scoring); the sequences column is figures only.
When the order is unchanged it updates cells in place, so the cursor stays on its job while
progress ticks; otherwise it rebuilds and puts the cursor back on the same job. Enter opens
the job, `c` cancels, `r` retries, `x` (or Delete) removes a finished one: the table only posts
the requests (messages); the app asks for confirmation and acts on them.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from virnucpro.daemon.jobs import JobState
from virnucpro.tui import render
from virnucpro.tui.messages import JobActionRequested, JobOpened
from virnucpro.tui.state import JobRow

COLUMNS = (("id", "id", 4), ("name", "name", 22), ("state", "state", 10),
           ("progress", "progress", 15), ("seqs", "sequences", 13), ("rate", "chunk rate", 10),
           ("elapsed", "elapsed", 7), ("eta", "ETA", 7))
BAR_WIDTH = 10
BAR_STYLES = {JobState.COMPLETED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
              JobState.CANCELLING: "magenta", JobState.LOADING: "yellow"}


def cells(row: JobRow) -> dict[str, object]:
    name = row.name if len(row.name) <= 22 else row.name[:21] + "…"
    total = row.sequences_total
    seqs = "-" if total is None else f"{row.sequences_done:,}/{total:,}"
    return {
        "id": Text(str(row.id), justify="right"),
        "name": name,
        "state": render.state_text(row.state),
        "progress": render.bar(row.fraction, BAR_WIDTH, style=BAR_STYLES.get(row.state, "cyan")),
        "seqs": Text(seqs, justify="right"),
        "rate": Text(render.rate(row.rate), justify="right"),
        "elapsed": Text(render.duration(row.elapsed), justify="right"),
        "eta": Text(render.duration(row.eta) if row.eta is not None else "-", justify="right"),
    }


class QueueTable(DataTable):
    BINDINGS = [
        Binding("enter", "open", "Detail"),
        Binding("c", "job('cancel')", "Cancel"),
        Binding("r", "job('retry')", "Retry"),
        Binding("x,delete", "job('remove')", "Remove"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.order: list[int] = []
        self.shown: dict[int, dict[str, object]] = {}  # what each row's cells show now

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def selected(self) -> int | None:
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.order[self.cursor_row]

    def select(self, job_id: int) -> None:
        if job_id in self.order:
            self.move_cursor(row=self.order.index(job_id))

    def show(self, rows: list[JobRow]) -> None:
        order = [r.id for r in rows]
        fresh = {r.id: cells(r) for r in rows}
        if order == self.order:
            # Only what changed: the clock ticks every second, and a long history of finished
            # jobs would otherwise be redrawn cell by cell each time.
            for job_id, row_cells in fresh.items():
                old = self.shown.get(job_id, {})
                for key, value in row_cells.items():
                    if old.get(key) != value:
                        self.update_cell(str(job_id), key, value)
            self.shown = fresh
            return
        keep = self.selected
        self.clear()
        for job_id, row_cells in fresh.items():
            self.add_row(*row_cells.values(), key=str(job_id))
        self.order, self.shown = order, fresh
        if keep is not None and keep in order:
            self.select(keep)

    # -- actions: requests only; the app decides -------------------------------------------------

    def action_open(self) -> None:
        if self.selected is not None:
            self.post_message(JobOpened(self.selected))

    def action_job(self, action: str) -> None:
        if self.selected is not None:
            self.post_message(JobActionRequested(action, self.selected))
