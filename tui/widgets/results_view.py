"""A job's results on its detail screen: calls counted (viral / non-viral / unscored), the viral
regions by kind (for a run that has them), a histogram of the sequences' max P(virus), the top
viral calls and the report's path (the output folder is among the parameters, above it).

`show(job, results, note)` draws from the daemon's counts (`progress.counts`, known even for a
remote daemon) and, when the output could be read here, from `results.Results`.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from virnucpro.daemon.client_views import regions_summary
from virnucpro.daemon.jobs import JobRecord, JobState
from virnucpro.tui import render
from virnucpro.tui.results import Results

HIST_WIDTH = 24


def counts_line(job: JobRecord, results: Results | None) -> Text:
    daemon = job.progress.counts
    if results is not None and results.sequences:
        viral, others, unscored = (results.counts.get(k, 0) for k in ("virus", "others", "unscored"))
    else:
        viral, others, unscored = (daemon.get(f"sequences_{k}", 0)
                                   for k in ("virus", "others", "unscored"))
    text = Text()
    text.append(f"{viral:,} viral", style="bold magenta")
    text.append("  ·  ")
    text.append(f"{others:,} non-viral", style="bold green")
    text.append("  ·  ")
    text.append(f"{unscored:,} unscored", style="bold yellow" if unscored else "dim")
    total = viral + others + unscored
    text.append(f"  of {total:,} sequences", style="dim")
    return text


def regions_line(job: JobRecord, results: Results | None) -> Text | None:
    """The viral regions in `virnucpro show`'s words, from the folder when it was read (a
    folder without regions.tsv: none), else from the daemon's counts."""
    read = results is not None and not results.error and results.sequences
    summary = regions_summary((results.regions or {}) if read else job.progress.counts)
    if summary is None:
        return None
    text = Text("regions  ", style="dim")
    text.append(summary, style="bold")
    return text


def top_table(results: Results) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold", title="top viral calls",
                  title_justify="left", title_style="dim")
    table.add_column("sequence", max_width=28, no_wrap=True, overflow="ellipsis")
    table.add_column("length", justify="right")
    table.add_column("viral share", justify="right")
    table.add_column("max P(virus)", justify="right")
    for call in results.top:
        sid = f"{call.folder}/{call.sequence_id}" if call.folder else call.sequence_id
        table.add_row(sid, f"{call.length:,}", f"{call.viral_share:.2f}", f"{call.max_p_virus:.3f}")
    if not results.top:
        table.add_row(Text("no viral call", style="dim"), "", "", "")
    return table


def done_line(job: JobRecord) -> str:
    """What a stopped (failed, cancelled) job had done: a retry resumes from there."""
    p = job.progress
    if p.chunks_total is None:
        return "stopped before any scoring"
    share = job.share_done() or 0.0
    seqs = f", {p.sequences_done:,}/{p.sequences_total:,} sequences" if p.sequences_total else ""
    return (f"{p.chunks_done:,} of {p.chunks_total:,} chunks scored ({int(share * 100)}%{seqs}); "
            "retry (r) resumes from there")


def results_body(job: JobRecord, results: Results | None, note: str) -> RenderableType:
    state = job.state
    if state is not JobState.COMPLETED:
        msg = {JobState.FAILED: f"failed: {job.reason or 'see the log'}",
               JobState.CANCELLED: "cancelled",
               JobState.CANCELLING: "cancelling…"}.get(state, "results appear when the job completes")
        text = Text(msg, style="red" if state is JobState.FAILED else "dim")
        if state.finished:
            text.append(f"\n{done_line(job)}", style="dim")
        return text
    parts: list[RenderableType] = [counts_line(job, results)]
    if (regions := regions_line(job, results)) is not None:
        parts.append(regions)
    if results is not None and not results.error:
        grid = Table.grid(padding=(0, 4))
        grid.add_column()
        grid.add_column()
        hist = Text("max P(virus) per sequence\n", style="dim")
        hist.append_text(render.histogram(results.histogram, results.edges, HIST_WIDTH))
        grid.add_row(hist, top_table(results))
        parts.append(grid)
    elif note or (results is not None and results.error):
        parts.append(Text(note or results.error, style="dim italic"))
    for report in results.reports if results is not None else []:
        line = Text("report  ", style="dim")
        line.append(report, style="underline")
        parts.append(line)
    return Group(*parts)


class ResultsView(Static):
    def show(self, job: JobRecord, results: Results | None, note: str = "") -> None:
        self.update(results_body(job, results, note))
