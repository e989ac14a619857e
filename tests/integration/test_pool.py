"""The worker pool on two CPU workers: same results as one process, load counts, faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DATA, read_table
from virnucpro.config import PredictConfig
from virnucpro.engine_config import EngineConfig
from virnucpro.pipeline import run_predict

REPO = Path(__file__).resolve().parents[2]
SCORER = "VIRNUCPRO_TEST_SCORER"  # a stand-in scorer of tests.fakes, for the workers too


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool-inputs")
    both = tmp / "both.fasta"
    both.write_text((DATA / "viral_reference.fasta").read_text()
                    + (DATA / "nonviral_reference.fasta").read_text())
    return [str(DATA / "viral_reference.fasta"), str(DATA / "nonviral_reference.fasta"), str(both)]


def _config(inputs, out, engine: str = "auto", persistent: bool = False, **kw):
    return PredictConfig(inputs=tuple(inputs), outdir=out, models="tiny", progress=False,
                         shard_frames=4, engine=EngineConfig(engine=engine, persistent=persistent),
                         **kw)


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, inputs, tiny_set_dir):
    out = tmp_path_factory.mktemp("single") / "o"
    run_predict(_config(inputs, out, device="cpu", engine="local"))
    return out


def assert_same_results(a: Path, b: Path) -> None:
    """Same rows and calls; scores equal within 1e-6 (ARCHITECTURE section 4)."""
    for name in ("frames.tsv", "chunks.tsv", "sequences.tsv"):
        ra, rb = read_table(a / name), read_table(b / name)
        assert len(ra) == len(rb) > 0, name
        for x, y in zip(ra, rb, strict=True):
            assert x.keys() == y.keys()
            for col in x:
                if col.startswith(("p_", "max_p", "mean_p")) and x[col]:
                    assert abs(float(x[col]) - float(y[col])) < 1e-6, (name, col, x, y)
                else:
                    assert x[col] == y[col], (name, col)


@pytest.mark.slow
@pytest.mark.parametrize("persistent", [True, False])
def test_pool_agrees_with_one_process_and_loads_models_as_the_mode_says(
        tmp_path, inputs, single_process, persistent):
    out = tmp_path / "o"
    results = run_predict(_config(inputs, out, device="cpu,cpu", persistent=persistent))
    for r in results:
        assert r["engine"]["name"] == "pool" and r["engine"]["devices"] == ["cpu", "cpu"]
    # Two workers: persistent loads once per worker for all three inputs, standard per input.
    loads = [r["engine"]["model_loads_so_far"] for r in results]
    assert loads == ([2, 2, 2] if persistent else [2, 4, 6])
    for name in ("viral_reference", "nonviral_reference", "both"):
        assert_same_results(out / name, single_process / name)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_lost(
        tmp_path, monkeypatch, inputs, single_process):
    monkeypatch.setenv("FAKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_DIE_SHARD", "2")
    monkeypatch.setenv(SCORER, "tests.fakes:DieOnceScorer")
    out = tmp_path / "o"
    [r] = run_predict(_config(inputs[2:], out, device="cpu,cpu"))
    assert r["engine"]["worker_deaths"] == 1
    # The replacement may or may not finish loading before the other worker ends the run.
    assert r["engine"]["model_loads_so_far"] in (2, 3)
    assert r["counts"]["frames_failed"] == 0
    assert_same_results(out, single_process / "both")


@pytest.mark.slow
def test_a_shard_that_kills_workers_three_times_is_marked_failed(
        tmp_path, monkeypatch, inputs, single_process):
    monkeypatch.setenv("FAKE_POISON_ID", "AJ237582.1")
    monkeypatch.setenv(SCORER, "tests.fakes:PoisonScorer")
    out = tmp_path / "o"
    [r] = run_predict(_config(inputs[2:], out, device="cpu,cpu", save_embeddings=True))
    frames = read_table(out / "frames.tsv")
    failed = [f for f in frames if f["status"] != "ok"]
    poisoned = {f["frame_id"] for f in failed}
    assert any(fid.startswith("AJ237582.1_chunk_") for fid in poisoned)
    assert all(f["status"] == "failed: the shard crashed its worker 3 times" for f in failed)
    assert all(f["p_virus"] == "" and f["call"] == "unscored" for f in failed)
    assert r["counts"]["frames_failed"] == len(failed) <= 8  # one or two shards of 4 frames
    # --save-embeddings still writes every frame: failed ones as rows of NaN.
    index = read_table(out / "embeddings" / "index.tsv")
    assert [row["frame_id"] for row in index] == [f["frame_id"] for f in frames]
    assert r["engine"]["worker_deaths"] % 3 == 0 and r["engine"]["worker_deaths"] >= 3
    # Every other frame is scored as in a healthy run.
    reference = {f["frame_id"]: f for f in read_table(single_process / "both" / "frames.tsv")}
    for f in frames:
        if f["frame_id"] not in poisoned:
            assert f["call"] == reference[f["frame_id"]]["call"]
    seq = {s["sequence_id"]: s for s in read_table(out / "sequences.tsv")}["AJ237582.1"]
    assert seq["call"] == "unscored" and seq["reason"] == "scoring failed for every chunk"


@pytest.mark.slow
def test_out_of_memory_in_a_worker_halves_the_batch_and_completes(
        tmp_path, monkeypatch, inputs, single_process):
    monkeypatch.setenv("FAKE_TOKEN_LIMIT", "400")
    monkeypatch.setenv(SCORER, "tests.fakes:SmallMemoryScorer")
    out = tmp_path / "o"
    [r] = run_predict(_config(inputs[2:], out, device="cpu,cpu", batch_tokens=4096))
    assert r["counts"]["frames_failed"] == 0
    assert_same_results(out, single_process / "both")


@pytest.mark.slow
def test_a_dead_worker_is_noticed_within_seconds(tiny_set_dir):
    from virnucpro.pool.pool import PersistentWorkerPool

    with PersistentWorkerPool(["cpu", "cpu"], str(tiny_set_dir), 500, threads=2) as pool:
        assert pool.model_loads == 2 and len(pool.ready_workers()) == 2
        victim = pool.workers[0]
        os.kill(victim.process.pid, signal.SIGKILL)
        t0 = time.monotonic()
        events = []
        while not events and time.monotonic() - t0 < 10:
            events = [e for e in pool.poll(timeout=1.0) if e.kind == "died"]
        assert events and events[0].worker is victim
        assert time.monotonic() - t0 < 3
        fresh = pool.restart(victim)
        while fresh.state != "ready":
            pool.poll(timeout=1.0)
        assert pool.model_loads == 3 and fresh.process.pid != victim.process.pid


@pytest.mark.slow
def test_a_worker_that_cannot_load_names_the_problem(tiny_set_dir, monkeypatch):
    from virnucpro.pool.pool import PersistentWorkerPool, WorkerStartError

    monkeypatch.setenv(SCORER, "tests.fakes:BrokenScorer")
    pool = PersistentWorkerPool(["cpu"], str(tiny_set_dir), 500)
    with pytest.raises(WorkerStartError, match="worker 0 on cpu.*checkpoint is truncated"):
        pool.start()
    assert all(not w.process.is_alive() for w in pool.workers)


@pytest.mark.slow
def test_a_worker_that_does_not_get_ready_times_out_naming_the_knob(tiny_set_dir, monkeypatch):
    from virnucpro.pool.pool import PersistentWorkerPool, WorkerStartError

    monkeypatch.setenv(SCORER, "tests.fakes:HangingScorer")
    pool = PersistentWorkerPool(["cpu"], str(tiny_set_dir), 500, ready_timeout=2)
    with pytest.raises(WorkerStartError, match="--worker-timeout"):
        pool.start()
    assert all(not w.process.is_alive() for w in pool.workers)


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    """Running, not a zombie (an exited child whose reaper, pid 1 in a container, may be lazy)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


