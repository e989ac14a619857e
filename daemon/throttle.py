"""`Throttle`: a value published at most once per interval, and never the latest one dropped.

A job's progress changes at every merged shard, which may come hundreds of times a second (a
resume reading its shards from disk); each publish is a store write and an event, so it is
throttled. A plain throttle (publish when the interval has passed, else drop) lost the last
update of every burst: the job then showed the shard before the one on disk until the next
shard came, minutes later on slow devices. This one publishes a value pushed inside the
interval when the interval ends (the trailing edge), from a timer thread, unless a newer push
already did. `close` cancels what is pending: the job's final state is published by its end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Throttle(Generic[T]):
    def __init__(self, publish: Callable[[T], None], every: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.publish = publish
        self.every = every
        self.clock = clock
        # Held while publishing, so that a timer's value can never land after a newer one.
        self._lock = threading.Lock()
        self._last = float("-inf")  # when the last value was published
        self._pending: tuple[T] | None = None  # the newest value not published yet
        self._timer: threading.Timer | None = None
        self._closed = False

    def push(self, value: T) -> None:
        """Publish `value` now if the interval has passed since the last one, else when it
        has (the newest value pushed by then)."""
        with self._lock:
            if self._closed:
                return
            wait = self._last + self.every - self.clock()
            if wait <= 0:
                self._send(value)
                return
            self._pending = (value,)
            if self._timer is None:
                self._timer = threading.Timer(wait, self._trail)
                self._timer.daemon = True
                self._timer.start()

    def _trail(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed and self._pending is not None:
                self._send(self._pending[0])

    def _send(self, value: T) -> None:
        self._pending = None
        self._last = self.clock()
        self.publish(value)

    def close(self) -> None:
        """No more publishing; a pending value is dropped. Returns after a publish under way."""
        with self._lock:
            self._closed = True
            self._pending = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
