"""Packing a job's units onto free GPUs inside the topology, ranks in topology order.

Algorithm overview (for one job, one GPU type, n units, inside a region of sites)
1. Pick the levels: TP slots at the narrowest level whose domains can hold `tp` free
   GPUs, within the TP scope; PP chains (a unit = `pp` slots) at the narrowest level that
   can hold `pp` slots, within the PP scope; EP blocks of `ep` units within the EP scope.
2. Count, in one vectorised pass over the free GPUs of the type (tree order, so every
   domain is a contiguous run): slots per slot-domain, units per chain-domain, whole EP
   blocks per EP-domain.
3. Choose the domain D that holds the whole job at the narrowest level allowed by the DP
   and EP scopes, best fit (fewest spare units, ties to the lowest path), so that jobs
   stay compact and large holes stay whole.
4. Take the first n units of D in tree order and write ranks TP-innermost:
   rank = u*pp*tp + p*tp + t, so TP groups share a slot domain (a node), PP chains a
   chain domain, and consecutive units (DP/EP neighbours) sit side by side.
Inference jobs with `spread` take units round-robin over the domains of the spread level.

Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placer.kernel.capacity import dimension_level
from placer.model import Instance, Job


def _runs_cumcount(keys: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal consecutive keys."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64)
    start = np.ones(n, bool)
    start[1:] = keys[1:] != keys[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    return np.arange(n) - first


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
        self.free = free  # bool (G,), mutated by take()

    # ------------------------------------------------------------------ levels
    def levels_for(self, job: Job, t: int) -> tuple[int, int, int, int] | None:
        """(slot level, chain level, EP level, job level) for a job on type t; None if the
        job's TP group or PP chain cannot fit any domain."""
        ix = self.ix
        L = ix.n_levels
        scope = {d: dimension_level(self.inst, ix, job, d) for d in ("tp", "pp", "dp", "ep")}
        cap = [int(np.bincount(ix.dom[lvl][(ix.gpu_type == t) & ix.available],
                               minlength=ix.n_domains(lvl)).max(initial=0))
               for lvl in range(L)]
        lim_tp = scope["tp"] if scope["tp"] is not None else 0
        slot = next((lvl for lvl in range(L - 1, lim_tp - 1, -1) if cap[lvl] >= job.tp), None)
        if slot is None:
            return None
        lim_pp = scope["pp"] if scope["pp"] is not None else 0
        chain = next((lvl for lvl in range(slot, lim_pp - 1, -1)
                      if cap[lvl] >= job.tp * job.pp), None)
        if chain is None:
            return None
        if job.kind == "training":
            lim_ep = scope["ep"] if scope["ep"] is not None else 0
            lim_dp = scope["dp"] if scope["dp"] is not None else 0
        else:
            lim_ep = lim_dp = 0
        ep_level = min(chain, lim_ep) if job.kind == "training" and job.ep > 1 else chain
        ep_level = max(ep_level, lim_ep) if lim_ep <= chain else chain
        job_level = max(lim_dp, lim_ep) if job.kind == "training" else 0
        job_level = min(job_level, ep_level)
        return slot, chain, ep_level, job_level

    def units(self, job: Job, t: int, region: np.ndarray | None = None,
              levels: tuple[int, int, int, int] | None = None) -> Units:
        """Every whole unit the free GPUs of type t (inside `region`) can form."""
        ix = self.ix
        lv = levels or self.levels_for(job, t)
        if lv is None:
            return Units(np.zeros((0, job.unit_size), np.int64), np.zeros(0, np.int64))
        slot, chain, ep_level, _ = lv
        mask = self.free & (ix.gpu_type == t)
        if region is not None:
            mask &= region
        idx = np.flatnonzero(mask)
        tp, pp = job.tp, job.pp
        # slots: tp GPUs in one slot-domain
        sd = ix.dom[slot][idx]
        pos = _runs_cumcount(sd)
        cnt = np.bincount(sd, minlength=ix.n_domains(slot))[sd]
        keep = pos < (cnt // tp) * tp
        idx = idx[keep]
        slots = idx.reshape(-1, tp)  # consecutive in tree order
        # units: pp slots in one chain-domain
        cd = ix.dom[chain][slots[:, 0]]
        pos = _runs_cumcount(cd)
        cnt = np.bincount(cd, minlength=ix.n_domains(chain))[cd]
        keep = pos < (cnt // pp) * pp
        slots = slots[keep]
        units = slots.reshape(-1, pp * tp)
        if job.kind == "training" and job.ep > 1:
            ed = ix.dom[ep_level][units[:, 0]]
            pos = _runs_cumcount(ed)
            cnt = np.bincount(ed, minlength=ix.n_domains(ep_level))[ed]
            units = units[pos < (cnt // job.ep) * job.ep]
        return Units(units.astype(np.int64), units[:, 0].astype(np.int64))

    def max_units_in_domain(self, job: Job, u: Units, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(domain ids, units per domain) at `level` for candidate units u."""
        d = self.ix.dom[level][u.first]
        ids, counts = np.unique(d, return_counts=True)
        if job.kind == "training" and job.ep > 1:
            counts = (counts // job.ep) * job.ep
        return ids, counts

    def place(self, job: Job, t: int, n: int, region: np.ndarray | None = None) -> np.ndarray | None:
        """GPUs (rank order) of n units of job on type t inside region, or None if no
        domain allowed by the scopes holds them. Does not take them."""
        if n <= 0:
            return np.zeros(0, np.int64)
        lv = self.levels_for(job, t)
        if lv is None:
            return None
        u = self.units(job, t, region, lv)
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
            # compact: the narrowest domain that holds all n, best fit
            return self._best_fit(job, u, n, lv[1], 0)
        return self._best_fit(job, u, n, lv[2], lv[3])

    def _best_fit(self, job: Job, u: Units, n: int, narrowest: int, widest: int) -> np.ndarray | None:
        for level in range(narrowest, widest - 1, -1):
            ids, counts = self.max_units_in_domain(job, u, level)
            ok = counts >= n
            if ok.any():
                cand = np.flatnonzero(ok)
                best = cand[np.argmin(counts[cand])]  # fewest spare units; ties: lowest id
                sel = np.flatnonzero(self.ix.dom[level][u.first] == ids[best])[:n]
                return u.gpus[sel].reshape(-1)
        return None

    def max_fit(self, job: Job, t: int, region: np.ndarray | None = None) -> int:
        """Most units of job on type t that one allowed domain holds (inference: region)."""
        lv = self.levels_for(job, t)
        if lv is None:
            return 0
        u = self.units(job, t, region, lv)
        if len(u) == 0:
            return 0
        if job.kind == "inference":
            return len(u)
        _, counts = self.max_units_in_domain(job, u, lv[3])
        return int(counts.max(initial=0))

    def take(self, gpus: np.ndarray) -> None:
        self.free[gpus] = False

    def give(self, gpus: np.ndarray) -> None:
        self.free[gpus] = True
