"""Adopting a plan in two steps (`placer serve`'s replan): `adopt_base()` (a copy of the live
state), `prepare_adopt()` (the plan merged and checked whole on that copy, with no lock) and
`commit_adopt()` (the prepared state brought to the live state as it is by then: only the
jobs that changed meanwhile redone and verified), with `advance_adopt()` rounds (the same
catching up on a newer copy, without the lock) in between. The result must be the one
`adopt()` gives on the live state at the commit: the same decision (adopted, refused with a
PlacementError, or kept as not worth it), the same actions and the same state.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from builders import one_site, training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer import Cluster
from placer.errors import PlacementError, UsageError
from placer.live.replan import IndexedPlacement, named_document

if __package__:
    from .strategies import as_arrivals, feasible_case, hardware_items, rounded
else:
    from strategies import as_arrivals, feasible_case, hardware_items, rounded

# derandomized: CI runs the same examples every time. A random run (seed
# 166360650694943939272500114578736605463) found Cluster.restore raising a rule 7 power error
# after a hall was restored; fixed since (restored leased GPUs over a cap stay unavailable),
# with its regression tests in test_cluster_restore.py
HYP = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def canonical(c: Cluster) -> str:
    return json.dumps(c.snapshot(), sort_keys=True)


def outcome(fn) -> tuple:
    """What an adoption decided: ('error', problems) or ('change', the Change rounded)."""
    try:
        return "change", rounded(fn().to_dict())
    except PlacementError as e:
        return "error", len(e.problems) > 0


def twin(c: Cluster, inst) -> Cluster:
    return Cluster.resume(inst, json.loads(json.dumps(c.state())), verify="full")


def spread_cluster() -> tuple[Cluster, object, dict]:
    """Job 'a' bound across two nodes (slow all-reduce) and a plan putting it on one node
    (better: adopted), with room around for jobs arriving meanwhile."""
    inst = placer.load_instance(one_site(nodes=6, gpus_per_node=2))
    c = Cluster(inst, verify="full")
    c.start(training("a", 2, value=50), ["a/node0/gpu0", "a/node1/gpu0"])
    c.submit(training("b", 1))
    plan = c.placement().model_dump(mode="json", exclude_none=True)
    for pj in plan["jobs"]:
        if pj["name"] == "a":
            pj["gpus"] = ["a/node4/gpu0", "a/node4/gpu1"]
    return c, inst, plan


def test_a_prepared_plan_is_taken_as_it_is_when_nothing_moved():
    c, inst, plan = spread_cluster()
    full = twin(c, inst)
    prep = c.prepare_adopt(c.adopt_base(), plan)
    assert prep.merged is not None and not prep.reason
    want = outcome(lambda: full.adopt(plan))
    assert want[0] == "change" and want[1]["actions"], want
    assert outcome(lambda: c.commit_adopt(prep)) == want
    assert canonical(c) == canonical(full) and c.check() == []
    assert c.objective == pytest.approx(full.objective)


def test_jobs_that_moved_meanwhile_are_redone_and_the_result_equals_a_whole_adopt():
    c, inst, plan = spread_cluster()
    prep = c.prepare_adopt(c.adopt_base(), plan)
    # meanwhile: one job released, two arrive, one of them where the plan leaves room
    c.release("b")
    c.submit(training("late1", 1))
    c.start(training("late2", 1), ["a/node5/gpu1"])
    full = twin(c, inst)
    want = outcome(lambda: full.adopt(plan))
    got = outcome(lambda: c.commit_adopt(prep))
    assert got == want and got[0] == "change"
    assert {a["job"] for a in got[1]["actions"]} == {"a"}
    assert canonical(c) == canonical(full) and c.check() == []
    assert c.objective == pytest.approx(full.objective)


def test_the_plans_pending_jobs_start_after_jobs_that_arrived_meanwhile_as_in_a_whole_adopt():
    """catch_up moves the pending jobs the copy started after the arrivals (no re-scoring)
    and the result is the whole adopt's: state, order, actions, objective."""
    c, inst, plan = spread_cluster()
    pending = [training(f"p{k}", 1, value=2) for k in range(3)]
    plan["jobs"] += [
        {"name": "p0", "units": 1, "gpus": ["a/node2/gpu0"]},
        {"name": "p1", "units": 1, "gpus": ["a/node2/gpu1"]},
        {"name": "p2", "units": 1, "gpus": ["a/node3/gpu0"]},
    ]
    prep = c.prepare_adopt(c.adopt_base(), plan, pending)
    c.submit(training("late", 1))  # arrives after the copy, on a GPU the plan leaves free
    full = twin(c, inst)
    want = outcome(lambda: full.adopt(plan, pending))
    got = outcome(lambda: c.commit_adopt(prep))
    assert got == want and got[0] == "change"
    assert list(c.jobs)[-4:] == ["late", "p0", "p1", "p2"]
    assert canonical(c) == canonical(full) and c.check() == []
    assert c.objective == pytest.approx(full.objective, rel=1e-9)


