"""Volcano network-topology-aware scheduling re-implemented: hard HyperNode bounds,
gradients from the narrowest tier up, partitions (sub-jobs) with their own bound, and
HyperNode bin-packing scores.

Source: ``shared/research/peers.md`` section 3 (3.2 the algorithm, 3.5 the mapping), which
follows volcano-sh/volcano ``pkg/scheduler/actions/allocate/allocate.go``
(``allocateForJob``, ``allocateForSubJob``, ``allocateTasks``),
``pkg/scheduler/plugins/network-topology-aware/network_topology_aware.go``
(``hyperNodeGradientFn``, ``HyperNodeOrderFn``) and
``docs/design/Network Topology Aware Scheduling.md`` (master @ ed72c7c8).

Mapping: HyperNodes are the domains above the nodes (tier 1 = the level just above node,
... the site is the widest tier); a job is hard-bound to its DP scope (``highestTier``);
its partitions are the outer slices (EP blocks or units, ``partitionPolicy``) bound to
their level; tasks are pods (a TP group on one node, or a piece of one when TP may span nodes).

Algorithm overview (``allocateForJob`` for one gang)
1. Gradients: for each tier from the narrowest up to the job's bound, the HyperNodes whose
   idle GPUs (of the job's type) cover the job.
2. For every HyperNode of the first gradient that has any: dry-run the job inside it --
   each partition, in order, runs ``allocateForSubJob`` in that HyperNode; the job's
   score is the sum of its partitions' scores. Keep the HyperNode with the best score
   (ties: topology order) and commit its dry run; a gradient without a fitting HyperNode
   passes to the next tier.
3. ``allocateForSubJob``: gradients again, from the narrowest tier up to the partition's
   bound, inside the job's HyperNode; among the HyperNodes where the partition fits, the
   best ``HyperNodeOrderFn`` score, bin-packing ``(used + request) / allocatable`` of the
   HyperNode's GPUs (ties: topology order); the partition is committed there.
4. ``allocateTasks``: each pod goes to the highest-scoring node with room, node scores by
   the binpack plugin ``(used + request) / allocatable``; as a filled node only scores
   higher, this fills nodes in order of their initial score.

Simplified: one resource (GPUs); node predicates reduce to "has a free pod slot"; Go's
random order among equal scores is replaced by topology order; a second partition layer
(e.g. EP stage groups inside EP blocks), which Volcano cannot express, is placed by the
same sub-job procedure recursively (one more ``subGroupPolicy`` level); candidate
HyperNodes whose rounded slice capacity cannot hold the job are skipped before the dry
run (their dry run would fail).

Imports numpy only (and the shared baseline frame).
"""

from __future__ import annotations

import numpy as np

from placer.solvers.baselines.common import Baseline, Gang, Topo
from placer.solvers.baselines.kueue import Counts


