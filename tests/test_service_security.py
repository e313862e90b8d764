"""Tokens, caps and replans that block nobody, against real servers.

- Every mutating route, enumerated from /openapi.json, answers 401 without a token and 403
  with a read-only one; public routes need none; tokens are required off loopback.
- Caps: body size (413, chunked bodies included), posted instance size, solve time (schema),
  requests in flight (503).
- A replan runs in a worker process: submits go on meanwhile, a replan past its deadline is
  killed and changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from builders import one_site, training
from servers import ROOT, uvicorn_thread

import placer
from placer import Cluster

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from placer.service import Limits, Service, create_app, parse_tokens  # noqa: E402

FULL = "f" * 24
READ = "r" * 24


def big_instance(nodes: int = 64) -> placer.Instance:
    return placer.load_instance(one_site(nodes=nodes, gpus_per_node=8))


@pytest.fixture()
def guarded():
    svc = Service(big_instance(), limits=Limits(max_body_bytes=4096, max_gpus=100, max_jobs=3))
    svc.start(background=False)
    tokens = parse_tokens(f"# admins\n{FULL}\n{READ} read\n")
    with uvicorn_thread(create_app(svc, tokens=tokens)) as url:
        yield url, svc
    svc.close()


def test_every_mutating_route_needs_a_full_token(guarded):
    url, _ = guarded
    schema = httpx.get(url + "/openapi.json").json()  # public
    assert httpx.get(url + "/health").status_code == 200  # public
    assert httpx.get(url + "/docs").status_code == 200  # public
    mutating = [
        (m.upper(), p.replace("{name}", "x"))
        for p, ops in schema["paths"].items()
        for m in ops
        if m != "get"
    ]
    assert len(mutating) >= 9
    for method, path in mutating:
        r = httpx.request(method, url + path, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.request(method, url + path, json={}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401, (method, path)
        r = httpx.request(method, url + path, json={}, headers={"Authorization": f"Bearer {READ}"})
        assert r.status_code == 403, (method, path)
        r = httpx.request(method, url + path, json={}, headers={"Authorization": f"Bearer {FULL}"})
        assert r.status_code not in (401, 403), (method, path)
    for p, ops in schema["paths"].items():
        if "get" in ops and p != "/health":
            assert httpx.get(url + p).status_code == 401
            r = httpx.get(url + p, headers={"Authorization": f"Bearer {READ}"})
            assert r.status_code == 200, p
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_caps(guarded):
    url, _ = guarded
    h = {"Authorization": f"Bearer {FULL}"}
    big = {"job": training("a", 1, note="x" * 5000)}
    r = httpx.post(url + "/jobs", json=big, headers=h)
    assert r.status_code == 413 and r.json()["detail"][0]["loc"] == ["body"]

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        yield b'{"job": {"name": "a", "kind": "training", "dp": 1, "note": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    r = httpx.post(
        url + "/jobs", content=chunks(), headers={**h, "content-type": "application/json"}
    )
    assert r.status_code == 413
    assert "a" not in httpx.get(url + "/jobs", headers=h).json()["jobs"]
    # posted instances: GPUs and jobs
    inst = one_site(nodes=16, gpus_per_node=8, jobs=[training("z", 1)])
    r = httpx.post(url + "/solve", json={"instance": inst, "time_limit": 1}, headers=h)
    assert r.status_code == 413 and "128 GPUs, over the cap of 100" in r.text
    inst = one_site(nodes=2, gpus_per_node=2, jobs=[training(f"z{i}", 1) for i in range(4)])
    r = httpx.post(url + "/solve", json={"instance": inst, "time_limit": 1}, headers=h)
    assert r.status_code == 413 and "4 jobs" in r.text
    # solve time: the cap is in the schema
    schema = httpx.get(url + "/openapi.json").json()["components"]["schemas"]
    assert schema["ReplanBody"]["properties"]["time_limit"]["maximum"] == 60.0
    r = httpx.post(url + "/replan", json={"time_limit": 61}, headers=h)
    assert r.status_code == 422


def test_concurrency_cap_answers_503():
    svc = Service(big_instance(8), limits=Limits(max_concurrent=2))
    svc.start(background=False)
    with uvicorn_thread(create_app(svc)) as url:
        svc.lock.acquire()  # every request that reads the cluster now waits
        codes: list[int] = []

        def go():
            codes.append(httpx.get(url + "/jobs", timeout=30).status_code)

        ts = [threading.Thread(target=go) for _ in range(5)]
        for t in ts:
            t.start()
        # two requests hold the two slots (waiting on the lock); the other three are refused
        # at once: wait for their answers, however long a loaded machine takes to send them
        deadline = time.monotonic() + 60
        while len(codes) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        svc.lock.release()
        for t in ts:
            t.join()
        assert sorted(codes).count(503) == 3 and codes.count(200) == 2
    svc.close()


def test_tokens_are_required_off_loopback(tmp_path):
    inst = tmp_path / "i.json"
    inst.write_text(json.dumps(one_site()))
    r = subprocess.run(
        [sys.executable, "-m", "placer", "serve", str(inst), "--host", "0.0.0.0"]
        + ["--state", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "tokens are required off loopback" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "t").write_text("short\n")
    r = subprocess.run(
        [sys.executable, "-m", "placer", "serve", str(inst), "--token-file", str(tmp_path / "t")]
        + ["--state", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and ":1: a token needs at least 16 characters" in r.stderr


def test_a_replan_blocks_no_submit_and_its_deadline_kills_it():
    inst = placer.load_instance(one_site(nodes=96, gpus_per_node=8))
    c = Cluster(inst)
    for i in range(30):
        c.submit(training(f"r{i}", 4, min_dp=1, value=1 + i % 3))
    svc = Service(inst, cluster=c, limits=Limits(solve_grace_seconds=60))
    with uvicorn_thread(create_app(svc)) as url:
        svc.replan_worker.start()
        time.sleep(3)  # the worker is warm
        # the solve is background work: its process runs at a lower CPU priority
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        end = time.monotonic() + 60
        while os.getpriority(os.PRIO_PROCESS, svc.replan_worker.pid) <= mine < 19:
            assert time.monotonic() < end, "the replan worker was not niced"
            time.sleep(0.1)
        out: dict = {}
        pending = [training(f"p{i}", 8, value=5) for i in range(20)]
        # hold the replan in flight until the busy check is done, so that the 409 does not
        # depend on how fast the real solve behind it proves optimality
        solve, inflight, go_on = svc.replan_worker.run, threading.Event(), threading.Event()

        def held_run(task, deadline):
            inflight.set()
            go_on.wait(30)
            return solve(task, deadline)

        svc.replan_worker.run = held_run

        def replan():
            out["r"] = httpx.post(
                url + "/replan",
                json={"time_limit": 4, "solver": "cpsat", "pending": pending},
                timeout=120,
            )

        t = threading.Thread(target=replan)
        t.start()
        assert inflight.wait(30)
        lat = []
        while t.is_alive() and len(lat) < 200:
            t0 = time.perf_counter()
            r = httpx.post(url + "/jobs", json={"job": training(f"s{len(lat)}", 1)}, timeout=30)
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200
            if len(lat) == 3:
                busy = httpx.post(url + "/replan", json={"time_limit": 1}, timeout=30)
                assert busy.status_code == 409 and "already running" in busy.text
                go_on.set()
        go_on.set()
        t.join()
        svc.replan_worker.run = solve
        assert len(lat) >= 5 and max(lat) < 2.0  # submits went on during the solve
        d = out["r"].json()
        assert out["r"].status_code == 200 and d["from_revision"] is not None or not d["applied"]
        assert c.check() == []
        # a deadline shorter than the solve: killed, nothing changes
        svc.limits.solve_grace_seconds = 0.0
        before = json.dumps(c.snapshot(), sort_keys=True)
        rev = svc.revision
        # (1,500 pending jobs: validating, placing and checking them take about 0.3 s, six
        # times 0.05 s, so the kill does not depend on how fast a tiny limit's answer comes)
        many = [training(f"k{i}", 8, value=1 + i % 5) for i in range(1500)]
        r = httpx.post(
            url + "/replan",
            json={"time_limit": 0.05, "solver": "cpsat", "pending": many},
            timeout=60,
        )
        assert r.status_code == 200 and r.json()["applied"] is False
        assert "killed" in r.json()["reason"] and svc.replan_worker.kills == 1
        assert svc.revision == rev and json.dumps(c.snapshot(), sort_keys=True) == before
    svc.close()
