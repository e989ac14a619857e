"""`virnucpro report` and the report `predict` writes, from a real tiny-set run of tests/data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, read_table

EVIL_ID = 'copy<b>&"x"</b>'  # a legal FASTA id that would break an unescaped page


def run_cli(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "virnucpro", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_set_dir) -> Path:
    """One predict run of two inputs: the tests/data sequences (plus a copy of HIV-1 under
    an id full of HTML characters) and the viral reference alone."""
    tmp = tmp_path_factory.mktemp("report")
    sample = tmp / "sample.fasta"
    viral = (DATA / "viral_reference.fasta").read_text()
    hiv = viral[viral.index(">gi|9629357"):viral.index(">HM138502.1")]
    sample.write_text(viral + (DATA / "nonviral_reference.fasta").read_text()
                      + f">{EVIL_ID} HIV-1 again\n" + hiv.split("\n", 1)[1])
    out = tmp / "out"
    run_cli("predict", sample, DATA / "viral_reference.fasta", "-o", out, "--models", "tiny",
            "-q")
    return out / "sample"


def _page(folder: Path) -> str:
    return (folder / "report.html").read_text(encoding="utf-8")


def _viral_bases(chunks: list[dict[str, str]], sid: str) -> int:
    covered: set[int] = set()
    for c in chunks:
        if c["sequence_id"] == sid and c["call"] == "virus":
            covered.update(range(int(c["start"]), int(c["end"]) + 1))
    return len(covered)


def test_predict_writes_a_report_per_input_folder_and_lists_it_in_run_json(run):
    for folder in (run, run.parent / "viral_reference"):
        assert (folder / "report.html").is_file()
        info = json.loads((folder / "run.json").read_text())
        assert info["outputs"]["report.html"] == "report.html"
        assert info["parameters"]["report"] is True


def test_the_counts_shown_are_those_of_sequences_tsv(run):
    page = _page(run)
    rows = read_table(run / "sequences.tsv")
    for call in ("virus", "others", "unscored"):
        mine = [r for r in rows if r["call"] == call]
        shown = re.search(rf'<tr id="count-{call}">.*?data-count="(\d+)".*?data-bases="(\d+)"',
                          page)
        assert shown, call
        assert int(shown[1]) == len(mine)
        assert int(shown[2]) == sum(int(r["length"]) for r in mine)
    assert 'id="unscored-reasons"' in page  # some nonviral_reference records have no open frame
    assert "no chunk has a reading frame without a stop codon" in page


def test_every_plot_is_an_inline_svg_and_each_top_sequence_has_a_track(run):
    page = _page(run)
    chunks = read_table(run / "chunks.tsv")
    ids = list(dict.fromkeys(c["sequence_id"] for c in chunks))
    signal = {sid: _viral_bases(chunks, sid) for sid in ids}
    expected = [sid for sid in sorted(ids, key=lambda s: -signal[s]) if signal[sid]][:10]
    tracks = re.findall(r'<figure class="track" id="track-\d+" data-sequence-id="([^"]*)"><svg',
                        page)
    assert len(tracks) == len(expected) >= 3
    shown = [t.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
             .replace("&amp;", "&") for t in tracks]
    assert sorted(shown) == sorted(expected)
    assert [signal[s] for s in shown] == sorted((signal[s] for s in shown), reverse=True)
    for plot in ("calls", "scores"):
        assert re.search(rf'<figure class="plot" id="plot-{plot}"><svg', page), plot
    assert page.count("<svg") == 2 + len(tracks)
    # Self-contained: nothing to fetch (namespace URIs in the SVG metadata are names only).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|url\((?!#)|@import""", page)
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the inlined SVGs do not collide (clip paths, glyphs)


def test_the_tiny_set_is_called_out_and_the_table_is_sortable(run):
    page = _page(run)
    assert 'id="tiny-warning"' in page and "mean nothing" in page
    assert '<table id="sequences" class="sortable">' in page
    assert page.count("<tr><td>") == len(read_table(run / "sequences.tsv"))
    assert "addEventListener" in page and "<script src" not in page


def test_ids_with_html_characters_are_escaped(run):
    page = _page(run)
    assert EVIL_ID not in page
    assert "copy&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;" in page


