"""Durable state of `placer serve`, the same tests on SQLite and on a real PostgreSQL server:
a restart rebuilds the committed state exactly (canonical snapshot), revisions only grow,
If-Match and Idempotency-Key hold, a different instance is refused, one writer at a time
(fencing epoch; a PostgreSQL standby takes over when the writer dies)."""

from __future__ import annotations

import json

import pytest
from builders import one_site, training
from servers import free_port, log_of, spawn_serve, stop, uvicorn_thread, wait_health

import placer

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from placer.service import Service, create_app, open_store  # noqa: E402
from placer.service.store import FencedError, StoreError  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return request.getfixturevalue("postgres_url")


def instance(nodes: int = 4) -> placer.Instance:
    d = one_site(nodes=nodes, gpus_per_node=2)
    d["leases"] = {
        "level": "node",
        "offers": [{"name": "o", "price_per_gpu_hour": 0.5, "min_gpus": 2, "max_gpus": 4}],
    }
    return placer.load_instance(d)


def started(url: str, inst=None) -> Service:
    store = open_store(url)
    store.open()
    svc = Service(inst or instance(), store=store)
    svc.start(background=False)
    return svc


def canonical(svc: Service) -> str:
    return json.dumps(svc.cluster.snapshot(), sort_keys=True)


def test_restart_rebuilds_the_committed_state_exactly(state_url):
    svc = started(state_url)
    assert svc.revision == 1
    with uvicorn_thread(create_app(svc)) as url:
        c = httpx.Client(base_url=url, timeout=30)
        r = c.post("/jobs", json={"job": training("a", 2, tp=2)})
        assert r.status_code == 200 and r.headers["etag"] == '"2"' and r.json()["revision"] == 2
        c.post("/jobs", json={"job": training("b", 1, preemptible=False)})
        c.post("/bind", json={"job": training("c", 1), "gpus": ["a/node3/gpu1"]})
        node = c.get("/snapshot").json()["placement"]["jobs"][0]["gpus"][0].rsplit("/", 1)[0]
        assert c.post("/fail", json={"items": [node]}).status_code == 200
        assert c.delete("/jobs/c").status_code == 200
        r = c.post("/replan", json={"time_limit": 5, "solver": "greedy"})
        assert r.status_code == 200, r.text
        before, rev = canonical(svc), svc.revision
        evs = c.get("/events").json()["events"]
        assert [e["revision"] for e in evs] == list(range(1, rev + 1))
        assert [e["op"] for e in evs][:6] == ["init", "submit", "submit", "bind", "fail", "release"]
    svc.close()
    again = started(state_url)
    assert again.revision == rev and canonical(again) == before
    assert again.cluster.failed == [node] and again.cluster.check() == []
    # the next mutation continues the revisions
    assert again.mutate("release", {"name": "b"}, lambda c: c.release("b"))["revision"] == rev + 1
    again.close()


def test_if_match_and_idempotency_keys(state_url):
    svc = started(state_url)
    with uvicorn_thread(create_app(svc)) as url:
        c = httpx.Client(base_url=url, timeout=30)
        etag = c.get("/jobs").headers["etag"]
        r = c.post("/jobs", json={"job": training("a", 1)}, headers={"If-Match": etag})
        assert r.status_code == 200
        stale = c.post("/jobs", json={"job": training("b", 1)}, headers={"If-Match": etag})
        assert stale.status_code == 412 and stale.json()["detail"][0]["loc"] == [
            "header",
            "if-match",
        ]
        assert "b" not in c.get("/jobs").json()["jobs"]  # nothing changed
        k = {"Idempotency-Key": "release-a-1"}
        r1 = c.delete("/jobs/a", headers=k)
        r2 = c.delete("/jobs/a", headers=k)  # a retry after a lost answer: the same answer
        assert r1.status_code == r2.status_code == 200 and r2.json()["replayed"] is True
        assert r2.json()["revision"] == r1.json()["revision"]
        assert c.delete("/jobs/a").status_code == 404  # without the key: a new request
    svc.close()
    again = started(state_url)  # the key survives a restart
    assert again.replayed("release-a-1")["revision"] == r1.json()["revision"]
    again.close()


