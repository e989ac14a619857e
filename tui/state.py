"""The dashboard's model: the jobs, devices and daemon status that the event stream describes.

Pure (no Textual, no network): `apply(item)` folds in the `Snapshot` and each newer `Event` of
the client's `Follower`, typed records only (daemon/messages.py); `rows()` orders the jobs
(active, then queued in run order, then finished, newest first) and derives rate, elapsed and
ETA from their progress, their history and an injected clock, so that it is unit-tested without
an app and the snapshot tests can freeze time. Progress is measured in chunks, the unit whose
total the daemon counts before scoring; sequences are shown as figures only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from virnucpro.daemon.jobs import HistoryEntry, JobRecord, JobState
from virnucpro.daemon.messages import DaemonStatus, DeviceMemory, Event, Snapshot

MEMORY_SAMPLES = 60  # one memory event a second: the sparkline shows the last minute
DEFAULT_MODELS = "published"


@dataclass(frozen=True)
class JobRow:
    """One line of the queue table."""

    id: int
    name: str
    state: JobState
    priority: int
    sequences_done: int
    sequences_total: int | None
    chunks_done: int
    chunks_total: int | None
    fraction: float | None  # by chunks
    rate: float | None  # chunks per second, over the current run's scoring
    elapsed: float | None
    eta: float | None

    @property
    def live(self) -> bool:
        return self.state.live


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


def _first(entries: Iterable[HistoryEntry], test: Callable[[JobState], bool]) -> float | None:
    return next((h.time for h in entries if test(h.state)), None)


def job_row(job: JobRecord, now: float) -> JobRow:
    p = job.progress
    state = job.state
    seqs_total, seqs_done = p.sequences_total, p.sequences_done
    chunks_total, chunks_done = p.chunks_total, p.chunks_done
    fraction = p.fraction
    if state is JobState.COMPLETED:  # all of it, whatever was counted
        seqs_total = seqs_done = seqs_total or seqs_done
        chunks_total = chunks_done = chunks_total or chunks_done
        fraction = 1.0
    run = job.current_run()
    began = _first(run, lambda s: s.active)  # the job holds the devices from here
    scoring = _first(run, lambda s: s is JobState.RUNNING)  # rate counts scoring, not the load
    end = job.finished if state.finished else now
    elapsed = None if began is None or end is None else max(0.0, end - began)
    speed = None
    if scoring is not None and end is not None and end > scoring and chunks_done:
        speed = chunks_done / (end - scoring)
    eta = None
    if state is JobState.RUNNING and speed and chunks_total is not None:
        eta = max(0.0, (chunks_total - chunks_done) / speed)
    return JobRow(id=job.id, name=job.name, state=state, priority=job.priority,
                  sequences_done=seqs_done, sequences_total=seqs_total, chunks_done=chunks_done,
                  chunks_total=chunks_total, fraction=fraction, rate=speed, elapsed=elapsed,
                  eta=eta)


def job_order(job: JobRecord) -> tuple:
    """Active first, then queued as the daemon will run them, then finished, newest first."""
    if job.state.active:
        return (0, 0, job.id)
    if job.state is JobState.QUEUED:
        return (1, -job.priority, job.id)
    return (2, -(job.finished or 0.0), -job.id)


def model_label(models: str) -> str:
    """A loaded set is reported by its folder; its name is the folder's name."""
    return Path(models).name or models


class DashboardState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.jobs: dict[int, JobRecord] = {}
        self.devices: tuple[DeviceMemory, ...] = ()
        self.memory: dict[str, deque[int]] = {}
        self.daemon: DaemonStatus | None = None
        self.daemon_seen: float | None = None  # our clock when `daemon` was taken
        self.seq = 0
        self.connected = False

    # -- folding the stream in -------------------------------------------------------------

    def apply(self, item: Snapshot | Event) -> str:
        """Fold one item of `Client.follow()` in; return what changed: "snapshot", or the
        event's topic (job, progress, memory, daemon)."""
        if isinstance(item, Snapshot):
            self.jobs = {j.id: j for j in item.jobs}
            self._set_daemon(item.daemon)
            self.memory = {}
            self._set_devices(item.devices)
            self.connected = True
            self.seq = item.seq
            return "snapshot"
        body = item.body
        if item.topic == "job":
            self.jobs[body.id] = body
        elif item.topic == "progress":
            job = self.jobs.get(body.job_id)
            if job is not None:
                self.jobs[job.id] = job.with_(progress=body.progress)
        elif item.topic == "memory":
            self._set_devices(body.devices)
        elif item.topic == "daemon":
            self._set_daemon(body)
        self.seq = item.seq
        return item.topic

    def merge_job(self, job: JobRecord) -> None:
        """A job record from a request's reply. Replies and events travel apart, so the stream
        may already have brought a newer record (a cancel answers `cancelling` while the
        `cancelled` event overtook it): keep the one with the longer history, the stream's on
        a tie."""
        known = self.jobs.get(job.id)
        if known is None or len(job.history) > len(known.history):
            self.jobs[job.id] = job

    def _set_daemon(self, status: DaemonStatus) -> None:
        self.daemon = status
        self.daemon_seen = self.clock()

    def _set_devices(self, devices: tuple[DeviceMemory, ...]) -> None:
        self.devices = tuple(devices)
        for device in self.devices:
            samples = self.memory.setdefault(device.device, deque(maxlen=MEMORY_SAMPLES))
            if device.used_bytes is not None:
                samples.append(device.used_bytes)

    # -- views -----------------------------------------------------------------------------

    def rows(self) -> list[JobRow]:
        now = self.clock()
        return [job_row(j, now) for j in sorted(self.jobs.values(), key=job_order)]

    def queued(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state is JobState.QUEUED)

    def device_views(self) -> list[DeviceView]:
        return [DeviceView(device=d.device, kind=d.kind, name=d.name, used=d.used_bytes,
                           total=d.total_bytes, models=tuple(model_label(m) for m in d.models),
                           workers=len(d.workers), history=tuple(self.memory.get(d.device, ())),
                           source=d.source)
                for d in self.devices]

    def usual_models(self) -> str:
        """The submit dialog's default model set: one the daemon has loaded (its status, else
        the devices' reports), else the last job's, else the published one."""
        loaded = [*(self.daemon.loaded_models() if self.daemon else ()),
                  *(m for d in self.devices for m in d.models)]
        if loaded:
            return model_label(loaded[0])
        latest = max(self.jobs.values(), key=lambda j: j.id, default=None)
        models = latest.options.get("models") if latest is not None else None
        return models if isinstance(models, str) and models else DEFAULT_MODELS

    def uptime(self) -> float | None:
        if self.daemon is None or self.daemon_seen is None:
            return None
        return self.daemon.uptime_s + (self.clock() - self.daemon_seen)
