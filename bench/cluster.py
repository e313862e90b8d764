"""Issue 10 figures: placing arriving jobs on a loaded colossus with ``placer.Cluster``,
side by side with a full solve of the same state, and repairs of a pod and a WAN-link
failure.

1. instances/colossus.yaml (180,224 GPUs) solved in full (cpsat, ``--time-limit``): the
   loaded cluster, ``Cluster(inst, result)``.
2. A stream of held-out arrivals: jobs drawn by the ``hetero`` generator family (same levels
   and GPU types as colossus; trace-drawn sizes) with seeds 100, 101, ..., renamed. Before
   every arrival after the first the running job that has run longest finishes
   (``release``), so the stream sees room as a live cluster does (a churn of one job out,
   one job in). Each ``submit`` is timed.
3. For the first ``--compare`` arrivals, the same state (``snapshot()`` plus the arriving
   job) is also solved in full by cpsat with the same time limit, in this process, right
   before the submit: the ratio of medians is the speed-up; the objectives are given too.
4. Failures: the pod holding the most GPUs of running non-preemptible jobs, then the WAN
   link that carries the most jobs; each repair is timed, its snapshot checked by the
   package's checker and by the independent reference (tests/reference.py).

Writes cluster.json (bench/results/ with --record, else bench/out/).

    python -m bench.cluster [--arrivals 40] [--compare 6] [--time-limit 20] [--record]
"""

from __future__ import annotations

import copy
import os
import statistics
import time

import numpy as np

from bench.common import ROOT, load_reference, machine, parser, write


def arrivals(n: int) -> list[dict]:
    from placer.generators import generate

    out: list[dict] = []
    seed = 100
    while len(out) < n:
        for j in generate("hetero", seed=seed)["jobs"]:
            j = copy.deepcopy(j)
            for k in ("current", "pinned", "preemptible", "migration_cost"):
                j.pop(k, None)
            j["name"] = f"arr{len(out):03d}-{j['name']}"
            out.append(j)
            if len(out) == n:
                break
        seed += 1
    return out


