"""Microsoft HiveD re-implemented: nested pod groups packed into the most-used cells that
fit, and lease offers as virtual clusters (VCs) of whole cells bound by buddy allocation
under the VC-safety invariant.

Source: ``shared/research/peers.md`` section 5 (5.2 the algorithm, 5.5 the mapping), which
follows microsoft/hivedscheduler ``pkg/algorithm/cell_allocation.go`` (``buddyAlloc``,
``getUsablePhysicalCells``, ``mapVirtualCellsToPhysical``),
``pkg/algorithm/topology_aware_scheduler.go`` (``findNodesForPods``: nodes sorted by used
leaf cells, first fit), ``pkg/algorithm/hived_algorithm.go`` (VC safety) and, for nested
groups with ``withinOneCell``, the unmerged branch ``xiongyf/cell-as-sku``
``pkg/algorithm/topology_guarantee_scheduler.go`` (``findCellsForPodGroup``,
``createSkuClusterView``) (master @ 66f26ac4).

Mapping: the cell chain of a GPU type is GPU -> node -> ... -> site (the topology's
levels); a job is an affinity group of pods (a TP group on one node, or a piece of one
when TP may span nodes) with nested groups ``withinOneCell`` its slice layers' levels, the
root within one cell of its DP-scope level; a lease offer is a VC whose virtual cells are
whole cells of the offer's level (``single_site``/``sites`` restrict which physical cells
may back them; committed blocks are pinned cells).

Algorithm overview
1. Group placement (``findCellsForPodGroup``): candidate cells of the group's level inside
   its parent cell, sorted by used GPUs descending (pack), then address (topology order);
   the first cell in which the group's pods and child groups all fit wins (a child group
   the same way inside it). Pods (``findCellsForPods``): the nodes of the cell sorted by
   used GPUs descending, first fit -- keep putting pods on the current node while they
   fit, else the next node. Sorting uses the committed usage, as HiveD's cluster view.
2. Buddy allocation of one VC cell of level l (``buddyAlloc``): a free cell of level l
   whose parent is not free (already split), else split the free cell of the lowest level
   above l that contains an eligible l-cell, and take its first such descendant.
3. VC safety: every reserved VC can still bind all its cells -- checked by a trial buddy
   binding of every VC after each candidate job placement; a root cell whose placement
   breaks it is skipped (the next cell in step 1 is tried).
4. Two operator policies, the better kept: (a) jobs first (no VC), then each offer in price
   order as a VC bound to as many buddy cells as fit in [min_gpus, max_gpus]; (b) VCs
   first -- each offer's cell count is fixed now by a trial binding, but the cells stay
   unbound while the jobs are placed under the safety check of step 3, and are bound by
   buddy allocation at the end (lazy binding).

Simplified: one priority (no opportunistic pods, no preemption); unavailable GPUs are not
"bad cells", they are simply not free; the free lists are in topology order (HiveD keeps
split children in insertion order); cells are whole domains of the topology and cell sizes
may differ (HiveD requires a uniform fan-out per chain); power caps make a cell unusable
when its site lacks the power for it; the safety check runs at the root cell of a job, not
at every binding.

Imports numpy only (and the shared baseline frame).
"""

from __future__ import annotations

import numpy as np

from placer.model import Instance
from placer.solvers.baselines.common import (
    Baseline,
    Gang,
    Run,
    Topo,
    takes_to_gpus,
    topo_of,
)
from placer.solvers.baselines.kueue import Counts
from placer.solvers.decomposition.construct import State, offer_order


