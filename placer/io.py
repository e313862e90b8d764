"""Reading and writing instance and placement files (YAML or JSON), and the JSON Schema.

A file is parsed as JSON first, then as YAML, whatever its extension (SPEC 6). YAML is
loaded safely (no object construction); duplicate mapping keys are refused in both
syntaxes; hostile files (too large, too deeply nested, alias bombs) are refused within
bounded time and memory. pydantic's errors are rewrapped with their location in the file.

Imports the model only; the semantic checks that need the expanded topology are run by
:func:`placer.validate.load_instance`.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from placer.errors import InstanceError, LocatedError, PlacementError
from placer.model import Instance, Placement

MAX_BYTES = 256 * 1024 * 1024
MAX_NODES = 20_000_000  # scalars + containers after alias expansion
MAX_DEPTH = 200

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_Loader):  # type: ignore[misc, valid-type]
    """Safe YAML loader that refuses duplicate mapping keys."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark
            ) from None
        if key in out:
            mark = key_node.start_mark
            raise _DuplicateKey(f"line {mark.line + 1}: duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.2 (core schema) floats that PyYAML's YAML 1.1 rules read as strings: an exponent
# without a dot or without a sign (`1e-3`, `1e400`, `2.5e3`). JSON reads them as numbers, and
# so does every YAML 1.2 parser; without this `failures_per_day: 1e-3` was refused as "not a
# number". Tried after the int and 1.1 float rules, so `8`, `0.5` and `1.0e+3` are unchanged.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_UniqueKeyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


class _DuplicateKey(Exception):
    pass


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"duplicate key {k!r}")
        out[k] = v
    return out


def _bounded(data: Any) -> None:
    """Refuse documents whose expansion (aliases followed) is too large, too deep or
    recursive. Each distinct container is measured once (memoised by identity), so an
    alias bomb costs time linear in the file, not in its expansion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        obj, done = stack.pop()
        if not isinstance(obj, (dict, list)):
            continue
        key = id(obj)
        children = list(obj.values()) if isinstance(obj, dict) else obj
        if done:
            on_path.discard(key)
            total, deep = 1, 0
            for c in children:
                if isinstance(c, (dict, list)):
                    total += size[id(c)]
                    deep = max(deep, depth[id(c)])
                else:
                    total += 1
            size[key] = total
            depth[key] = deep + 1
            if total > MAX_NODES:
                raise ValueError(
                    f"document expands to more than {MAX_NODES:,} values (an alias bomb?)"
                )
            if deep + 1 > MAX_DEPTH:
                raise ValueError(f"document is nested more than {MAX_DEPTH} levels deep")
            continue
        if key in size:
            continue
        if key in on_path:
            raise ValueError("document refers to itself (a recursive alias)")
        on_path.add(key)
        stack.append((obj, True))
        if len(on_path) > MAX_DEPTH:
            raise ValueError(f"document is nested more than {MAX_DEPTH} levels deep")
        for c in children:
            if isinstance(c, (dict, list)) and id(c) not in size:
                stack.append((c, False))


def parse_text(text: str, err: type[LocatedError] = InstanceError) -> Any:
    """Parse JSON first, then YAML; refuse duplicates, hostile nesting and alias bombs."""
    data: Any
    try:
        data = json.loads(text, object_pairs_hook=_json_pairs)
    except _DuplicateKey as e:
        raise err([("file", str(e))]) from None
    except RecursionError:
        raise err([("file", f"document is nested more than {MAX_DEPTH} levels deep")]) from None
    except ValueError:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - safe loader subclass
        except _DuplicateKey as e:
            raise err([("file", str(e))]) from None
        except RecursionError:
            raise err([("file", f"document is nested more than {MAX_DEPTH} levels deep")]) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise err([("file", f"{where}not valid YAML or JSON: {problem}")]) from None
    try:
        _bounded(data)
    except ValueError as e:
        raise err([("file", str(e))]) from None
    return data


def read_text(path: str | Path, err: type[LocatedError] = InstanceError) -> str:
    """Read a file's text with a size limit."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise err([("file", f"{p} is {size:,} bytes; at most {MAX_BYTES:,} are read")])
        return p.read_text(encoding="utf-8")
    except OSError as e:
        raise err([("file", f"cannot read {p}: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        raise err([("file", f"{p} is not UTF-8 text: {e.reason}")]) from None


def format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """('jobs', 3, 'tp') -> 'jobs[3].tp'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _pydantic_problems(e: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in e.errors(include_url=False):
        loc = [p for p in item["loc"] if p not in ("function-before[validate(), int]",)]
        kind = item["type"]
        msg = item["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "missing":
            msg = "is required"
        elif kind == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (refused here: a typo would change the plan)"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            msg = "must be a mapping"
        elif kind == "list_type":
            msg = "must be a list"
        problems.append((format_loc(loc), msg))
    # pydantic repeats a problem for each member of a union; keep the first of each place
    seen: set[tuple[str, str]] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]


def _extras(model: BaseModel, where: str = "") -> Iterator[tuple[str, Any]]:
    """Each unknown key kept in a model tree, as (its place, its value)."""
    for key, value in (model.model_extra or {}).items():
        yield f"{where + '.' if where else ''}{key}", value
    for fname in type(model).model_fields:
        value = getattr(model, fname)
        sub = f"{where}.{fname}" if where else fname
        if isinstance(value, BaseModel):
            yield from _extras(value, sub)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, BaseModel):
                    yield from _extras(v, f"{sub}[{i}]")
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    yield from _extras(v, f"{sub}.{k}")


def unknown_keys(model: BaseModel, where: str = "") -> list[str]:
    """Warnings for every unknown key kept in a model tree."""
    return [f"{place}: unknown key ignored" for place, _ in _extras(model, where)]


def nonfinite_extras(model: BaseModel) -> list[tuple[str, str]]:
    """Problems for every non-finite number (``.inf``, ``.nan``, ``1e400``) under an unknown
    key of a model tree: SPEC 6 refuses them everywhere, and the fields' own types refuse them
    in every known key."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, place: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            out.append((place, f"must be a finite number, not {value!r}"))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{place}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{place}[{i}]")

    for place, value in _extras(model):
        walk(value, place)
    return out


def instance_from_data(data: Any) -> Instance:
    """Validate parsed data field by field into an :class:`Instance` (no cross-checks)."""
    if not isinstance(data, dict):
        raise InstanceError([("file", "the top level must be a mapping")])
    try:
        inst = Instance.model_validate(data)
    except ValidationError as e:
        raise InstanceError(_pydantic_problems(e)) from None
    bad = nonfinite_extras(inst)
    if bad:
        raise InstanceError(bad)
    inst._warnings.extend(unknown_keys(inst))
    return inst


def placement_from_data(data: Any) -> Placement:
    """Validate parsed data into a :class:`Placement` (GPU ids are checked later)."""
    if not isinstance(data, dict):
        raise PlacementError([("file", "the top level must be a mapping")])
    try:
        placement = Placement.model_validate(data)
    except ValidationError as e:
        raise PlacementError(_pydantic_problems(e)) from None
    bad = nonfinite_extras(placement)
    if bad:
        raise PlacementError(bad)
    return placement


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to `path` through a temporary file: nothing is half-written."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def instance_schema() -> dict:
    """JSON Schema of the instance format."""
    return Instance.model_json_schema()


def placement_schema() -> dict:
    """JSON Schema of the placement format."""
    return Placement.model_json_schema()
