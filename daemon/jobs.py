"""A job as the daemon keeps it: `JobRecord`, its inputs' fingerprints, and its JSON form.

A job is one `predict` of one or more FASTA files into one output folder. The store keeps
these records; the server turns them into the `job` objects of the protocol with `to_wire`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from virnucpro.daemon.protocol import JobState


@dataclass(frozen=True)
class InputFile:
    """A submitted input and what it was at submission: a job whose input changed since
    (size, mtime or hash) must not be resumed."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class JobRecord:
    id: int  # assigned by the store, increasing
    name: str
    state: JobState
    inputs: tuple[InputFile, ...]
    outdir: str
    options: dict  # predict options: chunk_size, models, threshold, ... (protocol.SUBMIT_OPTIONS)
    priority: int = 0  # higher runs first; ties in submission order
    client_request_id: str | None = None
    reason: str = ""
    attempts: int = 0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    progress: dict = field(default_factory=dict)  # sequences_done/total, chunks_done, shards_done...
    history: tuple[tuple[float, str, str], ...] = ()  # (time, state, reason)

    def with_(self, **changes) -> JobRecord:
        return replace(self, **changes)

    def to_wire(self) -> dict:
        data = asdict(self)
        data["state"] = self.state.value
        data["inputs"] = [asdict(i) for i in self.inputs]
        data["history"] = [{"time": t, "state": s, "reason": r} for t, s, r in self.history]
        return data

    @classmethod
    def from_wire(cls, data: dict) -> JobRecord:
        return cls(**{**data, "state": JobState(data["state"]),
                      "inputs": tuple(InputFile(**i) for i in data["inputs"]),
                      "history": tuple((h["time"], h["state"], h["reason"]) for h in data["history"])})
