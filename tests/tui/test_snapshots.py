"""Snapshot tests (pytest-textual-snapshot): the main screen, a job's detail and the offer to
start a daemon, pinned at 120x36 on the fake daemon with a frozen clock and UTC times.
After an intended change of the look: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the SVGs under __snapshots__/ before committing them."""

from __future__ import annotations

import time

import pytest

from tests.tui.driving import FROZEN, SIZE, fake_app, until
from tests.tui.fakes import memory_wave, sample_daemon
from virnucpro.tui.screens.connect import ConnectScreen
from virnucpro.tui.screens.job_detail import JobDetailScreen


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _connected(app, daemon):
    async def run_before(pilot):
        await until(pilot, lambda: app.state.connected)
        memory_wave(daemon, samples=24)
        await until(pilot, lambda: app.state.seq == daemon.seq)
        await pilot.pause(0.1)

    return run_before


def test_main_screen(snap_compare):
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)
    assert snap_compare(app, terminal_size=SIZE, run_before=_connected(app, daemon))


def test_job_detail_of_a_completed_job(snap_compare):
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)
    connected = _connected(app, daemon)

    async def run_before(pilot):
        await connected(pilot)
        app.queue.select(4)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                    and app.screen.results is not None and app.screen.log_since == 4)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_no_daemon_offers_to_start_one(snap_compare):
    daemon = sample_daemon(FROZEN)
    daemon.go_down()
    app = fake_app(daemon)
    app.link.backoff = (60.0,)  # one attempt, so the banner's count is fixed

    async def run_before(pilot):
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen))
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