def test_report_command_writes_elsewhere_with_plot_files(run, tmp_path):
    proc = run_cli("report", run, "-o", tmp_path / "r.html", "--top", "2",
                   "--plots", tmp_path / "plots")
    assert proc.stdout.strip() == str(tmp_path / "r.html")
    assert _page(run) != (tmp_path / "r.html").read_text()  # --top 2: fewer tracks
    assert (tmp_path / "r.html").read_text().count('<figure class="track"') == 2
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    stems = sorted({n.rsplit(".", 1)[0] for n in names})
    assert stems[:2] == ["calls", "scores"] and len(stems) == 4
    assert all(s.startswith(("track-01-", "track-02-")) for s in stems[2:])
    for stem in stems:
        assert (tmp_path / "plots" / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (tmp_path / "plots" / f"{stem}.svg").read_bytes()[:2000]
    assert not any(set(n) & set('<>&"/') for n in names)


@pytest.mark.slow
def test_no_report_skips_it(tmp_path, tiny_set_dir):
    out = tmp_path / "out"
    run_cli("predict", DATA / "viral_reference.fasta", "-o", out, "--models", "tiny",
            "--no-report", "-q")
    assert (out / "sequences.tsv").is_file() and not (out / "report.html").exists()
    info = json.loads((out / "run.json").read_text())
    assert "report.html" not in info["outputs"]


@pytest.mark.parametrize("make", ["missing", "unfinished"])
def test_a_folder_without_a_finished_run_is_a_clear_error(run, tmp_path, make):
    folder = tmp_path / "x"
    if make == "unfinished":
        shutil.copytree(run, folder)
        info = json.loads((folder / "run.json").read_text())
        (folder / "run.json").write_text(json.dumps({**info, "status": "running"}))
    proc = run_cli("report", folder, check=False)
    assert proc.returncode == 5
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert str(folder) in proc.stderr


def _unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&#x27;", "'").replace("&amp;", "&"))


def test_the_regions_of_regions_tsv_are_counted_and_shaded_on_their_tracks(run):
    page = _page(run)
    regions = read_table(run / "regions.tsv")
    kinds = {k: sum(r["kind"] == k for r in regions) for k in ("whole", "provirus", "partial")}
    for kind, count in kinds.items():
        assert re.search(rf'<tr id="regions-{kind}">.*?data-count="(\d+)"', page)[1] == str(count)
    with_provirus = {r["sequence_id"] for r in regions if r["kind"] == "provirus"}
    assert kinds["provirus"] >= 1  # HIV-1 in the tiny set's run has one, twice (EVIL_ID)
    assert (f"{kinds['provirus']} provirus{'es' if kinds['provirus'] != 1 else ''} in "
            f"{len(with_provirus)} sequence") in page
    counted = {r["sequence_id"]: int(r["regions"]) for r in read_table(run / "sequences.tsv")}
    assert sum(counted.values()) == len(regions)
    tracks = re.findall(r'<figure class="track" id="track-(\d+)" data-sequence-id="([^"]*)">'
                        r"(.*?)</figure>", page, re.S)
    shaded = 0
    for k, sid, html in tracks:
        mine = [r for r in regions if r["sequence_id"] == _unescape(sid)]
        listed = re.findall(r'<li data-kind="(\w+)" data-start="(\d+)" data-end="(\d+)">', html)
        assert listed == [(r["kind"], r["start"], r["end"]) for r in mine], sid
        for r in mine:
            assert f'id="svg-track-{k}-region-{r["region"]}-{r["kind"]}"' in html, sid
        assert html.count(f'id="svg-track-{k}-region-') == 2 * len(mine)  # band and strip
        shaded += bool(mine)
    assert shaded >= 1


def _before_regions(run: Path, folder: Path) -> Path:
    """A copy of the run as VirNucPro wrote it before regions existed."""
    shutil.copytree(run, folder)
    for name in ("regions.tsv", "regions.fasta", "report.html"):
        (folder / name).unlink(missing_ok=True)
    lines = (folder / "sequences.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith("\tregions")
    (folder / "sequences.tsv").write_text("".join(line.rsplit("\t", 1)[0] + "\n"
                                                  for line in lines), encoding="utf-8")
    info = json.loads((folder / "run.json").read_text())
    for key in ("regions", "regions_whole", "regions_provirus", "regions_partial",
                "sequences_with_regions"):
        info["counts"].pop(key, None)
    for key in ("region_gap", "region_min_p", "min_region_length"):
        info["parameters"].pop(key, None)
    (folder / "run.json").write_text(json.dumps(info))
    return folder


def test_report_opens_a_run_from_before_regions_and_says_so(run, tmp_path):
    folder = _before_regions(run, tmp_path / "old")
    run_cli("report", folder)
    page = _page(folder)
    assert 'id="regions-note"' in page and "virnucpro rescore" in page
    assert 'id="regions-summary"' not in page and "-region-1-" not in page
    assert page.count("<tr><td>") == len(read_table(folder / "sequences.tsv"))


def test_report_names_a_regions_tsv_with_a_wrong_header(run, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(run, folder)
    text = (folder / "regions.tsv").read_text(encoding="utf-8")
    (folder / "regions.tsv").write_text(text.replace("\tkind\n", "\ttype\n", 1),
                                        encoding="utf-8")
    proc = run_cli("report", folder, "-o", tmp_path / "r.html", check=False)
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert f"{folder / 'regions.tsv'}: no column kind" in proc.stderr
    assert not (tmp_path / "r.html").exists()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.mark.slow
def test_the_page_renders_in_a_headless_browser(run, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium executable found")
    import matplotlib.image
    import numpy as np

    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1200,2000", (run / "report.html").resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = matplotlib.image.imread(shot)[..., :3]
    colours = np.unique((pixels.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    non_white = (pixels < 0.95).any(axis=-1).mean()
    assert len(colours) > 200, len(colours)
    assert non_white > 0.05, non_white
    # The call colours of the plots are on screen: viral red and non-viral blue.
    for rgb in ((0xC8, 0x10, 0x2E), (0x2B, 0x6C, 0xB0)):
        assert (np.abs(colours.astype(int) - rgb).sum(axis=1) <= 6).any(), rgb
