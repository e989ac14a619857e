"""A fake daemon behind the dashboard's client factory, for states a real one rarely shows:
a daemon that goes away and comes back, a refused submission, GPUs with memory figures.

`FakeDaemon` holds the scene in the protocol's JSON form (jobs, devices, status, logs) and the
event queue; `FakeDaemon.client(timeout)` is the factory the app takes, giving `FakeClient`s
that answer like `virnucpro.daemon.client.Client`: same verbs, same errors, the same typed
records, decoded from that JSON by the daemon's own `messages.decode_reply` / `decode_event`
(events are framed by `protocol.make_event`), so the fake and the real client cannot drift
apart. `follow()` is the client's own `Follower` (daemon/follow.py) reading the fake daemon's
published frames through `FakeSubscriber`: a `Snapshot`, then newer `Event`s, None when idle, a
new snapshot after a gap in seq, and `DaemonUnavailable` once the fake daemon is down (after
`liveness_s` of silence) or after a `stopped` daemon event. A test drives it:
`publish`, `go_down`, `come_back`, `refuse_next_submit`, `run_progress`. `sample_daemon(now)` is the fixed
scene of the snapshot tests; `snapshot_of` and `event_of` build typed items for the state's
unit tests.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable

from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.daemon.follow import LIVENESS_S, Follower
from virnucpro.daemon.jobs import JobRecord
from virnucpro.tui.results import Call, Results

ENDPOINT = "ipc:///run/user/1000/virnucpro/daemon.sock"
GB = 1_000_000_000
FOLLOW_POLL_S = 0.05


class FakeDaemon:
    def __init__(self, *, jobs: list[dict] | None = None, devices: list[dict] | None = None,
                 status: dict | None = None, logs: dict[int, list[dict]] | None = None,
                 now: float = 1_700_000_000.0) -> None:
        self.jobs: dict[int, dict] = {j["id"]: j for j in jobs or []}
        self.devices = devices if devices is not None else [cpu_device()]
        self.status_body = status or daemon_status()
        self.logs = logs or {}
        self.now = now
        self.seq = 0
        self.up = True
        self.refusal: ClientError | None = None
        self.calls: list[tuple[str, tuple]] = []
        self.events: queue.Queue[M.Event] = queue.Queue()
        self.lock = threading.Lock()

    # -- driving it from a test --------------------------------------------------------------

    def publish(self, topic: str, body: dict) -> None:
        """An event as the daemon publishes it (its PUB frames), decoded as the client does."""
        with self.lock:
            self.seq += 1
            self.events.put(P.make_event(self.seq, topic, body, self.now))

    def set_job(self, job: dict) -> None:
        self.jobs[job["id"]] = job
        self.publish("job", job)

    def go_down(self) -> None:
        self.up = False

    def come_back(self) -> None:
        self.up = True

    def progress_of(self, job_id: int, chunks_done: int, sequences_done: int | None = None) -> None:
        """Publish a progress event of job `job_id`: `chunks_done` of its counted total."""
        job = self.jobs[job_id]
        p = {**job["progress"], "chunks_done": chunks_done}
        if sequences_done is not None:
            p["sequences_done"] = sequences_done
        self.jobs[job_id] = {**job, "progress": p}
        self.publish("progress", {"job_id": job_id, "progress": p})

    def refuse_next_submit(self, code: str, message: str) -> None:
        self.refusal = ClientError(code, message)

    def client(self, timeout: float = 10.0) -> FakeClient:
        return FakeClient(self)


class FakeClient:
    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.endpoint = "fake://daemon"

    def _check(self, verb: str, *args) -> FakeDaemon:
        d = self.daemon
        d.calls.append((verb, args))
        self.check_reachable()
        return d

    def check_reachable(self) -> None:
        if not self.daemon.up:
            raise DaemonUnavailable(f"no answer from the daemon at {self.endpoint} (is it running?)")

    def close(self) -> None:
        pass

    def status(self) -> M.DaemonStatus:
        return M.decode_reply("status", self._check("status").status_body)

    def snapshot(self) -> M.Snapshot:
        d = self._check("snapshot")
        with d.lock:
            return M.decode_reply("snapshot", {"seq": d.seq, "daemon": d.status_body,
                                               "devices": d.devices, "jobs": list(d.jobs.values())})

    def _job(self, job_id: int) -> dict:
        job = self.daemon.jobs.get(job_id)
        if job is None:
            raise ClientError("unknown_job", f"no job {job_id}")
        return job

    def show(self, job_id: int) -> JobRecord:
        self._check("show", job_id)
        return M.decode_reply("show", {"job": self._job(job_id)}).job

    def jobs(self, all: bool = False) -> list[JobRecord]:  # noqa: A002 - the client's word
        return list(M.decode_reply("jobs", {"jobs": list(self._check("jobs").jobs.values())}).jobs)

    def submit(self, inputs: list[str], **kwargs) -> JobRecord:
        d = self._check("submit", inputs, kwargs)
        if d.refusal is not None:
            refusal, d.refusal = d.refusal, None
            raise refusal
        job_id = max(d.jobs, default=0) + 1
        options = {"chunk_size": 500, "models": "published", **(kwargs.get("options") or {})}
        job = make_job(job_id, kwargs.get("name") or inputs[0].rsplit("/", 1)[-1], "queued",
                       d.now, inputs=inputs, outdir=kwargs.get("outdir") or f"/results/job-{job_id}",
                       options=options, priority=kwargs.get("priority", 0))
        d.set_job(job)
        return M.decode_reply("submit", {"job": job, "duplicate": False}).job

    def cancel(self, job_id: int) -> JobRecord:
        d = self._check("cancel", job_id)
        job = self._job(job_id)
        new = {"queued": "cancelled", "loading": "cancelling", "running": "cancelling"}.get(job["state"])
        if new:
            job = with_state(job, new, d.now, "cancelled by request")
            d.set_job(job)
        return M.decode_reply("cancel", {"job": job}).job

    def retry(self, job_id: int) -> JobRecord:
        d = self._check("retry", job_id)
        job = self._job(job_id)
        if job["state"] not in ("failed", "cancelled"):
            raise ClientError("invalid", f"job {job_id} is {job['state']}; only failed or cancelled "
                                         "jobs can be retried")
        job = with_state(job, "queued", d.now, "retry requested")
        d.set_job(job)
        return M.decode_reply("retry", {"job": job}).job

    def remove(self, job_id: int | None = None, older_than_s: float | None = None) -> int:
        d = self._check("remove", job_id)
        job = self._job(job_id)
        if job["state"] not in ("completed", "failed", "cancelled"):
            raise ClientError("conflict", f"job {job_id} is {job['state']}; cancel it first")
        del d.jobs[job_id]
        return M.decode_reply("remove", {"removed": 1}).removed

    def logs(self, job_id: int, since: int = 0) -> list[M.LogLine]:
        d = self._check("logs", job_id, since)
        self._job(job_id)
        lines = [line for line in d.logs.get(job_id, []) if line["n"] > since]
        return list(M.decode_reply("logs", {"lines": lines}).lines)

    def subscriber(self, topics) -> FakeSubscriber:
        """What `Follower` reads: the fake daemon's published frames."""
        return FakeSubscriber(self.daemon)

    def follow(self, *, liveness_s: float = LIVENESS_S, poll_s: float = FOLLOW_POLL_S
               ) -> Follower:
        """The client's own follower (daemon/follow.py) over the fake's event queue."""
        return Follower(self, liveness_s=liveness_s, poll_s=poll_s)


