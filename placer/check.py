"""The feasibility checker: SPEC section 3, one function per rule, solver-free.

Every rule returns all its violations as data (:class:`Violation`); :func:`check` runs them
all and never stops at the first. Rule functions take the instance and a compiled
placement (:mod:`placer.kernel.compiled`).

Imports numpy and the kernel; never a solver.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from placer.kernel.blocks import offer_block_problem
from placer.kernel.capacity import article
from placer.kernel.compiled import Compiled, compile_placement
from placer.kernel.groups import job_group_sets, rank_array
from placer.model import Instance, Placement
from placer.model.instance import DIMS


@dataclass
class Violation:
    """One broken rule: its SPEC 3 number, the job / offer / site, and what (first example)."""

    rule: int
    what: str
    job: str | None = None
    offer: str | None = None
    site: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        who = (
            self.job
            and f"job {self.job!r}"
            or self.offer
            and f"offer {self.offer!r}"
            or self.site
            and f"site {self.site!r}"
            or ""
        )
        return f"rule {self.rule}{' ' + who if who else ''}: {self.what}"


def _placed(inst: Instance, cp: Compiled):
    """(index, job under its chosen plan, GPUs) of every job with GPUs: only those are taken
    under their plans (a live submit checks one candidate job among thousands this way)."""
    plans = cp.job_plans
    for j, g in enumerate(cp.job_gpus):
        if len(g):
            job = inst.jobs[j]
            k = plans[j] if plans is not None and j < len(plans) else None
            yield j, job.under(job.default_plan if k is None else k), g


# ------------------------------------------------------------------ rule 1
def rule1_ids(inst: Instance, cp: Compiled) -> list[Violation]:
    """GPU ids exist, are available, and are used at most once (also inside a job)."""
    index = inst.index
    out = [Violation(1, p.what, job=p.job) for p in cp.problems if p.rule == 1]
    owner = np.full(index.n_gpus, -1, np.int64)
    for j, job, g in _placed(inst, cp):
        un = ~index.available[g]
        if un.any():
            out.append(
                Violation(1, f"GPU {index.gpu_id(int(g[un][0]))!r} is unavailable", job=job.name)
            )
        uniq, counts = np.unique(g, return_counts=True)
        if (counts > 1).any():
            out.append(
                Violation(
                    1,
                    f"GPU {index.gpu_id(int(uniq[counts > 1][0]))!r} is used twice inside the job",
                    job=job.name,
                )
            )
        prev = owner[uniq]
        clash = prev >= 0
        if clash.any():
            other = inst.jobs[int(prev[clash][0])].name
            out.append(
                Violation(
                    1,
                    f"GPU {index.gpu_id(int(uniq[clash][0]))!r} is also used by job {other!r}",
                    job=job.name,
                )
            )
        owner[uniq[~clash]] = j
    return out


# ------------------------------------------------------------------ rule 2
def rule2_types(inst: Instance, cp: Compiled) -> list[Violation]:
    """All GPUs of a job are of one allowed type; with v2 `mix_types`, each unit's tp*pp
    GPUs are of one allowed type and units may differ."""
    index = inst.index
    out = []
    for _, job, g in _placed(inst, cp):
        types = np.unique(index.gpu_type[g])
        names = [index.type_names[t] for t in types.tolist()]
        if job.mix_types and len(g) % job.unit_size == 0:
            per_unit = index.gpu_type[g].reshape(-1, job.unit_size)
            mixed = np.flatnonzero((per_unit != per_unit[:, :1]).any(axis=1))
            if len(mixed):
                u = int(mixed[0])
                un = sorted({index.type_names[t] for t in per_unit[u].tolist()})
                out.append(Violation(2, f"unit {u} has GPUs of several types {un}", job=job.name))
        elif len(types) > 1:
            out.append(Violation(2, f"GPUs of several types {names}", job=job.name))
        if job.gpu_types is not None:
            bad = [t for t in names if t not in job.gpu_types]
            if bad:
                out.append(
                    Violation(2, f"GPU type {bad[0]!r} is not one of {job.gpu_types}", job=job.name)
                )
    return out


# ------------------------------------------------------------------ rule 3
def rule3_sizes(inst: Instance, cp: Compiled) -> list[Violation]:
    """Unit counts in range, running non-preemptible jobs placed, pinned jobs kept."""
    index = inst.index
    out = [Violation(3, p.what, job=p.job) for p in cp.problems if p.rule == 3]
    for job, g, declared in zip(cp.jobs(inst), cp.job_gpus, cp.declared_units, strict=True):
        # an entry whose GPUs could not be compiled (unknown id, wrong length) has no GPUs
        # here: its declared units are still checked, and it is not "left out"
        units = len(g) // job.unit_size if len(g) else declared
        if units:
            if not job.units_min <= units <= job.units_max:
                out.append(
                    Violation(
                        3,
                        f"{units} units is outside [{job.units_min}, {job.units_max}]",
                        job=job.name,
                    )
                )
            if job.kind == "training" and units % job.ep:
                out.append(
                    Violation(3, f"{units} units is not a multiple of ep={job.ep}", job=job.name)
                )
        if job.current:
            if not job.preemptible and units == 0:
                out.append(
                    Violation(3, "running and not preemptible, but not placed", job=job.name)
                )
            if job.pinned:
                cur = index.cached_indices(job.current)
                if len(cur) != len(g) or (cur != g).any():
                    out.append(
                        Violation(
                            3,
                            "pinned, but its GPUs differ from `current` (same list, same order)",
                            job=job.name,
                        )
                    )
    return out


# ------------------------------------------------------------------ rule 4
def _group_max_pair_latency(index, M: np.ndarray) -> np.ndarray:
    """Largest pairwise link latency inside each group of M int (g, n): float64 (g,)."""
    g, n = M.shape
    out = np.zeros(g)
    if n <= 1 or g == 0:
        return out
    L = index.n_levels
    sites = index.dom[0][M]
    rows = np.repeat(np.arange(g), n)
    # pairs meeting exactly at level l exist iff a level-l domain of the group holds
    # members in two distinct level-(l+1) domains (or, at node level, two GPUs of a node)
    for lvl in range(L):
        key_l = np.stack([rows, index.dom[lvl][M].ravel()])
        if lvl < L - 1:
            key_c = np.stack([rows, index.dom[lvl + 1][M].ravel()])
        else:
            key_c = np.stack([rows, M.ravel()])
        nl = np.bincount(np.unique(key_l, axis=1)[0], minlength=g)
        nc = np.bincount(np.unique(key_c, axis=1)[0], minlength=g)
        has = nc > nl
        if has.any():
            # latency at this level of the site(s) where such a pair sits: take the max over
            # the group's sites holding a split domain
            lat_sites = _split_sites_latency(index, M[has], lvl)
            out[has] = np.maximum(out[has], lat_sites)
    cross = ~(sites == sites[:, :1]).all(axis=1)
    if cross.any():
        for r in np.flatnonzero(cross):
            s = np.unique(sites[r])
            a, b = np.meshgrid(s, s, indexing="ij")
            off = a != b
            out[r] = max(out[r], float(index.wan_lat_us[a[off], b[off]].max()))
    return out


def _split_sites_latency(index, M: np.ndarray, lvl: int) -> np.ndarray:
    """For groups known to have a pair meeting exactly at `lvl`: that pair's latency (max
    over sites where such a pair exists)."""
    L = index.n_levels
    out = np.zeros(len(M))
    for r in range(len(M)):
        row = M[r]
        d = index.dom[lvl][row]
        c = index.dom[lvl + 1][row] if lvl < L - 1 else row
        best = 0.0
        for dd in np.unique(d):
            sel = d == dd
            if len(np.unique(c[sel])) > 1:
                s = int(index.dom[0][row[sel][0]])
                best = max(best, float(index.lat_us[s, lvl]))
        out[r] = best
    return out


def rule4_scope(inst: Instance, cp: Compiled) -> list[Violation]:
    """Every group lies within one domain of its scope level, meets max_latency_us, and lies
    in WAN-connected sites."""
    index = inst.index
    out = []
    for _, job, g in _placed(inst, cp):
        units = len(g) // job.unit_size
        R = rank_array(g, units, job.pp, job.tp)
        fams = job_group_sets(R, job.kind, job.ep)
        scope = job.effective_scope()
        for d, M in [(dim, M) for dim in DIMS for M in fams.get(dim, [])]:
            if M.shape[-1] <= 1 or M.shape[0] == 0:
                continue
            sites = index.dom[0][M]
            comp_ok = np.isfinite(index.wan_lat_us[sites, sites[:, :1]]).all(axis=1)
            if not comp_ok.all():
                r = int(np.flatnonzero(~comp_ok)[0])
                out.append(
                    Violation(
                        4,
                        f"{article(d)} {d.upper()} group spans sites with no WAN path "
                        f"(e.g. GPU {index.gpu_id(int(M[r, 0]))!r})",
                        job=job.name,
                    )
                )
                continue
            lvl_name = scope[d]
            if lvl_name not in (None, "cluster"):
                lvl = index.level_index(lvl_name)
                dd = index.dom[lvl][M]
                ok = (dd == dd[:, :1]).all(axis=1)
                if not ok.all():
                    r = int(np.flatnonzero(~ok)[0])
                    bad = M[r][dd[r] != dd[r, 0]][0]
                    out.append(
                        Violation(
                            4,
                            f"{article(d)} {d.upper()} group spans more than one {lvl_name} "
                            f"({index.gpu_id(int(M[r, 0]))!r} and {index.gpu_id(int(bad))!r})",
                            job=job.name,
                        )
                    )
            bound = getattr(job.max_latency_us, d)
            if bound is not None:
                lat = _group_max_pair_latency(index, M)
                # a bound met exactly in the file's decimals is met (WAN path latencies are
                # float sums: 0.1 + 0.2 > 0.3), as for power caps in rule 7
                over = lat > bound + 1e-9 * max(1.0, abs(bound))
                if over.any():
                    r = int(np.flatnonzero(over)[0])
                    out.append(
                        Violation(
                            4,
                            f"{article(d)} {d.upper()} group has a pair {lat[r]:g} us apart, over "
                            f"max_latency_us {bound:g} (group of {index.gpu_id(int(M[r, 0]))!r})",
                            job=job.name,
                        )
                    )
    return out


# ------------------------------------------------------------------ rule 5
def rule5_spread(inst: Instance, cp: Compiled) -> list[Violation]:
    """An inference job's units touch at least spread.min domains of spread.level."""
    index = inst.index
    out = []
    for _, job, g in _placed(inst, cp):
        if job.kind != "inference" or job.spread is None:
            continue
        lvl = index.level_index(job.spread.level)
        k = len(np.unique(index.dom[lvl][g]))
        if k < job.spread.min:
            out.append(
                Violation(
                    5,
                    f"touches {k} {job.spread.level} domain(s), fewer than "
                    f"spread.min {job.spread.min}",
                    job=job.name,
                )
            )
    return out


