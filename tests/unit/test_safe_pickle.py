"""The restricted checkpoint reader (virnucpro.models.safe_pickle) and its three users."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from virnucpro.errors import ModelError
from virnucpro.models import safe_pickle
from virnucpro.models.dnabert_io import BIN_FILE, load_dnabert
from virnucpro.models.esm_io import embed_protein_batch, load_esm
from virnucpro.models.tiny.dnabert import write_tiny_dnabert
from virnucpro.models.tiny.esm import write_tiny_esm

PROTEINS = ["MKTAYIAKQR", "ACDEFGHIKLMNPQRSTVWY"]
FAKE = "fairseq_not_installed_configs"  # a dotted name would need its parents importable


class _Boom:
    """What a malicious checkpoint would hold: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Popen:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


def _fake_module_objects() -> tuple[types.ModuleType, object, object]:
    """A dataclass and an Enum member of a module that is not installed (registered only
    while saving)."""
    module = types.ModuleType(FAKE)

    @dataclasses.dataclass
    class ModelConfig:
        encoder_layers: int = 2
        activation: str = "gelu"

    class Mode(enum.Enum):
        TRAIN = "train"

    for cls in (ModelConfig, Mode):
        cls.__module__ = FAKE
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    return module, ModelConfig(), Mode.TRAIN


def _resave(path: Path, edit) -> None:
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, path)


def test_esm_cfg_with_foreign_classes_loads_and_embeds_the_same(tmp_path: Path) -> None:
    plain = write_tiny_esm(tmp_path / "plain", seed=3)
    fancy = write_tiny_esm(tmp_path / "fancy", seed=3)
    module, config, mode = _fake_module_objects()
    sys.modules[FAKE] = module
    try:
        _resave(fancy, lambda d: d["cfg"].update(
            task=config, mode=mode, nested={"a": {"b": [1, 2.0, "x"]}, "cfg": config}))
    finally:
        del sys.modules[FAKE]
    assert FAKE.encode() in (fancy.read_bytes())  # the zip stores the pickle uncompressed
    want = embed_protein_batch(load_esm(plain), PROTEINS)
    got = embed_protein_batch(load_esm(fancy), PROTEINS)
    assert torch.equal(got, want)
    assert FAKE not in sys.modules  # never imported


def test_esm_cfg_model_as_a_foreign_dataclass_is_read_for_its_fields(tmp_path: Path) -> None:
    plain = write_tiny_esm(tmp_path / "plain", seed=1)
    fancy = write_tiny_esm(tmp_path / "fancy", seed=1)
    module = types.ModuleType(FAKE)
    cls = dataclasses.make_dataclass("ESM2Config", [
        ("encoder_layers", int), ("encoder_embed_dim", int), ("encoder_attention_heads", int),
        ("token_dropout", bool), ("_name", str)])
    cls.__module__, cls.__qualname__ = FAKE, "ESM2Config"
    module.ESM2Config = cls
    sys.modules[FAKE] = module
    try:
        _resave(fancy, lambda d: d["cfg"].update(model=cls(2, 40, 4, True, "esm2")))
    finally:
        del sys.modules[FAKE]
    got = embed_protein_batch(load_esm(fancy), PROTEINS)
    assert torch.equal(got, embed_protein_batch(load_esm(plain), PROTEINS))


def test_inert_records_keep_args_and_state_and_answer_attributes(tmp_path: Path) -> None:
    module, config, mode = _fake_module_objects()
    path = tmp_path / "x.pt"
    sys.modules[FAKE] = module
    try:
        torch.save({"c": config, "m": mode}, path)
    finally:
        del sys.modules[FAKE]
    data = safe_pickle.load(path, inert=True)
    assert data["c"].pickled_name == f"{FAKE}.ModelConfig"
    assert (data["c"].encoder_layers, data["c"].activation) == (2, "gelu")
    assert data["m"].pickled_name == f"{FAKE}.Mode" and data["m"].args == ("train",)
    with pytest.raises(ModelError, match=f"{FAKE}.ModelConfig"):
        safe_pickle.load(path)  # without inert=True a foreign class is refused


@pytest.mark.parametrize("where", ["weights", "cfg"])
@pytest.mark.parametrize("evil", [_Boom, _Popen])
def test_esm_code_running_globals_are_refused_and_never_run(
    tmp_path: Path, where: str, evil: type
) -> None:
    path = write_tiny_esm(tmp_path / "m", seed=0)
    marker = tmp_path / "MARKER"

    def edit(data: dict) -> None:
        (data["model"] if where == "weights" else data["cfg"])["evil"] = evil(marker)

    _resave(path, edit)
    with pytest.raises(ModelError, match=r"(posix|os)\.system|subprocess\.Popen") as err:
        load_esm(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert not marker.exists()


def test_builtins_eval_is_refused_by_name(tmp_path: Path) -> None:
    class _Eval:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = tmp_path / "e.pt"
    torch.save({"x": _Eval()}, path)
    with pytest.raises(ModelError, match=r"builtins\.eval"):
        safe_pickle.load(path, inert=True)


def test_a_truncated_esm_checkpoint_is_reported_damaged_not_partial(tmp_path: Path) -> None:
    path = write_tiny_esm(tmp_path, seed=0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or damaged") as err:
        load_esm(path)
    text = str(err.value)
    assert str(path) in text and "delete it and fetch it again" in text
    assert "not a partial download" in text
    assert not path.with_name(path.name + ".part").exists()  # nothing left for fetch to resume
    assert path.stat().st_size == len(data) // 2  # the file itself is left as it was


def test_a_truncated_legacy_file_is_reported_damaged(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ModelError, match="truncated or damaged"):
        safe_pickle.load(path)


def test_dnabert_bin_loads_and_a_code_running_bin_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_tiny_dnabert(folder)  # a pytorch_model.bin, as the hub's DNABERT-S folder has
    assert (folder / BIN_FILE).is_file()
    assert not [n for n in os.listdir(folder) if n.endswith(".safetensors")]
    assert load_dnabert(folder).hidden_size > 0
    marker = tmp_path / "MARKER"
    state = torch.load(folder / BIN_FILE, weights_only=True)
    state["evil"] = _Boom(marker)
    torch.save(state, folder / BIN_FILE)
    with pytest.raises(ModelError, match=r"(posix|os)\.system") as err:
        load_dnabert(folder)
    assert err.value.path == str(folder / BIN_FILE)
    assert not marker.exists()
