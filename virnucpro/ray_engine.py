"""The `ray` engine: the shard function (`ModelScorer`) in Ray actors, for clusters.

`RayEngine` has the engine interface of `virnucpro.engine`: `map(tasks)` yields (task, scores)
in task order. Each actor keeps one model set loaded (one model load per actor start) and holds
at most `per_actor` shards; a dead actor is replaced and its shards retried, and a shard that
killed `max_attempts` actors is marked failed (FAILED_WORKER), as in the worker pool.
`ray` is imported here only, lazily; the driver never imports torch (actors do, in their own
processes), so the daemon's supervisor can drive it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from virnucpro.errors import VirNucProError
from virnucpro.features import FAILED_WORKER, ShardScores
from virnucpro.pool.worker import DEFAULT_SCORER, ShardTask, WorkerSpec

log = logging.getLogger(__name__)

INSTALL_HINT = "the ray engine needs Ray: pip install 'virnucpro[ray]'"
_ours = False  # whether this process made the Ray connection (so it may shut it down)


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VirNucProError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, workers: int | None = None) -> None:
    """Join a cluster (`auto` or HOST:PORT) or, without an address, start a local instance.
    A connection made before (by the caller, or an earlier engine) is used as it is."""
    global _ours
    ray = require_ray()
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:  # enough CPUs for the asked workers even on a small machine
            ray.init(num_cpus=max(workers or 1, os.cpu_count() or 1), **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise VirNucProError(f"cannot join the Ray cluster at {address or 'a new local instance'}"
                             f" ({exc}); start one with `ray start --head`") from exc
    _ours = True


def disconnect() -> None:
    """Leave Ray if this process joined it: a local instance it started stops, a cluster
    only loses this driver. A connection the caller made is left alone."""
    global _ours
    if _ours:
        require_ray().shutdown()
        _ours = False


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, and what each asks Ray for."""

    workers: int
    gpus: float  # per actor
    cpus: float  # per actor, for Ray's scheduling
    threads: int  # torch threads in each actor

    @property
    def devices(self) -> list[str]:
        # "cuda"/"cpu" per actor: what decides the batch budget and the precision.
        return ["cuda" if self.gpus else "cpu"] * self.workers


