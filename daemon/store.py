"""The durable job store: jobs, their state history and their log lines, behind one interface.

`JobStore` has two versions that behave identically: `SqliteJobStore` (store_sqlite.py: one WAL
file; a state change is on disk when `transition` returns) and `MemoryJobStore` (tests and fakes). Callers
pass `now`; the store never reads the clock. Ids increase from 1 and are never reused. Both are
safe to share between threads. Both refuse a move that is not in the lifecycle (jobs.MOVES)
with `IllegalMove`, checked against the stored state inside the same transaction. Only the job
service (service.py) calls `transition`.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from virnucpro.daemon.jobs import HistoryEntry, JobRecord, JobState, Progress, check_move

log = logging.getLogger(__name__)

LOG_CAP = 10_000  # lines kept per job: a chatty job must not fill the disk
SCHEMA_VERSION = 1
# What `transition` may change; id, state, created, client_request_id and history are the store's.
_SETTABLE = frozenset({"name", "inputs", "outdir", "options", "priority", "attempts",
                       "stalls", "started", "finished", "progress"})


class StoreError(Exception):
    """The store's file cannot be opened or used; the daemon refuses to start rather than
    run on without the jobs it holds."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"job store {path}: {message}")
        self.path = path


def _plain(value: dict) -> dict:
    """A JSON round trip, so the memory store hands back what SQLite would: a fresh plain copy."""
    return json.loads(json.dumps(value))


def _check_new(record: JobRecord) -> None:
    if record.state is not JobState.QUEUED:
        raise ValueError(f"a job enters the store queued, not {record.state.value}")


def _transitioned(rec: JobRecord, state: JobState, now: float, reason: str,
                  changes: dict) -> JobRecord:
    unknown = set(changes) - _SETTABLE
    if unknown:
        raise TypeError(f"transition cannot set {', '.join(sorted(unknown))}")
    check_move(rec.id, rec.state, state)
    new = {**changes}
    if "options" in new:
        new["options"] = _plain(new["options"])
    if "progress" in new and not isinstance(new["progress"], Progress):
        raise TypeError("progress is a jobs.Progress")
    if state in (JobState.LOADING, JobState.RUNNING) and rec.started is None:
        new.setdefault("started", now)
    # A retried job (finished -> queued) is live again, so it is no longer finished.
    new.setdefault("finished", now if state.finished else None)
    return rec.with_(state=state, reason=reason,
                     history=(*rec.history, HistoryEntry(now, state, reason)), **new)


def _run_order(record: JobRecord) -> tuple[int, int]:
    return -record.priority, record.id


def _in_list_order(records: Iterable[JobRecord]) -> list[JobRecord]:
    """Jobs on the devices (loading, running, cancelling), then queued ones in run order
    (priority, then id), then finished ones, most recently finished first."""
    records = [*records]
    live = (sorted((r for r in records if r.state.active), key=_run_order)
            + sorted((r for r in records if r.state is JobState.QUEUED), key=_run_order))
    done = sorted((r for r in records if r.state.finished),
                  key=lambda r: (-(r.finished or 0.0), -r.id))
    return live + done


