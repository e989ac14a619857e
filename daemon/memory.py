"""Per-device memory figures for the event stream: NVML for GPUs (nvidia-ml-py, read in the
supervisor without touching CUDA), else the workers' own torch figures; host memory for CPU
devices. `MemoryMonitor.read()` returns one dict per device; the daemon publishes it each second.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable

from virnucpro.devices import host_memory

log = logging.getLogger(__name__)


class MemoryMonitor:
    def __init__(self, devices: list[str], loaded: Callable[[], list[dict]]) -> None:
        self.devices = devices
        self.loaded = loaded  # what each worker holds (its own figures, from its ready report)
        self.nvml = None
        if any(d.startswith("cuda") for d in devices):
            try:
                import pynvml

                pynvml.nvmlInit()
                self.nvml = pynvml
            except Exception as exc:  # noqa: BLE001 - no driver or no library: fall back
                log.info("NVML unavailable (%s); GPU memory from the workers' figures", exc)

    def _gpu(self, device: str) -> dict:
        from virnucpro.devices import physical_gpu

        out: dict = {"device": device, "kind": "gpu", "source": "workers"}
        if self.nvml is not None:
            with contextlib.suppress(Exception):  # a MIG slice, a vanished GPU: workers' figures
                handle = self._handle(physical_gpu(device))
                mem = self.nvml.nvmlDeviceGetMemoryInfo(handle)
                name = self.nvml.nvmlDeviceGetName(handle)
                out.update(name=name.decode() if isinstance(name, bytes) else name,
                           used_bytes=int(mem.used), total_bytes=int(mem.total), source="nvml")
        return out

    def _handle(self, gpu: str):
        """NVML's handle for a CUDA_VISIBLE_DEVICES id: an index (NVML counts in PCI bus
        order, as CUDA does here: `number_gpus_as_nvidia_smi`) or a UUID, whole or a unique
        prefix as CUDA accepts it."""
        nvml = self.nvml
        if not gpu.upper().startswith("GPU-"):
            index = int(gpu)  # a MIG id raises here
            order = os.environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
            if order != "PCI_BUS_ID" and nvml.nvmlDeviceGetCount() > 1:
                raise LookupError(f"CUDA_DEVICE_ORDER={order}: CUDA's index {index} is not NVML's")
            return nvml.nvmlDeviceGetHandleByIndex(index)
        found = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            if uuid.lower().startswith(gpu.lower()):
                found.append(handle)
        if len(found) != 1:
            raise LookupError(f"{len(found)} GPUs match {gpu}")
        return found[0]

    def read(self) -> list[dict]:
        by_device: dict[str, list[dict]] = {}
        for entry in self.loaded():
            for w in entry["workers"]:
                by_device.setdefault(w["device"], []).append({"models": entry["models"], **w})
        out = []
        seen = set()
        for device in self.devices:
            if device in seen:  # cpu,cpu: one host, shown once
                continue
            seen.add(device)
            if device.startswith("cuda"):
                row = self._gpu(device)
                if row["source"] == "workers":
                    row["used_bytes"] = sum(w.get("memory_bytes") or 0 for w in by_device.get(device, []))
            else:
                available, total = host_memory()
                used = total - available
                row = {"device": device, "kind": "cpu", "name": "host memory", "used_bytes": used,
                       "total_bytes": total, "source": "host"}
            row["workers"] = by_device.get(device, [])
            row["models"] = sorted({w["models"] for w in row["workers"]})
            out.append(row)
        return out
