"""Issue 18 figures for `placer serve` (the real CLI as a subprocess, SQLite state):

1. Crash trials: ``--trials`` kill -9 trials (tests/crash.py: acknowledged operations kept,
   state equal to the replay of the committed events, checker clean, revision monotonic).
2. Load on a loaded colossus (instances/colossus.yaml solved by greedy, its 43 jobs then
   served): open-loop submits at ``--rate`` requests/s for ``--seconds`` s (each sent at its
   time whatever the answers before it), each followed by the release of the oldest arrival
   once 40 run (steady churn): p50 / p99 latency (goal p99 <= 250 ms).
3. The same submits for as long as a 10 s ``POST /replan`` (cpsat, time_limit 10) is in
   flight: p99 (goal <= 100 ms); and side by side at ``--steady-rate``, a rate the server
   sustains, without a replan and then during one (the replan's own effect).
   3b. The same at ``--rate`` during a replan that is applied (``during_applied_replan``:
   the replan of 3 is refused under churn, its plan leasing colossus-1 where submits land;
   see APPLIED_PENDING for how 3b keeps the submits off the plan's GPUs), with the lock
   hold of its commit from the server's log. ``--applied-only``: of the load figures, 3b.
4. Durable mutations per second: one client, back to back, each answered after its commit
   (synchronous=FULL): submit + release, and bind + release (no placement search)
   (goal >= 100).
5. Restart-to-ready with 10,000 running jobs: a state holding 10,000 jobs on colossus, then
   ``placer serve`` started on it after a kill -9 (three times): seconds from the process
   start to /health 200 (goal <= 5 s). And the first start of ``placer serve`` from an
   INSTANCE whose 10,000 jobs all carry `current` (no state yet), ``--first-starts`` times.

The machine is shared: latencies include whatever else runs (each figure records the load
average at its end).

Writes bench/out/service.json (bench/results/service.json with --record); with
``--applied-only``, service-applied.json.

    python -m bench.service [--trials 200] [--rate 50] [--seconds 60] [--steady-rate 10]
        [--jobs 10000] [--first-starts 1] [--skip-crash] [--skip-load] [--skip-restart]
        [--applied-only [--runs N]] [--record]
"""

from __future__ import annotations

import importlib.util
import json
import os
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


def arrival(i: int, gpu_types: list[str] | None = None) -> dict:
    job = {
        "name": f"load-{i:06d}",
        "kind": "training",
        "tp": 8,
        "dp": 1 + i % 4,
        "compute_ms": 1000,
        "value": 1.0 + (i % 3) / 2,
    }
    if gpu_types:
        job["gpu_types"] = gpu_types
        if "GB200" in gpu_types:
            job["tp"] = 4  # a GB200 node has 4 GPUs (tensor parallelism stays in the node)
    return job


def paced_submits(
    url: str,
    rate: float,
    seconds: float,
    start: int = 0,
    until: threading.Event | None = None,
    gpu_types: list[str] | None = None,
    t_ref: float | None = None,
) -> dict:
    """Open-loop submits at `rate`/s (each in its own thread at its scheduled time, whatever
    the answers before it) for `seconds` or until `until` is set, with a release of the
    oldest placed arrival when 40 run (steady churn: every placed submit is a durable commit,
    and so is its release). The arrivals still running at the end are released (untimed).
    Returns the submits' latency percentiles, how many were placed, and the statuses other
    than 200 (503: over the in-flight cap)."""
    import httpx

    lat: list[float] = []
    sent: list[float] = []
    statuses: dict[str, int] = {}
    placed: list[str] = []
    n_placed = 0
    lock = threading.Lock()
    client = httpx.Client(base_url=url, timeout=120, limits=httpx.Limits(max_connections=400))

    def one(i: int) -> None:
        nonlocal n_placed
        t0 = time.perf_counter()
        try:
            r = client.post("/jobs", json={"job": arrival(i, gpu_types)})
            status = str(r.status_code)
        except httpx.HTTPError as e:
            status = type(e).__name__
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)
            sent.append(t0)
            if status != "200":
                statuses[status] = statuses.get(status, 0) + 1
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
    sent_s = time.perf_counter() - t_start
    for t in ts:
        t.join()
    for name in placed:
        client.delete(f"/jobs/{name}")
    client.close()
    ref = t_start if t_ref is None else t_ref
    slowest = sorted(zip(lat, sent), reverse=True)[:8]
    return {
        "rate": rate,
        "load_average_1min": os.getloadavg()[0],  # the machine's, at the end (shared host)
        "submits": len(lat),
        "sent_per_s": len(lat) / sent_s if sent_s > 0 else None,
        "placed": n_placed,
        "not_200": statuses,
        "p50_ms": 1000 * pct(lat, 50),
        "p99_ms": 1000 * pct(lat, 99),
        "max_ms": 1000 * max(lat) if lat else None,
        # the slowest submits: [sent at (s, since the replan's POST if any), latency (ms)]
        "slowest": [[round(t - ref, 3), round(1000 * x, 1)] for x, t in slowest],
    }


