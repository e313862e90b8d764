"""What every backend shares: the result type, the statuses, and the final gate.

Each backend is ``build -> run -> extract`` inside :meth:`Solver.solve`; whatever it
extracts passes :func:`finalize`, which rebuilds the SPEC 2 placement, checks it with the
checker (a violation is a bug: :class:`~placer.errors.SolverError`, never a returned
placement) and re-scores it with the kernel.

Imports numpy, the kernel and the checker; never a solver library.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from placer.check import check_compiled
from placer.errors import ArgumentTypeError, SolverError, UsageError
from placer.kernel.compiled import Compiled, jobs_under
from placer.kernel.score import Score, score_compiled
from placer.model import Instance, Placement, Status
from placer.solvers import plans as plans_mod

OPTIMAL, FEASIBLE, INFEASIBLE, NO_SOLUTION = (
    Status.OPTIMAL,
    Status.FEASIBLE,
    Status.INFEASIBLE,
    Status.NO_SOLUTION,
)


class Options(BaseModel):
    """A backend's options (``placer.solve(inst, solver, **options)``, ``--option KEY=VALUE``).

    Each backend declares its own subclass as ``Solver.Options``; unknown names are refused
    (``extra="forbid"``), so a misspelt option is an error, never silently ignored.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class DecompositionOptions(Options):
    """Options of the exact backends (`cpsat`, `mip`): the decomposition pipeline."""

    exact_small: bool = Field(
        True, description="Use the exhaustive column model when at most 64 GPUs are free."
    )
    lp_rounding: str = Field(
        "auto",
        pattern="^(auto|always|never)$",
        description="Bound and plan from the coarse model's LP relaxation and rounding: "
        "auto (past 20,000 coarse variables), always or never.",
    )
    progress: Callable[..., Any] | None = Field(
        None, description="Called with stage=, incumbent=, bound=, elapsed= (the live view)."
    )


def validate_call(
    cls: type[Solver],
    inst: Any,
    time_limit: Any,
    seed: Any,
    threads: Any,
    options: dict[str, Any],
) -> tuple[float | None, int, int, dict[str, Any]]:
    """Check a solve's arguments; return (time_limit, seed, threads, options) normalised.

    Raises :class:`~placer.errors.ArgumentTypeError` / :class:`~placer.errors.UsageError`
    naming the argument: the library's misuse never surfaces as an AttributeError inside.
    """
    if not isinstance(inst, Instance):
        hint = (
            "; load it first with placer.load_instance(path)"
            if isinstance(inst, str) or hasattr(inst, "__fspath__")
            else ""
        )
        raise ArgumentTypeError(
            f"instance: expected a placer.Instance, got {type(inst).__name__}{hint}"
        )
    if time_limit is not None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, Real):
            raise ArgumentTypeError(
                f"time_limit: expected seconds as a number or None, got {time_limit!r}"
            )
        if not math.isfinite(time_limit) or time_limit <= 0:
            raise UsageError(
                f"time_limit: must be a finite number of seconds > 0, or None for no limit; "
                f"got {time_limit!r}"
            )
        time_limit = float(time_limit)
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ArgumentTypeError(f"seed: expected an integer, got {seed!r}")
    if not -(2**31) <= seed < 2**31:  # CP-SAT's random_seed is 32-bit; one range for all
        raise UsageError(f"seed: must be a 32-bit integer (-2**31 .. 2**31-1), got {seed}")
    if isinstance(threads, bool) or not isinstance(threads, Integral):
        raise ArgumentTypeError(f"threads: expected an integer >= 1, got {threads!r}")
    if threads < 1:
        raise UsageError(f"threads: must be >= 1, got {threads}")
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(str(x) for x in first["loc"]) or "options"
        valid = ", ".join(cls.Options.model_fields) or "none"
        msg = first["msg"] if first["type"] != "extra_forbidden" else "unknown option"
        raise UsageError(f"option {name}: {msg} (backend {cls.name!r} takes: {valid})") from None
    return time_limit, int(seed), int(threads), opts.model_dump(exclude_unset=True)


@dataclass
class Result:
    """A solve's outcome (SPEC 2): status, placement, kernel score, bound, gap, time."""

    status: Status
    solver: str
    placement: Placement
    objective: float | None
    bound: float | None
    gap: float | None
    seconds: float
    score: Score | None = None
    reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    # why it returned with a gap while its time limit had time left (None: no gap, or the
    # limit was reached)
    stopped: str | None = None
    # the placement as arrays (set by finalize; what the plans layer maps back)
    compiled: Compiled | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return self.placement.model_dump(exclude_none=False)


