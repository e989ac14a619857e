"""`ShardFeed`: one input, from its first record to its tables, through any engine.

The feed reads and plans the input in blocks (plan.py), cuts the kept frames into shards of
`shard_frames` in input order (from the input alone, never from the engine), and hands out
as tasks the shards not yet on disk. Results come back through `done`, in any order: each is
written to its shard file at once, then merged in input order into the tables (TableWriter),
so that nothing reads or plans the input a second time. A shard already on disk (a resumed
run) is read back when its turn comes. Between records the staged tables are checkpointed
with the point a resumed run restarts from: the record that starts the shard holding the
first frame not yet in the tables, and that frame's number.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from virnucpro.batch_budget import AUTO_BUDGET, CPU_BUDGET
from virnucpro.config import PredictConfig
from virnucpro.errors import InputChangedError
from virnucpro.input_watch import Stamp, changes
from virnucpro.plan import PlanBlock, iter_blocks
from virnucpro.run.inputs import ValidatedInput
from virnucpro.scoring import ShardScores
from virnucpro.seqfile import read_fasta
from virnucpro.shards import ShardStore
from virnucpro.tables import TableWriter

if TYPE_CHECKING:
    from virnucpro.pool.worker import ShardTask

log = logging.getLogger(__name__)

CHECKPOINT_S = 1.0  # at most one checkpoint (7 fsyncs) a second; shard files are synced each


def default_batch_tokens(devices: list[str]) -> int:
    """The token budget of a model batch when none is given (`--batch-tokens auto`): 4096 on
    CPUs (large batches only add padding work there); on GPUs 0, which leaves it to each
    worker, from the memory its device has free once the models are loaded
    (virnucpro.batch_budget; the pick is in the run log and run.json)."""
    return CPU_BUDGET if all(d == "cpu" for d in devices) else AUTO_BUDGET


@dataclass(frozen=True)
class Shard:
    """The frames of one shard, cut: their ids and what the two models read."""

    number: int
    frame_ids: list[str]
    nucleotides: list[str]
    proteins: list[str]


class ShardCutter:
    """Cuts planned blocks' frames into shards of `size`, numbered from `first` (whose first
    frame is the input's frame `first * size`; earlier frames are passed over)."""

    def __init__(self, size: int, first: int = 0) -> None:
        self.size = size
        self.next = first
        self._skip_before = first * size
        self._parts: list[tuple[PlanBlock, int, int]] = []
        self._n = 0

    def take(self, block: PlanBlock, on_start: Callable[[int, int], None] = lambda k, j: None
             ) -> list[Shard]:
        """The shards the block completes; `on_start(k, j)` when shard k starts at its frame j."""
        out = []
        j = max(0, self._skip_before - block.frame0)
        while j < block.n_frames:
            if not self._n:
                on_start(self.next, j)
            take = min(self.size - self._n, block.n_frames - j)
            self._parts.append((block, j, j + take))
            self._n += take
            j += take
            if self._n == self.size:
                out.append(self._cut())
        return out

    def rest(self) -> Shard | None:
        """The last, short shard at the end of the input."""
        return self._cut() if self._n else None

    def _cut(self) -> Shard:
        ids: list[str] = []
        nts: list[str] = []
        prots: list[str] = []
        for block, a, b in self._parts:
            ids += block.frame_ids[a:b]
            nts += block.nucleotides[a:b]
            prots += block.proteins[a:b]
            if b == block.n_frames:  # every frame of it is in a shard: the shards hold them now
                block.nucleotides = block.proteins = None
        shard = Shard(self.next, ids, nts, prots)
        self.next += 1
        self._parts, self._n = [], 0
        return shard


@dataclass
class _Pending:
    """A planned block whose rows are not all written: its scores as shards come in."""

    block: PlanBlock
    probs: np.ndarray  # [frames, 2]
    status: np.ndarray  # [frames]
    first_frame: np.ndarray  # per piece: number of its record's first frame in the input
    written: int = 0  # pieces written (or, in a resumed run, already in the tables)


