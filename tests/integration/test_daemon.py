"""A real daemon process on an ipc endpoint in a temp dir (CPU devices, tiny models): jobs,
cancel, busy, model loads per mode, crash and resume, a second daemon, hostile messages, tcp."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from tests.daemon_helpers import wait_for
from tests.helpers import DATA, read_table
from tests.integration.test_pool import assert_same_results
from virnucpro.config import PredictConfig
from virnucpro.daemon import protocol as P
from virnucpro.daemon import requests as R
from virnucpro.daemon.client import Client, ClientError, DaemonUnavailable
from virnucpro.pipeline import run_predict

REPO = Path(__file__).resolve().parents[2]
VIRAL = DATA / "viral_reference.fasta"
V = P.PROTOCOL_VERSION
NONVIRAL = DATA / "nonviral_reference.fasta"
SLOW = {"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer"}  # the daemon's workers inherit it


class Daemon:
    """One daemon process with its own runtime and state folders."""

    def __init__(self, tmp: Path, *args: str, env: dict | None = None) -> None:
        runtime = tmp / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(tmp / "state"),
                    "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
        self.args = args
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "virnucpro.daemon.cli", "start", "--foreground", *self.args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "daemon.err", "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.tmp / "daemon.err").read_text()
            try:
                self.client(timeout=1).status()
                return self
            except DaemonUnavailable:
                time.sleep(0.1)
        raise AssertionError("the daemon did not answer")

    def client(self, timeout: float = 10) -> Client:
        old = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME")}
        os.environ.update({k: self.env[k] for k in old})
        try:
            return Client(timeout=timeout)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def daemons(tmp_path, tiny_set_dir):
    started: list[Daemon] = []

    def make(*args, env=None, tmp=None) -> Daemon:
        d = Daemon(tmp or tmp_path, *args, env=env)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_set_dir):
    out = tmp_path_factory.mktemp("daemon-ref")
    for fasta in (VIRAL, NONVIRAL):
        run_predict(PredictConfig(inputs=(str(fasta),), outdir=out / fasta.stem, models="tiny",
                                  device="cpu", progress=False))
    return out


@pytest.mark.slow
def test_twenty_jobs_complete_and_agree_with_predict(tmp_path, daemons, reference):
    d = daemons("--devices", "cpu,cpu", "--persistent-models", "--models", "tiny").start()
    c = d.client()
    jobs = []
    for i in range(20):
        fasta = (VIRAL, NONVIRAL)[i % 2]
        jobs.append((fasta, c.submit([str(fasta)], outdir=str(tmp_path / f"j{i}"),
                                     options={"models": "tiny"}, priority=i % 3)))
    for fasta, job in jobs:
        done = wait_for(c, job.id)
        assert done.state.value == "completed", done
        assert_same_results(Path(done.outdir), reference / fasta.stem)
    # Persistent: each of the two workers loaded the models once for all 20 jobs.
    assert c.status().model_loads == 2


@pytest.mark.slow
def test_non_persistent_mode_loads_models_for_each_job(tmp_path, daemons):
    d = daemons("--devices", "cpu", "--no-persistent-models").start()
    c = d.client()
    for i in range(3):
        job = c.submit([str(VIRAL)], outdir=str(tmp_path / f"j{i}"), options={"models": "tiny"})
        assert wait_for(c, job.id).state.value == "completed"
    status = c.status()
    assert status.model_loads == 3 and status.loaded == ()  # freed after each job


@pytest.mark.slow
def test_a_retried_submit_is_not_doubled(tmp_path, daemons):
    c = daemons("--devices", "cpu").start().client()
    a = c.submit([str(VIRAL)], outdir=str(tmp_path / "o"), options={"models": "tiny"},
                 client_request_id="req-1")
    b = c.submit([str(VIRAL)], outdir=str(tmp_path / "o"), options={"models": "tiny"},
                 client_request_id="req-1")
    assert a.id == b.id and len(c.jobs(all=True)) == 1


@pytest.mark.slow
def test_cancel_in_queued_and_running_states_and_busy_when_full(tmp_path, daemons, tiny_set_dir):
    slow = ("--devices", "cpu", "--shard-frames", "2", "--max-queued", "2")
    c = daemons(*slow, env={**SLOW, "FAKE_DELAY": "0.5"}).start().client()
    opts = {"models": "tiny"}
    running = c.submit([str(VIRAL)], outdir=str(tmp_path / "a"), options=opts)
    wait_for(c, running.id, states=("running",))
    q1 = c.submit([str(VIRAL)], outdir=str(tmp_path / "b"), options=opts)
    c.submit([str(VIRAL)], outdir=str(tmp_path / "c"), options=opts)
    with pytest.raises(ClientError) as busy:
        c.submit([str(VIRAL)], outdir=str(tmp_path / "d"), options=opts)
    assert busy.value.code == "busy"
    assert c.cancel(q1.id).state.value == "cancelled"
    assert c.cancel(running.id).state.value == "cancelling"
    assert wait_for(c, running.id).state.value == "cancelled"
    # Cancel of a finished job answers its state; the queue goes on.
    assert c.cancel(q1.id).state.value == "cancelled"
    assert not (tmp_path / "a" / "frames.tsv").exists()


def _slow_daemon(daemons, tmp):
    return daemons("--devices", "cpu", "--shard-frames", "2",
                   env={**SLOW, "FAKE_DELAY": "0.3"}, tmp=tmp)


@pytest.mark.slow
def test_a_sigkilled_daemon_resumes_the_job_on_restart(tmp_path, daemons, reference):
    d = _slow_daemon(daemons, tmp_path).start()
    c = d.client()
    job = c.submit([str(VIRAL)], outdir=str(tmp_path / "o"), options={"models": "tiny"})
    shards = tmp_path / "o" / ".virnucpro" / "shards"
    deadline = time.monotonic() + 60
    while len(list(shards.glob("shard-*.safetensors"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    d.kill()
    assert not (tmp_path / "o" / "frames.tsv").exists()
    d2 = _slow_daemon(daemons, tmp_path).start()  # the stale lock and sockets do not block it
    c2 = d2.client()
    done = wait_for(c2, job.id)
    assert done.state.value == "completed" and done.attempts == 2
    assert "daemon restarted" in " ".join(line.line for line in c2.logs(job.id))
    assert_same_results(tmp_path / "o", reference / "viral_reference")


@pytest.mark.slow
@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_changed_input_is_refused_on_resume(tmp_path, daemons, keep_mtime):
    fasta = tmp_path / "in.fasta"
    fasta.write_bytes(VIRAL.read_bytes())
    d = _slow_daemon(daemons, tmp_path).start()
    job = d.client().submit([str(fasta)], outdir=str(tmp_path / "o"), options={"models": "tiny"})
    assert job.inputs[0].sha256 == ""  # a submit only stats; the first attempt hashes
    running = wait_for(d.client(), job.id, states=("running",))
    assert running.inputs[0].sha256 == hashlib.sha256(VIRAL.read_bytes()).hexdigest()
    d.kill()
    before = fasta.stat()
    fasta.write_text(fasta.read_text().replace("ACGT", "ACGA", 1))  # same size
    if keep_mtime:  # an edit that hides from size and mtime: only the content tells
        os.utime(fasta, ns=(before.st_atime_ns, before.st_mtime_ns))
    c = _slow_daemon(daemons, tmp_path).start().client()
    done = wait_for(c, job.id)
    assert done.state.value == "failed" and "input changed" in done.reason
    assert ("content differs" if keep_mtime else "modification time") in done.reason


@pytest.mark.slow
def test_a_second_daemon_refuses_to_start(tmp_path, daemons):
    first = daemons("--devices", "cpu").start()
    proc = subprocess.run([sys.executable, "-m", "virnucpro.daemon.cli", "start", "--foreground",
                           "--devices", "cpu"], env=first.env, capture_output=True, timeout=60)
    assert proc.returncode != 0 and b"another daemon" in proc.stderr
    assert first.client().status().state.value == "running"


def _raw(d: Daemon):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(d.client().endpoint)
    return sock


def _answer(sock, timeout_ms=2000):
    return json.loads(sock.recv()) if sock.poll(timeout_ms) else None


@pytest.mark.slow
def test_hostile_messages_get_errors_or_are_dropped_and_the_daemon_keeps_serving(daemons):
    d = daemons("--devices", "cpu").start()
    sock = _raw(d)
    cases = {
        b"\x00\xff garbage \x9c": "bad_request",
        b"not json": "bad_request",
        b"[1, 2, 3]": "bad_request",
        json.dumps({"v": 99, "id": "x", "type": "status"}).encode(): "version_mismatch",
        # A client of protocol 1 (VirNucPro 0.1) is told, not misunderstood.
        json.dumps({"v": 1, "id": "x", "type": "status"}).encode(): "version_mismatch",
        json.dumps({"v": V, "id": "x", "type": "launch_missiles"}).encode(): "bad_request",
        json.dumps({"v": V, "id": "x", "type": "show", "body": {}}).encode(): "bad_request",
        json.dumps({"v": V, "id": "x", "type": "show", "body": {"job_id": "1"}}).encode(): "bad_request",
        json.dumps({"v": V, "id": "x", "type": "show", "body": {"job_id": 12345}}).encode(): "unknown_job",
        json.dumps({"v": V, "id": "x", "type": "submit", "body": {"inputs": ["relative.fa"]}}).encode(): "invalid",
        json.dumps({"v": V, "id": "x", "type": "submit", "body": {"inputs": ["/etc/passwd"],
                    "options": {"chunk_size": 42}}}).encode(): "invalid",
        json.dumps({"v": V, "id": "x" * 500, "type": "status"}).encode(): "bad_request",
    }
    for payload, code in cases.items():
        sock.send(payload)
        reply = _answer(sock)
        assert reply is not None and reply["ok"] is False and reply["error"]["code"] == code, (payload, reply)
    sock.send_multipart([b"a", b"b", b"c"])  # several frames: an error reply
    assert _answer(sock)["error"]["code"] == "bad_request"
    sock.send(b"x" * (P.MAX_MESSAGE_BYTES + 10_000))  # oversized: dropped by the socket
    assert _answer(sock, 1000) is None
    for _ in range(200):  # a burst of random bytes
        sock.send(os.urandom(64))
    sock.close(0)
    assert d.client().status().state.value == "running"
    assert d.proc.poll() is None


def _free_port() -> int:
    """A port P with P+1 free too (the daemon publishes its events on P+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


@pytest.mark.slow
def test_tcp_needs_curve_and_refuses_clients_without_an_allowed_key(tmp_path, daemons):
    keys = tmp_path / "keys"
    subprocess.run([sys.executable, "-m", "virnucpro.daemon.cli", "keygen", "--dir", str(keys)],
                   check=True, capture_output=True)
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    # Without keys, tcp is refused at start.
    proc = subprocess.run([sys.executable, "-m", "virnucpro.daemon.cli", "start", "--foreground",
                           "--devices", "cpu", "--endpoint", endpoint], capture_output=True,
                          timeout=60, env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    assert proc.returncode != 0 and b"CurveZMQ" in proc.stderr
    d = daemons("--devices", "cpu", "--endpoint", endpoint, "--keys", str(keys))
    d.proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start", "--foreground",
                               *d.args], env=d.env, stderr=subprocess.DEVNULL)
    allowed = Client(endpoint, curve_keys=keys, timeout=2)
    deadline = time.monotonic() + 60
    while True:
        try:
            assert allowed.status().state.value == "running"
            break
        except DaemonUnavailable:
            assert time.monotonic() < deadline
    # Another key pair, not in authorized/: no answer.
    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "virnucpro.daemon.cli", "keygen", "--dir", str(other)],
                   check=True, capture_output=True)
    (other / "server.key").write_bytes((keys / "server.key").read_bytes())
    with pytest.raises(DaemonUnavailable):
        Client(endpoint, curve_keys=other, timeout=2).status()
    # A plain client without Curve: no answer either.
    ctx = zmq.Context.instance()
    plain = ctx.socket(zmq.DEALER)
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(endpoint)
    plain.send(R.encode_request(R.StatusRequest()))
    assert not plain.poll(1500)
    plain.close(0)
    # Upload and download over tcp: a remote client sends content instead of paths.
    # The first submit on a set waits for its load check (a child process: seconds).
    allowed.timeout = 30
    job = allowed.submit([str(VIRAL)], outdir=str(tmp_path / "remote-out"),
                         options={"models": "tiny"}, upload=True)
    done = wait_for(allowed, job.id)
    assert done.state.value == "completed"
    got = allowed.download(job.id, "sequences.tsv", tmp_path / "seqs.tsv")
    assert len(read_table(got)) == 4


