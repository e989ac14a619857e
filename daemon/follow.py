"""Following the daemon's event stream, once for every client: `watch`, `submit --wait`,
`Client.watch` and the dashboard.

`Follower` subscribes to every topic, takes a snapshot, then yields the events newer than it,
in order. A gap in `seq` (PUB drops events for a slow subscriber) takes a new snapshot: a
follower never shows a stale view. Liveness: the daemon publishes a memory report every second,
so `LIVENESS_S` (3 s: three reports missed) without any event means something is wrong; the
follower then asks the daemon (`status`) and raises `DaemonUnavailable` if it does not answer.
A `stopped` daemon event ends the stream with `DaemonUnavailable` too, after it is yielded.
`JobWatch` is the per-job filter on top: the job's record after each change, until it ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from virnucpro.daemon import messages as M
from virnucpro.daemon.client_errors import ClientError, DaemonUnavailable
from virnucpro.daemon.jobs import JobRecord
from virnucpro.daemon.protocol import TOPICS, DaemonState
from virnucpro.daemon.wire import WireError

if TYPE_CHECKING:
    from virnucpro.daemon.client import Client

LIVENESS_S = 3.0
POLL_S = 0.2  # an idle tick (None) at least this often, so a caller can stop or redraw
SUBSCRIBE_WAIT_S = 0.05  # for the subscription to reach the publisher before the snapshot

Item = M.Snapshot | M.Event | None


class Follower:
    """Iterate for `Snapshot` (first, and after each resync), `Event`s, and None when idle."""

    def __init__(self, client: Client, *, liveness_s: float = LIVENESS_S,
                 poll_s: float = POLL_S) -> None:
        self.client = client
        self.liveness_s = liveness_s
        self.poll_s = poll_s
        self.resyncs = 0

    def __iter__(self) -> Iterator[Item]:
        sub = self.client.subscriber(TOPICS)
        try:
            time.sleep(SUBSCRIBE_WAIT_S)
            snap = self.client.snapshot()
            yield snap
            last, quiet_since = snap.seq, time.monotonic()
            while True:
                if not sub.poll(int(self.poll_s * 1000)):
                    if time.monotonic() - quiet_since >= self.liveness_s:
                        # A socket file nobody listens on says it at once; else ask.
                        self.client.check_reachable()
                        self.client.status()  # raises DaemonUnavailable when nobody answers
                        quiet_since = time.monotonic()
                    yield None
                    continue
                quiet_since = time.monotonic()
                try:
                    event = M.decode_event(sub.recv_multipart()[-1])
                except WireError:
                    continue  # not ours to understand (a newer daemon's topic, garbage)
                if event.seq <= last:
                    continue  # already in the snapshot
                if event.seq != last + 1:
                    self.resyncs += 1
                    snap = self.client.snapshot()
                    yield snap
                    last = snap.seq
                    if event.seq <= last:
                        continue
                last = event.seq
                yield event
                if event.topic == "daemon" and event.body.state is DaemonState.STOPPED:
                    raise DaemonUnavailable("the daemon stopped")
        finally:
            sub.close(0)


class JobWatch:
    """One job through a `Follower`: its record after each change, until an end state. Raises
    ClientError `unknown_job`, or DaemonUnavailable naming the job when the daemon goes."""

    def __init__(self, client: Client, job_id: int, *, timeout: float | None = None,
                 liveness_s: float = LIVENESS_S) -> None:
        self.follower = Follower(client, liveness_s=liveness_s)
        self.job_id = job_id
        self.timeout = timeout
        self.job: JobRecord | None = None

    def __iter__(self) -> Iterator[JobRecord]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            for item in self.follower:
                if deadline is not None and time.monotonic() > deadline:
                    raise DaemonUnavailable(f"job {self.job_id} did not finish within "
                                            f"{self.timeout} s")
                job = self._apply(item)
                if job is None:
                    continue
                self.job = job
                yield job
                if job.state.finished:
                    return
        except DaemonUnavailable as exc:
            if self.job is None or str(exc).startswith(f"job {self.job_id} did not"):
                raise
            raise DaemonUnavailable(
                f"{exc} while job {self.job_id} was {self.job.state.value}; a job it was "
                "running resumes when it starts again (`virnucpro-daemon start`)") from None

    def _apply(self, item: Item) -> JobRecord | None:
        if isinstance(item, M.Snapshot):
            job = item.job(self.job_id)
            if job is None:
                raise ClientError("unknown_job", f"no job {self.job_id}")
            return job
        if item is None:
            return None
        body = item.body
        if item.topic == "job" and body.id == self.job_id:
            return body
        if item.topic == "progress" and body.job_id == self.job_id and self.job is not None:
            return self.job.with_(progress=body.progress)
        return None
