"""The `mip` backend: the decomposition with its coarse model solved as a MIP through PuLP
(HiGHS when highspy is installed, else CBC; `--mip-solver` picks one).

The only module that imports pulp. build: LinModel -> LpProblem; run: the chosen solver with
time limit and threads; extract: values, status from PuLP's solution status, and a proven
bound: HiGHS's MIP dual bound, CBC's optimum when proven, else the LP relaxation's optimum.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from pydantic import Field

from placer.model import Status
from placer.solvers.base import DecompositionOptions
from placer.solvers.decomposition.linmodel import LinModel
from placer.solvers.decomposition.pipeline import CoarseSolution, DecompositionSolver

GAP = 1e-7
# the least time given to one MIP or LP solve: the pipeline's share of the limit is the
# solver's to keep (SPEC 2.2), so no floor may stretch it (0.5 s and CBC's whole seconds did)
MIN_SECONDS = 0.05


def _problem(lm: LinModel, relax: bool):
    import pulp

    prob = pulp.LpProblem("placer", pulp.LpMaximize)
    # PuLP >= 3.3 attaches variables to the problem; older versions construct them directly
    new = getattr(prob, "add_variable", None)
    make = new if new is not None else (lambda name, *a, **k: pulp.LpVariable(name, *a, **k))
    xs = [
        make(
            f"x{i}",
            lowBound=lo,
            upBound=hi,
            cat=("Integer" if (isint and not relax) else "Continuous"),
        )
        for i, (lo, hi, isint) in enumerate(zip(lm.lb, lm.ub, lm.integer))
    ]
    prob += pulp.lpSum(c * xs[i] for i, c in lm.obj.items()) + lm.obj_const
    for k, (coeffs, sense, rhs, _) in enumerate(lm.rows):
        e = pulp.lpSum(c * xs[i] for i, c in coeffs.items())
        prob += (e <= rhs if sense == "<=" else e >= rhs if sense == ">=" else e == rhs), f"r{k}"
    return prob, xs


def backend(name: str = "auto"):
    import pulp

    if name in ("auto", "highs"):
        h = pulp.HiGHS(msg=False)
        if h.available():
            return "highs"
        if name == "highs":
            return None
    return "cbc"


def _solver(which: str, time_limit: float | None, threads: int, seed: int):
    import pulp

    if which == "highs":
        opts = {"random_seed": int(seed)}
        return pulp.HiGHS(msg=False, timeLimit=time_limit, threads=threads, gapRel=GAP, **opts)
    with warnings.catch_warnings():
        # PuLP >= 3.3 deprecates its bundled CBC for PuLP 4.0; it is what `pip install pulp`
        # ships today, so it stays the default until HiGHS is installed
        warnings.simplefilter("ignore", DeprecationWarning)
        return _cbc(pulp, time_limit, threads, seed)


def _cbc(pulp, time_limit, threads, seed):
    return pulp.PULP_CBC_CMD(
        msg=False,
        # CBC takes fractional seconds; rounding up to 1 s overran short limits (a 0.6 s
        # solve of 3,072 GPUs returned at 1.4 s)
        timeLimit=None if time_limit is None else max(MIN_SECONDS, float(time_limit)),
        # `-threads 1` is not CBC's serial mode: it starts the threaded search, whose process
        # sometimes took 10 s to end (the bundled CBC 2.10, on a 6-variable model with a
        # 0.5 s limit: 1% of runs with two solves at once, and once a 36% gap in the quick
        # benchmark at 10 s); without the option CBC runs serial, as one thread asks
        threads=threads if threads and threads > 1 else None,
        gapRel=GAP,
        options=[f"randomCbcSeed {int(seed) + 1}"],
    )


def solve_mip(
    lm: LinModel, time_limit: float | None, seed: int, threads: int, which: str = "auto"
) -> CoarseSolution:
    import pulp

    which = backend(which) or "cbc"
    t0 = time.perf_counter()
    prob, xs = _problem(lm, relax=False)
    if time_limit is not None:
        time_limit = max(MIN_SECONDS, time_limit - (time.perf_counter() - t0))
    prob.solve(_solver(which, time_limit, threads, seed))
    st = prob.sol_status
    status = {
        pulp.LpSolutionOptimal: Status.OPTIMAL,
        pulp.LpSolutionIntegerFeasible: Status.FEASIBLE,
        pulp.LpSolutionInfeasible: Status.INFEASIBLE,
        pulp.LpSolutionUnbounded: Status.INFEASIBLE,
        pulp.LpSolutionNoSolutionFound: Status.NO_SOLUTION,
    }.get(st, Status.NO_SOLUTION)
    if pulp.LpStatus.get(prob.status) == "Infeasible":
        status = Status.INFEASIBLE
    vals = None
    obj = None
    if status in (Status.OPTIMAL, Status.FEASIBLE):
        vals = [float(x.value() or 0.0) for x in xs]
        obj = lm.value(vals)
    bound = None
    if which == "highs":
        try:
            info = prob.solverModel.getInfo()
            # PuLP hands HiGHS min -sum(c x), without the objective's constant
            db = -float(info.mip_dual_bound) + lm.obj_const
            if abs(db) < 1e300:
                bound = db
        except Exception:  # noqa: BLE001 - older highspy: fall back to the LP bound
            bound = None
    if status == Status.OPTIMAL and obj is not None:
        # CBC proves its optimum within its relative gap (GAP; an absolute 1e-10 at an
        # objective of 0), and the objective of its values is summed here again: a hair
        # (1e-9 of it) on top. (An absolute 1e-6 made every `optimal` solve of an instance
        # worth about 0, one with no jobs say, report a gap of 1.1e-6)
        proven = obj + (GAP + 1e-9) * max(1.0, abs(obj))
        bound = proven if bound is None else min(bound, proven) if bound >= obj else proven
    if bound is None and status != Status.INFEASIBLE:
        left = (
            None
            if time_limit is None
            else max(MIN_SECONDS, time_limit - (time.perf_counter() - t0))
        )
        rp, _ = _problem(lm, relax=True)
        rp.solve(_solver(which, left, threads, seed))
        if rp.sol_status == pulp.LpSolutionOptimal:
            bound = float(pulp.value(rp.objective))
    return CoarseSolution(status, vals, bound, f"{which}:{pulp.LpStatus.get(prob.status)}")


def solve_lp(lm: LinModel, time_limit: float | None, which: str = "auto") -> CoarseSolution:
    """The LP relaxation through PuLP (HiGHS or CBC): a proven bound and fractional values."""
    import pulp

    which = backend(which) or "cbc"
    t0 = time.perf_counter()
    rp, xs = _problem(lm, relax=True)
    if time_limit is not None:
        # building the PuLP problem of a large model takes seconds: it is part of the limit
        time_limit = max(MIN_SECONDS, time_limit - (time.perf_counter() - t0))
    rp.solve(_solver(which, time_limit, 1, 0))
    if rp.sol_status == pulp.LpSolutionOptimal:
        vals = [float(x.value() or 0.0) for x in xs]
        return CoarseSolution(Status.OPTIMAL, vals, float(pulp.value(rp.objective)), f"{which}:LP")
    if pulp.LpStatus.get(rp.status) == "Infeasible":
        return CoarseSolution(Status.INFEASIBLE, None, None, f"{which}:LP infeasible")
    return CoarseSolution(
        Status.NO_SOLUTION, None, None, f"{which}:LP {pulp.LpStatus.get(rp.status)}"
    )


class MipOptions(DecompositionOptions):
    """Options of the `mip` backend."""

    mip_solver: str = Field(
        "auto",
        pattern="^(auto|highs|cbc)$",
        description="The MIP solver behind PuLP: auto (HiGHS when highspy is installed, "
        "else CBC), highs or cbc.",
    )


class MipSolver(DecompositionSolver):
    name = "mip"
    exact = True
    description = "decomposition: coarse MIP via PuLP (HiGHS if installed, else CBC)"
    Options = MipOptions

    @classmethod
    def available(cls) -> bool:
        try:
            import pulp  # noqa: F401
        except ImportError:
            return False
        return True

    def solve_coarse(
        self, lm: LinModel, time_limit: float | None, seed: int, threads: int, **options: Any
    ) -> CoarseSolution:
        return solve_mip(lm, time_limit, seed, threads, options.get("mip_solver", "auto"))

    def solve_relaxation(
        self, lm: LinModel, time_limit: float | None, **options: Any
    ) -> CoarseSolution:
        return solve_lp(lm, time_limit, options.get("mip_solver", "auto"))
