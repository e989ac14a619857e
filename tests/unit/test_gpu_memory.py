"""The daemon's GPU memory figures find the right GPU through CUDA_VISIBLE_DEVICES (an index or
a UUID, whole or a prefix) and fall back to the workers' own figures when NVML cannot say.
NVML is faked: a laptop has no GPU to read."""

from __future__ import annotations

import os
import sys
import types

import pytest
from click.testing import CliRunner

GIB = 1 << 30
# Three GPUs in NVML's (PCI bus) order: uuid, name, used bytes, total bytes.
GPUS = [("GPU-aaaa1111-0000", "NVIDIA H200", 1 * GIB, 141 * GIB),
        ("GPU-bbbb2222-0000", "NVIDIA L4", 2 * GIB, 24 * GIB),
        ("GPU-aaaa3333-0000", "NVIDIA H200", 3 * GIB, 141 * GIB)]


def fake_pynvml() -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(GPUS)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: GPUS[i]  # IndexError past the end, as NVML errs
    nvml.nvmlDeviceGetUUID = lambda h: h[0].encode()  # older nvidia-ml-py returns bytes
    nvml.nvmlDeviceGetName = lambda h: h[1]
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=h[2], total=h[3])
    return nvml


@pytest.fixture()
def monitor(monkeypatch: pytest.MonkeyPatch):
    from virnucpro.daemon.memory import MemoryMonitor

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # as the daemon's command line sets it
    workers = [{"models": "tiny", "workers": [{"device": "cuda:0", "memory_bytes": 5 * GIB}]}]

    def read(visible: str) -> dict:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        [row] = MemoryMonitor(["cuda:0"], lambda: workers).read()
        return row

    return read


@pytest.mark.parametrize("visible, gpu", [("2,0", 2), ("1", 1), ("GPU-aaaa3333-0000", 2),
                                          ("GPU-bbbb", 1), ("gpu-AAAA1", 0)])
def test_the_gpu_named_in_cuda_visible_devices_is_read(monitor, visible: str, gpu: int) -> None:
    row = monitor(visible)
    assert row["source"] == "nvml"
    assert (row["used_bytes"], row["total_bytes"], row["name"]) == (GPUS[gpu][2], GPUS[gpu][3], GPUS[gpu][1])


@pytest.mark.parametrize("visible", ["GPU-aaaa", "MIG-0c1d2e3f-4a5b", "GPU-ffff", "7"])
def test_an_id_nvml_cannot_place_falls_back_to_the_workers_figures(monitor, visible: str) -> None:
    # "GPU-aaaa" matches two GPUs: reading either could be the wrong one.
    row = monitor(visible)
    assert row["source"] == "workers"
    assert row["used_bytes"] == 5 * GIB


def test_another_cuda_order_is_not_read_by_index(monitor, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")  # cuda:0 may be NVML's 1 or 2
    assert monitor("0")["source"] == "workers"
    assert monitor("GPU-bbbb")["source"] == "nvml"  # a UUID names the card whatever the order


@pytest.mark.parametrize("command", ["virnucpro", "daemon"])
def test_the_command_lines_number_gpus_as_nvidia_smi_unless_told(monkeypatch, command: str) -> None:
    from virnucpro.cli.root import main as cli_main
    from virnucpro.daemon.cli import main as daemon_main

    main = cli_main if command == "virnucpro" else daemon_main
    sub = "models" if command == "virnucpro" else "status"
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "recorded")  # so that teardown restores the original
    monkeypatch.delenv("CUDA_DEVICE_ORDER")
    CliRunner().invoke(main, [sub, "--help"])
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    CliRunner().invoke(main, [sub, "--help"])
    assert os.environ["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"
