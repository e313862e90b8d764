"""The decomposition shared by the exact backends (`cpsat`, `mip`).

Algorithm overview
1. Build the coarse model (:mod:`.coarse`): job -> GPU type and sites with
   optimistic kernel coefficients, offers -> counts of identical blocks.
2. Solve it with the backend (about half the time limit). Its proven optimum (or best
   bound) is the bound reported for the kernel's objective; a coarse model with no
   feasible point proves the instance infeasible (running jobs that cannot all stay).
3. Primal: lease the chosen counts of whole free blocks (tree order), then pack each job's
   units per site with :class:`~placer.solvers.decomposition.pack.Packer`, largest jobs first; a job
   that does not fit as planned falls back to the kernel-scored greedy candidates.
   Elastic jobs grow into what is left; leftover whole blocks go to offers not accepted.
   Mixed-type (SPEC v2) jobs: the plan is solved a second time with their options valued
   at the goodput the first packing realised, and packed too (a plan, not a bound).
4. Compare with the greedy backend's placement; keep the better.
5. Local search until the deadline (or a fixed number of passes): remove each job and
   put it back at its best kernel-scored candidate when that raises the objective.
6. :func:`~placer.solvers.base.finalize` checks and re-scores the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from placer.model import Instance, Status
from placer.solvers.base import (
    INFEASIBLE,
    NO_SOLUTION,
    DecompositionOptions,
    Result,
    Solver,
    finalize,
    no_placement,
)
from placer.solvers.decomposition import coarse as coarse_mod
from placer.solvers.decomposition.construct import (
    State,
    best_greedy,
    grow,
    job_order,
    offer_order,
    scope_ok,
    stage_major,
)
from placer.solvers.decomposition.exact_small import SMALL_GPUS, SmallExact, build_columns
from placer.solvers.decomposition.linmodel import LinModel
from placer.solvers.plans import first_plan_rows, must_place, siblings

LARGE_MODEL = 20_000  # coarse variables above which the LP relaxation is rounded instead
MAX_PLAN_ROUNDS = 4  # re-pricing rounds over a mixed job's plans (SPEC v3)


def round_plan(inst: Instance, co: coarse_mod.Coarse, x: list[float]) -> list[float]:
    """An integral plan from the LP relaxation's values: per job the option with the largest
    weight, its units scaled up by that weight and rounded down; offers accepted at >= 1/2
    with their block counts likewise (the packer and its fallbacks absorb what does not
    fit)."""
    vals = [0.0] * len(x)
    best: dict[int, coarse_mod.Option] = {}  # per group (SPEC v3: one variant of a job)
    for op in co.options:
        w = x[op.b]
        key = siblings(inst, op.job)[0]
        if w > 1e-6 and (key not in best or w > x[best[key].b] + 1e-12):
            best[key] = op
    for op in best.values():
        w = x[op.b]
        vals[op.b] = 1.0
        for v in [*op.n.values(), *op.parts.values()]:
            vals[v] = float(int(x[v] / w + 1e-9))
    for o, a in co.offer_vars.items():
        if x[a] >= 0.5:
            vals[a] = 1.0
            for (oo, _g), y in co.lease_vars.items():
                if oo == o:
                    vals[y] = float(int(x[y] / x[a] + 1e-9))
    return vals


def mixed_factors(
    inst: Instance, co: coarse_mod.Coarse, vals: list[float], st: State
) -> dict[int, float]:
    """Per mixed-type (SPEC v2) job that `vals` planned and `st` packed: what the packing
    realised over what the option planned, per speed-weighted GPU (the job's kernel value
    over the option's planned value; below 1 when the plan was optimistic)."""
    ix = inst.index
    lm = co.model
    factor: dict[int, float] = {}
    for op in co.options:
        if op.kind != "mixed" or vals[op.b] < 0.5 or len(st.job_gpus[op.job]) == 0:
            continue
        job = inst.jobs[op.job]
        terms = [op.value] if op.value >= 0 else list(op.parts.values())
        planned = sum(lm.obj.get(v, 0.0) * vals[v] for v in terms)
        w_plan = sum(
            float(ix.type_speed[t]) * job.unit_size * op.step * vals[v]
            for (_s, t), v in op.parts.items()
        )
        g = st.job_gpus[op.job]
        w_real = float(ix.type_speed[ix.gpu_type[g]].sum())
        real = float(st.scorer.scores[op.job].value[0])
        if planned <= 0 or w_plan <= 0 or w_real <= 0 or not np.isfinite(real):
            continue
        factor[op.job] = (real / w_real) / (planned / w_plan)
    return factor


def repriced(co: coarse_mod.Coarse, factor: dict[int, float]) -> LinModel | None:
    """A copy of the coarse model whose mixed options of each job in `factor` are scaled by
    its factor where below 1 (a plan, not a bound); None when no factor is below 1."""
    lm = co.model
    low = {j: f for j, f in factor.items() if f < 1.0}
    if not low:
        return None
    obj = dict(lm.obj)
    for op in co.options:
        f = low.get(op.job)
        if f is None or op.kind != "mixed":
            continue
        for v in [op.value] if op.value >= 0 else list(op.parts.values()):
            obj[v] = obj.get(v, 0.0) * f
    return LinModel(lm.names, lm.lb, lm.ub, lm.integer, lm.rows, obj, lm.obj_const)


def _plan_holds(inst: Instance, co: coarse_mod.Coarse, factors: dict[int, float]) -> list:
    """SPEC v3: for a job of which several plans were priced, one set of rows per priced
    plan holding the job to it (the other plans' options at 0); [] when there is none."""
    holds = []
    for j in factors:
        sib = siblings(inst, j)
        if sum(1 for s in sib if s in factors) < 2:
            continue
        others = [op.b for op in co.options if op.job in sib and op.job != j]
        holds.append([({b: 1.0 for b in others}, "<=", 0.0, f"plan {inst.jobs[j].name}")])
    return holds


def _with_rows(lm: LinModel, rows: list) -> LinModel:
    return LinModel(lm.names, lm.lb, lm.ub, lm.integer, [*lm.rows, *rows], lm.obj, lm.obj_const)


def reprice_mixed(
    inst: Instance, co: coarse_mod.Coarse, vals: list[float], st: State
) -> LinModel | None:
    """The coarse model with its mixed-type options priced at what the packing of `vals`
    realised (:func:`mixed_factors`, :func:`repriced`)."""
    return repriced(co, mixed_factors(inst, co, vals, st))


def both_orders(inst, co, vals, deadline) -> list[State]:
    """A plan packed in both orders of :func:`primal_from_coarse` (fragmentation depends on
    it); the second only while time is left."""
    out = [primal_from_coarse(inst, co, vals, deadline)]
    if deadline is None or time.perf_counter() < deadline:
        out.append(primal_from_coarse(inst, co, vals, deadline, order="tight"))
    return out


def at_fewest_units(inst: Instance, co: coarse_mod.Coarse, lm: LinModel) -> LinModel | None:
    """`lm` with every mixed-type job that has mixed options held to its fewest units (a
    plan, not a bound: the rows are added to a copy)."""
    rows = list(lm.rows)
    for j in sorted({op.job for op in co.options if op.kind == "mixed"}):
        job = inst.jobs[j]
        ops = [op for op in co.options if op.job == j and op.kind != "stay"]
        n_min = max(job.units_min, 1)
        row: dict[int, float] = {}
        for op in ops:
            for v in [*op.n.values(), *op.parts.values()]:
                row[v] = row.get(v, 0.0) + float(op.step)
        step = max((op.step for op in ops), default=1)
        rows.append((row, "<=", float(-(-n_min // step) * step), f"fewest units {job.name}"))
    if len(rows) == len(lm.rows):
        return None
    return LinModel(lm.names, lm.lb, lm.ub, lm.integer, rows, lm.obj, lm.obj_const)


@dataclass
class CoarseSolution:
    status: Status
    values: list[float] | None
    bound: float | None
    native: str


def primal_from_coarse(
    inst: Instance,
    co: coarse_mod.Coarse,
    vals: list[float],
    deadline: float | None = None,
    order: str = "size",
) -> State:
    """Realise the coarse plan (step 3 of the overview); past `deadline` the jobs not yet
    packed keep 0 units (the state stays a valid placement)."""
    st = State(inst)
    ix = inst.index
    chosen = [op for op in co.options if vals[op.b] > 0.5]
    # the GPUs of running jobs that the plan keeps where they are: blocks that hold them are
    # leased last (a group's blocks are interchangeable for the plan, not for these jobs)
    kept = np.zeros(ix.n_gpus, bool)
    for op in chosen:
        if op.kind == "stay":
            kept[ix.cached_indices(inst.jobs[op.job].current)] = True
    # leases: chosen counts of whole free blocks per group
    for o in offer_order(inst):
        if vals[co.offer_vars[o]] < 0.5:
            continue
        offer = inst.offers[o]
        cap = offer.max_gpus if offer.max_gpus is not None else float("inf")
        leased = sum(len(st.block_gpus(b)) for b in st.offer_blocks[o])
        for (oo, g), y in sorted(co.lease_vars.items()):
            if oo != o:
                continue
            want = int(round(vals[y]))
            grp = co.groups[g]
            have = sum(
                1 for lv, d in st.offer_blocks[o] if lv == grp["level"] and d in set(grp["members"])
            )
            members = sorted(
                grp["members"],
                key=lambda d: bool(kept[slice(*ix.gpu_range(grp["level"], d))].any()),
            )
            for d in members:
                if have >= want:
                    break
                if (grp["level"], d) in st.offer_blocks[o]:
                    continue
                a, b = ix.gpu_range(grp["level"], d)
                gpus = st.block_gpus((grp["level"], d))
                sites = {int(ix.dom[0][ix.gpu_range(*bl)[0]]) for bl in st.offer_blocks[o]}
                if (
                    (st.free[a:b] | ~ix.available[a:b]).all()
                    and (st._power(gpus) <= st.power_left + 1e-9).all()
                    and leased + len(gpus) <= cap
                    and not (offer.single_site and sites and grp["site"] not in sites)
                ):
                    st.add_block(o, (grp["level"], d))
                    leased += len(gpus)
                    have += 1
        n = sum(len(st.block_gpus(b)) for b in st.offer_blocks[o])
        if n < offer.min_gpus and not offer.committed_blocks:
            st.clear_offer(o)

    def size(op):
        units = sum(vals[v] for v in [*op.n.values(), *op.parts.values()])
        return units * op.step * inst.jobs[op.job].unit_size

    if order == "size":
        # running jobs that stay first, then jobs with a spread (the most constrained),
        # then the largest first (they need the largest whole domains)
        def key(op):
            return (
                op.kind != "stay",
                inst.jobs[op.job].spread is None,
                -size(op),
                inst.jobs[op.job].name,
            )
    else:  # "tight": the jobs with the most units per GPU of scope first, then size

        def key(op):
            job = inst.jobs[op.job]
            return (op.kind != "stay", -job.unit_size, -size(op), job.name)

    chosen.sort(key=key)
    for op in chosen:
        j = op.job
        job = inst.jobs[j]
        if deadline is not None and time.perf_counter() > deadline and not must_place(inst, j):
            continue
        if op.kind == "stay":
            # `current` may break rules (only pinned jobs are guaranteed valid): keep it only
            # where it is valid now, else place the job afresh
            cur = ix.cached_indices(job.current)
            if (
                st.free[cur].all()
                and scope_ok(inst, j, cur)
                and (st._power(cur) <= st.power_left + 1e-9).all()
            ):
                st.set_job(j, cur)
                continue
            st.place_best(j)
            continue
        variants = []
        if op.kind == "mixed":  # SPEC v2: units per (site, type) as planned, packed in turn
            parts = []
            for (s, t), v in sorted(op.parts.items()):
                n = int(round(vals[v])) * op.step
                g = st.packer.place(job, t, n, st.site_region(s)) if n > 0 else None
                if g is not None:
                    parts.append(g)
                    st.packer.take(g)
            for g in parts:
                st.packer.give(g)
            if parts:
                g = np.concatenate(parts)
                if (
                    len(g) // job.unit_size >= max(job.units_min, 1)
                    and scope_ok(inst, j, g)
                    and (st._power(g) <= st.power_left + 1e-9).all()
                ):
                    variants.append(g)
        for B in st.packer.layouts(job) if op.kind != "mixed" else []:
            parts = []
            ok = True
            for s, v in sorted(op.n.items()):
                n = int(round(vals[v])) * op.step
                if n <= 0:
                    continue
                g = st.packer.place(job, op.type, n, st.site_region(s), B)
                if g is None:
                    ok = False
                    break
                parts.append(g)
                st.packer.take(g)
            for g in parts:
                st.packer.give(g)
            if ok and parts:
                g = np.concatenate(parts)
                room = st.power_left + 1e-9
                variants += [
                    v
                    for v in (g, stage_major(job, g))
                    if v is not None and scope_ok(inst, j, v) and (st._power(v) <= room).all()
                ]
        if variants:
            best, _ = st.best_candidate(j, variants)
            st.set_job(j, best if best is not None else variants[0])
            continue
        st.place_best(j, sites=sorted(op.sites))
        if len(st.job_gpus[j]) == 0:
            st.place_best(j)
    grow(st, deadline)
    for o in offer_order(inst):
        st.lease_greedy(o)
    return st


def local_search(st: State, deadline: float | None, passes: int = 2) -> int:
    """Re-place jobs one at a time while the objective rises; returns improvements."""
    inst = st.inst
    improved = 0
    for _ in range(passes):
        changed = False
        for j in job_order(inst):
            job = inst.jobs[j]
            if job.pinned and job.current:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return improved
            before = st.objective
            old = st.group_placement(j)  # (SPEC v3: place_best may switch the plan)
            st.place_best(j)
            if st.objective > before + 1e-9 * max(1.0, abs(before)):
                improved += 1
                changed = True
            elif st.objective < before:
                st.restore_group(j, old)
        if not changed:
            break
    return improved


class DecompositionSolver(Solver):
    """build coarse -> solve coarse (backend) -> primal -> local search -> finalize."""

    Options = DecompositionOptions

    def solve_coarse(
        self, lm: LinModel, time_limit: float | None, seed: int, threads: int, **options: Any
    ) -> CoarseSolution:  # pragma: no cover - abstract
        raise NotImplementedError

    def _small(
        self,
        inst: Instance,
        deadline: float | None,
        seed: int,
        threads: int,
        started: float,
        **options: Any,
    ) -> Result | None:
        """Exact column model when the instance is small enough (else None)."""
        ix = inst.index
        pinned_mask = np.zeros(ix.n_gpus, bool)
        base = [np.zeros(0, np.int64) for _ in inst.jobs]
        for j, job in enumerate(inst.jobs):
            if job.pinned and job.current:
                base[j] = ix.cached_indices(job.current)
                pinned_mask[base[j]] = True
        free = ix.available & ~pinned_mask
        if int(free.sum()) > SMALL_GPUS:
            return None
        # the exhaustive model may spend at most a fifth of the limit (and 5 s) on columns
        budget = 5.0 if deadline is None else min(5.0, 0.2 * (deadline - started))
        cols = build_columns(inst, free, time.perf_counter() + budget)
        if cols is None:
            return None
        model = SmallExact(inst, cols, free, pinned_mask)

        def run(lm, left):
            return self.solve_coarse(lm, left, seed, threads, **options)

        gpus, blocks, true, bound, proven = model.solve(run, deadline, base)
        stats = {"mode": "exact-small", "columns": len(cols)}
        if proven == Status.INFEASIBLE:
            return no_placement(
                inst,
                self.name,
                INFEASIBLE,
                "no placement keeps every running, non-preemptible job placed and accepts "
                "every offer with force: accept "
                "(exhaustive column model is infeasible)",
                started,
            )
        if gpus is None:
            return None
        st = State(inst)
        for j, g in enumerate(gpus):
            if len(g) and not (inst.jobs[j].pinned and inst.jobs[j].current):
                st.set_job(j, g)
        reasons = st.reasons()
        return finalize(
            inst,
            self.name,
            gpus,
            blocks,
            reasons,
            bound,
            started,
            proven_optimal=bool(proven),
            stats=stats,
        )

    def _solve(
        self,
        inst: Instance,
        time_limit: float | None = 60.0,
        seed: int = 0,
        threads: int = 1,
        **options: Any,
    ) -> Result:
        started = time.perf_counter()
        deadline = None if time_limit is None else started + time_limit
        progress = options.pop("progress", None) or (lambda **_: None)
        if options.get("exact_small", True):
            progress(stage="exhaustive model (small instance)", elapsed=0.0)
            res = self._small(inst, deadline, seed, threads, started, **options)
            if res is not None:
                return res
        progress(stage="coarse model", elapsed=time.perf_counter() - started)
        co = coarse_mod.build(inst)
        left = None if deadline is None else (deadline - time.perf_counter()) * 0.5
        if left is not None and left <= 0:
            return no_placement(
                inst,
                self.name,
                NO_SOLUTION,
                "the time limit was reached before any placement was found",
                started,
            )
        mode = options.get("lp_rounding", "auto")  # auto | always | never
        if mode == "always" or (mode == "auto" and co.model.n_vars > LARGE_MODEL):
            # thousands of jobs: the integer model is too large to solve in the time; its
            # LP relaxation gives the bound, and rounding it gives the plan
            progress(
                stage="LP relaxation of the coarse model", elapsed=time.perf_counter() - started
            )
            lp = self.solve_relaxation(
                co.model, max(left, 0.05) if left is not None else None, **options
            )
            if lp.status == Status.OPTIMAL:
                sol = CoarseSolution(
                    Status.FEASIBLE,
                    round_plan(inst, co, lp.values),
                    lp.bound,
                    f"{lp.native} + rounding",
                )
            else:
                sol = lp
        else:
            sol = self.solve_coarse(
                co.model, max(left, 0.05) if left is not None else None, seed, threads, **options
            )
        stats = {
            "coarse_status": sol.status,
            "coarse_native": sol.native,
            "coarse_vars": co.model.n_vars,
            "coarse_rows": len(co.model.rows),
            "coarse_bound": sol.bound,
        }
        if sol.status == INFEASIBLE:
            return no_placement(
                inst,
                self.name,
                INFEASIBLE,
                "no placement keeps every running, non-preemptible job placed and accepts "
                "every offer with force: accept "
                "within capacity, power and lease commitments (the relaxed "
                "coarse model is infeasible)",
                started,
            )
        progress(
            stage="packing the coarse plan", bound=sol.bound, elapsed=time.perf_counter() - started
        )
        candidates: list[State] = []
        if sol.values is not None:
            p_deadline = None if deadline is None else deadline - 0.25 * (deadline - started)
            candidates.append(primal_from_coarse(inst, co, sol.values, p_deadline))
            if len(inst.jobs) <= 500 and (deadline is None or time.perf_counter() < p_deadline):
                # a second packing order: fragmentation depends on it
                candidates.append(
                    primal_from_coarse(inst, co, sol.values, p_deadline, order="tight")
                )
            # mixed-type jobs' options value units optimistically (a proven bound needs
            # that). Two more plans, no bound taken from them: those options priced at what
            # the packing realised, which weighs their size against the other jobs' truly;
            # and the same with each such job at its fewest units (its size trades its own
            # goodput against the other jobs' GPUs, which the re-priced model still weighs
            # with the mixed options' optimistic communication figures)
            #
            # SPEC v3: re-pricing is lazy over a job's plans. Only the plan that was packed has
            # realised figures; when the re-priced model moves such a job to another of its
            # plans, that plan is packed too and priced in turn, until the model's choice is a
            # plan already priced (at most one round per plan)
            factors = mixed_factors(inst, co, sol.values, candidates[0])
            rounds = 0

            def solve_x(model, key, until, share):
                if model is None or (
                    deadline is not None
                    and time.perf_counter() >= started + until * (deadline - started)
                ):
                    return None
                progress(stage=f"coarse model: {key}", elapsed=time.perf_counter() - started)
                left_x = None if deadline is None else share * (deadline - time.perf_counter())
                sol_x = self.solve_coarse(
                    model,
                    max(left_x, 0.05) if left_x is not None else None,
                    seed,
                    threads,
                    **options,
                )
                if sol_x.values is None:
                    return None
                states = both_orders(inst, co, sol_x.values, p_deadline)
                candidates.extend(states)
                stats[key] = True
                return sol_x.values, states

            # SPEC v3: the plan held to each job's first plan, packed too (first_plan_rows)
            held = first_plan_rows(inst, co.options)
            if held and mode != "always" and co.model.n_vars <= LARGE_MODEL:
                solve_x(_with_rows(co.model, held), "first_plans", 0.5, 0.25)
            while rounds <= MAX_PLAN_ROUNDS:
                got = solve_x(repriced(co, factors), "repriced", 0.5, 0.25)
                if got is None:
                    break
                new = mixed_factors(inst, co, got[0], got[1][0])
                rounds += 1
                if set(new) <= set(factors):
                    break
                factors.update({j: f for j, f in new.items() if j not in factors})
            if rounds > 1:
                stats["repriced_rounds"] = rounds
            final = repriced(co, factors)
            if final is not None:
                fewest = at_fewest_units(inst, co, final)
                # each priced plan of a job at its fewest units (the re-priced figures are
                # those of the packed sizes, so the model may still rank the plans wrongly)
                for held in _plan_holds(inst, co, factors) or [None]:
                    model = fewest if held is None else _with_rows(fewest, held)
                    solve_x(model, "fewest_units_plan", 0.55, 0.2)
            progress(
                stage="greedy",
                bound=sol.bound,
                incumbent=candidates[-1].objective,
                elapsed=time.perf_counter() - started,
            )
        # the greedy is a second opinion; with thousands of jobs and a plan in hand its time
        # is better left to the local search
        huge_with_plan = candidates and len(inst.jobs) > 500
        if not huge_with_plan and (deadline is None or time.perf_counter() < deadline):
            g_deadline = None if deadline is None else deadline - 0.1 * (deadline - started)
            candidates.append(best_greedy(inst, g_deadline))
        candidates = [c for c in candidates if not c.unplaced_musts()]
        if not candidates:
            return no_placement(
                inst,
                self.name,
                NO_SOLUTION,
                "the time limit was reached before any placement was found",
                started,
                sol.bound,
            )
        stats["candidates"] = [round(c.objective, 1) for c in candidates]
        st = max(candidates, key=lambda s: s.objective)
        stats["primal_from"] = (
            "greedy"
            if len(candidates) > 1 and st is candidates[-1]
            else "coarse"
            if sol.values is not None
            else "greedy"
        )
        progress(
            stage="local search",
            bound=sol.bound,
            incumbent=st.objective,
            elapsed=time.perf_counter() - started,
        )
        # keep a margin for the final check and re-score
        ls_deadline = None if deadline is None else deadline - 0.1 - 0.05 * (deadline - started)
        stats["improvements"] = local_search(st, ls_deadline)
        progress(
            stage="checking and scoring",
            bound=sol.bound,
            incumbent=st.objective,
            elapsed=time.perf_counter() - started,
        )
        reasons = st.reasons()
        bound = (
            sol.bound
            if sol.status in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION)
            else None
        )
        res = finalize(
            inst, self.name, st.job_gpus, st.offer_blocks, reasons, bound, started, stats=stats
        )
        return res
