"""Runtime type and range checks of user values against stdlib dataclass annotations.

The engine of :mod:`saca_lab.schema` (experiment configs), also used for the model registry's
constructor arguments and ``saca-lab reproduce --set`` (:class:`saca_lab.reproduce.settings.Mode`).
Plain :mod:`dataclasses` and :mod:`typing` only, no pydantic: a field's annotation is its type
(``int``, ``float``, ``bool``, ``str``, ``None``, ``Literal[...]``, ``list[X]``, ``dict``, a
nested dataclass, and unions of these), its :func:`spec` metadata its range.

A value fails with :class:`~saca_lab.errors.InputError` naming the dotted field, the value and
what was expected: ``train.lr must be a number > 0, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union

from saca_lab.errors import InputError

_SEQUENCES = (list, tuple, Sequence)


def spec(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
         ge: float | None = None, gt: float | None = None, le: float | None = None,
         nonempty: bool = False, required: bool = False, key: str | None = None, hint: str = "",
         ok: Callable[[Any], bool] | None = None, expect: str | None = None) -> Any:
    """A dataclass field with its range and documentation.

    Parameters
    ----------
    default, factory : the default value, or a callable making it (mutable defaults).
    ge, gt, le : bounds of a number (or of every number of a list).
    nonempty : a list must have at least one item.
    required : None is refused (``PATH is required``), and a non-empty section must set it.
    key : the config key when it is not a Python name (``from``).
    hint : what the field means, appended to error messages in parentheses.
    ok, expect : an extra predicate on a type-correct value, and the text saying what it wants
        (replaces the text made from the type).
    """
    meta = {"ge": ge, "gt": gt, "le": le, "nonempty": nonempty, "required": required,
            "key": key, "hint": hint, "ok": ok, "expect": expect}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


def key_of(f: dataclasses.Field) -> str:
    return f.metadata.get("key") or f.name


@functools.cache
def hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations of a dataclass or function (string annotations evaluated)."""
    return typing.get_type_hints(obj)


def members(tp: Any) -> list:
    """The alternatives of a union, each ``Literal`` value on its own (others unchanged)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in members(a)]
    if origin is Literal:
        return [Literal[a] for a in typing.get_args(tp)]
    return [tp]


def is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_sequence_type(tp: Any) -> bool:
    return typing.get_origin(tp) in _SEQUENCES or tp in (list, tuple)


def _is_mapping_type(tp: Any) -> bool:
    return (typing.get_origin(tp) in (dict, Mapping) or tp in (dict, Mapping)
            or dataclasses.is_dataclass(tp))


def _item_type(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not Ellipsis]
    return args[0] if args else Any


def _matches_one(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if tp is None or tp is type(None):
        return value is None
    if typing.get_origin(tp) is Literal:
        (a,) = typing.get_args(tp)
        return type(value) is type(a) and value == a  # True == 1, but true is not 1 here
    if _is_sequence_type(tp):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or (
                typing.get_origin(tp) is tuple and args and Ellipsis not in args
                and len(value) != len(args)):  # tuple[float, float]: exactly two
            return False
        return all(matches(v, _item_type(tp)) for v in value)
    if _is_mapping_type(tp):
        return isinstance(value, Mapping)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return is_int(value)
    if tp is float:
        return is_number(value)
    if tp is str:
        return isinstance(value, str)
    return isinstance(value, tp)


def matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` has type ``tp`` (bools are not numbers, numbers are finite)."""
    return any(_matches_one(value, m) for m in members(tp))


def _num(x: float) -> str:
    return str(x) if is_int(x) else f"{x:g}"


def _bounds_text(meta: Mapping) -> str:
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    if ge is not None and le is not None:
        return f" in [{_num(ge)}, {_num(le)}]"
    return (f" >= {_num(ge)}" if ge is not None else f" > {_num(gt)}" if gt is not None else "") + (
        f" <= {_num(le)}" if le is not None else "")


def _in_bounds(value: Any, meta: Mapping) -> bool:
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    return ((ge is None or value >= ge) and (gt is None or value > gt)
            and (le is None or value <= le))


