"""Verification of the live state before an operation commits (SPEC 3).

``changed`` mode (the default): rules 1-5 for every slot the operation changed; over the
whole state, no GPU held twice, none unavailable, none inside a leased block, no site's power
(tracked incrementally) over its cap, every must job placed; rule 6 too when leases may have
changed. ``full``: the whole checker. A state that fails is a bug of the operation:
:class:`~placer.errors.SolverError` (the caller rolls back).

Imports the checker and the greedy's rule test; no policy module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from placer.check import check_compiled, rule6_leases
from placer.errors import SolverError
from placer.live.state import LiveState
from placer.solvers.decomposition.construct import scope_ok

__all__ = ["verify"]


def verify(
    live: LiveState, changed: set[int], full: bool = False, leases: bool = True, laps: Any = None
) -> None:
    """Raise :class:`SolverError` if the live state breaks a rule (see the module docs).
    `laps`: a :class:`placer.live.replan.Laps` timing each part (a service profiling a
    replan's commit under its lock)."""
    st, inst, ix = live.st, live.inst, live.inst.index
    problems: list[str] = []
    running = set(live.slot.values())
    if full:
        problems += [str(v) for v in check_compiled(inst, live.compiled())]
    else:
        for j in sorted(changed & running):
            g = st.job_gpus[j]
            if len(g) and not scope_ok(inst, j, g):
                problems.append(f"job {live.slots[j].name!r} breaks a rule of 1-5")
        if laps:
            laps("verify: rules 1-5 of the changed")
        held = [st.job_gpus[j] for j in running if len(st.job_gpus[j])]
        if held:
            used = np.concatenate(held)
            cnt = np.bincount(used, minlength=ix.n_gpus)
            if (cnt > 1).any():
                problems.append(f"GPU {ix.gpu_id(int(np.argmax(cnt > 1)))!r} used twice")
            if not ix.available[used].all():
                problems.append("a job holds an unavailable GPU")
            for blocks in st.offer_blocks:
                for level, d in blocks:
                    a, b = ix.gpu_range(level, d)
                    if cnt[a:b].any():
                        problems.append(f"a job holds a GPU of leased {ix.domain_path(level, d)!r}")
        if laps:
            laps("verify: disjoint and available and blocks")
        over = np.flatnonzero(st.power_left < -1e-6 * np.maximum(1.0, ix.power_cap_kW))
        for s in over:
            problems.append(f"site {ix.site_names[int(s)]!r} over its power cap")
        if leases:
            problems += [str(v) for v in rule6_leases(inst, live.compiled())]
        if laps:
            laps("verify: power and rule 6")
    for j in running:
        job = live.slots[j]
        if not job.preemptible and len(st.job_gpus[j]) == 0:
            problems.append(f"job {job.name!r} must stay placed but has no GPUs")
    if laps:
        laps("verify: must stay")
    if problems:
        raise SolverError("the cluster state would break SPEC 3: " + "; ".join(problems))