class JobStore(abc.ABC):
    """Every method is atomic. Per-job methods raise KeyError for an unknown id, except `get`
    (None) and `remove` (False)."""

    @abc.abstractmethod
    def add(self, record: JobRecord, now: float) -> JobRecord:
        """Store a queued job; a known `client_request_id` returns that job instead."""

    @abc.abstractmethod
    def get(self, job_id: int) -> JobRecord | None: ...

    @abc.abstractmethod
    def find_by_request(self, client_request_id: str) -> JobRecord | None: ...

    @abc.abstractmethod
    def list(self, include_finished: bool = True) -> list[JobRecord]:
        """Live jobs in run order, then finished ones newest first."""

    @abc.abstractmethod
    def transition(self, job_id: int, state: JobState, now: float, reason: str = "",
                   **fields) -> JobRecord:
        """Move a job to `state` (IllegalMove unless jobs.MOVES has the move), recording
        it in the history, with other fields changed at the same time."""

    @abc.abstractmethod
    def set_progress(self, job_id: int, progress: Progress) -> None: ...

    @abc.abstractmethod
    def clear_stalls(self, job_id: int) -> None:
        """The running attempt wrote a shard: it no longer counts against the cap."""

    @abc.abstractmethod
    def next_queued(self) -> JobRecord | None: ...

    @abc.abstractmethod
    def count(self, states: Iterable[JobState]) -> int: ...

    @abc.abstractmethod
    def append_log(self, job_id: int, now: float, line: str) -> int: ...

    @abc.abstractmethod
    def logs(self, job_id: int, since: int = 0) -> list[tuple[int, float, str]]: ...

    @abc.abstractmethod
    def remove(self, job_id: int) -> bool:
        """Remove a finished job with its history and logs; a live one raises ValueError."""

    @abc.abstractmethod
    def remove_finished(self, older_than: float, now: float) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryJobStore(JobStore):
    """Dicts behind a lock; records come back as plain copies, as they would from SQLite."""

    def __init__(self, log_cap: int = LOG_CAP) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, JobRecord] = {}
        self._logs: dict[int, deque[tuple[int, float, str]]] = {}  # maxlen drops the oldest
        self._last_id = 0
        self._cap = log_cap

    def _job(self, job_id: int) -> JobRecord:
        if job_id not in self._jobs:
            raise KeyError(job_id)
        return self._jobs[job_id]

    def add(self, record: JobRecord, now: float) -> JobRecord:
        _check_new(record)
        with self._lock:
            if record.client_request_id is not None:
                existing = self._find(record.client_request_id)
                if existing is not None:
                    return existing
            self._last_id += 1
            job = record.with_(id=self._last_id, created=now, inputs=tuple(record.inputs),
                               options=_plain(record.options),
                               history=(HistoryEntry(now, JobState.QUEUED, ""),))
            self._jobs[job.id] = job
            self._logs[job.id] = deque(maxlen=self._cap)
            return job

    def get(self, job_id: int) -> JobRecord | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _find(self, client_request_id: str) -> JobRecord | None:
        return next((j for j in self._jobs.values()
                     if j.client_request_id == client_request_id), None)

    def find_by_request(self, client_request_id: str) -> JobRecord | None:
        with self._lock:
            return self._find(client_request_id)

    def list(self, include_finished: bool = True) -> list[JobRecord]:
        with self._lock:
            return _in_list_order(j for j in self._jobs.values()
                                  if include_finished or j.state.live)

    def transition(self, job_id: int, state: JobState, now: float, reason: str = "",
                   **fields) -> JobRecord:
        with self._lock:
            job = self._jobs[job_id] = _transitioned(self._job(job_id), state, now, reason, fields)
            return job

    def set_progress(self, job_id: int, progress: Progress) -> None:
        with self._lock:
            self._jobs[job_id] = self._job(job_id).with_(progress=progress)

    def clear_stalls(self, job_id: int) -> None:
        with self._lock:
            self._jobs[job_id] = self._job(job_id).with_(stalls=0)

    def next_queued(self) -> JobRecord | None:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.state is JobState.QUEUED]
            return min(queued, key=lambda j: (-j.priority, j.id), default=None)

    def count(self, states: Iterable[JobState]) -> int:
        wanted = set(states)
        with self._lock:
            return sum(j.state in wanted for j in self._jobs.values())

    def append_log(self, job_id: int, now: float, line: str) -> int:
        with self._lock:
            self._job(job_id)
            lines = self._logs[job_id]
            n = lines[-1][0] + 1 if lines else 1  # the newest line is never the one dropped
            lines.append((n, now, line))
            return n

    def logs(self, job_id: int, since: int = 0) -> list[tuple[int, float, str]]:
        with self._lock:
            self._job(job_id)
            return [entry for entry in self._logs[job_id] if entry[0] > since]

    def remove(self, job_id: int) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state.live:
                raise ValueError(f"job {job_id} is {job.state.value}; only finished jobs go")
            del self._jobs[job_id], self._logs[job_id]
            return True

    def remove_finished(self, older_than: float, now: float) -> int:
        with self._lock:
            old = [j.id for j in self._jobs.values() if j.state.finished
                   and j.finished is not None and j.finished < now - older_than]
            for job_id in old:
                del self._jobs[job_id], self._logs[job_id]
            return len(old)

    def close(self) -> None:
        pass
