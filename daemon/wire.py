"""Frozen dataclasses to and from their JSON form, one codec for every record of the protocol.

`to_wire(record)` gives plain JSON values (enums by value, tuples as lists, nested records as
objects); `from_wire(cls, data)` checks and converts by the dataclass's type hints and raises
`WireError` naming the field that is off. Unknown fields are ignored (a tolerant reader: a
newer daemon may add a field within a protocol version); a missing field takes its default,
or is an error when it has none. `strict=True` reads what a client sends the daemon
(requests): unknown fields, null, integers beyond 64 bits, non-finite numbers and strings that
are not UTF-8 are refused too, and `to_wire(..., omit_none=True)` writes a record that way (a
field that is None is not sent). Imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")

INT_RANGE = (-(1 << 63), (1 << 63) - 1)  # SQLite's integers; no request needs more


class WireError(ValueError):
    """A JSON value that does not fit the record it should be."""


def to_wire(value: Any, *, omit_none: bool = False) -> Any:
    """The JSON form; with `omit_none`, a record's fields that are None are left out (a
    strict reader takes them as absent). Maps keep their None values (JSON null)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return {name: to_wire(v, omit_none=omit_none) for name, v in fields
                if not (omit_none and v is None)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [to_wire(v, omit_none=omit_none) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_wire(cls: type[T], data: Any, where: str = "", *, strict: bool = False) -> T:
    """`data` (parsed JSON) as a `cls` record; WireError names the first field that is off.
    `strict`: unknown fields and null are refused, and values must fit 64-bit integers, finite
    numbers and UTF-8 strings (a request: the daemon stores and uses what it accepts)."""
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise WireError(f"{where}: expected an object, got {_json_type(data)}")
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    if strict and (unknown := sorted(set(data) - {f.name for f in fields})):
        raise WireError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    values = {}
    for f in fields:
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"{where}: missing field {f.name!r}")
            continue
        values[f.name] = _value(hints[f.name], data[f.name], f"{where}.{f.name}", strict)
    return cls(**values)


def _value(hint: Any, value: Any, where: str, strict: bool = False) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if o is not type(None)]
        if value is None:
            # Strict: None stands for an absent field, and null is no value of a request's.
            if not strict and len(options) < len(typing.get_args(hint)):
                return None
            raise WireError(f"{where}: expected {'/'.join(map(_name, options))}, got null")
        problems = []
        for option in options:
            try:
                return _value(option, value, where, strict)
            except WireError as exc:
                problems.append(str(exc))
        raise WireError(problems[0] if len(problems) == 1 else f"{where}: no form fits {value!r}")
    if hint is Any:
        return _json_value(value, where) if strict else value
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list):
            raise WireError(f"{where}: expected a list, got {_json_type(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, f"{where}[{i}]", strict) for i, v in enumerate(value))
        if len(args) != len(value):
            raise WireError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_value(a, v, f"{where}[{i}]", strict)
                     for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (dict, Mapping, typing.Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise WireError(f"{where}: expected an object, got {_json_type(value)}")
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        return {str(k): _value(inner, v, f"{where}.{k}", strict) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_wire(hint, value, where, strict=strict)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise WireError(f"{where}: {value!r} is not a {hint.__name__}") from None
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(_number(value, where, strict))
            except OverflowError:  # an int of more than 308 digits
                raise WireError(f"{where}: out of range (a float)") from None
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return _number(value, where, strict)
    elif hint is str:
        if isinstance(value, str):
            return _text(value, where) if strict else value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    else:
        raise WireError(f"{where}: no decoder for {hint!r}")
    raise WireError(f"{where}: expected {hint.__name__}, got {_json_type(value)}")


def _number(value: int | float, where: str, strict: bool) -> int | float:
    """An int as it is, a float as float: both checked when strict."""
    if isinstance(value, int):
        if strict and not INT_RANGE[0] <= value <= INT_RANGE[1]:
            raise WireError(f"{where}: out of range (a 64-bit integer)")
        return value
    if strict and not math.isfinite(value):
        raise WireError(f"{where}: not a finite number")
    return value


def _text(value: str, where: str) -> str:
    try:
        value.encode("utf-8")  # JSON's \ud800 escapes decode to lone surrogates
    except UnicodeEncodeError:
        raise WireError(f"{where}: not valid UTF-8 (a lone surrogate)") from None
    return value


def _json_value(value: Any, where: str) -> Any:
    """Any JSON value, strictly: its numbers and strings checked as a typed field's are."""
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value, where, strict=True)
    if isinstance(value, list):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {_text(str(k), where): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    return value  # bool, None


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__
