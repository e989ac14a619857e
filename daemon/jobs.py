"""A job as the daemon keeps it and sends it: its states, the legal moves between them, its
progress, and `JobRecord`, the one record class of the store and of the wire.

A job is one `predict` of one or more FASTA files into one output folder. `MOVES` is the whole
lifecycle: every legal change of state, with the verb of the job service (service.py) that
makes it; both stores refuse any other with `IllegalMove`. Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from virnucpro.daemon.wire import from_wire, to_wire


class JobState(str, Enum):
    QUEUED = "queued"
    LOADING = "loading"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def live(self) -> bool:
        return self in (JobState.QUEUED, JobState.LOADING, JobState.RUNNING, JobState.CANCELLING)

    @property
    def finished(self) -> bool:
        return not self.live

    @property
    def active(self) -> bool:
        """Holding the devices (or about to): loading, running or cancelling."""
        return self in (JobState.LOADING, JobState.RUNNING, JobState.CANCELLING)


_Q, _L, _R = JobState.QUEUED, JobState.LOADING, JobState.RUNNING
_CG, _CD, _F, _D = JobState.CANCELLING, JobState.CANCELLED, JobState.FAILED, JobState.COMPLETED

# (from, to) -> the service verb that makes the move. Nothing else changes a job's state.
MOVES: Mapping[tuple[JobState, JobState], str] = {
    (_Q, _L): "claim",  # the scheduler takes the next job
    (_L, _R): "start",  # its inputs are valid and its folders claimed
    (_R, _D): "finish",  # its last input's tables are published
    (_L, _F): "fail",  # a bad input, a missing model set, an input changed since submission
    (_R, _F): "fail",  # the engine failed, a shard could not be written
    (_CG, _F): "fail",  # ... while a cancel was on its way
    (_Q, _CD): "cancel",  # a queued job ends at once
    (_L, _CG): "cancel",  # a claimed job stops at the next shard boundary
    (_R, _CG): "cancel",
    (_CG, _CD): "halt",  # the scheduler reached that boundary; or reconcile after a crash
    (_L, _Q): "requeue",  # the daemon stops, or restarts after a crash: resumes later
    (_R, _Q): "requeue",
    (_F, _Q): "retry",
    (_CD, _Q): "retry",
}


class IllegalMove(Exception):
    """A state change that is not in `MOVES` (a completed job cannot run again)."""

    def __init__(self, job_id: int, current: JobState, wanted: JobState, hint: str = "") -> None:
        message = f"job {job_id} is {current.value}; it cannot become {wanted.value}"
        super().__init__(f"{message}: {hint}" if hint else message)
        self.job_id, self.current, self.wanted = job_id, current, wanted


def check_move(job_id: int, current: JobState, wanted: JobState) -> None:
    if (current, wanted) not in MOVES:
        raise IllegalMove(job_id, current, wanted)


@dataclass(frozen=True)
class InputFile:
    """A submitted input and what it was at submission: a job whose input changed since
    (size, mtime or hash) must not be resumed."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class HistoryEntry:
    time: float
    state: JobState
    reason: str = ""


@dataclass(frozen=True)
class Progress:
    """A job's work in units that the edges can report honestly: chunks scored (their rows
    written) of a total counted by the first pass, before any scoring. Sequences are the
    same for the sequence table. `counts` and `reports` are the outcome of a completed job."""

    chunks_done: int = 0
    chunks_total: int | None = None  # None until the first pass has counted them
    sequences_done: int = 0
    sequences_total: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    reports: tuple[str, ...] = ()

    @property
    def fraction(self) -> float | None:
        """Share of the work done, by chunks; None while the total is unknown."""
        if self.chunks_total is None:
            return None
        return 1.0 if self.chunks_total == 0 else min(1.0, self.chunks_done / self.chunks_total)

    def with_(self, **changes: Any) -> Progress:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return to_wire(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Progress:
        # A store written before 0.2 kept a free dict (sequences, chunks_done, counts):
        # what fits is read, the rest ignored.
        return from_wire(cls, data)


@dataclass(frozen=True)
class JobRecord:
    id: int  # assigned by the store, increasing
    name: str
    state: JobState
    inputs: tuple[InputFile, ...]
    outdir: str
    options: dict[str, Any]  # predict options: chunk_size, models, ... (protocol.SUBMIT_OPTIONS)
    priority: int = 0  # higher runs first; ties in submission order
    client_request_id: str | None = None
    reason: str = ""
    attempts: int = 0
    # Attempts in a row that wrote no new shard (the one running counts until it writes one):
    # what the crash-loop cap counts, so that restarts of a job that advances never fail it.
    stalls: int = 0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    progress: Progress = field(default_factory=Progress)
    history: tuple[HistoryEntry, ...] = ()

    def with_(self, **changes: Any) -> JobRecord:
        return replace(self, **changes)

    def share_done(self) -> float | None:
        """The share of the work done as every edge shows it: 1.0 only once completed (a job
        writing its last tables is not done: at most 0.999), None while the total is unknown."""
        if self.state is JobState.COMPLETED:
            return 1.0
        fraction = self.progress.fraction
        return None if fraction is None else min(fraction, 0.999)

    def current_run(self) -> tuple[HistoryEntry, ...]:
        """The history since the job last entered the queue (a retry starts a new run)."""
        last = max((i for i, h in enumerate(self.history) if h.state is JobState.QUEUED),
                   default=-1)
        return self.history[last + 1:]

    def to_dict(self) -> dict:
        """The JSON form: the `job` object of the protocol and of `--json`."""
        return to_wire(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> JobRecord:
        return from_wire(cls, data)
