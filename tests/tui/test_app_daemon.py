"""The dashboard against a real daemon process (CPU, tiny models), driven as a person would:
submit through the dialog, watch the job complete, open its results; cancel a running and a
queued job; with no daemon, start one from the offer."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.daemon_helpers import daemon_env
from tests.integration.test_daemon import NONVIRAL, VIRAL, _free_port
from tests.tui.driving import SIZE, open_submit_dialog, run, text_of, until
from virnucpro.daemon.client import Client
from virnucpro.daemon.jobs import JobState
from virnucpro.tui.app import DashboardApp
from virnucpro.tui.screens.confirm import ConfirmScreen
from virnucpro.tui.screens.connect import ConnectScreen
from virnucpro.tui.screens.job_detail import JobDetailScreen
from virnucpro.tui.screens.submit import SubmitScreen
from virnucpro.tui.widgets.device_panel import DeviceCard


def real_app(d) -> DashboardApp:
    endpoint = d.client().endpoint
    return DashboardApp(lambda timeout: Client(endpoint, timeout=timeout), endpoint)


async def confirmed(pilot, app) -> None:
    """The confirmation is up: answer yes."""
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
    await pilot.press("y")
    await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the answer")


def state_of(app, job_id: int) -> JobState | None:
    job = app.state.jobs.get(job_id)
    return job.state if job is not None else None


@pytest.mark.slow
def test_submit_through_the_dialog_watch_it_complete_and_read_its_results(tmp_path, daemons, monkeypatch):
    d = daemons("--devices", "cpu", "--persistent-models", "--models", "tiny").start()
    monkeypatch.chdir(VIRAL.parent)  # the dialog's tree and relative paths start here
    app = real_app(d)
    outdir = tmp_path / "out"

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected, what="the daemon")
            await until(pilot, lambda: app.query(DeviceCard), what="the device panel")
            assert "host memory" in app.query_one(DeviceCard).border_title
            assert "persistent models" in text_of(app.status_bar)
            dialog = await open_submit_dialog(pilot, app)
            # The model set defaults to what the daemon has loaded: tiny.
            assert dialog.query_one("#submit-models").value == "tiny"
            await pilot.press(*VIRAL.name, "enter")
            dialog.query_one("#submit-outdir").value = str(outdir)
            await pilot.click("#submit-send")
            await until(pilot, lambda: not isinstance(app.screen, SubmitScreen), what="the submission",
                        timeout=30)
            job_id = app.queue.selected
            assert job_id is not None and app.state.jobs[job_id].outdir == str(outdir)
            await until(pilot, lambda: state_of(app, job_id) is JobState.COMPLETED, timeout=60,
                        what="the job to complete")
            row = app.queue.get_row(str(job_id))
            assert row[4].plain == "4/4" and row[3].plain.endswith("100%")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                        and app.screen.results is not None, what="the results")
            detail = app.screen
            results = text_of(detail.query_one("#detail-results"))
            assert "2 viral" in results and "2 non-viral" in results and "0 unscored" in results
            assert "top viral calls" in results and "gi|9629357|ref|NC_001802.1|" in results
            assert detail.results.reports == [str(outdir / "report.html")]
            await until(pilot, lambda: "completed: 4 sequences, 2 viral" in
                        "\n".join(detail.query_one("#detail-log").lines), what="the log")
            history = text_of(detail.query_one("#detail-history"))
            assert [s for s in ("queued", "loading", "running", "completed") if s in history] == [
                "queued", "loading", "running", "completed"]

    run(scenario)


@pytest.mark.slow
def test_cancel_a_running_and_a_queued_job_from_the_table(tmp_path, daemons):
    d = daemons("--devices", "cpu", "--persistent-models", "--models", "tiny",
                "--shard-frames", "2",
                env={"VIRNUCPRO_TEST_SCORER": "tests.fakes:SlowScorer", "FAKE_DELAY": "0.5"}).start()
    client = d.client()
    app = real_app(d)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected, what="the daemon")
            first = client.submit([str(VIRAL)], outdir=str(tmp_path / "a"), options={"models": "tiny"})
            second = client.submit([str(NONVIRAL)], outdir=str(tmp_path / "b"), options={"models": "tiny"})
            await until(pilot, lambda: state_of(app, first.id) is JobState.RUNNING
                        and state_of(app, second.id) is JobState.QUEUED, what="one running, one queued")
            assert app.queue.order[:2] == [first.id, second.id]
            app.queue.select(second.id)
            await pilot.press("c")
            await confirmed(pilot, app)
            await until(pilot, lambda: state_of(app, second.id) is JobState.CANCELLED,
                        what="queued cancel")
            app.queue.select(first.id)
            await pilot.press("c")
            await confirmed(pilot, app)
            await until(pilot, lambda: state_of(app, first.id) is JobState.CANCELLED, timeout=30,
                        what="running cancel")
            history = [h.state for h in app.state.jobs[first.id].history]
            assert history[-2:] == [JobState.CANCELLING, JobState.CANCELLED]
            assert app.queue.order[0] in (first.id, second.id)  # finished rows only now
            assert not (tmp_path / "a" / "sequences.tsv").exists()
            # Removed (asked first): the row goes, and so does the daemon's record.
            app.queue.select(second.id)
            await pilot.press("x")
            await confirmed(pilot, app)
            await until(pilot, lambda: second.id not in app.queue.order, what="the removal")
            assert second.id not in [j.id for j in client.jobs(all=True)]

    run(scenario)


def outward_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.slow
def test_a_remote_daemon_over_tcp_gets_the_input_uploaded_and_keeps_the_results(tmp_path, daemons):
    host = outward_address()
    if host is None:
        pytest.skip("no network interface besides loopback: a remote endpoint cannot be named")
    keys = tmp_path / "keys"
    subprocess.run([sys.executable, "-m", "virnucpro.daemon.cli", "keygen", "--dir", str(keys)],
                   check=True, capture_output=True)
    port = _free_port()
    d = daemons("--devices", "cpu", "--persistent-models", "--models", "tiny",
                "--endpoint", f"tcp://0.0.0.0:{port}", "--keys", str(keys))
    d.proc = subprocess.Popen([sys.executable, "-m", "virnucpro.daemon.cli", "start", "--foreground",
                               *d.args], env=d.env, stderr=subprocess.DEVNULL)
    endpoint = f"tcp://{host}:{port}"  # not loopback: the dashboard treats it as another machine
    app = DashboardApp(lambda timeout: Client(endpoint, timeout=timeout, curve_keys=keys), endpoint)
    app.link.backoff = (0.2, 0.5)  # the daemon is still starting: retry quickly
    assert not app.local
    outdir = tmp_path / "remote-out"

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected, timeout=60, what="the daemon over tcp")
            dialog = await open_submit_dialog(pilot, app)
            await pilot.press(*str(VIRAL), "enter")
            dialog.query_one("#submit-outdir").value = str(outdir)
            await pilot.click("#submit-send")
            await until(pilot, lambda: not isinstance(app.screen, SubmitScreen), what="the upload",
                        timeout=30)
            job_id = app.queue.selected
            job = app.state.jobs[job_id]
            # The daemon scores its own copy of the file, not our path.
            assert job.inputs[0].path != str(VIRAL)
            assert job.inputs[0].size == VIRAL.stat().st_size
            await until(pilot, lambda: state_of(app, job_id) is JobState.COMPLETED, timeout=60,
                        what="the job to complete")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), what="the detail")
            await until(pilot, lambda: "the daemon is remote" in text_of(
                app.screen.query_one("#detail-results")), what="the remote note")

    run(scenario)
    assert (outdir / "sequences.tsv").exists()  # written on the daemon's side (here, this disk)


@pytest.mark.slow
def test_with_no_daemon_it_starts_one_from_the_offer_and_connects(tmp_path, tiny_set_dir, monkeypatch):
    env = daemon_env(tmp_path)
    for key in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "PYTHONPATH"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("VIRNUCPRO_ENDPOINT", raising=False)
    endpoint = Client(None).endpoint  # the default ipc socket in this temp runtime folder
    app = DashboardApp(lambda timeout: Client(None, timeout=timeout), endpoint)
    pid = None

    async def scenario():
        nonlocal pid
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ConnectScreen), what="the offer")
            await pilot.pause()
            app.screen.query_one("#connect-devices").value = "cpu"
            # Offline, with no published set in the cache, the offer is the tiny set (not a
            # daemon whose default is a set it cannot load).
            models = app.screen.query_one("#connect-models")
            assert models.value == "tiny"
            await pilot.click("#start-per-job")
            await until(pilot, lambda: app.state.connected, timeout=60, what="the started daemon")
            assert not isinstance(app.screen, ConnectScreen) and not app.banner.display
            assert "models loaded per job" in text_of(app.status_bar)
            assert app.state.daemon.default_models == "tiny"
            pid = app.state.daemon.pid

    try:
        run(scenario)
    finally:
        with contextlib.suppress(Exception):
            Client(None, timeout=5).stop()
    deadline = time.monotonic() + 30
    while pid and time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not pid or not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
