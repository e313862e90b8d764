"""Capacity questions on the index: how many free GPUs of a type each domain has, and
whether a job could fit anywhere at all (the reason given when it cannot).

Imports numpy only.
"""

from __future__ import annotations

import numpy as np

from placer.model import Instance, Job
from placer.model.instance import DIMS


def allowed_types(inst: Instance, index, job: Job) -> list[int]:
    """Type codes a job may use that exist in the topology."""
    present = index.present_types
    if job.gpu_types is None:
        return sorted(present)
    return sorted(
        index.type_names.index(t)
        for t in job.gpu_types
        if t in index.type_names and index.type_names.index(t) in present
    )


def smallest_units(job: Job) -> int:
    """Fewest positive units a job may have (0 if none is valid)."""
    lo = max(job.units_min, 1)
    step = job.unit_step
    k = -(-lo // step) * step
    return k if k <= job.units_max else 0


def free_per_domain(index, level: int, mask: np.ndarray) -> np.ndarray:
    """Count of GPUs with `mask` in every domain of `level`: int64 (n_level,)."""
    return np.bincount(index.dom[level][mask], minlength=index.n_domains(level))


def wan_components(index) -> np.ndarray:
    """Component label of every site in the WAN graph: int64 (S,)."""
    conn = np.isfinite(index.wan_lat_us)
    return conn.argmax(axis=1)  # the smallest site index reachable is a component label


def dimension_level(inst: Instance, index, job: Job, dim: str) -> int | None:
    """The level whose domains bound a group of `dim` (None = a WAN component bounds it).

    For `max_latency_us` the widest level whose latency meets the bound in some site is
    used (a necessary condition: never claims a fit impossible when it is possible).
    """
    scope = job.effective_scope()[dim]
    lvl = None if scope in (None, "cluster") else index.level_index(scope)
    bound = getattr(job.max_latency_us, dim)
    if bound is not None:
        S = index.n_sites
        off = ~np.eye(S, dtype=bool)
        if S > 1 and (index.wan_lat_us[off] <= bound).any():
            return lvl
        # the group meets at a level whose latency meets the bound: it lies inside a domain
        # of the widest such level (valid whatever the fabric's shape)
        good = np.flatnonzero((index.lat_us <= bound).any(axis=0))
        b = int(good[0]) if len(good) else index.n_levels - 1
        lvl = b if lvl is None else max(lvl, b)
    return lvl


class FreeCounts:
    """Free GPUs of each type per domain of each level, counted once and reused across
    jobs (the loader asks about every job; 5,000 jobs must not recount 1M GPUs each)."""

    def __init__(self, index, free: np.ndarray, power_left_kW: np.ndarray | None = None) -> None:
        """`power_left_kW` (S,), optional: what each site's cap leaves (e.g. after pinned
        jobs); counts are then capped per site by the GPUs of type t that power allows."""
        self.index = index
        self.free = free
        self.power_left_kW = power_left_kW
        self._per: dict[tuple[int, int], np.ndarray] = {}
        self._comp: dict[int, np.ndarray] = {}
        self.comp = wan_components(index)

    def site_limit(self, t: int) -> np.ndarray | None:
        """Most GPUs of type t each site's power left allows (int64 (S,)), or None."""
        if self.power_left_kW is None:
            return None
        kw = float(self.index.type_power_kW[t])
        left = np.maximum(self.power_left_kW, 0.0)
        lim = np.full(len(left), np.iinfo(np.int64).max, np.int64)
        if np.isfinite(kw) and kw > 0:
            capped = np.isfinite(left)
            lim[capped] = np.floor(left[capped] / kw + 1e-9).astype(np.int64)
        return lim

    def per_domain(self, t: int, level: int) -> np.ndarray:
        key = (t, level)
        v = self._per.get(key)
        if v is None:
            mask = self.free & (self.index.gpu_type == t)
            v = free_per_domain(self.index, level, mask)
            lim = self.site_limit(t)
            if lim is not None and len(v):
                ix = self.index
                first = np.minimum(ix.first_gpu[level][:-1], ix.n_gpus - 1)
                v = np.minimum(v, lim[ix.dom[0][first]])
            self._per[key] = v
        return v

    def by_component(self, t: int) -> np.ndarray:
        v = self._comp.get(t)
        if v is None:
            site_counts = self.per_domain(t, 0)
            v = self._comp[t] = np.bincount(
                self.comp, weights=site_counts, minlength=self.index.n_sites
            ).astype(np.int64)
        return v


def _units(k: int) -> str:
    return f"{k} unit" if k == 1 else f"{k} units"


def article(dim: str) -> str:
    """'an' before a dimension read letter by letter with a vowel sound (EP), else 'a'."""
    return "an" if dim.upper()[:1] in "AEFHILMNORSX" else "a"


def plans_reason(names: list[str], why: list[str]) -> str:
    """One reason for a job with plans from each plan's (as a solve and `Cluster.submit`
    word it): the sentence alone for one plan, `under every plan: ...` when they agree, else
    `no plan fits: plan 'a': ...; plan 'b': ...`."""
    if len(why) == 1:
        return why[0]
    if len(set(why)) == 1:
        return f"under every plan: {why[0]}"
    return "no plan fits: " + "; ".join(f"plan {n!r}: {w}" for n, w in zip(names, why))


def fit_nowhere_reason(
    inst: Instance,
    index,
    job: Job,
    free: np.ndarray | None = None,
    counts: FreeCounts | None = None,
) -> str:
    """Why `job` cannot get any unit on the available (or `free`) GPUs; '' if it might.

    A necessary-condition test: it never says a job cannot fit when it can. A job with
    plans (v3) fits when any of its plans might; otherwise the reason names each plan's."""
    if job.plans:
        if counts is None:
            counts = FreeCounts(index, index.available if free is None else free)
        why = []
        for v in job.variants():
            r = _fit_nowhere_one(inst, index, v, free, counts)
            if not r:
                return ""
            why.append(r)
        return plans_reason([v.plan for v in job.variants()], why)
    return _fit_nowhere_one(inst, index, job, free, counts)


def _fit_nowhere_one(
    inst: Instance,
    index,
    job: Job,
    free: np.ndarray | None = None,
    counts: FreeCounts | None = None,
) -> str:
    types = allowed_types(inst, index, job)
    if not types:
        want = job.gpu_types or []
        return f"no site has a GPU of type {' or '.join(want)}"
    k = smallest_units(job)
    if k == 0:
        return f"no unit count in [{job.units_min}, {job.units_max}] is a multiple of ep={job.ep}"
    if counts is None:
        counts = FreeCounts(index, index.available if free is None else free)
    sizes = {
        "tp": job.tp,
        "pp": job.pp,
        "dp": k if job.kind == "training" else 1,
        "ep": job.ep if job.kind == "training" else 1,
    }
    need_total = k * job.unit_size
    unit_levels = [dimension_level(inst, index, job, d) for d in ("tp", "pp")]
    # (dimension, GPUs the group needs in one domain, level, granule): a granule is a part
    # of the group that lies inside one unit, so is of one type even for a mixed job
    checks = []
    for d in DIMS:
        lvl = dimension_level(inst, index, job, d)
        n = sizes[d]
        granule = n if d in ("tp", "pp") else 1
        if d in ("dp", "ep") and lvl is not None and n > 1:
            # a DP (EP) group has one member per unit; when the TP groups (PP chains) must
            # lie inside narrower domains, the group's domain holds every member's whole TP
            # group (PP chain) too: the TP groups link the DP groups of all t, so they share
            # one domain
            for dim2, width in (("tp", job.tp), ("pp", job.pp)):
                l2 = unit_levels[0 if dim2 == "tp" else 1]
                if width > 1 and l2 is not None and l2 >= lvl:
                    n *= width
                    granule *= width
        checks.append((d, n, lvl, granule))
    if None not in unit_levels:
        # a whole unit spans its TP groups and PP chains: the wider of their levels
        checks.append(("unit", job.unit_size, min(unit_levels), job.unit_size))
    # a training job of two units or more is WAN-connected (its DP groups join every
    # unit); an inference job's replicas share no collective, so each replica needs only
    # its own connected sites
    one_component = job.kind == "training" and k > 1
    if job.mix_types and len(types) > 1:
        return _mixed_fit_reason(index, job, types, counts, checks, k, one_component)
    why: list[str] = []  # each type's reason: a job of several types fits on none of them
    for t in types:
        tname = index.type_names[t]
        whole = (counts.by_component(t) // job.unit_size) * job.unit_size
        most = int(whole.max(initial=0)) if one_component else int(whole.sum())
        if most < need_total:
            where = "in WAN-connected sites" if one_component else "in whole units"
            why.append(
                f"needs {need_total:,} {tname} GPUs ({_units(k)} of {job.unit_size}); "
                f"the most free {where} is {most:,}"
            )
            continue
        failed = ""
        for dim, n, lvl, _ in checks:
            if n <= 1 or lvl is None:
                continue
            best = int(counts.per_domain(t, lvl).max(initial=0))
            if best < n:
                what = "a unit" if dim == "unit" else f"{article(dim)} {dim.upper()} group"
                failed = (
                    f"{what} needs {n:,} {tname} GPUs inside one "
                    f"{index.levels[lvl]}; the largest free {tname} {index.levels[lvl]} "
                    f"block has {best:,}"
                )
                break
        if not failed and job.kind == "inference" and job.spread is not None:
            lvl = index.level_index(job.spread.level)
            touched = int((counts.per_domain(t, lvl) > 0).sum())
            if touched < job.spread.min:
                failed = (
                    f"its units must touch {job.spread.min} {job.spread.level} domains; "
                    f"only {touched} hold free {tname} GPUs"
                )
        if not failed:
            return ""
        why.append(failed)
    # (each reason names its type: with several, the last alone would blame that type only)
    return why[0] if len(why) == 1 else "on each of its GPU types: " + "; ".join(why)


def _mixed_fit_reason(
    index, job: Job, types: list[int], counts: FreeCounts, checks, k: int, one_component: bool
) -> str:
    """`fit_nowhere_reason` for a v2 `mix_types` job: each unit is of one allowed type and
    units may differ, so the types' free GPUs are pooled in whole one-type granules (a unit
    for the WAN component, a TP group or PP chain for its domain, a member's whole TP group
    or PP chain for a DP/EP group that must hold them). Necessary conditions only."""
    names = "/".join(index.type_names[t] for t in types)
    size = job.unit_size
    units = sum(counts.by_component(t) // size for t in types)
    most = int(units.max(initial=0)) if one_component else int(units.sum())
    if most < k:
        return (
            f"needs {_units(k)} of {size} GPUs, each unit of one type among {names}; "
            f"{'WAN-connected sites hold' if one_component else 'the free GPUs hold'} at most "
            f"{_units(most)} of free GPUs"
        )
    for dim, n, lvl, granule in checks:
        if n <= 1 or lvl is None:
            continue
        room = sum((counts.per_domain(t, lvl) // granule) * granule for t in types)
        best = int(room.max(initial=0))
        if best < n:
            what = "a unit" if dim == "unit" else f"{article(dim)} {dim.upper()} group"
            one = f" of one type among {names}" if granule == n else f" of {names}"
            return (
                f"{what} needs {n:,} GPUs{one} inside one {index.levels[lvl]}; the largest "
                f"free {index.levels[lvl]} block holds {best:,}"
            )
    if job.kind == "inference" and job.spread is not None:
        lvl = index.level_index(job.spread.level)
        touched = int((sum(counts.per_domain(t, lvl) for t in types) > 0).sum())
        if touched < job.spread.min:
            return (
                f"its units must touch {job.spread.min} {job.spread.level} domains; "
                f"only {touched} hold free {names} GPUs"
            )
    return ""