@pytest.mark.slow
def test_sigterm_checkpoints_the_running_job_which_resumes_at_the_next_start(tmp_path, daemons, reference):
    d = _slow_daemon(daemons, tmp_path).start()
    c = d.client()
    job = c.submit([str(VIRAL)], outdir=str(tmp_path / "o"), options={"models": "tiny"})
    wait_for(c, job.id, states=("running",))
    t0 = time.monotonic()
    d.proc.terminate()
    assert d.proc.wait(60) == 0 and time.monotonic() - t0 < 30
    d2 = _slow_daemon(daemons, tmp_path).start()
    c2 = d2.client()
    assert c2.show(job.id).state.value in ("queued", "loading", "running")
    done = wait_for(c2, job.id)
    assert done.state.value == "completed"
    states = [h.state.value for h in done.history]
    assert states.count("running") == 2 and "queued" in states[1:]
    assert_same_results(tmp_path / "o", reference / "viral_reference")


@pytest.mark.slow
def test_both_chunk_sizes_share_the_loaded_models(tmp_path, daemons):
    c = daemons("--devices", "cpu", "--persistent-models", "--models", "tiny").start().client()
    for cs in (300, 500, 300):
        job = c.submit([str(VIRAL)], outdir=str(tmp_path / f"o{cs}-{time.monotonic_ns()}"),
                       options={"models": "tiny", "chunk_size": cs})
        done = wait_for(c, job.id)
        assert done.state.value == "completed"
        run = json.loads((Path(done.outdir) / "run.json").read_text())
        assert run["parameters"]["chunk_size"] == cs
        # The daemon's mode and the worker that scored it, as run.json records them.
        assert run["engine"]["persistent_models"] is True
        assert [(w["device"], w["batch_tokens"]) for w in run["engine"]["workers"]] == [
            ("cpu", 4096)]
    assert c.status().model_loads == 1


