"""Calibrate an instance's fabric from nvidia/nccl-tests logs (``placer calibrate nccl``).

Algorithm overview
1. Read every log (:mod:`placer.calibrate.nccltests`): runs, their ranks and samples.
2. Place each run: its ranks' hostnames name the instance's nodes (nodes imported from
   Slurm or Kubernetes are named after their hosts; ``hosts`` maps other names to node
   paths). The ranks of one NCCL_TESTS_SPLIT group (the log's ``Group`` column, or
   ``split``) meet at the narrowest level whose domain holds all their nodes; every group
   of a run must meet at the same level, since nccl-tests reports their mean time. A
   ``levels`` entry for the file overrides this. n is the group's rank count.
3. Group the samples by level, and by site where the logs cover several sites at a level
   (or ``per_site``): each group is fitted by :func:`placer.calibrate.fit.fit_level`.
4. The overlay sets exactly the fitted SPEC keys: ``topology.fabric.LEVEL`` for a level
   measured in one site (the topology default), ``topology.sites[].fabric.LEVEL`` per site
   (also when that site already overrides the level).

Imports the model, kernel index and the fit; never the CLI.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from placer.calibrate import nccltests
from placer.calibrate.fit import LevelFit, Point, fit_level
from placer.errors import CalibrationError, UsageError
from placer.model import Instance


def sig(x: float, digits: int = 4) -> float:
    """x rounded to `digits` significant digits (overlay values stay readable)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


class HostMap:
    """Hostnames -> node ids of an instance: a node's name, or its name up to the first dot
    (nccl-tests prints hostnames cut at the first dot), or an explicit map to node paths."""

    def __init__(self, inst: Instance, explicit: dict[str, str] | None = None) -> None:
        self.inst = inst
        self.index = ix = inst.index
        self.explicit: dict[str, int] = {}
        node_level = ix.n_levels - 1
        for host, path in (explicit or {}).items():
            r = ix.resolve(str(path))
            if r is None or r[0] != node_level:
                raise CalibrationError(
                    [(f"hosts.{host}", f"{path!r} is not a node path of {inst.name}")]
                )
            self.explicit[host] = r[1]
        self._names: dict[str, list[int]] | None = None

    def _table(self) -> dict[str, list[int]]:
        if self._names is None:
            ix = self.index
            L = ix.n_levels - 1
            t: dict[str, list[int]] = defaultdict(list)
            for n in range(ix.n_domains(L)):
                name = ix.domain_name(L, n)
                t[name].append(n)
                short = name.split(".", 1)[0]
                if short != name:
                    t[short].append(n)
            self._names = dict(t)
        return self._names

    def node(self, host: str) -> tuple[int | None, str]:
        """(node id, "") or (None, why)."""
        if host in self.explicit:
            return self.explicit[host], ""
        t = self._table()
        for key in (host, host.split(".", 1)[0]):
            ids = t.get(key)
            if ids and len(set(ids)) == 1:
                return ids[0], ""
            if ids:
                paths = ", ".join(self.index.node_path(i) for i in sorted(set(ids))[:3])
                return None, f"host {host!r} names several nodes ({paths}, ...): give --hosts"
        return None, f"host {host!r} is not a node of {self.inst.name}"

    def meet(self, nodes: list[int]) -> tuple[str | None, str | None]:
        """(meeting level, site) of a set of nodes; level None across sites."""
        ix = self.index
        g = ix.first_gpu[ix.n_levels - 1][np.asarray(nodes)]
        dom = ix.dom[:, g]
        same = (dom == dom[:, :1]).all(axis=1)
        depth = int(np.argmin(same)) if not same.all() else ix.n_levels
        site = ix.site_names[int(dom[0, 0])] if depth >= 1 else None
        return (ix.levels[depth - 1] if depth >= 1 else None), site


@dataclass
class RunInfo:
    """How one run was placed and used."""

    where: str
    collective: str
    collective_from: str
    n: int
    groups: int
    level: str | None
    site: str | None
    level_from: str  # "hosts" | "given"
    hosts: list[str]
    samples: int
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "collective": self.collective,
            "collective_from": self.collective_from,
            "ranks_per_group": self.n,
            "groups": self.groups,
            "level": self.level,
            "site": self.site,
            "level_from": self.level_from,
            "hosts": self.hosts,
            "samples": self.samples,
            "skipped_rows": [{"line": a, "why": b} for a, b in self.skipped_rows],
            "note": self.note,
        }


