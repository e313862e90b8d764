"""`python -m bench`: run a suite, one JSON row per (instance, solver, seed, time limit),
then analyse it (tables, a markdown report, plots).

    python -m bench --suite quick --fresh           # CI: a few minutes, into bench/out/
    python -m bench --suite quick --fresh --record  # re-record: bench/results/quick.jsonl,
                                                    # docs/benchmarks-report-quick.md, plots
    python -m bench --suite full --record           # the record (resumable), hours
    python -m bench --analyse full --record         # the report again from the rows

Each run is a subprocess (its own time and peak memory); rows go to <suite>.jsonl as they
finish (bench/results/ with --record, else bench/out/), so an interrupted suite resumes where
it stopped. Rows carry the commit and date they were run at, and the report says them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import ROOT, parser, results_dir
from bench.suites import SUITES


def key(row: dict) -> str:
    return json.dumps([row["name"], row["solver"], row["seed"], row["time_limit"]])


def run_suite(suite: str, fresh: bool = False, only: str | None = None) -> list[dict]:
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{suite}.jsonl"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if fresh and path.exists():
        path.unlink()
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[key(r)] = r
    runs = SUITES[suite]()
    if only:
        runs = [r for r in runs if only in r["name"] or only == r["solver"]]
    rows = []
    for i, spec in enumerate(runs, 1):
        k = key(spec)
        if k in done:
            rows.append(done[k])
            continue
        t = time.perf_counter()
        limit = 3 * (spec["time_limit"] or 600) + 120
        try:
            out = subprocess.run(
                [sys.executable, "-m", "bench.run_one", json.dumps(spec)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=limit,
            )
            row = (
                json.loads(out.stdout.strip().splitlines()[-1])
                if out.stdout.strip()
                else {**spec, "status": "error", "error": out.stderr[-2000:]}
            )
        except subprocess.TimeoutExpired:
            row = {**spec, "status": "error", "error": f"killed after {limit} s"}
        row["wall_s"] = time.perf_counter() - t
        row["commit"] = commit
        row["date"] = time.strftime("%Y-%m-%d")
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
        obj = row.get("objective")
        print(
            f"[{i}/{len(runs)}] {spec['name']:22s} {spec['solver']:16s} "
            f"{row.get('status', '?'):12s} obj={obj if obj is None else f'{obj:,.0f}'} "
            f"gap={row.get('gap')} {row.get('seconds', 0) or 0:.1f}s",
            flush=True,
        )
    return rows


def main(argv=None) -> None:
    ap = parser("Run a benchmark suite and analyse it.", prog="python -m bench")
    ap.add_argument("--suite", choices=sorted(SUITES), help="run this suite, then analyse it")
    ap.add_argument("--fresh", action="store_true", help="discard earlier rows of the suite")
    ap.add_argument("--only", help="only runs whose name contains this (or this solver)")
    ap.add_argument("--analyse", choices=sorted(SUITES), help="analyse a suite's rows only")
    args = ap.parse_args(argv)
    if not args.suite and not args.analyse:
        ap.error("give --suite and/or --analyse")
    if args.suite:
        rows = run_suite(args.suite, args.fresh, args.only)
        errors = [r for r in rows if r.get("status") == "error"]
        for r in errors:
            print(f"ERROR {r['name']} {r['solver']}: {r.get('error', '')[:300]}")
    if args.suite or args.analyse:
        from bench.analyse import analyse

        analyse(args.suite or args.analyse)
    if args.suite and errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
