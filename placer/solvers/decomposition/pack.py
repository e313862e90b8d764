"""Packing a job's units onto free GPUs inside the topology, ranks in topology order.

Algorithm overview (for one job, one GPU type, n units, inside a region of sites)
1. Pick the levels: TP slots at the narrowest level whose domains can hold `tp` GPUs,
   within the TP scope; blocks of B units (B = 1, or B = ep for MoE jobs) whose stage
   groups (B slots) sit inside the EP scope and whose pp stage groups sit inside the PP
   scope; with B = 1, EP blocks of `ep` consecutive units inside the EP scope.
2. Count, in one vectorised pass over the free GPUs of the type (tree order, so every
   domain is a contiguous run): slots per slot-domain, units per chain-domain, whole EP
   blocks per EP-domain.
3. Choose the domain D that holds the whole job at the narrowest level allowed by the DP
   and EP scopes, best fit (fewest spare units, ties to the lowest path), so that jobs
   stay compact and large holes stay whole.
4. Take the first n units of D in tree order and write ranks TP-innermost:
   rank = u*pp*tp + p*tp + t. With B = 1 a unit's stages are consecutive slots, so PP
   chains are compact; with B = ep the stage p of the block's units are consecutive
   slots (R[u, p] = slot p*B + u), so EP groups are compact and PP chains span the
   block -- the layout an EP group of 16 trays in one NVL72 rack needs.
Inference jobs with `spread` take units round-robin over the domains of the spread level.

Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placer.kernel.capacity import dimension_level
from placer.kernel.topology import unique_ints
from placer.model import Instance, Job


def layout(B) -> tuple[int, bool, bool, bool]:
    """(block size, wide chains, wide slots, DP block) from a layout given as B, (B, wide),
    (B, wide, wide_slots) or (B, wide, wide_slots, dp_block). A DP block is one block of
    all n units (:meth:`Packer.place_block`): its stage groups lie inside the DP scope."""
    if isinstance(B, tuple):
        return (
            int(B[0]),
            bool(B[1]),
            bool(B[2]) if len(B) > 2 else False,
            bool(B[3]) if len(B) > 3 else False,
        )
    return (int(B), False, False, False)


def _runs_pos_len(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position of each element inside its run of equal consecutive keys, that run's
    length): per-domain counts of items in tree order without an array over every domain
    of the level (125,000 nodes at 1M GPUs, allocated per call)."""
    n = len(keys)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z
    start = np.ones(n, bool)
    start[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(start)
    lens = np.diff(np.append(starts, n))
    run = np.cumsum(start) - 1
    return np.arange(n) - starts[run], lens[run]


def _runs_cumcount(keys: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal consecutive keys."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64)
    start = np.ones(n, bool)
    start[1:] = keys[1:] != keys[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    return np.arange(n) - first


def _has_groups(job: Job, dim: str) -> bool:
    """Whether some placement of `job` has a group of `dim` with two or more members (only
    those are bound by the dimension's scope and latency bound)."""
    if dim == "tp":
        return job.tp > 1
    if dim == "pp":
        return job.pp > 1
    if job.kind != "training":
        return False  # an inference job's replicas share no DP or EP collective
    if dim == "ep":
        return job.ep > 1
    return job.units_max > 1


@dataclass
class Units:
    """Candidate units of a job on the free GPUs: ``gpus`` int64 (U, pp*tp) in rank order."""

    gpus: np.ndarray
    first: np.ndarray  # int64 (U,): first GPU of each unit (tree order)

    def __len__(self) -> int:
        return len(self.gpus)


class Packer:
    """Packs jobs onto the free GPUs of one instance (see the module overview)."""

    def __init__(self, inst: Instance, free: np.ndarray) -> None:
        self.inst = inst
        self.ix = inst.index
        self.free = free  # bool (G,), mutated by take() (and by its owner, who calls touch())
        self._cap_cache: dict[int, list[int]] = {}
        # counted search: per (type, region) the running count of free GPUs of the type,
        # valid while no site it covers was touched (see :meth:`touch`)
        self._site_gen = np.zeros(self.ix.n_sites, np.int64)
        self._cum_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._count_cache: dict[tuple, tuple[np.ndarray, tuple]] = {}
        self._anc: dict[tuple[int, int], np.ndarray] = {}
        self._node_free: dict[int, np.ndarray] = {}
        # levels per (job object, type, layout): they depend on the job's shape and scopes
        # and on the instance only (the greedy asked for them ~15 times per job at 1M GPUs,
        # 9% of its pass); the job is kept with its entry so that a reused id cannot hit
        self._levels: dict[tuple, tuple] = {}
        self._place_cache: dict[tuple, tuple] = {}  # see :meth:`place`

    def touch(self, gpus: np.ndarray | tuple[int, int] | None = None) -> None:
        """Say that `free` changed at `gpus` (an index array, a (start, stop) range, or None
        for anywhere): the counts cached for their sites are recomputed when next asked."""
        ix = self.ix
        if gpus is None:
            self._site_gen += 1
            self._node_free.clear()
            return
        if isinstance(gpus, tuple):
            a, b = gpus
            if b <= a:
                return
            self._site_gen[ix.dom[0][a] : ix.dom[0][b - 1] + 1] += 1
            nodes = np.arange(int(ix.gpu_node[a]), int(ix.gpu_node[b - 1]) + 1)
        else:
            if not len(gpus):
                return
            self._site_gen[unique_ints(ix.dom[0][gpus])] += 1
            nodes = unique_ints(ix.gpu_node[gpus])
        if self._node_free:
            # recount the free GPUs of each type in the touched nodes only
            fg = ix.first_gpu[ix.n_levels - 1]
            starts, lens = fg[nodes], fg[nodes + 1] - fg[nodes]
            offs = np.concatenate([[0], np.cumsum(lens)[:-1]])
            idx = np.repeat(starts - offs, lens) + np.arange(int(lens.sum()))
            f = self.free[idx]
            for t, counts in self._node_free.items():
                m = (f & (ix.gpu_type[idx] == t)).astype(np.int64)
                counts[nodes] = np.add.reduceat(m, offs) if len(m) else 0

    def _nodes_free(self, t: int) -> np.ndarray:
        """Free GPUs of type t per node: int64 (N,), kept current by :meth:`touch`."""
        got = self._node_free.get(t)
        if got is None:
            ix = self.ix
            got = self._node_free[t] = np.bincount(
                ix.gpu_node[self.free & (ix.gpu_type == t)], minlength=len(ix.node_gpus)
            ).astype(np.int64)
        return got

    # ------------------------------------------------------------------ levels
    def _caps(self, t: int) -> list[int]:
        ix = self.ix
        key = t
        c = self._cap_cache.get(key)
        if c is None:
            c = [
                int(
                    np.bincount(
                        ix.dom[lvl][(ix.gpu_type == t) & ix.available], minlength=ix.n_domains(lvl)
                    ).max(initial=0)
                )
                for lvl in range(ix.n_levels)
            ]
            self._cap_cache[key] = c
        return c

    def levels_for(self, job: Job, t: int, B=1) -> tuple[int, int, int, int, int] | None:
        """(slot, group, chain, ep, job) levels for a job on type t with blocks of B units;
        None if a TP group, a stage group or a PP chain fits no domain.

        slot: a TP group (tp GPUs); group: one stage of B units (B slots); chain: a block
        (pp stage groups, B*pp slots); ep: EP blocks of ep units (unit-major layout); job:
        the widest domain the DP/EP scopes allow for the whole job.
        """
        key = (id(job), t, B)
        hit = self._levels.get(key)
        if hit is not None and hit[0] is job:
            return hit[1]
        out = self._levels_for(job, t, B)
        self._levels[key] = (job, out)
        return out

    def _levels_for(self, job: Job, t: int, B=1) -> tuple[int, int, int, int, int] | None:
        ix = self.ix
        L = ix.n_levels
        B, wide, wide_slots, dp_block = layout(B)
        # a scope binds only groups of two or more members (SPEC 3 rule 4; the kernel's
        # check skips singleton groups): with pp = 1 a `pp: node` scope must not hold a
        # 4-GPU TP group of 2-GPU nodes inside one node (issue 16 part 6)
        lim = {
            d: (dimension_level(self.inst, ix, job, d) or 0) if _has_groups(job, d) else 0
            for d in ("tp", "pp", "dp", "ep")
        }
        cap = self._caps(t)
        tp, pp = job.tp, job.pp
        if wide_slots:
            # TP groups from consecutive free GPUs of the widest domain the TP scope allows:
            # no capacity lost to fragments of narrower domains (e.g. 2-GPU nodes around
            # unavailable ones), at the price of wider TP groups; the kernel decides
            slot = lim["tp"] if cap[lim["tp"]] >= tp else None
        else:
            slot = next((lv for lv in range(L - 1, lim["tp"] - 1, -1) if cap[lv] >= tp), None)
        if slot is None:
            return None
        training = job.kind == "training"
        if dp_block:
            # a DP block's stage group holds one member of every DP (and EP) group
            g_lim = max(lim["dp"], lim["ep"])
        else:
            g_lim = lim["ep"] if (training and B > 1) else 0
        group = next((lv for lv in range(slot, g_lim - 1, -1) if cap[lv] >= B * tp), None)
        if group is None:
            return None
        # a PP chain runs through the block's stage groups: the block lies in a pp domain,
        # the narrowest that holds it (compact) or, `wide`, the widest the scope allows (no
        # capacity lost to fragments of narrow domains)
        chain = next((lv for lv in range(group, lim["pp"] - 1, -1) if cap[lv] >= B * tp * pp), None)
        if chain is None:
            return None
        if wide:
            chain = min(group, max(lim["pp"], lim["dp"] if training else 0))
        if training and job.ep > 1 and B == 1:
            need = job.ep * tp * pp
            if wide and lim["ep"] <= chain and cap[lim["ep"]] >= need:
                # EP groups of consecutive units in the widest domain the EP scope allows:
                # when running jobs and unavailable GPUs leave no narrow domain with a whole
                # EP group free, the group spans them (the kernel scores the slower fabric)
                ep_level = lim["ep"]
            else:
                ep_level = next(
                    (lv for lv in range(chain, lim["ep"] - 1, -1) if cap[lv] >= need), None
                )
            if ep_level is None:
                return None
        else:
            ep_level = chain
        # DP groups span every unit: the whole job lies in one domain of the DP scope
        job_level = min(lim["dp"], ep_level) if training else 0
        return slot, group, chain, ep_level, job_level

    def _free_of_type(self, t: int, region) -> np.ndarray:
        """Free GPUs of type t inside `region`: None (everywhere), a (start, stop) range of
        GPU indices (a site or any domain: contiguous in tree order), a sorted list of such
        ranges (whole sites: the counted search keeps its per-site counts) or a bool mask."""
        ix = self.ix
        if region is None:
            return np.flatnonzero(self.free & (ix.gpu_type == t))
        if isinstance(region, tuple):
            a, b = region
            return a + np.flatnonzero(self.free[a:b] & (ix.gpu_type[a:b] == t))
        if isinstance(region, list):  # sorted, disjoint (start, stop) ranges
            return np.concatenate(
                [np.zeros(0, np.int64)] + [self._free_of_type(t, r) for r in region]
            )
        return np.flatnonzero(self.free & (ix.gpu_type == t) & region)

    def layouts(self, job: Job) -> list[tuple]:
        """Layouts to try: (B, wide) with B = 1 (unit-major) or ep (stage-major EP blocks),
        and chains in the narrowest or the widest allowed domain (when pp > 1); when tp > 1
        also TP groups in the widest domain the TP scope allows, (1, wide, True)."""
        out: list[tuple] = [(1, False)]
        if job.pp > 1 or (job.kind == "training" and job.ep > 1):
            out.append((1, True))
        if job.tp > 1:
            out.append((1, job.pp > 1, True))
        if job.kind == "training" and job.ep > 1 and job.pp > 1:
            out += [(job.ep, False), (job.ep, True)]
        return out

    def distinct_layouts(self, job: Job, t: int) -> list:
        """:meth:`layouts` less those that pack exactly as an earlier one on type t (same
        levels and block size: e.g. TP groups of a node-scoped job are node-wide either
        way), so a candidate search does not build and score the same placement twice."""
        out, seen = [], set()
        for B in self.layouts(job):
            key = (self.levels_for(job, t, B), layout(B)[0])
            if key not in seen:
                seen.add(key)
                out.append(B)
        return out

    def units(
        self,
        job: Job,
        t: int,
        region=None,
        B=1,
        levels: tuple[int, int, int, int, int] | None = None,
    ) -> Units:
        """Every whole unit the free GPUs of type t (inside `region`) can form, in blocks
        of B units (B > 1: stage-major inside a block, R[u, p] = slot p*B + u)."""
        ix = self.ix
        lv = levels or self.levels_for(job, t, B)
        B = layout(B)[0]
        empty = Units(np.zeros((0, job.unit_size), np.int64), np.zeros(0, np.int64))
        if lv is None:
            return empty
        slot, group, chain, ep_level, _ = lv
        idx = self._free_of_type(t, region)
        tp, pp = job.tp, job.pp

        def whole(keys_level: int, items: np.ndarray, k: int) -> np.ndarray:
            """Keep, per domain of keys_level, a multiple of k items (runs are contiguous)."""
            d = ix.dom[keys_level][items if items.ndim == 1 else items[:, 0]]
            pos, cnt = _runs_pos_len(d)  # items ascend: a domain's items are one run
            return items[pos < (cnt // k) * k]

        idx = whole(slot, idx, tp)
        slots = idx.reshape(-1, tp)
        if B > 1:
            slots = whole(group, slots, B)
        slots = whole(chain, slots, B * pp)
        blocks = slots.reshape(-1, pp, B, tp)  # [block][stage][unit][t]
        units = np.ascontiguousarray(blocks.transpose(0, 2, 1, 3)).reshape(-1, pp * tp)
        if B == 1 and job.kind == "training" and job.ep > 1:
            units = whole(ep_level, units, job.ep)
        if len(units) == 0:
            return empty
        return Units(units.astype(np.int64), units.min(axis=1).astype(np.int64))

    # ------------------------------------------------------------------ counted search
    def _span(self, region) -> tuple[int, int, np.ndarray | None]:
        """(start, stop, mask or None) of a region given as for :meth:`_free_of_type`."""
        if region is None:
            return 0, self.ix.n_gpus, None
        if isinstance(region, tuple):
            return int(region[0]), int(region[1]), None
        return 0, self.ix.n_gpus, region

    def _cum(self, t: int, region) -> np.ndarray:
        """Running count (length stop-start+1) of the free GPUs of type t in the region."""
        a, b, mask = self._span(region)
        if mask is not None:
            f = self.free & (self.ix.gpu_type == t) & mask
            return np.concatenate([[0], np.cumsum(f, dtype=np.int64)])
        key = (t, a, b)
        sites = slice(int(self.ix.dom[0][a]), int(self.ix.dom[0][b - 1]) + 1) if b > a else None
        gen = self._site_gen[sites].tobytes() if sites is not None else b""
        hit = self._cum_cache.get(key)
        if hit is not None and hit[0] == gen:
            return hit[1]
        f = self.free[a:b] & (self.ix.gpu_type[a:b] == t)
        cs = np.concatenate([[0], np.cumsum(f, dtype=np.int64)])
        self._cum_cache[key] = (gen, cs)
        return cs

    def _ids(self, level: int, a: int, b: int) -> np.ndarray:
        """Ids of the domains of `level` that meet the GPU range [a, b) (contiguous)."""
        return np.arange(int(self.ix.dom[level][a]), int(self.ix.dom[level][b - 1]) + 1)

    def _parent_of(self, m: int, level: int) -> np.ndarray:
        """The domain of `level` holding each domain of level m (m at least as narrow)."""
        key = (m, level)
        got = self._anc.get(key)
        if got is None:
            ix = self.ix
            first = np.minimum(ix.first_gpu[m][:-1], ix.n_gpus - 1)
            got = self._anc[key] = ix.dom[level][first].astype(np.int64)
        return got

    def unit_counts(
        self, job: Job, t: int, region, B, lv: tuple[int, int, int, int, int], level: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, units) per domain of `level` (at most as narrow as the EP level of `lv`)
        inside region: the number of whole units :meth:`units` forms there, counted from
        free-GPU counts per domain without building the units, so a search over a million
        GPUs costs a few array reductions per level. Cached per job shape until a site of
        the region is touched (jobs of one shape share it)."""
        if isinstance(region, list):
            parts = [self.unit_counts(job, t, r, B, lv, level) for r in region]
            if not parts:
                z = np.zeros(0, np.int64)
                return z, z
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        a, b, mask = self._span(region)
        if b <= a:
            z = np.zeros(0, np.int64)
            return z, z
        Bn = layout(B)[0]
        epc = Bn == 1 and job.kind == "training" and job.ep > 1
        key = gen = None
        if mask is None:
            key = (t, a, b, job.tp, job.pp, Bn, job.ep if epc else 0, lv)
            gen = self._site_gen[int(self.ix.dom[0][a]) : int(self.ix.dom[0][b - 1]) + 1]
            gen = gen.tobytes()  # (bytes compare: array_equal cost 1 s of a 1M-GPU greedy)
            hit = self._count_cache.get((*key, level))
            if hit is not None and hit[0] == gen:
                return hit[1]
        # the units per domain of the EP level (a job shape's base): once per touch, then
        # summed up to each level a best fit asks for
        base = self._count_cache.get(key) if key is not None else None
        if base is not None and base[0] == gen:
            ids, vals, cur = base[1]
        else:
            ids, vals, cur = self._base_counts(job, t, region, a, b, Bn, epc, lv)
            if key is not None:
                self._count_cache[key] = (gen, (ids, vals, cur))
        out = self._up(ids, vals, cur, level)
        if key is not None:
            self._count_cache[(*key, level)] = (gen, out)
        return out

    def _up(self, ids: np.ndarray, vals: np.ndarray, m: int, to: int):
        """Values per domain of level m (ids) summed per domain of level `to` (as wide)."""
        if to == m or len(ids) == 0:
            return ids, vals
        par = self._parent_of(m, to)[ids]
        p0 = int(par[0])
        # ids ascend and parents follow tree order, so each parent's children are one run:
        # integer sums per run (a weighted bincount summed in floats, 1.7x slower)
        starts = np.flatnonzero(np.concatenate(([True], par[1:] != par[:-1])))
        sums = np.zeros(int(par[-1]) - p0 + 1, np.int64)
        sums[par[starts] - p0] = np.add.reduceat(np.asarray(vals, np.int64), starts)
        return np.arange(p0, p0 + len(sums)), sums

    def _base_counts(self, job: Job, t: int, region, a: int, b: int, Bn: int, epc: bool, lv):
        """(ids, units, level) per domain of the EP level (the chain level without EP)."""
        ix = self.ix
        slot, group, chain, ep_level, _ = lv
        nl = ix.n_levels - 1
        fgn = ix.first_gpu[nl]
        n0, n1 = int(ix.gpu_node[a]), int(ix.gpu_node[b - 1])
        if fgn[n0] == a and fgn[n1 + 1] == b:
            # whole nodes: free GPUs per slot domain from the per-node counts
            ids, free = self._up(np.arange(n0, n1 + 1), self._nodes_free(t)[n0 : n1 + 1], nl, slot)
            vals = free // job.tp
        else:
            cs = self._cum(t, region)
            fg = ix.first_gpu[slot]
            ids = self._ids(slot, a, b)
            st = np.clip(fg[ids], a, b) - a
            en = np.clip(fg[ids + 1], a, b) - a
            vals = (cs[en] - cs[st]) // job.tp  # TP slots per slot domain
        cur = slot
        if Bn > 1:
            ids, vals = self._up(ids, vals, cur, group)
            cur = group
            vals = (vals // Bn) * Bn
        ids, vals = self._up(ids, vals, cur, chain)
        cur = chain
        vals = (vals // (Bn * job.pp)) * Bn  # units per chain domain
        if epc:
            ids, vals = self._up(ids, vals, cur, ep_level)
            cur = ep_level
            vals = (vals // job.ep) * job.ep
        return ids, vals, cur

    def _domain_region(self, region, lo: int, hi: int):
        """The part of region inside GPU range [lo, hi)."""
        if isinstance(region, list):
            r = next(r for r in region if r[0] <= lo < r[1])
            return (max(lo, r[0]), min(hi, r[1]))
        _, _, mask = self._span(region)
        if mask is None:
            return (lo, hi)
        sub = np.zeros(self.ix.n_gpus, bool)
        sub[lo:hi] = mask[lo:hi]
        return sub

    def _step(self, job: Job, B) -> int:
        step = job.ep if (job.kind == "training" and job.ep > 1) else 1
        return max(step, layout(B)[0])

    def max_units_in_domain(
        self, job: Job, u: Units, level: int, B=1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, usable units per domain) at `level` for candidate units u."""
        d = self.ix.dom[level][u.first]
        ids, counts = np.unique(d, return_counts=True)
        step = self._step(job, B)
        return ids, (counts // step) * step

    def place_block(self, job: Job, t: int, n: int, region=None) -> np.ndarray | None:
        """n units of a training job as one stage-major block (R[u, p] = slot p*n + u):
        each stage's n TP groups inside one domain, the narrowest the DP and EP scopes allow
        that holds them, so that every DP group meets there; PP chains run through the
        stages' domains (as wide as the PP scope allows). None when it does not fit (or
        there is no PP to lay out)."""
        if job.kind != "training" or job.pp <= 1 or n <= 1 or n % max(job.unit_step, 1):
            return None
        return self.place(job, t, n, region, (n, True, False, True))

    def place_block_most(self, job: Job, t: int, n: int, region=None) -> np.ndarray | None:
        """:meth:`place_block` of the most units up to n that fit as one block: a domain
        holds whole stages only, so fragments can keep n itself from fitting."""
        g = self.place_block(job, t, n, region)
        if g is not None:
            return g
        step = max(job.unit_step, 1)
        lo, hi = 0, n // step - 1  # in steps: the largest count that fits, by bisection
        best = None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            g = self.place_block(job, t, mid * step, region)
            if g is not None:
                best, lo = g, mid
            else:
                hi = mid - 1
        return best if best is not None and len(best) // job.unit_size == lo * step else None

    def place(self, job: Job, t: int, n: int, region=None, B=1) -> np.ndarray | None:
        """GPUs (rank order) of n units of job on type t inside region, or None if no
        domain allowed by the scopes holds them. Does not take them.

        A site or sites given as ranges: the answer is kept per job shape (what the packing
        reads of a job: kind, tp, pp, ep, spread level, its levels) and n until a site of
        the region is touched; at 1M GPUs a third of the greedy's packings repeat one made
        for an earlier job of the same shape in a site no placement touched since."""
        if n <= 0 or region is None or not isinstance(region, (tuple, list)) or not region:
            return self._place(job, t, n, region, B)
        spans = region if isinstance(region, list) else [region]
        a, b = int(spans[0][0]), int(spans[-1][1])
        if b <= a:
            return self._place(job, t, n, region, B)
        lv = self.levels_for(job, t, B)
        spread = self.ix.level_index(job.spread.level) if job.spread is not None else None
        key = (t, n, job.kind, job.tp, job.pp, job.ep, spread, layout(B), lv, tuple(spans))
        gen = self._site_gen[int(self.ix.dom[0][a]) : int(self.ix.dom[0][b - 1]) + 1].tobytes()
        hit = self._place_cache.get(key)
        if hit is not None and hit[0] == gen:
            g = hit[1]
        else:
            g = self._place(job, t, n, region, B)
            self._place_cache[key] = (gen, g)
        return None if g is None else g.copy()

    def _place(self, job: Job, t: int, n: int, region=None, B=1) -> np.ndarray | None:
        if n <= 0:
            return np.zeros(0, np.int64)
        if n % self._step(job, B):
            return None
        lv = self.levels_for(job, t, B)
        if lv is None:
            return None
        if not (job.kind == "inference" and job.spread is not None):
            # best fit from counts, then the units of the chosen domain only
            narrow, wide = (lv[2], 0) if job.kind == "inference" else (lv[3], lv[4])
            step = self._step(job, B)
            for level in range(narrow, wide - 1, -1):
                ids, cnt = self.unit_counts(job, t, region, B, lv, level)
                cnt = (cnt // step) * step
                ok = np.flatnonzero(cnt >= n)
                if len(ok):
                    k = ok[np.argmin(cnt[ok])]  # fewest spare units; ties: lowest id
                    a, b, _ = self._span(region) if not isinstance(region, list) else (0, 0, 0)
                    if isinstance(region, list):
                        a, b = region[0][0], region[-1][1]
                    fg = self.ix.first_gpu[level]
                    lo = min(max(int(fg[ids[k]]), a), b)
                    hi = min(max(int(fg[ids[k] + 1]), a), b)
                    sub = self._domain_region(region, lo, hi)
                    if isinstance(sub, tuple):
                        sub = self._prefix(job, t, sub, B, lv, n)
                    u = self.units(job, t, sub, B, lv)
                    return u.gpus[:n].reshape(-1)
            return None
        sl = self.ix.level_index(job.spread.level)
        if sl <= lv[2] and (region is None or isinstance(region, (tuple, list))):
            return self._spread_counted(job, t, n, region, B, lv, sl)
        u = self.units(job, t, region, B, lv)
        if len(u) < n:
            return None
        ix = self.ix
        if job.kind == "inference":
            if job.spread is not None:
                sl = ix.level_index(job.spread.level)
                d = ix.dom[sl][u.first]
                order = np.lexsort((d, _runs_cumcount(d)))
                chosen = np.sort(order[:n])
                return u.gpus[chosen].reshape(-1)
            return self._best_fit(job, u, n, lv[2], 0, B)
        return self._best_fit(job, u, n, lv[3], lv[4], B)

    def _prefix(self, job: Job, t: int, region: tuple[int, int], B, lv, n: int):
        """The shortest run of whole nodes from the start of `region` (one domain) whose
        units number at least n. The units a prefix forms are a prefix of the units the whole
        region forms (each flooring step keeps the first items of each domain), so the first n
        units are built there alone: a site-wide domain has 250k GPUs at 1M."""
        lo, hi = region
        ix = self.ix
        nl = ix.n_levels - 1
        fgn = ix.first_gpu[nl]
        n0, n1 = int(ix.gpu_node[lo]), int(ix.gpu_node[hi - 1])
        if fgn[n0] != lo or fgn[n1 + 1] != hi:
            return region
        Bn = layout(B)[0]
        epc = Bn == 1 and job.kind == "training" and job.ep > 1
        # slots needed, as a first guess of where the n units end; doubled until they do
        cum = np.cumsum(self._nodes_free(t)[n0 : n1 + 1] // job.tp)
        need = n * job.pp * Bn * (job.ep if epc else 1)
        e = int(np.searchsorted(cum, need, "left"))
        while e < n1 - n0:
            cut = int(fgn[n0 + e + 1])
            got = int(self._base_counts(job, t, (lo, cut), lo, cut, Bn, epc, lv)[1].sum())
            if (got // self._step(job, B)) * self._step(job, B) >= n:
                return (lo, cut)
            e = 2 * e + 1
        return region

    def _spread_counted(
        self, job: Job, t: int, n: int, region, B, lv, sl: int
    ) -> np.ndarray | None:
        """Spread placement (round-robin over the domains of level sl, as in :meth:`place`)
        from unit counts: r whole rounds take min(count, r) units of each domain, the next
        round one more unit of the first domains (by id) that have one; only the chosen
        domains' units are built."""
        ids, c = self.unit_counts(job, t, region, B, lv, sl)
        if int(c.sum()) < n:
            return None
        lo, hi = 0, int(c.max(initial=0))
        while lo < hi:  # the most whole rounds r with sum(min(c, r)) <= n
            mid = (lo + hi + 1) // 2
            if int(np.minimum(c, mid).sum()) <= n:
                lo = mid
            else:
                hi = mid - 1
        taken = np.minimum(c, lo)
        rest = n - int(taken.sum())
        if rest:
            more = np.flatnonzero(c > lo)[:rest]
            taken[more] += 1
        pick = np.flatnonzero(taken)
        # build units only where they are taken: per chosen domain, from its start to the
        # end of the chain domain holding its last taken unit (units run in tree order)
        ch = lv[2]
        ids_c, c_c = self.unit_counts(job, t, region, B, lv, ch)
        par = self._parent_of(ch, sl)[ids_c]
        cum = np.cumsum(c_c)
        first = np.searchsorted(par, ids[pick], "left")
        base = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0)
        last = np.searchsorted(cum, base + taken[pick], "left")
        fg_s, fg_c = self.ix.first_gpu[sl], self.ix.first_gpu[ch]
        if isinstance(region, list):
            spans = region
        else:
            a, b, _ = self._span(region)
            spans = [(a, b)]
        where = []
        for d, e in zip(ids[pick].tolist(), ids_c[last].tolist()):
            x, y = int(fg_s[d]), int(fg_c[e + 1])
            r = next(r for r in spans if r[0] < y and x < r[1])
            where.append((max(x, r[0]), min(y, r[1])))
        u = self.units(job, t, where, B, lv)
        d = self.ix.dom[sl][u.first]
        want = np.zeros(len(d), np.int64)
        pos = np.searchsorted(ids, d)
        inside = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == d)
        want[inside] = taken[pos[inside]]
        sel = np.flatnonzero(_runs_cumcount(d) < want)
        if len(sel) != n:  # pragma: no cover - the counts and the units disagree (a bug)
            raise RuntimeError(f"spread packing: counted {n} units, built {len(sel)}")
        return u.gpus[sel].reshape(-1)

    def _best_fit(
        self, job: Job, u: Units, n: int, narrowest: int, widest: int, B
    ) -> np.ndarray | None:
        for level in range(narrowest, widest - 1, -1):
            ids, counts = self.max_units_in_domain(job, u, level, B)
            ok = counts >= n
            if ok.any():
                cand = np.flatnonzero(ok)
                best = cand[np.argmin(counts[cand])]  # fewest spare units; ties: lowest id
                sel = np.flatnonzero(self.ix.dom[level][u.first] == ids[best])[:n]
                return u.gpus[sel].reshape(-1)
        return None

    def max_fit(self, job: Job, t: int, region=None, B=1) -> int:
        """Most units of job on type t that one allowed domain holds (inference: region)."""
        lv = self.levels_for(job, t, B)
        if lv is None:
            return 0
        if job.kind == "inference":
            return int(self.unit_counts(job, t, region, B, lv, lv[2])[1].sum())
        cnt = self.unit_counts(job, t, region, B, lv, lv[4])[1]
        step = self._step(job, B)
        return int(((cnt // step) * step).max(initial=0))

    # ------------------------------------------------------------------ PP across sites
    def split_chains(
        self, job: Job, t: int, cap: int, sites: list[int], power_left: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Layouts of a training job whose PP chains may cross sites (PP scope `cluster`,
        Sailor's and Atlas's rule): every unit's stages split between consecutive sites of
        a WAN path, stages [p_i, p_i+1) of all n units in the path's i-th site, so each
        stage's DP group (and EP group) lies in one site. Per path (one from each start
        site, extended to the nearest connected site while stages are left), the most units
        up to `cap` whose stages fit the sites' free TP slots (and their power room); in a
        site, slots in tree order either stage-major (DP groups compact) or unit-major
        (chains compact). Only layouts that use two sites or more, and only when no site's
        free GPUs could hold the whole job: the other layouts cover one site. The kernel
        scores them, the rules check them."""
        ix = self.ix
        if job.kind != "training" or job.pp <= 1 or cap <= 0 or len(sites) < 2:
            return []
        if dimension_level(self.inst, ix, job, "pp") is not None:
            return []  # the PP scope keeps chains inside a site
        tp = job.tp
        want = min(cap, job.units_max) * job.unit_size
        if max(int(self._cum(t, ix.gpu_range(0, s))[-1]) for s in sites) >= want:
            # one site's free GPUs could hold the whole job: the one-site layouts cover it
            # (cached counts, so that jobs with such plans on large clusters cost little)
            return []
        lim_tp = (dimension_level(self.inst, ix, job, "tp") or 0) if tp > 1 else 0
        caps = self._caps(t)
        slot = next((lv for lv in range(ix.n_levels - 1, lim_tp - 1, -1) if caps[lv] >= tp), None)
        if slot is None:
            return []
        power = ix.type_power_kW[t]
        slots: dict[int, np.ndarray] = {}
        for s in sites:
            idx = self._free_of_type(t, ix.gpu_range(0, s))
            d = ix.dom[slot][idx]
            pos = _runs_cumcount(d)
            cnt = np.bincount(d, minlength=ix.n_domains(slot))[d]
            sl = idx[pos < (cnt // tp) * tp].reshape(-1, tp)
            if power_left is not None and np.isfinite(power_left[s]) and power > 0:
                sl = sl[: int(max(0.0, power_left[s] + 1e-9) // (power * tp))]
            if len(sl):
                slots[s] = sl
        bound = job.max_latency_us.pp
        step = max(job.unit_step, 1)
        out: list[np.ndarray] = []
        seen: set = set()
        for start in sorted(slots):
            path = [start]
            while True:
                last = path[-1]
                nxt = [
                    s
                    for s in slots
                    if s not in path
                    and np.isfinite(ix.wan_lat_us[last, s])
                    and (bound is None or ix.wan_lat_us[last, s] <= bound)
                ]
                if not nxt:
                    break
                path.append(min(nxt, key=lambda s: (ix.wan_lat_us[last, s], -len(slots[s]), s)))
            # every prefix of two sites or more: fewer sites, fewer WAN boundaries per chain
            # (the kernel weighs them against the units a longer path holds)
            for ell in range(2, len(path) + 1):
                plan = self._stage_split(job, path[:ell], slots, cap, step)
                if plan is None or len(plan[1]) < 2 or (plan[0], tuple(plan[1])) in seen:
                    continue
                seen.add((plan[0], tuple(plan[1])))
                out.extend(self._chain_layouts(job, slots, *plan))
        return out

    @staticmethod
    def _chain_layouts(job: Job, slots: dict, n: int, parts: list) -> list[np.ndarray]:
        """The GPUs (rank order) of n units whose stages fill `parts` [(site, stages)] in
        order, a site's slots stage-major (DP groups compact) or unit-major (chains)."""
        tp, pp = job.tp, job.pp
        out = []
        for stage_major in (True, False):
            R = np.empty((n, pp, tp), np.int64)
            p0 = 0
            for s, k in parts:
                take = slots[s][: n * k]
                if stage_major:
                    R[:, p0 : p0 + k] = take.reshape(k, n, tp).transpose(1, 0, 2)
                else:
                    R[:, p0 : p0 + k] = take.reshape(n, k, tp)
                p0 += k
            out.append(R.reshape(-1))
        return out

    @staticmethod
    def _stage_split(job: Job, path: list[int], slots: dict, cap: int, step: int):
        """(n, [(site, stages), ...]): the most units n (a multiple of step, at least the
        job's fewest, at most cap) whose pp stages fill the path's sites in order, each
        site taking as many whole stages of n slots as it holds; None if none fits."""
        lo = max(job.units_min, 1)
        lo = -(-lo // step) * step

        def parts(n: int):
            left, out = job.pp, []
            for s in path:
                k = min(left, len(slots[s]) // n)
                if k:
                    out.append((s, k))
                    left -= k
                if not left:
                    return out
            return None

        hi = min(cap, job.units_max) // step * step
        if hi < lo or parts(lo) is None:
            return None
        a, b = lo // step, hi // step  # bisection: fitting is monotone in n
        while a < b:
            mid = (a + b + 1) // 2
            if parts(mid * step) is not None:
                a = mid
            else:
                b = mid - 1
        return a * step, parts(a * step)

    def take(self, gpus: np.ndarray) -> None:
        self.free[gpus] = False
        self.touch(gpus)

    def give(self, gpus: np.ndarray) -> None:
        self.free[gpus] = True
        self.touch(gpus)
