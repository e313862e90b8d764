"""Loading an instance completely: parse, field checks, cross-checks, expansion, and the
checks that need the expanded topology (GPU ids of `current`, committed lease blocks,
jobs that fit nowhere, pinned jobs that break the rules).

:func:`load_instance` is the library entry point; every problem is collected and raised
as one :class:`~placer.errors.InstanceError` naming each place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from placer.check import (
    rule1_ids,
    rule2_types,
    rule3_sizes,
    rule4_scope,
    rule5_spread,
    rule7_power,
)
from placer.errors import InstanceError
from placer.io import instance_from_data, parse_text, read_text
from placer.kernel.blocks import forced_accept_problem, offer_block_problem
from placer.kernel.capacity import FreeCounts, fit_nowhere_reason
from placer.kernel.compiled import Compiled
from placer.model import Instance
from placer.model.instance import CLUSTER
from placer.model.semantic import Findings, check_structure
from placer.planner import expand


def load_instance(path: str | Path) -> Instance:
    """Read, validate and expand an instance file (YAML or JSON).

    Returns the :class:`Instance`; its warnings are in ``instance.warnings`` and its
    expanded topology in ``instance.index``. Raises :class:`InstanceError` naming every
    problem's place.

    Examples
    --------
    >>> inst = load_instance("instances/tiny.yaml")  # doctest: +SKIP
    >>> inst.index.n_gpus  # doctest: +SKIP
    48
    """
    return instance_from_dict(parse_text(read_text(path)))


def instance_from_dict(data: Any) -> Instance:
    """Validate already-parsed data (a dict as from YAML/JSON) into an :class:`Instance`.

    Jobs with `model:` (a project extension, docs/plans.md) are first expanded into SPEC v3
    `plans` by :func:`placer.planner.expand`."""
    exp = expand(data)
    inst = instance_from_data(exp.data)
    inst._warnings.extend(exp.warnings)
    f = check_structure(inst)
    if f.problems:
        raise InstanceError(f.problems)
    inst._warnings.extend(f.warnings)
    index = inst.index  # may raise for unknown `unavailable` paths
    g = Findings()
    _check_current(inst, index, g)
    _check_committed(inst, index, g)
    _check_forced(inst, index, g)
    if g.problems:
        raise InstanceError(g.problems)
    _warn_fit_nowhere(inst, index, g)
    inst._warnings.extend(g.warnings)
    # pinned jobs and non-preemptible running jobs: refused when they cannot hold
    problems = running_job_problems(inst)
    if problems:
        raise InstanceError(problems)
    return inst


def _check_current(inst: Instance, index, f: Findings) -> None:
    owner: dict[int, str] = {}
    for ji, j in enumerate(inst.jobs):
        if not j.current:
            continue
        loc = f"jobs[{ji}].current"
        idx = index.gpu_indices(j.current)
        bad = np.flatnonzero(idx < 0)
        if len(bad):
            f.error(f"{loc}[{bad[0]}]", f"unknown GPU id {j.current[bad[0]]!r}")
            continue
        run = j.under(j.default_plan)  # v3: whole units of its current_plan
        if len(idx) % run.unit_size:
            under = f" under plan {run.plan!r}" if run.plan is not None else ""
            f.error(
                loc,
                f"{len(idx)} GPUs is not a whole number of units of {run.unit_size} (tp*pp{under})",
            )
        uniq, first, counts = np.unique(idx, return_index=True, return_counts=True)
        if (counts > 1).any():
            g = int(uniq[np.argmax(counts > 1)])
            f.error(loc, f"GPU {index.gpu_id(g)!r} appears twice")
        for k, g in enumerate(idx.tolist()):
            if g in owner and owner[g] != j.name:
                f.error(
                    f"{loc}[{k}]", f"GPU {j.current[k]!r} is also in job {owner[g]!r}'s current"
                )
                break
        for g in idx.tolist():
            owner.setdefault(g, j.name)


def _check_forced(inst: Instance, index, f: Findings) -> None:
    """SPEC 6 (v2): `force: decline` with committed blocks is refused, and so is `force:
    accept` that no set of the offer's blocks satisfies even on the empty cluster."""
    for oi, o in enumerate(inst.offers):
        loc = f"leases.offers[{oi}].force"
        if o.force == "decline" and o.committed_blocks:
            f.error(loc, "decline contradicts committed_blocks (a signed contract is accepted)")
        elif o.force == "accept":
            why = forced_accept_problem(inst, index, o)
            if why:
                f.error(loc, f"accept cannot be met even on the empty cluster: {why}")


