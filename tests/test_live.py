"""The parts behind placer.Cluster (placer/live/): the live state's checkpoint and rollback,
the one transaction of every operation (any error rolls back), the one start/move/stop
diff, options returned as data, and the greedy's State shared rather than inherited."""

from __future__ import annotations

import json

import numpy as np
import pytest
from builders import one_site, training

import placer
import placer.cluster
from placer import Cluster
from placer.errors import SolverError, UsageError
from placer.live import admission, documents, leases, repair
from placer.live.results import ActionCause, job_action, moved
from placer.live.state import EMPTY, LiveState
from placer.solvers.decomposition.construct import State


def loaded() -> Cluster:
    """8 GPUs, three running jobs (one must stay), one offer leasing a node."""
    d = one_site(nodes=4, gpus_per_node=2)
    d["leases"] = {
        "level": "node",
        "offers": [{"name": "o", "price_per_gpu_hour": 0.01, "min_gpus": 2, "max_gpus": 4}],
    }
    c = Cluster(placer.load_instance(d), verify="full")
    c.submit(training("a", 2, preemptible=False))
    c.submit(training("b", 1, migration_cost=3))
    c.submit(training("c", 1, value=0.5))
    return c


def fingerprint(c: Cluster) -> tuple:
    return (
        json.dumps(c.snapshot(), sort_keys=True),
        json.dumps(c.state(), sort_keys=True),
        c.jobs,
        c.free_gpus,
        round(c.objective, 6),
    )


def free_gpu(c: Cluster) -> str:
    held = {g for n in c.jobs for g in c.job_gpus(n)}
    return next(g for g in c.index.gpu_ids(np.flatnonzero(c.index.available)) if g not in held)


OPERATIONS = {
    "submit": lambda c: c.submit(training("d", 2, value=9), allow_moves=2),
    "start": lambda c: c.start(training("e", 1), [free_gpu(c)]),
    "release": lambda c: c.release("b"),
    "fail": lambda c: c.fail(["a/node0"]),
    "restore": lambda c: c.restore(["a/node3"]),
}


def after_a_failure(c: Cluster) -> Cluster:
    c.fail(["a/node3"])
    return c


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_a_failed_verification_rolls_every_operation_back(op, monkeypatch):
    c = loaded()
    if op == "restore":
        after_a_failure(c)
    before = fingerprint(c)

    def fails(*args, **kw):
        raise SolverError("the cluster state would break SPEC 3: injected")

    monkeypatch.setattr(placer.cluster, "verify_state", fails)
    with pytest.raises(SolverError, match="injected"):
        OPERATIONS[op](c)
    monkeypatch.undo()
    assert fingerprint(c) == before
    # and it goes on as a cluster that never saw the call
    twin = loaded()
    if op == "restore":
        after_a_failure(twin)
    assert OPERATIONS[op](c).to_dict() | {"seconds": 0} == OPERATIONS[op](twin).to_dict() | {
        "seconds": 0
    }
    assert fingerprint(c) == fingerprint(twin)


def _raise_after(monkeypatch, owner, name):
    """Make owner.name do its work, then raise (an error in the middle of an operation)."""
    real = getattr(owner, name)

    def then_raise(*args, **kw):
        real(*args, **kw)
        raise RuntimeError("injected")

    monkeypatch.setattr(owner, name, then_raise)


@pytest.mark.parametrize(
    "op, owner, name",
    [
        ("submit", admission, "apply"),
        ("start", LiveState, "set_job"),
        ("release", LiveState, "drop_slot"),
        ("fail", repair, "repair"),
        ("restore", leases, "lease_actions"),
    ],
)
def test_any_error_inside_an_operation_rolls_it_back(op, owner, name, monkeypatch):
    c = loaded()
    if op == "restore":
        after_a_failure(c)
    before = fingerprint(c)
    _raise_after(monkeypatch, owner, name)
    with pytest.raises(RuntimeError, match="injected"):
        OPERATIONS[op](c)
    monkeypatch.undo()
    assert fingerprint(c) == before
    c.submit(training("z", 1))
    assert c.check() == []


def test_an_error_while_adopting_a_plan_rolls_back(monkeypatch):
    c = loaded()
    doc = c.replan_instance([training("p", 2, value=5)])
    res = placer.solve(placer.load_instance(doc), solver="greedy")
    before = fingerprint(c)
    _raise_after(monkeypatch, leases, "lease_actions")
    with pytest.raises(RuntimeError, match="injected"):
        c.adopt(res.placement, pending=[training("p", 2, value=5)])
    monkeypatch.undo()
    assert fingerprint(c) == before
    assert c.adopt(res.placement, pending=[training("p", 2, value=5)]).actions


# ------------------------------------------------------------------ the live state
def live_state() -> LiveState:
    c = loaded()
    inst_d, pl_d = c.snapshot()
    inst = placer.load_instance(inst_d)
    live = LiveState(inst, inst.index.available.copy(), np.ones(len(inst.topology.wan), bool))
    documents.load_placement(live, pl_d)
    return live


