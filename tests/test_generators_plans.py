"""Generated families whose jobs have plans (issue 15 part 6; docs/generators.md, "Plans").

What is tested here:
1. `plan_share` gives TP-8 training jobs 2-4 plans that differ in shape (tp, pp and the
   1F1B microbatches of their bubble), each valid SPEC v3 without a warning; with the
   default 0 every family is as before (no plans, and the same draws).
2. On a multi-site cluster a job whose DP may cross sites also gets `pp-sites` (PP across
   sites, DP inside one), and the frontier run gets sync-dp, diloco-100 and pp-sites.
3. The `fragmented` family leaves nodes partly held by small pinned fleets.
4. The plan groups of the solvers: restoring a re-placed group puts back the variant that
   was placed (the cause of plan choice ending below the first-plan solve).
5. bench.plans' fixed choices: Sailor's rule picks pp-sites where DP would cross sites.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from placer.generators import generate
from placer.validate import instance_from_dict

try:
    from . import builders
except ImportError:  # tests/ on sys.path
    import builders


def shape(inst, job, k):
    v = job.under(k)
    return (v.tp, v.pp, v.microbatches)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("fragmented", dict(sus=2)),
        ("superpod", dict(sus=2, plan_share=1.0)),
        ("multicampus", dict(sites=2, gpus_per_site=2048, plan_share=1.0, cross_site_share=1.0)),
        ("frontier", dict(sites=3, gpus_per_site=2048, n_jobs=4, plan_share=1.0, n_offers=0)),
        ("scale", dict(gpus=4096, n_jobs=40, plan_share=1.0)),
    ],
)
def test_plan_families_validate_and_plans_differ_in_shape(family, params, seed):
    d = generate(family, seed, **params)
    assert d == generate(family, seed, **params)
    inst = instance_from_dict(d)
    assert inst.warnings == []
    with_plans = [j for j in inst.jobs if j.plans]
    assert with_plans
    for job in with_plans:
        assert 2 <= len(job.plans) <= 4, job.name
        names = [p.name for p in job.plans]
        assert len(set(names)) == len(names)
        under = [job.under(k) for k in range(len(job.plans))]
        # each plan differs from every other in shape or in where its groups may lie
        keys = [(v.tp, v.pp, v.dp, v.scope, v.cross_site_every) for v in under]
        assert len(set(map(repr, keys))) == len(keys), job.name
        for v in under:
            if v.kind == "training" and v.pp > 1 and not v.name.startswith("flagship"):
                assert v.microbatches, (job.name, v.plan)  # the bubble is charged
        if job.current:
            assert job.current_plan == job.plans[0].name


def test_shape_plans_trade_tp_for_pipeline_stages_at_the_same_gpus():
    d = generate("fragmented", 0)
    inst = instance_from_dict(d)
    seen = collections.Counter()
    for job in inst.jobs:
        if not job.plans:
            continue
        shapes = [shape(inst, job, k) for k in range(len(job.plans))]
        tp0, pp0, _ = shapes[0]
        assert tp0 == 8
        for tp, pp, m in shapes:
            assert tp * pp == tp0 * pp0
            seen[tp] += 1
            if pp > 1:
                # the bubble grows with the stages: c (m + pp - 1) / m
                assert m >= 1
        # the first plan is the fastest on an empty cluster: least TP traffic off NVLink
        # does not matter there, the least bubble does
        bubbles = [(m + pp - 1) / m if pp > 1 else 1.0 for _, pp, m in shapes]
        assert bubbles[0] == min(bubbles)
    assert seen[8] and seen[4] and seen[2]


def test_default_families_have_no_plans_and_unchanged_draws():
    for family in ("superpod", "multicampus", "frontier", "scale"):
        d = generate(family, 3, **({"gpus": 4096, "n_jobs": 30} if family == "scale" else {}))
        assert not any("plans" in j for j in d["jobs"]), family
    # plan_share=0 given explicitly is the default: the same instance
    assert generate("superpod", 5) == generate("superpod", 5, plan_share=0.0)


def test_cross_site_jobs_get_pp_sites_and_the_frontier_run_three_plans():
    d = generate(
        "multicampus", 1, sites=2, gpus_per_site=4096, plan_share=1.0, cross_site_share=1.0
    )
    cross = [j for j in d["jobs"] if j.get("scope", {}).get("dp") == "cluster" and "plans" in j]
    assert cross
    for j in cross:
        pl = {p["name"]: p for p in j["plans"]}
        assert "pp-sites" in pl, j["name"]
        assert pl["pp-sites"]["scope"] == {"pp": "cluster", "dp": "site"}
        assert pl["pp-sites"]["pp"] >= 2
    f = generate("frontier", 0, sites=3, gpus_per_site=4096, n_jobs=4, plan_share=1.0)
    flag = f["jobs"][0]
    assert [p["name"] for p in flag["plans"]] == ["sync-dp", "diloco-100", "pp-sites"]
    assert flag["plans"][0]["cross_site_every"] == 1
    assert flag["plans"][1]["value"] == pytest.approx(0.9 * flag["value"], abs=0.01)


def test_fragmented_nodes_are_partly_held_by_small_pinned_fleets():
    d = generate("fragmented", 2, sus=2, frag_share=0.5)
    inst = instance_from_dict(d)
    res = [j for j in inst.jobs if j.name.startswith("resident-")]
    assert res and all(j.pinned and j.current for j in res)
    per_node = collections.Counter(g.rsplit("/", 1)[0] for j in res for g in j.current)
    assert per_node and max(per_node.values()) <= 4
    nodes = inst.index.n_gpus // 8
    assert 0.3 * nodes <= len(per_node) <= 0.7 * nodes
    with pytest.raises(ValueError, match="frag_share"):
        generate("fragmented", 0, frag_share=1.5)


def test_restoring_a_re_placed_group_puts_back_the_variant_that_was_placed():
    from placer.solvers.decomposition.construct import State
    from placer.solvers.plans import expand

    inst = instance_from_dict(generate("fragmented", 0, sus=2, n_jobs=6))
    vinst, groups = expand(inst)
    st = State(vinst)
    a, b, cand, other = next(
        (vs[0], vs[1], st.candidates(vs[0]), st.candidates(vs[1]))
        for vs in groups.members
        if len(vs) >= 2 and st.candidates(vs[0]) and st.candidates(vs[1])
    )
    st.set_job(a, cand[0])
    before = st.objective
    snap = st.group_placement(b)  # any variant of the group names the group
    assert snap[0] == a
    # a re-placement moved the group to variant b ...
    st.set_job(a, np.zeros(0, np.int64))
    st.set_job(b, other[0])
    # ... restoring through b (the group's head in the loops) puts a back, b off
    st.restore_group(b, snap)
    assert len(st.job_gpus[b]) == 0
    assert np.array_equal(st.job_gpus[a], cand[0])
    assert st.objective == pytest.approx(before)


def test_sailor_rule_picks_pp_across_sites_where_dp_would_cross():
    from bench.plans import hold, sailor_choice, sailor_plans

    inst = instance_from_dict(
        generate("frontier", 0, sites=3, gpus_per_site=2048, n_jobs=4, plan_share=1.0, n_offers=0)
    )
    flag = inst.jobs[0]
    assert flag.plans[sailor_choice(flag)].name == "pp-sites"
    held = sailor_plans(inst)
    assert [p.name for p in held.jobs[0].plans] == ["pp-sites"]
    for job, h in zip(inst.jobs, held.jobs):
        if job.plans and job.name != flag.name:
            dp_cross = job.scope and job.scope.dp == "cluster"
            if not dp_cross:
                assert h.plans[0].name == job.plans[0].name  # the rule says nothing more
    first = hold(inst, lambda job: 0)
    assert all(len(j.plans) == 1 for j in first.jobs if j.plans)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("fragmented", dict(sus=2, n_jobs=8)),
        ("frontier", dict(sites=3, gpus_per_site=2048, n_jobs=4, plan_share=1.0, n_offers=0)),
        (
            "multicampus",
            dict(sites=3, gpus_per_site=1024, n_jobs=8, plan_share=1.0, cross_site_share=1.0),
        ),
    ],
)
def test_a_variants_value_bound_is_above_what_any_of_its_candidates_adds(family, params):
    from placer.solvers.decomposition.construct import State
    from placer.solvers.plans import candidate_bound, expand, value_bound

    inst = instance_from_dict(generate(family, 0, **params))
    vinst, groups = expand(inst)
    st = State(vinst)
    checked = 0
    # from the empty cluster and again with half the groups placed (WAN sharing, fragments)
    for rnd in range(2):
        for j, vs in enumerate(groups.members):
            for v in vs:
                if st.placed_variant(v) is not None:
                    continue
                free = int(st.free.sum())
                cands = st.candidates(v)
                for g in cands[:8]:
                    d = st.scorer.delta({v: g})
                    assert d <= value_bound(vinst, v), vinst.jobs[v].name
                    # and the bound scaled to what the free GPUs hold
                    assert d <= value_bound(vinst, v, free), vinst.jobs[v].name
                    # and the bound of that candidate's units over its sites
                    assert d <= candidate_bound(vinst, v, g), vinst.jobs[v].name
                    checked += 1
                if value_bound(vinst, v, free) == float("-inf"):
                    assert not cands  # its fewest units do not fit in the free GPUs
            if rnd == 0 and j % 2 == 0:
                st.place_best(vs[0])
    assert checked >= 10


def test_a_variant_whose_fewest_units_exceed_the_free_gpus_has_no_bound_to_offer():
    from placer.solvers.plans import expand, value_bound

    inst = instance_from_dict(generate("fragmented", 0, sus=2, n_jobs=8))
    vinst, groups = expand(inst)
    v = next(v for vs in groups.members if len(vs) > 1 for v in vs)
    job = vinst.jobs[v]
    few = max(job.units_min, 1) * job.unit_size
    assert value_bound(vinst, v, few - 1) == float("-inf")
    assert value_bound(vinst, v, few) > 0
    # linear in the units held, up to the bound at the most units
    full = job.units_max * job.unit_size
    assert value_bound(vinst, v, 10 * full) == value_bound(vinst, v)
    assert value_bound(vinst, v, few) <= value_bound(vinst, v)


def test_first_plan_rows_hold_every_group_to_its_default_variant():
    from placer.solvers.decomposition import coarse as coarse_mod
    from placer.solvers.plans import expand, first_plan_rows

    inst = instance_from_dict(generate("fragmented", 0, sus=2, n_jobs=8))
    vinst, groups = expand(inst)
    co = coarse_mod.build(vinst)
    [(row, sense, rhs, _)] = first_plan_rows(vinst, co.options)
    assert sense == "<=" and rhs == 0.0
    held = {op.job for op in co.options if op.b in row}
    for vs in groups.members:
        default = next((v for v in vs if vinst.jobs[v].current), vs[0])
        assert default not in held
        assert all(v in held for v in vs if v != default and any(o.job == v for o in co.options))
    assert first_plan_rows(inst, co.options) == []  # not a virtual instance


def test_the_first_plan_coarse_plan_is_packed_only_when_it_could_beat_the_candidates():
    from types import SimpleNamespace

    from placer.model import Status
    from placer.solvers.decomposition.pipeline import CoarseSolution, _first_plans_settled

    def held(bound, values=(1.0, 0.0)):
        return CoarseSolution(Status.OPTIMAL, list(values), bound, "")

    main = CoarseSolution(Status.OPTIMAL, [0.0, 1.0], 120.0, "")
    cands = [SimpleNamespace(objective=100.0), SimpleNamespace(objective=90.0)]
    # its model bounds every first-plan placement: a candidate at or above it settles it
    assert "reaches its bound" in _first_plans_settled(held(100.0), main, cands)
    assert "reaches its bound" in _first_plans_settled(held(99.0), main, cands)
    # below it, the first-plan plan could still win: packed
    assert _first_plans_settled(held(100.5), main, cands) == ""
    # an LP bound is asked for a margin above it
    assert _first_plans_settled(held(100.0), main, cands, 1e-6) == ""
    # the very plan already packed: its packings are among the candidates
    same = held(130.0, main.values)
    assert "already packed" in _first_plans_settled(same, main, cands)


def test_the_first_plan_coarse_model_may_start_past_half_the_limit_when_it_fits():
    from placer.solvers.decomposition.pipeline import FIRST_PLANS_SHARE, _first_plans_until

    # multicampus-3x-s1 at 20 s: the coarse solve ended at 10.1 s (past half), the packing
    # deadline at 14.9 s, a packing 0.1 s: its solve and two packings fit until 65%
    until = _first_plans_until(0.0, 19.9, 14.925, 0.1)
    assert 0.6 < until < 0.7
    start = until * 19.9
    assert start + FIRST_PLANS_SHARE * (19.9 - start) + 2 * 0.1 == pytest.approx(14.925)
    # never earlier than half the limit (the other plans' rule), even with slow packings
    assert _first_plans_until(0.0, 19.9, 14.925, 5.0) == 0.5
    assert _first_plans_until(0.0, None, None, 0.1) == 1.0


def test_plan_choice_packs_the_first_plan_plan_after_a_coarse_solve_past_half_the_limit(
    monkeypatch,
):
    """fragmented seed 4: the coarse optimum with plans packs to 14,150, the model held to
    first plans to 14,693. A coarse solve cut by the time ends past half the limit (it has
    half of what the greedy leaves); here the real solve is followed by a wait to that point,
    and the first-plan plan must still be solved and packed."""
    import time

    import placer
    from placer.solvers.cpsat import CpSatSolver
    from placer.solvers.plans import first_plans

    inst = instance_from_dict(generate("fragmented", 4, sus=2, n_jobs=8))
    limit = 8.0  # 0.8 s of slack between the wait (55%) and the latest start (about 65%)
    first = placer.solve(first_plans(inst), solver="cpsat", time_limit=limit, exact_small=False)
    real = CpSatSolver.solve_coarse
    calls = []
    started = time.perf_counter()

    def late(self, *a, **k):
        got = real(self, *a, **k)
        if not calls:  # the coarse model with plans: it ends at 55% of the limit
            time.sleep(max(0.0, started + 0.55 * limit - time.perf_counter()))
        calls.append(got.status)
        return got

    monkeypatch.setattr(CpSatSolver, "solve_coarse", late)
    res = placer.solve(inst, solver="cpsat", time_limit=limit, exact_small=False)
    assert len(calls) >= 2  # the coarse model with plans, then the one held to first plans
    assert res.stats["first_plans"] is True
    cands = res.stats["candidates"]
    assert max(cands[2:4]) > max(cands[:2])  # the first-plan plan packs best
    assert res.objective >= first.objective - 1e-6 * abs(first.objective)


def test_plan_choice_never_ends_below_first_plans_on_the_small_generated_families():
    import placer
    from placer.solvers.plans import first_plans

    for family, params in [
        ("fragmented", dict(sus=2, n_jobs=8)),
        ("superpod", dict(sus=2, n_jobs=8, plan_share=1.0)),
        ("frontier", dict(sites=3, gpus_per_site=1024, n_jobs=4, plan_share=1.0, n_offers=0)),
    ]:
        inst = instance_from_dict(generate(family, 0, **params))
        got = placer.solve(inst, solver="cpsat", time_limit=20).objective
        first = placer.solve(first_plans(inst), solver="cpsat", time_limit=20).objective
        assert got >= first - 1e-6 * abs(first), family


def test_a_plan_that_differs_only_in_site_wide_scopes_keeps_only_its_cross_site_options():
    from dataclasses import replace

    from placer.solvers.cpsat import solve_cpsat
    from placer.solvers.decomposition import coarse as coarse_mod
    from placer.solvers.plans import drop_twin_sites, expand, site_twins

    params = dict(sites=3, gpus_per_site=512, n_jobs=6, plan_share=1.0, cross_site_share=1.0)
    inst = instance_from_dict(generate("multicampus", 0, **params))
    vinst, groups = expand(inst)
    twins = site_twins(vinst)
    assert twins  # the family's pp-sites plans share their job's first shape
    for v in twins:
        job = vinst.jobs[v]
        first = vinst.jobs[groups.members[groups.owner[v]][0]]
        assert (job.tp, job.pp, job.unit_size) == (first.tp, first.pp, first.unit_size)
        assert job.effective_scope() != first.effective_scope()
    co = coarse_mod.build(vinst)
    ub = list(co.model.ub)
    assert drop_twin_sites(vinst, co.options, ub) > 0
    # the same optimum: every one-site placement they stood for is the sibling's
    full = solve_cpsat(co.model, 60, 0, 1)
    held = solve_cpsat(replace(co.model, ub=ub), 60, 0, 1)
    assert full.status == held.status == "optimal"
    assert abs(full.bound - held.bound) <= 1e-6 * abs(full.bound)
    assert site_twins(inst) == set()  # not a virtual instance


def _coarse_with_drops(inst):
    """(virtual instance, coarse model, its upper bounds before and after drop_dominated)."""
    from placer.solvers.decomposition import coarse as coarse_mod
    from placer.solvers.plans import drop_dominated, drop_twin_sites, expand

    vinst, _groups = expand(inst)
    co = coarse_mod.build(vinst)
    drop_twin_sites(vinst, co.options, co.model.ub)
    before = list(co.model.ub)
    drop_dominated(vinst, co.options, co.model)
    return vinst, co, before, list(co.model.ub)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("fragmented", dict(sus=2, n_jobs=8)),
        ("frontier", dict(sites=3, gpus_per_site=1024, n_jobs=4, plan_share=1.0, n_offers=0)),
        ("multicampus", dict(sites=3, gpus_per_site=512, n_jobs=6, plan_share=1.0)),
    ],
)
def test_dropping_dominated_plan_options_keeps_the_coarse_optimum(family, params):
    from dataclasses import replace

    from placer.solvers.cpsat import solve_cpsat
    from placer.solvers.plans import _default_variant

    inst = instance_from_dict(generate(family, 0, **params))
    vinst, co, before, after = _coarse_with_drops(inst)
    dropped = [op for op in co.options if before[op.b] > 0 and after[op.b] == 0]
    if family == "frontier":
        assert dropped  # diloco-100 inside one site: sync-dp's shape at a higher value
    g = vinst._plan_groups
    defaults = {_default_variant(vinst, g, j) for j in range(len(g.members))}
    assert not [op for op in dropped if op.job in defaults]  # the first-plan model stays whole
    full = solve_cpsat(replace(co.model, ub=before), 60, 0, 1)
    pruned = solve_cpsat(co.model, 60, 0, 1)
    assert full.status == pruned.status == "optimal"
    assert abs(full.bound - pruned.bound) <= 1e-6 * abs(full.bound)


def test_a_row_implied_by_another_over_the_integers_is_found_and_never_wrongly():
    """plans._implies against brute force: every integer point of a box that meets row q
    meets row r whenever q is said to imply r; and the whole-node row of a site whose free
    GPUs all lie in free nodes (up to fewer than a node) is implied by its GPU row."""
    import itertools
    import random

    from placer.solvers.decomposition.linmodel import LinModel
    from placer.solvers.plans import _implies

    def model(q, bq, r, br, integer=(True, True, True)):
        lm = LinModel()
        for i, ok in enumerate(integer):
            lm.var(f"x{i}", 0, 4, integer=ok)
        lm.add(dict(enumerate(q)), "<=", bq)
        lm.add(dict(enumerate(r)), "<=", br)
        return lm

    # x0: units of 2 GPUs of a TP-2 job (1 node each), x1: 1-GPU replicas, x2: a lease of
    # the site (4 GPUs, 2 nodes); GPU row 2 x0 + x1 + 4 x2 <= C, node row x0 + 2 x2 <= 2
    for cap, implied in ((4, True), (5, True), (6, False)):
        lm = model((2, 1, 4), cap, (1, 0, 2), 2)
        assert _implies(lm, 0, 1, {}) is implied, cap
    assert not _implies(model((2, 1, 4), 4, (1, 0, 2), 2, (False, True, True)), 0, 1, {})
    rng = random.Random(7)
    found = 0
    for _ in range(300):
        q = [rng.choice([0, 1, 2, 3, 4, 8]) for _ in range(3)]
        r = [rng.choice([0, 0, 1, 2, 4]) for _ in range(3)]
        bq, br = rng.randint(0, 12), rng.randint(0, 6)
        lm = model(q, bq, r, br)
        if not lm.rows[1:] or len(lm.rows) < 2:
            continue
        if _implies(lm, 0, 1, {}):
            found += 1
            qc, _, _, _ = lm.rows[0]
            rc, _, _, _ = lm.rows[1]
            for x in itertools.product(range(5), repeat=3):
                if sum(c * x[i] for i, c in qc.items()) <= bq:
                    assert sum(c * x[i] for i, c in rc.items()) <= br, (q, bq, r, br, x)
    assert found > 10


def test_a_slower_plan_that_needs_no_whole_node_is_dropped_where_every_free_gpu_is_one(
    monkeypatch,
):
    """multicampus: every free GPU of a campus lies in a free node (up to a few), so a plan
    of the same units at a lower value whose TP groups need no node of their own (tp4 next
    to tp8) is dominated, site by site; the coarse optimum stays the same."""
    from dataclasses import replace

    from placer.solvers import plans as plans_mod
    from placer.solvers.cpsat import solve_cpsat

    params = dict(sites=3, gpus_per_site=512, n_jobs=6, plan_share=1.0)
    inst = instance_from_dict(generate("multicampus", 0, **params))
    monkeypatch.setattr(plans_mod, "IMPLIED_MIN_VARS", 0)  # (a small model: forced on)
    vinst, co, before, after = _coarse_with_drops(inst)
    # without the implied rows (as on models outside IMPLIED_MIN/MAX_VARS), the whole-node rows
    # keep them
    monkeypatch.setattr(plans_mod, "IMPLIED_MAX_VARS", 0)
    _, _, _, kept = _coarse_with_drops(inst)
    newly = [op for op in co.options if op.b >= 0 and after[op.b] == 0 < kept[op.b]]
    assert {vinst.jobs[op.job].tp for op in newly} == {4}
    assert {vinst.jobs[op.job].name for op in newly} >= {"train-70b-0001/tp4-pp4"}
    full = solve_cpsat(replace(co.model, ub=before), 60, 0, 1)
    pruned = solve_cpsat(co.model, 60, 0, 1)
    assert full.status == pruned.status == "optimal"
    assert abs(full.bound - pruned.bound) <= 1e-6 * abs(full.bound)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("fragmented", dict(sus=2, n_jobs=8)),
        ("frontier", dict(sites=3, gpus_per_site=1024, n_jobs=4, plan_share=1.0, n_offers=0)),
        ("multicampus", dict(sites=3, gpus_per_site=512, n_jobs=6, plan_share=1.0)),
        ("superpod", dict(sus=2, n_jobs=8, plan_share=1.0)),
    ],
)
def test_first_plans_first_then_the_others_above_them_is_the_whole_models_optimum(
    family, params, monkeypatch
):
    """plans.solve_first_plans_first: the better of the two branches is the whole coarse
    model's optimum, its bound at least that, and the held branch the model held to first
    plans (the first-plan solve's own)."""
    from placer.model import Status
    from placer.solvers import plans as plans_mod
    from placer.solvers.cpsat import solve_cpsat, solve_lp_glop
    from placer.solvers.decomposition.pipeline import _with_rows
    from placer.solvers.plans import first_plan_rows, solve_first_plans_first

    monkeypatch.setattr(plans_mod, "BRANCH_MIN_VARS", 0)  # (small models are solved whole)
    inst = instance_from_dict(generate(family, 0, **params))
    vinst, co, _before, _after = _coarse_with_drops(inst)
    lm = co.model
    calls = []

    def solve(m, t, cutoff=False):
        calls.append(cutoff)
        return solve_cpsat(m, t, 0, 1, presolve=not cutoff)

    sol, held = solve_first_plans_first(vinst, co.options, lm, solve, solve_lp_glop, 60)
    whole = solve_cpsat(lm, 60, 0, 1)
    assert calls == [False, True]
    assert sol.status == whole.status == Status.OPTIMAL
    tol = 1e-6 * abs(whole.bound)
    assert abs(lm.value(sol.values) - lm.value(whole.values)) <= tol
    assert sol.bound >= lm.value(whole.values) - 1e-9 and abs(sol.bound - whole.bound) <= 2 * tol
    only_first = solve_cpsat(_with_rows(lm, first_plan_rows(vinst, co.options)), 60, 0, 1)
    assert abs(lm.value(held.values) - lm.value(only_first.values)) <= tol


def test_first_plans_first_unproven_is_bounded_by_the_other_plans_lp(monkeypatch):
    """The held branch stopped by its limit: its solution, and a bound that holds for every
    plan (the larger of its own and the other plans' LP bound), never the held bound alone."""
    from dataclasses import replace

    from placer.model import Status
    from placer.solvers import plans as plans_mod
    from placer.solvers.cpsat import solve_cpsat, solve_lp_glop
    from placer.solvers.plans import solve_first_plans_first

    monkeypatch.setattr(plans_mod, "BRANCH_MIN_VARS", 0)
    params = dict(sus=2, n_jobs=8)
    inst = instance_from_dict(generate("fragmented", 0, **params))
    vinst, co, _before, _after = _coarse_with_drops(inst)

    def solve(m, t, cutoff=False):
        assert not cutoff  # no time for the second branch
        return replace(solve_cpsat(m, t, 0, 1), status=Status.FEASIBLE)

    sol, held = solve_first_plans_first(vinst, co.options, co.model, solve, solve_lp_glop, 60)
    whole = solve_cpsat(co.model, 60, 0, 1)
    assert sol.status == Status.FEASIBLE and held is not None
    assert sol.bound >= whole.bound - 1e-6 * abs(whole.bound)


def test_cp_sat_leaves_out_what_a_row_holds_at_zero_and_finds_the_same_optimum(monkeypatch):
    """The model held to first plans: the other plans' options, and in cascade their unit
    and value variables, are built into no CP-SAT variable; the optimum is the same."""
    from placer.solvers import cpsat
    from placer.solvers.decomposition.pipeline import _with_rows
    from placer.solvers.plans import first_plan_rows

    params = dict(sites=3, gpus_per_site=512, n_jobs=6, plan_share=1.0)
    inst = instance_from_dict(generate("multicampus", 0, **params))
    vinst, co, _before, _after = _coarse_with_drops(inst)
    held = first_plan_rows(vinst, co.options)
    lm = _with_rows(co.model, held)
    zero, rows = cpsat.without_zeros(lm)
    others = set(held[0][0])
    assert others <= zero
    # in cascade: the unit variables of those options, whose own bounds allow units
    cascade = [v for op in co.options if op.b in others for v in op.n.values() if lm.ub[v] > 0]
    assert cascade and set(cascade) <= zero
    assert len(rows) < len(lm.rows)
    got = cpsat.solve_cpsat(lm, 60, 0, 1)
    assert all(got.values[i] == 0 for i in zero)
    monkeypatch.setattr(
        cpsat, "without_zeros", lambda m: (set(), [(c, s, r) for c, s, r, _ in m.rows])
    )
    whole = cpsat.solve_cpsat(lm, 60, 0, 1)
    assert got.status == whole.status == "optimal"
    assert abs(got.bound - whole.bound) <= 1e-6 * abs(whole.bound)
    assert abs(lm.value(got.values) - lm.value(whole.values)) <= 1e-6 * abs(whole.bound)


def test_a_row_of_fixed_terms_that_is_violated_makes_the_cp_sat_model_infeasible():
    from placer.solvers.cpsat import solve_cpsat, without_zeros
    from placer.solvers.decomposition.linmodel import LinModel

    lm = LinModel()
    b, n, m = lm.var("b", 0, 1), lm.var("n", 0, 4), lm.var("m", 0, 0)
    lm.add({n: 1.0, b: -4.0}, "<=", 0.0)
    lm.add({b: 1.0}, "<=", 0.0)
    lm.maximize(n, 1.0)
    assert without_zeros(lm) == ({b, n, m}, [])
    lm.add({n: 1.0, m: 1.0}, ">=", 1.0)  # n and m are 0: 0 >= 1 cannot hold
    assert without_zeros(lm)[1] is None
    assert solve_cpsat(lm, 5, 0, 1).status == "infeasible"


def _two_site(jobs, gpn=8):
    return builders.two_sites(jobs, gpn, nodes=4)


def _train(plans, **kw):
    j = {
        "name": "T",
        "kind": "training",
        "compute_ms": 1000,
        "value": 2,
        "tp": 4,
        "dp": 4,
        "min_dp": 1,
        "comm": {"tp_MB": 100.0, "tp_messages": 4, "dp_MB": 100.0, "dp_messages": 2},
        "plans": plans,
    }
    j.update(kw)
    return j


def _dropped_plans(d) -> set[str]:
    inst = instance_from_dict(d)
    vinst, co, before, after = _coarse_with_drops(inst)
    out = {vinst.jobs[op.job].name for op in co.options if before[op.b] > 0 and after[op.b] == 0}
    kept = {vinst.jobs[op.job].name for op in co.options if after[op.b] > 0}
    return out - kept  # plans with every option dropped


def test_a_plan_of_the_same_shape_at_a_lower_value_is_dropped_but_never_the_first_plan():
    fast, slow = {"name": "fast"}, {"name": "slow", "value": 1}
    assert _dropped_plans(_two_site([_train([fast, slow])])) == {"T/slow"}
    # listed first, the slow plan is the default: the model held to it must stay whole
    assert _dropped_plans(_two_site([_train([slow, fast])])) == set()
    # more communication at the same value: no better in any coefficient, so dropped
    chatty = {
        "name": "chatty",
        "comm": {"tp_MB": 900.0, "tp_messages": 4, "dp_MB": 900.0, "dp_messages": 2},
    }
    assert _dropped_plans(_two_site([_train([fast, chatty])])) == {"T/chatty"}


def test_a_faster_plan_that_needs_whole_nodes_does_not_drop_a_slower_one_that_shares_them():
    # tp 8 fills an 8-GPU node (the whole-node rows count it); tp 4 at a lower value does not
    wide = {"name": "tp8", "tp": 8, "dp": 2}
    narrow = {"name": "tp4-slow", "tp": 4, "dp": 4, "value": 1.5}
    assert _dropped_plans(_two_site([_train([wide, narrow])])) == set()


def test_a_solve_with_plans_is_the_same_for_a_seed_on_one_thread():
    import json

    import placer

    params = dict(sites=3, gpus_per_site=1024, n_jobs=4, plan_share=1.0, n_offers=0)
    inst = instance_from_dict(generate("frontier", 0, **params))

    def run():
        res = placer.solve(inst, solver="cpsat", time_limit=None, seed=3, threads=1)
        assert res.stats.get("plan_dominated_options")  # the pruning ran
        d = res.placement.model_dump(mode="json")
        d.pop("seconds")
        return json.dumps(d, sort_keys=True)

    assert run() == run()
