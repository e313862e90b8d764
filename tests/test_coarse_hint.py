"""Issue 16 parts 2 and 6: CP-SAT's coarse solve warm-started from the greedy's placement,
and solved again from the best plan when it stopped unproven with time left.

Deterministic: the solves are cut by CP-SAT's work limit (deterministic time), not the clock.
"""

from __future__ import annotations

import pytest

import placer
from placer.generators import generate
from placer.model import Status
from placer.solvers.cpsat import solve_cpsat
from placer.solvers.decomposition import coarse as coarse_mod
from placer.solvers.decomposition import warm
from placer.solvers.decomposition.construct import best_greedy
from placer.validate import instance_from_dict


@pytest.fixture(scope="module")
def inst():
    return instance_from_dict(generate("scale", 1, gpus=10240, n_jobs=80))


@pytest.fixture(autouse=True)
def hint_small_models(monkeypatch):
    """These instances' coarse models (a few hundred variables) are below the size from
    which a solve is hinted (pipeline.HINT_MIN_VARS): hint them here, to test the hint."""
    from placer.solvers.decomposition import pipeline

    monkeypatch.setattr(pipeline, "HINT_MIN_VARS", 0)


def test_a_coarse_model_below_the_hint_size_is_solved_without_the_greedy_hint(inst, monkeypatch):
    from placer.solvers.decomposition import pipeline

    monkeypatch.setattr(pipeline, "HINT_MIN_VARS", 10**9)
    res = placer.solve(inst, solver="cpsat", time_limit=60, exact_small=False)
    assert "coarse_hint_value" not in res.stats
    monkeypatch.setattr(pipeline, "HINT_MIN_VARS", 0)
    res = placer.solve(inst, solver="cpsat", time_limit=60, exact_small=False)
    assert res.stats["coarse_hint_value"] > 0


def _complete(inst, co, st):
    return warm.complete(inst, co, st, lambda lm: solve_cpsat(lm, 10.0, 0, 1, work_limit=5.0))


def test_the_greedy_placement_read_back_is_a_point_of_the_model_valued_at_least_as_the_kernel(
    inst,
):
    """Every placed job matches one of its options (type, sites, unit bracket); with those
    decisions fixed the model is feasible, and its optimistic value is at least the kernel's
    objective of the placement (the model bounds every placement, this one included)."""
    st = best_greedy(inst)
    co = coarse_mod.build(inst)
    fixed, missed = warm.plan_of_state(inst, co, st)
    assert missed == 0
    placed = sum(1 for g in st.job_gpus if len(g))
    assert sum(1 for op in co.options if fixed.get(op.b) == 1.0) == placed
    hint, info = _complete(inst, co, st)
    assert hint is not None and info["missed_jobs"] == 0
    assert all(hint[v] == pytest.approx(x) for v, x in fixed.items())
    value = co.model.value(hint)
    assert value >= st.objective - 1e-6 * abs(st.objective)


def test_a_hinted_solve_starts_from_the_hint(inst):
    """With the greedy's point as a hint, CP-SAT's first solution is at least the hint's
    value, and its bound is a bound of the same model (the unhinted optimum's)."""
    co = coarse_mod.build(inst)
    hint, _ = _complete(inst, co, best_greedy(inst))
    start = co.model.value(hint)
    cut = solve_cpsat(co.model, 10.0, 0, 1, work_limit=0.002, hint=hint)
    assert cut.values is not None
    assert co.model.value(cut.values) >= start - 1e-6 * abs(start)
    full = solve_cpsat(co.model, 30.0, 0, 1)
    assert full.status == Status.OPTIMAL
    assert cut.bound >= co.model.value(full.values) - 1e-6 * abs(cut.bound)
    hinted = solve_cpsat(co.model, 30.0, 0, 1, hint=hint)
    assert hinted.status == Status.OPTIMAL
    assert co.model.value(hinted.values) == pytest.approx(co.model.value(full.values), rel=1e-6)


def test_a_coarse_solve_stopped_unproven_is_solved_again_from_the_best_plan(inst):
    """The coarse solve cut by its (work) limit leaves a plan it has not proven and the time
    limit has time left: the model is solved again from the best plan in hand, its better
    plan packed, the lower proven bound kept, and the reason says so."""
    res = placer.solve(inst, solver="cpsat", time_limit=60, exact_small=False, work_limit=0.003)
    st = res.stats
    assert st["coarse_hint_value"] > 0 and "0 placed jobs outside" in st["coarse_hint_from"]
    assert st["coarse_resumed"].startswith("solved again from a plan")
    assert ", then " in st["coarse_native"]
    assert res.objective == pytest.approx(max(st["candidates"]), abs=0.1)
    if "resumed_objective" in st:
        assert st["resumed_objective"] in [pytest.approx(c, abs=0.1) for c in st["candidates"]]
    assert res.objective - 1e-6 <= res.bound <= st["coarse_bound"] + 1e-6
    again = placer.solve(inst, solver="cpsat", time_limit=60, exact_small=False, work_limit=0.003)
    assert again.objective == res.objective and again.bound == res.bound  # repeatable
    if st["coarse_status"] == Status.FEASIBLE:
        assert "solved again from the best plan" in res.stopped
        assert "not given to that solve again" not in res.stopped
    else:  # proven by the second solve: the bound is the model's optimum, said so
        assert "proven optimum" in res.stopped


def test_the_stop_reason_says_when_no_time_was_left_for_a_second_solve():
    from placer.solvers.decomposition.pipeline import stop_reason

    class R:
        stats = {
            "coarse_status": Status.FEASIBLE,
            "coarse_resumed": "not solved again: the 0.4 s left held no second solve",
        }

    why = stop_reason("gpus", R())
    assert "and not solved again: the 0.4 s left" in why
    assert "proven optimum" not in why


def test_a_rounded_lp_plan_is_packed_in_both_orders_once_and_the_better_kept():
    """At scale (here forced by lp_rounding) the rounded plan is packed tightest jobs first
    as well as largest first; on this instance the second order wins (1M GPUs: 31.341 M
    against 31.323 M). It is packed once: the rule of instances of at most 500 jobs, which
    packs that order too, does not pack it again."""
    small = instance_from_dict(generate("scale", 1, gpus=4096, n_jobs=40))
    res = placer.solve(small, "cpsat", time_limit=None, lp_rounding="always", exact_small=False)
    st = res.stats
    tight = st["tight_objective"]
    assert tight > st["candidates"][0]  # the first candidate: the plan packed largest first
    assert res.objective == pytest.approx(tight)
    assert sum(abs(c - tight) < 0.05 for c in st["candidates"]) == 1
    assert res.gap > 1e-6 and "the rounded plan was packed in both orders" in res.stopped


def test_a_dive_plan_that_packs_better_than_the_first_is_packed_in_the_second_order_too():
    small = instance_from_dict(generate("scale", 3, gpus=4096, n_jobs=40))
    res = placer.solve(small, "cpsat", time_limit=None, lp_rounding="always", exact_small=False)
    st = res.stats
    assert st["dive_objective"] > st["candidates"][0]
    assert "dive_tight_objective" in st
    assert res.objective == pytest.approx(max(st["candidates"]))
    assert res.objective >= st["dive_tight_objective"] - 1e-6
