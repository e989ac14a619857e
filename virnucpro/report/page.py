"""The report page: one self-contained HTML document from a `RunData` and its inline SVGs.

No network and no server: styles, the sort script and every plot sit inside the file. Every
piece of text that comes from the run (ids, paths, reasons, model names) goes through
`html.escape`; numbers are formatted here. The page reads top-down: summary (with the viral
regions by kind, or a note that the run predates them), how much is viral, how sure the model
is, how well it matches the truth (only for a run evaluated by `virnucpro evaluate`: the
figures per level from evaluation.json, a warning when the run changed since), where the
signal sits, then the table.
"""

from __future__ import annotations

from html import escape

from virnucpro.layout import OutputLayout
from virnucpro.regions import KINDS, PARTIAL, PROVIRUS, WHOLE, Region
from virnucpro.report.data import CALLS, RunData, SequenceRow, Track
from virnucpro.rollup import OTHERS, UNSCORED, VIRUS

LABELS = {VIRUS: "viral", OTHERS: "non-viral", UNSCORED: "unscored"}
KIND_HELP = {PROVIRUS: "non-viral on both sides", PARTIAL: "runs to one end",
             WHOLE: "the whole sequence"}
MAX_LISTED_REGIONS = 12  # under one track; the rest are in regions.tsv

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
 margin:0 auto;max-width:1100px;padding:16px 24px 48px;background:#fff}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;
 border-bottom:1px solid #ddd;padding-bottom:4px}
.muted{color:#666}.warning{background:#fff4ce;border:1px solid #e0b800;border-radius:6px;
 padding:10px 14px;margin:12px 0;font-weight:600}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
