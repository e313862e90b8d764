"""Short time limits, side by side: two checkouts of placer (A and B), each run as the CLI in
a fresh process (`python -m placer solve FILE -s SOLVER -t T -q --json`), interleaved
(A then B for each cell, round by round), so that both see the same load.

    python -m bench.shortlim --a /work/main --b . --rounds 2
    python -m bench.shortlim --a /work/main --b . --instances instances/colossus-v2.yaml \\
        --solvers greedy --limits 1,2 --record

A row records the checkout, instance, solver, limit, round, the solve's `seconds` (the
load excluded, as the JSON reports it), the objective, the load average before the run and
the run's wall time. The summary per cell and checkout: the objectives seen, the largest
`seconds` and its ratio to the limit (docs/solver.md, "Contract": within 5%).
Each checkout's code is its own: the run sets PYTHONPATH to it (an editable install of the
other one would otherwise be imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine, parser, write

NAME = "shortlim"
INSTANCES = ["instances/colossus-v2.yaml", "instances/colossus.yaml"]
SOLVERS = ["greedy", "cpsat", "mip"]
LIMITS = [0.5, 1, 1.5, 2, 3, 5]


def run(root: Path, inst: str, solver: str, limit: float, timeout: float = 120.0) -> dict:
    """One CLI solve in `root`'s checkout: what a row records."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "placer", "solve", inst, "-s", solver, "-t", str(limit)]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.run(
        [*cmd, "-q", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - t0
    row = {"load": round(load, 2), "wall": round(wall, 3), "rc": p.returncode}
    try:
        d = json.loads(p.stdout)
        row.update(objective=d.get("objective"), seconds=d.get("seconds"), status=d.get("status"))
    except json.JSONDecodeError:
        row.update(objective=None, seconds=None, error=p.stderr[-300:])
    return row


def summary(rows: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["instance"], r["solver"], r["limit"], r["side"]), []).append(r)
    out = []
    for (inst, solver, limit, side), rs in sorted(cells.items()):
        objs = [r["objective"] for r in rs if r["objective"] is not None]
        secs = [r["seconds"] for r in rs if r["seconds"] is not None]
        out.append(
            {
                "instance": inst,
                "solver": solver,
                "limit": limit,
                "side": side,
                "objective_M": sorted({round(o / 1e6, 1) for o in objs}),
                "min_objective_M": round(min(objs) / 1e6, 2) if objs else None,
                "max_seconds": max(secs) if secs else None,
                "over": round(max(secs) / limit - 1, 3) if secs else None,
                "loads": [r["load"] for r in rs],
            }
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", default=None, help="checkout A (default: none, B alone)")
    ap.add_argument("--b", default=".", help="checkout B (default: this one)")
    ap.add_argument("--instances", default=",".join(INSTANCES))
    ap.add_argument("--solvers", default=",".join(SOLVERS))
    ap.add_argument("--limits", default=",".join(str(t) for t in LIMITS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--name", default=NAME, help="results file name (without .json)")
    args = ap.parse_args(argv)
    sides = {"B": Path(args.b).resolve()}
    if args.a:
        sides = {"A": Path(args.a).resolve(), **sides}
    rows: list[dict] = []
    for rnd in range(args.rounds):
        for inst in args.instances.split(","):
            for solver in args.solvers.split(","):
                for limit in [float(t) for t in args.limits.split(",")]:
                    for side, root in sides.items():
                        r = run(root, inst, solver, limit)
                        r.update(side=side, instance=Path(inst).stem, solver=solver, limit=limit)
                        r["round"] = rnd
                        rows.append(r)
                        obj = r["objective"]
                        print(
                            f"r{rnd} {side} {r['instance']:<12} {solver:<6} t={limit:<4g} "
                            f"obj={'-' if obj is None else f'{obj / 1e6:.2f}M':>9} "
                            f"s={r['seconds']} load={r['load']}",
                            flush=True,
                        )
    write(
        args.name,
        {
            "machine": machine(),
            "sides": {k: str(v) for k, v in sides.items()},
            "summary": summary(rows),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
