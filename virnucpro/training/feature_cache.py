"""Training features: the kept frames of labelled inputs, embedded by a base set's two big
models through the engines `predict` uses, cached and resumable.

Which frames: the inputs are planned exactly as for prediction (`virnucpro.plan`: the chunk
layout and the six frames, a frame with a stop codon never kept); a chunk holding an ambiguity
code (`N R Y M K S W H B V D`) is left out, as the reference's training data leaves it out; and,
for an input under the CDS filter, a frame is kept only when its protein is a substring of one
of its record's annotated CDS translations. The frames are filtered before any model runs.

The cache: one folder per key (the inputs' SHA-256 and labels, the base set's files, the chunk
size, the filter of each input), holding each input's shards as the pipeline's shard files
(`virnucpro.shards`: written whole or not at all, each with a digest of its frame ids). A
second training on the same key embeds nothing and loads no model; a killed one scores only
the shards not on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from virnucpro.errors import InputError
from virnucpro.plan import iter_blocks
from virnucpro.seqfile import read_fasta, scan_fasta
from virnucpro.shards import DEFAULT_SHARD_FRAMES, ShardStore

log = logging.getLogger(__name__)

VIRAL, OTHERS = 1, 0
LABEL_NAMES = {VIRAL: "viral", OTHERS: "others"}
KEY_FORMAT = 1  # of the cache's key and layout; a change makes new folders


@dataclass(frozen=True)
class TrainingInput:
    """One labelled input, as the planner reads it."""

    source: str  # as given
    label: int
    kind: str  # genbank, fasta or fastq
    sha256: str  # of the file as given
    fasta: Path  # the file itself, or the FASTA made from a GenBank file
    cds: Path | None  # the CDS sidecar of a GenBank file
    cds_filter: bool

    def key(self) -> dict:
        return {"sha256": self.sha256, "label": self.label, "cds_filter": self.cds_filter}


@dataclass(frozen=True)
class Frame:
    record_id: str
    frame_id: str
    nucleotide: str
    protein: str


@dataclass
class FeatureTable:
    """Every kept frame's features, with its record and label, in input order."""

    features: np.ndarray  # float32 [frames, dim]
    labels: np.ndarray  # int64 [frames]
    records: np.ndarray  # object [frames]: the record id of each frame
    stats: dict  # per input: shards reused and scored, frames, chunks dropped


def cache_key(inputs: list[TrainingInput], models: dict, chunk_size: int) -> str:
    """The key of a feature cache: what the features depend on, nothing else."""
    data = {"format": KEY_FORMAT, "inputs": [i.key() for i in inputs], "models": models,
            "chunk_size": chunk_size}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def kept_frames(item: TrainingInput, chunk_size: int, counts: dict) -> Iterator[Frame]:
    """The frames of one input that training keeps, in input order; `counts` gathers what
    was left out and why."""
    from virnucpro.training.cds import CdsIndex, chunk_is_ambiguous

    index = CdsIndex(item.cds, source=item.source) if item.cds_filter else None
    for block in iter_blocks(read_fasta(scan_fasta(item.fasta)), chunk_size):
        piece_of_chunk = np.repeat(np.arange(len(block.records)), np.diff(block.piece_chunks))
        for c in range(len(block.chunk_ids)):
            record = block.records[int(piece_of_chunk[c])]
            f0, f1 = int(block.chunk_frames[c]), int(block.chunk_frames[c + 1])
            counts["chunks"] += 1
            start, end = int(block.chunk_start[c]), int(block.chunk_end[c])
            if chunk_is_ambiguous(record.seq[start:end]):
                counts["chunks_ambiguous"] += 1
                counts["frames_ambiguous"] += f1 - f0
                continue
            cds = index.for_record(record.id) if index is not None else None
            for f in range(f0, f1):
                protein = block.proteins[f]
                if cds is not None and not cds.contains(protein):
                    counts["frames_not_in_cds"] += 1
                    continue
                counts["frames"] += 1
                yield Frame(record.id, block.frame_ids[f], block.nucleotides[f], protein)