def during_replan(
    url: str,
    rate: float,
    start: int,
    pending: list[dict] | None = None,
    gpu_types: list[str] | None = None,
    room: list[str] | None = None,
) -> dict:
    """Paced submits for as long as a 10 s replan (cpsat, time_limit 10, with the `pending`
    jobs it may start) is in flight, from its POST to its answer (taking the snapshot, the
    solve and adopting the plan included); submits of jobs limited to `gpu_types` if given.
    `room`: jobs released once the replan has taken its state (a second replan is refused
    with 409 from then on), before the submits start."""
    import httpx

    box: dict = {}
    done = threading.Event()
    body = {"time_limit": 10, "solver": "cpsat", "pending": pending or []}

    t_post = time.perf_counter()

    def replan() -> None:
        t0 = time.perf_counter()
        try:
            box["r"] = httpx.post(url + "/replan", json=body, timeout=300).json()
        finally:
            box["s"] = time.perf_counter() - t0
            done.set()

    th = threading.Thread(target=replan)
    th.start()
    if room:
        # a probe that starts nothing: its pending job is given twice (refused as a conflict
        # once no replan runs), and "already running" once the replan has taken its state
        twice = {"time_limit": 1, "pending": [arrival(0), arrival(0)]}
        while not done.is_set():
            if "already running" in httpx.post(url + "/replan", json=twice, timeout=60).text:
                break
            time.sleep(0.02)
        with httpx.Client(base_url=url, timeout=60) as c:
            for name in room:
                c.delete(f"/jobs/{name}").raise_for_status()
    d = paced_submits(url, rate, 300.0, start=start, until=done, gpu_types=gpu_types, t_ref=t_post)
    th.join()
    r = box.get("r", {})
    d.update(
        replan_pending=len(pending or []),
        submits_gpu_types=gpu_types,
        replan_s=box.get("s"),
        replan_applied=r.get("applied"),
        replan_moved=r.get("moved"),
        replan_actions=len(r.get("actions") or []),
        replan_reason=r.get("reason"),
    )
    return d


# the applied replan (3b): the replan of 3 leases colossus-1 to the frontier-lab offer (its
# GPUs must then be free of jobs) and moves jobs into the GPUs free when it took the state,
# so a submit landing on either refuses it (a plan holds GPUs the state gave away: data,
# not a fault). 3b starts from cpsat's plan of the instance (that lease held, no GPU free)
# and releases the jobs running in southaven alone (room for the APPLIED_PENDING H100/H200
# jobs the replan may start: its solve then has work for about its 10 s, and a plan worth
# adopting). The submits run on GB200, in the room of a GB200 job (APPLIED_ROOM) released
# and filled with pinned one-node jobs before the replan (a plan keeps a pinned job where it
# runs), released once the replan has taken the state: the plan cannot give their GPUs away.
APPLIED_PENDING = 300
APPLIED_ROOM = "chat-gb200"
APPLIED_SUBMIT_TYPES = ["GB200"]


def pending_jobs(n: int) -> list[dict]:
    return [
        {**arrival(k, ["H100", "H200"]), "name": f"pending-{k:03d}", "dp": 4 + k % 5}
        for k in range(n)
    ]


def serve_colossus(
    inst, solver: str, time_limit: float, work: Path, db: str, servers, env: dict | None = None
):
    """`placer serve` on colossus from `solver`'s placement of it (solved once per run of
    the bench: repeated 3b runs start from the same plan): (url, process)."""
    import placer

    pl = work / f"colossus-{solver}.json"
    if not pl.exists():
        res = placer.solve(inst, solver=solver, time_limit=time_limit)
        pl.write_text(json.dumps(res.placement.model_dump(mode="json", exclude_none=True)))
    port = servers.free_port()
    proc = servers.spawn_serve(
        ROOT / "instances" / "colossus.yaml", str(work / db), port, "--placement", str(pl), env=env
    )
    return f"http://127.0.0.1:{port}", proc


