"""A restricted unpickler for torch checkpoints: tensors and plain data in, no code run.

`load(path, ...)` reads a `torch.save` file (zip format, mmap-able, or the legacy format) with
`torch.load(..., weights_only=False, pickle_module=<this reader>)`; torch's own weights-only
loader is not used, so this unpickler's `find_class` is the whole security boundary.

The rule for a global a pickle names (after the protocol-2 name mapping):

1. On the allow-list (the torch rebuild functions torch's weights-only loader allows, typed
   storages, dtypes, `collections.OrderedDict`, `builtins.set`/`frozenset`, `argparse.Namespace`,
   plus the caller's own `classes`): the real object.
2. Refused (`UnsafeGlobalError`, naming the global), before anything is called:
   - a global of a module that can run code or reach the system (`os`, `posix`, `nt`,
     `subprocess`, `builtins`, `sys`, `shutil`, `importlib`, `runpy`, `pickle`, `types`,
     `functools`, `operator`, `ctypes`, `socket`, ... and every `torch.*` not on the list);
   - a name that does not look like a class (its last part, leading underscores aside, does
     not start with a capital letter): functions, builtins, methods (`os.system`,
     `builtins.eval`);
   - a name that resolves, in a module already imported (looked up statically: nothing is
     imported, no `__getattr__` runs), to anything that is not a class.
   - with `inert=False`, every other global too (a plain state dict needs nothing else).
3. Any other global (a class of a module that may not even be installed: a fairseq dataclass,
   an `Enum`, an omegaconf container) becomes an inert record: a fresh subclass of `Inert`
   named after it. Its code never runs, and it is never imported; REDUCE/NEWOBJ construction
   records the arguments (`.args`), BUILD stores the state (`.state`), and attribute access
   answers the state's keys. Callers decide where such records may appear (ESM-2: only under
   `cfg`; see esm_io) and take only the fields they need.

So REDUCE can only ever call an allow-listed function or an inert record's constructor.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import collections
import inspect
import pickle
import pickletools
import sys
import types
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from virnucpro.errors import ModelError

# What torch.save writes for tensors and parameters (and torch's weights-only loader allows).
_TORCH_REBUILDERS = (
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_sparse_tensor",
    "_rebuild_nested_tensor",
    "_rebuild_meta_tensor_no_storage",
)
_STORAGES = (
    "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
    "ComplexFloat", "ComplexDouble",
)
_DTYPES = (
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
    "bool", "complex64", "complex128",
)


def _allowed() -> dict[str, Any]:
    import torch._utils

    allowed: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "argparse.Namespace": argparse.Namespace,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.Size": torch.Size,
    }
    for name in _TORCH_REBUILDERS:
        if hasattr(torch._utils, name):
            allowed[f"torch._utils.{name}"] = getattr(torch._utils, name)
    for name in _STORAGES:
        if hasattr(torch, f"{name}Storage"):
            allowed[f"torch.{name}Storage"] = getattr(torch, f"{name}Storage")
    for name in _DTYPES:
        allowed[f"torch.{name}"] = getattr(torch, name)
    return allowed


ALLOWED = _allowed()

_DENIED_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil", "importlib",
    "runpy", "pickle", "_pickle", "copyreg", "marshal", "types", "code", "codeop", "pty",
    "socket", "ctypes", "multiprocessing", "signal", "webbrowser", "functools", "operator",
    "codecs", "io", "_io", "pathlib", "tempfile", "platform", "asyncio", "threading", "_thread",
    "inspect", "pdb", "bdb", "timeit", "gc", "site", "zipimport", "glob", "dill", "cloudpickle",
    "joblib", "torch", "numpy", "pip", "setuptools", "urllib", "http", "ftplib", "smtplib",
    "tarfile", "zipfile", "sqlite3", "logging", "atexit", "weakref", "contextlib", "ast",
})


class UnsafeGlobalError(pickle.UnpicklingError):
    """A pickle names a global that could run code; `.name` is its dotted name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"refused to unpickle {name}")
        self.name = name


