"""The Cluster's public state API used by `placer serve`: typed errors, action causes, public
readers, `state()` / `resume()` (exact rebuild), `failed=`, `replan_instance()` + `adopt()`
(a plan solved elsewhere while the cluster moved on).

Property: after any sequence of operations, ``Cluster.resume(instance, c.state())`` has the
same canonical snapshot and behaves the same on the operations that follow.
"""

from __future__ import annotations

import copy
import json

import pytest
from builders import one_site, training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer import Cluster
from placer.cluster import ActionCause
from placer.errors import ConflictError, PlacementError, UnknownJobError, UsageError

if __package__:
    from .strategies import feasible_case, hardware_items, rounded
else:
    from strategies import feasible_case, hardware_items, rounded

HYP = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def canonical(c: Cluster) -> str:
    return json.dumps(c.snapshot(), sort_keys=True)


def leased() -> dict:
    d = one_site(nodes=4, gpus_per_node=2)
    d["leases"] = {
        "level": "node",
        "offers": [
            {
                "name": "o",
                "price_per_gpu_hour": 1.0,
                "min_gpus": 2,
                "max_gpus": 3,
                "committed_blocks": ["a/node3"],
            }
        ],
    }
    return d


def test_typed_errors_and_causes():
    c = Cluster(placer.load_instance(one_site(nodes=4, gpus_per_node=2)))
    d = c.submit(training("a", 2))
    assert d.actions[0].cause is ActionCause.SUBMIT
    assert d.to_dict()["actions"][0]["cause"] == "submit"
    with pytest.raises(ConflictError, match="already running"):
        c.submit(training("a", 1))
    with pytest.raises(UnknownJobError, match="no running job 'zz'"):
        c.release("zz")
    assert c.restore(["a/node0"]).reason == "items: none of them is failed: nothing changed"
    # still UsageErrors (library callers that catch those keep working)
    assert issubclass(UnknownJobError, UsageError) and issubclass(ConflictError, UsageError)
    assert c.release("a").actions[0].cause is ActionCause.RELEASED
    b = c.start(training("b", 1), ["a/node1/gpu0"])
    assert b.actions[0].cause is ActionCause.BIND
    ch = c.fail(["a/node1"])
    assert [a.cause for a in ch.actions] == [ActionCause.REPAIR]


def test_public_readers():
    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    c = Cluster(inst)
    c.submit(training("a", 2, preemptible=False))
    assert c.instance is inst
    assert c.job_spec("a").preemptible is False
    doc = c.job_document("a")
    assert doc["current"] == c.job_gpus("a") and doc["name"] == "a"
    assert doc in c.snapshot()[0]["jobs"]
    assert c.available_gpus == 8
    c.fail(["a/node3"])
    assert c.available_gpus == 6 and not c.index.available[c.index.gpu_indices(["a/node3/gpu0"])][0]
    with pytest.raises(UnknownJobError):
        c.job_document("nope")


def test_resume_rebuilds_failures_leases_and_cover_exactly():
    inst = placer.load_instance(leased())
    c = Cluster(inst, verify="full")
    c.submit(training("a", 2))
    ch = c.fail(["a/node3/gpu1"])  # the offer takes another node to keep min_gpus 2
    assert any(a.kind == "lease" for a in ch.actions)
    state = json.loads(json.dumps(c.state()))
    assert state["failed"] == ["a/node3/gpu1"] and state["leases"][0]["cover"]
    r = Cluster.resume(inst, state, verify="full")
    assert canonical(r) == canonical(c) and r.objective == c.objective
    assert r.failed == c.failed and r.lease_cover == c.lease_cover
    # the same behaviour after: restoring gives back the cover block in both
    assert c.restore(["a/node3/gpu1"]).to_dict() | {"seconds": 0} == r.restore(
        ["a/node3/gpu1"]
    ).to_dict() | {"seconds": 0}
    assert canonical(r) == canonical(c)


