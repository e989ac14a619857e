"""The report's pure parts and its edge cases, on run folders written by tests/report_runs.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.report_runs import write_regions, write_run
from virnucpro.errors import OutputError
from virnucpro.regions import REGIONS_COLUMNS, Region
from virnucpro.report import write_report
from virnucpro.report.data import (
    REGION_COLUMNS,
    SEQUENCE_COLUMNS,
    SEQUENCE_OPTIONAL,
    Chunk,
    SequenceRow,
    Track,
    read_run,
    viral_bases,
)
from virnucpro.report.plots import bin_chunks, track_figure
from virnucpro.table_text import SEQUENCES_COLUMNS


def test_viral_bases_is_the_union_of_viral_chunk_intervals():
    chunks = [(1, 500, "virus"), (490, 989, "virus"), (979, 1478, "others"),
              (1468, 1967, "virus"), (1, 10, "virus")]
    assert viral_bases(chunks) == 989 + 500
    assert viral_bases([(1, 500, "others"), (5, 9, "unscored")]) == 0
    assert viral_bases([(100, 200, "virus"), (150, 160, "virus")]) == 101


def test_bins_are_the_chunks_themselves_until_there_are_too_many():
    chunks = [Chunk(1, 500, 0.9, "virus"), Chunk(491, 990, None, "unscored"),
              Chunk(981, 1200, 0.2, "others")]
    edges, heights, calls = bin_chunks(chunks, 1200)
    assert edges.tolist() == [0, 490, 980, 1200]
    assert heights.tolist() == [0.9, 0.0, 0.2]
    assert calls == ["virus", "unscored", "others"]
    edges, heights, calls = bin_chunks(chunks, 1200, max_bars=2)
    assert edges.tolist() == [0, 980, 1200]
    assert calls == ["virus", "others"]  # the unscored chunk does not dilute its bin
    many = [Chunk(k * 10 + 1, k * 10 + 10, 0.9 if k % 4 == 0 else 0.1,
                  "virus" if k % 4 == 0 else "others") for k in range(4000)]
    edges, heights, calls = bin_chunks(many, 40000, max_bars=800)
    assert len(calls) == 800 and edges[-1] == 40000
    assert set(calls) == {"others"}  # one viral chunk in four does not paint the contig red


def _chunks(calls: str) -> tuple[list[str], list[float | None]]:
    names = {"v": "virus", "o": "others", "u": "unscored"}
    scores = {"v": 0.9, "o": 0.2, "u": None}
    return [names[c] for c in calls], [scores[c] for c in calls]


def test_a_run_with_no_viral_sequence_still_has_its_plots_and_says_so(tmp_path):
    run = write_run(tmp_path / "run", [("a", 1000, *_chunks("oo"), ""),
                                        ("b", 400, *_chunks("u"), "")])
    page = write_report(run).read_text()
    assert page.count("<svg") == 2  # calls and scores; no track without viral signal
    assert "No chunk was called viral" in page and "No sequence was called viral" not in page
    assert '<table id="sequences"' in page  # a small run lists every sequence
    assert 'id="tiny-warning"' not in page


def test_a_run_with_every_sequence_unscored(tmp_path):
    run = write_run(tmp_path / "run", [(f"s{k}", 100, *_chunks("u"), "shorter than 150 bp")
                                       for k in range(3)])
    data = read_run(run)
    assert data.sequences == {"virus": 0, "others": 0, "unscored": 3}
    assert data.unscored_reasons == (("shorter than 150 bp", 3),)
    assert len(data.viral_share) == 0
    page = write_report(run).read_text()
    assert "3 &times; shorter than 150 bp" in page and page.count("<svg") == 2


def test_tracks_follow_the_length_of_viral_signal_not_the_sequence_call(tmp_path):
    # A long contig with a viral island (called others) outranks a short viral sequence.
    run = write_run(tmp_path / "run", [("short", 500, *_chunks("v"), ""),
                                        ("contig", 10000, *_chunks("ooooovvvoooooooooooo"), ""),
                                        ("plain", 900, *_chunks("oo"), "")])
    data = read_run(run, top=5)
    assert [(t.row.sequence_id, t.row.call) for t in data.tracks] == [("contig", "others"),
                                                                      ("short", "virus")]
    assert data.tracks[0].row.viral_bases == 1500 + 10
    page = write_report(run, top=0).read_text()
    assert '<figure class="track"' not in page and "(--top 0)" in page


def test_ids_are_escaped_everywhere_on_the_page(tmp_path):
    evil = "<script>alert('&')</script>"
    run = write_run(tmp_path / "run", [(evil, 1000, *_chunks("vv"), "")])
    page = write_report(run, top=1).read_text()
    assert evil not in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;&amp;&#x27;)&lt;/script&gt;" in page


def test_a_huge_run_lists_only_viral_sequences_and_stays_fast(tmp_path):
    def sequences():
        for k in range(100_000):
            yield (f"c{k}", 800, *_chunks("vo" if k % 3 == 0 else "o"), "")

    run = write_run(tmp_path / "run", sequences())
    started = time.perf_counter()
    page = write_report(run, max_rows=2000).read_text()
    assert time.perf_counter() - started < 15
    assert page.count("<tr><td>") == 2000
    assert "the table lists only the 33,334 called viral, the 2,000 with" in page
    assert page.count('<figure class="track"') == 10


def test_a_folder_that_is_not_a_finished_run_is_refused(tmp_path):
    with pytest.raises(OutputError, match="no such folder"):
        read_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OutputError, match="no run.json"):
        read_run(tmp_path / "empty")
    for name in ("a", "b"):
        write_run(tmp_path / "several" / name, [("s", 500, *_chunks("v"), "")])
    with pytest.raises(OutputError, match="several inputs.*several/a, .*several/b"):
        read_run(tmp_path / "several")
    unfinished = write_run(tmp_path / "u", [("a", 500, *_chunks("v"), "")], status="running")
    with pytest.raises(OutputError, match="did not complete"):
        write_report(unfinished)
    assert not (unfinished / "report.html").exists()
    broken = write_run(tmp_path / "b", [("a", 500, *_chunks("vv"), "")])
    lines = (broken / "chunks.tsv").read_text().splitlines(keepends=True)
    (broken / "chunks.tsv").write_text("".join(lines[:2]))
    with pytest.raises(OutputError, match="does not match"):
        read_run(broken)
    (broken / "run.json").write_text("{")
    with pytest.raises(OutputError, match="unreadable run.json"):
        read_run(broken)


def test_the_tiny_warning_follows_run_json(tmp_path):
    run = write_run(tmp_path / "run", [("a", 500, *_chunks("v"), "")], tiny=True)
    assert 'id="tiny-warning"' in write_report(run).read_text()
    info = json.loads((run / "run.json").read_text())
    assert info["tiny"] is True


def test_the_command_line_does_not_import_matplotlib():
    code = ("import sys, virnucpro.cli, virnucpro.pipeline, virnucpro.cli.report; "
            "print(any(m.startswith('matplotlib') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_the_reader_reads_every_column_the_writer_writes():
    assert [c for c in SEQUENCES_COLUMNS if c not in (*SEQUENCE_COLUMNS, *SEQUENCE_OPTIONAL)] == []
    assert [c for c in REGIONS_COLUMNS if c not in REGION_COLUMNS] == []


def _hand_regions_run(tmp_path):
    """A contig with a prophage, a phage and a contig with a partial region at its end, their
    regions written by hand (bounds that the rule would not find, so the page can only have
    them from regions.tsv), and a plain contig with a provirus but no viral chunk (so no
    track: its region is only counted)."""
    run = write_run(tmp_path / "run", [
        ("contig", 10000, *_chunks("ooooovvvoooooooooovv"), ""),
        ("phage", 1000, *_chunks("vv"), ""),
        ("plain", 900, *_chunks("oo"), ""),
    ], regions=False)
    return write_regions(run, {"contig": [(2401, 4123, "provirus"), (9001, 10000, "partial")],
                               "phage": [(1, 1000, "whole")], "plain": [(101, 800, "provirus")]})


def _track_html(page: str, sid: str) -> str:
    found = re.search(rf'<figure class="track" id="track-\d+" data-sequence-id="{sid}">'
                      r"(.*?)</figure>", page, re.S)
    assert found, sid
    return found[1]


def test_hand_written_regions_are_shaded_on_their_own_tracks_and_counted(tmp_path):
    run = _hand_regions_run(tmp_path)
    data = read_run(run)
    assert {t.row.sequence_id: [(r.start, r.end, r.kind) for r in t.regions]
            for t in data.tracks} == {"contig": [(2401, 4123, "provirus"), (9001, 10000, "partial")],
                                      "phage": [(1, 1000, "whole")]}
    assert [r.regions for r in data.table] == [2, 1, 1]  # contig, phage, plain
    assert data.regions.kinds == {"whole": 1, "provirus": 2, "partial": 1}
    assert (data.regions.sequences, data.regions.provirus_sequences) == (3, 2)

    page = write_report(run).read_text()
    contig, phage = _track_html(page, "contig"), _track_html(page, "phage")
    assert re.search(r'id="svg-track-\d+-region-1-provirus"', contig)
    assert re.search(r'id="svg-track-\d+-region-2-partial"', contig)
    assert "region-1-whole" not in contig
    assert re.search(r'id="svg-track-\d+-region-1-whole"', phage) and "provirus" not in phage
    assert '<li data-kind="provirus" data-start="2401" data-end="4123">' in contig
    assert "2,401&ndash;4,123 (1,723 bp" in contig
    assert "2 proviruses in 2 sequences</strong>; 4 viral regions in 3 sequences" in page
    assert re.search(r'<tr id="regions-provirus">.*?data-count="2"', page)
    assert re.search(r'<tr id="regions-whole">.*?data-count="1"', page)
    assert '<th class="n">regions</th>' in page
    assert re.search(r'<tr><td>contig</td>.*?<td class="n" data-v="2">2</td><td></td></tr>', page)
    assert 'id="regions-note"' not in page


def test_a_region_band_spans_its_bases_behind_the_bars():
    row = SequenceRow("s", 3000, 3, 3, 1, 1 / 3, 0.9, 0.4, "others", "", "", 1000, 1)
    chunks = (Chunk(1, 1000, 0.1, "others"), Chunk(1001, 2000, 0.9, "virus"),
              Chunk(2001, 3000, 0.1, "others"))
    region = Region(1, 1001, 2000, 1, 1, 0.9, 0.9, "provirus")
    ax = track_figure(Track(row, chunks, (region,))).axes[0]
    band, strip = (next(p for p in ax.patches if p.get_gid() == gid)
                   for gid in ("region-1-provirus", "region-1-provirus-strip"))
    assert (band.get_x(), band.get_width()) == (1000, 1000)  # 0-based [start - 1, end)
    assert band.get_zorder() < min(c.get_zorder() for c in ax.collections)
    assert (strip.get_x(), strip.get_width()) == (1000, 1000) and strip.get_y() >= 1.0
    assert "provirus region" in [t.get_text() for t in ax.get_legend().get_texts()]
    plain = track_figure(Track(row, chunks)).axes[0]
    assert not plain.patches and "provirus region" not in [
        t.get_text() for t in plain.get_legend().get_texts()]


def test_a_run_from_before_regions_opens_and_says_it_predates_them(tmp_path):
    run = write_run(tmp_path / "run", [("contig", 10000, *_chunks("ooooovvvoooooooooooo"), "")],
                    regions=False)
    assert "regions" not in (run / "sequences.tsv").read_text().splitlines()[0].split("\t")
    data = read_run(run)
    assert data.regions is None and data.table[0].regions is None
    assert data.tracks[0].regions == ()
    page = write_report(run).read_text()
    assert 'id="regions-note"' in page and "predates viral regions" in page
    assert "virnucpro rescore" in page
    assert 'id="regions-summary"' not in page and '<th class="n">regions</th>' not in page
    assert "region-1-" not in page


def test_a_run_with_regions_written_by_the_rule_shows_them(tmp_path):
    run = write_run(tmp_path / "run", [("contig", 10000, *_chunks("ooooovvvoooooooooooo"), "")])
    page = write_report(run).read_text()
    assert "1 provirus in 1 sequence</strong>" in page
    assert "by chunk call, gaps &le; 1 chunk, &ge; 1000 bp unless whole" in page
    assert re.search(r'id="svg-track-1-region-1-provirus"', page)


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.replace("\tstart\t", "\tbegin\t", 1),
     r"regions\.tsv: no column start \(the header is"),
    (lambda t: t.split("\n", 1)[1], r"regions\.tsv: no column"),  # no header at all
    (lambda t: t.replace("provirus", "prophage"),
     r"regions\.tsv: region 1 of 'contig' is of kind 'prophage'"),
    (lambda t: t.replace("\t2401\t", "\tx\t"), r"regions\.tsv: region 1 of 'contig'"),
    (lambda t: "\n".join(t.split("\n")[:2]) + "\n",
     r"regions\.tsv does not match sequences\.tsv at 'contig': 1 regions, not 2"),
    (lambda t: t + "ghost\t1\t1\t10\t10\t1\t1\t0.9\t0.9\twhole\n",
     r"regions\.tsv: region 1 of 'ghost' follows no sequence"),
])
def test_a_damaged_regions_tsv_is_a_clear_error_naming_it(tmp_path, damage, message):
    run = _hand_regions_run(tmp_path)
    path = run / "regions.tsv"
    path.write_text(damage(path.read_text()))
    with pytest.raises(OutputError, match=message):
        write_report(run)
    assert not (run / "report.html").exists()


def test_a_regions_column_without_regions_tsv_is_refused(tmp_path):
    run = _hand_regions_run(tmp_path)
    (run / "regions.tsv").unlink()
    with pytest.raises(OutputError, match="regions.tsv is missing"):
        read_run(run)
