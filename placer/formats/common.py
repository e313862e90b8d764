"""Shared pieces of the operators' formats: located warnings, fabric table, type names."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from placer.errors import InstanceError


@dataclass(frozen=True)
class FormatWarning:
    """A defect found (and resolved) in an operator's file, with its place."""

    file: str
    line: int | None
    what: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.what}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "what": self.what}


# Fabric when the files give no speed (documented in docs/formats.md). Latency one way in
# microseconds, bandwidth per GPU each way in GB/s: NVLink inside a node, one NDR 400 Gb/s
# rail per GPU (50 GB/s) through a non-blocking fat tree, +2 us per switch tier.
NODE_FABRIC = {"latency_us": 2.0, "bandwidth_GBps": 450.0}
LEAF_FABRIC = {"latency_us": 4.0, "bandwidth_GBps": 50.0}
TIER_STEP_US = 2.0
# Slurm topology/block blocks are NVLink domains (e.g. GB200 NVL72 racks).
BLOCK_FABRIC = {"latency_us": 3.0, "bandwidth_GBps": 450.0}

# Slurm Gres / GPU feature discovery product names -> SPEC GPU type names.
_KNOWN_TYPES = [
    "GB300",
    "GB200",
    "B300",
    "B200",
    "H200",
    "H100",
    "H800",
    "A100",
    "A800",
    "L40S",
    "L40",
    "L4",
    "V100",
    "MI355X",
    "MI325X",
    "MI300X",
    "MI250X",
]


def spec_type(raw: str, type_map: dict[str, str]) -> str:
    """`h100` -> `H100`, `NVIDIA-H100-80GB-HBM3` -> `H100`; `type_map` first (exact, then lower)."""
    if raw in type_map:
        return type_map[raw]
    if raw.lower() in type_map:
        return type_map[raw.lower()]
    up = raw.upper()
    for t in _KNOWN_TYPES:
        if re.search(rf"(^|[^A-Z0-9]){t}([^A-Z0-9]|$)", up):
            return t
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", up).strip("-") or "GPU"


def parse_type_map(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """`["h100=H100", "a100_80g=A100"]` -> dict; a bad item raises a located error."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out: dict[str, str] = {}
    for i, it in enumerate(items):
        k, sep, v = it.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise InstanceError([(f"--type-map[{i}]", f"expected RAW=TYPE, got {it!r}")])
        out[k.strip()] = v.strip()
    return out


def read_text(path: str | Path, what: str) -> str:
    """The file's text (UTF-8); a file that cannot be read or is not UTF-8 is one located
    error (`file:line: ...`), never a traceback."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InstanceError([(str(path), f"cannot read {what}: {e.strerror or e}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InstanceError(
            [
                (
                    f"{path}:{line}",
                    f"{what} is not UTF-8 text: byte 0x{data[e.start]:02x} at column {col}; "
                    "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                )
            ]
        ) from None


def read_yaml(path: str | Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InstanceError([(loc, f"not valid YAML/JSON: {getattr(e, 'problem', e)}")]) from None


class LineLoader(yaml.SafeLoader):
    """A YAML loader whose mappings carry their 1-based line as `__line__`."""


def _mapping_with_line(loader: LineLoader, node: yaml.MappingNode) -> dict:
    d = loader.construct_mapping(node, deep=True)
    d["__line__"] = node.start_mark.line + 1
    return d


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def load_partial(path: str | Path) -> dict[str, Any]:
    """`jobs`, `leases`, `gpu_types` of a partial instance file (other keys are ignored)."""
    doc = read_yaml(path, "the jobs file")
    if not isinstance(doc, dict):
        raise InstanceError([(str(path), "expected a mapping with jobs, leases, gpu_types")])
    return {k: doc[k] for k in ("jobs", "leases", "gpu_types") if k in doc}


def load_wan(path: str | Path) -> list[dict[str, Any]]:
    """WAN links: a list, or a mapping with `wan` (or `topology.wan`)."""
    doc = read_yaml(path, "the WAN file")
    if isinstance(doc, dict):
        doc = doc.get("wan", (doc.get("topology") or {}).get("wan"))
    if not isinstance(doc, list):
        raise InstanceError([(str(path), "expected a list of WAN links (or a mapping with wan)")])
    return doc


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text through a temporary file in the same folder: nothing is half-written."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
