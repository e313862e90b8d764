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

from placer.errors import InstanceError
from placer.io import instance_from_data, parse_text, read_text
from placer.model import Instance
from placer.model.instance import CLUSTER
from placer.model.semantic import Findings, check_structure


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
    """Validate already-parsed data (a dict as from YAML/JSON) into an :class:`Instance`."""
    inst = instance_from_data(data)
    f = check_structure(inst)
    if f.problems:
        raise InstanceError(f.problems)
    inst._warnings.extend(f.warnings)
    index = inst.index  # may raise for unknown `unavailable` paths
    g = Findings()
    _check_current(inst, index, g)
    _check_committed(inst, index, g)
    if g.problems:
        raise InstanceError(g.problems)
    _warn_fit_nowhere(inst, index, g)
    inst._warnings.extend(g.warnings)
    # pinned jobs and non-preemptible running jobs: refused when they cannot hold
    from placer.check import running_job_problems

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
        if len(idx) % j.unit_size:
            f.error(loc, f"{len(idx)} GPUs is not a whole number of units of {j.unit_size} (tp*pp)")
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


def _offer_block_problem(
    inst: Instance, index, offer, path: str
) -> tuple[str, tuple[int, int] | None]:
    """Why `path` is not a valid block of `offer` ('' if it is), and its (level, id)."""
    level_name = inst.offer_level(offer)
    r = index.resolve(path)
    if r is None or r[0] >= index.n_levels:
        return f"unknown domain {path!r}", None
    level, d = r
    if index.levels[level] != level_name:
        return (
            f"{path!r} is a {index.levels[level]!r} domain, not a {level_name!r} block",
            None,
        )
    a, b = index.gpu_range(level, d)
    site = index.site_names[int(index.dom[0][a])] if b > a else None
    if offer.sites is not None and site not in offer.sites:
        return f"{path!r} is in site {site!r}, not one of {offer.sites}", None
    if offer.gpu_types is not None:
        types = {index.type_names[t] for t in np.unique(index.gpu_type[a:b]).tolist()}
        wrong = sorted(types - set(offer.gpu_types))
        if wrong:
            return f"{path!r} holds GPUs of type {wrong[0]!r}, not one of {offer.gpu_types}", None
    return "", (level, d)


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
            why, r = _offer_block_problem(inst, index, o, path)
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
    from placer.kernel.capacity import FreeCounts, fit_nowhere_reason

    counts = FreeCounts(index, index.available)
    for ji, j in enumerate(inst.jobs):
        why = fit_nowhere_reason(inst, index, j, counts=counts)
        if why:
            f.warn(f"jobs[{ji}]", f"job {j.name!r} fits nowhere and gets 0 units: {why}")


__all__ = ["CLUSTER", "instance_from_dict", "load_instance"]
