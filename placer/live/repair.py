"""Repair after failed hardware: :func:`fail` marks it failed, finds the jobs it breaks
(:func:`broken`) and repairs them in priority order (pinned, then not preemptible, then
value per GPU-hour, then name), tier by tier, each tier a function:

- (a) :func:`in_place`: inside the job's own domain, only the broken units replaced by the
  free units nearest the job, or dropped when the job is elastic (a WAN cut: the units in the
  best-connected part kept);
- (b) :func:`same_domain`: the whole job re-placed inside that domain (Kueue's rule);
- (c) :func:`anywhere`: re-placed anywhere;
- (c') :func:`other_plan`: a job with plans that fits nowhere under its plan, re-placed under
  its best other plan;
- (d) :func:`stop_preemptible`: a job that must stay (pinned or not preemptible) stops
  preemptible jobs, lowest value first, until it fits; they are then put back where they
  fit. A preemptible job that fits nowhere is stopped.

Leases are repaired by :mod:`placer.live.leases`.

Imports the kernel, the live state, search and leases.
"""

from __future__ import annotations

import numpy as np

from placer.kernel.capacity import allowed_types, wan_components
from placer.live import leases
from placer.live.results import ActionCause, Change, Holding, job_action
from placer.live.search import best_any_plan, best_of, density, victims
from placer.live.state import EMPTY, LiveState
from placer.solvers.decomposition.construct import scope_ok

__all__ = [
    "anywhere",
    "broken",
    "fail",
    "in_place",
    "other_plan",
    "rehome",
    "repair",
    "same_domain",
    "stop_preemptible",
]


def fail(live: LiveState, mask: np.ndarray, links: list[int]) -> tuple[Change, set[int]]:
    """GPUs `mask` and WAN `links` failed: the state without them, every job they break
    repaired, every lease they shorten repaired; the Change (its delta includes the loss
    the failure caused) and the slots it changed."""
    before = live.objective
    old = {live.slots[j].name: live.holding(j) for j in live.slot.values()}
    old_lease = leases.infos(live)
    newly = mask & live.avail
    wan_changed = any(live.links_up[w] for w in links)
    links_up = live.links_up.copy()
    links_up[links] = False
    live.set_hardware(live.avail & ~mask, links_up)
    live.rebuild()
    affected = broken(live, newly, wan_changed)
    change = repair(live, affected, old)
    change.actions += leases.repair_leases(live, old_lease)
    change.delta = live.objective - before - change.cost
    changed = set(affected) | {live.slot[a.job] for a in change.actions if a.job in live.slot}
    return change, changed


def broken(live: LiveState, newly: np.ndarray, wan_changed: bool) -> list[int]:
    """Slots holding a GPU of `newly` (failed just now), and, when WAN links changed, the
    multi-site jobs whose groups no longer meet rule 4."""
    st, ix = live.st, live.st.ix
    out = []
    for j in live.slot.values():
        g = st.job_gpus[j]
        if not len(g):
            continue
        if newly[g].any():
            out.append(j)
        elif wan_changed and len(np.unique(ix.dom[0][g])) > 1 and not scope_ok(live.inst, j, g):
            out.append(j)
    return out


def repair(live: LiveState, affected: list[int], before: dict[str, Holding]) -> Change:
    """Repair the broken slots (see the module docs); `before`: each running job's holding
    before the failure. Returns their move and stop actions, costs and the must jobs lost."""
    st = live.st
    order = sorted(
        affected,
        key=lambda j: (
            not live.spec_of(j).pinned,
            live.spec_of(j).preemptible,
            -density(live.inst, live.slots[j]),
            live.slots[j].name,
        ),
    )
    change = Change()
    touched: dict[int, str] = {}
    for j in order:
        if j in touched or not len(st.job_gpus[j]):
            continue  # already stopped or re-placed to make room for a must job
        g, why = rehome(live, j)
        if g is not None:
            live.set_job(j, g)
            touched[j] = why
        elif other_plan(live, j):
            touched[j] = f"re-placed under plan {live.slots[j].plan!r}"
        elif not live.must(j):
            live.set_job(j, EMPTY)
            touched[j] = "no room left for it after the failure"
        elif not stop_preemptible(live, j, touched):
            change.lost.append(live.slots[j].name)
    ix = st.ix
    for j, why in touched.items():
        spec = live.spec_of(j)
        after = live.holding(j)
        action = job_action(spec, ix, before[spec.name], after, ActionCause.REPAIR, why)
        change.actions.append(action)
        change.cost += action.cost
        if not len(after[0]):
            live.drop_slot(j)
    return change


def _common_level(ix, g: np.ndarray) -> int:
    """Deepest level whose one domain holds all of g (-1: several sites)."""
    d = ix.dom[:, g]
    same = (d == d[:, :1]).all(axis=1)
    return int(np.argmin(same)) - 1 if not same.all() else ix.n_levels - 1


def _home_level(live: LiveState, j: int) -> int:
    """The level of slot j's own domain: the narrowest holding its healthy GPUs (all of
    them when none is healthy)."""
    ix = live.st.ix
    g = live.st.job_gpus[j]
    ok = ix.available[g]
    return _common_level(ix, g[ok] if ok.any() else g)


