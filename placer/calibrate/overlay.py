"""Fabric overlays: the SPEC keys a calibration sets, applied to an instance document.

An overlay is a YAML/JSON document holding only keys an instance already has, set to
measured values; nothing else is allowed, so a typo cannot change a plan silently:

```yaml
topology:
  fabric: {rack: {latency_us: 4.1, bandwidth_GBps: 48.2}}         # the topology default
  sites: [{name: east, fabric: {site: {bandwidth_GBps: 21.5}}}]   # one site's override
jobs: [{name: train-13b, compute_ms: 812, overlap: {dp: 0.74}, comm: {dp_messages: 3}},
       {name: frontier, plans: [{name: sync-dp, compute_ms: 6100}]}]           # v3: a plan's
```

Levels, sites, jobs and plans must exist in the instance. Values merge field by field into
the instance (a fabric entry giving only the latency keeps the bandwidth; ``overlap`` and
``comm`` merge key by key; a plan's merge over the values the plan runs with, its own or the
job's, since a plan's ``comm`` replaces the job's wholesale), and the result is validated
like any instance.

Imports io and validate; no scipy (``--fabric`` works without the ``calibrate`` extra).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from placer.errors import ArgumentTypeError, CalibrationError
from placer.io import parse_text, read_text

FABRIC_KEYS = {"latency_us": 0.0, "bandwidth_GBps": None}  # key -> lower bound (None: > 0)
DIMS = ("tp", "pp", "dp", "ep")
COMM_KEYS = tuple(f"{d}_MB" for d in DIMS) + tuple(f"{d}_messages" for d in DIMS)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_value(loc: str, key: str, v: Any, problems: list[tuple[str, str]]) -> None:
    if not _num(v):
        problems.append((loc, f"must be a finite number, got {v!r}"))
        return
    if key in ("bandwidth_GBps", "compute_ms") or key.endswith("_messages"):
        if v <= 0:
            problems.append((loc, f"must be > 0, got {v}"))
    elif key.startswith("overlap."):
        if not 0 <= v <= 1:
            problems.append((loc, f"must be in [0, 1], got {v}"))
    elif v < 0:
        problems.append((loc, f"must be >= 0, got {v}"))


def _check_fabric(loc: str, fab: Any, levels: list[str], problems: list[tuple[str, str]]) -> None:
    if not isinstance(fab, dict):
        problems.append((loc, "must be a mapping of level -> {latency_us, bandwidth_GBps}"))
        return
    for level, entry in fab.items():
        here = f"{loc}.{level}"
        if level not in levels:
            problems.append((here, f"unknown level (levels: {', '.join(levels)})"))
            continue
        if not isinstance(entry, dict) or not entry:
            problems.append((here, "must be a mapping with latency_us and/or bandwidth_GBps"))
            continue
        for k, v in entry.items():
            if k not in FABRIC_KEYS:
                problems.append(
                    (
                        f"{here}.{k}",
                        "unknown key (an overlay sets only "
                        "latency_us and bandwidth_GBps of a level)",
                    )
                )
            else:
                _check_value(f"{here}.{k}", k, v, problems)


def _check_job_keys(here: str, j: dict, p: list[tuple[str, str]], plans_ok: bool) -> None:
    for k, v in j.items():
        if k == "name" or (k == "plans" and plans_ok):
            continue
        if k == "compute_ms":
            _check_value(f"{here}.compute_ms", "compute_ms", v, p)
        elif k in ("overlap", "comm"):
            allowed = DIMS if k == "overlap" else COMM_KEYS
            if not isinstance(v, dict):
                p.append((f"{here}.{k}", "must be a mapping"))
                continue
            for kk, vv in v.items():
                if kk not in allowed:
                    p.append((f"{here}.{k}.{kk}", f"unknown key (allowed: {', '.join(allowed)})"))
                else:
                    key = f"overlap.{kk}" if k == "overlap" else kk
                    _check_value(f"{here}.{k}.{kk}", key, vv, p)
        else:
            what = "a job" if plans_ok else "a plan"
            also = ", overlap, comm and plans" if plans_ok else ", overlap and comm"
            p.append(
                (f"{here}.{k}", f"unknown key: {what} of an overlay sets only compute_ms{also}")
            )


def check_overlay(
    overlay: Any, base: dict[str, Any], where: str = "overlay"
) -> list[tuple[str, str]]:
    """Located problems of an overlay against an instance document (empty when usable)."""
    p: list[tuple[str, str]] = []
    pre = f"{where}: " if where else ""
    if not isinstance(overlay, dict):
        return [(where, "an overlay is a mapping with `topology` and/or `jobs`")]
    topo_base = base.get("topology") if isinstance(base, dict) else None
    topo_base = topo_base if isinstance(topo_base, dict) else {}
    levels = [str(x) for x in topo_base.get("levels") or []]
    sites = [s.get("name") for s in topo_base.get("sites") or [] if isinstance(s, dict)]
    jobs = [j.get("name") for j in (base.get("jobs") or []) if isinstance(j, dict)]
    for key in overlay:
        if key not in ("topology", "jobs"):
            p.append(
                (
                    f"{pre}{key}",
                    "unknown key: an overlay sets only topology.fabric, "
                    "topology.sites[].fabric and jobs[] (compute_ms, overlap, comm)",
                )
            )
    topo = overlay.get("topology")
    if topo is not None:
        if not isinstance(topo, dict):
            p.append((f"{pre}topology", "must be a mapping with `fabric` and/or `sites`"))
            topo = {}
        for key in topo:
            if key not in ("fabric", "sites"):
                p.append(
                    (
                        f"{pre}topology.{key}",
                        "unknown key: an overlay sets only "
                        "topology.fabric and topology.sites[].fabric",
                    )
                )
        if "fabric" in topo:
            _check_fabric(f"{pre}topology.fabric", topo["fabric"], levels, p)
        ss = topo.get("sites")
        if ss is not None:
            if not isinstance(ss, list):
                p.append((f"{pre}topology.sites", "must be a list of {name, fabric}"))
                ss = []
            seen: set[str] = set()
            for i, s in enumerate(ss):
                here = f"{pre}topology.sites[{i}]"
                if not isinstance(s, dict):
                    p.append((here, "must be a mapping {name, fabric}"))
                    continue
                for k in s:
                    if k not in ("name", "fabric"):
                        p.append(
                            (
                                f"{here}.{k}",
                                "unknown key: a site of an overlay sets only its fabric",
                            )
                        )
                name = s.get("name")
                if name not in sites:
                    p.append(
                        (
                            f"{here}.name",
                            f"unknown site {name!r} (sites: {', '.join(map(str, sites))})",
                        )
                    )
                elif name in seen:
                    p.append((f"{here}.name", f"site {name!r} given twice"))
                seen.add(str(name))
                if "fabric" in s:
                    _check_fabric(f"{here}.fabric", s["fabric"], levels, p)
    js = overlay.get("jobs")
    if js is not None:
        if not isinstance(js, list):
            p.append((f"{pre}jobs", "must be a list of {name, compute_ms, overlap, comm, plans}"))
            js = []
        base_jobs = {j.get("name"): j for j in (base.get("jobs") or []) if isinstance(j, dict)}
        for i, j in enumerate(js):
            here = f"{pre}jobs[{i}]"
            if not isinstance(j, dict):
                p.append((here, "must be a mapping"))
                continue
            if j.get("name") not in jobs:
                p.append((f"{here}.name", f"unknown job {j.get('name')!r}"))
            _check_job_keys(here, j, p, plans_ok=True)
            ps = j.get("plans")
            if ps is None:
                continue
            if not isinstance(ps, list):
                p.append((f"{here}.plans", "must be a list of {name, compute_ms, overlap, comm}"))
                continue
            known = [
                q.get("name")
                for q in (base_jobs.get(j.get("name"), {}).get("plans") or [])
                if isinstance(q, dict)
            ]
            for k, q in enumerate(ps):
                qh = f"{here}.plans[{k}]"
                if not isinstance(q, dict):
                    p.append((qh, "must be a mapping"))
                    continue
                if q.get("name") not in known:
                    p.append(
                        (
                            f"{qh}.name",
                            f"unknown plan {q.get('name')!r} of job "
                            f"{j.get('name')!r} (plans: {', '.join(map(str, known)) or 'none'})",
                        )
                    )
                _check_job_keys(qh, q, p, plans_ok=False)
    return p


def apply_overlay(base: dict[str, Any], overlay: dict[str, Any], where: str = "overlay") -> dict:
    """A new instance document: ``base`` with the overlay's values merged in.

    Raises :class:`~placer.errors.CalibrationError` naming every problem of the overlay.
    """
    problems = check_overlay(overlay, base, where)
    if problems:
        raise CalibrationError(problems)
    doc = copy.deepcopy(base)
    topo = overlay.get("topology") or {}
    dt = doc["topology"]
    for level, entry in (topo.get("fabric") or {}).items():
        cur = dt.setdefault("fabric", {})
        cur[level] = {**(cur.get(level) or {}), **entry}
    for s in topo.get("sites") or []:
        site = next(x for x in dt["sites"] if isinstance(x, dict) and x.get("name") == s["name"])
        fab = site.get("fabric") or {}
        for level, entry in (s.get("fabric") or {}).items():
            fab[level] = {**(fab.get(level) or {}), **entry}
        site["fabric"] = fab
    for j in overlay.get("jobs") or []:
        job = next(x for x in doc["jobs"] if isinstance(x, dict) and x.get("name") == j["name"])
        for k, v in j.items():
            if k in ("overlap", "comm"):
                job[k] = {**(job.get(k) or {}), **v}
            elif k not in ("name", "plans"):
                job[k] = v
        for q in j.get("plans") or []:
            plan = next(
                x for x in job["plans"] if isinstance(x, dict) and x.get("name") == q["name"]
            )
            for k, v in q.items():
                if k in ("overlap", "comm"):
                    # a plan's overlap / comm replaces the job's wholesale (SPEC 1.2, v3): the
                    # measured keys go over the values the plan runs with now
                    plan[k] = {**(plan.get(k) or job.get(k) or {}), **v}
                elif k != "name":
                    plan[k] = v
    return doc


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML/JSON file holding a mapping (duplicate keys refused); errors name the file."""
    try:
        data = parse_text(read_text(path, CalibrationError), CalibrationError)
    except CalibrationError as e:
        raise CalibrationError(
            [(str(path) if loc == "file" else f"{path}: {loc}", msg) for loc, msg in e.problems]
        ) from None
    if not isinstance(data, dict):
        raise CalibrationError([(str(path), f"expected {what}")])
    return data


