"""The durable job store: jobs, their state history and their log lines, behind one interface.

`JobStore` has two versions that behave identically: `SqliteJobStore` (one WAL file; a state
change is on disk when `transition` returns) and `MemoryJobStore` (tests and fakes). Callers
pass `now`; the store never reads the clock. Ids increase from 1 and are never reused. Both are
safe to share between threads. The store records states; the scheduler decides which are legal.
"""

from __future__ import annotations

import abc
import json
import logging
import sqlite3
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from virnucpro.daemon.jobs import InputFile, JobRecord
from virnucpro.daemon.protocol import JobState

log = logging.getLogger(__name__)

LOG_CAP = 10_000  # lines kept per job: a chatty job must not fill the disk
SCHEMA_VERSION = 1
# What `transition` may change; id, state, created, client_request_id and history are the store's.
_SETTABLE = frozenset({"name", "inputs", "outdir", "options", "priority", "attempts",
                       "started", "finished", "progress"})
_LIVE = tuple(s.value for s in JobState if s.live)
_FINISHED = tuple(s.value for s in JobState if s.finished)


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
    new = {**changes}
    for key in ("options", "progress"):
        if key in new:
            new[key] = _plain(new[key])
    if state in (JobState.LOADING, JobState.RUNNING) and rec.started is None:
        new.setdefault("started", now)
    # A retried job (finished -> queued) is live again, so it is no longer finished.
    new.setdefault("finished", now if state.finished else None)
    return rec.with_(state=state, reason=reason,
                     history=(*rec.history, (now, state.value, reason)), **new)


def _in_list_order(records: Iterable[JobRecord]) -> list[JobRecord]:
    records = [*records]
    live = sorted((r for r in records if r.state.live), key=lambda r: (-r.priority, r.id))
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
                   **fields) -> JobRecord: ...

    @abc.abstractmethod
    def set_progress(self, job_id: int, progress: dict) -> None: ...

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
                               progress=_plain(record.progress), history=((now, "queued", ""),))
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

    def set_progress(self, job_id: int, progress: dict) -> None:
        with self._lock:
            self._jobs[job_id] = self._job(job_id).with_(progress=_plain(progress))

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a removed job's id is never reused
  name TEXT NOT NULL, state TEXT NOT NULL, inputs TEXT NOT NULL, outdir TEXT NOT NULL,
  options TEXT NOT NULL, priority INTEGER NOT NULL, client_request_id TEXT UNIQUE,
  reason TEXT NOT NULL, attempts INTEGER NOT NULL, created REAL NOT NULL, started REAL,
  finished REAL, progress TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_run_order ON jobs (state, priority DESC, id);