def applied_replan(args, inst, out: dict, work: Path, servers) -> None:
    """3b, ``--runs`` times (a fresh server each): see :func:`applied_run`."""
    runs = [applied_run(args, inst, work, servers, k) for k in range(args.runs)]
    out["during_applied_replan"] = runs[-1]
    if args.runs > 1:
        out["during_applied_replan_runs"] = runs
        out["during_applied_replan_summary"] = {
            "p99_ms": [r["p99_ms"] for r in runs],
            "max_ms": [r["max_ms"] for r in runs],
            "commit_lock_ms": [r["commit_lock_ms"] for r in runs],
            "applied": [r["replan_applied"] for r in runs],
            "load_average_1min": [r["load_average_1min"] for r in runs],
            "runs_p99_over_100ms": sum(r["p99_ms"] > 100 for r in runs),
        }
        print("applied replans:", out["during_applied_replan_summary"], flush=True)


def applied_run(args, inst, work: Path, servers, k: int = 0) -> dict:
    """3b. The p99 of submits at ``--rate`` during a 10 s replan that is applied: a fresh
    server on the loaded colossus of 3 (see APPLIED_PENDING). The server's log gives the
    lock hold of the replan's commit, its phases and the replan's timeline
    (``PLACER_SERVE_PROFILE``)."""
    import re

    import httpx

    # PLACER_SERVE_PROFILE: the server logs the phases of the replan's commit under its lock
    env = {"PLACER_SERVE_PROFILE": "1"}
    url, proc = serve_colossus(inst, "cpsat", 10, work, f"colossus-applied-{k}.db", servers, env)
    try:
        servers.wait_health(url, proc, timeout=300)
        with httpx.Client(base_url=url, timeout=60) as c:
            placed = c.get("/snapshot").json()["placement"]["jobs"]
            south = sorted(
                pj["name"]
                for pj in placed
                if pj["gpus"] and all(g.startswith("southaven/") for g in pj["gpus"])
            )
            for name in south:
                c.delete(f"/jobs/{name}").raise_for_status()
            c.delete(f"/jobs/{APPLIED_ROOM}").raise_for_status()
            fill: list[str] = []
            for dp in (4, 1):
                while True:
                    job = {**arrival(len(fill), APPLIED_SUBMIT_TYPES), "dp": dp, "pinned": True}
                    job["name"] = f"fill-{len(fill):05d}"
                    if not c.post("/jobs", json={"job": job}).json()["placed"]:
                        break
                    fill.append(job["name"])
        d = during_replan(
            url,
            args.rate,
            4_000_000,
            pending_jobs(args.pending),
            APPLIED_SUBMIT_TYPES,
            fill,
        )
        text = servers.log_of(proc)
        held = re.findall(r"replan commit held the lock ([0-9.]+) ms", text)
        d["commit_lock_ms"] = float(held[-1]) if held else None
        cpu = re.findall(r"replan commit held the lock [0-9.]+ ms \(([0-9.]+) ms of CPU", text)
        d["commit_lock_cpu_ms"] = float(cpu[-1]) if cpu else None
        phases = re.findall(r"replan commit phases \(ms\): (.*)", text)
        timeline = re.findall(r"replan timeline \(s\): (.*)", text)
        d["replan_timeline"] = timeline[-1].strip().split("; ") if timeline else None
        served = text[text.find("ready at revision") :]  # the pauses once serving
        d["gc_pauses_ms"] = [
            float(x) for x in re.findall(r"gc pause: generation \d, ([0-9.]+)", served)
        ]
        # [seconds since the replan's request, ms] (logged since the group commit)
        d["gc_pauses_at"] = [
            [float(at), float(ms)]
            for ms, at in re.findall(
                r"gc pause: generation \d, ([0-9.]+) ms \(at ([0-9.-]+) s of", served
            )
        ]
        d["commit_phases_ms"] = (
            {k: float(v) for k, v in re.findall(r"([^,]+?) ([0-9.]+)(?:, |$)", phases[-1].strip())}
            if phases
            else None
        )
        # the request holds of the lock over 10 ms (or waits over 20 ms) once serving:
        # [op, seconds since the replan's request, held ms, waited ms, phases]
        d["slow_holds"] = [
            [op, None if at == "-" else float(at), float(h), float(w), ph.strip()]
            for op, h, w, at, ph in re.findall(
                r"(\w+) held the lock ([0-9.]+) ms after waiting ([0-9.]+) ms "
                r"\(at ([0-9.-]+) s of the replan\): (.*)",
                served,
            )
        ]
        d["released_before"] = south
        d["room"] = {"released": APPLIED_ROOM, "pinned_fill_jobs": len(fill)}
        print("during an applied replan:", d, flush=True)
        return d
    finally:
        servers.stop(proc)


