"""The Snakemake workflow's scripts on their own: the sample sheet's checks, the option
strings' checks, and the summary row read from a run's files (tests/integration/
test_workflow.py runs the whole workflow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workflow_scripts import REPO, samples, settings, summarize

FASTA = ">a\nACGT\n"


def sheet(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "samples.tsv"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(samples.SampleSheetError) as caught:
        samples.read_sample_sheet(sheet(tmp_path, text), base=tmp_path)
    return caught.value.problems


# -- the sample sheet ------------------------------------------------------------------------


def test_a_sheet_gives_its_samples_in_order_with_paths_as_written(tmp_path: Path) -> None:
    (tmp_path / "a.fa").write_text(FASTA)
    (tmp_path / "reads").mkdir()
    (tmp_path / "reads" / "b.fq").write_text("@b\nACGT\n+\nIIII\n")
    found = samples.read_sample_sheet(sheet(tmp_path, (
        "# made by hand\n"
        "sample\tpath\tnote\n"
        "\n"
        "s2.x_y-z\ta.fa\tfirst\n"
        f"S1\t{tmp_path / 'reads' / 'b.fq'}\n")), base=tmp_path)
    assert [(s.name, s.path) for s in found] == [
        ("s2.x_y-z", Path("a.fa")), ("S1", tmp_path / "reads" / "b.fq")]
    assert found[0].absolute == Path.cwd() / "a.fa"  # from where Snakemake runs


def test_the_columns_may_come_in_any_order(tmp_path: Path) -> None:
    (tmp_path / "a.fa").write_text(FASTA)
    found = samples.read_sample_sheet(sheet(tmp_path, "path\tsample\na.fa\tA\n"), base=tmp_path)
    assert [(s.name, str(s.path)) for s in found] == [("A", "a.fa")]


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    assert problems(tmp_path, "name\tpath\nA\ta.fa\n") == [
        "line 1: missing column sample in the header ['name', 'path']"]


def test_a_sheet_that_is_not_tab_separated_is_said_to_look_so(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "sample,path\nA,a.fa\n")
    assert "missing columns sample, path" in problem and "tab-separated" in problem


def test_every_bad_row_is_listed_at_once_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "a.fa").write_text(FASTA)
    (tmp_path / "folder").mkdir()
    listed = problems(tmp_path, (
        "sample\tpath\n"
        "A\ta.fa\n"
        "my sample\ta.fa\n"
        "x/y\ta.fa\n"
        ".hidden\ta.fa\n"
        "A\ta.fa\n"
        "B\tmissing.fa\n"
        "C\tfolder\n"
        "D\n"
        "logs\ta.fa\n"))
    assert listed[0].startswith("line 3: bad sample name 'my sample': ")
    assert "no spaces, no slashes" in listed[0]
    assert listed[1].startswith("line 4: bad sample name 'x/y'")
    assert listed[2].startswith("line 5: bad sample name '.hidden'")
    assert listed[3:] == [
        "line 6: duplicate sample name 'A' (first on line 2)",
        "line 7: the file of sample 'B', missing.fa, does not exist",
        "line 8: the file of sample 'C', folder, is not a file",
        "line 9: sample 'D' has no path",
        "line 10: the sample name 'logs' is taken by the workflow's own files",
    ]


def test_the_error_names_the_sheet_and_each_problem(tmp_path: Path) -> None:
    path = sheet(tmp_path, "sample\tpath\nA\tnope.fa\n")
    with pytest.raises(samples.SampleSheetError, match=r"samples\.tsv: line 2: the file of "
                       r"sample 'A', nope\.fa, does not exist"):
        samples.read_sample_sheet(path, base=tmp_path)


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "sample\tpath\n"])
def test_an_empty_sheet_is_refused(tmp_path: Path, text: str) -> None:
    assert len(problems(tmp_path, text)) == 1


def test_a_sheet_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(samples.SampleSheetError, match="cannot be read"):
        samples.read_sample_sheet(tmp_path / "none.tsv")


def test_the_example_sheet_reads_from_the_repository_root() -> None:
    found = samples.read_sample_sheet(REPO / "config" / "samples.tsv", base=REPO)
    assert [s.name for s in found] == ["viral", "nonviral"]


# -- the option strings ----------------------------------------------------------------------


def test_options_predict_and_submit_share_pass_as_words() -> None:
    assert settings.check_options("--threshold 0.6 --min-region-length=500 "
                                  "--rename-duplicates") == [
        "--threshold", "0.6", "--min-region-length=500", "--rename-duplicates"]
    assert settings.check_options("") == []


def test_an_engine_option_in_options_is_sent_to_predict_extra() -> None:
    with pytest.raises(settings.SettingsError, match=r"--batch-tokens cannot go there.*"
                       r"engine options go in predict\.extra"):
        settings.check_options("--batch-tokens 4096")


def test_what_the_workflow_sets_is_refused_with_the_key_to_use() -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.check_options("--chunk-size 300 --force")
    assert "--chunk-size: use the `chunk_size` key" in str(caught.value)
    assert "--force: the workflow chooses --force or --resume itself" in str(caught.value)
    with pytest.raises(settings.SettingsError, match=r"predict\.extra: -o: the output folder"):
        settings.check_extra("--engine pool -o elsewhere")
    with pytest.raises(settings.SettingsError, match="--no-report: the report is one of"):
        settings.check_extra("--no-report")


def test_predict_extra_takes_the_engine_options() -> None:
    assert settings.check_extra("--engine pool --batch-tokens auto --threshold 0.7") == [
        "--engine", "pool", "--batch-tokens", "auto", "--threshold", "0.7"]


def test_the_shared_options_are_those_predict_and_submit_both_take() -> None:
    """settings.SHARED is a copy (the script runs where virnucpro is not installed): held to
    the two click commands, less what the workflow sets itself."""
    from tests.unit.test_documented_flags import option_names
    from virnucpro.cli.root import main

    both = option_names(main.commands["predict"]) & option_names(main.commands["submit"])
    assert set(settings.SHARED) == both - set(settings.SET_BY_THE_WORKFLOW) - {"--help"}
    assert set(settings.SET_BY_THE_WORKFLOW) <= option_names(main.commands["predict"])


def test_an_unclosed_quote_is_named_with_its_key() -> None:
    with pytest.raises(settings.SettingsError, match="predict.extra: .*closing quotation"):
        settings.check_extra("--engine 'pool")


# -- the summary -----------------------------------------------------------------------------


def finished_run(folder: Path, counts: dict, rows: list[tuple[str, int, str]],
                 status: str = "completed") -> Path:
    """A run folder as predict leaves it, with only what the summary reads."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status, "counts": counts}))
    lines = ["sequence_id\tlength\tchunks\tcall"] + [f"{i}\t{n}\t1\t{c}" for i, n, c in rows]
    (folder / "sequences.tsv").write_text("\n".join(lines) + "\n")
    return folder