def gap_of(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None:
        return None
    return max(0.0, (bound - objective) / max(abs(bound), 1.0))


def finish_reserve(inst: Instance, time_limit: float) -> float:
    """Seconds a backend keeps, out of `time_limit`, for what follows its search: the
    reasons of the jobs left out, the check, the re-score and the result's GPU ids. They
    grow with the GPUs and the jobs, so a fixed share of the limit would overrun it at scale.
    At 1M GPUs / 5,000 jobs they took 1.2-3.9 s of wall time in bench/anytime.py's runs
    (docs/solver.md; 1.4 s of CPU): 2.5 s for 1M GPUs and 1.5 s for 5,000 jobs keep a
    margin over the slowest on a loaded machine, and the limit's 3% another."""
    ix = inst.index
    need = 0.03 * time_limit + 2.5e-6 * ix.n_gpus + 3e-4 * len(inst.jobs)
    return min(0.4 * time_limit, need)


def finalize(
    inst: Instance,
    solver: str,
    job_gpus: list[np.ndarray],
    offer_blocks: list[list[tuple[int, int]]],
    reasons: dict[str, str],
    bound: float | None,
    started: float,
    proven_optimal: bool = False,
    stats: dict[str, Any] | None = None,
    job_plans: list[int | None] | None = None,
    stopped: str | None = None,
) -> Result:
    """Check, score and package a placement; raise SolverError on any violation.
    `job_plans` (v3): each job's chosen plan (index into its `plans`); `stopped`: why the
    solve returned with a gap before its limit (kept only while there is a gap)."""
    ix = inst.index
    plans = [
        (k if k is not None else job.default_plan) if job.plans else None
        for job, k in zip(inst.jobs, job_plans or [None] * len(inst.jobs))
    ]
    jobs = jobs_under(inst, plans)
    cp = Compiled(
        [np.asarray(g, np.int64) for g in job_gpus],
        offer_blocks,
        [len(g) // j.unit_size for g, j in zip(job_gpus, jobs)],
        job_plans=plans,
        declared_plans=[j.plan for j in jobs],
    )
    violations = check_compiled(inst, cp)
    if violations:
        raise SolverError(
            f"backend {solver!r} produced an infeasible placement (a bug): "
            + "; ".join(str(v) for v in violations[:5])
        )
    sc = score_compiled(inst, cp.job_gpus, cp.offer_blocks, plans)
    obj = sc.objective
    if bound is not None and bound < obj:
        # a bound below a feasible placement's score is a bug in the bound, never hidden
        if bound < obj - 1e-6 * max(1.0, abs(obj)):
            raise SolverError(
                f"backend {solver!r}: bound {bound} is below the score {obj} of "
                "a feasible placement (a bug)"
            )
        bound = obj
    gap = gap_of(obj, bound)
    status = OPTIMAL if (proven_optimal or (gap is not None and gap <= 1e-9)) else FEASIBLE
    if status == OPTIMAL or gap is None:
        stopped = None
    seconds = time.perf_counter() - started
    rows = []
    for job, g in zip(jobs, cp.job_gpus):
        row: dict[str, Any] = {"name": job.name, "units": len(g) // job.unit_size}
        if len(g) and job.plan is not None:
            row["plan"] = job.plan
        row["gpus"] = ix.gpu_ids(g)
        if job.name in reasons and len(g) // job.unit_size < job.units_max:
            row["reason"] = reasons[job.name]
        rows.append(row)
    leases = []
    for o, bl in zip(inst.offers, offer_blocks):
        if bl:
            leases.append(
                {
                    "offer": o.name,
                    "blocks": [ix.domain_path(lv, d) for lv, d in bl],
                    "gpus": next(x["gpus"] for x in sc.offers if x["offer"] == o.name),
                }
            )
    placement = Placement.model_validate(
        {
            "instance": inst.name,
            "solver": solver,
            "status": status,
            "objective": obj,
            "bound": bound,
            "gap": gap,
            "seconds": round(seconds, 3),
            "stopped": stopped,
            "jobs": rows,
            "leases": leases,
            "score": sc.to_dict(),
        }
    )
    return Result(
        status,
        solver,
        placement,
        obj,
        bound,
        gap,
        seconds,
        sc,
        stats=stats or {},
        compiled=cp,
        stopped=stopped,
    )


def no_placement(
    inst: Instance,
    solver: str,
    status: Status,
    reason: str,
    started: float,
    bound: float | None = None,
) -> Result:
    """An `infeasible` or `no_solution` result: no jobs' GPUs, a top-level reason."""
    seconds = time.perf_counter() - started
    placement = Placement.model_validate(
        {
            "instance": inst.name,
            "solver": solver,
            "status": status,
            "objective": None,
            "bound": bound,
            "gap": None,
            "seconds": round(seconds, 3),
            "reason": reason,
            "jobs": [],
            "leases": [],
        }
    )
    return Result(status, solver, placement, None, bound, None, seconds, None, reason=reason)


class Solver:
    """A backend: ``solve(instance, time_limit, seed, threads) -> Result``.

    Backends implement :meth:`_solve`; :meth:`solve` handles SPEC v3 plans around it
    (:mod:`placer.solvers.plans`): an instance with plans is solved as its virtual instance of
    one job per plan, and the result mapped back, checked and re-scored on the real one.
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = False  # proves bounds
    peer: ClassVar[bool] = False  # a peer scheduler's re-implementation (benchmarks)
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options  # the backend's validated options

    @classmethod
    def available(cls) -> bool:
        return True

    def solve(
        self,
        inst: Instance,
        time_limit: float | None = 60.0,
        seed: int = 0,
        threads: int = 1,
        **options: Any,
    ) -> Result:
        """Solve `inst` within `time_limit` seconds (SPEC 2.2)."""
        started = time.perf_counter()
        res = self._solve_plans(inst, time_limit, seed, threads, **options)
        if self.exact and not self.peer:
            res = peer_floor(self.name, inst, res, started, time_limit)
        return res

    def _solve_plans(
        self,
        inst: Instance,
        time_limit: float | None,
        seed: int,
        threads: int,
        **options: Any,
    ) -> Result:
        """`_solve`, on the instance with each job's plans as variants (SPEC v3)."""
        if not plans_mod.has_plans(inst):
            return self._solve(inst, time_limit, seed, threads, **options)
        started = time.perf_counter()
        vinst, groups = plans_mod.expand(inst, first_only=self.peer)
        left = time_limit
        if time_limit is not None:
            # the mapping back checks and scores once more: keep a share of the limit for it
            left = max(0.05, 0.97 * time_limit - (time.perf_counter() - started))
        res = self._solve(vinst, left, seed, threads, **options)
        if not res.status.has_placement or res.compiled is None:
            out = no_placement(inst, self.name, res.status, res.reason or "", started, res.bound)
            out.stats = res.stats
            return out
        vreasons = {row.name: row.reason for row in res.placement.jobs if row.reason}
        job_gpus, job_plans, reasons = plans_mod.collapse(
            inst, groups, res.compiled.job_gpus, vreasons
        )
        return finalize(
            inst,
            self.name,
            job_gpus,
            res.compiled.offer_blocks,
            reasons,
            res.bound,
            started,
            proven_optimal=res.status == OPTIMAL,
            stats={**res.stats, "plan_variants": len(groups.owner)},
            job_plans=job_plans,
            stopped=res.stopped,
        )

    def _solve(
        self,
        inst: Instance,
        time_limit: float | None,
        seed: int,
        threads: int,
        **options: Any,
    ) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError


PEER_FLOOR_GPUS = 512  # free GPUs up to which an exact backend's result is floored by the peers


def peer_floor(
    name: str, inst: Instance, res: Result, started: float, time_limit: float | None
) -> Result:
    """An exact backend's unproven result on a small instance (at most PEER_FLOOR_GPUS free
    GPUs; the eight peers take 0.06 s together on 48 GPUs, 0.12 s on 1,015), raised to the
    best peer baseline's placement when one scores higher: a portfolio floor, so that cpsat
    and mip never return less than firstfit or Kueue would on the instances a scheduler
    engineer checks them on by hand. The bound is the backend's own, still proven; the
    placement is checked and re-scored like any other; `stats["primal_from"]` names the
    peer and `stats["decomposition"]` keeps the backend's own objective."""
    if res.status != FEASIBLE or res.objective is None or res.compiled is None:
        return res
    if int(inst.index.available.sum()) > PEER_FLOOR_GPUS:
        return res
    from placer.solvers import get_solver, names

    deadline = None if time_limit is None else started + 0.97 * time_limit
    best, best_name = res, None
    for peer in names(peer=True):
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left < 0.05:
            break
        other = get_solver(peer).solve(inst, time_limit=1.0 if left is None else min(1.0, left))
        tol = 1e-9 * max(1.0, abs(best.objective))
        if other.objective is not None and other.compiled is not None:
            if other.objective > best.objective + tol:
                best, best_name = other, peer
    if best_name is None:
        return res
    cp = best.compiled
    reasons = {row.name: row.reason for row in best.placement.jobs if row.reason}
    stats = {**res.stats, "primal_from": f"peer {best_name}", "decomposition": res.objective}
    return finalize(
        inst,
        name,
        cp.job_gpus,
        cp.offer_blocks,
        reasons,
        res.bound,
        started,
        stats=stats,
        job_plans=cp.job_plans,
        stopped=res.stopped,
    )