def test_a_job_that_took_the_plans_gpus_meanwhile_refuses_the_plan_and_nothing_changes():
    c, inst, plan = spread_cluster()
    prep = c.prepare_adopt(c.adopt_base(), plan)
    c.start(training("thief", 1), ["a/node4/gpu1"])  # a GPU the plan gives 'a'
    before = canonical(c)
    with pytest.raises(PlacementError, match="against the live state"):
        c.commit_adopt(prep)
    assert canonical(c) == before and c.check() == []
    with pytest.raises(PlacementError, match="against the live state"):
        twin(c, inst).adopt(plan)


@pytest.mark.parametrize("where", ["on_the_plan", "elsewhere"])
def test_a_job_started_on_the_plans_gpus_before_the_merge_refuses_it_before_merging(
    where, monkeypatch
):
    # the plan as placer serve's worker sends it (indices); a job starts after the solve's
    # copy, before the merge's: on a GPU the plan gives 'a' the merge is refused at once
    # (replan.overlaps), as the whole adopt refuses it; elsewhere it is merged as before
    from placer.live import replan as rp
    from placer.live.state import LiveState

    c, inst, plan = spread_cluster()
    solved_from = c.adopt_base()
    sent = IndexedPlacement.of(placer.Placement.model_validate(plan), inst, analyse=True)
    c.start(training("late", 1), ["a/node4/gpu1" if where == "on_the_plan" else "a/node5/gpu1"])
    copies = []
    real = LiveState.from_checkpoint
    monkeypatch.setattr(
        LiveState, "from_checkpoint", classmethod(lambda cls, *a: copies.append(1) or real(*a))
    )
    base = c.adopt_base()
    if where == "on_the_plan":
        assert rp.overlaps(inst, base, sent, sent.parsed(), set())
        with pytest.raises(PlacementError, match="'a/node4/gpu1' of job 'a' .* held by 'late'"):
            c.prepare_adopt(base, sent, solved_from=solved_from)
        assert copies == []  # refused before the state was copied to merge into
        with pytest.raises(PlacementError, match="against the live state"):
            twin(c, inst).adopt(plan)
    else:
        assert rp.overlaps(inst, base, sent, sent.parsed(), set()) == []
        prep = c.prepare_adopt(base, sent, solved_from=solved_from)
        full = twin(c, inst)
        assert outcome(lambda: c.commit_adopt(prep)) == outcome(lambda: full.adopt(plan))
        assert canonical(c) == canonical(full) and "late" in c.jobs


def test_failed_hardware_meanwhile_adopts_the_plan_whole_against_it():
    c, inst, plan = spread_cluster()
    prep = c.prepare_adopt(c.adopt_base(), plan)
    c.fail(["a/node5"])
    full = twin(c, inst)
    assert outcome(lambda: c.commit_adopt(prep)) == outcome(lambda: full.adopt(plan))
    assert canonical(c) == canonical(full)
    c, inst, plan = spread_cluster()
    prep = c.prepare_adopt(c.adopt_base(), plan)
    c.fail(["a/node4"])  # the plan's GPUs for 'a'
    before = canonical(c)
    with pytest.raises(PlacementError):
        c.commit_adopt(prep)
    assert canonical(c) == before


def test_a_plan_refused_on_the_copy_changes_nothing_live():
    c, inst, plan = spread_cluster()
    bad = copy.deepcopy(plan)
    for pj in bad["jobs"]:
        if pj["name"] == "a":
            pj["gpus"] = ["a/node0/gpu0", "a/node0/gpu0"]
    before = canonical(c)
    with pytest.raises(PlacementError):
        c.prepare_adopt(c.adopt_base(), bad)
    assert canonical(c) == before
    same = c.placement().model_dump(mode="json", exclude_none=True)  # nothing to gain
    prep = c.prepare_adopt(c.adopt_base(), same)
    assert "kept the live plan" in prep.reason
    ch = c.commit_adopt(prep)
    assert ch.reason == prep.reason and ch.applied is False and canonical(c) == before
    ch = c.adopt(same)
    assert "kept the live plan" in ch.reason and ch.applied is False


