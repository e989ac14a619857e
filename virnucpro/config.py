"""What one prediction is asked to do: `PredictConfig` (with its `EngineConfig`), the settings
that only the tables depend on, and an option's command-line spelling."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from virnucpro.engine_config import EngineConfig
from virnucpro.regions import RegionRule
from virnucpro.shards import DEFAULT_SHARD_FRAMES


@dataclass(frozen=True)
class PredictConfig:
    inputs: tuple[str, ...]
    outdir: Path
    chunk_size: int = 500
    models: str = "published"
    device: str = "auto"  # not for engine ray: its devices are the cluster's
    batch_tokens: int | None = None
    threshold: float = 0.5
    min_length: int = 1
    save_embeddings: bool = False
    rename_duplicates: bool = False
    force: bool = False
    resume: bool = False
    shard_frames: int = DEFAULT_SHARD_FRAMES
    progress: bool = True
    engine: EngineConfig = field(default_factory=EngineConfig)  # how shards are scored
    report: bool = True  # write OUTDIR/report.html at the end (virnucpro.report)
    region_gap: int = 1  # the region rule (virnucpro.regions)
    region_min_p: float | None = None
    min_region_length: int = 1000

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
        """The parameters a finished shard depends on: a resumed run must match them."""
        return {"chunk_size": self.chunk_size, "min_length": self.min_length,
                "shard_frames": self.shard_frames, "rename_duplicates": self.rename_duplicates,
                "save_embeddings": self.save_embeddings}


# What only the tables depend on: --resume applies them to a finished run from its stored
# scores (as `virnucpro rescore` does) instead of scoring again.
TABLE_SETTINGS = ("threshold", "region_gap", "region_min_p", "min_region_length")


def option_flag(name: str) -> str:
    """A setting's command-line option: chunk_size -> --chunk-size."""
    return "--" + name.replace("_", "-")
