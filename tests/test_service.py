"""`placer serve`: a real uvicorn server on 127.0.0.1 (a free port), driven with httpx (state in
memory here; the durable store: test_service_store.py)."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from builders import one_site, training

import placer
from placer import Cluster
from placer.errors import PlacementWarning

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server():
    from placer.service import create_app

    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    cluster = Cluster(inst, verify="full")
    port = free_port()
    config = uvicorn.Config(create_app(cluster), host="127.0.0.1", port=port, log_level="error")
    srv = uvicorn.Server(config)
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 20
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client, cluster
    srv.should_exit = True
    th.join(timeout=10)


def test_submit_release_and_snapshot_over_http(server):
    client, cluster = server
    r = client.post("/jobs", json={"job": training("a", 2, tp=2)})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["placed"] and d["units"] == 2 and len(d["gpus"]) == 4
    assert client.get("/jobs").json()["jobs"] == {"a": 2}
    snap = client.get("/snapshot").json()
    inst = placer.load_instance(copy.deepcopy(snap["instance"]))
    assert placer.check(inst, snap["placement"]) == []
    # the posted documents are scored and checked by the same service
    docs = {"instance": snap["instance"], "placement": snap["placement"]}
    s = client.post("/score", json=docs).json()
    assert s["objective"] == pytest.approx(cluster.objective)
    assert client.post("/check", json=docs).json() == {"feasible": True, "violations": []}
    r = client.delete("/jobs/a")
    assert r.status_code == 200 and r.json()["actions"][0]["kind"] == "stop"
    assert client.get("/jobs").json()["jobs"] == {}
    # a binding made by the scheduler itself, validated
    r = client.post("/bind", json={"job": training("b", 1), "gpus": ["a/node3/gpu1"]})
    assert r.status_code == 200 and r.json()["gpus"] == ["a/node3/gpu1"]
    r = client.post("/bind", json={"job": training("c", 1), "gpus": ["a/node3/gpu1"]})
    assert r.status_code == 400 and "not a valid placement" in r.json()["detail"][0]["msg"]


def test_a_placement_of_another_instance_is_a_warning_in_the_answer(server):
    """POST /score and /check report what `placer check` warns on stderr (a placement whose
    `instance` names another instance) as `warnings`, never an error; no `warnings` key when
    there is nothing to say; the server itself warns nothing (no PlacementWarning)."""
    client, _ = server
    assert client.post("/jobs", json={"job": training("a", 2, tp=2)}).status_code == 200
    snap = client.get("/snapshot").json()
    name = snap["instance"]["name"]
    want = f"instance: the placement names instance 'old', not this instance {name!r}"
    for other, says in (("old", True), (name, False), (None, False)):
        pl = dict(snap["placement"], instance=other)
        if other is None:
            del pl["instance"]
        docs = {"instance": snap["instance"], "placement": pl}
        with warnings.catch_warnings():
            warnings.simplefilter("error", PlacementWarning)
            s = client.post("/score", json=docs)
            c = client.post("/check", json=docs)
        assert s.status_code == 200 and c.status_code == 200, (s.text, c.text)
        assert s.json()["objective"] > 0 and c.json()["feasible"] is True
        if says:
            for r in (s, c):
                assert len(r.json()["warnings"]) == 1 and r.json()["warnings"][0].startswith(want)
        else:
            assert "warnings" not in s.json() and "warnings" not in c.json()
            assert c.json() == {"feasible": True, "violations": []}
    # infeasible: still 200, the violations and the warning
    bad = copy.deepcopy(dict(snap["placement"], instance="old"))
    bad["jobs"][0]["gpus"][1] = bad["jobs"][0]["gpus"][0]
    c = client.post("/check", json={"instance": snap["instance"], "placement": bad}).json()
    assert c["feasible"] is False and c["violations"] and c["warnings"][0].startswith(want)
    # a key SPEC 2 does not define: named with its place, as `placer check` does
    extra = copy.deepcopy(dict(snap["placement"], colour="red"))
    extra["jobs"][0]["owner"] = "team-a"
    for path in ("/check", "/score"):
        r = client.post(path, json={"instance": snap["instance"], "placement": extra}).json()
        want = ["colour: unknown key ignored", "jobs[0].owner: unknown key ignored"]
        assert r["warnings"] == want, r
    schema = client.get("/openapi.json").json()["components"]["schemas"]["CheckOut"]
    assert schema["properties"]["warnings"]["type"] == "array"
    assert "warnings" not in schema.get("required", [])


def test_failures_and_restores_over_http(server):
    client, _ = server
    client.post("/jobs", json={"job": training("a", 2, tp=2, preemptible=False)})
    node = client.get("/snapshot").json()["placement"]["jobs"][0]["gpus"][0].rsplit("/", 1)[0]
    r = client.post("/fail", json={"items": [node]})
    assert r.status_code == 200, r.text
    assert [a["kind"] for a in r.json()["actions"]] == ["move"]
    assert client.get("/snapshot").json()["instance"]["topology"]["unavailable"] == [node]
    assert client.post("/restore", json={"items": [node]}).status_code == 200


def test_fail_and_restore_over_http_are_idempotent_as_the_library(server):
    """A repeated fail and a restore of hardware not failed: 200, no actions, the reason, and
    no new revision (a restore answered 409 where a repeated fail wrote a revision)."""
    client, cluster = server
    r = client.post("/fail", json={"items": ["a/node0"]})
    assert r.status_code == 200 and r.json()["reason"] is None and r.json()["applied"]
    rev = r.json()["revision"]
    for path, items, reason in (
        ("/fail", ["a/node0/gpu1"], "items: all of them are failed already: nothing changed"),
        ("/restore", ["a/node1"], "items: none of them is failed: nothing changed"),
    ):
        r = client.post(path, json={"items": items})
        assert r.status_code == 200, r.text
        assert r.json()["actions"] == [] and r.json()["reason"] == reason
        assert r.json()["applied"] is False
        assert r.json()["revision"] == rev and r.headers["etag"] == f'"{rev}"'
    assert cluster.failed == ["a/node0"]
    r = client.post("/restore", json={"items": ["a/node0"]})
    assert r.status_code == 200 and r.json()["revision"] == rev + 1 and r.json()["applied"]
    r = client.post("/restore", json={"items": ["a/node0"]})
    assert r.status_code == 200 and r.json()["revision"] == rev + 1
    assert r.json()["applied"] is False
    paths = client.get("/openapi.json").json()["paths"]
    assert "409" not in paths["/restore"]["post"]["responses"]


def test_errors_are_json_with_locations(server):
    client, _ = server
    r = client.post("/jobs", json={"job": {"name": "x", "kind": "training", "tp": 0}})
    assert r.status_code == 422
    locs = [tuple(p["loc"]) for p in r.json()["detail"]]
    assert ("body", "job", "tp") in locs
    # `value` may come from each plan (SPEC v3): its absence is a cross-field problem (400)
    r = client.post("/jobs", json={"job": {"name": "x", "kind": "training", "dp": 1}})
    assert r.status_code == 400
    assert [tuple(p["loc"]) for p in r.json()["detail"]][:1] == [("job", "value")]
    r = client.post("/jobs", json={"job": training("x", 1, scope={"dp": "galaxy"})})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"][:2] == ["job", "scope"]
    r = client.delete("/jobs/nope")
    assert r.status_code == 404 and "no running job" in r.json()["detail"][0]["msg"]
    client.post("/jobs", json={"job": training("y", 1)})
    assert client.post("/jobs", json={"job": training("y", 1)}).status_code == 409
    r = client.post("/fail", json={"items": ["a/node99"]})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["items", "0"]


def test_openapi_lists_every_endpoint(server):
    client, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/jobs",
        "/jobs/{name}",
        "/fail",
        "/restore",
        "/replan",
        "/snapshot",
        "/score",
        "/check",
        "/solve",
        "/health",
    ):
        assert p in paths


def test_concurrent_submits_are_serialised(server):
    client, cluster = server
    port = client.base_url.port
    results = []

    def go(i):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            results.append(c.post("/jobs", json={"job": training(f"j{i}", 1)}).json())

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["placed"] for r in results) == 8  # 8 GPUs, one each, no double booking
    used = [g for r in results for g in r["gpus"]]
    assert len(used) == len(set(used)) == 8
    assert cluster.check() == []


def test_replan_and_solve_over_http(server):
    client, _ = server
    client.post("/jobs", json={"job": training("a", 4, min_dp=2)})
    r = client.post(
        "/replan",
        json={"time_limit": 5, "solver": "greedy", "pending": [training("b", 4, value=3)]},
    )
    assert r.status_code == 200, r.text
    assert any(a["kind"] == "start" and a["job"] == "b" for a in r.json()["actions"])
    inst = one_site(nodes=2, gpus_per_node=2, jobs=[training("z", 2)])
    r = client.post("/solve", json={"instance": inst, "solver": "greedy", "time_limit": 5})
    assert r.status_code == 200 and r.json()["jobs"][0]["units"] == 2


def test_the_posted_instances_warnings_are_in_the_answers(server):
    """SPEC 6: unknown keys are accepted "with a warning that names them"; the CLI prints
    them on stderr, and POST /check, /score and /solve answered without them."""
    client, _ = server
    inst = one_site(nodes=2, gpus_per_node=2, jobs=[training("z", 2, colour="blue")])
    inst["flavour"] = 1
    want = ["flavour: unknown key ignored", "jobs[0].colour: unknown key ignored"]
    r = client.post("/solve", json={"instance": inst, "solver": "greedy", "time_limit": 5})
    assert r.status_code == 200 and r.json()["warnings"] == want, r.text
    pl = r.json()
    for path in ("/check", "/score"):
        got = client.post(path, json={"instance": inst, "placement": pl})
        assert got.status_code == 200 and got.json()["warnings"] == want, got.text
    # nothing to say: no `warnings` key, the placement of /solve posted back as it came
    clean = one_site(nodes=2, gpus_per_node=2, jobs=[training("z", 2)])
    r = client.post("/solve", json={"instance": clean, "solver": "greedy", "time_limit": 5})
    assert r.status_code == 200 and "warnings" not in r.json()
    c = client.post("/check", json={"instance": clean, "placement": r.json()})
    assert c.json() == {"feasible": True, "violations": []}


def test_openapi_documents_every_status_the_server_answers(server):
    client, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    # the review's examples: an unknown job is a documented 404, a bad item a documented 422
    r = client.delete("/jobs/0")
    assert r.status_code == 404 and "404" in paths["/jobs/{name}"]["delete"]["responses"]
    r = client.post("/fail", json={"items": [[]]})
    assert r.status_code == 422 and "422" in paths["/fail"]["post"]["responses"]
    for path, ops in paths.items():
        if path == "/health":  # public: 200 ready, 503 not yet
            continue
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"200", "401", "403", "413", "422", "503"} <= codes, (method, path)
            if method != "get" and path not in ("/score", "/check", "/solve"):
                assert "412" in codes, (method, path)  # a mutation may send If-Match


def test_schema_carries_the_models_limits_and_the_server_agrees(server):
    client, _ = server
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Job"]["properties"]["name"]["minLength"] == 1
    assert schema["Topology"]["properties"]["levels"]["minItems"] == 2
    assert schema["SubmitBody"]["additionalProperties"] is False
    assert schema["Job"]["properties"]["tp"]["minimum"] == 1
    # an empty job name, fewer than two levels, an unknown body key: all refused
    assert client.post("/jobs", json={"job": training("", 1)}).status_code == 422
    bad = one_site(nodes=2, jobs=[training("z", 1)])
    bad["topology"]["levels"] = ["site"]
    assert client.post("/solve", json={"instance": bad, "time_limit": 1}).status_code == 400
    assert client.post("/jobs", json={"job": training("y", 1), "extra": 1}).status_code == 422


def test_booleans_are_not_numbers(server):
    client, _ = server
    for body in ({"seed": True}, {"time_limit": True}, {"seed": 1.5}):
        r = client.post("/replan", json=body)
        assert r.status_code == 422, body
    r = client.post("/jobs", json={"job": training("a", 1), "allow_moves": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "allow_moves"]


def test_jobs_with_plans_over_http(server):
    client, cluster = server
    plans = [{"name": "tp2", "tp": 2, "dp": 2, "value": 3}, {"name": "tp1", "tp": 1, "dp": 4}]
    job = {"name": "p", "kind": "training", "compute_ms": 100, "value": 1, "plans": plans}
    r = client.post("/jobs", json={"job": job})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["placed"] and d["plan"] == "tp2" and d["units"] == 2
    assert d["actions"][0]["plan"] == "tp2"
    snap = client.get("/snapshot").json()
    assert snap["instance"]["jobs"][0]["current_plan"] == "tp2"
    assert snap["instance"]["jobs"][0]["plans"] == plans
    assert snap["placement"]["jobs"][0]["plan"] == "tp2"
    docs = {"instance": snap["instance"], "placement": snap["placement"]}
    assert client.post("/check", json=docs).json() == {"feasible": True, "violations": []}
    # a binding names the plan the job runs
    gpus = ["a/node2/gpu0", "a/node2/gpu1", "a/node3/gpu0", "a/node3/gpu1"]
    r = client.post("/bind", json={"job": {**job, "name": "b"}, "gpus": gpus})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["plan"]
    assert "name the one it runs" in r.json()["detail"][0]["msg"]
    r = client.post("/bind", json={"job": {**job, "name": "b"}, "gpus": gpus, "plan": "tp1"})
    assert r.status_code == 200, r.text
    assert r.json()["plan"] == "tp1" and r.json()["units"] == 4
    assert cluster.job_plan("b") == "tp1" and cluster.check() == []
    # a replan may start pending jobs with plans under the plan the solve chooses
    client.delete("/jobs/b")
    r = client.post(
        "/replan",
        json={"time_limit": 5, "solver": "greedy", "pending": [{**job, "name": "q"}]},
    )
    assert r.status_code == 200, r.text
    (start,) = [a for a in r.json()["actions"] if a["job"] == "q"]
    assert start["kind"] == "start" and start["plan"] == cluster.job_plan("q") == "tp2"


def test_in_process_clients_raise_no_starlette_deprecation_warning():
    """Starlette's TestClient warns (StarletteDeprecationWarning: use httpx2) with the httpx
    of the `test` extra: the in-process tests use tests/asgi_client.py (httpx's
    ASGITransport) instead, and no test module imports the TestClient."""
    tests = Path(__file__).parent
    code = "\n".join(
        [
            "import warnings",
            "from starlette.exceptions import StarletteDeprecationWarning",
            "warnings.simplefilter('error', StarletteDeprecationWarning)",
            "import test_service_stateful, test_spec_audit_scale",
            "import placer",
            "from asgi_client import ASGIClient",
            "from builders import one_site",
            "from placer.service import create_app",
            "c = placer.Cluster(placer.load_instance(one_site(nodes=2, gpus_per_node=2)))",
            "with ASGIClient(create_app(c)) as client:",
            "    assert client.get('/jobs').json()['jobs'] == {}",
            "test_spec_audit_scale.test_bind_with_partial_units_is_400_not_500()",
        ]
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tests,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    for p in tests.glob("*.py"):
        src = p.read_text()
        for mod in ("fastapi", "starlette"):
            assert f"{mod}.{'testclient'}" not in src, p.name