def test_a_different_instance_is_refused_and_the_same_one_resumes(state_url):
    svc = started(state_url)
    svc.mutate("submit", {}, lambda c: c.submit(training("a", 1)))
    svc.close()
    other = instance(nodes=5)
    store = open_store(state_url)
    store.open()
    s2 = Service(other, store=store)
    s2.start()
    assert not s2.wait_ready(30) and s2.status == "failed"
    assert "different instance" in s2.error and "topology.sites[0].domains[0].count" in s2.error
    s2.close()
    again = started(state_url)
    assert again.cluster.jobs == {"a": 1}
    again.close()


def test_one_writer_the_other_is_fenced(state_url):
    a = started(state_url)
    if a.store.kind == "sqlite":
        b = open_store(state_url)
        b.open()
        with pytest.raises(StoreError, match="in use by another placer serve"):
            b.acquire()
        b.close()
        a.close()
        return
    # PostgreSQL: b waits as a standby while a holds the lock ...
    import threading

    b = open_store(state_url)
    b.open()
    got = threading.Event()
    th = threading.Thread(target=lambda: (b.acquire(), got.set()), daemon=True)
    th.start()
    assert not got.wait(1.5)
    # ... and takes over when a's connection drops; a's next write is fenced
    a.store._conn.close()
    assert got.wait(10) and b.epoch == a.store.epoch + 1
    c2 = open_store(state_url)
    c2.open()
    c2.epoch, c2.revision = a.store.epoch, a.revision  # a writer that missed the takeover
    from placer.service.store import Commit

    with pytest.raises(FencedError):
        c2.commit(Commit("release", {}, {}), {})
    c2.close()
    b.close()
    a.close()


def test_postgresql_standby_takes_over_when_the_writer_is_killed(postgres_url, tmp_path):
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(one_site(nodes=4, gpus_per_node=2)))
    p1, p2 = free_port(), free_port()
    w = spawn_serve(path, postgres_url, p1)
    s = None
    try:
        wait_health(f"http://127.0.0.1:{p1}", w)
        c = httpx.Client(base_url=f"http://127.0.0.1:{p1}", timeout=30)
        assert c.post("/jobs", json={"job": training("a", 2)}).status_code == 200
        snap = c.get("/snapshot").json()
        s = spawn_serve(path, postgres_url, p2)
        wait_health(f"http://127.0.0.1:{p2}", s, want=503)
        h = httpx.get(f"http://127.0.0.1:{p2}/health").json()
        assert h["status"] == "standby"
        stop(w, sig_kill=True)
        wait_health(f"http://127.0.0.1:{p2}", s, timeout=60)
        c2 = httpx.Client(base_url=f"http://127.0.0.1:{p2}", timeout=30)
        snap2 = c2.get("/snapshot").json()
        assert snap2["instance"] == snap["instance"] and snap2["placement"] == snap["placement"]
        assert snap2["revision"] == snap["revision"]
        r = c2.post("/jobs", json={"job": training("b", 1)})
        assert r.status_code == 200 and r.json()["revision"] == snap["revision"] + 1
    finally:
        stop(w, sig_kill=True)
        if s is not None:
            stop(s)


def test_schema_version_is_checked(tmp_path):
    import sqlite3

    svc = started(str(tmp_path / "s.db"))
    svc.close()
    con = sqlite3.connect(tmp_path / "s.db")
    con.execute("UPDATE placer_meta SET value = '99' WHERE key = 'schema'")
    con.commit()
    con.close()
    store = open_store(str(tmp_path / "s.db"))
    with pytest.raises(StoreError, match="schema version 99"):
        store.open()
    (tmp_path / "junk.db").write_text("not a database, just text " * 100)
    with pytest.raises(StoreError, match="not a placer state database"):
        open_store(str(tmp_path / "junk.db")).open()