# ------------------------------------------------------------------ rule 6
def rule6_leases(inst: Instance, cp: Compiled) -> list[Violation]:
    """Blocks are whole domains of the offer's level, in its sites and types, disjoint,
    free of jobs, single-site when asked, committed blocks held, GPUs in [min, max]."""

    index = inst.index
    out = [Violation(6, p.what, offer=p.offer) for p in cp.problems if p.rule == 6]
    used = np.zeros(index.n_gpus, bool)
    for _, _, g in _placed(inst, cp):
        used[g] = True
    claimed = np.full(index.n_gpus, -1, np.int64)
    for oi, (o, blocks) in enumerate(zip(inst.offers, cp.offer_blocks)):
        sites = set()
        mask = np.zeros(index.n_gpus, bool)
        for level, d in blocks:
            path = index.domain_path(level, d)
            why, _ = offer_block_problem(inst, index, o, path)
            if why:
                out.append(Violation(6, why, offer=o.name))
            a, b = index.gpu_range(level, d)
            if b > a:
                sites.add(int(index.dom[0][a]))
            if mask[a:b].any():
                out.append(
                    Violation(6, f"block {path!r} overlaps another of its blocks", offer=o.name)
                )
            prev = claimed[a:b]
            if (prev >= 0).any() and (prev[prev >= 0] != oi).any():
                other = inst.offers[int(prev[(prev >= 0) & (prev != oi)][0])].name
                out.append(
                    Violation(
                        6, f"block {path!r} overlaps a block of offer {other!r}", offer=o.name
                    )
                )
            claimed[a:b] = oi
            mask[a:b] = True
            if used[a:b].any():
                gi = a + int(np.argmax(used[a:b]))
                out.append(
                    Violation(
                        6, f"block {path!r} holds GPU {index.gpu_id(gi)!r} of a job", offer=o.name
                    )
                )
        if o.single_site and len(sites) > 1:
            names = sorted(index.site_names[s] for s in sites)
            out.append(Violation(6, f"single_site offer has blocks in {names}", offer=o.name))
        if o.committed_blocks:
            have = {index.domain_path(lv, d) for lv, d in blocks}
            missing = [b for b in o.committed_blocks if b not in have]
            if missing:
                out.append(
                    Violation(6, f"committed block {missing[0]!r} is not leased", offer=o.name)
                )
        if o.force == "accept" and not blocks:
            out.append(Violation(6, "force: accept, but the offer is not accepted", offer=o.name))
        if o.force == "decline" and blocks:
            out.append(Violation(6, "force: decline, but the offer is accepted", offer=o.name))
        if blocks:
            n = int((mask & index.available).sum())
            if n < o.min_gpus or (o.max_gpus is not None and n > o.max_gpus):
                hi = "inf" if o.max_gpus is None else f"{o.max_gpus:,}"
                out.append(
                    Violation(
                        6, f"{n:,} leased GPUs is outside [{o.min_gpus:,}, {hi}]", offer=o.name
                    )
                )
    return out


