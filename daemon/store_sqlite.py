"""The job store on disk: `SqliteJobStore`, one SQLite file in WAL mode (store.py has the
interface and the in-memory version). A state change is on disk when `transition` returns
(FULL sync); progress and log lines use NORMAL (a power cut may lose the last one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from virnucpro.daemon.jobs import HistoryEntry, InputFile, JobRecord, JobState, Progress
from virnucpro.daemon.paths import open_private
from virnucpro.daemon.store import (
    LOG_CAP,
    SCHEMA_VERSION,
    JobStore,
    StoreError,
    _check_new,
    _in_list_order,
    _transitioned,
)
from virnucpro.daemon.wire import to_wire

log = logging.getLogger(__name__)

_LIVE = tuple(s.value for s in JobState if s.live)
_FINISHED = tuple(s.value for s in JobState if s.finished)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a removed job's id is never reused
  name TEXT NOT NULL, state TEXT NOT NULL, inputs TEXT NOT NULL, outdir TEXT NOT NULL,
  options TEXT NOT NULL, priority INTEGER NOT NULL, client_request_id TEXT UNIQUE,
  reason TEXT NOT NULL, attempts INTEGER NOT NULL, created REAL NOT NULL, started REAL,
  finished REAL, progress TEXT NOT NULL, stalls INTEGER NOT NULL DEFAULT 0);
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
         "reason", "attempts", "created", "started", "finished", "progress", "stalls")
_SELECT = f"SELECT {', '.join(_COLS)} FROM jobs"


def _row(rec: JobRecord) -> tuple:
    return (rec.name, rec.state.value, json.dumps(to_wire(rec.inputs)), rec.outdir,
            json.dumps(rec.options), rec.priority, rec.client_request_id, rec.reason,
            rec.attempts, rec.created, rec.started, rec.finished,
            json.dumps(rec.progress.to_dict()), rec.stalls)


def _record(row: tuple, history: Iterable[tuple[float, str, str]]) -> JobRecord:
    d = dict(zip(_COLS, row, strict=True))
    return JobRecord(**{**d, "state": JobState(d["state"]), "options": json.loads(d["options"]),
                        "inputs": tuple(InputFile(**i) for i in json.loads(d["inputs"])),
                        "progress": Progress.from_dict(json.loads(d["progress"])),
                        "history": tuple(HistoryEntry(t, JobState(s), r) for t, s, r in history)})


def _make_private(path: Path) -> None:
    """The store's file exists with mode 0600 before SQLite opens it: SQLite makes its -wal
    and -shm files with the database file's mode, so they are 0600 from their start too (they
    hold every job's paths and log lines). Left by an earlier version at 0644: tightened."""
    os.close(open_private(path, os.O_RDWR))
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if extra.stat().st_uid == os.getuid():
                os.chmod(extra, 0o600)


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
            _make_private(self.path)
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
        # Stores written before `stalls` existed counted every attempt against the cap: their
        # attempts are taken as stalled ones (what they knew), so a crash loop still ends.
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if "stalls" not in columns:
            db.executescript("BEGIN IMMEDIATE; ALTER TABLE jobs ADD COLUMN stalls INTEGER NOT "
                             "NULL DEFAULT 0; UPDATE jobs SET stalls = attempts; COMMIT;")
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

    def set_progress(self, job_id: int, progress: Progress) -> None:
        # NORMAL: a crash may lose the last tick, and the next tick (or the resumed job's shard
        # count) replaces it anyway; an fsync per tick would cost more than the work it reports.
        with self._tx("NORMAL") as db:
            cur = db.execute("UPDATE jobs SET progress = ? WHERE id = ?",
                             (json.dumps(progress.to_dict()), job_id))
            if cur.rowcount == 0:
                raise KeyError(job_id)

    def clear_stalls(self, job_id: int) -> None:
        with self._tx("FULL") as db:  # what a crash loop's cap reads after a crash
            if db.execute("UPDATE jobs SET stalls = 0 WHERE id = ?", (job_id,)).rowcount == 0:
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
