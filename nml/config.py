"""Strict experiment configs (one dataclass per experiment, nanoGPT style).

A config is a frozen dataclass whose fields carry their defaults and a comment saying why.
Building one checks every field: an unknown key, a wrong type (a string where a number
belongs, a bool where an int belongs) or a value out of range raises :class:`ConfigError`
that names the key and the fix. The config's hash keys its result in the store
(:mod:`nml.results`), and the config itself is saved with the result.

Used by every chapter (through ``PretrainConfig``, ``TuneConfig`` and the notebooks'
``parameters`` cells).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError

__all__ = ["Config", "check_type", "check_range", "config_hash", "MAX_LR", "MAX_WEIGHT_DECAY"]

#: Largest learning rate a config accepts. torch refuses an optimiser step whose scalar does not
#: fit a float32 (3.4e38): AdamW's first step is lr / 0.1 (bias correction), and lr x weight
#: decay must fit too. Far above any useful value, so a diverging lr (1e6) still runs and is
#: stopped by nml.guards, while a value torch would reject is refused up front.
MAX_LR = 1e30
#: Largest weight decay a config accepts (see MAX_LR; AdamW multiplies weights by 1 - lr x wd).
MAX_WEIGHT_DECAY = 1e3


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        args = get_args(tp)
        inner = _type_name(args[0]) if args else "any"
        return f"a {origin.__name__} of {inner}"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, coerced_value). Ints are accepted for float fields; lists for tuples."""
    origin = get_origin(tp)
    if tp is Any:
        return True, value
    if origin is Literal:
        return (value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}), value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            ok, coerced = _matches(value, arg)
            if ok:
                return True, coerced
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False, value
        args = get_args(tp)
        elem = args[0] if args else Any
        out = []
        for v in value:
            ok, c = _matches(v, elem)
            if not ok:
                return False, value
            out.append(c)
        return True, tuple(out) if origin is tuple else list(out)
    if origin is dict:
        return isinstance(value, dict), value
    return isinstance(value, tp), value


def check_type(name: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to float)."""
    ok, coerced = _matches(value, tp)
    if not ok:
        raise ConfigError(
            f"config key '{name}' must be {_type_name(tp)}, got {value!r} "
            f"({type(value).__name__}); pass e.g. -p {name} <value of that type>"
        )
    return coerced


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None,
                hi_inclusive: bool = True, lo_inclusive: bool = True) -> None:
    """Raise ConfigError when ``value`` lies outside [lo, hi] (bounds inclusive unless said).

    NaN and infinities are refused whatever the bounds: a comparison with NaN is always
    false, so without this check a NaN would pass every range.
    """
    if not math.isfinite(value):
        raise ConfigError(f"config key '{name}' = {value!r} is not a finite number; "
                          f"pass a real value (e.g. -p {name} 0.01)")
    bad = (lo is not None and (value < lo or (value == lo and not lo_inclusive))) or (
        hi is not None and (value > hi or (value == hi and not hi_inclusive)))
    if bad:
        left = "[" if lo_inclusive else "("
        right = "]" if hi_inclusive else ")"
        raise ConfigError(
            f"config key '{name}' = {value!r} is out of range {left}{lo}, {hi}{right}; "
            f"choose a value inside it")


def config_hash(payload: dict) -> str:
    """A short stable hash of a JSON-able dict (keys sorted), used as the store key."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of every experiment config.

    Subclasses are ``@dataclass(frozen=True)`` with annotated fields and may override
    :meth:`validate` for ranges and cross-field rules (call ``super().validate()``).

    ``added_fields`` names fields that joined the class after results were stored: at their
    default they are left out of :meth:`to_dict` (and so of the hash), so every stored unit
    keeps its key; set to anything else they are recorded like any field.
    """

    added_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = check_type(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Range and cross-field checks; subclasses extend this."""

    @classmethod
    def from_dict(cls, values: dict | None = None, **overrides: Any):
        """Build a config from a dict plus keyword overrides; unknown keys are an error."""
        merged = {**(values or {}), **overrides}
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(merged) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {unknown} for {cls.__name__}; "
                f"valid keys are: {', '.join(names)}")
        return cls(**merged)

    def replace(self, **overrides: Any):
        """A copy with some fields changed, checked like a new config."""
        return type(self).from_dict(self.to_dict(), **overrides)

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in self.added_fields and v == f.default:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def hash(self) -> str:
        """Store key: the class name and every field."""
        return config_hash({"config": type(self).__name__, **self.to_dict()})

