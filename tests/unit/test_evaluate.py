"""`virnucpro evaluate`: the figures of a small run written by hand equal the ones worked out
on paper; undefined figures are null with a reason; the truth files' rules; the report's
Evaluation section.

The run (`hand_run`): seven sequences, s7 without truth, and a truth id `ghost` not in the run.

    frame  seq truth p_virus call      chunk seq truth max_p call      seq truth max_p share call
    f1     s1  V     0.9     virus     c1    s1  V     0.9   virus     s1  V     0.9   1/2   virus
    f2     s1  V     0.6     virus     c2    s1  V     0.4   others    s2  V     0.7   1     virus
    f3     s1  V     0.4     others    c3    s2  V     0.7   virus     s3  O     0.7   1     virus
    f4     s2  V     0.7     virus     c4    s3  O     0.7   virus     s4  O     0.2   0     others
    f5     s3  O     0.7     virus     c5    s4  O     0.2   others    s5  V     -     -     unscored
    f6     s3  O     0.1     others    c6    s5  V     -     unscored  s6  O     0.3   0     others
    f7     s4  O     0.2     others    c7    s6  O     0.3   others    s7  ?     0.8   1     virus
    f8     s6  O     0.3     others    c8    s7  ?     0.8   virus
    f9     s6  O     failed
    f10    s7  ?     0.8     virus

Each level has a viral and a non-viral row tied at 0.7 (a tie counts one half in AUROC).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from virnucpro.cli.root import main
from virnucpro.errors import InputError, OutputError
from virnucpro.evaluate import (
    Truth,
    call_metrics,
    evaluate,
    evaluate_run,
    rank_figures,
    read_truth_files,
    read_truth_table,
)
from virnucpro.regions import REGIONS_COLUMNS
from virnucpro.report import write_report
from virnucpro.table_text import CHUNKS_COLUMNS, FRAMES_COLUMNS, SEQUENCES_COLUMNS

FRAMES = [  # sequence, chunk, p_virus ("" failed)
    ("s1", 1, "0.9"), ("s1", 1, "0.6"), ("s1", 2, "0.4"), ("s2", 1, "0.7"), ("s3", 1, "0.7"),
    ("s3", 1, "0.1"), ("s4", 1, "0.2"), ("s6", 1, "0.3"), ("s6", 1, ""), ("s7", 1, "0.8")]
CHUNKS = [("s1", 1, "0.9", "virus"), ("s1", 2, "0.4", "others"), ("s2", 1, "0.7", "virus"),
          ("s3", 1, "0.7", "virus"), ("s4", 1, "0.2", "others"), ("s5", 1, "", "unscored"),
          ("s6", 1, "0.3", "others"), ("s7", 1, "0.8", "virus")]
SEQUENCES = [  # id, chunks, scored, viral, share, max, call
    ("s1", 2, 2, 1, "0.5", "0.9", "virus"), ("s2", 1, 1, 1, "1", "0.7", "virus"),
    ("s3", 1, 1, 1, "1", "0.7", "virus"), ("s4", 1, 1, 0, "0", "0.2", "others"),
    ("s5", 1, 0, 0, "", "", "unscored"), ("s6", 1, 1, 0, "0", "0.3", "others"),
    ("s7", 1, 1, 1, "1", "0.8", "virus")]
TRUTH = "sequence_id\tlabel\ns1\tvirus\ns2\tViral\ns3\tothers\ns4\t0\ns5\tTRUE\ns6\tnon-viral\n" \
        "ghost\tnonviral\n"


def _write(path: Path, columns: list[str], rows: list[dict]) -> None:
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write_hand_run(folder: Path, *, rescored: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for k, (sid, chunk, p) in enumerate(FRAMES):
        ok = p != ""
        call = "unscored" if not ok else "virus" if float(p) > 0.5 else "others"
        frames.append({"frame_id": f"{sid}_chunk_{chunk}F{k % 3 + 1}", "sequence_id": sid,
                       "chunk_index": chunk, "strand": "+", "frame": k % 3 + 1, "start": 1,
                       "end": 300, "protein_length": 100, "p_virus": p,
                       "p_others": f"{1 - float(p):.1f}" if ok else "", "call": call,
                       "status": "ok" if ok else "failed: out of memory"})
    _write(folder / "frames.tsv", FRAMES_COLUMNS, frames)
    _write(folder / "chunks.tsv", CHUNKS_COLUMNS, [
        {"chunk_id": f"{sid}_chunk_{k}", "sequence_id": sid, "chunk_index": k,
         "start": 500 * (k - 1) + 1, "end": 500 * k, "kept_frames": 0 if not p else 2,
         "max_p_virus": p, "max_p_others": f"{1 - float(p):.1f}" if p else "", "call": call,
         "reason": "" if p else "no reading frame without a stop codon"}
        for sid, k, p, call in CHUNKS])
    _write(folder / "sequences.tsv", SEQUENCES_COLUMNS, [
        {"sequence_id": sid, "length": 500 * n, "chunks": n, "scored_chunks": scored,
         "viral_chunks": viral, "viral_share": share, "max_p_virus": p, "mean_p_virus": p,
         "call": call, "reason": "" if p else "no chunk has a reading frame without a stop codon",
         "regions": 0} for sid, n, scored, viral, share, p, call in SEQUENCES])
    _write(folder / "regions.tsv", REGIONS_COLUMNS, [])
    info = {"status": "completed", "finished": "2026-01-01T01:00:00+00:00",
            "input": {"source": "hand.fasta", "name": "hand", "sha256": "ab" * 32,
                      "records": 7, "bases": 4000},
            "parameters": {"chunk_size": 500, "threshold": 0.5, "min_length": 1,
                           "models": "published", "region_gap": 1, "region_min_p": None,
                           "min_region_length": 1000},
            "models": {"name": "published", "is_tiny": False}, "tiny": False,
            "counts": {"sequences": 7}, "rescored": [{"at": "x"}] * rescored}
    (folder / "run.json").write_text(json.dumps(info))
    return folder


@pytest.fixture
def hand_run(tmp_path: Path) -> Path:
    return write_hand_run(tmp_path / "run")


@pytest.fixture
def truth_tsv(tmp_path: Path) -> Path:
    path = tmp_path / "truth.tsv"
    path.write_text(TRUTH)
    return path


def _area(y: list[float], x: list[float]) -> float:
    """The trapezoids under a curve (np.trapezoid is numpy 2 only)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))


