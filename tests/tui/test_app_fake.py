"""The dashboard against a fake daemon, for states a real one rarely shows on a laptop: a
daemon lost and found again, none at start, a refused submission, GPUs with memory figures."""

from __future__ import annotations

from tests.tui.driving import FROZEN, SIZE, fake_app, open_submit_dialog, run, text_of, until
from tests.tui.fakes import make_job, memory_wave, sample_daemon, with_state
from virnucpro.daemon.jobs import JobState
from virnucpro.tui.screens.connect import ConnectScreen
from virnucpro.tui.screens.job_detail import JobDetailScreen
from virnucpro.tui.screens.submit import SubmitScreen
from virnucpro.tui.widgets.device_panel import DeviceCard


def states(app) -> dict[int, JobState]:
    return {row.id: row.state for row in app.state.rows()}


def notes(app) -> str:
    return "\n".join(n.message for n in app._notifications)


def test_a_lost_daemon_shows_the_banner_and_reconnects_with_a_fresh_snapshot():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected, what="the first snapshot")
            assert not app.banner.display and len(app.queue.order) == 6
            daemon.go_down()
            await until(pilot, lambda: app.banner.display, what="the banner")
            assert "Lost the daemon" in text_of(app.banner)
            assert "not connected" in text_of(app.status_bar)
            assert not isinstance(app.screen, ConnectScreen)  # offered only when never connected
            # While it was away, job 1 finished and job 7 arrived: no event tells us so.
            daemon.jobs[1] = with_state(daemon.jobs[1], "completed", FROZEN)
            daemon.jobs[7] = make_job(7, "new.fa", "queued", FROZEN)
            daemon.come_back()
            await until(pilot, lambda: not app.banner.display, what="the reconnection")
            assert states(app)[1] is JobState.COMPLETED and states(app)[7] is JobState.QUEUED
            assert "daemon running" in text_of(app.status_bar)
            assert "Connected to the daemon" in notes(app)

    run(scenario)


def test_with_no_daemon_at_start_it_offers_to_start_one_and_closes_the_offer_when_one_answers():
    daemon = sample_daemon(FROZEN)
    daemon.go_down()
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ConnectScreen), what="the offer")
            await pilot.pause()
            screen = app.screen
            assert screen.query_one("#start-persistent").label.plain == "Start, persistent models"
            assert screen.query_one("#start-per-job").label.plain == "Start, models per job"
            assert "No daemon answers" in text_of(app.banner)
            daemon.come_back()  # as if started elsewhere: the stream finds it by itself
            await until(pilot, lambda: app.state.connected and not isinstance(app.screen, ConnectScreen),
                        what="the offer to close")
            assert not app.banner.display and len(app.queue.order) == 6

    run(scenario)


