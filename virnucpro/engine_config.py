"""`EngineConfig`: how shards are scored, one frozen value from the command line to the engine.

Kept apart from virnucpro.engine so that whoever only describes an engine (the daemon's
supervisor, the dashboard, the command lines) imports nothing but dataclasses: no numpy, no
torch, no Ray. `virnucpro.engine.make_engine(config, model_set, devices, chunk_size)` turns it
into an engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from virnucpro.options import OPTIONS, default


@dataclass(frozen=True)
class EngineConfig:
    """Everything an engine is made from besides the model set, devices and chunk size."""

    # The defaults are the options' (virnucpro/options.py: `attr` engine.<field>).
    engine: str = default("engine")  # auto (local for one device, pool for several), local, pool, ray
    threads: int | None = default("threads")  # torch CPU threads [default: every core, shared]
    worker_timeout: float = default("worker_timeout")  # seconds a worker may take to load
    cache_clear_interval: int = default("cache_clear_interval")  # every N shards (0: never)
    precision: str = default("precision")  # auto (bfloat16 on GPUs, float32 on CPU), float32, bfloat16
    persistent: bool = default("persistent_models")  # models kept loaded across inputs
    ray_address: str | None = default("ray_address")  # ray: auto, HOST:PORT, or a local instance
    workers: int | None = default("workers")  # ray: actors [default: every GPU / G, or one per node]
    gpus_per_worker: float | None = default("gpus_per_worker")  # ray [default: 1 with GPUs, else 0]

    def effective_precision(self, devices: list[str]) -> str:
        """`precision` with `auto` resolved for these devices (devices.effective_precision)."""
        from virnucpro.devices import effective_precision

        return effective_precision(self.precision, devices)

    def cluster_devices(self) -> list[str]:
        """Engine ray: the actors' devices, from the cluster's resources (joining it for the
        rest of the process: virnucpro.ray_cluster)."""
        from virnucpro.ray_cluster import cluster_devices

        return cluster_devices(self.ray_address, self.workers, self.gpus_per_worker, self.threads)

    def parameters(self) -> dict:
        """The settings as run.json's `parameters` has always named them: the options' names."""
        return {o.name: getattr(self, o.path.removeprefix("engine.")) for o in OPTIONS
                if o.path.startswith("engine.")}
