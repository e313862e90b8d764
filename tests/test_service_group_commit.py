"""The group commit of `placer serve` (Service.durable): an operation is applied in memory
under the state's lock and answered only once the store transaction holding it is written;
operations queued meanwhile are written together, in revision order, all or nothing. SQLite
here (the store code is shared with PostgreSQL: tests/test_service_store.py runs both)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from builders import one_site, training

import placer

pytest.importorskip("fastapi")

from placer.service import Service, open_store  # noqa: E402
from placer.service.runtime import ServiceError  # noqa: E402


def started(path: str, inst=None) -> Service:
    store = open_store(path)
    store.open()
    svc = Service(inst or placer.load_instance(one_site(nodes=6, gpus_per_node=2)), store=store)
    svc.start(background=False)
    return svc


def canonical(svc: Service) -> str:
    return json.dumps(svc.cluster.snapshot(), sort_keys=True)


def submit(svc: Service, name: str, key: str | None = None) -> dict:
    job = training(name, 1)
    return svc.mutate("submit", {"job": job}, lambda c: c.submit(job), key=key)


def in_threads(*calls):
    """Run each call in its own thread; (threads, answers by position)."""
    out: dict[int, object] = {}

    def run(k, f):
        try:
            out[k] = f()
        except Exception as e:  # noqa: BLE001 - the test reads it
            out[k] = e

    ts = [threading.Thread(target=run, args=(k, f)) for k, f in enumerate(calls)]
    for t in ts:
        t.start()
    return ts, out


def wait_until(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_operations_queued_behind_a_commit_are_written_together_and_answered_after(tmp_path):
    path = str(tmp_path / "state.db")
    svc = started(path)
    rev0, commits0 = svc.revision, svc.commits
    # a commit in progress: the flush lock held (as while a batch is written)
    svc._flush_lock.acquire()
    ts, out = in_threads(*(lambda k=k: submit(svc, f"j{k}") for k in range(3)))
    # all three applied in memory (the state's lock is free: not held during a write) ...
    wait_until(lambda: svc.revision == rev0 + 3)
    time.sleep(0.05)
    # ... and none answered, none written
    assert out == {} and all(t.is_alive() for t in ts)
    assert svc.store.revision == rev0 and svc.store.events(rev0) == []
    svc._flush_lock.release()
    for t in ts:
        t.join(10)
    answers = sorted(d["revision"] for d in out.values())
    assert answers == [rev0 + 1, rev0 + 2, rev0 + 3]
    # one transaction for the three, every event in revision order
    assert svc.commits == commits0 + 1
    evs = svc.store.events(rev0)
    assert [e["revision"] for e in evs] == answers and [e["op"] for e in evs] == ["submit"] * 3
    # a release and a submit of the same name again, in one batch: the job's row follows
    svc._flush_lock.acquire()
    ts, out = in_threads(lambda: svc.mutate("release", {"name": "j1"}, lambda c: c.release("j1")))
    wait_until(lambda: svc.revision == rev0 + 4)
    ts2, out2 = in_threads(lambda: submit(svc, "j1"))
    wait_until(lambda: svc.revision == rev0 + 5)
    svc._flush_lock.release()
    for t in ts + ts2:
        t.join(10)
    assert svc.commits == commits0 + 2 and svc.store.revision == rev0 + 5
    snap = canonical(svc)
    svc.close()
    again = started(path)
    assert again.revision == rev0 + 5 and canonical(again) == snap
    # start order kept: j1 submitted again runs after j0 and j2
    assert list(again.cluster.jobs) == ["j0", "j2", "j1"]
    again.close()


def test_a_failed_group_commit_fails_every_queued_operation_and_loses_no_acknowledged_one(
    tmp_path, monkeypatch
):
    path = str(tmp_path / "state.db")
    svc = started(path)
    assert submit(svc, "kept")["placed"]
    acked, rev = canonical(svc), svc.revision
    svc._flush_lock.acquire()
    ts, out = in_threads(*(lambda k=k: submit(svc, f"lost{k}") for k in range(2)))
    wait_until(lambda: svc.revision == rev + 2)

    def broken(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(svc.store, "commit_many", broken)
    svc._flush_lock.release()
    for t in ts:
        t.join(10)
    # neither is acknowledged: both get 503, nothing of them written
    assert all(isinstance(e, ServiceError) and e.status == 503 for e in out.values()), out
    assert all("nothing was committed" in str(e) for e in out.values())
    monkeypatch.undo()
    # the service rebuilds from the store: the acknowledged state, its revision
    assert svc.wait_ready(30)
    assert svc.revision == rev and canonical(svc) == acked
    assert submit(svc, "after")["revision"] == rev + 1
    svc.close()
    again = started(path)
    assert set(again.cluster.jobs) == {"kept", "after"} and again.revision == rev + 1
    again.close()


def test_a_retry_of_a_queued_operation_gets_its_answer_once_written(tmp_path):
    path = str(tmp_path / "state.db")
    svc = started(path)
    rev0 = svc.revision
    svc._flush_lock.acquire()
    ts, out = in_threads(lambda: submit(svc, "a", key="k1"))
    wait_until(lambda: svc.revision == rev0 + 1)
    # the same key again while the first is queued: the recorded answer, not a second job
    ts2, out2 = in_threads(lambda: submit(svc, "a", key="k1"))
    time.sleep(0.05)
    assert out2 == {} and ts2[0].is_alive()  # not answered before the write
    svc._flush_lock.release()
    for t in ts + ts2:
        t.join(10)
    assert out[0]["revision"] == out2[0]["revision"] == rev0 + 1 and out2[0]["replayed"]
    assert svc.revision == rev0 + 1 and len(svc.store.events(rev0)) == 1
    svc.close()


def reads_while_a_submit_is_queued(tmp_path, *paths: str) -> tuple[int, list, Service]:
    """Submit job "a" while the group commit is held back (queued, not written), then GET
    each of `paths` (a path, or (path, params)); checks that no read is answered before the
    submit is written. (revision before the submit, the responses in order, the service)."""
    from servers import uvicorn_thread

    httpx = pytest.importorskip("httpx")
    from placer.service import create_app

    svc = started(str(tmp_path / "state.db"))
    with uvicorn_thread(create_app(svc)) as url:
        rev0 = svc.revision
        svc._flush_lock.acquire()
        ts, out = in_threads(lambda: submit(svc, "a"))
        wait_until(lambda: svc.revision == rev0 + 1)
        gets = [(p, None) if isinstance(p, str) else p for p in paths]
        ts2, out2 = in_threads(
            *(lambda p=p, q=q: httpx.get(url + p, params=q, timeout=30) for p, q in gets)
        )
        time.sleep(0.1)
        assert out2 == {}  # they saw job a: not answered before a is written
        svc._flush_lock.release()
        for t in ts + ts2:
            t.join(10)
    return rev0, [out2[k] for k in range(len(paths))], svc


def test_a_read_is_answered_once_what_it_saw_is_written(tmp_path):
    rev0, (r,), svc = reads_while_a_submit_is_queued(tmp_path, "/jobs")
    assert r.status_code == 200 and r.json()["jobs"] == {"a": 1}
    assert r.headers["etag"] == f'"{rev0 + 1}"' and svc.store.revision == rev0 + 1
    svc.close()


def test_health_and_events_report_a_revision_that_is_on_disk(tmp_path):
    """/health and /events answered with the in-memory revision, which a queued (not yet
    written) operation had already moved: a probe could see a revision that a crash then
    took back. They now wait, like the other reads, until it is written."""
    rev0, (health, events), svc = reads_while_a_submit_is_queued(
        tmp_path, "/health", ("/events", {"since": 0})
    )
    health, events = health.json(), events.json()
    assert health["status"] == "ok" and health["revision"] == rev0 + 1
    after = [e for e in events["events"] if e["revision"] > rev0]
    assert events["revision"] == rev0 + 1 and len(after) == 1
    assert svc.store.revision == rev0 + 1
    svc.close()


@pytest.mark.parametrize("where", ["on_the_plan", "elsewhere"])
def test_a_bind_between_the_solve_and_the_merge_is_rechecked(tmp_path, where):
    # a job bound after the solve's snapshot, before the merge: on a GPU the plan gives a job,
    # the replan is refused before merging (replan.overlaps) and nothing else changes; on
    # other GPUs the plan is merged around it and applied. Either way the answer comes once
    # written, and a restart gives the same state
    from placer.live.replan import IndexedPlacement

    inst = placer.load_instance(one_site(nodes=6, gpus_per_node=2))
    path = str(tmp_path / "state.db")
    svc = started(path, inst)
    spread = ["a/node0/gpu0", "a/node1/gpu0"]  # a slow all-reduce: a replan gathers it
    job_a = training("a", 2, value=50)
    svc.mutate("bind", {}, lambda c: c.start(job_a, spread))
    run, seen = svc.replan_worker.run, {}

    def solve_then_bind(task, deadline):
        res = run(task, deadline)
        pl: IndexedPlacement = res["placement"]
        planned = {inst.index.gpu_id(int(i)) for g in pl.gpus if g is not None for i in g}
        held = {g for n in svc.cluster.jobs for g in svc.cluster.job_gpus(n)}
        every = {inst.index.gpu_id(i) for i in range(inst.index.n_gpus)}
        free = sorted(planned - held if where == "on_the_plan" else every - planned - held)
        late = training("late", 1)
        seen["bind"] = svc.mutate("bind", {}, lambda c: c.start(late, free[:1]))
        return res

    svc.replan_worker.run = solve_then_bind
    rev0 = svc.revision
    d = svc.replan({"time_limit": 5, "solver": "greedy", "seed": 0})
    assert seen["bind"]["placed"] and seen["bind"]["revision"] == rev0 + 1
    if where == "on_the_plan":
        assert d["applied"] is False and d["revision"] == rev0 + 1
        assert "held by 'late', which started after the state" in d["reason"]
        assert svc.cluster.job_gpus("a") == spread
    else:
        assert d["applied"] and d["moved"] and d["revision"] == rev0 + 2
        assert svc.cluster.job_gpus("a") != spread and "late" in svc.cluster.jobs
    assert svc.cluster.check() == [] and svc.store.revision == svc.revision
    snap = canonical(svc)
    svc.close()
    again = started(path, inst)
    assert canonical(again) == snap
    again.close()