@pytest.mark.slow
def test_a_req_socket_gets_its_reply(daemons):
    d = daemons("--devices", "cpu").start()
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(d.client().endpoint)
    sock.send(R.encode_request(R.StatusRequest(), rid="req-socket"))
    assert sock.poll(3000)
    reply = json.loads(sock.recv())
    assert reply["ok"] and reply["id"] == "req-socket"
    sock.close(0)


@pytest.mark.slow
def test_the_report_option_reaches_the_pipeline(tmp_path, daemons):
    c = daemons("--devices", "cpu", "--persistent-models", "--models", "tiny").start().client()
    for report in (True, False):
        job = c.submit([str(VIRAL)], outdir=str(tmp_path / f"r{report}"),
                       options={"models": "tiny", "report": report})
        assert wait_for(c, job.id).state.value == "completed"
        assert (tmp_path / f"r{report}" / "report.html").exists() is report
        reports = c.show(job.id).progress.reports
        assert reports == ((str(tmp_path / f"r{report}" / "report.html"),) if report else ())


@pytest.mark.slow
def test_the_next_jobs_shards_start_while_the_previous_jobs_last_shards_finish(tmp_path, daemons, reference):
    d = daemons("--devices", "cpu,cpu", "--persistent-models", "--models", "tiny",
                "--shard-frames", "2", env={**SLOW, "FAKE_DELAY": "0.4"}).start()
    c = d.client()
    a = c.submit([str(VIRAL)], outdir=str(tmp_path / "a"), options={"models": "tiny"})
    b = c.submit([str(VIRAL)], outdir=str(tmp_path / "b"), options={"models": "tiny"})
    a, b = wait_for(c, a.id), wait_for(c, b.id)
    assert a.state.value == b.state.value == "completed"

    def first(job, state):
        return next(h.time for h in job.history if h.state.value == state)

    assert first(b, "running") < first(a, "completed")  # no idle gap between the two jobs
    for out in ("a", "b"):
        assert_same_results(tmp_path / out, reference / "viral_reference")
    assert c.status().model_loads == 2


