"""What one prediction is asked to do: `PredictConfig` (with its `EngineConfig`), and the
settings that only the tables depend on.

Every setting is an option of the table (virnucpro/options.py): its default, its kind (what
shapes the shards, hence `result_key`; what only the tables, hence `TABLE_SETTINGS`) and its
spelling (`option_flag`) come from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from virnucpro.engine_config import EngineConfig
from virnucpro.options import BY_NAME, SHARDS, TABLES, default, names, option_flag
from virnucpro.regions import RegionRule

__all__ = ["TABLE_SETTINGS", "PredictConfig", "option_flag"]


@dataclass(frozen=True)
class PredictConfig:
    inputs: tuple[str, ...]
    outdir: Path
    chunk_size: int = default("chunk_size")
    models: str = default("models")
    device: str = default("device")  # not for engine ray: its devices are the cluster's
    batch_tokens: int | None = default("batch_tokens")
    threshold: float = default("threshold")
    min_length: int = default("min_length")
    save_embeddings: bool = default("save_embeddings")
    rename_duplicates: bool = default("rename_duplicates")
    force: bool = default("force")
    resume: bool = default("resume")
    shard_frames: int = default("shard_frames")
    progress: bool = True
    engine: EngineConfig = field(default_factory=EngineConfig)  # how shards are scored
    report: bool = default("report")  # write OUTDIR/report.html at the end (virnucpro.report)
    region_gap: int = default("region_gap")  # the region rule (virnucpro.regions)
    region_min_p: float | None = default("region_min_p")
    min_region_length: int = default("min_region_length")

    @classmethod
    def of(cls, inputs: Iterable[str], outdir: Path | str, settings: Mapping[str, Any],
           **overrides: Any) -> PredictConfig:
        """A config from the table's settings by name (a command line's, a job's), those that
        EngineConfig holds (`engine.<field>`) put there unless `engine` is among `overrides`,
        which win over `settings`."""
        own: dict[str, Any] = {}
        engine: dict[str, Any] = {}
        for name, value in settings.items():
            path = BY_NAME[name].path
            if path.startswith("engine."):
                engine[path.removeprefix("engine.")] = value
            else:
                own[path] = value
        if "engine" not in overrides:
            overrides["engine"] = EngineConfig(**engine)
        return cls(inputs=tuple(inputs), outdir=Path(outdir), **{**own, **overrides})

    @property
    def regions(self) -> RegionRule:
        return RegionRule(gap=self.region_gap, min_p=self.region_min_p,
                          min_length=self.min_region_length)

    def parameters(self) -> dict:
        """Every setting, flat, for run.json (the engine's under their names of old)."""
        out: dict = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out.update(value.parameters() if f.name == "engine" else {f.name: value})
        return out

    def result_key(self) -> dict:
        """The parameters a finished shard depends on (the table's `shards` kind): a resumed
        run must match them. In the order state.json and run.json have always held them
        (`RESULT_KEY_ORDER`), a new one after those."""
        keys = sorted(names(SHARDS), key=lambda k: (RESULT_KEY_ORDER.index(k)
                                                    if k in RESULT_KEY_ORDER else 99))
        return {name: getattr(self, name) for name in keys}


# The order of a resume key's parameters in the files of earlier versions.
RESULT_KEY_ORDER = ("chunk_size", "min_length", "shard_frames", "rename_duplicates",
                    "save_embeddings")

# What only the tables depend on: --resume applies them to a finished run from its stored
# scores (as `virnucpro rescore` does) instead of scoring again.
TABLE_SETTINGS = names(TABLES)
