"""SPEC v3 plans in the solvers: a job with plans becomes one *variant* job per plan.

Algorithm overview
1. :func:`expand` builds a virtual instance (sharing the topology index) with one job per
   (job, plan): the job under that plan (SPEC 1.2), named ``<job>/<plan>`` (``/`` cannot
   occur in a real job name). Only the variant of a running job's `current_plan` keeps
   `current`, so it alone can "stay" or "move"; placing another variant means the job
   moved (a plan change), and the kernel charges that through the running variant being
   stopped: the migration cost is charged exactly once either way. A pinned job keeps one
   variant (its current plan). The variants of one job form a *group*.
2. The backends solve the virtual instance with two extra rules, read through
   :func:`siblings` and :func:`must_place`: at most one variant of a group is placed (one
   coarse / column row per group; the greedy and the local search place a group's best
   variant, so they switch plans), and a group whose job is running and not preemptible has
   one placed. Every feasible placement of the real instance is a feasible placement of the
   virtual one with the same kernel objective, so bounds proven on it hold for the real one.
3. :func:`collapse` maps the result back (each job's GPUs, chosen plan and reason), and
   :meth:`~placer.solvers.base.Solver.solve` passes it through
   :func:`~placer.solvers.base.finalize` on the real instance: the checker (rule 8
   included) and the kernel's re-score.

The peer baselines have no plan choice: ``expand(inst, first_only=True)`` gives each job its
first plan (a running job keeps its current plan), and the virtual instance is then a plain
v2 instance. An instance without plans is solved as it is.

Imports numpy and the model; never a solver library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from placer.errors import SolverError
from placer.kernel.capacity import allowed_types
from placer.kernel.cost import all_reduce_ms
from placer.kernel.score import bubble, job_hours
from placer.model import Instance


@dataclass
class PlanGroups:
    """Variants of the virtual instance and the jobs they stand for."""

    owner: list[int]  # variant -> its job in the real instance
    plan: list[int | None]  # variant -> its plan (index into the job's plans), or None
    members: list[list[int]]  # real job -> its variants
    must: list[bool]  # real job -> running and not preemptible: one variant must be placed
    bounds: dict[int, tuple] = field(default_factory=dict)  # variant -> _bound (cache)
    twins: set[int] | None = None  # site_twins (cache)


def has_plans(inst: Instance) -> bool:
    """True when any job of the instance has plans (v3)."""
    return any(job.plans for job in inst.jobs)


def expand(inst: Instance, first_only: bool = False) -> tuple[Instance, PlanGroups]:
    """The virtual instance of one job per (job, plan) and its groups (step 1)."""
    vjobs = []
    owner: list[int] = []
    plan: list[int | None] = []
    members: list[list[int]] = []
    must: list[bool] = []
    for j, job in enumerate(inst.jobs):
        must.append(bool(job.current) and not job.preemptible)
        members.append([])
        if not job.plans:
            members[j].append(len(vjobs))
            vjobs.append(job)
            owner.append(j)
            plan.append(None)
            continue
        run = job.default_plan if job.current else None
        if (job.pinned and job.current) or first_only:
            ks = [job.default_plan]
        else:
            ks = list(range(len(job.plans)))
        for k in ks:
            v = job.under(k)
            update: dict = {"name": f"{job.name}/{v.plan}"}
            if k != run:
                update.update(current=None, pinned=False, preemptible=True)
            elif len(ks) > 1:
                update["preemptible"] = True  # the group keeps the must (step 2)
            vj = v.model_copy(update=update)
            vj._plan = None  # a plain job of the virtual instance (its plan is in `plan`)
            members[j].append(len(vjobs))
            vjobs.append(vj)
            owner.append(j)
            plan.append(k)
    vinst = inst.model_copy(update={"jobs": vjobs})
    vinst._warnings = []
    vinst._plan_groups = PlanGroups(owner, plan, members, must)
    return vinst, vinst._plan_groups


def first_plans(inst: Instance) -> Instance:
    """The instance with each job held to one plan: its first (a running job its current
    plan). A baseline for what choosing plans is worth; it is still a v3 instance."""
    jobs = []
    for job in inst.jobs:
        if job.plans and len(job.plans) > 1:
            job = job.model_copy(update={"plans": [job.plans[job.default_plan]]})
        jobs.append(job)
    out = inst.model_copy(update={"jobs": jobs})
    out._warnings = list(inst.warnings)
    return out


def siblings(inst: Instance, j: int) -> list[int]:
    """Job j and the other variants of its job (step 2); ``[j]`` outside a virtual
    instance."""
    g = inst._plan_groups
    return [j] if g is None else g.members[g.owner[j]]


def must_place(inst: Instance, j: int) -> bool:
    """Whether job j's group must have a variant placed (its job runs, not preemptible)."""
    g = inst._plan_groups
    if g is None:
        job = inst.jobs[j]
        return bool(job.current) and not job.preemptible
    return g.must[g.owner[j]]


