"""The live cluster (placer.Cluster): submit, release, fail, restore, replan, snapshot.

Property: any sequence of submit, release, fail and restore keeps the state feasible (the
package's checker and the independent reference checker accept every snapshot), the
snapshot round-trips through load_instance and scores to the live objective.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from builders import FABRIC_SITE_RACK_NODE, one_site, training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer import Cluster
from placer.errors import (
    ArgumentTypeError,
    InstanceError,
    PlacementError,
    PlacementWarning,
    UsageError,
)

if __package__:
    from .reference import reference_check
    from .strategies import as_arrivals, feasible_case, hardware_items
else:
    from reference import reference_check
    from strategies import as_arrivals, feasible_case, hardware_items

HYP = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_feasible(c: Cluster) -> tuple[dict, dict]:
    inst_d, pl_d = c.snapshot()
    assert reference_check(copy.deepcopy(inst_d), copy.deepcopy(pl_d)) == []
    inst = placer.load_instance(copy.deepcopy(inst_d))
    assert placer.check(inst, pl_d) == []
    s = placer.score(inst, pl_d)
    assert s.objective == pytest.approx(c.objective, rel=1e-9, abs=1e-6)
    return inst_d, pl_d


def two_sites() -> dict:
    """Two sites (a, b) of 2 racks x 2 nodes x 2 GPUs, one WAN link, a third site c
    reachable only through b (so cutting b-c cuts c off)."""
    return {
        "name": "two-sites",
        "horizon_hours": 10,
        "gpu_types": {"H100": {"power_kW": 1.0}},
        "topology": {
            "levels": ["site", "rack", "node"],
            "fabric": copy.deepcopy(FABRIC_SITE_RACK_NODE),
            "sites": [
                {
                    "name": s,
                    "gpu_type": "H100",
                    "gpus_per_node": 2,
                    "domains": [{"count": 2, "shape": [2]}],
                }
                for s in ("a", "b", "c")
            ],
            "wan": [
                {"between": ["a", "b"], "latency_us": 500, "bandwidth_GBps": 50},
                {"between": ["b", "c"], "latency_us": 500, "bandwidth_GBps": 50},
            ],
        },
        "jobs": [],
    }


# ------------------------------------------------------------------ submit
def test_submit_places_a_job_around_what_runs_and_reports_the_change():
    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    d = c.submit(training("a", 2, tp=2))
    assert d.placed and d.units == 2 and len(d.gpus) == 4
    assert d.delta == pytest.approx(c.objective)
    before = c.objective
    d2 = c.submit(training("b", 2, tp=2))
    assert d2.placed and not set(d2.gpus) & set(d.gpus)
    assert d2.delta == pytest.approx(c.objective - before)
    assert_feasible(c)


def test_a_job_that_does_not_fit_is_data_with_a_true_reason():
    inst = placer.load_instance(one_site(nodes=2, gpus_per_node=2))
    c = Cluster(inst)
    assert c.submit(training("a", 4)).placed
    d = c.submit(training("b", 2))
    assert not d.placed and d.units == 0 and d.gpus == []
    assert "held by job 'a'" in d.reason
    assert c.jobs == {"a": 4}


def test_allow_moves_displaces_lower_value_preemptible_work_and_charges_migration():
    inst = placer.load_instance(one_site(nodes=2, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    c.submit(training("low", 4, migration_cost=3))
    assert not c.submit(training("high", 4, value=10)).placed
    assert not c.submit(training("high", 4, value=10), allow_moves=1, max_migration_cost=1).placed
    d = c.submit(training("high", 4, value=10), allow_moves=1)
    assert d.placed and d.cost == 3
    assert [(a.kind, a.job) for a in d.actions] == [("start", "high"), ("stop", "low")]
    assert c.jobs == {"high": 4}
    assert_feasible(c)


def test_submit_refuses_bad_jobs_with_their_location():
    c = Cluster(placer.load_instance(one_site()))
    with pytest.raises(InstanceError, match=r"job\.tp"):
        c.submit(training("x", 1, tp=0))
    with pytest.raises(InstanceError, match=r"job\.scope"):
        c.submit(training("x", 1, scope={"dp": "galaxy"}))
    d = c.submit(training("x", 1, gpu_types=["Z9"]))
    assert not d.placed and "no site has a GPU of type Z9" in d.reason
    c.submit(training("x", 1))
    with pytest.raises(UsageError, match="already running"):
        c.submit(training("x", 1))
    with pytest.raises(UsageError, match="allow_moves"):
        c.submit(training("y", 1), allow_moves=-1)


# ------------------------------------------------------------------ release
def test_release_frees_the_gpus_and_unknown_names_are_refused():
    c = Cluster(placer.load_instance(one_site(nodes=2, gpus_per_node=2)))
    c.submit(training("a", 4))
    ch = c.release("a")
    assert ch.delta < 0 and c.jobs == {} and c.free_gpus == 4
    with pytest.raises(UsageError, match="no running job 'a'"):
        c.release("a")


# ------------------------------------------------------------------ fail / restore
def test_a_node_failure_replaces_only_the_broken_unit_inside_the_same_domain():
    d = two_sites()
    for site in d["topology"]["sites"]:
        site["domains"][0]["shape"] = [3]  # racks of 3 nodes
    inst = placer.load_instance(d)
    c = Cluster(inst, verify="full")
    dec = c.submit(training("t", 2, tp=2, scope={"dp": "rack"}, preemptible=False))
    assert dec.placed
    kept_unit = dec.gpus[2:]
    node = dec.gpus[0].rsplit("/", 1)[0]
    ch = c.fail([node])
    (act,) = ch.actions
    assert act.kind == "move" and act.job == "t"
    new = c.job_gpus("t")
    assert new[2:] == kept_unit  # the healthy unit stays, same rank positions
    rack = node.rsplit("/", 1)[0]
    assert all(g.startswith(rack + "/") for g in new)  # same rack
    assert_feasible(c)
    assert c.restore([node]).actions == []
    assert_feasible(c)


def test_a_must_job_stops_preemptible_work_when_nothing_else_fits():
    inst = placer.load_instance(one_site(nodes=3, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    c.submit(training("must", 2, preemptible=False, value=1))
    c.submit(training("cheap", 2, value=0.5))
    c.submit(training("other", 2, value=2))
    node = c.job_gpus("must")[0].rsplit("/", 1)[0]
    ch = c.fail([node])
    assert "must" in c.jobs and ch.lost == []
    assert {(a.kind, a.job) for a in ch.actions} == {("move", "must"), ("stop", "cheap")}
    assert_feasible(c)


def test_a_wan_cut_repairs_jobs_across_the_cut_site():
    inst = placer.load_instance(two_sites())
    c = Cluster(inst, verify="full")
    # 3 sites x 8 GPUs; a job over all three sites (dp scope cluster)
    d = c.submit(training("wide", 24, min_dp=8, scope={"dp": "cluster"}, comm={"dp_MB": 10}))
    assert d.placed and {g.split("/")[0] for g in d.gpus} == {"a", "b", "c"}
    ch = c.fail([["b", "c"]])
    assert [a.kind for a in ch.actions] == ["move"]
    sites = {g.split("/")[0] for g in c.job_gpus("wide")}
    assert sites in ({"a", "b"}, {"c"})
    inst_d, _ = assert_feasible(c)
    assert [w["between"] for w in inst_d["topology"]["wan"]] == [["a", "b"]]
    c.restore([["b", "c"]])
    assert len(c.snapshot()[0]["topology"]["wan"]) == 2
    assert_feasible(c)


def test_fail_refuses_unknown_items_and_names_them():
    c = Cluster(placer.load_instance(two_sites()))
    with pytest.raises(UsageError, match=r"items\[1\]: unknown"):
        c.fail(["a/rack0", "a/rack9"])
    with pytest.raises(UsageError, match=r"items\[0\]: no WAN link"):
        c.fail([["a", "c"]])
    with pytest.raises(UsageError, match=r"items\[0\]: unknown"):
        c.restore(["a/rack9"])


def test_fail_and_restore_are_both_idempotent_and_say_so():
    """A scheduler's node events come at least once: a second `fail` of failed hardware and
    a `restore` of hardware that is not failed both change nothing and say so (a restore
    used to raise ConflictError where a second fail passed silently)."""
    c = Cluster(placer.load_instance(two_sites()), verify="full")
    c.submit(training("x", 2))
    ch = c.fail(["a/rack0", ["a", "b"]])
    assert ch.reason is None and ch.applied
    snap, failed = c.snapshot(), c.failed
    for items in (["a/rack0"], ["a/rack0/node1/gpu1", ["b", "a"]]):
        ch = c.fail(items)
        assert ch.actions == [] and ch.delta == 0
        assert ch.reason == "items: all of them are failed already: nothing changed"
        assert ch.applied is False
        assert c.snapshot() == snap and c.failed == failed
    assert c.fail(["a/rack0", "b/rack1"]).reason is None  # a new item among them acts
    assert "b/rack1" in c.failed
    c.restore(["a/rack0", "b/rack1", ["a", "b"]])
    snap = c.snapshot()
    for items in (["a/rack0"], ["b/rack0", ["a", "b"]]):  # restored already, never failed
        ch = c.restore(items)
        assert ch.actions == [] and ch.delta == 0
        assert ch.reason == "items: none of them is failed: nothing changed"
        assert ch.applied is False
        assert c.snapshot() == snap and c.failed == []
    assert c.check() == []


def test_failed_hardware_is_in_the_snapshot_and_leases_report_lost_gpus():
    d = one_site(nodes=4, gpus_per_node=2)
    d["topology"]["levels"] = ["site", "node"]
    d["leases"] = {
        "level": "node",
        "offers": [
            {"name": "o", "price_per_gpu_hour": 1.0, "min_gpus": 2, "committed_blocks": ["a/node3"]}
        ],
    }
    c = Cluster(placer.load_instance(d), verify="full")
    ch = c.fail(["a/node3/gpu1"])
    (act,) = ch.actions
    assert act.kind == "lease" and act.offer == "o"
    inst_d, _ = assert_feasible(c)
    assert inst_d["topology"]["unavailable"] == ["a/node3/gpu1"]
    # the offer took another whole node to keep its min_gpus
    assert (
        sorted(inst_d["leases"]["offers"][0]["committed_blocks"])[0] == "a/node0"
        or len(inst_d["leases"]["offers"][0]["committed_blocks"]) == 2
    )


def test_a_cluster_from_a_solve_keeps_its_placement():
    inst = placer.load_instance("instances/tiny.yaml")
    res = placer.solve(inst, solver="greedy", time_limit=5)
    c = Cluster(inst, res)
    assert c.objective == pytest.approx(res.objective - 0.0, rel=1e-9) or c.objective >= 0
    assert_feasible(c)


def test_a_placement_of_another_instance_is_a_warning_not_an_error():
    """Cluster(instance, placement) compares the placement's `instance` with the instance's
    name as placer.check does: a PlacementWarning naming both (at the caller's line), and
    the cluster starts as from the same placement; nothing for the same name or none."""
    inst = placer.load_instance("instances/tiny.yaml")
    res = placer.solve(inst, solver="greedy", time_limit=5)
    d = res.placement.model_dump(mode="json", exclude_none=True)
    assert d["instance"] == inst.name == "tiny"
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlacementWarning)
        same = Cluster(inst, res)
        for name in ("tiny", None):
            Cluster(inst, {k: v for k, v in dict(d, instance=name).items() if v is not None})
    want = "the placement names instance 'tiny-old', not this instance 'tiny'"
    with pytest.warns(PlacementWarning, match=want) as rec:
        c = Cluster(inst, dict(d, instance="tiny-old"))
    assert len(rec) == 1 and rec[0].filename == __file__
    assert c.jobs == same.jobs and c.snapshot() == same.snapshot()
    # a placement that does not fit is refused as before (the warning said why)
    bad = copy.deepcopy(dict(d, instance="tiny-old"))
    bad["jobs"][1]["gpus"] = bad["jobs"][0]["gpus"][: len(bad["jobs"][1]["gpus"])]
    with pytest.warns(PlacementWarning, match=want), pytest.raises(PlacementError):
        Cluster(inst, bad)


def test_replan_adopts_a_better_plan_only():
    inst = placer.load_instance(one_site(nodes=4, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    c.submit(training("a", 4, min_dp=2))
    before = c.objective
    ch = c.replan(time_limit=5, solver="greedy", pending=[training("b", 4, value=3)])
    assert c.objective >= before
    assert any(a.kind == "start" and a.job == "b" for a in ch.actions)
    assert_feasible(c)
    ch2 = c.replan(time_limit=5, solver="greedy")
    assert ch2.actions == [] and "kept the live plan" in ch2.reason and ch2.applied is False
    assert ch.applied


# ------------------------------------------------------------------ property


@settings(max_examples=40, **HYP)
@given(case=feasible_case(), data=st.data())
def test_any_sequence_of_operations_keeps_the_state_feasible(case, data):
    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    c = Cluster(inst, pl_d, verify="full")
    assert_feasible(c)
    arrivals = as_arrivals(inst_d)
    items = hardware_items(inst_d)
    failed: list = []
    for step in range(data.draw(st.integers(1, 6), label="steps")):
        op = data.draw(st.sampled_from(["submit", "release", "fail", "restore"]), label="op")
        if op == "submit" and arrivals:
            job = copy.deepcopy(data.draw(st.sampled_from(arrivals), label="job"))
            job["name"] = f"{job['name']}-{step}"
            c.submit(job, allow_moves=data.draw(st.integers(0, 2), label="moves"))
        elif op == "release" and c.jobs:
            c.release(data.draw(st.sampled_from(sorted(c.jobs)), label="name"))
        elif op == "fail" and items:
            it = data.draw(st.sampled_from(items), label="item")
            ch = c.fail([it])
            failed.append(it)
            for name in ch.lost:
                assert name not in c.jobs
        elif op == "restore" and failed:
            it = failed.pop(data.draw(st.integers(0, len(failed) - 1), label="which"))
            try:
                c.restore([it])
            except UsageError:
                pass  # restored already by an overlapping item
        inst_s, _ = assert_feasible(c)
        for name in c.jobs:
            assert name in {j["name"] for j in inst_s["jobs"]}
    # non-preemptible running jobs are never silently dropped: they run or were reported lost
    assert np.isfinite(c.objective)


# ------------------------------------------------------------------ plans (SPEC v3)
def with_plans(name: str, plans: list[dict], **kw) -> dict:
    """A training job whose shape comes from its plans."""
    return {"name": name, "kind": "training", "compute_ms": 100, "value": 1, "plans": plans, **kw}


TP2_TP1 = [{"name": "tp2", "tp": 2, "dp": 2, "value": 3}, {"name": "tp1", "tp": 1, "dp": 4}]


def test_submit_chooses_the_plan_with_the_gpus_and_the_decision_reports_it():
    # one GPU taken on every node: the better plan (tp 2 inside a node) fits nowhere now
    half = training("half", 4, current=[f"a/node{n}/gpu0" for n in range(4)])
    c = Cluster(
        placer.load_instance(one_site(nodes=4, gpus_per_node=2, jobs=[half])), verify="full"
    )
    d = c.submit(with_plans("p", TP2_TP1))
    assert d.placed and d.plan == "tp1" and d.units == 4
    assert d.gpus == [f"a/node{n}/gpu1" for n in range(4)]
    assert d.to_dict()["plan"] == "tp1" and d.actions[0].to_dict()["plan"] == "tp1"
    assert c.job_plan("p") == "tp1" and c.job_plan("half") is None
    inst_d, pl_d = assert_feasible(c)
    (doc,) = [j for j in inst_d["jobs"] if j["name"] == "p"]
    assert doc["current_plan"] == "tp1" and doc["plans"] == TP2_TP1  # plans as given
    (entry,) = [e for e in pl_d["jobs"] if e["name"] == "p"]
    assert entry["plan"] == "tp1" and "plan" not in pl_d["jobs"][0]
    assert c.score().jobs[1]["plan"] == "tp1"
    # with room for both, the plan worth more: tp2 (value 3)
    c.release("half")
    c.release("p")
    d = c.submit(with_plans("q", TP2_TP1))
    assert d.placed and d.plan == "tp2" and d.units == 2 and c.jobs["q"] == 2
    assert_feasible(c)


def test_a_job_with_plans_that_does_not_fit_gets_each_plans_reason():
    c = Cluster(placer.load_instance(one_site(nodes=2, gpus_per_node=2)))
    assert c.submit(training("a", 4)).placed
    plans = [{"name": "z9", "dp": 1, "gpu_types": ["Z9"]}, {"name": "h100", "dp": 2}]
    d = c.submit(with_plans("b", plans))
    assert not d.placed and d.plan is None and d.to_dict()["plan"] is None
    assert d.reason.startswith("no plan fits: plan 'z9': ")
    assert "no site has a GPU of type Z9" in d.reason
    assert "plan 'h100': " in d.reason and "held by job 'a'" in d.reason
    # the same sentence under every plan is said once
    same = c.submit(with_plans("c", [{"name": "x", "dp": 2}, {"name": "y", "dp": 2, "value": 2}]))
    assert same.reason.startswith("under every plan: needs 2 H100 GPUs")


def test_allow_moves_may_put_a_victim_back_under_another_plan():
    victim = with_plans(
        "v", [{"name": "wide", "dp": 4}, {"name": "narrow", "dp": 2}], migration_cost=1
    )
    inst = placer.load_instance(one_site(nodes=3, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    assert c.submit(victim).plan == "wide"  # 4 of the 6 GPUs
    d = c.submit(training("big", 4, value=5), allow_moves=1)
    assert d.placed and d.cost == 1
    (move,) = d.actions[1:]
    assert (move.kind, move.plan_before, move.plan, move.units) == ("move", "wide", "narrow", 2)
    assert c.job_plan("v") == "narrow"
    assert_feasible(c)


def test_start_binds_under_the_named_plan():
    c = Cluster(placer.load_instance(one_site(nodes=3, gpus_per_node=2)), verify="full")
    job = with_plans("p", TP2_TP1)
    two_nodes = ["a/node0/gpu0", "a/node0/gpu1", "a/node1/gpu0", "a/node1/gpu1"]
    with pytest.raises(UsageError, match=r"plan: job 'p' has plans \(tp2, tp1\): name the one"):
        c.start(job, two_nodes)
    with pytest.raises(UsageError, match="plan: job 'p' has no plan 'tp8'"):
        c.start(job, two_nodes, plan="tp8")
    with pytest.raises(UsageError, match="has no plans"):
        c.start(training("x", 1), two_nodes[:1], plan="tp1")
    with pytest.raises(ArgumentTypeError, match="plan: expected a plan name"):
        c.start(job, two_nodes, plan=2)
    with pytest.raises(UsageError, match="under plan 'tp2'"):  # 3 GPUs: no whole tp2 units
        c.start(job, two_nodes[:3], plan="tp2")
    d = c.start(job, two_nodes, plan="tp2")
    assert d.placed and d.plan == "tp2" and d.units == 2 and c.job_plan("p") == "tp2"
    one = c.start(with_plans("one", [{"name": "only", "dp": 1}]), ["a/node2/gpu0"])
    assert one.plan == "only"  # a single plan need not be named
    assert_feasible(c)


def running_with_plans(pinned: bool = False) -> dict:
    """A job running its slow plan on all 4 GPUs; its fast plan is worth twice as much."""
    job = with_plans(
        "r",
        [{"name": "slow", "tp": 1, "dp": 4}, {"name": "fast", "tp": 2, "dp": 2, "value": 2}],
        current=["a/node0/gpu0", "a/node0/gpu1", "a/node1/gpu0", "a/node1/gpu1"],
        current_plan="slow",
        migration_cost=1,
        pinned=pinned,
    )
    return one_site(nodes=2, gpus_per_node=2, jobs=[job])


def test_replan_may_change_a_running_jobs_plan_and_charges_the_move():
    c = Cluster(placer.load_instance(running_with_plans()), verify="full")
    assert c.job_plan("r") == "slow"
    before = c.objective
    ch = c.replan(time_limit=5, solver="greedy")
    (move,) = ch.actions
    assert (move.kind, move.plan_before, move.plan, move.cost) == ("move", "slow", "fast", 1.0)
    assert sorted(move.gpus) == sorted(running_with_plans()["jobs"][0]["current"])
    assert ch.cost == 1 and ch.delta == pytest.approx(c.objective - before - 1)
    assert c.job_plan("r") == "fast" and c.jobs == {"r": 2}
    inst_d, pl_d = assert_feasible(c)
    assert inst_d["jobs"][0]["current_plan"] == "fast" and pl_d["jobs"][0]["plan"] == "fast"
    # pinned: it keeps its plan as well as its GPUs (SPEC 3 rule 8)
    p = Cluster(placer.load_instance(running_with_plans(pinned=True)), verify="full")
    ch = p.replan(time_limit=5, solver="greedy")
    assert ch.actions == [] and p.job_plan("r") == "slow"


def test_a_repair_switches_plan_when_that_keeps_the_job_running():
    d = two_sites()
    d["topology"]["sites"] = d["topology"]["sites"][:1]
    d["topology"]["wan"] = []
    rack = [f"a/rack{r}/node{n}/gpu{g}" for r in (0, 1) for n in (0, 1) for g in (0, 1)]
    d["jobs"] = [
        training("filler", 4, current=rack[4:], preemptible=False),
        with_plans(
            "j",
            [
                {"name": "big", "tp": 2, "dp": 2, "scope": {"dp": "rack"}},
                {"name": "small", "tp": 2, "dp": 1},
            ],
            current=rack[:4],
            current_plan="big",
            migration_cost=5,
        ),
    ]
    c = Cluster(placer.load_instance(d), verify="full")
    ch = c.fail(["a/rack0/node1"])
    (move,) = ch.actions
    assert (move.kind, move.job, move.plan_before, move.plan) == ("move", "j", "big", "small")
    assert (move.units_before, move.units, move.cost) == (2, 1, 5.0)
    assert move.gpus == rack[:2] and "under plan 'small'" in move.reason
    assert c.job_plan("j") == "small" and ch.lost == []
    assert_feasible(c)


def test_a_cluster_keeps_the_plans_of_its_placement_and_of_current():
    inst_d = running_with_plans()
    inst_d["jobs"].append(with_plans("new", TP2_TP1))
    inst = placer.load_instance(inst_d)
    c = Cluster(inst)  # from `current`: the running job under its current_plan
    assert c.jobs == {"r": 4} and c.job_plan("r") == "slow"
    pl = {
        "instance": inst.name,
        "jobs": [{"name": "r", "units": 2, "plan": "fast", "gpus": inst_d["jobs"][0]["current"]}],
    }
    c = Cluster(inst, pl, verify="full")
    assert c.jobs == {"r": 2} and c.job_plan("r") == "fast"
    assert_feasible(c)
    with pytest.raises(PlacementError, match="names none"):
        Cluster(inst, {**pl, "jobs": [{**pl["jobs"][0], "plan": None}]})


def test_a_running_job_whose_current_breaks_a_rule_is_placed_afresh_under_any_plan():
    # its current plan's TP group (4 GPUs, scope node) cannot lie in a 2-GPU node
    job = with_plans(
        "r",
        [{"name": "tp4", "tp": 4, "dp": 1}, {"name": "tp2", "tp": 2, "dp": 2}],
        current=["a/node0/gpu0", "a/node0/gpu1", "a/node1/gpu0", "a/node1/gpu1"],
        current_plan="tp4",
    )
    c = Cluster(placer.load_instance(one_site(nodes=2, gpus_per_node=2, jobs=[job])))
    assert c.jobs == {"r": 2} and c.job_plan("r") == "tp2"
    inst_d, _ = assert_feasible(c)
    assert inst_d["jobs"][0]["current_plan"] == "tp2"


@pytest.mark.parametrize(
    "plans",
    [
        TP2_TP1,
        [{"name": "cheap", "dp": 2, "value": 0.1}, {"name": "dear", "tp": 2, "dp": 3}],
        [{"name": "dear", "tp": 2, "dp": 3}, {"name": "cheap", "dp": 2, "value": 0.1}],
        [
            {"name": "pp2", "pp": 2, "dp": 2, "microbatches": 4, "comm": {"pp_MB": 50}},
            {"name": "tp2", "tp": 2, "dp": 2, "comm": {"tp_MB": 50}},
            {"name": "dp4", "dp": 4, "comm": {"dp_MB": 50}},
        ],
    ],
)
def test_submit_takes_the_best_plan_as_each_plan_alone_would_score_it(plans):
    half = training("half", 2, current=["a/node0/gpu0", "a/node1/gpu0"])
    inst_d = one_site(nodes=4, gpus_per_node=2, jobs=[half])
    alone = []
    for p in plans:
        c = Cluster(placer.load_instance(inst_d))
        d = c.submit(with_plans("p", [p]))
        alone.append(d.delta if d.placed else -np.inf)
    c = Cluster(placer.load_instance(inst_d))
    d = c.submit(with_plans("p", plans))
    best = int(np.argmax(alone))  # the first of equal bests, as submit keeps
    assert d.placed and d.plan == plans[best]["name"]
    assert d.delta == pytest.approx(alone[best], rel=1e-12)
