"""Seeded instance generators: named families of realistic instances for tests, benchmarks
and docs.

Every family returns a raw instance dict (SPEC 1) that
:func:`placer.validate.instance_from_dict` accepts with no error and no warning. The same
family, seed and parameters always give the identical dict (numpy's ``Generator``, no
global state, no clock); topologies are written compactly with ``count`` / ``shape``.

Job mixes are drawn from small tables derived from public cluster traces (shipped in
``placer/data/``, see its README for origin and licences): GPU counts per job, and
job durations (mapped to ``remaining_hours``). How a GPU count becomes tp / pp / dp, a
model shape, message sizes and a compute time is written out in ``docs/generators.md``.

This module imports numpy, yaml and the standard library only: never the model, the
kernel or a solver (its output is plain data).

Examples
--------
>>> from placer.generators import generate, to_yaml
>>> d = generate("superpod", seed=1, n_jobs=6)
>>> d["topology"]["levels"]
['site', 'su', 'rack', 'node']
>>> d == generate("superpod", seed=1, n_jobs=6)
True
>>> text = to_yaml(d)
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import yaml

# --------------------------------------------------------------------------- constants
# Sources of every number: instances/README.md sections 2.1-2.6 (NCCL, SimAI, Llama 3,
# DGX SuperPOD RA, GB200 NVL72, MLPerf) and docs/generators.md.

FIBRE_US_PER_KM = 4.9  # propagation in fibre (n ~ 1.468)
DCI_EQUIPMENT_US = 20.0  # routers + 400ZR optics with FEC at both ends (assumption)
ROUTE_STRETCH = 1.4  # fibre route length / straight-line distance (assumption)
WAN_LADDER_GBPS = (50.0, 200.0, 800.0, 3200.0)  # 0.4 / 1.6 / 6.4 / 25.6 Tb/s

GPU_TYPES: dict[str, dict[str, float]] = {
    "H100": {"power_kW": 1.4, "speed": 1.0},
    "H200": {"power_kW": 1.4, "speed": 1.4},
    "GB200": {"power_kW": 1.8, "speed": 2.5},
}
NODE_FAILURES_PER_DAY = {"H100": 0.0038, "H200": 0.0038, "GB200": 0.0032}

# per-GPU fabric (latency_us, bandwidth_GBps) between GPUs meeting at a level
HGX_FABRIC = {
    "node": (1.0, 370.0),
    "rack": (4.0, 48.5),
    "pod": (4.5, 48.5),
    "hall": (5.5, 46.0),
    "site": (7.0, 23.0),
}
NVL72_FABRIC = {
    "node": (1.0, 722.0),
    "rack": (1.5, 722.0),
    "su": (4.0, 48.5),
    "pod": (4.0, 48.5),
    "hall": (5.5, 46.0),
    "site": (7.0, 23.0),
}
OLDER_SITE_FABRIC = {"hall": (6.5, 24.25), "site": (9.0, 6.9)}  # 2:1 halls, 1:7 taper

# Training model table keyed by the job's GPU count: the first row whose `max_gpus` is at
# least the count gives the pipeline depth and the model shape.
# (max_gpus, pp, model, params, layers, hidden, seq, micro_batches)
TRAINING_MODELS: tuple[tuple[float, int, str, float, int, int, int, int], ...] = (
    (1, 1, "1b", 1.2e9, 24, 2048, 4096, 16),
    (2, 1, "3b", 3.0e9, 28, 3072, 4096, 16),
    (4, 1, "8b", 8.0e9, 32, 4096, 8192, 8),
    (8, 1, "13b", 13e9, 40, 5120, 8192, 8),
    (64, 1, "34b", 34e9, 48, 8192, 8192, 8),
    (512, 2, "70b", 70e9, 80, 8192, 8192, 16),
    (4096, 4, "175b", 175e9, 96, 12288, 8192, 16),
    (16384, 8, "405b", 405e9, 126, 16384, 8192, 16),
    (math.inf, 16, "405b", 405e9, 126, 16384, 8192, 16),
)
# MoE variant of a row (assumption): the row's params are the *active* ones; 30% dense
# (attention, embeddings), 70% routed experts of which 1/8 are active per token.
MOE_DENSE_SHARE = 0.3
MOE_EXPERT_FACTOR = 8.0
MOE_K_EFF = 2

# Inference model table: (model, tp, weights_GB_per_GPU or 0 = no compute_ms, layers,
# hidden, batch_tokens, weight of the draw)
INFERENCE_MODELS: tuple[tuple[str, int, float, int, int, int, float], ...] = (
    ("embed", 1, 0.0, 0, 0, 0, 0.25),
    ("8b", 1, 16.0, 32, 4096, 64, 0.2),
    ("34b-fp8", 2, 17.0, 48, 8192, 32, 0.15),
    ("70b-fp8", 4, 17.5, 80, 8192, 64, 0.2),
    ("70b", 8, 17.5, 80, 8192, 64, 0.1),
    ("405b-fp8", 8, 50.6, 126, 16384, 128, 0.1),
)

PEAK_TFLOPS = 400.0  # achieved bf16 TFLOP/s of the reference H100 (Llama 3)
HBM_TBPS, HBM_EFF, KV_FACTOR = 3.35, 0.6, 1.3  # H100 HBM, achieved share, KV-cache reads
OVERLAP = {"tp": 0.3, "pp": 0.7, "dp": 0.8, "ep": 0.3}
DP_BUCKET_MB = 1500.0

KALOS_MEAN_GPUS_ROW = "Kalos"  # Acme's LLM cluster, used by size_scale="kalos"

MAX_GPUS, MAX_NODES = 4_000_000, 1_000_000  # SPEC 6

# --------------------------------------------------------------------------- trace tables


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("placer").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def trace_sizes(trace: str = "itp", weighting: str = "running") -> tuple[np.ndarray, np.ndarray]:
    """GPUs per job of a trace and their probabilities, from ``placer/data/job_sizes.csv``.

    ``weighting="job"``: the share of submitted jobs; ``"running"``: the share of jobs seen
    running at a random instant (each size weighted by the summed durations of its jobs).
    Returns ``(gpus int64 (k,), probs float64 (k,))`` (read-only).
    """
    if weighting not in ("job", "running"):
        raise ValueError(f"weighting must be 'job' or 'running', not {weighting!r}")
    rows = [r for r in _read_csv("job_sizes.csv") if r["trace"] == trace]
    if not rows:
        raise ValueError(f"unknown trace {trace!r}; valid: {', '.join(traces())}")
    g = np.array([int(r["gpus"]) for r in rows], dtype=np.int64)
    col = "jobs" if weighting == "job" else "job_hours"
    w = np.array([float(r[col]) for r in rows])
    p = w / w.sum()
    g.flags.writeable = False
    p.flags.writeable = False
    return g, p


@functools.cache
def traces() -> tuple[str, ...]:
    """Names of the traces in the size table (e.g. ``('itp', 'philly')``)."""
    return tuple(dict.fromkeys(r["trace"] for r in _read_csv("job_sizes.csv")))


@functools.cache
def duration_quantiles(
    trace: str, size_class: str, weighting: str = "running"
) -> tuple[np.ndarray, np.ndarray]:
    """(quantile levels, hours) of job durations for a trace and size class
    (``'1'``, ``'2-7'``, ``'8-15'``, ``'16+'`` or ``'all'``)."""
    rows = [
        r
        for r in _read_csv("job_durations.csv")
        if r["trace"] == trace and r["size_class"] == size_class and r["weighting"] == weighting
    ]
    if not rows:
        rows = [
            r
            for r in _read_csv("job_durations.csv")
            if r["trace"] == trace and r["size_class"] == "all" and r["weighting"] == weighting
        ]
    if not rows:
        raise ValueError(f"no duration table for trace {trace!r}, weighting {weighting!r}")
    q = np.array([float(r["quantile"]) for r in rows])
    h = np.array([float(r["hours"]) for r in rows])
    return q, h


@functools.cache
def cluster_summaries() -> dict[str, dict[str, str]]:
    """Published per-cluster summaries (Acme, Helios) by cluster name."""
    return {r["cluster"]: r for r in _read_csv("cluster_summaries.csv")}


def size_class(gpus: int) -> str:
    """The duration table's size class of a trace job with `gpus` GPUs."""
    if gpus <= 1:
        return "1"
    if gpus <= 7:
        return "2-7"
    if gpus <= 15:
        return "8-15"
    return "16+"


