"""Reading and writing classifier weights without running pickled code.

`load_classifier` accepts the published whole-module `.pth` files (a pickled
`__main__.MLPClassifier`), a `.pth` state dict, or `.safetensors`; every pickle is read by
the restricted unpickler of virnucpro.models.safe_pickle with inert stand-ins for the few module classes such a file
names, and any other global is refused with a `ModelError` naming it. Only tensors are kept;
keys and shapes are checked strictly. The writers produce the reference formats (a trained
classifier, the tiny set's).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from virnucpro.errors import ModelError, StateDictError
from virnucpro.models import safe_pickle
from virnucpro.models.classifier import MLPClassifier

_MODULE_CLASSES = (
    "__main__.MLPClassifier",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.batchnorm.BatchNorm1d",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.dropout.Dropout",
)
# What torch.save(module) and torch.save(state_dict) pickle, from torch 1.6 (zip format) on:
# containers, tensor/parameter rebuild functions, typed storages, the module classes.
_ALLOWED_GLOBALS = frozenset(
    {
        *_MODULE_CLASSES,
        "collections.OrderedDict",
        "builtins.set",  # Module._non_persistent_buffers_set
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.nn.parameter.Parameter",
        *(
            f"torch.{t}Storage"
            for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Bool")
        ),
    }
)
_STATE_KEYS = (
    "hidden_layer.weight",
    "hidden_layer.bias",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    "output_layer.weight",
    "output_layer.bias",
)
# safe_globals and the __main__ patch are process-wide; one load or save at a time.
_LOCK = threading.Lock()


class _PickledModule:
    """Inert stand-in for a pickled nn.Module: keeps its attribute dict, runs nothing."""

    pickled_name = ""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form of BUILD
            state = state[0]
        self.state = dict(state) if isinstance(state, Mapping) else {}


_STAND_INS = {
    name: type(name.rsplit(".", 1)[1], (_PickledModule,), {"pickled_name": name})
    for name in _MODULE_CLASSES
}


def _refuse_unknown_globals(path: Path) -> None:
    # A first pass over the zip's pickles names every offender in the error; the restricted
    # unpickler of safe_pickle stays the enforcing layer (and covers the legacy non-zip format).
    try:
        bad = sorted(safe_pickle.zip_globals(path) - _ALLOWED_GLOBALS)
    except Exception as exc:
        raise ModelError(f"unreadable pickle: {exc}", path=path) from exc
    if bad:
        raise ModelError(
            f"refused to unpickle {', '.join(bad)}: a classifier file needs only "
            "tensors, collections.OrderedDict and the MLPClassifier layers",
            path=path,
        )


def _torch_load(path: Path) -> Any:
    _refuse_unknown_globals(path)
    # Only the stand-ins and torch's own tensor globals; any other class is refused, not inert.
    return safe_pickle.load(path, what="classifier file", classes=_STAND_INS)


def _module_tensors(node: _PickledModule, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    # Walk what nn.Module.state_dict() would: parameters, persistent buffers, submodules.
    # The classifier is two levels deep; a crafted file could nest (or loop) without end.
    if depth > 8:
        raise ModelError("the pickled module nests deeper than an MLPClassifier can")
    state = node.state
    skip = state.get("_non_persistent_buffers_set") or set()
    out: dict[str, torch.Tensor] = {}
    for attr in ("_parameters", "_buffers"):
        for name, value in (state.get(attr) or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, _PickledModule):
            out.update(_module_tensors(child, f"{prefix}{name}.", depth + 1))
    return out


def _as_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, _PickledModule):
        if obj.pickled_name != "__main__.MLPClassifier":
            raise ModelError(
                f"the file holds a {obj.pickled_name}, not an MLPClassifier", path=path
            )
        obj = _module_tensors(obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError("the file holds neither an MLPClassifier nor a state dict", path=path)
    return {str(k): v.detach() for k, v in obj.items()}


def classifier_from_state(state: Mapping[str, torch.Tensor],
                          path: Path | None = None) -> MLPClassifier:
    """Build an eval-mode MLPClassifier from a strictly checked state dict (on CPU)."""
    keys = set(state)
    if keys != set(_STATE_KEYS):
        raise StateDictError(
            "classifier",
            missing=set(_STATE_KEYS) - keys,
            unexpected=keys - set(_STATE_KEYS),
            path=path,
        )
    hidden_w = state["hidden_layer.weight"]
    if hidden_w.ndim != 2:
        raise StateDictError(
            "classifier", mismatched=[f"hidden_layer.weight {list(hidden_w.shape)}"], path=path
        )
    hidden, inputs = hidden_w.shape
    want = {
        "hidden_layer.weight": (hidden, inputs),
        "output_layer.weight": (2, hidden),
        "output_layer.bias": (2,),
        "bn1.num_batches_tracked": (),
    }
    wrong = [
        f"{k} {list(v.shape)} (expected {list(want.get(k, (hidden,)))})"
        for k, v in state.items()
        if tuple(v.shape) != want.get(k, (hidden,))
    ]
    if wrong:
        raise StateDictError("classifier", mismatched=wrong, path=path)
    # Built on the meta device and filled by assignment: no wasted random init, and torch's
    # global RNG is left alone.
    with torch.device("meta"):
        model = MLPClassifier(inputs, hidden)
    tensors = {k: (v.float() if v.is_floating_point() else v).to("cpu") for k, v in state.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def load_classifier(
    path: Path, *, input_dim: int | None = None, device: str | torch.device = "cpu"
) -> MLPClassifier:
    """Load a reference `.pth` (whole module or state dict) or `.safetensors`, eval mode."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("classifier file is missing", path=path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ModelError(f"cannot read classifier file: {exc}", path=path) from exc
    else:
        state = _as_state(_torch_load(path), path)
    model = classifier_from_state(state, path)
    if input_dim is not None and model.input_dim != input_dim:
        raise ModelError(
            f"the classifier expects {model.input_dim} features but the models give {input_dim}",
            path=path,
        )
    return model.to(device)