class _Dry:
    """Mutable per-gang view (free pods, idle / busy GPUs per domain) with an undo log."""

    def __init__(self, topo: Topo, gang: Gang) -> None:
        self.topo, self.gang = topo, gang
        self.psz = gang.psz
        self.pods = topo.sums(gang.node_pods.copy())
        idle = np.bincount(topo.ix.gpu_node[gang.mask], minlength=topo.N)
        self.idle = topo.sums(idle)
        self.alloc = topo.sums(gang.node_alloc)
        self.node_busy = gang.node_busy.astype(np.int64).copy()
        self.take = np.zeros(topo.N, np.int64)
        self.log: list[tuple[np.ndarray, np.ndarray]] = []

    def commit(self, nodes: np.ndarray, k: np.ndarray, sign: int = 1) -> None:
        anc = self.topo.node_anc
        for lv in range(self.topo.L):
            np.subtract.at(self.pods[lv], anc[lv][nodes], sign * k)
            np.subtract.at(self.idle[lv], anc[lv][nodes], sign * k * self.psz)
        self.node_busy[nodes] += sign * k * self.psz
        self.take[nodes] += sign * k
        if sign > 0:
            self.log.append((nodes, k))

    def undo(self, mark: int) -> None:
        while len(self.log) > mark:
            nodes, k = self.log.pop()
            self.commit(nodes, k, -1)

    # ---- step 4 -----------------------------------------------------------------------
    def fill(self, level: int, h: int, n: int) -> bool:
        topo = self.topo
        NL = topo.NL
        a, b = int(topo.first_node[level][h]), int(topo.first_node[level][h + 1])
        p = self.pods[NL][a:b]
        if p.sum() < n:
            return False
        nodes = np.arange(a, b)[p > 0]
        alloc = np.maximum(self.gang.node_alloc[nodes], 1)
        score = (self.node_busy[nodes] + self.psz) / alloc
        order = np.lexsort((nodes, -score))
        nodes = nodes[order]
        caps = self.pods[NL][nodes]
        before = np.concatenate([[0], np.cumsum(caps)[:-1]])
        t = np.clip(n - before, 0, caps)
        nz = t > 0
        self.commit(nodes[nz], t[nz])
        return True

    # ---- step 3 -----------------------------------------------------------------------
    def tiers(self, bound: int, within_level: int) -> range:
        """Levels of candidate HyperNodes, narrowest first, inside a `within_level` one."""
        top = max(bound, within_level)
        first = self.topo.NL - 1 if top <= self.topo.NL - 1 else self.topo.NL
        return range(first, top - 1, -1)

    def subjob(self, i: int, w_level: int, w: int) -> float | None:
        layers = self.gang.layers
        level_bound, size = layers[i]
        req = size * self.psz
        for lv in self.tiers(level_bound, w_level):
            lo, hi = self.topo.sub_range(w_level, w, lv)
            idle = self.idle[lv][lo:hi]
            ok = np.flatnonzero((idle >= req) & (self.pods[lv][lo:hi] >= size))
            if len(ok) == 0:
                continue
            alloc = np.maximum(self.alloc[lv][lo:hi][ok], 1)
            score = (alloc - idle[ok] + req) / alloc
            order = np.lexsort((ok, -score))
            for h, s in zip(ok[order].tolist(), score[order].tolist(), strict=True):
                mark = len(self.log)
                if self.try_fill(i, lv, lo + h, size):
                    return float(s)
                self.undo(mark)
        return None

    def try_fill(self, i: int, level: int, h: int, size: int) -> bool:
        layers = self.gang.layers
        if i == len(layers) - 1:
            return self.fill(level, h, size)
        sub = layers[i + 1][1]
        for _ in range(size // sub):
            if self.subjob(i + 1, level, h) is None:
                return False
        return True


def volcano_place(topo: Topo, gang: Gang) -> np.ndarray | None:
    """Steps 1-2 for one gang; pods per node or None."""
    d = _Dry(topo, gang)
    c = Counts(topo, gang)
    R, total = gang.top, gang.total
    req = total * gang.psz
    for lv in d.tiers(R, R):
        enough = (d.idle[lv] >= req) & (d.pods[lv] >= total)
        if lv <= c.SL:
            enough &= c.slices[lv] >= c.need
        cand = np.flatnonzero(enough)
        if len(cand) == 0:
            continue
        alloc = np.maximum(d.alloc[lv][cand], 1)
        if not gang.layers:  # one sub-job holding all tasks: score, then fill
            score = (alloc - d.idle[lv][cand] + req) / alloc
            for h in cand[np.lexsort((cand, -score))].tolist():
                mark = len(d.log)
                if d.fill(lv, h, total):
                    return d.take
                d.undo(mark)
            continue
        best = None
        n_parts = total // gang.layers[0][1]
        for h in cand.tolist():
            mark = len(d.log)
            score, ok = 0.0, True
            for _ in range(n_parts):
                s = d.subjob(0, lv, h)
                if s is None:
                    ok = False
                    break
                score += s
            if ok and (best is None or score > best[0] + 1e-12):
                best = (score, list(d.log[mark:]))
            d.undo(mark)
        if best is not None:
            for nodes, k in best[1]:
                d.commit(nodes, k)
            return d.take
    return None


class VolcanoNetworkTopology(Baseline):
    name = "volcano"
    description = "Volcano network-topology-aware gradients with partitions, re-implemented"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        return volcano_place(topo, gang)
