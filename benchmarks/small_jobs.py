"""Small jobs through the daemon: 10 jobs of 5 sequences each, one after the other, with the
models kept loaded (persistent) and loaded per job, against the scoring of one such job with
the models warm (the floor no daemon goes below).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.synthetic_input import write_input
from benchmarks.workload import columns, frames_of, load_as_predict


def daemon_jobs(models_root: str, dev: str, work: Path, n_jobs: int = 10) -> dict:
    """10 small jobs of 5 sequences each, one after the other, persistent vs per-job models."""
    small = work / "small.fasta"
    write_input(small, 5, 500, seed=7)  # 5 contigs of 500 bp: a small job
    out = {}
    for persistent in (True, False):
        runtime = work / f"run-{persistent}"
        runtime.mkdir(mode=0o700)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(work / f"st-{persistent}")}
        flag = "--persistent-models" if persistent else "--no-persistent-models"
        args = ["--devices", dev, flag] + (["--models", models_root] if persistent else [])
        log = work / f"daemon-{persistent}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start",
                                     "--foreground", *args], env=env, stderr=err)
        try:
            client = _client(env, proc, log)
            t0 = time.perf_counter()
            for i in range(n_jobs):
                job = client.submit([str(small)], outdir=str(work / f"jobs-{persistent}" / str(i)),
                                    options={"models": models_root, "report": False})
                while client.show(job.id).state.live:
                    time.sleep(0.05)
            out["persistent" if persistent else "per_job"] = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(60)
    floor = small_job_compute(small, models_root, dev)
    return {"jobs": n_jobs, "persistent_s": round(out["persistent"], 2),
            "per_job_s": round(out["per_job"], 2), "speedup": out["per_job"] / out["persistent"],
            "compute_s_per_job": round(floor, 3),
            "speedup_ceiling": out["per_job"] / (n_jobs * floor)}


def small_job_compute(fasta: Path, models_root: str, dev: str) -> float:
    """The scoring of one small job with the models resident and warm (best of 3): what no
    daemon can go below per job, so per-job time / this bounds the persistent speed-up."""
    from virnucpro.batch_budget import resolve
    from virnucpro.run.feed import default_batch_tokens
    from virnucpro.scoring import score_frames

    frames = frames_of(fasta)
    models = load_as_predict(models_root, dev)
    best = float("inf")
    for _ in range(4):  # the first is a warm-up
        t0 = time.perf_counter()
        score_frames(*columns(frames), models, resolve(models, default_batch_tokens([dev])))
        best = min(best, time.perf_counter() - t0)
    return best


def _client(env: dict, proc: subprocess.Popen, log: Path):
    """A client of the daemon just started; its log's end if it exits or never answers."""
    os.environ.update({k: env[k] for k in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME")})
    from virnucpro.daemon.client import Client, DaemonUnavailable

    deadline = time.monotonic() + 300  # a persistent daemon loads its models before answering
    while True:
        try:
            client = Client(timeout=2)
            client.status()
            return Client(timeout=60)
        except DaemonUnavailable:
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "no answer"
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the benchmark's daemon failed to start ({why}):\n{tail}") from None
            time.sleep(0.2)