class FakeSubscriber:
    """A SUB socket's `poll`, `recv_multipart` and `close`, on the fake daemon's queue."""

    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.ready: list[bytes] | None = None

    def poll(self, timeout_ms: int) -> bool:
        if self.ready is None:
            try:
                self.ready = self.daemon.events.get(timeout=timeout_ms / 1000)
            except queue.Empty:
                return False
        return True

    def recv_multipart(self) -> list[bytes]:
        self.poll(-1)
        frames, self.ready = self.ready, None
        return frames

    def close(self, linger: int = 0) -> None:
        pass


def snapshot_of(jobs: Iterable[dict], devices: Iterable[dict] = (), *, seq: int = 10,
                **status) -> M.Snapshot:
    """A typed snapshot of a scene given in JSON form."""
    return M.decode_reply("snapshot", {"seq": seq, "daemon": daemon_status(**status),
                                       "devices": list(devices), "jobs": list(jobs)})


def event_of(seq: int, topic: str, body: dict, now: float = 1_700_000_000.0) -> M.Event:
    """A typed event from its body in JSON form, through the daemon's framing and decoder."""
    return M.decode_event(P.make_event(seq, topic, body, now)[-1])


def record(job: dict) -> JobRecord:
    return JobRecord.from_dict(json.loads(json.dumps(job)))