def _mean_trace_gpus(trace: str, weighting: str) -> float:
    g, p = trace_sizes(trace, weighting)
    return float((g * p).sum())


# --------------------------------------------------------------------------- small helpers


def _r(x: float, nd: int = 2) -> float:
    """A plain Python float rounded to `nd` decimals (never a numpy scalar)."""
    return float(round(float(x), nd))


def _sig(x: float, n: int = 4) -> float:
    return float(f"{float(x):.{n}g}")


def _pow2_divisor(n: int, cap: int) -> int:
    """Largest power of two dividing `n`, at most `cap`."""
    d = 1
    while d * 2 <= cap and n % (d * 2) == 0:
        d *= 2
    return d


def _fabric(spec: dict[str, tuple[float, float]], levels: list[str]) -> dict:
    return {
        lv: {"latency_us": spec[lv][0], "bandwidth_GBps": spec[lv][1]}
        for lv in reversed(levels)
        if lv in spec
    }


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


# --------------------------------------------------------------------------- job mix

MIX_DEFAULTS: dict[str, Any] = {
    "n_jobs": 12,  # jobs drawn from the trace tables
    "trace": "itp",  # 'itp' (Microsoft ITP 2021) or 'philly' (Microsoft Philly 2017)
    "weighting": "running",  # 'running' (snapshot of a busy cluster) or 'job' (submissions)
    "size_scale": None,  # GPUs per trace GPU: None = fill `load`; 'kalos'; or an integer
    "load": 1.3,  # with size_scale=None: wanted GPUs (at max size) / available GPUs
    "max_job_share": 0.5,  # a drawn job wants at most this share of its largest site
    "inference_share": 0.3,  # share of jobs that are inference fleets
    "moe_share": 0.15,  # share of training jobs (dp >= 2) that are MoE with ep
    "elastic_share": 0.6,  # share of training jobs with min_dp < dp
    "spread_share": 0.3,  # share of inference fleets with a spread constraint
    "cross_site_share": 0.3,  # multi-site: share of large training jobs with dp: cluster
    "running_share": 0.15,  # share of jobs already running (with `current`)
    "running_max_gpus": 256,  # only jobs of at most this many GPUs are running
    "pinned_share": 0.2,  # share of running jobs that are pinned
    "duration_scale": 1.0,  # multiplies trace durations before remaining_hours
    "n_offers": 1,  # lease offers
    "horizon_hours": 24.0,  # a day-ahead plan (see docs/generators.md: trace jobs are short)
    "unavailable_nodes": 2,
    "unavailable_racks": 0,
    "unavailable_gpus": 1,
}


# each family's departures from MIX_DEFAULTS
FAMILY_MIX: dict[str, dict[str, Any]] = {
    "superpod": {"n_jobs": 10},
    "multicampus": {"n_jobs": 16, "n_offers": 2, "running_max_gpus": 1024},
    "nvl72": {"n_jobs": 12, "running_max_gpus": 288},
    "hetero": {"n_jobs": 16, "n_offers": 2, "running_max_gpus": 512},
    "frontier": {
        "n_jobs": 6,
        "load": 0.3,
        "running_share": 0.3,
        "running_max_gpus": 1024,
        "horizon_hours": 720.0,
    },
    "scale": {
        "n_jobs": 200,
        "running_share": 0.02,
        "running_max_gpus": 128,
        "n_offers": 2,
        "unavailable_nodes": None,
        "unavailable_racks": None,
    },
}


def _mix(given: dict[str, Any], family: str) -> dict[str, Any]:
    unknown = sorted(set(given) - set(MIX_DEFAULTS))
    if unknown:
        valid = sorted(set(MIX_DEFAULTS) | set(_own_params(FAMILIES[family])))
        raise TypeError(
            f"unknown parameter {unknown[0]!r} for family {family!r}; valid: {', '.join(valid)}"
        )
    m = dict(MIX_DEFAULTS)
    m.update(FAMILY_MIX[family])
    m.update(given)
    if m["trace"] not in traces():
        raise ValueError(f"unknown trace {m['trace']!r}; valid: {', '.join(traces())}")
    return m


@dataclass
class _Pool:
    """A set of allowed GPU types (None = any) with its capacities."""

    types: list[str] | None
    weight: float


