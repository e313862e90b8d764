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

from placer.model import Instance, Placement


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


def compile_placement(inst: Instance, placement: Placement) -> Compiled:
    index = inst.index
    pos = {j.name: i for i, j in enumerate(inst.jobs)}
    job_gpus = [np.zeros(0, np.int64) for _ in inst.jobs]
    units = [0 for _ in inst.jobs]
    seen: dict[str, int] = {}
    problems: list[Problem] = []
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
    return Compiled(job_gpus, blocks, units, problems)