def load(args, inst, out: dict, work: Path, servers) -> None:
    """2-4: load on a loaded colossus (see the module docs)."""
    import httpx

    if args.applied_only:  # no greedy solve for a server it would not start
        applied_replan(args, inst, out, work, servers)
        return
    url, proc = serve_colossus(inst, "greedy", 20, work, "colossus.db", servers)
    try:
        servers.wait_health(url, proc, timeout=300)
        jobs0 = httpx.get(url + "/jobs").json()
        load0 = {
            "running_at_start": len(jobs0["jobs"]),
            "gpus": int(inst.index.n_gpus),
            "free_gpus_at_start": jobs0["free_gpus"],
        }
        out["load"] = {**load0, "seconds": args.seconds}
        out["load"].update(paced_submits(url, args.rate, args.seconds))
        print("load:", out["load"], flush=True)

        # 3. submits during a 10 s replan: at the rate, and side by side at a rate the
        # server sustains, without a replan then during one (the replan's own effect)
        out["during_replan"] = during_replan(url, args.rate, 1_000_000)
        print("during replan:", out["during_replan"], flush=True)
        out["steady"] = paced_submits(url, args.steady_rate, 20.0, start=2_000_000)
        print("steady, no replan:", out["steady"], flush=True)
        out["steady_during_replan"] = during_replan(url, args.steady_rate, 3_000_000)
        print("steady, during replan:", out["steady_during_replan"], flush=True)

        # 4. durable mutations per second: one client, back to back, each answered after
        # its commit (synchronous=FULL). Submit + release: the placement search on colossus
        # included. Bind + release (a job the scheduler started on given GPUs: validated, no
        # search): the durable path itself.
        c = httpx.Client(base_url=url, timeout=60)
        job = {**arrival(0), "name": "dur-probe", "dp": 1}
        gpus = c.post("/jobs", json={"job": job}).json()["gpus"]
        c.delete("/jobs/dur-probe").raise_for_status()
        out["durable"] = {}
        for kind in ("submit_release", "bind_release"):
            n = refused = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 10:
                name = f"dur-{kind}-{n}"
                body = {"job": {**job, "name": name}}
                if kind == "bind_release":
                    body["gpus"] = gpus
                r = c.post("/jobs" if kind == "submit_release" else "/bind", json=body)
                if r.status_code != 200 or not r.json()["placed"]:
                    refused += 1
                    continue
                c.delete(f"/jobs/{name}").raise_for_status()
                n += 2
            out["durable"][kind] = {
                "mutations_per_s": n / (time.perf_counter() - t0),
                "mutations": n,
                "refused": refused,
            }
            print("durable:", kind, out["durable"][kind], flush=True)
        c.close()
    finally:
        servers.stop(proc)
    applied_replan(args, inst, out, work, servers)