def plan_actors(address: str | None, workers: int | None, gpus_per_worker: float | None,
                threads: int | None) -> ActorPlan:
    """Connect, then size the actors from the cluster: G defaults to 1 when it has GPUs, and
    N to all its GPUs (G > 0) or one actor per node (CPU only)."""
    connect(address, workers)
    ray = require_ray()
    total = ray.cluster_resources()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    cluster_gpus = total.get("GPU", 0.0)
    gpus = (1.0 if cluster_gpus else 0.0) if gpus_per_worker is None else gpus_per_worker
    if not workers:
        workers = max(1, int(cluster_gpus // gpus) if gpus else len(nodes))
    if gpus and workers * gpus > cluster_gpus:
        # Not an error: an autoscaling cluster may add GPU nodes for the waiting actors.
        log.warning("%d workers x %g GPU need more GPUs than the cluster has now (%g): some "
                    "actors wait for them", workers, gpus, cluster_gpus)
    if gpus:  # a GPU actor only feeds its device: a few threads tokenize and copy
        return ActorPlan(workers, gpus, 1.0, threads or 4)
    # CPU actors share the cluster's cores, but one actor cannot take more than a node has.
    biggest = max((n.get("CPU", 1.0) for n in nodes), default=1.0)
    per = threads or max(1, int(min(biggest, total.get("CPU", 1.0) // workers)))
    return ActorPlan(workers, 0.0, float(min(per, biggest)), per)


def cluster_devices(address: str | None, workers: int | None, gpus_per_worker: float | None,
                    threads: int | None = None) -> list[str]:
    """The engine's `devices` before it exists (for the precision and the batch budget)."""
    return plan_actors(address, workers, gpus_per_worker, threads).devices


class ShardActor:
    """Lives in a Ray worker process: one scorer with its models loaded on this actor's device
    (on a GPU actor Ray has set CUDA_VISIBLE_DEVICES, so it is cuda:0)."""

    def __init__(self, spec: WorkerSpec) -> None:
        # Before CUDA starts in this process, as in the pool's workers.
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        logging.basicConfig(level=spec.log_level)
        import torch

        from virnucpro.pool.worker import _load_class, _resident_bytes

        torch.set_num_threads(spec.threads)  # scores must not depend on the node's core count
        device = "cuda:0" if spec.device == "cuda" else "cpu"
        before, started = _resident_bytes(), time.perf_counter()
        self.scorer = _load_class(spec.scorer)(spec, device)
        self.spec = spec
        self.done = 0
        try:
            dim = self.scorer.models_for(spec.chunk_size).feature_dim
        except Exception:  # noqa: BLE001 - a stand-in scorer may lack it; failed shards then have none
            dim = None
        memory = (torch.cuda.memory_allocated() if device.startswith("cuda")
                  else max(0, _resident_bytes() - before))
        import ray

        self.info = {"worker": spec.worker_id, "device": device, "pid": os.getpid(),
                     "node": ray.util.get_node_ip_address(), "threads": spec.threads,
                     "load_seconds": round(time.perf_counter() - started, 3),
                     "memory_bytes": int(memory), "feature_dim": dim}

    def ready(self) -> dict:
        return self.info

    def score(self, task: ShardTask) -> ShardScores:
        result = self.scorer.score(task)
        self.done += 1
        if self.spec.cache_clear_interval and self.done % self.spec.cache_clear_interval == 0:
            self.scorer.clear_cache()
        return result


@dataclass
class _Actor:
    spec: WorkerSpec
    handle: Any
    ready_ref: Any
    state: str = "starting"  # starting, ready
    info: dict = field(default_factory=dict)
    in_flight: dict = field(default_factory=dict)  # ObjectRef -> ShardTask, in the order sent
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)


class RayEngine:
    """Shards on `plan.workers` Ray actors; see the module doc. With `persistent` the actors
    (and their models) outlive an input until `close()`; without, `end_input()` stops them."""

    name = "ray"

    def __init__(self, models: str, chunk_size: int, *, persistent: bool,
                 address: str | None = None, workers: int | None = None,
                 gpus_per_worker: float | None = None, threads: int | None = None,
                 cache_clear_interval: int = 50, ready_timeout: float = 600.0,
                 scorer: str | None = None, precision: str = "float32", per_actor: int = 2,
                 max_attempts: int = 3, max_restarts: int = 10) -> None:
        from virnucpro.models.sets import resolve_model_set

        # A folder path, resolved here once: every node must see it (a shared file system,
        # or `virnucpro models import` to the same path on each node).
        self.model_set = resolve_model_set(models, fetch_missing=False, progress=False)
        self.plan = plan_actors(address, workers, gpus_per_worker, threads)
        self.devices = self.plan.devices
        self.persistent = persistent
        self.ready_timeout = ready_timeout
        self.per_actor = per_actor
        self.max_attempts = max_attempts
        self.max_restarts = max_restarts
        level = logging.getLogger("virnucpro").getEffectiveLevel()
        self.specs = [WorkerSpec(worker_id=i, device=d, models=str(self.model_set.root),
                                 chunk_size=chunk_size, threads=self.plan.threads,
                                 cache_clear_interval=cache_clear_interval,
                                 scorer=scorer or DEFAULT_SCORER, log_level=level,
                                 precision=precision) for i, d in enumerate(self.devices)]
        self.actors: list[_Actor] = []
        self.model_loads = 0  # actors that loaded their models and reported ready
        self.worker_deaths = 0
        log.info("engine ray: %d actors x (%g GPU, %g CPU, %d threads), %s models",
                 self.plan.workers, self.plan.gpus, self.plan.cpus, self.plan.threads,
                 "persistent" if persistent else "per-input")

    @property
    def load_seconds(self) -> float | None:
        times = [a.info["load_seconds"] for a in self.actors if a.state == "ready"]
        return max(times, default=None)

    # -- actors ----------------------------------------------------------------------------

    def _spawn(self, spec: WorkerSpec, restarts: int = 0) -> _Actor:
        ray = require_ray()
        remote = ray.remote(ShardActor).options(
            num_cpus=self.plan.cpus, num_gpus=self.plan.gpus, max_restarts=0,
            max_task_retries=0, scheduling_strategy="SPREAD")  # retries are ours: counted, capped
        handle = remote.remote(spec)
        return _Actor(spec, handle, handle.ready.remote(), restarts=restarts)

    def start(self) -> None:
        """Start every actor and wait until all have loaded their models."""
        if self.actors:
            return
        self.actors = [self._spawn(spec) for spec in self.specs]
        deadline = time.monotonic() + self.ready_timeout
        try:
            while any(a.state == "starting" for a in self.actors):
                if time.monotonic() > deadline:
                    raise self._start_error("not ready after %.0f s (too few free resources in the "
                                            "cluster, or raise --worker-timeout if loading the "
                                            "models is just slow)" % self.ready_timeout)
                refs = [a.ready_ref for a in self.actors if a.state == "starting"]
                for ref in require_ray().wait(refs, num_returns=len(refs), timeout=1.0)[0]:
                    actor = next(a for a in self.actors if a.ready_ref == ref)
                    if not self._take_ready(actor):
                        raise self._start_error(f"could not load the models: {actor.info['error']}")
        except BaseException:
            self._stop_actors()
            raise
        for a in self.actors:
            log.info("actor %d ready on %s (%s): models loaded in %.1f s", a.spec.worker_id,
                     a.info["node"], a.info["device"], a.info["load_seconds"])

    def _start_error(self, message: str) -> VirNucProError:
        from virnucpro.pool.pool import WorkerStartError

        return WorkerStartError(message, worker=0, device="ray")

    def _take_ready(self, actor: _Actor) -> bool:
        ray = require_ray()
        try:
            actor.info = ray.get(actor.ready_ref)
        except ray.exceptions.RayError as exc:
            actor.info = {"error": _short(exc)}
            return False
        actor.state = "ready"
        self.model_loads += 1
        return True

    def _stop_actors(self) -> None:
        ray = require_ray()
        for a in self.actors:
            ray.kill(a.handle, no_restart=True)
        self.actors = []

    def describe_workers(self) -> list[dict]:
        """What each actor holds, for the daemon's `status`."""
        return [{"worker": a.spec.worker_id, "device": a.info.get("device", a.spec.device),
                 "node": a.info.get("node"), "state": a.state,
                 "memory_bytes": a.info.get("memory_bytes"),
                 "load_seconds": a.info.get("load_seconds")} for a in self.actors]

    def kill(self) -> None:
        """At once, from a signal handler: no waiting for anything."""
        self._stop_actors()

    # -- scoring ---------------------------------------------------------------------------

    def map(self, tasks: Iterable[ShardTask]) -> Iterator[tuple[ShardTask, ShardScores]]:
        it = iter(tasks)
        first = next(it, None)
        if first is None:  # nothing to score: do not start actors for it
            return
        self.start()
        try:
            yield from self._run(chain([first], it))
        finally:
            self._abandon()

    def _run(self, source: Iterator[ShardTask]) -> Iterator[tuple[ShardTask, ShardScores]]:
        ray = require_ray()
        order: deque[tuple] = deque()  # keys in submission order, not yet yielded
        tasks: dict[tuple, ShardTask] = {}
        done: dict[tuple, ShardScores] = {}
        retry: deque[ShardTask] = deque()
        attempts: dict[tuple, int] = {}
        exhausted = False
        window = len(self.actors) * self.per_actor * 2

        def next_task() -> ShardTask | None:
            nonlocal exhausted
            if retry:
                return retry.popleft()
            if exhausted or len(order) >= window:
                return None
            task = next(source, None)
            if task is None:
                exhausted = True
                return None
            order.append(task.key)
            tasks[task.key] = task
            return task

        while True:
            for a in self.actors:
                while (a.state == "ready" and len(a.in_flight) < self.per_actor
                       and (task := next_task()) is not None):
                    a.in_flight[a.handle.score.remote(task)] = task
            while order and order[0] in done:
                key = order.popleft()
                yield tasks.pop(key), done.pop(key)
            if exhausted and not order:
                return
            owner = {ref: a for a in self.actors for ref in a.in_flight}
            owner.update({a.ready_ref: a for a in self.actors if a.state == "starting"})
            if not owner:
                raise VirNucProError("no Ray actor is left to score the remaining shards")
            for ref in ray.wait(list(owner), num_returns=1, timeout=1.0)[0]:
                actor = owner[ref]
                if actor.state == "starting":
                    if not self._take_ready(actor):
                        self._on_death(actor, actor.info["error"], retry, attempts, done)
                    continue
                task = actor.in_flight[ref]
                try:
                    scores = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    self._on_death(actor, _short(exc), retry, attempts, done)
                    continue
                except ray.exceptions.RayError as exc:  # the scorer raised: retrying won't fix it
                    from virnucpro.pool.manager import ShardError

                    raise ShardError(f"scoring shard {task.key[1]} of {task.key[0]} failed on "
                                     f"Ray actor {actor.spec.worker_id} ({actor.info.get('node')}):"
                                     f"\n{exc}") from None
                del actor.in_flight[ref]
                done[task.key] = scores

    def _on_death(self, actor: _Actor, why: str, retry: deque, attempts: dict, done: dict) -> None:
        self.worker_deaths += 1
        lost = list(actor.in_flight.values())
        # An actor runs its calls one at a time in the order sent: the first was running,
        # the others only waited behind it and go back without an attempt counted.
        running = lost[0].key if lost else None
        log.warning("Ray actor %d on %s died (%s) while scoring %s; replacing it",
                    actor.spec.worker_id, actor.info.get("node", "?"), why,
                    f"shard {running[1]}" if running else "nothing")
        for task in reversed(lost):
            if task.key == running:
                attempts[task.key] = attempts.get(task.key, 0) + 1
                if attempts[task.key] >= self.max_attempts:
                    log.error("shard %d of %s killed its actor %d times: marked failed",
                              task.key[1], task.key[0], attempts[task.key])
                    dim = actor.info.get("feature_dim") if task.keep_features else None
                    done[task.key] = ShardScores.failed(len(task.frames), FAILED_WORKER, dim)
                    continue
            retry.appendleft(task)
        require_ray().kill(actor.handle, no_restart=True)
        index = self.actors.index(actor)
        if actor.restarts >= self.max_restarts:
            del self.actors[index]  # its shards go to the others
        else:
            self.actors[index] = self._spawn(actor.spec, actor.restarts + 1)

    def _abandon(self) -> None:
        """Calls still queued on actors belong to a pass that ended early (an error, a
        cancelled job): drop them, so the next input does not wait behind them."""
        ray = require_ray()
        for a in self.actors:
            for ref in a.in_flight:
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - already finished or its actor gone
                    pass
            a.in_flight.clear()

    def end_input(self) -> None:
        if not self.persistent:
            self._stop_actors()

    def close(self) -> None:
        self._stop_actors()
        disconnect()


def _short(exc: BaseException) -> str:
    """The first line of a Ray error (the rest is the remote traceback)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