# The reference script defined MLPClassifier in the script it ran, so its pickle names
# __main__.MLPClassifier; this subclass carries exactly that name.
_MAIN_MLP = type(
    "MLPClassifier", (MLPClassifier,), {"__module__": "__main__", "__qualname__": "MLPClassifier"}
)


def write_reference_classifier(path: Path, model: MLPClassifier, *,
                               location: str | None = None) -> None:
    """Save `model` as the reference script does: torch.save of the whole module.

    `location` tags every storage with that device, as a save after `.cuda()` does (the
    published files say `cuda:0`); the bytes are the CPU's, so no GPU is needed to write it.
    """
    clone = copy.deepcopy(model).to("cpu")
    clone.__class__ = _MAIN_MLP
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    main = sys.modules["__main__"]
    missing = object()
    with _LOCK, _storages_tagged(location):
        # pickle looks the class up by name to check it, so __main__ must hold it while saving.
        previous = getattr(main, "MLPClassifier", missing)
        main.MLPClassifier = _MAIN_MLP
        try:
            torch.save(clone, tmp)
        finally:
            if previous is missing:
                del main.MLPClassifier
            else:
                main.MLPClassifier = previous
    os.replace(tmp, path)


@contextlib.contextmanager
def _storages_tagged(location: str | None) -> Iterator[None]:
    """torch.save tags each storage through `torch.serialization.location_tag`, looked up at
    call time; replaced for the block (under `_LOCK`), every storage is tagged `location`."""
    if location is None:
        yield
        return
    import torch.serialization as serialization

    original = serialization.location_tag
    serialization.location_tag = lambda storage: location
    try:
        yield
    finally:
        serialization.location_tag = original


def save_classifier_safetensors(path: Path, model: MLPClassifier) -> None:
    """Save the state dict as safetensors (no pickle at all)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
