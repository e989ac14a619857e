"""The protocol's replies and events as frozen dataclasses, decoded in one place.

`decode_reply(kind, body)` turns the body of an ok reply to a request of `kind` into its record
(`REPLIES` maps each request type to its reply class); `decode_event(payload)` turns a PUB
frame into an `Event` whose `body` is typed by its topic (`EVENT_BODIES`). The server builds
its replies from the same classes (`to_dict()`), so the two sides cannot drift apart. A reply
that does not fit raises `WireError`. Imports nothing heavy.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from virnucpro.daemon.jobs import JobRecord, Progress
from virnucpro.daemon.protocol import PROTOCOL_VERSION, DaemonState
from virnucpro.daemon.wire import WireError, from_wire, to_wire


class _Record:
    def to_dict(self) -> dict:
        """The JSON form, as the wire (and `--json`) carries it."""
        return to_wire(self)


@dataclass(frozen=True)
class WorkerInfo(_Record):
    worker: int
    device: str
    state: str
    memory_bytes: int | None = None
    load_seconds: float | None = None
    node: str | None = None  # engine ray: the actor's node


@dataclass(frozen=True)
class LoadedSet(_Record):
    models: str  # the model set's folder
    workers: tuple[WorkerInfo, ...] = ()


@dataclass(frozen=True)
class DaemonStatus(_Record):
    state: DaemonState
    version: str
    protocol: int
    pid: int
    uptime_s: float
    persistent_models: bool
    devices: tuple[str, ...]
    engine: str
    precision: str
    requests: str
    events: str
    loaded: tuple[LoadedSet, ...]
    model_loads: int
    queued: int
    running: int | None
    max_queued: int
    default_models: str = "published"  # what a submit without a `models` option runs with

    def loaded_models(self) -> tuple[str, ...]:
        return tuple(entry.models for entry in self.loaded)


@dataclass(frozen=True)
class DeviceWorker(WorkerInfo):
    """A worker as a memory report lists it under its device, with the set it holds."""

    models: str = ""


@dataclass(frozen=True)
class DeviceMemory(_Record):
    """One device of a memory report: a GPU (NVML's figures, else its workers') or the host."""

    device: str
    kind: str  # gpu | cpu
    source: str  # nvml | workers | host
    name: str = ""
    used_bytes: int | None = None
    total_bytes: int | None = None
    workers: tuple[DeviceWorker, ...] = ()
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hello(_Record):
    daemon: DaemonStatus


@dataclass(frozen=True)
class Snapshot(_Record):
    """Everything at once; `seq` is the last event it covers."""

    seq: int
    daemon: DaemonStatus
    devices: tuple[DeviceMemory, ...]
    jobs: tuple[JobRecord, ...]

    def job(self, job_id: int) -> JobRecord | None:
        return next((j for j in self.jobs if j.id == job_id), None)


@dataclass(frozen=True)
class Submitted(_Record):
    job: JobRecord
    duplicate: bool  # a known client_request_id: the job submitted before


@dataclass(frozen=True)
class JobReply(_Record):
    """The reply to show, cancel and retry."""

    job: JobRecord


@dataclass(frozen=True)
class JobList(_Record):
    jobs: tuple[JobRecord, ...]


@dataclass(frozen=True)
class LogLine(_Record):
    n: int
    time: float
    line: str


@dataclass(frozen=True)
class LogLines(_Record):
    lines: tuple[LogLine, ...]


@dataclass(frozen=True)
class Removed(_Record):
    removed: int


@dataclass(frozen=True)
class UploadStarted(_Record):
    upload_id: str
    chunk_bytes: int


@dataclass(frozen=True)
class UploadReceived(_Record):
    received: int


@dataclass(frozen=True)
class UploadDone(_Record):
    upload_id: str
    path: str


@dataclass(frozen=True)
class DownloadChunk(_Record):
    data: str  # base64 on the wire; `content` decodes it
    offset: int
    eof: bool
    size: int

    @property
    def content(self) -> bytes:
        return base64.b64decode(self.data)


# Every request type -> the class of its ok reply's body.
REPLIES: dict[str, type] = {
    "hello": Hello, "status": DaemonStatus, "snapshot": Snapshot, "submit": Submitted,
    "jobs": JobList, "show": JobReply, "cancel": JobReply, "retry": JobReply, "logs": LogLines,
    "remove": Removed, "drain": DaemonStatus, "stop": DaemonStatus,
    "upload_begin": UploadStarted, "upload_chunk": UploadReceived, "upload_end": UploadDone,
    "download": DownloadChunk,
}


def decode_reply(kind: str, body: Any) -> Any:
    return from_wire(REPLIES[kind], body, f"{kind} reply")


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress(_Record):
    """A `progress` event: a job's work so far (between its state changes)."""

    job_id: int
    progress: Progress


@dataclass(frozen=True)
class MemoryReport(_Record):
    devices: tuple[DeviceMemory, ...]


EventBody = JobRecord | JobProgress | MemoryReport | DaemonStatus
EVENT_BODIES: dict[str, type] = {"job": JobRecord, "progress": JobProgress,
                                 "memory": MemoryReport, "daemon": DaemonStatus}


@dataclass(frozen=True)
class Event:
    seq: int  # one sequence over every topic: a gap means an event was lost
    topic: str
    time: float
    body: EventBody


def event_body(topic: str, body: EventBody) -> dict:
    if not isinstance(body, EVENT_BODIES[topic]):
        raise TypeError(f"a {topic} event carries a {EVENT_BODIES[topic].__name__}")
    return to_wire(body)


def decode_event(payload: bytes) -> Event:
    try:
        msg = json.loads(payload)
    except ValueError as exc:
        raise WireError(f"an event that is not JSON: {exc}") from None
    if not isinstance(msg, dict) or msg.get("topic") not in EVENT_BODIES:
        raise WireError("an event without a known topic")
    if msg.get("v") != PROTOCOL_VERSION:
        raise WireError(f"an event of protocol version {msg.get('v')!r}, not {PROTOCOL_VERSION}")
    topic = msg["topic"]
    seq, when = msg.get("seq"), msg.get("time")
    if not isinstance(seq, int) or not isinstance(when, (int, float)):
        raise WireError(f"a {topic} event without seq or time")
    body = from_wire(EVENT_BODIES[topic], msg.get("body"), f"{topic} event")
    return Event(seq=seq, topic=topic, time=float(when), body=body)
