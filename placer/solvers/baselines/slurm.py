"""Slurm's topology/tree and topology/block node selection re-implemented.

Source: ``shared/research/peers.md`` section 4 (4.2 tree, 4.3 block, 4.6 the mapping), which
follows SchedMD/slurm ``src/plugins/topology/tree/eval_nodes_tree.c`` (``_eval_nodes_topo``,
``_topo_choose_best_switch``, ``_topo_compare_switches``),
``src/plugins/topology/tree/switch_record.c`` (hop distances),
``src/plugins/topology/block/eval_nodes_block.c`` (``eval_nodes_block``,
``_choose_best_bblock``, ``_get_block_level``) and ``doc/html/topology.shtml``
(master @ 284c3b95).

Mapping: switches are the domains above the nodes, leaf switches the level just above
them; block's base blocks are those leaf domains and its block levels are the topology's
own levels (rack, pod, hall, ...); the request is counted in pods (GRES-like GPU groups:
a TP group on one node, or a piece of one when TP may span nodes) rather than whole
nodes; node weights are all equal. A job never spans sites: Slurm never combines switches
without a common parent.

Algorithm overview -- tree (``_eval_nodes_topo``)
1. Top switch: the highest-level switch with enough free pods (with equal weights the
   last such switch in table order), here at the job's DP-scope level; candidates are
   restricted to its subtree.
2. Repeat until satisfied: scan the unused leaf switches in order; a leaf replaces the
   best so far when it is closer (summed hop distance to the leaves already used) and
   fits at its deciding level, or equally close and better: tightest fit, else the one
   whose ancestor fits (climbing while the ancestors differ), else more nodes, else the
   lower level. Take the best leaf's free nodes in index order; add its hop distances.
Algorithm overview -- block (``eval_nodes_block``)
3. Block level: the narrowest level whose (nominal) blocks hold the request; llblock =
   the next narrower level, at most ``ceil(n / llblock size)`` of them may be used.
4. Feasible blocks: the sum of their largest allowed llblocks' free pods covers the
   request; pick the smallest free count (ties: the last one).
5. Inside it repeatedly pick a base block (``_choose_best_bblock``): one in an llblock
   already used, else in an llblock that alone fits the remainder (the smallest), else the
   largest llblock; then a base block that fits (the smallest) else the largest; take its
   nodes in index order; a new llblock costs one of the allowance.
6. Segments (``--segment``): the job is cut into its outer slices (EP blocks or units);
   all segments are consolidated inside one block of the narrowest level holding the job
   (``--consolidate-segments``, chosen like step 4), and each segment runs steps 3-5
   inside it on the nodes left.

Simplified: tree has no segments, so a job with slice layers is allocated slice by slice
(each slice as its own tree allocation inside the job's top switch, bounded by its
layer's level) -- otherwise its PP/EP groups would break their scope; block levels need
not be powers of two of the base block (the real levels are used); the consolidation
block is chosen before the first segment (Slurm picks it through the first segment's
block); a second segment layer is handled by the same procedure recursively; no
``--switches`` waiting, no weights, no required nodes.

Imports numpy only (and the shared baseline frame).
"""

from __future__ import annotations

import math

import numpy as np

from placer.solvers.baselines.common import Baseline, Gang, Topo


