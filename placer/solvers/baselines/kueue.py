"""Kueue Topology Aware Scheduling (TAS) re-implemented: BestFit, LeastFreeCapacity and
Balanced placement of one gang (a PodSet with multi-layer slices).

Source: ``shared/research/peers.md`` section 2 (2.3 is the algorithm, 2.7 the mapping),
which follows kubernetes-sigs/kueue ``pkg/cache/scheduler/tas_flavor_snapshot.go``
(``findTopologyAssignment``, ``fillInCounts``, ``sortedDomains``,
``updateCountsToMinimumGeneric``), ``pkg/cache/scheduler/tas_balanced_placement.go`` and
KEP ``keps/2724-topology-aware-scheduling/README.md`` (main @ ff69552e).

Mapping: a pod is a TP group on one node (a piece of it when TP may span nodes);
``podset-required-topology`` is the job's DP scope (its top level); the slice layers are
EP blocks, units and TP groups (``podset-slice-required-topology-constraints``, at most
three layers, each size dividing the previous).

Algorithm overview (``findTopologyAssignment``, required topology)
1. Capacities bottom-up: pods per node = free GPUs // pod size; every inner domain sums
   its children, rounded down at each layer's level to a multiple of that layer's slice
   size; slices = pods // S at the outer slice level SL, summed above it.
2. Top domain: among the domains of the required level, the one with the fewest slices
   that still holds the gang (ties: fewer pods, then topology order). BestFit and
   LeastFreeCapacity agree on this step (BestFit's ``best_fit`` of the sorted list).
3. Descend, above and at SL pooled over all chosen domains' children: sort (BestFit:
   slices descending, pods ascending; LeastFreeCapacity: slices ascending, pods
   ascending; then path) and trim -- give each domain all it can hold; BestFit replaces
   the domain that could hold the whole remainder by the tightest one left that can.
4. Below SL each parent distributes its own pods among its children (pods ascending, in
   chunks of the inner slice size); the node counts are the assignment.
Balanced (``tas_balanced_placement.go``, preferred level = one below the required level):
5. For every parent domain of the required level: largest-first greedy over the domains
   one level below the preferred level gives k domains; T = min(need // k, capacity of the
   k-th); prune domains with capacity < T; keep the parent with the largest T (ties: fewer
   preferred-level domains, then path). No parent, or T = 0: BestFit.
6. Choose preferred-level domains with a small DP (fewest, then least total capacity;
   ties capacity descending, entropy of children's capacities descending, path), then the
   lower domains the same way; give each T slices, the rest in capacity-descending order;
   continue the per-parent descent of step 3/4 below.

Simplified: domain names are compared by topology order (tree order), not by label
strings; no leader pods, node affinities or taints; preferred (non-balanced) requests are
not used (every job's DP scope is required); the DP of step 6 falls back to largest-first
when its table would exceed 2e8 cells.

Imports numpy only (and the shared baseline frame).
"""

from __future__ import annotations

import numpy as np

from placer.solvers.baselines.common import Baseline, Gang, Topo, grouped_fill

BESTFIT, LFC, FIRSTFIT = "bestfit", "leastfree", "firstfit"


# --------------------------------------------------------------------------- counts
class Counts:
    """Step 1: rounded pods ``P[l]`` and slices ``slices[l]`` (l <= SL) per domain."""

    def __init__(self, topo: Topo, gang: Gang) -> None:
        self.layers = gang.layers
        self.P = topo.rounded(gang.node_pods, gang.layers)
        if gang.layers:
            self.SL, self.S = gang.layers[0]
        else:
            self.SL, self.S = topo.NL, 1
        self.need = gang.total // self.S
        self.slices: list[np.ndarray | None] = [None] * topo.L
        self.slices[self.SL] = self.P[self.SL] // self.S
        for lv in range(self.SL - 1, -1, -1):
            self.slices[lv] = np.bincount(
                topo.parent[lv + 1], weights=self.slices[lv + 1], minlength=topo.n_dom[lv]
            ).astype(np.int64)

    def inner_size(self, level: int) -> int:
        """Chunk size (pods) that must stay whole when distributing to `level` below SL."""
        for lv, s in self.layers:
            if lv >= level:
                return s
        return 1


