"""The dashboard's model: the jobs, devices and daemon status that the event stream describes.

Pure (no Textual, no network): `apply(event)` folds in the snapshot and each newer event;
`rows()` orders the jobs (active, then queued in run order, then finished, newest first) and
derives rate, elapsed and ETA from their progress, their history and an injected clock, so
that it is unit-tested without an app and the snapshot tests can freeze time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from virnucpro.daemon.protocol import JobState

MEMORY_SAMPLES = 60  # one memory event a second: the sparkline shows the last minute
ACTIVE = ("loading", "running", "cancelling")


@dataclass(frozen=True)
class JobRow:
    """One line of the queue table."""

    id: int
    name: str
    state: str
    priority: int
    done: int
    total: int | None
    fraction: float | None
    rate: float | None  # sequences per second, over the current run
    elapsed: float | None
    eta: float | None

    @property
    def live(self) -> bool:
        return JobState(self.state).live


@dataclass(frozen=True)
class DeviceView:
    """One device of the panel: its memory now and over the last minute."""

    device: str
    kind: str  # gpu | cpu
    name: str
    used: int | None
    total: int | None
    models: tuple[str, ...]
    workers: int
    history: tuple[int, ...]
    source: str  # nvml | workers | host

    @property
    def fraction(self) -> float | None:
        return self.used / self.total if self.used is not None and self.total else None


def current_run(job: dict) -> list[dict]:
    """The history entries since the job last entered the queue (a retry starts a new run)."""
    history = job.get("history") or []
    last_queued = max((i for i, h in enumerate(history) if h["state"] == "queued"), default=-1)
    return history[last_queued + 1:]


def _first(entries: list[dict], states: tuple[str, ...]) -> float | None:
    return next((h["time"] for h in entries if h["state"] in states), None)


def job_row(job: dict, now: float) -> JobRow:
    progress = job.get("progress") or {}
    total = progress.get("sequences_total") or None
    done = int(progress.get("sequences_done") or 0)
    state = job["state"]
    if state == "completed":
        total = total or done
        done = total
    fraction = None if total is None else (done / total if total else 1.0)
    run = current_run(job)
    began = _first(run, ACTIVE)  # loading or running: the job holds the devices from here
    scoring = _first(run, ("running",))  # rate counts scoring time, not the model load
    end = job.get("finished") if JobState(state).finished else now
    elapsed = None if began is None or end is None else max(0.0, end - began)
    speed = None
    if scoring is not None and end is not None and end > scoring and done:
        speed = done / (end - scoring)
    eta = None
    if state == "running" and speed and total is not None:
        eta = max(0.0, (total - done) / speed)
    return JobRow(id=job["id"], name=job.get("name", ""), state=state,
                  priority=job.get("priority", 0), done=done, total=total, fraction=fraction,
                  rate=speed, elapsed=elapsed, eta=eta)


def job_order(job: dict) -> tuple:
    """Active first, then queued as the daemon will run them, then finished, newest first."""
    state = job["state"]
    if state in ACTIVE:
        return (0, 0, job["id"])
    if state == "queued":
        return (1, -job.get("priority", 0), job["id"])
    return (2, -(job.get("finished") or 0.0), -job["id"])


def model_label(models: str) -> str:
    """A loaded set is reported by its folder; its name is the folder's name."""
    return Path(models).name or models


class DashboardState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.jobs: dict[int, dict] = {}
        self.devices: list[dict] = []
        self.memory: dict[str, deque[int]] = {}
        self.daemon: dict = {}
        self.daemon_seen: float | None = None  # our clock when `daemon` was taken
        self.seq = 0
        self.connected = False

    # -- folding events in -----------------------------------------------------------------

    def apply(self, event: dict) -> str:
        """Fold one item of `Client.events()` in; return its topic (what changed)."""
        topic, body = event["topic"], event["body"]
        if topic == "snapshot":
            self.jobs = {j["id"]: j for j in body.get("jobs", [])}
            self._set_daemon(body.get("daemon") or {})
            self.memory = {}
            self._set_devices(body.get("devices") or [])
            self.connected = True
        elif topic == "job":
            self.jobs[body["id"]] = body
        elif topic == "progress":
            job = self.jobs.get(body["job_id"])
            if job is not None:
                fresh = {k: v for k, v in body.items() if k != "job_id"}
                self.jobs[job["id"]] = {**job, "progress": {**(job.get("progress") or {}), **fresh}}
        elif topic == "memory":
            self._set_devices(body.get("devices") or [])
        elif topic == "daemon":
            self._set_daemon(body)
        self.seq = event.get("seq", self.seq)
        return topic

    def merge_job(self, job: dict) -> None:
        """A job record from a request's reply. Replies and events travel apart, so the stream
        may already have brought a newer record (a cancel answers `cancelling` while the
        `cancelled` event overtook it): keep the one with the longer history, the stream's on
        a tie."""
        known = self.jobs.get(job["id"])
        if known is None or len(job.get("history") or []) > len(known.get("history") or []):
            self.jobs[job["id"]] = job

    def _set_daemon(self, status: dict) -> None:
        self.daemon = status
        self.daemon_seen = self.clock()

    def _set_devices(self, rows: list[dict]) -> None:
        self.devices = rows
        for row in rows:
            samples = self.memory.setdefault(row["device"], deque(maxlen=MEMORY_SAMPLES))
            if row.get("used_bytes") is not None:
                samples.append(int(row["used_bytes"]))

    # -- views -----------------------------------------------------------------------------

    def rows(self) -> list[JobRow]:
        now = self.clock()
        return [job_row(j, now) for j in sorted(self.jobs.values(), key=job_order)]

    def device_views(self) -> list[DeviceView]:
        out = []
        for row in self.devices:
            models = tuple(model_label(m) for m in row.get("models") or [])
            used, total = row.get("used_bytes"), row.get("total_bytes")
            out.append(DeviceView(
                device=row["device"], kind=row.get("kind", "gpu"), name=row.get("name") or "",
                used=None if used is None else int(used), total=None if total is None else int(total),
                models=models, workers=len(row.get("workers") or []),
                history=tuple(self.memory.get(row["device"], ())), source=row.get("source", "")))
        return out

    def usual_models(self) -> str:
        """The submit dialog's default model set: the one loaded, else the last job's."""
        loaded = [m for view in self.device_views() for m in view.models]
        if loaded:
            return loaded[0]
        latest = max(self.jobs.values(), key=lambda j: j["id"], default=None)
        return (latest.get("options") or {}).get("models", "published") if latest else "published"

    def uptime(self) -> float | None:
        if not self.daemon or self.daemon_seen is None:
            return None
        return self.daemon.get("uptime_s", 0.0) + (self.clock() - self.daemon_seen)