COUNTS = {"sequences": 3, "sequences_virus": 2, "sequences_others": 1, "regions": 4,
          "regions_provirus": 1, "regions_whole": 2, "regions_partial": 1, "bases": 1600}
ROWS = [("a", 1000, "virus"), ("b", 500, "others"), ("c", 100, "virus")]


def test_a_row_holds_the_runs_counts_and_the_length_of_its_viral_sequences(tmp_path) -> None:
    folder = finished_run(tmp_path / "s1", COUNTS, ROWS)
    assert summarize.summarize_run("s1", folder) == summarize.SampleSummary(
        sample="s1", sequences=3, viral=2, regions=4, proviruses=1, viral_bases=1100)


def test_the_table_has_a_header_and_a_line_per_sample_in_order(tmp_path: Path) -> None:
    rows = [summarize.summarize_run("s1", finished_run(tmp_path / "s1", COUNTS, ROWS)),
            summarize.SampleSummary("s0", 0, 0, 0, 0, 0)]
    summarize.write_summary(rows, tmp_path / "summary.tsv")
    assert (tmp_path / "summary.tsv").read_text() == (
        "sample\tsequences\tviral\tregions\tproviruses\tviral_bases\n"
        "s1\t3\t2\t4\t1\t1100\n"
        "s0\t0\t0\t0\t0\t0\n")
    assert summarize.read_summary(tmp_path / "summary.tsv") == rows


def test_the_command_line_writes_the_same_table(tmp_path: Path) -> None:
    folder = finished_run(tmp_path / "s1", COUNTS, ROWS)
    assert summarize.main(["-o", str(tmp_path / "t.tsv"), f"s1={folder}"]) == 0
    assert summarize.read_summary(tmp_path / "t.tsv") == [summarize.summarize_run("s1", folder)]


def test_a_folder_without_a_finished_run_is_named(tmp_path: Path) -> None:
    with pytest.raises(summarize.SummaryError, match=r"sample s1: no readable run\.json"):
        summarize.summarize_run("s1", tmp_path)
    unfinished = finished_run(tmp_path / "s2", COUNTS, ROWS, status="running")
    with pytest.raises(summarize.SummaryError, match="sample s2: .* is not completed"):
        summarize.summarize_run("s2", unfinished)


def test_a_run_json_without_region_counts_is_named(tmp_path: Path) -> None:
    old = {k: v for k, v in COUNTS.items() if not k.startswith("regions")}
    folder = finished_run(tmp_path / "s1", old, ROWS)
    with pytest.raises(summarize.SummaryError, match="has no counts regions, regions_provirus"):
        summarize.summarize_run("s1", folder)


# -- the example config ----------------------------------------------------------------------


def test_the_example_config_sets_every_key_of_the_schema_and_no_other() -> None:
    yaml = pytest.importorskip("yaml")  # through huggingface_hub and ray; Snakemake has its own
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    jsonschema.validate(config, schema)
    assert set(config) == set(schema["properties"])
    for key in ("predict", "daemon"):
        assert set(config[key]) == set(schema["properties"][key]["properties"])
