"""A fake daemon behind the dashboard's client factory, for states a real one rarely shows:
a daemon that goes away and comes back, a refused submission, GPUs with memory figures.

`FakeDaemon` holds the jobs, devices and event queue; `FakeDaemon.client(timeout)` is the
factory the app takes, giving `FakeClient`s that answer like `virnucpro.daemon.client.Client`
(same verbs, same errors, `events()` = snapshot then newer events, None when idle). A test
drives it: `publish`, `go_down`, `come_back`, `refuse_next_submit`. `sample_daemon(now)` is the
fixed scene of the snapshot tests.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.tui.results import Call, Results

ENDPOINT = "ipc:///run/user/1000/virnucpro/daemon.sock"
GB = 1_000_000_000


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
        self.events: queue.Queue[dict] = queue.Queue()
        self.lock = threading.Lock()

    # -- driving it from a test --------------------------------------------------------------

    def publish(self, topic: str, body: dict) -> None:
        with self.lock:
            self.seq += 1
            self.events.put({"v": 1, "seq": self.seq, "topic": topic, "time": self.now, "body": body})

    def set_job(self, job: dict) -> None:
        self.jobs[job["id"]] = job
        self.publish("job", job)

    def go_down(self) -> None:
        self.up = False

    def come_back(self) -> None:
        self.up = True

    def refuse_next_submit(self, code: str, message: str) -> None:
        self.refusal = ClientError(code, message)

    def client(self, timeout: float = 10.0) -> FakeClient:
        return FakeClient(self)


class FakeClient:
    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.endpoint = "fake://daemon"  # not ipc://: the link's socket-file check is skipped

    def _check(self, verb: str, *args) -> FakeDaemon:
        d = self.daemon
        d.calls.append((verb, args))
        if not d.up:
            raise DaemonUnavailable(f"no answer from the daemon at {self.endpoint} (is it running?)")
        return d

    def close(self) -> None:
        pass

    def status(self) -> dict:
        return dict(self._check("status").status_body)

    def snapshot(self) -> dict:
        d = self._check("snapshot")
        with d.lock:
            return {"seq": d.seq, "daemon": dict(d.status_body), "devices": list(d.devices),
                    "jobs": list(d.jobs.values())}

    def _job(self, job_id: int) -> dict:
        job = self.daemon.jobs.get(job_id)
        if job is None:
            raise ClientError("unknown_job", f"no job {job_id}")
        return job

    def show(self, job_id: int) -> dict:
        self._check("show", job_id)
        return self._job(job_id)

    def jobs(self, all: bool = False) -> list[dict]:  # noqa: A002 - the client's word
        return list(self._check("jobs").jobs.values())

    def submit(self, inputs: list[str], **kwargs) -> dict:
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
        return job

    def cancel(self, job_id: int) -> dict:
        d = self._check("cancel", job_id)
        job = self._job(job_id)
        new = {"queued": "cancelled", "loading": "cancelling", "running": "cancelling"}.get(job["state"])
        if new:
            job = with_state(job, new, d.now, "cancelled by request")
            d.set_job(job)
        return job

    def retry(self, job_id: int) -> dict:
        d = self._check("retry", job_id)
        job = self._job(job_id)
        if job["state"] not in ("failed", "cancelled"):
            raise ClientError("invalid", f"job {job_id} is {job['state']}; only failed or cancelled "
                                         "jobs can be retried")
        job = with_state(job, "queued", d.now, "retry requested")
        d.set_job(job)
        return job

    def logs(self, job_id: int, since: int = 0) -> list[dict]:
        d = self._check("logs", job_id, since)
        self._job(job_id)
        return [line for line in d.logs.get(job_id, []) if line["n"] > since]

    def events(self, topics=None, *, poll_ms: int = 50) -> Iterator[dict | None]:
        snap = self.snapshot()
        yield {"topic": "snapshot", "seq": snap["seq"], "body": snap}
        last = snap["seq"]
        while True:
            try:
                event = self.daemon.events.get(timeout=poll_ms / 1000)
            except queue.Empty:
                yield None
                continue
            if event["seq"] > last:
                last = event["seq"]
                yield event


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


def daemon_status(**changes) -> dict:
    return {"state": "running", "version": "0.1.0", "protocol": 1, "pid": 4242, "uptime_s": 7384.0,
            "persistent_models": True, "devices": ["cuda:0", "cuda:1"], "engine": "pool",
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
                 progress={"sequences_done": 3120, "sequences_total": 8000, "chunks_done": 9000}),
        make_job(2, "soil_S7.fasta", "queued", now, priority=5),
        make_job(3, "river_water_S2.fa", "queued", now),
        make_job(4, "ocean_S3.fna", "completed", now, steps=[("loading", 900.0), ("running", 880.0),
                                                             ("completed", 600.0)],
                 progress={"sequences_done": 1840, "sequences_total": 1840, "counts": counts}),
        make_job(5, "broken.fa", "failed", now, steps=[("loading", 1300.0), ("failed", 1290.0)],
                 reason="model set 'published' is not installed; fetch it"),
        make_job(6, "old_run.fa", "cancelled", now, steps=[("loading", 2000.0), ("running", 1990.0),
                                                           ("cancelling", 1900.0), ("cancelled", 1898.0)],
                 progress={"sequences_done": 400, "sequences_total": 5000}, reason="cancelled by request"),
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
