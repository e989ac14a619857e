"""Snapshot tests (pytest-textual-snapshot): the main screen, a job's detail, the offer to start
a daemon, the help, a confirmation and a job's detail with the daemon lost, pinned at 120x36
on the fake daemon with a clock moved by hand and UTC times (the scenes of tests/tui/scenes.py,
which also draw the pictures of docs/daemon.md).
After an intended change of the look: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the SVGs under __snapshots__/ before committing them."""

from __future__ import annotations

import time

import pytest

from tests.tui.driving import FROZEN, SIZE, fake_app, until
from tests.tui.fakes import sample_daemon
from tests.tui.scenes import SCENES, scene_app
from virnucpro.tui.screens.connect import ConnectScreen


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _scene(name):
    app, daemon, clock = scene_app()

    async def run_before(pilot):
        await SCENES[name](pilot, app, daemon, clock)

    return app, run_before


def test_main_screen(snap_compare):
    app, run_before = _scene("main")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_job_detail_of_a_completed_job(snap_compare):
    app, run_before = _scene("detail")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_lists_the_keys_of_the_main_screen(snap_compare):
    app, run_before = _scene("help")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_cancel_asks_for_confirmation(snap_compare):
    app, run_before = _scene("confirm")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_job_detail_with_the_daemon_lost_shows_the_banner_and_no_eta(snap_compare):
    app, run_before = _scene("detail-lost")
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
