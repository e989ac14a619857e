"""What the scheduler runs jobs with: `RunnerConfig`, the engines kept per model set
(`EngineCache`), and the checks that a job's inputs are still what was submitted.

Jobs run as the same input runs as `virnucpro predict` (virnucpro.run: validation, shards on
disk, resume, the tables), on the pool engine or (`--engine ray`) Ray actors, so the supervisor
never imports torch. Engines are kept per model set: in persistent mode they outlive jobs
(least recently used evicted beyond `max_loaded_sets`); otherwise one is started for a job and
stopped after it, freeing the device memory.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from virnucpro.daemon.jobs import InputFile, JobRecord
from virnucpro.engine_config import EngineConfig

if TYPE_CHECKING:
    from virnucpro.engine import DaemonEngine

log = logging.getLogger(__name__)


@dataclass
class RunnerConfig:
    """The engine settings, and what is the daemon's own: its devices (a Ray cluster's once
    joined), `persistent` (engines kept across jobs, else closed after each: the engines
    themselves are always made persistent, so that a job's inputs share one load), how many
    model sets stay loaded, and shard_frames (tests only)."""

    devices: list[str]
    persistent: bool
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(engine="pool"))
    max_loaded_sets: int = 1
    shard_frames: int | None = None

    @property
    def effective_precision(self) -> str:
        return self.engine.effective_precision(self.devices)


class EngineCache:
    """Engines (worker pools) by model set folder, least recently used first."""

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.engines: OrderedDict[str, DaemonEngine] = OrderedDict()
        self.lock = threading.Lock()
        self._loads_of_closed = 0  # model loads of engines already closed

    def get(self, models_root: str) -> DaemonEngine:
        from virnucpro.engine import make_engine
        from virnucpro.models.sets import resolve_model_set

        with self.lock:
            if models_root in self.engines:
                self.engines.move_to_end(models_root)
                return self.engines[models_root]
            while len(self.engines) >= self.config.max_loaded_sets:
                root, old = self.engines.popitem(last=False)
                log.info("evicting the models of %s to load another set", root)
                old.close()
                self._loads_of_closed += old.model_loads
            model_set = resolve_model_set(models_root, fetch_missing=False, progress=False)
            # pool or ray (the daemon's choices): both are DaemonEngines.
            engine = cast("DaemonEngine", make_engine(
                replace(self.config.engine, persistent=True), model_set, self.config.devices, 500))
            self.engines[models_root] = engine
            return engine

    def after_job(self) -> None:
        if not self.config.persistent:
            self.close()

    def close(self) -> None:
        with self.lock:
            while self.engines:
                _, engine = self.engines.popitem()
                engine.close()
                self._loads_of_closed += engine.model_loads

    def describe(self) -> list[dict]:
        """What is loaded where, for `status`."""
        out = []
        with self.lock:
            for root, engine in self.engines.items():
                out.append({"models": root, "workers": engine.describe_workers()})
        return out

    @property
    def model_loads(self) -> int:
        """Times a worker loaded models, over every engine this daemon ran."""
        return self._loads_of_closed + sum(e.model_loads for e in self.engines.values())


def changed_inputs(job: JobRecord) -> str:
    """Name an input that is not what was submitted: gone, or another size or mtime (a stat,
    before any reading; the content is compared after the first pass, `changed_content`)."""
    for item in job.inputs:
        path = Path(item.path)
        if not path.exists():
            return f"{item.path} no longer exists"
        st = path.stat()
        if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
            return f"{item.path} (size or modification time differ)"
    return ""


def changed_content(job: JobRecord, digests: list[str]) -> tuple[str, tuple[InputFile, ...]]:
    """Compare the first pass's sha256 of each input with the one recorded by an earlier
    attempt; return what differs (or "") and the inputs with their hashes filled in."""
    for item, digest in zip(job.inputs, digests, strict=True):
        if item.sha256 and item.sha256 != digest:
            return f"{item.path} (content differs)", job.inputs
    return "", tuple(replace(item, sha256=digest) for item, digest in zip(job.inputs, digests, strict=True))