@settings(max_examples=60, **HYP)
@given(case=feasible_case(), data=st.data())
def test_two_step_adoption_equals_adopt_at_the_commit_after_any_operations(case, data):
    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    # "changed": the merge checks what involves the other jobs, and rules 1-5 only of the
    # jobs the solve's whole check did not pass (a miss would differ from the whole adopt)
    c = Cluster(inst, pl_d, verify=data.draw(st.sampled_from(["full", "changed"])))
    arrivals = as_arrivals(inst_d)
    pending = []
    if arrivals and data.draw(st.booleans()):  # several: catch_up moves them after arrivals
        pending = [
            {**copy.deepcopy(arrivals[k % len(arrivals)]), "name": f"pending-{k}"}
            for k in range(data.draw(st.integers(1, 4)))
        ]
    # the plan: a solve of the snapshot, or the live placement with one job moved by hand
    doc = c.replan_instance(pending)
    solved_from = c.adopt_base()
    solved = placer.load_instance(doc)
    res = placer.solve(solved, solver="greedy", time_limit=2)
    if res.placement is None:
        return
    plan = res.placement.model_dump(mode="json", exclude_none=True)
    # the GPUs as indices of the solved instance's numbering, as placer serve's worker
    # sends them: the live cluster's numbering
    # sends them: the live cluster's numbering; or as its worker sends the plan back, with
    # the kernel's analyses of the jobs it moves or starts, against the state solved
    indices, sent, kw = None, data.draw(st.sampled_from(["ids", "indices", "indexed"])), {}
    if sent == "indices":
        ix = solved.index
        indices = [ix.gpu_indices(list(pj.gpus)) if pj.gpus else None for pj in res.placement.jobs]
    elif sent == "indexed":
        plan = IndexedPlacement.of(res.placement, solved, analyse=True)
        kw = {"jobs": c.parse_pending(pending), "solved_from": solved_from}
    items = hardware_items(inst_d)

    def operations(first: int) -> None:
        for step in range(first, first + data.draw(st.integers(0, 4))):
            kind = data.draw(st.sampled_from(["submit", "release", "fail", "restore"]))
            try:
                if kind == "submit" and arrivals:
                    job = copy.deepcopy(data.draw(st.sampled_from(arrivals)))
                    job["name"] = f"{job['name']}-{step}"
                    c.submit(job, allow_moves=data.draw(st.integers(0, 2)))
                elif kind == "release" and c.jobs:
                    c.release(data.draw(st.sampled_from(sorted(c.jobs))))
                elif kind in ("fail", "restore") and items and data.draw(st.booleans()):
                    getattr(c, kind)([data.draw(st.sampled_from(items))])
            except UsageError:
                pass

    operations(20)  # the state moves between the solve's copy and the merge's
    base = c.adopt_base()
    try:
        prep = c.prepare_adopt(base, plan, pending, gpu_indices=indices, **kw)
    except PlacementError:
        with pytest.raises(PlacementError):
            twin(c, inst).adopt(plan, pending)
        return
    operations(0)
    if data.draw(st.booleans()):  # a round of catching up on a newer copy, then more
        try:
            prep = c.advance_adopt(c.adopt_base(), prep)
        except PlacementError:
            with pytest.raises(PlacementError):
                twin(c, inst).adopt(plan, pending)
            return
        operations(10)
    # the document a worker solves, sent with GPU indices and named there, is the same
    assert named_document(c.replan_instance(ids=False)) == c.replan_instance()
    full = twin(c, inst)
    want = outcome(lambda: full.adopt(plan, pending))
    got = outcome(lambda: c.commit_adopt(prep))
    assert got == want
    assert canonical(c) == canonical(full)
    assert c.objective == pytest.approx(full.objective, rel=1e-9, abs=1e-6)
    assert c.check() == []


def test_an_actions_dict_is_its_fields_with_empty_ones_left_out_and_lists_copied():
    from placer.cluster import Action, ActionCause

    gpus = ["a/node0/gpu0", "a/node0/gpu1"]
    a = Action("move", job="x", units=1, units_before=2, gpus=gpus, cost=3.0)
    a.cause = ActionCause.REPLAN
    d = a.to_dict()
    assert d == {
        "kind": "move",
        "job": "x",
        "units": 1,
        "units_before": 2,
        "gpus": gpus,
        "cost": 3.0,
        "cause": "replan",
    }
    assert d["gpus"] is not gpus
    lease = Action("lease", offer="o", blocks=["a/node3"]).to_dict()
    assert lease == {"kind": "lease", "offer": "o", "blocks": ["a/node3"], "cost": 0.0}


