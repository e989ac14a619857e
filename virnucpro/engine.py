"""Execution engines: who scores the shards. `local` runs them in this process on one
device; `pool` runs them on a `PersistentWorkerPool` over several devices; `ray` on Ray
actors over a cluster (virnucpro.ray_engine, the optional extra `virnucpro[ray]`).

All satisfy `Engine`: `map(tasks) -> (task, scores)` in task order, load the models only when a
shard needs scoring, and count the loads. None holds the next shard's CPU work back behind the
device: the pool's supervisor prepares shards while workers score; `local` on a GPU scores shard
k on a helper thread while this thread prepares shard k+1 and writes shard k-1. With
`persistent` the models stay loaded across inputs until `close()`; without, `end_input()` frees
them after each input (conservative memory use). `make_engine` builds one from an
`EngineConfig` (virnucpro.engine_config).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from virnucpro.engine_config import EngineConfig
from virnucpro.models.sets import as_model_set
from virnucpro.pool.worker import ShardTask, prepare_ahead
from virnucpro.scoring import ShardScores

if TYPE_CHECKING:
    from virnucpro.models.modelset import ModelSet

__all__ = ["DaemonEngine", "Engine", "EngineConfig", "LocalEngine", "PoolEngine", "make_engine"]

log = logging.getLogger(__name__)


@runtime_checkable
class Engine(Protocol):
    """What the pipeline (and a job stream of the daemon) asks of an engine."""

    name: str  # local, pool, ray
    model_set: ModelSet  # the set its scorers load
    devices: list[str]  # one per worker ("cuda"/"cpu" per Ray actor)
    model_loads: int  # times a worker loaded the models, so far
    worker_deaths: int  # workers (or actors) that died and were replaced

    @property
    def load_seconds(self) -> float | None:
        """How long the loaded models took to load (the slowest worker); None if none is."""

    def map(self, tasks: Iterable[ShardTask]) -> Iterator[tuple[ShardTask, ShardScores]]:
        """Score the tasks; each comes back with its scores, in task order."""

    def end_input(self) -> None:
        """An input is done: free the models unless persistent."""

    def close(self) -> None:
        """Free the models and the workers."""


@runtime_checkable
class DaemonEngine(Engine, Protocol):
    """What the daemon asks of its engines (pool and ray) beyond `Engine`."""

    def start(self) -> None:
        """Start the workers and load their models now, not at the first shard."""

    def describe_workers(self) -> list[dict]:
        """Each worker's id, device, state, memory and load time, for `status`."""

    def kill(self) -> None:
        """At once (from a signal handler): no waiting for anything."""

    def cancel(self, keys: list[tuple]) -> None:
        """Drop these shards (their job was cancelled) as soon as the engine can: each comes
        back from `map` as `ShardScores.abandoned`, or scored. Callable from another thread."""

    # Set by the caller: told (message, keys of the shards concerned) when a worker dies.
    notify: Callable[[str, list[tuple]], None] | None


