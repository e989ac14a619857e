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
    # Loading took 40 s; scoring began 100 s ago and did 250 chunks of 1000: 2.5/s, 300 s to go.
    # (The sequences, 10 of 50, say nothing of the rate: their lengths vary.)
    job = make_job(1, "a.fa", "running", NOW, steps=[("loading", 140.0), ("running", 100.0)],
                   progress={"sequences_done": 10, "sequences_total": 50,
                             "chunks_done": 250, "chunks_total": 1000})
    row = job_row(record(job), NOW)
    assert row.elapsed == 140.0
    assert row.rate == pytest.approx(2.5)
    assert row.eta == pytest.approx(300.0)
    # Finished: elapsed stops at the end; no ETA.
    done = make_job(2, "b.fa", "completed", NOW, steps=[("loading", 60.0), ("running", 50.0),
                                                          ("completed", 10.0)],
                    progress={"sequences_done": 20, "sequences_total": 20,
                              "chunks_done": 80, "chunks_total": 80})
    row = job_row(record(done), NOW + 1000)
    assert (row.elapsed, row.rate, row.eta, row.fraction) == (50.0, 2.0, None, 1.0)
    # Completed but never counted (a store from before chunks): all of it, all the same.
    legacy = make_job(4, "d.fa", "completed", NOW, steps=[("running", 50.0), ("completed", 10.0)],
                      progress={"sequences_done": 7})
    row = job_row(record(legacy), NOW)
    assert (row.fraction, row.sequences_done, row.sequences_total) == (1.0, 7, 7)
    # Running, its chunks not counted yet: no fraction, no ETA.
    counting = make_job(5, "e.fa", "running", NOW, steps=[("running", 5.0)],
                        progress={"sequences_done": 0, "sequences_total": 30})
    row = job_row(record(counting), NOW)
    assert (row.fraction, row.eta, row.sequences_total) == (None, None, 30)
    # Queued: nothing known yet.
    row = job_row(record(make_job(3, "c.fa", "queued", NOW)), NOW)
    assert (row.sequences_total, row.chunks_total, row.fraction, row.rate, row.elapsed,
            row.eta) == (None, None, None, None, None, None)


def test_a_retried_job_is_timed_from_its_new_run():
    job = make_job(1, "a.fa", "running", NOW, steps=[("loading", 500.0), ("running", 490.0),
                                                     ("failed", 480.0), ("queued", 30.0),
                                                     ("loading", 20.0), ("running", 10.0)],
                   progress={"chunks_done": 10, "chunks_total": 20})
    row = job_row(record(job), NOW)
    assert row.elapsed == 20.0 and row.rate == 1.0 and row.eta == 10.0


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