def sort_domains(ids: np.ndarray, slices: np.ndarray, pods: np.ndarray, mode: str) -> np.ndarray:
    """Kueue's ``sortedDomains``: the ids in BestFit / LeastFreeCapacity / tree order."""
    if mode == BESTFIT:
        return ids[np.lexsort((ids, pods, -slices))]
    if mode == LFC:
        return ids[np.lexsort((ids, pods, slices))]
    return np.sort(ids)


def trim(caps: np.ndarray, need: int, bestfit: bool) -> np.ndarray:
    """``updateCountsToMinimumGeneric``: walk the list, each domain gives all it can; with
    BestFit the first domain that could hold the remainder is replaced by the first
    domain of the rest with the smallest capacity >= remainder. int64 take per domain."""
    caps = np.asarray(caps, np.int64)
    before = np.concatenate([[0], np.cumsum(caps)[:-1]])
    rem = need - before
    take = np.clip(rem, 0, caps)
    if not bestfit:
        return take
    hit = np.flatnonzero((caps >= rem) & (rem > 0))
    if len(hit) == 0:
        return take
    i = int(hit[0])
    r = int(rem[i])
    take[i:] = 0
    rest = caps[i:]
    cand = np.flatnonzero(rest >= r)
    take[i + int(cand[np.argmin(rest[cand])])] = r
    return take


def best_fit_pick(ids: np.ndarray, cap: np.ndarray, need: int) -> int:
    """``best_fit``: the first of the (sorted) ids with the smallest capacity >= need."""
    ok = np.flatnonzero(cap >= need)
    return int(ids[ok[np.argmin(cap[ok])]])


# --------------------------------------------------------------------------- descent
def _children(topo: Topo, cur: np.ndarray, level: int) -> np.ndarray:
    sel = np.zeros(topo.n_dom[level - 1], bool)
    sel[cur] = True
    return np.flatnonzero(sel[topo.parent[level]])


def pooled_step(topo: Topo, c: Counts, cur: np.ndarray, level: int, mode: str):
    """Step 3 at `level` (<= SL): children of all chosen domains pooled, trimmed to need."""
    kids = _children(topo, cur, level)
    k = sort_domains(kids, c.slices[level][kids], c.P[level][kids], mode)
    take = trim(c.slices[level][k], c.need, mode == BESTFIT)
    nz = take > 0
    return k[nz], take[nz] * c.S


