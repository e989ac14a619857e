"""Shard files: atomic, checked against their frames, failed ones scored again on resume."""

import numpy as np

from virnucpro.scoring import FAILED_OOM, ShardScores
from virnucpro.shards import ShardStore


def test_a_written_shard_is_done_only_for_the_same_frames(tmp_path):
    store = ShardStore(tmp_path / "s")
    probs = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    store.write(0, ["a", "b"], ShardScores(probs))
    assert store.is_done(0, ["a", "b"])
    assert not store.is_done(0, ["a", "c"]) and not store.is_done(1, ["a", "b"])
    back = store.read(0, 2)
    assert np.array_equal(back.probs, probs) and (back.status_codes() == 0).all()
    assert not list((tmp_path / "s").glob("*.tmp"))


def test_a_shard_with_failed_frames_is_scored_again_on_resume(tmp_path):
    store = ShardStore(tmp_path / "s")
    scores = ShardScores(np.full((2, 2), np.nan, np.float32), status=np.array([0, FAILED_OOM], np.uint8))
    store.write(0, ["a", "b"], scores)
    assert not store.is_done(0, ["a", "b"])
    assert list(store.read(0, 2).status_codes()) == [0, FAILED_OOM]


def test_a_torn_shard_file_is_not_done(tmp_path):
    store = ShardStore(tmp_path / "s")
    store.write(0, ["a"], ShardScores(np.zeros((1, 2), np.float32)))
    data = store.path(0).read_bytes()
    store.path(0).write_bytes(data[: len(data) // 2])
    assert not store.is_done(0, ["a"])
