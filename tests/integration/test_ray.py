"""The ray engine on a local Ray instance with 2 CPUs (tiny models): the same results as one
process, an actor killed mid-run, the poison cap, and the daemon with --engine ray.

One Ray instance serves the whole module (it takes seconds to start); the engine finds it
already running, uses it and must leave it running. The daemon joins it by its address.
"""

# The fixtures of test_pool and test_daemon are imported by name and taken as arguments.
# ruff: noqa: F811

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tests.daemon_helpers import wait_for  # noqa: E402
from tests.helpers import read_table  # noqa: E402
from tests.integration.test_daemon import VIRAL, daemons  # noqa: E402, F401
from tests.integration.test_pool import (  # noqa: E402, F401
    assert_same_results,
    inputs,
    single_process,
)
from virnucpro.config import PredictConfig  # noqa: E402
from virnucpro.engine_config import EngineConfig  # noqa: E402
from virnucpro.pipeline import run_predict  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
POISON_ID = "AJ237582.1"


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory, tiny_set_dir):
    fakes = tmp_path_factory.mktemp("ray-fakes")
    with pytest.MonkeyPatch.context() as mp:
        # Actors are started by Ray's raylet with the environment it has now: the stand-in
        # scorers' settings and the repository (to import tests.fakes) must be set before.
        # Which stand-in (VIRNUCPRO_TEST_SCORER) a test sets later: RayEngine passes it on.
        mp.setenv("FAKE_STATE_DIR", str(fakes))
        mp.setenv("FAKE_DIE_SHARD", "2")
        mp.setenv("FAKE_POISON_ID", POISON_ID)
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()


def _config(inputs, out, persistent: bool = False):
    return PredictConfig(inputs=tuple(inputs), outdir=out, models="tiny", progress=False,
                         shard_frames=4, report=False,
                         engine=EngineConfig(engine="ray", workers=2, persistent=persistent))


def _standin(monkeypatch, scorer: str) -> None:
    """A stand-in for the actors: set in this driver, passed on in their runtime_env."""
    monkeypatch.setenv("VIRNUCPRO_TEST_SCORER", scorer)


@pytest.mark.slow
def test_ray_agrees_with_one_process_and_keeps_its_actors_across_inputs(
        tmp_path, inputs, single_process, ray_address):
    out = tmp_path / "o"
    results = run_predict(_config(inputs, out, persistent=True))
    for r in results:
        assert r["engine"]["name"] == "ray" and r["engine"]["devices"] == ["cpu", "cpu"]
    # Two actors loaded the models once each for all three inputs.
    assert [r["engine"]["model_loads_so_far"] for r in results] == [2, 2, 2]
    for name in ("viral_reference", "nonviral_reference", "both"):
        assert_same_results(out / name, single_process / name)
    assert ray.is_initialized()  # the caller's Ray instance is left running
    _wait_until_actors_are_gone()


def _wait_until_actors_are_gone(timeout: float = 20) -> None:
    """The engine's actors were stopped: their CPUs are back (killing takes a moment)."""
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.1)


@pytest.mark.slow
def test_an_actor_killed_mid_run_is_replaced_and_nothing_is_lost(
        tmp_path, monkeypatch, inputs, single_process, ray_address):
    out = tmp_path / "o"
    _standin(monkeypatch, "tests.fakes:DieOnceScorer")
    [r] = run_predict(_config(inputs[2:], out))
    assert r["engine"]["worker_deaths"] == 1
    # The replacement may or may not finish loading before the other actor ends the run.
    assert r["engine"]["model_loads_so_far"] in (2, 3)
    assert r["counts"]["frames_failed"] == 0
    assert_same_results(out, single_process / "both")


@pytest.mark.slow
def test_a_shard_that_kills_actors_three_times_is_marked_failed(
        tmp_path, monkeypatch, inputs, single_process, ray_address):
    out = tmp_path / "o"
    _standin(monkeypatch, "tests.fakes:PoisonScorer")
    [r] = run_predict(_config(inputs[1:2], out))
    frames = read_table(out / "frames.tsv")
    failed = [f for f in frames if f["status"] != "ok"]
    # The shard (or two) holding a frame of the poison sequence, whatever else they hold.
    assert any(f["frame_id"].startswith(POISON_ID + "_chunk_") for f in failed)
    assert all(f["status"] == "failed: the shard crashed its worker 3 times" for f in failed)
    assert r["counts"]["frames_failed"] == len(failed) <= 8
    assert r["engine"]["worker_deaths"] % 3 == 0 and r["engine"]["worker_deaths"] >= 3
    reference = {f["frame_id"]: f for f in read_table(single_process / "nonviral_reference" / "frames.tsv")}
    poisoned = {f["frame_id"] for f in failed}
    for f in frames:
        if f["frame_id"] not in poisoned:
            assert f["call"] == reference[f["frame_id"]]["call"]


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.slow
def test_the_daemon_with_engine_ray_runs_its_jobs_on_the_cluster(
        tmp_path, daemons, single_process, ray_address):
    d = daemons("--engine", "ray", "--ray-address", ray_address, "--workers", "2",
                "--persistent-models", "--models", "tiny").start(timeout=120)
    c = d.client()
    status = c.status()
    assert status.engine == "ray" and status.devices == ("cpu", "cpu")
    [loaded] = status.loaded
    assert [w.state for w in loaded.workers] == ["ready", "ready"]
    job = c.submit([str(VIRAL)], outdir=str(tmp_path / "j"), options={"models": "tiny"})
    done = wait_for(c, job.id)
    assert done.state.value == "completed", done
    assert_same_results(Path(done.outdir), single_process / "viral_reference")
    assert c.status().model_loads == 2
    # The supervisor drove the actors without loading torch itself.
    assert "libtorch" not in _maps(d.proc.pid)
    # Its own SIGTERM handling survived joining Ray: a clean stop, the actors stopped too.
    d.stop()
    assert d.proc.returncode == 0, (tmp_path / "daemon.err").read_text()[-2000:]
    _wait_until_actors_are_gone()


@pytest.mark.slow
def test_ray_writes_the_pinned_files_of_the_stand_in(tmp_path, monkeypatch, ray_address):
    from tests import standin_cases

    standin_cases.use_standin(monkeypatch)  # in the driver: the engine passes it to the actors
    run_predict(standin_cases.config("edge300", tmp_path / "o", engine="ray", workers=2,
                                     device="auto"))
    assert standin_cases.differences("edge300", tmp_path / "o") == []
    # The same records as FASTQ: the same tables, and viral.fastq (issue 16).
    from tests.integration.test_fastq_predict import TABLES, fastq_of

    fastq_of(standin_cases.EDGE_INPUT, tmp_path / "edge.fq.gz")
    spec = {**standin_cases.CASES["edge300"], "inputs": (tmp_path / "edge.fq.gz",)}
    monkeypatch.setitem(standin_cases.CASES, "edge300-fastq", spec)
    run_predict(standin_cases.config("edge300-fastq", tmp_path / "q", engine="ray", workers=2,
                                     device="auto"))
    want = standin_cases.EXPECTED / "edge300"
    assert [n for n in TABLES if (tmp_path / "q" / n).read_bytes() != (want / n).read_bytes()] == []
    assert (tmp_path / "q" / "viral.fastq").stat().st_size > 0
