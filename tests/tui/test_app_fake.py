"""The dashboard against a fake daemon, for states a real one rarely shows on a laptop: a
daemon lost and found again, none at start, a refused submission, GPUs with memory figures."""

from __future__ import annotations

from tests.tui.driving import (
    FROZEN,
    SIZE,
    Clock,
    fake_app,
    open_submit_dialog,
    progress_steps,
    run,
    text_of,
    until,
)
from tests.tui.fakes import FakeDaemon, make_job, memory_wave, progress, sample_daemon, with_state
from virnucpro.daemon.jobs import JobState
from virnucpro.tui.screens.confirm import ConfirmScreen
from virnucpro.tui.screens.connect import ConnectScreen
from virnucpro.tui.screens.help import HelpScreen
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
            assert "choose at least one FASTA or FASTQ file" in text_of(error)
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


def requests(daemon) -> list[tuple[str, tuple]]:
    return [c for c in daemon.calls if c[0] in ("cancel", "retry", "remove")]


async def answer(pilot, app, key: str) -> None:
    """The confirmation is up; answer it with `key` and wait for it to close."""
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
    await pilot.pause()
    await pilot.press(key)
    await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the answer")


def test_cancel_retry_and_remove_ask_first_and_a_no_sends_nothing():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            app.queue.select(2)
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            assert "Cancel job 2 (soil_S7.fasta)?" in text_of(app.screen.query_one("#confirm-title"))
            await answer(pilot, app, "n")
            await pilot.press("c")
            await answer(pilot, app, "escape")
            await pilot.pause(0.2)
            assert states(app)[2] is JobState.QUEUED and requests(daemon) == []
            await pilot.press("c")
            await answer(pilot, app, "y")
            await until(pilot, lambda: states(app)[2] is JobState.CANCELLED, what="job 2 cancelled")
            app.queue.select(5)
            await pilot.press("r")
            await answer(pilot, app, "n")
            await pilot.press("r")
            await answer(pilot, app, "enter")
            await until(pilot, lambda: states(app)[5] is JobState.QUEUED, what="job 5 queued again")
            app.queue.select(4)
            await pilot.press("x")
            await answer(pilot, app, "escape")
            assert 4 in app.queue.order
            await pilot.press("delete")
            await answer(pilot, app, "y")
            await until(pilot, lambda: 4 not in app.queue.order, what="job 4's row to go")
            assert 4 not in app.state.jobs and "Job 4 removed" in notes(app)
            assert requests(daemon) == [("cancel", (2,)), ("retry", (5,)), ("remove", (4,))]

    run(scenario)


def test_what_cannot_apply_is_said_without_asking_and_the_detail_screen_asks_too():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            app.queue.select(1)
            await pilot.press("r")  # running: nothing to retry, and the person sees why
            await until(pilot, lambda: "only failed or cancelled" in notes(app), what="the refusal")
            await pilot.press("x")
            await until(pilot, lambda: "only a finished job can be removed" in notes(app))
            assert not isinstance(app.screen, ConfirmScreen) and requests(daemon) == []
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen))
            await pilot.press("c")
            await answer(pilot, app, "y")
            await until(pilot, lambda: app.screen.job.state is JobState.CANCELLING, what="the detail to follow")
            assert "cancelling" in text_of(app.screen.query_one("#detail-title"))
            await pilot.press("escape")
            app.queue.select(6)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.job_id == 6)
            await pilot.press("x")
            await answer(pilot, app, "y")
            # Removed: back to the queue, without its row.
            await until(pilot, lambda: not isinstance(app.screen, JobDetailScreen), what="the way back")
            assert 6 not in app.queue.order
            assert requests(daemon) == [("cancel", (1,)), ("remove", (6,))]

    run(scenario)


def test_question_mark_and_f1_list_the_keys_of_the_screen_at_hand():
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
            await pilot.pause()
            keys = text_of(app.screen.query_one("#help-keys"))
            for line in ("Detail", "Cancel", "Retry", "Remove", "Submit", "Quit"):
                assert line in keys, line
            assert "Back" not in keys
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            app.queue.select(4)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen))
            await pilot.press("f1")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the detail's help")
            await pilot.pause()
            assert "job 4" in text_of(app.screen.query_one("#help-title"))
            keys = text_of(app.screen.query_one("#help-keys"))
            assert "Back" in keys and "Remove" in keys and "Detail" not in keys
            await pilot.press("f1")
            assert isinstance(app.screen, JobDetailScreen)

    run(scenario)