class ShardFeed:
    """The shard tasks of one input that are not on disk yet; see the module doc. A caller
    iterates it (into an engine), passes each result to `done`, and once `complete`, calls
    `writer.close()` and publishes; `abandon` leaves the staged files for a resume.
    `input_change` is set (not raised) when the input is seen to differ from its index: the
    caller then publishes nothing. `key`: the first part of its tasks' keys, unique to this
    pass (made here when not given)."""

    def __init__(self, item: ValidatedInput, config: PredictConfig, batch_tokens: int,
                 progress: Callable[[int, int, int], None] = lambda *counts: None,
                 key: str | None = None) -> None:
        self.item = item
        self.config = config
        self.batch_tokens = batch_tokens
        self.progress = progress
        self.size = config.shard_frames
        self.store = ShardStore(item.layout.shards)
        self.writer = TableWriter(item.layout, threshold=config.threshold,
                                  save_embeddings=config.save_embeddings,
                                  shard_frames=config.shard_frames, settings=config.result_key(),
                                  resume=True, regions=config.regions,
                                  fastq=item.index.format == "fastq")
        start = self.writer.position or {"record": 0, "frame": 0, "origin_record": 0,
                                         "origin_frame": 0}
        # What a resumed pass reuses, in words (a job's log says it): "" for a fresh one.
        self.resume_note = ""
        if self.writer.position:
            self.resume_note = (f"resuming {item.name} from shard {start['frame'] // self.size + 1}"
                                f" (sequence {start['record'] + 1}): "
                                f"{self.writer.counts['chunks']} chunks already written")
            log.info("%s: the staged tables go on from record %d (frame %d)", item.source,
                     start["record"], start["frame"])
        elif self.writer.restart_reason:
            self.resume_note = (f"resuming {item.name}: the tables are rebuilt from the finished "
                                f"shards ({self.writer.restart_reason})")
            log.warning("%s: the staged tables are rebuilt from the finished shards: %s",
                        item.source, self.writer.restart_reason)
        self._write_from = start["record"]  # records before it are in the staged tables
        self._cutter = ShardCutter(self.size, start["frame"] // self.size)
        self._merge_shard = self._cutter.next
        self._merged = self._cutter.next * self.size  # frames merged, counted from the input's first
        # A change of the input is kept, not raised, so that the last block is still planned
        # and the feed completes: its caller refuses to publish (InputRun.finish). Raising out
        # of a daemon's task stream would fail every job sharing it.
        self.input_change: InputChangedError | None = None
        records = read_fasta(item.index, start=start["origin_record"],
                             on_change=self._input_changed)
        self._blocks = iter_blocks(records, config.chunk_size, config.min_length,
                                   frame0=start["origin_frame"])
        self._pending: deque[_Pending] = deque()
        self._origins: dict[int, tuple[int, int]] = {}  # shard -> (record, its first frame)
        self._ready: dict[int, ShardScores] = {}
        self._carry = 0  # first frame of a record continued into the next block
        self._restart: dict | None = None  # the restart point after the last whole record
        self._checkpointed = float("-inf")
        # Keys unique to this pass: a pool kept across inputs or jobs may still deliver a late
        # result of an abandoned pass, which must never be taken for one of these shards.
        self.key = key or f"{item.name}@{uuid.uuid4().hex[:8]}"
        self.scored = 0
        self.last_result_at: float | None = None  # perf_counter() when a scored shard last came
        self.exhausted = False

    # -- handing out -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[ShardTask]:
        for block in self._blocks:
            self._watch_input()
            pending = self._add(block)

            def started(k: int, j: int, pending: _Pending = pending) -> None:
                self._origins[k] = self._origin(pending, j)

            for shard in self._cutter.take(block, started):
                yield from self._hand_out(shard)
            self._write_whole_records()  # records without frames may be writable now
        if (shard := self._cutter.rest()) is not None:
            yield from self._hand_out(shard)
        self.exhausted = True
        self._merge()

    def _add(self, block: PlanBlock) -> _Pending:
        # Only a block's first piece can continue a record (a long one, from the block before).
        first = block.frame0 + block.piece_frames[:-1]
        if len(first) and block.piece_first_chunk[0]:
            first[0] = self._carry
        if len(first):
            self._carry = int(first[-1])
        pending = _Pending(block, np.zeros((block.n_frames, 2), dtype=np.float32),
                           np.zeros(block.n_frames, dtype=np.uint8), first)
        self._pending.append(pending)
        return pending

    def _origin(self, pending: _Pending, j: int) -> tuple[int, int]:
        """The record holding frame j of a block, and the number of its first frame."""
        p = int(np.searchsorted(pending.block.piece_frames, j, side="right")) - 1
        return pending.block.records[p].index, int(pending.first_frame[p])

    def _hand_out(self, shard: Shard) -> Iterator[ShardTask]:
        from virnucpro.pool.worker import ShardTask

        k = shard.number
        if self.store.is_done(k, shard.frame_ids):
            self._ready[k] = self.store.read(k, len(shard.frame_ids))
            self._merge()
            return
        yield ShardTask(key=(self.key, k), frame_ids=shard.frame_ids,
                        nucleotides=shard.nucleotides, proteins=shard.proteins,
                        batch_tokens=self.batch_tokens, keep_features=self.config.save_embeddings,
                        chunk_size=self.config.chunk_size)

    def _input_changed(self, error: InputChangedError) -> None:
        self.input_change = self.input_change or error

    def check_input(self) -> InputChangedError | None:
        """Whether the input changed since it was validated (read to its end, or stat now):
        once the last shard is in, a change after the input was read counts too, so that no
        run.json claims a file that is no longer there as it was."""
        self._watch_input()
        return self.input_change

    def _watch_input(self) -> None:
        """A stat of the input per block (microseconds): an append or a rewrite is seen while
        the run goes on, not only once the input is read to its end."""
        index = self.item.index
        if self.input_change is not None:
            return
        try:
            now = Stamp.of(index.path)
        except OSError:
            return  # removed or renamed: the open file is still read, and hashed, to its end
        if what := changes(Stamp(index.size, index.mtime_ns), now):
            self.input_change = InputChangedError(index.path, what)

    # -- results ---------------------------------------------------------------------------

    def done(self, task: ShardTask, scores: ShardScores) -> None:
        """Record one scored shard (on disk, synced, before it counts), then merge what can be."""
        self.store.write(task.key[1], task.frame_ids, scores)
        self.last_result_at = time.perf_counter()
        self.scored += 1
        self._ready[task.key[1]] = scores
        self._merge()

    def _merge(self) -> None:
        """Shards in order into the pending blocks' columns, then the whole pieces into the
        tables."""
        while self._merge_shard in self._ready:
            k = self._merge_shard
            scores = self._ready.pop(k)
            if self.config.save_embeddings:
                self.writer.add_embeddings(k, scores.features)
            probs, status = scores.probs, scores.status_codes()
            lo, hi = self._merged, self._merged + len(probs)
            for pending in self._pending:
                a, n = pending.block.frame0, pending.block.n_frames
                if a >= hi:
                    break
                if a + n <= lo:
                    continue
                x, y = max(lo, a), min(hi, a + n)
                pending.probs[x - a:y - a] = probs[x - lo:y - lo]
                pending.status[x - a:y - a] = status[x - lo:y - lo]
            self._merged = hi
            self._merge_shard += 1
        self._write_whole_records()

    def _write_whole_records(self) -> None:
        while self._pending:
            pending = self._pending[0]
            block = pending.block
            # Piece p is whole when its last frame is merged (a piece without frames: when
            # everything before it is).
            p1 = int(np.searchsorted(block.piece_frames[1:], self._merged - block.frame0,
                                     side="right"))
            p0 = pending.written
            if p1 > p0:
                p = p0
                while p < p1 and block.records[p].index < self._write_from:
                    p += 1  # a resumed run: already in the staged tables
                if p < p1:
                    fa, fb = block.piece_frames[p], block.piece_frames[p1]
                    self.writer.write(block, p, p1, pending.probs[fa:fb], pending.status[fa:fb])
                    if self.writer.between_records:
                        self._restart_at(block.records[p1 - 1].index + 1,
                                         block.frame0 + int(block.piece_frames[p1]))
                    else:  # the staged files end inside a long record: no restart point
                        self._restart = None
                pending.written = p1
            if pending.written < len(block.records):
                break
            self._pending.popleft()
        if self._restart is not None and time.monotonic() - self._checkpointed >= CHECKPOINT_S:
            self.writer.checkpoint(self._restart)
            self._checkpointed = time.monotonic()
            self._restart = None
        # Sequences and chunks in the tables, and the shards scored by this pass (not read
        # from disk): what those count before the first is where this run's speed starts.
        self.progress(self.writer.counts["sequences"], self.writer.counts["chunks"], self.scored)

    def _restart_at(self, record: int, frame: int) -> None:
        """Where a resumed run restarts if the tables end before `record` (whose first
        frame is `frame`): from the record that starts the shard holding `frame`."""
        k = frame // self.size
        origin = (record, frame) if frame % self.size == 0 else self._origins[k]
        for old in [s for s in self._origins if s < k]:
            del self._origins[old]
        self._restart = {"record": record, "frame": frame, "origin_record": origin[0],
                         "origin_frame": origin[1]}

    # -- the end ---------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return (self.exhausted and not self._pending and not self._ready
                and self._merge_shard == self._cutter.next)

    def abandon(self) -> None:
        """Stop here: the staged tables stay, cut back to the last checkpoint on resume."""
        self.writer.abandon()
