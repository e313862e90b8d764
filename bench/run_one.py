"""Run one (instance, solver, seed, time limit) and print one JSON row (used by the runner
in a subprocess, so that time and peak memory are this run's own)."""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback

import numpy as np


def instance_from_spec(spec: dict):
    import placer
    from placer.generators import generate
    from placer.validate import instance_from_dict

    if "file" in spec:
        inst = placer.load_instance(spec["file"])
    else:
        inst = instance_from_dict(
            generate(spec["family"], seed=spec.get("seed", 0), **spec.get("params", {}))
        )
    if spec.get("first_plans"):  # each job held to its first plan (bench.plans)
        from placer.solvers.plans import first_plans

        inst = first_plans(inst)
    return inst


def metrics(inst, res) -> dict:
    """Job value, lease revenue, GPU-weighted mean goodput, idle GPUs, cross-site groups."""
    from placer.kernel.cost import analyse_job, as_batch

    ix = inst.index
    out: dict = {}
    if res.score is None:
        return out
    t = res.score.totals
    out.update(
        job_value=t["job_value"],
        lease_revenue=t["lease_revenue"],
        migration_cost=t["migration_cost"],
        gpus_used=t["gpus_used"],
        gpus_leased=t["gpus_leased"],
    )
    out["gpus_idle"] = int(ix.available.sum()) - t["gpus_used"] - t["gpus_leased"]
    used = [j for j in res.score.jobs if j["gpus"]]
    w = sum(j["gpus"] for j in used)
    out["mean_goodput"] = sum(j["goodput"] * j["gpus"] for j in used) / w if w else 0.0
    out["jobs_placed"] = len(used)
    cross = 0
    for pj in res.placement.jobs:
        if not pj.units:
            continue
        job = inst.job(pj.name)
        g = ix.gpu_indices(pj.gpus)
        ana = analyse_job(ix, job, as_batch(g, job))
        for f in ana.families.values():
            cross += int((f.set_id >= 0).sum())
    out["cross_site_groups"] = cross
    return out


def main() -> None:
    spec = json.loads(sys.argv[1])
    row = dict(spec)
    t0 = time.perf_counter()
    try:
        import placer

        inst = instance_from_spec(spec["instance"])
        row["load_s"] = time.perf_counter() - t0
        row["gpus"] = int(inst.index.n_gpus)
        row["jobs"] = len(inst.jobs)
        row["offers"] = len(inst.offers)
        row["version"] = placer.__version__
        t1 = time.perf_counter()
        res = placer.solve(
            inst,
            solver=spec["solver"],
            time_limit=spec["time_limit"],
            seed=spec["seed"],
            threads=spec.get("threads", 1),
        )
        row["seconds"] = time.perf_counter() - t1
        row.update(status=res.status, objective=res.objective, bound=res.bound, gap=res.gap)
        row.update(metrics(inst, res))
    except Exception as e:  # noqa: BLE001 - a crash is a row, never a lost run
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {e}"
        row["traceback"] = traceback.format_exc()[-2000:]
    row["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row, default=lambda x: float(x) if isinstance(x, np.floating) else str(x)))


if __name__ == "__main__":
    main()