def check_both(c, ref) -> dict:
    import placer

    t0 = time.perf_counter()
    inst_d, pl_d = c.snapshot()
    inst = placer.load_instance(copy.deepcopy(inst_d))
    v = placer.check(inst, pl_d)
    t1 = time.perf_counter()
    rv = ref.reference_check(inst_d, pl_d)
    t2 = time.perf_counter()
    return {
        "violations": [str(x) for x in v],
        "reference_violations": rv,
        "check_s": round(t1 - t0, 3),
        "reference_s": round(t2 - t1, 3),
    }


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--arrivals", type=int, default=40)
    ap.add_argument("--compare", type=int, default=6)
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--no-reference", action="store_true", help="skip the slow reference check")
    args = ap.parse_args(argv)
    import placer
    from placer import Cluster

    inst = placer.load_instance(ROOT / "instances" / "colossus.yaml")
    t0 = time.perf_counter()
    res = placer.solve(inst, solver="cpsat", time_limit=args.time_limit)
    initial_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = Cluster(inst, res)
    build = time.perf_counter() - t0
    print(
        f"colossus: {inst.index.n_gpus:,} GPUs, {len(c.jobs)} running jobs after a "
        f"{initial_solve:.1f} s solve; Cluster built in {build * 1000:.0f} ms"
    )
    rows = []
    running_at_start = len(c.jobs)
    started_at: dict[str, int] = {name: -1 for name in c.jobs}
    for i, job in enumerate(arrivals(args.arrivals)):
        released = None
        if i > 0:
            # the job that has run longest finishes (musts never finish here)
            cands = [n for n in c.jobs if c.job_spec(n).preemptible and not c.job_spec(n).pinned]
            if cands:
                released = min(cands, key=lambda n: (started_at.get(n, -1), n))
                c.release(released)
        row = {"i": i, "job": job["name"], "gpus_wanted": None, "released": released}
        if i < args.compare:
            inst_d, _ = c.snapshot()
            inst_d["jobs"].append(copy.deepcopy(job))
            full = placer.load_instance(inst_d)
            t0 = time.perf_counter()
            r = placer.solve(full, solver="cpsat", time_limit=args.time_limit)
            row["solve_s"] = time.perf_counter() - t0
            row["solve_objective"] = r.objective
            row["solve_placed"] = any(
                pj.name == job["name"] and pj.units
                for pj in (r.placement.jobs if r.placement else [])
            )
        before = c.objective
        d = c.submit(job)
        row.update(
            submit_s=d.seconds,
            placed=d.placed,
            units=d.units,
            gpus=len(d.gpus),
            delta=d.delta,
            objective_before=before,
            objective_after=c.objective,
            reason=d.reason,
        )
        if d.placed:
            started_at[job["name"]] = i
        rows.append(row)
        print(
            f"{i:3d} {job['name'][:34]:34s} submit {d.seconds * 1000:7.1f} ms "
            f"{'placed ' + str(d.units) + ' units' if d.placed else 'not placed'}"
            + (f"   full solve {row['solve_s']:.2f} s" if "solve_s" in row else "")
        )
    sub = [r["submit_s"] for r in rows]
    cmp_rows = [r for r in rows if "solve_s" in r]
    med_sub = statistics.median(sub)
    med_cmp_sub = statistics.median(r["submit_s"] for r in cmp_rows) if cmp_rows else None
    med_solve = statistics.median(r["solve_s"] for r in cmp_rows) if cmp_rows else None
    ref = None if args.no_reference else load_reference()
    # ---------------------------------------------------------------- failures
    # a DiLoCo-style job over the sites (a clone of colossus's flagship with dp scope
    # cluster and sparse cross-site synchronisation), so that the WAN failures meet a
    # cross-site job; allowed to displace up to 4 preemptible jobs
    probe = inst.job("flagship-pretrain").model_dump(mode="json", exclude_none=True)
    probe.update(name="xsite-pretrain", cross_site_every=16, min_dp=64)
    for k in ("current", "pinned"):
        probe.pop(k, None)
    dp_probe = c.submit(probe, allow_moves=4)
    probe_sites = sorted({g.split("/")[0] for g in dp_probe.gpus})
    print(
        f"probe {probe['name']}: placed {dp_probe.placed}, {dp_probe.units} units over "
        f"{probe_sites} in {dp_probe.seconds * 1000:.0f} ms (allow_moves=4)"
    )
    fails = []
    ix = c.index
    pod_level = ix.levels.index("pod")
    must_gpu = np.zeros(ix.n_gpus, bool)
    for name in c.jobs:
        if not c.job_spec(name).preemptible or c.job_spec(name).pinned:
            must_gpu[ix.gpu_indices(c.job_gpus(name))] = True
    held = np.bincount(ix.dom[pod_level][must_gpu], minlength=ix.n_domains(pod_level))
    pod = ix.domain_path(pod_level, int(np.argmax(held)))
    musts_before = {n for n in c.jobs if not c.job_spec(n).preemptible or c.job_spec(n).pinned}

    def busiest_link(exclude):
        best, best_n = None, -1
        for w in inst.topology.wan:
            if list(w.between) in exclude:
                continue
            n = sum(
                1
                for name in c.jobs
                if len({g.split("/")[0] for g in c.job_gpus(name)} & set(w.between)) == 2
            )
            if n > best_n:
                best, best_n = list(w.between), n
        return best

    for what in ("pod", "wan", "wan-cut"):
        if what == "pod":
            items = [pod]
        else:
            # the WAN link between the sites of the most running jobs (a triangle: the first
            # failure reroutes over the other two links, the second cuts a site off)
            items = [busiest_link([f["items"][0] for f in fails if f["failure"] != "pod"])]
        cross_before = sum(
            1 for name in c.jobs if len({g.split("/")[0] for g in c.job_gpus(name)}) > 1
        )
        t0 = time.perf_counter()
        ch = c.fail(items)
        secs = time.perf_counter() - t0
        lost_musts = sorted(musts_before - set(c.jobs))
        row = {
            "failure": what,
            "items": items,
            "cross_site_jobs_before": cross_before,
            "seconds": secs,
            "actions": [a.kind for a in ch.actions],
            "moved": sum(a.kind == "move" for a in ch.actions),
            "stopped": sum(a.kind == "stop" for a in ch.actions),
            "lease_changes": sum(a.kind == "lease" for a in ch.actions),
            "delta": ch.delta,
            "migration_cost": ch.cost,
            "lost": ch.lost,
            "musts_lost": lost_musts,
        }
        if ref is not None:
            row.update(check_both(c, ref))
        else:
            row["violations"] = [str(v) for v in c.check()]
        fails.append(row)
        print(
            f"fail {what} {items}: {secs * 1000:.0f} ms, {row['moved']} moved, "
            f"{row['stopped']} stopped, musts lost {lost_musts}, violations "
            f"{len(row['violations'])}"
            + (f" / reference {len(row['reference_violations'])}" if ref is not None else "")
        )
    summary = {
        "instance": "colossus",
        "gpus": inst.index.n_gpus,
        "initial_solve_s": initial_solve,
        "running_jobs_at_start": running_at_start,
        "arrivals": len(rows),
        "placed": sum(r["placed"] for r in rows),
        "submit_median_ms": med_sub * 1000,
        "submit_p95_ms": float(np.percentile(sub, 95)) * 1000,
        "submit_max_ms": max(sub) * 1000,
        "submit_median_placed_ms": statistics.median(
            [r["submit_s"] for r in rows if r["placed"]] or [float("nan")]
        )
        * 1000,
        "submit_median_not_placed_ms": statistics.median(
            [r["submit_s"] for r in rows if not r["placed"]] or [float("nan")]
        )
        * 1000,
        "compared": len(cmp_rows),
        "compared_submit_median_ms": None if med_cmp_sub is None else med_cmp_sub * 1000,
        "full_solve_median_s": med_solve,
        "speedup_of_medians": None if not cmp_rows else med_solve / med_cmp_sub,
        "target_median_ms": 50,
        "target_speedup": 20,
    }
    print(
        f"submit median {summary['submit_median_ms']:.1f} ms (p95 "
        f"{summary['submit_p95_ms']:.1f} ms) over {len(rows)} arrivals; full solve median "
        f"{med_solve:.2f} s on the same states: {summary['speedup_of_medians']:.0f}x"
    )
    summary["probe"] = {
        "placed": dp_probe.placed,
        "units": dp_probe.units,
        "sites": probe_sites,
        "submit_ms": dp_probe.seconds * 1000,
        "actions": [a.kind for a in dp_probe.actions],
    }
    summary["load_average_1_5_15"] = list(os.getloadavg())
    out = {
        "machine": machine(),
        "args": vars(args),
        "summary": summary,
        "arrivals": rows,
        "failures": fails,
    }
    p = write("cluster", out)
    print(f"wrote {p}")


if __name__ == "__main__":
    main()