def restart(args, inst, out: dict, work: Path, servers) -> None:
    """5. Restart-to-ready and first start with N running jobs (see the module docs)."""
    import httpx

    import placer  # noqa: F401

    # 5. restart-to-ready with N running jobs: a state holding N one-node jobs on colossus, as
    # the scheduler's submits and binds would leave it (written through the store's first
    # start, from Cluster.resume of that state: linear; a first start from an INSTANCE whose
    # N jobs all have `current` checks each against all, quadratic: see docs/benchmarks.md)
    from placer import Cluster
    from placer.service import open_store

    ix = inst.index
    nodes = [n for n in range(len(ix.node_gpus)) if ix.node_gpus[n] == 8]
    jobs = []
    for k, node in enumerate(nodes):
        if len(jobs) == args.jobs:
            break
        ids = [f"{ix.node_path(node)}/gpu{g}" for g in range(8)]
        if not ix.available[ix.gpu_indices(ids)].all():
            continue
        jobs.append({**arrival(k), "name": f"run-{k:05d}", "dp": 1, "current": ids})
    state = {"version": 1, "instance": inst.name, "failed": [], "restored": []}
    big = Cluster.resume(inst, {**state, "leases": [], "jobs": jobs})
    n_jobs = len(big.jobs)
    store = open_store(str(work / "big.db"))
    store.open()
    store.acquire()
    store.initialise(
        inst.model_dump(mode="json", exclude_none=True),
        big.state(),
        {"jobs": n_jobs, "objective": big.objective},
    )
    store.close()
    del big
    # `placer serve instances/colossus.yaml --state big.db` after a kill -9, three times
    ready_s = []
    for _ in range(3):
        port = servers.free_port()
        t0 = time.perf_counter()
        proc = servers.spawn_serve(ROOT / "instances" / "colossus.yaml", str(work / "big.db"), port)
        try:
            servers.wait_health(f"http://127.0.0.1:{port}", proc, timeout=300)
            ready_s.append(time.perf_counter() - t0)
            h = httpx.get(f"http://127.0.0.1:{port}/health").json()
        finally:
            servers.stop(proc, sig_kill=True)
        assert h["jobs"] == n_jobs, (h, n_jobs)
    # first start from an INSTANCE whose N jobs all carry `current` (no state yet): each
    # running job is admitted on its `current` (rules 1-5 for it alone, then the whole
    # checker once); a fresh state file each time
    big_doc = inst.model_dump(mode="json", exclude_none=True)
    big_doc["jobs"] = jobs[:n_jobs]
    big_inst = work / "colossus-running.json"
    big_inst.write_text(json.dumps(big_doc))
    first_s = []
    for k in range(args.first_starts):
        port = servers.free_port()
        t0 = time.perf_counter()
        proc = servers.spawn_serve(big_inst, str(work / f"first-{k}.db"), port)
        try:
            servers.wait_health(f"http://127.0.0.1:{port}", proc, timeout=600)
            first_s.append(time.perf_counter() - t0)
            h1 = httpx.get(f"http://127.0.0.1:{port}/health").json()
        finally:
            servers.stop(proc, sig_kill=True)
        assert h1["jobs"] == len(big_doc["jobs"]), (h1, len(big_doc["jobs"]))
    if first_s:
        out["first_start"] = {
            "running_jobs": len(big_doc["jobs"]),
            "ready_s_median": statistics.median(first_s),
            "ready_s": first_s,
            "load_average_1min": os.getloadavg()[0],
        }
        print("first start:", out["first_start"], flush=True)
    out["restart"] = {
        "load_average_1min": os.getloadavg()[0],
        "running_jobs": n_jobs,
        "ready_s_median": statistics.median(ready_s),
        "ready_s_max": max(ready_s),
        "ready_s": ready_s,
        "jobs_after": h["jobs"],
    }
    print("restart:", out["restart"], flush=True)


def main(argv=None) -> None:
    ap = parser("placer serve under crashes and load (issue 18)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--steady-rate",
        type=float,
        default=10.0,
        help="a rate the server sustains: submits with and without a replan side by side",
    )
    ap.add_argument(
        "--pending",
        type=int,
        default=APPLIED_PENDING,
        help="pending jobs the applied replan (3b) may start (its solve uses its 10 s)",
    )
    ap.add_argument(
        "--applied-only",
        action="store_true",
        help="of the load figures, only 3b (written as service-applied.json)",
    )
    ap.add_argument("--runs", type=int, default=1, help="3b this many times (a fresh server each)")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument(
        "--first-starts",
        type=int,
        default=1,
        help="first starts from an INSTANCE whose --jobs jobs carry `current` (0: none)",
    )
    ap.add_argument("--skip-restart", action="store_true", help="no restart or first start")
    ap.add_argument("--skip-crash", action="store_true")
    ap.add_argument("--skip-load", action="store_true", help="crash trials and restart only")
    args = ap.parse_args(argv)

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
            "restart_s_max": max(s["restart_s"]),
            "wall_s": time.perf_counter() - t0,
        }
        print("crash:", out["crash"], flush=True)

    inst = placer.load_instance(ROOT / "instances" / "colossus.yaml")
    if not args.skip_load:
        load(args, inst, out, work, servers)

    if not args.skip_restart:
        restart(args, inst, out, work, servers)
    write("service-applied" if args.applied_only else "service", out)


if __name__ == "__main__":
    main()
