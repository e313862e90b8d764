"""The `cpsat` backend: the decomposition with its coarse model solved by OR-Tools CP-SAT.

The only module that imports ortools. build: the shared LinModel -> CpModel (integer
rows via :func:`~placer.solvers.decomposition.linmodel.int_row`, objective coefficients scaled and
rounded up so the proven bound stays valid); run: CpSolver with the time limit, seed,
threads (and `work_limit` = CP-SAT deterministic time); extract: variable values, the
best objective bound, and CP-SAT's status mapped into placer's vocabulary.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import sys
import time
from typing import Any

import numpy as np
from pydantic import Field

from placer.model import Status
from placer.solvers.base import DecompositionOptions
from placer.solvers.decomposition.bounds import dual_bound, row_arrays
from placer.solvers.decomposition.linmodel import LinModel, int_row, without_zeros
from placer.solvers.decomposition.pipeline import (
    LARGE_MODEL,
    CoarseSolution,
    DecompositionSolver,
)

ORTOOLS_IMPORT_S = 0.35  # `from ortools.sat.python import cp_model` in a fresh process, quiet


def solve_cpsat(
    lm: LinModel,
    time_limit: float | None,
    seed: int,
    threads: int,
    work_limit: float | None = None,
    hint: list[float] | None = None,
    presolve: bool = True,
) -> CoarseSolution:
    """`presolve=False`: CP-SAT's presolve off, for a model that propagation alone settles
    (the second branch of plans.solve_first_plans_first, cut off at the first branch's
    optimum: on multicampus-3x its presolve took 0.2-0.3 s of wall time to find what the
    search proves in 0.1 s). `time_limit` holds the whole call: OR-Tools' first import
    (0.35 s in a fresh process) and the model's building come out of CP-SAT's own limit
    (a 0.2 s coarse solve at a 1 s limit took 0.45 s, and the greedy's reserved rest with
    it: docs/solver.md, "Short limits on the headline instance")."""
    t0 = time.perf_counter()
    from ortools.sat.python import cp_model

    zero, rows = without_zeros(lm)
    if rows is None:
        return CoarseSolution(Status.INFEASIBLE, None, None, "INFEASIBLE (a row of fixed terms)")
    model = cp_model.CpModel()
    xs = [
        None if i in zero else model.new_int_var(int(math.ceil(lo)), int(math.floor(hi)), f"x{i}")
        for i, (lo, hi) in enumerate(zip(lm.lb, lm.ub))
    ]
    for coeffs, sense, rhs in rows:
        ic, ir = int_row(coeffs, sense, rhs)
        expr = cp_model.LinearExpr.weighted_sum([xs[i] for i in ic], list(ic.values()))
        if sense == "<=":
            model.add(expr <= ir)
        elif sense == ">=":
            model.add(expr >= ir)
        else:
            model.add(expr == ir)
    big = max((abs(c) for c in lm.obj.values()), default=1.0) or 1.0
    scale = 10.0 ** max(0, math.floor(math.log10(1e12 / big)))
    scale = min(scale, 1e6)
    items = [(i, math.ceil(c * scale)) for i, c in lm.obj.items() if i not in zero]
    model.maximize(
        cp_model.LinearExpr.weighted_sum([xs[i] for i, _ in items], [c for _, c in items])
    )
    if hint is not None:
        for x, v, lo, hi in zip(xs, hint, lm.lb, lm.ub):
            if x is not None:
                model.add_hint(x, min(max(int(round(v)), math.ceil(lo)), math.floor(hi)))
    solver = cp_model.CpSolver()
    p = solver.parameters
    if time_limit is not None:
        p.max_time_in_seconds = max(0.05, float(time_limit) - (time.perf_counter() - t0))
    if work_limit is not None:
        p.max_deterministic_time = float(work_limit)
    p.random_seed = int(seed)
    p.num_workers = max(1, int(threads))
    # LP relaxation cuts for a strong bound even on one worker; stop within 1e-6 relative
    # (the bound returned is the proven one, never the incumbent)
    p.linearization_level = 2
    p.relative_gap_limit = 1e-6
    if not presolve:
        p.cp_model_presolve = False
    status = solver.solve(model)
    name = solver.status_name(status)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        vals = [0.0 if x is None else float(solver.value(x)) for x in xs]
        bound = solver.best_objective_bound / scale + lm.obj_const
        return CoarseSolution(
            Status.OPTIMAL if status == cp_model.OPTIMAL else Status.FEASIBLE, vals, bound, name
        )
    if status == cp_model.INFEASIBLE:
        return CoarseSolution(Status.INFEASIBLE, None, None, name)
    if status == cp_model.MODEL_INVALID:  # pragma: no cover - a bug in the model building
        raise RuntimeError(f"CP-SAT: invalid model: {model.validate()}")
    # UNKNOWN: stopped by a limit before any solution. CP-SAT then reports its bound as it
    # stands, which is 0 (not a bound at all) when no search ran (a work limit of 0): claim
    # no bound rather than a false one.
    return CoarseSolution(Status.NO_SOLUTION, None, None, name)


def solve_lp_highs(lm: LinModel, time_limit: float | None) -> CoarseSolution:
    """The LP relaxation of the coarse model with HiGHS, in memory through OR-Tools' MathOpt
    (HiGHS is compiled into the ortools wheel: no file, no subprocess, no extra package).
    The model goes in as one protocol buffer built from flat arrays. The bound is not the
    solver's reported optimum but weak duality on its dual values
    (:func:`~placer.solvers.decomposition.bounds.dual_bound`), which holds for any
    multipliers; an LP stopped by its limit returns no plan and no bound.

    (OR-Tools' other HiGHS routes, `pywraplp` and `model_builder`, return the rows'
    activities as their dual values in 9.15: MathOpt's are the duals.)"""
    from ortools.math_opt import callback_pb2, model_parameters_pb2, model_pb2, result_pb2
    from ortools.math_opt import parameters_pb2 as pp
    from ortools.math_opt.core.python import solver as core

    t0 = time.perf_counter()
    arrays = row_arrays_cached(lm)
    ri, vi, co, lo, hi = arrays
    n, m = lm.n_vars, len(lo)
    mp = model_pb2.ModelProto()
    mp.variables.ids.extend(range(n))
    mp.variables.lower_bounds.extend(lm.lb)
    mp.variables.upper_bounds.extend(lm.ub)
    mp.variables.integers.extend([False] * n)
    mp.objective.maximize = True
    keys = sorted(lm.obj)
    mp.objective.linear_coefficients.ids.extend(keys)
    mp.objective.linear_coefficients.values.extend([lm.obj[k] for k in keys])
    mp.linear_constraints.ids.extend(range(m))
    mp.linear_constraints.lower_bounds.extend(lo.tolist())
    mp.linear_constraints.upper_bounds.extend(hi.tolist())
    order = np.lexsort((vi, ri))  # MathOpt wants the matrix in row-major order
    mat = mp.linear_constraint_matrix
    mat.row_ids.extend(ri[order].tolist())
    mat.column_ids.extend(vi[order].tolist())
    mat.coefficients.extend(co[order].tolist())
    params = pp.SolveParametersProto()
    if time_limit is not None:
        # building the model (about 1 s at 1M GPUs) is part of the limit
        left = max(0.05, time_limit - (time.perf_counter() - t0))
        params.time_limit.FromTimedelta(datetime.timedelta(seconds=left))
    try:
        res = core.solve(
            mp,
            pp.SOLVER_TYPE_HIGHS,
            pp.SolverInitializerProto(),
            params,
            model_parameters_pb2.ModelSolveParametersProto(),
            None,
            callback_pb2.CallbackRegistrationProto(),
            None,
            None,
        )
    except Exception as e:  # noqa: BLE001 - a solver error is no solution, said so
        return CoarseSolution(Status.NO_SOLUTION, None, None, f"highs: {e}")
    reason = res.termination.reason
    name = result_pb2.TerminationReasonProto.Name(reason).removeprefix("TERMINATION_REASON_")
    if res.termination.limit:
        name += " " + result_pb2.LimitProto.Name(res.termination.limit)  # e.g. LIMIT_TIME
    if reason == result_pb2.TERMINATION_REASON_INFEASIBLE:
        return CoarseSolution(Status.INFEASIBLE, None, None, f"highs:{name}")
    if reason != result_pb2.TERMINATION_REASON_OPTIMAL or not res.solutions:
        return CoarseSolution(Status.NO_SOLUTION, None, None, f"highs:{name}")
    sol = res.solutions[0]
    x = np.zeros(n)
    pv = sol.primal_solution.variable_values
    x[np.asarray(pv.ids, np.int64)] = pv.values
    y = np.zeros(m)
    dv = sol.dual_solution.dual_values
    y[np.asarray(dv.ids, np.int64)] = dv.values
    # the values within their bounds (the plan reads them; the solver's tolerances may not)
    x = np.clip(x, lm.lb, lm.ub)
    bound = dual_bound(lm, y, arrays)
    return CoarseSolution(Status.OPTIMAL, x.tolist(), bound, f"highs:{name}")


def row_arrays_cached(lm: LinModel):
    """:func:`row_arrays` of `lm`, kept for the models that share its rows (the LP dive
    re-solves the same rows with other variable bounds)."""
    key = id(lm.rows)
    hit = _ROWS_CACHE.get("key")
    if hit is not None and hit[0] == key and hit[1] is lm.rows:
        return hit[2]
    arrays = row_arrays(lm)
    _ROWS_CACHE["key"] = (key, lm.rows, arrays)
    return arrays


_ROWS_CACHE: dict = {}


def solve_lp_glop(lm: LinModel, time_limit: float | None) -> CoarseSolution:
    """The LP relaxation of the coarse model with OR-Tools' GLOP (same library as CP-SAT):
    its optimum is a proven bound; its values seed the rounding of very large models."""
    from ortools.linear_solver import linear_solver_pb2, pywraplp

    # the model as one protocol buffer, loaded at once: the same variables, rows and
    # objective in the same order as one call per coefficient made them (the same solve),
    # in half the time (the LP of the coarse model held to first plans, SPEC v3)
    proto = linear_solver_pb2.MPModelProto(maximize=True)
    obj = lm.obj
    for i, (lo, hi) in enumerate(zip(lm.lb, lm.ub)):
        proto.variable.add(
            lower_bound=float(lo), upper_bound=float(hi), objective_coefficient=obj.get(i, 0.0)
        )
    for coeffs, sense, rhs, _ in lm.rows:
        proto.constraint.add(
            var_index=coeffs.keys(),
            coefficient=coeffs.values(),
            lower_bound=-math.inf if sense == "<=" else rhs,
            upper_bound=math.inf if sense == ">=" else rhs,
        )
    solver = pywraplp.Solver.CreateSolver("GLOP")
    err = solver.LoadModelFromProto(proto)
    if err:  # pragma: no cover - a model the proto cannot carry (a bug in the model)
        raise RuntimeError(f"GLOP: the LP did not load: {err}")
    xs = solver.variables()
    cons = solver.constraints()
    if time_limit is not None:
        solver.SetTimeLimit(int(max(0.1, time_limit) * 1000))
    status = solver.Solve()
    if status == pywraplp.Solver.OPTIMAL:
        vals = [min(max(x.solution_value(), lo), hi) for x, lo, hi in zip(xs, lm.lb, lm.ub)]
        # the bound by weak duality on GLOP's duals, not its primal figure (which stops at
        # its tolerances): see solve_lp_highs
        bound = dual_bound(lm, [c.dual_value() for c in cons], row_arrays_cached(lm))
        return CoarseSolution(Status.OPTIMAL, vals, bound, "glop:OPTIMAL")
    if status == pywraplp.Solver.INFEASIBLE:
        return CoarseSolution(Status.INFEASIBLE, None, None, "glop:INFEASIBLE")
    return CoarseSolution(Status.NO_SOLUTION, None, None, f"glop:{status}")


class CpSatOptions(DecompositionOptions):
    """Options of the `cpsat` backend."""

    work_limit: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="CP-SAT deterministic time limit per model solve (repeatable runs with "
        "one thread); 0 = no search (the greedy and local search still run).",
    )