_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
_SINGULAR = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe_one(tp: Any, meta: Mapping) -> str:
    if tp is None or tp is type(None):
        return "null"
    if typing.get_origin(tp) is Literal:
        (a,) = typing.get_args(tp)
        return str(a).lower() if isinstance(a, bool) else repr(a)
    if _is_sequence_type(tp):
        item, args = _item_type(tp), typing.get_args(tp)
        what = _PLURAL.get(item, "values") + (_bounds_text(meta) if item in (int, float) else "")
        if typing.get_origin(tp) is tuple and args and Ellipsis not in args:
            return f"a list of {len(args)} {what}"
        return f"a {'non-empty ' if meta.get('nonempty') else ''}list of {what}"
    if _is_mapping_type(tp):
        return "a mapping"
    text = _SINGULAR.get(tp, getattr(tp, "__name__", str(tp)))
    return text + (_bounds_text(meta) if tp in (int, float) else "")


def describe(tp: Any, meta: Mapping | None = None) -> str:
    """What a value of ``tp`` looks like: ``"'average', 'each' or an integer >= 1"``."""
    meta = meta or {}
    if meta.get("expect"):
        return meta["expect"]
    parts = list(dict.fromkeys(_describe_one(m, meta) for m in members(tp)))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def valid(value: Any, tp: Any, meta: Mapping | None = None) -> bool:
    """Type, bounds (of a number, or of each number in a list), non-emptiness and predicate."""
    meta = meta or {}
    if not matches(value, tp):
        return False
    if is_number(value) and not _in_bounds(value, meta):
        return False
    if isinstance(value, (list, tuple)):
        if meta.get("nonempty") and not value:
            return False
        if not all(_in_bounds(v, meta) for v in value if is_number(v)):
            return False
    return meta.get("ok") is None or bool(meta["ok"](value))


def check_value(value: Any, tp: Any, meta: Mapping | None, path: str) -> None:
    """Raise InputError ``PATH must be EXPECTED (HINT), got VALUE`` unless ``value`` is valid."""
    meta = meta or {}
    if not valid(value, tp, meta):
        hint = f" ({meta['hint']})" if meta.get("hint") else ""
        raise InputError(f"{path} must be {describe(tp, meta)}{hint}, got {value!r}")


def _section_type(tp: Any) -> type | None:
    return next((m for m in members(tp) if dataclasses.is_dataclass(m)), None)


def walk(value: Any, cls: type, path: str = "", partial: bool = False) -> None:
    """Check a mapping against the dataclass ``cls``: unknown keys, each field's type and range,
    nested sections, required fields, then ``cls.extra_check(value, path, partial)`` if any.

    ``partial`` checks only what ``value`` holds (a set of overrides, not a resolved config):
    no required fields, no cross-field checks.
    """
    if not isinstance(value, Mapping):
        raise InputError(f"{path or 'a config'} must be a mapping, got {value!r}")
    fields = {key_of(f): f for f in dataclasses.fields(cls)}
    for key in value:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise InputError(f"unknown field {where!r}; expected one of {sorted(fields)}")
    types_ = hints(cls)
    for key, f in fields.items():
        if key not in value:
            continue
        where = f"{path}.{key}" if path else key
        sub, item = _section_type(types_[f.name]), value[key]
        if sub is not None and isinstance(item, Mapping):
            walk(item, sub, where, partial)
        else:
            check_value(item, types_[f.name], f.metadata, where)
    if not partial and value:  # an empty optional section (transfer: {}) is off
        for key, f in fields.items():
            if f.metadata.get("required") and value.get(key) is None:
                hint = f" ({f.metadata['hint']})" if f.metadata.get("hint") else ""
                raise InputError(f"{path + '.' if path else ''}{key} is required{hint}")
    extra = getattr(cls, "extra_check", None)
    if extra is not None:
        extra(value, path, partial)


def defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls`` as a plain nested dict (sections as dicts, in field order)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue
        out[key_of(f)] = defaults(type(value)) if dataclasses.is_dataclass(value) else value
    return out


def check_field(cls: type, name: str, value: Any, where: str) -> Any:
    """Check one field of a dataclass (``reproduce --set FIELD=VALUE``); returns the value, an
    integer made a string for a ``str`` field (YAML reads ``--set deep_sizes=10`` as 10)."""
    tp = hints(cls)[name]
    if tp is str and is_int(value):
        return str(value)
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    check_value(value, tp, f.metadata, where)
    return value