td.n,th.n{text-align:right}
.facts th{font-weight:500;color:#555}
.grid{display:flex;gap:40px;flex-wrap:wrap}
svg{max-width:100%;height:auto;display:block}
figure{margin:8px 0 18px}figcaption{color:#555;font-size:13px}
ul.regions{margin:2px 0 0;padding-left:18px}
.sortable th{cursor:pointer;user-select:none;background:#f5f5f7;position:sticky;top:0}
.sortable th[data-order=asc]::after{content:" \\25B2"}
.sortable th[data-order=desc]::after{content:" \\25BC"}
.call{border-radius:4px;padding:0 6px;color:#fff;font-size:12px;white-space:nowrap}
.kind{border-radius:4px;padding:0 6px;font-size:12px;white-space:nowrap}
.kind-provirus{background:#f6c343}.kind-partial{background:#d9cdef}.kind-whole{background:#c5e8e0}
.call-virus{background:#c8102e}.call-others{background:#2b6cb0}.call-unscored{background:#999}
.tablewrap{max-height:720px;overflow:auto;border:1px solid #ddd}
code{font-size:12px;word-break:break-all}
"""

# Click a header to sort by it, again to reverse. Numbers sort by data-v; blanks go last.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.order !== "asc", num = th.classList.contains("n");
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.order; });
      th.dataset.order = asc ? "asc" : "desc";
      var key = function (row) {
        var cell = row.cells[col], v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
        return num ? (v === "" ? NaN : parseFloat(v)) : v.toLowerCase();
      };
      var rows = Array.prototype.slice.call(table.tBodies[0].rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (num && isNaN(x)) return isNaN(y) ? 0 : 1;
        if (num && isNaN(y)) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
    });
  });
});
"""


def _n(x: int) -> str:
    return f"{x:,}"


def _pct(part: int, total: int) -> str:
    return f"{part / total:.1%}" if total else "-"


def _score(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _count(n: int, one: str, many: str) -> str:
    return f"{_n(n)} {one if n == 1 else many}"


def _region_rule(params: dict) -> str | None:
    """The region rule's settings as run.json gives them; None for a run without them."""
    if "region_gap" not in params:
        return None
    min_p = params.get("region_min_p")
    counts = "chunk call" if min_p is None else f"P(virus) &ge; {escape(str(min_p))}"
    return (f"by {counts}, gaps &le; {escape(str(params['region_gap']))} chunk, "
            f"&ge; {escape(str(params.get('min_region_length', '?')))} bp unless whole")


def _regions(run: RunData) -> str:
    """The regions by kind, or a note that the run predates them."""
    counts = run.regions
    if counts is None:
        return ('<p id="regions-note" class="muted">This run predates viral regions: re-score '
                "it with <code>virnucpro rescore</code> to find them.</p>")
    kinds = counts.kinds
    head = (f'<p id="regions-summary"><strong>{_count(kinds[PROVIRUS], "provirus", "proviruses")}'
            f' in {_count(counts.provirus_sequences, "sequence", "sequences")}</strong>; '
            f'{_count(counts.total, "viral region", "viral regions")} in '
            f'{_count(counts.sequences, "sequence", "sequences")} in all.</p>')
    rows = "".join(
        f'<tr id="regions-{k}"><td><span class="kind kind-{k}">{k}</span></td>'
        f'<td class="n" data-count="{kinds[k]}">{_n(kinds[k])}</td>'
        f'<td class="muted">{KIND_HELP[k]}</td></tr>' for k in KINDS)
    return (f'{head}<table id="region-counts"><thead><tr><th>region</th><th class="n">count</th>'
            f"<th></th></tr></thead><tbody>{rows}</tbody></table>")


def _summary(run: RunData) -> str:
    record = run.record
    params, inp = record.parameters, record.input
    facts = [
        ("input", f"<code>{escape(str(inp.get('source', '?')))}</code> "
                  f"({_n(int(inp.get('records', 0)))} records, {_n(int(inp.get('bases', 0)))} bp)"),
        ("model set", escape(str(record.model_set or "?"))
         + (" <strong>(tiny: random weights)</strong>" if run.tiny else "")),
        ("chunk size", f"{escape(str(params.get('chunk_size', '?')))} bp"),
        ("threshold", f"viral share &ge; {escape(str(params.get('threshold', '?')))}"),
        ("min length", f"{escape(str(params.get('min_length', '?')))} bp"),
        *([("regions", rule)] if (rule := _region_rule(params)) else []),
        ("finished", f"{escape(str(record.finished or '?'))} "
                     f"(VirNucPro {escape(str(record.virnucpro_version or '?'))})"),
        ("folder", f"<code>{escape(str(run.root.resolve()))}</code>"),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    n_seq, n_bp = run.total_sequences, sum(run.bases.values())
    counts = "".join(
        f'<tr id="count-{call}"><td><span class="call call-{call}">{LABELS[call]}</span></td>'
        f'<td class="n" data-count="{run.sequences[call]}">{_n(run.sequences[call])}</td>'
        f'<td class="n">{_pct(run.sequences[call], n_seq)}</td>'
        f'<td class="n" data-bases="{run.bases[call]}">{_n(run.bases[call])}</td>'
        f'<td class="n">{_pct(run.bases[call], n_bp)}</td></tr>' for call in CALLS)
    counts += (f'<tr><th>total</th><td class="n">{_n(n_seq)}</td><td></td>'
               f'<td class="n">{_n(n_bp)}</td><td></td></tr>')
    reasons = "".join(f"<li>{_n(k)} &times; {escape(r)}</li>" for r, k in run.unscored_reasons)
    why = (f'<p id="unscored-reasons">Why sequences went unscored:</p><ul>{reasons}</ul>'
           if reasons else "")
    # The counts first: "how much is viral" is the question a reader opens the page with.
    return ('<div class="grid"><div><table id="counts"><thead><tr><th>call</th>'
            '<th class="n">sequences</th><th class="n">%</th><th class="n">bases</th>'
            f'<th class="n">%</th></tr></thead><tbody>{counts}</tbody></table>{why}'
            f"{_regions(run)}</div>"
            f'<table class="facts">{rows}</table></div>')


def _table_row(row: SequenceRow, regions: bool) -> str:
    cells = [
        f"<td>{escape(row.sequence_id)}</td>",
        f'<td class="n" data-v="{row.length}">{_n(row.length)}</td>',
        f'<td><span class="call call-{escape(row.call)}">{escape(LABELS.get(row.call, row.call))}'
        "</span></td>",
        f'<td class="n" data-v="{row.viral_bases}">{_n(row.viral_bases)}</td>',
        f'<td class="n" data-v="{_score(row.viral_share)}">{_score(row.viral_share)}</td>',
        f'<td class="n" data-v="{_score(row.max_p_virus)}">{_score(row.max_p_virus)}</td>',
        f'<td class="n" data-v="{_score(row.mean_p_virus)}">{_score(row.mean_p_virus)}</td>',
        f'<td class="n" data-v="{row.viral_chunks}">{row.viral_chunks} / {row.scored_chunks} / '
        f"{row.chunks}</td>",
        *([f'<td class="n" data-v="{row.regions}">{row.regions}</td>'] if regions else []),
        f"<td>{escape(row.flags or row.reason)}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _table(run: RunData) -> str:
    shown = len(run.table)
    if run.table_scope == "all":
        note = (f"All {_n(shown)} sequences, longest viral signal first. Click a column to sort.")
    else:
        note = (f"This run has {_n(run.total_sequences)} sequences: the table lists only the "
                f"{_n(run.viral_total)} called viral")
        note += (f", the {_n(shown)} with the longest viral signal. " if shown < run.viral_total
                 else ". ")
        note += "Every sequence is in sequences.tsv. Click a column to sort."
    if not shown:
        return f'<p id="table-note" class="muted">{note} No sequence was called viral.</p>'
    regions = run.regions is not None
    heads = ("sequence", "length", "call", "viral signal (bp)", "viral share", "max P(virus)",
             "mean P(virus)", "viral / scored / chunks", *(("regions",) if regions else ()),
             "flags or reason")
    numeric = {1, 3, 4, 5, 6, 7} | ({8} if regions else set())
    head = "".join(f'<th class="n">{h}</th>' if i in numeric else f"<th>{h}</th>"
                   for i, h in enumerate(heads))
    body = "\n".join(_table_row(r, regions) for r in run.table)
    return (f'<p id="table-note" class="muted">{note}</p><div class="tablewrap">'
            f'<table id="sequences" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


def _region_span(r: Region) -> str:
    return (f'<li data-kind="{r.kind}" data-start="{r.start}" data-end="{r.end}">'
            f'<span class="kind kind-{r.kind}">{r.kind}</span> {_n(r.start)}&ndash;{_n(r.end)} '
            f"({_n(r.length)} bp, {r.viral_chunks} of {r.chunks} chunks viral, mean P(virus) "
            f"{_score(r.mean_p_virus)})</li>")


def _track(k: int, track: Track, svg: str) -> str:
    """One track's figure, its regions listed under it (the shaded bands, in words)."""
    listed = "".join(_region_span(r) for r in track.regions[:MAX_LISTED_REGIONS])
    more = len(track.regions) - MAX_LISTED_REGIONS
    if more > 0:
        listed += f"<li>and {_n(more)} more in regions.tsv</li>"
    caption = (f'<figcaption>Regions:<ul class="regions">{listed}</ul></figcaption>'
               if listed else "")
    return (f'<figure class="track" id="track-{k}" data-sequence-id="'
            f'{escape(track.row.sequence_id)}">{svg}{caption}</figure>')


EVALUATION_COLUMNS = (("accuracy", "accuracy"), ("precision", "precision"),
                      ("recall", "recall"), ("specificity", "specificity"), ("f1", "F1"),
                      ("mcc", "MCC"), ("auroc", "AUROC"), ("average_precision", "AP"))


def _metric(entry: dict, key: str) -> str:
    value = entry.get("metrics", {}).get(key)
    if value is None:
        why = escape(str(entry.get("undefined", {}).get(key, "not computed")))
        return f'<td class="n muted" data-metric="{key}" title="{why}">&ndash;</td>'
    return f'<td class="n" data-metric="{key}" data-v="{value!r}">{value:.3f}</td>'


def _evaluation_row(level: str, entry: dict) -> str:
    c = entry.get("confusion", {})
    left = (f"{_n(int(entry.get('unscored', 0)))} unscored, "
            f"{_n(int(entry.get('without_truth', 0)))} without truth")
    cells = [f"<td>{escape(level)}</td>", f'<td class="n" data-n="{int(entry.get("n", 0))}">'
             f'{_n(int(entry.get("n", 0)))}</td>',
             f'<td class="n">{_n(int(entry.get("positives", 0)))} / '
             f'{_n(int(entry.get("negatives", 0)))}</td>',
             *(f'<td class="n" data-{k}="{int(c.get(k, 0))}">{_n(int(c.get(k, 0)))}</td>'
               for k in ("tp", "fp", "tn", "fn")),
             *(_metric(entry, key) for key, _ in EVALUATION_COLUMNS),
             f'<td class="muted">{left}</td>']
    return f'<tr id="evaluation-{escape(level)}">' + "".join(cells) + "</tr>"


def _named_ids(entry: dict, what: str) -> str:
    count = int(entry.get("count", 0)) if isinstance(entry, dict) else 0
    if not count:
        return ""
    first = [escape(str(i)) for i in entry.get("first", [])]
    more = f" and {_n(count - len(first))} more" if count > len(first) else ""
    return f"{_n(count)} {what}: <code>{', '.join(first)}</code>{more}."


def _evaluation_stale(run: RunData, ev: dict) -> str | None:
    """Why the evaluation no longer describes the run's tables, or None."""
    then, params = ev.get("run", {}), run.record.parameters
    if then.get("finished") != run.record.finished:
        return "the run was made again after this evaluation"
    if then.get("rescored") != len(run.record.rescored):
        return (f"the run was rescored after this evaluation (threshold "
                f"{escape(str(then.get('threshold')))} then, "
                f"{escape(str(params.get('threshold')))} now)")
    return None


def _evaluation(run: RunData, plots: dict[str, str]) -> str:
    """The Evaluation section: the figures per level, the unmatched ids, the two curves."""
    ev = run.evaluation or {}
    truth, levels = ev.get("truth", {}), ev.get("levels", {})
    stale = _evaluation_stale(run, ev)
    warning = (f'<p class="warning" id="evaluation-stale">These figures are out of date: '
               f"{stale}. Run <code>virnucpro evaluate</code> again.</p>" if stale else "")
    files = ", ".join(f"<code>{escape(str(f.get('path', '?')))}</code>"
                      + (f" ({escape(str(f['label']))})" if f.get("label") else "")
                      for f in truth.get("files", []))
    threshold = escape(str(ev.get("run", {}).get("threshold", "?")))
    intro = (f'<p class="muted">Against the truth in {files}: '
             f"{_n(int(truth.get('sequences', 0)))} labelled sequences "
             f"({_n(int(truth.get('virus', 0)))} viral, {_n(int(truth.get('others', 0)))} not); "
             "positive = virus. The counts and the rates are of the calls; AUROC, AP (average "
             "precision) and the curves rank the scores: a frame's P(virus), a chunk's and a "
             "sequence's max P(virus). A sequence's call is the share rule (viral chunks / "
             f"scored chunks &ge; {threshold}), not its score. Unscored rows and rows without "
             "truth are left out.</p>")
    heads = ("level", "n", "viral / not", "TP", "FP", "TN", "FN",
             *(label for _, label in EVALUATION_COLUMNS), "left out")
    head = "".join(f"<th>{h}</th>" if h in ("level", "left out") else f'<th class="n">{h}</th>'
                   for h in heads)
    rows = "".join(_evaluation_row(level, levels[level])
                   for level in ("frame", "chunk", "sequence") if isinstance(levels.get(level), dict))
    unmatched = " ".join(filter(None, (
        _named_ids(ev.get("sequences_without_truth", {}), "sequences of the run have no truth"),
        _named_ids(ev.get("truth_ids_not_in_run", {}), "truth ids are not in the run"))))
    figures = "".join(f'<figure class="plot" id="plot-{name}">{plots[name]}</figure>'
                      for name in ("evaluation-roc", "evaluation-pr") if name in plots)
    return (f'{warning}{intro}<table id="evaluation-metrics"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            + (f'<p id="evaluation-unmatched">{unmatched}</p>' if unmatched else "")
            + f'<div class="grid">{figures}</div>'
            + f'<p class="muted">From <code>{escape(OutputLayout.EVALUATION)}</code>, written '
              f"{escape(str(ev.get('evaluated', '?')))}.</p>")


def compose_page(run: RunData, plots: dict[str, str], top: int,
                 writer: str = "virnucpro report") -> str:
    """The whole HTML page; `plots` maps "calls", "scores" and "track-K" to inline SVG;
    `writer` is the command named in the footer."""
    name = escape(str(run.record.input.get("name", run.root.name)))
    warning = ('<p class="warning" id="tiny-warning">Model set <code>tiny</code>: seeded random '
               "weights for tests and demos. These calls mean nothing.</p>" if run.tiny else "")
    tracks = [_track(k, t, plots[f"track-{k}"]) for k, t in enumerate(run.tracks, 1)]
    evaluation = ("" if run.evaluation is None else
                  f'<h2 id="evaluation">Evaluation</h2>\n{_evaluation(run, plots)}')
    if tracks:
        tracks_intro = (f"The {len(tracks)} sequence(s) with the longest viral signal (bases "
                        f"covered by chunks called viral; at most {top} shown): each chunk's "
                        "highest P(virus), coloured by its call; grey: unscored chunks; dotted: 0.5.")
        if run.regions is not None:
            tracks_intro += (" Light bands behind the bars: the viral regions, by kind "
                             "(provirus, partial, whole).")
    elif top == 0:
        tracks_intro = "No tracks were asked for (--top 0)."
    else:
        tracks_intro = "No chunk was called viral: there is no viral signal to place."
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>VirNucPro report: {name}</title><style>{_STYLE}</style></head>
<body>
<h1>VirNucPro report: {name}</h1>
{warning}
<h2 id="summary">Summary</h2>
{_summary(run)}
<h2 id="calls">How much is viral</h2>
<figure class="plot" id="plot-calls">{plots["calls"]}</figure>
<h2 id="scores">How sure the model is</h2>
<p class="muted">Scored sequences only. A sequence is called viral when its viral share reaches
the threshold (dashed line).</p>
<figure class="plot" id="plot-scores">{plots["scores"]}</figure>
{evaluation}
<h2 id="tracks">Where the signal sits</h2>
<p class="muted">{tracks_intro}</p>
{"".join(tracks)}
<h2 id="table">Sequences</h2>
{_table(run)}
<p class="muted">Written by <code>{escape(writer)}</code> from the files of this folder.</p>
<script>{_SCRIPT}</script>
</body></html>
"""
