"""Job mixes of the generators: training and inference jobs drawn from the trace tables,
running jobs, lease offers, and the assembly of an instance dict.

Imports numpy and the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from placer.generators.catalogue import (
    DP_BUCKET_MB,
    GPU_TYPES,
    HBM_EFF,
    HBM_TBPS,
    INFERENCE_MODELS,
    KALOS_MEAN_GPUS_ROW,
    KV_FACTOR,
    MOE_DENSE_SHARE,
    MOE_EXPERT_FACTOR,
    MOE_K_EFF,
    OVERLAP,
    PEAK_TFLOPS,
    TRAINING_MODELS,
    _pow2_divisor,
    _r,
    _sig,
)
from placer.generators.topology import _Cluster, _power_caps, _topology
from placer.generators.traces import (
    _mean_trace_gpus,
    cluster_summaries,
    duration_quantiles,
    size_class,
    trace_sizes,
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
    "plan_share": 0.0,  # share of TP-8 training jobs given 2-4 plans (SPEC v3)
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
    "fragmented": {"n_jobs": 12, "n_offers": 0, "plan_share": 1.0},
    "scale": {
        "n_jobs": 200,
        "running_share": 0.02,
        "running_max_gpus": 128,
        "n_offers": 2,
        "unavailable_nodes": None,
        "unavailable_racks": None,
    },
}


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
    if m["plan_share"] > 0 and tp == 8 and not rack_tp and rng.random() < m["plan_share"]:
        job["plans"] = _shape_plans(rng, job, (P, L, h, seq, mb), moe)
    return job


def _plan(job: dict, name: str, tp: int, pp: int, dp: int, shape: tuple, moe: bool) -> dict:
    """One plan of `job`: its tp / pp / dp with the message sizes, overlaps and (pp > 1) the
    1F1B microbatches of that shape; `compute_ms` only where tp·pp differs from the job's."""
    P, L, h, seq, mb = shape
    ep = job.get("ep", 1)
    comm, compute_ms, _ = _training_comm(P, L, h, seq, mb, tp, pp, ep, moe)
    plan: dict[str, Any] = {"name": name, "tp": tp, "pp": pp, "dp": dp}
    if pp > 1:
        plan["microbatches"] = mb
    plan["comm"] = comm
    plan["overlap"] = {
        d: OVERLAP[d]
        for d in ("tp", "pp", "dp", "ep")
        if (d == "tp" and tp > 1) or (d == "pp" and pp > 1) or d == "dp" or (d == "ep" and moe)
    }
    if tp * pp != job["tp"] * job["pp"]:
        plan["compute_ms"] = compute_ms
    return plan


def _shape_plans(rng: np.random.Generator, job: dict, shape: tuple, moe: bool) -> list[dict]:
    """2-4 plans of a TP-8 training job (docs/generators.md, "Plans").

    The job's own shape (tp 8 · pp) comes first: on an empty HGX cluster it is the fastest
    (TP on NVLink, the least pipeline bubble), so a scheduler without plan choice runs it.
    Then tp 4 · 2pp, and with probability 0.7 tp 2 · 4pp: same GPUs per unit and compute,
    their TP groups fit half or a quarter of a node, at the price of more PP messages and a
    larger 1F1B bubble (the model's microbatches). A job whose DP may cross sites
    (`scope: {dp: cluster}`) also gets ``pp-sites``: PP across sites and DP inside one
    (Sailor's rule, Atlas), with the job's own shape, or tp 8 · pp 2 and half the units
    when the job has one stage (and an even dp).
    """
    pp, dp = job["pp"], job["dp"]
    shapes = [(8, pp), (4, 2 * pp)]
    if rng.random() < 0.7:
        shapes.append((2, 4 * pp))
    plans = [
        _plan(job, f"tp{t}" if p == 1 else f"tp{t}-pp{p}", t, p, dp, shape, moe) for t, p in shapes
    ]
    ep = job.get("ep", 1)
    if job.get("scope", {}).get("dp") == "cluster" and (pp > 1 or dp % (2 * ep) == 0):
        if pp > 1:  # the job's own shape, its pipeline across sites
            pl = {"name": "pp-sites", **{k: v for k, v in plans[0].items() if k != "name"}}
        else:  # two stages: half the units
            half = dp // 2
            pl = _plan(job, "pp-sites", 8, 2, half, shape, moe)
            if "min_dp" in job:
                pl["min_dp"] = min(half, max(ep, -(-job["min_dp"] // 2 // ep) * ep))
        pl["scope"] = {"pp": "cluster", "dp": "site"}
        plans.append(pl)
    return plans


def _residents(rng: np.random.Generator, cl: _Cluster, share: float) -> list[dict]:
    """Small pinned inference fleets holding 1-4 GPUs in a `share` of the nodes, the
    fragments a busy cluster leaves (57% of running ITP jobs use one GPU; docs/generators.md
    "fragmented"): a TP-1 fleet takes 1 or 3 GPUs of a node, a TP-2 fleet 2 or 4. Their
    nodes are then skipped by the running jobs drawn later."""
    ones: list[str] = []
    twos: list[str] = []
    for ei, e in enumerate(cl.entries):
        blocked = cl.blocked.setdefault(ei, set())
        for node in range(e.nodes):
            if node in blocked or rng.random() >= share:
                continue
            k = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.1, 0.25]))
            ids = [f"{e.path(node)}/gpu{i}" for i in range(k)]
            (ones if k % 2 else twos).extend(ids)
            blocked.add(node)
    fleets = []
    for ids, tp, model in ((ones, 1, "embed"), (twos, 2, "34b-fp8")):
        if not ids:
            continue
        job: dict[str, Any] = {"name": f"resident-{model}", "kind": "inference"}
        if tp > 1:
            job["tp"] = tp
        job["replicas"] = len(ids) // tp
        job["value"] = _r(rng.uniform(1.4, 3.0), 2)
        job["current"] = ids
        job["pinned"] = True
        # as every running job has one (two hours of its value; no draw, so the rest of the
        # instance is unchanged); a pinned fleet never pays it
        job["migration_cost"] = _r(job["value"] * len(ids) * 2.0, 0)
        fleets.append(job)
    return fleets


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
        if "plans" in job:  # it runs its first plan (the shape it was allocated with)
            job["current_plan"] = job["plans"][0]["name"]
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
