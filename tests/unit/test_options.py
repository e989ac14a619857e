"""The option table (virnucpro/options.py) reaches every place a predict option is used: the
click options of predict, submit, rescore and train, the daemon's submit checks, a job's config
and PredictConfig; a new entry reaches them with nothing else written; predict --help groups
its options under the table's headings."""

from __future__ import annotations

import dataclasses

import click
import pytest
from click.testing import CliRunner

from virnucpro.cli.flags import GroupedCommand, asked, table_options
from virnucpro.cli.predict import predict
from virnucpro.cli.rescore import rescore
from virnucpro.cli.train import train
from virnucpro.config import TABLE_SETTINGS, PredictConfig
from virnucpro.daemon import protocol as P
from virnucpro.daemon.client_cli import submit
from virnucpro.daemon.engines import RunnerConfig
from virnucpro.daemon.jobs import InputFile, JobRecord, JobState
from virnucpro.daemon.scheduler import Scheduler
from virnucpro.daemon.service import JobService
from virnucpro.daemon.store import MemoryJobStore
from virnucpro.engine_config import EngineConfig
from virnucpro.options import (
    GROUPS,
    OPTIONS,
    PREDICT,
    RESCORE,
    SHARDS,
    SUBMIT,
    TABLES,
    TRAIN,
    Option,
    job_settings,
    names,
)

COMMANDS = {PREDICT: predict, SUBMIT: submit, RESCORE: rescore, TRAIN: train}


def _param(command: click.Command, name: str) -> click.Option:
    found = [p for p in command.params if isinstance(p, click.Option) and p.name == name]
    assert found, f"{command.name} has no option {name}"
    return found[0]


def _parsed_default(command: click.Command, name: str) -> object:
    """What the command's function gets for the option when it is not given."""
    ctx = command.make_context(command.name, ["x", "-o", "x", "--viral", "v", "--others", "o"]
                               if command is train else ["x", "-o", "x"], resilient_parsing=True)
    return ctx.params[name]


def _config_default(option: Option) -> object:
    holder: type = EngineConfig if option.path.startswith("engine.") else PredictConfig
    attr = option.path.removeprefix("engine.")
    return {f.name: f for f in dataclasses.fields(holder)}[attr].default


# -- each option, everywhere the table says ------------------------------------------------------


@pytest.mark.parametrize("option", [o for o in OPTIONS if PREDICT in o.commands], ids=lambda o: o.name)
def test_a_predict_option_is_on_predict_and_in_predict_config_with_the_tables_default(
        option: Option) -> None:
    param = _param(predict, option.name)
    assert option.long_flag in param.opts
    assert param.hidden is option.hidden
    assert _parsed_default(predict, option.name) == option.default
    assert _config_default(option) == option.default
    assert getattr(param, "group", None) == option.group


@pytest.mark.parametrize("option", [o for o in OPTIONS if SUBMIT in o.commands], ids=lambda o: o.name)
def test_a_submit_option_is_on_submit_and_checked_by_the_protocol_with_the_same_default(
        option: Option) -> None:
    flag = ("--no-" + option.long_flag[2:]) if option.type is bool and option.default \
        else option.long_flag
    assert any(flag in p.opts for p in submit.params if isinstance(p, click.Option))
    assert P.SUBMIT_OPTIONS[option.name][1] == option.default
    assert P.check_options({})[option.name] == option.default
    assert job_settings({})[option.name] == option.default


def test_submit_sends_only_the_options_given() -> None:
    def sent(*args: str) -> dict:
        return asked(dict(submit.make_context("submit", ["f.fa", *args]).params))

    assert sent() == {}  # the daemon fills in the defaults
    assert sent("--chunk-size", "300", "--no-report", "--force", "--models", "published",
                "--region-min-p", "0.25") == {"chunk_size": 300, "models": "published",
                                              "force": True, "report": False,
                                              "region_min_p": 0.25}


def test_the_submit_options_on_the_wire_are_protocol_5s() -> None:
    # The wire's shape, pinned: a change here needs a new protocol version (docs/protocol.md).
    num, null = (int, float), type(None)
    assert P.PROTOCOL_VERSION == 5
    wire = {
        "chunk_size": ((int,), 500), "models": ((str,), "published"), "threshold": (num, 0.5),
        "min_length": ((int,), 1), "save_embeddings": ((bool,), False),
        "rename_duplicates": ((bool,), False), "force": ((bool,), False),
        "resume": ((bool,), False), "report": ((bool,), True), "region_gap": ((int,), 1),
        "region_min_p": ((*num, null), None), "min_region_length": ((int,), 1000)}
    assert wire == P.SUBMIT_OPTIONS
    assert list(P.SUBMIT_OPTIONS) == list(wire) == list(names(command=SUBMIT))  # a job's order


