"""Ray itself: joining a cluster (or starting a local instance), sizing the actors from its
resources, and the actor class that holds one scorer (`ModelScorer`) with its models loaded.

`ray` is imported lazily, only here and in `virnucpro.ray_engine` (the optional extra
`virnucpro[ray]`); nothing here imports torch in the driver, only inside the actors' processes.
One connection serves the whole process: made once, before a daemon installs its signal
handlers (`ray.init` installs a SIGTERM handler of its own), and ended by Ray's exit hook, which
stops a local instance it started and only detaches from a cluster.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from virnucpro.errors import VirNucProError
from virnucpro.pool.worker import ShardTask, WorkerSpec
from virnucpro.scoring import ShardScores

log = logging.getLogger(__name__)

INSTALL_HINT = "the ray engine needs Ray: pip install 'virnucpro[ray]'"


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VirNucProError(INSTALL_HINT) from None
    return ray


def connect(address: str | None, workers: int | None = None) -> bool:
    """Join a cluster (`auto` or HOST:PORT) or, without an address, start a local instance;
    True if this call made the connection. One made before (by the caller, or an earlier
    engine) is used as it is, whatever its address."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:  # enough CPUs for the asked workers even on a small machine
            ray.init(num_cpus=max(workers or 1, os.cpu_count() or 1), **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if not address:
            raise VirNucProError(f"cannot start a local Ray instance ({exc})") from exc
        raise VirNucProError(f"cannot join the Ray cluster at {address} ({exc}); is it running? "
                             "(`ray start --head` on the head node)") from exc
    return True


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, and what each asks Ray for."""

    workers: int
    gpus: float  # per actor
    cpus: float  # per actor, for Ray's scheduling
    threads: int  # torch threads in each actor

    @property
    def devices(self) -> list[str]:
        # "cuda"/"cpu" per actor: what decides the batch budget and the precision.
        return ["cuda" if self.gpus else "cpu"] * self.workers


def plan_actors(workers: int | None, gpus_per_worker: float | None,
                threads: int | None) -> ActorPlan:
    """Size the actors from the cluster (connected): G defaults to 1 when it has GPUs, and N
    to all its GPUs (G > 0) or one actor per node (CPU only)."""
    ray = require_ray()
    total = ray.cluster_resources()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    cluster_gpus = total.get("GPU", 0.0)
    gpus = (1.0 if cluster_gpus else 0.0) if gpus_per_worker is None else gpus_per_worker
    if not workers:
        workers = max(1, int(cluster_gpus // gpus) if gpus else len(nodes))
    if gpus:  # a GPU actor only feeds its device: a few threads tokenize and copy
        plan = ActorPlan(workers, gpus, 1.0, threads or 4)
    else:  # CPU actors share the cluster's cores, but one cannot take more than a node has
        biggest = max((n.get("CPU", 1.0) for n in nodes), default=1.0)
        per = threads or max(1, int(min(biggest, total.get("CPU", 1.0) // workers)))
        plan = ActorPlan(workers, 0.0, float(min(per, biggest)), per)
    for kind, each in (("GPU", plan.gpus), ("CPU", plan.cpus)):
        if workers * each > total.get(kind, 0.0):
            # Not an error: an autoscaling cluster may add nodes for the waiting actors.
            log.warning("%d actors x %g %s need more than the cluster has now (%g): some will "
                        "wait for them", workers, each, kind, total.get(kind, 0.0))
    return plan


def cluster_devices(address: str | None, workers: int | None, gpus_per_worker: float | None,
                    threads: int | None = None) -> list[str]:
    """The engine's `devices` before it exists (for the precision and the batch budget).
    Connects for the rest of the process (see the module doc)."""
    connect(address, workers)
    return plan_actors(workers, gpus_per_worker, threads).devices


class ShardActor:
    """Lives in a Ray worker process: one scorer with its models loaded on this actor's device
    (on a GPU actor Ray has set CUDA_VISIBLE_DEVICES, so it is cuda:0)."""

    def __init__(self, spec: WorkerSpec) -> None:
        # Before CUDA starts in this process, as in the pool's workers.
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        logging.basicConfig(level=spec.log_level)
        import torch

        from virnucpro.pool.worker import _resident_bytes, load_scorer

        torch.set_num_threads(spec.threads)  # scores must not depend on the node's core count
        device = "cuda:0" if spec.device == "cuda" else "cpu"
        before, started = _resident_bytes(), time.perf_counter()
        self.scorer = load_scorer(spec, device)
        self.spec = spec
        self.done = 0
        try:
            dim = self.scorer.models_for(spec.chunk_size).feature_dim
        except Exception:  # noqa: BLE001 - a stand-in scorer may lack it; failed shards then have none
            dim = None
        memory = (torch.cuda.memory_allocated() if device.startswith("cuda")
                  else max(0, _resident_bytes() - before))
        import ray

        self.info = {"worker": spec.worker_id, "device": device, "pid": os.getpid(),
                     "node": ray.util.get_node_ip_address(), "threads": spec.threads,
                     "load_seconds": round(time.perf_counter() - started, 3),
                     "memory_bytes": int(memory), "feature_dim": dim}

    def ready(self) -> dict:
        return self.info

    def score(self, task: ShardTask) -> ShardScores:
        result = self.scorer.score(task)
        self.done += 1
        if self.spec.cache_clear_interval and self.done % self.spec.cache_clear_interval == 0:
            self.scorer.clear_cache()
        return result


@cache
def actor_class() -> Any:
    """`ShardActor` as a Ray actor class, made once per process."""
    return require_ray().remote(ShardActor)


def check_ray_options(engine: str, ray_address: str | None, workers: int | None,
                      gpus_per_worker: float | None, devices: str) -> str | None:
    """What is wrong with the Ray options of a command line, if anything (for a usage error).
    Also fails early, before any input is read, when the extra is not installed."""
    import importlib.util

    if engine != "ray":
        if ray_address or workers is not None or gpus_per_worker is not None:
            return "--ray-address, --workers and --gpus-per-worker need --engine ray"
        return None
    if devices.strip().lower() != "auto":
        return ("--devices does not apply to --engine ray: the actors' devices come from the "
                "cluster (--workers, --gpus-per-worker)")
    if importlib.util.find_spec("ray") is None:
        raise VirNucProError(INSTALL_HINT)
    return None
