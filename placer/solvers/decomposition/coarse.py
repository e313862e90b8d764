"""The coarse model of the decomposition: which GPU type and sites each job's units go to,
and which blocks each offer leases, with optimistic (bound-valid) value coefficients.

Algorithm overview
1. Capacity per (site, GPU type): available GPUs minus pinned jobs' GPUs; per level, the
   largest free block of the type in each site (``cap[s, t, l]``).
2. Options per job: training — one site, or (when its scopes let DP span sites) every
   WAN-connected set of 2..3 sites (plus one catch-all option for wider sets when there are
   more than 4 sites); inference — units per site, freely. Running jobs also get "stay".
3. Optimistic goodput of an option (never below the kernel's goodput of any placement of
   that kind): every T_X at least the kernel's formula at the fastest level whose domains
   can hold the group (and meet the scope / max_latency), the DP group at its fewest units,
   WAN phases with the bottleneck bandwidth unshared, interruptions from the fewest nodes
   and the WAN links the option must use. Coefficient per unit =
   hours x value x speed x tp*pp x goodput.
4. Linear constraints: one option per job; units within [min, max] (multiples of ep);
   GPUs per (site, type) within capacity, leases included; power per site; offers whole
   (min/max GPUs), blocks counted per group of identical blocks, single_site, committed
   blocks; non-preemptible running jobs placed; migration cost unless "stay".
5. Identical jobs (job arrays, sweeps; :data:`AGGREGATE`): one set of options per class of
   jobs equal in every field but the name, its variables the members' sums (binary 0..k,
   bounds and rhs times k); :func:`expand` shares a plan out to the members.
The optimum of this model is a proven upper bound on the kernel's objective.

Imports numpy, the kernel and :mod:`placer.solvers.decomposition.linmodel`; never a solver library.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from placer.kernel.capacity import allowed_types, dimension_level, smallest_units
from placer.kernel.cost import all_reduce_ms, analyse_job, as_batch, reduce_scatter_ms
from placer.kernel.score import bubble, evaluate_job, job_hours
from placer.model import Instance, Job
from placer.solvers.decomposition.construct import scope_ok
from placer.solvers.decomposition.linmodel import LinModel
from placer.solvers.plans import must_place, siblings


@dataclass
class Option:
    job: int
    kind: str  # "site" | "multi" | "any" | "split" | "inference" | "stay" | "mixed"
    type: int
    sites: tuple[int, ...]
    goodput: float
    b: int = -1  # binary var
    n: dict[int, int] = field(default_factory=dict)  # site -> units var (in unit steps)
    step: int = 1
    # kind "mixed" (SPEC v2 mix_types): (site, type) -> units var (in unit steps)
    parts: dict[tuple[int, int], int] = field(default_factory=dict)
    value: int = -1  # a mixed option's value variable (its objective term), if it has one
    # kind "split" (a unit's TP groups or PP stages may lie in different sites): site ->
    # pieces var, each piece `piece` GPUs (a site holds part of a unit, not whole units)
    pieces: dict[int, int] = field(default_factory=dict)
    piece: int = 0
    # an aggregated option (:data:`AGGREGATE`): the jobs of its class, by name, `job` the
    # first; its binary counts the members that take it (0..k) and its other variables
    # hold their sums (:func:`expand` hands each member its share after the solve)
    members: tuple[int, ...] = ()

    def steps_of(self, x: float, unit_size: int) -> float:
        """Unit steps that a value x of one of the option's part variables stands for (a
        part in pieces: x * piece / (unit_size * step), a fraction)."""
        return x * self.piece / (unit_size * self.step) if self.piece else x

    def site_units(self, vals: list[float], unit_size: int) -> dict[int, int]:
        """Units (in steps) per site that a solution `vals` plans, for the packer: a split
        option's pieces rounded to whole units (largest parts first, the total kept)."""
        if not self.pieces:
            return {s: int(round(vals[v])) for s, v in self.n.items()}
        per = unit_size * self.step
        gpus = {s: vals[v] * self.piece for s, v in self.pieces.items()}
        total = int(round(sum(gpus.values()) / per))
        out = {s: int(g // per) for s, g in gpus.items()}
        for s in sorted(gpus, key=lambda s: (-(gpus[s] - out[s] * per), s)):
            if sum(out.values()) >= total:
                break
            out[s] += 1
        return out


@dataclass
class Coarse:
    model: LinModel
    options: list[Option]
    offer_vars: dict[int, int]  # offer -> accept var
    lease_vars: dict[tuple[int, int], int]  # (offer, group) -> count var
    groups: list[dict]  # block groups: site, level, gpus per type, members
    constant: float
    # classes of identical jobs built once (:func:`job_classes`): first member -> members
    classes: dict[int, tuple[int, ...]] = field(default_factory=dict)

    @property
    def aggregated(self) -> str:
        """What the aggregation merged, for the stats ("120 jobs in 3 classes")."""
        n = sum(len(m) for m in self.classes.values())
        return f"{n} jobs in {len(self.classes)} classes"


# the kernel's collective formulas (SPEC 4), not restated here
_ring = all_reduce_ms
_rs = reduce_scatter_ms


class Bounds:
    """Optimistic per-option figures (step 3 of the overview)."""

    def __init__(self, inst: Instance, free: np.ndarray) -> None:
        self.inst = inst
        self.ix = ix = inst.index
        T = len(ix.type_names)
        L = ix.n_levels
        S = ix.n_sites
        self.cap = np.zeros((S, T, L), np.int64)
        for t in range(T):
            mask = free & (ix.gpu_type == t)
            for lvl in range(L):
                cnt = np.bincount(ix.dom[lvl][mask], minlength=ix.n_domains(lvl))
                site_of = ix.dom[0][ix.first_gpu[lvl][:-1].clip(max=ix.n_gpus - 1)]
                np.maximum.at(self.cap[:, t, lvl], site_of, cnt)
        self.gpn = np.zeros((S, T), np.int64)
        np.maximum.at(self.gpn, (ix.dom[0][ix.first_gpu[-1][:-1]], ix.node_type), ix.node_gpus)
        self.avail = np.zeros((S, T), np.int64)
        np.add.at(self.avail, (ix.dom[0][free], ix.gpu_type[free]), 1)
        self._gpus = np.flatnonzero(free)
        self._dcaps: dict[tuple, np.ndarray] = {}
        self._memo_init()

    # ------------------------------------------------------------------ memos
    def _memo_init(self) -> None:
        """Memos of figures that depend on a job's scopes and the instance only, or on
        free-GPU counts fixed while the model is built. At 1M GPUs / 5,000 jobs the build
        asked for a scope's level 538,000 times and tested DP groups' room 169,000 times
        (three quarters of its 9.6 s CPU); the figures are the same, asked once."""
        self._dlv: dict[tuple, tuple] = {}  # (id(job), dim) -> (job, level)
        self._lvls: dict[tuple, tuple] = {}  # (id(job), dim, site) -> (job, levels)
        self._room: dict[tuple, int] = {}  # (site, types, level, slab GPUs) -> slabs
        # the levels a group can meet at (`_best`) and the most DP members (`dp_most`) per
        # what they read of a job (its TP and PP sizes and scope levels), not per job: at
        # 1M GPUs / 5,000 jobs the 4,828 distinct jobs have 16 unit shapes
        self._fit: dict[tuple, object] = {}

    def dim_level(self, job: Job, dim: str) -> int | None:
        """:func:`~placer.kernel.capacity.dimension_level`, once per job and dimension
        (the job is kept with its entry so that a reused id cannot hit)."""
        key = (id(job), dim)
        hit = self._dlv.get(key)
        if hit is None or hit[0] is not job:
            hit = self._dlv[key] = (job, dimension_level(self.inst, self.ix, job, dim))
        return hit[1]

    def crossing(self, job: Job) -> frozenset[str]:
        """:func:`crossing_dims`, once per job."""
        key = (id(job), "crossing")
        hit = self._dlv.get(key)
        if hit is None or hit[0] is not job:
            hit = self._dlv[key] = (job, frozenset(crossing_dims(self.inst, self.ix, job)))
        return hit[1]

    def _slab_room(self, s: int, types: tuple[int, ...], lvl: int, size: int) -> int:
        """Disjoint slabs of `size` GPUs the domains of level lvl of site s hold."""
        key = (s, types, lvl, size)
        got = self._room.get(key)
        if got is None:
            got = self._room[key] = int((self.domain_caps(s, types, lvl) // size).sum())
        return got

    def domain_caps(self, s: int, types: tuple[int, ...], lvl: int) -> np.ndarray:
        """Free GPUs of `types` in each domain of level `lvl` of site s (nonzero ones)."""
        key = (s, types, lvl)
        out = self._dcaps.get(key)
        if out is None:
            ix, g = self.ix, self._gpus
            g = g[(ix.dom[0][g] == s) & np.isin(ix.gpu_type[g], types)]
            cnt = np.unique(ix.dom[lvl][g], return_counts=True)[1]
            out = self._dcaps[key] = cnt.astype(np.int64)
        return out

    def _granule(self, job: Job, lvl: int) -> int:
        """GPUs of one unit that lie in the domain a DP group meets in, at level lvl: its
        TP group when the TP scope lies inside lvl, its PP chain likewise, both: the unit."""
        i_tp = self.dim_level(job, "tp")
        i_pp = self.dim_level(job, "pp")
        gr = 1
        if job.tp > 1 and i_tp is not None and i_tp >= lvl:
            gr *= job.tp
        if job.pp > 1 and i_pp is not None and i_pp >= lvl:
            gr *= job.pp
        return gr

    def dp_fits(
        self, job: Job, s: int, types: tuple[int, ...], lvl: int, n: int, pool=None
    ) -> bool:
        """Whether every DP group of n members (its in-site part in site s) can meet inside
        a domain of level lvl at once. The groups of one stage (and of one TP position) share
        a domain whenever their TP groups (PP chains) lie inside it: each domain holds
        whole slabs of n * granule GPUs, and a unit's `unit_size / granule` slabs are
        disjoint. A single group fitting the largest domain (the weaker test) ignores that
        the job's other DP groups need their own room. `pool`: sites whose domains the slabs
        may use too (a unit whose stages lie in several sites has its DP groups there)."""
        if n <= 1:
            return True
        gr = self._granule(job, lvl)
        slabs = job.unit_size // gr
        room = 0
        for ss in pool or (s,):
            room += self._slab_room(ss, types, lvl, n * gr)
        return room >= slabs

    def mixes(self, s: int, types: tuple[int, ...], lvl: int) -> bool:
        """Whether some domain of level lvl in site s has free GPUs of two of `types`."""
        key = ("mix", s, types, lvl)
        out = self._dcaps.get(key)
        if out is None:
            ix, g = self.ix, self._gpus
            g = g[(ix.dom[0][g] == s) & np.isin(ix.gpu_type[g], types)]
            d, t = ix.dom[lvl][g], ix.gpu_type[g]
            if not (d[1:] >= d[:-1]).all():  # (GPUs in topology order: domains in order)
                o = np.lexsort((t, d))
                d, t = d[o], t[o]
            # a domain's GPUs side by side: two of its types meet at some neighbour pair
            # (np.unique over the (domain, type) records sorted them: 53 ms a call on the
            # headline instance's 60k-GPU sites, half a second of its coarse build)
            out = self._dcaps[key] = bool(((d[1:] == d[:-1]) & (t[1:] != t[:-1])).any())
        return out

    def dp_most(self, job: Job, s: int, types: tuple[int, ...], lvl: int, hi: int) -> int:
        """The most members (up to hi) a DP group's part in site s can have with every
        group meeting inside a domain of level lvl (:meth:`dp_fits`; monotone in n)."""
        key = ("most", s, types, lvl, hi, job.tp, job.pp, *self._tp_pp_levels(job))
        got = self._fit.get(key)
        if got is not None:
            return got
        if hi <= 1 or self.dp_fits(job, s, types, lvl, hi):
            got = max(hi, 0)
        else:
            lo = 1
            while lo < hi - 1:
                mid = (lo + hi) // 2
                if self.dp_fits(job, s, types, lvl, mid):
                    lo = mid
                else:
                    hi = mid
            got = lo
        self._fit[key] = got
        return got

    def _tp_pp_levels(self, job: Job) -> tuple:
        """The TP and PP scope levels of a job (what :meth:`_granule` reads of its scopes)."""
        return self.dim_level(job, "tp"), self.dim_level(job, "pp")

    @classmethod
    def of_gpus(cls, inst: Instance, gpus: np.ndarray) -> Bounds:
        """Bounds for placements on exactly these GPUs (in any order): capacities are
        those of the set, computed from the set alone (cheap for a small running job)."""
        ix = inst.index
        b = cls.__new__(cls)
        b.inst, b.ix = inst, ix
        T, L, S = len(ix.type_names), ix.n_levels, ix.n_sites
        b.cap = np.zeros((S, T, L), np.int64)
        types = ix.gpu_type[gpus]
        for lvl in range(L):
            keys, counts = np.unique(
                np.stack([ix.dom[lvl][gpus], types]), axis=1, return_counts=True
            )
            site_of = ix.dom[0][ix.first_gpu[lvl][keys[0]]]
            np.maximum.at(b.cap[:, :, lvl], (site_of, keys[1]), counts)
        nodes = np.unique(ix.gpu_node[gpus])
        b.gpn = np.zeros((S, T), np.int64)
        np.maximum.at(
            b.gpn, (ix.dom[0][ix.first_gpu[-1][nodes]], ix.node_type[nodes]), ix.node_gpus[nodes]
        )
        b.avail = np.zeros((S, T), np.int64)
        np.add.at(b.avail, (ix.dom[0][gpus], types), 1)
        b._gpus = np.unique(gpus)
        b._dcaps = {}
        b._memo_init()
        return b

    def _levels(self, job: Job, dim: str, s: int) -> tuple[int, ...]:
        key = (id(job), dim, s)
        hit = self._lvls.get(key)
        if hit is None or hit[0] is not job:
            hit = self._lvls[key] = (job, tuple(self._levels_of(job, dim, s)))
        return hit[1]

    def _levels_of(self, job: Job, dim: str, s: int) -> list[int]:
        ix = self.ix
        scope = job.effective_scope()[dim]
        lo = 0 if scope in (None, "cluster") else ix.level_index(scope)
        bound = getattr(job.max_latency_us, dim)
        out = []
        for lvl in range(lo, ix.n_levels):
            if bound is not None and ix.lat_us[s, lvl] > bound:
                continue
            out.append(lvl)
        return out

    def _best(
        self, job: Job, dim: str, s: int, t: int, n: int, fn, m: float, S: float, pool=None
    ) -> float:
        """Fastest in-site time of a group of n (fn = _ring / _rs); inf if none fits.

        A DP or EP group has one member per unit. If the group meets in a domain D of level
        l and the TP scope lies inside l, D also holds each member's whole TP group (n*tp
        GPUs); likewise PP chains (n*pp), and both together whole units (n*tp*pp).
        `pool`: the option's sites when a unit may lie in several (:meth:`dp_fits`)."""
        if n <= 1:
            return 0.0
        best = math.inf
        i_tp = i_pp = None
        if dim in ("dp", "ep"):
            i_tp, i_pp = self._tp_pp_levels(job)
        levels = self._levels(job, dim, s)
        key = ("best", dim, s, t, n, pool, job.tp, job.pp, i_tp, i_pp, levels)
        fit = self._fit.get(key)
        if fit is None:
            fit = []
            for lvl in levels:
                need = n
                if dim in ("dp", "ep"):
                    if i_tp is not None and i_tp >= lvl:
                        need *= job.tp
                    if i_pp is not None and i_pp >= lvl:
                        need *= job.pp
                if dim == "dp":
                    ok = self.dp_fits(job, s, (t,), lvl, n, pool)
                else:
                    ok = self.cap[s, t, lvl] >= need
                if ok:
                    fit.append(lvl)
            self._fit[key] = fit
        for lvl in fit:
            best = min(best, fn(n, m, S, self.ix.lat_us[s, lvl], self.ix.bw_GBps[s, lvl]))
        return best

    def brackets(
        self, job: Job, s: int, t: int, n_min: int, n_max: int, step: int
    ) -> list[tuple[int, int]]:
        """Unit ranges inside which the fastest level a DP (or EP) group can meet at does
        not change: the efficiency bound of each range is taken at its low end."""
        cuts = set()
        i_tp = self.dim_level(job, "tp")
        i_pp = self.dim_level(job, "pp")
        for lvl in range(self.ix.n_levels):
            mult = 1
            if i_tp is not None and i_tp >= lvl:
                mult *= job.tp
            if i_pp is not None and i_pp >= lvl:
                mult *= job.pp
            n_fit = self.dp_most(job, s, (t,), lvl, int(self.cap[s, t, lvl]) // mult)
            n_fit -= n_fit % step
            if n_min <= n_fit < n_max:
                cuts.add(n_fit)
        out = []
        lo = n_min
        for c in sorted(cuts):
            if c >= lo:
                out.append((lo, c))
                lo = c + step
        if lo <= n_max:
            out.append((lo, n_max))
        return out

    def _may_cross(self, job: Job, dim: str) -> bool:
        scope = job.effective_scope()[dim]
        if scope not in (None, "cluster") or self.ix.n_sites < 2:
            return False
        bound = getattr(job.max_latency_us, dim)
        S = self.ix.n_sites
        off = ~np.eye(S, dtype=bool)
        return bound is None or bool((self.ix.wan_lat_us[off] <= bound).any())

    def _cross_lb(self, job: Job, dim: str, m: float, S: float, kind: str) -> float:
        """Fewest ms a group of `dim` spanning sites can take (k = 2, best pair)."""
        ix = self.ix
        off = ~np.eye(ix.n_sites, dtype=bool)
        a_min = float(ix.wan_lat_us[off].min())
        w_max = float(ix.wan_bw_GBps[off].max())
        if not np.isfinite(a_min) or w_max <= 0:
            return math.inf
        if kind == "pp":
            return m * a_min / 1000.0 + S / w_max
        # the cheapest all-reduce between two parts over the fastest, widest link
        return all_reduce_ms(2, m, S, a_min, w_max) / job.cross_site_every

    def pp_forced(
        self, job: Job, sites: tuple[int, ...], any_multi: bool = False
    ) -> tuple[float, float] | None:
        """(A, B): every placement of the job over (exactly) these sites with n units has
        T_pp >= A + B n in ms, when its PP chains must cross the WAN; else None.

        Why: a PP boundary between sites costs m_pp alpha_path + S_job / W_path (SPEC 4),
        S_job = pp_MB times the job's boundaries that lie between sites, and when DP groups
        may not cross sites (each unit holds a piece in every site: unit_in_every_site) and
        TP groups may not either, each of the tp chains of every unit visits every site,
        so at least n * tp * (k - 1) boundaries cross (k sites; for the catch-all option of
        wider sets, k >= 2). Each site s of the set is an end of some crossing boundary, at
        best over its fastest pair: T_pp >= m min_s' alpha(s, s') + S_job / max_s' W(s, s')
        (W_path, shared, is at most the path's bottleneck), and any one s gives a valid
        bound: the one largest at the most units the sites hold. One pp_MB over the fastest
        link (the bound without this) made the frontier run's pp-sites plan look worth
        15.4 M where the kernel gives any placement of it 14.4 M (issue 15)."""
        if job.kind != "training" or job.pp <= 1 or (len(sites) < 2 and not any_multi):
            return None
        crossing = self.crossing(job)
        if "pp" not in crossing or "dp" in crossing or (job.tp > 1 and "tp" in crossing):
            return None
        ix, c = self.ix, job.comm
        if any_multi:
            # the catch-all option: two sites or more, which ones unknown: the fastest pair
            # of all, one crossing per chain
            off = ~np.eye(ix.n_sites, dtype=bool) & np.isfinite(ix.wan_lat_us)
            w = float(ix.wan_bw_GBps[off].max(initial=0.0))
            if w <= 0:
                return None
            a = c.pp_messages * float(ix.wan_lat_us[off].min()) / 1000.0
            return a, c.pp_MB * job.tp / w
        per_unit = c.pp_MB * job.tp * (len(sites) - 1)
        best = None
        for s in sites:
            others = [x for x in sites if x != s and np.isfinite(ix.wan_lat_us[s, x])]
            w = max((float(ix.wan_bw_GBps[s, x]) for x in others), default=0.0)
            if w <= 0:
                continue
            a = c.pp_messages * min(float(ix.wan_lat_us[s, x]) for x in others) / 1000.0
            b = per_unit / w
            if best is None or a + b * job.units_max > best[0] + best[1] * job.units_max:
                best = (a, b)
        return best

    def goodput(
        self, job: Job, t: int, sites: tuple[int, ...], n_min: int, any_multi: bool = False
    ) -> float:
        """Upper bound on the goodput of any placement of the option with >= n_min units."""
        eff, lost0, a = self.goodput_parts(job, t, sites, n_min, any_multi)
        return eff * (1 - min(1.0, lost0 + a * n_min))

    def goodput_parts(
        self, job: Job, t: int, sites: tuple[int, ...], n_min: int, any_multi: bool = False
    ) -> tuple[float, float, float]:
        """(eff, lost0, a): efficiency <= eff and lost >= min(1, lost0 + a * units) for
        every placement of the option with at least n_min units (eff 0: impossible)."""
        return self.goodput_curve(job, t, sites, n_min, any_multi)[:3]

    def goodput_curve(
        self, job: Job, t: int, sites: tuple[int, ...], n_min: int, any_multi: bool = False
    ) -> tuple[float, float, float, float]:
        """(eff, lost0, a, q): :meth:`goodput_parts`, and q >= 0 such that the efficiency
        of every placement of the option with n >= n_min units is at most
        eff / (1 + q (n - n_min)): the part of the step that grows with the units
        (:meth:`pp_forced`'s B n, over the step's fewest ms at n_min)."""
        ix = self.ix
        c = job.comm
        speed = float(ix.type_speed[t])
        k = len(sites)
        T = {}
        dims = [("tp", job.tp, _ring), ("pp", job.pp, None)]
        if job.kind == "training":
            dims.append(("ep", job.ep if job.ep > 1 else 1, _rs))
        for dim, n, fn in dims:
            m, S = getattr(c, f"{dim}_messages"), getattr(c, f"{dim}_MB")
            if n <= 1:
                T[dim] = 0.0
                continue
            best = math.inf
            for s in sites:
                if dim == "pp":
                    for lvl in self._levels(job, "pp", s):
                        if self.cap[s, t, lvl] >= job.pp * 1:
                            best = min(
                                best, m * ix.lat_us[s, lvl] / 1000.0 + S / ix.bw_GBps[s, lvl]
                            )
                else:
                    best = min(best, self._best(job, dim, s, t, n, fn, m, S))
            if self._may_cross(job, dim):
                best = min(best, self._cross_lb(job, dim, m, S, "pp" if dim == "pp" else "ar"))
            T[dim] = best
        forced = self.pp_forced(job, sites, any_multi)
        if forced is not None:
            # the chains must cross: the slowest boundary is at least a crossing one
            T["pp"] = forced[0] + forced[1] * n_min
        crossing = self.crossing(job)
        if job.kind == "training":
            m, S = c.dp_messages, c.dp_MB
            n = n_min
            # a unit whose TP groups or PP chains may cross sites has its stages' DP groups
            # in several sites: their room is that of all the option's sites
            pool = sites if k > 1 and crossing & {"tp", "pp"} else None
            # the whole DP group inside one site
            in_site = min(self._best(job, "dp", s, t, n, _ring, m, S, pool) for s in sites)
            if k == 1 and not any_multi:
                T["dp"] = in_site
            else:
                cross = math.inf
                if "dp" in crossing:
                    # whole units in every site: each DP group spans all k sites, and all
                    # unit_size groups cross; units split between sites (pool): as few as
                    # one group may cross, between two sites only
                    kk = 2 if pool else max(k, 2)
                    part = math.inf
                    share = -(-n // max(k, 2))
                    for s in sites:
                        part = min(part, self._best(job, "dp", s, t, share, _rs, m, S, pool))
                    if any_multi or pool:
                        off = ~np.eye(ix.n_sites, dtype=bool)
                        alpha = float(ix.wan_lat_us[off].min())
                        W = float(ix.wan_bw_GBps[off].max())
                    else:
                        alpha, W, _ = set_wan(ix, sites)
                    if np.isfinite(alpha) and W > 0:
                        wan = all_reduce_ms(kk, m, S * (1 if pool else job.unit_size), alpha, W)
                        cross = 2 * part + wan / job.cross_site_every
                # a job over several sites whose TP groups, PP chains or EP groups may cross
                # the WAN may keep every DP group inside one site
                T["dp"] = cross if crossing == {"dp"} else min(cross, in_site)
        q = 0.0
        if job.compute_ms is None:
            eff = 1.0 if all(np.isfinite(v) for v in T.values()) else 0.0
        else:
            comp = job.compute_ms / speed
            comm = sum((1 - getattr(job.overlap, d)) * v for d, v in T.items())
            # SPEC v3: the 1F1B bubble stretches the compute part of the step
            step = comp * bubble(job) + comm
            eff = comp / step if np.isfinite(comm) else 0.0
            if forced is not None and eff > 0:
                q = (1 - job.overlap.pp) * forced[1] / step
        if job.kind == "inference":
            return eff, 0.0, 0.0, q
        # interruptions: at least units * tp*pp / (largest node) nodes, and the WAN links
        # that every DP group of a multi-site option must cross
        gpn = max(int(self.gpn[s, t]) for s in sites) or 1
        hours_lost = (job.restart_min + job.checkpoint_interval_min / 2) / 60.0 / 24.0
        per_unit = min(float(ix.node_fail_per_day[s]) for s in sites) * job.unit_size / gpn
        link_fail = 0.0
        if k > 1 and not any_multi:
            link_fail = span_fail(ix, sites, crossing)
        return eff, link_fail * hours_lost, per_unit * hours_lost, q


def crossing_dims(inst: Instance, ix, job: Job) -> set[str]:
    """The dimensions whose groups (of two or more members) may cross sites: scope
    `cluster` (or none) and a latency bound some WAN path meets. A job spans sites only
    through such groups."""
    out = set()
    sizes = {"tp": job.tp, "pp": job.pp}
    if job.kind == "training":
        sizes.update(dp=job.units_max, ep=job.ep)
    for d, k in sizes.items():
        if k > 1 and dimension_level(inst, ix, job, d) is None:
            out.add(d)
    return out


def split_piece(inst: Instance, ix, job: Job) -> int:
    """GPUs of the smallest part of a unit one site can hold when the job's TP groups or PP
    chains may cross sites (0 when they may not: units lie whole in one site). A TP group
    that may not cross lies whole in a site, so a site's part is a multiple of tp; else any
    count (1: looser, still a bound)."""
    if job.kind != "training":
        return 0
    crossing = crossing_dims(inst, ix, job)
    if not crossing & {"tp", "pp"}:
        return 0
    return 1 if "tp" in crossing else job.tp


def unit_in_every_site(inst: Instance, ix, job: Job) -> bool:
    """True when every unit of a placement of the job has GPUs in every site the job uses:
    a training job whose DP groups may not cross sites (SPEC 1.2: the DP group of (t, p)
    holds rank (t, p) of every unit, so the site holding it holds part of every unit). With
    `mix_types` each unit is of one type (rule 2), so a job over several sites then uses
    only types that every one of them has, and each site holds at least one piece of each
    unit: rows the split options may add without losing a placement."""
    if job.kind != "training":
        return False
    return "dp" not in crossing_dims(inst, ix, job)


def span_fail(ix, sites, crossing: set[str]) -> float:
    """Fewest WAN-link failures per day of a job over all these sites. When only DP groups
    may cross, each joins every site (one member per unit): the links of every pair's path.
    Otherwise the crossing groups need only connect the sites: the cheapest tree of paths
    (two sites: their path; three: the best two of the three paths; more: none counted)."""
    sites = list(sites)
    if len(sites) < 2:
        return 0.0
    if crossing == {"dp"} or len(sites) == 2:
        return set_wan(ix, sites)[2]
    if len(sites) > 3:
        return 0.0
    best = math.inf
    for skip in itertools.combinations(sites, 2):
        pairs = [p for p in itertools.combinations(sites, 2) if p != skip]
        links: set[int] = set()
        for a, b in pairs:
            links.update(ix.wan_path_links.get((a, b), ()))
        best = min(best, sum(float(ix.link_fail_per_day[x]) for x in links))
    return best


def set_wan(ix, sites) -> tuple[float, float, float]:
    """A set of sites' WAN: the largest path latency between two of them, the smallest
    bandwidth of a link on those paths (0 if none) and the summed failures per day of
    those links."""
    pairs = list(itertools.combinations(sites, 2))
    alpha = max((float(ix.wan_lat_us[a, b]) for a, b in pairs), default=0.0)
    links: set[int] = set()
    for a, b in pairs:
        links.update(ix.wan_path_links.get((a, b), ()))
    W = min((float(ix.link_bw_GBps[x]) for x in links), default=0.0)
    return alpha, W, sum(float(ix.link_fail_per_day[x]) for x in links)


def _distinct_runs(d: np.ndarray) -> int:
    """Distinct values of a sorted array (domain ids in tree order): no sort needed."""
    return int(len(d) and 1 + np.count_nonzero(d[1:] != d[:-1]))


def _domains_with_type(
    ix, level: int, s: int, t: int, free: np.ndarray, memo: dict | None = None
) -> int:
    """Domains of `level` in site s holding a free GPU of type t (`memo`: the build's
    cache, asked once per spread job and site, 6,000 times at 1M GPUs / 5,000 jobs)."""
    key = (level, s, t)
    if memo is not None and key in memo:
        return memo[key]
    a, b = ix.gpu_range(0, s)
    m = free[a:b] & (ix.gpu_type[a:b] == t)
    n = _distinct_runs(ix.dom[level][a:b][m])
    if memo is not None:
        memo[key] = n
    return n


def _domains_inside(ix, level: int, d: int, sub: int, t: int, free: np.ndarray) -> int:
    """Domains of level `sub` inside domain d of `level` that hold a free GPU of type t
    (counted as in :func:`_domains_with_type`, so a leased block removes exactly these)."""
    a, b = ix.gpu_range(level, d)
    m = (ix.gpu_type[a:b] == t) & free[a:b]
    return _distinct_runs(ix.dom[sub][a:b][m])


def _site_sets(ix, t_sites: list[int], max_k: int = 3) -> list[tuple[int, ...]]:
    out = []
    for k in range(2, min(max_k, len(t_sites)) + 1):
        for combo in itertools.combinations(t_sites, k):
            if all(np.isfinite(ix.wan_lat_us[a, b]) for a, b in itertools.combinations(combo, 2)):
                out.append(combo)
    return out


def block_groups(inst: Instance, free: np.ndarray) -> tuple[list[dict], dict[int, list[int]]]:
    """Groups of identical candidate blocks per offer level, and each offer's groups."""
    ix = inst.index
    groups: list[dict] = []
    key_of: dict[tuple, int] = {}
    per_offer: dict[int, list[int]] = {}
    committed = {}
    for o, offer in enumerate(inst.offers):
        for path in offer.committed_blocks or []:
            committed[ix.resolve(path)] = o
    for o, offer in enumerate(inst.offers):
        lvl = ix.level_index(inst.offer_level(offer))
        fg = ix.first_gpu[lvl]
        site_ok = None if offer.sites is None else {ix.site_index[s] for s in offer.sites}
        per_offer[o] = []
        T = len(ix.type_names)
        for d in range(ix.n_domains(lvl)):
            a, b = int(fg[d]), int(fg[d + 1])
            if b <= a:
                continue
            s = int(ix.dom[0][a])
            if site_ok is not None and s not in site_ok:
                continue
            types = ix.gpu_type[a:b]
            if (
                offer.gpu_types is not None
                and not np.isin([ix.type_names[x] for x in np.unique(types)], offer.gpu_types).all()
            ):
                continue
            fr = free[a:b]
            av = ix.available[a:b]
            if (av & ~fr).any():  # holds a pinned job's GPU
                continue
            per_type = tuple(np.bincount(types[av], minlength=T).tolist())
            if sum(per_type) == 0:
                continue
            c = committed.get((lvl, d))
            key = (lvl, s, per_type, c if c is not None else -1, d if c is not None else -1)
            g = key_of.get(key)
            if g is None:
                g = key_of[key] = len(groups)
                groups.append(
                    {
                        "level": lvl,
                        "site": s,
                        "per_type": per_type,
                        "members": [],
                        "committed_to": c,
                    }
                )
            # offers sharing a level see the same domains: each domain once per group
            if d not in groups[g].setdefault("_seen", set()):
                groups[g]["members"].append(d)
                groups[g]["_seen"].add(d)
            if g not in per_offer[o]:
                per_offer[o].append(g)
    return groups, per_offer


def _value_var(
    lm: LinModel,
    op: Option,
    tot: dict[int, float],
    K: float,
    eff: float,
    lost0: float,
    a: float,
    n_min: int,
    n_max: int,
    label: str,
    tangents: int = 24,
    q: float = 0.0,
) -> None:
    """Value of a training option: V <= K eff (1 - lost0 - a n) n / (1 + q (n - n_min)), as
    tangent lines of that function of the units n, concave on [n_min, n_max] (valid while
    lost0 + a n_max <= 1; q n_min <= 1, :meth:`Bounds.goodput_curve`), and V <= K g n."""
    step = op.step
    g_min = eff * (1 - min(1.0, lost0 + a * n_min))
    top = K * g_min * n_max
    # V is an integer count of r vu, r a power of ten about 1e-4 of the option's largest
    # value (at most 1 vu): V <= f(n)/r + b rounds f up by less than r when the option is
    # chosen and is 0 when it is not (a constant slack would credit every unchosen option
    # and make options worth less than the slack look alike)
    r = 10.0 ** min(0, max(-4, math.floor(math.log10(max(top, 1e-12))) - 4))
    V = lm.var(f"value[{label}]", 0, math.ceil(top / r) + 1)
    lm.maximize(V, r)
    lm.add({V: 1.0, **{v: -K * g_min * step / r for v in tot}, op.b: -1.0}, "<=", 0.0)
    if (a > 0 or q > 0) and lost0 + a * n_max <= 1 and n_max > n_min:
        k = tangents
        pts = sorted({int(round(n_min + (n_max - n_min) * i / (k - 1))) for i in range(k)})
        for nk in pts:
            # h(n) = K eff n g(n) / D(n), g = 1 - lost0 - a n, D = 1 + q (n - n_min)
            g, D = 1 - lost0 - a * nk, 1 + q * (nk - n_min)
            h = K * eff * nk * g / D
            slope = K * eff * ((g - a * nk) * D - nk * g * q) / (D * D)
            row = {V: 1.0, **{v: -slope * step / r for v in tot}}
            row[op.b] = -((h - slope * nk) / r + 1.0)
            lm.add(row, "<=", 0.0)


def _training_option(
    lm: LinModel,
    bounds: Bounds,
    inst: Instance,
    j: int,
    job: Job,
    t: int,
    kind: str,
    sites: tuple[int, ...],
    lo: int,
    hi: int,
    step: int,
    per_unit_value: float,
    cap_gpus: int | None,
    tangents: int = 24,
) -> Option | None:
    """One training option with units in [lo, hi] (multiples of step): binary, per-site
    unit variables, and its value variable."""
    ix = inst.index
    eff, lost0, a_unit, q = bounds.goodput_curve(job, t, sites, lo, any_multi=(kind == "any"))
    g = eff * (1 - min(1.0, lost0 + a_unit * lo))
    if g <= 0:
        return None
    lo_steps, hi_steps = -(-lo // step), hi // step
    if hi_steps < lo_steps:
        return None
    label = f"{job.name},{ix.type_names[t]},{kind}{sites},{lo}-{hi}"
    piece = split_piece(inst, ix, job) if kind != "site" else 0
    op = Option(j, "split" if piece else kind, t, sites, g, step=step)
    op.b = lm.var(f"b[{label}]", 0, 1)
    tot = {}
    if piece:
        # a unit may lie in several sites: each site holds pieces of `piece` GPUs, which
        # together make whole units (capacity counted per site, the unit count integral)
        u = lm.var(f"u[{label}]", 0, hi_steps)
        op.piece = piece
        row = {u: -float(job.unit_size * step // piece)}
        for s in sites:
            ub = int(bounds.avail[s, t]) // piece
            v = lm.var(f"p[{label},{s}]", 0, ub)
            op.pieces[s] = v
            row[v] = 1.0
            if kind == "multi":
                lm.add({v: 1.0, op.b: -1.0}, ">=", 0)  # every site holds part of the job
            lm.add({v: 1.0, op.b: -float(ub)}, "<=", 0)
        lm.add(row, "==", 0)
        if kind == "multi" and unit_in_every_site(inst, ix, job):
            for v in op.pieces.values():  # each unit has a piece in every site of the set
                lm.add({v: 1.0, u: -float(step)}, ">=", 0)
        tot = {u: 1.0}
        lm.add({u: 1.0, op.b: -float(hi_steps)}, "<=", 0)
        lm.add({u: 1.0, op.b: -float(lo_steps)}, ">=", 0)
        _value_var(
            lm, op, tot, per_unit_value, eff, lost0, a_unit, lo, hi_steps * step, label, tangents, q
        )
        return op
    for s in sites:
        ub = min(int(bounds.avail[s, t]) // (job.unit_size * step), hi_steps)
        if cap_gpus is not None:
            ub = min(ub, cap_gpus // (job.unit_size * step))
        v = lm.var(f"n[{label},{s}]", 0, ub)
        op.n[s] = v
        tot[v] = 1.0
        if kind == "multi":
            lm.add({v: 1.0, op.b: -1.0}, ">=", 0)  # every site holds units
        lm.add({v: 1.0, op.b: -float(ub)}, "<=", 0)
    lm.add({**tot, op.b: -float(hi_steps)}, "<=", 0)
    lm.add({**tot, op.b: -float(lo_steps)}, ">=", 0)
    _value_var(
        lm, op, tot, per_unit_value, eff, lost0, a_unit, lo, hi_steps * step, label, tangents, q
    )
    return op


def _add_node_rows(
    lm: LinModel,
    ix,
    free: np.ndarray,
    big_tp: list,
    stays: list[tuple[int, np.ndarray]] = (),
    lease_vars: dict[tuple[int, int], int] | None = None,
    groups: list[dict] | None = None,
) -> None:
    """Whole-node capacity: a TP group of tau > gpus_per_node / 2 GPUs that must stay in one
    node needs a node of its own with >= tau free GPUs (two cannot share a node). So, per site,
    type and threshold tau, the TP groups of such jobs with tp >= tau are at most the nodes
    with >= tau free GPUs: fragments left by pinned jobs and unavailable GPUs count for
    nothing (plain GPU counts would promise them). Two other users take such nodes and are
    charged for the fewest they can take, so the row stays a valid bound:

    - a running job that stays (option var b) holds its `current` GPUs: every node it leaves
      with fewer than tau free GPUs (this also counts its own TP groups);
    - a leased block holds whole domains: each block of a lease group takes at least the
      fewest such nodes any member of the group has.
    """
    if not big_tp:
        return
    node_free = np.bincount(ix.gpu_node[free], minlength=len(ix.node_gpus))
    node_site = ix.dom[0][ix.first_gpu[-1][:-1]]
    by_st: dict[tuple[int, int], list] = {}
    for s, t, tp, v, k in big_tp:
        by_st.setdefault((s, t), []).append((tp, v, k))
    stay_counts = [(b, np.bincount(ix.gpu_node[g], minlength=len(ix.node_gpus))) for b, g in stays]
    for (s, t), items in by_st.items():
        nodes = (node_site == s) & (ix.node_type == t)
        gpn = int(ix.node_gpus[nodes].max(initial=0))
        for tau in sorted({tp for tp, _, _ in items}):
            if 2 * tau <= gpn:
                continue
            row: dict[int, float] = {}
            for tp, v, k in items:
                if tp >= tau:
                    row[v] = row.get(v, 0.0) + k
            usable = nodes & (node_free >= tau)
            for b, cnt in stay_counts:
                lost = int((usable & (node_free - cnt < tau)).sum())
                if lost:
                    row[b] = row.get(b, 0.0) + lost
            for (_, gi), y in (lease_vars or {}).items():
                grp = groups[gi]
                if grp["site"] != s:
                    continue
                lvl = grp["level"]
                dom_of_node = ix.dom[lvl][ix.first_gpu[-1][:-1]]
                per_block = np.bincount(dom_of_node[usable], minlength=ix.n_domains(lvl))
                least = int(per_block[grp["members"]].min()) if grp["members"] else 0
                if least:
                    row[y] = row.get(y, 0.0) + least
            lm.add(row, "<=", float(usable.sum()), f"nodes[{s},{t},{tau}]")


@dataclass
class _Ctx:
    """What the steps of :func:`build` share while they add variables and rows."""

    inst: Instance
    ix: object
    lm: LinModel
    free: np.ndarray
    bounds: Bounds
    pinned: list[int]
    tangents: int
    huge: bool
    gpu_power: np.ndarray
    bw_max: np.ndarray
    constant: float = 0.0
    options: list[Option] = field(default_factory=list)
    # (site, type) -> var -> GPUs per unit of var
    use: dict[tuple[int, int], dict[int, float]] = field(default_factory=dict)
    power_rows: dict[int, dict[int, float]] = field(default_factory=dict)
    # (z var, site, type, spread level, domains[, k jobs of a class])
    spread_rows: list[tuple] = field(default_factory=list)
    # (site, type, tp, var, TP groups per unit of var) of jobs whose TP groups stay in a node
    big_tp: list[tuple[int, int, int, int, float]] = field(default_factory=list)
    stays: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (stay var, current)
    groups: list[dict] = field(default_factory=list)
    per_offer: dict[int, list[int]] = field(default_factory=dict)
    offer_vars: dict[int, int] = field(default_factory=dict)
    lease_vars: dict[tuple[int, int], int] = field(default_factory=dict)
    group_users: dict[int, dict[int, float]] = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # counts over `free`, fixed while building


# exact aggregation of identical jobs (job arrays, sweeps, fleets): one set of options per
# class, scaled by its size (:func:`job_classes`, :func:`_scale_class`); off: one per job
AGGREGATE = True


def job_classes(inst: Instance) -> list[tuple[int, ...]]:
    """Classes of two or more jobs equal in every field but their name (the pydantic models
    compared whole: shape, scopes, message sizes, value, hours, GPU types, spread, ...),
    each sorted by name; the model builds one set of options per class.

    A job joins no class when it runs (`current`: its "stay" option and migration cost are
    its own), is pinned, must be placed (its "placed" row has rhs 1 per job), mixes GPU
    types (its loss brackets bound each job's units, which a class's sums do not keep),
    or has plans (SPEC v3: its options are shared with its variants' in one group row).
    Everything else is exact: every row the options of one job add holds only that job's
    variables, so summed over a class it is the class's row with its rhs times k, and the
    shared rows (capacity, power, nodes, spread less leases) are linear in them."""
    by_key: dict[str, list[int]] = {}
    for j, job in enumerate(inst.jobs):
        if (
            job.current
            or job.pinned
            or job.mix_types
            or job.plans
            or job.plan is not None
            or len(siblings(inst, j)) > 1
            or must_place(inst, j)
            or smallest_units(job) == 0
        ):
            continue
        by_key.setdefault(job.model_dump_json(exclude={"name"}), []).append(j)
    out = [
        tuple(sorted(js, key=lambda j: inst.jobs[j].name)) for js in by_key.values() if len(js) > 1
    ]
    return sorted(out)


def _scale_class(
    c: _Ctx, members: tuple[int, ...], v0: int, r0: int, z0: int, opts: list[Option]
) -> None:
    """The options just built for a class's first job (variables from v0, rows from r0,
    spread rows from z0) made the class's: each variable holds the sum over the k members
    (its upper bound times k; the binary counts the members that take the option, 0..k),
    each row the sum of the members' rows (rhs times k; the options' rows are homogeneous
    but for that). Any placement of the k jobs maps to a point of these by summing, with the
    same objective, so the model stays a relaxation and its bound a bound; the value rows
    (tangents of a concave function of the units, through the binary) then credit a class
    at most k times the value of its mean units (Jensen), what an even split realises."""
    k = len(members)
    lm = c.lm
    for v in range(v0, lm.n_vars):
        lm.ub[v] = lm.ub[v] * k
    for i in range(r0, len(lm.rows)):
        coeffs, sense, rhs, name = lm.rows[i]
        if min(coeffs) < v0:  # a row with another job's or a shared variable: not summable
            raise AssertionError(f"row {name!r} of class {members} holds outside variables")
        if rhs:
            lm.rows[i] = (coeffs, sense, rhs * k, name)
    c.spread_rows[z0:] = [(*row[:5], k) for row in c.spread_rows[z0:]]
    for op in opts:
        op.members = members


def _shares(per_site: dict[int, int], c: int, every_site: bool) -> list[dict[int, int]]:
    """Units (in steps) per site of c members sharing an aggregated option's `per_site`
    totals: totals as even as the step allows (each within the option's range when the
    sums are), one unit in every site first when each member must have one there
    (`every_site`) and the totals allow it, then the sites filled in turn."""
    total = int(sum(per_site.values()))
    base, extra = divmod(total, c)
    need = [base + (1 if i < extra else 0) for i in range(c)]
    out: list[dict[int, int]] = [{} for _ in range(c)]
    left = {s: int(n) for s, n in sorted(per_site.items())}
    if every_site and left and all(n >= c for n in left.values()) and min(need) >= len(left):
        for i in range(c):
            for s in left:
                out[i][s] = 1
            need[i] -= len(left)
        left = {s: n - c for s, n in left.items()}
    sites = [s for s in left if left[s] > 0]
    si = 0
    for i in range(c):
        while need[i] > 0 and si < len(sites):
            s = sites[si]
            take = min(need[i], left[s])
            out[i][s] = out[i].get(s, 0) + take
            left[s] -= take
            need[i] -= take
            if left[s] == 0:
                si += 1
    return out


def expand(inst: Instance, co: Coarse, vals: list[float]) -> tuple[list[Option], list[float]]:
    """The options of a plan `vals` per job: an aggregated option taken by c members of its
    class becomes one option for each of the first c members by name not yet given one (in
    the order of the options' binaries), with its units per site shared out
    (:func:`_shares`), as new variables appended to a copy of `vals`. Options of single
    jobs are kept as they are; a model without classes returns its own."""
    if not co.classes:
        return co.options, vals
    out: list[Option] = []
    ext = list(vals)
    given = {rep: 0 for rep in co.classes}

    def new(x: float) -> int:
        ext.append(float(x))
        return len(ext) - 1

    for op in co.options:
        if not op.members:
            out.append(op)
            continue
        rep = op.members[0]
        i0 = given[rep]
        c = max(0, min(int(round(vals[op.b])), len(op.members) - i0))
        if c == 0:
            continue
        given[rep] = i0 + c
        per_site = op.site_units(vals, inst.jobs[op.job].unit_size)
        for m, share in zip(op.members[i0 : i0 + c], _shares(per_site, c, op.kind == "multi")):
            one = Option(m, op.kind, op.type, op.sites, op.goodput, step=op.step)
            one.b = new(1.0)
            one.n = {s: new(share.get(s, 0)) for s in sorted(per_site)}
            out.append(one)
    return out, ext


def build(
    inst: Instance, deadline: float | None = None, classes: list[tuple[int, ...]] | None = None
) -> Coarse | None:
    """The coarse model of an instance, step by step (module overview). None when its
    options would not be built by `deadline` (time.perf_counter): past it, or, from the
    1,024th job on, when its pace since the 128th job (the first jobs fill the memos: at 1M
    GPUs the first 64 take 0.4 s, then a job takes 0.5-0.9 ms), times 1.2 for the jobs
    left, ends past it. A build that slow leaves no time for its solve and packing, and the
    caller gives the time to the greedy instead: stopped at a fifth of its jobs, it has spent
    a quarter of its time, not all of it. (From the 512th job, a burst of other work on the
    machine made a 4-5 s build look like 8 s in one run of five.)"""
    ix = inst.index
    free = ix.available.copy()
    pinned = [j for j, job in enumerate(inst.jobs) if job.pinned and job.current]
    for j in pinned:
        free[ix.cached_indices(inst.jobs[j].current)] = False
    c = _Ctx(
        inst=inst,
        ix=ix,
        lm=LinModel(),
        free=free,
        bounds=Bounds(inst, free),
        pinned=pinned,
        # tangent lines bound the interruption losses tightly; thousands of jobs get fewer
        # so that the model stays small enough to solve (the bound stays valid, a bit looser)
        tangents=24 if len(inst.jobs) <= 500 else 6,
        huge=len(inst.jobs) > 500,
        gpu_power=np.nan_to_num(ix.type_power_kW, nan=0.0),
        bw_max=ix.link_bw_GBps.copy(),
    )
    c.power_rows = {s: {} for s in range(ix.n_sites)}
    group_opts: dict[int, list[Option]] = {}  # SPEC v3: the options of all of a job's plans
    if classes is None:
        classes = job_classes(inst) if AGGREGATE else []
    class_of = {m[0]: m for m in classes}
    merged = {j for m in classes for j in m[1:]}
    n_jobs = len(inst.jobs)
    warm = None  # (jobs, time) when the memos are warm: the pace is measured from there
    for j, job in enumerate(inst.jobs):
        if deadline is not None and j % 64 == 0:
            now = time.perf_counter()
            if j == 128:
                warm = (j, now)
            if now > deadline:
                return None
            if warm is not None and j >= 1024:
                pace = (now - warm[1]) / (j - warm[0])
                if now + 1.2 * pace * (n_jobs - j) > deadline:
                    return None
        if j in pinned:
            _add_pinned(c, job)
            continue
        if smallest_units(job) == 0 or j in merged:
            continue
        job_opts: list[Option] = []
        v0, r0, z0 = c.lm.n_vars, len(c.lm.rows), len(c.spread_rows)
        for t in allowed_types(inst, ix, job):
            if job.kind == "inference":
                _add_inference_option(c, j, job, t, job_opts)
            else:
                _add_training_options(c, j, job, t, job_opts)
        if job.mix_types:
            _add_mixed_option(c, j, job, job_opts)
        if j in class_of:
            _scale_class(c, class_of[j], v0, r0, z0, job_opts)
        _add_stay_option(c, j, job, job_opts)
        _add_job_rows(c, job, job_opts)
        group_opts.setdefault(siblings(inst, j)[0], []).extend(job_opts)
    for j, opts in group_opts.items():
        _add_group_rows(c, j, opts, len(class_of.get(j, (j,))))
    _add_leases(c)
    _add_spread_rows(c)
    _add_lease_group_rows(c)
    for (s, t), row in c.use.items():
        c.lm.add(row, "<=", float(c.bounds.avail[s, t]), f"cap[{s},{t}]")
    _add_node_rows(c.lm, ix, free, c.big_tp, c.stays, c.lease_vars, c.groups)
    _add_power_rows(c)
    c.lm.obj_const = c.constant
    return Coarse(c.lm, c.options, c.offer_vars, c.lease_vars, c.groups, c.constant, dict(class_of))


def _add_pinned(c: _Ctx, job: Job) -> None:
    """A pinned job keeps `current`: its exact value is a constant of the model."""
    g = c.ix.cached_indices(job.current)
    ana = analyse_job(c.ix, job, as_batch(g, job))
    sc = evaluate_job(c.inst, c.ix, job, g[None, :], ana, c.bw_max)
    c.constant += float(sc.value[0])


def _add_inference_option(c: _Ctx, j: int, job: Job, t: int, job_opts: list[Option]) -> None:
    """Inference on type t: units per site, freely; spread counted per site."""
    ix, lm, bounds, inst = c.ix, c.lm, c.bounds, c.inst
    per_unit_value = job_hours(inst, job) * job.value * float(ix.type_speed[t]) * job.unit_size
    t_sites = [s for s in range(ix.n_sites) if bounds.avail[s, t] >= job.unit_size]
    gps = {s: bounds.goodput(job, t, (s,), 1) for s in t_sites}
    t_sites = [s for s in t_sites if gps[s] > 0]
    if not t_sites:
        return
    op = Option(j, "inference", t, tuple(t_sites), max(gps.values()), step=1)
    op.b = lm.var(f"b[{job.name},{ix.type_names[t]}]", 0, 1)
    tot = {}
    for s in t_sites:
        cap_units = bounds.avail[s, t] // job.unit_size
        v = lm.var(
            f"n[{job.name},{ix.type_names[t]},{ix.site_names[s]}]",
            0,
            min(cap_units, job.units_max),
        )
        op.n[s] = v
        tot[v] = 1.0
        lm.maximize(v, per_unit_value * gps[s])
        lm.add({v: 1.0, op.b: -float(min(cap_units, job.units_max))}, "<=", 0)
    lm.add({**tot, op.b: -float(job.units_max)}, "<=", 0)
    lm.add({**tot, op.b: -float(max(job.units_min, 1))}, ">=", 0)
    if job.spread is not None:
        # units touch at most one spread-level domain each, and at most the domains of
        # that level that hold type t and are not leased out
        sl = ix.level_index(job.spread.level)
        zs = {}
        for s in t_sites:
            n_dom = _domains_with_type(ix, sl, s, t, c.free, c.memo)
            z = lm.var(f"z[{job.name},{ix.site_names[s]}]", 0, n_dom)
            lm.add({z: 1.0, op.n[s]: -1.0}, "<=", 0)
            c.spread_rows.append((z, s, t, sl, n_dom))
            zs[z] = 1.0
        lm.add({**zs, op.b: -float(job.spread.min)}, ">=", 0)
    job_opts.append(op)


def _add_training_options(c: _Ctx, j: int, job: Job, t: int, job_opts: list[Option]) -> None:
    """Training on type t: one site, or sets of WAN-connected sites when DP may span them;
    unit ranges cut into brackets where the fastest meeting level changes."""
    ix, inst, bounds = c.ix, c.inst, c.bounds
    S = ix.n_sites
    step = job.unit_step
    n_min = smallest_units(job)
    per_unit_value = job_hours(inst, job) * job.value * float(ix.type_speed[t]) * job.unit_size
    t_sites = [s for s in range(S) if bounds.avail[s, t] >= job.unit_size]
    configs: list[tuple[str, tuple[int, ...]]] = [("site", (s,)) for s in t_sites]
    may_span = bool(bounds.crossing(job)) and S > 1
    piece = split_piece(inst, ix, job)
    if piece:
        # units may lie in several sites: a site with room for a piece can take part
        t_sites = [s for s in range(S) if bounds.avail[s, t] >= piece]
    if may_span and len(t_sites) > 1:
        if c.huge:
            # thousands of jobs: one catch-all multi-site option (the loosest coefficient of
            # any set of >= 2 sites) keeps the model small and valid
            configs.append(("any", tuple(t_sites)))
        else:
            configs += [("multi", ss) for ss in _site_sets(ix, t_sites, 3 if S > 4 else 4)]
            if S > 4:
                configs.append(("any", tuple(t_sites)))
    for kind, sites in configs:
        cap_gpus = None
        if kind == "site":
            s = sites[0]
            # the whole job lies in one domain of its widest group scope
            lvls = [bounds.dim_level(job, d) for d in ("tp", "pp", "dp", "ep")]
            lvl = 0 if None in lvls else min(lvls)
            cap_gpus = int(bounds.cap[s, t, lvl])
            if min(cap_gpus // job.unit_size, job.units_max) < n_min:
                continue
            brackets = bounds.brackets(job, s, t, n_min, job.units_max, step)
        elif kind == "multi" and sum(bounds.avail[s, t] for s in sites) < n_min * job.unit_size:
            continue
        else:
            brackets = [(n_min, job.units_max)]
        for lo, hi in brackets:
            op = _training_option(
                c.lm,
                bounds,
                inst,
                j,
                job,
                t,
                kind,
                sites,
                lo,
                hi,
                step,
                per_unit_value,
                cap_gpus,
                c.tangents,
            )
            if op is not None:
                job_opts.append(op)


def _add_mixed_option(c: _Ctx, j: int, job: Job, job_opts: list[Option]) -> None:
    """SPEC v2 `mix_types`: units over several allowed types, in one site or a set of
    WAN-connected sites (every site of a set holds units; inference: one set of all sites).
    One option per site set and interruption bracket, each optimistic so that the bound
    stays valid for any mix:

    - value: at most ``hours * value * (1 - lo) * f(G, W)`` for the option's GPUs G and
      summed speeds W (:func:`_mixed_value`, tangent planes of a concave f);
    - communication: :func:`_mixed_comm`, a lower bound for the set and the bracket's
      fewest units;
    - lost: linear in the units. A unit of type t in site s takes at least
      ``tp*pp / (largest node of t in s)`` nodes, each failing at the site's rate, and a set
      of sites adds its WAN links' failures. ``L(n) = sum a_st n_st`` is cut into brackets
      [lo, hi) whose ``(1 - lo) / (1 - hi)`` is at most `_MIXED_RATIO`; each bracket's
      option holds ``lo <= L(n) < hi`` (linear rows) and is valued at ``1 - lo``.

    docs/solver.md ("SPEC v2") has the argument in full."""
    ix, bounds, inst = c.ix, c.bounds, c.inst
    types = allowed_types(inst, ix, job)
    if len(types) < 2:
        return
    step = job.unit_step
    n_min = max(smallest_units(job), 1)
    # units split between sites (TP or PP across the WAN): a cell may hold part of a unit
    piece = split_piece(inst, ix, job)
    room = piece or job.unit_size
    keys = [(s, t) for s in range(ix.n_sites) for t in types if bounds.avail[s, t] >= room]
    if len({t for _, t in keys}) < 2:
        return
    sites_all = sorted({s for s, _ in keys})
    may_span = job.kind == "training" and bool(crossing_dims(inst, ix, job))
    # inference replicas share no collective: one option over every site, units anywhere
    site_sets = [tuple(sites_all)] if job.kind == "inference" else [(s,) for s in sites_all]
    if may_span and len(sites_all) > 1:
        site_sets += _site_sets(ix, sites_all, 3 if ix.n_sites > 4 else 4)
    hours = job_hours(inst, job)
    per_event = (job.restart_min + job.checkpoint_interval_min / 2.0) / 60.0 / 24.0
    ratio = _MIXED_RATIO_HUGE if c.huge else _MIXED_RATIO
    if not c.huge:
        n_mixed = c.memo.get("mixed jobs")
        if n_mixed is None:
            n_mixed = c.memo["mixed jobs"] = sum(1 for jb in inst.jobs if jb.mix_types)
        if n_mixed > _MIXED_FEW:
            ratio = _MIXED_RATIO_MANY
    whole = unit_in_every_site(inst, ix, job)
    for sites in site_sets:
        sk = [(s, t) for s, t in keys if s in sites]
        if whole and len(sites) > 1:
            # every unit has GPUs in every site of the set, and a unit is of one type
            common = set.intersection(*({t for ss, t in sk if ss == s} for s in sites))
            sk = [(s, t) for s, t in sk if t in common]
        if len({t for _, t in sk}) < 2:
            continue  # one type only: the single-type options cover it
        if piece:
            cap_units = sum(int(bounds.avail[s, t]) for s, t in sk) // (job.unit_size * step)
        else:
            cap_units = sum(int(bounds.avail[s, t]) // (job.unit_size * step) for s, t in sk)
        if cap_units * step < n_min:
            continue
        set_types = sorted({t for _, t in sk})
        if job.kind == "training":
            a_st = {
                (s, t): float(ix.node_fail_per_day[s])
                * (job.unit_size / max(int(bounds.gpn[s, t]), 1))
                * per_event
                * step
                for s, t in sk
            }
            lost0 = span_fail(ix, sites, crossing_dims(inst, ix, job)) * per_event
            lo_l = lost0 + min(a_st.values()) * -(-n_min // step)
            hi_l = lost0 + max(a_st.values()) * (job.units_max // step)
            edges = _lost_brackets(lo_l, min(hi_l, 1.0), ratio)
        else:
            a_st, lost0, edges = {}, 0.0, [(0.0, None)]
        for lo, hi in edges:
            # the fewest units with a loss of at least lo: its DP groups are at least that big
            n_lo = n_min
            if a_st and lo > lost0:
                n_lo = max(n_min, math.ceil((lo - lost0) / max(a_st.values()) - 1e-9) * step)
            spans = job.kind == "training" and len(sites) > 1
            fixed = dict(
                step=step,
                n_min=n_min,
                a_st=a_st,
                lost0=lost0,
                hours=hours,
                spans=spans,
                set_types=set_types,
                piece=piece if len(sites) > 1 else 0,
                whole=whole and len(sites) > 1,
            )
            for variant in _part_variants(c, job, sites, sk, n_lo):
                _mixed_one(c, j, job, job_opts, sites, sk, (lo, hi), variant, fixed)


def _part_variants(c: _Ctx, job: Job, sites: tuple[int, ...], sk, n_lo: int) -> list:
    """(tau, comm, most members per site) for the options of one site set and bracket.

    A training job whose groups other than DP stay in a site has each unit in one site, so
    a site's DP part has one member per unit there, and the slowest part is at least
    ``max_s h_s(n_s)`` with h_s the step function of :func:`_part_steps`. One option per
    value tau of that maximum: its units per site within what keeps ``h_s <= tau``, its
    communication with the slowest part at least tau. Every placement is in the option of
    its own tau, so the bound stays valid, and a plan that puts many units in one site pays
    for the level their DP parts must meet at (one group fitting a hall is not enough when
    all of them must). Options whose communication is that of a larger tau are dropped (the
    larger one allows more). Else: one option, no per-site limit."""
    training = job.kind == "training"
    base = _mixed_comm(c, job, sites, sk, n_lo, training)
    if not (training and n_lo > 1 and crossing_dims(c.inst, c.ix, job) <= {"dp"}):
        return [(0.0, base, {})]
    steps = {}
    for s in sites:
        types = tuple(sorted(t for ss, t in sk if ss == s))
        steps[s] = _part_steps(c, job, s, types)
    taus = sorted({v for st in steps.values() for _, v in st})
    out: dict[float, tuple[float, float, dict]] = {}
    for tau in taus:
        comm = _mixed_comm(c, job, sites, sk, n_lo, training, part_lb=tau)
        if not np.isfinite(comm):
            continue
        most = {s: max(u for u, v in st if v <= tau) for s, st in steps.items()}
        key = round(comm, 9)
        if key not in out or out[key][0] < tau:
            out[key] = (tau, comm, most)
    return sorted(out.values(), key=lambda x: x[0])


def _mixed_one(
    c: _Ctx,
    j: int,
    job: Job,
    job_opts: list[Option],
    sites: tuple[int, ...],
    sk,
    bracket: tuple[float, float | None],
    variant: tuple[float, float, dict],
    fixed: dict,
) -> None:
    """One mixed option of :func:`_add_mixed_option`: a site set, an interruption bracket
    (lo, hi), a (tau, comm, most units per site) of :func:`_part_variants`, and the figures
    the set's options share (`fixed`: step, n_min, a_st, lost0, hours, spans, set_types)."""
    ix, lm, bounds = c.ix, c.lm, c.bounds
    lo, hi = bracket
    tau, comm, most = variant
    step, n_min, a_st = fixed["step"], fixed["n_min"], fixed["a_st"]
    lost0, spans, set_types = fixed["lost0"], fixed["spans"], fixed["set_types"]
    if not np.isfinite(comm) or lo >= 1.0:
        return
    s_min = float(min(ix.type_speed[t] for t in set_types))
    s_max = float(max(ix.type_speed[t] for t in set_types))
    eff = 1.0
    if job.compute_ms is not None:
        c_max = job.compute_ms / s_min
        eff = c_max / (c_max * bubble(job) + comm)
    g = eff * (1.0 - lo)  # at the slowest type's compute time: the largest
    label = f"{job.name},mixed,{'+'.join(ix.site_names[s] for s in sites)},{lo:.4f}"
    if most:
        label += f",dp{tau:.4g}"
    op = Option(j, "mixed", -1, tuple(sites), g, step=step)
    op.b = lm.var(f"b[{label}]", 0, 1)
    # a part counts units (in steps), or with units split between sites pieces of
    # `piece` GPUs (a fraction `frac` of a unit step each; unit counts then hold in GPUs)
    op.piece = fixed.get("piece", 0)
    frac = op.piece / (job.unit_size * step) if op.piece else 1.0
    tot, lrow, per_site = {}, {}, {}
    for s, t in sk:
        if op.piece:
            ub = min(int(bounds.avail[s, t]) // op.piece, int(job.units_max // step / frac))
        else:
            ub = min(int(bounds.avail[s, t]) // (job.unit_size * step), job.units_max // step)
        if ub <= 0:
            continue
        v = lm.var(f"n[{label},{ix.site_names[s]},{ix.type_names[t]}]", 0, ub)
        op.parts[(s, t)] = v
        tot[v] = frac
        per_site.setdefault(s, {})[v] = 1.0
        if a_st:
            lrow[v] = a_st[(s, t)] * frac
        lm.add({v: 1.0, op.b: -float(ub)}, "<=", 0)
    if spans and len(per_site) < len(sites):
        return  # (the unused binary and variables stay at 0)
    for s, row in per_site.items():
        if s in most:  # units per site within what keeps its DP part's time <= tau
            lm.add({**{v: float(step) for v in row}, op.b: -float(most[s])}, "<=", 0)
    if op.piece:  # in pieces: integral coefficients (GPUs / piece)
        per_step = job.unit_size * step // op.piece
        ptot = {v: 1.0 for v in tot}
        lm.add({**ptot, op.b: -float(job.units_max // step * per_step)}, "<=", 0)
        lm.add({**ptot, op.b: -float(-(-n_min // step) * per_step)}, ">=", 0)
    else:
        lm.add({**tot, op.b: -float(job.units_max // step)}, "<=", 0)
        lm.add({**tot, op.b: -float(-(-n_min // step))}, ">=", 0)
    if spans:
        for row in per_site.values():  # every site of the set holds units
            lm.add({**row, op.b: -1.0}, ">=", 0)
    if op.piece and fixed.get("whole"):
        # each unit of type t has a piece in every site: a site's pieces of type t are at
        # least the type's units, (piece / unit_size) * (its pieces over all sites)
        per_unit = job.unit_size // op.piece
        for t in sorted({t for _, t in op.parts}):
            col = {v: -1.0 for (s, tt), v in op.parts.items() if tt == t}
            for s in sites:
                row = dict(col)
                if (s, t) in op.parts:
                    row[op.parts[(s, t)]] += float(per_unit)
                lm.add(row, ">=", 0)
    if lrow:
        # lo <= lost0 + sum a n < hi while the option is chosen
        lm.add({**lrow, op.b: lost0 - lo}, ">=", 0)
        if hi is not None:
            lm.add({**lrow, op.b: lost0 - hi}, "<=", 0)
    _mixed_value(lm, ix, job, op, fixed["hours"] * (1.0 - lo), comm, s_min, s_max, label)
    job_opts.append(op)


_MIXED_RATIO = 1.01  # (1 - lo) / (1 - hi) of an interruption bracket of a mixed option
# more than _MIXED_FEW mixed jobs (plan variants counted): brackets of 4%, a quarter as many
# options per job, so that the model stays the size it had before the 1% brackets
_MIXED_FEW = 50
_MIXED_RATIO_MANY = 1.04
_MIXED_RATIO_HUGE = 1.25  # thousands of jobs: fewer brackets, a looser (valid) bound


def _lost_brackets(lo: float, hi: float, ratio: float) -> list[tuple[float, float | None]]:
    """Brackets [a, b) of the interruption loss from `lo` up to `hi` (the last open above)
    with ``(1 - a) / (1 - b) <= ratio``, at most `_MAX_BRACKETS` of them (the ratio grows
    when the range is wide). The last starts at a loss of 0.99 at most: above that a job
    keeps under 1% of its value, which its open bracket still bounds."""
    a = max(0.0, lo)
    top = min(hi, _TOP_LOSS)
    if a >= 1.0:
        return []
    if top > a:
        ratio = max(ratio, ((1.0 - a) / (1.0 - top)) ** (1.0 / _MAX_BRACKETS))
    out: list[tuple[float, float | None]] = []
    while a < top - 1e-12:
        b = 1.0 - (1.0 - a) / ratio
        if b >= top:
            break
        out.append((a, b))
        a = b
    out.append((a, None))
    return out


_TOP_LOSS = 0.99
_MAX_BRACKETS = 60


def _mixed_value(
    lm: LinModel, ix, job: Job, op: Option, scale: float, comm: float, s_min, s_max, label
) -> None:
    """The value of a mixed option. With G its GPUs and W their summed speeds (both linear
    in its parts), the job's value is at most ``scale * value * f(G, W)`` with
    ``f = compute * G * W / (compute * G + comm * W)``: its speed is at most W / G (equal under
    ``balanced``), its compute time ``compute / speed`` and its efficiency at most
    ``c / (c + comm)``. f is concave and 1-homogeneous, so its tangent planes at mean speeds
    r between the slowest and fastest type are upper bounds through 0, exact at r: a value
    variable below each of them. Without `compute_ms` the efficiency is 1: ``W`` itself.
    With the 1F1B bubble beta (SPEC v3) the efficiency is ``c / (beta c + comm)``, so f is
    ``(1 / beta) f`` of the compute time ``beta * compute``."""
    us = op.piece or job.unit_size * op.step  # GPUs per unit of a part variable
    K = scale * job.value
    if job.compute_ms is None:
        for (_s, t), v in op.parts.items():
            lm.maximize(v, K * float(ix.type_speed[t]) * us)
        return
    beta = bubble(job)
    K /= beta
    a, b = job.compute_ms * beta, comm
    V = lm.var(
        f"value[{label}]",
        0,
        math.ceil(K * s_max * us * sum(lm.ub[v] for v in op.parts.values())) + 1,
    )
    op.value = V
    lm.maximize(V, 1.0)
    n_tan = 1 if s_max <= s_min * (1 + 1e-9) else _MIXED_TANGENTS
    for k in range(n_tan):
        r = s_min * (s_max / s_min) ** (k / max(n_tan - 1, 1))
        den = (a + b * r) ** 2
        dG, dW = a * b * r * r / den, a * a / den
        row = {v: -K * us * (dG + dW * float(ix.type_speed[t])) for (_s, t), v in op.parts.items()}
        lm.add({V: 1.0, **row}, "<=", 1.0)


_MIXED_TANGENTS = 6


def _mixed_comm(
    c: _Ctx, job: Job, sites: tuple[int, ...], sk, n: int, every_site: bool, part_lb: float = 0.0
) -> float:
    """Fewest exposed ms of communication per step of a mixed job with at least n units on
    these (site, type) cells (see :func:`_add_mixed_option`); inf if none fits.

    - A TP group or PP chain lies in one unit, so is of one type: in a site it takes at
      least the best time any of the site's types allows (inside the site, or across sites
      where its scope allows). When every site of the set holds units (training), the
      slowest group is at least the largest of those per-site times; else the smallest.
      PP chains that must cross (:meth:`Bounds.pp_forced`): at least its bound at n units.
    - EP: the cheapest fabric entry of the set's sites.
    - DP (one member per unit): its largest in-site part has at least ceil(n / k) members
      and meets at a level whose largest domain can hold them (with their whole TP groups /
      PP chains when those scopes lie inside it), all the set's types counted together; for
      k > 1 sites, plus the WAN phase over the set's largest path latency and smallest link
      bandwidth, divided by `cross_site_every`. `part_lb`: a lower bound on the slowest
      in-site part's reduce-scatter known otherwise (:func:`_part_steps`)."""
    ix, bounds = c.ix, c.bounds
    site_list = list(sites)
    lat, bw = ix.lat_us[site_list], ix.bw_GBps[site_list]
    types_of: dict[int, list[int]] = {}
    for s, t in sk:
        types_of.setdefault(s, []).append(t)
    comm = 0.0
    for d, k in (("tp", job.tp), ("pp", job.pp)):
        if k <= 1:
            continue
        S, m = getattr(job.comm, f"{d}_MB"), getattr(job.comm, f"{d}_messages")
        cross = (
            bounds._cross_lb(job, d, m, S, "pp" if d == "pp" else "ar")
            if bounds._may_cross(job, d)
            else math.inf
        )
        per_site = []
        for s in sites:
            best = cross
            for t in types_of.get(s, []):
                if d == "tp":
                    best = min(best, bounds._best(job, "tp", s, t, k, _ring, m, S))
                else:
                    for lvl in bounds._levels(job, "pp", s):
                        if bounds.cap[s, t, lvl] >= k:
                            best = min(
                                best, m * ix.lat_us[s, lvl] / 1000.0 + S / ix.bw_GBps[s, lvl]
                            )
            per_site.append(best)
        T = max(per_site) if every_site else min(per_site)
        forced = bounds.pp_forced(job, tuple(sites)) if d == "pp" and every_site else None
        if forced is not None:  # every site holds units: their chains must cross, n of them
            T = max(T, forced[0] + forced[1] * n)
        if not np.isfinite(T):
            return math.inf
        comm += (1.0 - getattr(job.overlap, d)) * T
    if job.kind == "training" and job.ep > 1:
        S, m = job.comm.ep_MB, job.comm.ep_messages
        comm += (1.0 - job.overlap.ep) * float(reduce_scatter_ms(job.ep, m, S, lat, bw).min())
    if job.kind == "training" and n > 1:
        S, m = job.comm.dp_MB, job.comm.dp_messages
        k = len(sites)
        share = -(-n // k)
        fn = all_reduce_ms if k == 1 else reduce_scatter_ms
        types = sorted({t for _, t in sk})
        # units split between sites (TP or PP across the WAN): the DP groups of one stage
        # may lie in another site than the next stage's, sharing the set's room, and as
        # few as one group may cross, between two sites
        pool = sites if k > 1 and split_piece(c.inst, ix, job) else None
        part = _mixed_part_ms(c, job, sites, types, share, fn, m, S, pool) if share > 1 else 0.0
        crossing = crossing_dims(c.inst, ix, job)
        if k == 1:
            t_dp = max(part, 2.0 * part_lb)  # an all-reduce: two reduce-scatters
        else:
            part = max(part, part_lb)
            t_dp = math.inf
            alpha, W, _ = set_wan(ix, sites)
            kk, S_job = k, S * job.unit_size
            if pool:
                off = ~np.eye(ix.n_sites, dtype=bool)
                alpha = float(ix.wan_lat_us[off].min())
                W = float(ix.wan_bw_GBps[off].max())
                kk, S_job = 2, S
            if "dp" in crossing and np.isfinite(alpha) and W > 0:
                wan = all_reduce_ms(kk, m, S_job, alpha, W) / job.cross_site_every
                t_dp = 2 * part + wan
            if crossing != {"dp"}:
                # the job may span the sites through other groups, each DP group in a site
                t_dp = min(t_dp, _mixed_part_ms(c, job, sites, types, n, all_reduce_ms, m, S, pool))
        if not np.isfinite(t_dp):
            return math.inf
        comm += (1.0 - job.overlap.dp) * t_dp
    return comm


def _part_steps(c: _Ctx, job: Job, s: int, types: tuple[int, ...]) -> list[tuple[int, float]]:
    """Site s's in-site part of a DP group as a step function of its members m (one per unit
    in s): [(U, v)], m up to U members take at least v ms (a reduce-scatter), U increasing.
    m members can all meet at level l only if every DP group's part fits there at once
    (:meth:`Bounds.dp_fits`); past the most that fit at a level, the part meets wider, so
    takes at least the reduce-scatter of one more member at the fastest level not narrower.
    Up to 1 member: 0 ms. A part of several types counts a level's domains together only
    where one of them holds two of the types."""
    ix, bounds = c.ix, c.bounds
    m, S = job.comm.dp_messages, job.comm.dp_MB
    levels = sorted(bounds._levels(job, "dp", s), reverse=True)  # narrowest first
    hi = sum(int(bounds.avail[s, t]) for t in types) // job.unit_size
    out = [(1, 0.0)]
    lo = 2
    for i, lvl in enumerate(levels):
        # units are of one type each: a part of one type fits that type's domains; a part
        # of several types needs domains holding several (types often sit in separate halls)
        most = max(
            bounds.dp_most(job, s, (t,), lvl, int(bounds.avail[s, t]) // job.unit_size)
            for t in types
        )
        if len(types) > 1 and bounds.mixes(s, types, lvl):
            most = max(most, bounds.dp_most(job, s, types, lvl, hi))
        if most < lo:
            continue
        # at this level or wider (levels[i:]), with at least lo members
        v = min(float(_rs(lo, m, S, ix.lat_us[s, w], ix.bw_GBps[s, w])) for w in levels[i:])
        out.append((most, v))
        lo = most + 1
    return out


def _mixed_part_ms(
    c: _Ctx, job: Job, sites, types, n: int, fn, m: float, S: float, pool=None
) -> float:
    """Fewest ms of a DP group's part of n members inside one site of `sites` (`pool`: the
    sites whose room the job's DP groups share, :meth:`Bounds.dp_fits`)."""
    ix, bounds = c.ix, c.bounds
    i_tp = dimension_level(c.inst, ix, job, "tp")
    i_pp = dimension_level(c.inst, ix, job, "pp")
    best = math.inf
    for s in sites:
        for lvl in bounds._levels(job, "dp", s):
            need = n
            if i_tp is not None and i_tp >= lvl:
                need *= job.tp
            if i_pp is not None and i_pp >= lvl:
                need *= job.pp
            if sum(int(bounds.cap[s, t, lvl]) for t in types) >= need and bounds.dp_fits(
                job, s, tuple(types), lvl, n, pool
            ):
                best = min(best, float(fn(n, m, S, ix.lat_us[s, lvl], ix.bw_GBps[s, lvl])))
    return best


def _add_stay_option(c: _Ctx, j: int, job: Job, job_opts: list[Option]) -> None:
    """A running, not pinned job: "stay" (exactly `current`) or pay its migration cost. A
    `current` that breaks rules 1-5 (e.g. its spread) cannot stay: the job moves or stops,
    and pays its migration cost either way."""
    if not job.current:
        return
    ix, inst = c.ix, c.inst
    g = ix.cached_indices(job.current)
    if not scope_ok(inst, j, g):
        c.constant -= job.migration_cost
        return
    ana = analyse_job(ix, job, as_batch(g, job))
    exact = float(evaluate_job(inst, ix, job, g[None, :], ana, c.bw_max).value[0])
    t_cur = int(ix.gpu_type[g[0]])
    sites_cur = tuple(sorted(set(ix.dom[0][g].tolist())))
    units_cur = len(g) // job.unit_size
    opt_v = (
        job_hours(inst, job)
        * job.value
        * float(ix.type_speed[t_cur])
        * len(g)
        # any order of exactly these GPUs: capacities are the set's own
        * Bounds.of_gpus(inst, g).goodput(
            job, t_cur, sites_cur, units_cur, any_multi=len(sites_cur) > 1
        )
    )
    op = Option(j, "stay", t_cur, sites_cur, 0.0)
    op.b = c.lm.var(f"stay[{job.name}]", 0, 1)
    c.lm.maximize(op.b, max(exact, opt_v) + job.migration_cost)
    c.constant -= job.migration_cost
    per_site = np.bincount(ix.dom[0][g], minlength=ix.n_sites)
    for s in sites_cur:
        c.use.setdefault((s, t_cur), {})[op.b] = float(per_site[s])
        c.power_rows[s][op.b] = c.power_rows[s].get(op.b, 0.0) + per_site[s] * c.gpu_power[t_cur]
    job_opts.append(op)


def _add_group_rows(c: _Ctx, j: int, opts: list[Option], k: int = 1) -> None:
    """One option per job, over the options of all its plans (SPEC v3), and exactly one for
    a running, non-preemptible job; a class of k identical jobs: k options in all."""
    if not opts:
        return
    name = c.inst.jobs[j].name
    c.lm.add({op.b: 1.0 for op in opts}, "<=", k, f"one option {name}")
    if must_place(c.inst, j):
        c.lm.add({op.b: 1.0 for op in opts}, ">=", 1, f"placed {name}")


def _add_job_rows(c: _Ctx, job: Job, job_opts: list[Option]) -> None:
    """Each option's GPUs in the capacity, power and whole-node rows."""
    if not job_opts:
        return
    ix = c.ix
    node_tp = job.effective_scope()["tp"] == ix.levels[-1] and job.tp > 1
    for op in job_opts:
        per = job.unit_size * op.step
        cells = [((s, op.type), v, per) for s, v in op.n.items()]
        cells += [(k, v, op.piece or per) for k, v in op.parts.items()]
        cells += [((s, op.type), v, op.piece) for s, v in op.pieces.items()]
        for (s, t), v, gpus in cells:
            c.use.setdefault((s, t), {})[v] = float(gpus)
            c.power_rows[s][v] = c.power_rows[s].get(v, 0.0) + gpus * c.gpu_power[t]
            if node_tp:
                c.big_tp.append((s, t, job.tp, v, float(gpus // job.tp)))
        if op.kind == "stay":
            # its nodes are charged in the whole-node rows (its own TP groups included)
            c.stays.append((op.b, ix.cached_indices(job.current)))
    c.options.extend(job_opts)


def _add_leases(c: _Ctx) -> None:
    """Offers: accept or not, counts of identical whole blocks per group, min/max GPUs,
    single site, committed blocks; leased GPUs in the capacity and power rows."""
    ix, lm, inst = c.ix, c.lm, c.inst
    c.groups, c.per_offer = block_groups(inst, c.free)
    groups = c.groups
    for o, offer in enumerate(inst.offers):
        a = lm.var(f"accept[{offer.name}]", 0, 1)
        c.offer_vars[o] = a
        tot: dict[int, float] = {}
        ws: dict[int, int] = {}
        if offer.single_site:
            for s in sorted({groups[g]["site"] for g in c.per_offer[o]}):
                ws[s] = lm.var(f"w[{offer.name},{ix.site_names[s]}]", 0, 1)
            if ws:
                lm.add({w: 1.0 for w in ws.values()}, "<=", 1)
        for g in c.per_offer[o]:
            grp = groups[g]
            if grp["committed_to"] is not None and grp["committed_to"] != o:
                continue
            size = len(grp["members"])
            y = lm.var(f"y[{offer.name},{g}]", 0, size)
            c.lease_vars[(o, g)] = y
            gpus = float(sum(grp["per_type"]))
            tot[y] = gpus
            lm.maximize(y, inst.horizon_hours * offer.price_per_gpu_hour * gpus)
            lm.add({y: 1.0, a: -float(size)}, "<=", 0)
            if offer.single_site:
                lm.add({y: 1.0, ws[grp["site"]]: -float(size)}, "<=", 0)
            if grp["committed_to"] == o:
                lm.add({y: 1.0}, ">=", size)
            c.group_users.setdefault(g, {})[y] = 1.0
            s = grp["site"]
            for t, cnt in enumerate(grp["per_type"]):
                if cnt:
                    c.use.setdefault((s, t), {})[y] = c.use.get((s, t), {}).get(y, 0.0) + cnt
                    c.power_rows[s][y] = c.power_rows[s].get(y, 0.0) + cnt * c.gpu_power[t]
        if offer.committed_blocks or offer.force == "accept":  # signed, or forced (SPEC v2)
            lm.add({a: 1.0}, ">=", 1)
        if offer.force == "decline":
            lm.add({a: 1.0}, "<=", 0)
        if tot:
            lm.add({**tot, a: -float(offer.min_gpus)}, ">=", 0)
            if offer.max_gpus is not None:
                lm.add(tot, "<=", offer.max_gpus)
        elif offer.min_gpus > 0 or not tot:
            lm.add({a: 1.0}, "<=", 0)


def _inside_memo(c: _Ctx, level: int, d: int, sl: int, t: int) -> int:
    key = ("inside", level, d, sl, t)
    if key not in c.memo:
        c.memo[key] = _domains_inside(c.ix, level, d, sl, t, c.free)
    return c.memo[key]


def _add_spread_rows(c: _Ctx) -> None:
    """Spread over a level below the site: the usable domains less those inside leases."""
    for z, s, t, sl, n_dom, *k in c.spread_rows:
        k = k[0] if k else 1  # a class of k jobs: the sum of their k rows
        row = {z: 1.0}
        for (_, g), y in c.lease_vars.items():
            grp = c.groups[g]
            if grp["site"] == s and grp["level"] <= sl:
                inside = min(_inside_memo(c, grp["level"], d, sl, t) for d in grp["members"])
                if inside:
                    row[y] = float(inside) * k
        if len(row) > 1:
            c.lm.add(row, "<=", float(n_dom) * k)


def _add_lease_group_rows(c: _Ctx) -> None:
    """Blocks of one group shared by several offers, and blocks a staying job holds."""
    for g, ys in c.group_users.items():
        if len(ys) > 1:
            c.lm.add(ys, "<=", len(c.groups[g]["members"]))
    # a running job that stays keeps its GPUs: the blocks holding them cannot be leased
    # (one row per job: valid whichever other jobs stay)
    for b, cur in c.stays:
        for g, ys in c.group_users.items():
            grp = c.groups[g]
            held = sum(1 for d in grp["members"] if (c.ix.dom[grp["level"]][cur] == d).any())
            if held:
                c.lm.add({**ys, b: float(held)}, "<=", len(grp["members"]), f"stay-lease[{g}]")


def _add_power_rows(c: _Ctx) -> None:
    """Per site: GPUs of jobs and leases within the power cap less the pinned jobs' draw."""
    ix = c.ix
    pinned_power = np.zeros(ix.n_sites)
    for j in c.pinned:
        g = ix.cached_indices(c.inst.jobs[j].current)
        np.add.at(pinned_power, ix.dom[0][g], c.gpu_power[ix.gpu_type[g]])
    for s in range(ix.n_sites):
        cap = ix.power_cap_kW[s]
        if np.isfinite(cap) and c.power_rows[s]:
            c.lm.add(c.power_rows[s], "<=", float(cap - pinned_power[s]), f"power[{s}]")