def per_parent_step(topo: Topo, c: Counts, cur: np.ndarray, amt: np.ndarray, level: int, mode: str):
    """Each chosen parent distributes its own pods among its children (steps 4 and 6)."""
    kids = _children(topo, cur, level)
    par = topo.parent[level][kids]
    demand_of = np.zeros(topo.n_dom[level - 1], np.int64)
    demand_of[cur] = amt
    if level <= c.SL:  # slices are defined: Kueue's sort with its slices key, per parent
        out_k, out_a = [], []
        order = np.lexsort((kids, par))
        kids, par = kids[order], par[order]
        bounds = np.flatnonzero(np.r_[True, par[1:] != par[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            grp = kids[a:b]
            k = sort_domains(grp, c.slices[level][grp], c.P[level][grp], mode)
            take = trim(c.slices[level][k], int(demand_of[par[a]] // c.S), mode == BESTFIT)
            nz = take > 0
            out_k.append(k[nz])
            out_a.append(take[nz] * c.S)
        return np.concatenate(out_k), np.concatenate(out_a)
    u = c.inner_size(level)
    pods = c.P[level][kids]
    if mode == FIRSTFIT:
        order = np.lexsort((kids, par))
    else:  # the slices key is 0 below SL: pods ascending (BestFit's last pick is this one)
        order = np.lexsort((kids, pods, par))
    k, g = kids[order], par[order]
    take = grouped_fill(g, c.P[level][k] // u, demand_of[g] // u)
    nz = take > 0
    return k[nz], take[nz] * u


def descend(
    topo: Topo,
    c: Counts,
    cur: np.ndarray,
    amt: np.ndarray,
    level: int,
    mode: str,
    pooled: bool = True,
) -> np.ndarray | None:
    """From chosen domains at `level` down to the nodes; pods per node (N,) or None."""
    for lv in range(level + 1, topo.L):
        if pooled and lv <= c.SL:
            cur, amt = pooled_step(topo, c, cur, lv, mode)
        else:
            cur, amt = per_parent_step(topo, c, cur, amt, lv, mode)
    out = np.zeros(topo.N, np.int64)
    out[cur] = amt
    return out


def kueue_place(topo: Topo, gang: Gang, mode: str) -> np.ndarray | None:
    """Steps 1-4 for a required top level."""
    c = Counts(topo, gang)
    R = gang.top
    sl = c.slices[R]
    cand = np.flatnonzero(sl >= c.need)
    if len(cand) == 0:
        return None
    if mode == FIRSTFIT:
        pick = int(cand[0])
    else:
        ordered = sort_domains(cand, sl[cand], c.P[R][cand], mode)
        pick = best_fit_pick(ordered, sl[ordered], c.need)
    out = descend(topo, c, np.array([pick]), np.array([c.need * c.S]), R, mode)
    return out if out is not None and int(out.sum()) == gang.total else None


# --------------------------------------------------------------------------- balanced
_DP_LIMIT = 2e8


def min_subset(caps: np.ndarray, need: int, pref: np.ndarray) -> np.ndarray:
    """Indices of a subset with the fewest members whose capacities reach `need`, then the
    least total capacity; among equals the larger capacities, then earlier in `pref`
    (a permutation of range(len(caps)), preferred first)."""
    caps = np.asarray(caps, np.int64)
    srt = np.sort(caps)[::-1]
    k = int(np.searchsorted(np.cumsum(srt), need)) + 1
    rank = np.empty(len(caps), np.int64)
    rank[pref] = np.arange(len(caps))
    vals, counts = np.unique(caps[caps > 0], return_counts=True)
    vals, counts = vals[::-1], counts[::-1]  # descending
    W = need + int(srt[0])
    if len(caps) * (k + 1) * W > _DP_LIMIT:  # too big: largest first (documented)
        order = np.lexsort((rank, -caps))
        return order[:k]
    dp = np.zeros((k + 1, W + 1), bool)
    dp[0, 0] = True
    tables = []
    for v, m in zip(vals.tolist(), counts.tolist(), strict=True):
        new = dp.copy()
        cur = dp
        for _ in range(min(m, k)):
            sh = np.zeros_like(cur)  # columns 0..W-1 exact sums, column W: every sum >= W
            sh[1:, v:W] = cur[:-1, : W - v]
            sh[1:, W] = cur[:-1, W - v :].any(axis=1)
            new |= sh
            cur = sh
        tables.append(dp)
        dp = new
    row = dp[k, need:W]
    s = need + int(np.flatnonzero(row)[0])
    counts_taken = []
    c = k
    for gi in range(len(vals) - 1, -1, -1):  # smallest values first: take as few as possible
        v, m, prev = int(vals[gi]), int(counts[gi]), tables[gi]
        for t in range(0, min(m, c) + 1):
            if s - t * v >= 0 and prev[c - t, s - t * v]:
                break
        counts_taken.append((v, t))
        c -= t
        s -= t * v
    chosen = []
    for v, t in counts_taken:
        idx = np.flatnonzero(caps == v)
        chosen.extend(idx[np.argsort(rank[idx], kind="stable")][:t].tolist())
    return np.array(sorted(chosen, key=lambda i: rank[i]), np.int64)


def _entropy(caps: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    tot = np.bincount(groups, weights=caps, minlength=n)
    p = np.where(tot[groups] > 0, caps / np.maximum(tot[groups], 1), 0.0)
    h = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.bincount(groups, weights=h, minlength=n)


def balanced_place(topo: Topo, gang: Gang) -> np.ndarray | None:
    """Steps 5-6; None means: fall back to BestFit."""
    R = gang.top
    Lp = R + 1
    c = Counts(topo, gang)
    if Lp > c.SL or Lp >= topo.L:
        return None
    need = c.need
    low = Lp + 1 if Lp < c.SL else Lp
    caps_all = c.slices[low]
    best = None
    for p in np.flatnonzero(c.slices[R] >= need).tolist():
        a, b = topo.sub_range(R, p, low)
        caps = caps_all[a:b]
        srt = np.sort(caps)[::-1]
        cs = np.cumsum(srt)
        if len(cs) == 0 or cs[-1] < need:
            continue
        k = int(np.searchsorted(cs, need)) + 1
        T = min(need // k, int(srt[k - 1]))
        if T <= 0:
            continue
        kept = np.where(caps >= T, caps, 0)
        if kept.sum() < need:
            continue
        top_k = np.argsort(-kept, kind="stable")[:k] + a
        n_pref = len(np.unique(topo.dom_anc(low, Lp)[top_k])) if low > Lp else k
        key = (-T, n_pref, p)
        if best is None or key < best[0]:
            best = (key, p, T)
    if best is None:
        return None
    _, p, T = best
    a, b = topo.sub_range(R, p, low)
    ids = np.arange(a, b)
    caps = np.where(caps_all[a:b] >= T, caps_all[a:b], 0)
    if low > Lp:  # choose preferred-level domains first
        anc = topo.dom_anc(low, Lp)[ids]
        pa, pb = topo.sub_range(R, p, Lp)
        rel = anc - pa
        ccaps = np.bincount(rel, weights=caps, minlength=pb - pa).astype(np.int64)
        ent = _entropy(caps.astype(float), rel, pb - pa)
        pref = np.lexsort((np.arange(pb - pa), -ent, -ccaps))
        chosen_c = min_subset(ccaps, need, pref)
        keep = np.isin(rel, chosen_c) & (caps > 0)
        ids, caps = ids[keep], caps[keep]
    else:
        keep = caps > 0
        ids, caps = ids[keep], caps[keep]
    pref = np.lexsort((ids, -caps))
    chosen = min_subset(caps, need, pref)
    ids, caps = ids[chosen], caps[chosen]
    give = np.full(len(ids), T, np.int64)
    rest = need - T * len(ids)
    order = np.lexsort((ids, -caps))
    extra = grouped_fill(
        np.zeros(len(ids), np.int64), caps[order] - T, np.full(len(ids), rest, np.int64)
    )
    give[order] += extra
    if int(give.sum()) != need:
        return None
    out = descend(topo, c, ids, give * c.S, low, BESTFIT, pooled=False)
    return out if out is not None and int(out.sum()) == gang.total else None


# --------------------------------------------------------------------------- backends
class KueueBestFit(Baseline):
    name = "kueue-bestfit"
    description = "Kueue TAS BestFit (required DP scope, multi-layer slices), re-implemented"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        return kueue_place(topo, gang, BESTFIT)


class KueueLeastFreeCapacity(Baseline):
    name = "kueue-leastfree"
    description = "Kueue TAS LeastFreeCapacity (fragmentation-first packing), re-implemented"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        return kueue_place(topo, gang, LFC)


class KueueBalanced(Baseline):
    name = "kueue-balanced"
    description = "Kueue TAS balanced placement (even split one level down), BestFit fallback"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        out = balanced_place(topo, gang)
        return out if out is not None else kueue_place(topo, gang, BESTFIT)
