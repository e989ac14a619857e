"""The benchmarks' random ESM-2 (drawn on threads, for the GPU check's 3B set) is the file the
tiny writer makes: the same names, keys, shapes, dtypes and cfg, read by the same loader, with
weights of the same scale; and the same bytes whatever the number of threads.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

SHAPE = {"num_layers": 2, "embed_dim": 64, "attention_heads": 4}


def _read(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_the_threaded_esm_writer_writes_the_tiny_writers_format(tmp_path):
    from benchmarks.random_set import write_random_esm
    from virnucpro.models.esm_io import load_esm, regression_path
    from virnucpro.models.tiny.esm import write_tiny_esm

    ours = write_random_esm(tmp_path / "ours", 0, dtype=torch.float16, threads=3, **SHAPE)
    theirs = write_tiny_esm(tmp_path / "theirs", 0, dtype=torch.float16, **SHAPE)
    assert ours.name == theirs.name
    a, b = _read(ours), _read(theirs)
    assert vars(a["cfg"]["model"]) == vars(b["cfg"]["model"])
    assert list(a["model"]) == list(b["model"])
    for key, value in b["model"].items():
        assert a["model"][key].shape == value.shape and a["model"][key].dtype == value.dtype, key
        if value.numel() > 100:  # the same recipe: the spread of each tensor within 20 %
            assert float(a["model"][key].float().std()) == pytest.approx(
                float(value.float().std()), rel=0.2), key
    ra, rb = _read(regression_path(ours))["model"], _read(regression_path(theirs))["model"]
    assert {k: v.shape for k, v in ra.items()} == {k: v.shape for k, v in rb.items()}
    assert load_esm(ours).embed_dim == SHAPE["embed_dim"]


def test_the_threaded_draw_does_not_depend_on_the_number_of_threads(tmp_path):
    from benchmarks.random_set import write_random_esm

    one = _read(write_random_esm(tmp_path / "one", 5, threads=1, **SHAPE))["model"]
    four = _read(write_random_esm(tmp_path / "four", 5, threads=4, **SHAPE))["model"]
    assert all(torch.equal(one[k], four[k]) for k in one)
    other_seed = _read(write_random_esm(tmp_path / "seed", 6, threads=2, **SHAPE))["model"]
    key = "encoder.sentence_encoder.layers.0.fc1.weight"
    assert not torch.equal(one[key], other_seed[key])