# --------------------------------------------------------------------------- groups
def _fill(
    topo: Topo,
    gang: Gang,
    c: Counts,
    busy: list[np.ndarray],
    pods_left: np.ndarray,
    take: np.ndarray,
    i: int,
    w_level: int,
    w: int,
    count: int,
) -> bool:
    """Step 1: `count` groups of layer i (pods when i == len(layers)) inside cell (w_level, w)."""
    layers = gang.layers
    NL = topo.NL
    if i == len(layers):
        a, b = int(topo.first_node[w_level][w]), int(topo.first_node[w_level][w + 1])
        nodes = np.arange(a, b)
        order = np.lexsort((nodes, -busy[NL][a:b]))
        nodes = nodes[order]
        caps = pods_left[nodes]
        if caps.sum() < count:
            return False
        before = np.concatenate([[0], np.cumsum(caps)[:-1]])
        t = np.clip(count - before, 0, caps)
        take[nodes] += t
        pods_left[nodes] -= t
        return True
    lv, s = layers[i]
    lo, hi = topo.sub_range(w_level, w, lv)
    ids = np.arange(lo, hi)
    ids = ids[np.lexsort((ids, -busy[lv][lo:hi]))]
    cap = c.P[lv][ids] // s
    before = np.concatenate([[0], np.cumsum(cap)[:-1]])
    g = np.clip(count - before, 0, cap)
    if g.sum() < count:
        return False
    sub = layers[i + 1][1] if i + 1 < len(layers) else 1
    for cell, k in zip(ids[g > 0].tolist(), g[g > 0].tolist(), strict=True):
        if not _fill(topo, gang, c, busy, pods_left, take, i + 1, lv, cell, k * s // sub):
            return False
    return True


# --------------------------------------------------------------------------- VC cells
class _Cells:
    """Static per-level facts for buddy allocation: available GPUs, power, types, sites."""

    def __init__(self, inst: Instance, topo: Topo) -> None:
        ix = inst.index
        self.inst, self.topo = inst, topo
        pw = np.nan_to_num(ix.type_power_kW[topo.node_type], nan=0.0)
        self.avail = topo.sums(topo.node_avail)
        self.power = [np.asarray(x, float) for x in _fsums(topo, topo.node_avail * pw)]


def _fsums(topo: Topo, vals: np.ndarray) -> list[np.ndarray]:
    out = [np.zeros(0)] * topo.L
    out[topo.NL] = np.asarray(vals, float)
    for lv in range(topo.NL - 1, -1, -1):
        out[lv] = np.bincount(topo.parent[lv + 1], weights=out[lv + 1], minlength=topo.n_dom[lv])
    return out


def _eligible(cells: _Cells, o: int, free: np.ndarray) -> tuple[int, np.ndarray]:
    """(level, bool per domain): whole free blocks offer o may take on `free`."""
    inst, topo = cells.inst, cells.topo
    ix = inst.index
    offer = inst.offers[o]
    lo = ix.level_index(inst.offer_level(offer))
    busy_nodes = np.bincount(ix.gpu_node[ix.available & ~free], minlength=topo.N)
    ok = topo.sums(busy_nodes)[lo] == 0
    ok &= cells.avail[lo] > 0
    if offer.sites is not None:
        allowed = np.zeros(ix.n_sites, bool)
        allowed[[ix.site_index[s] for s in offer.sites]] = True
        ok &= allowed[topo.dom_anc(lo, 0)]
    if offer.gpu_types is not None:
        good = np.isin(
            topo.node_type, [ix.type_names.index(t) for t in offer.gpu_types if t in ix.type_names]
        )
        ok &= topo.sums((~good).astype(np.int64))[lo] == 0
    return lo, ok


def _buddy_pick(cells: _Cells, lo: int, elig: np.ndarray, free: np.ndarray) -> int | None:
    """Step 2: one cell of level lo."""
    topo = cells.topo
    ix = topo.ix
    if not elig.any():
        return None
    busy_nodes = np.bincount(ix.gpu_node[ix.available & ~free], minlength=topo.N)
    busy = topo.sums(busy_nodes)
    whole = [b == 0 for b in busy]

    def maximal(lv: int) -> np.ndarray:
        if lv == 0:
            return whole[0]
        return whole[lv] & ~whole[lv - 1][topo.parent[lv]]

    cand = np.flatnonzero(elig & maximal(lo))
    if len(cand):
        return int(cand[0])
    for h in range(lo - 1, -1, -1):
        has = np.bincount(topo.dom_anc(lo, h)[elig], minlength=topo.n_dom[h]) > 0
        ch = np.flatnonzero(maximal(h) & has)
        if len(ch):
            a, b = topo.sub_range(h, int(ch[0]), lo)
            return a + int(np.flatnonzero(elig[a:b])[0])
    return None


def _bind(
    cells: _Cells, o: int, free: np.ndarray, power: np.ndarray, have_blocks, k: int | None
) -> list[tuple[int, int]] | None:
    """Bind up to max_gpus (or exactly k) cells of offer o by buddy allocation on copies
    `free` / `power` (updated in place); None when [min_gpus, max_gpus] (or k) is missed."""
    inst, topo = cells.inst, cells.topo
    ix = inst.index
    offer = inst.offers[o]
    hi = offer.max_gpus if offer.max_gpus is not None else np.inf
    have = 0
    fixed_site = None
    for lv, d in have_blocks:
        a, b = ix.gpu_range(lv, d)
        have += int(ix.available[a:b].sum())
        fixed_site = int(ix.dom[0][a])
    lo, elig = _eligible(cells, o, free)
    sites = topo.dom_anc(lo, 0)
    order = [None]
    if offer.single_site and fixed_site is None:
        first = _buddy_pick(cells, lo, elig & (power[sites] + 1e-9 >= cells.power[lo]), free)
        if first is None:
            order = []
        else:
            s0 = int(sites[first])
            order = [s0] + [s for s in range(ix.n_sites) if s != s0]
    elif offer.single_site:
        order = [fixed_site]
    for site in order:
        f, p = free.copy(), power.copy()
        e = elig.copy() if site is None else elig & (sites == site)
        picks, got = [], have
        while k is None or len(picks) < k:
            e &= p[sites] + 1e-9 >= cells.power[lo]
            d = _buddy_pick(cells, lo, e, f)
            if d is None:
                break
            e[d] = False
            n = int(cells.avail[lo][d])
            if got + n > hi:
                continue
            a, b = ix.gpu_range(lo, d)
            f[a:b] = False
            p[int(sites[d])] -= cells.power[lo][d]
            picks.append((lo, d))
            got += n
        if (k is None or len(picks) == k) and got >= offer.min_gpus and (picks or have_blocks):
            free[:] = f
            power[:] = p
            return picks
    return None


# --------------------------------------------------------------------------- backend
class HiveD(Baseline):
    name = "hived"
    description = "HiveD: nested pod groups packed into most-used cells, leases as buddy VCs"

    def __init__(self) -> None:
        self._vcs: list[tuple[int, int]] | None = None
        self._cells: _Cells | None = None
        self._st: State | None = None

    # ---- step 3 ---------------------------------------------------------------------------
    def _safe(self, st: State, extra: np.ndarray | None) -> bool:
        if not self._vcs:
            return True
        ix = st.ix
        free = st.free.copy()
        power = st.power_left.copy()
        if extra is not None and len(extra):
            free[extra] = False
            power -= np.bincount(
                ix.dom[0][extra], weights=st.gpu_power[extra], minlength=ix.n_sites
            )
        for o, k in self._vcs:
            if _bind(self._cells, o, free, power, st.offer_blocks[o], k) is None:
                return False
        return True

    def _doomed(self, R: int) -> np.ndarray:
        """Cells of level R inside a whole block that a VC with no spare block still
        needs: any placement there breaks VC safety (a cheap pre-check of step 3)."""
        topo = self._cells.topo
        out = np.zeros(topo.n_dom[R], bool)
        for o, k in self._vcs:
            lo, elig = _eligible(self._cells, o, self._st.free)
            if lo <= R and int(elig.sum()) <= k:
                out |= elig[topo.dom_anc(R, lo)]
        return out

    def accept(self, st: State, gpus: np.ndarray) -> bool:
        return self._safe(st, gpus) if self._vcs else True

    # ---- step 1 ---------------------------------------------------------------------------
    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        c = Counts(topo, gang)
        R = gang.top
        busy = topo.sums(gang.node_busy)
        cand = np.flatnonzero(c.slices[R] >= c.need)
        if self._vcs:
            cand = cand[~self._doomed(R)[cand]]
        for cell in cand[np.lexsort((cand, -busy[R][cand]))].tolist():
            take = np.zeros(topo.N, np.int64)
            pods_left = gang.node_pods.astype(np.int64).copy()
            count = gang.total // c.S if gang.layers else gang.total
            if not _fill(topo, gang, c, busy, pods_left, take, 0, R, cell, count):
                continue
            if self._vcs and not self._safe(
                self._st, takes_to_gpus(topo, gang.mask, take, gang.psz)
            ):
                continue
            return take
        return None

    # ---- step 4 ---------------------------------------------------------------------------
    def run_policy(self, inst: Instance, leases_first: bool) -> Run | None:
        st = State(inst)
        topo = topo_of(inst)
        run = Run(st)
        self._cells = _Cells(inst, topo)
        self._st = st
        self._vcs = []
        # SPEC v2 `force`: declined offers get no virtual cluster; forced ones are reserved
        # before any job under either policy
        order = [o for o in offer_order(inst) if inst.offers[o].force != "decline"]
        forced = [o for o in order if inst.offers[o].force == "accept"]
        if leases_first or forced:
            free, power = st.free.copy(), st.power_left.copy()
            for o in order if leases_first else forced:
                f, p = free.copy(), power.copy()
                ok = True
                for o2, k2 in self._vcs:  # earlier VCs keep their cells in the trial
                    if _bind(self._cells, o2, f, p, st.offer_blocks[o2], k2) is None:
                        ok = False
                        break
                picks = _bind(self._cells, o, f, p, st.offer_blocks[o], None) if ok else None
                if picks:
                    self._vcs.append((o, len(picks)))
        try:
            if not self.place_jobs(run, topo):
                return None
        finally:
            vcs, self._vcs = self._vcs, None
        free, power = st.free.copy(), st.power_left.copy()
        if leases_first:
            todo = vcs
        else:
            reserved = {o for o, _ in vcs}
            todo = vcs + [(o, None) for o in order if o not in reserved]
        for o, k in todo:
            picks = _bind(self._cells, o, free, power, st.offer_blocks[o], k)
            for block in picks or []:
                st.add_block(o, block)
        if st.unplaced_musts():
            return None
        return run
