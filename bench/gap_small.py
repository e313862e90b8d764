"""Issue 8 item 8: proven gap of the exact backends on every benchmark instance up to 10,240
GPUs (the target: <= 1% in 10 s), run side by side in one process.

The instances are those of suite `full` with at most 10,240 GPUs: the bundled `tiny` and
`superpod`, the generated families at bench size (seeds 0-2), and `scale-1024`,
`scale-10240`. Each row: backend, status, objective, bound, gap, seconds. Writes
gap_small.json (bench/results/ with --record, else bench/out/).

    python -m bench.gap_small [--backends cpsat,mip] [--time-limit 10] [--record]
"""

from __future__ import annotations

import time

from bench.common import machine, parser, write
from bench.run_one import instance_from_spec
from bench.suites import full


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--backends", default="cpsat,mip")
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args(argv)
    import placer

    seen: dict[str, dict] = {}
    for run in full():
        seen.setdefault(run["name"], run["instance"])
    rows = []
    for name, spec in seen.items():
        inst = instance_from_spec(spec)
        if inst.index.n_gpus > 10_240:
            continue
        for backend in args.backends.split(","):
            t0 = time.perf_counter()
            res = placer.solve(inst, solver=backend, time_limit=args.time_limit, seed=0)
            took = time.perf_counter() - t0
            row = {
                "instance": name,
                "gpus": inst.index.n_gpus,
                "solver": backend,
                "status": str(res.status),
                "objective": res.objective,
                "bound": res.bound,
                "gap": res.gap,
                "seconds": took,
            }
            rows.append(row)
            gap = "-" if res.gap is None else f"{100 * res.gap:.2f}%"
            print(
                f"{name:16s} {inst.index.n_gpus:6,d} {backend:6s} {res.status!s:9s} gap {gap:>7s}"
                f" {took:5.1f} s",
                flush=True,
            )
    within = {
        b: sum(1 for r in rows if r["solver"] == b and r["gap"] is not None and r["gap"] <= 0.01)
        for b in args.backends.split(",")
    }
    n = {b: sum(1 for r in rows if r["solver"] == b) for b in args.backends.split(",")}
    for b in within:
        print(
            f"{b}: {within[b]} of {n[b]} within 1%; worst gap "
            f"{100 * max(r['gap'] or 0 for r in rows if r['solver'] == b):.2f}%"
        )
    write("gap_small", {"machine": machine(), "time_limit": args.time_limit, "rows": rows})


if __name__ == "__main__":
    main()
