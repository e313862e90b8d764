"""What the planner reads of an instance's hardware, and the step time of a plan at its best
level.

:func:`read_hardware` validates the topology and `gpu_types` of a raw instance document
(the same checks and located errors as the loader) and summarises it without expanding a
GPU: per site, the fabric of every level and, per GPU type, the most GPUs of that type in
one domain of each level; the WAN paths between sites (least latency, bottleneck
bandwidth); per GPU type its memory, dense peak FLOP/s and speed (the instance's own
`memory_GB` first, then the bundled catalogue, :mod:`placer.planner.catalogue`).

:func:`best_step` is the step time of a plan where its groups meet at the fastest level
whose domain can hold them (and its scope allows), with SPEC 4's formulas from
:mod:`placer.kernel.cost`. It is a best case: it ignores `unavailable` hardware, the jobs
around it and WAN links shared with other jobs.

Imports the model, the kernel's cost formulas and the catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from placer.errors import InstanceError
from placer.io import instance_from_data
from placer.kernel.cost import all_reduce_ms, pp_boundary_ms, reduce_scatter_ms
from placer.model import DomainEntry
from placer.model.instance import CLUSTER, DEFAULT_SCOPE, DIMS
from placer.model.semantic import check_structure, merged_fabric
from placer.planner.catalogue import lookup

NVLINK_SHARE = 0.5  # a level is NVLink-class when its bandwidth is at least this x the node's


@dataclass
class SiteHW:
    """One site: fabric per level (index 0 = site, last = node) and capacity per type."""

    name: str
    lat_us: list[float]
    bw_GBps: list[float]
    cap: dict[str, list[int]]  # type -> most GPUs of the type in one domain, per level
    gpus_per_node: dict[str, int]  # type -> least GPUs per node of that type

    def nvlink_level(self) -> int:
        """Index of the widest level whose bandwidth is NVLink-class (the node at least)."""
        node_bw = self.bw_GBps[-1]
        k = len(self.bw_GBps) - 1
        while k > 1 and self.bw_GBps[k - 1] >= NVLINK_SHARE * node_bw:
            k -= 1
        return k


@dataclass
class TypeHW:
    """A GPU type as the planner sees it."""

    name: str
    speed: float
    memory_GB: float | None
    memory_from: str  # "instance" | "catalogue <entry>" | ""
    peak_TFLOPS: dict[str, float] = field(default_factory=dict)
    peak_from: str = ""
    catalogue_exact: bool = True


@dataclass
class Hardware:
    levels: list[str]
    sites: list[SiteHW]
    wan_lat_us: list[list[float]]  # inf where no path
    wan_bw_GBps: list[list[float]]  # 0 where no path
    types: dict[str, TypeHW]

    def level_index(self, name: str | None) -> int:
        """Index of a scope level; -1 for `cluster` or no bound."""
        if name is None or name == CLUSTER:
            return -1
        return self.levels.index(name)

    def tp_domain(self, type_name: str, tp: int) -> str | None:
        """The narrowest NVLink-class level name at which a TP group of `tp` GPUs of this type
        fits in the sites holding it (the widest such level over those sites, so that the
        group fits in each), or None when `tp` exceeds the NVLink domain everywhere."""
        best: int | None = None
        for s in self.sites:
            cap = s.cap.get(type_name)
            if not cap or cap[0] == 0:
                continue
            nvl = s.nvlink_level()
            j = next((j for j in range(len(cap) - 1, nvl - 1, -1) if cap[j] >= tp), None)
            if j is not None:
                best = j if best is None else min(best, j)
        return None if best is None else self.levels[best]


def _walk(
    e: DomainEntry, depth: int, L: int, gpn: int | None, gt: str | None, gpns: dict[str, int]
) -> tuple[dict[str, int], list[dict[str, int]]]:
    """(GPUs per type in one domain of this entry, and for every level from the entry's down
    to the node, the most GPUs per type in one domain of that level)."""
    gpn = e.gpus_per_node if e.gpus_per_node is not None else gpn
    gt = e.gpu_type if e.gpu_type is not None else gt
    if e.domains:
        tot: dict[str, int] = {}
        deeper: list[dict[str, int]] = [{} for _ in range(L - 1 - depth)]
        for c in e.domains:
            ct, cm = _walk(c, depth + 1, L, gpn, gt, gpns)
            n = c.count or 1
            for t, v in ct.items():
                tot[t] = tot.get(t, 0) + v * n
            for j, d in enumerate(cm):
                for t, v in d.items():
                    deeper[j][t] = max(deeper[j].get(t, 0), v)
        return tot, [dict(tot), *deeper]
    if gt is None or gpn is None:  # refused by the structure checks
        return {}, [{} for _ in range(L - depth)]
    gpns[gt] = min(gpns.get(gt, gpn), gpn)
    shape = list(e.shape or [])
    sizes = []
    for k in range(L - depth):
        sizes.append({gt: math.prod(shape[k:]) * gpn})
    return dict(sizes[0]), sizes


def _wan_paths(names: list[str], links: list[Any]) -> tuple[list[list[float]], list[list[float]]]:
    """Least-latency paths between sites (Floyd-Warshall), ties to the larger bottleneck
    bandwidth; latency inf and bandwidth 0 where no path."""
    n = len(names)
    pos = {s: i for i, s in enumerate(names)}
    lat = [[0.0 if i == j else math.inf for j in range(n)] for i in range(n)]
    bw = [[math.inf if i == j else 0.0 for j in range(n)] for i in range(n)]
    for w in links:
        a, b = pos[w.between[0]], pos[w.between[1]]
        lat[a][b] = lat[b][a] = w.latency_us
        bw[a][b] = bw[b][a] = w.bandwidth_GBps
    for k in range(n):
        for i in range(n):
            for j in range(n):
                cand = lat[i][k] + lat[k][j]
                cbw = min(bw[i][k], bw[k][j])
                if cand < lat[i][j] - 1e-12 or (abs(cand - lat[i][j]) <= 1e-12 and cbw > bw[i][j]):
                    lat[i][j] = cand
                    bw[i][j] = cbw
    return lat, bw


def read_hardware(data: dict) -> Hardware:
    """Summarise the hardware of a raw instance document (see the module docstring). Raises
    :class:`InstanceError` with the loader's located messages when the topology or the GPU
    types are invalid, or when a `gpu_types.<T>.memory_GB` is not a positive number."""
    probe = {"name": "planner", "topology": data.get("topology"), "jobs": []}
    if "gpu_types" in data:
        probe["gpu_types"] = data["gpu_types"]
    inst = instance_from_data(probe)
    f = check_structure(inst)
    if f.problems:
        raise InstanceError(f.problems)
    topo = inst.topology
    L = len(topo.levels)
    sites: list[SiteHW] = []
    present: set[str] = set()
    for si, site in enumerate(topo.sites):
        fab = merged_fabric(inst, si)
        gpns: dict[str, int] = {}
        cap: dict[str, list[int]] = {}
        for e in site.domains:
            tot, mx = _walk(e, 1, L, site.gpus_per_node, site.gpu_type, gpns)
            n = e.count or 1
            for t, v in tot.items():
                row = cap.setdefault(t, [0] * L)
                row[0] += v * n
            for j, d in enumerate(mx):
                for t, v in d.items():
                    row = cap.setdefault(t, [0] * L)
                    row[j + 1] = max(row[j + 1], v)
        present |= set(cap)
        sites.append(
            SiteHW(
                site.name,
                [float(fab[lv][0]) for lv in topo.levels],  # type: ignore[arg-type]
                [float(fab[lv][1]) for lv in topo.levels],  # type: ignore[arg-type]
                cap,
                gpns,
            )
        )
    lat, bw = _wan_paths([s.name for s in topo.sites], topo.wan)
    types: dict[str, TypeHW] = {}
    problems: list[tuple[str, str]] = []
    raw_types = data.get("gpu_types") if isinstance(data.get("gpu_types"), dict) else {}
    for t in sorted(present | set(inst.gpu_types)):
        gt = inst.gpu_types.get(t)
        speed = gt.speed if gt is not None else 1.0
        spec, exact = lookup(t)
        mem: Any = None
        raw = raw_types.get(t) if isinstance(raw_types, dict) else None
        if isinstance(raw, dict):
            mem = raw.get("memory_GB")
        mem_from = ""
        if mem is not None:
            if isinstance(mem, bool) or not isinstance(mem, (int, float)) or not mem > 0:
                problems.append(
                    (f"gpu_types.{t}.memory_GB", f"must be a positive number, not {mem!r}")
                )
                mem = None
            elif not math.isfinite(mem):
                problems.append(
                    (f"gpu_types.{t}.memory_GB", f"must be a finite number, not {mem!r}")
                )
                mem = None
            else:
                mem_from = "instance"
        if mem is None and spec is not None:
            mem, mem_from = spec.memory_GB, f"catalogue {spec.name}"
        peak = dict(spec.peak_TFLOPS) if spec is not None else {}
        peak_from = f"catalogue {spec.name}" if spec is not None else ""
        types[t] = TypeHW(t, speed, mem, mem_from, peak, peak_from, exact)
    if problems:
        raise InstanceError(problems)
    return Hardware(list(topo.levels), sites, lat, bw, types)


# --------------------------------------------------------------------------- best level


@dataclass
class Shape:
    """What :func:`best_step` needs of a plan (comm in MB and messages, as in SPEC)."""

    tp: int
    pp: int
    dp: int
    min_dp: int
    ep: int
    microbatches: int
    comm: dict[str, float]
    compute_ms: float  # on a speed-1 GPU
    scope: dict[str, str | None]  # effective: level name, or None for cluster / no bound
    max_latency_us: dict[str, float | None]
    overlap: dict[str, float]
    cross_site_every: float


@dataclass
class Estimate:
    """The step of a plan at its best level on a pool of GPU types, or why it fits nowhere."""

    step_ms: float | None
    units: int = 0
    compute_ms: float = 0.0  # with the bubble
    T_ms: dict[str, float] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # dimension -> level (or "WAN x k")
    arrangement: str = ""
    sites: list[str] = field(default_factory=list)
    reason: str = ""


def _allowed(hw: Hardware, sh: Shape, dim: str, site: SiteHW, j: int) -> bool:
    if j < hw.level_index(sh.scope.get(dim)):
        return False
    bound = sh.max_latency_us.get(dim)
    return bound is None or site.lat_us[j] <= bound


def _narrowest(
    hw: Hardware, sh: Shape, dim: str, site: SiteHW, cap: list[int], n: int
) -> int | None:
    """The narrowest allowed level of `site` whose domain holds n (GPUs or units, as `cap`)."""
    for j in range(len(cap) - 1, -1, -1):
        if cap[j] >= n and _allowed(hw, sh, dim, site, j):
            return j
    return None


def _cross_ok(hw: Hardware, sh: Shape, dim: str, idx: list[int]) -> bool:
    """May a group of dimension `dim` span these sites (scope and latency bound)?"""
    if hw.level_index(sh.scope.get(dim)) != -1:
        return False
    bound = sh.max_latency_us.get(dim)
    for a in idx:
        for b in idx:
            lat = hw.wan_lat_us[a][b]
            if a != b and (lat == math.inf or (bound is not None and lat > bound)):
                return False
    return True


def _pool_cap(site: SiteHW, pool: list[str], L: int) -> list[int]:
    """GPUs of the pool in one domain per level: the site's total, and below it the largest
    single-type domain (domains below a site hold one GPU type, as in every bundled file)."""
    rows = [site.cap[t] for t in pool if t in site.cap]
    if not rows:
        return [0] * L
    return [sum(r[0] for r in rows)] + [max(r[j] for r in rows) for j in range(1, L)]


def _unit_view(cap: list[int], tp_j: int, tp: int, stages: int) -> tuple[int, list[int]] | None:
    """Where the units of `stages` TP groups of `tp` GPUs go at best. Every TP group lies in
    one domain of level tp_j (g = cap[tp_j] // tp groups each); a unit with stages <= g lies in
    one such domain (as many units as fit, never across two), a longer one takes ceil(stages
    / g) whole domains of level tp_j inside one domain of a wider level. Returns (k, per): k
    the level of the unit's domain (where its slowest PP boundary meets), per[j] the units one
    domain of level j holds (0 below k); None when a unit fits in no domain."""
    g = cap[tp_j] // tp
    if g < 1:
        return None
    L = len(cap)
    if stages <= g:
        k, per_k = tp_j, g // stages
    else:
        need = -(-stages // g)  # domains of level tp_j per unit
        k = next((j for j in range(tp_j - 1, -1, -1) if cap[j] // cap[tp_j] >= need), -1)
        if k < 0:
            return None
        per_k = (cap[k] // cap[tp_j]) // need
    return k, [(cap[j] // cap[k]) * per_k if j <= k else 0 for j in range(L)]


def _in_site_times(
    hw: Hardware, sh: Shape, site: SiteHW, cap: list[int], units: int, stages: int
) -> tuple[dict[str, float], dict[str, str], list[int]] | None:
    """T and levels of the TP groups, the PP boundaries inside the site and the EP groups of
    `units` units of `stages` TP groups in this site, and the units one domain of each level
    holds (for DP); None when they fit no allowed domain."""
    tp_j = _narrowest(hw, sh, "tp", site, cap, sh.tp)
    if tp_j is None:
        return None
    view = _unit_view(cap, tp_j, sh.tp, stages)
    if view is None:
        return None
    k, per = view
    c = sh.comm
    T: dict[str, float] = {}
    where: dict[str, str] = {}
    if sh.tp > 1:
        m, S = c.get("tp_messages", 1.0), c.get("tp_MB", 0.0)
        T["tp"] = float(all_reduce_ms(sh.tp, m, S, site.lat_us[tp_j], site.bw_GBps[tp_j]))
        where["tp"] = hw.levels[tp_j]
    if stages > 1:
        if not _allowed(hw, sh, "pp", site, k):
            return None
        m, S = c.get("pp_messages", 1.0), c.get("pp_MB", 0.0)
        T["pp"] = float(pp_boundary_ms(m, S, site.lat_us[k], site.bw_GBps[k]))
        where["pp"] = hw.levels[k]
    if sh.ep > 1 and units >= sh.ep:
        j = _narrowest(hw, sh, "ep", site, per, sh.ep)
        if j is None:
            return None
        m, S = c.get("ep_messages", 1.0), c.get("ep_MB", 0.0)
        T["ep"] = float(reduce_scatter_ms(sh.ep, m, S, site.lat_us[j], site.bw_GBps[j]))
        where["ep"] = hw.levels[j]
    return T, where, per


def _worst(into: tuple[dict, dict], T: dict[str, float], where: dict[str, str]) -> None:
    """Keep the slowest group of each dimension (SPEC 4: T_X is the slowest group)."""
    for d, v in T.items():
        if v >= into[0].get(d, -1.0):
            into[0][d], into[1][d] = v, where[d]


def _step(sh: Shape, c_ms: float, T: dict[str, float]) -> tuple[float, float]:
    """SPEC 4: (step, compute with the 1F1B bubble)."""
    comp = c_ms
    if sh.pp > 1 and sh.microbatches:
        comp = c_ms * (sh.microbatches + sh.pp - 1) / sh.microbatches
    return comp + sum((1.0 - sh.overlap.get(d, 0.0)) * T.get(d, 0.0) for d in DIMS), comp


def _dp_ms(sh: Shape, n: int, lat: float, bw: float, scatter_only: bool = False) -> float:
    m, S = sh.comm.get("dp_messages", 1.0), sh.comm.get("dp_MB", 0.0)
    f = reduce_scatter_ms if scatter_only else all_reduce_ms
    return float(f(n, m, S, lat, bw))


def _packed(hw: Hardware, sh: Shape, pool: list[str], c_ms: float, units: int) -> Estimate | None:
    """Each unit inside one domain of its best level; DP over all units, in one site or
    (scope allowing) hierarchically over the fewest sites that hold them."""
    L = len(hw.levels)
    best: Estimate | None = None
    caps = [_pool_cap(s, pool, L) for s in hw.sites]
    site_units = []
    for s, cap in zip(hw.sites, caps):
        r = _in_site_times(hw, sh, s, cap, units, sh.pp)
        site_units.append(r[2][0] if r is not None else 0)
        if r is None:
            continue
        T, where, per = r
        if units > 1:
            j = _narrowest(hw, sh, "dp", s, per, units)
            if j is None:
                continue
            T["dp"] = _dp_ms(sh, units, s.lat_us[j], s.bw_GBps[j])
            where["dp"] = hw.levels[j]
        step, comp = _step(sh, c_ms, T)
        if best is None or step < best.step_ms:  # type: ignore[operator]
            best = Estimate(step, units, comp, T, where, "units packed", [s.name])
    if best is not None or units <= 1:
        return best
    # over sites: the fewest sites (most units first) holding the units, each a DP part
    order = sorted(range(len(hw.sites)), key=lambda i: (-site_units[i], hw.sites[i].name))
    chosen, parts, left = [], [], units
    for i in order:
        n = min(left, site_units[i])
        if n <= 0:
            continue
        chosen.append(i)
        parts.append(n)
        left -= n
        if left == 0:
            break
    if left or len(chosen) < 2 or not _cross_ok(hw, sh, "dp", chosen):
        return None
    acc: tuple[dict[str, float], dict[str, str]] = ({}, {})
    rs = 0.0
    for i, n in zip(chosen, parts):
        s = hw.sites[i]
        r = _in_site_times(hw, sh, s, caps[i], n, sh.pp)
        if r is None:
            return None
        _worst(acc, r[0], r[1])
        j = next(j for j in range(L - 1, -1, -1) if r[2][j] >= n)
        rs = max(rs, _dp_ms(sh, n, s.lat_us[j], s.bw_GBps[j], scatter_only=True))
    T, where = acc
    pairs = [(a, b) for a in chosen for b in chosen if a != b]
    alpha = max(hw.wan_lat_us[a][b] for a, b in pairs)
    W = min(hw.wan_bw_GBps[a][b] for a, b in pairs)
    k = len(chosen)
    m, S = sh.comm.get("dp_messages", 1.0), sh.comm.get("dp_MB", 0.0)
    wan = float(all_reduce_ms(k, m, S * sh.tp * sh.pp, alpha, W))  # S_job: every DP group
    T["dp"] = 2.0 * rs + wan / sh.cross_site_every
    where["dp"] = f"WAN x{k}"
    step, comp = _step(sh, c_ms, T)
    names = [hw.sites[i].name for i in chosen]
    return Estimate(step, units, comp, T, where, "DP over sites", names)


def _stages_split(
    hw: Hardware, sh: Shape, pool: list[str], c_ms: float, units: int
) -> Estimate | None:
    """The pipeline split over k sites (pp/k consecutive stages of every unit in each), DP
    groups inside each site (Sailor's and Atlas's layout for geo-distributed training)."""
    if sh.pp < 2 or len(hw.sites) < 2:
        return None
    L = len(hw.levels)
    caps = [_pool_cap(s, pool, L) for s in hw.sites]
    best: Estimate | None = None
    for k in range(2, min(sh.pp, len(hw.sites)) + 1):
        if sh.pp % k:
            continue
        stages = sh.pp // k
        rs = [_in_site_times(hw, sh, s, cap, units, stages) for s, cap in zip(hw.sites, caps)]
        ok = [i for i, r in enumerate(rs) if r is not None and r[2][0] >= units]
        order = sorted(ok, key=lambda i: (-rs[i][2][0], hw.sites[i].name))[:k]  # type: ignore[index]
        if len(order) < k or not _cross_ok(hw, sh, "pp", order):
            continue
        acc: tuple[dict[str, float], dict[str, str]] = ({}, {})
        fits = True
        for i in order:
            s = hw.sites[i]
            T, where, per = rs[i]  # type: ignore[misc]
            T, where = dict(T), dict(where)
            if units > 1:
                j = _narrowest(hw, sh, "dp", s, per, units)
                if j is None:
                    fits = False
                    break
                T["dp"], where["dp"] = _dp_ms(sh, units, s.lat_us[j], s.bw_GBps[j]), hw.levels[j]
            _worst(acc, T, where)
        if not fits:
            continue
        T, where = acc
        S_job = sh.comm.get("pp_MB", 0.0) * (k - 1) * sh.tp * units  # every chain crosses k-1
        m = sh.comm.get("pp_messages", 1.0)
        hop = max(
            float(pp_boundary_ms(m, S_job, hw.wan_lat_us[a][b], hw.wan_bw_GBps[a][b]))
            for a, b in zip(order, order[1:])
        )
        if hop >= T.get("pp", -1.0):
            T["pp"], where["pp"] = hop, f"WAN x{k}"
        step, comp = _step(sh, c_ms, T)
        if best is None or step < best.step_ms:  # type: ignore[operator]
            names = [hw.sites[i].name for i in order]
            best = Estimate(step, units, comp, T, where, f"stages over {k} sites", names)
    return best


def pool_speed(hw: Hardware, pool: list[str], mix: Any) -> float:
    """The speed of a job on a pool of types: one type's speed; with `mix_types: slowest`
    the slowest; with `balanced` the mean weighted by the GPUs of each type in the cluster."""
    speeds = [hw.types[t].speed for t in pool]
    if len(pool) == 1 or mix != "balanced":
        return min(speeds)
    w = [sum(s.cap.get(t, [0])[0] for s in hw.sites) for t in pool]
    return sum(a * b for a, b in zip(speeds, w)) / max(1, sum(w))


def best_step(hw: Hardware, sh: Shape, pool: list[str], mix: Any = False) -> Estimate:
    """The step of plan `sh` on GPU types `pool` (one type, or the plan's types for a job
    with `mix_types`) at its best level, at full size if it fits and otherwise at the most
    units from `min_dp` up that fit (see the module docstring)."""
    c_ms = sh.compute_ms / pool_speed(hw, pool, mix)
    ep = max(1, sh.ep)

    def at(units: int) -> Estimate | None:
        ests = [
            e
            for e in (
                _packed(hw, sh, pool, c_ms, units),
                _stages_split(hw, sh, pool, c_ms, units),
            )
            if e is not None
        ]
        return min(ests, key=lambda e: e.step_ms) if ests else None  # type: ignore[arg-type, return-value]

    full = at(sh.dp)
    if full is not None:
        return full
    # the most units (a multiple of ep, at least min_dp) that fit: fewer units fit more easily
    lo, hi = max(1, -(-sh.min_dp // ep)), sh.dp // ep - 1  # in multiples of ep
    found: Estimate | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        e = at(mid * ep)
        if e is not None:
            found, lo = e, mid + 1
        else:
            hi = mid - 1
    if found is not None:
        return found
    return Estimate(None, reason="its groups fit their scopes in no domain, even at min_dp")


def effective_scope(scope: dict[str, Any], max_latency: dict[str, Any]) -> dict[str, str | None]:
    """SPEC 6: explicit scope keys, else no bound where a latency bound is given, else the
    default; `cluster` becomes None."""
    out: dict[str, str | None] = {}
    for d in DIMS:
        v = scope.get(d)
        if v is None:
            v = None if max_latency.get(d) is not None else DEFAULT_SCOPE[d]
        out[d] = None if v == CLUSTER else v
    return out


__all__ = [
    "Estimate",
    "Hardware",
    "Shape",
    "SiteHW",
    "TypeHW",
    "best_step",
    "effective_scope",
    "read_hardware",
]
