"""The dashboard's model: the jobs, devices and daemon status that the event stream describes.

Pure (no Textual, no network): `apply(item)` folds in the `Snapshot` and each newer `Event` of
the client's `Follower`, typed records only (daemon/messages.py); `rows()` orders the jobs
(active, then queued in run order, then finished, newest first) and derives rate, elapsed and
ETA from their progress, their history and an injected clock, so that it is unit-tested without
an app and the snapshot tests can freeze time. Progress is measured in chunks, the unit whose
total the daemon counts before scoring; sequences are shown as figures only. The share done is
`JobRecord.share_done()` (100 % only once completed).

The rate is the recent one: per job, the (time, chunks_done) samples of its current run taken
from progress events (on the injected clock), and the rate over the last `RATE_WINDOW_S` of
them. Never chunks done / time since scoring began: a retried or resumed run reports the chunks
its earlier attempts left as done, and counting them again made the rate 5x too high and the
ETA 0 s with work left. While the daemon is lost the figures are those last heard, and no ETA.
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
RATE_WINDOW_S = 30.0  # the rate (and ETA) come from the progress of the last 30 s
SETTLE_S = 2.0  # a run's first progress reports are its starting point, not its rate
MIN_SPAN_S = 2.0  # no rate from reports closer together than this
RATE_SAMPLES = 240  # progress is published at most every 0.5 s: two minutes of it
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
    rate: float | None  # chunks per second, over the current run's last RATE_WINDOW_S
    elapsed: float | None
    eta: float | None
    stale: bool = False  # the daemon is lost: figures as last heard, no ETA

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


def run_key(job: JobRecord) -> int:
    """Which run of the job this is: the number of times it entered the queue (a retry, or a
    requeue when the daemon stopped, starts a new one)."""
    return sum(1 for h in job.history if h.state is JobState.QUEUED)


def recent_rate(samples: Iterable[tuple[float, int]], window: float = RATE_WINDOW_S) -> float | None:
    """Chunks per second between the newest sample and the oldest of the last `window`
    seconds (the one just before them when the newest is alone in it); None without two at
    least MIN_SPAN_S apart. A run's first SETTLE_S are its starting point: a resumed run
    first writes the rows of the shards already on disk, in a burst that is not scoring, so
    only the last sample of those seconds is kept, as the point the rate is measured from.
    Rejected: leaving them all out, which left a rate unknown until the third shard written
    (minutes with the published models on a CPU)."""
    samples = list(samples)
    if samples:
        settled = samples[0][0] + SETTLE_S
        start = max(i for i, s in enumerate(samples) if s[0] < settled)
        samples = samples[start:]
    if len(samples) < 2 or samples[-1][0] - samples[0][0] < MIN_SPAN_S:
        return None
    t1, c1 = samples[-1]
    ref = next(i for i, (t, _) in enumerate(samples) if t >= t1 - window)
    t0, c0 = samples[min(ref, len(samples) - 2)]
    if t1 <= t0 or c1 < c0:
        return None
    return (c1 - c0) / (t1 - t0)


def job_row(job: JobRecord, now: float, *, rate: float | None = None, stale: bool = False
            ) -> JobRow:
    """The row of `job` at `now`; `rate` is the recent scoring rate (`DashboardState` keeps
    the samples), `stale` that `now` is when the daemon was last heard (no ETA then)."""
    p = job.progress
    state = job.state
    seqs_total, seqs_done = p.sequences_total, p.sequences_done
    chunks_total, chunks_done = p.chunks_total, p.chunks_done
    fraction = job.share_done()  # 1.0 only once completed; a stopped job shows what was done
    if state is JobState.COMPLETED:  # all of it, whatever was counted
        seqs_total = seqs_done = seqs_total or seqs_done
        chunks_total = chunks_done = chunks_total or chunks_done
    run = job.current_run()
    began = _first(run, lambda s: s.active)  # the job holds the devices from here
    end = job.finished if state.finished else now
    elapsed = None if began is None or end is None else max(0.0, end - began)
    speed = rate if state is JobState.RUNNING and rate else None
    eta = None
    if speed and chunks_total is not None and not stale:
        eta = max(0.0, (chunks_total - chunks_done) / speed)
    return JobRow(id=job.id, name=job.name, state=state, priority=job.priority,
                  sequences_done=seqs_done, sequences_total=seqs_total, chunks_done=chunks_done,
                  chunks_total=chunks_total, fraction=fraction, rate=speed, elapsed=elapsed,
                  eta=eta, stale=stale)


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
        self.heard: float | None = None  # our clock at the last item of the stream
        # job id -> (its run, the (time, chunks_done) samples of that run's progress events)
        self.samples: dict[int, tuple[int, deque[tuple[float, int]]]] = {}

    # -- folding the stream in -------------------------------------------------------------

    def apply(self, item: Snapshot | Event) -> str:
        """Fold one item of `Client.follow()` in; return what changed: "snapshot", or the
        event's topic (job, progress, memory, daemon)."""
        self.heard = self.clock()
        if isinstance(item, Snapshot):
            self.jobs = {j.id: j for j in item.jobs}
            # A reconnection: the samples of runs still going are still good.
            self.samples = {i: s for i, s in self.samples.items()
                            if i in self.jobs and s[0] == run_key(self.jobs[i])}
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
                self._sample(job, body.progress.chunks_done)
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

    def forget(self, job_id: int) -> None:
        """A job removed from the daemon (no event says so)."""
        self.jobs.pop(job_id, None)
        self.samples.pop(job_id, None)

    def _sample(self, job: JobRecord, chunks_done: int) -> None:
        key = run_key(job)
        known = self.samples.get(job.id)
        if known is None or known[0] != key or job.state is not JobState.RUNNING:
            known = (key, deque(maxlen=RATE_SAMPLES))
            self.samples[job.id] = known
        if job.state is not JobState.RUNNING or chunks_done <= 0:
            # A run starts at 0 and a resumed one jumps at its first write to what its earlier
            # attempts left done: measured from that 0, those chunks would count as scored now.
            return
        known[1].append((self.clock(), chunks_done))

    def rate(self, job: JobRecord) -> float | None:
        """The recent chunks per second of the job's current run (None until two samples)."""
        known = self.samples.get(job.id)
        if known is None or known[0] != run_key(job):
            return None
        return recent_rate(known[1])

    @property
    def stale(self) -> bool:
        """The daemon was heard and is lost now: what is shown is as it was then."""
        return not self.connected and self.heard is not None

    def row(self, job: JobRecord) -> JobRow:
        now = self.heard if self.stale and self.heard is not None else self.clock()
        return job_row(job, now, rate=self.rate(job), stale=self.stale)

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
        return [self.row(j) for j in sorted(self.jobs.values(), key=job_order)]

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