@dataclass
class NcclCalibration:
    """Result of :func:`placer.calibrate.nccl`: the fits, the overlay and how each run was
    read. ``before[(level, site)]`` is the instance's (latency_us, bandwidth_GBps) there."""

    instance: str
    runs: list[RunInfo]
    fits: list[LevelFit]
    overlay: dict[str, Any]
    before: dict[tuple[str, str | None], tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        fits = []
        for f in self.fits:
            d = f.to_dict()
            b = self.before.get((f.level, f.site))
            d["before"] = {"latency_us": b[0], "bandwidth_GBps": b[1]} if b else None
            fits.append(d)
        return {
            "instance": self.instance,
            "overlay": self.overlay,
            "fits": fits,
            "runs": [r.to_dict() for r in self.runs],
        }

    def overlay_yaml(self) -> str:
        import yaml

        head = (
            f"# placer calibrate nccl: fabric of {self.instance} fitted to "
            f"{len(self.runs)} nccl-tests run(s)\n"
        )
        return head + yaml.safe_dump(self.overlay, sort_keys=False, width=100)

    def plot(self, path: str | Path) -> Path:
        """Measured and fitted time by size, one panel per fitted level (PNG)."""
        from placer.calibrate.plot import plot_nccl

        return plot_nccl(self, Path(path))


def _as_logs(logs: Any) -> list[tuple[str, str | None]]:
    if isinstance(logs, str | Path):
        logs = [logs]
    if not isinstance(logs, list | tuple) or not logs:
        raise UsageError("logs: expected a non-empty list of nccl-tests log paths")
    out: list[tuple[str, str | None]] = []
    for i, x in enumerate(logs):
        if isinstance(x, str | Path):
            out.append((str(x), None))
        elif isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, str) for v in x):
            out.append((x[0], x[1]))  # (name, text)
        else:
            raise UsageError(f"logs[{i}]: expected a path or a (name, text) pair")
    return out


def _level_for(source: str, levels: dict[str, str] | str | None) -> str | None:
    if levels is None:
        return None
    if isinstance(levels, str):
        return levels
    for key in (source, Path(source).name):
        if key in levels:
            return levels[key]
    return None


def calibrate_nccl(
    instance: Instance,
    logs: Any,
    *,
    levels: dict[str, str] | str | None = None,
    hosts: dict[str, str] | None = None,
    split: str | None = None,
    collective: str | None = None,
    per_site: bool = False,
    confidence: float = 0.95,
) -> NcclCalibration:
    """Fit the instance's fabric to nccl-tests logs (see the module overview)."""
    inst = instance
    ix = inst.index
    level_names = list(inst.topology.levels)
    if collective is not None and collective not in nccltests.COLLECTIVES:
        raise UsageError(
            f"collective: {collective!r} is not one placer fits "
            f"({', '.join(nccltests.COLLECTIVES)})"
        )
    if isinstance(levels, str) and levels not in level_names:
        raise UsageError(
            f"level: {levels!r} is not a level of {inst.name} ({', '.join(level_names)})"
        )
    if isinstance(levels, dict):
        for k, v in levels.items():
            if v not in level_names:
                raise UsageError(
                    f"level {k}={v}: not a level of {inst.name} ({', '.join(level_names)})"
                )
    if split is not None:
        nccltests.split_rule(split, "split")
    hmap = HostMap(inst, hosts)
    problems: list[tuple[str, str]] = []
    runs_info: list[RunInfo] = []
    points: list[Point] = []
    for source, text in _as_logs(logs):
        try:
            runs = nccltests.read(source, text, collective)
        except CalibrationError as e:
            problems.extend(e.problems)
            continue
        given = _level_for(source, levels)
        for run in runs:
            coll = run.collective or "?"
            groups = run.groups(split)
            first = run.ranks[0]
            key = next((k for k, g in groups.items() if first in g), next(iter(groups)))
            n = len(groups[key])
            info = RunInfo(
                run.where,
                coll,
                run.collective_from,
                n,
                len(groups),
                None,
                None,
                "given" if given else "hosts",
                sorted({r.host for r in run.ranks}),
                len(run.samples),
                list(run.skipped),
            )
            runs_info.append(info)
            if coll not in nccltests.COLLECTIVES:
                info.note = f"{coll}: no SPEC 4 term has its cost; not fitted"
                continue
            sizes = {len(g) for g in groups.values()}
            if len(sizes) > 1:
                problems.append(
                    (
                        run.where,
                        f"NCCL_TESTS_SPLIT groups of different sizes "
                        f"{sorted(sizes)}: nccl-tests reports their mean time; "
                        "split into equal groups",
                    )
                )
                continue
            # where the groups meet
            metas: set[tuple[str | None, str | None]] = set()
            unknown: list[str] = []
            for g in groups.values():
                nodes = []
                for r in g:
                    node, why = hmap.node(r.host)
                    if node is None:
                        unknown.append(f"{why} (rank {r.rank}, line {r.line})")
                    else:
                        nodes.append(node)
                if nodes and len(nodes) == len(g):
                    metas.add(hmap.meet(nodes))
            if given:
                sites = {s for _, s in metas}
                site = (
                    next(iter(sites))
                    if len(sites) == 1
                    else (ix.site_names[0] if ix.n_sites == 1 else None)
                )
                level = given
            else:
                if unknown:
                    problems.append(
                        (
                            run.where,
                            unknown[0] + ": name the nodes after their "
                            "hosts (placer import slurm|kubernetes does), map them "
                            "with --hosts FILE, or give --level",
                        )
                    )
                    continue
                if len(metas) != 1:
                    lv = ", ".join(sorted(f"{lv or 'WAN'}@{s}" for lv, s in metas))
                    problems.append(
                        (
                            run.where,
                            f"its split groups meet at different levels "
                            f"({lv}): give --level for this file",
                        )
                    )
                    continue
                level, site = next(iter(metas))
                if level is None:
                    problems.append(
                        (
                            run.where,
                            "its ranks span sites: the WAN is priced per "
                            "link (SPEC 4), not fitted from nccl-tests; run one level "
                            "inside one site per log, or give --level",
                        )
                    )
                    continue
            info.level, info.site = level, site
            family = nccltests.COLLECTIVES[coll][0]
            for s in run.samples:
                points.append(
                    Point(
                        level,
                        site,
                        family,
                        n,
                        float(s.bytes),
                        s.time_us,
                        f"{run.source}:{s.line}",
                        s.in_place,
                        s.wrong,
                        run.cputime,
                    )
                )
    if problems:
        raise CalibrationError(problems)
    if not points:
        raise CalibrationError(
            [("logs", f"no run of a collective placer fits ({', '.join(nccltests.COLLECTIVES)})")]
        )
    fits = _fit_all(inst, points, per_site, confidence)
    overlay = build_overlay(fits)
    before: dict[tuple[str, str | None], tuple[float, float]] = {}
    for f in fits:
        li = level_names.index(f.level)
        if f.site is None:
            d = inst.topology.fabric.get(f.level)
            if d is not None:
                before[(f.level, None)] = (float(d.latency_us), float(d.bandwidth_GBps))
        else:
            s = ix.site_index[f.site]
            before[(f.level, f.site)] = (float(ix.lat_us[s, li]), float(ix.bw_GBps[s, li]))
    order = {lv: i for i, lv in enumerate(level_names)}
    fits.sort(key=lambda f: (-order[f.level], f.site or ""))
    return NcclCalibration(inst.name, runs_info, fits, overlay, before)