# ------------------------------------------------------------------ rule 7
def rule7_power(inst: Instance, cp: Compiled) -> list[Violation]:
    """Per site: (GPUs used by jobs + GPUs leased) x power_kW <= power_cap_kW."""
    index = inst.index
    out = []
    if not np.isfinite(index.power_cap_kW).any():
        return out
    on = np.zeros(index.n_gpus, bool)
    for _, _, g in _placed(inst, cp):
        on[g] = True
    for blocks in cp.offer_blocks:
        for level, d in blocks:
            a, b = index.gpu_range(level, d)
            on[a:b] |= index.available[a:b]
    pw = np.nan_to_num(index.type_power_kW[index.gpu_type], nan=0.0)
    per_site = np.bincount(index.dom[0][on], weights=pw[on], minlength=index.n_sites)
    for s in np.flatnonzero(per_site > index.power_cap_kW + 1e-9):
        out.append(
            Violation(
                7,
                f"draws {per_site[s]:,.1f} kW, over its cap {index.power_cap_kW[s]:,.1f} kW",
                site=index.site_names[int(s)],
            )
        )
    return out


# ------------------------------------------------------------------ rule 8
def rule8_plans(inst: Instance, cp: Compiled) -> list[Violation]:
    """v3: a placed job with plans names one of them (rules 2-5 then hold under it: the
    other rules take each job under its chosen plan); a job without plans names none; a
    pinned job keeps its `current_plan`. A job with 0 units may name any plan (ignored)."""
    out = [Violation(8, p.what, job=p.job) for p in cp.problems if p.rule == 8]
    declared = cp.declared_plans or [None] * len(inst.jobs)
    for job, g, plan in zip(inst.jobs, cp.job_gpus, declared, strict=True):
        if not len(g):
            continue
        if not job.plans and plan is not None:
            out.append(Violation(8, f"names plan {plan!r}, but the job has no plans", job=job.name))
        elif job.plans and job.pinned and job.current and plan != job.current_plan:
            out.append(
                Violation(
                    8,
                    f"pinned, but runs plan {plan!r} instead of its current_plan "
                    f"{job.current_plan!r}",
                    job=job.name,
                )
            )
    return out


RULES = (
    rule1_ids,
    rule2_types,
    rule3_sizes,
    rule4_scope,
    rule5_spread,
    rule6_leases,
    rule7_power,
    rule8_plans,
)


def check_compiled(inst: Instance, cp: Compiled) -> list[Violation]:
    """Every violation of every rule of SPEC 3."""
    out: list[Violation] = []
    for rule in RULES:
        out.extend(rule(inst, cp))
    return out


def check(inst: Instance, placement: Placement) -> list[Violation]:
    """Every violation of a placement (SPEC 3), as data. Empty means feasible."""
    return check_compiled(inst, compile_placement(inst, placement))