def _check_committed(inst: Instance, index, f: Findings) -> None:
    taken: list[tuple[int, int, str]] = []
    pinned = np.zeros(index.n_gpus, bool)
    for j in inst.jobs:
        if j.pinned and j.current:
            idx = index.gpu_indices(j.current)
            pinned[idx[idx >= 0]] = True
    for oi, o in enumerate(inst.offers):
        sites_seen = set()
        for bi, path in enumerate(o.committed_blocks or []):
            loc = f"leases.offers[{oi}].committed_blocks[{bi}]"
            why, r = offer_block_problem(inst, index, o, path)
            if why:
                f.error(loc, why)
                continue
            a, b = index.gpu_range(*r)
            sites_seen.add(int(index.dom[0][a]))
            for a2, b2, other in taken:
                if a < b2 and a2 < b:
                    f.error(loc, f"{path!r} overlaps a committed block of offer {other!r}")
                    break
            taken.append((a, b, o.name))
            if pinned[a:b].any():
                f.error(loc, f"{path!r} holds GPUs of a pinned job")
        if o.single_site and len(sites_seen) > 1:
            f.error(f"leases.offers[{oi}].committed_blocks", "single_site offer spans sites")


def _warn_fit_nowhere(inst: Instance, index, f: Findings) -> None:
    """Warn about jobs whose groups fit their scope nowhere, even on an empty cluster."""

    counts = FreeCounts(index, index.available)
    for ji, j in enumerate(inst.jobs):
        why = fit_nowhere_reason(inst, index, j, counts=counts)
        if why:
            f.warn(f"jobs[{ji}]", f"job {j.name!r} fits nowhere and gets 0 units: {why}")


__all__ = ["CLUSTER", "instance_from_dict", "load_instance"]


def running_job_problems(inst: Instance) -> list[tuple[str, str]]:
    """Instance-level refusals for running jobs (SPEC 6): pinned jobs that break rules 1-5
    or a power cap, and running non-preemptible jobs that fit nowhere even alone."""
    index = inst.index
    problems: list[tuple[str, str]] = []
    pinned = [j for j in inst.jobs if j.pinned and j.current]
    if pinned:
        gpus = [np.zeros(0, np.int64) for _ in inst.jobs]
        for j, job in enumerate(inst.jobs):
            if job.pinned and job.current:
                gpus[j] = index.cached_indices(job.current)
        plans = [j.default_plan for j in inst.jobs]  # a pinned job keeps its current_plan
        cp = Compiled(
            gpus,
            [[] for _ in inst.offers],
            [len(g) // j.under(k).unit_size for g, j, k in zip(gpus, inst.jobs, plans)],
            job_plans=plans,
        )
        for rule in (rule1_ids, rule2_types, rule3_sizes, rule4_scope, rule5_spread, rule7_power):
            for v in rule(inst, cp):
                if v.rule == 3 and "not placed" in v.what:
                    continue
                ji = next((i for i, j in enumerate(inst.jobs) if j.name == v.job), None)
                if ji is not None:
                    loc = f"jobs[{ji}].current"
                    msg = f"pinned job breaks rule {v.rule}: {v.what}"
                else:  # a site's power cap, exceeded by the pinned jobs together
                    si = index.site_index.get(v.site or "", 0)
                    loc = f"topology.sites[{si}].power_cap_kW"
                    names = ", ".join(repr(j.name) for j in pinned)
                    msg = f"site {v.site!r} {v.what} with the pinned jobs {names} alone"
                problems.append((loc, msg))
    free = index.available.copy()
    for j in pinned:
        free[index.cached_indices(j.current)] = False
    # the power the pinned jobs leave in each site (they stay whatever else happens)
    used = ~free & index.available
    power_used = np.bincount(
        index.gpu_site[used],
        weights=np.nan_to_num(index.type_power_kW[index.gpu_type[used]]),
        minlength=index.n_sites,
    )
    power_left = index.power_cap_kW - power_used
    counts = None
    for ji, job in enumerate(inst.jobs):
        if job.current and not job.preemptible and not job.pinned:
            if counts is None:
                counts = FreeCounts(index, free, power_left)
            why = fit_nowhere_reason(inst, index, job, free, counts=counts)
            if why:
                problems.append(
                    (f"jobs[{ji}]", f"running, not preemptible, and fits nowhere even alone: {why}")
                )
    return problems
