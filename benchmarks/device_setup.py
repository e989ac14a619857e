"""What every step of the device check shares: its settings from the environment
(`CheckConfig`), the JSON file the steps fill (`Results`), the frames they score (the synthetic
input's kept frames of 500 bp chunks, cut into shards of the product's 2048 frames), and the
model set, loaded and freed, with what the load took.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import device_figures as fig

STARTED = time.perf_counter()
SHARD_FRAMES = 2048  # the product's shard (virnucpro.run.feed)
CHUNK = 500
GIB = 1 << 30


@dataclass(frozen=True)
class CheckConfig:
    """What the steps measure on, from the environment (gpu_check.sh documents each knob)."""

    size: str  # "full" (random weights of the published sizes, on cuda:0) or "tiny" (CPU)
    device: str
    precision: str  # the product's on that device: bfloat16 on a GPU, float32 on the CPU
    batch_tokens: int
    shard_frames: int
    shards: int
    passes: int
    agree_frames: int
    fraction_gib: float
    work: str  # where the speed step leaves its scores for the agreement step

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CheckConfig:
        import torch

        from virnucpro.devices import effective_precision

        env = dict(os.environ if env is None else env)
        size = env.get("SIZE", "auto")
        if size == "auto":
            size = "full" if torch.cuda.is_available() else "tiny"
        if size not in ("full", "tiny"):
            raise SystemExit(f"SIZE={size}: give full, tiny or auto")
        if size == "full" and not torch.cuda.is_available():
            raise SystemExit("SIZE=full needs a CUDA device (SIZE=tiny runs on the CPU)")
        device = "cuda:0" if size == "full" else "cpu"
        shard_frames = int(env.get("SHARD_FRAMES", SHARD_FRAMES if size == "full" else 32))
        shards = int(env.get("SHARDS", 3))
        return cls(size=size, device=device,
                   precision=env.get("PRECISION", effective_precision("auto", [device])),
                   batch_tokens=int(env.get("BATCH_TOKENS", 32768 if size == "full" else 4096)),
                   shard_frames=shard_frames, shards=shards, passes=int(env.get("PASSES", 3)),
                   agree_frames=min(shards * shard_frames,
                                    int(env.get("AGREE_FRAMES", SHARD_FRAMES if size == "full"
                                                else shards * shard_frames))),
                   fraction_gib=float(env.get("FRACTION_GIB", 24)),
                   work=env.get("WORK", str(Path(tempfile.gettempdir()) / "gpu-check-work")))

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


class Results:
    """The JSON file the steps share, rewritten whole (through a rename) at each `put`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def note(step: str, text: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {step}: {text}", file=sys.stderr, flush=True)


class OomRetries(logging.Handler):
    """Counts the scorer's out-of-memory retries (it halves a batch and logs a warning)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        logging.getLogger("virnucpro.scoring").addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "out of memory" in record.getMessage()


def model_set(cfg: CheckConfig):
    from virnucpro.models.modelset import scan_set_folder
    from virnucpro.models.sets import resolve_model_set

    if cfg.size == "tiny":
        return resolve_model_set("tiny")
    from benchmarks.workload import model_set_for

    return scan_set_folder(model_set_for("full"))  # published when present, else random


def check_frames(cfg: CheckConfig) -> tuple[list[str], list[str]]:
    """The nucleotides and proteins of the kept frames of `shards x shard_frames` 500 bp chunks
    of the synthetic input (stop-free on F1 and R1), the same in every step's process."""
    from benchmarks.synthetic_input import write_input
    from benchmarks.workload import columns, frames_of

    need = cfg.shards * cfg.shard_frames
    sequences = need // 12 + 8  # 3 kb: 6 chunks, 2 kept frames each
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        fasta = Path(tmp) / "input.fasta"
        while True:
            write_input(fasta, sequences, 3000)  # seeded: the first sequences never change
            frames = frames_of(fasta, CHUNK)
            if len(frames) >= need:
                return columns(frames[:need])
            sequences *= 2


def shards_of(cfg: CheckConfig, nucleotides: list[str], proteins: list[str]):
    return [(nucleotides[i:i + cfg.shard_frames], proteins[i:i + cfg.shard_frames])
            for i in range(0, len(nucleotides), cfg.shard_frames)]


def load_set(cfg: CheckConfig, precision: str):
    """The set loaded on the device in `precision`, and what that took."""
    import torch

    from virnucpro.models.loaded import load_models

    t0 = time.perf_counter()
    models = load_models(model_set(cfg), CHUNK, cfg.device, precision)
    fig.sync(cfg.device)
    facts = {"precision": precision, "seconds": round(time.perf_counter() - t0, 2),
             "weights_bytes": models.weights_bytes(),
             "allocated_after_load_bytes": torch.cuda.memory_allocated(cfg.device) if cfg.cuda else None,
             "reserved_after_load_bytes": torch.cuda.memory_reserved(cfg.device) if cfg.cuda else None}
    return models, facts


def release_memory(cfg: CheckConfig) -> None:
    """What models the caller has let go of held, given back (the device's cached blocks too)."""
    import torch

    gc.collect()
    if cfg.cuda:
        torch.cuda.empty_cache()


def device_facts(cfg: CheckConfig) -> dict:
    import torch

    facts = {"device": cfg.device, "torch": torch.__version__, "cuda": torch.version.cuda,
             "python": platform.python_version(), "cpu_cores": os.cpu_count()}
    if cfg.cuda:
        props = torch.cuda.get_device_properties(cfg.device)
        facts.update(name=props.name, total_memory_bytes=props.total_memory,
                     capability=f"{props.major}.{props.minor}",
                     cudnn=torch.backends.cudnn.version())
    else:
        facts["name"] = f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return facts


def scores_file(cfg: CheckConfig) -> Path:
    """Where the speed step leaves its scores of the agreement's frames."""
    return Path(cfg.work) / f"scores-{cfg.precision}.npz"