def test_a_refusal_by_the_daemon_is_shown_in_the_dialog_which_keeps_its_fields(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are typed faster (Pilot types key by key)
    fasta = tmp_path / "s1.fa"
    fasta.write_text(">a\nACGT\n")
    daemon = sample_daemon(FROZEN)
    daemon.refuse_next_submit("invalid", "model set 'published' is not installed")
    app = fake_app(daemon, files_root=tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            dialog = await open_submit_dialog(pilot, app)
            await pilot.press(*"s1.fa", "enter")
            assert dialog.inputs == [str(fasta)]
            await pilot.press("ctrl+s")
            error = dialog.query_one("#submit-error")
            await until(pilot, lambda: "refused" in text_of(error), what="the refusal")
            assert "model set 'published' is not installed" in text_of(error)
            assert app.screen is dialog and dialog.inputs == [str(fasta)]
            assert not dialog.query_one("#submit-send").disabled
            await pilot.press("ctrl+s")  # the daemon accepts it this time
            await until(pilot, lambda: not isinstance(app.screen, SubmitScreen), what="the dismissal")
            await until(pilot, lambda: 7 in app.queue.order)
            assert app.queue.selected == 7 and "Job 7 (s1.fa) submitted" in notes(app)
            submits = [args for verb, args in daemon.calls if verb == "submit"]
            assert len(submits) == 2 and submits[1][0] == [str(fasta)]

    run(scenario)


def test_form_problems_are_shown_before_anything_is_sent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon, files_root=tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            await open_submit_dialog(pilot, app)
            error = app.screen.query_one("#submit-error")
            await pilot.press("ctrl+s")
            assert "choose at least one FASTA file" in text_of(error)
            await pilot.press(*"missing.fa", "enter")
            app.screen.query_one("#submit-priority").value = "soon"
            await pilot.press("ctrl+s")
            assert "no such file" in text_of(error) and "priority must be a whole number" in text_of(error)
            assert not [c for c in daemon.calls if c[0] == "submit"]
            await pilot.press("escape")
            assert not isinstance(app.screen, SubmitScreen)

    run(scenario)


def test_gpu_cards_show_memory_figures_loaded_models_and_a_minute_of_memory():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            memory_wave(daemon, samples=20)
            await until(pilot, lambda: app.state.seq == daemon.seq, what="the memory events")
            await pilot.pause(0.1)
            cards = list(app.query(DeviceCard))
            assert [c.border_title for c in cards] == ["cuda:0  NVIDIA H200", "cuda:1  NVIDIA H200"]
            first, second = (text_of(c).splitlines() for c in cards)
            assert first[0].endswith("/143.8 GB") and "%" in first[0]
            sparkline = first[1].split(" 1 min")[0].strip()
            assert len(sparkline) == 21 and set(sparkline) <= set("▁▂▃▄▅▆▇█")
            assert len(set(sparkline)) > 3  # it rises and falls
            assert first[2].startswith("models published (1 worker)")
            assert second[2].startswith("models none loaded")

    run(scenario)


def test_cancel_and_retry_from_the_table_and_from_the_detail_screen():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            app.queue.select(2)
            await pilot.press("c")
            await until(pilot, lambda: states(app)[2] is JobState.CANCELLED, what="job 2 cancelled")
            app.queue.select(5)
            await pilot.press("r")
            await until(pilot, lambda: states(app)[5] is JobState.QUEUED, what="job 5 queued again")
            app.queue.select(1)
            await pilot.press("r")  # running: the daemon says no, and the person sees why
            await until(pilot, lambda: "only failed or cancelled" in notes(app), what="the refusal")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen))
            await pilot.press("c")
            await until(pilot, lambda: app.screen.job.state is JobState.CANCELLING, what="the detail to follow")
            assert "cancelling" in text_of(app.screen.query_one("#detail-title"))
            assert [c for c in daemon.calls if c[0] in ("cancel", "retry")] == [
                ("cancel", (2,)), ("retry", (5,)), ("retry", (1,)), ("cancel", (1,))]

    run(scenario)


def test_progress_events_move_the_job_along_in_place():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            app.queue.select(3)
            # The bar is by chunks (counted before scoring), the sequences are figures.
            daemon.publish("progress", {"job_id": 1, "progress": {
                "sequences_done": 6000, "sequences_total": 8000,
                "chunks_done": 12_000, "chunks_total": 24_000}})
            await until(pilot, lambda: app.state.seq == daemon.seq)
            row = app.queue.get_row("1")
            assert row[4].plain == "6,000/8,000" and row[3].plain.endswith("50%")
            assert row[5].plain == "80.0/s"  # 12,000 chunks in the 150 s it has been scoring
            assert row[7].plain == "2m30s"  # 12,000 chunks to go at that rate
            assert app.queue.selected == 3  # the cursor stayed on its job

    run(scenario)


def test_tab_completes_a_typed_path_at_once_then_moves_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_one.fa").write_text(">a\nACGT\n")
    (tmp_path / "runs").mkdir()
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon, files_root=tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            await open_submit_dialog(pilot, app)
            path = app.screen.query_one("#submit-path")
            await pilot.press("s", "tab")  # no pause: the inline hint may not be there yet
            assert path.value == "sample_one.fa" and app.focused is path
            await pilot.press("enter", "tab")  # nothing left to complete: the next field
            assert app.screen.inputs == [str(tmp_path / "sample_one.fa")]
            assert app.focused is app.screen.query_one("#submit-chunk")
            outdir = app.screen.query_one("#submit-outdir")
            outdir.focus()
            await pilot.press("r", "tab")  # the output folder completes folders only
            assert outdir.value == "runs/"

    run(scenario)
