"""Admission: where an arriving job starts (:func:`submit`), which victims it may displace
(:func:`displacement`), and the running jobs of an instance taken in at construction
(:func:`admit_running`).

As Kueue's preemption does on its snapshot, a displacement tries victims on the live state,
puts the state back, and returns what it found as data (:class:`Option`: the targets and the
victims' actions); :func:`apply` then carries out the option chosen.

Imports the kernel, the live state and search; no other policy module.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from placer.errors import InstanceError, UsageError
from placer.kernel.capacity import allowed_types
from placer.kernel.score import job_hours
from placer.live.results import Action, ActionCause, Decision, job_action
from placer.live.search import best_any_plan, density, useful_sites, victims
from placer.live.state import EMPTY, LiveState, plan_choices, under
from placer.model import Job

__all__ = [
    "Option",
    "Target",
    "admit_running",
    "apply",
    "displacement",
    "moves_args",
    "not_placed_reason",
    "submit",
    "value_bound",
]


class Target(NamedTuple):
    """A slot's GPUs (EMPTY: stopped) and plan in an option."""

    slot: int
    gpus: np.ndarray
    plan: int | None


class Option(NamedTuple):
    """A way to place a submitted job: its objective change less the displaced jobs'
    migration costs, the targets (the job first, then its victims), the victims' actions."""

    net: float
    targets: list[Target]
    actions: list[Action]


def moves_args(allow_moves: Any, max_migration_cost: Any) -> tuple[int, float]:
    """:meth:`Cluster.submit`'s `allow_moves` and `max_migration_cost`, checked."""
    if isinstance(allow_moves, bool) or not isinstance(allow_moves, int) or allow_moves < 0:
        raise UsageError(f"allow_moves: expected an integer >= 0, got {allow_moves!r}")
    cap = math.inf if max_migration_cost is None else float(max_migration_cost)
    if not cap >= 0:
        raise UsageError(f"max_migration_cost: expected a number >= 0, got {max_migration_cost!r}")
    return allow_moves, cap


def value_bound(live: LiveState, job: Job) -> float:
    """An upper bound on the objective change of placing `job` (under its plan) where
    nothing else moves: its value at goodput 1, all units, the fastest allowed type
    (adding a job never raises the others' values: WAN sharing only grows). A plan whose
    bound does not beat the best option found needs no search."""
    ix = live.st.ix
    types = allowed_types(live.inst, ix, job)
    speed = max((float(ix.type_speed[t]) for t in types), default=0.0)
    gpus = job.units_max * job.unit_size
    return job_hours(live.inst, job) * (job.value or 0.0) * speed * gpus


def best_option(live: LiveState, j: int, moves: int, cap: float) -> Option | None:
    """The best option placing the job of new slot j under any of its plans, with up to
    `moves` victims (migration cost within `cap`); None when no option raises the
    objective. The state is left as it was (slot j holding no GPUs)."""
    st = live.st
    best: Option | None = None
    for k in plan_choices(live.spec_of(j)):
        live.set_plan(j, k)
        if not moves and best is not None and value_bound(live, live.slots[j]) <= best.net + 1e-9:
            continue  # this plan cannot beat the best option so far (exact)
        sites = useful_sites(live, live.slots[j])
        g, d = st.best_candidate(j, st.candidates(j, sites=sites))
        if g is not None and d > 0 and (best is None or d > best.net + 1e-9):
            best = Option(d, [Target(j, g, k)], [])
        if moves:
            option = displacement(live, j, moves, cap)
            if option is not None and (best is None or option.net > best.net + 1e-9):
                best = option
    return best


def displacement(live: LiveState, j: int, K: int, cap: float) -> Option | None:
    """The best option placing job j (under its slot's plan now) by displacing its first
    1..K victims (:func:`~placer.live.search.victims`): removed, the job placed, each victim
    put back at its best candidate under any of its plans (a move) or left out (a stop).
    Tried on the state and undone."""
    st, ix = live.st, live.st.ix
    job = live.slots[j]
    ranked = victims(live, job, {j})
    best = None
    for k in range(1, min(K, len(ranked)) + 1):
        group = ranked[:k]
        cost = sum(live.spec_of(v).migration_cost for v in group)
        if cost > cap:
            break
        before = live.objective
        old = {v: (live.holding(v), live.plan_index(v)) for v in group}
        for v in group:
            live.set_job(v, EMPTY)
        g, _ = st.best_candidate(j, st.candidates(j))
        if g is not None:
            live.set_job(j, g)
            targets = [Target(j, g, live.plan_index(j))]
            actions = []
            for v in sorted(group, key=lambda v: -density(live.inst, live.slots[v])):
                gv, dv, kv = best_any_plan(live, v)
                why = f"displaced by {job.name!r}"
                if gv is not None and dv > 0:
                    live.set_plan(v, kv)
                    live.set_job(v, gv)
                    targets.append(Target(v, gv, kv))
                    after = live.holding(v)
                else:
                    targets.append(Target(v, EMPTY, old[v][1]))
                    after, why = None, why + "; no room left for it"
                actions.append(
                    job_action(live.spec_of(v), ix, old[v][0], after, ActionCause.DISPLACED, why)
                )
            net = live.objective - before - cost
            if net > 0 and (best is None or net > best.net + 1e-9):
                best = Option(net, targets, actions)
            for t in targets[1:]:
                live.set_job(t.slot, EMPTY)
            live.set_job(j, EMPTY)
        for v in group:
            live.set_plan(v, old[v][1])
            live.set_job(v, old[v][0][0])
    return best


