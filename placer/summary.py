"""A plain-data summary of an instance (for `placer show` and its --json)."""

from __future__ import annotations

from typing import Any

import numpy as np

from placer.model import Instance


def instance_summary(inst: Instance) -> dict[str, Any]:
    ix = inst.index
    L = ix.n_levels
    sites = []
    for s, site in enumerate(inst.topology.sites):
        a, b = ix.gpu_range(0, s)
        types = {}
        for t in np.unique(ix.gpu_type[a:b]).tolist():
            types[ix.type_names[t]] = int((ix.gpu_type[a:b] == t).sum())
        domains = {}
        for lvl in range(1, L):
            domains[ix.levels[lvl]] = int(len(np.unique(ix.dom[lvl][a:b])))
        sites.append(
            {
                "name": site.name,
                "gpus": b - a,
                "available": int(ix.available[a:b].sum()),
                "types": types,
                "nodes": domains[ix.levels[-1]],
                "domains": domains,
                "power_cap_kW": site.power_cap_kW,
                "node_failures_per_day": site.node_failures_per_day,
                "fabric": {
                    lv: {
                        "latency_us": float(ix.lat_us[s, li]),
                        "bandwidth_GBps": float(ix.bw_GBps[s, li]),
                    }
                    for li, lv in enumerate(ix.levels)
                },
            }
        )
    paths = []
    for (x, y), links in sorted(ix.wan_path_links.items()):
        if x >= y:
            continue
        via = [ix.site_names[x]]
        cur = x
        for li in links:
            a, b = (ix.site_index[n] for n in inst.topology.wan[li].between)
            cur = b if cur == a else a
            via.append(ix.site_names[cur])
        paths.append(
            {
                "from": ix.site_names[x],
                "to": ix.site_names[y],
                "via": via,
                "latency_us": float(ix.wan_lat_us[x, y]),
                "bandwidth_GBps": float(ix.wan_bw_GBps[x, y]),
                "failures_per_day": float(ix.link_fail_per_day[list(links)].sum()),
            }
        )
    jobs = []
    for job in inst.jobs:
        # a job with plans (v3) is shown under its default plan, its plans listed below
        row = _shape(job.under(job.default_plan))
        row.update(name=job.name, kind=job.kind)
        row["running"] = ("pinned" if job.pinned else "yes") if job.current else "no"
        if job.plans:
            row["plans"] = [{"name": v.plan, **_shape(v)} for v in job.variants()]
            row["current_plan"] = job.current_plan if job.current else None
        jobs.append(row)
    offers = [
        {
            "name": o.name,
            "price_per_gpu_hour": o.price_per_gpu_hour,
            "level": inst.offer_level(o),
            "min_gpus": o.min_gpus,
            "max_gpus": o.max_gpus,
            "sites": o.sites,
            "gpu_types": o.gpu_types,
            "committed_blocks": o.committed_blocks or [],
        }
        for o in inst.offers
    ]
    return {
        "name": inst.name,
        "horizon_hours": inst.horizon_hours,
        "levels": ix.levels,
        "gpus": ix.n_gpus,
        "available": int(ix.available.sum()),
        "sites": sites,
        "wan_paths": paths,
        "jobs": jobs,
        "offers": offers,
        "warnings": inst.warnings,
    }


def _shape(j) -> dict[str, Any]:
    """How a job (or the job under one of its plans) runs: its shape, scopes and value."""
    return {
        "gpu_types": j.gpu_types,
        "tp": j.tp,
        "pp": j.pp,
        "units_min": j.units_min,
        "units_max": j.units_max,
        "gpus_max": j.units_max * j.unit_size,
        "microbatches": j.microbatches if j.kind == "training" else None,
        "cross_site_every": j.cross_site_every,
        "scope": {
            k: (v if v is not None else "max_latency") for k, v in j.effective_scope().items()
        },
        "value": j.value,
    }


def solution_summary(inst: Instance, res) -> dict[str, Any]:
    """Per site used / leased / idle GPUs, per job units, sites, efficiency; offers."""
    ix = inst.index
    used = np.zeros(ix.n_gpus, bool)
    leased = np.zeros(ix.n_gpus, bool)
    jobs = []
    by_name = {r["name"]: r for r in res.score.jobs} if res.score else {}
    reasons = {pj.name: pj.reason for pj in res.placement.jobs}
    for pj in res.placement.jobs:
        job = inst.job(pj.name)
        g = ix.gpu_indices(pj.gpus)
        used[g] = True
        sc = by_name.get(pj.name, {})
        sites = sorted({ix.site_names[s] for s in np.unique(ix.dom[0][g]).tolist()})
        shape = job.under(job.plan_index(pj.plan) if pj.units and job.plans else job.default_plan)
        jobs.append(
            {
                "name": pj.name,
                "units": pj.units,
                "units_max": shape.units_max,
                "plan": pj.plan if pj.units else None,
                "gpus": len(g),
                # a v2 mixed job's units may be of several types: all of them, joined by +
                "type": "+".join(ix.type_names[t] for t in np.unique(ix.gpu_type[g]).tolist())
                if len(g)
                else "-",
                "sites": sites,
                "efficiency": sc.get("efficiency"),
                "goodput": sc.get("goodput"),
                "value": sc.get("value"),
                "reason": reasons.get(pj.name),
            }
        )
    offers = []
    for lg in res.placement.leases:
        for path in lg.blocks:
            r = ix.resolve(path)
            a, b = ix.gpu_range(*r)
            leased[a:b] = True
    sc_offers = {o["offer"]: o for o in (res.score.offers if res.score else [])}
    for o in inst.offers:
        lg = next((x for x in res.placement.leases if x.offer == o.name), None)
        so = sc_offers.get(o.name, {})
        blocks = lg.blocks if lg else []
        shown = ", ".join(blocks[:3]) + (f" (+{len(blocks) - 3})" if len(blocks) > 3 else "")
        offers.append(
            {
                "offer": o.name,
                "accepted": bool(blocks),
                "blocks": shown,
                "gpus": so.get("gpus", 0),
                "revenue": so.get("revenue", 0.0),
            }
        )
    sites = []
    for s, name in enumerate(ix.site_names):
        a, b = ix.gpu_range(0, s)
        av = ix.available[a:b]
        u = int(used[a:b].sum())
        le = int((leased[a:b] & av).sum())
        sites.append(
            {
                "name": name,
                "gpus": b - a,
                "used": u,
                "leased": le,
                "idle": int(av.sum()) - u - le,
                "unavailable": int((~av).sum()),
            }
        )
    return {"sites": sites, "jobs": jobs, "offers": offers}
