"""The Ray engine's options and sizing, without Ray: a stand-in `ray` module describes the
cluster, and the command line is checked before any work starts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tests.helpers import DATA
from virnucpro.cli.root import main
from virnucpro.ray_cluster import ActorPlan, plan_actors


def _cluster(monkeypatch, nodes: list[dict]) -> None:
    """A connected Ray whose alive nodes have these resources."""
    total: dict = {}
    for n in nodes:
        for k, v in n.items():
            total[k] = total.get(k, 0) + v
    fake = SimpleNamespace(is_initialized=lambda: True, cluster_resources=lambda: total,
                           nodes=lambda: [{"Alive": True, "Resources": n} for n in nodes])
    monkeypatch.setitem(sys.modules, "ray", fake)


def test_gpu_clusters_get_one_gpu_per_actor_and_an_actor_per_gpu_by_default(monkeypatch):
    _cluster(monkeypatch, [{"CPU": 32, "GPU": 4}, {"CPU": 32, "GPU": 4}, {"CPU": 8}])
    plan = plan_actors(None, None, None)
    assert plan == ActorPlan(workers=8, gpus=1.0, cpus=1.0, threads=4)
    assert plan.devices == ["cuda"] * 8
    assert plan_actors(None, 0.5, None).workers == 16  # two actors share each GPU
    assert plan_actors(3, None, 2) == ActorPlan(workers=3, gpus=1.0, cpus=1.0, threads=2)


def test_cpu_clusters_get_one_actor_per_node_sharing_the_cores(monkeypatch):
    _cluster(monkeypatch, [{"CPU": 16}, {"CPU": 16}])
    assert plan_actors(None, None, None) == ActorPlan(2, 0.0, 16.0, 16)
    assert plan_actors(4, None, None) == ActorPlan(4, 0.0, 8.0, 8)
    # One actor cannot take more cores than its node has.
    assert plan_actors(1, None, None) == ActorPlan(1, 0.0, 16.0, 16)
    assert plan_actors(2, 0, None).devices == ["cpu", "cpu"]


def _predict(tmp_path, *args: str):
    return CliRunner().invoke(main, ["predict", str(DATA / "viral_reference.fasta"), "-o",
                                     str(tmp_path / "o"), "--models", "tiny", *args])


@pytest.mark.parametrize("args", [["--workers", "2"], ["--ray-address", "auto"],
                                  ["--engine", "pool", "--gpus-per-worker", "1"]])
def test_ray_options_without_the_ray_engine_are_a_usage_error(tmp_path, args):
    result = _predict(tmp_path, *args)
    assert result.exit_code == 2 and "need --engine ray" in result.output
    assert not (tmp_path / "o").exists()


def test_devices_do_not_apply_to_the_ray_engine(tmp_path):
    result = _predict(tmp_path, "--engine", "ray", "--devices", "cpu")
    assert result.exit_code == 2 and "--devices does not apply" in result.output


def test_the_ray_engine_without_ray_names_the_extra_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    result = _predict(tmp_path, "--engine", "ray")
    assert result.exit_code == 1 and "pip install 'virnucpro[ray]'" in result.output
    assert not (tmp_path / "o").exists()


def test_the_daemon_checks_the_same_options():
    from virnucpro.daemon.cli import main as daemon_main

    result = CliRunner().invoke(daemon_main, ["start", "--foreground", "--workers", "2"])
    assert result.exit_code == 2 and "need --engine ray" in result.output


def test_the_engine_modules_import_neither_ray_nor_torch():
    code = ("import sys, virnucpro.ray_engine, virnucpro.engine; "
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