def test_the_detail_screen_shows_the_lost_daemon_and_its_figures_as_stale():
    daemon = sample_daemon(FROZEN)
    clock = Clock()
    app = fake_app(daemon, clock=clock)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            await progress_steps(pilot, app, daemon, clock, 1,
                                 [(12.0, 9290), (10.0, 9300), (0.0, 9360)])
            app.queue.select(1)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen))
            await pilot.pause()
            screen = app.screen
            title = screen.query_one("#detail-title")
            assert "ETA" in text_of(title) and not screen.banner.display
            daemon.go_down()
            await until(pilot, lambda: screen.banner.display, what="the banner on the detail")
            clock.t += 60  # a minute without news: the figures stay as they were heard
            await pilot.pause(1.2)
            assert "Lost the daemon" in text_of(screen.banner)
            text = " ".join(text_of(title).split())
            assert "possibly out of date" in text and "ETA" not in text
            assert "3m10s elapsed" in text  # when last heard, not a minute later
            daemon.come_back()
            await until(pilot, lambda: not screen.banner.display, what="the reconnection")
            assert "possibly out of date" not in text_of(title)

    run(scenario)


def test_progress_events_move_the_job_along_in_place():
    daemon = sample_daemon(FROZEN)
    clock = Clock()
    app = fake_app(daemon, clock=clock)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            app.queue.select(3)
            # The bar is by chunks (counted before scoring), the sequences are figures; the rate
            # is that of the events: 400 chunks in the last 20 s (the run's first report, 2 s
            # before, is its starting point).
            await progress_steps(pilot, app, daemon, clock, 1,
                                 [(22.0, 11_560), (20.0, 11_600), (0.0, 12_000)])
            daemon.jobs[1]["progress"]["sequences_done"] = 6000
            daemon.progress_of(1, 12_000)
            await until(pilot, lambda: app.state.seq == daemon.seq)
            await pilot.pause(0.1)
            row = app.queue.get_row("1")
            assert row[4].plain == "6,000/8,000" and row[3].plain.endswith("50%")
            assert row[5].plain == "20.0/s"
            assert row[7].plain == "10m00s"  # 12,000 chunks to go at that rate
            assert app.queue.selected == 3  # the cursor stayed on its job

    run(scenario)


def test_a_typed_path_not_added_with_enter_is_added_at_ctrl_s(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s1.fa").write_text(">a\nACGT\n")
    (tmp_path / "s2.fa").write_text(">b\nACGT\n")
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon, files_root=tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            dialog = await open_submit_dialog(pilot, app)
            await pilot.press(*"s1.fa", "enter", *"s2.fa")  # the second one not confirmed
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not isinstance(app.screen, SubmitScreen), what="the submission")
            submits = [args for verb, args in daemon.calls if verb == "submit"]
            assert submits[0][0] == [str(tmp_path / "s1.fa"), str(tmp_path / "s2.fa")]
            # A glob that matches nothing: said, and nothing sent.
            dialog = await open_submit_dialog(pilot, app)
            await pilot.press(*"s1.fa", "enter", *"x*.fa", "ctrl+s")
            error = dialog.query_one("#submit-error")
            assert "nothing matches x*.fa" in text_of(error)
            assert app.screen is dialog and len([c for c in daemon.calls if c[0] == "submit"]) == 1

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