def read_overlay(path: str | Path) -> dict[str, Any]:
    """An overlay file parsed (JSON or YAML, duplicate keys refused)."""
    return read_mapping(path, "an overlay: a mapping with `topology` and/or `jobs`")


def read_hosts(path: str | Path) -> dict[str, str]:
    """A hostname -> node path map (``--hosts``)."""
    data = read_mapping(path, "a mapping hostname -> node path")
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise CalibrationError([(f"{path}: {bad[0]}", "expected a node path (a string)")])
    return {str(k): v for k, v in data.items()}


def read_document(path: str | Path) -> dict[str, Any]:
    """An instance file parsed, not yet validated."""
    from placer.errors import InstanceError

    data = parse_text(read_text(path))
    if not isinstance(data, dict):
        raise InstanceError([("file", "an instance is a mapping with name, topology and jobs")])
    return data


def calibrated_document(instance: Any, overlay: Any) -> dict[str, Any]:
    """The instance document with the overlay applied: ``instance`` a path or a parsed
    document, ``overlay`` a path or a parsed overlay."""
    if isinstance(instance, str | Path):
        base = read_document(instance)
    elif isinstance(instance, dict):
        base = instance
    else:
        raise ArgumentTypeError(
            f"instance: expected an instance file path or document, got {type(instance).__name__}"
        )
    if isinstance(overlay, str | Path):
        where, ov = str(overlay), read_overlay(overlay)
    elif isinstance(overlay, dict):
        where, ov = "overlay", overlay
    else:
        raise ArgumentTypeError(
            f"overlay: expected an overlay file path or document, got {type(overlay).__name__}"
        )
    return apply_overlay(base, ov, where)


def load_instance_with(instance: str | Path, overlay: str | Path | dict | None):
    """Load, validate and expand an instance file with an overlay applied (``--fabric``)."""
    from placer.validate import instance_from_dict, load_instance

    if overlay is None:
        return load_instance(instance)
    return instance_from_dict(calibrated_document(instance, overlay))