def test_a_placement_of_another_instance_is_a_warning_on_a_first_start(tmp_path):
    """`placer serve --placement` (and Service(placement=...)) with a placement whose
    `instance` names another instance: a warning naming both (stderr; PlacementWarning in
    the library, once, when it is given), the service starts from it; a restart resumes and
    ignores the placement, without that warning."""
    import warnings

    from placer.errors import PlacementWarning

    inst = placer.load_instance("instances/tiny.yaml")
    d = placer.solve(inst, solver="greedy", time_limit=5).placement.model_dump(
        mode="json", exclude_none=True
    )
    d["instance"] = "tiny-old"
    want = "instance: the placement names instance 'tiny-old', not this instance 'tiny'"
    with pytest.warns(PlacementWarning, match=want) as rec:
        svc = Service(inst, placement=d)
    assert len(rec) == 1 and rec[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlacementWarning)
        svc.start(background=False)  # builds the cluster without warning again
    expected = placer.Cluster(inst, dict(d, instance="tiny")).jobs
    assert svc.status == "ready" and svc.cluster.jobs == expected and expected
    svc.close()
    pl = tmp_path / "other.json"
    pl.write_text(json.dumps(d))
    state = str(tmp_path / "state.db")
    for first in (True, False):
        port = free_port()
        p = spawn_serve("instances/tiny.yaml", state, port, "--placement", str(pl))
        try:
            wait_health(f"http://127.0.0.1:{port}", p)
            jobs = httpx.get(f"http://127.0.0.1:{port}/jobs").json()["jobs"]
        finally:
            stop(p)
        log = log_of(p)
        assert jobs == expected, log
        assert log.count("warning: " + want) == (1 if first else 0), log
        assert ("--placement ignored" in log) is not first, log
        assert "PlacementWarning" not in log and "Traceback" not in log, log