def test_resume_refuses_a_state_that_does_not_fit_with_its_location():
    inst = placer.load_instance(one_site(nodes=2, gpus_per_node=2))
    c = Cluster(inst)
    c.submit(training("a", 2))
    state = c.state()
    state["jobs"][0]["current"] = ["a/node0/gpu0", "a/node9/gpu0"]
    with pytest.raises(PlacementError):
        Cluster.resume(inst, state)
    state = c.state()
    state["jobs"][0]["tp"] = 0
    with pytest.raises(PlacementError, match=r"state\.jobs\[0\]\.tp"):
        Cluster.resume(inst, state)
    state = c.state()
    state["failed"] = [state["jobs"][0]["current"][0]]  # a running job on failed hardware
    with pytest.raises(PlacementError):
        Cluster.resume(inst, state)
    with pytest.raises(UsageError, match=r"failed\[0\]: unknown"):
        Cluster(inst, failed=["a/node7"])


def test_adopt_merges_a_plan_made_before_the_state_moved():
    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    c.submit(training("a", 2, min_dp=1))
    doc = c.replan_instance(pending=[training("b", 2, value=3)])
    with pytest.raises(ConflictError, match=r"pending\[0\]\.name"):
        c.replan_instance(pending=[training("a", 1)])
    res = placer.solve(placer.load_instance(doc), solver="greedy", time_limit=5)
    # meanwhile: a new job arrives, nothing else changes
    c.submit(training("late", 1))
    late = c.job_gpus("late")
    plan = res.placement.model_dump(mode="json")
    taken = {g for pj in plan["jobs"] for g in pj["gpus"]}
    if taken & set(late):  # the plan uses the late job's GPUs: refused, nothing changes
        before = canonical(c)
        with pytest.raises(PlacementError, match="against the live state"):
            c.adopt(plan, pending=[training("b", 2, value=3)])
        assert canonical(c) == before
    else:
        ch = c.adopt(plan, pending=[training("b", 2, value=3)])
        assert "b" in c.jobs and c.job_gpus("late") == late
        assert all(a.cause is ActionCause.REPLAN for a in ch.actions)
    assert c.check() == []


def test_adopt_refuses_moving_pinned_and_dropping_musts_and_ignores_released_jobs():
    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    c.submit(training("p", 1))
    c.submit(training("m", 1, preemptible=False))
    c.submit(training("gone", 1))
    snap = c.snapshot()[1]
    c.release("gone")
    # pin p by rebuilding with the flag (pinned jobs come from the instance)
    plan = copy.deepcopy(snap)
    for pj in plan["jobs"]:
        if pj["name"] == "m":
            pj["units"], pj["gpus"] = 0, []
    with pytest.raises(PlacementError, match="'m' is not preemptible"):
        c.adopt(plan)
    plan = copy.deepcopy(snap)  # 'gone' is ignored, the rest unchanged: nothing to gain
    ch = c.adopt(plan)
    assert ch.actions == [] and "kept the live plan" in ch.reason
    bad = copy.deepcopy(snap)
    bad["jobs"][0]["gpus"] = ["a/node0/gpu9"]
    with pytest.raises(PlacementError, match=r"placement\.jobs\[0\]\.gpus\[0\]"):
        c.adopt(bad)


def _apply(c: Cluster, op: tuple) -> object:
    kind, arg = op
    try:
        if kind == "submit":
            return rounded(c.submit(copy.deepcopy(arg[0]), allow_moves=arg[1]).to_dict())
        if kind == "release":
            return rounded(c.release(arg).to_dict()) if arg in c.jobs else None
        if kind == "fail":
            return rounded(c.fail([arg]).to_dict())
        return rounded(c.restore([arg]).to_dict())
    except UsageError as e:
        return str(e)


