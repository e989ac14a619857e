"""The report's figures, drawn with matplotlib's object API and rendered to SVG or PNG.

Each `*_figure` function takes the records of `report.data` and returns a `Figure`; no pyplot,
so no global backend is chosen and nothing opens a window (savefig picks the Agg or SVG
canvas from the format). Huge runs stay fast: scores are histograms, and a track bins its
chunks into at most `MAX_BARS` bars; a track's viral regions are light bands behind them. An
evaluated run adds its ROC and precision-recall curves, one line per level (evaluation.json
holds at most about a thousand points per curve). Import this module only when drawing:
matplotlib is slow to import and `virnucpro --help` must stay instant.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import EngFormatter, MaxNLocator, PercentFormatter

from virnucpro.regions import KINDS, PARTIAL, PROVIRUS, WHOLE, Region
from virnucpro.report.data import CALLS, Chunk, RunData, Track
from virnucpro.rollup import OTHERS, UNSCORED, VIRUS

COLORS = {VIRUS: "#c8102e", OTHERS: "#2b6cb0", UNSCORED: "#b5b5b5"}
LABELS = {VIRUS: "viral", OTHERS: "non-viral", UNSCORED: "unscored"}
# Region bands: light, and apart from the bars' red and blue so that a bar stays readable on
# top of one. Amber for the provirus, the kind a reader looks for.
REGION_COLORS = {PROVIRUS: "#f6c343", PARTIAL: "#b39ddb", WHOLE: "#9fd8cb"}
REGION_ALPHA = 0.45
MAX_BARS = 800  # a wider track is binned: its plot area is about 830 pixels across
PNG_DPI = 200  # print quality for --plots; the page embeds SVG
FIG_WIDTH = 11.0  # inches: the width of the page (1,056 px at 96 px per inch)
_BINS = np.linspace(0.0, 1.0, 21)
# The evaluation's levels: apart from the calls' red and blue, which mean virus and others.
LEVEL_COLORS = {"frame": "#9a6fb0", "chunk": "#e08a1e", "sequence": "#1d1d1f"}
CURVE_WIDTH = 5.2  # inches: two curves side by side fit the page's width


def calls_figure(run: RunData) -> Figure:
    """How much is viral: the share of sequences and of bases per call, as two stacked bars."""
    fig = Figure(figsize=(FIG_WIDTH, 2.1))
    # Fixed margins, not layout="constrained": that layout draws every figure twice more.
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.16, top=0.8)
    ax = fig.subplots()
    for y, counts in enumerate((run.sequences, run.bases)):
        total = sum(counts.values())
        left = 0.0
        for call in CALLS:
            share = counts[call] / total if total else 0.0
            ax.barh(y, share, left=left, height=0.6, color=COLORS[call],
                    label=LABELS[call] if y == 0 else None)
            if share >= 0.06:  # a label in a thinner bar would spill over its neighbours
                ax.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center",
                        color="white", fontsize=9, fontweight="bold")
            left += share
    ax.set_yticks([0, 1], ["sequences", "bases"])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    return fig


def scores_figure(run: RunData) -> Figure:
    """How sure the model is: histograms of viral share and max P(virus) over scored sequences,
    stacked by call, with the threshold on the viral share."""
    fig = Figure(figsize=(FIG_WIDTH, 3.0))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.95, wspace=0.25)
    axes = fig.subplots(1, 2)
    threshold = run.record.threshold
    viral = run.scored_is_viral
    panels = ((run.viral_share, "viral share (viral chunks / scored chunks)"),
              (run.max_p_virus, "max P(virus) over the sequence's chunks"))
    for ax, (values, xlabel) in zip(axes, panels, strict=True):
        ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("sequences")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.spines[["top", "right"]].set_visible(False)
        if not len(values):
            ax.text(0.5, 0.5, "no scored sequence", ha="center", va="center",
                    transform=ax.transAxes, color="#666")
            ax.set_yticks([])
            continue
        ax.hist([values[~viral], values[viral]], bins=_BINS, stacked=True,
                color=[COLORS[OTHERS], COLORS[VIRUS]], label=[LABELS[OTHERS], LABELS[VIRUS]])
    axes[0].axvline(threshold, color="#222", linestyle="--", linewidth=1)
    axes[0].annotate(f"threshold {threshold:g}", (threshold, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(3, -2), textcoords="offset points", va="top", fontsize=8)
    if len(run.viral_share):
        axes[1].legend(frameon=False, fontsize=8, loc="upper left")
    return fig


def bin_chunks(chunks: Sequence[Chunk], length: int, max_bars: int = MAX_BARS
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Bars of a track: edges (0-based bp, len n+1), heights and calls (len n).

    Consecutive chunks are grouped k at a time so that n <= max_bars. A group's height is the
    mean max P(virus) of its scored chunks and its call the majority one (virus on a tie), so
    that scattered viral chunks do not paint a whole bacterial contig red; with k = 1 a bar
    is exactly its chunk.
    """
    ordered = sorted(chunks, key=lambda c: c.start)
    k = max(1, math.ceil(len(ordered) / max_bars))
    groups = [ordered[i:i + k] for i in range(0, len(ordered), k)]
    edges = [g[0].start - 1 for g in groups] + [max(length, ordered[-1].end if ordered else 0)]
    heights, calls = [], []
    for group in groups:
        scored = [c for c in group if c.call != UNSCORED]
        viral = sum(c.call == VIRUS for c in scored)
        heights.append(sum(c.max_p_virus or 0.0 for c in scored) / len(scored) if scored else 0.0)
        calls.append(UNSCORED if not scored else VIRUS if 2 * viral >= len(scored) else OTHERS)
    return np.asarray(edges, dtype=float), np.asarray(heights, dtype=float), calls


