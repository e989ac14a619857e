"""run.json: what one input's finished run records, as one dataclass (`RunRecord`) and its codec.

`RunRecord.from_json` reads what every version wrote; `to_json` gives today's keys in today's
order, so a record of today's layout read and written back (`write`, through
`write_json_atomic`) is the same file byte for byte (an earlier version's file is written back
in today's order). The record is frozen, but its objects (`timings`, `outputs`...) are plain
dicts that a run fills in after it is built (the report's time, the report itself). `read_finished_run(root)` is the one reader of a finished run's folder. Standard
library only: the dashboard and the daemon read it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from virnucpro.errors import OutputError
from virnucpro.layout import OutputLayout, write_json_atomic

COMPLETED = "completed"  # the one status a run.json has ever held: it is written last


class RunInput(TypedDict, total=False):
    source: str  # as given: a path or "-"
    name: str  # the input's name: its subfolder when there are several
    path: str  # the file scored ("-": read from standard input)
    compression: str
    sha256: str
    size: int
    records: int
    bases: int


class EngineInfo(TypedDict, total=False):
    name: str
    devices: list[str]
    persistent_models: bool
    model_loads_so_far: int
    worker_deaths: int
    workers: list[dict]  # each worker's report (ModelScorer.report); absent in older runs


class ModelFile(TypedDict):
    path: str
    size: int
    sha256: str | None


class ModelsInfo(TypedDict, total=False):
    """`ModelSet.describe()`."""

    name: str
    root: str
    is_tiny: bool
    source: str | None
    files: list[ModelFile]


# One `virnucpro rescore` of the run (the key "from" is a Python keyword: the functional form).
Rescoring = TypedDict("Rescoring", {
    "at": str, "virnucpro_version": str, "command": list[str], "from": str, "to": str,
    "in_place": bool, "before": dict[str, Any], "settings": dict[str, Any],
    "sequence_files": str, "seconds": float}, total=False)


# The objects of run.json (kept as dicts: a TypedDict is one at run time, so a record keeps
# every key it was read with, and an old file writes back as it was).
_OBJECTS = ("input", "parameters", "engine", "models", "resume_key", "counts", "timings",
            "outputs")
_TEXTS = ("virnucpro_version", "status", "started", "finished")


@dataclass(frozen=True)
class RunRecord:
    """run.json. Every version wrote the scalars, `command` and the objects but `engine` and
    `resume_key`, which the first release lacked: those read as None and are left out when
    written back. A scalar missing from a hand-written file reads as None and is left out too;
    a missing object reads as empty. `rescored` is written once there is an entry; keys this
    version does not know are kept, after the others (`extra`)."""

    virnucpro_version: str | None = None
    status: str | None = None  # "completed": written last, a run.json means a finished run
    started: str | None = None  # ISO 8601, to the second, UTC
    finished: str | None = None
    command: list[str] | None = None  # sys.argv of the run
    input: RunInput = field(default_factory=dict)  # type: ignore[assignment]
    # PredictConfig.parameters() (the engine's settings flat, under their names of old) and
    # outdir, inputs, resumed, shards_scored_now. Earlier versions: no region settings (the
    # rule's defaults apply: RegionRule.from_parameters), the first one also `threads` and
    # `scorer` instead of the engine's settings; nothing here reads those.
    parameters: dict[str, Any] = field(default_factory=dict)
    engine: EngineInfo | None = None
    models: ModelsInfo = field(default_factory=dict)  # type: ignore[assignment]
    tiny: bool | None = None
    resume_key: dict[str, Any] | None = None  # input, parameters, models: what a resume matches
    counts: dict[str, int] = field(default_factory=dict)  # TableWriter.counts
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # what was published: name -> path
    rescored: list[Rescoring] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    # -- the codec -----------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: object) -> RunRecord:
        """The record of a run.json's content (of any version); ValueError naming the key
        whose value has the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"not an object but {_kind(data)}")
        for key in _TEXTS:
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"{key!r} is {_kind(data[key])}, not text")
        for key in _OBJECTS:
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise ValueError(f"{key!r} is {_kind(data[key])}, not an object")
        for key in ("command", "rescored"):
            if data.get(key) is not None and not isinstance(data[key], list):
                raise ValueError(f"{key!r} is {_kind(data[key])}, not a list")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            virnucpro_version=data.get("virnucpro_version"), status=data.get("status"),
            started=data.get("started"), finished=data.get("finished"),
            command=data.get("command"), input=data.get("input") or {},
            parameters=data.get("parameters") or {}, engine=data.get("engine"),
            models=data.get("models") or {}, tiny=data.get("tiny"),
            resume_key=data.get("resume_key"), counts=data.get("counts") or {},
            timings=data.get("timings") or {}, outputs=data.get("outputs") or {},
            rescored=data.get("rescored") or [],
            extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        """run.json's content: today's keys in today's order (those left out: see the class)."""
        out: dict[str, Any] = {}
        for key, value in (
                ("virnucpro_version", self.virnucpro_version), ("status", self.status),
                ("started", self.started), ("finished", self.finished),
                ("command", self.command), ("input", self.input),
                ("parameters", self.parameters), ("engine", self.engine),
                ("models", self.models), ("tiny", self.tiny), ("resume_key", self.resume_key),
                ("counts", self.counts), ("timings", self.timings), ("outputs", self.outputs),
                ("rescored", self.rescored or None)):
            if value is not None:
                out[key] = value
        return out | self.extra

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """The record in the file `path`; OutputError when it cannot be read as one."""
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise OutputError(f"unreadable {Path(path).name}: {exc}", path=path) from exc

    @classmethod
    def find(cls, path: Path) -> RunRecord | None:
        """The record in `path`, or None when there is none that reads (a run that never
        finished, or a file that is not one): what deciding how to use a folder needs."""
        try:
            return cls.read(path)
        except OutputError:
            return None

    def write(self, path: Path) -> None:
        write_json_atomic(Path(path), self.to_json())

    # -- what readers ask ----------------------------------------------------------------------
    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def is_tiny(self) -> bool:
        """Scored with the tiny set (seeded random weights: calls that mean nothing)."""
        return bool(self.tiny or self.models.get("is_tiny"))

    @property
    def model_set(self) -> str | None:
        """The model set's name (the `--models` given, for a record without `models`)."""
        return self.models.get("name", self.parameters.get("models"))

    @property
    def chunk_size(self) -> int | None:
        size = self.parameters.get("chunk_size")
        return None if size is None else int(size)

    @property
    def threshold(self) -> float:
        """The viral-share threshold of the calls (0.5, the default, when not recorded)."""
        return float(self.parameters.get("threshold", 0.5))


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def run_subfolders(root: Path) -> list[Path]:
    """The input subfolders of `root` that hold a run.json (a run of several inputs)."""
    return sorted(p.parent for p in Path(root).glob(f"*/{OutputLayout.RUN}"))


def read_finished_run(root: Path, *, verb: str = "report") -> RunRecord:
    """The record of the completed run in the folder `root`, or an OutputError that says what
    is wrong with it (`verb` names the command in the hint for a folder of several runs)."""
    root = Path(root)
    if not root.is_dir():
        raise OutputError("no such folder (give the output folder of a finished run)", path=root)
    layout = OutputLayout(root)
    if not layout.run_json.is_file():
        if runs := run_subfolders(root):
            raise OutputError(f"holds the runs of several inputs; {verb} each folder: "
                              + ", ".join(str(r) for r in runs), path=root)
        raise OutputError(f"no {layout.RUN}: not the output folder of a finished run", path=root)
    record = RunRecord.read(layout.run_json)
    if not record.completed:
        raise OutputError("the run did not complete (finish it with predict --resume)",
                          path=root)
    for path in (layout.sequences, layout.chunks):
        if not path.is_file():
            raise OutputError(f"{path.name} is missing", path=root)
    return record
