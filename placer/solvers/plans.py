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

import ast
import math
import re
import time
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
    coarse_bounds: object = None  # the coarse model's Bounds on the free GPUs (cache)
    placed: dict[tuple, float] = field(default_factory=dict)  # candidate_bound (cache)
    open_info: dict[int, tuple] = field(default_factory=dict)  # State.open_bound (cache)


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


def candidate_bound(inst: Instance, j: int, g: np.ndarray) -> float:
    """An upper bound on what placing variant j on exactly the GPUs `g` can add, from a
    state where its group holds none: the lower of :func:`value_bound` for that many GPUs
    and, for a training job of one GPU type, the coarse model's own optimistic goodput for a
    placement of that many units over exactly the sites of `g`
    (:meth:`~placer.solvers.decomposition.coarse.Bounds.goodput`, the figure its proven bound
    rests on), plus the migration a running variant saves by staying.

    Why: :func:`value_bound` knows nothing of where a candidate lies; a variant whose DP
    groups would cross the WAN (the frontier run's sync-dp) has candidates worth far less
    than its bound, and each one was scored in full (an 8,704-GPU array) only to lose to the
    held plan. The coarse figures bound every placement of those units over those sites
    (SPEC 4 at the fastest level that can hold each group, the fewest failures), computed on
    the GPUs free of pinned jobs, a superset of what any state leaves free."""
    base = value_bound(inst, j, len(g))
    job = inst.jobs[j]
    g_ = inst._plan_groups
    if g_ is None or job.kind != "training" or job.mix_types or len(g) < job.unit_size:
        return base
    ix = inst.index
    n = len(g) // job.unit_size
    sites = tuple(np.unique(ix.dom[0][g]).tolist())
    t = int(ix.gpu_type[g[0]])
    key = (j, sites, t, n)
    got = g_.placed.get(key)
    if got is None:
        _coarse_bounds(inst)
        S = ix.n_sites
        # the coarse model's options: one site, sets of sites, and for more than 4 sites
        # one catch-all for sets of more than 3 (coarse._add_training_options)
        wide = len(sites) > 3 and S > 4
        gp = g_.coarse_bounds.goodput(job, t, tuple(range(S)) if wide else sites, n, any_multi=wide)
        k = job_hours(inst, job) * job.value * float(ix.type_speed[t]) * job.unit_size
        mig = job.migration_cost if job.current else 0.0
        got = g_.placed[key] = k * n * gp * (1.0 + 1e-7) + 1e-6 + mig * (1.0 + 1e-7) + 1e-6
    return min(base, got)


def _coarse_bounds(inst: Instance):
    """The coarse model's Bounds on the GPUs free of pinned jobs (once per virtual
    instance): what :func:`candidate_bound` and :func:`variant_bound` read."""
    g_ = inst._plan_groups
    if g_.coarse_bounds is None:
        from placer.solvers.decomposition.coarse import Bounds

        ix = inst.index
        free = ix.available.copy()
        for other in inst.jobs:
            if other.pinned and other.current:
                free[ix.cached_indices(other.current)] = False
        g_.coarse_bounds = Bounds(inst, free)
    return g_.coarse_bounds


# sites up to which variant_bound takes the most over every set of them (2^k - 1 sets)
VARIANT_BOUND_SITES = 4