@settings(max_examples=30, **HYP)
@given(case=feasible_case(), data=st.data())
def test_resume_equals_the_live_cluster_after_any_operations(case, data):
    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    c = Cluster(inst, pl_d)
    arrivals = [copy.deepcopy(j) for j in inst_d["jobs"]]
    for j in arrivals:
        for k in ("current", "pinned"):
            j.pop(k, None)
    items = hardware_items(inst_d)

    def draw_op(step: int) -> tuple:
        kind = data.draw(st.sampled_from(["submit", "release", "fail", "restore"]))
        if kind == "submit" and arrivals:
            job = copy.deepcopy(data.draw(st.sampled_from(arrivals)))
            job["name"] = f"{job['name']}-{step}"
            return kind, (job, data.draw(st.integers(0, 2)))
        if kind == "release" and c.jobs:
            return kind, data.draw(st.sampled_from(sorted(c.jobs)))
        if kind in ("fail", "restore") and items:
            return kind, data.draw(st.sampled_from(items))
        return "release", "none"

    for step in range(data.draw(st.integers(0, 5))):
        _apply(c, draw_op(step))
    r = Cluster.resume(inst, json.loads(json.dumps(c.state())))
    assert canonical(r) == canonical(c)
    assert r.objective == pytest.approx(c.objective, rel=1e-9, abs=1e-9)
    for step in range(5, 5 + data.draw(st.integers(1, 4))):
        op = draw_op(step)
        assert _apply(r, op) == _apply(c, op)
        assert canonical(r) == canonical(c)


def test_state_and_resume_keep_each_jobs_plan():
    plans = [{"name": "slow", "tp": 1, "dp": 4}, {"name": "fast", "tp": 2, "dp": 2, "value": 2}]
    job = {"name": "p", "kind": "training", "compute_ms": 100, "value": 1, "plans": plans}
    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    assert c.submit(job).plan == "fast"
    doc = c.job_document("p")
    assert doc["current_plan"] == "fast" and doc["plans"] == plans
    state = json.loads(json.dumps(c.state()))
    r = Cluster.resume(inst, state, verify="full")
    assert r.job_plan("p") == "fast" and canonical(r) == canonical(c)
    bad = copy.deepcopy(state)
    bad["jobs"][0]["current_plan"] = "nope"
    with pytest.raises(PlacementError, match=r"state\.jobs\[0\]\.current_plan"):
        Cluster.resume(inst, bad)
    gpus = c.job_gpus("p")
    with pytest.raises(PlacementError, match=r"placement\.jobs\[0\]\.plan.*no plan 'zzz'"):
        c.adopt(
            {
                "instance": inst.name,
                "jobs": [{"name": "p", "units": 2, "plan": "zzz", "gpus": gpus}],
            }
        )
    # the same GPUs under the other plan: a move (charged), and worth less here: not adopted
    ch = c.adopt(
        {"instance": inst.name, "jobs": [{"name": "p", "units": 4, "plan": "slow", "gpus": gpus}]}
    )
    assert ch.actions == [] and "kept the live plan" in ch.reason and c.job_plan("p") == "fast"


def test_a_placement_is_checked_whole_once_and_refused_with_its_rule():
    # a cluster built from a placement is checked by the checker once (not again after), with
    # and without failed hardware: a GPU held twice is refused either way
    inst = placer.load_instance(one_site(nodes=2, jobs=[training("a", 1), training("b", 1)]))
    pl = {
        "instance": inst.name,
        "jobs": [
            {"name": "a", "units": 1, "gpus": ["a/node0/gpu0"]},
            {"name": "b", "units": 1, "gpus": ["a/node0/gpu0"]},
        ],
    }
    with pytest.raises(PlacementError, match="rule 1"):
        Cluster(inst, pl)
    with pytest.raises(PlacementError, match="rule 1"):
        Cluster(inst, pl, failed=["a/node1"])
    pl["jobs"][1]["gpus"] = ["a/node0/gpu1"]
    c = Cluster(inst, pl, failed=["a/node1"])
    assert c.jobs == {"a": 1, "b": 1} and c.check() == []
