"""`BatchQueueManager`: hands shards to whichever worker is free and gives results back in order.

Each ready worker holds at most `per_worker` shards (one running, the next waiting), so a fast
GPU takes more shards than a slow one and memory stays bounded. Results come back in the order
the shards were given. A worker that dies loses nothing: the shard it was running is retried
(on a restarted worker or another one) and counts an attempt; shards only queued behind it go
back without one. A shard that has killed workers `max_attempts` times is marked failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from virnucpro.errors import VirNucProError
from virnucpro.pool.pool import PersistentWorkerPool, Worker
from virnucpro.pool.window import ShardWindow
from virnucpro.pool.worker import ShardTask
from virnucpro.scoring import ShardScores

log = logging.getLogger(__name__)


class ShardError(VirNucProError):
    """Scoring a shard raised an error that retrying will not fix."""


class BatchQueueManager:
    """Runs shard tasks on a pool. With `use_persistent_pool` the pool is the caller's and
    outlives the call; without, `pool_factory` makes one for each call and it is closed after."""

    def __init__(self, pool_factory: Callable[[], PersistentWorkerPool], *,
                 use_persistent_pool: bool, per_worker: int = 2, max_attempts: int = 3,
                 max_restarts: int = 10) -> None:
        self.pool_factory = pool_factory
        self.use_persistent_pool = use_persistent_pool
        self.per_worker = per_worker
        self.max_attempts = max_attempts
        self.max_restarts = max_restarts
        self.pool: PersistentWorkerPool | None = None
        self._loads_of_closed_pools = 0
        self.worker_deaths = 0
        # Told (message, keys of the shards it held) when a worker dies: the daemon writes it
        # into those jobs' logs.
        self.notify: Callable[[str, list[tuple]], None] | None = None

    @property
    def model_loads(self) -> int:
        """How many times a worker loaded the models, over every pool this manager ran."""
        return self._loads_of_closed_pools + (self.pool.model_loads if self.pool else 0)

    def _acquire(self) -> PersistentWorkerPool:
        if self.pool is None:
            pool = self.pool_factory()
            pool.start()  # on failure the pool closes itself
            self.pool = pool
        return self.pool

    def release(self) -> None:
        """Close the pool (at the end of an input in standard mode, at exit in persistent)."""
        if self.pool is not None:
            self._loads_of_closed_pools += self.pool.model_loads
            self.pool.close()
            self.pool = None

    def map(self, tasks: Iterable[ShardTask]) -> Iterator[tuple[ShardTask, ShardScores]]:
        """Score every task; yield (task, scores) in the order of `tasks`."""
        pool = self._acquire()
        try:
            yield from self._run(pool, iter(tasks))
        finally:
            if not self.use_persistent_pool:
                self.release()

    def _run(self, pool: PersistentWorkerPool, source: Iterator[ShardTask]
             ) -> Iterator[tuple[ShardTask, ShardScores]]:
        win = ShardWindow(source, max(1, len(pool.workers)) * self.per_worker * 2, self.max_attempts)
        while True:
            for w in pool.ready_workers():
                while len(w.in_flight) < self.per_worker and (task := win.next_task()) is not None:
                    pool.send(w, task)
            yield from win.ready()
            if win.finished:
                return
            for event in pool.poll(timeout=0.5):
                if event.kind == "result":
                    win.result(event.key, event.payload)
                elif event.kind == "cancelled":  # its job was cancelled: dropped, not retried
                    if (task := win.tasks.get(event.key)) is not None:
                        win.result(event.key, ShardScores.abandoned(task.n_frames))
                elif event.kind == "error":
                    raise ShardError(f"scoring shard {event.key[1]} of {event.key[0]} failed on "
                                     f"worker {event.worker.id} ({event.worker.spec.device}):\n"
                                     f"{event.payload}")
                elif event.kind == "died":
                    self._on_death(pool, event.worker, event.payload, win)

    def _on_death(self, pool: PersistentWorkerPool, worker: Worker, why: str, win: ShardWindow) -> None:
        self.worker_deaths += 1
        running = worker.running
        message = (f"worker {worker.id} on {worker.spec.device} died ({why}) while scoring "
                   f"{f'shard {running[1]}' if running else 'nothing'}; restarting it, its "
                   "shards are scored again")
        log.warning("%s", message)
        if self.notify is not None:
            self.notify(message, list(worker.in_flight))
        dims = [w.ready_info.get("feature_dim") for w in pool.workers if w.ready_info]
        win.requeue_lost(list(worker.in_flight.values()), running, next(filter(None, dims), None),
                         "worker")
        worker.in_flight.clear()
        if worker.restarts >= self.max_restarts:
            if not pool.ready_workers() and all(w.state == "dead" for w in pool.workers):
                raise VirNucProError(f"every worker died and worker {worker.id} was restarted "
                                     f"{worker.restarts} times; giving up")
            return
        pool.restart(worker)
