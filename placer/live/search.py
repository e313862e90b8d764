"""Candidate search over the live state, shared by admission and repair.

The candidates themselves are the greedy's (:class:`~placer.solvers.decomposition.construct.State`:
``candidates``, ``region_candidates``, ``fits``, ``best_candidate``, each scored exactly by the
kernel's delta); this module adds what the live cluster asks of them: the best candidate
under any of a job's plans, the sites worth scanning, and the victims a job may displace.
A search may try GPUs on the state, but leaves it as it found it.

Imports the kernel and the live state; no other policy module.
"""

from __future__ import annotations

import math

import numpy as np

from placer.kernel.capacity import allowed_types
from placer.live.state import LiveState, plan_choices
from placer.model import Instance, Job

__all__ = ["best_any_plan", "best_of", "density", "useful_sites", "victims"]


def density(inst: Instance, job: Job) -> float:
    """Value per GPU-hour at the fastest allowed type (job: under its plan)."""
    ix = inst.index
    types = allowed_types(inst, ix, job)
    speed = max((float(ix.type_speed[t]) for t in types), default=1.0)
    return (job.value or 0.0) * speed


def useful_sites(live: LiveState, job: Job) -> list[int]:
    """Sites with at least one unit's worth of free GPUs of one allowed type (the others
    cannot hold any unit: the packer need not scan them)."""
    st, ix = live.st, live.st.ix
    types = allowed_types(live.inst, ix, job)
    per = np.zeros(ix.n_sites, np.int64)
    for t in types:
        per = np.maximum(
            per, np.bincount(ix.dom[0][st.free & (ix.gpu_type == t)], minlength=ix.n_sites)
        )
    return [int(s) for s in np.flatnonzero(per >= job.unit_size)]


def best_any_plan(
    live: LiveState, j: int, sites: bool = False
) -> tuple[np.ndarray | None, float, int | None]:
    """The best candidate of slot j (holding no GPUs) under any of its job's plans, by the
    kernel's exact delta: ``(gpus, delta, plan)``; the slot is left under its plan as it
    was. Ties keep the earlier plan (the current one first). `sites`: only the sites
    :func:`useful_sites` names."""
    st = live.st
    k0 = live.plan_index(j)
    order = plan_choices(live.spec_of(j))
    if k0 is not None:
        order = [k0] + [k for k in order if k != k0]
    best: tuple[np.ndarray | None, float, int | None] = (None, -math.inf, k0)
    for k in order:
        live.set_plan(j, k)
        job = live.slots[j]
        cands = st.candidates(j, sites=useful_sites(live, job) if sites else None)
        g, d = st.best_candidate(j, cands)
        if g is not None and d > best[1] + 1e-9:
            best = (g, d, k)
    live.set_plan(j, k0)
    return best


def best_of(live: LiveState, j: int, cands: list[np.ndarray]) -> np.ndarray:
    """The best of `cands` (not empty) for slot j by the kernel's delta (the first when none
    scores)."""
    g, _ = live.st.best_candidate(j, cands)
    return cands[0] if g is None else g


def victims(live: LiveState, job: Job, exclude: set[int]) -> list[int]:
    """Running preemptible, unpinned jobs holding GPUs of `job`'s types (slots, `exclude`
    left out), lowest value per GPU-hour first (then cheapest to move, then name)."""
    st, inst = live.st, live.inst
    types = allowed_types(inst, st.ix, job)
    out = []
    for j, sj in enumerate(live.slots):
        if live.slot.get(sj.name) != j or j in exclude:
            continue
        spec = live.spec[sj.name]
        g = st.job_gpus[j]
        if spec.pinned or not spec.preemptible or not len(g):
            continue
        if np.isin(st.ix.gpu_type[g[:1]], types).any():
            out.append(j)
    return sorted(
        out,
        key=lambda j: (
            density(inst, live.slots[j]),
            live.spec_of(j).migration_cost,
            live.slots[j].name,
        ),
    )