class CpSatSolver(DecompositionSolver):
    name = "cpsat"
    exact = True
    description = "decomposition: coarse CP-SAT model (proven bound) + packing + local search"
    Options = CpSatOptions
    lp_per_var = 1e-4  # HiGHS in memory: 4-8 s for the 60,000 variables of 1M GPUs
    hints = True  # solve_coarse takes a warm start (the greedy's placement, then the best plan)

    @classmethod
    def available(cls) -> bool:
        # found, not imported: importing OR-Tools (and the pandas it pulls in) takes 0.3 s
        # on a quiet machine and 1 s under load, before the solve's clock starts; a solve
        # whose plan is skipped for the greedy never needs it (docs/solver.md, "The floor
        # under load"), and one that needs it imports it inside its limit
        try:
            return importlib.util.find_spec("ortools.sat.python.cp_model") is not None
        except ImportError:  # (a parent package missing)
            return False

    def solve_overhead(self) -> float:
        # CP-SAT's first import in this process, inside the solve's clock (see available):
        # at a 1 s limit on colossus.yaml a coarse solve given 0.2 s spent 0.3 s importing
        # it, and the greedy's reserved rest with it (docs/solver.md, "Short limits")
        if "ortools.sat.python.cp_model" in sys.modules:
            return 0.0
        return ORTOOLS_IMPORT_S

    def solve_coarse(
        self,
        lm: LinModel,
        time_limit: float | None,
        seed: int,
        threads: int,
        hint: list[float] | None = None,
        **options: Any,
    ) -> CoarseSolution:
        return solve_cpsat(
            lm,
            time_limit,
            seed,
            threads,
            options.get("work_limit"),
            hint,
            presolve=not options.get("cutoff_branch", False),
        )

    def solve_relaxation(
        self, lm: LinModel, time_limit: float | None, **options: Any
    ) -> CoarseSolution:
        if lm.n_vars > LARGE_MODEL:
            # GLOP does not solve the LP of 1M GPUs / 5,000 jobs (60,000 variables) in
            # 180 s on this machine (its dual simplex stops ABNORMAL); HiGHS in memory solves
            # it in about 4 s, CBC through PuLP's files in 11 s (docs/solver.md)
            t0 = time.perf_counter()
            sol = solve_lp_highs(lm, time_limit)
            if sol.status != Status.NO_SOLUTION or "LIMIT_" in sol.native:
                return sol
            # HiGHS failed for another reason than the limit: CBC through PuLP (a core
            # dependency) with the time left
            from placer.solvers.mip import solve_lp

            if time_limit is not None:
                time_limit -= time.perf_counter() - t0
                if time_limit <= 0.5:
                    return sol
            return solve_lp(lm, time_limit, "cbc")
        return solve_lp_glop(lm, time_limit)