def doc(live: LiveState) -> str:
    return json.dumps([documents.snapshot(live), documents.state_document(live)], sort_keys=True)


def test_a_rollback_after_new_slots_only_pops_them():
    live = live_state()
    before, st = doc(live), live.st
    saved = live.checkpoint()
    j = live.add_slot(placer.model.Job.model_validate(training("n", 1)))
    assert live.slots[j].name == "n"
    live.rollback(saved)
    assert live.st is st and doc(live) == before and "n" not in live.slot


def test_a_rollback_after_any_change_rebuilds_the_state_it_saved():
    live = live_state()
    before, objective = doc(live), live.objective
    saved = live.checkpoint()
    j = live.slot["b"]
    live.set_job(j, EMPTY)
    live.drop_slot(j)
    mask, links = documents.parse_items(live.base, ["a/node0"])
    live.set_hardware(live.avail & ~mask, live.links_up)
    live.rebuild()
    live.cover[0].add((1, 1))
    assert doc(live) != before
    live.rollback(saved)
    assert doc(live) == before and live.cover[0] == set()
    assert live.objective == pytest.approx(objective, rel=1e-12)


def test_failed_gpus_a_job_held_never_come_back_free():
    live = live_state()
    j = live.slot["a"]
    g = live.st.job_gpus[j]
    mask = np.zeros(live.base.index.n_gpus, bool)
    mask[g[0]] = True
    live.set_hardware(live.avail & ~mask, live.links_up)
    live.rebuild()
    live.set_job(j, EMPTY)
    assert not live.st.free[g[0]] and live.st.free[g[1:]].all()


# ------------------------------------------------------------------ search and results
def test_the_greedy_state_from_holdings_equals_one_built_job_by_job():
    live = live_state()
    st = live.st
    assert type(st) is State  # shared, not subclassed
    inst = live.inst
    one = State(inst.model_copy(update={"leases": None}))
    for j, g in enumerate(st.job_gpus):
        one.set_job(j, g)
    for o, blocks in enumerate(st.offer_blocks):
        for b in blocks:
            one.add_block(o, b)
    assert (one.free == st.free).all()
    assert one.power_left == pytest.approx(st.power_left)
    assert one.objective == pytest.approx(st.objective, rel=1e-12)


def test_a_displacement_is_tried_on_the_state_and_returned_as_data():
    live = live_state()
    before = doc(live)
    j = live.add_slot(placer.model.Job.model_validate(training("big", 4, value=50)))
    option = admission.displacement(live, j, 2, float("inf"))
    assert option is not None and option.targets[0].slot == j and option.net > 0
    assert {a.kind for a in option.actions} <= {"move", "stop"}
    assert all(a.cause is ActionCause.DISPLACED for a in option.actions)
    assert len(live.st.job_gpus[j]) == 0  # nothing was applied
    live.drop_slot(j)
    assert doc(live) == before


def test_the_one_diff_starts_moves_and_stops():
    inst = placer.load_instance(one_site(nodes=2, gpus_per_node=2))
    ix = inst.index
    spec = placer.model.Job.model_validate(
        {
            "name": "p",
            "kind": "training",
            "compute_ms": 100,
            "value": 1,
            "migration_cost": 7,
            "plans": [{"name": "tp2", "tp": 2, "dp": 1}, {"name": "tp1", "tp": 1, "dp": 2}],
        }
    )
    g, h = np.array([0, 1]), np.array([2, 3])
    tp2, tp1 = spec.under(0), spec.under(1)
    start = job_action(spec, ix, None, (g, tp2), ActionCause.SUBMIT)
    assert (start.kind, start.units, start.cost, start.plan) == ("start", 1, 0.0, "tp2")
    move = job_action(spec, ix, (g, tp2), (h, tp2), ActionCause.REPAIR, "why")
    assert (move.kind, move.units_before, move.cost, move.gpus) == ("move", 1, 7, ix.gpu_ids(h))
    plan_only = job_action(spec, ix, (g, tp2), (g, tp1), ActionCause.REPLAN)
    assert (plan_only.kind, plan_only.plan_before, plan_only.plan, plan_only.units) == (
        "move",
        "tp2",
        "tp1",
        2,
    )
    assert moved((g, tp2), (g, tp1)) and not moved((g, tp2), (g, tp2))
    stop = job_action(spec, ix, (g, tp2), None, ActionCause.RELEASED, charge=False)
    assert (stop.kind, stop.cost, stop.units_before, stop.gpus) == ("stop", 0.0, 1, [])


def test_refused_arguments_leave_the_state_as_it_was():
    c = loaded()
    before = fingerprint(c)
    with pytest.raises(UsageError, match="not a valid placement"):
        c.start(training("e", 1), list(c.job_gpus("a"))[:1])
    with pytest.raises(UsageError, match="allow_moves"):
        c.submit(training("f", 1), allow_moves=-1)
    assert fingerprint(c) == before