def test_tab_lists_several_names_then_moves_on_when_there_is_nothing_to_complete(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("sample_one.fa", "sample_two.fa"):
        (data / name).write_text(">a\nACGT\n")
    daemon = sample_daemon(FROZEN)
    app = fake_app(daemon, files_root=tmp_path)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            await open_submit_dialog(pilot, app)
            path = app.screen.query_one("#submit-path")
            matches = app.screen.query_one("#submit-matches")
            await pilot.press(*"data/sa", "tab")  # two names: what they share
            assert path.value == "data/sample_" and app.focused is path
            assert not matches.display
            await pilot.press("tab")  # still two, nothing to add: listed, as a shell lists them
            await pilot.pause()
            assert path.value == "data/sample_" and app.focused is path
            assert matches.display and "sample_one.fa  sample_two.fa" in str(matches.render())
            await pilot.press("o")  # typing goes on in the field, and the list goes away
            await pilot.pause()
            assert path.value == "data/sample_o" and not matches.display
            await pilot.press("backspace", "tab")
            await pilot.pause()
            await pilot.press("tab")  # a second Tab on the same text: the next field
            assert path.value == "data/sample_"
            assert app.focused is app.screen.query_one("#submit-chunk")
            path.focus()
            path.value = ""
            await pilot.press(*"data/", "tab")  # a folder, whole: not its first file
            assert path.value == "data/" and app.focused is not path

    run(scenario)


SEQUENCES_HEAD = ("sequence_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_share\t"
                  "max_p_virus\tmean_p_virus\tcall\tflags\treason")
REGIONS_HEAD = ("sequence_id\tregion\tstart\tend\tlength\tchunks\tviral_chunks\tmean_p_virus\t"
                "max_p_virus\tkind")


def _run_folder(folder, regions: list[tuple[str, str]] | None) -> str:
    """An output folder of four sequences; with `regions` ((sequence, kind), in table order)
    as written since regions exist (their column and regions.tsv), else as before them."""
    folder.mkdir()
    ids = ["s1", "s2", "s3", "s4"]
    per = {sid: sum(1 for s, _k in regions or [] if s == sid) for sid in ids}
    rows = [SEQUENCES_HEAD + ("\tregions" if regions is not None else "")]
    rows += [f"{sid}\t3000\t6\t6\t4\t0.6667\t0.98\t0.7\tvirus\t\t"
             + (f"\t{per[sid]}" if regions is not None else "") for sid in ids]
    (folder / "sequences.tsv").write_text("\n".join(rows) + "\n")
    if regions is not None:
        lines = [REGIONS_HEAD]
        for i, (sid, kind) in enumerate(regions):
            lines.append(f"{sid}\t{i + 1}\t1\t1500\t1500\t3\t3\t0.9\t0.98\t{kind}")
        (folder / "regions.tsv").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_the_detail_of_a_finished_job_counts_its_regions_only_when_its_folder_has_them(tmp_path):
    from virnucpro.tui.results import read_results

    kinds = [("s1", "provirus"), ("s1", "partial"), ("s2", "whole"), ("s3", "provirus"),
             ("s4", "whole")]
    done = [("loading", 60.0), ("running", 50.0), ("completed", 10.0)]
    # The daemon's counts lack the regions: what the screen shows is the folder's.
    counts = {"sequences": 4, "sequences_virus": 4, "sequences_others": 0, "sequences_unscored": 0}
    daemon = FakeDaemon(jobs=[
        make_job(1, "new.fa", "completed", FROZEN, outdir=_run_folder(tmp_path / "new", kinds),
                 steps=done, progress=progress(4, 4, counts=counts),
                 options={"region_gap": 2, "region_min_p": None, "min_region_length": 500}),
        make_job(2, "old.fa", "completed", FROZEN, outdir=_run_folder(tmp_path / "old", None),
                 steps=done, progress=progress(4, 4, counts=counts))])
    app = fake_app(daemon, reader=read_results)

    async def scenario():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.state.connected)
            shown = {}
            for job_id in (1, 2):
                app.queue.select(job_id)
                await pilot.press("enter")
                await until(pilot, lambda job_id=job_id: isinstance(app.screen, JobDetailScreen)
                            and app.screen.job_id == job_id and app.screen.results is not None,
                            what=f"job {job_id}'s results")
                await pilot.pause()
                shown[job_id] = (" ".join(text_of(app.screen.query_one("#detail-results")).split()),
                                 " ".join(text_of(app.screen.query_one("#detail-params")).split()))
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, JobDetailScreen))
            results, params = shown[1]
            assert "4 viral" in results
            assert "regions 5 (2 provirus, 1 partial, 2 whole) in 4 sequences" in results
            assert "region gap 2" in params and "min region length 500" in params
            assert "region min P" not in params  # none given: the chunk's call
            results, params = shown[2]
            assert "4 viral" in results and "region" not in results
            assert "region" not in params

    run(scenario)