@pytest.mark.slow
def test_ctrl_c_stops_workers_cleanly_and_the_run_resumes(tmp_path, inputs, single_process):
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_DELAY": "0.3"}
    cmd = [sys.executable, "-m", "virnucpro", "predict", inputs[2], "-o", str(out), "--models",
           "tiny", "--devices", "cpu,cpu", "--shard-frames", "4", "-q"]
    # A terminal's process has Ctrl-C's default action; a suite started in the background of a
    # non-interactive shell (`pytest &`) hands its children SIGINT ignored: restore it.
    proc = subprocess.Popen(cmd, env={**env, SCORER: "tests.fakes:SlowScorer"},
                            start_new_session=True, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    shards = out / ".virnucpro" / "shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(shards.glob("shard-*.safetensors")):
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len([w for w in workers if _alive(w)]) >= 2
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "--resume" in err.decode() and "Traceback" not in err.decode()
    time.sleep(0.5)
    left = {w: _cmdline(w) for w in workers if _alive(w)}
    assert not left, f"orphan processes: {left}"
    assert not list(shards.glob("*.tmp")) and not (out / "frames.tsv").exists()
    subprocess.run([*cmd, "--resume"], env=env, check=True, timeout=300)
    assert_same_results(out, single_process / "both")


@pytest.mark.slow
def test_a_predict_killed_while_its_workers_start_leaves_no_process_and_no_traceback(
        tmp_path, inputs, tiny_set_dir):
    """SIGKILL as soon as the workers exist: they are still starting (importing torch, then
    loading models for FAKE_LOAD_DELAY s); every child of `predict` must be gone long before
    the load would end, and none may print a broken-pipe traceback."""
    virnucpro = Path(sys.executable).with_name("virnucpro")  # the installed entry point
    env = {**os.environ, "PYTHONPATH": str(REPO), SCORER: "tests.fakes:SlowLoadScorer",
           "FAKE_LOAD_DELAY": "30"}
    err = tmp_path / "stderr"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen([str(virnucpro), "predict", inputs[0], "-o", str(tmp_path / "o"),
                                 "--models", "tiny", "--engine", "pool", "--devices", "cpu,cpu"],
                                env=env, stderr=stderr)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)]
            time.sleep(0.01)
        assert len(workers) == 2, err.read_text()
        children = _children(proc.pid)  # the workers and multiprocessing's resource tracker
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15  # half the load: a worker that waited for it is seen
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.1)
        left = {p: _cmdline(p) for p in children if _alive(p)}
        assert not left, f"outlived the killed predict: {left}"
        assert "Traceback" not in err.read_text()
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
