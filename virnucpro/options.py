"""The options of a prediction, each declared once: `OPTIONS`, the one table.

An entry names the setting (PredictConfig's field, the submit option's key, run.json's
parameter), its type, default, help, the commands that take it and its kind: what it shapes.
The click options of predict, submit, rescore and train (virnucpro/cli/flags.py), the daemon's
submit checks (daemon/protocol.py), a job's settings (`job_settings`) and PredictConfig's
defaults, resume key and table-only settings all derive from it. Stdlib only: the daemon's
supervisor, the client and the dashboard import it, never torch or numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from virnucpro.chunking import CHUNK_SIZES

# Kinds: what an option shapes, hence what a change of it on --resume means.
SHARDS = "shards"  # the shard files: part of the resume key, a change refuses a resume
TABLES = "tables"  # only the tables: applied to a finished run from its scores (--resume, rescore)
ENGINE = "engine"  # only how the shards are scored (precision is keyed with the model files)
RUN = "run"  # the run's handling: its models, its folder, its report

# The commands that take table options, and the headings of predict --help (in this order).
PREDICT, SUBMIT, RESCORE, TRAIN = "predict", "submit", "rescore", "train"
GROUPS = {"basic": "Basic options", "engine": "Engine options", "regions": "Region options",
          "output": "Output options"}

ENGINES = ("auto", "local", "pool", "ray")
PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True, eq=False)
class Option:
    name: str
    type: type  # of the value: int, float, bool or str
    default: Any
    help: str  # predict's words; other commands' default remark is added to them
    kind: str  # SHARDS, TABLES, ENGINE or RUN
    group: str  # a key of GROUPS
    commands: tuple[str, ...] = (PREDICT,)
    flag: str = ""  # the long flag when not --name-with-dashes
    metavar: str | None = None
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    unit: str = ""  # named in a range's message: "region_gap must be at least 0 (chunks)"
    default_text: str = ""  # what a default of None means: "[default: its call]"
    negatable: bool = False  # a flag with its --no- form on predict (--report/--no-report)
    none_as: str = ""  # where None is the run's (rescore), the word that asks for None
    word: str = ""  # a word the flag takes for the default None everywhere: "--batch-tokens auto"
    hidden: bool = False
    attr: str = ""  # where PredictConfig holds it when not under its name: "engine.persistent"
    help_for: Mapping[str, str] = field(default_factory=dict)  # a command's own words, whole
    label: str = ""  # its name in a job's detail on the dashboard; "": not shown there

    @property
    def long_flag(self) -> str:
        return self.flag or option_flag(self.name)

    @property
    def path(self) -> str:
        """PredictConfig's attribute: a field, or `engine.<field>` of its EngineConfig."""
        return self.attr or self.name

    def json_types(self) -> tuple[type, ...]:
        """The JSON values a submit may give it (a bool is never an int, nor the reverse)."""
        types: tuple[type, ...] = {int: (int,), float: (int, float), bool: (bool,),
                                   str: (str,)}[self.type]
        return types + ((type(None),) if self.default is None else ())

    def value(self, raw: Any) -> Any:
        """A checked JSON value as the setting holds it: 1 -> 1.0 for a float."""
        return float(raw) if self.type is float and raw is not None else raw

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, in the words the daemon replies."""
        if value is None:
            return None
        if self.choices and value not in self.choices:
            return f"{self.name} must be {' or '.join(map(str, self.choices))}"
        low, high = self.min, self.max
        unit = f" ({self.unit})" if self.unit else ""
        if low is not None and high is not None and not low <= float(value) <= high:
            return f"{self.name} must be between {low:g} and {high:g}{unit}"
        if low is not None and high is None and float(value) < low:
            return f"{self.name} must be at least {low:g}{unit}"
        return None


_ALL = (PREDICT, SUBMIT)
_RUN_ENGINE = (PREDICT, TRAIN)
_REGIONS = (PREDICT, SUBMIT, RESCORE)

# The order is the submit options' (protocol.SUBMIT_OPTIONS, a job's stored options) and, in
# each group, predict --help's.
OPTIONS: tuple[Option, ...] = (
    Option("chunk_size", int, 500, "Chunk length; picks the matching published classifier.",
           SHARDS, "basic", (PREDICT, SUBMIT, TRAIN), choices=CHUNK_SIZES,
           help_for={TRAIN: "Chunk length of the features and of the new classifier."},
           label="chunk size"),
    Option("models", str, "published", "Model set: published, tiny, an imported name, or a "
           "folder.", RUN, "basic", (PREDICT, SUBMIT, TRAIN), metavar="NAME|PATH",
           help_for={SUBMIT: "Model set: published, tiny, an imported name, or a folder "
                     "[default: the daemon's set when it was started with one "
                     "(`virnucpro-daemon status --json`: default_models), else published].",
                     TRAIN: "The base set whose two big models make the features."},
           label="models"),
    Option("threshold", float, 0.5, "Share of scored chunks that must be viral for a sequence "
           "to be called viral.", TABLES, "basic", _REGIONS, min=0.0, max=1.0, label="threshold"),
    Option("min_length", int, 1, "Shorter sequences get an unscored row instead of a score.",
           SHARDS, "basic", _ALL, min=1, label="min length"),
    Option("save_embeddings", bool, False, "Also write the per-frame features.", SHARDS,
           "output", _ALL, label="embeddings"),
    Option("rename_duplicates", bool, False, "Suffix repeated sequence ids (_2, _3...) instead "
           "of refusing the input.", SHARDS, "basic", _ALL, label="rename duplicates"),
    Option("force", bool, False, "Overwrite a non-empty output folder.", RUN, "basic", _ALL,
           help_for={SUBMIT: "Overwrite a non-empty output folder (one that holds a finished "
                     "run too)."}),
    # On submit (version 5): a finished run in the output folder is taken as done, its
    # table-only settings applied from its stored scores; without it, such a folder is refused.
    Option("resume", bool, False, "Continue an interrupted run in OUTDIR.", RUN, "basic", _ALL,
           help_for={SUBMIT: "Take up the finished run in the output folder: its table-only "
                     "settings (--threshold, the region options) applied from its stored "
                     "scores, as `predict --resume` does."}),
    Option("report", bool, True, "Write OUTDIR/report.html (one per input folder) at the end "
           "of the run.", RUN, "output", _ALL, negatable=True,
           help_for={SUBMIT: "Ask for no report (option report=false)."}, label="report"),
    # The viral regions' rule (virnucpro.regions.RegionRule; on submit since version 4).
    Option("region_gap", int, 1, "Viral regions: bridge runs of at most N non-viral or "
           "unscored chunks between viral ones.", TABLES, "regions", _REGIONS, metavar="N",
           min=0, unit="chunks", label="region gap"),
    Option("region_min_p", float, None, "Viral regions: a chunk counts as viral when its max "
           "P(virus) is at least F.", TABLES, "regions", _REGIONS, metavar="F", min=0.0,
           max=1.0, default_text="its call", none_as="call", label="region min P(virus)"),
    Option("min_region_length", int, 1000, "Viral regions shorter than this are dropped (a "
           "whole-sequence one is kept).", TABLES, "regions", _REGIONS, metavar="BP", min=1,
           unit="bp", label="min region length"),
    # How the shards are scored: EngineConfig (virnucpro/engine_config.py), devices and batches.
    Option("device", str, "auto", "auto (every GPU, else the CPU), cpu, cuda:N, or a list: "
           "cuda:0,cuda:1 (cpu,cpu too).", ENGINE, "engine", _RUN_ENGINE, flag="--devices"),
    Option("engine", str, "auto", "local: this process, one device; pool: one worker process "
           "per device; ray: Ray actors on a cluster (pip install 'virnucpro[ray]'). auto: "
           "local for one device, pool for several.", ENGINE, "engine", _RUN_ENGINE,
           choices=ENGINES, attr="engine.engine"),
    Option("ray_address", str, None, "Ray cluster to join (auto: the one this node belongs "
           "to).", ENGINE, "engine", metavar="auto|HOST:PORT",
           default_text="start a local Ray instance", attr="engine.ray_address"),
    Option("workers", int, None, "Ray actors, each with its own models.", ENGINE, "engine",
           min=1, default_text="every GPU of the cluster divided by --gpus-per-worker, else "
           "one per node", attr="engine.workers"),
    Option("gpus_per_worker", float, None, "GPUs per Ray actor.", ENGINE, "engine", min=0,
           default_text="1 when the cluster has GPUs, else 0", attr="engine.gpus_per_worker"),
    Option("persistent_models", bool, False, "Keep workers and their models loaded across the "
           "inputs of this command (faster for many inputs) instead of loading them per input "
           "(less memory held).", ENGINE, "engine", _RUN_ENGINE, negatable=True,
           attr="engine.persistent"),
    Option("cache_clear_interval", int, 50, "Free the GPU allocator cache every N shards in a "
           "worker (0: never).", ENGINE, "engine", min=0, attr="engine.cache_clear_interval"),
    Option("worker_timeout", float, 600.0, "Seconds a worker may take to load its models "
           "before the run gives up.", ENGINE, "engine", min=1, attr="engine.worker_timeout"),
    Option("batch_tokens", int, None, "Padded tokens per model batch. auto: 4096 on the CPU; "
           "on a GPU picked from the memory free after loading (said in the log and run.json).",
           ENGINE, "engine", _RUN_ENGINE, min=16, default_text="auto", word="auto",
           metavar="N|auto"),
    Option("threads", int, None, "Torch CPU threads.", ENGINE, "engine", _RUN_ENGINE, min=1,
           attr="engine.threads", help_for={TRAIN: "Torch CPU threads (embedding and training)."}),
    Option("precision", str, "auto", "auto: bfloat16 weights on GPUs (the fast path; features "
           "and classifier stay float32), float32 on the CPU.", ENGINE, "engine",
           choices=PRECISIONS, attr="engine.precision"),
    Option("shard_frames", int, 2048, "Frames per shard (the unit of resume); for tests and "
           "tuning.", SHARDS, "engine", _RUN_ENGINE, min=1, hidden=True),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def default(name: str) -> Any:
    return BY_NAME[name].default


def names(kind: str | None = None, command: str | None = None,
          table: Iterable[Option] = OPTIONS) -> tuple[str, ...]:
    """The options of one kind, or taken by one command, in table order."""
    return tuple(o.name for o in table
                 if (kind is None or o.kind == kind) and (command is None or command in o.commands))


def option_flag(name: str) -> str:
    """A setting's command-line option: chunk_size -> --chunk-size, device -> --devices."""
    known = BY_NAME.get(name)
    return known.flag if known is not None and known.flag else "--" + name.replace("_", "-")


def job_settings(options: Mapping[str, Any], table: Iterable[Option] = OPTIONS) -> dict:
    """A daemon job's stored options as settings: every submit option, its default where a job
    stored by an earlier version lacks it (before protocol 4: the region options), numbers as
    their type."""
    return {o.name: o.value(options.get(o.name, o.default)) for o in table if SUBMIT in o.commands}
