"""The decomposition shared by the exact backends (`cpsat`, `mip`).

Algorithm overview
0. The greedy backend's placement first (at most 35% of the limit): whatever the deadline,
   the result is at least as good as it. The limit keeps a reserve, growing with the GPUs
   and jobs, for the reasons, the check and the re-score (base.finish_reserve).
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
4. Compare with the greedy's placement of step 0; keep the better.
5. Local search until the deadline (or a fixed number of passes): remove each job and
   put it back at its best kernel-scored candidate when that raises the objective.
6. :func:`~placer.solvers.base.finalize` checks and re-scores the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
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
    finish_reserve,
    no_placement,
)
from placer.solvers.decomposition import coarse as coarse_mod
from placer.solvers.decomposition import warm as warm_mod
from placer.solvers.decomposition.construct import (
    State,
    _late,
    best_greedy,
    greedy_policy,
    grow,
    job_order,
    offer_order,
    resume,
    scope_ok,
    stage_major,
)
from placer.solvers.decomposition.exact_small import (
    MAX_COLUMNS,
    SMALL_GPUS,
    SmallExact,
    build_columns,
)
from placer.solvers.decomposition.linmodel import LinModel, compact
from placer.solvers.plans import (
    drop_dominated,
    drop_twin_sites,
    first_plan_rows,
    must_place,
    siblings,
    solve_first_plans_first,
)

LARGE_MODEL = 20_000  # coarse variables above which the LP relaxation is rounded instead
GREEDY_SHARE = 0.2  # of the limit, at most, for that first greedy when a plan can follow
# ... and when the plan is a rounded LP (thousands of jobs): none (the greedy places the
# jobs that must run, then stops). The greedy is anytime and resumable: when the plan is
# skipped (`finish_greedy`) it does the same work after the build as it would have before,
# and when the plan is packed the plan's 31 M at 1M GPUs never needed the 1.3-1.5 M its 5%
# share reached, while the LP and the packing needed its 1.3 s (docs/solver.md)
GREEDY_SHARE_LP = 0.0
# a coarse model is built only when the time left can build and solve it; else the time goes
# to the greedy and then to placing the jobs it did not reach (measured at 1M GPUs / 5,000
# jobs, docs/solver.md: 0.6-1.5 ms a job to build, about 12 variables a job, and the LP of
# 60,000 variables in 4-8 s with HiGHS in memory (cpsat), 10-21 s with CBC through PuLP
# (mip), building the model included; its packing in 8-20 s: the factor 2 of coarse_need)
BUILD_PER_JOB = 1e-3
SOLVE_PER_VAR = 2e-4  # CP-SAT on the integer model (up to LARGE_MODEL variables)
LP_PER_VAR = 2.5e-4  # the LP relaxation of a larger model (CBC through PuLP: 15 s for 60,000)
VARS_PER_JOB = 12  # coarse variables per job, for the estimate before building
# the LP relaxation and the part of its rounded plan's packing that must run for the plan
# to beat the greedy, in times the coarse build's time. Measured together at 1M GPUs /
# 5,000 jobs (build 3.4-5.9 s, LP 1.2-1.8x the build, packing about 1.8x; docs/solver.md):
# the packing is anytime, largest jobs first, and cut past 60% of its time it still beats
# the greedy's whole pass, so LP 1.5x + 60% of 1.8x. A build is timed on its own run (and
# extrapolated from its first jobs): it measures the machine's speed at that moment
PLAN_PER_BUILD = 2.6
# the coarse build's CPU time a job, as measured at 1M GPUs / 5,000 jobs on 2026-12-07 with
# the memos' filling: 2.8-3.0 s of CPU for the whole build at a load average of 4-5 (other
# processes on both cores make each CPU second slower), 2.2-2.6 s on a quiet machine. With
# the share of a core the process had since the decomposition started, a build of n jobs
# takes about n * BUILD_CPU_PER_JOB / share seconds of wall time (`plan_cannot_fit`). In
# bench/floor.py's rounds a share of 0.41 or less at the build's start was always followed by
# a build its own pace stopped (after 1.9-2.7 s), shares of 0.53 and 0.61 by a packed plan
# (docs/solver.md, "The floor under load")
BUILD_CPU_PER_JOB = 6e-4
# the shortest wall time over which that share is taken (shorter: not measured, the build's
# own pace decides)
SHARE_WINDOW = 0.1
# coarse variables from which CP-SAT's solve starts from the greedy's placement: on smaller
# models CP-SAT finds its first plans at once, and the hint's fixed solve and the search it
# steers cost time (bench.plans' three-campus control, 355-405 variables, first plans: 0.35,
# 9.7 and 0.71 s without it against 0.51, 17.5 and 1.29 s with it); at 100k GPUs (3,300) it
# is what finds a plan at all at 10 s
HINT_MIN_VARS = 1000


def coarse_need(
    inst: Instance,
    n_vars: int | None = None,
    lp_per_var: float = LP_PER_VAR,
    n_jobs: int | None = None,
) -> float:
    """Seconds to build the coarse model and solve it (twice the estimate: the plan's
    packing and the local search take the other half), from the job count or the size;
    `lp_per_var`: the backend's LP relaxation (:attr:`DecompositionSolver.lp_per_var`);
    `n_jobs`: the jobs the model builds options for (a class of identical jobs counts
    once, :func:`.coarse.job_classes`; default every job)."""
    jobs = len(inst.jobs) if n_jobs is None else n_jobs
    n = VARS_PER_JOB * jobs if n_vars is None else n_vars
    per_var = lp_per_var if n > LARGE_MODEL else SOLVE_PER_VAR
    build = BUILD_PER_JOB * jobs if n_vars is None else 0.0
    return build + 2 * per_var * n


MAX_PLAN_ROUNDS = 4  # re-pricing rounds over a mixed job's plans (SPEC v3)
MAX_DIVES = 3  # LP re-solves with the fractional decisions fixed up (see `lp_fractional`)


def lp_fractional(inst: Instance, co: coarse_mod.Coarse, x: list[float]) -> list[int]:
    """The decisions the rounding of an LP solution takes against it: offers' accept
    variables strictly between 0 and 1, and per job group the largest option weight when it
    is strictly between 0 and 1. At 1M GPUs / 5,000 jobs the LP of the coarse model is
    integral but for about four of these, and one offer accepted at a fraction, dropped by
    the rounding, was most of the 2% gap (docs/solver.md)."""
    out = [a for a in co.offer_vars.values() if 1e-6 < x[a] < 1 - 1e-6]
    best: dict[int, int] = {}
    for op in co.options:
        key = siblings(inst, op.job)[0]
        if key not in best or x[op.b] > x[best[key]]:
            best[key] = op.b
    # (a class's binary counts its members, 0..k: fractional when not integral; the dive
    # raises it to the next count)
    out += [b for b in best.values() if abs(x[b] - round(x[b])) > 1e-6]
    return out


def round_plan(
    inst: Instance, co: coarse_mod.Coarse, x: list[float], offers_up: bool = False
) -> list[float]:
    """An integral plan from the LP relaxation's values: per job the option with the largest
    weight, its units scaled up by that weight and rounded down; offers accepted at >= 1/2
    with their block counts likewise (the packer and its fallbacks absorb what does not
    fit). `offers_up`: an offer the LP accepts at any fraction is accepted, its block counts
    scaled up the same way. An offer with a minimum size is often accepted at a small
    fraction (its minimum scaled down fits in the LP); dropping it lost most of the first
    plan's 2.14% gap at 1M GPUs, and leasing it whole while the plan's jobs fall back to
    other domains closed it to 0.14% without another LP (docs/solver.md)."""
    vals = [0.0] * len(x)
    best: dict[int, coarse_mod.Option] = {}  # per group (SPEC v3: one variant of a job)
    by_class: dict[int, list[coarse_mod.Option]] = {}
    for op in co.options:
        if op.members:
            by_class.setdefault(op.members[0], []).append(op)
            continue
        w = x[op.b]
        key = siblings(inst, op.job)[0]
        if w > 1e-6 and (key not in best or w > x[best[key].b] + 1e-12):
            best[key] = op
    taken = [(op, 1) for op in best.values()]
    for ops in by_class.values():
        taken += _class_counts(x, ops)
    for op, c in taken:
        w = x[op.b]
        vals[op.b] = float(c)
        for v in [*op.n.values(), *op.parts.values(), *op.pieces.values()]:
            vals[v] = float(int(c * x[v] / w + 1e-9))
    for o, a in co.offer_vars.items():
        if x[a] >= 0.5 or (offers_up and x[a] > 1e-6):
            vals[a] = 1.0
            for (oo, _g), y in co.lease_vars.items():
                if oo == o:
                    vals[y] = float(int(x[y] / x[a] + 1e-9))
    return vals


def _class_counts(x: list[float], ops: list[coarse_mod.Option]) -> list[tuple[object, int]]:
    """Members per aggregated option of one class in an LP solution `x` (each option's
    binary counts members, 0..k): as a job the LP places at any weight is placed, the
    class places ceil(its total weight) members, each option its whole part, then the
    rest one by one to the largest fractional parts."""
    k = len(ops[0].members)
    w = {op.b: max(0.0, x[op.b]) for op in ops}
    total = min(k, int(np.ceil(sum(w.values()) - 1e-6)))
    count = {b: min(int(v + 1e-9), total) for b, v in w.items()}
    rest = total - sum(count.values())
    for b in sorted(w, key=lambda b: (-(w[b] - count[b]), b)):
        if rest <= 0:
            break
        if w[b] - count[b] > 1e-6:
            count[b] += 1
            rest -= 1
    return [(op, count[op.b]) for op in ops if count[op.b] > 0]


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
            float(ix.type_speed[t]) * job.unit_size * op.step * op.steps_of(vals[v], job.unit_size)
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


def _first_plans_settled(
    held: CoarseSolution, sol: CoarseSolution, cands: list, slack: float = -1e-9
) -> str:
    """SPEC v3: why the coarse plan held to first plans (`held`) need not be packed, or "".

    Packing it costs two packings (a third of a small solve with plans), and it can only
    matter when it could beat what is in hand: its model bounds every placement held to
    first plans (the first-plan solve's included), so when a candidate already reaches that
    bound it cannot; and when it is the very plan `sol` already packed, its packings are
    those candidates (packing is deterministic in the plan). `slack`: the bound's relative
    tolerance (an LP solver's optimum may lie a little below the true one: pass a positive
    slack to ask for that much more)."""
    best = max((c.objective for c in cands), default=-np.inf)
    if held.bound is not None and best >= held.bound + slack * max(1.0, abs(held.bound)):
        return f"a candidate ({best:,.1f}) reaches its bound ({held.bound:,.1f})"
    if sol.values is not None and np.allclose(held.values, sol.values, rtol=0, atol=1e-9):
        return "it is the coarse plan already packed"
    return ""


# of the time left, for the coarse model held to first plans (SPEC v3, first_plan_rows)
FIRST_PLANS_SHARE = 0.25


def _first_plans_until(
    started: float, deadline: float | None, p_deadline: float | None, t_pack: float
) -> float:
    """The share of the limit after which the coarse model held to first plans is no longer
    solved: the latest start whose solve (FIRST_PLANS_SHARE of the time left) and two
    packings (each as long as the first, `t_pack`) end by the packing deadline
    `p_deadline`; never before half the limit (the rule of the other plans' solves).

    Why not half the limit alone: the coarse solve before it takes half the time left after
    the greedy, so a coarse solve cut by the time always ended past half the limit and the
    first-plan plan was never packed. On multicampus-3x-s1 (20 s) the solve with plans then
    ended 0.003% below the one held to first plans, with 9.5 s of its limit unused."""
    if deadline is None or p_deadline is None:
        return 1.0
    span = deadline - started
    if span <= 0:
        return 0.5
    latest = (p_deadline - 2 * t_pack - FIRST_PLANS_SHARE * deadline) / (1 - FIRST_PLANS_SHARE)
    return max(0.5, (latest - started) / span)


def _rows_hold(rows: list, x: list[float]) -> bool:
    """Values `x` meet every row of `rows` (to 1e-9)."""
    for coeffs, sense, rhs, _ in rows:
        lhs = sum(c * x[i] for i, c in coeffs.items())
        if (sense != ">=" and lhs > rhs + 1e-9) or (sense != "<=" and lhs < rhs - 1e-9):
            return False
    return True


def _with_rows(lm: LinModel, rows: list) -> LinModel:
    return LinModel(lm.names, lm.lb, lm.ub, lm.integer, [*lm.rows, *rows], lm.obj, lm.obj_const)


def reprice_mixed(
    inst: Instance, co: coarse_mod.Coarse, vals: list[float], st: State
) -> LinModel | None:
    """The coarse model with its mixed-type options priced at what the packing of `vals`
    realised (:func:`mixed_factors`, :func:`repriced`)."""
    return repriced(co, mixed_factors(inst, co, vals, st))


def _floor(states: list[State]) -> float | None:
    """The best objective among `states` that keep every must-place job placed (a
    candidate that the pipeline keeps), or None."""
    ok = [s.objective for s in states if not s.unplaced_musts()]
    return max(ok) if ok else None


def both_orders(inst, co, vals, deadline, floor: float | None = None) -> list[State]:
    """A plan packed in both orders of :func:`primal_from_coarse` (fragmentation depends on
    it); the second only while time is left, and not grown when it cannot reach the first
    or `floor` (the best candidate in hand)."""
    out = [primal_from_coarse(inst, co, vals, deadline)]
    if deadline is None or time.perf_counter() < deadline:
        top = _floor(out)
        top = floor if top is None else top if floor is None else max(top, floor)
        out.append(primal_from_coarse(inst, co, vals, deadline, order="tight", floor=top))
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
            for v in [*op.n.values(), *op.parts.values(), *op.pieces.values()]:
                row[v] = row.get(v, 0.0) + float(op.step) * op.steps_of(1.0, job.unit_size)
        step = max((op.step for op in ops), default=1)
        rows.append((row, "<=", float(-(-n_min // step) * step), f"fewest units {job.name}"))
    if len(rows) == len(lm.rows):
        return None
    return LinModel(lm.names, lm.lb, lm.ub, lm.integer, rows, lm.obj, lm.obj_const)


# a work budget for tests: the plan's packing counts as cut by its deadline after this
# many jobs (None: the deadline alone), so a cut packing is reproducible on any machine
PACK_BUDGET: int | None = None


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
    floor: float | None = None,
) -> State:
    """Realise the coarse plan (step 3 of the overview); past `deadline` the jobs not yet
    packed keep 0 units (the state stays a valid placement). `floor`: the objective of a
    placement in hand; when the plan's jobs are packed and the state's
    :meth:`~.State.open_bound` shows that growing it cannot reach that, it is returned
    ungrown (it loses to that placement either way; `bounded` says so).

    Why the floor: a plan is packed in two orders and only the better is kept; on the
    fragmented SuperPOD of bench.plans (seed 2) the second order left out four jobs that
    the first placed, and growing it placed them, a quarter of the solve's packing time,
    for a state 23% below the first order's."""
    st = State(inst)
    ix = inst.index
    # a class's options shared out to its members (coarse.expand), values appended
    options, vals = coarse_mod.expand(inst, co, vals)
    chosen = [op for op in options if vals[op.b] > 0.5]
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
        return units * op.step * inst.jobs[op.job].unit_size + op.piece * sum(
            vals[v] for v in op.pieces.values()
        )

    # running jobs that stay first, then running jobs that must be placed and move: a
    # packing that leaves one of them out is no candidate at all (at 100k GPUs a sweep's
    # plan moved one, packed it after the larger jobs, found no room and was dropped whole)
    def first(op):
        return (op.kind != "stay", not must_place(inst, op.job))

    if order == "size":
        # then jobs with a spread (the most constrained), then the largest first (they need
        # the largest whole domains)
        def key(op):
            return (
                *first(op),
                inst.jobs[op.job].spread is None,
                -size(op),
                inst.jobs[op.job].name,
            )
    else:  # "tight": the jobs with the most units per GPU of scope first, then size

        def key(op):
            job = inst.jobs[op.job]
            return (*first(op), -job.unit_size, -size(op), job.name)

    chosen.sort(key=key)
    packed = 0
    # with a floor, the state's open_bound each time the jobs packed since the last look
    # hold a tenth of the GPUs free at the start (a bound that falls below the floor ends
    # the packing: the jobs left are not packed, the state is not grown)
    since, every, prev = 0, 0, None
    if floor is not None:
        every = max(1, int(np.count_nonzero(st.free)) // 10)
    for op in chosen:
        if prev is not None:
            v = st.placed_variant(prev)
            since += len(st.job_gpus[v]) if v is not None else 0
            if since >= every and _below(st, floor):
                return st
            since = 0 if since >= every else since
        prev = op.job if floor is not None else None
        j = op.job
        job = inst.jobs[j]
        cut = deadline is not None and time.perf_counter() > deadline
        if PACK_BUDGET is not None and packed >= PACK_BUDGET:
            cut = True
        if cut and not must_place(inst, j):
            st.mark_unreached(j)
            continue
        packed += 1
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
            variants = _mixed_variants(st, j, op, vals)
        # (layouts that pack exactly as an earlier one are left out: the same variants)
        for B in st.packer.distinct_layouts(job, op.type) if op.kind != "mixed" else []:
            parts = []
            ok = True
            # one part per site: the sites' GPU ranges are disjoint, so a part is packed
            # without taking the others' GPUs (taking and giving them back made every
            # layout recount its sites: a third of the packing at 1M GPUs)
            for s, k in sorted(op.site_units(vals, job.unit_size).items()):
                n = k * op.step
                if n <= 0:
                    continue
                g = st.packer.place(job, op.type, n, st.site_region(s), B)
                if g is None:
                    ok = False
                    break
                parts.append(g)
            if ok and parts:
                g = np.concatenate(parts)
                room = st.power_left + 1e-9
                # (rules 1-5 are checked on the best of them only: State.best_candidate)
                variants += [
                    v
                    for v in (g, stage_major(job, g))
                    if v is not None and (st._power(v) <= room).all()
                ]
        best = st.best_candidate(j, variants, check=True, fallback=True)[0] if variants else None
        if best is not None:
            st.set_job(j, best)
            continue
        # SPEC v3: the plan's variant first (the coarse model chose it; trying every plan
        # of a job here cost most of the packing with plans), then any plan of the job in
        # the plan's sites, then anywhere
        # (a switch places another variant of j's group: placed_variant, not j's GPUs, says
        # whether the group is placed; j's GPUs had the switched job placed once more
        # anywhere, the search of the sites done twice)
        # (the same state each time a search fails: a variant the previous search found no
        # candidate for in the same sites is not searched again, and the search anywhere is
        # not run when the plan's sites are all the sites)
        sites = sorted(op.sites)
        st.place_best(j, switch=False, sites=sites)
        if st.placed_variant(j) is None:
            st.place_best(j, skip=frozenset(st.empty), sites=sites)
        if st.placed_variant(j) is None and len(sites) < ix.n_sites:
            st.place_best(j)
    if floor is not None and _below(st, floor):
        return st
    grow(st, deadline)
    for o in offer_order(inst):
        st.lease_greedy(o)
    return st


def _below(st: State, floor: float) -> bool:
    """Whether `st`'s :meth:`~.State.open_bound` shows that no state it leads to reaches
    `floor` (then ``st.bounded``)."""
    top = st.open_bound()
    st.bounded = top is not None and top < floor - 1e-9 * max(1.0, abs(floor))
    return st.bounded


def _mixed_variants(st: State, j: int, op: coarse_mod.Option, vals: list[float]) -> list:
    """GPU arrays realising a mixed plan for job j: its parts unit-major; and, for training
    with PP, its largest part as one DP block (:meth:`~.pack.Packer.place_block_most`)
    without the plan's other types in that site. A DP group's part in a site meets in the
    narrowest domain holding all its members: unit-major parts put a stage's members in
    every hall, and a site's types often sit in separate halls, so only a one-type block
    lets the largest part meet in a hall. The kernel decides."""
    inst, job = st.inst, st.inst.jobs[j]
    kinds: list[tuple] = [(None, frozenset())]
    planned = {
        c: int(round(op.steps_of(vals[v], job.unit_size)))
        for c, v in op.parts.items()
        if op.steps_of(vals[v], job.unit_size) >= 0.5
    }
    if job.kind == "training" and job.pp > 1 and planned:
        big = max(planned, key=lambda c: (planned[c], c))
        kinds.append((big, frozenset(c for c in planned if c[0] == big[0] and c != big)))
    out = []
    for block, drop in kinds:
        parts = _mixed_parts(st, job, op, vals, block=block, drop=drop)
        for g in parts:  # each realisation from the same free GPUs
            st.packer.give(g)
        if not parts:
            continue
        g = np.concatenate(parts)
        if (
            len(g) // job.unit_size >= max(job.units_min, 1)
            and scope_ok(inst, j, g)
            and (st._power(g) <= st.power_left + 1e-9).all()
        ):
            out.append(g)
    return out


def _mixed_parts(
    st: State,
    job,
    op: coarse_mod.Option,
    vals: list[float],
    block: tuple[int, int] | None = None,
    drop: frozenset = frozenset(),
) -> list[np.ndarray]:
    """A mixed option's parts packed (and taken) in turn, units per (site, type) as planned.
    The plan counts free GPUs, not the units their fragments form: a part that does not fit
    takes the most units its cell holds, and the units it lacks go to the other cells in
    turn (up to the plan's total), so that one part short of room does not drop the job.
    `block`: that cell as one DP block; the cells in `drop` get no units. The units these
    two cost go elsewhere only as far as the job's fewest units need (they would take GPUs
    the plan gives to other jobs)."""
    step = op.step
    cells = sorted(op.parts.items())
    want = {c: int(round(op.steps_of(vals[v], job.unit_size))) * step for c, v in cells}
    got: dict[tuple[int, int], np.ndarray] = {}
    for c in drop:
        want[c] = 0
    short = 0
    for (s, t), _v in cells:
        n = want[(s, t)]
        if n <= 0:
            continue
        g = st.packer.place_block_most(job, t, n, st.site_region(s)) if block == (s, t) else None
        if g is None:
            g = st.packer.place(job, t, n, st.site_region(s))
        if g is None:
            k = min(n, st.packer.max_fit(job, t, st.site_region(s)))
            k -= k % step
            g = st.packer.place(job, t, k, st.site_region(s)) if k > 0 else None
        k = 0 if g is None else len(g) // job.unit_size
        short += want[(s, t)] - k
        if g is not None and k:
            got[(s, t)] = g
            st.packer.take(g)
    if block is not None or drop:
        placed = sum(len(g) // job.unit_size for g in got.values())
        short = max(0, max(job.units_min, 1) - placed)
    for (s, t), _v in cells:
        if short <= 0:
            break
        if want[(s, t)] <= 0 or (s, t) == block:  # the plan's cells; a block stays whole
            continue
        more = min(short, st.packer.max_fit(job, t, st.site_region(s)))
        more -= more % step
        g = st.packer.place(job, t, more, st.site_region(s)) if more > 0 else None
        if g is not None and len(g):
            st.packer.take(g)
            got[(s, t)] = np.concatenate([got[(s, t)], g]) if (s, t) in got else g
            short -= len(g) // job.unit_size
    return [got[c] for c, _v in cells if c in got]


def cpu_share(t0: float, c0: float) -> float | None:
    """The share of a core this process had since `t0` (time.perf_counter) and `c0`
    (time.process_time): its CPU time over the wall time, None over less than SHARE_WINDOW.
    On a machine whose cores other work shares it is what a step gets of its CPU need."""
    wall = time.perf_counter() - t0
    if wall < SHARE_WINDOW:
        return None
    return (time.process_time() - c0) / wall


def plan_cannot_fit(n_jobs: int, share: float | None, build_share: float) -> bool:
    """True when a coarse build of `n_jobs` jobs, at its CPU pace under load
    (BUILD_CPU_PER_JOB) and the process's measured `share` of a core, would end past
    `build_share` seconds (its share of the time left, 1 / (1 + PLAN_PER_BUILD)): the plan
    is then skipped before the build, and the greedy has all the time the greedy backend has
    (under a load of twice the cores, the build's first 1,024 jobs took 1.9-6.4 s before its
    own pace said the same: docs/solver.md, "The floor under load"). At 30 s on 1M GPUs /
    5,000 jobs that is a share below 0.45; at 60 s, below 0.2."""
    if share is None:
        return False
    return n_jobs * BUILD_CPU_PER_JOB > max(share, 1e-6) * build_share


GREEDY_REST_MARGIN = 1.25  # on the greedy's own pace, for the leases and growth after it


def greedy_rest(first: State, seconds: float) -> float:
    """Seconds the greedy that its share stopped (`best_greedy(final=False)`, which took
    `seconds`) needs to finish as the greedy backend would (:func:`finish_greedy`): the jobs
    it did not reach and, when its second policy was skipped, that policy's whole pass, at
    the pace of the jobs it reached, times :data:`GREEDY_REST_MARGIN`. 0 when it finished,
    and when it reached no job (no pace to estimate from)."""
    inst = first.inst
    n = sum(1 for j in job_order(inst) if not (inst.jobs[j].pinned and inst.jobs[j].current))
    todo = len(first.unreached) + (n if first.second_policy_skipped else 0)
    reached = n - len(first.unreached)
    if todo == 0 or reached <= 0:  # finished, or no pace to go by (no job reached)
        return 0.0
    return GREEDY_REST_MARGIN * seconds / reached * todo


def finish_greedy(first: State, deadline: float | None, stats: dict) -> State:
    """The greedy backend's placement from the greedy that its share of the limit stopped
    (`best_greedy(final=False)`): its first policy resumed (:func:`resume` places the jobs
    it did not reach in its order, then leases and grows, as the uncut policy does), and,
    when the share had cut it so that the other policy never ran (or ran cut, and lost),
    the other policy until `deadline`, the better kept as :func:`best_greedy` keeps it
    (ties: jobs first). With the time the greedy backend has, this is its placement: a
    plan skipped for lack of time never leaves the decomposition below the greedy
    backend's result."""
    stats["resumed"] = resume(first, deadline)
    if not first.second_policy_skipped or first.unreached or _late(deadline):
        return first
    second = greedy_policy(first.inst, leases_first=not first.leases_first, deadline=deadline)
    stats["greedy_second_policy"] = round(second.objective, 1)
    k1 = (not first.unplaced_musts(), first.objective)
    k2 = (not second.unplaced_musts(), second.objective)
    if second.leases_first:
        return second if k2 > k1 else first
    return second if k2 >= k1 else first


def local_search(st: State, deadline: float | None, passes: int = 2) -> int:
    """Re-place jobs one at a time while the objective rises; returns improvements.

    A pass after the first stops where the previous pass last changed the state, unless it
    has changed the state itself by then: the jobs from there on were re-placed against
    this very state already, and found nothing better (a job's best re-placement depends
    on the other jobs' GPUs only). The same passes, without re-placing jobs to find again
    what they found (fragmented-4su-s2 of bench.plans: its one improvement is the fifth
    of 12 jobs, so the second pass re-places 4 jobs where it re-placed 12)."""
    inst = st.inst
    improved = 0
    order = [j for j in job_order(inst) if not (inst.jobs[j].pinned and inst.jobs[j].current)]
    settled = len(order)  # positions from here on: tried against the current state
    for _ in range(passes):
        changed = False
        moved_at = None  # the position of this pass's last re-placement kept
        for pos, j in enumerate(order):
            if moved_at is None and pos >= settled:
                break
            if deadline is not None and time.perf_counter() > deadline:
                st.timed_out = True
                return improved
            before = st.objective
            old = st.group_placement(j)  # (SPEC v3: place_best may switch the plan)
            st.unreached.discard(j)  # tried now: its reason is no longer the deadline
            st.place_best(j, deadline=deadline)
            if st.objective > before + 1e-9 * max(1.0, abs(before)):
                improved += 1
                changed = True
                moved_at = pos
            elif st.objective < before:
                st.restore_group(j, old)
            elif _moved(st, j, old):
                moved_at = pos  # as good, elsewhere: what the later jobs see changed
        if not changed:
            break
        settled = moved_at
    return improved


def _moved(st: State, j: int, old: tuple[int | None, np.ndarray]) -> bool:
    """Whether j's group is placed otherwise than `old` (:meth:`State.group_placement`)."""
    v, g = st.group_placement(j)
    return v != old[0] or not np.array_equal(g, old[1])


def stop_reason(why: str | None, res: Result) -> str:
    """Why a decomposition result with a gap came back before its limit: which model
    proved the bound and why more time does not close the gap."""
    exact = {
        "gpus": f"more than {SMALL_GPUS} GPUs are free, so the exhaustive model is not used",
        "size": f"the exhaustive model would need more than {MAX_COLUMNS:,} columns",
        "off": "the exhaustive model is off (exact_small=false)",
        "time": "the exhaustive model's columns could not all be built in the time left",
        None: "the exhaustive model was not tried",
    }.get(why, "the exhaustive model did not prove it")
    if res.stats.get("coarse_native", "").endswith("rounding"):
        src = "the LP relaxation of the coarse model (proven optimum)"
    elif res.stats.get("coarse_status") == Status.FEASIBLE:
        # CP-SAT stopped at its share of the limit: its plan is not proven, and more time
        # for that solve could still close part of the gap. Say so, not "proven optimum"
        lp = "; its rounded LP plan was packed too" if "rounded_lp_objective" in res.stats else ""
        again = res.stats.get("coarse_resumed")
        if again and again.startswith("solved again"):
            again = (
                "it was solved again from the best plan in hand with the time left less its "
                "packing's and stopped unproven again"
            )
        elif not again:
            again = "the time left is not given to that solve again"
        return (
            f"{exact}; the coarse model's solve stopped at its share of the time limit without "
            f"proving its plan (the bound is the lower of its best bound and its LP "
            f"relaxation's{lp}), and {again}; the local search ended with no improving move"
        )
    else:
        src = "the coarse model's proven optimum"
    dive = res.stats.get("dive")
    dive = f"; rounding the LP: {dive}" if dive else ""
    if "tight_objective" in res.stats:
        dive += "; the rounded plan was packed in both orders"
    return (
        f"{exact}; the bound is {src}, whose figures are optimistic (each collective at "
        f"the fastest level that could hold it), and more time does not tighten it{dive}; the "
        "local search ended with no improving move"
    )


class DecompositionSolver(Solver):
    """build coarse -> solve coarse (backend) -> primal -> local search -> finalize."""

    Options = DecompositionOptions
    lp_per_var = LP_PER_VAR  # seconds a variable of the LP relaxation at scale (coarse_need)
    hints = False  # solve_coarse takes `hint`: a point of the model to start from

    def solve_overhead(self) -> float:
        """Seconds a coarse solve spends before it can search that its limit does not
        buy back (a solver library's first import in this process): at a short limit a
        coarse solve is not started when the time left for it is hardly more."""
        return 0.0

    def _warm(
        self,
        inst: Instance,
        co: coarse_mod.Coarse,
        st: State,
        left: float | None,
        seed: int,
        threads: int,
        **options: Any,
    ) -> tuple[list[float] | None, dict]:
        """State `st` as a full point of the coarse model, a hint for its solve
        (:func:`.warm.complete`: its decisions fixed, the rest solved, with at most a fifth
        of `left`); None when the model cannot hold it. Stats: what the hint was."""
        limit = None if left is None else max(0.05, 0.2 * left)

        def solve(lm):
            return self.solve_coarse(lm, limit, seed, threads, **options)

        hint, info = warm_mod.complete(inst, co, st, solve)
        info["objective"] = round(st.objective, 1)
        return hint, info

    def _relaxation_compact(
        self, lm: LinModel, time_limit: float | None, **options: Any
    ) -> CoarseSolution:
        """The LP relaxation of `lm` solved without its variables that are 0 in every
        feasible point (:func:`~.linmodel.compact`: the same optimum and bound), its values
        given back at `lm`'s indices."""
        got = compact(lm)
        if got is None:
            return CoarseSolution(
                Status.INFEASIBLE, None, None, "INFEASIBLE (a row of fixed terms)"
            )
        small, keep = got
        sol = self.solve_relaxation(small, time_limit, **options)
        if sol.values is not None:
            vals = [0.0] * lm.n_vars
            for i, v in zip(keep, sol.values):
                vals[i] = v
            sol = replace(sol, values=vals)
        return sol

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
        budget: float,
        info: dict,
        **options: Any,
    ) -> Result | None:
        """Exact column model when the instance is small enough (else None, with
        `info["why"]`: "gpus" too many free GPUs, "size" too many columns, "time" the
        columns took longer than `budget` seconds, "unproven" solved but not proven)."""
        ix = inst.index
        pinned_mask = np.zeros(ix.n_gpus, bool)
        base = [np.zeros(0, np.int64) for _ in inst.jobs]
        for j, job in enumerate(inst.jobs):
            if job.pinned and job.current:
                base[j] = ix.cached_indices(job.current)
                pinned_mask[base[j]] = True
        free = ix.available & ~pinned_mask
        if int(free.sum()) > SMALL_GPUS:
            info["why"] = "gpus"
            return None
        cols = build_columns(inst, free, time.perf_counter() + budget, info)
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
            info["why"] = "time"
            return None
        if not proven:
            info["why"] = "unproven"
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
        small: dict = {}
        if options.get("exact_small", True):
            progress(stage="exhaustive model (small instance)", elapsed=0.0)
            # first at most a fifth of the limit (and 5 s) on columns; when that is not
            # enough, the time the decomposition leaves goes to it (_close_gap)
            budget = 5.0 if deadline is None else min(5.0, 0.2 * (deadline - started))
            res = self._small(inst, deadline, seed, threads, started, budget, small, **options)
            if res is not None:
                return res
        else:
            small["why"] = "off"
        res = self._decompose(inst, deadline, started, seed, threads, progress, **options)
        if res.status.has_placement and small.get("why") == "time":
            res = self._close_gap(inst, res, deadline, seed, threads, started, small, **options)
        # (a gap within the solvers' relative tolerance is no gap)
        if res.status.has_placement and res.status != Status.OPTIMAL and (res.gap or 0) > 1e-6:
            left = None if deadline is None else deadline - time.perf_counter()
            # (a search the deadline cut did not stop early: its reserve for the check is
            # the time left, base.finish_reserve)
            cut = res.stats.get("deadline_cut", False)
            if not cut and (left is None or left > 0.1 + 0.05 * (deadline - started)):
                res.stopped = res.placement.stopped = stop_reason(small.get("why"), res)
        if res.status.has_placement:
            # the solve's time up to here: a _close_gap that built no better placement
            # returns the decomposition's result, whose `seconds` ended before that try
            res.seconds = time.perf_counter() - started
            res.placement.seconds = round(res.seconds, 3)
        return res

    def _close_gap(
        self,
        inst: Instance,
        res: Result,
        deadline: float | None,
        seed: int,
        threads: int,
        started: float,
        small: dict,
        **options: Any,
    ) -> Result:
        """The decomposition left a gap on a small instance whose exhaustive model ran out
        of its first share of time: give it what is left of the limit. Its bound and the
        coarse one are both proven, so the lower is kept; the better placement wins."""
        if res.gap is None or res.gap <= 1e-9:
            return res
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left < 0.5:
            return res
        budget = 60.0 if left is None else 0.6 * left
        small.pop("why", None)  # the columns built so far are kept in `small` and reused
        # a margin for realising, checking and scoring its placement once more
        end = None if deadline is None else deadline - 0.05 - 0.02 * (deadline - started)
        ex = self._small(inst, end, seed, threads, started, budget, small, **options)
        small.setdefault("why", "proven")
        if ex is None or ex.objective is None:
            return res
        bounds = [b for b in (res.bound, ex.bound) if b is not None]
        bound = min(bounds) if bounds else None
        best = ex if ex.objective >= res.objective else res
        cp = best.compiled
        reasons = {row.name: row.reason for row in best.placement.jobs if row.reason}
        stats = {
            **res.stats,
            "exact_small": ex.stats,
            "primal_from": "exact-small" if best is ex else res.stats.get("primal_from"),
        }
        return finalize(
            inst,
            self.name,
            cp.job_gpus,
            cp.offer_blocks,
            reasons,
            bound,
            started,
            proven_optimal=best is ex and ex.status == Status.OPTIMAL,
            stats=stats,
        )

    def _decompose(
        self,
        inst: Instance,
        deadline: float | None,
        started: float,
        seed: int,
        threads: int,
        progress,
        **options: Any,
    ) -> Result:
        """Steps 1-6 of the overview."""
        hard = deadline
        # the process's CPU time from here: its share of a core decides early whether a
        # plan can fit (plan_cannot_fit)
        t_share, c_share = time.perf_counter(), time.process_time()
        stats_pre: dict = {}  # what the skipped and the planned paths both report
        if deadline is not None:
            # what follows the search (reasons, check, re-score) grows with the instance
            deadline -= finish_reserve(inst, deadline - started)
        # the greedy first, so that any deadline returns at least its placement (at scale
        # the coarse model, its solve and its packing may not finish in the limit)
        progress(stage="greedy", elapsed=time.perf_counter() - started)
        g_end = None
        # identical jobs (job arrays, sweeps) share one set of options (coarse.AGGREGATE)
        classes = coarse_mod.job_classes(inst) if coarse_mod.AGGREGATE else []
        n_model = len(inst.jobs) - sum(len(m) - 1 for m in classes)
        need = coarse_need(inst, lp_per_var=self.lp_per_var, n_jobs=n_model)
        plan = True
        if deadline is not None:
            avail = deadline - started
            mode = options.get("lp_rounding", "auto")
            lp_scale = mode == "always" or (mode == "auto" and VARS_PER_JOB * n_model > LARGE_MODEL)
            share = GREEDY_SHARE_LP if lp_scale else GREEDY_SHARE
            # when no plan can follow in the time, the greedy has it all
            plan = avail * (1 - share) > need
            g_end = started + (share if plan else 1.0) * avail
        t_g = time.perf_counter()
        first = best_greedy(inst, g_end, final=False)
        t_g = time.perf_counter() - t_g
        rest = 0.0  # the greedy's rest that the coarse solve leaves it (greedy_rest)
        progress(
            stage="coarse model", incumbent=first.objective, elapsed=time.perf_counter() - started
        )
        co = None
        dropped = dominated = 0
        skipped = "no time to build or solve it"
        # (the greedy stops at its first job past its share: a tenth of the estimate is
        # its margin, so that the plan decided above is not dropped for a late job)
        # and a model that the greedy's rest would leave no time to solve (the check after
        # the build, with the same rest and need's solve half) is not built: colossus-v2
        # at 1 s built one for 0.25-0.4 s and dropped it
        rest_pre = 0.0 if deadline is None or lp_scale else greedy_rest(first, t_g)
        # (a rounded LP's solve goes through HiGHS in memory: no such import)
        overhead = 0.0 if deadline is None or lp_scale else self.solve_overhead()
        room = None if deadline is None else deadline - time.perf_counter()
        cramped = room is not None and room - rest_pre - overhead <= 0.5 * need
        if cramped:
            if rest_pre > 0:
                skipped = (
                    f"the greedy its share cut needs about {rest_pre:.1f} s to finish, which "
                    "leaves too little for the coarse model (not built)"
                )
            elif overhead > 0:
                skipped = (
                    f"its solver's first import (about {overhead:.2f} s) would take most of "
                    "the time left (not built)"
                )
        if room is None or (plan and room > 0.9 * need and not cramped):
            t_b = time.perf_counter()
            b_end = None
            if deadline is not None and lp_scale:
                # the build is timed against its own run: the LP and enough of the packing
                # take about PLAN_PER_BUILD times as long on the same machine at the same
                # moment, so a build past 1 / (1 + PLAN_PER_BUILD) of the time left leaves
                # them no room
                b_end = t_b + (deadline - t_b) / (1 + PLAN_PER_BUILD)
            core = None if b_end is None else cpu_share(t_share, c_share)
            if core is not None:
                stats_pre["cpu_share"] = round(core, 3)
            if b_end is not None and plan_cannot_fit(n_model, core, b_end - t_b):
                # the share of a core the greedy's first work had says the build cannot end
                # in its share: the greedy has the time the build's first 1,024 jobs took
                skipped = (
                    f"the solve had {core:.0%} of a core since its decomposition started, so its "
                    f"build ({n_model:,} jobs, {BUILD_CPU_PER_JOB * 1e3:g} ms of CPU each "
                    f"under load) would have run past {b_end - t_b:.1f} s (a share of the time "
                    "left); not started"
                )
            else:
                co = coarse_mod.build(inst, b_end, classes)
                t_build = time.perf_counter() - t_b
                if co is None:
                    skipped = (
                        f"its build would have run past {b_end - t_b:.1f} s (a share of the "
                        f"time left), as timed on its first jobs; stopped after {t_build:.1f} s"
                    )
                elif b_end is not None and t_b + (1 + PLAN_PER_BUILD) * t_build > deadline:
                    co = None
                    skipped = (
                        f"its build took {t_build:.1f} s, and its LP and packing (at least "
                        f"{PLAN_PER_BUILD:g} times as long) did not fit in the "
                        f"{deadline - time.perf_counter():.1f} s left"
                    )
            if co is not None:
                # SPEC v3: one-site options duplicated by a sibling plan (plans.site_twins)
                dropped = drop_twin_sites(inst, co.options, co.model.ub)
                # and options of non-default plans that another plan's option dominates
                dominated = drop_dominated(inst, co.options, co.model)
        mode = options.get("lp_rounding", "auto")  # auto | always | never
        rounded = co is not None and (
            mode == "always" or (mode == "auto" and co.model.n_vars > LARGE_MODEL)
        )
        left = None if deadline is None else (deadline - time.perf_counter()) * 0.5
        if co is not None and left is not None:
            need = coarse_need(inst, co.model.n_vars, self.lp_per_var)
            # a rounded LP plan's packing is anytime (largest jobs first; those it does not
            # reach keep 0 units, and even cut it beats the greedy's rest at 1M GPUs): the
            # time left must hold its LP (half the estimate) and half as much again, and the
            # LP may take 70% of it
            rest = 0.0 if rounded else greedy_rest(first, t_g)
            if rest > 0:
                # the greedy's share cut it: the coarse solve leaves it the time to finish
                # as the greedy backend would, so that a solve that finds no plan still
                # returns the greedy backend's placement (180k GPUs / 300 jobs at 5 s:
                # CP-SAT found no plan in 1.9 s, and the greedy finished in the 1.3 s left
                # gave 88.2 M where the greedy backend gives 93.7 M)
                left = min(left, deadline - time.perf_counter() - rest)
                stats_pre["greedy_rest_s"] = round(rest, 3)
            if rounded:
                overhead = 0.0
            if 2 * (left - overhead) < (0.75 * need if rounded else need):
                co = None  # no time to solve it: skip it
                if overhead > 0 and 2 * left >= (0.75 * need if rounded else need):
                    skipped = (
                        f"its solver's first import (about {overhead:.2f} s) would take most "
                        f"of the {left:.2f} s left for its solve"
                    )
                elif rest > 0:
                    skipped = (
                        f"the greedy its share cut needs about {rest:.1f} s to finish, which "
                        "leaves too little for the coarse solve"
                    )
            elif rounded:
                left *= 1.4
        if co is None or (left is not None and left <= 0):
            if not first.unplaced_musts():
                # the greedy backend's placement, as it would have made it: its first policy
                # resumed where its share stopped it, then (when its share cut the first)
                # the second, the better kept; then the local search
                stats = {"primal_from": "greedy", "coarse": "skipped: " + skipped, **stats_pre}
                # until the search's deadline, as the greedy backend runs: the same time for
                # the same work (a cpsat solve no longer imports OR-Tools before its clock
                # starts, CpSatSolver.available, which the local search's margin here made up
                # for: one run at a load of 4 had returned at 32.1 s of a 30 s limit)
                st = finish_greedy(first, deadline, stats)
                stats["improvements"] = local_search(st, deadline, passes=50)
                return self._finish(inst, st, None, hard, started, stats)
            return no_placement(
                inst,
                self.name,
                NO_SOLUTION,
                "the time limit was reached before any placement was found",
                started,
            )
        lp_x = t_lp = None  # the LP relaxation's values and its time, when it is solved
        warm: dict = {}  # the coarse solve's hint (the greedy's placement), when it had one
        held_sol = None  # the coarse model held to first plans, when solved first
        t_solve = time.perf_counter()
        if rounded:
            # thousands of jobs: the integer model is too large to solve in the time; its
            # LP relaxation gives the bound, and rounding it gives the plan
            progress(
                stage="LP relaxation of the coarse model", elapsed=time.perf_counter() - started
            )
            t_lp = time.perf_counter()
            lp = self.solve_relaxation(
                co.model, max(left, 0.05) if left is not None else None, **options
            )
            t_lp = time.perf_counter() - t_lp
            if lp.status == Status.OPTIMAL:
                lp_x = lp.values
                sol = CoarseSolution(
                    Status.FEASIBLE,
                    round_plan(inst, co, lp.values, offers_up=True),
                    lp.bound,
                    f"{lp.native} + rounding",
                )
            else:
                sol = lp
        else:
            t_c = time.perf_counter()
            lim = max(left, 0.05) if left is not None else None
            # SPEC v3: held to first plans first, then the other plans above its optimum
            # (coarse models of BRANCH_MIN_VARS to BRANCH_MAX_VARS variables with plans)
            sol, held_sol = solve_first_plans_first(
                inst,
                co.options,
                co.model,
                lambda m, t, cutoff=False: self.solve_coarse(
                    m, t, seed, threads, **options, **({"cutoff_branch": True} if cutoff else {})
                ),
                lambda m, t: self.solve_relaxation(m, t, **options),
                lim,
            )
            if sol is None:
                if lim is not None:
                    lim = max(0.05, lim - (time.perf_counter() - t_c))
                hint = None
                if self.hints and co.model.n_vars >= HINT_MIN_VARS:
                    # the greedy's placement as the solve's starting point (100k GPUs / 500
                    # jobs: without it CP-SAT found no plan in 4 s and an unproven one in
                    # 14 s; with it, the proven optimum in 3 s)
                    t_w = time.perf_counter()
                    hint, warm = self._warm(inst, co, first, lim, seed, threads, **options)
                    if lim is not None:
                        lim = max(0.05, lim - (time.perf_counter() - t_w))
                sol = self.solve_coarse(
                    co.model,
                    lim,
                    seed,
                    threads,
                    **({"hint": hint} if hint is not None else {}),
                    **options,
                )
        stats = {
            "coarse_status": sol.status,
            "coarse_native": sol.native,
            "coarse_vars": co.model.n_vars,
            "coarse_rows": len(co.model.rows),
            "coarse_bound": sol.bound,
            "coarse_build_seconds": round(t_build, 3),
            "coarse_solve_seconds": round(time.perf_counter() - t_solve, 3),
            **stats_pre,
        }
        if co.classes:
            stats["aggregated"] = co.aggregated
        if warm:  # (flat: the benchmark records scalar stats)
            stats["coarse_hint_value"] = warm.get("coarse_value")
            stats["coarse_hint_from"] = (
                f"the greedy's placement ({warm['objective']:,.1f}), {warm['missed_jobs']} "
                f"placed jobs outside the model's options; completed: {warm['native']}"
            )
        if dropped:
            stats["plan_twin_options"] = dropped
        if dominated:
            stats["plan_dominated_options"] = dominated
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
            # a rounded LP plan (thousands of jobs) is packed, and dived, until the local
            # search's margin: at that scale the search finds little to do, and a packing cut
            # short leaves its jobs to the greedy (1M GPUs at 60 s: 29.2 M with 461 jobs cut)
            d_end = None if deadline is None else deadline - 0.1 - 0.05 * (deadline - started)
            t_pack = time.perf_counter()
            candidates.append(
                primal_from_coarse(inst, co, sol.values, p_deadline if lp_x is None else d_end)
            )
            t_pack = time.perf_counter() - t_pack
            if lp_x is not None and (d_end is None or d_end - time.perf_counter() > 2 * t_pack):
                # the rounded plan packed in the second order too (the plans of at most 500
                # jobs always are): at 1M GPUs / 5,000 jobs the same plan packed to 31.341 M
                # with the jobs of the most units per GPU of scope first, against 31.323 M
                # largest first, half of its 0.12% gap; it takes about 1.7 times as long
                progress(
                    stage="packing the coarse plan, tightest jobs first",
                    elapsed=time.perf_counter() - started,
                )
                candidates.append(primal_from_coarse(inst, co, sol.values, d_end, order="tight"))
                stats["tight_objective"] = candidates[-1].objective
            if lp_x is not None:
                dive = self._dive(inst, co, lp_x, t_lp, t_pack, d_end, started, progress, **options)
                if dive[0] is not None:
                    candidates.append(dive[0])
                stats.update(dive[1])
                if (
                    dive[0] is not None
                    and dive[0].objective > candidates[0].objective
                    and (d_end is None or d_end - time.perf_counter() > 2 * t_pack)
                ):
                    # the dive's plan packed better than the first: in the second order too
                    progress(
                        stage="packing the dive's plan, tightest jobs first",
                        elapsed=time.perf_counter() - started,
                    )
                    candidates.append(primal_from_coarse(inst, co, dive[2], d_end, order="tight"))
                    stats["dive_tight_objective"] = candidates[-1].objective
                # the plan without the offers the LP accepts at a fraction below 1/2, when it
                # differs and its packing (as measured on the first) fits in the time left
                down = round_plan(inst, co, lp_x)
                if down != sol.values and (
                    d_end is None or d_end - time.perf_counter() > 1.25 * t_pack
                ):
                    progress(
                        stage="packing the plan without its fractional offers",
                        elapsed=time.perf_counter() - started,
                    )
                    candidates.append(primal_from_coarse(inst, co, down, d_end))
                    stats["offers_down_objective"] = candidates[-1].objective
            if (
                "tight_objective" not in stats
                and len(inst.jobs) <= 500
                and (deadline is None or time.perf_counter() < p_deadline)
            ):
                # a second packing order: fragmentation depends on it (not grown when it
                # cannot reach the first: primal_from_coarse's floor)
                candidates.append(
                    primal_from_coarse(
                        inst, co, sol.values, p_deadline, order="tight", floor=_floor(candidates)
                    )
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

            def solve_x(model, key, until, share, skip=None, pre=None):
                if model is None or (
                    deadline is not None
                    and time.perf_counter() >= started + until * (deadline - started)
                ):
                    return None
                progress(stage=f"coarse model: {key}", elapsed=time.perf_counter() - started)
                left_x = None if deadline is None else share * (deadline - time.perf_counter())
                sol_x = pre or self.solve_coarse(
                    model,
                    max(left_x, 0.05) if left_x is not None else None,
                    seed,
                    threads,
                    **options,
                )
                if sol_x.values is None:
                    return None
                why = skip(sol_x) if skip is not None else ""
                if why:
                    stats[key] = "not packed: " + why
                    return None
                states = both_orders(inst, co, sol_x.values, p_deadline, _floor(candidates))
                candidates.extend(states)
                stats[key] = True
                return sol_x.values, states

            # SPEC v3: the plan held to each job's first plan, packed too (first_plan_rows),
            # while its solve and its two packings fit before the packing deadline (its LP
            # check not after that either)
            first_until = _first_plans_until(started, deadline, p_deadline, t_pack)
            held = first_plan_rows(inst, co.options)
            in_time = deadline is None or time.perf_counter() < started + first_until * (
                deadline - started
            )
            if held and sol.status == Status.OPTIMAL and _rows_hold(held, sol.values):
                # the optimum already holds every job to its first plan: it is the held
                # model's optimum too (a restriction of the same model), already packed
                stats["first_plans"] = "not solved: the coarse optimum runs first plans only"
            elif held and held_sol is not None:
                # solved first (plans.solve_first_plans_first): packed unless settled
                solve_x(
                    co.model,
                    "first_plans",
                    1.0,
                    FIRST_PLANS_SHARE,
                    skip=lambda s: _first_plans_settled(s, sol, candidates),
                    pre=held_sol,
                )
            elif held and in_time and mode != "always" and co.model.n_vars <= LARGE_MODEL:
                held_model = _with_rows(co.model, held)
                # its LP relaxation bounds it too, in a fraction of the integer solve: when
                # a candidate already reaches that, the integer model is not solved either
                lp_held = self._relaxation_compact(
                    held_model,
                    None if deadline is None else max(0.05, 0.1 * (deadline - time.perf_counter())),
                    **options,
                )
                why = ""
                if lp_held.status == Status.OPTIMAL:
                    why = _first_plans_settled(
                        lp_held, CoarseSolution(sol.status, None, None, ""), candidates, 1e-6
                    )
                if why:
                    stats["first_plans"] = "not solved: its LP relaxation: " + why
                else:
                    solve_x(
                        held_model,
                        "first_plans",
                        first_until,
                        FIRST_PLANS_SHARE,
                        skip=lambda s: _first_plans_settled(s, sol, candidates),
                    )
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
        lp_bound = None
        # the time reserved for the greedy's rest (greedy_rest) stays the greedy's: the LP
        # step below is optional (colossus-v2 at 3 s: its 0.55 s left the greedy's other
        # policy cut)
        g_held = rest if (first.unreached or first.second_policy_skipped) else 0.0
        if (
            sol.status == Status.FEASIBLE
            and not rounded
            and sol.values is not None
            and (deadline is None or deadline - g_held - time.perf_counter() > 2.5 * t_pack + 0.5)
        ):
            # the coarse solve stopped at its share of the limit without proving its plan
            # (100k GPUs / 500 jobs at 30 s: CP-SAT's plan packed to 3.44 M, 3.6% under its
            # bound, and 13 s were left unused). Its LP relaxation is solved in a fraction of
            # that, bounds the model as well, and its rounded plan (the one used at scale) is
            # packed too: the better placement wins
            progress(
                stage="LP relaxation of the unproven coarse model",
                elapsed=time.perf_counter() - started,
            )
            now = time.perf_counter()
            lp = self.solve_relaxation(
                co.model,
                None if deadline is None else max(0.05, 0.3 * (deadline - g_held - now)),
                **options,
            )
            if lp.status == Status.OPTIMAL:
                lp_bound = lp.bound
                stats["lp_bound"] = lp.bound
                plan_lp = round_plan(inst, co, lp.values, offers_up=True)
                if plan_lp != sol.values and (
                    deadline is None or deadline - g_held - time.perf_counter() > 2 * t_pack + 0.3
                ):
                    progress(
                        stage="packing the rounded LP plan", elapsed=time.perf_counter() - started
                    )
                    candidates.append(primal_from_coarse(inst, co, plan_lp, d_end))
                    stats["rounded_lp_objective"] = candidates[-1].objective
        if self.hints and sol.status == Status.FEASIBLE and not rounded and sol.values is not None:
            # the coarse solve stopped at its share without proving its plan: the time the
            # packings left goes back to it, started from the best plan in hand
            sol = self._resume_coarse(
                inst,
                co,
                sol,
                candidates,
                first,
                t_pack,
                None if d_end is None else d_end - g_held,  # (the greedy's rest kept too)
                started,
                seed,
                threads,
                progress,
                stats,
                **options,
            )
        # the greedy's placement, made first, is the incumbent every plan must beat; cut by
        # its share of the limit, it first goes on with the jobs it did not reach (half the
        # time left), so that a weak plan does not win over an unfinished greedy
        if sol.values is None and deadline is not None:
            # no coarse plan came back in its share (100k GPUs at 10 s: CP-SAT found none):
            # the greedy is the answer, and it is finished as the greedy backend finishes it
            # (its second policy too, when its share had cut it: 2.76 M -> 2.94 M there)
            first = finish_greedy(first, deadline - 0.1 - 0.05 * (deadline - started), stats)
        elif (first.unreached or first.second_policy_skipped) and deadline is not None:
            # finished as the greedy backend would, in the time reserved for it before the
            # coarse solve (greedy_rest), or half the time left when more
            now = time.perf_counter()
            avail = deadline - now - 0.05 * (deadline - started)
            first = finish_greedy(first, now + max(0.5 * avail, min(rest, avail)), stats)
        candidates.append(first)
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
        if st.unreached:  # the greedy's placement, cut by its share of the limit
            stats["resumed"] = resume(st, ls_deadline)
        # while passes improve, more passes (the time is the limit's, not a fixed count)
        stats["improvements"] = local_search(st, ls_deadline, passes=2 if deadline is None else 50)
        progress(
            stage="checking and scoring",
            bound=sol.bound,
            incumbent=st.objective,
            elapsed=time.perf_counter() - started,
        )
        bound = (
            sol.bound
            if sol.status in (Status.OPTIMAL, Status.FEASIBLE, Status.NO_SOLUTION)
            else None
        )
        if lp_bound is not None:  # both proven: the lower
            bound = lp_bound if bound is None else min(bound, lp_bound)
        return self._finish(inst, st, bound, hard, started, stats)

    def _resume_coarse(
        self,
        inst: Instance,
        co: coarse_mod.Coarse,
        sol: CoarseSolution,
        candidates: list[State],
        first: State,
        t_pack: float,
        d_end: float | None,
        started: float,
        seed: int,
        threads: int,
        progress,
        stats: dict,
        **options: Any,
    ) -> CoarseSolution:
        """The coarse model solved again after its solve stopped unproven at its share of
        the limit (`sol`), with the time left less what its plan's packing (two orders, each
        `t_pack` as measured) and the local search's margin need (`d_end`), hinted with the
        better, by the model's objective, of `sol`'s plan and the best placement in hand
        (`candidates` and the greedy's `first`) read back in the model. Its plan is packed
        when the model values it above the hint; its bound is proven for the same model, so
        the lower of the two is kept. Returns the coarse solution that stands (OPTIMAL when
        the second solve proved it); says in `stats["coarse_resumed"]` what it did
        (:func:`stop_reason` quotes it)."""
        lm = co.model
        limit = None
        if d_end is not None:
            limit = d_end - time.perf_counter() - 2 * t_pack - 0.2
            if limit < 1.0:
                stats["coarse_resumed"] = (
                    f"not solved again: the {max(0.0, d_end - time.perf_counter()):.1f} s "
                    "left held no second solve (at least 1 s) and its packing"
                )
                return sol
        progress(
            stage="coarse model, again from the best plan", elapsed=time.perf_counter() - started
        )
        t0 = time.perf_counter()
        best = max([*candidates, first], key=lambda s: s.objective)
        hint, _ = self._warm(inst, co, best, limit, seed, threads, **options)
        base = lm.value(sol.values)
        if hint is None or lm.value(hint) <= base:
            hint = sol.values
        start = float(lm.value(hint))
        if limit is not None:
            limit = max(0.05, limit - (time.perf_counter() - t0))
        again = self.solve_coarse(lm, limit, seed, threads, hint=hint, **options)
        bound = sol.bound
        if again.bound is not None:
            bound = again.bound if bound is None else min(bound, again.bound)
        out = f"solved again from a plan the model values at {start:,.1f}: {again.native}"
        values = sol.values
        if again.values is not None and lm.value(again.values) > start + 1e-9 * max(
            1.0, abs(start)
        ):
            values = again.values
            progress(stage="packing the plan solved again", elapsed=time.perf_counter() - started)
            packed = both_orders(inst, co, values, d_end)
            candidates.extend(packed)
            best = max(s.objective for s in packed)
            out += f", a plan of {float(lm.value(values)):,.1f} packed to {best:,.1f}"
            stats["resumed_objective"] = best
        else:
            out += ", no better plan"
        stats["coarse_resumed"] = out
        status = Status.OPTIMAL if again.status == Status.OPTIMAL else sol.status
        stats["coarse_status"] = status
        stats["coarse_bound"] = bound
        stats["coarse_native"] = f"{sol.native}, then {again.native}"
        return CoarseSolution(status, values, bound, stats["coarse_native"])

    def _dive(
        self,
        inst: Instance,
        co: coarse_mod.Coarse,
        x: list[float],
        t_lp: float,
        t_pack: float,
        deadline: float | None,
        started: float,
        progress,
        **options: Any,
    ) -> tuple[State | None, dict, list[float] | None]:
        """The time the first rounded plan leaves, spent on what the rounding decided against
        the LP (:func:`lp_fractional`): those decisions fixed to 1 and the LP re-solved, until
        it is integral in them (at most MAX_DIVES rounds), then rounded and packed like the
        first plan. Each round must fit, with its packing, in the time left, as measured on
        the first LP and packing. The bound stays the first LP's (a fixed LP bounds only the
        plans that keep its fixings). Its state (None when nothing is fractional or there is no
        time), stats that say what it did and why it stopped (`stop_reason`), and its plan."""
        lb, ub = list(co.model.lb), list(co.model.ub)
        fixed = solved = 0
        why = "the LP's plan was integral in its offers and job choices"
        for rnd in range(MAX_DIVES):
            frac = lp_fractional(inst, co, x)
            if not frac:
                if solved:
                    why = (
                        f"{solved} re-solve(s) with its fractional decisions fixed made it integral"
                    )
                break
            why = f"{len(frac)} of its decisions stayed fractional after {MAX_DIVES} re-solves"
            now = time.perf_counter()
            need = 1.25 * (t_lp + t_pack)
            if deadline is not None and deadline - now < need:
                why = (
                    f"{len(frac)} of its decisions were fractional, and another LP and packing "
                    f"(about {need:.0f} s as measured) did not fit in the "
                    f"{max(0.0, deadline - now):.0f} s left"
                )
                break
            for v in frac:
                # a binary to 1; a class's count (coarse.AGGREGATE) to its next integer
                lb[v] = float(np.ceil(x[v] - 1e-9))
                ub[v] = max(ub[v], lb[v])
            fixed += len(frac)
            progress(stage=f"LP dive {rnd + 1}: {len(frac)} fixed", elapsed=now - started)
            left = None if deadline is None else deadline - now - t_pack
            lp = self.solve_relaxation(replace(co.model, lb=list(lb), ub=list(ub)), left, **options)
            if lp.status != Status.OPTIMAL:
                # infeasible with those fixings (or out of time): the last LP stands
                why = f"the LP with {len(frac)} fractional decisions fixed up was {lp.native}"
                break
            x = lp.values
            solved += 1
        if not solved:
            return None, {"dive": why}, None
        plan = round_plan(inst, co, x, offers_up=True)
        st = primal_from_coarse(inst, co, plan, deadline)
        return (
            st,
            {
                "dive": why,
                "dive_lps": solved,
                "dive_fixed": fixed,
                "dive_objective": st.objective,
            },
            plan,
        )

    def _finish(
        self,
        inst: Instance,
        st: State,
        bound: float | None,
        hard: float | None,
        started: float,
        stats: dict,
    ) -> Result:
        """Reasons, check and re-score of the chosen state; the reasons' searches stop a
        share of the reserve before the limit (see :func:`~placer.solvers.base.finish_reserve`)."""
        r_deadline = None
        if hard is not None:
            r_deadline = hard - 0.8 * finish_reserve(inst, hard - started)
        reasons = st.reasons(deadline=r_deadline)
        stats["deadline_cut"] = st.timed_out
        return finalize(
            inst, self.name, st.job_gpus, st.offer_blocks, reasons, bound, started, stats=stats
        )
