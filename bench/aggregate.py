"""Identical jobs aggregated in the coarse model (issue 16 part 2): a "sweep" instance
solved with `coarse.AGGREGATE` on and off, side by side.

    python -m bench.aggregate                      # 100k GPUs, limits 10 and 60 s, cpsat and mip
    python -m bench.aggregate --limits 10 --solvers cpsat --record

The instance: `placer generate scale --seed 3 -p gpus=100000 -p n_jobs=500`, then every
`--every`-th job that is not running (no `current`, no plans, one GPU type) replaced by
`--copies` copies of itself named ``<name>-a00``, ``<name>-a01``, ... (:func:`replicate`,
deterministic): job arrays / hyperparameter sweeps, jobs equal in every field but their
name. Generated once into bench/out/.

Each (solver, limit, aggregate) runs in its own process, on and off alternating, so that
both see the same machine at about the same moment. A row records the coarse model's
variables and rows, its build and solve seconds, the objective, the bound, the gap, the
jobs placed and the machine's load. Results: bench/results/aggregate.json (--record), one
entry per instance (a run replaces its instance's entry).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import OUT, ROOT, machine, parser, results_dir

SEED = 3
GPUS = 100_000
N_JOBS = 500
EVERY = 5
COPIES = 10
LIMITS = [10, 60]
SOLVERS = ["cpsat", "mip"]
NAME = "aggregate"


def replicate(d: dict, every: int = EVERY, copies: int = COPIES) -> dict:
    """Instance dict `d` with every `every`-th job (counted over the jobs that may repeat:
    not running, no plans, no `mix_types`) replaced by `copies` copies of itself, named
    ``<name>-aNN``, in place of the original (a job array). Deterministic; `d` unchanged."""
    out = copy.deepcopy(d)
    jobs = []
    i = 0
    for job in out["jobs"]:
        may = not job.get("current") and not job.get("plans") and not job.get("mix_types")
        if may and i % every == 0:
            for k in range(copies):
                jobs.append({**copy.deepcopy(job), "name": f"{job['name']}-a{k:02d}"})
        else:
            jobs.append(job)
        i += may
    out["jobs"] = jobs
    out["name"] = f"{d.get('name', 'instance')}-x{copies}every{every}"
    return out


def instance_file(gpus: int = GPUS, n_jobs: int = N_JOBS, every=EVERY, copies=COPIES) -> Path:
    path = OUT / f"aggregate-{gpus}-{n_jobs}-s{SEED}-e{every}-x{copies}.yaml"
    if not path.exists():
        from placer.generators import generate, to_yaml

        path.parent.mkdir(parents=True, exist_ok=True)
        d = replicate(generate("scale", SEED, gpus=gpus, n_jobs=n_jobs), every, copies)
        path.write_text(
            to_yaml(
                d,
                f"generate scale --seed {SEED} -p gpus={gpus} -p n_jobs={n_jobs}, then every "
                f"{every}th job replicated {copies} times (bench/aggregate.py)",
            )
        )
    return path


def run_one(path: str, solver: str, limit: float, aggregate: bool) -> dict:
    """One solve in this process, with coarse.AGGREGATE set as asked."""
    import placer
    from placer.solvers.decomposition import coarse

    coarse.AGGREGATE = aggregate
    load_before = os.getloadavg()[0]
    inst = placer.load_instance(path)
    inst.index.id_table()
    t1 = time.perf_counter()
    res = placer.solve(inst, solver, time_limit=limit)
    solve_s = time.perf_counter() - t1
    st = res.stats
    return {
        "solver": solver,
        "limit": limit,
        "aggregate": aggregate,
        "seconds": round(solve_s, 3),
        "status": str(res.status),
        "objective": res.objective,
        "bound": res.bound,
        "gap": res.gap,
        "jobs": len(inst.jobs),
        "jobs_placed": sum(1 for j in res.placement.jobs if j.units),
        "coarse_vars": st.get("coarse_vars"),
        "coarse_rows": st.get("coarse_rows"),
        "coarse_build_seconds": st.get("coarse_build_seconds"),
        "coarse_solve_seconds": st.get("coarse_solve_seconds"),
        "coarse_native": st.get("coarse_native"),
        "coarse_bound": st.get("coarse_bound"),
        "aggregated": st.get("aggregated"),
        "primal_from": st.get("primal_from"),
        "coarse_skipped": st.get("coarse"),
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def report(rows: list[dict]) -> str:
    def f(x, fmt="{:,.0f}"):
        return "-" if x is None else fmt.format(x)

    lines = [
        "| solver, limit | aggregate | coarse vars | build s | solve s | objective | bound | gap "
        "| placed | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['solver']}, {r['limit']} s | {'on' if r['aggregate'] else 'off'} "
            f"| {f(r['coarse_vars'])} | {f(r['coarse_build_seconds'], '{:.1f}')} "
            f"| {f(r['coarse_solve_seconds'], '{:.1f}')} | {f(r['objective'])} "
            f"| {f(r['bound'])} | {f(r['gap'] and 100 * r['gap'], '{:.2f}%')} "
            f"| {r['jobs_placed']} of {r['jobs']} | {r['load_avg'][0]:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.split("\n")[0])
    ap.add_argument("--limits", default=",".join(map(str, LIMITS)))
    ap.add_argument("--solvers", default=",".join(SOLVERS))
    ap.add_argument("--gpus", type=int, default=GPUS)
    ap.add_argument("--jobs", type=int, default=N_JOBS)
    ap.add_argument("--every", type=int, default=EVERY)
    ap.add_argument("--copies", type=int, default=COPIES)
    ap.add_argument("--one", nargs=4, help=argparse_hidden())
    ns = ap.parse_args(argv)
    if ns.one:
        path, solver, limit, agg = ns.one
        print(json.dumps(run_one(path, solver, float(limit), agg == "on")))
        return
    path = instance_file(ns.gpus, ns.jobs, ns.every, ns.copies)
    rows = []
    for solver in ns.solvers.split(","):
        for limit in [int(x) for x in ns.limits.split(",")]:
            for agg in ("on", "off"):
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.aggregate",
                        "--one",
                        str(path),
                        solver,
                        str(limit),
                        agg,
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    text = report(rows)
    print(text)
    dest = results_dir() / f"{NAME}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    # one entry per instance: a run replaces its instance's entry and keeps the others
    runs = json.loads(dest.read_text())["runs"] if dest.exists() else []
    runs = [r for r in runs if r["instance"] != path.name]
    runs.append(
        {
            "machine": machine(),
            "instance": path.name,
            "params": {
                "gpus": ns.gpus,
                "n_jobs": ns.jobs,
                "seed": SEED,
                "every": ns.every,
                "copies": ns.copies,
            },
            "rows": rows,
        }
    )
    dest.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    print(f"written {dest}")


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