class LocalEngine:
    name = "local"
    model_set: ModelSet
    devices: list[str]
    model_loads: int
    worker_deaths: int

    def __init__(self, models: ModelSet | str, device: str, chunk_size: int, *, persistent: bool,
                 threads: int | None = None, precision: str = "float32",
                 overlap: bool | None = None) -> None:
        self.model_set = as_model_set(models)
        self.device = device
        self.devices = [device]
        self.chunk_size = chunk_size
        self.persistent = persistent
        self.threads = threads
        self.precision = precision
        # On a GPU the device waits for nobody: scoring runs on a helper thread (torch releases
        # the GIL in its kernels and copies). On a CPU both would fight for the same cores.
        self.overlap = device.startswith("cuda") if overlap is None else overlap
        self.model_loads = 0
        self.worker_deaths = 0
        self._scorer = None

    def _get_scorer(self):
        if self._scorer is None:
            from virnucpro.pool.worker import WorkerSpec, load_scorer

            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            spec = WorkerSpec(worker_id=0, device=self.device, models=str(self.model_set.root),
                              chunk_size=self.chunk_size, threads=self.threads or 0,
                              precision=self.precision)
            self._scorer = load_scorer(spec, self.device)
            self.model_loads += 1
        return self._scorer

    @property
    def load_seconds(self) -> float | None:
        if self._scorer is None:
            return None
        return self._scorer.load_seconds

    def map(self, tasks: Iterable[ShardTask]) -> Iterator[tuple[ShardTask, ShardScores]]:
        if not self.overlap:
            for task in tasks:
                yield task, self._get_scorer().score(task)
            return
        # One shard scoring ahead: while the helper scores shard k, this thread builds shard
        # k+1 (reading, translating, tokenizing, cutting its batches) and the caller writes
        # shard k-1. Order is kept; an error
        # in scoring is raised at the shard it belongs to; a feed that fails while building
        # k+1 still gets shard k delivered first (it is written, not lost).
        source = iter(tasks)
        pending: deque[tuple[ShardTask, Future]] = deque()
        helper = ThreadPoolExecutor(1, thread_name_prefix="virnucpro-score",
                                    initializer=self._helper_device)
        failure: Exception | None = None
        try:
            while True:
                try:
                    task = next(source, None)
                except Exception as exc:  # noqa: BLE001 - raised below, after what is scored
                    failure, task = exc, None
                if task is not None:
                    # Its tokens and batches made here, while the helper keeps the device busy.
                    scorer = self._get_scorer()
                    pending.append((task, helper.submit(scorer.score, task, None,
                                                        prepare_ahead(scorer.prepare, task))))
                while len(pending) > (1 if task is not None else 0):
                    done, future = pending.popleft()
                    yield done, future.result()
                if task is None:
                    break
            if failure is not None:
                raise failure
        finally:
            # Leaving early (an error, Ctrl-C, a consumer that stops): the queued shard is
            # dropped; only the one the helper is running is waited for.
            for _, future in pending:
                future.cancel()
            helper.shutdown(wait=True)

    def _helper_device(self) -> None:
        # A new thread's current CUDA device is 0: make it ours, for what follows it (the
        # cache emptied after an out-of-memory error, the streams of non-blocking copies).
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.set_device(self.device)

    def end_input(self) -> None:
        if not self.persistent:
            self.close()

    def close(self) -> None:
        if self._scorer is not None:
            device = self._scorer.device
            self._scorer = None
            gc.collect()
            if device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()


