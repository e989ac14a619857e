"""The `ray` engine: shards scored by Ray actors that keep their models loaded, for clusters.

`RayEngine` has the engine interface of `virnucpro.engine`: `map(tasks)` yields (task, scores)
in task order. Each actor (`ray_cluster.ShardActor`) loads the model set once and holds at most
`per_actor` shards; a dead actor is replaced and its shards retried, and a shard that killed
`max_attempts` actors is marked failed (FAILED_WORKER), as in the worker pool. The driver never
imports torch, so the daemon's supervisor can drive it. Ray starts actors with its raylet's
environment, not the driver's: a test stand-in scorer ($VIRNUCPRO_TEST_SCORER, see
virnucpro.pool.worker) set in the driver is passed on in the actors' runtime_env.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from virnucpro.errors import VirNucProError
from virnucpro.pool.window import ShardWindow
from virnucpro.pool.worker import TEST_SCORER_ENV, ShardTask, WorkerSpec, test_scorer
from virnucpro.ray_cluster import actor_class, connect, plan_actors, require_ray
from virnucpro.scoring import ShardScores

if TYPE_CHECKING:
    from virnucpro.models.modelset import ModelSet

log = logging.getLogger(__name__)


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
    model_set: ModelSet
    devices: list[str]
    model_loads: int
    worker_deaths: int
    notify: Callable[[str, list[tuple]], None] | None

    def __init__(self, models: ModelSet | str, chunk_size: int, *, persistent: bool,
                 address: str | None = None, workers: int | None = None,
                 gpus_per_worker: float | None = None, threads: int | None = None,
                 cache_clear_interval: int = 50, ready_timeout: float = 600.0,
                 precision: str = "float32", per_actor: int = 2, max_attempts: int = 3,
                 max_restarts: int = 10) -> None:
        from virnucpro.models.sets import as_model_set

        # A folder path, resolved here once: every node must see it (a shared file system,
        # or `virnucpro models import` to the same path on each node).
        self.model_set = as_model_set(models)
        self._own_connection = connect(address, workers)  # else the caller's, left open
        self.plan = plan_actors(workers, gpus_per_worker, threads)
        self.devices = self.plan.devices
        self.persistent = persistent
        self.ready_timeout = ready_timeout
        self.per_actor = per_actor
        self.max_attempts = max_attempts
        self.max_restarts = max_restarts
        level = logging.getLogger("virnucpro").getEffectiveLevel()
        self.specs = [WorkerSpec(worker_id=i, device=d, models=str(self.model_set.root),
                                 chunk_size=chunk_size, threads=self.plan.threads,
                                 cache_clear_interval=cache_clear_interval, log_level=level,
                                 precision=precision) for i, d in enumerate(self.devices)]
        # Tests only: the stand-in scorer of this driver's environment, for the actors too.
        standin = test_scorer()
        self.runtime_env = {"env_vars": {TEST_SCORER_ENV: standin}} if standin else None
        self.actors: list[_Actor] = []
        self.model_loads = 0  # actors that loaded their models and reported ready
        self.worker_deaths = 0
        self.notify: Callable[[str, list[tuple]], None] | None = None  # see engine.DaemonEngine
        log.info("engine ray: %d actors x (%g GPU, %g CPU, %d threads), %s models",
                 self.plan.workers, self.plan.gpus, self.plan.cpus, self.plan.threads,
                 "persistent" if persistent else "per-input")

    @property
    def load_seconds(self) -> float | None:
        times = [a.info["load_seconds"] for a in self.actors if a.state == "ready"]
        return max(times, default=None)

    # -- actors ----------------------------------------------------------------------------

    def _spawn(self, spec: WorkerSpec, restarts: int = 0) -> _Actor:
        # Ray's own restarts and retries stay off: ours are counted and capped (poison shards).
        extra = {"runtime_env": self.runtime_env} if self.runtime_env else {}
        handle = actor_class().options(
            num_cpus=self.plan.cpus, num_gpus=self.plan.gpus, max_restarts=0,
            max_task_retries=0, scheduling_strategy="SPREAD", **extra).remote(spec)
        return _Actor(spec, handle, handle.ready.remote(), restarts=restarts)

    def start(self) -> None:
        """Start every actor and wait until all have loaded their models."""
        if self.actors:
            return
        self.actors = [self._spawn(spec) for spec in self.specs]
        deadline = time.monotonic() + self.ready_timeout
        try:
            while waiting := [a for a in self.actors if a.state == "starting"]:
                if time.monotonic() > deadline:
                    raise _start_error(waiting[0], f"not ready after {self.ready_timeout:.0f} s "
                                       "(the cluster may lack free CPUs or GPUs for the actors; "
                                       "or raise --worker-timeout if loading the models is just "
                                       "slow)")
                refs = [a.ready_ref for a in waiting]
                for ref in require_ray().wait(refs, num_returns=len(refs), timeout=1.0)[0]:
                    actor = next(a for a in waiting if a.ready_ref == ref)
                    if not self._take_ready(actor):
                        raise _start_error(actor, f"could not load the models: {actor.info['error']}")
        except BaseException:
            self._stop_actors()
            raise
        for a in self.actors:
            log.info("actor %d ready on %s (%s): models loaded in %.1f s", a.spec.worker_id,
                     a.info["node"], a.info["device"], a.info["load_seconds"])

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
            try:
                ray.kill(a.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone, or Ray itself is
                log.debug("actor %d was already gone", a.spec.worker_id)
        self.actors = []

    def describe_workers(self) -> list[dict]:
        """What each actor holds, for the daemon's `status`."""
        # "cuda"/"cpu" as in `devices` (inside every GPU actor it is cuda:0), so that the
        # daemon's memory rows find their actors.
        return [{"worker": a.spec.worker_id, "device": a.spec.device,
                 "node": a.info.get("node"), "state": a.state,
                 "memory_bytes": a.info.get("memory_bytes"),
                 "load_seconds": a.info.get("load_seconds")} for a in self.actors]

    def kill(self) -> None:
        """At once, from a signal handler: no waiting for anything."""
        self._stop_actors()

    def cancel(self, keys: list[tuple]) -> None:
        """Best effort on Ray: the shards in flight on the actors are scored to their end (an
        actor runs one call at a time and Ray cannot interrupt it between model batches); the
        job stops handing out shards at once and drops their results."""

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
        win = ShardWindow(source, len(self.actors) * self.per_actor * 2, self.max_attempts)
        while True:
            for a in self.actors:
                while (a.state == "ready" and len(a.in_flight) < self.per_actor
                       and (task := win.next_task()) is not None):
                    a.in_flight[a.handle.score.remote(task)] = task
            yield from win.ready()
            if win.finished:
                return
            owner = {ref: a for a in self.actors for ref in a.in_flight}
            owner.update({a.ready_ref: a for a in self.actors if a.state == "starting"})
            if not owner:
                raise VirNucProError("no Ray actor is left to score the remaining shards")
            if not any(a.state == "ready" for a in self.actors) and all(
                    time.monotonic() - a.started_at > self.ready_timeout for a in self.actors):
                raise _start_error(self.actors[0], "no actor left, and no replacement ready "
                                   f"after {self.ready_timeout:.0f} s")
            for ref in ray.wait(list(owner), num_returns=1, timeout=1.0)[0]:
                actor = owner[ref]
                if actor.state == "starting":
                    if not self._take_ready(actor):
                        self._on_death(actor, actor.info["error"], win)
                    continue
                task = actor.in_flight[ref]
                try:
                    scores = ray.get(ref)
                except _lost_actor_errors(ray) as exc:
                    self._on_death(actor, _short(exc), win)
                    continue
                except ray.exceptions.RayError as exc:  # the scorer raised: retrying won't fix it
                    from virnucpro.pool.manager import ShardError

                    raise ShardError(f"scoring shard {task.key[1]} of {task.key[0]} failed on "
                                     f"Ray actor {actor.spec.worker_id} ({actor.info.get('node')}):"
                                     f"\n{exc}") from None
                del actor.in_flight[ref]
                win.result(task.key, scores)

    def _on_death(self, actor: _Actor, why: str, win: ShardWindow) -> None:
        self.worker_deaths += 1
        lost = list(actor.in_flight.values())
        # An actor runs its calls one at a time in the order sent: the first was running,
        # the others only waited behind it and go back without an attempt counted.
        running = lost[0].key if lost else None
        message = (f"Ray actor {actor.spec.worker_id} on {actor.info.get('node', '?')} died "
                   f"({why}) while scoring {f'shard {running[1]}' if running else 'nothing'}; "
                   "replacing it, its shards are scored again")
        log.warning("%s", message)
        if self.notify is not None:
            self.notify(message, [t.key for t in lost])
        dims = [a.info.get("feature_dim") for a in self.actors if a.info]
        win.requeue_lost(lost, running, next(filter(None, dims), None), "actor")
        with contextlib.suppress(Exception):  # make sure: an unreachable actor may still run
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
                with contextlib.suppress(Exception):  # already finished, or its actor gone
                    ray.cancel(ref)
            a.in_flight.clear()

    def end_input(self) -> None:
        if not self.persistent:
            self._stop_actors()

    def close(self) -> None:
        self._stop_actors()
        if self._own_connection:  # a local instance this engine started stops with it
            require_ray().shutdown()
            self._own_connection = False


def _start_error(actor: _Actor, message: str) -> VirNucProError:
    from virnucpro.pool.pool import WorkerStartError

    return WorkerStartError(message, worker=actor.spec.worker_id,
                            device=f"Ray ({actor.spec.device} actor)")


def _lost_actor_errors(ray: Any) -> tuple[type, ...]:
    """Errors that mean the actor (or its node) is gone, not that the shard is wrong: the
    shard is retried elsewhere. Some names are missing from older Ray releases."""
    names = ("RayActorError", "OutOfMemoryError", "ObjectLostError", "WorkerCrashedError",
             "NodeDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _short(exc: BaseException) -> str:
    """One line for a Ray error: the remote exception when it carries a traceback (the last
    line), else Ray's own first line. Colour codes are Ray's terminal decoration."""
    lines = [x.strip() for x in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if x.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if any(x.startswith("File ") for x in lines) else lines[0]