def _shards(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    shard: list[Frame] = []
    for frame in frames:
        shard.append(frame)
        if len(shard) == size:
            yield shard
            shard = []
    if shard:
        yield shard


def _new_counts() -> dict:
    return {"chunks": 0, "chunks_ambiguous": 0, "frames": 0, "frames_ambiguous": 0,
            "frames_not_in_cds": 0, "shards": 0, "shards_reused": 0, "shards_scored": 0}


def extract(inputs: list[TrainingInput], folder: Path, chunk_size: int,
            make_engine: Callable[[], object], *, batch_tokens: int,
            shard_frames: int = DEFAULT_SHARD_FRAMES,
            progress: Callable[[int, int], None] | None = None) -> FeatureTable:
    """Embed what is not in `folder` yet and read every input's features back.

    `make_engine()` is called only when a shard is missing (a cached key loads no model);
    the engine is closed at the end. Shards are numbered per input, as in `predict`."""
    from virnucpro.pool.worker import ShardTask

    stats: list[dict] = []
    pending: list[tuple[int, int]] = []  # (input, shard) not on disk
    for i, item in enumerate(inputs):
        counts = _new_counts()
        store = ShardStore(folder / f"input-{i}")
        for k, shard in enumerate(_shards(kept_frames(item, chunk_size, counts), shard_frames)):
            counts["shards"] += 1
            if store.is_done(k, [f.frame_id for f in shard]):
                counts["shards_reused"] += 1
            else:
                pending.append((i, k))
        if not counts["frames"]:
            raise InputError("no frame is left for training (every chunk ambiguous, or no frame "
                             "inside an annotated CDS)", path=item.source)
        stats.append(counts)

    if pending:
        wanted = set(pending)

        def tasks() -> Iterator[ShardTask]:
            for i, item in enumerate(inputs):
                for k, shard in enumerate(_shards(kept_frames(item, chunk_size, _new_counts()),
                                                  shard_frames)):
                    if (i, k) in wanted:
                        yield ShardTask(key=(f"train-{i}", k),
                                        frame_ids=[f.frame_id for f in shard],
                                        nucleotides=[f.nucleotide for f in shard],
                                        proteins=[f.protein for f in shard],
                                        batch_tokens=batch_tokens, keep_features=True,
                                        chunk_size=chunk_size)

        engine = make_engine()
        done = 0
        try:
            for task, scores in engine.map(tasks()):
                i, k = int(task.key[0].split("-")[1]), task.key[1]
                if scores.features is None or np.count_nonzero(scores.status_codes()):
                    raise InputError(f"shard {k + 1} could not be embedded (failed frames); run "
                                     "again to retry it", path=inputs[i].source)
                ShardStore(folder / f"input-{i}").write(k, task.frame_ids, scores)
                stats[i]["shards_scored"] += 1
                done += 1
                if progress is not None:
                    progress(done, len(pending))
        finally:
            engine.close()
    return _read_back(inputs, folder, chunk_size, shard_frames, stats)


def _read_back(inputs: list[TrainingInput], folder: Path, chunk_size: int, shard_frames: int,
               stats: list[dict]) -> FeatureTable:
    parts, labels, records = [], [], []
    for i, item in enumerate(inputs):
        store = ShardStore(folder / f"input-{i}")
        for k, shard in enumerate(_shards(kept_frames(item, chunk_size, _new_counts()),
                                          shard_frames)):
            scores = store.read(k, len(shard))
            if scores.features is None:
                raise InputError(f"the cached shard {store.path(k)} holds no features",
                                 path=item.source)
            parts.append(scores.features.astype(np.float32, copy=False))
            labels.append(np.full(len(shard), item.label, dtype=np.int64))
            records.extend(f.record_id for f in shard)
    return FeatureTable(features=np.concatenate(parts), labels=np.concatenate(labels),
                        records=np.array(records, dtype=object),
                        stats={inputs[i].source: s for i, s in enumerate(stats)})