def apply(live: LiveState, option: Option) -> None:
    """Carry out `option`: the victims let go first (the option was built so), then every
    target takes its GPUs under its plan; stopped victims leave the state."""
    for t in option.targets[1:]:
        live.set_job(t.slot, EMPTY)
    for t in option.targets:
        if len(t.gpus):
            live.set_plan(t.slot, t.plan)
        live.set_job(t.slot, t.gpus)
    for a in option.actions:
        if a.kind == "stop":
            live.drop_slot(live.slot[a.job])


def not_placed_reason(live: LiveState, j: int) -> str:
    """Why the job of slot j (holding no GPUs) is not placed: a solve's sentence, one per
    plan for a job with plans."""
    spec = live.spec_of(j)
    reasons = []
    for k in plan_choices(spec):
        live.set_plan(j, k)
        reasons.append(live.st.reason(j))
    if len(reasons) == 1:
        return reasons[0]
    if len(set(reasons)) == 1:
        return f"under every plan: {reasons[0]}"
    names = [p.name for p in spec.plans or []]
    return "no plan fits: " + "; ".join(f"plan {n!r}: {w}" for n, w in zip(names, reasons))


def submit(live: LiveState, model: Job, moves: int, cap: float) -> tuple[Decision, set[int] | None]:
    """Place the arriving job `model` (see :meth:`Cluster.submit`): the Decision and the
    slots it changed (None when it is not placed: the state is as it was)."""
    j = live.add_slot(model)
    option = best_option(live, j, moves, cap)
    if option is None:
        reason = not_placed_reason(live, j)
        live.drop_slot(j)
        return Decision(job=model.name, placed=False, reason=reason), None
    before = live.objective
    apply(live, option)
    start = job_action(model, live.st.ix, None, live.holding(j), ActionCause.SUBMIT)
    cost = sum(a.cost for a in option.actions)
    decision = Decision.started(start, live.objective - before - cost, option.actions, cost)
    return decision, {t.slot for t in option.targets}


def admit_running(live: LiveState, whole_first: bool = True) -> bool:
    """Take in the instance's running jobs (those with `current`) on a live state holding
    its committed and forced leases: in priority order (pinned, not preemptible, value per
    GPU-hour, name), each stays on `current` when that still meets every rule, else is
    placed afresh under any of its plans; a must job that finds no room refuses the
    instance, a preemptible one is left out.

    `whole_first`: first every job on its `current` at once, checked whole by the checker
    (rules 1-6) with every site's power within its cap: when that passes, every job in
    turn would stay where it is (its GPUs free of the jobs before it and of leased
    blocks, rules 1-5 for it alone, the power the jobs before it left), so the result is
    the same, in one check rather than a rule check and a score update per job (10,000
    running jobs on colossus: about 12 s to 5 s). Returns True when so (the state is then
    checked whole already); otherwise the jobs are taken in one by one as above."""
    base = live.base
    ix = base.index
    order = sorted(
        (j for j, job in enumerate(base.jobs) if job.current),
        key=lambda j: (
            not base.jobs[j].pinned,
            base.jobs[j].preemptible,
            -density(base, under(base.jobs[j], None)),
            base.jobs[j].name,
        ),
    )
    blocks: list[list[tuple[int, int]]] = [[] for _ in base.offers]
    for o, offer in enumerate(base.offers):
        for path in offer.committed_blocks or []:
            blocks[o].append(ix.resolve(path))

    def leased() -> Any:
        live.slots, live.spec, live.slot = [], {}, {}
        live.rebuild([], blocks)
        st = live.st
        for o, offer in enumerate(base.offers):
            if offer.force == "accept" and not st.offer_blocks[o]:
                st.lease_greedy(o)
        return st

    st = leased()
    currents = [ix.cached_indices(base.jobs[j].current) for j in order]
    if whole_first and order and _whole_fits(live, order, currents):
        return True
    st = leased()
    for j, cur in zip(order, currents):
        job = base.jobs[j]
        k = live.add_slot(job)
        if st.fits(k, cur):
            live.set_job(k, cur)
            continue
        g, _, plan = best_any_plan(live, k)
        if g is not None:
            live.set_plan(k, plan)
            live.set_job(k, g)
        elif job.pinned or not job.preemptible:
            raise InstanceError(
                [(f"jobs[{j}]", "running and not preemptible, but no room is left for it")]
            )
        else:
            live.drop_slot(k)
    live.rebuild()  # compact: the offers' blocks as leased now
    return False


def _whole_fits(live: LiveState, order: list[int], currents: list[np.ndarray]) -> bool:
    """Every job of `order` on its `current` at once (slots in that order), on the state as
    leased: True when that passes the whole checker with every site within its power cap
    (the state is kept); False otherwise (the caller starts again from the leases)."""
    from placer.check import check_compiled

    st, ix = live.st, live.st.ix
    held = [g for g in currents if len(g)]
    if held:  # cheap refusals first: a GPU unavailable, taken twice, or leased
        used = np.concatenate(held)
        if (
            used.min() < 0
            or not ix.available[used].all()
            or len(np.unique(used)) != len(used)
            or not st.free[used].all()
        ):
            return False
    base = live.base
    for j in order:
        live.add_slot(base.jobs[j])
    offer_blocks = [list(b) for b in st.offer_blocks]
    live.rebuild(list(currents), offer_blocks)
    st = live.st
    if (st.power_left < -1e-9).any():
        return False
    return not check_compiled(live.inst, live.compiled())
