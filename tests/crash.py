"""Crash trials of `placer serve` (used by tests/test_service_crash.py and ``python -m
bench.service``): start the real CLI as a subprocess on a SQLite or PostgreSQL state, drive
concurrent mutations (each with an Idempotency-Key), ``kill -9`` it at a random moment,
restart it with the same command, and check:

1. every acknowledged operation is in the event log at the revision it was answered with;
2. no unacknowledged operation is half-applied: the restarted state equals, by canonical
   snapshot, the replay of exactly the committed events on a fresh Cluster (each replayed
   answer equal to the recorded one);
3. the checker finds no violation in the restarted snapshot;
4. the revision never goes back.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

import placer
from placer import Cluster

if __package__:
    from .servers import free_port, spawn_serve, stop, wait_health
else:
    from servers import free_port, spawn_serve, stop, wait_health


def crash_instance(nodes: int = 12) -> dict:
    return {
        "name": "crash",
        "horizon_hours": 10,
        "gpu_types": {"H100": {"power_kW": 1.0}},
        "topology": {
            "levels": ["site", "rack", "node"],
            "fabric": {
                "node": {"latency_us": 2, "bandwidth_GBps": 400},
                "rack": {"latency_us": 5, "bandwidth_GBps": 100},
                "site": {"latency_us": 10, "bandwidth_GBps": 25},
            },
            "sites": [
                {
                    "name": "a",
                    "gpu_type": "H100",
                    "gpus_per_node": 4,
                    "domains": [{"count": 3, "shape": [nodes // 3]}],
                }
            ],
        },
        "jobs": [],
    }


def _rounded(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items() if k not in ("seconds", "revision")}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


class Replayer:
    """Applies committed events to a fresh Cluster, comparing every answer."""

    def __init__(self, inst: placer.Instance) -> None:
        self.inst = inst
        self.c = Cluster(inst)
        self.revision = 1

    def apply(self, ev: dict) -> None:
        op, req = ev["op"], ev["request"]
        c = self.c
        if op == "submit":
            got = c.submit(req["job"], req["allow_moves"], req["max_migration_cost"])
        elif op == "bind":
            got = c.start(req["job"], req["gpus"])
        elif op == "release":
            got = c.release(req["name"])
        elif op == "fail":
            got = c.fail(req["items"])
        elif op == "restore":
            got = c.restore(req["items"])
        else:
            raise AssertionError(f"event {ev['revision']}: unexpected op {op}")
        want = _rounded(ev["result"])
        mine = _rounded(got.to_dict())
        assert mine == want, f"event {ev['revision']} ({op}) replays differently"
        self.revision = ev["revision"]


class Trials:
    """Crash trials on one state (see the module docs); :meth:`trial` runs one."""

    def __init__(self, workdir: Path, state: str | None = None, threads: int = 4, seed: int = 0):
        self.dir = Path(workdir)
        self.inst_path = self.dir / "instance.json"
        self.inst_path.write_text(json.dumps(crash_instance()))
        self.inst = placer.load_instance(crash_instance())
        self.state = state or str(self.dir / "state.db")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads = threads
        self.rng = random.Random(seed)
        self.replay = Replayer(self.inst)
        self.last_revision = 0
        self.stats = {"trials": 0, "acked": 0, "unacked": 0, "refused": 0, "restart_s": []}
        self.nodes = [f"a/rack{r}/node{n}" for r in range(3) for n in range(4)]
        self.proc = None

    def start(self) -> float:
        self.proc = spawn_serve(self.inst_path, self.state, self.port)
        return wait_health(self.url, self.proc, timeout=120)

    def _drive(self, k: int, stop_at: float, log: list, mine: list[str]) -> None:
        rng = random.Random(self.rng.random())
        with httpx.Client(base_url=self.url, timeout=10) as c:
            n = 0
            while time.monotonic() < stop_at:
                key = uuid.uuid4().hex
                kind = rng.random()
                if k == 0 and kind < 0.3:
                    op = rng.choice(["fail", "restore"])
                    req = ("POST", f"/{op}", {"items": [rng.choice(self.nodes)]})
                elif mine and kind < 0.55:
                    name = mine.pop(rng.randrange(len(mine)))
                    op, req = "release", ("DELETE", f"/jobs/{name}", None)
                else:
                    name = f"t{k}-{uuid.uuid4().hex[:8]}"
                    job = {
                        "name": name,
                        "kind": "training",
                        "tp": rng.choice([1, 2, 4]),
                        "dp": rng.choice([1, 2]),
                        "compute_ms": 100,
                        "value": rng.choice([1, 2, 3]),
                    }
                    op = "submit"
                    req = ("POST", "/jobs", {"job": job, "allow_moves": rng.choice([0, 0, 1])})
                try:
                    r = c.request(req[0], req[1], json=req[2], headers={"Idempotency-Key": key})
                except httpx.HTTPError:
                    log.append((key, op, None, None))
                    return  # the server is gone
                body = r.json() if r.headers.get("content-type") == "application/json" else {}
                log.append((key, op, r.status_code, body))
                if op == "submit" and r.status_code == 200 and body.get("placed"):
                    mine.append(req[2]["job"]["name"])
                n += 1

    def trial(self, drive_s: tuple[float, float] = (0.0, 0.4)) -> dict:
        if self.proc is None:
            self.start()
        log: list = []
        mine: list[list[str]] = [[] for _ in range(self.threads)]
        for name in httpx.get(self.url + "/jobs").json()["jobs"]:
            mine[int(name.split("-")[0][1:]) % self.threads].append(name)
        kill_after = self.rng.uniform(*drive_s)
        stop_at = time.monotonic() + 60
        ts = [
            threading.Thread(target=self._drive, args=(k, stop_at, log, mine[k]))
            for k in range(self.threads)
        ]
        for t in ts:
            t.start()
        t_first = time.monotonic()  # at a random moment after the first answer
        while not any(x[2] == 200 for x in list(log)) and time.monotonic() - t_first < 20:
            time.sleep(0.005)
        time.sleep(kill_after)
        stop(self.proc, sig_kill=True)  # kill -9 mid-flight
        for t in ts:
            t.join()
        t0 = time.monotonic()
        self.start()
        restart = time.monotonic() - t0
        self.check(log)
        self.stats["trials"] += 1
        self.stats["restart_s"].append(restart)
        return {"ops": len(log), "restart_s": restart}

    def events(self, since: int) -> list[dict]:
        out = []
        while True:
            page = httpx.get(self.url + "/events", params={"since": since, "limit": 1000}).json()
            out += page["events"]
            if len(page["events"]) < 1000:
                return out
            since = out[-1]["revision"]

    def check(self, log: list) -> None:
        evs = self.events(self.replay.revision)
        for ev in evs:
            self.replay.apply(ev)
        snap = httpx.get(self.url + "/snapshot").json()
        rev = snap["revision"]
        # 4. the revision never goes back
        assert rev >= self.last_revision, f"revision went back: {self.last_revision} -> {rev}"
        assert rev == self.replay.revision, (rev, self.replay.revision)
        # 1. every acknowledged operation is committed, at the revision it was answered with
        keys = {e["idempotency_key"]: e["revision"] for e in self.events(0)}
        for key, op, status, body in log:
            if status is None:
                self.stats["unacked"] += 1
                continue
            if status != 200:
                self.stats["refused"] += 1
                continue
            self.stats["acked"] += 1
            changed = (
                body.get("placed", True)
                and body.get("applied", True)  # a fail or restore with nothing to do
                and (body.get("actions") or op != "submit")
            )
            if changed:
                assert keys.get(key) == body["revision"], f"acknowledged {op} {key} is lost"
            else:
                assert key not in keys
            assert body["revision"] <= rev
        # 2. nothing half-applied: the state is exactly the replay of the committed events
        mine = json.loads(json.dumps(self.replay.c.snapshot()))
        assert snap["instance"] == mine[0] and snap["placement"] == mine[1], "state != replay"
        # 3. the checker finds no violation
        inst = placer.load_instance(copy.deepcopy(snap["instance"]))
        assert placer.check(inst, snap["placement"]) == []
        self.last_revision = rev

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
