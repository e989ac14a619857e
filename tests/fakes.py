"""Stand-ins for what a laptop cannot have: a worker dying at an exact moment, a GPU with
little memory. They wrap the real scorer (real tiny models), so results stay comparable.

Workers are spawned processes: they find these classes by import path ("tests.fakes:Name")
and their settings in environment variables, which spawned children inherit.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from virnucpro.pool.worker import ModelScorer, ShardTask
from virnucpro.standin import HashScorer


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DieOnceScorer(ModelScorer):
    """Kills its own process the first time any worker scores shard $FAKE_DIE_SHARD.
    A marker file in $FAKE_STATE_DIR makes "first" hold across processes."""

    def score(self, task: ShardTask, stop=None, prepared=None):
        marker = Path(os.environ["FAKE_STATE_DIR"]) / f"died-{task.key[0]}-{task.key[1]}"
        if task.key[1] == int(os.environ["FAKE_DIE_SHARD"]) and not marker.exists():
            marker.write_text(str(os.getpid()))
            _die()
        return super().score(task, stop, prepared)


class PoisonScorer(ModelScorer):
    """Kills its process whenever a shard holds a frame of sequence $FAKE_POISON_ID."""

    def score(self, task: ShardTask, stop=None, prepared=None):
        poison = os.environ["FAKE_POISON_ID"] + "_chunk_"
        if any(fid.startswith(poison) for fid in task.frame_ids):
            _die()
        return super().score(task, stop, prepared)


class SlowScorer(ModelScorer):
    """Takes $FAKE_DELAY seconds more per shard, so a test can act while work is running."""

    def score(self, task: ShardTask, stop=None, prepared=None):
        time.sleep(float(os.environ.get("FAKE_DELAY", "0.2")))
        return super().score(task, stop, prepared)


class SmallMemoryScorer(ModelScorer):
    """As if on a device where a batch over $FAKE_TOKEN_LIMIT padded tokens runs out of
    memory (the real code then halves that batch's budget)."""

    def embedder(self, models):
        from virnucpro.scoring import Embedder

        limit = int(os.environ["FAKE_TOKEN_LIMIT"])

        class Small(Embedder):
            def _check(self, width: int, n: int) -> None:
                import torch

                if width * n > limit:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

            def dna(self, token_ids, prepared=None):
                self._check(max(map(len, token_ids)), len(token_ids))
                return super().dna(token_ids, prepared)

            def protein(self, proteins, prepared=None):
                self._check(max(map(len, proteins)) + 2, len(proteins))
                return super().protein(proteins, prepared)

        return Small(models)


class BatchSleepScorer(ModelScorer):
    """Sleeps $FAKE_BATCH_DELAY seconds in every model batch: a shard of many batches takes
    long, so that a cancel can be seen to stop it between two batches."""

    def embedder(self, models):
        from virnucpro.scoring import Embedder

        delay = float(os.environ.get("FAKE_BATCH_DELAY", "0.2"))

        class Sleepy(Embedder):
            def dna(self, token_ids, prepared=None):
                time.sleep(delay)
                return super().dna(token_ids, prepared)

            def protein(self, proteins, prepared=None):
                time.sleep(delay)
                return super().protein(proteins, prepared)

        return Sleepy(models)


class HangingScorer(ModelScorer):
    """Never finishes loading (a model load stuck on a slow file system)."""

    def __init__(self, spec, device):
        time.sleep(3600)


class SlowLoadScorer(ModelScorer):
    """Takes $FAKE_LOAD_DELAY seconds more to load (the published set takes tens of seconds)."""

    def __init__(self, spec, device):
        time.sleep(float(os.environ.get("FAKE_LOAD_DELAY", "5")))
        super().__init__(spec, device)


class GateScorer(HashScorer):
    """The stand-in scorer, which waits at shard $FAKE_GATE_SHARD until the file
    $FAKE_STATE_DIR/go exists: a test sees the job with exactly the shards before on disk."""

    def score(self, task: ShardTask, stop=None, prepared=None):
        if task.key[1] == int(os.environ["FAKE_GATE_SHARD"]):
            gate = Path(os.environ["FAKE_STATE_DIR"]) / "go"
            deadline = time.monotonic() + 120
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().score(task, stop, prepared)


class BrokenScorer(ModelScorer):
    """Fails to load, as a corrupt model file would."""

    def __init__(self, spec, device):
        raise RuntimeError("simulated: the checkpoint is truncated")


class StallingScorer(HashScorer):
    """The stand-in scorer, which stops at shard $FAKE_STALL_SHARD (leaving the marker file
    $FAKE_STATE_DIR/stalled) until its process is killed or its parent dies."""

    def score(self, task: ShardTask, stop=None, prepared=None):
        if task.key[1] == int(os.environ["FAKE_STALL_SHARD"]):
            parent = os.getppid()
            (Path(os.environ["FAKE_STATE_DIR"]) / "stalled").write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while os.getppid() == parent and time.monotonic() < deadline:
                time.sleep(0.05)
            os._exit(1)
        return super().score(task, stop, prepared)