CREATE TABLE IF NOT EXISTS history (
  seq INTEGER PRIMARY KEY, job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  time REAL NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_job ON history (job_id, seq);
CREATE TABLE IF NOT EXISTS logs (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, n INTEGER NOT NULL,
  time REAL NOT NULL, line TEXT NOT NULL, PRIMARY KEY (job_id, n)) WITHOUT ROWID;
"""
_COLS = ("id", "name", "state", "inputs", "outdir", "options", "priority", "client_request_id",
         "reason", "attempts", "created", "started", "finished", "progress")
_SELECT = f"SELECT {', '.join(_COLS)} FROM jobs"


def _row(rec: JobRecord) -> tuple:
    return (rec.name, rec.state.value, json.dumps([asdict(i) for i in rec.inputs]), rec.outdir,
            json.dumps(rec.options), rec.priority, rec.client_request_id, rec.reason,
            rec.attempts, rec.created, rec.started, rec.finished, json.dumps(rec.progress))


def _record(row: tuple, history: Iterable[tuple[float, str, str]]) -> JobRecord:
    d = dict(zip(_COLS, row, strict=True))
    return JobRecord(**{**d, "state": JobState(d["state"]), "options": json.loads(d["options"]),
                        "inputs": tuple(InputFile(**i) for i in json.loads(d["inputs"])),
                        "progress": json.loads(d["progress"]), "history": tuple(history)})


class SqliteJobStore(JobStore):
    """One connection shared by both daemon threads behind a lock. Rejected: a connection per
    thread. The daemon's traffic is a few writes a second, so WAL's concurrent readers buy
    nothing; one connection makes `add`'s insert-or-select trivially atomic and lets `close`,
    called from any thread, close everything."""

    def __init__(self, path: Path, log_cap: int = LOG_CAP) -> None:
        self.path = Path(path)
        self._cap = log_cap
        self._lock = threading.Lock()
        self._sync = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we write BEGIN IMMEDIATE/COMMIT ourselves, so a transaction
            # takes the write lock up front instead of failing on upgrade.
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None,
                                       check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(self.path, f"cannot open: {exc}") from exc
        try:
            with self._errors():
                self._open()
        except StoreError:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout=5000")  # a second process (a CLI inspecting) waits
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            log.warning("%s: WAL unavailable on this file system; using a rollback journal",
                        self.path)
        db.execute("PRAGMA foreign_keys=ON")  # per connection; history and logs cascade
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(self.path, f"schema version {version} is newer than this "
                                        f"VirNucPro understands ({SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} "
                             f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        # A damaged page would otherwise surface mid-job, or never (an index nobody reads);
        # the file is small (logs are capped), so a full quick_check at start is cheap.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise StoreError(self.path, "damaged: " + "; ".join(problems))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:  # corrupt, unreadable, full disk, closed: all name the file
            raise StoreError(self.path, str(exc)) from exc

    @contextmanager
    def _tx(self, sync: str = "") -> Iterator[sqlite3.Connection]:
        """One transaction under the lock. sync="FULL" fsyncs the WAL at commit, so the change
        survives power loss; "NORMAL" survives a killed process but maybe not a power cut; ""
        is a read."""
        with self._lock, self._errors():
            if sync and sync != self._sync:
                self._db.execute(f"PRAGMA synchronous={sync}")  # not allowed inside a transaction
                self._sync = sync
            self._db.execute("BEGIN IMMEDIATE" if sync else "BEGIN")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:  # a failed COMMIT too: never leave the connection mid-transaction
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _load(self, db: sqlite3.Connection, job_id: int) -> JobRecord | None:
        row = db.execute(f"{_SELECT} WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return _record(row, db.execute("SELECT time, state, reason FROM history WHERE job_id = ?"
                                       " ORDER BY seq", (job_id,)))

    def _require(self, db: sqlite3.Connection, job_id: int) -> None:
        if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
            raise KeyError(job_id)

    def add(self, record: JobRecord, now: float) -> JobRecord:
        _check_new(record)
        with self._tx("FULL") as db:
            # Select, then insert, in one IMMEDIATE transaction: no other writer can slip in
            # between, and the unique index backs that up. Rejected: INSERT ... ON CONFLICT DO
            # NOTHING, which burns an AUTOINCREMENT id per retried submit.
            crid = record.client_request_id
            row = None if crid is None else db.execute(
                "SELECT id FROM jobs WHERE client_request_id = ?", (crid,)).fetchone()
            if row is not None:
                return self._load(db, row[0])
            job_id = db.execute(f"INSERT INTO jobs ({', '.join(_COLS[1:])}) VALUES "
                                f"({', '.join('?' * (len(_COLS) - 1))})",
                                _row(record.with_(created=now))).lastrowid
            db.execute("INSERT INTO history (job_id, time, state, reason) VALUES (?, ?, ?, ?)",
                       (job_id, now, JobState.QUEUED.value, ""))
            return self._load(db, job_id)

    def get(self, job_id: int) -> JobRecord | None:
        with self._tx() as db:
            return self._load(db, job_id)

    def find_by_request(self, client_request_id: str) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE client_request_id = ?",
                             (client_request_id,)).fetchone()
            return None if row is None else self._load(db, row[0])

    def list(self, include_finished: bool = True) -> list[JobRecord]:
        where = "" if include_finished else f"WHERE state IN ({', '.join('?' * len(_LIVE))})"
        args = () if include_finished else _LIVE
        with self._tx() as db:
            rows = db.execute(f"{_SELECT} {where}", args).fetchall()
            history: dict[int, list] = defaultdict(list)
            for job_id, *entry in db.execute(
                    "SELECT job_id, time, state, reason FROM history WHERE job_id IN "
                    f"(SELECT id FROM jobs {where}) ORDER BY seq", args):
                history[job_id].append(tuple(entry))
        return _in_list_order(_record(row, history[row[0]]) for row in rows)

    def transition(self, job_id: int, state: JobState, now: float, reason: str = "",
                   **fields) -> JobRecord:
        with self._tx("FULL") as db:
            rec = self._load(db, job_id)
            if rec is None:
                raise KeyError(job_id)
            new = _transitioned(rec, state, now, reason, fields)
            db.execute(f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in _COLS[1:])} WHERE id = ?",
                       (*_row(new), job_id))
            db.execute("INSERT INTO history (job_id, time, state, reason) VALUES (?, ?, ?, ?)",
                       (job_id, now, state.value, reason))
            return new

    def set_progress(self, job_id: int, progress: dict) -> None:
        # NORMAL: a crash may lose the last tick, and the next tick (or the resumed job's shard
        # count) replaces it anyway; an fsync per tick would cost more than the work it reports.
        with self._tx("NORMAL") as db:
            cur = db.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                             (json.dumps(progress), job_id))
            if cur.rowcount == 0:
                raise KeyError(job_id)

    def next_queued(self) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE state = ? ORDER BY priority DESC, id"
                             " LIMIT 1", (JobState.QUEUED.value,)).fetchone()
            return None if row is None else self._load(db, row[0])

    def count(self, states: Iterable[JobState]) -> int:
        values = [JobState(s).value for s in states]
        with self._tx() as db:
            return db.execute(f"SELECT COUNT(*) FROM jobs WHERE state IN "
                              f"({', '.join('?' * len(values))})", values).fetchone()[0]

    def append_log(self, job_id: int, now: float, line: str) -> int:
        with self._tx("NORMAL") as db:  # like progress: losing the last line to a power cut is fine
            self._require(db, job_id)
            n = db.execute("SELECT COALESCE(MAX(n), 0) + 1 FROM logs WHERE job_id = ?",
                           (job_id,)).fetchone()[0]
            db.execute("INSERT INTO logs (job_id, n, time, line) VALUES (?, ?, ?, ?)",
                       (job_id, n, now, line))
            db.execute("DELETE FROM logs WHERE job_id = ? AND n <= ?", (job_id, n - self._cap))
            return n

    def logs(self, job_id: int, since: int = 0) -> list[tuple[int, float, str]]:
        with self._tx() as db:
            self._require(db, job_id)
            return db.execute("SELECT n, time, line FROM logs WHERE job_id = ? AND n > ? "
                              "ORDER BY n", (job_id, since)).fetchall()

    def remove(self, job_id: int) -> bool:
        with self._tx("FULL") as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return False
            if JobState(row[0]).live:
                raise ValueError(f"job {job_id} is {row[0]}; only finished jobs go")
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return True

    def remove_finished(self, older_than: float, now: float) -> int:
        with self._tx("FULL") as db:
            return db.execute(f"DELETE FROM jobs WHERE state IN ({', '.join('?' * len(_FINISHED))})"
                              " AND finished < ?", (*_FINISHED, now - older_than)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