class Inert:
    """An inert record of an object of a class this reader does not import: nothing runs."""

    pickled_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args)
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def fields(self) -> dict[str, Any]:
        """The state as a dict: BUILD's dict, or the dict half of its (dict, slots) form."""
        state = self.__dict__["state"]
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, Mapping):
                    merged.update(part)
            return merged
        return dict(state) if isinstance(state, Mapping) else {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        fields = self.fields()
        if name in fields:
            return fields[name]
        raise AttributeError(f"{self.pickled_name} record has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("an inert record is read-only")

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name} args={self.args!r} state={self.state!r}>"


def _canonical(module: str, name: str) -> str:
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _looks_like_class(full: str) -> bool:
    module, _, name = full.rpartition(".")
    if not module or module.split(".")[0] in _DENIED_MODULES:
        return False
    last = name.rsplit(".", 1)[-1].lstrip("_")
    if not last[:1].isupper():
        return False
    loaded = sys.modules.get(module)
    if loaded is None:
        return True  # not imported (maybe not installed): judged by its name only
    obj: Any = loaded
    for part in name.split("."):
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            return True  # no such attribute: an inert record of a name, nothing to run
    return isinstance(obj, type)


def _reader(classes: Mapping[str, Any], inert: bool) -> types.ModuleType:
    """A module object torch.load accepts as `pickle_module` (Unpickler and load)."""
    allowed = {**ALLOWED, **classes}
    records: dict[str, type] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            full = _canonical(module, name)
            if full in allowed:
                return allowed[full]
            if not inert or not _looks_like_class(full):
                raise UnsafeGlobalError(full)
            if full not in records:
                records[full] = type(full.rsplit(".", 1)[-1], (Inert,), {"pickled_name": full})
            return records[full]

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    reader = types.ModuleType("virnucpro_safe_pickle")
    reader.Unpickler = Unpickler  # type: ignore[attr-defined]
    reader.load = load  # type: ignore[attr-defined]
    reader.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return reader


def globals_in(data: bytes) -> Iterator[str]:
    """Every global a pickle names, spelt as the unpickler resolves it (protocol 2 aliases)."""
    recent: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            module, name = str(arg).split(" ", 1)
        elif op.name == "STACK_GLOBAL":  # protocol 4; torch never writes it
            module, name = (recent[-2], recent[-1]) if len(recent) >= 2 else ("?", "?")
        else:
            if isinstance(arg, str):
                recent.append(arg)
            continue
        yield _canonical(module, name)


def zip_globals(path: Path) -> set[str]:
    """Every global the pickles of a zip-format file name (empty for another format)."""
    if not zipfile.is_zipfile(path):
        return set()
    found: set[str] = set()
    with zipfile.ZipFile(path) as archive:
        for entry in archive.namelist():
            if entry.endswith(".pkl"):
                found.update(globals_in(archive.read(entry)))
    return found


DAMAGED_ADVICE = (
    "the file is truncated or damaged; it is not a partial download `virnucpro models fetch` "
    "would resume (those end in .part): delete it and fetch it again "
    "(`virnucpro models verify` checks a whole set)"
)


def _damaged(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (EOFError, zipfile.BadZipFile)) or any(
        s in text for s in ("central directory", "failed reading zip", "ran out of input",
                            "truncated", "unexpected end", "invalid header", "pickle data")
    )


def load(
    path: Path,
    *,
    what: str = "checkpoint",
    classes: Mapping[str, Any] | None = None,
    inert: bool = False,
    mmap: bool = False,
) -> Any:
    """Read a torch.save file at `path` on the CPU under the rule above.

    `classes`: dotted names mapped to stand-in classes the caller allows (never real code).
    `inert`: read unknown classes as `Inert` records instead of refusing them.
    Raises `ModelError` (naming the file) for a refused global, a damaged file or another
    unreadable one; `what` names the kind of file in the message.
    """
    path = Path(path)
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        return torch.load(
            path, map_location="cpu", weights_only=False, mmap=mmap,
            pickle_module=_reader(classes or {}, inert),
        )
    except UnsafeGlobalError as exc:
        raise ModelError(
            f"unsafe {what}: refused to unpickle {exc.name} (it could run code; a {what} "
            "needs only tensors and plain data)", path=path) from exc
    except Exception as exc:  # RuntimeError (zip reader), UnpicklingError, EOFError, OSError
        if _damaged(exc):
            raise ModelError(f"cannot read {what}: {DAMAGED_ADVICE} ({exc})", path=path) from exc
        raise ModelError(f"cannot read {what}: {exc}", path=path) from exc


def inert_records(obj: Any, depth: int = 0) -> Iterator[Inert]:
    """The inert records anywhere inside `obj` (dicts, lists, tuples, sets, records)."""
    if depth > 64:
        return
    if isinstance(obj, Inert):
        yield obj
        children: Any = [obj.args, obj.kwargs, obj.state]
    elif isinstance(obj, Mapping):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = obj
    elif isinstance(obj, argparse.Namespace):
        children = list(vars(obj).values())
    else:
        return
    for child in children:
        yield from inert_records(child, depth + 1)
