"""One worker process: owns one device and the models loaded on it, and scores shards.

Protocol over two one-way pipes (tasks in, messages out), so that a worker killed mid-send can
only break its own pipe, never a queue shared with the others:
  in:  ("task", ShardTask) | ("cancel", keys) | ("stop", None)
  out: ("ready", info) | ("fatal", text) | ("start", key) | ("result", key, ShardScores)
       | ("error", key, text)
A reader thread drains the task pipe, so the supervisor never blocks on a send while the worker
is busy sending a large result. The worker exits when told to stop or when its supervisor is
gone (whose pid it is given: `worker_main` watches it before any heavy import, so a supervisor
killed while the worker still imports torch or loads models leaves nothing behind). This module
imports nothing heavy at the top for that reason.

Test-only hook: the environment variable VIRNUCPRO_TEST_SCORER ("module:Class", e.g.
"virnucpro.standin:HashScorer" or "tests.fakes:SlowScorer") replaces the real scorer
(`ModelScorer`) with a stand-in taking the same `(spec, device)`. It is for tests and benchmarks,
never a user option, and it is read in one place, `test_scorer` below, when a scorer is loaded
(`load_scorer`, which every engine uses): spawned workers and daemon subprocesses inherit it
with the environment, and the Ray engine passes it on to its actors (ray_engine.py).
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from virnucpro.heap import pin_for_cpu_scoring

if TYPE_CHECKING:
    from virnucpro.scoring import ShardScores

DEFAULT_SCORER = "virnucpro.pool.worker:ModelScorer"
TEST_SCORER_ENV = "VIRNUCPRO_TEST_SCORER"  # tests and benchmarks only: see the module doc


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to start: its device and model set, threads, precision."""

    worker_id: int
    device: str  # as the supervisor sees it: "cpu" or "cuda:N"
    models: str
    chunk_size: int
    threads: int
    visible_gpu: str | None = None  # physical id for CUDA_VISIBLE_DEVICES
    cache_clear_interval: int = 50
    log_level: int = logging.WARNING
    precision: str = "float32"


@dataclass(frozen=True)
class ShardTask:
    """One shard of one input: `key` = (input key, shard number) identifies it everywhere.
    Its frames travel as three parallel lists of plain strings (no object per frame)."""

    key: tuple[str, int]
    frame_ids: list[str]
    nucleotides: list[str]  # what DNABERT-S reads
    proteins: list[str]  # what ESM-2 reads
    batch_tokens: int
    keep_features: bool
    chunk_size: int

    @property
    def n_frames(self) -> int:
        return len(self.frame_ids)