class PoolEngine:
    name = "pool"
    model_set: ModelSet
    devices: list[str]

    def __init__(self, models: ModelSet | str, devices: list[str], chunk_size: int, *,
                 persistent: bool, threads: int | None = None, cache_clear_interval: int = 50,
                 ready_timeout: float = 600.0, precision: str = "float32") -> None:
        from virnucpro.pool.manager import BatchQueueManager
        from virnucpro.pool.pool import PersistentWorkerPool

        # Resolved once here, so that workers get a folder and never try a download each.
        self.model_set = as_model_set(models)
        self.devices = devices
        self.persistent = persistent
        level = logging.getLogger("virnucpro").getEffectiveLevel()

        def factory() -> PersistentWorkerPool:
            return PersistentWorkerPool(devices, str(self.model_set.root), chunk_size,
                                        threads=threads, cache_clear_interval=cache_clear_interval,
                                        ready_timeout=ready_timeout, log_level=level,
                                        precision=precision)

        self.manager = BatchQueueManager(factory, use_persistent_pool=persistent)

    @property
    def model_loads(self) -> int:
        return self.manager.model_loads

    @property
    def worker_deaths(self) -> int:
        return self.manager.worker_deaths

    @property
    def load_seconds(self) -> float | None:
        pool = self.manager.pool
        if pool is None:
            return None
        return max((w.ready_info.get("load_seconds", 0.0) for w in pool.workers), default=None)

    def map(self, tasks: Iterable[ShardTask]) -> Iterator[tuple[ShardTask, ShardScores]]:
        it = iter(tasks)
        first = next(it, None)
        if first is None:  # nothing to score: do not start workers for it
            return
        yield from self.manager.map(chain([first], it))

    def end_input(self) -> None:
        if not self.persistent:
            self.manager.release()

    def close(self) -> None:
        self.manager.release()

    # -- for the daemon: start now, status, a hard stop ----------------------------------------

    def start(self) -> None:
        self.manager._acquire()

    def describe_workers(self) -> list[dict]:
        pool = self.manager.pool
        return [{"worker": w.id, "device": w.spec.device, "state": w.state,
                 "memory_bytes": w.ready_info.get("memory_bytes"),
                 "load_seconds": w.ready_info.get("load_seconds")}
                for w in (pool.workers if pool else [])]

    def kill(self) -> None:
        pool = self.manager.pool
        for w in pool.workers if pool else []:
            with contextlib.suppress(Exception):
                w.process.kill()

    def cancel(self, keys: list[tuple]) -> None:
        """The shard a worker is scoring stops before its next model batch; queued ones are
        skipped (pool.cancel)."""
        pool = self.manager.pool
        if pool is not None:
            pool.cancel(keys)

    @property
    def notify(self) -> Callable[[str, list[tuple]], None] | None:
        return self.manager.notify

    @notify.setter
    def notify(self, callback: Callable[[str, list[tuple]], None] | None) -> None:
        self.manager.notify = callback


def make_engine(config: EngineConfig, model_set: ModelSet, devices: list[str],
                chunk_size: int) -> Engine:
    """The engine `config` asks for, its scorers to load `model_set` (resolved) for
    `chunk_size`. `auto` picks `local` for one device and `pool` for several; the precision is
    the effective one for `devices` (EngineConfig.effective_precision). `ray` ignores
    `devices` but for that: its actors are sized from the cluster (`ray_address`, `workers`,
    `gpus_per_worker`; see virnucpro.ray_engine). `pool` and `ray` are `DaemonEngine`s too."""
    from virnucpro.errors import VirNucProError

    engine, persistent = config.engine, config.persistent
    precision = config.effective_precision(devices)
    if engine == "ray":
        from virnucpro.ray_engine import RayEngine

        return RayEngine(model_set, chunk_size, persistent=persistent,
                         address=config.ray_address, workers=config.workers,
                         gpus_per_worker=config.gpus_per_worker, threads=config.threads,
                         cache_clear_interval=config.cache_clear_interval,
                         ready_timeout=config.worker_timeout, precision=precision)
    if config.ray_address or config.workers is not None or config.gpus_per_worker is not None:
        raise VirNucProError("--ray-address, --workers and --gpus-per-worker need --engine ray")

    if engine == "auto":
        engine = "local" if len(devices) == 1 else "pool"
    if engine == "local":
        if len(devices) != 1:
            raise VirNucProError(f"the local engine runs on one device, not {len(devices)}: "
                                 "use --engine pool")
        log.info("engine local on %s, %s models", devices[0],
                 "persistent" if persistent else "per-input")
        return LocalEngine(model_set, devices[0], chunk_size, persistent=persistent,
                           threads=config.threads, precision=precision)
    if engine == "pool":
        log.info("engine pool on %s, %s models (%s)", ",".join(devices),
                 "persistent" if persistent else "per-input",
                 "workers kept across inputs" if persistent else "workers started per input")
        return PoolEngine(model_set, devices, chunk_size, persistent=persistent,
                          threads=config.threads, cache_clear_interval=config.cache_clear_interval,
                          ready_timeout=config.worker_timeout, precision=precision)
    raise VirNucProError(f"unknown engine {engine!r}: use auto, local, pool or ray")