def variant_bound(inst: Instance, j: int, free: int, units: int, sites: list[int] | None) -> float:
    """An upper bound on what placing variant j anywhere among `sites` (None: all) with at
    most `units` units can add, from a state with `free` free GPUs where its group holds
    none; inf when not known (not a virtual instance, not a training job of one GPU type, a
    running variant, more than VARIANT_BOUND_SITES sites).

    The coarse model's goodput bound at the job's fewest units (rule 3: no placement that
    passes the checks has fewer) bounds the goodput of every placement over the same sites
    with more units (:meth:`~placer.solvers.decomposition.coarse.Bounds.goodput`), so for
    each allowed type and set of the sites, ``k * most units * goodput(set, fewest)``, capped by
    :func:`value_bound`, bounds every candidate :meth:`~.State.candidates` can give, and the
    largest of them bounds them all: what :func:`candidate_bound` would let through, before
    any is packed.

    Why: a variant whose every candidate :func:`candidate_bound` rules out below the best
    variant so far was packed in full first (all its sites, layouts and PP splits) and only
    then filtered; on the fragmented SuperPOD of bench.plans that was a third of the time a
    re-placement spent on other plans."""
    g_ = inst._plan_groups
    job = inst.jobs[j]
    if g_ is None or job.kind != "training" or job.mix_types or job.current:
        return float("inf")
    ix = inst.index
    site_list = list(range(ix.n_sites)) if sites is None else sorted(sites)
    if len(site_list) > VARIANT_BOUND_SITES or not site_list:
        return float("inf")
    hi = min(job.units_max, units, free // job.unit_size)
    if hi < 1:
        return -float("inf")
    lo = max(job.units_min, 1)
    if hi < lo:
        return -float("inf")
    key = ("variant", j, tuple(site_list), hi)
    got = g_.placed.get(key)
    if got is not None:
        return got
    from itertools import combinations

    cb = _coarse_bounds(inst)
    S = ix.n_sites
    k0 = job_hours(inst, job) * job.value * job.unit_size
    best = -float("inf")
    for t in allowed_types(inst, ix, job):
        k = k0 * float(ix.type_speed[t])
        for size in range(1, len(site_list) + 1):
            for sub in combinations(site_list, size):
                # (the goodput bound at the fewest units, once per variant, type and sites:
                # the most units change with every state, it does not)
                gkey = ("variant goodput", j, t, sub)
                gp = g_.placed.get(gkey)
                if gp is None:
                    wide = len(sub) > 3 and S > 4  # (candidate_bound's catch-all)
                    subs = tuple(range(S)) if wide else sub
                    gp = g_.placed[gkey] = cb.goodput(job, t, subs, lo, any_multi=wide)
                best = max(best, k * hi * gp)
    got = min(value_bound(inst, j, hi * job.unit_size), best * (1.0 + 1e-7) + 1e-6)
    g_.placed[key] = got
    return got


def value_rate(inst: Instance, j: int) -> tuple[float, float]:
    """(per GPU, migration saved): what placing job (variant) j can add, from a state where
    its group holds no GPUs, is at most ``per GPU * its GPUs + migration saved``, for any
    count of units (:func:`value_bound`'s figures, linear in the units; also outside a
    virtual instance)."""
    g = inst._plan_groups
    if g is None:
        got = _bound(inst, j)
    else:
        got = g.bounds.get(j)
        if got is None:
            got = g.bounds[j] = _bound(inst, j)
    job = inst.jobs[j]
    return got[0] / max(job.units_max * job.unit_size, 1), got[1]


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
    real: dict[str, str] | None = None
    for j, job in enumerate(inst.jobs):
        if not len(out[j]):
            why = combine_reasons(inst, groups, j, vreasons)
            if why and "/" in why:  # a variant named as a holder ("held by job 'A/p4'")
                if real is None:
                    real = {_vname(inst, groups, v): inst.jobs[o].name for v, o in
                            enumerate(groups.owner)}  # fmt: skip
                why = real_job_names(why, real)
            if why:
                reasons[job.name] = why
    return out, plans, reasons


_JOB_REF = re.compile(r"""\bjob ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def real_job_names(text: str, real: dict[str, str]) -> str:
    """`text` with each ``job '<job>/<plan>'`` (a variant of the virtual instance, named in a
    sentence such as "those of its types are held by job 'A/p4' (8)") as ``job '<job>'``:
    the user's job names, never the virtual ones."""

    def sub(m: re.Match) -> str:
        name = ast.literal_eval(m.group(1))
        return f"job {real[name]!r}" if name in real else m.group(0)

    return _JOB_REF.sub(sub, text)


# option kinds whose variables form one block of their own (created together, named after
# their job): a binary, unit or piece counts, and at most one value variable
_BLOCK_KINDS = ("site", "multi", "any", "split", "inference")


def _block(lm, op, job_name: str, end: int) -> list[int]:
    """The variables of option `op`: from its binary up to `end` (the next option's binary),
    while they are named after its job (``x[<job>,...]``)."""
    tag = "[" + job_name + ","
    out = []
    for v in range(op.b, end):
        if tag not in lm.names[v]:
            break
        out.append(v)
    return out


def _var_key(name: str) -> tuple[str, str]:
    """What a block variable stands for, its job and plan left out: its kind (``b``, ``n``,
    ``value``...) and, for a per-site variable, its site."""
    kind, rest = name.split("[", 1)
    return kind, ("" if kind in ("b", "value", "u") else rest.rsplit(",", 1)[-1])


class _Block:
    """One option's variables and rows, read from the coarse model (:func:`drop_dominated`)."""

    def __init__(self, lm, op, vs: list[int], rows_of: dict[int, list[int]]):
        self.op = op
        self.vs = vs
        self.pos = {v: i for i, v in enumerate(vs)}
        self.keys = [_var_key(lm.names[v]) for v in vs]
        own = set(vs)
        self.shared: set[int] = set()
        private: list[int] = []
        for r in sorted({r for v in vs for r in rows_of.get(v, ())}):
            # (a shared row is a capacity row of thousands: stop at its first other variable)
            if all(v in own for v in lm.rows[r][0]):
                private.append(r)
            else:
                self.shared.add(r)
        # value variables: in the objective and in no shared row
        self.value = [
            i
            for i, v in enumerate(vs)
            if v != op.b and lm.obj.get(v) and not any(r in self.shared for r in rows_of.get(v, ()))
        ]
        val = {vs[i] for i in self.value}
        self.value_rows = [r for r in private if any(v in val for v in lm.rows[r][0])]
        self.rows = [r for r in private if not any(v in val for v in lm.rows[r][0])]
        self._curve = False  # _value_curve, once

    def curve(self, lm):
        """:func:`_value_curve` of this block (computed once)."""
        if self._curve is False:
            self._curve = _value_curve(lm, self)
        return self._curve


def _row_shape(lm, blk: _Block, r: int) -> tuple:
    """A private row without its binary: (sense, coefficients by position) and its right-hand
    sides with the binary at 0 and at 1."""
    coeffs, sense, rhs, _ = lm.rows[r]
    cb = coeffs.get(blk.op.b, 0.0)
    rest = tuple(sorted((blk.pos[v], c) for v, c in coeffs.items() if v != blk.op.b))
    return (sense, rest), (rhs, rhs - cb)


def _looser(sense: str, a: tuple, b: tuple) -> bool:
    """Right-hand sides `b` allow all that `a` allows (row sense `sense`), exactly: no
    tolerance, so that a row a hair tighter never passes for looser (these right-hand sides
    are counts, exact in floating point)."""
    if sense == "<=":
        return all(y >= x for x, y in zip(a, b))
    if sense == ">=":
        return all(y <= x for x, y in zip(a, b))
    return all(x == y for x, y in zip(a, b))


def _value_curve(lm, blk: _Block):
    """What a block's value variable V can reach, by the total N of its unit variables with
    the binary at 1: ``(support, N, reach, objective coefficient)``, N over the totals the
    block's own rows allow, reach = ``min(ub, min over its rows)`` (real; V is the integer
    part); ``()`` without a value variable; None when its rows are not all of the form
    ``V <= alpha * N + beta * b`` over one set of unit variables, or it has two."""
    if len(blk.value) > 1:
        return None
    if not blk.value:
        return ()
    V = blk.vs[blk.value[0]]
    support = None
    lines = []
    for r in blk.value_rows:
        coeffs, sense, rhs, _ = lm.rows[r]
        cv = coeffs.get(V, 0.0)
        rest = {blk.pos[v]: c for v, c in coeffs.items() if v not in (V, blk.op.b)}
        cs = set(rest.values())
        if sense != "<=" or cv <= 0 or len(cs) > 1:
            return None
        if support is None:
            support = frozenset(rest)
        elif frozenset(rest) != support:
            return None
        alpha = -(next(iter(cs)) if cs else 0.0) / cv
        lines.append((alpha, (rhs - coeffs.get(blk.op.b, 0.0)) / cv))
    support = tuple(sorted(support or ()))
    # the totals N its rows allow: within its rows over exactly the support, coefficient 1
    lo, hi = 0.0, float(sum(lm.ub[blk.vs[i]] for i in support))
    for r in blk.rows:
        coeffs, sense, rhs, _ = lm.rows[r]
        rest = {blk.pos[v]: c for v, c in coeffs.items() if v != blk.op.b}
        if tuple(sorted(rest)) != support or set(rest.values()) != {1.0}:
            continue
        eff = rhs - coeffs.get(blk.op.b, 0.0)
        if sense in ("<=", "=="):
            hi = min(hi, eff)
        if sense in (">=", "=="):
            lo = max(lo, eff)
    N = np.arange(math.ceil(lo - 1e-9), math.floor(hi + 1e-9) + 1, dtype=float)
    reach = np.full(len(N), float(lm.ub[V]))
    for alpha, beta in lines:
        reach = np.minimum(reach, alpha * N + beta)
    return support, N, reach, lm.obj[V]


def _value_no_less(ca, cb) -> bool:
    """B's value variable reaches at least A's objective at every total A allows
    (:func:`_value_curve` of each). Same objective coefficient: the real reaches compared
    (the integer parts then compare alike); else the integer parts times the coefficients."""
    if ca == () or cb == ():
        return ca == cb
    if ca is None or cb is None or ca[0] != cb[0] or not len(ca[1]):
        return False
    _, na, ra, oa = ca
    _, nb, rb, ob = cb
    if na[0] < nb[0] or na[-1] > nb[-1]:
        return False  # A allows totals that B does not
    rb = rb[int(na[0] - nb[0]) :][: len(na)]
    if oa == ob:
        return bool((rb >= ra).all())
    return bool((ob * np.floor(rb) >= oa * np.floor(ra + 1e-9)).all())


def _takes_more(lm, r: int, a: _Block, b: _Block) -> bool:
    """Whether `b` takes more of shared row `r` than `a`, for some variable of theirs."""
    coeffs, sense, _, _ = lm.rows[r]
    for va, vb in zip(a.vs, b.vs):
        ca, cb = coeffs.get(va, 0.0), coeffs.get(vb, 0.0)
        if (sense == "<=" and cb > ca) or (sense == ">=" and cb < ca):
            return True
        if sense == "==" and cb != ca:
            return True
    return False


def _implies(lm, q: int, r: int, cache: dict) -> bool:
    """Row `q` implies row `r` over the model's integer points: both ``<=`` rows of
    nonnegative coefficients over integer variables of lower bound 0, and r's coefficients
    at most those of q's Chvátal-Gomory rounding ``sum floor(lam * c_i) x_i <=
    floor(lam * rhs_q)`` (valid for nonnegative integers x) for the smallest lam that covers
    them, whose right-hand side is at most r's. Exact (fractions), no tolerance.

    Why: a site whose free GPUs all lie in free whole nodes (up to fewer GPUs than a node)
    has a whole-node row (``nodes[s,t,8]``: the TP-8 groups' nodes) that its GPU row
    (``cap[s,t]``, divided by 8 and rounded down) already implies; a plan whose TP groups
    need whole nodes is then held by nothing more than its GPUs in the model."""
    key = (q, r)
    got = cache.get(key)
    if got is not None:
        return got
    from fractions import Fraction

    def plain(row):
        coeffs, sense, rhs, _ = lm.rows[row]
        return sense == "<=" and all(
            c >= 0 and lm.integer[v] and lm.lb[v] == 0 for v, c in coeffs.items()
        )

    out = False
    cq, _, bq, _ = lm.rows[q]
    cr, _, br, _ = lm.rows[r]
    if plain(q) and plain(r) and all(cq.get(v, 0.0) > 0 for v in cr):
        lam = max(
            (Fraction(math.ceil(c)) / Fraction(cq[v]) for v, c in cr.items() if c > 0),
            default=Fraction(0),
        )
        out = all(math.floor(lam * Fraction(cq[v])) >= c for v, c in cr.items()) and (
            math.floor(lam * Fraction(bq)) <= br
        )
    cache[key] = out
    return out


def _dominates(lm, a: _Block, b: _Block, cache: dict | None = None) -> bool:
    """Option `b` can stand in for option `a` in every solution of the coarse model, at no
    less objective (:func:`drop_dominated`). `cache`: :func:`_implies`'s, per pair of rows;
    None: a row `b` takes more of stops the dominance, implied or not."""
    if a.keys != b.keys:
        return False
    val_a = {a.vs[i] for i in a.value}
    if a.value != b.value:
        return False
    for va, vb in zip(a.vs, b.vs):
        if lm.integer[va] != lm.integer[vb] or lm.lb[va] != lm.lb[vb] or lm.lb[va] < 0:
            return False
        if va not in val_a and lm.ub[vb] < lm.ub[va]:
            return False
    # shared rows (capacity, power, nodes, groups, spread): b takes no more of any, but of
    # a row that another row b takes no more of implies (then the swap keeps that row, so
    # this one holds too)
    shared = a.shared | b.shared
    more = [r for r in shared if _takes_more(lm, r, a, b)]
    if more:
        held = [q for q in shared if q not in more]
        if cache is None:
            return False  # (implied rows not used: drop_dominated, IMPLIED_MIN_VARS)
        if not all(any(_implies(lm, q, r, cache) for q in held) for r in more):
            return False
    # objective of the other variables: no less
    for va, vb in zip(a.vs, b.vs):
        if va not in val_a and lm.obj.get(vb, 0.0) < lm.obj.get(va, 0.0):
            return False
    # private rows: each of b's allows what some row of a of the same shape allows
    shapes: dict[tuple, list[tuple]] = {}
    for r in a.rows:
        key, rhs = _row_shape(lm, a, r)
        shapes.setdefault(key, []).append(rhs)
    for r in b.rows:
        key, rhs = _row_shape(lm, b, r)
        if not any(_looser(key[0], ra, rhs) for ra in shapes.get(key, ())):
            return False
    # the value: for every unit total a allows, b's at least a's
    return _value_no_less(a.curve(lm), b.curve(lm))


# coarse variables up to which a row implied by another does not stop a dominance
# (_implies). Why a limit: on the 100k-GPU / 500-job instance with plans (8,999 variables)
# it dropped 1,530 options where the rule without it drops 575, and CP-SAT's root LP with
# cuts then stalled (its bound 3.49e12 -> 3.31e12 in 10 s, no solution in its 25 s share,
# where it proved the larger model optimal at 3.19e12 in 19 s): not understood, so large
# models keep the coefficient-wise rule. Nor below IMPLIED_MIN_VARS: such models are proven
# in hundredths of a second either way, and the smaller model led CP-SAT to another coarse
# optimum of the same bound that packed worse (multi-site seed 1 of bench.plans, 193
# variables: 13,546,374 against 13,553,292, plan choice's gain there 0.45% against 0.51%)
IMPLIED_MIN_VARS = 400
IMPLIED_MAX_VARS = 4_000


def drop_dominated(inst: Instance, options: list, lm) -> int:
    """Fix at 0 (in ``lm.ub``) the coarse options of a job's non-default plans that another
    option of the same job dominates; returns how many.

    Option A (plan a) is dominated by option B (plan b) of the same job when B can take A's
    place in any solution of the coarse model at no less objective: their variables match
    one to one (same kind: binary, units per site, value), B's bounds contain A's, B takes no
    more of any shared row (GPUs, power, whole nodes, spread: ``<=`` rows coefficient by
    coefficient, ``>=`` rows the other way), each of B's own rows admits what a row of A of
    the same form admits (brackets of units as wide or wider), and B's value variable can
    reach at least A's objective for every count of units. A solution using A is then a
    solution using B instead (A's variables to 0, B's set to A's values: at most one option of
    a job is chosen, so B's were 0) of at least the same objective. So the model's optimum,
    hence the proven bound, is the same with A fixed at 0, and any bound CP-SAT or CBC
    proves on the reduced model holds for the full one. This covers a plan no better than
    another in every coefficient and fitting no more hardware (DiLoCo at a lower value than
    synchronous DP inside one site, say), and site twins (:func:`site_twins`).

    Why: the coarse model with 2-4 plans per job has 3-4 times the options, and CP-SAT's
    presolve and proof grow with them (docs/benchmarks.md, plans). Only non-default plans'
    options are dropped: the model held to first plans (:func:`first_plan_rows`) must stay
    the first-plan solve's own. Of two options that dominate each other the later plan's
    goes. Options of other kinds (stay, mixed) are kept."""
    g = inst._plan_groups
    if g is None:
        return 0
    order = sorted((op for op in options if op.b >= 0), key=lambda op: op.b)
    by_group: dict[int, list] = {}
    for op in order:
        if op.kind in _BLOCK_KINDS and lm.ub[op.b] > 0:
            by_group.setdefault(g.owner[op.job], []).append(op)
    by_group = {j: ops for j, ops in by_group.items() if len({op.job for op in ops}) > 1}
    if not by_group:
        return 0
    ends = [op.b for op in order[1:]] + [lm.n_vars]
    nxt = {op.b: end for op, end in zip(order, ends)}
    wanted = {op.b for ops in by_group.values() for op in ops}
    blocks = {}
    rows_of: dict[int, list[int]] = {}
    spans = {}
    for op in order:
        if op.b in wanted:
            spans[op.b] = _block(lm, op, inst.jobs[op.job].name, nxt[op.b])
    want_vars = {v for vs in spans.values() for v in vs}
    for r, (coeffs, _s, _rhs, _n) in enumerate(lm.rows):
        for v in want_vars.intersection(coeffs):  # (a set test per row, not per coefficient)
            rows_of.setdefault(v, []).append(r)
    for op in order:
        if op.b in wanted:
            blocks[op.b] = _Block(lm, op, spans[op.b], rows_of)
    n = 0
    # _implies, per pair of rows; only on mid-sized models (IMPLIED_MIN_VARS, _MAX_VARS)
    implied: dict | None = {} if IMPLIED_MIN_VARS <= lm.n_vars <= IMPLIED_MAX_VARS else None
    for j, ops in by_group.items():
        default = _default_variant(inst, g, j)
        rank = {v: i for i, v in enumerate(g.members[j])}
        # option A is beaten by B when B dominates A and A does not dominate B, or both do
        # and B's plan comes first: a strict order, so every beaten option has a beater
        # that is kept (not beaten, or of the default plan)
        for op in ops:
            if op.job == default:
                continue
            a = blocks[op.b]
            for o in ops:
                if o.job == op.job or (o.kind, o.type, o.sites) != (op.kind, op.type, op.sites):
                    continue
                b = blocks[o.b]
                if _dominates(lm, a, b, implied) and (
                    rank[o.job] < rank[op.job] or not _dominates(lm, b, a, implied)
                ):
                    lm.ub[op.b] = 0.0
                    n += 1
                    break
    return n


# coarse variables between which the model is solved in two branches
# (solve_first_plans_first). Larger models are not proven in their share of the limit (100k
# GPUs / 500 jobs with plans: 8,999 variables): the held branch would take all of it and
# leave the other plans only their LP bound. Smaller ones are proven in hundredths of a
# second, where a second CP-SAT call costs what it could save (the 1,024-GPU SuperPODs of
# bench.plans, 77-114 variables: 0.116 s of CPU against 0.135 s in two branches on
# fragmented seed 0). Both are solved whole, as before
BRANCH_MIN_VARS = 400
BRANCH_MAX_VARS = 4_000


def solve_first_plans_first(inst: Instance, options: list, lm, solve, relax, time_limit):
    """The coarse model `lm` solved in two branches: every job held to its first plan
    (:func:`first_plan_rows`), then at least one option of another plan with an objective
    above the first branch's optimum. Returns ``(solution, held)``: the model's solution
    and bound, and the first branch's solution (the model held to first plans, which the
    pipeline packs as its first-plan candidate); ``(None, None)`` when there is nothing to
    branch on, the model has fewer than BRANCH_MIN_VARS or more than BRANCH_MAX_VARS
    variables, or the first branch gave no solution (the caller then solves the whole
    model).

    `solve(model, seconds, cutoff=False)` and `relax(model, seconds)` are the backend's
    integer and LP solves (CoarseSolution); `cutoff`: the second branch (CP-SAT solves it
    without its presolve, :func:`~placer.solvers.cpsat.solve_cpsat`).

    The model's optimum is the larger of the two branches' optima, so its bound is the
    larger of their bounds: the first branch's, and the second's from its solver, or its
    cut-off (proven empty above the first optimum), or its LP relaxation (not solved). The
    first branch unproven in `time_limit`: its solution, bounded by the larger of its own
    bound and the other plans' LP bound (no time for the second branch).

    Why: on the multicampus control of bench.plans no plan beats the first plans, and the
    model with plans took CP-SAT up to 9x the first-plan model's time to prove it: the
    same root bound, and a search among near-equal options of the other plans. Held to
    first plans it is the first-plan solve's own model and search; the second branch, cut
    off at that optimum, is proven empty at once (0.01-0.02 s of deterministic time on
    multicampus-3x seeds 0 and 2, against 0.05-0.8 s to prove the whole model). Where
    another plan is better (the fragmented and multi-site families) the second branch finds
    it, and the first branch is the model held to first plans that the pipeline solved after
    the whole one before."""
    from dataclasses import replace

    from placer.model import Status

    held = first_plan_rows(inst, options)
    if not held or not BRANCH_MIN_VARS <= lm.n_vars <= BRANCH_MAX_VARS:
        return None, None
    others = {b: 1.0 for b in held[0][0] if lm.ub[b] > 0}
    if not others:
        return None, None
    t0 = time.perf_counter()

    def with_rows(rows):
        return type(lm)(lm.names, lm.lb, lm.ub, lm.integer, [*lm.rows, *rows], lm.obj, lm.obj_const)

    sf = solve(with_rows(held), time_limit)
    if sf.values is None:
        return None, None  # (infeasible held to first plans, or nothing in time: the whole)

    def left(share: float) -> float | None:
        if time_limit is None:
            return None
        return max(share * time_limit, time_limit - (time.perf_counter() - t0), 0.05)

    z = lm.value(sf.values)
    eps = 1e-6 * max(1.0, abs(z))  # (the solvers' relative gap: a tie is no better)
    branch = [(others, ">=", 1.0, "another plan")]
    if sf.status != Status.OPTIMAL:
        # unproven: no time for the second branch; its LP relaxation bounds it
        lp = relax(with_rows(branch), left(0.1))
        bound = None
        if sf.bound is not None and lp.status in (Status.OPTIMAL, Status.INFEASIBLE):
            bound = sf.bound if lp.status == Status.INFEASIBLE else max(sf.bound, lp.bound)
        return replace(sf, bound=bound, native=sf.native + " (first plans; others by LP)"), sf
    cut = ({i: c for i, c in lm.obj.items()}, ">=", z + eps - lm.obj_const, "above first plans")
    rest = with_rows([*branch, cut])
    so = solve(rest, left(0.25), cutoff=True)
    if so.status == Status.INFEASIBLE:
        return replace(sf, bound=max(sf.bound, z + eps), native=sf.native + " (first plans)"), sf
    if so.values is None or so.bound is None:
        lp = relax(rest, left(0.1))
        b_rest = {Status.OPTIMAL: lp.bound, Status.INFEASIBLE: z + eps}.get(lp.status)
        bound = None if b_rest is None else max(sf.bound, b_rest)
        if so.values is None:
            return replace(sf, status=Status.FEASIBLE, bound=bound), sf
        return replace(so, status=Status.FEASIBLE, bound=bound), sf
    bound = max(sf.bound, so.bound)
    best = so if lm.value(so.values) > z else sf
    status = Status.OPTIMAL if so.status == Status.OPTIMAL else Status.FEASIBLE
    native = so.native + (" (another plan)" if best is so else " (first plans)")
    return replace(best, status=status, bound=bound, native=native), sf