# -- the records, shaped like the daemon's ------------------------------------------------------


def with_state(job: dict, state: str, now: float, reason: str = "") -> dict:
    finished = now if state in ("completed", "failed", "cancelled") else None
    return {**job, "state": state, "reason": reason, "finished": finished,
            "history": [*job["history"], {"time": now, "state": state, "reason": reason}]}


def make_job(job_id: int, name: str, state: str, now: float, *, inputs: list[str] | None = None,
             outdir: str = "", options: dict | None = None, priority: int = 0,
             steps: list[tuple[str, float]] | None = None, progress: dict | None = None,
             reason: str = "") -> dict:
    """A job record; `steps` are (state, seconds before now) for its history after `queued`."""
    steps = steps or []
    created = now - (max((s for _, s in steps), default=0.0) + 5.0)
    history = [{"time": created, "state": "queued", "reason": ""}]
    history += [{"time": now - ago, "state": st, "reason": ""} for st, ago in steps]
    if reason:
        history[-1]["reason"] = reason
    started = next((h["time"] for h in history if h["state"] in ("loading", "running")), None)
    finished = history[-1]["time"] if state in ("completed", "failed", "cancelled") else None
    return {"id": job_id, "name": name, "state": state,
            "inputs": [{"path": p, "size": 12_345_678, "mtime_ns": 0, "sha256": "0" * 64}
                       for p in inputs or [f"/data/{name}"]],
            "outdir": outdir or f"/data/out/{name.split('.')[0]}",
            "options": {"chunk_size": 500, "models": "published", "threshold": 0.5, "min_length": 1,
                        "save_embeddings": False, "rename_duplicates": False, "force": False,
                        "report": True, **(options or {})},
            "priority": priority, "client_request_id": None, "reason": reason,
            "attempts": 1 if started else 0, "created": created, "started": started,
            "finished": finished, "progress": progress or {}, "history": history}


def progress(sequences_done: int, sequences_total: int | None, *, chunks_per_sequence: int = 3,
             **more) -> dict:
    """A job's `progress` in JSON form: its sequences, and chunks in the same ratio (three per
    sequence: contigs are longer than one chunk), as the first pass counts them."""
    return {"sequences_done": sequences_done, "sequences_total": sequences_total,
            "chunks_done": sequences_done * chunks_per_sequence,
            "chunks_total": None if sequences_total is None else sequences_total * chunks_per_sequence,
            **more}


def daemon_status(**changes) -> dict:
    return {"state": "running", "version": "0.1.0", "protocol": P.PROTOCOL_VERSION, "pid": 4242,
            "uptime_s": 7384.0, "persistent_models": True, "devices": ["cuda:0", "cuda:1"],
            "engine": "pool", "precision": "bf16",
            "requests": ENDPOINT, "events": ENDPOINT.replace(".sock", "-events.sock"),
            "loaded": [], "model_loads": 2, "queued": 2, "running": 1, "max_queued": 1000,
            **changes}


