"""Issue 16 part 6: no early stop with a gap while time remains, on small random instances.

A seeded stream of small instances like the issue's fuzz campaign: 1-3 sites of 1-3 racks of
1-4 nodes of 1 or 2 GPUs (some have more than 64 free GPUs and take the decomposition), 2-4
training and inference jobs with random TP/PP/DP/EP, scopes, comm and values; plus the
issue's two-job instance (tests/data/early-stop.yaml). Each instance is solved by the exact
backends and every peer baseline with the same limit, side by side. Per exact backend: the
geometric mean of its objective over the best peer's, the instances where it is below a
peer, how many it proves optimal, and the results that come back with a gap before the
limit -- with and without a `stopped` reason. Writes early_stop.json (bench/results/ with
--record, else bench/out/).

    python -m bench.early_stop [--n 40] [--seed 0] [--time-limit 3] [--record]
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from bench.common import machine, parser, write

LEVELS = ["site", "rack", "node"]
SCOPES = [None, "site", "rack", "node", "cluster"]


def random_instance(rng: np.random.Generator, k: int) -> dict:
    """One small instance (a few dozen GPUs at most), valid by construction."""
    n_sites = int(rng.integers(1, 4))
    sites = []
    for s in range(n_sites):
        sites.append(
            {
                "name": f"s{s}",
                "gpu_type": "A",
                "gpus_per_node": int(rng.integers(1, 3)),
                "domains": [
                    {
                        "name": "rack",
                        "count": int(rng.integers(1, 4)),
                        "shape": [int(rng.integers(1, 5))],
                    }
                ],
            }
        )
    wan = [
        {
            "between": [f"s{a}", f"s{a + 1}"],
            "latency_us": float(rng.choice([50, 300, 800])),
            "bandwidth_GBps": float(rng.choice([25, 100, 400])),
            "failures_per_day": float(rng.choice([0.0, 0.05, 0.2])),
        }
        for a in range(n_sites - 1)
    ]
    jobs = []
    for i in range(int(rng.integers(2, 5))):
        training = rng.random() < 0.75
        tp = int(rng.choice([1, 1, 2, 4]))
        pp = int(rng.choice([1, 1, 2]))
        job = {
            "name": f"j{i}",
            "kind": "training" if training else "inference",
            "tp": tp,
            "pp": pp,
            "compute_ms": float(rng.choice([50, 100, 200])),
            "value": round(float(rng.uniform(0.5, 4.0)), 2),
            "comm": {"tp_MB": float(rng.choice([50, 500])), "pp_MB": 80.0},
        }
        if training:
            ep = int(rng.choice([1, 1, 2]))
            dp = ep * int(rng.integers(1, 3))
            job.update(dp=dp, min_dp=ep, ep=ep, restart_min=10, checkpoint_interval_min=60)
            job["comm"].update(dp_MB=float(rng.choice([50, 500])), ep_MB=30.0)
        else:
            job.update(dp=int(rng.integers(1, 4)), min_dp=1)
        scope = {d: str(v) for d in ("tp", "pp", "dp", "ep") if (v := rng.choice(SCOPES))}
        if scope:
            job["scope"] = scope
        jobs.append(job)
    return {
        "name": f"early-stop-{k}",
        "horizon_hours": 24,
        "topology": {
            "levels": LEVELS,
            "fabric": {
                "node": {"latency_us": 1, "bandwidth_GBps": 200},
                "rack": {"latency_us": 4, "bandwidth_GBps": 50},
                "site": {"latency_us": 12, "bandwidth_GBps": 12.5},
            },
            "sites": sites,
            "wan": wan,
        },
        "jobs": jobs,
    }


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="random instances")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=3.0)
    args = ap.parse_args(argv)
    import placer
    from placer.solvers import names

    exact = names(exact=True)
    peers = names(peer=True)
    rng = np.random.default_rng(args.seed)
    issue = Path(__file__).resolve().parent.parent / "tests" / "data" / "early-stop.yaml"
    cases = [("issue-16", placer.load_instance(issue))]
    while len(cases) < args.n + 1:
        try:
            inst = placer.load_instance(random_instance(rng, len(cases)))
        except placer.InstanceError:
            continue  # e.g. a job whose scopes no placement meets: drawn again
        cases.append((inst.name, inst))
    rows = []
    for name, inst in cases:
        row: dict = {"instance": name, "gpus": inst.index.n_gpus, "results": {}}
        for backend in exact + peers:
            t0 = time.perf_counter()
            res = placer.solve(inst, solver=backend, time_limit=args.time_limit, seed=0)
            row["results"][backend] = {
                "status": str(res.status),
                "objective": res.objective,
                "bound": res.bound,
                "gap": res.gap,
                "seconds": time.perf_counter() - t0,
                "stopped": getattr(res, "stopped", None),
            }
        rows.append(row)
        best_peer = max((row["results"][p]["objective"] or 0.0) for p in peers)
        line = " ".join(
            f"{b} {row['results'][b]['status'][:4]} {row['results'][b]['objective'] or 0:8.1f}"
            for b in exact
        )
        print(f"{name:16s} {inst.index.n_gpus:3d} GPUs  {line}  best peer {best_peer:8.1f}")
    summary = {}
    for b in exact:
        ratios, below, proven, early, explained = [], [], 0, 0, 0
        for row in rows:
            r = row["results"][b]
            peer = max((row["results"][p]["objective"] or 0.0) for p in peers)
            mine = r["objective"] or 0.0
            if peer > 0 and mine > 0:
                ratios.append(mine / peer)
            if mine < peer - 1e-6 * max(1.0, abs(peer)):
                below.append(row["instance"])
            proven += r["status"] == "optimal"
            if r["status"] == "feasible" and r["gap"] and r["seconds"] < 0.9 * args.time_limit:
                early += 1
                explained += bool(r["stopped"])
        gm = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
        summary[b] = {
            "geomean_vs_best_peer": gm,
            "below_a_peer": below,
            "proven_optimal": proven,
            "gap_before_limit": early,
            "gap_before_limit_with_reason": explained,
            "instances": len(rows),
        }
        print(
            f"{b}: {gm:.3f}x the best peer (geometric mean), below a peer on {len(below)}, "
            f"proven optimal {proven} of {len(rows)}, gap before the limit {early} "
            f"({explained} with a reason)"
        )
    write(
        "early_stop",
        {
            "machine": machine(),
            "time_limit": args.time_limit,
            "seed": args.seed,
            "summary": summary,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