def _derived(live) -> tuple:
    """Everything of a live state, slot by slot in start order (where the tombstones fall
    is no part of it): names, GPUs (the greedy's state and the kernel's), plans, each
    job's score figures, WAN sharers, free GPUs, power."""
    st, sc = live.st, live.st.scorer
    run = live.running()
    return (
        [live.slots[j].model_dump() for j in run],
        [live.spec_of(j).model_dump() for j in run],
        [st.job_gpus[j].tolist() for j in run],
        [sc.job_gpus[j].tolist() for j in run],
        [sc.plans[j] for j in run],
        [sc.jobs[j].model_dump() for j in run],
        [None if sc.ana[j] is None else sc.ana[j].links[0].tolist() for j in run],
        [
            (float(s.value[0]), float(s.migration[0]), bool(s.moved[0]))
            for s in (sc.scores[j] for j in run)
        ],
        sc.users.tolist(),
        st.free.tolist(),
        st.power_left.tolist(),
    )


def _assert_same_state(la, lb) -> None:
    """Two live states hold the same derived state and score (`la` rebuilt from scratch
    scores the same too). Power left is a running sum: a path that gives a job's power back
    and takes it again may round in the last bit (6.000000000000001 against 6.0), so it is
    compared to 1e-9."""
    da, db = _derived(la), _derived(lb)
    assert da[:-1] == db[:-1]
    assert np.allclose(da[-1], db[-1], rtol=1e-9, atol=1e-9)
    assert la.objective == pytest.approx(lb.objective, rel=1e-9, abs=1e-6)
    la.rebuild()  # from scratch: the same score
    assert la.objective == pytest.approx(lb.objective, rel=1e-9, abs=1e-6)


@settings(max_examples=60, **HYP)
@given(case=feasible_case(), data=st.data())
def test_moving_slots_to_the_end_equals_dropping_and_adding_them_again(case, data):
    """`LiveState.move_to_end` (catch_up's reorder of the plan's pending jobs) leaves the
    state that freeing, dropping, adding and placing each job again leaves, objective
    included, without re-scoring: nothing derived depends on a job's slot."""
    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    a = Cluster(inst, pl_d, verify="full")
    b = Cluster(inst, pl_d, verify="full")
    running = sorted(j for j in a._live.slot.values() if len(a._live.st.job_gpus[j]))
    if not running:
        return
    picked = data.draw(st.lists(st.sampled_from(running), unique=True, min_size=1))
    live = b._live
    held = {}
    for j in picked:
        held[j] = (live.spec_of(j), live.plan_index(j), live.st.job_gpus[j])
        live.set_job(j, np.zeros(0, np.int64))
        live.drop_slot(j)
    for j in picked:
        spec, k, g = held[j]
        live.set_job(live.add_slot(spec, k), g)
    for j in picked:
        a._live.move_to_end(j)
    _assert_same_state(a._live, b._live)
    assert a.check() == []


@settings(max_examples=60, **HYP)
@given(case=feasible_case(), data=st.data())
def test_setting_jobs_in_one_batch_equals_setting_them_one_at_a_time(case, data):
    """`LiveState.set_jobs` (a replan's merge places its jobs in one change: one re-score of
    the jobs sharing a WAN link with them) leaves the state `set_job` one job at a time
    leaves, objective included; so does it with each job's kernel analysis given (as the
    solve's worker sends it), and one job may take the GPUs another gives up."""
    from placer.kernel.cost import analyse_job, as_batch

    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    a = Cluster(inst, pl_d, verify="full")
    b = Cluster(inst, pl_d, verify="full")
    live = a._live
    running = sorted(j for j in live.slot.values() if len(live.st.job_gpus[j]))
    if len(running) < 2:
        return
    picked = data.draw(st.lists(st.sampled_from(running), unique=True, min_size=2))
    # each picked job takes the GPUs of the next one (a rotation), where the sizes match
    gpus = {j: live.st.job_gpus[j] for j in picked}
    new = {}
    for i, j in enumerate(picked):
        nxt = gpus[picked[(i + 1) % len(picked)]]
        new[j] = nxt if len(nxt) == len(gpus[j]) else gpus[j]
    ana = {}
    if data.draw(st.booleans()):
        ana = {
            j: analyse_job(inst.index, live.slots[j], as_batch(g, live.slots[j]))
            for j, g in new.items()
        }
    a._live.set_jobs({j: np.zeros(0, np.int64) for j in picked})
    a._live.set_jobs(new, ana)
    for j in picked:
        b._live.set_job(j, np.zeros(0, np.int64))
    for j in picked:
        b._live.set_job(j, new[j])
    _assert_same_state(a._live, b._live)


