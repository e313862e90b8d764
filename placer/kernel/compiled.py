"""Compiling a placement (SPEC 2) to arrays: GPU indices per job, blocks per offer.

Problems found while compiling (unknown or duplicate job names, unknown GPU ids, lengths
that are not units*tp*pp, unknown offers or blocks) are returned as data; the scorer
refuses a placement that has any of them (they make scoring impossible), the checker
reports them as violations.

Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from placer.model import Instance, Job, Placement


@dataclass
class Problem:
    """A problem found while compiling: SPEC 3 rule, the file location, and what."""

    rule: int
    loc: str
    what: str
    job: str | None = None
    offer: str | None = None


@dataclass
class Compiled:
    """A placement as arrays (see the module docstring)."""

    job_gpus: list[np.ndarray]
    offer_blocks: list[list[tuple[int, int]]]
    declared_units: list[int]  # `units` of each job's entry (0 when absent), even when the
    #                            entry has a problem and its job_gpus are left empty
    problems: list[Problem] = field(default_factory=list)
    # v3: the chosen plan of each job (index into its `plans`; None: a job without plans, or
    # one that names no plan of its own); None as a whole: every job under its default plan
    job_plans: list[int | None] | None = None
    # v3: the `plan` each job's entry names (None when absent), for rule 8
    declared_plans: list[str | None] | None = None

    def jobs(self, inst: Instance) -> list[Job]:
        """Each instance job under its chosen plan (v3), or its default plan (its
        `current_plan`, else its first) where none is chosen."""
        return jobs_under(inst, self.job_plans)


def jobs_under(inst: Instance, plans: list[int | None] | None) -> list[Job]:
    """The instance's jobs under the given plans (v3): ``plans[j]`` indexes job j's `plans`;
    None (or no list) takes a job with plans under its default plan."""
    out = []
    for j, job in enumerate(inst.jobs):
        k = plans[j] if plans is not None and j < len(plans) else None
        out.append(job.under(job.default_plan if k is None else k))
    return out


def compile_placement(inst: Instance, placement: Placement) -> Compiled:
    index = inst.index
    pos = {j.name: i for i, j in enumerate(inst.jobs)}
    job_gpus = [np.zeros(0, np.int64) for _ in inst.jobs]
    units = [0 for _ in inst.jobs]
    plans: list[int | None] = [None for _ in inst.jobs]
    declared: list[str | None] = [None for _ in inst.jobs]
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    if sum(len(pj.gpus) for pj in placement.jobs) > 256:
        # many ids in all (thousands of small jobs too): one dict look-up per id, not a walk
        # down the tree per job
        index.id_table()
    for k, pj in enumerate(placement.jobs):
        loc = f"jobs[{k}]"
        if pj.name not in pos:
            problems.append(Problem(3, f"{loc}.name", f"unknown job {pj.name!r}", job=pj.name))
            continue
        if pj.name in seen:
            problems.append(
                Problem(
                    3,
                    f"{loc}.name",
                    f"job {pj.name!r} appears twice (also jobs[{seen[pj.name]}])",
                    job=pj.name,
                )
            )
            continue
        seen[pj.name] = k
        j = pos[pj.name]
        job = inst.jobs[j]
        # the units the entry declares, also when its GPUs cannot be compiled (the checker
        # still applies rule 3 to them)
        units[j] = pj.units
        declared[j] = pj.plan
        if job.plans and pj.units > 0:
            # v3: a placed job with plans runs the one it names; its shape is that plan's
            k = job.plan_index(pj.plan)
            if k is None:
                what = (
                    f"job {pj.name!r} has plans but names none"
                    if pj.plan is None
                    else f"job {pj.name!r} has no plan {pj.plan!r} (plans: "
                    f"{', '.join(p.name for p in job.plans)})"
                )
                problems.append(Problem(8, f"{loc}.plan", what, job=pj.name))
                units[j] = 0  # no shape to check the entry against: rule 8 says why
                continue
            plans[j] = k
            job = job.under(k)
        idx = index.gpu_indices(pj.gpus)
        bad = np.flatnonzero(idx < 0)
        if len(bad):
            problems.append(
                Problem(
                    1, f"{loc}.gpus[{bad[0]}]", f"unknown GPU id {pj.gpus[bad[0]]!r}", job=pj.name
                )
            )
            continue
        if len(idx) != pj.units * job.unit_size:
            problems.append(
                Problem(
                    3,
                    f"{loc}.gpus",
                    f"{len(idx)} GPUs, but units*tp*pp = {pj.units}*{job.tp}*"
                    f"{job.pp} = {pj.units * job.unit_size}",
                    job=pj.name,
                )
            )
            continue
        job_gpus[j] = idx
    opos = {o.name: i for i, o in enumerate(inst.offers)}
    blocks: list[list[tuple[int, int]]] = [[] for _ in inst.offers]
    oseen: dict[str, int] = {}
    for k, lg in enumerate(placement.leases):
        loc = f"leases[{k}]"
        if lg.offer not in opos:
            problems.append(
                Problem(6, f"{loc}.offer", f"unknown offer {lg.offer!r}", offer=lg.offer)
            )
            continue
        if lg.offer in oseen:
            problems.append(
                Problem(6, f"{loc}.offer", f"offer {lg.offer!r} appears twice", offer=lg.offer)
            )
            continue
        oseen[lg.offer] = k
        o = opos[lg.offer]
        for b, path in enumerate(lg.blocks):
            r = index.resolve(path)
            if r is None or r[0] >= index.n_levels:
                problems.append(
                    Problem(6, f"{loc}.blocks[{b}]", f"unknown domain {path!r}", offer=lg.offer)
                )
                continue
            blocks[o].append(r)
    return Compiled(job_gpus, blocks, units, problems, plans, declared)