@pytest.mark.parametrize("meanwhile", ["elsewhere", "on_the_plan"])
def test_a_replan_commits_into_the_state_that_moved_after_its_plan_was_checked(
    tmp_path, meanwhile, monkeypatch
):
    # the plan is merged and checked on a copy without the lock; a bind lands between that
    # check and the commit: on GPUs the plan leaves alone it is merged in (applied, moved),
    # on a GPU the plan gives a job the plan is refused and nothing else changes. A round
    # of catching up is taken after more than 2 commits here (50 in the service)
    from placer.service import runtime

    monkeypatch.setattr(runtime, "CATCH_UP_REVISIONS", 2)
    inst = placer.load_instance(one_site(nodes=6, gpus_per_node=2))
    svc = started(str(tmp_path / "state.db"), inst)
    every = {inst.index.gpu_id(i) for i in range(inst.index.n_gpus)}
    with uvicorn_thread(create_app(svc)) as url:
        c = httpx.Client(base_url=url, timeout=60)
        spread = ["a/node0/gpu0", "a/node1/gpu0"]  # a slow all-reduce: a replan gathers it
        c.post("/bind", json={"job": training("a", 2, value=50), "gpus": spread})
        c.post("/bind", json={"job": training("b", 1), "gpus": ["a/node3/gpu0"]})
        cluster = svc.cluster
        prepare, seen = cluster.prepare_adopt, {}

        def plan_gpus(pl) -> dict[str, list[str]]:
            # the worker sends the plan's GPUs back as indices (IndexedPlacement)
            ix = inst.index
            return {
                e.name: [] if g is None else [ix.gpu_id(int(i)) for i in g]
                for e, g in zip(pl.jobs, pl.gpus, strict=True)
            }

        def prepare_then_bind(base, placement, pending=None, **kw):
            prep = prepare(base, placement, pending, **kw)
            planned = {g for gpus in plan_gpus(prep.placement).values() for g in gpus}
            held = {g for n in cluster.jobs for g in cluster.job_gpus(n)}
            free = sorted(planned - held if meanwhile == "on_the_plan" else every - planned - held)
            # elsewhere: three binds, more than the commit redoes without a round of
            # catching up on a newer copy first (CATCH_UP_REVISIONS)
            for k in range(3 if meanwhile == "elsewhere" else 1):
                job = training(f"late{k}", 1)
                r = httpx.post(url + "/bind", json={"job": job, "gpus": free[k : k + 1]})
                seen[f"late{k}"] = r.json()
            seen["plan"] = prep.placement
            return prep

        cluster.prepare_adopt = prepare_then_bind
        advance, rounds = cluster.advance_adopt, []
        cluster.advance_adopt = lambda base, prep: rounds.append(1) or advance(base, prep)
        rev0 = svc.revision
        r = c.post("/replan", json={"time_limit": 5, "solver": "greedy"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert seen["late0"].get("placed") and seen["late0"]["revision"] == rev0 + 1, seen
        if meanwhile == "elsewhere":
            assert d["applied"] and d["moved"] and d["from_revision"] == rev0
            assert d["revision"] == rev0 + 4 and {a["job"] for a in d["actions"]} >= {"a"}
            want = plan_gpus(seen["plan"])
            assert cluster.job_gpus("a") == want["a"]
            assert {"late0", "late1", "late2"} <= set(cluster.jobs) and rounds == [1]
        else:
            assert d["applied"] is False and d["revision"] == rev0 + 1
            assert "no longer passes the checker" in d["reason"]
            assert cluster.job_gpus("a") == spread and "late0" in cluster.jobs
        assert cluster.check() == []
        snap = canonical(svc)
    svc.close()
    again = started(str(tmp_path / "state.db"), inst)
    assert canonical(again) == snap
    again.close()


def test_a_replan_encoded_without_the_lock_stores_the_jobs_changed_after_its_encoding(tmp_path):
    # the replan encodes its plan's job rows and actions without the lock; a job the plan
    # names is released and bound again with another value after that encoding (two
    # commits: no catch-up round), so the commit redoes it under the lock: its row must be
    # encoded again (a stale row would differ after the restart) and the stored event is
    # the answer
    inst = placer.load_instance(one_site(nodes=6, gpus_per_node=2))
    svc = started(str(tmp_path / "state.db"), inst)
    with uvicorn_thread(create_app(svc)) as url:
        c = httpx.Client(base_url=url, timeout=60)
        spread = ["a/node0/gpu0", "a/node1/gpu0"]  # a slow all-reduce: a replan gathers it
        c.post("/bind", json={"job": training("a", 2, value=50), "gpus": spread})
        c.post("/bind", json={"job": training("b", 1), "gpus": ["a/node3/gpu0"]})
        encode, calls = svc._encode, []

        def encode_then_rebind(cluster, prep, encoded=None):
            out = encode(cluster, prep, encoded)
            calls.append(sorted(out.docs))
            if len(calls) == 1:
                assert httpx.delete(url + "/jobs/b").status_code == 200
                job = training("b", 1, value=7)
                r = httpx.post(url + "/bind", json={"job": job, "gpus": ["a/node5/gpu1"]})
                assert r.json()["placed"], r.text
            return out

        svc._encode = encode_then_rebind
        rev0 = svc.revision
        r = c.post("/replan", json={"time_limit": 5, "solver": "greedy"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["applied"] and d["moved"] and d["revision"] == rev0 + 3
        # encoded once, before the rebind (no catch-up round): only the job the plan moves
        assert calls == [["a"]]
        assert svc.cluster.job_spec("b").value == 7 and svc.replan_hold_s is not None
        assert svc.cluster.check() == []
        event = svc.store.events(since=rev0 + 2)[0]["result"]

        def bare(action):
            return {k: v for k, v in action.items() if v not in (None, "", [], 0, 0.0)}

        assert [bare(a) for a in event["actions"]] == [bare(a) for a in d["actions"]]
        assert all(event[k] == d[k] for k in event if k != "actions")
        snap = canonical(svc)
    svc.close()
    again = started(str(tmp_path / "state.db"), inst)
    assert canonical(again) == snap and again.cluster.job_spec("b").value == 7
    again.close()


def test_an_encoded_change_is_the_json_of_the_change():
    from placer.live.results import Action, ActionCause, Change
    from placer.service.runtime import _Encoded
    from placer.service.store import encode

    acts = [
        Action("move", job=f"j{k}", units=1, gpus=[f"g{k}"], cause=ActionCause.REPLAN)
        for k in range(3)
    ]
    ch = Change(actions=acts, delta=2.5, cost=1.0, lost=["x"])
    enc = _Encoded()
    enc.actions[id(acts[0])] = (acts[0], encode(acts[0].to_dict()))
    enc.actions[id(acts[2])] = (acts[1], "stale: another object")  # an id reused
    d = ch.to_dict()
    assert json.loads(enc.change(d, ch.actions)) == json.loads(encode(d))
    assert json.loads(enc.change(Change().to_dict(), [])) == Change().to_dict()
