"""Annotated scalar types shared by the model: SPEC 6's rules for numbers, names and booleans.

- Integers: an integral float (``8.0``) is accepted; booleans and numeric strings are not
  numbers; anything above 10^9 in magnitude is refused.
- Numbers: finite only (``.inf``, ``.nan``, ``1e400`` are refused).
- Names: non-empty strings without ``/``.

Imports neither numpy nor any solver.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BeforeValidator, StrictBool, WithJsonSchema

INT_LIMIT = 10**9


def _number(v: Any) -> int | float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"must be a number, not {type(v).__name__} {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"must be a finite number, not {v!r}")
    return v


def _integer(v: Any) -> int:
    v = _number(v)
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError(f"must be an integer, not {v!r}")
        v = int(v)
    if abs(v) > INT_LIMIT:
        raise ValueError(f"must be at most 10^9 in magnitude, not {v}")
    return v


def _check(pred: Any, what: str, conv: Any) -> Any:
    def validate(v: Any) -> Any:
        v = conv(v)
        if not pred(v):
            raise ValueError(f"must be {what}, not {v!r}")
        return v

    return validate


def _name(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, not {type(v).__name__} {v!r}")
    if not v:
        raise ValueError("must be a non-empty name")
    if "/" in v:
        raise ValueError(f"must not contain '/': {v!r}")
    return v


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, not {type(v).__name__} {v!r}")
    return v


# each type's JSON schema states its limits, so that a schema-valid value is a valid value
_INT_MAX = {"maximum": INT_LIMIT}
PosInt = Annotated[
    int,
    BeforeValidator(_check(lambda x: x >= 1, "a positive integer", _integer)),
    WithJsonSchema({"type": "integer", "minimum": 1, **_INT_MAX}),
]
NonNegInt = Annotated[
    int,
    BeforeValidator(_check(lambda x: x >= 0, "a non-negative integer", _integer)),
    WithJsonSchema({"type": "integer", "minimum": 0, **_INT_MAX}),
]
PosFloat = Annotated[
    float,
    BeforeValidator(_check(lambda x: x > 0, "a positive number", _number)),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
]
NonNegFloat = Annotated[
    float,
    BeforeValidator(_check(lambda x: x >= 0, "a non-negative number", _number)),
    WithJsonSchema({"type": "number", "minimum": 0}),
]
AtLeastOne = Annotated[
    float,
    BeforeValidator(_check(lambda x: x >= 1, "at least 1", _number)),
    WithJsonSchema({"type": "number", "minimum": 1}),
]
Fraction = Annotated[
    float,
    BeforeValidator(_check(lambda x: 0 <= x <= 1, "a number in [0, 1]", _number)),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]


def _mix_types(v: Any) -> Any:
    # SPEC v2: false (default) | slowest | balanced; `true` is refused: the rule must be named
    if v is False or v is None:
        return False
    if v is True:
        raise ValueError("must name the speed rule: slowest or balanced (true is refused)")
    if v in ("slowest", "balanced"):
        return v
    raise ValueError(f"must be false, 'slowest' or 'balanced', not {v!r}")


def _force(v: Any) -> Any:
    # SPEC v2: accept | decline | null (free)
    if v is None or v in ("accept", "decline"):
        return v
    raise ValueError(f"must be 'accept', 'decline' or null, not {v!r}")


Number = Annotated[float, BeforeValidator(_number)]
# the schema names the values exactly (`true` and other strings are refused)
MixTypes = Annotated[
    bool | str,
    BeforeValidator(_mix_types),
    WithJsonSchema({"enum": [False, "slowest", "balanced"]}),
]
Force = Annotated[
    str | None, BeforeValidator(_force), WithJsonSchema({"enum": ["accept", "decline", None]})
]
Name = Annotated[
    str,
    BeforeValidator(_name),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": "^[^/]+$"}),
]
Str = Annotated[str, BeforeValidator(_string)]
Bool = StrictBool