@pytest.mark.parametrize("option", [o for o in OPTIONS if {RESCORE, TRAIN} & set(o.commands)],
                         ids=lambda o: o.name)
def test_rescore_and_train_take_their_options_from_the_table(option: Option) -> None:
    if RESCORE in option.commands:
        param = _param(rescore, option.name)
        assert option.long_flag in param.opts and param.default is None  # the run's
    if TRAIN in option.commands:
        param = _param(train, option.name)
        assert option.long_flag in param.opts
        assert _parsed_default(train, option.name) == option.default


def test_predict_config_holds_the_table_and_derives_its_kinds_from_it() -> None:
    own = {"inputs", "outdir", "progress", "engine"}  # the run's, not options
    fields = {f.name for f in dataclasses.fields(PredictConfig)} - own
    engine = {f"engine.{f.name}" for f in dataclasses.fields(EngineConfig)}
    assert fields | engine == {o.path for o in OPTIONS if PREDICT in o.commands}
    config = PredictConfig(inputs=(), outdir="o")
    assert set(config.result_key()) == set(names(SHARDS))  # in its files' order: below
    # run.json's names and order of the engine's settings, as they have always been.
    assert list(config.engine.parameters()) == [
        "engine", "ray_address", "workers", "gpus_per_worker", "persistent_models",
        "cache_clear_interval", "worker_timeout", "threads", "precision"]
    assert TABLE_SETTINGS == names(TABLES) == (
        "threshold", "region_gap", "region_min_p", "min_region_length")


def test_a_job_stored_before_the_region_options_runs_with_the_tables_defaults() -> None:
    # The options a 0.1.0 daemon stored (tests/data/daemon/jobs-v0.1.0.sqlite).
    stored = {"chunk_size": 500, "models": "tiny", "threshold": 1, "min_length": 1,
              "save_embeddings": False, "rename_duplicates": True, "force": True, "report": True}
    engine = EngineConfig(engine="pool", workers=3)
    scheduler = Scheduler(JobService(MemoryJobStore(), lambda *a: None),
                          RunnerConfig(devices=["cpu"], persistent=False, engine=engine),
                          engines=None)  # type: ignore[arg-type]
    job = JobRecord(id=1, name="j", state=JobState.LOADING, outdir="/out", options=stored,
                    inputs=(InputFile("/in.fa", 1, 1, ""),), attempts=1)
    first = scheduler.predict_config(job)
    assert (first.region_gap, first.region_min_p, first.min_region_length) == (1, None, 1000)
    assert first.threshold == 1.0 and isinstance(first.threshold, float)
    assert first.rename_duplicates and first.models == "tiny"
    # The daemon's engine settings, with its own models mode (what the job's run.json says).
    assert first.engine == dataclasses.replace(engine, persistent=False)
    persistent = Scheduler(JobService(MemoryJobStore(), lambda *a: None),
                           RunnerConfig(devices=["cpu"], persistent=True, engine=engine),
                           engines=None)  # type: ignore[arg-type]
    assert persistent.predict_config(job).engine == dataclasses.replace(engine, persistent=True)
    assert (first.force, first.resume, first.progress) == (True, False, False)
    again = scheduler.predict_config(job.with_(attempts=2))
    assert (again.force, again.resume) == (False, True)  # a job resumes its own folder


# -- a new option is one entry ----------------------------------------------------------------


KNOB = Option("knob_turns", int, 7, "Turns of the knob.", TABLES, "regions",
              (PREDICT, SUBMIT, RESCORE), metavar="N", min=2, unit="turns")
TABLE = (*OPTIONS, KNOB)


def _command(command: str) -> click.Command:
    @click.command(cls=GroupedCommand)
    @table_options(command, table=TABLE)
    def run(**values: object) -> None:
        click.echo(repr(asked(dict(values), table=TABLE) if command == SUBMIT else values))
    return run


