"""The MLP classifier and its safe file formats (virnucpro.models.classifier[_io])."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from virnucpro.errors import ModelError, StateDictError
from virnucpro.models.classifier import MLPClassifier, predict_proba
from virnucpro.models.classifier_io import (
    load_classifier,
    save_classifier_safetensors,
    write_reference_classifier,
)
from virnucpro.models.tiny.classifier import make_tiny_classifier

DIM = 80


@pytest.fixture()
def model() -> MLPClassifier:
    return make_tiny_classifier(DIM, seed=3)


@pytest.fixture()
def features() -> torch.Tensor:
    return torch.randn(64, DIM, generator=torch.Generator().manual_seed(7))


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a malicious weights file would do
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def _data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))


def test_a_reference_style_file_scores_like_the_module_that_was_saved(
    model: MLPClassifier, features: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "300_model.pth"
    write_reference_classifier(path, model)
    pickled = _data_pkl(path)
    assert b"__main__" in pickled and b"MLPClassifier" in pickled
    assert not hasattr(sys.modules["__main__"], "MLPClassifier")  # the patch was undone
    loaded = load_classifier(path, input_dim=DIM)
    assert type(loaded) is MLPClassifier and not loaded.training
    assert torch.equal(predict_proba(loaded, features), predict_proba(model, features))


def test_a_file_of_the_published_size_loads(tmp_path: Path) -> None:
    model = make_tiny_classifier(3328, seed=0, hidden_dim=512)
    write_reference_classifier(tmp_path / "500_model.pth", model)
    loaded = load_classifier(tmp_path / "500_model.pth", input_dim=3328)
    assert (loaded.input_dim, loaded.hidden_dim) == (3328, 512)


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"hidden_layer.weight": _Boom(marker)}, path)
    with pytest.raises(ModelError, match=r"posix\.system|os\.system") as err:
        load_classifier(path)
    assert err.value.path == str(path)
    assert not marker.exists()


def test_a_legacy_format_pickle_that_would_run_code_is_refused_too(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pth"
    torch.save(_Boom(marker), path, _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError, match="system"):
        load_classifier(path)
    assert not marker.exists()


def test_eval_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "eval.pth"
    torch.save([_Eval()], path)
    with pytest.raises(ModelError, match=r"builtins\.eval"):
        load_classifier(path)


def test_another_main_class_is_refused_by_name(
    model: MLPClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = type("Other", (), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "Other", other, raising=False)
    path = tmp_path / "other.pth"
    torch.save({"model": other()}, path)
    with pytest.raises(ModelError, match=r"__main__\.Other"):
        load_classifier(path)


def test_a_whole_module_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "linear.pth"
    torch.save(nn.Linear(3, 2), path)
    with pytest.raises(ModelError, match="not an MLPClassifier"):
        load_classifier(path)


def test_extra_module_attributes_from_other_torch_versions_are_tolerated(
    model: MLPClassifier, features: torch.Tensor, tmp_path: Path
) -> None:
    model.bn1.__dict__.pop("_forward_hooks_always_called", None)  # absent in older torch
    model.hidden_layer.some_old_flag = 1.5  # an attribute this torch does not know
    path = tmp_path / "old.pth"
    write_reference_classifier(path, model)
    torch.testing.assert_close(
        predict_proba(load_classifier(path), features), predict_proba(model, features)
    )


def test_a_plain_state_dict_pth_loads(
    model: MLPClassifier, features: torch.Tensor, tmp_path: Path
) -> None:
    torch.save(model.state_dict(), tmp_path / "state.pth")
    loaded = load_classifier(tmp_path / "state.pth")
    assert torch.equal(predict_proba(loaded, features), predict_proba(model, features))


def test_safetensors_round_trip(
    model: MLPClassifier, features: torch.Tensor, tmp_path: Path
) -> None:
    save_classifier_safetensors(tmp_path / "m.safetensors", model)
    loaded = load_classifier(tmp_path / "m.safetensors", input_dim=DIM)
    assert torch.equal(predict_proba(loaded, features), predict_proba(model, features))


def test_an_input_size_mismatch_says_both_sizes(model: MLPClassifier, tmp_path: Path) -> None:
    write_reference_classifier(tmp_path / "m.pth", model)
    with pytest.raises(ModelError, match="expects 80 features but the models give 3328"):
        load_classifier(tmp_path / "m.pth", input_dim=3328)


def test_missing_and_unexpected_keys_are_listed(model: MLPClassifier, tmp_path: Path) -> None:
    state = model.state_dict()
    del state["bn1.running_var"]
    state["bn2.weight"] = torch.ones(32)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(StateDictError) as err:
        load_classifier(tmp_path / "bad.pth")
    assert err.value.missing == ["bn1.running_var"]
    assert err.value.unexpected == ["bn2.weight"]


def test_a_wrong_shape_is_reported(model: MLPClassifier, tmp_path: Path) -> None:
    state = model.state_dict()
    state["output_layer.weight"] = torch.zeros(3, 32)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(StateDictError, match="output_layer.weight"):
        load_classifier(tmp_path / "bad.pth")


def test_a_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        load_classifier(tmp_path / "nope.pth")


def test_probabilities_are_float32_and_sum_to_one(
    model: MLPClassifier, features: torch.Tensor
) -> None:
    probs = predict_proba(model, features.double())
    assert probs.shape == (64, 2) and probs.dtype == torch.float32 and probs.device.type == "cpu"
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(64))


def test_scoring_runs_in_eval_mode_whatever_the_model_was_left_in(
    model: MLPClassifier, features: torch.Tensor
) -> None:
    model.train()  # in train mode BatchNorm would refuse a batch of one
    one = features[:1]
    first, second = predict_proba(model, one), predict_proba(model, one)
    assert torch.equal(first, second)
    assert not model.training
    torch.testing.assert_close(first[0], predict_proba(model, features)[0])


def test_the_tiny_classifier_gives_both_classes(features: torch.Tensor) -> None:
    x = torch.randn(1000, DIM, generator=torch.Generator().manual_seed(0))
    virus_share = predict_proba(make_tiny_classifier(DIM, seed=0), x).argmax(dim=1) == 1
    assert 0.2 < virus_share.float().mean().item() < 0.8


def test_the_tiny_classifier_is_deterministic_from_its_seed(features: torch.Tensor) -> None:
    a, b, c = (make_tiny_classifier(DIM, seed=s) for s in (5, 5, 6))
    assert torch.equal(predict_proba(a, features), predict_proba(b, features))
    assert not torch.equal(predict_proba(a, features), predict_proba(c, features))


def _save_as_main(module: nn.Module, path: Path) -> None:
    """torch.save a whole module whose class the pickle names __main__.MLPClassifier."""
    main = sys.modules["__main__"]
    cls = type(module)
    cls.__module__, cls.__qualname__, cls.__name__ = "__main__", "MLPClassifier", "MLPClassifier"
    main.MLPClassifier = cls
    try:
        torch.save(module, path)
    finally:
        del main.MLPClassifier


def test_the_reference_script_class_without_a_relu_module_loads(tmp_path: Path) -> None:
    # The reference prediction script calls F.relu, so its pickle has no `relu` submodule.
    class Script(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden_layer = nn.Linear(DIM, 512)
            self.bn1 = nn.BatchNorm1d(512)
            self.output_layer = nn.Linear(512, 2)
            self.dropout = nn.Dropout(0.5)

        def forward(self, x):
            return self.output_layer(self.dropout(torch.relu(self.bn1(self.hidden_layer(x)))))

    script = Script().eval()
    path = tmp_path / "500_model.pth"
    _save_as_main(script, path)
    loaded = load_classifier(path, input_dim=DIM)
    x = torch.randn(5, DIM)
    assert torch.allclose(predict_proba(loaded, x), torch.softmax(script(x), dim=1), atol=1e-6)


def test_a_module_that_contains_itself_is_refused_not_a_crash(tmp_path: Path) -> None:
    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden_layer = nn.Linear(DIM, 4)

    loop = Loop()
    loop._modules["again"] = loop
    path = tmp_path / "300_model.pth"
    _save_as_main(loop, path)
    with pytest.raises(ModelError):
        load_classifier(path)
