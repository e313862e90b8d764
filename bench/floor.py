"""The greedy as the floor under load (issue 16): cpsat against the greedy backend at the same
limit, with and without other work on the machine, one code against another.

    python -m bench.floor --rounds 3 --busy 0,3 --other /work/main             # in turn
    python -m bench.floor --together --rounds 3 --busy 0,2 --other /work/main  # at once
    python -m bench.floor --report                       # the table from the rows
    python -m bench.floor --scale 180k --limits 3,5,7,10,15 --rounds 1 --busy 0 --other DIR

``--scale 180k``: bench.audit_scale's three-campus instance (179,200 GPUs, 300 jobs of every
kind, two offers; written from SPEC by the real-size audit), where the coarse model is solved
by CP-SAT (not rounded from its LP), at the short limits where the greedy's share is cut;
rows go to floor-180k.json.

Each run is in its own process, ``python -m bench.anytime --one FILE X L`` (the file loaded
as ``placer solve`` loads it, then ``placer.solve``, with the stats the CLI's JSON leaves
out), on the `scale` family's 1M GPUs / 5,000 jobs at seed 3 (bench.anytime's instance).
A round runs, for each added load (``--busy``: that many busy-loop processes, started
before the round's runs and ended by their PIDs after them), the greedy backend, cpsat with
this tree's code and cpsat with ``--other``'s code (a checkout run read-only, no bytecode
written), in an order that rotates from round to round; with ``--together`` the three start
at once, so that each sees the same load (one after another, the load moved more between
two runs than the backends differ on a shared machine). A row records the objective, the
bound (none: the plan was skipped for the greedy), the solve's seconds (the solver's clock,
as the CLI's JSON; `call_seconds` the whole call), the process's wall seconds, why a plan
was skipped and the CPU share measured (this branch's code), and the machine's one-minute
load average before and after (`uptime`'s figure: the machine is shared with other work
too), and the process's CPU seconds. Rows go to bench/results/floor.json (with --record;
else bench/out/floor.json) as they finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.anytime import instance_file
from bench.common import ROOT, machine, parser, results_dir

NAME = "floor"


def audit_file() -> Path:
    """bench.audit_scale's 180k-GPU instance as a YAML file (written once, deterministic)."""
    import yaml

    from bench.audit_scale import instance
    from bench.common import OUT

    path = OUT / "audit-180k.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(instance(300, 0, 3), sort_keys=False, width=200))
    return path


def git_head(path: Path) -> str | None:
    p = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True
    )
    return p.stdout.strip() or None