def _cli(*args: object):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


# -- the figures -------------------------------------------------------------------------------


def test_the_figures_of_each_level_equal_those_worked_out_by_hand(hand_run, truth_tsv):
    ev = evaluate_run(hand_run, read_truth_table(truth_tsv))
    frame, chunk, seq = (ev["levels"][k] for k in ("frame", "chunk", "sequence"))

    assert (frame["rows"], frame["without_truth"], frame["unscored"], frame["n"]) == (10, 1, 1, 8)
    assert frame["unscored_by_truth"] == {"virus": 0, "others": 1}  # f9, the failed frame
    assert (frame["positives"], frame["negatives"]) == (4, 4)
    assert frame["confusion"] == {"tp": 3, "fp": 1, "tn": 3, "fn": 1}
    assert frame["metrics"] == pytest.approx({
        "accuracy": 0.75, "precision": 0.75, "recall": 0.75, "specificity": 0.75, "f1": 0.75,
        "mcc": 0.5,  # (3*3 - 1*1) / sqrt(4*4*4*4)
        "auroc": 0.84375,  # (4 + 3 + 3 + 3.5) / 16: 0.7 against 0.7 counts one half
        "average_precision": 0.8041666666666667})  # (1 + 2/3 + 3/4 + 4/5) / 4

    assert (chunk["rows"], chunk["without_truth"], chunk["unscored"], chunk["n"]) == (8, 1, 1, 6)
    assert chunk["unscored_by_truth"] == {"virus": 1, "others": 0}  # c6 of s5
    assert chunk["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert chunk["metrics"] == pytest.approx({
        "accuracy": 0.6666666666666666, "precision": 0.6666666666666666,
        "recall": 0.6666666666666666, "specificity": 0.6666666666666666,
        "f1": 0.6666666666666666,
        "mcc": 0.3333333333333333,  # (2*2 - 1*1) / sqrt(3*3*3*3)
        "auroc": 0.8333333333333334,  # (3 + 2 + 2.5) / 9
        "average_precision": 0.8055555555555556})  # (1 + 2/3 + 3/4) / 3

    assert (seq["rows"], seq["without_truth"], seq["unscored"], seq["n"]) == (7, 1, 1, 5)
    assert seq["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 0}
    assert seq["metrics"] == pytest.approx({
        "accuracy": 0.8, "precision": 0.6666666666666666, "recall": 1.0,
        "specificity": 0.6666666666666666, "f1": 0.8,
        "mcc": 0.6666666666666666,  # (2*2 - 1*0) / sqrt(3*2*3*2)
        "auroc": 0.9166666666666666,  # (3 + 2.5) / 6
        "average_precision": 0.8333333333333334})  # (1 + 2/3) / 2
    assert seq["score"] == "max_p_virus" and "max_p_virus" in seq["call_rule"]
    assert "viral_chunks / scored_chunks >= 0.5" in seq["call_rule"]
    assert all(not level["undefined"] for level in (frame, chunk, seq))


def test_the_curves_hold_every_threshold_of_a_small_run(hand_run, truth_tsv):
    chunk = evaluate_run(hand_run, read_truth_table(truth_tsv))["levels"]["chunk"]
    third = 1 / 3
    assert chunk["roc"] == pytest.approx({
        "threshold": [None, 0.9, 0.7, 0.4, 0.3, 0.2],
        "fpr": [0.0, 0.0, third, third, 2 * third, 1.0],
        "tpr": [0.0, third, 2 * third, 1.0, 1.0, 1.0]})
    assert chunk["precision_recall"] == pytest.approx({
        "threshold": [0.9, 0.7, 0.4, 0.3, 0.2],
        "precision": [1.0, 2 * third, 0.75, 0.6, 0.5],
        "recall": [third, 2 * third, 1.0, 1.0, 1.0]})
    # The trapezoids under the ROC points are the Mann-Whitney AUROC, ties included.
    assert _area(chunk["roc"]["tpr"], chunk["roc"]["fpr"]) == pytest.approx(
        chunk["metrics"]["auroc"])


def test_sequences_without_truth_and_truth_ids_not_in_the_run_are_counted_and_named(
        hand_run, truth_tsv, caplog):
    with caplog.at_level(logging.WARNING):
        ev = evaluate(hand_run, read_truth_table(truth_tsv), report=False)
    assert ev["sequences_without_truth"] == {"count": 1, "first": ["s7"]}
    assert ev["truth_ids_not_in_run"] == {"count": 1, "first": ["ghost"]}
    assert "1 sequences of the run have no truth label (left out): s7" in caplog.text
    assert "1 truth ids are not in the run (left out): ghost" in caplog.text
    written = json.loads((hand_run / "evaluation.json").read_text())
    assert written["levels"]["sequence"]["confusion"] == ev["levels"]["sequence"]["confusion"]
    assert written["run"]["threshold"] == 0.5 and written["run"]["input_sha256"] == "ab" * 32
    assert written["truth"]["files"][0]["sha256"] and written["truth"]["header"] == \
        "sequence_id\tlabel"


def test_more_than_twenty_unmatched_ids_are_counted_and_the_first_twenty_named(hand_run):
    labels = {f"extra{k}": False for k in range(25)} | {"s1": True}
    ev = evaluate_run(hand_run, Truth(labels, {}))
    assert ev["truth_ids_not_in_run"] == {"count": 25, "first": [f"extra{k}" for k in range(20)]}
    assert ev["sequences_without_truth"] == {"count": 6,
                                             "first": ["s2", "s3", "s4", "s5", "s6", "s7"]}


def test_undefined_figures_are_null_with_their_reason(hand_run):
    # Only s4 and s6 have truth: both non-viral, both called others.
    ev = evaluate_run(hand_run, Truth({"s4": False, "s6": False}, {}))
    seq = ev["levels"]["sequence"]
    assert seq["confusion"] == {"tp": 0, "fp": 0, "tn": 2, "fn": 0}
    assert seq["metrics"] == {"accuracy": 1.0, "precision": None, "recall": None,
                              "specificity": 1.0, "f1": None, "mcc": None, "auroc": None,
                              "average_precision": None}
    assert seq["undefined"] == {
        "precision": "no row was called virus", "recall": "no row is viral in the truth",
        "f1": "no row is viral, in the truth or called",
        "mcc": "a row or column of the confusion matrix is empty",
        "auroc": "one class only among the scored rows",
        "average_precision": "no row is viral in the truth"}
    assert seq["roc"] is None and seq["precision_recall"] is None
    assert json.loads(json.dumps(ev))["levels"]["sequence"]["metrics"]["auroc"] is None


def test_a_level_with_no_scored_row_has_only_undefined_rates():
    metrics, undefined = call_metrics(0, 0, 0, 0)
    assert set(metrics.values()) == {None} and set(undefined) == set(metrics)
    assert rank_figures(np.zeros(0, np.float32), np.zeros(0, bool))["auroc"] is None


def test_call_metrics_of_a_run_that_calls_nothing_viral():
    metrics, undefined = call_metrics(tp=0, fp=0, tn=3, fn=2)
    assert metrics["accuracy"] == 0.6 and metrics["recall"] == 0.0 and metrics["f1"] == 0.0
    assert metrics["precision"] is None and metrics["mcc"] is None
    assert set(undefined) == {"precision", "mcc"}


def test_auroc_is_the_mann_whitney_statistic_with_ties_as_halves():
    rng = np.random.default_rng(7)
    score = (rng.integers(0, 11, 400) / 10).astype(np.float32)  # many ties
    truth = rng.random(400) < 0.3
    pos, neg = score[truth], score[~truth]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    figures = rank_figures(score, truth)
    assert figures["auroc"] == pytest.approx(wins / (len(pos) * len(neg)), rel=1e-12)
    roc = figures["roc"]
    assert _area(roc["tpr"], roc["fpr"]) == pytest.approx(figures["auroc"], rel=1e-12)


def test_the_curves_of_a_large_level_are_thinned_but_keep_their_ends_and_order():
    rng = np.random.default_rng(3)
    truth = rng.random(200_000) < 0.1
    score = rng.beta(np.where(truth, 5, 2), np.where(truth, 2, 4)).astype(np.float32)
    figures = rank_figures(score, truth, points=500)
    roc, pr = figures["roc"], figures["precision_recall"]
    assert len(roc["fpr"]) <= 2 * 500 + 1 and len(pr["recall"]) <= 2 * 500
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert max(np.diff(roc["fpr"]).max(), np.diff(roc["tpr"]).max()) < 0.005
    assert np.all(np.diff(roc["threshold"][1:]) < 0)
    assert _area(roc["tpr"], roc["fpr"]) == pytest.approx(figures["auroc"], abs=1e-4)
    assert 0.85 < figures["auroc"] < 0.95


# -- the truth ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word, label", [
    *[(w, True) for w in ("virus", "viral", "1", "true", "VIRUS", "Viral", "True")],
    *[(w, False) for w in ("others", "non-viral", "nonviral", "0", "false", "Non-Viral",
                           "FALSE")]])
