"""Cluster topologies of the generators: entries, sites, halls, WAN links, power caps.

Imports numpy and the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from placer.generators.catalogue import (
    DCI_EQUIPMENT_US,
    FIBRE_US_PER_KM,
    GPU_TYPES,
    MAX_GPUS,
    MAX_NODES,
    ROUTE_STRETCH,
    WAN_LADDER_GBPS,
    _r,
)

# --------------------------------------------------------------------------- cluster model


@dataclass
class _Entry:
    """One `domains` entry of a site: `count` children at levels[1], each of `shape`."""

    site: str
    name: str
    count: int | None  # None: one child named exactly `name`
    shape: tuple[int, ...]
    gpu_type: str
    gpn: int
    below: tuple[str, ...]  # level names of the shape digits (levels[2:])

    @property
    def children(self) -> int:
        return self.count or 1

    @property
    def nodes_per_child(self) -> int:
        return math.prod(self.shape)

    @property
    def nodes(self) -> int:
        return self.children * self.nodes_per_child

    @property
    def gpus_per_child(self) -> int:
        return self.nodes_per_child * self.gpn

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpn

    def child_path(self, child: int) -> str:
        name = f"{self.name}{child}" if self.count is not None else self.name
        return f"{self.site}/{name}"

    def path(self, node: int, depth: int | None = None) -> str:
        """Path of entry-global `node`, cut after `depth` shape levels (None = the node)."""
        child, rem = divmod(node, self.nodes_per_child)
        digits = []
        for f in reversed(self.shape):
            rem, d = divmod(rem, f)
            digits.append(d)
        digits.reverse()
        depth = len(self.shape) if depth is None else depth
        parts = [self.child_path(child)]
        parts += [f"{self.below[k]}{digits[k]}" for k in range(depth)]
        return "/".join(parts)

    def as_dict(self, site_type: str | None, site_gpn: int | None) -> dict:
        d: dict[str, Any] = {"name": self.name}
        if self.count is not None:
            d["count"] = self.count
        if self.gpu_type != site_type:
            d["gpu_type"] = self.gpu_type
        if self.gpn != site_gpn:
            d["gpus_per_node"] = self.gpn
        d["shape"] = list(self.shape)
        return d


@dataclass
class _Cluster:
    """What the job mix and the offers need to know about a generated topology."""

    levels: list[str]
    entries: list[_Entry]
    sites: list[str]
    wan_connected: bool = True
    blocked: dict[int, set[int]] = field(default_factory=dict)  # entry -> nodes not to use
    down_gpus: dict[tuple[int, int], int] = field(default_factory=dict)  # (entry, child) -> n
    unavailable: list[str] = field(default_factory=list)
    cursor: dict[int, int] = field(default_factory=dict)

    @property
    def types(self) -> list[str]:
        return sorted({e.gpu_type for e in self.entries})

    def gpn(self, t: str) -> int:
        return next(e.gpn for e in self.entries if e.gpu_type == t)

    def site_capacity(self, types: list[str] | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            if types is None or e.gpu_type in types:
                out[e.site] = out.get(e.site, 0) + e.gpus
        return out

    def level1_domains(self, types: list[str] | None) -> int:
        """Most level-1 domains of one allowed type (a job's GPUs are all of one type)."""
        ts = self.types if types is None else types
        return max(sum(e.children for e in self.entries if e.gpu_type == t) for t in ts)

    def sites_with(self, types: list[str] | None) -> int:
        """Most sites holding one allowed type."""
        ts = self.types if types is None else types
        return max(len({e.site for e in self.entries if e.gpu_type == t}) for t in ts)

    def total_gpus(self) -> int:
        return sum(e.gpus for e in self.entries)

    def available_in_child(self, ei: int, child: int) -> int:
        return self.entries[ei].gpus_per_child - self.down_gpus.get((ei, child), 0)

    # ----------------------------------------------------------------- unavailable parts

    def mark_unavailable(self, rng: np.random.Generator, nodes: int, racks: int, gpus: int) -> None:
        """Mark random nodes, racks (parents of nodes) and single GPUs unavailable."""
        weights = np.array([e.nodes for e in self.entries], dtype=float)
        weights /= weights.sum()
        seen: set[str] = set()

        def pick() -> tuple[int, int]:
            ei = int(rng.choice(len(self.entries), p=weights))
            return ei, int(rng.integers(self.entries[ei].nodes))

        for kind, n in (("rack", racks), ("node", nodes), ("gpu", gpus)):
            for _ in range(n):
                for _try in range(20):
                    ei, node = pick()
                    e = self.entries[ei]
                    if kind == "rack" and len(e.shape) >= 2:
                        first = node - node % e.shape[-1]
                        span = range(first, first + e.shape[-1])
                        path = e.path(node, len(e.shape) - 1)
                    elif kind == "gpu":
                        k = int(rng.integers(e.gpn))
                        span, path = range(node, node + 1), f"{e.path(node)}/gpu{k}"
                    else:
                        span, path = range(node, node + 1), e.path(node)
                    b = self.blocked.setdefault(ei, set())
                    if any(x in b for x in span) or path in seen:
                        continue
                    b.update(span)
                    seen.add(path)
                    self.unavailable.append(path)
                    child = node // e.nodes_per_child
                    lost = e.gpn * len(span) if kind != "gpu" else 1
                    self.down_gpus[(ei, child)] = self.down_gpus.get((ei, child), 0) + lost
                    break

    # ----------------------------------------------------------------- running jobs

    def allocate(
        self, rng: np.random.Generator, types: list[str] | None, n_gpus: int, tp: int
    ) -> list[str] | None:
        """GPU ids (rank order) for a running job, inside one entry of an allowed type.

        Nodes are taken in path order from a cursor (one per entry, starting at a random
        level-1 child, so running jobs sit together as on a real cluster). Each TP group
        lies in one node, or, when tp > GPUs per node (NVL72 trays), in consecutive nodes
        of one rack. Unavailable nodes (and nodes with a drained GPU) are skipped.
        """
        cand = [i for i, e in enumerate(self.entries) if types is None or e.gpu_type in types]
        for ei in rng.permutation(cand).tolist():
            got = self._take(rng, ei, n_gpus, tp)
            if got is not None:
                return got
        return None

    def _take(self, rng: np.random.Generator, ei: int, n_gpus: int, tp: int) -> list[str] | None:
        e = self.entries[ei]
        if ei not in self.cursor:
            self.cursor[ei] = int(rng.integers(e.children)) * e.nodes_per_child
        cur = self.cursor[ei]
        blocked = self.blocked.get(ei, set())
        group = tp // e.gpn if tp > e.gpn else 1
        rack = e.shape[-1]
        if group > rack:
            return None
        need = -(-n_gpus // e.gpn)
        nodes: list[int] = []
        while len(nodes) < need:
            if cur + group > e.nodes:
                return None
            if group > 1 and cur % rack + group > rack:
                cur = (cur // rack + 1) * rack
                continue
            span = range(cur, cur + group)
            if any(x in blocked for x in span):
                cur += 1
                continue
            nodes.extend(span)
            cur += group
        self.cursor[ei] = cur
        ids = [f"{e.path(n)}/gpu{k}" for n in nodes for k in range(e.gpn)]
        return ids[:n_gpus]


def _hall_entries(
    site: str,
    units: int,
    per_hall: int,
    shape_below: tuple[int, ...],
    gpu_type: str,
    gpn: int,
    below: tuple[str, ...],
    name: str = "hall",
    first: int = 0,
) -> list[_Entry]:
    """`units` level-2 domains (pods / SUs) grouped into halls of at most `per_hall`;
    a remainder becomes one more, smaller hall named explicitly."""
    per_hall = max(1, min(per_hall, units))
    q, r = divmod(units, per_hall)
    out = []
    if q and first == 0:
        out.append(_Entry(site, name, q, (per_hall, *shape_below), gpu_type, gpn, below))
    elif q:
        out += [
            _Entry(site, f"{name}{first + i}", None, (per_hall, *shape_below), gpu_type, gpn, below)
            for i in range(q)
        ]
    if r:
        out.append(
            _Entry(site, f"{name}{first + q}", None, (r, *shape_below), gpu_type, gpn, below)
        )
    return out


def _wan(
    rng: np.random.Generator,
    sites: list[str],
    latency_us: Any,
    bandwidth_GBps: Any,
    failures_per_day: Any,
    max_km: float,
) -> list[dict]:
    """Full mesh between sites. Latency from random site positions in a square of side
    `max_km` (route = straight line x ROUTE_STRETCH, >= 1 km) unless given; bandwidth from
    the 0.4 / 1.6 / 6.4 / 25.6 Tb/s ladder unless given. A scalar applies to every link,
    a list gives one value per link (pairs in order (0,1), (0,2), ..., (1,2), ...)."""
    pairs = [(a, b) for i, a in enumerate(sites) for b in sites[i + 1 :]]
    pos = rng.random((len(sites), 2)) * max_km
    idx = {s: i for i, s in enumerate(sites)}

    def per_link(v: Any, k: int, what: str) -> Any:
        if isinstance(v, list | tuple):
            if len(v) != len(pairs):
                raise ValueError(f"{what}: {len(v)} values for {len(pairs)} WAN links")
            return v[k]
        return v

    out = []
    for k, (a, b) in enumerate(pairs):
        km = max(1.0, float(np.linalg.norm(pos[idx[a]] - pos[idx[b]])) * ROUTE_STRETCH)
        lat = per_link(latency_us, k, "wan_latency_us")
        lat = km * FIBRE_US_PER_KM + DCI_EQUIPMENT_US if lat is None else float(lat)
        bw = per_link(bandwidth_GBps, k, "wan_bandwidth_GBps")
        bw = float(rng.choice(WAN_LADDER_GBPS[:3])) if bw is None else float(bw)
        fr = per_link(failures_per_day, k, "wan_failures_per_day")
        fr = float(rng.uniform(0.05, 0.3)) if fr is None else float(fr)
        out.append(
            {
                "between": [a, b],
                "latency_us": _r(lat, 1),
                "bandwidth_GBps": _r(bw, 2),
                "failures_per_day": _r(fr, 3),
            }
        )
    return out


def _topology(cl: _Cluster, fabric: dict, site_extra: dict[str, dict], wan: list[dict]) -> dict:
    sites = []
    for s in cl.sites:
        es = [e for e in cl.entries if e.site == s]
        types = {e.gpu_type for e in es}
        gpns = {e.gpn for e in es}
        st = types.pop() if len(types) == 1 else None
        sg = gpns.pop() if len(gpns) == 1 else None
        d: dict[str, Any] = {"name": s}
        d.update(site_extra.get(s, {}))
        if st is not None:
            d["gpu_type"] = st
        if sg is not None:
            d["gpus_per_node"] = sg
        d["domains"] = [e.as_dict(st, sg) for e in es]
        sites.append(d)
    topo: dict[str, Any] = {"levels": list(cl.levels), "fabric": fabric, "sites": sites}
    if wan:
        topo["wan"] = wan
    if cl.unavailable:
        topo["unavailable"] = list(cl.unavailable)
    return topo


def _power_caps(cl: _Cluster, factor: float | dict[str, float] | None) -> dict[str, float]:
    """Per-site power cap = factor x full load of the site's available GPUs (kW)."""
    if factor is None:
        return {}
    out = {}
    for s in cl.sites:
        f = factor.get(s) if isinstance(factor, dict) else factor
        if f is None:
            continue
        kw = 0.0
        for ei, e in enumerate(cl.entries):
            if e.site != s:
                continue
            avail = sum(cl.available_in_child(ei, c) for c in range(e.children))
            kw += avail * GPU_TYPES[e.gpu_type]["power_kW"]
        out[s] = _r(math.ceil(kw * f), 0)
    return out


def _check_limits(cl: _Cluster) -> None:
    nodes = sum(e.nodes for e in cl.entries)
    gpus = cl.total_gpus()
    if gpus > MAX_GPUS or nodes > MAX_NODES:
        raise ValueError(
            f"{gpus:,} GPUs in {nodes:,} nodes exceeds SPEC's limits "
            f"({MAX_GPUS:,} GPUs, {MAX_NODES:,} nodes)"
        )
