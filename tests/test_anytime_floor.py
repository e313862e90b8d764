"""Issue 16: the decomposition never ends below the greedy backend.

At 1M GPUs / 5,000 jobs a rounded LP plan's build, LP and packing take most of a 30 s
limit, and under load the packing was cut with 1,053 jobs placed: 24.48 M, below the greedy
backend's 25.79 M at the same limit. These tests cut each stage with a deterministic trigger
(a work budget, a past deadline, a build that can never leave room) instead of the clock.
"""

from __future__ import annotations

import time

import numpy as np

import placer
from placer.generators import generate
from placer.solvers.decomposition import coarse as coarse_mod
from placer.solvers.decomposition import pipeline
from placer.solvers.decomposition.construct import best_greedy
from placer.validate import instance_from_dict


def _inst():
    return instance_from_dict(generate("scale", 1, gpus=4096, n_jobs=40))


def test_a_build_past_its_deadline_returns_none():
    assert coarse_mod.build(_inst(), deadline=time.perf_counter() - 1.0) is None


def test_a_greedy_its_share_cut_is_finished_exactly_as_the_greedy_backend_would():
    inst = _inst()
    whole = best_greedy(inst)
    cut = best_greedy(inst, deadline=time.perf_counter() - 1.0, final=False)
    assert cut.unreached and cut.second_policy_skipped
    stats: dict = {}
    done = pipeline.finish_greedy(cut, None, stats)
    assert stats["resumed"] > 0 and "greedy_second_policy" in stats
    assert done.objective == whole.objective
    assert all(np.array_equal(a, b) for a, b in zip(done.job_gpus, whole.job_gpus))


def test_a_plan_whose_build_leaves_no_room_returns_at_least_the_greedy_backends_placement(
    monkeypatch,
):
    inst = _inst()
    monkeypatch.setattr(pipeline, "PLAN_PER_BUILD", 1e6)  # no LP and packing can fit
    res = placer.solve(inst, "cpsat", time_limit=30, lp_rounding="always", exact_small=False)
    greedy = placer.solve(inst, "greedy", time_limit=30)
    assert res.stats["coarse"].startswith("skipped: its build")
    assert res.stats["primal_from"] == "greedy"
    assert res.objective >= greedy.objective - 1e-6 * abs(greedy.objective)


def test_a_plan_packing_cut_after_one_job_never_ends_below_the_greedy_backend(monkeypatch):
    inst = _inst()
    greedy = placer.solve(inst, "greedy", time_limit=None)
    monkeypatch.setattr(pipeline, "PACK_BUDGET", 1)
    res = placer.solve(inst, "cpsat", time_limit=None, lp_rounding="always", exact_small=False)
    assert res.stats["coarse_native"].endswith("rounding")
    assert res.objective >= greedy.objective - 1e-6 * abs(greedy.objective)
    # the plan's packing was cut and finished by the greedy's growth, and no worse than
    # its own placement uncut would make the comparison pointless: the cut is real
    monkeypatch.setattr(pipeline, "PACK_BUDGET", None)
    whole = placer.solve(inst, "cpsat", time_limit=None, lp_rounding="always", exact_small=False)
    assert res.stats["candidates"] != whole.stats["candidates"]


