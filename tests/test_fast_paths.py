"""Fast paths give the answer of the plain computation they replace (issue 15, solve time).

- the kernel's WAN sets from integer codes: the ids, sets and order of
  ``np.unique(mem, axis=0)``; the links per candidate those of the loop over pairs;
- ``int_row``'s early rounding: the rows of the loop over all seven powers of ten;
- ``linmodel.compact``: the same integer optimum and the same LP optimum as the model;
- ``linmodel.without_zeros`` over a worklist: the zeros and rows (in order) of its rounds
  over every row;
- the local search's later passes that stop where the previous pass last changed the
  placement: the placement of full passes, with fewer re-placements;
- packing a plan whose job switched plan: the job is placed once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer.generators import generate
from placer.kernel import cost
from placer.model import Status
from placer.solvers.cpsat import solve_lp_glop
from placer.solvers.decomposition import construct, pipeline
from placer.solvers.decomposition.linmodel import LinModel, compact, int_row, without_zeros
from placer.validate import instance_from_dict

try:
    from .test_lp_bounds import integer_optimum, small_models
except ImportError:  # tests/ on sys.path
    from test_lp_bounds import integer_optimum, small_models


class _Index:
    """What _sets_from_membership reads of an index: sites, WAN latency, link use."""

    def __init__(self, S: int, W: int, seed: int):
        rng = np.random.default_rng(seed)
        self.n_sites = S
        self.wan_lat_us = rng.integers(0, 500, (S, S)).astype(float)
        self.pair_links = rng.random((S * S, W)) < 0.3


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 62),
    st.integers(0, 4),
    st.integers(1, 40),
    st.integers(0, 2**31 - 1),
)
def test_wan_sets_from_codes_are_those_of_the_unique_over_rows(S, W, rows, seed):
    rng = np.random.default_rng(seed)
    mem = rng.random((rows, S)) < rng.uniform(0.05, 0.9)
    mem[np.arange(rows), rng.integers(0, S, rows)] = True  # a row touches a site
    index = _Index(S, W, seed)
    inv, alpha, links = cost._sets_from_membership(index, mem)
    uniq, ref = np.unique(mem, axis=0, return_inverse=True)
    assert np.array_equal(inv, ref.reshape(-1))
    assert len(alpha) == len(uniq) and links.shape == (len(uniq), W)
    for i, row in enumerate(uniq):
        s = np.flatnonzero(row)
        lat = [index.wan_lat_us[a, b] for a in s for b in s if a != b]
        assert alpha[i] == (max(lat) if lat else 0.0)
        want = np.zeros(W, bool)
        for a in s:
            for b in s:
                if a != b:
                    want |= index.pair_links[a * S + b]
        assert np.array_equal(links[i], want)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_links_per_candidate_are_those_of_the_pairs(C, rows, W, seed):
    rng = np.random.default_rng(seed)
    n_sets = int(rng.integers(1, 5))
    set_id = np.where(rng.random(C * rows) < 0.5, rng.integers(0, n_sets, C * rows), -1)
    set_links = rng.random((n_sets, W)) < 0.4
    fam = cost.Family(
        "pp",
        C,
        rows,
        np.zeros(C * rows),
        np.where(set_id >= 0, 2, 1),
        set_id,
        np.zeros(n_sets),
        set_links,
        (set_id >= 0).reshape(C, rows).sum(axis=1),
    )
    want = np.zeros((C, W), bool)
    for r, s in enumerate(set_id):
        if s >= 0:
            want[r // rows] |= set_links[s]
    assert np.array_equal(fam.links_used(), want)


def _int_row_all_powers(coeffs, sense, rhs):
    """int_row as it was: every power of ten tried, then the rounding."""
    for k in range(0, 7):
        f = 10**k
        cs = {i: c * f for i, c in coeffs.items()}
        r = rhs * f
        if all(abs(v - round(v)) < 1e-9 for v in cs.values()) and abs(r - round(r)) < 1e-9:
            return {i: int(round(v)) for i, v in cs.items()}, int(round(r))
    f = 10**6
    if sense == "<=":
        return {i: math.floor(c * f) for i, c in coeffs.items()}, math.ceil(rhs * f)
    if sense == ">=":
        return {i: math.ceil(c * f) for i, c in coeffs.items()}, math.floor(rhs * f)
    raise ValueError("non-decimal equality")


_numbers = st.one_of(
    st.floats(-1e9, 1e9, allow_nan=False),
    st.integers(-(10**6), 10**6).map(float),
    st.tuples(st.integers(-(10**7), 10**7), st.integers(0, 8)).map(lambda t: t[0] / 10 ** t[1]),
    st.tuples(st.integers(-(10**6), 10**6), st.integers(0, 7), st.integers(7, 14)).map(
        lambda t: t[0] / 10 ** t[1] * 10 ** (t[2] - 7)
    ),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_numbers, min_size=1, max_size=5), _numbers, st.sampled_from(["<=", ">="]))
def test_int_row_rounds_early_only_rows_no_power_makes_integral(cs, rhs, sense):
    coeffs = dict(enumerate(cs))
    assert int_row(coeffs, sense, rhs) == _int_row_all_powers(coeffs, sense, rhs)


def _without_zeros_rounds(lm):
    """without_zeros as it was: every row looked at in every round until no variable falls."""
    lb = lm.lb
    zero = {i for i, (lo, hi) in enumerate(zip(lb, lm.ub)) if lo == 0 and hi == 0}
    rows = [(coeffs, sense, rhs) for coeffs, sense, rhs, _ in lm.rows]
    new, first = zero, True
    while new or first:
        out, more, first = [], set(), False
        for row in rows:
            coeffs, sense, rhs = row
            if not new.isdisjoint(coeffs):
                coeffs = {i: c for i, c in coeffs.items() if i not in zero}
                row = (coeffs, sense, rhs)
            if not coeffs:
                if not {"<=": rhs >= 0, ">=": rhs <= 0, "==": rhs == 0}[sense]:
                    return zero, None
                continue
            if rhs == 0 and sense != "==":
                sign = 1 if sense == "<=" else -1
                if all(sign * c > 0 and lb[i] == 0 for i, c in coeffs.items()):
                    more.update(coeffs)
                    continue
            out.append(row)
        rows, new = out, more - zero
        zero |= new
    return zero, rows


@st.composite
def _cascading_models(draw):
    """Models like the coarse model with plans: variables fixed at [0, 0], rows ``<= 0`` /
    ``>= 0`` of one sign (a plan's option held at 0), and linking rows ``u - k b <= 0`` that
    fall in cascade once b does, among rows of any sense."""
    n = draw(st.integers(1, 14))
    lm = LinModel()
    for i in range(n):
        lo = draw(st.sampled_from([0, 0, 0, 1, -1]))
        lm.var(f"x{i}", float(lo), float(lo + draw(st.integers(0, 3))))
    for i in draw(st.sets(st.integers(0, n - 1), max_size=3)):
        lm.lb[i] = lm.ub[i] = 0.0
    idx = st.integers(0, n - 1)
    for _ in range(draw(st.integers(0, 16))):
        kind = draw(st.integers(0, 3))
        vs = draw(st.sets(idx, min_size=1, max_size=4))
        if kind == 0:  # a linking row: a positive term over a negative one
            a, b = draw(idx), draw(idx)
            lm.add({a: 1.0, b: -float(draw(st.integers(1, 4)))} if a != b else {a: 1.0}, "<=", 0.0)
        elif kind == 1:  # one sign, rhs 0
            sense = draw(st.sampled_from(["<=", ">="]))
            sign = 1.0 if sense == "<=" else -1.0
            lm.add({i: sign * draw(st.integers(1, 3)) for i in vs}, sense, 0.0)
        else:
            lm.add(
                {i: float(draw(st.integers(-3, 3))) for i in vs},
                draw(st.sampled_from(["<=", ">=", "=="])),
                float(draw(st.integers(-3, 4))),
            )
    return lm


@settings(max_examples=600, deadline=None)
@given(_cascading_models())
def test_without_zeros_worklist_gives_the_rounds_zeros_and_rows(lm):
    zero, rows = without_zeros(lm)
    ref_zero, ref_rows = _without_zeros_rounds(lm)
    if ref_rows is None:
        assert rows is None
        return
    assert zero == ref_zero
    assert rows == ref_rows
    assert [list(c) for c, _, _ in rows] == [list(c) for c, _, _ in ref_rows]  # key order


def test_without_zeros_worklist_on_the_coarse_models_with_plans(monkeypatch):
    # the models a solve with plans gives it (the coarse model, with dominated options at 0;
    # the model held to first plans, for its LP): as the rounds over every row
    from placer.solvers.decomposition import linmodel

    seen = []

    def spy(lm):
        got = without_zeros(lm)
        seen.append((lm, got))
        return got

    monkeypatch.setattr(linmodel, "without_zeros", spy)
    monkeypatch.setattr(placer.solvers.cpsat, "without_zeros", spy)
    placer.solve(instance_from_dict(generate("fragmented", seed=2)), solver="cpsat", seed=0)
    assert len(seen) >= 2
    for lm, got in seen:
        assert got == _without_zeros_rounds(lm)
    assert max(len(got[0]) for _, got in seen) > 20  # the held model: a cascade of zeros


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_models(), st.data())
def test_compact_keeps_the_integer_and_lp_optima(lm, data):
    # fix some variables at 0, and hold some at 0 by a row of positive terms (as the
    # model held to first plans does)
    n = lm.n_vars
    lm.lb = [0.0 if data.draw(st.booleans()) else lo for lo in lm.lb]
    lm.ub = [max(lo, hi) for lo, hi in zip(lm.lb, lm.ub)]
    for i in data.draw(st.sets(st.integers(0, n - 1), max_size=n)):
        lm.lb[i] = lm.ub[i] = 0.0
    held = data.draw(st.sets(st.integers(0, n - 1), max_size=n))
    if held and all(lm.lb[i] == 0 for i in held):
        lm.add({i: 1.0 for i in held}, "<=", 0.0)
    got = compact(lm)
    full = integer_optimum(lm)
    if got is None:
        assert full is None
        return
    small, keep = got
    assert small.n_vars == len(keep) <= n
    assert integer_optimum(small) == pytest.approx(full) if full is not None else True
    if full is None:
        assert integer_optimum(small) is None
    a, b = solve_lp_glop(lm, 5.0), solve_lp_glop(small, 5.0)
    assert a.status == b.status
    if a.status == Status.OPTIMAL:
        assert b.bound == pytest.approx(a.bound, rel=1e-7, abs=1e-7)


def _full_passes(st, deadline=None, passes=50):
    """The local search as it was: every job re-placed in every pass."""
    inst = st.inst
    improved = 0
    for _ in range(passes):
        changed = False
        for j in construct.job_order(inst):
            job = inst.jobs[j]
            if job.pinned and job.current:
                continue
            before = st.objective
            old = st.group_placement(j)
            st.unreached.discard(j)
            st.place_best(j)
            if st.objective > before + 1e-9 * max(1.0, abs(before)):
                improved += 1
                changed = True
            elif st.objective < before:
                st.restore_group(j, old)
        if not changed:
            break
    return improved


def _counting(monkeypatch):
    calls = []
    orig = construct.State.place_best

    def counted(self, j, *a, **k):
        calls.append(j)
        return orig(self, j, *a, **k)

    monkeypatch.setattr(construct.State, "place_best", counted)
    return calls


@pytest.mark.parametrize(
    "family,seed,params",
    [
        ("fragmented", 2, {}),
        ("fragmented", 0, {}),
        ("superpod", 1, dict(sus=2, n_jobs=10, plan_share=1.0)),
        ("multicampus", 0, dict(sites=2, gpus_per_site=1024, n_jobs=12, plan_share=1.0)),
    ],
)
def test_later_passes_that_stop_early_give_the_full_passes_placement(
    monkeypatch, family, seed, params
):
    from placer.solvers.plans import expand, siblings

    inst = instance_from_dict(generate(family, seed=seed, **params))
    vinst, _ = expand(inst)
    # a start the search can improve: the greedy with its first half of jobs left out
    start = construct.best_greedy(vinst)
    order = construct.job_order(vinst)
    for j in order[: len(order) // 2]:
        if not (vinst.jobs[j].pinned and vinst.jobs[j].current):
            for s in siblings(vinst, j):
                if len(start.job_gpus[s]):
                    start.set_job(s, np.zeros(0, np.int64))
    gpus, blocks = start.copy_solution()

    def fresh():
        st = construct.State(vinst)
        for j, g in enumerate(gpus):
            if len(g):
                st.set_job(j, g)
        for o, bl in enumerate(blocks):
            for b in bl:
                st.add_block(o, b)
        return st

    calls = _counting(monkeypatch)
    a = fresh()
    n_a = _full_passes(a)
    full_calls = len(calls)
    calls.clear()
    b = fresh()
    n_b = pipeline.local_search(b, None, passes=50)
    assert n_b == n_a
    assert b.objective == a.objective
    assert all(np.array_equal(x, y) for x, y in zip(a.job_gpus, b.job_gpus))
    assert n_a > 0 and len(calls) < full_calls  # (the later passes stopped early)


def test_a_plan_switch_in_the_packing_places_the_job_once(monkeypatch):
    """fragmented-4su-s2: the coarse plan's tp8-pp2 for train-70b-0010 does not pack as
    planned, and the switch to another of its plans in its site places the job; the packing
    then placed it once more, anywhere (whether it was placed was read from the planned
    variant's GPUs, which a switch leaves empty)."""
    import sys

    inst = instance_from_dict(generate("fragmented", seed=2))
    tries: list[tuple] = []
    orig = construct.State.place_best

    def logged(self, j, switch=True, **kw):
        got = orig(self, j, switch=switch, **kw)
        if sys._getframe(1).f_code.co_name == "primal_from_coarse":
            tries.append((id(self), self.inst.jobs[j].name.split("/")[0], switch, kw, got))
        return got

    monkeypatch.setattr(construct.State, "place_best", logged)
    res = placer.solve(inst, solver="cpsat", time_limit=20, seed=0)
    assert res.objective == pytest.approx(33477.4931677549, rel=1e-9)
    by_job: dict[tuple, list] = {}
    for state, name, switch, kw, got in tries:
        by_job.setdefault((state, name), []).append((switch, kw.get("sites"), got))
    switched = 0
    for seq in by_job.values():
        placed = [i for i, t in enumerate(seq) if t[2]]
        assert len(placed) <= 1 and (not placed or placed[0] == len(seq) - 1), seq
        switched += any(switch and sites is not None and got for switch, sites, got in seq)
    assert switched, "the case no longer switches a plan in its sites: pick another"
