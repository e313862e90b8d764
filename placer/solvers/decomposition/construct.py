"""Constructing placements: the mutable state of one solve and the greedy building blocks
(placing a job by kernel-scored candidates, leasing whole free blocks), shared by the
greedy backend and the decomposition's primal side.

Algorithm overview (greedy, one policy)
1. Start from the available GPUs; pinned jobs keep `current`; committed lease blocks are
   taken by their offers.
2. Jobs in priority order (running and not preemptible first, then value per GPU-hour x
   speed, then size, then name). For each: candidates are, per allowed GPU type and per
   site (or over several sites when its scopes allow), the most units that one allowed
   domain holds within the power cap, packed by :class:`~placer.solvers.decomposition.pack.Packer`;
   for a running job also its `current` GPUs. The kernel scores every candidate in the
   current state (WAN sharing included) and the best is kept.
3. Offers by price: every whole free block at the offer's level inside its sites and types,
   largest first, up to max_gpus (one site if single_site); accepted when min_gpus is met.
Policies differ in the order of 2 and 3. Ties break on topology order, then name.

Imports numpy and the kernel; never a solver library.
"""

from __future__ import annotations

import time

import numpy as np

from placer.check import rule2_types, rule3_sizes, rule4_scope, rule5_spread
from placer.kernel.capacity import (
    FreeCounts,
    allowed_types,
    dimension_level,
    fit_nowhere_reason,
    smallest_units,
)
from placer.kernel.compiled import Compiled
from placer.kernel.cost import analyse_job, as_batch
from placer.kernel.score import Scorer, evaluate_job, offer_gpus
from placer.kernel.topology import has_repeats
from placer.model import Instance, Job
from placer.solvers.decomposition.pack import Packer, layout
from placer.solvers.plans import (
    candidate_bound,
    group_heads,
    must_place,
    siblings,
    site_twins,
    value_bound,
    value_rate,
    variant_bound,
)


