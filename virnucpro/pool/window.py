"""The bookkeeping every shard-dispatching engine shares (the worker pool, Ray actors).

`ShardWindow` pulls tasks from the source lazily, at most `window` ahead of the first result
not yet given back; gives results back in task order; puts the shards of a dead worker back at
the front of the queue, counting an attempt only for the shard that was running; and marks a
shard that killed `max_attempts` workers as failed instead of trying it forever.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator

from virnucpro.pool.worker import ShardTask
from virnucpro.scoring import FAILED_WORKER, ShardScores

log = logging.getLogger(__name__)


class ShardWindow:
    def __init__(self, source: Iterator[ShardTask], window: int, max_attempts: int = 3) -> None:
        self.source = source
        self.window = max(1, window)
        self.max_attempts = max_attempts
        self.order: deque[tuple] = deque()  # keys in submission order, not yet given back
        self.tasks: dict[tuple, ShardTask] = {}
        self.done: dict[tuple, ShardScores] = {}
        self.retry: deque[ShardTask] = deque()
        self.attempts: dict[tuple, int] = {}
        self.exhausted = False

    def next_task(self) -> ShardTask | None:
        """A shard to hand out: a retried one first, else a new one while the window allows."""
        if self.retry:
            return self.retry.popleft()
        if self.exhausted or len(self.order) >= self.window:
            return None
        task = next(self.source, None)
        if task is None:
            self.exhausted = True
            return None
        self.order.append(task.key)
        self.tasks[task.key] = task
        return task

    def result(self, key: tuple, scores: ShardScores) -> None:
        if key in self.tasks:  # a late result of an abandoned pass is not ours
            self.done[key] = scores

    def ready(self) -> Iterator[tuple[ShardTask, ShardScores]]:
        """The results that can be given back now, in task order."""
        while self.order and self.order[0] in self.done:
            key = self.order.popleft()
            yield self.tasks.pop(key), self.done.pop(key)

    @property
    def finished(self) -> bool:
        return self.exhausted and not self.order

    def requeue_lost(self, lost: list[ShardTask], running: tuple | None, feature_dim: int | None,
                     who: str) -> None:
        """Shards of a worker that died: the running one counts an attempt (and fails at the
        cap); those queued behind it go back without one, in their order."""
        for task in reversed(lost):
            if task.key == running:
                self.attempts[task.key] = self.attempts.get(task.key, 0) + 1
                if self.attempts[task.key] >= self.max_attempts:
                    log.error("shard %d of %s killed its %s %d times: marked failed",
                              task.key[1], task.key[0], who, self.attempts[task.key])
                    self.done[task.key] = ShardScores.failed(
                        task.n_frames, FAILED_WORKER, feature_dim if task.keep_features else None)
                    continue
            self.retry.appendleft(task)