class _Alloc:
    """Free pods per node for one gang, with the pods taken so far."""

    def __init__(self, topo: Topo, gang: Gang) -> None:
        self.topo, self.gang = topo, gang
        self.node_pods = gang.node_pods.astype(np.int64).copy()
        self.take = np.zeros(topo.N, np.int64)
        self.installed = topo.sums(gang.node_alloc // gang.psz)

    def sums(self) -> list[np.ndarray]:
        return self.topo.sums(self.node_pods)

    def take_nodes(self, a: int, b: int, rem: int) -> int:
        """Take free pods of nodes a..b-1 in index order until `rem` are taken."""
        p = self.node_pods[a:b]
        before = np.concatenate([[0], np.cumsum(p)[:-1]])
        t = np.clip(rem - before, 0, p)
        self.node_pods[a:b] -= t
        self.take[a:b] += t
        return int(t.sum())

    def ids(self, level: int, region: tuple[int, int] | None) -> np.ndarray:
        if region is None:
            return np.arange(self.topo.n_dom[level])
        lo, hi = self.topo.sub_range(region[0], region[1], level)
        return np.arange(lo, hi)


# --------------------------------------------------------------------------- tree
def _leaf_select(al: _Alloc, top: tuple[int, int], need: int) -> bool:
    """Step 2 inside switch `top`."""
    topo = al.topo
    NL = topo.NL
    tl, tid = top
    if tl == NL:
        a, b = int(topo.first_node[NL][tid]), int(topo.first_node[NL][tid + 1])
        return al.take_nodes(a, b, need) >= need
    leaf = NL - 1
    lo, hi = topo.sub_range(tl, tid, leaf)
    H = leaf - tl
    pods = al.sums()
    cnt = topo.sums((al.node_pods > 0).astype(np.int64))
    anc = [topo.dom_anc(leaf, leaf - h)[lo:hi] for h in range(H + 1)]
    cpu = [pods[leaf - h][anc[h]].tolist() for h in range(H + 1)]
    ncn = [cnt[leaf - h][anc[h]].tolist() for h in range(H + 1)]
    ancl = [x.tolist() for x in anc]
    n = hi - lo
    valid = [c > 0 for c in ncn[0]]
    used = [False] * n
    dist = np.zeros(n, np.int64)
    rem = need

    def compare(i: int, j: int) -> tuple[int, bool]:
        h = 0
        while True:
            fi, fj = cpu[h][i] >= rem, cpu[h][j] >= rem
            if fi and fj:
                if ncn[h][i] < ncn[h][j]:
                    return 1, fi
                if ncn[h][i] > ncn[h][j]:
                    return -1, fi
                break
            if fi:
                return 1, True
            if fj:
                return -1, False
            if h + 1 <= H and ancl[h + 1][i] != ancl[h + 1][j]:
                h += 1
                continue
            break
        if ncn[h][i] > ncn[h][j]:
            return 1, fi
        if ncn[h][i] < ncn[h][j]:
            return -1, fi
        return 0, fi

    while rem > 0:
        best = -1
        dl = dist.tolist()
        for i in range(n):
            if used[i] or not valid[i]:
                continue
            if best < 0:
                best = i
                continue
            if dl[i] > dl[best]:
                continue
            tcs, ifit = compare(i, best)
            if (dl[i] < dl[best] and ifit) or (dl[i] == dl[best] and tcs > 0):
                best = i
        if best < 0:
            return False
        d = lo + best
        a, b = int(topo.first_node[leaf][d]), int(topo.first_node[leaf][d + 1])
        rem -= al.take_nodes(a, b, rem)
        used[best] = True
        hl = np.full(n, H, np.int64)
        for h in range(H, -1, -1):
            hl[anc[h] == anc[h][best]] = h
        dist += 2 * hl
    return True


def _top_switch(al: _Alloc, level: int, region: tuple[int, int] | None, need: int):
    """Step 1: the last switch of `level` (inside region) with enough free pods."""
    ids = al.ids(level, region)
    pods = al.sums()[level][ids]
    ok = ids[pods >= need]
    return (level, int(ok[-1])) if len(ok) else None


def tree_gang(al: _Alloc, i: int, need: int, region: tuple[int, int] | None, bound: int) -> bool:
    layers = al.gang.layers
    level = bound if region is None else max(bound, region[0])
    top = _top_switch(al, level, region, need)
    if top is None:
        return False
    if i == len(layers):
        return _leaf_select(al, top, need)
    lv, seg = layers[i]
    return all(tree_gang(al, i + 1, seg, top, lv) for _ in range(need // seg))


# --------------------------------------------------------------------------- block
def _block_level(al: _Alloc, need: int, low: int, region) -> int | None:
    """Step 3: the narrowest level in [low, base] whose nominal block holds `need`."""
    base = max(al.topo.NL - 1, 0)
    for lv in range(base, low - 1, -1):
        ids = al.ids(lv, region)
        if len(ids) and int(al.installed[lv][ids].max()) >= need:
            return lv
    return None


def _pick_block(ids: np.ndarray, free: np.ndarray, ok: np.ndarray) -> int | None:
    """Smallest free count among feasible blocks, ties to the last (Slurm's ``<=``)."""
    cand = np.flatnonzero(ok)
    if len(cand) == 0:
        return None
    f = free[cand]
    return int(ids[cand[np.flatnonzero(f == f.min())[-1]]])


def block_alloc(al: _Alloc, need: int, region: tuple[int, int] | None, bound: int) -> bool:
    """Steps 3-5 for one allocation (a segment or a whole job)."""
    topo = al.topo
    NL = topo.NL
    low = bound if region is None else max(bound, region[0])
    if low == NL:  # bound to one node
        ids = al.ids(NL, region)
        ok = al.node_pods[ids] >= need
        pick = _pick_block(ids, al.node_pods[ids], ok)
        if pick is None:
            return False
        return al.take_nodes(pick, pick + 1, need) >= need
    base = max(NL - 1, 0)
    bl = _block_level(al, need, low, region)
    if bl is None:
        return False
    pods = al.sums()
    ids = al.ids(bl, region)
    free = pods[bl][ids]
    ll = bl + 1 if bl < base else None
    ll_active, max_ll = False, 0
    if ll is not None:
        ll_size = int(al.installed[ll].max())
        max_ll = math.ceil(need / max(ll_size, 1))
        per_block = np.bincount(topo.dom_anc(ll, bl), minlength=topo.n_dom[bl])
        ll_active = max_ll < int(per_block[ids].max())
    if ll_active:
        lid = np.arange(topo.n_dom[ll])
        owner = topo.dom_anc(ll, bl)
        sel = np.isin(owner, ids)
        lid, owner = lid[sel], owner[sel]
        lfree = pods[ll][lid]
        order = np.lexsort((-lfree, owner))
        owner_s, lfree_s = owner[order], lfree[order]
        start = np.ones(len(owner_s), bool)
        start[1:] = owner_s[1:] != owner_s[:-1]
        first = np.maximum.accumulate(np.where(start, np.arange(len(owner_s)), 0))
        rank = np.arange(len(owner_s)) - first
        avail = np.bincount(
            owner_s[rank < max_ll], weights=lfree_s[rank < max_ll], minlength=topo.n_dom[bl]
        )[ids]
    else:
        avail = free
    B = _pick_block(ids, free, avail >= need)
    if B is None:
        return False
    # step 5
    lo, hi = topo.sub_range(bl, B, base)
    bb = np.arange(lo, hi)
    on_bb = pods[base][bb].tolist()
    llb = topo.dom_anc(base, ll)[bb].tolist() if ll_active else None
    on_ll = pods[ll].tolist() if ll_active else None
    required = [False] * len(bb)
    used_ll: set[int] = set()
    rem = need
    while rem > 0:
        best, best_fit, best_same = -1, False, True
        for i in range(len(bb)):
            if required[i] or on_bb[i] <= 0:
                continue
            fit = on_bb[i] >= rem
            if ll_active and (best < 0 or llb[best] != llb[i]):
                same = llb[i] in used_ll
                if best < 0 or (same and not best_same):
                    best, best_fit, best_same = i, fit, same
                    continue
                if not same and best_same:
                    continue
                bc, ic = on_ll[llb[best]], on_ll[llb[i]]
                lfit, bfit = ic >= rem, bc >= rem
                if lfit and not bfit:
                    best, best_fit, best_same = i, fit, same
                    continue
                if not lfit and bfit:
                    continue
                if lfit and bfit:
                    if ic < bc:
                        best, best_fit, best_same = i, fit, same
                        continue
                    if ic > bc:
                        continue
                else:
                    if ic > bc:
                        best, best_fit, best_same = i, fit, same
                        continue
                    if ic < bc:
                        continue
            if (
                best < 0
                or (fit and not best_fit)
                or (not fit and not best_fit and on_bb[i] >= on_bb[best])
                or (fit and on_bb[i] <= on_bb[best])
            ):
                best, best_fit = i, fit
        if best < 0:
            return False
        if ll_active and max_ll <= 0 and not best_same:
            return False
        d = lo + best
        a, b = int(topo.first_node[base][d]), int(topo.first_node[base][d + 1])
        rem -= al.take_nodes(a, b, rem)
        required[best] = True
        if ll_active:
            if not best_same:
                max_ll -= 1
            used_ll.add(llb[best])
    return True


def block_gang(al: _Alloc, i: int, need: int, region: tuple[int, int] | None, bound: int) -> bool:
    layers = al.gang.layers
    if i == len(layers):
        return block_alloc(al, need, region, bound)
    low = bound if region is None else max(bound, region[0])
    # step 6: the consolidation block, then the segments inside it
    lv = _block_level(al, need, low, region)
    if lv is None:
        return False
    ids = al.ids(lv, region)
    free = al.sums()[lv][ids]
    B = _pick_block(ids, free, free >= need)
    if B is None:
        return False
    seg_level, seg = layers[i]
    return all(block_gang(al, i + 1, seg, (lv, B), seg_level) for _ in range(need // seg))


# --------------------------------------------------------------------------- backends
class SlurmTree(Baseline):
    name = "slurm-tree"
    description = "Slurm topology/tree: top switch, then closest / tightest leaf switches"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        al = _Alloc(topo, gang)
        return al.take if tree_gang(al, 0, gang.total, None, gang.top) else None


class SlurmBlock(Baseline):
    name = "slurm-block"
    description = "Slurm topology/block: smallest block level, fewest sub-blocks, segments"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        al = _Alloc(topo, gang)
        return al.take if block_gang(al, 0, gang.total, None, gang.top) else None