class State:
    """Mutable placement state: free GPUs, jobs' GPUs, leases, power left, scorer."""

    def __init__(
        self,
        inst: Instance,
        holdings: tuple[list[np.ndarray], list[list[tuple[int, int]]]] | None = None,
        figures: tuple | None = None,
    ) -> None:
        """A state over `inst` where pinned jobs keep `current` and committed blocks are
        leased; or, with `holdings` ``(job_gpus, offer_blocks)``, the state holding exactly
        those (the live cluster's: no job's `current` is read); `figures`
        (:meth:`Scorer.figures` of a state holding exactly those): not scored again."""
        self.inst = inst
        self.ix = ix = inst.index
        self.free = ix.available.copy()
        self.job_gpus: list[np.ndarray] = [np.zeros(0, np.int64) for _ in inst.jobs]
        self.offer_blocks: list[list[tuple[int, int]]] = [[] for _ in inst.offers]
        self.gpu_power = np.nan_to_num(ix.type_power_kW[ix.gpu_type], nan=0.0)
        self.power_left = ix.power_cap_kW.copy()
        # changes so far (a cheap key for what is computed once per state, e.g. free counts)
        self.version = 0
        # jobs a deadline stopped the solve from trying (their reason says so), and whether
        # any stage of the solve was cut short by its deadline
        self.unreached: set[int] = set()
        self.timed_out = False
        # best_greedy: past its deadline, the other policy was not run (or was cut and lost)
        self.second_policy_skipped = False
        self.empty: set[int] = set()  # place_best: variants its last search found nothing for
        self._swapped: dict[int, tuple] = {}  # id(job) -> (job, pp_inner_job(job))
        # primal_from_coarse: not grown, its open_bound below a placement in hand
        self.bounded = False
        self._groups: list[list[int]] | None = None  # open_bound: the groups, once
        # open_bound: per job (variant), once per solve with plans (the groups' cache)
        groups = inst._plan_groups
        self._open_cache: dict[int, tuple] = {} if groups is None else groups.open_info
        self.leases_first = False  # the policy that made the state (greedy_policy)
        if holdings is not None:
            self._hold(*holdings)
        self.packer = Packer(inst, self.free)
        if figures is not None and holdings is not None:
            self.scorer = Scorer.restored(inst, self.job_gpus, self.offer_blocks, figures)
        else:
            self.scorer = Scorer(inst, self.job_gpus, self.offer_blocks)
        if holdings is not None:
            return
        for j, job in enumerate(inst.jobs):
            if job.pinned and job.current:
                self.set_job(j, ix.cached_indices(job.current))
        for o, offer in enumerate(inst.offers):
            for path in offer.committed_blocks or []:
                r = ix.resolve(path)
                self.add_block(o, r)

    def _hold(self, job_gpus: list[np.ndarray], offer_blocks: list[list[tuple[int, int]]]) -> None:
        """Take the given holdings at once (one power count, no per-job scoring)."""
        ix = self.ix
        self.job_gpus = [np.asarray(g, np.int64) for g in job_gpus]
        self.offer_blocks = [list(b) for b in offer_blocks]
        on = np.zeros(ix.n_gpus, bool)
        for g in self.job_gpus:
            on[g] = True
        self.free &= ~on
        for blocks in self.offer_blocks:
            for level, d in blocks:
                a, b = ix.gpu_range(level, d)
                self.free[a:b] = False
                on[a:b] |= ix.available[a:b]
        self.power_left -= np.bincount(
            ix.dom[0][on], weights=self.gpu_power[on], minlength=ix.n_sites
        )

    # ------------------------------------------------------------------ mutation
    def _power(self, gpus: np.ndarray) -> np.ndarray:
        return np.bincount(
            self.ix.dom[0][gpus], weights=self.gpu_power[gpus], minlength=self.ix.n_sites
        )

    def set_job(self, j: int, gpus: np.ndarray) -> None:
        old = self.job_gpus[j]
        if len(old):
            # a GPU that failed while the job held it never comes back free
            self.free[old[self.ix.available[old]]] = True
            self.power_left += self._power(old)
            self.packer.touch(old)
        gpus = np.asarray(gpus, np.int64)
        self.free[gpus] = False
        self.packer.touch(gpus)
        self.version += 1
        if len(gpus):
            self.unreached.discard(j)
        self.power_left -= self._power(gpus)
        self.scorer.delta({j: gpus}, commit=True)
        self.job_gpus[j] = gpus

    def block_gpus(self, block: tuple[int, int]) -> np.ndarray:
        a, b = self.ix.gpu_range(*block)
        return np.arange(a, b)[self.ix.available[a:b]]

    def add_block(self, o: int, block: tuple[int, int]) -> None:
        g = self.block_gpus(block)
        self.free[g] = False
        a, b = self.ix.gpu_range(*block)
        self.free[a:b] = False
        self.packer.touch((a, b))
        self.version += 1
        self.power_left -= self._power(g)
        self.offer_blocks[o].append(block)
        self._sync_leases()

    def clear_offer(self, o: int) -> None:
        for block in self.offer_blocks[o]:
            g = self.block_gpus(block)
            self.free[g] = True
            self.packer.touch(g)
            self.power_left += self._power(g)
        self.version += 1
        self.offer_blocks[o] = []
        self._sync_leases()

    def _sync_leases(self) -> None:
        s = self.scorer
        s.offer_blocks = self.offer_blocks
        s.lease_revenue = [
            self.inst.horizon_hours * o.price_per_gpu_hour * offer_gpus(self.ix, bl)
            for o, bl in zip(self.inst.offers, self.offer_blocks)
        ]

    @property
    def objective(self) -> float:
        return self.scorer.objective

    def copy_solution(self) -> tuple[list[np.ndarray], list[list[tuple[int, int]]]]:
        return [g.copy() for g in self.job_gpus], [list(b) for b in self.offer_blocks]

    # ------------------------------------------------------------------ candidates
    def power_units(self, job: Job, t: int, site: int) -> int:
        """Most units of job on type t that site s's power cap still allows."""
        p = self.ix.type_power_kW[t]
        left = self.power_left[site]
        if not np.isfinite(left) or not np.isfinite(p) or p <= 0:
            return job.units_max
        return int(max(0.0, left + 1e-9) // (p * job.unit_size))

    def site_region(self, s: int) -> tuple[int, int]:
        """The GPU range of site s (sites are contiguous in tree order)."""
        return self.ix.gpu_range(0, s)

    def _round(self, job: Job, n: int, B=1) -> int:
        n = min(n, job.units_max)
        n -= n % max(job.unit_step, layout(B)[0])
        return n if n >= max(job.units_min, 1) else 0

    def candidates(
        self,
        j: int,
        max_units: int | None = None,
        sites: list[int] | None = None,
        floor: float | None = None,
        cross_only: bool = False,
        checked: bool = True,
    ) -> list[np.ndarray]:
        """Candidate GPU arrays (rank order) for job j in the current state; with `floor`
        (SPEC v3), only those whose :func:`~placer.solvers.plans.candidate_bound` is
        above it (the others cannot beat a variant already found: not checked or scored);
        with `cross_only` (a :func:`~placer.solvers.plans.site_twins` variant), only those
        over two sites or more (its one-site ones are its twin's). Not `checked`: rules 1-5
        are left to the caller (:meth:`best_candidate` with ``check=True`` runs them on the
        best candidates only, in the order of their objective change)."""
        inst, ix = self.inst, self.ix
        job = inst.jobs[j]
        cap = job.units_max if max_units is None else min(max_units, job.units_max)
        out: list[np.ndarray] = []
        if job.current:
            cur = ix.cached_indices(job.current)
            own = np.zeros(ix.n_gpus, bool)
            own[self.job_gpus[j]] = True
            if (cur >= 0).all() and (self.free[cur] | own[cur]).all():
                out.append(cur)
        site_list = list(range(ix.n_sites)) if sites is None else sites
        out.extend(self._packed(job, cap, site_list))
        hit = self._swapped.get(id(job))
        if hit is None or hit[0] is not job:
            # once per job and state: a new job object each time missed the packer's
            # levels, kept per job object
            hit = self._swapped[id(job)] = (job, pp_inner_job(job))
        swapped = hit[1]
        if swapped is not None:
            # PP chains narrower than TP groups (e.g. pp scope node, tp across nodes): pack
            # the job with the roles of TP and PP exchanged, then restore the rank order
            out.extend(from_pp_inner(job, g) for g in self._packed(swapped, cap, site_list))
        if floor is not None:
            out = [g for g in out if candidate_bound(inst, j, g) > floor + 1e-9]
        if cross_only:
            out = [g for g in out if len(g) and ix.dom[0][g].min() != ix.dom[0][g].max()]
        # power: what the job would draw per site, beyond what it draws now
        room = self.power_left + self._power(self.job_gpus[j]) + 1e-9
        return [
            g
            for g in out
            if (self._power(g) <= room).all() and (not checked or scope_ok(self.inst, j, g))
        ]

    def fits(self, j: int, g: np.ndarray) -> bool:
        """Job j may hold GPUs `g` now: each free or j's own (and available), every site
        within its power cap (what j draws now counted as free), rules 1-5 for j alone."""
        ix = self.ix
        own = np.zeros(ix.n_gpus, bool)
        own[self.job_gpus[j]] = True
        room = self.power_left + self._power(self.job_gpus[j]) + 1e-9
        return (
            bool((self.free[g] | (own[g] & ix.available[g])).all())
            and bool((self._power(g) <= room).all())
            and scope_ok(self.inst, j, g)
        )

    def region_candidates(self, j: int, region: tuple[int, int]) -> list[np.ndarray]:
        """Packed candidates of job j inside one domain (a GPU range within one site): per
        allowed type and layout, the most units the domain holds within power."""
        ix, job = self.ix, self.inst.jobs[j]
        site = int(ix.dom[0][region[0]])
        out = []
        for t in allowed_types(self.inst, ix, job):
            for B in self.packer.distinct_layouts(job, t):
                n = min(self.packer.max_fit(job, t, region, B), self.power_units(job, t, site))
                n = self._round(job, n, B)
                if n:
                    g = self.packer.place(job, t, n, region, B)
                    if g is not None and self.fits(j, g):
                        out.append(g)
        return out

    def _packed(self, job: Job, cap: int, site_list: list[int]) -> list[np.ndarray]:
        """Packed candidates per type and site (and over sites), TP innermost."""
        inst, ix = self.inst, self.ix
        out: list[np.ndarray] = []
        for t in allowed_types(inst, ix, job):
            if job.kind == "inference":
                out.extend(self._inference(job, t, cap, site_list))
                continue
            for B in self.packer.distinct_layouts(job, t):
                per_site = {}
                for s in site_list:
                    region = self.site_region(s)
                    n = min(self.packer.max_fit(job, t, region, B), self.power_units(job, t, s))
                    per_site[s] = n
                    n = self._round(job, min(n, cap), B)
                    if n:
                        g = self.packer.place(job, t, n, region, B)
                        if g is not None:
                            out.append(g)
                if self._may_span_sites(job):
                    g = self._multi_site(job, t, cap, per_site, B)
                    if g is not None:
                        out.append(g)
            for s in site_list:
                if inverted_fabric(ix, s):
                    g = self._first_free(job, t, cap, s)
                    if g is not None:
                        out.append(g)
        if job.mix_types:
            out.extend(self._mixed(job, cap, site_list))
        if job.kind == "training" and job.pp > 1:
            out.extend(v for v in (stage_major(job, g) for g in list(out)) if v is not None)
            for t in allowed_types(inst, ix, job):  # PP chains split between sites
                out.extend(self.packer.split_chains(job, t, cap, site_list, self.power_left))
        return out

    def _first_free(self, job: Job, t: int, cap: int, s: int) -> np.ndarray | None:
        """The first free GPUs of type t in site s in tree order, as many units as fit
        (firstfit's choice): on a site whose inner levels are slower than its outer ones
        (:func:`inverted_fabric`), spreading over nodes can beat the packed candidates."""
        lo, hi = self.site_region(s)
        idx = lo + np.flatnonzero(self.free[lo:hi] & (self.ix.gpu_type[lo:hi] == t))
        n = min(len(idx) // job.unit_size, self.power_units(job, t, s), cap)
        n = self._round(job, n)
        return idx[: n * job.unit_size].astype(np.int64) if n else None

    def _mixed(self, job: Job, cap: int, site_list: list[int]) -> list[np.ndarray]:
        """SPEC v2 `mix_types`: units of several allowed types. Per site (and over the
        sites when DP may span them), the fastest type's units first, then the next type's
        in what is left, each part packed whole; the kernel then scores the mix."""
        ix = self.ix
        types = sorted(allowed_types(self.inst, ix, job), key=lambda t: (-ix.type_speed[t], t))
        if len(types) < 2:
            return []
        regions = [[s] for s in site_list]
        if self._may_span_sites(job) and len(site_list) > 1:
            regions.append(list(site_list))
        out = []
        step = job.unit_step
        for sites in regions:
            parts: list[np.ndarray] = []
            power = self.power_left.copy()
            left = cap
            for s in sites:
                for t in types:
                    if left <= 0:
                        break
                    kw = ix.type_power_kW[t]
                    by_power = (
                        job.units_max
                        if not np.isfinite(power[s]) or not np.isfinite(kw) or kw <= 0
                        else int(max(0.0, power[s] + 1e-9) // (kw * job.unit_size))
                    )
                    n = min(self.packer.max_fit(job, t, self.site_region(s)), by_power, left)
                    n -= n % step
                    if n <= 0:
                        continue
                    g = self.packer.place(job, t, n, self.site_region(s))
                    if g is None:
                        continue
                    parts.append(g)
                    self.packer.take(g)
                    power -= self._power(g)
                    left -= n
            for g in parts:
                self.packer.give(g)
            if len({int(ix.gpu_type[g[0]]) for g in parts}) < 2:
                continue  # one type only: the single-type candidates cover it
            g = np.concatenate(parts)
            if len(g) // job.unit_size >= max(job.units_min, 1):
                out.append(g)
        return out

    def _may_span_sites(self, job: Job) -> bool:
        return (
            job.kind == "training"
            and self.ix.n_sites > 1
            and dimension_level(self.inst, self.ix, job, "dp") is None
        )

    def _multi_site(
        self, job: Job, t: int, cap: int, per_site: dict[int, int], B=1
    ) -> np.ndarray | None:
        """Units over several sites (largest first), each part a multiple of ep."""
        order = sorted(per_site, key=lambda s: (-per_site[s], s))
        if len(order) < 2 or per_site[order[1]] < job.unit_step:
            return None
        parts = []
        left = cap
        first = order[0]
        for s in order:
            if left <= 0:
                break
            if not np.isfinite(self.ix.wan_lat_us[first, s]):
                continue
            n = min(per_site[s], left)
            n -= n % max(job.unit_step, layout(B)[0])
            if n <= 0:
                continue
            parts.append((s, n))
            left -= n
        total = sum(n for _, n in parts)
        if len(parts) < 2 or total < max(job.units_min, 1):
            return None
        gs = []
        for s, n in parts:
            g = self.packer.place(job, t, n, self.site_region(s), B)
            if g is None:
                return None
            gs.append(g)
        return np.concatenate(gs)

    def _inference(self, job: Job, t: int, cap: int, sites: list[int]) -> list[np.ndarray]:
        """Inference units over the sites (power-checked), one candidate per layout."""
        region = []  # whole sites, as ranges: the packer's counts per site serve them
        limit = 0
        for s in sorted(sites):
            pu = self.power_units(job, t, s)
            if pu > 0:
                region.append(self.site_region(s))
                limit += pu
        out = []
        for B in self.packer.distinct_layouts(job, t):
            n = self._round(job, min(cap, self.packer.max_fit(job, t, region, B), limit))
            while n > 0:
                g = self.packer.place(job, t, n, region, B)
                if g is None:
                    break
                over = self._power(g) > self.power_left + 1e-9
                if not over.any():
                    out.append(g)
                    break
                # the packer filled the first sites past their power: the n units site by
                # site, each within its power (a capped first site no longer hides the
                # room of the others)
                g = self._inference_by_site(job, t, n, sites, B)
                if g is not None:
                    out.append(g)
                    break
                # drop units in over-cap sites and retry with fewer
                n = self._round(job, n - max(1, n // 8))
        return out

    def _inference_by_site(
        self, job: Job, t: int, n: int, sites: list[int], B
    ) -> np.ndarray | None:
        """n inference units packed site by site in tree order, each site given at most
        the units its power cap allows; None when they do not all fit."""
        gs, left = [], n
        for s in sorted(sites):
            if left <= 0:
                break
            region = self.site_region(s)
            k = min(left, self.power_units(job, t, s), self.packer.max_fit(job, t, region, B))
            if k <= 0:
                continue
            g = self.packer.place(job, t, k, region, B)
            if g is None:
                continue
            gs.append(g)
            left -= k
        if left > 0 or not gs:
            return None
        g = np.concatenate(gs)
        return None if (self._power(g) > self.power_left + 1e-9).any() else g

    def best_candidate(
        self, j: int, cands: list[np.ndarray], check: bool = False, fallback: bool = False
    ) -> tuple[np.ndarray | None, float]:
        """The candidate with the largest exact objective change (kernel delta). With
        `check`, the best that passes rules 1-5 for j (:func:`scope_ok`): the rules run on
        the best first and on the next only when it fails, so a search checks about one
        candidate per job instead of all of them (at 1M GPUs the checks were 16% of the
        greedy's pass); the choice is the one a search over checked candidates makes. With
        `fallback`, when no candidate left has a finite change, the first of them that
        passes (a packed plan's variants: the plan is kept even when the kernel rates it
        -inf)."""
        ds = self.deltas(j, cands)
        left = list(range(len(cands)))
        while left:
            best, best_d = None, -np.inf
            for i in left:
                if ds[i] > best_d + 1e-9:
                    best, best_d = i, ds[i]
            if best is None:
                break
            if not check or scope_ok(self.inst, j, cands[best]):
                return cands[best], best_d
            left.remove(best)
        if fallback:
            ok = (i for i in left if not check or scope_ok(self.inst, j, cands[i]))
            first = next(ok, None)
            if first is not None:
                return cands[first], ds[first]
        return None, -np.inf

    def deltas(self, j: int, cands: list[np.ndarray]) -> list[float]:
        """The kernel's objective change of each candidate for job j (:meth:`Scorer.delta`).
        When j holds no GPUs, the candidates of one size are scored in one batch: a
        candidate that uses no WAN link changes no other job's sharing, so its change is
        its own net value less j's unplaced one, the figures delta computes row by row
        (at 1M GPUs, one kernel call per candidate was a fifth of the greedy's pass). A
        candidate that uses a WAN link, or a placed j, goes through delta."""
        sc = self.scorer
        out: list[float | None] = [None] * len(cands)
        if sc.ana[j] is None and len(cands) > 1:
            job = sc.jobs[j]
            base = sc.scores[j]
            old = float(base.value[0] - base.migration[0])
            by_len: dict[int, list[int]] = {}
            for i, g in enumerate(cands):
                if len(g):
                    by_len.setdefault(len(g), []).append(i)
            bw = sc.shared_bw()
            for idx in by_len.values():
                if len(idx) < 2:
                    continue
                G = np.stack([np.asarray(cands[i], np.int64) for i in idx])
                ana = analyse_job(self.ix, job, as_batch(G, job))
                if ana.links.any():
                    continue  # WAN sharing: the exact change needs the other jobs
                s = evaluate_job(self.inst, self.ix, job, G, ana, bw)
                for r, i in enumerate(idx):
                    out[i] = float(s.value[r] - s.migration[r]) - old
        return [d if d is not None else sc.delta({j: g}) for d, g in zip(out, cands)]

    def place_best(
        self,
        j: int,
        switch: bool = True,
        skip: frozenset = frozenset(),
        deadline: float | None = None,
        **kw,
    ) -> bool:
        """Place job j at its best candidate (re-placing it if it has GPUs); with SPEC v3
        plans, j's group at the best candidate of any of its variants (a plan switch). Not
        `switch`: variant j only (when no other variant of its group holds GPUs), for a
        caller that has chosen the plan (a coarse plan's packing). `skip`: variants not
        searched (a caller's search of them in this very state, with the same `kw`, found no
        candidate). Afterwards :attr:`empty` holds the variants whose full search (no floor,
        not only cross-site) found no candidate that passes the rules. Past `deadline` (or, a
        variant found, when a search as long as the last variant's would end past it) no
        further variant is searched: j takes the best of those searched, or (none found,
        and j is not a must) stays as it was, and a j left unplaced is marked unreached
        (a frontier run's three plans over 180k GPUs took 0.1-0.15 s each, and the search
        of all three started just before a 1 s limit's deadline ran past the limit)."""
        sib = siblings(self.inst, j)
        held = [s for s in sib if len(self.job_gpus[s])]
        self.empty = set()
        if not switch and set(held) <= {j}:
            sib = [j]
        old_j = held[0] if held else j
        old = self.job_gpus[old_j]
        if len(old):
            self.set_job(old_j, np.zeros(0, np.int64))
        best_s, g, d = j, None, -np.inf
        free = None
        twins: set[int] = set()
        if len(sib) > 1:
            # a variant that places inside one site as a sibling does: only its cross-site
            # candidates (the sibling's, same value, are tried too, or bounded out alike)
            twins = site_twins(self.inst)
            # the variant held now first, then the others by falling value_bound: the best
            # found early lets value_bound skip more of the rest (the held one is usually
            # still the best; ties keep the plans' order)
            sib = sorted(
                sib, key=lambda s: (s != old_j or not len(old), -value_bound(self.inst, s))
            )
            free = int(np.count_nonzero(self.free))
        last = 0.0  # the last variant's search, in seconds: the next one's likely cost
        for s in sib:
            if deadline is not None and (g is not None or not must_place(self.inst, j)):
                # past the deadline, or (a variant found already) a search as long as the
                # last would end past it
                now = time.perf_counter()
                if now > deadline or (g is not None and now + last > deadline):
                    self.timed_out = True
                    if g is None and not len(old):
                        self.unreached.add(j)
                    break
            if s in skip:
                continue
            ub = value_bound(self.inst, s, free)
            if ub == -np.inf or (g is not None and ub <= d + 1e-9):
                continue  # it does not fit, or cannot beat the best variant so far
            t0 = time.perf_counter()
            floor = d if g is not None else None
            if floor is not None:
                # no candidate of it can beat the best so far: none is packed (the bound at
                # the units the free GPUs hold, then, when its TP groups need nodes and the
                # first does not settle it, at the units the nodes' free TP slots hold)
                most = kw.get("max_units") or self.inst.jobs[s].units_max
                sites = kw.get("sites")
                if variant_bound(self.inst, s, free, most, sites) <= floor + 1e-9:
                    continue
                fit = self.fit_units(s)
                if fit is not None and fit < most:
                    if variant_bound(self.inst, s, free, fit, sites) <= floor + 1e-9:
                        continue
            cands = self.candidates(s, floor=floor, cross_only=s in twins, checked=False, **kw)
            gs, ds = self.best_candidate(s, cands, check=True)
            if gs is None and floor is None and s not in twins:
                self.empty.add(s)
            last = time.perf_counter() - t0
            if gs is not None and ds > d + 1e-9:
                best_s, g, d = s, gs, ds
        if g is not None and (d > 0 or must_place(self.inst, j) or len(old)):
            self.set_job(best_s, g)
            return True
        if len(old):
            self.set_job(old_j, old)
        return False

    def open_bound(self) -> float | None:
        """An upper bound on the objective of any state this one leads to by placing the
        jobs it leaves out (what :func:`grow` does to a packed plan); None when not known:
        the instance has offers (leases would add revenue), or a job that is placed and not
        pinned holds fewer than its most units (grow may re-place it, which frees GPUs and
        WAN links).

        The jobs placed keep their GPUs, and adding jobs only lowers their values (WAN
        sharing): they are counted at their value now. A job left out adds at most
        :func:`~placer.solvers.plans.value_rate`'s per-GPU figure times the GPUs it gets
        (any plan of it: the largest), on no more GPUs than the most units the free GPUs of
        its types hold: by count, and when its TP groups must lie inside a node (its TP
        scope), by the TP groups the nodes' free GPUs hold; a running one also what staying
        saves. All of them share the free GPUs: the largest per-GPU figures take them first
        (the bound of the fractional knapsack). Free GPUs only shrink from here (no job
        placed is moved), so the counts hold for every later state."""
        inst, ix = self.inst, self.ix
        if inst.offers:
            return None
        if self._groups is None:
            self._groups = [
                siblings(inst, j) for j in group_heads(inst, list(range(len(inst.jobs))))
            ]
        job_gpus = self.job_gpus
        free_t = None
        slots: dict[tuple[int, int], int] = {}
        items = []
        extra = 0.0
        for sib in self._groups:
            v = next((s for s in sib if len(job_gpus[s])), None)
            if v is not None:
                info = self._open_info(v)
                if not info[9] and len(job_gpus[v]) // info[3] < info[5]:
                    return None  # placed below its most units: grow may move it
                continue
            rate = mig = 0.0
            cap = 0
            for s in sib:
                types, in_node, tp, size, lo, hi, mix, r, m, _ = self._open_info(s)
                units = 0
                for t in types:
                    if in_node:
                        got = slots.get((t, tp))
                        if got is None:
                            got = slots[(t, tp)] = int((self.packer._nodes_free(t) // tp).sum())
                        u = got // (size // tp)
                    else:
                        if free_t is None:
                            free_t = np.bincount(
                                ix.gpu_type[self.free], minlength=len(ix.type_names)
                            )
                        u = int(free_t[t]) // size
                    units = units + u if mix else max(units, u)
                units = min(units, hi)
                if units < lo:
                    continue  # no placement of it fits in the free GPUs
                rate, mig = max(rate, r), max(mig, m)
                cap = max(cap, units * size)
            if cap:
                items.append((rate, cap))
                extra += mig
        objective = self.objective
        left = int(np.count_nonzero(self.free))
        gain = 0.0
        for rate, cap in sorted(items, reverse=True):
            take = min(cap, left)
            gain += rate * take
            left -= take
            if left <= 0:
                break
        return objective + gain + extra

    def fit_units(self, v: int) -> int | None:
        """The most units of job (variant) v whose TP groups the nodes' free GPUs hold, when
        its TP groups must lie inside a node (its TP scope; what :meth:`open_bound` counts):
        no placement of v in this state has more. None when its TP groups need no node."""
        types, in_node, tp, size, _, _, mix, _, _, _ = self._open_info(v)
        if not in_node:
            return None
        units = 0
        for t in types:
            u = int((self.packer._nodes_free(t) // tp).sum()) // (size // tp)
            units = units + u if mix else max(units, u)
        return units

    def _open_info(self, v: int) -> tuple:
        """What :meth:`open_bound` reads of job (variant) v, once per state: its allowed
        types, whether its TP groups lie inside a node, tp, unit size, fewest and most
        units, mix_types, :func:`~placer.solvers.plans.value_rate`, and whether it is
        pinned."""
        got = self._open_cache.get(v)
        if got is None:
            inst, ix = self.inst, self.ix
            job = inst.jobs[v]
            lvl = dimension_level(inst, ix, job, "tp") if job.tp > 1 else None
            got = self._open_cache[v] = (
                tuple(allowed_types(inst, ix, job)),
                lvl is not None and lvl >= ix.n_levels - 1,
                job.tp,
                job.unit_size,
                max(job.units_min, 1),
                job.units_max,
                bool(job.mix_types),
                *value_rate(inst, v),
                bool(job.pinned and job.current),
            )
        return got

    def group_placement(self, j: int) -> tuple[int | None, np.ndarray]:
        """(the placed variant of j's group, its GPUs): what :meth:`restore_group` puts
        back after a :meth:`place_best` that did not pay (which may move the group to
        another variant, so j's own GPUs are not enough to undo it)."""
        v = self.placed_variant(j)
        return v, (self.job_gpus[v].copy() if v is not None else np.zeros(0, np.int64))

    def restore_group(self, j: int, snap: tuple[int | None, np.ndarray]) -> None:
        v, g = snap
        for s in siblings(self.inst, j):
            if s != v and len(self.job_gpus[s]):
                self.set_job(s, np.zeros(0, np.int64))
        if v is not None:
            self.set_job(v, g)

    def placed_variant(self, j: int) -> int | None:
        """The variant of j's group that has GPUs (j itself outside plans), or None."""
        return next((s for s in siblings(self.inst, j) if len(self.job_gpus[s])), None)

    def unplaced_musts(self) -> list[str]:
        """Running, non-preemptible jobs this state leaves out, and offers with ``force:
        accept`` it does not accept (a state with any is not a valid placement)."""
        return [
            self.inst.jobs[j].name
            for j in group_heads(self.inst, list(range(len(self.inst.jobs))))
            if must_place(self.inst, j) and self.placed_variant(j) is None
        ] + [
            f"offer {o.name!r}"
            for o, bl in zip(self.inst.offers, self.offer_blocks)
            if o.force == "accept" and not bl
        ]

    def mark_unreached(self, j: int) -> None:
        """Job j was not tried because the solve's deadline had passed."""
        self.unreached.add(j)
        self.timed_out = True

    def reasons(self, deadline: float | None = None) -> dict[str, str]:
        """A reason for every job this state leaves out (for every variant of a SPEC v3
        group that has none placed: :func:`~placer.solvers.plans.collapse` joins them).
        Past `deadline` no more candidate searches are run for them (the reasons stay true,
        with less detail), so a solve that keeps its limit also keeps it here."""
        self._reason_deadline = deadline
        return {
            self.inst.jobs[j].name: self.reason(j)
            for j in range(len(self.inst.jobs))
            if self.placed_variant(j) is None
        }

    def reason(self, j: int) -> str:
        """Why job j has no units in this state: a true sentence a person can act on.

        Derived from facts of the state, in this order: (1) it fits nowhere even alone (around
        pinned jobs and unavailable GPUs, within power); (2) it fits alone, but not in what
        is free now: what it needs, what is free, and who holds the rest; (3) its smallest
        size fits in the free GPUs, and adding it would lower the objective; (4) the free
        GPUs have the room but no placement of it meets its scopes.
        """
        inst, ix = self.inst, self.ix
        job = inst.jobs[j]
        if getattr(self, "_alone_counts", None) is None:
            pinned = np.zeros(ix.n_gpus, bool)
            for jj, jb in enumerate(inst.jobs):
                if jb.pinned and jb.current:
                    pinned[self.job_gpus[jj]] = True
            alone_free = ix.available & ~pinned
            used = ix.available & pinned
            power_left = ix.power_cap_kW - np.bincount(
                ix.dom[0][used], weights=self.gpu_power[used], minlength=ix.n_sites
            )
            self._alone = (alone_free, power_left)
            self._alone_counts = FreeCounts(ix, alone_free, power_left)
        alone = fit_nowhere_reason(inst, ix, job, self._alone[0], counts=self._alone_counts)
        if alone:
            return alone
        # one count of the free GPUs serves every job asked about in the same state
        key = self.version
        if getattr(self, "_counts_key", None) != key:
            self._counts = FreeCounts(ix, self.free.copy(), self.power_left.copy())
            self._counts_key = key
        now = fit_nowhere_reason(inst, ix, job, self.free, counts=self._counts)
        k = smallest_units(job)
        units = f"{k} unit" if k == 1 else f"{k} units"
        unreached = any(v in self.unreached for v in siblings(inst, j))
        if now and unreached:
            # a deadline hit before its turn (a short limit, after the offers-first policy's
            # leases, say): the time limit is the cause; what is free now is the fact after it
            return (
                "not reached before the time limit: the solve stopped at its deadline "
                f"before trying it, and what it left free cannot hold it: {now} now; "
                f"{self._holders(job)}"
            )
        if now:
            return f"{now} now; {self._holders(job)}"
        if unreached:
            return (
                "not reached before the time limit: the solve stopped at its deadline "
                f"before trying it (the free GPUs hold its {k * job.unit_size:,} GPUs, "
                f"{units}, by count)"
            )
        self._reason_searches = getattr(self, "_reason_searches", 0) + 1
        late = _late(getattr(self, "_reason_deadline", None))
        if self._reason_searches > 64 or late:  # thousands left out, or no time: no search
            why = (
                "the time limit was reached before the search placed it, " if self.timed_out else ""
            )
            return (
                f"the free GPUs could hold its {k * job.unit_size:,} GPUs ({units}) by count, "
                f"but the solve placed none: {why}they are fragmented across its scope's "
                "domains, or placing it would not raise the objective"
            )
        cands = self.candidates(j, max_units=k)
        if cands:
            _, val = self.best_candidate(j, cands)
            fit = f"{k * job.unit_size:,} GPUs ({units}) fit in the free GPUs"
            if val > 0:
                # an improving placement is never described as a loss: the solve did not
                # get to it (a deadline), or did not try this size
                why = (
                    "the solve's time limit was reached before its search came back to it"
                    if self.timed_out
                    else "the solve tried it only at its turn and at the most units one "
                    "domain held, which did not fit or did not raise the objective"
                )
                return f"{fit} and placing them would raise the objective by {val:+,.1f} vu; {why}"
            if val == 0:
                return f"{fit}, but placing them does not raise the objective"
            return (
                f"{fit}, but placing them changes the objective by {val:+,.1f} vu (WAN "
                f"sharing, power or migration costs outweigh its value)"
            )
        return (
            f"the free GPUs hold no placement of {units} ({k * job.unit_size:,} GPUs) that "
            f"meets its scopes; {self._holders(job)}"
        )

    def _holders(self, job: Job) -> str:
        """Who holds the GPUs of the job's allowed types: the largest holders, by GPUs
        (once per state and set of types: thousands of jobs left out ask the same)."""
        types = tuple(allowed_types(self.inst, self.ix, job))
        cache = getattr(self, "_holders_cache", None)
        if cache is None or cache[0] != self.version:
            cache = self._holders_cache = (self.version, {})
        if types not in cache[1]:
            cache[1][types] = self._holders_of(types)
        return cache[1][types]

    def _holders_of(self, types: tuple[int, ...]) -> str:
        ix = self.ix
        ok = np.isin(ix.gpu_type, types)
        held = []
        for jj, g in enumerate(self.job_gpus):
            n = int(ok[g].sum()) if len(g) else 0
            if n:
                held.append((n, f"job {self.inst.jobs[jj].name!r}"))
        for o, blocks in enumerate(self.offer_blocks):
            n = sum(int(ok[self.block_gpus(b)].sum()) for b in blocks)
            if n:
                held.append((n, f"lease {self.inst.offers[o].name!r}"))
        if not held:
            return "no job or lease holds any of them"
        held.sort(key=lambda x: (-x[0], x[1]))
        top = ", ".join(f"{name} ({n:,})" for n, name in held[:3])
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        return f"those of its types are held by {top}{more}"

    # ------------------------------------------------------------------ leases
    def eligible_blocks(self, o: int) -> list[tuple[int, int, int, int]]:
        """(available GPUs, site, level, id) of whole free blocks offer o may take."""
        inst, ix = self.inst, self.ix
        offer = inst.offers[o]
        lvl = ix.level_index(inst.offer_level(offer))
        fg = ix.first_gpu[lvl]
        a, b = fg[:-1], fg[1:]
        busy = np.concatenate([[0], np.cumsum(~self.free & ix.available)])
        avail = np.concatenate([[0], np.cumsum(ix.available)])
        taken = np.zeros(ix.n_gpus + 1, np.int64)
        for bl in self.offer_blocks:
            for lv, d in bl:
                x, y = ix.gpu_range(lv, d)
                taken[x] += 1
                taken[y] -= 1
        leased = np.concatenate([[0], np.cumsum(np.cumsum(taken)[:-1] > 0)])
        ok = (busy[b] - busy[a] == 0) & (leased[b] - leased[a] == 0) & (b > a)
        site = ix.dom[0][np.minimum(a, ix.n_gpus - 1)]
        if offer.sites is not None:
            allowed = np.isin(site, [ix.site_index[s] for s in offer.sites])
            ok &= allowed
        if offer.gpu_types is not None:
            codes = [ix.type_names.index(t) for t in offer.gpu_types if t in ix.type_names]
            good = np.isin(ix.gpu_type, codes)
            gc = np.concatenate([[0], np.cumsum(good)])
            ok &= (gc[b] - gc[a]) == (b - a)
        cnt = avail[b] - avail[a]
        ids = np.flatnonzero(ok & (cnt > 0))
        return [(int(cnt[d]), int(site[d]), lvl, int(d)) for d in ids]

    def lease_greedy(self, o: int) -> bool:
        """Accept offer o on whole free blocks if its min_gpus can be met (never one with
        ``force: decline``)."""
        offer = self.inst.offers[o]
        if offer.force == "decline":
            return False
        if self.offer_blocks[o] and not offer.committed_blocks:
            return True
        have = sum(len(self.block_gpus(b)) for b in self.offer_blocks[o])
        hi = offer.max_gpus if offer.max_gpus is not None else np.inf
        blocks = self.eligible_blocks(o)
        if offer.single_site:
            fixed = {int(self.ix.dom[0][self.ix.gpu_range(*b)[0]]) for b in self.offer_blocks[o]}
            by_site: dict[int, int] = {}
            for c, s, _, _ in blocks:
                by_site[s] = by_site.get(s, 0) + c
            if fixed:
                site = next(iter(fixed))
            elif by_site:
                site = max(by_site, key=lambda s: (by_site[s], -s))
            else:
                return bool(self.offer_blocks[o])
            blocks = [b for b in blocks if b[1] == site]
        blocks.sort(key=lambda b: (-b[0], b[3]))
        chosen = []
        pw = self.power_left.copy()
        for c, s, lvl, d in blocks:
            if have + c > hi:
                continue
            g = self.block_gpus((lvl, d))
            need = self.gpu_power[g].sum()
            if need > pw[s] + 1e-9:
                continue
            pw[s] -= need
            chosen.append((lvl, d))
            have += c
        if have < offer.min_gpus or (not chosen and not self.offer_blocks[o]):
            return bool(self.offer_blocks[o])
        for bl in chosen:
            self.add_block(o, bl)
        return True


def inverted_fabric(ix, s: int) -> bool:
    """Site s has a level slower than the level that contains it (higher latency or lower
    bandwidth inside, as random fabrics may draw): packing tightly is then not always best."""
    lat, bw = ix.lat_us[s], ix.bw_GBps[s]
    return bool((np.diff(lat) > 0).any() or (np.diff(bw) < 0).any())


def pp_inner_job(job: Job) -> Job | None:
    """The job with the roles of TP and PP exchanged (sizes, scopes, latency bounds), for
    packing PP chains innermost; None when that layout is the same as TP innermost."""
    if job.tp <= 1 or job.pp <= 1:
        return None
    eff = job.effective_scope()

    def scope_of(d: str) -> str | None:
        explicit = getattr(job.scope, d)
        if explicit is None and getattr(job.max_latency_us, d) is None:
            return eff[d]  # the default, written out (the defaults of tp and pp differ)
        return explicit

    scope = job.scope.model_copy(update={"tp": scope_of("pp"), "pp": scope_of("tp")})
    lat = job.max_latency_us.model_copy(
        update={"tp": job.max_latency_us.pp, "pp": job.max_latency_us.tp}
    )
    return job.model_copy(
        update={"tp": job.pp, "pp": job.tp, "scope": scope, "max_latency_us": lat}
    )


def from_pp_inner(job: Job, g: np.ndarray) -> np.ndarray:
    """Rank order of `job` from GPUs packed for :func:`pp_inner_job`: there rank
    u*tp*pp + t*pp + p holds (t, p, u), here u*tp*pp + p*tp + t."""
    n = len(g) // job.unit_size
    return np.ascontiguousarray(g.reshape(n, job.tp, job.pp).transpose(0, 2, 1)).reshape(-1)


def stage_major(job: Job, g: np.ndarray) -> np.ndarray | None:
    """The same GPUs with stages outermost: R[u, p] = slot p*n + u (slots in tree order).

    Keeps TP groups whole and puts the units' slots of one stage side by side, so DP
    groups meet narrower while PP boundaries span wider; the kernel decides which wins.
    """
    n = len(g) // job.unit_size
    if n <= 1 or job.pp <= 1:
        return None
    slots = g.reshape(n * job.pp, job.tp)
    R = slots.reshape(job.pp, n, job.tp).transpose(1, 0, 2)
    return np.ascontiguousarray(R).reshape(-1)


class _OneJob:
    """An instance seen with one job only (its index, topology and offers are the
    instance's): what the per-job rules need to check one candidate."""

    def __init__(self, inst: Instance, job: Job) -> None:
        self._inst = inst
        self.jobs = [job]
        self.offers = []

    def __getattr__(self, name: str):
        return getattr(self._inst, name)


def scope_ok(inst: Instance, j: int, g: np.ndarray) -> bool:
    """Rules 1-5 hold for job j alone on GPUs g (available, one allowed type, sizes,
    scopes, spread); a running job's `current` may break any of them."""
    # the rules see an instance of job j alone: checking one candidate costs the same at
    # 5,000 jobs as at 5 (with the whole job list it was most of a large greedy's time)
    one = _OneJob(inst, inst.jobs[j])
    cp = Compiled([g], [], [0])
    name = inst.jobs[j].name
    # rule 1 for one job (ids exist, available, none twice) without the checker's
    # GPU-owner table, which costs a million-entry array per candidate at 1M GPUs
    ix = inst.index
    g = np.asarray(g, np.int64)
    if len(g) and (
        g.min() < 0 or g.max() >= ix.n_gpus or not ix.available[g].all() or has_repeats(g)
    ):
        return False
    for rule in (rule2_types, rule3_sizes, rule4_scope, rule5_spread):
        for v in rule(one, cp):
            if v.job == name and not (v.rule == 3 and "not placed" in v.what):
                return False
    return True


def job_order(inst: Instance) -> list[int]:
    """Greedy priority: must-place running jobs, value x speed, size, name."""
    ix = inst.index

    def key(j: int):
        job = inst.jobs[j]
        types = allowed_types(inst, ix, job)
        speed = max((ix.type_speed[t] for t in types), default=1.0)
        return (
            not must_place(inst, j),
            -job.value * speed,
            -job.units_max * job.unit_size,
            job.name,
        )

    # SPEC v3: a group of variants is placed as a whole, at its first variant's turn
    return group_heads(inst, sorted(range(len(inst.jobs)), key=key))


def offer_order(inst: Instance) -> list[int]:
    return sorted(
        range(len(inst.offers)),
        key=lambda o: (
            # signed and forced offers first: they must be accepted (SPEC v2 `force`)
            not (inst.offers[o].committed_blocks or inst.offers[o].force == "accept"),
            -inst.offers[o].price_per_gpu_hour,
            inst.offers[o].name,
        ),
    )


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def greedy_policy(
    inst: Instance, leases_first: bool, deadline: float | None = None, final: bool = True
) -> State:
    """One greedy policy (see the module overview). Past `deadline` it stops placing jobs
    (those left keep 0 units: the state stays a valid placement). Not `final` (it will be
    resumed): a policy cut by its deadline leaves the offers for :func:`resume`, which would
    otherwise find the free blocks its unreached jobs need leased out."""
    st = State(inst)
    st.leases_first = leases_first
    for o in offer_order(inst):  # offers that must be accepted come before any job
        if inst.offers[o].force == "accept":
            st.lease_greedy(o)
    if leases_first:
        for o in offer_order(inst):
            st.lease_greedy(o)
    for j in job_order(inst):
        job = inst.jobs[j]
        if job.pinned and job.current:
            continue
        if _late(deadline) and not must_place(inst, j):
            if st.placed_variant(j) is None:
                st.mark_unreached(j)
            continue
        st.place_best(j, deadline=deadline)
    if not final and st.unreached:
        return st
    if not leases_first:
        for o in offer_order(inst):
            st.lease_greedy(o)
    grow(st, deadline)
    return st


def resume(st: State, deadline: float | None = None) -> int:
    """Go on with a greedy that a deadline stopped: place the jobs it did not reach, in its
    order, until `deadline` (a local search would first re-place every job already placed,
    which at 5,000 jobs is the whole time). Returns the jobs placed."""
    placed = 0
    for j in job_order(st.inst):
        if j not in st.unreached:
            continue
        if _late(deadline):
            break
        st.unreached.discard(j)
        placed += bool(st.place_best(j, deadline=deadline))
    # the offers, then the elastic jobs' growth, as the policy ends (leasing is quick, so it
    # is done even past the deadline: an unleased offer is value left on the table)
    for o in offer_order(st.inst):
        st.lease_greedy(o)
    grow(st, deadline)
    return placed


def _no_room(st: State, j: int, free_types: np.ndarray) -> bool:
    """No variant of j's group (none running) has its fewest GPUs free in its allowed types
    in all (`free_types`: free GPUs per type): no candidate exists, so a search is skipped.
    (After a 1M-GPU plan is packed, grow searched for each of the 2,700 jobs the plan left
    out: a fifth of the packing's time.)"""
    inst, ix = st.inst, st.ix
    for s in siblings(inst, j):
        job = inst.jobs[s]
        if job.current:
            return False
        n = smallest_units(job) * job.unit_size
        if n and n <= int(free_types[allowed_types(inst, ix, job)].sum()):
            return False
    return True


def grow(st: State, deadline: float | None = None) -> None:
    """Give elastic jobs more units where free capacity allows (kernel-checked)."""
    inst = st.inst
    free_types, seen = None, None
    for j in job_order(inst):
        if _late(deadline):
            st.timed_out = True
            return
        job = inst.jobs[j]
        if job.pinned and job.current:
            continue
        v = st.placed_variant(j)
        if v is None:
            if seen != st.version:  # free GPUs per type when the state changed (the
                # packer keeps its per-node counts current: a sum, not a pass over the GPUs)
                free_types = np.array(
                    [int(st.packer._nodes_free(t).sum()) for t in range(len(st.ix.type_names))]
                )
                seen = st.version
            if _no_room(st, j, free_types):
                continue
        if (
            v is not None
            and len(st.job_gpus[v]) // inst.jobs[v].unit_size >= inst.jobs[v].units_max
        ):
            continue
        before = st.objective
        old = st.group_placement(j)
        st.place_best(j, deadline=deadline)
        if st.objective < before - 1e-9:
            st.restore_group(j, old)


def best_greedy(inst, deadline: float | None = None, final: bool = True):
    """The better of the two policies; a state that keeps every running, non-preemptible
    job placed beats one that does not, and on a tie the jobs-first policy's. The
    offers-first policy runs first: its leases take whole blocks out of the search, so its
    pass is the shorter (the headline three-campus instance: 0.08 s against 0.76 s, where
    one frontier run's search over 180k GPUs is most of the jobs-first pass), and a short
    limit returns its complete placement rather than a cut jobs-first one (which there is
    308 M against 349 M). Past `deadline`, the second policy is skipped (not `final`: see
    :func:`greedy_policy`); with no deadline both run in full, so the order changes
    nothing."""
    if not inst.offers:
        return greedy_policy(inst, leases_first=False, deadline=deadline, final=final)
    b = greedy_policy(inst, leases_first=True, deadline=deadline, final=final)
    if deadline is not None and time.perf_counter() > deadline:
        b.second_policy_skipped = True
        return b
    a = greedy_policy(inst, leases_first=False, deadline=deadline)

    def key(st):
        return (not st.unplaced_musts(), st.objective)

    if key(b) > key(a):
        # the second policy cut by the deadline and worse for it: to be run again in full
        # by pipeline.finish_greedy, as if skipped (100k GPUs at 10 s: 2.76 M kept where
        # the uncut other policy gives 2.94 M)
        b.second_policy_skipped = a.timed_out
        return b
    return a
