"""The bounds that let a solve with plans skip work (issue 15, solve time): each is an upper
bound on what the work it skips could give, and skipping leaves the answer unchanged.

- ``State.open_bound``: no state that grow reaches from a packed plan scores above it;
- ``plans.variant_bound``: no candidate of a variant that passes the rules changes the
  objective by more;
- a second packing order cut by its floor (``primal_from_coarse``) leaves the solve's
  placement exactly as without the cut.
"""

from __future__ import annotations

import numpy as np
import pytest

import placer
from placer.generators import generate
from placer.solvers.decomposition import pipeline
from placer.solvers.decomposition.construct import State, greedy_policy, scope_ok
from placer.solvers.plans import expand, first_plans, variant_bound
from placer.validate import instance_from_dict

# small generated instances with plans (bench.plans' fragmented and superpod families)
CASES = [
    ("fragmented", 0, {}),
    ("fragmented", 2, {}),
    ("superpod", 1, {"sus": 4, "n_jobs": 12, "plan_share": 1.0}),
    ("superpod", 2, {"sus": 4, "n_jobs": 12, "plan_share": 1.0}),
]

pytest.importorskip("ortools")


def _inst(family, seed, params):
    return instance_from_dict(generate(family, seed=seed, **params))


@pytest.mark.parametrize(("family", "seed", "params"), CASES)
def test_open_bound_bounds_what_grow_reaches(monkeypatch, family, seed, params):
    seen = []
    grow = pipeline.grow

    def checked(st, deadline=None):
        top = st.open_bound()
        grow(st, deadline)
        seen.append((top, st.objective))

    monkeypatch.setattr(pipeline, "grow", checked)
    placer.solve(_inst(family, seed, params), solver="cpsat", time_limit=20, seed=0)
    assert seen
    for top, got in seen:
        if top is not None:
            assert got <= top + 1e-9 * max(1.0, abs(top))


@pytest.mark.parametrize(("family", "seed", "params"), CASES)
def test_variant_bound_bounds_every_candidate_that_passes_the_rules(family, seed, params):
    vinst, groups = expand(_inst(family, seed, params))
    st = greedy_policy(vinst, leases_first=False)
    checked = 0
    for members in groups.members:
        old = st.group_placement(members[0])
        if old[0] is None or vinst.jobs[old[0]].pinned:
            continue
        # the group taken out, as a re-placement of the local search does
        st.set_job(old[0], np.zeros(0, np.int64))
        free = int(np.count_nonzero(st.free))
        for j in members:
            if vinst.jobs[j].current:
                continue
            fit = st.fit_units(j)
            most = vinst.jobs[j].units_max if fit is None else min(fit, vinst.jobs[j].units_max)
            top = variant_bound(vinst, j, free, most, None)
            for g in st.candidates(j, checked=False):
                if scope_ok(vinst, j, g):
                    d = st.scorer.delta({j: g})
                    assert d <= top + 1e-9 * max(1.0, abs(top)), (vinst.jobs[j].name, d, top)
                    checked += 1
        st.restore_group(members[0], old)
    assert checked


@pytest.mark.parametrize(("family", "seed", "params"), CASES)
@pytest.mark.parametrize("held", [False, True])
def test_the_floor_cut_leaves_the_placement_unchanged(monkeypatch, family, seed, params, held):
    inst = _inst(family, seed, params)
    if held:
        inst = first_plans(inst)
    got = placer.solve(inst, solver="cpsat", time_limit=20, seed=0)
    cut = []
    below = pipeline._below

    def never(st, floor):
        cut.append(below(st, floor))
        return False

    monkeypatch.setattr(pipeline, "_below", never)
    full = placer.solve(inst, solver="cpsat", time_limit=20, seed=0)
    assert got.objective == full.objective
    assert [(r.name, r.plan, r.gpus) for r in got.placement.jobs] == [
        (r.name, r.plan, r.gpus) for r in full.placement.jobs
    ]
    if (family, seed, held) == ("fragmented", 2, False):
        assert any(cut)  # the case the cut was made for does cut


def test_open_bound_without_plans_and_with_offers():
    # an instance without plans has one too (the jobs themselves are the groups)
    st = State(_inst("fragmented", 0, {"plan_share": 0.0}))
    top = st.open_bound()
    assert top is not None and top >= st.objective
    # offers: leases would add revenue the bound does not count, so none
    inst = _inst("superpod", 0, {"sus": 4, "n_jobs": 12, "plan_share": 0.0})
    assert inst.offers and State(inst).open_bound() is None