def _pools(cl: _Cluster, kind: str) -> list[_Pool]:
    ts = cl.types
    if len(ts) == 1:
        return [_Pool(None, 1.0)]
    cap = {t: sum(e.gpus for e in cl.entries if e.gpu_type == t) for t in ts}
    pools = [_Pool([t], float(cap[t])) for t in ts]
    hopper = [t for t in ts if t in ("H100", "H200")]
    if len(hopper) > 1:
        pools.append(_Pool(hopper, float(sum(cap[t] for t in hopper))))
    if kind == "inference":
        pools.append(_Pool(None, float(sum(cap.values())) * 0.5))
    return pools


def _tp_max(cl: _Cluster, types: list[str] | None) -> int:
    ts = cl.types if types is None else types
    return min(min(cl.gpn(t) for t in ts), 8)


def _nvl72_only(cl: _Cluster, pool: _Pool) -> bool:
    """True when every type the pool allows is a GB200 tray (4 GPUs, NVLink rack)."""
    return all(t == "GB200" for t in (pool.types or cl.types))


def _training_comm(
    P: float, L: int, h: int, seq: int, m: int, tp: int, pp: int, ep: int, moe: bool
) -> tuple[dict, float, float]:
    """(comm, compute_ms, params_total) by the formulas of instances/README.md 2.4."""
    A = seq * h * 2 / 1e6  # activation of one micro-batch, MB
    lps = -(-L // pp)
    comm: dict[str, float] = {}
    if moe:
        p_dense, p_exp = MOE_DENSE_SHARE * P, (1 - MOE_DENSE_SHARE) * P * MOE_EXPERT_FACTOR
    else:
        p_dense, p_exp = P, 0.0
    if tp > 1:
        msgs = (2 if moe else 4) * lps * m
        comm["tp_MB"] = _sig(msgs * A)
        comm["tp_messages"] = msgs
    if pp > 1:
        comm["pp_MB"] = _sig(2 * m * A / tp)
        comm["pp_messages"] = 2 * m
    dp_mb = 2 * (p_dense / (tp * pp) + p_exp / (tp * pp * ep)) / 1e6
    comm["dp_MB"] = _sig(dp_mb)
    comm["dp_messages"] = max(1, math.ceil(dp_mb / DP_BUCKET_MB))
    if moe:
        msgs = 4 * lps * m
        comm["ep_MB"] = _sig(msgs * (seq / tp) * MOE_K_EFF * h * 2 / 1e6)
        comm["ep_messages"] = msgs
    compute = 6 * P * m * seq / (tp * pp * PEAK_TFLOPS * 1e12) * 1000
    return comm, _r(compute, 1), p_dense + p_exp


def _training_value(g: int, rng: np.random.Generator) -> float:
    lo, hi = (
        (0.8, 1.3)
        if g <= 8
        else (1.2, 2.0)
        if g <= 512
        else (1.6, 2.6)
        if g <= 8192
        else (2.4, 3.0)
    )
    return _r(rng.uniform(lo, hi), 2)


def _restart(g: int) -> tuple[float, float]:
    return (5.0, 6.0) if g >= 16384 else (8.0, 15.0) if g >= 2048 else (10.0, 30.0)


def _remaining(rng: np.random.Generator, m: dict, s0: int) -> float | None:
    """Hours left: a running job's residual life (uniform share of a length-biased
    duration), or a submitted job's whole duration; None when beyond the horizon."""
    q, h = duration_quantiles(m["trace"], size_class(s0), m["weighting"])
    d = float(np.exp(np.interp(rng.random(), q, np.log(np.maximum(h, 1e-3)))))
    d *= m["duration_scale"]
    if m["weighting"] == "running":
        d *= rng.random()
    if d >= m["horizon_hours"]:
        return None
    return _r(max(d, 0.5), 1)


def _size_scale(cl: _Cluster, m: dict, n_jobs: int) -> int:
    s = m["size_scale"]
    if isinstance(s, str):
        if s != "kalos":
            raise ValueError(f"size_scale must be an integer, None or 'kalos', not {s!r}")
        kalos = float(cluster_summaries()[KALOS_MEAN_GPUS_ROW]["avg_gpus"])
        ratio = kalos / _mean_trace_gpus(m["trace"], "job")
        return int(2 ** round(math.log2(max(ratio, 1.0))))
    if s is not None:
        if int(s) < 1:
            raise ValueError("size_scale must be >= 1")
        return int(s)
    if n_jobs == 0:
        return 1
    want = m["load"] * cl.total_gpus() / n_jobs / _mean_trace_gpus(m["trace"], m["weighting"])
    return int(2 ** min(12, max(0, round(math.log2(max(want, 1.0))))))


def _draw_jobs(
    rng: np.random.Generator, cl: _Cluster, m: dict, n_jobs: int, first_index: int = 0
) -> list[dict]:
    """`n_jobs` jobs drawn from the trace tables (docs/generators.md gives every number).

    Algorithm overview
    1. Draw a trace GPU count s0 (by job count or by running time, `weighting`) and a kind
       (inference with probability `inference_share`), then a pool of allowed GPU types.
    2. g = s0 x size_scale, halved while above `max_job_share` of the pool's largest site.
    3. Training: tp / pp / dp from g and the model row keyed by g; comm and compute_ms
       from the model shape; elastic min_dp, MoE ep, cross-site DP by their shares.
       Inference: a model whose TP divides g, replicas = g / tp, min_replicas, spread.
    4. remaining_hours from the trace's duration quantiles of s0's size class.
    """
    sizes, probs = trace_sizes(m["trace"], m["weighting"])
    scale = _size_scale(cl, m, n_jobs)
    multi_site = len(cl.sites) > 1 and cl.wan_connected
    jobs = []
    for i in range(first_index, first_index + n_jobs):
        s0 = int(sizes[rng.choice(len(sizes), p=probs)])
        kind = "inference" if rng.random() < m["inference_share"] else "training"
        pools = _pools(cl, kind)
        w = np.array([p.weight for p in pools])
        pool = pools[int(rng.choice(len(pools), p=w / w.sum()))]
        caps = cl.site_capacity(pool.types)
        cap = max(1, int(m["max_job_share"] * max(caps.values())))
        g = s0 * scale
        while g > cap and g > 1:
            g //= 2
        if kind == "training":
            jobs.append(_training_job(rng, cl, m, i, s0, g, pool, multi_site))
        else:
            jobs.append(_inference_job(rng, cl, m, i, s0, g, pool, multi_site))
    return jobs


def _training_job(
    rng: np.random.Generator,
    cl: _Cluster,
    m: dict,
    i: int,
    s0: int,
    g: int,
    pool: _Pool,
    multi_site: bool,
) -> dict:
    row = next(r for r in TRAINING_MODELS if g <= r[0])
    _, pp_t, model, P, L, h, seq, mb = row
    tp_max = _tp_max(cl, pool.types)
    rack_tp = False
    if _nvl72_only(cl, pool) and g >= 8 and rng.random() < 0.5:
        tp_max, rack_tp = 8, True  # TP across two trays of one NVL72 rack
    tp = _pow2_divisor(g, tp_max)
    pp = _pow2_divisor(g // tp, pp_t)
    dp = g // (tp * pp)
    rack_tp = rack_tp and tp > 4
    moe = dp >= 2 and rng.random() < m["moe_share"]
    ep = _pow2_divisor(dp, 8) if moe else 1
    moe = moe and ep >= 2
    ep = ep if moe else 1
    comm, compute_ms, _ = _training_comm(P, L, h, seq, mb, tp, pp, ep, moe)
    job: dict[str, Any] = {
        "name": f"train-{'moe-' if moe else ''}{model}-{i:04d}",
        "kind": "training",
    }
    if pool.types is not None:
        job["gpu_types"] = list(pool.types)
    job.update({"tp": tp, "pp": pp, "dp": dp})
    if dp > ep and rng.random() < m["elastic_share"]:
        lo = max(ep, int(dp * rng.uniform(0.25, 0.75)) // ep * ep)
        if lo < dp:
            job["min_dp"] = lo
    if moe:
        job["ep"] = ep
    scope: dict[str, str] = {}
    if rack_tp:
        scope["tp"] = cl.levels[-2]
    if multi_site and g >= 64 and rng.random() < m["cross_site_share"]:
        scope["dp"] = "cluster"
        job["cross_site_every"] = int(rng.choice([1, 10, 100]))
    if scope:
        job["scope"] = scope
    job["comm"] = comm
    job["compute_ms"] = compute_ms
    job["overlap"] = {
        d: OVERLAP[d]
        for d in ("tp", "pp", "dp", "ep")
        if (d == "tp" and tp > 1) or (d == "pp" and pp > 1) or d == "dp" or (d == "ep" and moe)
    }
    job["value"] = _training_value(g, rng)
    job["restart_min"], job["checkpoint_interval_min"] = _restart(g)
    rem = _remaining(rng, m, s0)
    if rem is not None:
        job["remaining_hours"] = rem
    return job


def _inference_job(
    rng: np.random.Generator,
    cl: _Cluster,
    m: dict,
    i: int,
    s0: int,
    g: int,
    pool: _Pool,
    multi_site: bool,
) -> dict:
    tp_max = _tp_max(cl, pool.types)
    if _nvl72_only(cl, pool):
        tp_max = 8  # TP 8 across two trays of one NVL72 rack
    rows = [r for r in INFERENCE_MODELS if r[1] <= tp_max and g % r[1] == 0]
    w = np.array([r[6] for r in rows])
    model, tp, wgb, L, h, batch, _ = rows[int(rng.choice(len(rows), p=w / w.sum()))]
    replicas = max(1, g // tp)
    job: dict[str, Any] = {"name": f"serve-{model}-{i:04d}", "kind": "inference"}
    if pool.types is not None:
        job["gpu_types"] = list(pool.types)
    if tp > 1:
        job["tp"] = tp
    job["replicas"] = replicas
    best_effort = rng.random() < 0.15
    if best_effort:
        job["min_replicas"] = 0
    else:
        lo = max(1, math.ceil(replicas * rng.uniform(0.25, 1.0)))
        if lo < replicas:
            job["min_replicas"] = lo
    if tp > cl.gpn(pool.types[0] if pool.types else cl.types[0]):
        job["scope"] = {"tp": cl.levels[-2]}
    lo = job.get("min_replicas", replicas)
    if replicas >= 2 and lo != 0 and rng.random() < m["spread_share"]:
        site_ok = multi_site and cl.sites_with(pool.types) >= 2
        if site_ok and rng.random() < 0.5:
            job["spread"] = {"level": "site", "min": 2}
        elif cl.level1_domains(pool.types) >= 2:
            job["spread"] = {"level": cl.levels[1], "min": 2}
    if wgb > 0:
        job["compute_ms"] = _r(wgb * 1e9 * KV_FACTOR / (HBM_TBPS * 1e12 * HBM_EFF) * 1000, 1)
        if tp > 1:
            job["comm"] = {"tp_MB": _sig(2 * L * batch * h * 2 / 1e6), "tp_messages": 2 * L}
    job["value"] = _r(rng.uniform(0.6, 1.0) if best_effort else rng.uniform(1.4, 3.0), 2)
    rem = _remaining(rng, m, s0)
    if rem is not None and not best_effort:
        job["remaining_hours"] = rem
    return job


def _units_bounds(job: dict) -> tuple[int, int, int]:
    if job["kind"] == "training":
        hi = job["dp"]
        return job.get("min_dp", hi), hi, job.get("ep", 1)
    hi = job["replicas"]
    return job.get("min_replicas", hi), hi, 1


def _make_running(rng: np.random.Generator, cl: _Cluster, m: dict, jobs: list[dict]) -> None:
    """Give a share of the jobs a `current` (valid GPU ids in rank order, inside one
    level-1 domain, TP groups in a node or an NVL72 rack); pin some, make some
    non-preemptible; every running job gets a migration cost of a few hours of its value."""
    for job in jobs:
        if rng.random() >= m["running_share"]:
            continue
        unit = job.get("tp", 1) * job.get("pp", 1)
        lo, hi, step = _units_bounds(job)
        top = min(hi, m["running_max_gpus"] // unit) // step * step
        bottom = max(lo, step)
        if top < bottom:
            continue
        k = int(rng.integers(bottom // step, top // step + 1)) * step
        ids = cl.allocate(rng, job.get("gpu_types"), k * unit, job.get("tp", 1))
        if ids is None:
            continue
        job["current"] = ids
        r = rng.random()
        if "spread" in job:  # its current lies in one level-1 domain: it may have to move
            pass
        elif r < m["pinned_share"]:
            job["pinned"] = True
        elif r < m["pinned_share"] + 0.1:
            job["preemptible"] = False
        job["migration_cost"] = _r(job["value"] * len(ids) * rng.uniform(1.0, 4.0), 0)


def _offers(
    rng: np.random.Generator,
    cl: _Cluster,
    jobs: list[dict],
    n: int,
    horizon: float,
    site_level: bool = False,
) -> dict | None:
    """`n` lease offers of whole level-1 blocks (halls / SUs; one to a quarter of a site's
    blocks of one type, at most half of them) or, with `site_level`, of one whole site.

    Price = the block type's speed x U(0.8, 1.2) x the jobs' value per GPU-hour of the
    horizon (GPU-weighted at their largest sizes, a job counting min(remaining, horizon) /
    horizon of its value): close to what the work a block displaces would earn.
    """
    if n <= 0:
        return None
    num = den = 0.0
    for j in jobs:
        g = _max_gpus(j)
        num += j["value"] * g * min(j.get("remaining_hours", horizon), horizon) / horizon
        den += g
    ref = max(0.3, num / den) if den else 1.5
    multi_type = len(cl.types) > 1
    offers = []
    for k in range(n):
        if site_level and len(cl.sites) > 1 and k == 0:
            s = cl.sites[int(rng.integers(len(cl.sites)))]
            avail, nominal, types, speed = 0, 0, set(), 0.0
            for ei, e in enumerate(cl.entries):
                if e.site == s:
                    avail += sum(cl.available_in_child(ei, c) for c in range(e.children))
                    nominal += e.gpus
                    types.add(e.gpu_type)
                    speed = max(speed, GPU_TYPES[e.gpu_type]["speed"])
            o: dict[str, Any] = {
                "name": f"campus-tenant-{k}",
                "level": "site",
                "price_per_gpu_hour": _r(ref * speed * rng.uniform(0.8, 1.2)),
                "min_gpus": int(avail * rng.uniform(0.85, 1.0)),
                "max_gpus": nominal,
                "sites": [s],
                "single_site": True,
            }
            if multi_type:
                o["gpu_types"] = sorted(types)
            offers.append(o)
            continue
        # prefer (site, type) pairs with several blocks: leasing the only block of a type
        # is rarely a real question
        n_blocks = [
            sum(f.children for f in cl.entries if f.site == e.site and f.gpu_type == e.gpu_type)
            for e in cl.entries
        ]
        w = np.array(
            [
                e.gpus * (1.0 if nb > 1 else 1e-3)
                for e, nb in zip(cl.entries, n_blocks, strict=True)
            ],
            dtype=float,
        )
        ei = int(rng.choice(len(cl.entries), p=w / w.sum()))
        e = cl.entries[ei]
        same = [
            (i, c)
            for i, f in enumerate(cl.entries)
            if f.site == e.site and f.gpu_type == e.gpu_type
            for c in range(f.children)
        ]
        avail = sorted((cl.available_in_child(i, c) for i, c in same), reverse=True)
        blocks = int(rng.integers(1, max(1, len(avail) // 4) + 1))
        lo = int(sum(avail[:blocks]) * rng.uniform(0.85, 1.0))
        hi = max(lo, min(sum(avail[: blocks + 1]), sum(avail) // 2))
        o = {
            "name": f"tenant-{k}",
            "price_per_gpu_hour": _r(ref * GPU_TYPES[e.gpu_type]["speed"] * rng.uniform(0.8, 1.2)),
            "min_gpus": lo,
            "max_gpus": hi,
            "sites": [e.site],
        }
        if multi_type:
            o["gpu_types"] = [e.gpu_type]
        offers.append(o)
    return {"level": cl.levels[1], "offers": offers}


def _max_gpus(job: dict) -> int:
    unit = job.get("tp", 1) * job.get("pp", 1)
    return unit * (job["dp"] if job["kind"] == "training" else job["replicas"])


def _gpu_types(cl: _Cluster) -> dict:
    return {t: dict(GPU_TYPES[t]) for t in cl.types}


def _assemble(
    name: str, cl: _Cluster, topology: dict, jobs: list[dict], m: dict, leases: dict | None
) -> dict:
    d: dict[str, Any] = {
        "name": name,
        "horizon_hours": _r(m["horizon_hours"], 3),
        "topology": topology,
        "gpu_types": _gpu_types(cl),
        "jobs": jobs,
    }
    if leases:
        d["leases"] = leases
    return d


def _finish(
    rng: np.random.Generator,
    name: str,
    cl: _Cluster,
    fabric: dict,
    site_extra: dict[str, dict],
    wan: list[dict],
    m: dict,
    jobs: list[dict],
    site_level_offers: bool,
    power_cap_factor: Any,
) -> dict:
    _make_running(rng, cl, m, jobs)
    leases = _offers(rng, cl, jobs, m["n_offers"], m["horizon_hours"], site_level_offers)
    for s, kw in _power_caps(cl, power_cap_factor).items():
        site_extra.setdefault(s, {})["power_cap_kW"] = kw
    return _assemble(name, cl, _topology(cl, fabric, site_extra, wan), jobs, m, leases)


# --------------------------------------------------------------------------- families


def superpod(
    seed: int = 0,
    *,
    sus: int = 4,
    racks_per_su: int = 8,
    nodes_per_rack: int = 4,
    ufm_slot: bool = True,
    power_cap_factor: float | None = 1.05,
    **mix: Any,
) -> dict:
    """One NVIDIA DGX SuperPOD (H100 reference architecture): `sus` scalable units of
    `racks_per_su` x `nodes_per_rack` DGX H100 (32 DGX = 256 GPUs per SU by default),
    levels ``[site, su, rack, node]``.

    The compute fabric is rail-optimised: a same-rail peer anywhere in the SU is one leaf
    hop away, so ``rack`` and ``su`` have the same link (4.0 us, 48.5 GB/s); between SUs
    leaf-spine-leaf (4.5 us, 45 GB/s), with a core tier above 8 SUs (5.0 us). With
    `ufm_slot` the last DGX slot is unavailable (the RA lists 127 nodes for 4 SUs). Lease
    offers are whole SUs. Job mix parameters: see ``MIX_DEFAULTS``.
    """
    m = _mix(mix, "superpod")
    rng = np.random.default_rng(seed)
    levels = ["site", "su", "rack", "node"]
    cl = _Cluster(
        levels,
        [
            _Entry(
                "superpod", "su", sus, (racks_per_su, nodes_per_rack), "H100", 8, ("rack", "node")
            )
        ],
        ["superpod"],
    )
    _check_limits(cl)
    if ufm_slot:
        e = cl.entries[0]
        last = e.nodes - 1
        cl.unavailable.append(e.path(last))
        cl.blocked.setdefault(0, set()).add(last)
        cl.down_gpus[(0, e.children - 1)] = 8
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    site_lat = 4.5 if sus <= 8 else 5.0
    fabric = _fabric(
        {"node": (1.0, 370.0), "rack": (4.0, 48.5), "su": (4.0, 48.5), "site": (site_lat, 45.0)},
        levels,
    )
    extra = {"superpod": {"node_failures_per_day": NODE_FAILURES_PER_DAY["H100"]}}
    jobs = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng, f"superpod-{sus}su-s{seed}", cl, fabric, extra, [], m, jobs, False, power_cap_factor
    )


def _campuses(
    rng: np.random.Generator,
    m: dict,
    sites: int,
    gpus_per_site: Any,
    pods_per_hall: int,
    gpu_type: str,
    wan_latency_us: Any,
    wan_bandwidth_GBps: Any,
    wan_failures_per_day: Any,
    wan_max_km: float,
    older_site: bool,
) -> tuple[_Cluster, dict, dict[str, dict], list[dict]]:
    """HGX campuses, their unavailable parts, fabric, per-site extras and WAN mesh."""
    if not 1 <= sites <= 8:
        raise ValueError("sites must be between 1 and 8")
    if gpu_type not in ("H100", "H200"):
        raise ValueError("campuses are HGX sites (H100 or H200); use nvl72 or hetero for GB200")
    levels = ["site", "hall", "pod", "rack", "node"]
    per = (
        list(gpus_per_site) if isinstance(gpus_per_site, list | tuple) else [gpus_per_site] * sites
    )
    if len(per) != sites:
        raise ValueError(f"gpus_per_site: {len(per)} values for {sites} sites")
    names = [f"campus-{chr(ord('a') + i)}" for i in range(sites)]
    entries = []
    for s, g in zip(names, per, strict=True):
        pods = max(1, round(int(g) / 512))
        entries += _hall_entries(
            s, pods, pods_per_hall, (8, 8), gpu_type, 8, ("pod", "rack", "node")
        )
    cl = _Cluster(levels, entries, names)
    _check_limits(cl)
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    extra: dict[str, dict] = {}
    for k, s in enumerate(names):
        old = older_site and k == 0 and sites > 1
        extra[s] = {
            "node_failures_per_day": _r(NODE_FAILURES_PER_DAY[gpu_type] * (1.2 if old else 1.0), 5)
        }
        if old:
            extra[s] = {"fabric": _fabric(OLDER_SITE_FABRIC, levels), **extra[s]}
    wan = _wan(rng, names, wan_latency_us, wan_bandwidth_GBps, wan_failures_per_day, wan_max_km)
    return cl, _fabric(HGX_FABRIC, levels), extra, wan


def multicampus(
    seed: int = 0,
    *,
    sites: int = 3,
    gpus_per_site: int | list[int] = 16384,
    pods_per_hall: int = 16,
    gpu_type: str = "H100",
    wan_latency_us: float | list[float] | None = None,
    wan_bandwidth_GBps: float | list[float] | None = None,
    wan_failures_per_day: float | list[float] | None = None,
    wan_max_km: float = 40.0,
    older_site: bool = True,
    power_cap_factor: float | None = 1.05,
    **mix: Any,
) -> dict:
    """`sites` (2-4) HGX campuses joined by a full mesh of WAN links; levels
    ``[site, hall, pod, rack, node]`` with 8 GPUs per node, 8 nodes per rack, 8 racks per
    pod (512 GPUs, a Colossus "array") and `pods_per_hall` pods per hall.

    `gpus_per_site` (one value or one per site) is rounded to whole pods. WAN latency is
    fibre at 4.9 us/km over a route 1.4x the straight line between random site positions
    in a `wan_max_km` square, plus 20 us of DCI equipment, unless `wan_latency_us` is given;
    bandwidth is drawn from 0.4 / 1.6 / 6.4 Tb/s (50 / 200 / 800 GB/s) unless
    `wan_bandwidth_GBps` is given; failures from U(0.05, 0.3) per day unless
    `wan_failures_per_day` is given (each: a scalar for all links or a list, one per link
    in pair order (a,b), (a,c), ..., (b,c), ...). With `older_site` the first site has the
    older, tapered fabric of colossus-1 and 20% more node failures. Offers: halls and whole
    sites.
    """
    m = _mix(mix, "multicampus")
    rng = np.random.default_rng(seed)
    cl, fabric, extra, wan = _campuses(
        rng,
        m,
        sites,
        gpus_per_site,
        pods_per_hall,
        gpu_type,
        wan_latency_us,
        wan_bandwidth_GBps,
        wan_failures_per_day,
        wan_max_km,
        older_site,
    )
    jobs = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng,
        f"multicampus-{sites}x-s{seed}",
        cl,
        fabric,
        extra,
        wan,
        m,
        jobs,
        True,
        power_cap_factor,
    )


def nvl72(
    seed: int = 0,
    *,
    halls: int = 2,
    sus_per_hall: int = 4,
    racks_per_su: int = 8,
    trays_per_rack: int = 18,
    power_cap_factor: float | None = 0.95,
    **mix: Any,
) -> dict:
    """One GB200 NVL72 campus: levels ``[site, hall, su, rack, node]``, a node is a
    compute tray of 4 GPUs (``gpus_per_node: 4``), 18 trays per NVL72 rack (72 GPUs in one
    NVLink domain), 8 racks per scalable unit (576 GPUs, DGX GB200 RA).

    NVLink5 bandwidth (722 GB/s per GPU) holds at the ``rack`` level (1.5 us for the
    NVLink-switch hop); jobs with TP across trays say ``scope: {tp: rack}``. The default
    power cap (0.95 of full load) leaves some GPUs dark. Offers are whole halls.
    """
    m = _mix(mix, "nvl72")
    rng = np.random.default_rng(seed)
    levels = ["site", "hall", "su", "rack", "node"]
    entries = [
        _Entry(
            "nvl72",
            "hall",
            halls,
            (sus_per_hall, racks_per_su, trays_per_rack),
            "GB200",
            4,
            ("su", "rack", "node"),
        )
    ]
    cl = _Cluster(levels, entries, ["nvl72"])
    _check_limits(cl)
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    extra = {"nvl72": {"node_failures_per_day": NODE_FAILURES_PER_DAY["GB200"]}}
    jobs = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng,
        f"nvl72-{halls * sus_per_hall}su-s{seed}",
        cl,
        _fabric(NVL72_FABRIC, levels),
        extra,
        [],
        m,
        jobs,
        False,
        power_cap_factor,
    )


def hetero(
    seed: int = 0,
    *,
    h100_gpus: int = 8192,
    h200_gpus: int = 4096,
    gb200_gpus: int = 4608,
    pods_per_hall: int = 4,
    wan_latency_us: float | None = None,
    wan_bandwidth_GBps: float | None = None,
    power_cap_factor: float | None = 1.0,
    **mix: Any,
) -> dict:
    """A heterogeneous fleet: an HGX campus ``hopper`` with H100 halls and H200 halls, and
    a GB200 NVL72 campus ``blackwell`` (trays as nodes, NVLink5 at the rack level), joined
    by one WAN link; levels ``[site, hall, pod, rack, node]``.

    GPU types carry speed and power (H100 1.0 / 1.4 kW, H200 1.4 / 1.4 kW, GB200 2.5 /
    1.8 kW). Jobs name the types they may use: one type, both Hopper types, or (inference
    only) any type; a job that may run on GB200 and other types keeps TP within 4 GPUs.
    GPU counts are rounded to whole pods (512 HGX GPUs, 576 GB200 GPUs), `pods_per_hall`
    pods make a hall; a type with 0 GPUs is left out. Offers are halls of one type, priced
    by the type's speed.
    """
    m = _mix(mix, "hetero")
    rng = np.random.default_rng(seed)
    levels = ["site", "hall", "pod", "rack", "node"]
    below = ("pod", "rack", "node")
    entries = []
    first = 0
    for t, g in (("H100", h100_gpus), ("H200", h200_gpus)):
        pods = round(g / 512)
        if pods:
            es = _hall_entries("hopper", pods, pods_per_hall, (8, 8), t, 8, below, first=first)
            entries += es
            first += sum(e.children for e in es)
    sus = round(gb200_gpus / 576)
    if sus:
        entries += _hall_entries("blackwell", sus, pods_per_hall, (8, 18), "GB200", 4, below)
    if not entries:
        raise ValueError("hetero needs at least one GPU")
    site_names = list(dict.fromkeys(e.site for e in entries))
    cl = _Cluster(levels, entries, site_names)
    _check_limits(cl)
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    extra: dict[str, dict] = {}
    if "hopper" in site_names:
        extra["hopper"] = {"node_failures_per_day": NODE_FAILURES_PER_DAY["H100"]}
    if "blackwell" in site_names:
        extra["blackwell"] = {
            "fabric": _fabric(
                {
                    "node": NVL72_FABRIC["node"],
                    "rack": NVL72_FABRIC["rack"],
                    "pod": NVL72_FABRIC["pod"],
                },
                levels,
            ),
            "node_failures_per_day": NODE_FAILURES_PER_DAY["GB200"],
        }
    wan = (
        _wan(rng, site_names, wan_latency_us, wan_bandwidth_GBps, None, 20.0)
        if len(site_names) > 1
        else []
    )
    jobs = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng,
        f"hetero-s{seed}",
        cl,
        _fabric(HGX_FABRIC, levels),
        extra,
        wan,
        m,
        jobs,
        False,
        power_cap_factor,
    )


# frontier job shapes: (name, params_active, dense, experts, L, h, seq, m, tp, pp, ep, k_eff)
FRONTIER_MODELS = (
    ("flagship-405b", 405e9, 405e9, 0.0, 126, 16384, 8192, 16, 8, 16, 1),
    ("moe-1t", 70e9, 40e9, 960e9, 64, 8192, 8192, 16, 8, 8, 8),
    ("rl-300b", 300e9, 300e9, 0.0, 96, 16384, 8192, 8, 8, 4, 1),
    ("longctx-175b", 175e9, 175e9, 0.0, 96, 12288, 32768, 4, 8, 8, 1),
)


def frontier(
    seed: int = 0,
    *,
    sites: int = 2,
    gpus_per_site: int = 65536,
    n_frontier: int = 3,
    gpu_type: str = "H100",
    wan_bandwidth_GBps: float | list[float] | None = None,
    power_cap_factor: float | None = 1.05,
    **mix: Any,
) -> dict:
    """A few very large training jobs on a multi-campus HGX cluster (the multicampus
    topology), plus `n_jobs` (default 6) smaller trace-drawn jobs.

    The frontier jobs are modelled on published runs: a Llama-3-405B-like dense
    pretraining (TP 8 x PP 16, up to 3/4 of the cluster, DP across campuses with a
    DiLoCo-style outer step every 100 steps when there are several sites), a 1T MoE
    (TP 8 x PP 8, EP 8) and an RL / long-context job (10-25% of the cluster each). None of
    the public traces holds jobs this large (the largest is 2,048 GPUs), so their sizes
    are set as shares of the cluster, not drawn. One offer leases a whole site.
    """
    m = _mix(mix, "frontier")
    rng = np.random.default_rng(seed)
    cl, fabric, extra, wan = _campuses(
        rng, m, sites, gpus_per_site, 16, gpu_type, None, wan_bandwidth_GBps, None, 40.0, False
    )
    names = cl.sites
    total = cl.total_gpus()
    site_cap = max(cl.site_capacity(None).values())
    multi = len(names) > 1
    jobs = []
    for k in range(n_frontier):
        name, Pa, Pd, Pe, L, h, seq, mb, tp, pp, ep = FRONTIER_MODELS[k % len(FRONTIER_MODELS)]
        unit = tp * pp
        share = rng.uniform(0.5, 0.75) if k == 0 else rng.uniform(0.1, 0.25)
        reach = total if (multi and k == 0) else site_cap
        dp = max(ep, int(share * reach / unit) // ep * ep)
        min_dp = max(ep, int(dp * rng.uniform(0.25, 0.5)) // ep * ep)
        moe = Pe > 0
        comm, compute_ms, _ = _training_comm(Pa, L, h, seq, mb, tp, pp, ep, moe)
        if moe:  # exact dense / expert split of the shape instead of the generic MoE rule
            dp_mb = 2 * (Pd / (tp * pp) + Pe / (tp * pp * ep)) / 1e6
            comm["dp_MB"] = _sig(dp_mb)
            comm["dp_messages"] = max(1, math.ceil(dp_mb / DP_BUCKET_MB))
        job: dict[str, Any] = {
            "name": f"{name}-{k}",
            "kind": "training",
            "tp": tp,
            "pp": pp,
            "dp": dp,
            "min_dp": min_dp,
        }
        if moe:
            job["ep"] = ep
        scope: dict[str, str] = {"pp": "hall"}
        if multi and k == 0:
            scope["dp"] = "cluster"
            job["cross_site_every"] = 100
        job["scope"] = scope
        job["comm"] = comm
        job["compute_ms"] = compute_ms
        job["overlap"] = {
            d: OVERLAP[d] for d in (("tp", "pp", "dp", "ep") if moe else ("tp", "pp", "dp"))
        }
        job["value"] = _r(rng.uniform(2.6, 3.0) if k == 0 else rng.uniform(2.0, 2.6))
        job["restart_min"], job["checkpoint_interval_min"] = (5.0, 6.0) if k == 0 else (8.0, 15.0)
        jobs.append(job)
    jobs += _draw_jobs(rng, cl, m, m["n_jobs"], first_index=n_frontier)
    return _finish(
        rng, f"frontier-{sites}x-s{seed}", cl, fabric, extra, wan, m, jobs, True, power_cap_factor
    )


def scale(
    seed: int = 0,
    *,
    gpus: int = 8192,
    sites: int | None = None,
    pods_per_hall: int = 16,
    power_cap_factor: float | None = None,
    **mix: Any,
) -> dict:
    """A scaling benchmark: `gpus` H100 GPUs (1k ... 1M, rounded to whole 512-GPU pods)
    and `n_jobs` trace-drawn jobs (default 200, up to 5,000), levels
    ``[site, hall, pod, rack, node]``.

    Sites: 1 up to 32k GPUs, 2 up to 256k, else 4 (unless `sites` is given), each with
    halls of `pods_per_hall` pods (8,192 GPUs), all joined by WAN links. The topology is
    written with count/shape (a few lines whatever the size); with ``size_scale=None`` job
    sizes are scaled so that the jobs' largest sizes add up to `load` x the cluster.
    Running jobs are kept few and small (2%, <= 128 GPUs) so the file stays small.
    """
    if gpus < 1 or gpus > MAX_GPUS:
        raise ValueError(f"gpus must be in 1..{MAX_GPUS:,}")
    m = _mix(mix, "scale")
    if m["unavailable_nodes"] is None:
        m["unavailable_nodes"] = max(2, gpus // 50_000)
    if m["unavailable_racks"] is None:
        m["unavailable_racks"] = gpus // 200_000
    rng = np.random.default_rng(seed)
    pods = max(1, round(gpus / 512))
    n_sites = sites or (1 if pods * 512 <= 32768 else 2 if pods * 512 <= 262144 else 4)
    n_sites = max(1, min(n_sites, pods))
    names = [f"site{i}" for i in range(n_sites)]
    levels = ["site", "hall", "pod", "rack", "node"]
    entries = []
    base, extra_pods = divmod(pods, n_sites)
    for i, s in enumerate(names):
        entries += _hall_entries(
            s,
            base + (1 if i < extra_pods else 0),
            pods_per_hall,
            (8, 8),
            "H100",
            8,
            ("pod", "rack", "node"),
        )
    cl = _Cluster(levels, entries, names)
    _check_limits(cl)
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    extra = {s: {"node_failures_per_day": NODE_FAILURES_PER_DAY["H100"]} for s in names}
    wan = _wan(rng, names, None, None, None, 40.0) if n_sites > 1 else []
    job_list = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng,
        f"scale-{pods * 512}g-{m['n_jobs']}j-s{seed}",
        cl,
        _fabric(HGX_FABRIC, levels),
        extra,
        wan,
        m,
        job_list,
        n_sites > 1,
        power_cap_factor,
    )


FAMILIES: dict[str, Callable[..., dict]] = {
    "superpod": superpod,
    "multicampus": multicampus,
    "nvl72": nvl72,
    "hetero": hetero,
    "frontier": frontier,
    "scale": scale,
}


def _own_params(fn: Callable[..., dict]) -> dict[str, Any]:
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.kind == p.KEYWORD_ONLY
    }


def params(family: str) -> dict[str, Any]:
    """Default parameters of a family: its own, then the job-mix ones (``MIX_DEFAULTS``
    with the family's overrides)."""
    own = _own_params(_family(family))
    return {**own, **MIX_DEFAULTS, **FAMILY_MIX[family]}


def _family(family: str) -> Callable[..., dict]:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def generate(family: str, seed: int = 0, **params: Any) -> dict:
    """A raw instance dict of `family`, deterministic in (`family`, `seed`, `params`).

    ``placer.validate.instance_from_dict(generate(...))`` accepts it with no warning.
    Unknown families or parameters raise ``ValueError`` / ``TypeError`` naming the valid
    ones; see :data:`FAMILIES` and :func:`params` for the defaults.

    Examples
    --------
    >>> d = generate("multicampus", seed=3, sites=2, gpus_per_site=2048, n_jobs=4)
    >>> [s["name"] for s in d["topology"]["sites"]]
    ['campus-a', 'campus-b']
    """
    fn = _family(family)
    return fn(int(seed), **params)


# --------------------------------------------------------------------------- YAML


_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's emitter when present


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    """Block style for the structure, flow style for small leaf mappings and lists."""


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _repr_dict(dumper: yaml.SafeDumper, d: dict) -> yaml.MappingNode:
    flow = len(d) <= 12 and all(
        _is_scalar(v) or (isinstance(v, list) and len(v) <= 8 and all(_is_scalar(x) for x in v))
        for v in d.values()
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", d.items(), flow_style=flow)


def _repr_list(dumper: yaml.SafeDumper, v: list) -> yaml.SequenceNode:
    return dumper.represent_sequence(
        "tag:yaml.org,2002:seq", v, flow_style=all(_is_scalar(x) for x in v)
    )


_Dumper.add_representer(dict, _repr_dict)
_Dumper.add_representer(list, _repr_list)


def to_yaml(d: dict, comment: str | None = None) -> str:
    """The instance `d` as compact YAML (key order kept; small mappings and scalar lists in
    flow style), optionally preceded by `comment` lines. ``yaml.safe_load`` gives `d` back.
    """
    text = yaml.dump(
        d, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True, default_flow_style=False
    )
    if comment:
        head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
        text = head + text
    return text


__all__ = [
    "FAMILIES",
    "MIX_DEFAULTS",
    "cluster_summaries",
    "duration_quantiles",
    "frontier",
    "generate",
    "hetero",
    "multicampus",
    "nvl72",
    "params",
    "scale",
    "size_class",
    "superpod",
    "to_yaml",
    "trace_sizes",
    "traces",
]
