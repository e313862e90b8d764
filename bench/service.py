"""Issue 18 figures for `placer serve` (the real CLI as a subprocess, SQLite state):

1. Crash trials: ``--trials`` kill -9 trials (tests/crash.py: acknowledged operations kept,
   state equal to the replay of the committed events, checker clean, revision monotonic).
2. Load on a loaded colossus (instances/colossus.yaml solved by greedy, then served):
   submits at ``--rate`` requests/s for ``--seconds`` s, each followed by the release of the
   oldest arrival once 40 run (steady churn): p50 / p99 latency (goal p99 <= 250 ms).
3. The same submits during a 10 s ``POST /replan`` (cpsat, time_limit 10): p99 (goal
   <= 100 ms).
4. Durable mutations per second: one client, submit and release back to back (each
   answered after its commit, synchronous=FULL) (goal >= 100).
5. Restart-to-ready with 10,000 running jobs: a state holding 10,000 jobs on colossus, then
   ``placer serve`` started on it: seconds from the process start to /health 200 (goal
   <= 5 s).

Writes bench/out/service.json (bench/results/service.json with --record).

    python -m bench.service [--trials 200] [--rate 50] [--seconds 60] [--jobs 10000]
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import ROOT, machine, parser, write


def _tests_module(name: str):
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def arrival(i: int) -> dict:
    return {
        "name": f"load-{i:06d}",
        "kind": "training",
        "tp": 8,
        "dp": 1 + i % 4,
        "compute_ms": 1000,
        "value": 1.0 + (i % 3) / 2,
    }


def paced_submits(
    url: str, rate: float, seconds: float, start: int = 0, until: threading.Event | None = None
) -> tuple[list, int, int]:
    """Open-loop submits at `rate`/s (each in its own thread at its scheduled time) for
    `seconds` or until `until` is set, with a release of the oldest placed arrival when 40
    run (steady churn: every placed submit is a durable commit, and so is its release);
    returns (submit latencies, errors, placed submits)."""
    import httpx

    lat: list[float] = []
    errors = 0
    placed: list[str] = []
    n_placed = 0
    lock = threading.Lock()
    client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=200))

    def one(i: int) -> None:
        nonlocal errors, n_placed
        t0 = time.perf_counter()
        try:
            r = client.post("/jobs", json={"job": arrival(i)})
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)
            if not ok:
                errors += 1
                return
            if r.json()["placed"]:
                n_placed += 1
                placed.append(arrival(i)["name"])
            victim = placed.pop(0) if len(placed) > 40 else None
        if victim:
            client.delete(f"/jobs/{victim}")

    ts = []
    t_start = time.perf_counter()
    n = int(rate * seconds)
    for k in range(n):
        if until is not None and until.is_set():
            break
        wait = t_start + k / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t = threading.Thread(target=one, args=(start + k,))
        t.start()
        ts.append(t)
    for t in ts:
        t.join()
    client.close()
    return lat, errors, n_placed


def main(argv=None) -> None:
    ap = parser("placer serve under crashes and load (issue 18)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--skip-crash", action="store_true")
    args = ap.parse_args(argv)
    import httpx

    import placer

    servers = _tests_module("servers")
    out: dict = {"machine": machine(), "args": vars(args)}
    work = Path(tempfile.mkdtemp(prefix="placer-bench-service-"))

    # 1. crash trials
    if not args.skip_crash:
        crash = _tests_module("crash")
        (work / "crash").mkdir()
        tr = crash.Trials(work / "crash", seed=18)
        t0 = time.perf_counter()
        try:
            for i in range(args.trials):
                tr.trial()
                if (i + 1) % 20 == 0:
                    print(f"crash trials: {i + 1}/{args.trials} passed", flush=True)
        finally:
            tr.close()
        s = tr.stats
        out["crash"] = {
            "trials": s["trials"],
            "acked_checked": s["acked"],
            "unacked": s["unacked"],
            "refused": s["refused"],
            "lost": 0,
            "restart_s_median": statistics.median(s["restart_s"]),
            "wall_s": time.perf_counter() - t0,
        }
        print("crash:", out["crash"], flush=True)

    # 2-4. load on a loaded colossus
    inst = placer.load_instance(ROOT / "instances" / "colossus.yaml")
    res = placer.solve(inst, solver="greedy", time_limit=20)
    pl = work / "colossus-placement.json"
    pl.write_text(json.dumps(res.placement.model_dump(mode="json", exclude_none=True)))
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = servers.spawn_serve(
        ROOT / "instances" / "colossus.yaml",
        str(work / "colossus.db"),
        port,
        "--placement",
        str(pl),
    )
    try:
        servers.wait_health(url, proc, timeout=300)
        jobs0 = httpx.get(url + "/jobs").json()
        load0 = {
            "running_at_start": len(jobs0["jobs"]),
            "gpus": int(inst.index.n_gpus),
            "free_gpus_at_start": jobs0["free_gpus"],
        }
        lat, err, n_placed = paced_submits(url, args.rate, args.seconds)
        out["load"] = {
            **load0,
            "rate": args.rate,
            "seconds": args.seconds,
            "submits": len(lat),
            "placed": n_placed,
            "errors": err,
            "p50_ms": 1000 * pct(lat, 50),
            "p99_ms": 1000 * pct(lat, 99),
            "max_ms": 1000 * max(lat),
        }
        print("load:", out["load"], flush=True)

        # 3. the same submits for as long as a 10 s replan is in flight (from its POST to
        # its answer: taking the snapshot, the solve, and adopting the plan included)
        box: dict = {}
        done = threading.Event()

        def replan() -> None:
            t0 = time.perf_counter()
            try:
                box["r"] = httpx.post(
                    url + "/replan", json={"time_limit": 10, "solver": "cpsat"}, timeout=300
                ).json()
            finally:
                box["s"] = time.perf_counter() - t0
                done.set()

        th = threading.Thread(target=replan)
        th.start()
        lat2, err2, placed2 = paced_submits(url, args.rate, 300.0, start=1_000_000, until=done)
        th.join()
        out["during_replan"] = {
            "submits": len(lat2),
            "placed": placed2,
            "errors": err2,
            "p50_ms": 1000 * pct(lat2, 50),
            "p99_ms": 1000 * pct(lat2, 99),
            "max_ms": 1000 * max(lat2),
            "replan_s": box.get("s"),
            "replan_applied": box.get("r", {}).get("applied"),
            "replan_moved": box.get("r", {}).get("moved"),
            "replan_reason": box.get("r", {}).get("reason"),
        }
        print("during replan:", out["during_replan"], flush=True)

        # 4. durable mutations per second: one client, back to back, each answered after
        # its commit (only placed submits and releases are counted: both commit)
        c = httpx.Client(base_url=url, timeout=60)
        n = refused = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 10:
            name = f"dur-{n}"
            r = c.post("/jobs", json={"job": {**arrival(n), "name": name, "dp": 1}})
            if r.status_code != 200 or not r.json()["placed"]:
                refused += 1
                continue
            c.delete(f"/jobs/{name}").raise_for_status()
            n += 2
        out["durable"] = {
            "mutations_per_s": n / (time.perf_counter() - t0),
            "mutations": n,
            "refused": refused,
        }
        print("durable:", out["durable"], flush=True)
        c.close()
    finally:
        servers.stop(proc)

    # 5. restart-to-ready with N running jobs
    from placer.service import Service, open_store

    ix = inst.index
    nodes = [n for n in range(len(ix.node_gpus)) if ix.node_gpus[n] == 8]
    jobs = []
    for k, node in enumerate(nodes):
        if len(jobs) == args.jobs:
            break
        ids = [f"{ix.node_path(node)}/gpu{g}" for g in range(8)]
        if not all(ix.available[ix.gpu_indices(ids)]):
            continue
        jobs.append({**arrival(k), "name": f"run-{k:05d}", "dp": 1, "current": ids})
    d = inst.model_dump(mode="json", exclude_none=True)
    d["jobs"] = jobs
    big = placer.load_instance(d)
    store = open_store(str(work / "big.db"))
    store.open()
    svc = Service(big, store=store)
    svc.start(background=False)
    n_jobs = len(svc.cluster.jobs)
    svc.close()
    (work / "big.json").write_text(json.dumps(d))
    # the same command as the first start, after a kill -9, three times
    ready_s = []
    for _ in range(3):
        port = servers.free_port()
        t0 = time.perf_counter()
        proc = servers.spawn_serve(work / "big.json", str(work / "big.db"), port)
        try:
            servers.wait_health(f"http://127.0.0.1:{port}", proc, timeout=300)
            ready_s.append(time.perf_counter() - t0)
            h = httpx.get(f"http://127.0.0.1:{port}/health").json()
        finally:
            servers.stop(proc, sig_kill=True)
        assert h["jobs"] == n_jobs, (h, n_jobs)
    out["restart"] = {
        "running_jobs": n_jobs,
        "ready_s_median": statistics.median(ready_s),
        "ready_s_max": max(ready_s),
        "ready_s": ready_s,
        "jobs_after": h["jobs"],
    }
    print("restart:", out["restart"], flush=True)
    write("service", out)


if __name__ == "__main__":
    main()