@pytest.mark.slow
def test_a_cancelled_job_is_retried_to_completion_and_folders_are_not_shared(tmp_path, daemons, reference):
    d = _slow_daemon(daemons, tmp_path).start()
    c = d.client()
    job = c.submit([str(VIRAL)], outdir=str(tmp_path / "o"), options={"models": "tiny"})
    wait_for(c, job.id, states=("running",))
    with pytest.raises(ClientError, match="live job"):  # the same folder for a second live job
        c.submit([str(NONVIRAL)], outdir=str(tmp_path / "o"), options={"models": "tiny"})
    c.cancel(job.id)
    assert wait_for(c, job.id).state.value == "cancelled"
    assert c.retry(job.id).state.value == "queued"
    done = wait_for(c, job.id)
    assert done.state.value == "completed", done.reason  # resumes its own folder; the old cancel is spent
    assert_same_results(tmp_path / "o", reference / "viral_reference")


@pytest.mark.slow
def test_a_daemon_opens_the_job_store_of_version_0_1_0_and_serves_its_history(tmp_path, daemons):
    import shutil

    store = tmp_path / "state" / "virnucpro" / "jobs.sqlite3"
    store.parent.mkdir(parents=True)
    shutil.copy(DATA / "daemon" / "jobs-v0.1.0.sqlite", store)  # written by 0.1.0's daemon
    c = daemons("--devices", "cpu").start().client()
    jobs = {j.name: j for j in c.jobs(all=True)}
    assert set(jobs) == {"done", "bad", "stopped", "cancelling", "waiting", "flaky"}
    done = c.show(jobs["done"].id)
    assert [h.state.value for h in done.history] == ["queued", "loading", "running", "completed"]
    assert done.progress.counts["sequences_virus"] == 5
    assert c.logs(done.id)[-1].line == "completed: 12 sequences, 5 viral"
    # Crash recovery ran on the old jobs, by the lifecycle: the one being cancelled ended
    # cancelled, the one on its third attempt failed, the running one went back to the queue
    # (its input is gone, so it then fails, and so does the queued one).
    assert wait_for(c, jobs["cancelling"].id).reason == "cancelled (daemon restarted)"
    assert wait_for(c, jobs["flaky"].id).reason == (
        "interrupted 3 times in a row without writing a new shard; giving up")
    for name in ("stopped", "waiting"):
        ended = wait_for(c, jobs[name].id)
        assert ended.state.value == "failed" and "no longer exists" in ended.reason
    assert "queued" in [h.state.value for h in c.show(jobs["stopped"].id).history][-3:]