def track_figure(track: Track, max_bars: int = MAX_BARS) -> Figure:
    """Where the signal sits: the chunks' max P(virus) along the sequence, coloured by call;
    unscored chunks are a grey band, each viral region a light band by kind behind the bars."""
    row = track.row
    edges, heights, calls = bin_chunks(track.chunks, row.length, max_bars)
    fig = Figure(figsize=(FIG_WIDTH, 1.9))
    fig.subplots_adjust(left=0.08, right=0.87, bottom=0.17, top=0.84)
    ax = fig.subplots()
    _shade_regions(ax, track.regions, max(row.length, edges[-1]))
    is_call = {call: np.array([c == call for c in calls], dtype=bool) for call in CALLS}
    # One step polygon per call rather than a rectangle per chunk, added without autolim
    # (the limits are set below): ax.stairs and ax.bar update the data limits vertex by
    # vertex, which took seconds on a 10,000-chunk contig.
    for call, values, alpha in ((UNSCORED, np.where(is_call[UNSCORED], 1.0, 0.0), 0.35),
                                (OTHERS, np.where(is_call[OTHERS], heights, 0.0), 1.0),
                                (VIRUS, np.where(is_call[VIRUS], heights, 0.0), 1.0)):
        ax.add_collection(PolyCollection([_step_outline(edges, values)], facecolors=COLORS[call],
                                         alpha=alpha, linewidths=0, label=LABELS[call]),
                          autolim=False)
    ax.axhline(0.5, color="#444", linestyle=":", linewidth=0.8)
    ax.set_xlim(0, max(row.length, edges[-1]))
    # Room above 1 for the regions' strips; the axis itself still reads 0-1.
    ax.set_ylim(0, 1.1 if track.regions else 1.0)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.spines["left"].set_bounds(0, 1)
    ax.set_ylabel("max P(virus)", fontsize=8)
    ax.xaxis.set_major_formatter(EngFormatter(unit="b"))
    ax.spines[["top", "right"]].set_visible(False)
    per_bar = math.ceil(len(track.chunks) / max_bars) if len(track.chunks) > max_bars else 1
    binned = f", {per_bar} chunks per bar: mean score, majority call" if per_bar > 1 else ""
    # parse_math=False: an id with two '$' must not be typeset as mathematics.
    ax.set_title(f"{row.sequence_id}  ({row.length:,} bp, {row.viral_bases:,} bp viral signal, "
                 f"call: {row.call}{binned})", fontsize=9, loc="left", parse_math=False)
    handles, _labels = ax.get_legend_handles_labels()
    kinds = {r.kind for r in track.regions}
    # Only the kinds this track has: a legend entry for a band that is not there misleads.
    handles += [Patch(facecolor=REGION_COLORS[k], label=f"{k} region")
                for k in KINDS if k in kinds]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
              fontsize=7)
    return fig


def _levels(evaluation: dict) -> list[tuple[str, dict]]:
    levels = evaluation.get("levels", {})
    return [(name, levels[name]) for name in LEVEL_COLORS if isinstance(levels.get(name), dict)]


def _curve_axes(xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(CURVE_WIDTH, 3.6))
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.96)
    ax = fig.subplots()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _curve_label(level: str, entry: dict, key: str, name: str) -> str:
    value = entry.get("metrics", {}).get(key)
    if value is None:
        return f"{level}: {name} undefined ({entry.get('undefined', {}).get(key, 'no data')})"
    return f"{level}: {name} {value:.3f} (n = {int(entry.get('n', 0)):,})"


