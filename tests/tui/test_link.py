"""The dashboard's line to the daemon, without Textual: the link posts what the client's
Follower yields (the follower resyncs and watches liveness; the link only reconnects)."""

from __future__ import annotations

import pytest

from tests.tui.fakes import FakeDaemon, event_of, make_job, sample_daemon, snapshot_of
from virnucpro.daemon.client import DaemonUnavailable
from virnucpro.daemon.follow import LIVENESS_S
from virnucpro.daemon.messages import Event, Snapshot
from virnucpro.tui.link import DaemonLink
from virnucpro.tui.messages import DaemonEvent, Disconnected

NOW = 1_700_000_000.0


class ScriptedClient:
    """A client whose `follow()` plays one script: items, then an exception (or the end)."""

    endpoint = "fake://scripted"

    def __init__(self, script: list, seen: list) -> None:
        self.script = script
        self.seen = seen

    def follow(self, **kwargs):
        self.seen.append(kwargs)
        for item in self.script:
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        pass


def test_the_link_posts_each_item_of_the_follower_and_reconnects_after_a_loss():
    first = snapshot_of([make_job(1, "a.fa", "queued", NOW)], seq=4)
    resync = snapshot_of([make_job(1, "a.fa", "running", NOW)], seq=9)  # the follower's, after a gap
    scripts = [[first, None, event_of(5, "job", make_job(1, "a.fa", "loading", NOW)), resync,
                DaemonUnavailable("no answer from the daemon")],
               [DaemonUnavailable("nothing listens")],
               [resync]]
    seen: list = []
    link = DaemonLink(lambda timeout: ScriptedClient(scripts.pop(0), seen), "fake://scripted",
                      backoff=(0.01, 0.02))
    posted: list = []
    link.stream(posted.append, lambda: False)  # returns when the last script ends
    kinds = [type(m).__name__ if not isinstance(m, DaemonEvent) else type(m.item).__name__
             for m in posted]
    assert kinds == ["Snapshot", "Event", "Snapshot", "Disconnected", "Disconnected", "Snapshot"]
    lost = [m for m in posted if isinstance(m, Disconnected)]
    assert [(m.attempt, m.retry_in) for m in lost] == [(1, 0.01), (2, 0.02)]
    assert "no answer" in lost[0].reason
    assert link.attempt == 0  # a snapshot: connected again
    assert seen == [{"liveness_s": LIVENESS_S}] * 3  # the follower's default, passed on


@pytest.mark.slow
def test_the_followers_resync_and_loss_through_the_fake_daemon():
    daemon: FakeDaemon = sample_daemon(NOW)
    follower = iter(daemon.client().follow(liveness_s=0.1, poll_s=0.01))
    snap = next(follower)
    assert isinstance(snap, Snapshot) and snap.seq == 0 and snap.job(4).progress.fraction == 1.0
    daemon.publish("progress", {"job_id": 1, "progress": {"chunks_done": 1, "chunks_total": 2}})
    item = next(follower)
    assert isinstance(item, Event) and item.body.progress.fraction == 0.5
    # A lost event (a slow subscriber's PUB drops it): a new snapshot, then the next ones.
    daemon.publish("memory", {"devices": daemon.devices})
    daemon.events.get()
    daemon.publish("memory", {"devices": daemon.devices})
    assert isinstance(next(follower), Snapshot)
    daemon.go_down()
    with pytest.raises(DaemonUnavailable):
        for item in follower:
            assert item is None  # idle ticks until the liveness check asks, and nobody answers