def _site_overrides(inst: Instance, site: str, level: str) -> bool:
    for s in inst.topology.sites:
        if s.name == site:
            return bool(s.fabric) and level in s.fabric
    return False


def _fit_all(inst: Instance, points: list[Point], per_site: bool, confidence: float):
    by_level: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_level[p.level].append(p)
    fits: list[LevelFit] = []
    for level, pts in by_level.items():
        sites = {p.site for p in pts}
        named = sites - {None}
        if per_site or len(named) >= 2:
            for s in sorted(sites, key=lambda x: x or ""):
                fits.append(fit_level([p for p in pts if p.site == s], confidence))
        else:
            s = next(iter(named)) if named else None
            target = s if s is not None and _site_overrides(inst, s, level) else None
            f = fit_level(
                [
                    Point(
                        p.level,
                        target,
                        p.family,
                        p.n,
                        p.bytes,
                        p.time_us,
                        p.where,
                        p.in_place,
                        p.wrong,
                        p.cputime,
                    )
                    for p in pts
                ],
                confidence,
            )
            fits.append(f)
    return fits


def _entry(f: LevelFit) -> dict[str, float]:
    e: dict[str, float] = {}
    if math.isfinite(f.latency_us):
        e["latency_us"] = sig(f.latency_us)
    if math.isfinite(f.bandwidth_GBps) and f.bandwidth_GBps > 0:
        e["bandwidth_GBps"] = sig(f.bandwidth_GBps)
    return e


def build_overlay(fits: list[LevelFit]) -> dict[str, Any]:
    """The overlay document setting the fitted keys, nothing else."""
    fabric: dict[str, dict[str, float]] = {}
    sites: dict[str, dict[str, dict[str, float]]] = {}
    for f in fits:
        e = _entry(f)
        if not e:
            continue
        if f.site is None:
            fabric[f.level] = e
        else:
            sites.setdefault(f.site, {})[f.level] = e
    topo: dict[str, Any] = {}
    if fabric:
        topo["fabric"] = fabric
    if sites:
        topo["sites"] = [{"name": s, "fabric": fb} for s, fb in sorted(sites.items())]
    return {"topology": topo}
