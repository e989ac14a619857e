"""How well a finished run's calls and scores match known labels: `virnucpro evaluate`.

The truth is read by `read_truth_table` (a TSV of sequence id and label) or `read_truth_files`
(FASTA/FASTQ files of viral and of other sequences, ids being the header's first word, renames
off). Labels, case-insensitive: `virus`/`viral`/`1`/`true` and `others`/`non-viral`/
`nonviral`/`0`/`false`; blank lines and lines starting with '#' are skipped; the first line is
a header when its label is none of these words; any other line that is not exactly `id<TAB>
label` is an InputError naming it, and so is an id given both labels (the same id twice with
the same label is accepted). Positive = virus.

`evaluate_run` streams frames.tsv, chunks.tsv and sequences.tsv once each and keeps only a
float32 score and two bools per scored row with truth (6 bytes a row). Per level:
- frame: its sequence's truth; score p_virus; call argmax (a tie goes to others);
- chunk: score max_p_virus over its frames; call virus when max P(virus) >= max P(others);
- sequence: score max_p_virus (the AUROC and the curves rank it), while the call is the run's
  share rule: viral chunks / scored chunks >= the run's threshold.
Rows of sequences without truth are left out (`without_truth`), and so are unscored rows (an
empty score: `unscored`, also counted by truth). The confusion matrix and accuracy, precision,
recall, specificity, F1 and MCC come from the calls; AUROC (Mann-Whitney: ties count one half),
average precision (sklearn's step sum) and the ROC and precision-recall curves from the scores.
A figure that is undefined (no predicted positives, one class only) is None, with its reason in
`undefined`. The curves are exact up to `CURVE_POINTS` scores per class, else taken at that many
quantiles of each class (every step then moves FPR or TPR by at most about 1/CURVE_POINTS).
`evaluate` writes the result to OUTDIR/evaluation.json (atomically) and rewrites the report.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from virnucpro import __version__
from virnucpro.errors import InputError, OutputError
from virnucpro.layout import OutputLayout, write_json_atomic
from virnucpro.report.data import read_columns
from virnucpro.rollup import OTHERS, UNSCORED, VIRUS
from virnucpro.run_record import read_finished_run
from virnucpro.seqfile import check_path, file_sha256, open_binary, read_fasta, scan_fasta
from virnucpro.table_text import format_scores

log = logging.getLogger(__name__)

VIRUS_WORDS = ("virus", "viral", "1", "true")
OTHERS_WORDS = ("others", "non-viral", "nonviral", "0", "false")
_LABELS = {**dict.fromkeys(VIRUS_WORDS, True), **dict.fromkeys(OTHERS_WORDS, False)}
LEVELS = ("frame", "chunk", "sequence")
CURVE_POINTS = 500  # per class; bounds each curve to about 2 * 500 points
MAX_NAMED = 20  # ids named of the sequences without truth and of the truth ids not in the run
FORMAT = 1  # of evaluation.json


@dataclass(frozen=True)
class Truth:
    """Known labels: sequence id -> True for virus; `source` says where they were read."""

    labels: dict[str, bool]
    source: dict


def _label_of(word: str) -> bool | None:
    return _LABELS.get(word.strip().lower())


def read_truth_table(path: str | Path) -> Truth:
    """The labels of a TSV of `sequence id<TAB>label` lines (plain or compressed)."""
    shown = str(path)
    path = check_path(path, shown)
    labels: dict[str, bool] = {}
    header = None
    seen_data = False
    for number, line in _text_lines(path, shown):
        text = line.rstrip("\r\n")
        if not text.strip() or text.startswith("#"):
            continue
        fields = [f.strip() for f in text.split("\t")]
        if len(fields) != 2:
            raise InputError(f"{len(fields)} tab-separated field(s), not 2 (the sequence id "
                             "and its label)", path=shown, line=number)
        sid, word = fields
        if not sid:
            raise InputError("no sequence id before the label", path=shown, line=number)
        first = not seen_data and header is None
        label = _label_of(word)
        if label is None:
            if first:  # a header line: its label field is no label word
                header = text
                continue
            raise InputError(f"label {word!r} is none of {', '.join(VIRUS_WORDS)} (viral) or "
                             f"{', '.join(OTHERS_WORDS)} (not viral)", path=shown, line=number)
        seen_data = True
        if labels.setdefault(sid, label) != label:
            earlier = _first_line_of(path, shown, sid)
            raise InputError(f"labelled {_word(label)} here but {_word(not label)} on line "
                             f"{earlier}", path=shown, line=number, record_id=sid)
    if not labels:
        raise InputError("no labelled sequence", path=shown)
    return Truth(labels, {"kind": "table", "header": header,
                          "files": [{"path": str(path.resolve()), "sha256": file_sha256(path)}],
                          **_tally(labels)})


def _text_lines(path: Path, shown: str) -> Iterator[tuple[int, str]]:
    try:
        with open_binary(path) as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise InputError("not UTF-8 text", path=shown, line=number) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=shown) from exc


def _first_line_of(path: Path, shown: str, sid: str) -> int | None:
    """The line that first names `sid` (read again only to word an error)."""
    for number, line in _text_lines(path, shown):
        if line.split("\t", 1)[0].strip() == sid:
            return number
    return None


def _word(label: bool) -> str:
    return VIRUS if label else OTHERS


def _tally(labels: dict[str, bool]) -> dict:
    viral = sum(labels.values())
    return {"sequences": len(labels), "virus": viral, "others": len(labels) - viral}


def read_truth_files(viral: Sequence[str | Path], others: Sequence[str | Path]) -> Truth:
    """The labels of FASTA/FASTQ files: every record of `viral` is virus, of `others` not.
    An id in files of both kinds is an InputError naming the ids (at most MAX_NAMED)."""
    labels: dict[str, bool] = {}
    files, conflicts = [], []
    for label, paths in ((True, viral), (False, others)):
        for given in paths:
            path = check_path(given, str(given))
            # Renames on only so that an id repeated in files of one kind is no error: the
            # ids taken are the headers' own first words (`original_id`), never renamed.
            index = scan_fasta(path, rename_duplicates=True, display_name=str(given))
            for record in read_fasta(index):
                if labels.setdefault(record.original_id, label) != label:
                    conflicts.append(record.original_id)
            files.append({"path": str(path.resolve()), "sha256": index.sha256,
                          "label": _word(label), "records": index.n_records})
    if not (viral and others):
        log.warning("truth files of one kind only (%s): the other figures are undefined",
                    "viral" if viral else "others")
    if conflicts:
        shown = ", ".join(repr(c) for c in conflicts[:MAX_NAMED])
        more = f" and {len(conflicts) - MAX_NAMED} more" if len(conflicts) > MAX_NAMED else ""
        raise InputError(f"{len(conflicts)} sequence id(s) in both a --viral and an --others "
                         f"file: {shown}{more}")
    if not labels:
        raise InputError("the truth files hold no sequence")
    return Truth(labels, {"kind": "files", "files": files, **_tally(labels)})


# -- the figures ------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def call_metrics(tp: int, fp: int, tn: int, fn: int) -> tuple[dict, dict]:
    """The figures of a confusion matrix, and the reasons of those that are undefined."""
    n = tp + fp + tn + fn
    mcc_den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    metrics = {"accuracy": _ratio(tp + tn, n), "precision": _ratio(tp, tp + fp),
               "recall": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
               "f1": _ratio(2 * tp, 2 * tp + fp + fn),
               "mcc": (tp * tn - fp * fn) / math.sqrt(mcc_den) if mcc_den else None}
    reasons = {"accuracy": "no scored row with truth",
               "precision": "no row was called virus",
               "recall": "no row is viral in the truth",
               "specificity": "no row is non-viral in the truth",
               "f1": "no row is viral, in the truth or called",
               "mcc": "a row or column of the confusion matrix is empty"}
    return metrics, {k: reasons[k] for k, v in metrics.items() if v is None}


def rank_figures(score: np.ndarray, truth: np.ndarray, points: int = CURVE_POINTS) -> dict:
    """AUROC, average precision, and the ROC and precision-recall curves of scores against
    truth (True = virus). A row counts as called virus at threshold t when its score >= t."""
    pos = np.sort(score[truth])
    neg = np.sort(score[~truth])
    n_pos, n_neg = len(pos), len(neg)
    out: dict = {"auroc": None, "average_precision": None, "roc": None,
                 "precision_recall": None}
    if not n_pos:
        return out
    # Each distinct viral score v, with how many viral rows have it.
    first = np.r_[True, pos[1:] != pos[:-1]]
    values = pos[first]
    counts = np.diff(np.r_[np.flatnonzero(first), n_pos])
    below = np.searchsorted(neg, values, "left")
    if n_neg:
        equal = np.searchsorted(neg, values, "right") - below
        # Mann-Whitney U with ties as halves, in integers: sum of 2 * (below + equal / 2).
        twice_u = int(np.dot(counts.astype(np.int64), 2 * below + equal))
        out["auroc"] = twice_u / (2 * n_pos * n_neg)
    tp = n_pos - np.searchsorted(pos, values, "left")  # viral rows scoring >= v
    fp = n_neg - below
    out["average_precision"] = float(np.sum(counts / n_pos * (tp / (tp + fp))))
    # The curves: every score of each class when they are few, else that many quantiles.
    picks = [a[np.unique(np.linspace(0, len(a) - 1, min(len(a), points)).round().astype(int))]
             for a in (pos, neg) if len(a)]
    thresholds = np.unique(np.concatenate(picks))[::-1]
    tp_t = n_pos - np.searchsorted(pos, thresholds, "left")
    fp_t = n_neg - np.searchsorted(neg, thresholds, "left")
    shown = [float(t) for t in format_scores(thresholds)]  # as the tables write scores
    if n_neg:
        # The first point, (0, 0), is above every score: its threshold is None.
        out["roc"] = {"threshold": [None, *shown], "fpr": [0.0, *(fp_t / n_neg).tolist()],
                      "tpr": [0.0, *(tp_t / n_pos).tolist()]}
    out["precision_recall"] = {"threshold": shown, "precision": (tp_t / (tp_t + fp_t)).tolist(),
                               "recall": (tp_t / n_pos).tolist()}
    return out


RANK_REASONS = {"auroc": "one class only among the scored rows",
                "average_precision": "no row is viral in the truth"}


class _Scores:
    """One level's scored rows with truth, as (score, truth, called virus), and the counts of
    the rows left out. Growable arrays: 6 bytes a row, not the rows."""

    def __init__(self) -> None:
        self.score = array("f")
        self.truth = bytearray()
        self.called = bytearray()
        self.rows = self.without_truth = 0
        self.unscored = {VIRUS: 0, OTHERS: 0}
        self.first_without_truth: list[str] = []  # at most MAX_NAMED sequence ids

    def add_all(self, rows: Iterable[tuple[str, str, str]], labels: dict[str, bool]) -> None:
        """Rows of (sequence id, score or '', call); a row without a score is unscored."""
        last_sid, label = None, None
        add_score, add_truth, add_call = self.score.append, self.truth.append, self.called.append
        for sid, score, call in rows:
            self.rows += 1
            if sid != last_sid:  # a sequence's rows come together: one look-up for them all
                last_sid, label = sid, labels.get(sid)
                if label is None and len(self.first_without_truth) < MAX_NAMED:
                    self.first_without_truth.append(sid)
            if label is None:
                self.without_truth += 1
            elif not score or call == UNSCORED:
                self.unscored[_word(label)] += 1
            else:
                add_score(float(score))
                add_truth(label)
                add_call(call == VIRUS)

    def figures(self, score_column: str, call_rule: str, table: str) -> dict:
        score, truth, called = (np.frombuffer(buf, dtype=dtype) if len(buf) else
                                np.zeros(0, dtype) for buf, dtype in
                                ((self.score, np.float32), (self.truth, bool),
                                 (self.called, bool)))
        tp = int(np.count_nonzero(truth & called))
        fp = int(np.count_nonzero(~truth & called))
        fn = int(np.count_nonzero(truth & ~called))
        tn = len(truth) - tp - fp - fn
        metrics, undefined = call_metrics(tp, fp, tn, fn)
        ranks = rank_figures(score, truth)
        for key, reason in RANK_REASONS.items():
            metrics[key] = ranks[key]
            if ranks[key] is None:
                undefined[key] = reason
        return {"table": table, "score": score_column, "call_rule": call_rule,
                "rows": self.rows, "without_truth": self.without_truth,
                "unscored": sum(self.unscored.values()), "unscored_by_truth": self.unscored,
                "n": len(truth), "positives": tp + fn, "negatives": tn + fp,
                "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
                "metrics": metrics, "undefined": undefined,
                "roc": ranks["roc"], "precision_recall": ranks["precision_recall"]}


def _named(ids: Iterable[str], count: int) -> dict:
    return {"count": count, "first": list(ids)}


def evaluate_run(outdir: str | Path, truth: Truth) -> dict:
    """The evaluation of the finished run in `outdir` against `truth` (evaluation.json's
    content); OutputError when `outdir` is not a finished run."""
    root = Path(outdir)
    layout = OutputLayout(root)
    record = read_finished_run(root, verb="evaluate")
    threshold = record.threshold
    labels = truth.labels
    seq = _Scores()
    columns = ("sequence_id", "max_p_virus", "call")
    seq.add_all(read_columns(layout.sequences, columns), labels)
    chunks = _Scores()
    chunks.add_all(read_columns(layout.chunks, columns), labels)
    levels = {}
    if layout.frames.is_file():
        frames = _Scores()
        rows = read_columns(layout.frames, ("sequence_id", "p_virus", "call", "status"))
        frames.add_all(((s, p if st == "ok" else "", c) for s, p, c, st in rows), labels)
        levels["frame"] = frames.figures(
            "p_virus", "virus when p_virus > p_others (argmax; a tie goes to others)",
            layout.FRAMES)
    else:
        log.warning("%s: no %s: no frame-level figures", root, layout.FRAMES)
    levels["chunk"] = chunks.figures(
        "max_p_virus", "virus when max P(virus) >= max P(others) over the chunk's frames",
        layout.CHUNKS)
    levels["sequence"] = seq.figures(
        "max_p_virus", f"virus when viral_chunks / scored_chunks >= {threshold:g} (the run's "
        "threshold); the score ranked for AUROC and the curves is max_p_virus", layout.SEQUENCES)
    absent = len(labels) - (seq.rows - seq.without_truth)  # the run's ids are unique
    inp = record.input
    return {
        "format": FORMAT, "virnucpro_version": __version__,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "positive": VIRUS,
        "run": {"folder": str(root.resolve()), "input": inp.get("source"),
                "input_sha256": inp.get("sha256"),
                "models": record.model_set, "tiny": record.is_tiny,
                "chunk_size": record.parameters.get("chunk_size"), "threshold": threshold,
                "finished": record.finished, "rescored": len(record.rescored)},
        "truth": truth.source,
        "sequences_without_truth": _named(seq.first_without_truth, seq.without_truth),
        "truth_ids_not_in_run": _named(_absent(labels, root, absent), absent),
        "levels": levels,
    }


def _absent(labels: dict[str, bool], root: Path, absent: int) -> list[str]:
    """The first MAX_NAMED truth ids that sequences.tsv lacks (a second read, only if any)."""
    if not absent:
        return []
    remaining = dict.fromkeys(labels)
    for (sid,) in read_columns(OutputLayout(root).sequences, ("sequence_id",)):
        remaining.pop(sid, None)
    return list(remaining)[:MAX_NAMED]


def warn_unmatched(evaluation: dict) -> None:
    """Log the sequences without truth and the truth ids not in the run, named."""
    for key, what in (("sequences_without_truth", "sequences of the run have no truth label"),
                      ("truth_ids_not_in_run", "truth ids are not in the run")):
        entry = evaluation[key]
        if entry["count"]:
            more = " ..." if entry["count"] > len(entry["first"]) else ""
            log.warning("%d %s (left out): %s%s", entry["count"], what,
                        ", ".join(entry["first"]), more)


def evaluate(outdir: str | Path, truth: Truth, *, report: bool = True) -> dict:
    """Evaluate the run in `outdir`, write OUTDIR/evaluation.json and (with `report`) rewrite
    the report with its Evaluation section; a report that fails is a warning."""
    root = Path(outdir)
    evaluation = evaluate_run(root, truth)
    warn_unmatched(evaluation)
    try:
        write_json_atomic(OutputLayout(root).evaluation, evaluation)
    except OSError as exc:
        raise OutputError(f"cannot write {OutputLayout.EVALUATION}: {exc.strerror or exc}",
                          path=root) from exc
    if report:
        from virnucpro.report import write_report

        try:
            write_report(root, writer="virnucpro evaluate")
        except Exception as exc:  # noqa: BLE001 - evaluation.json is written; redo the report
            log.error("%s: no report written (%s); the tables are complete: run `virnucpro report %s` to retry",
                        root, exc, root)
    return evaluation