def test_a_new_entry_reaches_the_command_lines_the_checks_and_a_jobs_settings() -> None:
    runner = CliRunner()
    shown = runner.invoke(_command(PREDICT), ["--help"], terminal_width=200).output
    regions = shown.split("Region options:")[1].split("Output options:")[0]
    assert "--knob-turns N" in regions and "[default: 7; x>=2]" in regions
    assert "'knob_turns': 7" in runner.invoke(_command(PREDICT), []).output
    assert "'knob_turns': 3" in runner.invoke(_command(PREDICT), ["--knob-turns", "3"]).output
    refused = runner.invoke(_command(PREDICT), ["--knob-turns", "1"])
    assert refused.exit_code == 2 and "x>=2" in refused.output
    assert runner.invoke(_command(SUBMIT), []).output.strip() == "{}"
    assert runner.invoke(_command(SUBMIT), ["--knob-turns", "3"]).output.strip() == "{'knob_turns': 3}"
    assert "[default: 7" in runner.invoke(_command(SUBMIT), ["--help"], terminal_width=200).output
    assert "[default: the run's" in runner.invoke(_command(RESCORE), ["--help"],
                                                  terminal_width=200).output
    assert P.check_options({}, table=TABLE)["knob_turns"] == 7
    with pytest.raises(P.ProtocolError, match="knob_turns must be at least 2 \\(turns\\)") as err:
        P.check_options({"knob_turns": 1}, table=TABLE)
    assert err.value.code is P.ErrorCode.INVALID
    with pytest.raises(P.ProtocolError, match="'knob_turns' must be int"):
        P.check_options({"knob_turns": True}, table=TABLE)
    assert job_settings({}, table=TABLE)["knob_turns"] == 7
    assert "knob_turns" in names(TABLES, table=TABLE)
    # PredictConfig is a typed dataclass: the one line a new option adds beside its entry is
    # its field (test_predict_config_holds_the_table_and_derives_its_kinds_from_it holds it).


# -- predict --help ---------------------------------------------------------------------------


def _sections(text: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    heading = ""
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            heading = line[:-1]
            sections[heading] = ""
        elif heading:
            sections[heading] += line + "\n"
    return sections


def test_predict_help_lists_its_options_under_the_basic_engine_regions_and_output_headings() -> None:
    from virnucpro.cli.root import main

    text = CliRunner().invoke(main, ["predict", "--help"], terminal_width=200).output
    sections = _sections(text)
    assert list(sections) == [*GROUPS.values(), "Other options"]
    for option in OPTIONS:
        if PREDICT in option.commands:
            where = [h for h, body in sections.items() if f"{option.long_flag} " in body
                     or f"{option.long_flag}/" in body]
            assert where == ([] if option.hidden else [GROUPS[option.group]]), option.name
    assert "-o, --outdir" in sections["Basic options"]
    for flag in ("--json", "-q, --quiet", "-v, --verbose", "--report / --no-report"):
        assert flag in sections["Output options"]
    assert "--help" in sections["Other options"]


def test_a_jobs_detail_on_the_dashboard_shows_the_options_the_table_labels():
    from rich.console import Console

    from virnucpro.tui.screens.job_detail import parameters_table

    options = P.check_options({"threshold": 0.75, "region_min_p": 0.6, "force": True,
                               "save_embeddings": True})
    job = JobRecord(id=1, name="j", state=JobState.QUEUED, outdir="/out", options=options,
                    inputs=(InputFile("/in.fa", 1, 1, ""),))
    console = Console(width=400, record=True)
    console.print(parameters_table(job))
    text = console.export_text()
    labelled = [o for o in OPTIONS if o.label]
    assert {o.name for o in labelled} <= {o.name for o in OPTIONS if SUBMIT in o.commands}
    for o in labelled:
        value = options[o.name]
        shown = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        assert f"{o.label} {shown}" in text, (o.name, text)
    # Unlabelled options (how the folder is taken: force, resume) stay out of the detail.
    assert "force" not in text and "resume" not in text


def test_the_resume_key_keeps_the_order_earlier_versions_wrote_to_state_json():
    # state.json and run.json's resume_key have always listed these in this order: a file
    # written now reads as one of before, byte for byte.
    key = PredictConfig(inputs=(), outdir=".").result_key()
    assert list(key) == ["chunk_size", "min_length", "shard_frames", "rename_duplicates",
                         "save_embeddings"]
    assert set(key) == {o.name for o in OPTIONS if o.kind == SHARDS}