def gpu_device(index: int, used: int, *, models: tuple[str, ...] = ("/models/sets/published",),
               total: int = 143_771 * 1_000_000, name: str = "NVIDIA H200") -> dict:
    device = f"cuda:{index}"
    workers = [{"models": m, "worker": index, "device": device, "state": "ready",
                "memory_bytes": used // 2, "load_seconds": 41.0} for m in models]
    return {"device": device, "kind": "gpu", "source": "nvml", "name": name, "used_bytes": used,
            "total_bytes": total, "workers": workers, "models": list(models)}


def cpu_device(used: int = 6 * GB, total: int = 64 * GB) -> dict:
    return {"device": "cpu", "kind": "cpu", "name": "host memory", "used_bytes": used,
            "total_bytes": total, "source": "host", "workers": [], "models": []}


def sample_daemon(now: float) -> FakeDaemon:
    """The scene of the snapshot tests: seven jobs in every state, two GPUs."""
    counts = {"sequences": 1840, "sequences_virus": 212, "sequences_others": 1601,
              "sequences_unscored": 27}
    jobs = [
        make_job(1, "gut_metagenome_S1.fa.gz", "running", now, priority=5,
                 steps=[("loading", 190.0), ("running", 150.0)],
                 progress=progress(3120, 8000)),
        make_job(2, "soil_S7.fasta", "queued", now, priority=5),
        make_job(3, "river_water_S2.fa", "queued", now),
        make_job(4, "ocean_S3.fna", "completed", now, steps=[("loading", 900.0), ("running", 880.0),
                                                             ("completed", 600.0)],
                 progress=progress(1840, 1840, counts=counts)),
        make_job(5, "broken.fa", "failed", now, steps=[("loading", 1300.0), ("failed", 1290.0)],
                 reason="model set 'published' is not installed; fetch it"),
        make_job(6, "old_run.fa", "cancelled", now, steps=[("loading", 2000.0), ("running", 1990.0),
                                                           ("cancelling", 1900.0), ("cancelled", 1898.0)],
                 progress=progress(400, 5000), reason="cancelled by request"),
    ]
    devices = [gpu_device(0, 61_400 * 1_000_000), gpu_device(1, 23_100 * 1_000_000, models=())]
    logs = {4: [{"n": i + 1, "time": now - 900 + 10 * i, "line": line} for i, line in enumerate([
        "submitted: 1 input(s) -> /data/out/ocean_S3", "attempt 1: loading model set 'published'",
        "scoring ocean_S3 (1840 sequences)", "completed: 1840 sequences, 212 viral"])]}
    return FakeDaemon(jobs=jobs, devices=devices, logs=logs, now=now)


def memory_wave(daemon: FakeDaemon, samples: int = 40) -> None:
    """Publish `samples` memory events whose GPU figures rise and fall (a sparkline to pin)."""
    for i in range(samples):
        rows = []
        for row in daemon.devices:
            wave = (i % 20) / 20 if row["device"] == "cuda:0" else (i % 7) / 14
            rows.append({**row, "used_bytes": int(row["total_bytes"] * (0.2 + 0.6 * wave))})
        daemon.devices = rows
        daemon.publish("memory", {"devices": rows})


def sample_results(outdir: str) -> Results:
    calls = [Call("contig_0412", 48_211, 1.0, 0.998, ""), Call("contig_1187", 12_950, 0.94, 0.991, ""),
             Call("contig_0033", 7_402, 0.88, 0.973, ""), Call("contig_1555", 3_311, 0.75, 0.942, ""),
             Call("contig_0908", 2_020, 0.67, 0.911, "")]
    return Results(outdir=outdir, tables=[f"{outdir}/sequences.tsv"], reports=[f"{outdir}/report.html"],
                   counts={"virus": 212, "others": 1601, "unscored": 27},
                   histogram=[903, 301, 122, 96, 88, 71, 60, 48, 55, 69], top=calls)