class ModelScorer:
    """The real scorer: a model set loaded on this worker's device."""

    def __init__(self, spec: WorkerSpec, device: str) -> None:
        from virnucpro.batch_budget import auto_batch_tokens
        from virnucpro.models.loaded import load_models
        from virnucpro.models.sets import resolve_model_set

        self.device = device
        self.spec = spec
        self.model_set = resolve_model_set(spec.models, fetch_missing=False, progress=False)
        models = load_models(self.model_set, spec.chunk_size, device, spec.precision)
        self._by_chunk = {spec.chunk_size: models}
        self._models_lock = threading.Lock()
        self.auto_budget = auto_batch_tokens(models)
        self.loaded_bytes = self._allocated()
        self._report: dict = {}
        if device.startswith("cuda"):  # the peak of scoring, not the load's transient copies
            import torch

            torch.cuda.reset_peak_memory_stats(device)

    def _allocated(self) -> int | None:
        if not self.device.startswith("cuda"):
            return None
        import torch

        return int(torch.cuda.memory_allocated(self.device))

    def budget(self, task: ShardTask) -> int:
        return task.batch_tokens or self.auto_budget.tokens

    def report(self, task: ShardTask) -> dict:
        """What run.json's engine section says of this worker: where it runs, in what
        precision, its weights' bytes, the budget of `task`'s batches and, on a GPU, the peak
        memory reserved since the models were loaded."""
        if not self._report:
            models = next(iter(self._by_chunk.values()))
            self._report = {"worker": self.spec.worker_id, "device": self.spec.device,
                            "precision": models.precision,
                            "weights_bytes": models.weights_bytes()}
            if self.loaded_bytes is not None:  # a GPU's: the weights and the CUDA context's
                self._report["allocated_after_load_bytes"] = self.loaded_bytes
        report = dict(self._report, batch_tokens=self.budget(task))
        if not task.batch_tokens:
            report["batch_tokens_auto"] = self.auto_budget.reason
        if self.device.startswith("cuda"):
            import torch

            report["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(self.device))
        return report

    @property
    def feature_dim(self) -> int:
        return next(iter(self._by_chunk.values())).feature_dim

    @property
    def load_seconds(self) -> float:
        return next(iter(self._by_chunk.values())).load_seconds

    def models_for(self, chunk_size: int):
        """Both chunk sizes share DNABERT-S and ESM-2; only the small classifier differs.
        Thread-safe: a GPU pool worker prepares shards on one thread while another scores."""
        with self._models_lock:
            return self._models_for(chunk_size)

    def _models_for(self, chunk_size: int):
        if chunk_size not in self._by_chunk:
            from virnucpro.models.classifier_io import load_classifier

            base = next(iter(self._by_chunk.values()))
            classifier = load_classifier(self.model_set.classifier_path(chunk_size),
                                         input_dim=base.feature_dim, device=self.device)
            self._by_chunk[chunk_size] = replace(base, chunk_size=chunk_size, classifier=classifier)
        return self._by_chunk[chunk_size]

    def embedder(self, models):
        from virnucpro.scoring import Embedder

        return Embedder(models)

    def prepare(self, task: ShardTask):
        """The shard's host-side work (tokens, batches), for a thread other than the one that
        scores (called through `prepare_ahead`)."""
        from virnucpro.scoring import prepare_shard

        models = self.models_for(task.chunk_size)
        return prepare_shard(task.nucleotides, task.proteins, models, self.budget(task),
                             self.embedder(models))

    def score(self, task: ShardTask, stop: Callable[[], bool] | None = None,
              prepared=None) -> ShardScores:
        """Score a shard; `stop` is asked between model batches (ShardCancelled when True);
        `prepared`: its `prepare` made ahead."""
        from virnucpro.scoring import score_frames

        models = self.models_for(task.chunk_size)
        scores = score_frames(task.nucleotides, task.proteins, models, self.budget(task),
                              task.keep_features, embedder=self.embedder(models), stop=stop,
                              prepared=prepared)
        return replace(scores, worker=self.report(task))

    def clear_cache(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _load_class(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def test_scorer() -> str | None:
    """The stand-in scorer class named by $VIRNUCPRO_TEST_SCORER (tests only), if any: the one
    place the variable is read (see the module doc)."""
    return os.environ.get(TEST_SCORER_ENV) or None


def load_scorer(spec: WorkerSpec, device: str):
    """The scorer with the spec's models loaded on `device` (`ModelScorer`, or the test
    stand-in of $VIRNUCPRO_TEST_SCORER); on a CPU, malloc is then pinned for scoring
    (virnucpro.heap). Every engine loads its scorers through here."""
    scorer = _load_class(test_scorer() or DEFAULT_SCORER)(spec, device)
    if device == "cpu":
        pin_for_cpu_scoring()
    return scorer


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _reader(conn: Any, inbox: queue.Queue, cancelled: set) -> None:
    """Move tasks from the pipe to the inbox and note cancelled shard keys; "stop" ends the
    worker after its current shard. It only reads, so the supervisor never blocks on a send
    while the worker is busy. A closed pipe means the supervisor is gone (killed, even with
    SIGKILL): the worker exits at once, mid-shard, so that it does not hold a device's memory
    (or a CPU) for a result nobody will read."""
    try:
        while True:
            kind, payload = conn.recv()
            if kind == "stop":
                break
            if kind == "cancel":
                cancelled.update(payload)
                continue
            inbox.put(payload)
    except (EOFError, OSError):
        os._exit(0)
    inbox.put(None)


def prepare_ahead(prepare: Callable[[ShardTask], Any], task: ShardTask) -> Any:
    """A scorer's `prepare(task)`, made ahead on a thread other than the scoring one; None
    when it fails: the task is then scored unprepared, and `score` meets the error where it is
    reported. Never raises (the engines' and the workers' one way to prepare)."""
    try:
        return prepare(task)
    except Exception as exc:  # noqa: BLE001 - raised again, in its place, by score
        logging.getLogger(__name__).debug("shard %s not prepared ahead: %s", task.key, exc)
        return None


def _preparer(received: queue.Queue, inbox: queue.Queue, cancelled: set,
              prepare: Callable[[ShardTask], Any] | None) -> None:
    """Pass tasks on to the scoring thread, each with its host-side work done (`prepare`:
    tokens and batches, while the scoring thread keeps the device busy with the shard before;
    None on a CPU, whose cores the scoring thread uses). Never raises (`prepare_ahead`)."""
    while (task := received.get()) is not None:
        ready = prepare is not None and task.key not in cancelled
        inbox.put((task, prepare_ahead(prepare, task) if ready else None))
    inbox.put(None)


PARENT_CHECK_S = 0.5


def _watch_parent(parent: int) -> None:
    """Exit as soon as the supervisor is gone (this process is then re-parented), even while
    the models load: a SIGKILLed supervisor must not leave a worker holding a GPU. `parent`
    comes from the supervisor: read here, it would already be the new parent when the
    supervisor died while this process was still starting."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _send(out: Any, message: tuple) -> None:
    """Send to the supervisor; a broken pipe means it is gone, and the worker leaves quietly
    (its watch would end it within PARENT_CHECK_S anyway: no traceback for that race)."""
    try:
        out.send(message)
    except (OSError, EOFError):
        os._exit(0)


def worker_main(spec: WorkerSpec, tasks: Any, out: Any, parent: int | None = None) -> None:
    """Entry point of a spawned worker process; `parent`: the supervisor's pid."""
    threading.Thread(target=_watch_parent, args=(parent or os.getppid(),), daemon=True,
                     name="virnucpro-parent-watch").start()
    # Ctrl-C goes to the whole process group; the supervisor decides, workers just stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Before CUDA starts in this process: pin the GPU and let the allocator grow segments.
    device = spec.device
    if spec.visible_gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.visible_gpu
        device = "cuda:0"
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    logging.basicConfig(level=spec.log_level, format=f"%(levelname)s worker {spec.worker_id}: %(message)s")
    try:
        import torch

        torch.set_num_threads(spec.threads)
        before = _resident_bytes()
        started = time.perf_counter()
        scorer = load_scorer(spec, device)
        if device.startswith("cuda"):
            memory = int(torch.cuda.memory_allocated())
        else:
            memory = max(0, _resident_bytes() - before)
        ready = {"worker": spec.worker_id, "device": spec.device, "pid": os.getpid(),
                 "load_seconds": round(time.perf_counter() - started, 3),
                 "memory_bytes": memory, "threads": spec.threads,
                 "feature_dim": getattr(scorer, "feature_dim", None)}
    except BaseException as exc:  # noqa: BLE001 - reported to the supervisor, which decides
        _send(out, ("fatal", f"{type(exc).__name__}: {exc}"))
        return
    _send(out, ("ready", ready))
    from virnucpro.scoring import ShardCancelled

    received: queue.Queue = queue.Queue()  # tasks as read from the pipe
    inbox: queue.Queue = queue.Queue()  # (task, its prepared batches or None), to score
    cancelled: set = set()  # shard keys whose job was cancelled (the reader adds them)
    threading.Thread(target=_reader, args=(tasks, received, cancelled), daemon=True).start()
    prepare = getattr(scorer, "prepare", None) if device.startswith("cuda") else None
    threading.Thread(target=_preparer, args=(received, inbox, cancelled, prepare),
                     daemon=True, name="virnucpro-prepare").start()
    done = 0
    while (item := inbox.get()) is not None:
        task, prepared = item
        key = task.key
        if key in cancelled:
            cancelled.discard(key)
            _send(out, ("cancelled", key, None))
            continue
        _send(out, ("start", key))
        try:
            result = scorer.score(task, stop=lambda key=key: key in cancelled, prepared=prepared)
        except ShardCancelled:
            cancelled.discard(key)
            _send(out, ("cancelled", key, None))
            continue
        except Exception:  # noqa: BLE001 - a scoring bug is reported, the worker lives on
            _send(out, ("error", key, traceback.format_exc(limit=8)))
            continue
        _send(out, ("result", key, result))
        done += 1
        if spec.cache_clear_interval and done % spec.cache_clear_interval == 0:
            scorer.clear_cache()
