"""Seeded instance generators: the named families of realistic instances for tests, benchmarks
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
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from numbers import Integral
from typing import Any

import numpy as np
import yaml

from placer.generators.catalogue import (
    DP_BUCKET_MB,
    HGX_FABRIC,
    MAX_GPUS,
    NODE_FAILURES_PER_DAY,
    NVL72_FABRIC,
    OLDER_SITE_FABRIC,
    OVERLAP,
    _fabric,
    _r,
    _sig,
)
from placer.generators.jobs import (
    FAMILY_MIX,
    MIX_DEFAULTS,
    _draw_jobs,
    _finish,
    _residents,
    _training_comm,
)
from placer.generators.topology import _check_limits, _Cluster, _Entry, _hall_entries, _wan
from placer.generators.traces import (
    cluster_summaries,
    duration_quantiles,
    size_class,
    trace_sizes,
    traces,
)

# --------------------------------------------------------------------------- families


SUPERPOD_LEVELS = ["site", "su", "rack", "node"]


def _superpod_cluster(sus: int, racks_per_su: int, nodes_per_rack: int) -> _Cluster:
    """The DGX SuperPOD's tree (shared by `superpod` and `fragmented`); draws nothing."""
    cl = _Cluster(
        SUPERPOD_LEVELS,
        [
            _Entry(
                "superpod", "su", sus, (racks_per_su, nodes_per_rack), "H100", 8, ("rack", "node")
            )
        ],
        ["superpod"],
    )
    _check_limits(cl)
    return cl


def _superpod_fabric(sus: int) -> dict:
    """The SuperPOD RA's links: a core tier above 8 SUs."""
    site_lat = 4.5 if sus <= 8 else 5.0
    return _fabric(
        {"node": (1.0, 370.0), "rack": (4.0, 48.5), "su": (4.0, 48.5), "site": (site_lat, 45.0)},
        SUPERPOD_LEVELS,
    )


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
    cl = _superpod_cluster(sus, racks_per_su, nodes_per_rack)
    if ufm_slot:
        e = cl.entries[0]
        last = e.nodes - 1
        cl.unavailable.append(e.path(last))
        cl.blocked.setdefault(0, set()).add(last)
        cl.down_gpus[(0, e.children - 1)] = 8
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    fabric = _superpod_fabric(sus)
    extra = {"superpod": {"node_failures_per_day": NODE_FAILURES_PER_DAY["H100"]}}
    jobs = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng, f"superpod-{sus}su-s{seed}", cl, fabric, extra, [], m, jobs, False, power_cap_factor
    )


def fragmented(
    seed: int = 0,
    *,
    sus: int = 4,
    racks_per_su: int = 8,
    nodes_per_rack: int = 4,
    frag_share: float = 0.5,
    power_cap_factor: float | None = 1.05,
    **mix: Any,
) -> dict:
    """A busy DGX SuperPOD (the `superpod` topology and fabric) whose nodes are fragmented:
    small pinned inference fleets hold 1-4 GPUs in a `frag_share` of the nodes, so a TP-8
    group fits only the remaining whole nodes while TP 4 or TP 2 fits the fragments. Every
    TP-8 training job has 2-4 plans by default (``plan_share=1``; docs/generators.md,
    "Plans"); no lease offers by default (``n_offers=0``): the question is how jobs run.
    """
    if not 0.0 <= frag_share <= 1.0:
        raise ValueError("frag_share must be between 0 and 1")
    m = _mix(mix, "fragmented")
    rng = np.random.default_rng(seed)
    cl = _superpod_cluster(sus, racks_per_su, nodes_per_rack)
    cl.mark_unavailable(rng, m["unavailable_nodes"], m["unavailable_racks"], m["unavailable_gpus"])
    fabric = _superpod_fabric(sus)
    extra = {"superpod": {"node_failures_per_day": NODE_FAILURES_PER_DAY["H100"]}}
    residents = _residents(rng, cl, frag_share)
    jobs = _draw_jobs(rng, cl, m, m["n_jobs"])
    return _finish(
        rng,
        f"fragmented-{sus}su-s{seed}",
        cl,
        fabric,
        extra,
        [],
        m,
        residents + jobs,
        False,
        power_cap_factor,
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
    are set as shares of the cluster, not drawn. One offer leases a whole site. With
    ``plan_share`` > 0 the cross-site flagship gets three plans (sync-dp first, diloco-100,
    pp-sites) and drawn TP-8 training jobs their shape plans.
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
        if multi and k == 0 and m["plan_share"] > 0:
            job["plans"] = _flagship_plans(job)
        jobs.append(job)
    jobs += _draw_jobs(rng, cl, m, m["n_jobs"], first_index=n_frontier)
    return _finish(
        rng, f"frontier-{sites}x-s{seed}", cl, fabric, extra, wan, m, jobs, True, power_cap_factor
    )


def _flagship_plans(job: dict) -> list[dict]:
    """The three ways to run a cross-site frontier run (as colossus-v2's; docs/generators.md,
    "Plans"): synchronous DP over the WAN (first: the run as its engineers describe it
    today), DiLoCo-style outer synchronisation every 100 steps at a 10% value discount for
    convergence (instances/README.md section 6), and PP across sites with DP inside each
    (Sailor's rule, Atlas)."""
    scope = job["scope"]
    return [
        {"name": "sync-dp", "scope": dict(scope), "cross_site_every": 1},
        {
            "name": "diloco-100",
            "scope": dict(scope),
            "cross_site_every": 100,
            "value": _r(0.9 * job["value"]),
        },
        {"name": "pp-sites", "scope": {"pp": "cluster", "dp": "site"}},
    ]


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
    "fragmented": fragmented,
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
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"seed: must be an integer in 0 .. 2**32-1 (numpy's seeds), got {seed!r}")
    defaults = {**_own_params(fn), **MIX_DEFAULTS, **FAMILY_MIX[family]}  # as params(family)
    for k, v in params.items():
        d = defaults.get(k)
        number = isinstance(d, int | float) and not isinstance(d, bool)
        if number and isinstance(v, str | bool):  # None may mean "off" (power_cap_factor)
            kind = "an integer" if isinstance(d, int) else "a number"
            raise TypeError(f"{k}: expected {kind} (default {d!r}), got {v!r}")
        if number and isinstance(v, int | float) and not isinstance(v, bool):
            # every numeric parameter is a count, a size, a time, a distance or a factor,
            # never negative (n_jobs=-3 gave an instance of no jobs); shares are fractions
            if k.endswith("_share") and not 0 <= v <= 1:
                raise ValueError(f"{k}: must be a share in 0 .. 1, got {v!r}")
            if v < 0 or v != v:
                raise ValueError(f"{k}: must be >= 0 (default {d!r}), got {v!r}")
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
    "fragmented",
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
