"""The one follower (daemon/follow.py) on real ZeroMQ sockets, with a scripted daemon: an XPUB
socket that waits for the follower's subscription, then publishes exactly the events a test
names (a gap, a stop), and a client whose snapshots and status answers are scripted too."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq

from virnucpro.daemon import messages as M
from virnucpro.daemon import protocol as P
from virnucpro.daemon.client import ClientError, DaemonUnavailable
from virnucpro.daemon.follow import Follower, JobWatch
from virnucpro.daemon.jobs import JobRecord, JobState, Progress
from virnucpro.daemon.protocol import DaemonState

STATUS = M.DaemonStatus(state=DaemonState.RUNNING, version="x", protocol=P.PROTOCOL_VERSION,
                        pid=1, uptime_s=1.0, persistent_models=True, devices=("cpu",),
                        engine="pool", precision="float32", requests="r", events="e", loaded=(),
                        model_loads=0, queued=0, running=None, max_queued=10)


def job(state: JobState, progress: Progress | None = None) -> JobRecord:
    return JobRecord(id=1, name="a", state=state, inputs=(), outdir="/o", options={},
                     progress=progress or Progress())


def snapshot(seq: int, *jobs: JobRecord) -> M.Snapshot:
    return M.Snapshot(seq=seq, daemon=STATUS, devices=(), jobs=jobs)


class ScriptedClient:
    """What the follower asks of a Client, against an XPUB socket of the test's own."""

    def __init__(self, tmp: Path, snapshots: list[M.Snapshot]) -> None:
        self.ctx = zmq.Context.instance()
        self.endpoint = f"ipc://{tmp}/events.sock"
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.bind(self.endpoint)
        self.snapshots = snapshots
        self.snapshot_calls = 0
        self.status_calls = 0
        self.up = True

    def subscriber(self, topics: tuple[str, ...]) -> zmq.Socket:
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.endpoint)
        for _ in topics:  # XPUB hands over each subscription: now nothing published is lost
            assert self.pub.poll(2000), "the subscription never arrived"
            self.pub.recv()
        return sub

    def snapshot(self) -> M.Snapshot:
        self.snapshot_calls += 1
        return self.snapshots[min(self.snapshot_calls, len(self.snapshots)) - 1]

    def check_reachable(self) -> None:
        pass  # not an ipc endpoint of a daemon: `status` tells

    def status(self) -> M.DaemonStatus:
        self.status_calls += 1
        if not self.up:
            raise DaemonUnavailable("no answer from the daemon")
        return STATUS

    def publish(self, seq: int, topic: str, body) -> None:
        self.pub.send_multipart(P.make_event(seq, topic, M.event_body(topic, body), time.time()))

    def close(self) -> None:
        self.pub.close(0)


@pytest.fixture
def client(tmp_path: Path):
    made: list[ScriptedClient] = []

    def make(*snapshots: M.Snapshot) -> ScriptedClient:
        made.append(ScriptedClient(tmp_path, list(snapshots)))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_a_gap_in_the_sequence_takes_a_new_snapshot(client) -> None:
    c = client(snapshot(5, job(JobState.QUEUED)), snapshot(8, job(JobState.RUNNING)))
    items = iter(Follower(c, poll_s=0.05))
    assert next(items).seq == 5
    c.publish(4, "job", job(JobState.QUEUED))  # older than the snapshot: already in it
    c.publish(6, "job", job(JobState.LOADING))
    c.publish(8, "job", job(JobState.RUNNING))  # 7 was lost
    c.publish(9, "progress", M.JobProgress(1, Progress(chunks_done=3, chunks_total=9)))
    got = [next(items) for _ in range(3)]
    assert got[0].seq == 6 and got[0].body.state is JobState.LOADING
    assert isinstance(got[1], M.Snapshot) and got[1].seq == 8  # the resync; event 8 is in it
    assert got[2].seq == 9 and got[2].body.progress.fraction == pytest.approx(1 / 3)
    assert c.snapshot_calls == 2


def test_silence_asks_the_daemon_and_a_daemon_that_does_not_answer_ends_the_stream(client) -> None:
    c = client(snapshot(1))
    follower = Follower(c, liveness_s=0.2, poll_s=0.05)
    items = iter(follower)
    next(items)
    started = time.monotonic()
    while c.status_calls < 2:  # quiet but answering: idle ticks, and a status now and then
        assert next(items) is None
    c.up = False
    with pytest.raises(DaemonUnavailable):
        while True:
            assert next(items) is None
    assert time.monotonic() - started < 3


def test_a_stopped_daemon_is_shown_then_ends_the_stream(client) -> None:
    c = client(snapshot(1))
    items = iter(Follower(c, poll_s=0.05))
    next(items)
    stopped = M.DaemonStatus(**{**STATUS.__dict__, "state": DaemonState.STOPPED})
    c.publish(2, "daemon", stopped)
    assert next(items).body.state is DaemonState.STOPPED
    with pytest.raises(DaemonUnavailable, match="stopped"):
        next(items)


def test_watch_gives_the_job_after_each_change_until_it_ends(client) -> None:
    c = client(snapshot(3, job(JobState.RUNNING, Progress(chunks_total=4))))
    other = job(JobState.QUEUED).with_(id=2)
    watch = iter(JobWatch(c, 1))
    first = next(watch)
    assert first.state is JobState.RUNNING and first.progress.chunks_done == 0
    c.publish(4, "job", other)  # another job's change: not this watch's
    c.publish(5, "progress", M.JobProgress(1, Progress(chunks_done=2, chunks_total=4)))
    c.publish(6, "job", job(JobState.COMPLETED, Progress(chunks_done=4, chunks_total=4)))
    c.publish(7, "job", job(JobState.QUEUED))  # after the end: never read
    rest = list(watch)
    assert [(j.state, j.progress.chunks_done) for j in rest] == [
        (JobState.RUNNING, 2), (JobState.COMPLETED, 4)]


def test_watch_names_the_job_when_it_is_unknown_or_the_daemon_goes(client) -> None:
    with pytest.raises(ClientError, match="no job 1"):
        next(iter(JobWatch(client(snapshot(1)), 1)))
    c = client(snapshot(1, job(JobState.RUNNING)))
    watch = iter(JobWatch(c, 1, liveness_s=0.1))
    next(watch)
    c.up = False
    with pytest.raises(DaemonUnavailable, match="while job 1 was running; a job it was running "
                                                "resumes"):
        next(watch)


def test_an_endpoint_file_left_by_a_killed_daemon_is_ignored(tmp_path, monkeypatch) -> None:
    import json
    import os
    import subprocess

    from virnucpro.daemon.client import default_endpoint
    from virnucpro.daemon.paths import DaemonPaths

    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    paths = DaemonPaths.default()
    paths.endpoint_file.parent.mkdir(parents=True, exist_ok=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    for pid, expected in ((gone.pid, paths.requests), (os.getpid(), "tcp://10.0.0.5:7400")):
        paths.endpoint_file.write_text(json.dumps({"requests": "tcp://10.0.0.5:7400",
                                                   "events": "tcp://10.0.0.5:7401", "pid": pid}))
        assert default_endpoint() == expected