def test_a_build_stops_at_its_1024th_job_when_its_pace_would_end_past_the_deadline(
    monkeypatch,
):
    """The build checks the clock every 64 jobs; a clock that advances 1 ms a check gives a
    pace (from the 128th job) of 1/64 ms a job, so 1,100 jobs end near 18.4 ms: a deadline
    of 18 ms stops the build at its 1,024th job (17 ms, before the deadline itself), one of
    19 ms lets it finish."""
    from types import SimpleNamespace

    inst = instance_from_dict(generate("scale", 1, gpus=4096, n_jobs=1100))
    assert len(inst.jobs) == 1100

    def run(deadline):
        calls = []

        def clock():
            calls.append(None)
            return 0.001 * len(calls)

        monkeypatch.setattr(coarse_mod, "time", SimpleNamespace(perf_counter=clock))
        return coarse_mod.build(inst, deadline=deadline), len(calls)

    co, checks = run(0.018)
    assert co is None and checks == 1024 // 64 + 1
    co, checks = run(0.019)
    assert co is not None and checks == -(-1100 // 64)


def test_a_second_policy_its_deadline_cut_is_run_again_in_full(monkeypatch):
    """best_greedy's second policy (jobs first: the offers-first policy, the cheaper pass,
    runs first) started before the greedy's share ended and was cut by it: it is flagged as
    skipped, so that finish_greedy runs it in full (100k GPUs at 10 s kept one policy's
    2.76 M where the other gives 2.94 M)."""
    from placer.solvers.decomposition import construct

    inst = _inst()
    assert inst.offers
    whole = best_greedy(inst)
    first_policy = construct.greedy_policy(inst, leases_first=True)
    real = construct.greedy_policy

    def second_cut(inst, leases_first, deadline=None, final=True):
        if not leases_first:  # past its deadline from its first job
            deadline = time.perf_counter() - 1.0
        return real(inst, leases_first, deadline=deadline, final=final)

    monkeypatch.setattr(construct, "greedy_policy", second_cut)
    cut = best_greedy(inst, deadline=time.perf_counter() + 3600, final=False)
    monkeypatch.setattr(construct, "greedy_policy", real)
    assert cut.leases_first
    assert cut.objective == first_policy.objective and cut.second_policy_skipped
    stats: dict = {}
    done = pipeline.finish_greedy(cut, None, stats)
    assert "greedy_second_policy" in stats
    assert done.objective == whole.objective


# the floor under load (issue 16): the plan is skipped before its build when the share of a
# core the solve had since it started says even the build's fastest pace cannot fit, and a
# skipped plan gives the greedy the greedy backend's deadline


def test_the_cpu_share_is_the_cpu_time_over_the_wall_time_once_the_window_is_long_enough(
    monkeypatch,
):
    from types import SimpleNamespace

    clock = {"wall": 10.0, "cpu": 2.0}
    monkeypatch.setattr(
        pipeline,
        "time",
        SimpleNamespace(perf_counter=lambda: clock["wall"], process_time=lambda: clock["cpu"]),
    )
    clock.update(wall=10.05, cpu=2.01)  # under SHARE_WINDOW: not measured
    assert pipeline.cpu_share(10.0, 2.0) is None
    clock.update(wall=12.0, cpu=2.5)  # half a second of CPU in two of wall time
    assert pipeline.cpu_share(10.0, 2.0) == 0.25


def test_a_plan_cannot_fit_when_its_build_at_the_measured_share_ends_past_its_share():
    # 1M GPUs / 5,000 jobs at 30 s: the build's share of the time left is about 6.7 s, and
    # the build 3 s of CPU under load: 0.41 of a core (a build its pace stopped, in
    # bench/floor.py's rounds) cannot, 0.5 (0.53 packed there) can, and an unmeasured
    # share leaves the decision to the build's own pace
    assert abs(pipeline.BUILD_CPU_PER_JOB * 5000 - 3.0) < 1e-9
    assert pipeline.plan_cannot_fit(5000, 0.41, 6.7)
    assert pipeline.plan_cannot_fit(5000, 0.2, 6.7)
    assert not pipeline.plan_cannot_fit(5000, 0.5, 6.7)
    assert not pipeline.plan_cannot_fit(5000, 1.0, 6.7)
    assert not pipeline.plan_cannot_fit(5000, None, 6.7)
    assert pipeline.plan_cannot_fit(5000, 0.0, 6.7)
    # a longer limit leaves the build more: at 60 s (about 14 s) 0.25 of a core can
    assert not pipeline.plan_cannot_fit(5000, 0.25, 14.0)


def _no_build(*a, **k):
    raise AssertionError("the build was started")


def test_a_starved_solve_skips_the_plan_before_its_build_and_keeps_the_greedy_backends_floor(
    monkeypatch,
):
    inst = _inst()
    monkeypatch.setattr(pipeline, "cpu_share", lambda t0, c0: 1e-4)
    monkeypatch.setattr(pipeline.coarse_mod, "build", _no_build)
    res = placer.solve(inst, "cpsat", time_limit=30, lp_rounding="always", exact_small=False)
    greedy = placer.solve(inst, "greedy", time_limit=30)
    assert res.stats["coarse"].startswith("skipped: the solve had 0% of a core")
    assert res.stats["cpu_share"] == 0.0 and res.stats["primal_from"] == "greedy"
    assert res.bound is None
    assert res.objective >= greedy.objective - 1e-6 * abs(greedy.objective)


def test_a_solve_with_a_core_of_its_own_builds_and_packs_its_plan(monkeypatch):
    inst = _inst()
    monkeypatch.setattr(pipeline, "cpu_share", lambda t0, c0: 1.0)
    res = placer.solve(inst, "cpsat", time_limit=30, lp_rounding="always", exact_small=False)
    assert res.stats["coarse_native"].endswith("rounding") and res.stats["cpu_share"] == 1.0
    assert res.bound is not None


def test_a_skipped_plan_gives_the_greedy_the_greedy_backends_deadline(monkeypatch):
    """The greedy's first work starts at the solve's start (its share before a rounded plan
    is 0) and finish_greedy runs to the search's deadline, as the greedy backend's
    best_greedy does: the limit less base.finish_reserve, no margin of its own."""
    from placer.solvers.base import finish_reserve

    inst = _inst()
    seen = {}
    real_best, real_finish = pipeline.best_greedy, pipeline.finish_greedy

    def best(inst, deadline=None, final=True):
        seen["started"] = deadline
        return real_best(inst, deadline, final=final)

    def finish(first, deadline, stats):
        seen["deadline"] = deadline
        return real_finish(first, deadline, stats)

    monkeypatch.setattr(pipeline, "best_greedy", best)
    monkeypatch.setattr(pipeline, "finish_greedy", finish)
    monkeypatch.setattr(pipeline, "cpu_share", lambda t0, c0: 1e-4)
    placer.solve(inst, "cpsat", time_limit=30, lp_rounding="always", exact_small=False)
    assert abs(seen["deadline"] - seen["started"] - (30 - finish_reserve(inst, 30))) < 1e-9


def test_cpsat_is_available_without_importing_ortools():
    """get_solver("cpsat") finds OR-Tools without importing it (0.3-1 s with the pandas it
    pulls in, before the solve's clock starts): a skipped plan never needs it."""
    import subprocess
    import sys

    code = (
        "import sys; from placer.solvers import get_solver; get_solver('cpsat'); "
        "print('ortools.sat.python.cp_model' in sys.modules)"
    )
    root = __import__("pathlib").Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_greedy_rest_counts_the_unreached_jobs_and_a_skipped_second_policy_at_its_pace():
    inst = _inst()
    st = best_greedy(inst)
    assert pipeline.greedy_rest(st, 1.0) == 0.0  # finished: nothing to reserve
    n = len(inst.jobs)
    st.unreached = set(range(10))
    st.second_policy_skipped = False
    want = pipeline.GREEDY_REST_MARGIN * 3.0 / (n - 10) * 10
    assert abs(pipeline.greedy_rest(st, 3.0) - want) < 1e-9
    st.second_policy_skipped = True
    want = pipeline.GREEDY_REST_MARGIN * 3.0 / (n - 10) * (10 + n)
    assert abs(pipeline.greedy_rest(st, 3.0) - want) < 1e-9
    st.unreached = set(range(n))  # no job reached: no pace, no reserve
    assert pipeline.greedy_rest(st, 3.0) == 0.0


def test_the_coarse_solve_leaves_the_cut_greedy_the_time_to_finish(monkeypatch):
    """180k GPUs / 300 jobs at 5 s: CP-SAT found no plan in 1.9 s, and the greedy its share
    had cut, finished in the 1.3 s left, gave 88.2 M where the greedy backend gives 93.7 M.
    The coarse solve's limit now leaves the greedy's estimated rest (greedy_rest)."""
    from placer.solvers.cpsat import CpSatSolver

    inst = _inst()
    limits = []
    real = CpSatSolver.solve_coarse

    def solve_coarse(self, lm, time_limit, *a, **k):
        limits.append(time_limit)
        return real(self, lm, time_limit, *a, **k)

    monkeypatch.setattr(CpSatSolver, "solve_coarse", solve_coarse)
    monkeypatch.setattr(pipeline, "greedy_rest", lambda first, seconds: 20.0)
    t0 = time.perf_counter()
    res = placer.solve(inst, "cpsat", time_limit=30, lp_rounding="never", exact_small=False)
    assert res.stats["greedy_rest_s"] == 20.0
    assert limits and max(limits) <= 30 - 20 - 0.0 + 1e-9
    assert time.perf_counter() - t0 < 40


def test_a_greedy_whose_rest_leaves_no_room_skips_the_coarse_solve_and_keeps_the_floor(
    monkeypatch,
):
    inst = _inst()
    monkeypatch.setattr(pipeline, "greedy_rest", lambda first, seconds: 1e6)
    monkeypatch.setattr(pipeline, "GREEDY_SHARE", 1e-9)  # the greedy's share cuts it at once
    res = placer.solve(inst, "cpsat", time_limit=30, lp_rounding="never", exact_small=False)
    greedy = placer.solve(inst, "greedy", time_limit=30)
    assert res.stats["coarse"].startswith("skipped: the greedy its share cut needs")
    assert res.stats["primal_from"] == "greedy" and res.bound is None
    assert res.objective >= greedy.objective - 1e-6 * abs(greedy.objective)
