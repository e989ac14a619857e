"""The dashboard's pure parts, without Textual: the model that folds events in, the numbers
drawn as text, the results reader and the submit form's checks."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from tests.tui.fakes import (
    GB,
    cpu_device,
    daemon_status,
    event_of,
    gpu_device,
    make_job,
    progress,
    record,
    sample_daemon,
    snapshot_of,
    with_state,
)
from virnucpro.daemon.jobs import JobState
from virnucpro.daemon.protocol import DaemonState
from virnucpro.tui import render
from virnucpro.tui.results import read_results
from virnucpro.tui.state import MEMORY_SAMPLES, DashboardState, job_row
from virnucpro.tui.submission import FormError, check_submission

NOW = 1_700_000_000.0


def snapshot(jobs, devices=(), seq=10, **status):
    return snapshot_of(jobs, devices, seq=seq, **status)


def event(seq, topic, body):
    return event_of(seq, topic, body, NOW)

Q, L, R = JobState.QUEUED, JobState.LOADING, JobState.RUNNING
D, F, CD = JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED


def test_live_jobs_come_first_queued_in_run_order_then_finished_newest_first():
    state = DashboardState(lambda: NOW)
    state.apply(snapshot(sample_daemon(NOW).jobs.values()))
    rows = state.rows()
    assert [(r.id, r.state) for r in rows] == [
        (1, R), (2, Q), (3, Q),  # 2 has priority 5: it runs before 3
        (4, D), (5, F), (6, CD)]  # finished most recently first
    assert [r.live for r in rows] == [True] * 3 + [False] * 3


def test_events_update_jobs_progress_devices_and_daemon_after_the_snapshot():
    clock = [NOW]
    state = DashboardState(lambda: clock[0])
    job = make_job(1, "a.fa", "running", NOW, steps=[("loading", 20.0), ("running", 10.0)],
                   progress=progress(0, 100))
    state.apply(snapshot([job], [cpu_device()]))
    assert state.connected and state.seq == 10
    # Progress is by chunks (a total counted before scoring); sequences are only figures.
    state.apply(event(11, "progress", {"job_id": 1, "progress": {
        "sequences_done": 40, "sequences_total": 100, "chunks_done": 70, "chunks_total": 200}}))
    state.apply(event(12, "progress", {"job_id": 99, "progress": {}}))  # unknown: ignored
    row = state.rows()[0]
    assert (row.sequences_done, row.sequences_total) == (40, 100)
    assert (row.chunks_done, row.chunks_total, row.fraction) == (70, 200, 0.35)
    assert state.jobs[1].progress.chunks_done == 70
    state.apply(event(13, "job", make_job(2, "b.fa", "queued", NOW)))
    assert [r.id for r in state.rows()] == [1, 2]
    state.apply(event(14, "memory", {"devices": [cpu_device(used=7 * GB)]}))
    assert [v.used for v in state.device_views()] == [7 * GB]
    assert state.device_views()[0].history == (6 * GB, 7 * GB)
    state.apply(event(15, "daemon", daemon_status(state="draining", uptime_s=100.0)))
    clock[0] += 30
    assert state.daemon.state is DaemonState.DRAINING and state.uptime() == 130.0
    assert state.seq == 15


def test_rate_elapsed_and_eta_come_from_progress_history_and_clock():
    # Loading took 40 s; scoring did 250 chunks of 1000 at 2.5/s lately: 300 s to go.
    # (The sequences, 10 of 50, say nothing of the rate: their lengths vary.)
    job = make_job(1, "a.fa", "running", NOW, steps=[("loading", 140.0), ("running", 100.0)],
                   progress={"sequences_done": 10, "sequences_total": 50,
                             "chunks_done": 250, "chunks_total": 1000})
    row = job_row(record(job), NOW, rate=2.5)
    assert row.elapsed == 140.0
    assert row.rate == pytest.approx(2.5)
    assert row.eta == pytest.approx(300.0)
    assert job_row(record(job), NOW).eta is None  # no rate measured yet: no ETA
    assert job_row(record(job), NOW, rate=2.5, stale=True).eta is None  # the daemon lost
    # Finished: elapsed stops at the end; no rate, no ETA.
    done = make_job(2, "b.fa", "completed", NOW, steps=[("loading", 60.0), ("running", 50.0),
                                                          ("completed", 10.0)],
                    progress={"sequences_done": 20, "sequences_total": 20,
                              "chunks_done": 80, "chunks_total": 80})
    row = job_row(record(done), NOW + 1000, rate=2.0)
    assert (row.elapsed, row.rate, row.eta, row.fraction) == (50.0, None, None, 1.0)
    # Completed but never counted (a store from before chunks): all of it, all the same.
    legacy = make_job(4, "d.fa", "completed", NOW, steps=[("running", 50.0), ("completed", 10.0)],
                      progress={"sequences_done": 7})
    row = job_row(record(legacy), NOW)
    assert (row.fraction, row.sequences_done, row.sequences_total) == (1.0, 7, 7)
    # Running, its chunks not counted yet: no fraction, no ETA.
    counting = make_job(5, "e.fa", "running", NOW, steps=[("running", 5.0)],
                        progress={"sequences_done": 0, "sequences_total": 30})
    row = job_row(record(counting), NOW, rate=1.0)
    assert (row.fraction, row.eta, row.sequences_total) == (None, None, 30)
    # Queued: nothing known yet.
    row = job_row(record(make_job(3, "c.fa", "queued", NOW)), NOW)
    assert (row.sequences_total, row.chunks_total, row.fraction, row.rate, row.elapsed,
            row.eta) == (None, None, None, None, None, None)


def test_only_a_completed_job_is_at_100_percent_and_a_stopped_one_shows_what_was_done():
    last = {"sequences_done": 50, "sequences_total": 50, "chunks_done": 1000, "chunks_total": 1000}
    writing = make_job(1, "a.fa", "running", NOW, steps=[("running", 10.0)], progress=last)
    row = job_row(record(writing), NOW)
    assert row.fraction == 0.999  # every chunk scored, the last tables still being written
    assert render.bar(row.fraction, 10).plain == "█████████▉  99%"
    done = make_job(2, "b.fa", "completed", NOW, steps=[("running", 10.0), ("completed", 1.0)],
                    progress=last)
    assert render.bar(job_row(record(done), NOW).fraction, 10).plain == "██████████ 100%"
    cancelled = make_job(3, "c.fa", "cancelled", NOW, steps=[("running", 10.0), ("cancelled", 1.0)],
                         progress={**last, "chunks_done": 296, "sequences_done": 14})
    row = job_row(record(cancelled), NOW)
    assert row.fraction == pytest.approx(0.296) and row.chunks_done == 296
    assert render.bar(row.fraction, 10).plain == "██▉━━━━━━━  29%"


def resumed_job(chunks_done: int) -> dict:
    """Failed at 50 % of 1000 chunks, retried: its new run began scoring 10 s ago."""
    return make_job(1, "a.fa", "running", NOW, steps=[
        ("loading", 400.0), ("running", 390.0), ("failed", 300.0), ("queued", 30.0),
        ("loading", 20.0), ("running", 10.0)],
        progress={"chunks_done": chunks_done, "chunks_total": 1000})


def test_a_resumed_job_is_timed_by_its_recent_rate_not_by_what_earlier_runs_did():
    clock = [NOW - 10.0]
    state = DashboardState(lambda: clock[0])
    state.apply(snapshot([resumed_job(0)]))
    seq = 10

    def progress_at(t, chunks):
        nonlocal seq
        seq += 1
        clock[0] = t
        state.apply(event(seq, "progress", {"job_id": 1, "progress": {
            "chunks_done": chunks, "chunks_total": 1000}}))

    # The run starts at 0, its first write reports the 500 chunks the first run left, then it
    # scores 2 chunks a second.
    progress_at(NOW - 10.0, 0)
    progress_at(NOW - 9.5, 500)
    for i in range(1, 20):
        progress_at(NOW - 9.5 + 0.5 * i, 500 + i)
    row = state.rows()[0]
    assert row.chunks_done == 519 and row.elapsed == 20.0
    assert row.rate == pytest.approx(2.0)  # not 519 chunks in 10 s (51.9/s)
    assert row.eta == pytest.approx(481 / 2.0)


def test_the_rate_is_that_of_the_last_30_seconds_and_starts_again_with_each_run():
    clock = [NOW]
    state = DashboardState(lambda: clock[0])
    job = make_job(1, "a.fa", "running", NOW, steps=[("loading", 20.0), ("running", 10.0)],
                   progress={"chunks_done": 0, "chunks_total": 10_000})
    state.apply(snapshot([job]))
    assert state.rows()[0].rate is None  # not measured yet
    seq, chunks = 10, 0
    for second in range(1, 121):  # 2/s for a minute, then 4/s
        chunks += 2 if second <= 60 else 4
        seq += 1
        clock[0] = NOW + second
        state.apply(event(seq, "progress", {"job_id": 1, "progress": {
            "chunks_done": chunks, "chunks_total": 10_000}}))
        if second == 60:
            assert state.rows()[0].rate == pytest.approx(2.0)
    assert state.rows()[0].rate == pytest.approx(4.0)
    # Requeued (the daemon stopped) and running again: the old samples are not this run's.
    requeued = with_state(with_state(with_state(state.jobs[1].to_dict(), "queued", clock[0]),
                                     "loading", clock[0]), "running", clock[0])
    state.apply(event(seq + 1, "job", requeued))
    assert state.rows()[0].rate is None
    state.apply(event(seq + 2, "progress", {"job_id": 1, "progress": {
        "chunks_done": chunks + 1, "chunks_total": 10_000}}))
    assert state.rows()[0].rate is None  # one sample of the new run
    clock[0] += 2
    state.apply(event(seq + 3, "progress", {"job_id": 1, "progress": {
        "chunks_done": chunks + 7, "chunks_total": 10_000}}))
    assert state.rows()[0].rate == pytest.approx(3.0)  # from the new run's first sample
    clock[0] += 2
    state.apply(event(seq + 4, "progress", {"job_id": 1, "progress": {
        "chunks_done": chunks + 13, "chunks_total": 10_000}}))
    assert state.rows()[0].rate == pytest.approx(3.0)


def test_the_burst_of_a_resumed_runs_first_rows_is_not_its_rate():
    """A resumed run first writes the rows of its shards already on disk: a burst."""
    clock = [NOW]
    state = DashboardState(lambda: clock[0])
    job = make_job(1, "a.fa", "running", NOW, steps=[("running", 1.0)],
                   progress={"chunks_done": 210, "chunks_total": 360})
    state.apply(snapshot([job]))
    for seq, (after, chunks) in enumerate([(0.0, 210), (0.2, 300), (3.0, 306), (5.0, 310)], 11):
        clock[0] = NOW + after
        state.apply(event(seq, "progress", {"job_id": 1, "progress": {
            "chunks_done": chunks, "chunks_total": 360}}))
    # From the burst's end: not (310 - 210) / 5 = 20, nor 450.
    assert state.rows()[0].rate == pytest.approx((310 - 300) / 4.8)


def test_a_rate_and_an_eta_are_known_at_the_second_shard_however_long_shards_take():
    """Shards 90 s apart (the published models on a CPU): the first shard is the starting
    point, the second gives the rate (it took the third, a shard behind, 6 minutes)."""
    clock = [NOW]
    state = DashboardState(lambda: clock[0])
    job = make_job(1, "a.fa", "running", NOW, steps=[("running", 1.0)],
                   progress={"chunks_done": 0, "chunks_total": 1000})
    state.apply(snapshot([job]))
    for seq, (after, chunks) in enumerate([(0.0, 0), (90.0, 100), (180.0, 200)], 11):
        clock[0] = NOW + after
        state.apply(event(seq, "progress", {"job_id": 1, "progress": {
            "chunks_done": chunks, "chunks_total": 1000}}))
    row = state.rows()[0]
    assert row.rate == pytest.approx(100 / 90)
    assert row.eta == pytest.approx(800 / (100 / 90))


def test_while_the_daemon_is_lost_the_rows_are_as_last_heard_without_an_eta():
    clock = [NOW]
    state = DashboardState(lambda: clock[0])
    job = make_job(1, "a.fa", "running", NOW, steps=[("loading", 20.0), ("running", 10.0)],
                   progress={"chunks_done": 10, "chunks_total": 100})
    state.apply(snapshot([job]))
    for i in (1, 3, 5):  # the first report settles the run's start; 5 chunks/s after it
        clock[0] = NOW + i
        state.apply(event(10 + i, "progress", {"job_id": 1, "progress": {
            "chunks_done": 10 + 5 * i, "chunks_total": 100}}))
    assert state.rows()[0].eta == pytest.approx(13.0) and not state.stale
    state.connected = False  # the app's Disconnected
    clock[0] += 60
    row = state.rows()[0]
    assert state.stale and row.stale and row.eta is None
    assert row.elapsed == 25.0 and row.rate == pytest.approx(5.0)  # as at NOW + 5


def test_a_removed_job_is_forgotten():
    state = DashboardState(lambda: NOW)
    state.apply(snapshot(sample_daemon(NOW).jobs.values()))
    state.forget(4)
    assert 4 not in [r.id for r in state.rows()]


def test_memory_history_keeps_the_last_minute_and_starts_again_at_a_snapshot():
    state = DashboardState(lambda: NOW)
    state.apply(snapshot([], [gpu_device(0, 1 * GB)]))
    for i in range(MEMORY_SAMPLES + 15):
        state.apply(event(11 + i, "memory", {"devices": [gpu_device(0, i * GB)]}))
    history = state.device_views()[0].history
    assert len(history) == MEMORY_SAMPLES and history[-1] == (MEMORY_SAMPLES + 14) * GB
    state.apply(snapshot([], [gpu_device(0, 5 * GB)], seq=3))  # a restarted daemon
    assert state.device_views()[0].history == (5 * GB,) and state.seq == 3


def test_device_views_name_model_sets_by_folder_and_count_workers():
    state = DashboardState(lambda: NOW)
    state.apply(snapshot([], [gpu_device(0, 2 * GB, models=("/home/u/.virnucpro/sets/published",))]))
    view = state.device_views()[0]
    assert view.models == ("published",) and view.workers == 1
    assert view.fraction == pytest.approx(2 * GB / view.total)


def test_bars_sparklines_and_durations_render_as_fixed_width_text():
    assert render.bar(0.5, 10).plain == "█████━━━━━  50%"
    assert render.bar(None, 4).plain == "····     "
    assert render.bar(1 / 16, 2, label=False).plain == "▏━"
    # A fixed 0..top scale: small changes stay small (Textual's Sparkline would stretch them).
    assert render.spark([50, 51, 100, 0], 100, 6).plain == "  ▄▄█▁"
    assert [render.duration(s) for s in (None, 5, 125, 7384, 200000)] == [
        "-", "5s", "2m05s", "2h03m", "2d07h"]
    assert render.bytes_pair(61.4e9, 143.8e9) == "61.4/143.8 GB"
    assert render.rate(0.5) == "30.0/min" and render.rate(12.34) == "12.3/s"
    assert render.rate(2.0, "chunks") == "2.0 chunks/s"
    assert render.state_text(JobState.RUNNING).plain == "running"


def _table(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["sequence_id\tlength\tchunks\tscored_chunks\tviral_chunks\tviral_share\tmax_p_virus\t"
             "mean_p_virus\tcall\tflags\treason"]
    lines += [f"{sid}\t{length}\t1\t1\t0\t{share}\t{score}\t{score}\t{call}\t\t" for sid, length, share,
              score, call in rows]
    (folder / "sequences.tsv").write_text("\n".join(lines) + "\n")


def test_results_are_read_from_every_input_folder_with_histogram_and_top_calls(tmp_path):
    _table(tmp_path / "s1", [("a", 900, "1", "0.97", "virus"), ("b", 500, "0", "0.12", "others"),
                             ("c", 100, "", "", "unscored")])
    _table(tmp_path / "s2", [("d", 1200, "0.5", "0.71", "virus"), ("e", 800, "1", "0.99", "virus")])
    (tmp_path / "s2" / "report.html").write_text("<html>")
    results = read_results(str(tmp_path), top=2)
    assert results.counts == {"virus": 3, "others": 1, "unscored": 1}
    assert results.histogram == [0, 1, 0, 0, 0, 0, 0, 1, 0, 2]
    assert [(c.folder, c.sequence_id) for c in results.top] == [("s2", "e"), ("s1", "a")]
    assert results.reports == [str(tmp_path / "s2" / "report.html")]
    assert read_results(str(tmp_path / "none")).error.startswith("no sequences.tsv")


def _regions(folder, rows):
    lines = ["sequence_id\tregion\tstart\tend\tlength\tchunks\tviral_chunks\tmean_p_virus\t"
             "max_p_virus\tkind"]
    lines += [f"{sid}\t{n}\t1\t2000\t2000\t4\t4\t0.9\t0.99\t{kind}" for sid, n, kind in rows]
    (folder / "regions.tsv").write_text("\n".join(lines) + "\n")


def test_regions_are_counted_by_kind_over_every_folder_and_said_as_show_says_them(tmp_path):
    from virnucpro.daemon.client_views import regions_summary

    _table(tmp_path / "s1", [("a", 9000, "1", "0.97", "virus"), ("b", 500, "0", "0.12", "others")])
    _regions(tmp_path / "s1", [("a", 1, "provirus"), ("a", 2, "partial")])
    _table(tmp_path / "s2", [("a", 1200, "1", "0.99", "virus"), ("d", 800, "1", "0.99", "virus")])
    _regions(tmp_path / "s2", [("a", 1, "whole"), ("d", 1, "whole")])  # "a" again: another input
    _table(tmp_path / "s3", [("e", 1200, "0", "0.01", "others")])  # written before regions
    results = read_results(str(tmp_path))
    assert results.regions == {"regions": 4, "regions_whole": 2, "regions_provirus": 1,
                               "regions_partial": 1, "sequences_with_regions": 3}
    assert regions_summary(results.regions) == "4 (1 provirus, 1 partial, 2 whole) in 3 sequences"
    assert read_results(str(tmp_path / "s3")).regions is None  # no regions.tsv: no regions
    assert regions_summary({"sequences": 4}) is None
    assert regions_summary({"regions": 0, "sequences_with_regions": 0}) == "0"
    assert regions_summary({"regions": 1, "regions_whole": 1, "sequences_with_regions": 1}) == \
        "1 (1 whole) in 1 sequence"


def test_the_form_reports_every_problem_at_once_before_sending(tmp_path):
    good = tmp_path / "s1.fa.gz"
    with gzip.open(good, "wt") as fh:
        fh.write(">a\nACGT\n")
    text = tmp_path / "notes.fa"
    text.write_text("hello\n")
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(FormError) as err:
        check_submission([str(text), str(tmp_path / "missing.fa")], chunk_size=400, models="",
                         outdir=str(tmp_path / "taken"), priority="high", name="")
    assert len(err.value.problems) == 6
    sub = check_submission([str(good), str(good)], chunk_size=300, models="tiny",
                           outdir=str(tmp_path / "out"), priority="-2", name=" run ")
    assert sub.inputs == (str(good),) and sub.priority == -2 and sub.name == "run"
    assert sub.options == {"chunk_size": 300, "models": "tiny"} and not sub.upload
    with pytest.raises(FormError, match="absolute path on the daemon"):
        check_submission([str(good)], chunk_size=500, models="published", outdir="rel/out",
                         priority="0", name="", local=False)


@pytest.mark.parametrize("module", ["virnucpro.tui.app", "virnucpro.daemon.client"])
def test_the_dashboard_and_the_client_import_without_torch(module):
    code = f"import {module}, sys; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_reply_never_takes_a_job_back_past_what_the_stream_showed():
    state = DashboardState(lambda: NOW)
    running = make_job(1, "a.fa", "running", NOW, steps=[("loading", 20.0), ("running", 10.0)])
    state.apply(snapshot([running]))
    cancelling = with_state(running, "cancelling", NOW)
    cancelled = with_state(cancelling, "cancelled", NOW)
    state.apply(event(11, "job", cancelled))  # the event overtook the cancel's reply
    state.merge_job(record(cancelling))
    assert state.jobs[1].state is CD
    state.merge_job(record(with_state(cancelled, "queued", NOW)))  # a retry's reply is newer: kept
    assert state.jobs[1].state is Q


def test_the_dialogs_model_set_is_the_loaded_one_else_the_last_jobs():
    state = DashboardState(lambda: NOW)
    assert state.usual_models() == "published"
    state.apply(snapshot([make_job(1, "a.fa", "completed", NOW, options={"models": "tiny"}),
                          make_job(2, "b.fa", "queued", NOW, options={"models": "custom"})]))
    assert state.usual_models() == "custom"
    state.apply(event(11, "memory", {"devices": [gpu_device(0, GB, models=("/x/sets/tiny",))]}))
    assert state.usual_models() == "tiny"
    # The daemon's status names its loaded sets too (a CPU daemon's devices may not).
    state.apply(event(12, "memory", {"devices": [cpu_device()]}))
    assert state.usual_models() == "custom"
    state.apply(event(13, "daemon", daemon_status(loaded=[{"models": "/y/sets/big", "workers": []}])))
    assert state.usual_models() == "big"