def roc_figure(evaluation: dict) -> Figure:
    """ROC curves of an evaluation (virnucpro.evaluate), one line per level, AUROC in the
    legend; the diagonal is chance. A level with one class only has its reason instead."""
    fig, ax = _curve_axes("false positive rate (1 - specificity)", "true positive rate (recall)")
    ax.plot([0, 1], [0, 1], color="#999", linestyle=":", linewidth=0.8)
    for level, entry in _levels(evaluation):
        curve = entry.get("roc")
        x, y = (curve["fpr"], curve["tpr"]) if curve else ([], [])
        ax.plot(x, y, color=LEVEL_COLORS[level], linewidth=1.5,
                label=_curve_label(level, entry, "auroc", "AUROC"))
    ax.legend(loc="lower right", frameon=False, fontsize=7.5)
    return fig


def pr_figure(evaluation: dict) -> Figure:
    """Precision-recall curves of an evaluation, one line per level, average precision in
    the legend; a dotted line at each level's share of viral rows (a random ranking)."""
    fig, ax = _curve_axes("recall", "precision")
    for level, entry in _levels(evaluation):
        color = LEVEL_COLORS[level]
        curve = entry.get("precision_recall")
        x, y = (curve["recall"], curve["precision"]) if curve else ([], [])
        # A step down at each threshold: precision holds over the recall it added (the sum
        # that average precision is); the first step starts at recall 0.
        ax.plot([0.0, *x] if x else x, [y[0], *y] if y else y, color=color, linewidth=1.5,
                drawstyle="steps-pre", label=_curve_label(level, entry, "average_precision",
                                                          "AP"))
        if curve and entry.get("n"):
            ax.axhline(entry.get("positives", 0) / entry["n"], color=color, linestyle=":",
                       linewidth=0.8, alpha=0.8)
    ax.legend(loc="lower left", frameon=False, fontsize=7.5)
    return fig


def _shade_regions(ax: Axes, regions: Sequence[Region], length: float) -> None:
    """Each region's span, [start - 1, end] in the track's 0-based coordinates: a light band
    behind the bars, and a solid strip above them (y 1.02-1.1) labelled by kind where it is
    wide enough. The strip is there because real viral chunks score near 1 and would hide
    the band. Its gid (`region-N-KIND`, and `...-strip`) names each in the SVG."""
    for r in regions:
        x, width, color = r.start - 1, r.end - r.start + 1, REGION_COLORS[r.kind]
        band = Rectangle((x, 0.0), width, 1.0, facecolor=color, alpha=REGION_ALPHA,
                         linewidth=0, zorder=0)
        band.set_gid(f"region-{r.number}-{r.kind}")
        strip = Rectangle((x, 1.02), width, 0.08, facecolor=color, linewidth=0, zorder=2)
        strip.set_gid(f"region-{r.number}-{r.kind}-strip")
        ax.add_patch(band)
        ax.add_patch(strip)
        if length and width / length >= 0.06:  # a narrower strip has no room for the word
            ax.text(x + width / 2, 1.06, r.kind, ha="center", va="center", fontsize=6.5,
                    color="#333", zorder=3, clip_on=True)


def _step_outline(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Vertices of the filled step curve `values` over `edges`, closed along y = 0."""
    x = np.repeat(edges, 2)[1:-1]
    y = np.repeat(values, 2)
    return np.column_stack([np.r_[edges[0], x, edges[-1]], np.r_[0.0, y, 0.0]])


def render(fig: Figure, fmt: str, name: str) -> bytes:
    """The figure as SVG text or PNG bytes.

    `name` salts the SVG's hashed element ids: a fixed salt (rather than matplotlib's random
    one) makes the same run give the same file.
    """
    buf = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.hashsalt": f"virnucpro-{name}", "svg.fonttype": "path"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
    elif fmt == "png":
        fig.savefig(buf, format="png", dpi=PNG_DPI, facecolor="white")
    else:
        raise ValueError(f"unknown plot format {fmt!r}")
    return buf.getvalue()


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def inline_svg(svg: bytes, prefix: str) -> str:
    """SVG text fit to sit inside an HTML page with other SVGs: without its XML declaration
    and doctype, every element id (and every reference to one) prefixed with `prefix`.

    Each matplotlib SVG names its groups figure_1, axes_1... and its font glyphs
    DejaVuSans-31...; inlined side by side they would share ids, which HTML forbids.
    """
    text = svg.decode("utf-8")
    text = text[text.index("<svg"):]
    ids = set(_ID.findall(text))
    text = _ID.sub(lambda m: f'id="{prefix}-{m[1]}"', text)
    return _REF.sub(lambda m: m[1] + (f"{prefix}-{m[2]}" if m[2] in ids else m[2]), text)