def start(code: Path, solver: str, path: Path, limit: float) -> tuple:
    """One solve by `code`'s placer, started in its own process: `python -m bench.anytime
    --one`, which loads the file as the CLI does and calls placer.solve, and prints the
    solve's stats (why a plan was skipped, the CPU share measured) that the CLI's JSON
    leaves out."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    before = os.getloadavg()[0]
    # (and, on a last line, the process's CPU seconds: what its share of the cores gave it)
    code_ = (
        "import json, runpy, sys, time; "
        f"sys.argv = ['bench.anytime', '--one', {str(path)!r}, {solver!r}, {str(limit)!r}]; "
        "runpy.run_module('bench.anytime', run_name='__main__'); "
        "print(json.dumps({'cpu': time.process_time()}))"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code_],
        cwd=code, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return p, before, time.perf_counter()


def finish(started: tuple) -> dict:
    p, before, t0 = started
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    row = {"load_avg": [round(before, 2), round(os.getloadavg()[0], 2)], "wall": round(wall, 2)}
    if p.returncode != 0:
        return {**row, "error": err[-500:]}
    d = json.loads(out.splitlines()[-2])
    cpu = json.loads(out.splitlines()[-1])["cpu"]
    st = d.get("stats", {})
    return {
        **row,
        "objective": d["objective"],
        "bound": d["bound"],
        "gap": d["gap"],
        "plan": "packed" if d["bound"] is not None else "skipped",
        # the solver's own clock (the CLI's `seconds`), and the call's (placer.solve)
        "seconds": d["result_seconds"],
        "call_seconds": d["seconds"],
        "load_seconds": d["load_seconds"],
        "cpu_seconds": round(cpu, 2),  # the whole process's (the load's 2-3 s included)
        "jobs_placed": d["jobs_placed"],
        "not_reached": d["not_reached"],
        "stats": {
            k: st.get(k)
            for k in (
                "primal_from",
                "coarse",
                "cpu_share",
                "coarse_native",
                "resumed",
                "greedy_rest_s",
            )
            if k in st
        },
    }


def save(out: Path, data: dict, rows: list[dict]) -> None:
    data["rows"].extend(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    for r in rows:
        print(report({"rows": [r]}).splitlines()[-1], flush=True)


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:  # by the PIDs started here
        p.kill()
        p.wait()


def load(out: Path) -> dict:
    return json.loads(out.read_text()) if out.exists() else {"rows": []}


def report(data: dict) -> str:
    lines = [
        "| round | busy | limit s | code | backend | load avg | solve s | wall s | CPU s "
        "| objective | plan | jobs placed | vs greedy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    greedy = {
        (r["round"], r["busy"], r.get("limit")): r.get("objective")
        for r in data["rows"]
        if r["solver"] == "greedy"
    }
    for r in data["rows"]:
        if "error" in r:
            lines.append(
                f"| {r['round']} | {r['busy']} | {r.get('limit', 30):g} | {r['code']} "
                f"| {r['solver']} | error |"
            )
            continue
        g = greedy.get((r["round"], r["busy"], r.get("limit")))
        vs = "-" if r["solver"] == "greedy" or not g else f"{r['objective'] / g - 1:+.1%}"
        la = r["load_avg"]
        cpu = f"{r['cpu_seconds']:.1f}" if "cpu_seconds" in r else "-"
        lines.append(
            f"| {r['round']} | {r['busy']} | {r.get('limit', 30):g} | {r['code']} | {r['solver']} "
            f"| {la[0]}-{la[1]} "
            f"| {r['seconds']:.1f} | {r['wall']:.1f} | {cpu} | {r['objective'] / 1e6:.2f} M "
            f"| {r['plan'] if r['solver'] != 'greedy' else '-'} | {r['jobs_placed']:,} | {vs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", default="0,3", help="busy-loop processes per load, comma list")
    ap.add_argument("--limits", default="30", help="time limits, comma list")
    ap.add_argument("--scale", default="1m", choices=["1m", "180k"])
    ap.add_argument("--other", type=Path, default=None, help="another checkout's code (cpsat)")
    ap.add_argument(
        "--together", action="store_true", help="a round's solves at once (the same load)"
    )
    ap.add_argument("--report", action="store_true", help="the table from the rows, no runs")
    args = ap.parse_args(argv)
    out = results_dir() / (f"{NAME}.json" if args.scale == "1m" else f"{NAME}-{args.scale}.json")
    data = load(out)
    if args.report:
        print(report(data))
        return
    path = instance_file("1m") if args.scale == "1m" else audit_file()
    limits = [float(x) for x in args.limits.split(",")]
    codes = [("branch", ROOT)] + ([("other", args.other)] if args.other else [])
    heads = {name: git_head(c) for name, c in codes}
    data.setdefault("machine", machine())
    first = 1 + max((r["round"] for r in data["rows"]), default=0)
    for k in range(args.rounds):
        rnd = first + k
        for n, limit in [(int(x), lim) for x in args.busy.split(",") for lim in limits]:
            runs = [("greedy", "branch")] + [("cpsat", name) for name, _ in codes]
            runs = runs[rnd % len(runs) :] + runs[: rnd % len(runs)]
            procs = busy(n)
            try:
                time.sleep(3 if n else 0)

                def row(solver, name, rnd=rnd, n=n, limit=limit):
                    return {
                        "round": rnd,
                        "busy": n,
                        "together": args.together,
                        "code": f"{name} {heads[name]}",
                        "solver": solver,
                        "limit": limit,
                        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    }

                if args.together:  # all at once: the same load for each
                    rows = [row(solver, name) for solver, name in runs]
                    procs_ = [
                        start(dict(codes)[name], solver, path, limit) for solver, name in runs
                    ]
                    for r, p in zip(rows, procs_):
                        r.update(finish(p))
                else:
                    rows = []
                    for solver, name in runs:
                        r = row(solver, name)
                        r.update(finish(start(dict(codes)[name], solver, path, limit)))
                        save(out, data, [r])
                    rows = []
                save(out, data, rows)
            finally:
                stop(procs)
    print(report(data))


if __name__ == "__main__":
    main()