def first_plan_rows(inst: Instance, options: list) -> list:
    """Rows holding every group of a virtual instance to its default plan (its first; a
    running job's current plan): the coarse options (``op.job``, binary ``op.b``) of every
    other variant at 0; [] outside plans or when no job has a second plan.

    Why: the coarse model is solved to a relative gap (1e-6), and with more options it may
    stop at another plan of the same worth within it, whose packing realises a little less
    than the first-plan solve's (0.004% on a generated multi-site instance). Solved under
    these rows it is the first-plan solve's own coarse model; its plan, packed as one more
    candidate, keeps plan choice from ending below the first-plan placement."""
    g = inst._plan_groups
    if g is None:
        return []
    first = {_default_variant(inst, g, j) for j in range(len(g.members))}
    others = {op.b: 1.0 for op in options if op.job not in first and op.b >= 0}
    return [(others, "<=", 0.0, "first plans")] if others else []


def site_twins(inst: Instance) -> set[int]:
    """Variants that place inside one site exactly as an earlier variant of their job does:
    every field equal but the scopes, and those equal or both site-wide or wider in every
    dimension (``pp: cluster, dp: site`` against ``dp: cluster``, say). Empty outside a
    virtual instance.

    Why: inside one site neither scope binds, so such a variant's one-site placements are
    the earlier one's, with the same kernel value (scopes are rules, not costs) and the
    same rules met; only its cross-site placements differ. Its one-site coarse options
    duplicate the earlier variant's, and the duplicates made the coarse model hard to prove:
    on a generated three-campus instance (24 jobs, 9 such variants) CP-SAT did not prove it
    in 20 s, and proves it without them in about 6 s, at the same optimum."""
    g = inst._plan_groups
    if g is None:
        return set()
    if g.twins is not None:
        return g.twins
    ix = inst.index

    def wide(x: str | None) -> bool:
        return x is None or x == "cluster" or ix.level_index(x) == 0

    def same_inside(a: int, b: int) -> bool:
        ja, jb = inst.jobs[a], inst.jobs[b]
        quick = ("tp", "pp", "ep", "units_min", "units_max", "value", "cross_site_every")
        if any(getattr(ja, k) != getattr(jb, k) for k in quick):
            return False  # (cheap first: most plans of a job differ in their shape)
        # the rest (siblings share `plans`: one job's)
        skip = {"name", "scope", "plans"}
        if ja.model_dump(exclude=skip) != jb.model_dump(exclude=skip):
            return False
        sa, sb = ja.effective_scope(), jb.effective_scope()
        return all(sa[d] == sb[d] or (wide(sa[d]) and wide(sb[d])) for d in sa)

    out = set()
    for vs in g.members:
        for i, b in enumerate(vs[1:], 1):
            if any(same_inside(a, b) for a in vs[:i] if a not in out):
                out.add(b)
    g.twins = out
    return out


def drop_twin_sites(inst: Instance, options: list, ub: list[float]) -> int:
    """Fix at 0 (in `ub`, the coarse model's upper bounds) the one-site options (kind
    ``site``) of :func:`site_twins`; returns how many. The bound stays valid: every
    placement they stand for is one of the earlier variant's, which keeps its options."""
    twins = site_twins(inst)
    n = 0
    for op in options:
        if op.job in twins and op.kind == "site" and op.b >= 0:
            ub[op.b] = 0.0
            n += 1
    return n


def _default_variant(inst: Instance, g: PlanGroups, j: int) -> int:
    """The variant of real job j that runs its default plan: the one that keeps `current`
    (a running job's current plan), else the first listed (its first plan)."""
    vs = g.members[j]
    return next((v for v in vs if inst.jobs[v].current), vs[0])


