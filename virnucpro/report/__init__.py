"""Reports of finished runs: one self-contained HTML page, and the same plots as files.

`write_report(outdir)` is the one entry point (the CLI, `predict` and later the daemon call
it): it reads the run (`data`), draws the figures (`plots`, matplotlib imported only here)
and composes the page (`page`). The page is written atomically, so a reader never sees half
of it. A folder that does not hold a completed run raises `OutputError`. A folder with an
evaluation.json (`virnucpro evaluate`) gets an Evaluation section and its two curves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro.layout import OutputLayout

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from virnucpro.report.data import RunData

log = logging.getLogger(__name__)

DEFAULT_TOP = 10
DEFAULT_MAX_ROWS = 5000


def write_report(outdir: Path | str, html_path: Path | str | None = None, *,
                 top: int = DEFAULT_TOP, plots_dir: Path | str | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS, writer: str = "virnucpro report") -> Path:
    """Write the report of the finished run in `outdir`; return the page's path.

    `writer`: the command the page's footer names as its author (`predict` writes it at the
    end of a run, `rescore` and `evaluate` rewrite it, `virnucpro report` on demand).

    `html_path` defaults to `outdir/report.html`. `top`: how many sequences get a track.
    `plots_dir`: also write every plot there as PNG and SVG. `max_rows`: a run with more
    sequences than this lists only those called viral, at most `max_rows` of them.
    """
    from virnucpro.errors import OutputError
    from virnucpro.report import plots
    from virnucpro.report.data import read_run
    from virnucpro.report.page import compose_page

    outdir = Path(outdir)
    run = read_run(outdir, top=top, max_rows=max_rows)
    figures = {"calls": plots.calls_figure(run), "scores": plots.scores_figure(run)}
    for k, track in enumerate(run.tracks, 1):
        figures[f"track-{k}"] = plots.track_figure(track)
    if run.evaluation is not None:
        figures["evaluation-roc"] = plots.roc_figure(run.evaluation)
        figures["evaluation-pr"] = plots.pr_figure(run.evaluation)
    inline = {name: plots.inline_svg(plots.render(fig, "svg", name), f"svg-{name}")
              for name, fig in figures.items()}
    target = Path(html_path) if html_path is not None else outdir / OutputLayout.REPORT
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if plots_dir is not None:
            _write_plot_files(Path(plots_dir), figures, run)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(compose_page(run, inline, top, writer), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a half-written page is nobody's file
            tmp.unlink()
        raise OutputError(f"cannot write the report: {exc.strerror or exc}",
                          path=exc.filename or target) from exc
    log.info("report written to %s", target)
    return target


def _plot_file_stem(name: str, run_tracks: list[str]) -> str:
    """File name (without suffix) of a plot: `calls`, `scores`, `track-01-<id>`,
    `evaluation-roc`, `evaluation-pr`."""
    if not name.startswith("track-"):
        return name
    k = int(name.split("-")[1])
    # Ids may hold / or other characters a file name cannot: keep a safe, readable part.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_tracks[k - 1]).strip("._")[:60]
    return f"track-{k:02d}-{safe}" if safe else f"track-{k:02d}"


def _write_plot_files(folder: Path, figures: dict[str, Figure], run: RunData) -> None:
    from virnucpro.report.plots import render

    folder.mkdir(parents=True, exist_ok=True)
    ids = [t.row.sequence_id for t in run.tracks]
    for name, fig in figures.items():
        stem = _plot_file_stem(name, ids)
        for fmt in ("svg", "png"):
            (folder / f"{stem}.{fmt}").write_bytes(render(fig, fmt, name))
