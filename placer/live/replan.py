"""Re-planning: the instance a full solve starts from (:func:`replan_instance`), whether a
solve's result is worth adopting (:func:`verdict`), and adopting a plan made elsewhere from
an earlier state (:func:`read_plan`, then :func:`adopt`).

A plan is merged into the state that moved meanwhile: jobs it names take its GPUs and plans,
running jobs it does not name keep theirs, jobs released meanwhile are ignored, its leases
replace the live ones. The merged state must pass the checker against the live hardware,
keep every pinned job where it is and every non-preemptible job placed.

Imports the checker, the live state, documents, leases and results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from placer.check import check_compiled
from placer.errors import ConflictError, PlacementError
from placer.live import leases
from placer.live.documents import job_dict, parse_pending, snapshot
from placer.live.results import ActionCause, Change, job_action, moved
from placer.live.state import EMPTY, LiveState, under
from placer.model import Job

__all__ = ["Plan", "adopt", "read_plan", "replan_instance", "verdict"]


def replan_instance(live: LiveState, pending: Any) -> dict[str, Any]:
    """The snapshot's instance document (running jobs with `current`) plus the `pending`
    jobs; a name already running or given twice is a ConflictError at
    ``pending[i].name``."""
    inst_d, _ = snapshot(live)
    names = {j["name"] for j in inst_d["jobs"]}
    extra = []
    for i, m in enumerate(parse_pending(live, pending)):
        if m.name in names:
            raise ConflictError(f"pending[{i}].name: {m.name!r} is already running or pending")
        names.add(m.name)
        extra.append(job_dict(m))
    inst_d["jobs"] = inst_d["jobs"] + extra
    return inst_d


def verdict(has_placement: bool, reason: str | None, objective: float, before: float) -> str:
    """Why a solve's result is not adopted ('' when it may be: it found a placement whose
    objective beats the live `before`)."""
    if not has_placement:
        return f"the solve found no placement: {reason}"
    if objective <= before + 1e-6 * max(1.0, abs(before)):
        return f"kept the live plan: the solve's {objective:,.1f} vu does not beat {before:,.1f} vu"
    return ""


@dataclass
class Plan:
    """A plan read against the live state: per job it names, its GPUs and plan index; the
    pending jobs it may start; every offer's blocks."""

    gpus: dict[str, np.ndarray]
    plan_of: dict[str, int | None]
    pending: dict[str, Job]
    blocks: list[list[tuple[int, int]]]


def read_plan(live: LiveState, pl: Any, pending: Any) -> Plan:
    """Placement `pl` (a :class:`~placer.Placement`) and `pending` jobs read against the
    live state; every problem in one :class:`~placer.errors.PlacementError`."""
    pend = {m.name: m for m in parse_pending(live, pending) if m.name not in live.slot}
    ix = live.st.ix
    problems: list[tuple[str, str]] = []
    gpus: dict[str, np.ndarray] = {}
    plan_of: dict[str, int | None] = {}  # v3: the plan each named job runs
    for i, pj in enumerate(pl.jobs):
        if pj.name not in live.slot and pj.name not in pend:
            continue  # released meanwhile (or never known): nothing to do
        job = live.spec[pj.name] if pj.name in live.slot else pend[pj.name]
        k = None
        if job.plans and pj.units > 0:
            k = job.plan_index(pj.plan)
            if k is None:
                names = ", ".join(p.name for p in job.plans)
                problems.append(
                    (
                        f"placement.jobs[{i}].plan",
                        f"job {pj.name!r} has plans ({names}): "
                        + ("it names none" if pj.plan is None else f"no plan {pj.plan!r}"),
                    )
                )
                continue
            job = job.under(k)
        elif not job.plans and pj.plan is not None and pj.units > 0:
            problems.append(
                (f"placement.jobs[{i}].plan", f"job {pj.name!r} has no plans (SPEC v3)")
            )
            continue
        plan_of[pj.name] = k
        g = ix.gpu_indices(list(pj.gpus)) if pj.gpus else EMPTY
        if (g < 0).any():
            problems.append(
                (f"placement.jobs[{i}].gpus[{int(np.argmax(g < 0))}]", "unknown GPU id")
            )
            continue
        if len(g) != pj.units * job.unit_size:
            problems.append(
                (
                    f"placement.jobs[{i}].gpus",
                    f"{len(g)} GPUs for {pj.units} units of {job.unit_size} GPUs",
                )
            )
            continue
        gpus[pj.name] = np.asarray(g, np.int64)
    offer_ix = {o.name: k for k, o in enumerate(live.base.offers)}
    blocks: list[list[tuple[int, int]]] = [[] for _ in live.base.offers]
    for i, lease in enumerate(pl.leases):
        o = offer_ix.get(lease.offer)
        if o is None:
            problems.append((f"placement.leases[{i}].offer", f"unknown offer {lease.offer!r}"))
            continue
        for k, path in enumerate(lease.blocks):
            r = ix.resolve(path)
            if r is None or r[0] >= ix.n_levels:
                problems.append((f"placement.leases[{i}].blocks[{k}]", f"unknown {path!r}"))
            else:
                blocks[o].append(r)
    for name, j in live.slot.items():
        spec = live.spec[name]
        prev, k0 = live.st.job_gpus[j], live.plan_index(j)
        g = gpus.get(name, prev)
        k = plan_of.get(name, k0) if len(g) else k0
        if spec.pinned and (len(g) != len(prev) or (g != prev).any() or k != k0):
            problems.append(("placement", f"job {name!r} is pinned: it cannot move"))
        elif not spec.preemptible and not len(g):
            problems.append(("placement", f"job {name!r} is not preemptible: it must stay"))
    if problems:
        raise PlacementError(problems)
    return Plan(gpus, plan_of, pend, blocks)


def adopt(live: LiveState, plan: Plan) -> tuple[Change, float]:
    """Merge `plan` into the live state (see the module docs): the Change (start, move,
    stop and lease actions, cause ``replan``; its delta the objective change less the
    migration costs) and the objective before. A merged state that fails the checker is a
    :class:`~placer.errors.PlacementError` (the caller rolls back)."""
    before = live.objective
    old_lease = leases.infos(live)
    ix = live.st.ix
    change = Change()
    slots: list[Job] = []
    gpus: list[np.ndarray] = []
    spec_of: dict[str, Job] = {}
    order = [live.slots[j].name for j in sorted(live.slot.values())] + list(plan.pending)
    for name in order:
        orig = live.spec.get(name) or plan.pending[name]
        j = live.slot.get(name)
        prev = live.holding(j) if j is not None else None
        k = plan.plan_of.get(name, live.plan_index(j) if j is not None else None)
        g = plan.gpus.get(name, prev[0] if prev is not None else EMPTY)
        after = (g, under(orig, k))  # v3: the job under the plan it runs after the replan
        if (prev is None and len(g)) or (prev is not None and moved(prev, after)):
            action = job_action(orig, ix, prev, after, ActionCause.REPLAN, "replan")
            change.actions.append(action)
            change.cost += action.cost
        if len(g):
            spec_of[name] = orig
            slots.append(after[1])
            gpus.append(g)
    live.replace_jobs(spec_of, slots, gpus, plan.blocks)
    bad = check_compiled(live.inst, live.compiled())
    if bad:
        raise PlacementError([("placement", f"against the live state: {v}") for v in bad[:20]])
    change.actions += leases.lease_actions(live, old_lease, ActionCause.REPLAN, "replan")
    change.delta = live.objective - before - change.cost
    return change, before