def in_place(live: LiveState, j: int) -> tuple[np.ndarray | None, str]:
    """Tier (a): inside slot j's domain (widening up to its site), only its broken units
    replaced by the free units nearest the job at the same rank positions; or, for an
    elastic job, the broken units dropped (a WAN cut: the units in the WAN-connected part
    holding most of them kept). The best of these by the kernel, or None."""
    st, ix = live.st, live.st.ix
    job = live.slots[j]
    old = st.job_gpus[j]
    n = len(old) // job.unit_size
    U = old.reshape(n, job.unit_size)
    bad = ~ix.available[U].all(axis=1)
    found: list[np.ndarray] = []
    if bad.any() and not bad.all():
        ref = int(U[~bad][0, 0])
        k = int(bad.sum())
        types = [int(ix.gpu_type[ref])]
        if job.mix_types:
            types += [t for t in allowed_types(live.inst, ix, job) if t not in types]
        for lvl in range(max(_home_level(live, j), 0), -1, -1):
            region = ix.gpu_range(lvl, int(ix.dom[lvl][ref]))
            for t in types:
                u = st.packer.units(job, t, region)
                if len(u) < k:
                    continue
                near = (ix.dom[:, u.first] == ix.dom[:, [ref]]).sum(axis=0)
                pick = np.argsort(-near, kind="stable")[:k]
                new = U.copy()
                new[bad] = u.gpus[pick]
                g = new.reshape(-1)
                if st.fits(j, g):
                    found.append(g)
                    break
            if found:
                break
    if not bad.any():  # a WAN cut: keep the units in the best-connected part
        comp = wan_components(ix)[ix.dom[0][U[:, 0]]]
        vals, cnt = np.unique(comp, return_counts=True)
        keep = comp == vals[np.argmax(cnt)]
    else:
        keep = ~bad
    kept = int(keep.sum())
    if 0 < kept < n and kept >= max(job.units_min, 1) and kept % job.unit_step == 0:
        g = U[keep].reshape(-1)
        if st.fits(j, g):
            found.append(g)
    if not found:
        return None, ""
    return best_of(live, j, found), "replaced the broken units inside its domain"


def same_domain(live: LiveState, j: int, old: np.ndarray, lc: int) -> tuple[np.ndarray | None, str]:
    """Tier (b): slot j's whole job (holding no GPUs now; `old` before) re-placed inside its
    own domain (level `lc`: :func:`_home_level` with `old`) at its best candidate there, or
    None."""
    st, ix = live.st, live.st.ix
    if lc < 0:
        return None, ""
    if lc == 0:
        cands = st.candidates(j, sites=[int(ix.dom[0][old[0]])])
    else:
        cands = st.region_candidates(j, ix.gpu_range(lc, int(ix.dom[lc][old[0]])))
    g, _ = st.best_candidate(j, cands) if cands else (None, 0.0)
    return g, f"re-placed inside its {ix.levels[lc]}" if g is not None else ""


def anywhere(live: LiveState, j: int) -> tuple[np.ndarray | None, str]:
    """Tier (c): slot j's job (holding no GPUs now) at its best candidate anywhere, or
    None."""
    st = live.st
    g, _ = st.best_candidate(j, st.candidates(j))
    return g, "re-placed" if g is not None else ""


def rehome(live: LiveState, j: int) -> tuple[np.ndarray | None, str]:
    """Tiers (a), (b), (c) in turn for slot j: its new GPUs and why, or None (the slot
    holds its GPUs as before either way)."""
    g, why = in_place(live, j)
    if g is not None:
        return g, why
    old = live.st.job_gpus[j]
    lc = _home_level(live, j)
    live.set_job(j, EMPTY)
    try:
        g, why = same_domain(live, j, old, lc)
        return (g, why) if g is not None else anywhere(live, j)
    finally:
        live.set_job(j, old)


def other_plan(live: LiveState, j: int) -> bool:
    """Tier (c'): slot j's job (with plans, fitting nowhere under its plan) re-placed under
    its best other plan (a move); False (nothing changed) when none fits."""
    if not live.spec_of(j).plans:
        return False
    old = live.st.job_gpus[j]
    live.set_job(j, EMPTY)
    g, _, k = best_any_plan(live, j)
    if g is not None and k != live.plan_index(j):
        live.set_plan(j, k)
        live.set_job(j, g)
        return True
    live.set_job(j, old)
    return False


def stop_preemptible(live: LiveState, j: int, touched: dict[int, str]) -> bool:
    """Tier (d): the must job of slot j stops preemptible jobs (not yet touched), lowest
    value first, until it fits under any of its plans; the stopped ones are then put back
    where they fit, or stay stopped. Records each in `touched`; False when the job is lost
    (stopped: no room even after stopping every preemptible job)."""
    st = live.st
    name = live.slots[j].name
    live.set_job(j, EMPTY)
    stopped = []
    for v in victims(live, live.slots[j], set(touched) | {j}):
        stopped.append((v, st.job_gpus[v]))
        live.set_job(v, EMPTY)
        gj, _, kj = best_any_plan(live, j)
        if gj is not None:
            live.set_plan(j, kj)
            live.set_job(j, gj)
            break
    else:
        for v, gv in stopped:
            live.set_job(v, gv)
        touched[j] = "lost: no room even after stopping every preemptible job"
        return False
    touched[j] = "re-placed after stopping preemptible work"
    for v, _ in stopped:  # put the stopped ones back where they fit
        gv, dv, kv = best_any_plan(live, v)
        if gv is not None and dv > 0:
            live.set_plan(v, kv)
            live.set_job(v, gv)
            touched[v] = f"moved to make room for {name!r}"
        else:
            touched[v] = f"stopped to make room for {name!r}"
    return True