def test_every_label_word_is_read_in_any_case(tmp_path, word, label):
    path = tmp_path / "t.tsv"
    path.write_text(f"a\t{word}\n")
    assert read_truth_table(path).labels == {"a": label}


def test_a_header_blank_lines_comments_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(b"# from the paper\r\nid\tclass\r\n\r\nx\tvirus\r\ny\t0\r\n")
    truth = read_truth_table(path)
    assert truth.labels == {"x": True, "y": False}
    assert truth.source["header"] == "id\tclass"
    assert (truth.source["sequences"], truth.source["virus"], truth.source["others"]) == (2, 1, 1)


def test_a_gzipped_table_is_read(tmp_path):
    path = tmp_path / "t.tsv.gz"
    path.write_bytes(gzip.compress(b"x\tvirus\n"))
    assert read_truth_table(path).labels == {"x": True}


def test_a_bad_label_is_an_input_error_naming_its_line(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("sequence_id\tlabel\nx\tvirus\ny\tmaybe\n")
    with pytest.raises(InputError, match=r"line 3: label 'maybe' is none of") as err:
        read_truth_table(path)
    assert err.value.exit_code == 3 and err.value.line == 3


def test_a_second_header_like_line_is_refused(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("id\tlabel\nid\tlabel\n")
    with pytest.raises(InputError, match="line 2: label 'label'"):
        read_truth_table(path)


@pytest.mark.parametrize("line, why", [("x\tvirus\textra", "3 tab-separated field"),
                                       ("x virus", "1 tab-separated field"),
                                       ("\tvirus", "no sequence id")])
def test_a_line_that_is_not_id_tab_label_is_refused(tmp_path, line, why):
    path = tmp_path / "t.tsv"
    path.write_text(f"a\tvirus\n{line}\n")
    with pytest.raises(InputError, match=f"line 2: {why}"):
        read_truth_table(path)


def test_an_id_given_two_labels_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\tvirus\nb\tothers\nb\tothers\na\t0\n")  # b twice, same label: fine
    with pytest.raises(InputError, match=r"line 4, record 'a': labelled others here but virus "
                                         r"on line 1"):
        read_truth_table(path)


def test_an_empty_or_missing_table_is_refused(tmp_path):
    (tmp_path / "t.tsv").write_text("sequence_id\tlabel\n")
    with pytest.raises(InputError, match="no labelled sequence"):
        read_truth_table(tmp_path / "t.tsv")
    with pytest.raises(InputError, match="no such file"):
        read_truth_table(tmp_path / "none.tsv")


def test_fasta_and_fastq_truth_files_give_the_first_header_words(tmp_path):
    (tmp_path / "v.fa").write_text(">v1 some virus\nACGT\n>v2\nACGT\n>v1 again\nAC\n")
    (tmp_path / "o.fq").write_text("@o1 read\nACGT\n+\nIIII\n")
    truth = read_truth_files([tmp_path / "v.fa"], [tmp_path / "o.fq"])
    assert truth.labels == {"v1": True, "v2": True, "o1": False}
    assert [f["label"] for f in truth.source["files"]] == ["virus", "others"]
    assert [f["records"] for f in truth.source["files"]] == [3, 1]


def test_an_id_in_both_a_viral_and_an_others_file_is_refused(tmp_path):
    (tmp_path / "v.fa").write_text(">a\nACGT\n>b\nACGT\n")
    (tmp_path / "o.fa").write_text(">b\nACGT\n>c\nACGT\n")
    with pytest.raises(InputError, match=r"1 sequence id\(s\) in both a --viral and an "
                                         r"--others file: 'b'"):
        read_truth_files([tmp_path / "v.fa"], [tmp_path / "o.fa"])


# -- the command line ---------------------------------------------------------------------------


def test_the_command_prints_a_table_and_writes_evaluation_json(hand_run, truth_tsv):
    done = _cli(hand_run, "--truth", truth_tsv, "--no-report")
    assert done.exit_code == 0, done.output
    lines = [line.split() for line in done.stdout.splitlines()]
    assert lines[0] == ["level", "n", "unscored", "no-truth", "accuracy", "precision", "recall",
                        "F1", "MCC", "AUROC"]
    # What was left out is said beside what was counted (the JSON's unscored, without_truth).
    assert lines[1:] == [["frame", "8", "1", "1", "0.7500", "0.7500", "0.7500", "0.7500",
                          "0.5000", "0.8438"],
                         ["chunk", "6", "1", "1", "0.6667", "0.6667", "0.6667", "0.6667",
                          "0.3333", "0.8333"],
                         ["sequence", "5", "1", "1", "0.8000", "0.6667", "1.0000", "0.8000",
                          "0.6667", "0.9167"]]
    assert "AUROC ranks max_p_virus" in done.stderr and "ghost" in done.stderr
    assert (hand_run / "evaluation.json").is_file() and not (hand_run / "report.html").exists()


def test_json_prints_the_content_of_evaluation_json(hand_run, truth_tsv):
    done = _cli(hand_run, "--truth", truth_tsv, "--json", "--no-report", "-q")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == json.loads((hand_run / "evaluation.json").read_text())
    assert done.stderr == ""


def test_an_undefined_figure_is_a_dash_in_the_table(hand_run, tmp_path):
    (tmp_path / "o.tsv").write_text("s4\tothers\ns6\tothers\n")
    done = _cli(hand_run, "--truth", tmp_path / "o.tsv", "--no-report", "-q")
    assert done.stdout.splitlines()[3].split() == ["sequence", "2", "0", "5", "1.0000", "-",
                                                   "-", "-", "-", "-"]


@pytest.mark.parametrize("args", [[], ["--truth", "t.tsv", "--viral", "v.fa"]])
def test_the_truth_is_given_one_way_exactly(hand_run, args):
    done = _cli(hand_run, *args)
    assert done.exit_code == 2 and "--truth" in done.output


def test_a_bad_truth_file_exits_3_naming_the_line(hand_run, tmp_path):
    (tmp_path / "t.tsv").write_text("x\tvirus\ny\tyes\n")
    done = _cli(hand_run, "--truth", tmp_path / "t.tsv")
    assert done.exit_code == 3 and "line 2: label 'yes'" in done.stderr


def test_a_folder_that_is_not_a_finished_run_exits_5(hand_run, truth_tsv, tmp_path):
    info = json.loads((hand_run / "run.json").read_text())
    (hand_run / "run.json").write_text(json.dumps({**info, "status": "running"}))
    done = _cli(hand_run, "--truth", truth_tsv)
    assert done.exit_code == 5 and "did not complete" in done.stderr
    assert _cli(tmp_path / "nothing", "--truth", truth_tsv).exit_code == 5


def test_a_folder_of_several_inputs_is_refused_with_its_subfolders(tmp_path, truth_tsv):
    for name in ("a", "b"):
        write_hand_run(tmp_path / "out" / name)
    with pytest.raises(OutputError, match="evaluate each folder") as err:
        evaluate_run(tmp_path / "out", read_truth_table(truth_tsv))
    assert str(tmp_path / "out" / "a") in str(err.value) and str(tmp_path / "out" / "b") in str(
        err.value)


# -- the report ---------------------------------------------------------------------------------


def test_the_report_of_an_evaluated_run_has_an_evaluation_section(hand_run, truth_tsv, tmp_path):
    evaluate(hand_run, read_truth_table(truth_tsv))  # rewrites the report
    page = (hand_run / "report.html").read_text()
    assert '<h2 id="evaluation">Evaluation</h2>' in page
    assert page.index('id="scores"') < page.index('id="evaluation"') < page.index('id="tracks"')
    for level, tp in (("frame", 3), ("chunk", 2), ("sequence", 2)):
        assert f'<tr id="evaluation-{level}">' in page
        row = page[page.index(f'<tr id="evaluation-{level}">'):]
        assert row.index(f'data-tp="{tp}"') < row.index("</tr>")
    assert 'data-metric="auroc" data-v="0.9166666666666666"' in page
    assert 'id="plot-evaluation-roc"><svg' in page and 'id="plot-evaluation-pr"><svg' in page
    # The legends (text drawn as paths; matplotlib keeps the words in a comment).
    assert "sequence: AUROC 0.917 (n = 5)" in page and "chunk: AP 0.806 (n = 6)" in page
    assert "<code>s7</code>" in page and "<code>ghost</code>" in page
    assert 'id="evaluation-stale"' not in page
    write_report(hand_run, plots_dir=tmp_path / "plots")
    assert {"evaluation-roc.svg", "evaluation-pr.png"} <= {p.name for p in
                                                           (tmp_path / "plots").iterdir()}


def test_the_report_warns_when_the_run_was_rescored_after_its_evaluation(hand_run, truth_tsv):
    evaluate(hand_run, read_truth_table(truth_tsv), report=False)
    info = json.loads((hand_run / "run.json").read_text())
    info["rescored"] = [{"at": "later"}]
    info["parameters"]["threshold"] = 0.7
    (hand_run / "run.json").write_text(json.dumps(info))
    page = write_report(hand_run).read_text()
    assert 'id="evaluation-stale"' in page and "0.5 then, 0.7 now" in page


def test_a_report_without_or_with_a_broken_evaluation_has_no_section(hand_run, caplog):
    assert 'id="evaluation"' not in write_report(hand_run).read_text()
    (hand_run / "evaluation.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert 'id="evaluation"' not in write_report(hand_run).read_text()
    assert "unreadable, left out of the report" in caplog.text


def test_a_level_without_a_curve_is_drawn_with_its_reason(hand_run):
    from virnucpro.report.plots import render, roc_figure

    ev = evaluate_run(hand_run, Truth({"s4": False, "s6": False}, {}))
    fig = roc_figure(ev)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[2] == "sequence: AUROC undefined (one class only among the scored rows)"
    assert render(fig, "svg", "roc").startswith(b"<?xml")
    assert not math.isnan(ev["levels"]["frame"]["metrics"]["accuracy"])
