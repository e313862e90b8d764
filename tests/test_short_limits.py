"""Short limits on the headline instance (instances/colossus-v2.yaml: 180,224 GPUs, a
frontier run with three plans, two lease offers).

The greedy runs its offers-first policy first (the shorter pass: its leases take whole
blocks out of the search), so a limit that cuts the jobs-first pass still returns the
offers-first placement (349.4 M) rather than the cut jobs-first one (304.6-308 M, below the
first-fit peer's 348 M). With no limit both run in full and the choice is the same as before
(the better, ties to jobs first). Deadlines here are deterministic: in the past, or none.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import placer
from placer.solvers import plans as plans_mod
from placer.solvers.decomposition import construct
from placer.solvers.decomposition.construct import State, best_greedy, greedy_policy

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def colossus_v2():
    inst = placer.load_instance(ROOT / "instances" / "colossus-v2.yaml")
    vinst, _groups = plans_mod.expand(inst)
    return vinst


def test_with_no_limit_the_greedy_keeps_the_better_policy_ties_to_jobs_first():
    for name in ("tiny.yaml", "superpod.yaml"):
        inst = placer.load_instance(ROOT / "instances" / name)
        jobs = greedy_policy(inst, leases_first=False)
        offers = greedy_policy(inst, leases_first=True)
        best = best_greedy(inst)
        assert best.leases_first == (offers.objective > jobs.objective)
        want = offers if best.leases_first else jobs
        assert best.objective == want.objective
        assert all(np.array_equal(a, b) for a, b in zip(best.job_gpus, want.job_gpus))
        assert not best.second_policy_skipped and not best.unreached


def test_a_cut_jobs_first_pass_leaves_the_complete_offers_first_placement(colossus_v2, monkeypatch):
    offers = greedy_policy(colossus_v2, leases_first=True)
    assert offers.objective > 349e6
    real = construct.greedy_policy
    order = []

    def jobs_first_cut(inst, leases_first, deadline=None, final=True):
        order.append(leases_first)
        if not leases_first:  # past its deadline from its first job
            deadline = time.perf_counter() - 1.0
        return real(inst, leases_first, deadline=deadline, final=final)

    monkeypatch.setattr(construct, "greedy_policy", jobs_first_cut)
    st = best_greedy(colossus_v2, deadline=time.perf_counter() + 3600, final=False)
    assert order == [True, False]  # offers first, then jobs
    assert st.leases_first and st.objective == offers.objective
    assert st.second_policy_skipped  # the cut pass is run again in full when time allows


def test_a_search_past_its_deadline_leaves_a_job_that_need_not_run_unreached(colossus_v2):
    st = State(colossus_v2)
    j = next(i for i, job in enumerate(colossus_v2.jobs) if job.name.startswith("frontier"))
    before = st.objective
    assert not st.place_best(j, deadline=time.perf_counter() - 1.0)
    assert j in st.unreached and st.timed_out and st.objective == before
    assert st.placed_variant(j) is None
    # with no deadline the same search places it
    assert st.place_best(j) and st.placed_variant(j) is not None


def test_a_coarse_solve_its_solver_import_would_eat_is_not_started(monkeypatch):
    """CP-SAT's first import in a process (0.35 s) comes out of the coarse solve's limit: a
    solve left hardly more is skipped and the time stays the greedy's."""
    from placer.generators import generate
    from placer.solvers.cpsat import CpSatSolver
    from placer.validate import instance_from_dict

    inst = instance_from_dict(generate("scale", 1, gpus=4096, n_jobs=40))
    monkeypatch.setattr(CpSatSolver, "solve_overhead", lambda self: 1e6)
    res = placer.solve(inst, "cpsat", time_limit=30, lp_rounding="never", exact_small=False)
    assert res.stats["primal_from"] == "greedy" and "coarse_vars" not in res.stats
    assert "first import" in res.stats["coarse"] or "not built" in res.stats["coarse"]
    # with no limit nothing is skipped for it
    res = placer.solve(inst, "cpsat", time_limit=None, lp_rounding="never", exact_small=False)
    assert "coarse_vars" in res.stats