def value_bound(inst: Instance, j: int, free: int | None = None) -> float:
    """An upper bound on what placing variant j can add to the objective, from a state where
    its group holds no GPUs (inf outside a virtual instance); with `free`, the count of free
    GPUs in that state, the bound of what fits in them (-inf when its fewest units do not).

    Why: a job's variants are tried in turn wherever a job is placed (the greedy, its growth,
    the local search), and most of a solve with plans went into packing variants that could
    not beat the best one already found. A variant whose bound is at most that best is
    skipped: the result is the same, only sooner. The bound is SPEC 4's value at its most
    units and the fastest allowed type, with no failures and a step of at least the compute
    with its 1F1B bubble plus, for TP groups inside a site, the ring at the fastest latency and
    bandwidth of any level; plus the migration cost a running variant saves by staying. Other
    jobs only lose when a job is added (it shares WAN links with them).

    The value is linear in the units (each adds unit_size GPUs at the same rate), so with
    `free` GPUs the bound scales to the most units they hold. Why: once the cluster is nearly
    full, every variant of every job left was packed only to find nothing fits (on a 1,024-GPU
    SuperPOD, half the greedy's packings), and a job held to fewer units than it wants by the
    free count alone cannot gain by another plan of lower rate."""
    g = inst._plan_groups
    if g is None:
        return float("inf")
    got = g.bounds.get(j)
    if got is None:
        got = g.bounds[j] = _bound(inst, j)
    if free is None:
        return got[0] + got[1]
    job = inst.jobs[j]
    units = min(job.units_max, free // job.unit_size)
    if units < max(job.units_min, 1):
        return -float("inf")
    return got[0] * units / max(job.units_max, 1) + got[1]


def _bound(inst: Instance, j: int) -> tuple[float, float]:
    """(value bound at the most units, migration saved) of variant j (:func:`value_bound`)."""
    job = inst.jobs[j]
    ix = inst.index
    speed = max((float(ix.type_speed[t]) for t in allowed_types(inst, ix, job)), default=0.0)
    eff = 1.0
    if job.compute_ms is not None and speed > 0:
        c = job.compute_ms / speed  # the fastest type: speed x efficiency is largest there
        comm = 0.0
        if job.tp > 1 and job.effective_scope()["tp"] not in (None, "cluster"):
            # a TP group inside one site is a flat ring: at least the fastest latency and
            # bandwidth of any level of any site (SPEC 4)
            ring = all_reduce_ms(
                job.tp,
                job.comm.tp_messages,
                job.comm.tp_MB,
                float(ix.lat_us.min()),
                float(ix.bw_GBps.max()),
            )
            comm = (1.0 - job.overlap.tp) * float(ring)
        eff = c / (c * bubble(job) + comm)
    ub = job_hours(inst, job) * job.value * speed * job.units_max * job.unit_size * eff
    mig = job.migration_cost if job.current else 0.0
    # above the kernel's own rounding of the same products
    return ub * (1.0 + 1e-7) + 1e-6, mig * (1.0 + 1e-7) + 1e-6


def group_heads(inst: Instance, order: list[int]) -> list[int]:
    """`order` with only the first variant of each group (a group is placed as a whole)."""
    g = inst._plan_groups
    if g is None:
        return order
    seen: set[int] = set()
    out = []
    for j in order:
        o = g.owner[j]
        if o not in seen:
            seen.add(o)
            out.append(j)
    return out


def combine_reasons(inst: Instance, groups: PlanGroups, j: int, reasons: dict[str, str]) -> str:
    """One reason for real job j from its variants' reasons (each a sentence of its own)."""
    parts = []
    for v in groups.members[j]:
        why = reasons.get(_vname(inst, groups, v))
        if why:
            parts.append((groups.plan[v], why))
    if not parts:
        return ""
    if len(parts) == 1 or len({w for _, w in parts}) == 1:
        return parts[0][1] if len(groups.members[j]) == 1 else f"under every plan: {parts[0][1]}"
    names = inst.jobs[j].plans or []
    return "no plan fits: " + "; ".join(f"plan {names[k].name!r}: {w}" for k, w in parts)


def _vname(inst: Instance, groups: PlanGroups, v: int) -> str:
    job = inst.jobs[groups.owner[v]]
    k = groups.plan[v]
    return job.name if k is None or not job.plans else f"{job.name}/{job.plans[k].name}"


def collapse(
    inst: Instance, groups: PlanGroups, job_gpus: list[np.ndarray], vreasons: dict[str, str]
) -> tuple[list[np.ndarray], list[int | None], dict[str, str]]:
    """Each real job's GPUs, chosen plan and reason from the virtual placement (step 3);
    two variants of one job placed is a bug (:class:`SolverError`)."""
    n = len(inst.jobs)
    out = [np.zeros(0, np.int64) for _ in range(n)]
    plans: list[int | None] = [None] * n
    for v, g in enumerate(job_gpus):
        if not len(g):
            continue
        j = groups.owner[v]
        if len(out[j]):
            raise SolverError(f"job {inst.jobs[j].name!r} was placed under two plans (a bug)")
        out[j] = np.asarray(g, np.int64)
        plans[j] = groups.plan[v]
    reasons = {}
    for j, job in enumerate(inst.jobs):
        if not len(out[j]):
            why = combine_reasons(inst, groups, j, vreasons)
            if why:
                reasons[job.name] = why
    return out, plans, reasons