@settings(max_examples=60, **HYP)
@given(case=feasible_case(), data=st.data())
def test_compacting_tombstones_in_place_equals_rebuilding_the_state(case, data):
    """`LiveState.compact` drops the tombstones of stopped and moved jobs in place (a
    replan's commit left 160 of them on colossus, and rebuilding re-scored every job under
    the service's lock): the state it leaves is the one `rebuild` derives from scratch,
    objective included, and the live instance's job list is still the slot list."""
    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    a = Cluster(inst, pl_d, verify="full")
    b = Cluster(inst, pl_d, verify="full")
    running = sorted(a._live.slot.values())
    if not running:
        return
    live = a._live
    picked = data.draw(st.lists(st.sampled_from(running), unique=True, min_size=1))
    for j in picked:
        move = data.draw(st.booleans())
        for x in (live, b._live):
            if move:
                x.move_to_end(j)
            else:
                x.set_job(j, np.zeros(0, np.int64))
                x.drop_slot(j)
    b._live.rebuild()
    live.tombstones = 10**6  # over the threshold: compact now
    live.compact()
    assert live.tombstones == 0
    assert live.inst.jobs is live.slots
    assert len(live.slots) == len(live.slot) == len(live.st.job_gpus)
    assert len(live.st.scorer.scores) == len(live.slots)
    da, db = _derived(live), _derived(b._live)
    assert da[:-1] == db[:-1]
    # power left: a running sum the rebuild adds up again (see the test above)
    assert np.allclose(da[-1], db[-1], rtol=1e-9, atol=1e-9)
    assert live.objective == pytest.approx(b._live.objective, rel=1e-9, abs=1e-6)
    assert a.check() == []
    if live.slot:  # and it goes on: a job stopped and one placed again after the compaction
        name = next(iter(live.slot))
        doc, plan, gpus = a.job_document(name), a.job_plan(name), a.job_gpus(name)
        doc.pop("current", None)
        doc.pop("current_plan", None)
        a.release(name)
        if gpus:
            a.start(doc, gpus, plan)
        assert a.check() == []
        assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-6) or not gpus


@settings(max_examples=60, **HYP)
@given(case=feasible_case(), data=st.data())
def test_a_copy_from_a_scored_checkpoint_equals_one_scored_again(case, data):
    """`adopt_base` copies the live state with the kernel's figures of each job
    (`checkpoint(scored=True)`), and its copies take them rather than scoring every job
    again (40 ms on colossus, for every catch-up round of a replan): a copy so made equals
    one rebuilt and scored from scratch, tombstones of stopped and moved jobs included,
    and goes on the same (a job stopped and placed again)."""
    from placer.live.state import LiveState

    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    a = Cluster(inst, pl_d, verify="full")
    live = a._live
    running = sorted(live.slot.values())
    for j in data.draw(st.lists(st.sampled_from(running), unique=True)) if running else []:
        if data.draw(st.booleans()):
            live.move_to_end(j)
        else:
            live.set_job(j, np.zeros(0, np.int64))
            live.drop_slot(j)
    fast = LiveState.from_checkpoint(live.base, live.checkpoint(scored=True))
    slow = LiveState.from_checkpoint(live.base, live.checkpoint())
    assert fast.inst.jobs is fast.slots
    da, db = _derived(fast), _derived(slow)
    assert da[:-1] == db[:-1]
    assert np.allclose(da[-1], db[-1], rtol=1e-9, atol=1e-9)
    assert fast.objective == pytest.approx(slow.objective, rel=1e-12, abs=1e-9)
    assert fast.objective == pytest.approx(live.objective, rel=1e-9, abs=1e-6)
    for x in (fast, slow):  # they go on the same: the first job stopped and placed again
        if x.slot:
            j = min(x.slot.values())
            g = x.st.job_gpus[j]
            x.set_job(j, np.zeros(0, np.int64))
            x.set_job(j, g)
    assert fast.objective == pytest.approx(slow.objective, rel=1e-12, abs=1e-9)
    assert _derived(fast)[:-1] == _derived(slow)[:-1]
