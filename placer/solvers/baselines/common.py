"""What every peer baseline shares: the job as a nested gang request, the operator's
policies around the peer, and the final rank layout.

The peers (Kueue, Volcano, Slurm, HiveD) differ only in *which domains and nodes* they pick
for a gang; everything around that choice is the operator's and lives here, identical for
all of them, so that a comparison measures the peers' placement rules and nothing else.

Algorithm overview (one solve of a peer baseline)
1. Two operator policies (issue 5), each a full pass; the better kernel objective wins
   (ties: jobs first):
   (a) jobs first, then every offer in price order accepted greedily on the whole free
       blocks left (:meth:`State.lease_greedy`);
   (b) offers first on the free whole blocks, then jobs.
   HiveD replaces both lease steps by its own virtual clusters (see ``hived.py``).
2. Jobs one at a time, running non-preemptible jobs first, then by value x GPUs
   descending, then name; pinned jobs stay where they are (:class:`State`). A running
   job whose ``current`` GPUs are still free and valid keeps them (peers never move an
   admitted workload that can stay).
3. A job becomes a nested gang (:func:`job_shape`): pods of ``psz`` GPUs (a TP group on one
   node; a piece of it when TP may span nodes), inside one domain of the ``top``
   level (the DP scope; never wider than a site: peers do not span sites with one job),
   with up to three slice layers coarse to fine -- EP blocks, units (PP chains), TP groups
   -- each slice inside one domain of its layer's level (Kueue's multi-layer slices,
   Volcano's partitions, Slurm's segments, HiveD's nested pod groups).
4. Elastic sizing is an operator policy, not the peers': the peer is asked for the most
   units, then for fewer in unit steps (eight tries, then bisection) down to the minimum;
   GPU types are tried in the job's order at each size (flavor fungibility).
5. Inference spread: the replicas are split into ``spread.min`` nearly equal parts, each
   placed by the peer as its own gang inside one domain of the spread level, with
   anti-affinity to the domains the earlier parts took (the peers' "balanced" /
   topology-spread analogue). Without spread an inference job stays in one site.
6. Power caps act as a per-site quota: a site is offered to the peer only when its power
   left covers the whole part.
7. The peer returns pods per node; the GPUs are the lowest free ones of each node, taken in
   topology order, so ranks follow the peer's domain order (Kueue's ungater); MoE jobs whose
   EP scope is narrower than their PP scope get the stage-major order inside each EP block.
8. Every result is checked against rules 3-5 before it is kept; the final placement goes
   through :func:`finalize` (checker + kernel).

Imports numpy, the kernel and the shared construction state; never a solver library.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from placer.errors import SolverError
from placer.kernel.capacity import allowed_types, fit_nowhere_reason, smallest_units
from placer.model import Instance, Job
from placer.solvers.base import (
    NO_SOLUTION,
    Options,
    Result,
    Solver,
    finalize,
    finish_reserve,
    no_placement,
)
from placer.solvers.decomposition.construct import State, offer_order, scope_ok

POLICIES = ("both", "jobs-first", "leases-first")


# --------------------------------------------------------------------------- topology views
class Topo:
    """Node-level views of a :class:`~placer.kernel.topology.TopologyIndex` (built once).

    Arrays (N = nodes, L = levels): ``node_anc`` int32 (L, N) the ancestor of every node at
    every level; ``node_avail`` int64 (N,) available GPUs; ``first_node[l]`` int64
    (n_l + 1,) domain d of level l holds nodes ``first_node[l][d]:first_node[l][d+1]``.
    """

    def __init__(self, ix) -> None:
        # a weak reference: `_TOPOS` is keyed weakly by the index, and a strong one here
        # would keep every index (and its GPU-id table) alive forever
        self._ix = weakref.ref(ix)
        self.L = ix.n_levels
        self.NL = self.L - 1
        nf = np.asarray(ix.first_gpu[-1], np.int64)
        self.N = len(nf) - 1
        self.node_first_gpu = nf
        self.node_anc = np.ascontiguousarray(ix.dom[:, nf[:-1]])
        self.node_type = np.asarray(ix.node_type)
        self.node_avail = np.bincount(ix.gpu_node[ix.available], minlength=self.N)
        self.n_dom = [ix.n_domains(lv) for lv in range(self.L)]
        self.parent = [np.asarray(p, np.int64) for p in ix.parent]
        self.first_node = [
            np.searchsorted(self.node_anc[lv], np.arange(self.n_dom[lv] + 1))
            for lv in range(self.L)
        ]
        self._type_mask: dict[int, np.ndarray] = {}
        self._dom_anc: dict[tuple[int, int], np.ndarray] = {}
        self._first_dom: dict[tuple[int, int], np.ndarray] = {}

    @property
    def ix(self):
        return self._ix()

    def type_mask(self, t: int) -> np.ndarray:
        m = self._type_mask.get(t)
        if m is None:
            m = self._type_mask[t] = self.ix.gpu_type == t
        return m

    def dom_anc(self, level: int, up: int) -> np.ndarray:
        """Ancestor at level `up` of every domain of `level` (up <= level): int (n_level,)."""
        key = (level, up)
        a = self._dom_anc.get(key)
        if a is None:
            a = self._dom_anc[key] = self.node_anc[up][self.first_node[level][:-1]]
        return a

    def sub_range(self, level: int, d: int, sub: int) -> tuple[int, int]:
        """[lo, hi) of the ids at level `sub` (>= level) of the descendants of (level, d)."""
        key = (level, sub)
        f = self._first_dom.get(key)
        if f is None:
            f = self._first_dom[key] = np.searchsorted(
                self.dom_anc(sub, level), np.arange(self.n_dom[level] + 1)
            )
        return int(f[d]), int(f[d + 1])

    def sums(self, node_vals: np.ndarray) -> list[np.ndarray]:
        """Per level, the sum of a node quantity over every domain: int64 (n_l,)."""
        out = [np.zeros(0, np.int64)] * self.L
        out[self.NL] = np.asarray(node_vals, np.int64)
        for lv in range(self.NL - 1, -1, -1):
            out[lv] = np.bincount(
                self.parent[lv + 1], weights=out[lv + 1], minlength=self.n_dom[lv]
            ).astype(np.int64)
        return out

    def rounded(self, node_pods: np.ndarray, layers: list[tuple[int, int]]) -> list[np.ndarray]:
        """Kueue's bottom-up pod counts (``fillInCounts``): a domain's count is the sum of
        its children's, each child's first rounded down to a multiple of the slice size of
        the child's level when that level is a layer's (so ``count // size`` at a layer
        level is its slices, and every count is what slices can use)."""
        size = {lv: s for lv, s in layers}
        out = [np.zeros(0, np.int64)] * self.L
        out[self.NL] = np.asarray(node_pods, np.int64)
        for lv in range(self.NL - 1, -1, -1):
            child = out[lv + 1]
            if lv + 1 in size:
                child = child - child % size[lv + 1]
            out[lv] = np.bincount(
                self.parent[lv + 1], weights=child, minlength=self.n_dom[lv]
            ).astype(np.int64)
        return out


_TOPOS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def topo_of(inst: Instance) -> Topo:
    ix = inst.index
    t = _TOPOS.get(ix)
    if t is None:
        t = _TOPOS[ix] = Topo(ix)
    return t


# --------------------------------------------------------------------------- job shape
def level_bound(inst: Instance, topo: Topo, job: Job, dim: str) -> int | None:
    """The level whose domains must hold a whole group of `dim` (None: no level bound).

    ``max_latency_us`` becomes the widest level whose every pair, in every site, is within
    the bound (sufficient, as peers only know containment); with a scope too, the narrower.
    """
    ix = topo.ix
    scope = job.effective_scope()[dim]
    lvl = None if scope in (None, "cluster") else ix.level_index(scope)
    bound = getattr(job.max_latency_us, dim)
    if bound is not None:
        lat = ix.lat_us  # (S, L): pairs meeting at level l
        worst = np.maximum.accumulate(lat[:, ::-1], axis=1)[:, ::-1]
        ok = (worst <= bound + 1e-9 * max(1.0, bound)).all(axis=0)
        good = np.flatnonzero(ok)
        b = int(good[0]) if len(good) else topo.NL
        lvl = b if lvl is None else max(lvl, b)
    return lvl


def _lv(inst, topo, job, dim) -> int:
    b = level_bound(inst, topo, job, dim)
    return 0 if b is None else b


@dataclass
class Shape:
    """A job's gang structure on one GPU type below a top level.

    ``psz``: GPUs per pod (a TP group when TP stays in a node, else the largest piece of it
    every node can hold); ``layers``: (level, pods per slice), coarse to fine, each slice
    inside one domain of its level (node-level slices included: Kueue's "slice level =
    host"); ``stage_major``: ranks are stage-major inside each EP block (layout B).
    """

    psz: int
    layers: list[tuple[int, int]]
    stage_major: bool
    unit_level: int


def unit_level(inst: Instance, topo: Topo, job: Job) -> int:
    """Level whose domains must hold one whole unit (PP chains and TP groups)."""
    tp_l = _lv(inst, topo, job, "tp") if job.tp > 1 else topo.NL
    return _lv(inst, topo, job, "pp") if job.pp > 1 else tp_l


def job_shape(inst: Instance, topo: Topo, job: Job, t: int, top: int) -> Shape:
    """Slice layers of `job` on type `t` inside one domain of level `top` (see overview 3)."""
    NL = topo.NL
    tp, pp, U = job.tp, job.pp, job.unit_size
    tp_l = _lv(inst, topo, job, "tp") if tp > 1 else NL
    u_l = unit_level(inst, topo, job)
    ep = job.ep if job.kind == "training" else 1
    ep_l = _lv(inst, topo, job, "ep") if ep > 1 else None
    stage_major = ep > 1 and pp > 1 and ep_l is not None and ep_l > u_l
    if stage_major:
        raw = [(u_l, ep * U), (ep_l, ep * tp), (tp_l, tp)]
    else:
        raw = ([(ep_l, ep * U)] if ep > 1 else []) + [(u_l, U), (tp_l, tp)]
    cur, clamped = top, []
    for lv, s in raw:  # a finer slice lies inside the coarser one's domain
        cur = max(cur, lv)
        clamped.append((cur, s))
    tp_at = clamped[-1][0]
    if tp_at == NL:  # a pod is one TP group on one node (peers.md 2.7)
        psz = tp
    else:  # TP may span nodes (e.g. NVL72 trays): pods are the largest common piece
        gpn = np.unique(topo.ix.node_gpus[topo.node_type == t]).tolist()
        psz = math.gcd(tp, *gpn) if gpn else 1
    layers: list[tuple[int, int]] = []
    for lv, s in clamped:
        k = s // psz
        if lv <= top or k <= 1:
            continue
        if layers and layers[-1][0] == lv:
            continue  # the coarser slice at the same level already holds it
        layers.append((lv, k))
    return Shape(psz, layers, stage_major, u_l)


@dataclass
class Gang:
    """One placement request handed to a peer: `total` pods of `psz` GPUs of type `t`,
    all inside one domain of level `top`, sliced by `layers` (level, pods per slice).

    Arrays (N = nodes): ``node_pods`` free pods per node in the usable region; ``node_alloc``
    available, unleased GPUs of type t; ``node_busy`` of those, the ones in use.
    """

    t: int
    psz: int
    total: int
    top: int
    layers: list[tuple[int, int]]
    mask: np.ndarray
    node_pods: np.ndarray
    node_alloc: np.ndarray
    node_busy: np.ndarray

    @property
    def slice_size(self) -> int:
        return self.layers[0][1] if self.layers else 1


def takes_to_gpus(topo: Topo, mask: np.ndarray, node_take: np.ndarray, psz: int) -> np.ndarray:
    """The lowest `node_take[n] * psz` usable GPUs of every node, in topology order."""
    nodes = np.flatnonzero(node_take)
    starts = topo.node_first_gpu[nodes]
    lens = topo.node_first_gpu[nodes + 1] - starts
    cand = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(
        int(lens.sum())
    )
    idx = cand[mask[cand]]
    node_of = topo.ix.gpu_node[idx]
    start = np.ones(len(idx), bool)
    start[1:] = node_of[1:] != node_of[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(len(idx)), 0))
    pos = np.arange(len(idx)) - first
    return idx[pos < np.asarray(node_take, np.int64)[node_of] * psz].astype(np.int64)


def to_rank_order(gpus: np.ndarray, job: Job, shape: Shape) -> np.ndarray:
    """Topology-ordered GPUs of whole slices -> SPEC rank order (layout B inside EP blocks)."""
    if not shape.stage_major:
        return gpus
    nb = len(gpus) // (job.ep * job.unit_size)
    return gpus.reshape(nb, job.pp, job.ep, job.tp).transpose(0, 2, 1, 3).reshape(-1)


# --------------------------------------------------------------------------- small helpers
def grouped_fill(groups: np.ndarray, caps: np.ndarray, demand: np.ndarray) -> np.ndarray:
    """Inside each run of equal `groups` (already sorted), give every item all it can hold
    until the group's `demand` (per item, equal inside a run) is met: int64 take."""
    n = len(caps)
    if n == 0:
        return np.zeros(0, np.int64)
    caps = np.asarray(caps, np.int64)
    cs = np.cumsum(caps)
    start = np.ones(n, bool)
    start[1:] = groups[1:] != groups[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    ex = cs - caps
    before = ex - ex[first]
    return np.clip(np.asarray(demand, np.int64) - before, 0, caps)


def leased_mask(st: State) -> np.ndarray:
    ix = st.ix
    m = np.zeros(ix.n_gpus, bool)
    for bl in st.offer_blocks:
        for lv, d in bl:
            a, b = ix.gpu_range(lv, d)
            m[a:b] = True
    return m


def job_types(inst: Instance, topo: Topo, job: Job) -> list[int]:
    """Allowed types present in the topology, in the job's order (flavor order)."""
    present = allowed_types(inst, topo.ix, job)
    if job.gpu_types is None:
        return present
    names = topo.ix.type_names
    return [names.index(t) for t in job.gpu_types if t in names and names.index(t) in present]


def must_place(job: Job) -> bool:
    return bool(job.current) and not job.preemptible


def job_order(inst: Instance) -> list[int]:
    """Running non-preemptible first, then value x GPUs descending, then name."""

    def key(j: int):
        job = inst.jobs[j]
        return (not must_place(job), -job.value * job.units_max * job.unit_size, job.name)

    return sorted(range(len(inst.jobs)), key=key)


@dataclass
class Run:
    st: State
    reasons: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------- the frame
class BaselineOptions(Options):
    """Options of the peer baselines."""

    policy: str = Field(
        "both",
        pattern="^(both|jobs-first|leases-first)$",
        description="Operator lease policy: jobs-first, leases-first, or both (the better).",
    )


class Baseline(Solver):
    """A peer scheduler's placement rules inside the shared operator frame (module doc).

    Subclasses implement :meth:`place`; HiveD also replaces the lease steps.
    """

    exact = False
    peer = True
    name = ""
    Options = BaselineOptions
    description = ""
    linear_tries = 8

    # ---- the peer's rule ---------------------------------------------------------------
    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:  # pragma: no cover
        """Pods to take per node (int (N,), summing to ``gang.total``) or None."""
        raise NotImplementedError

    def accept(self, st: State, gpus: np.ndarray) -> bool:
        """Hook: may this set of GPUs be given to a job now (HiveD's VC safety)."""
        return True

    # ---- solve ---------------------------------------------------------------------------
    def _solve(
        self,
        inst: Instance,
        time_limit: float | None = 60.0,
        seed: int = 0,
        threads: int = 1,
        **options: Any,
    ) -> Result:
        started = time.perf_counter()
        policy = options.get("policy", "both")
        if policy not in POLICIES:
            raise SolverError(
                f"{self.name}: unknown policy {policy!r}; valid: " + ", ".join(POLICIES)
            )
        # the limit (SPEC 2.2): jobs not reached by the deadline are left out and say so; a
        # reserve grows with the instance for the reasons, check and re-score (as placer's)
        self._deadline = None
        if time_limit is not None:
            self._deadline = started + time_limit - finish_reserve(inst, time_limit)
        runs: dict[str, Run | None] = {}
        if policy in ("both", "jobs-first") or not inst.offers:
            runs["jobs-first"] = self._timed(inst, False)
        late = self._deadline is not None and time.perf_counter() > self._deadline
        if inst.offers and policy in ("both", "leases-first") and not (late and runs):
            runs["leases-first"] = self._timed(inst, True)
        ok = {k: r for k, r in runs.items() if r is not None}
        if not ok:
            return no_placement(
                inst,
                self.name,
                NO_SOLUTION,
                f"{self.name}: the running non-preemptible jobs and the offers that must "
                "be accepted could not all be placed under its rules",
                started,
            )
        best = max(ok, key=lambda k: (ok[k].st.objective, k == "jobs-first"))
        run = ok[best]
        stats = {
            "policy": best,
            "policies": {
                k: (
                    None
                    if r is None
                    else {"objective": r.st.objective, "seconds": round(r.seconds, 3)}
                )
                for k, r in runs.items()
            },
        }
        return finalize(
            inst,
            self.name,
            run.st.job_gpus,
            run.st.offer_blocks,
            run.reasons,
            None,
            started,
            stats=stats,
        )

    def _timed(self, inst: Instance, leases_first: bool) -> Run | None:
        t0 = time.perf_counter()
        r = self.run_policy(inst, leases_first)
        if r is not None:
            r.seconds = time.perf_counter() - t0
        return r

    def run_policy(self, inst: Instance, leases_first: bool) -> Run | None:
        """One operator policy (overview 1); None when a must-place job found no room."""
        st = State(inst)
        topo = topo_of(inst)
        run = Run(st)
        # SPEC v2: an offer with `force: accept` is a must, leased before any job under
        # either policy; `force: decline` is never leased (State.lease_greedy)
        for o in offer_order(inst):
            if inst.offers[o].force == "accept":
                st.lease_greedy(o)
        if leases_first:
            for o in offer_order(inst):
                st.lease_greedy(o)
        if not self.place_jobs(run, topo):
            return None
        if not leases_first:
            for o in offer_order(inst):
                st.lease_greedy(o)
        if st.unplaced_musts():
            return None
        return run

    def place_jobs(self, run: Run, topo: Topo) -> bool:
        st = run.st
        deadline = getattr(self, "_deadline", None)
        for j in job_order(st.inst):
            job = st.inst.jobs[j]
            if job.pinned and job.current:
                continue
            if deadline is not None and time.perf_counter() > deadline and not must_place(job):
                run.reasons[job.name] = (
                    f"not reached before the time limit: {self.name} stopped at its deadline "
                    "before trying it"
                )
                continue
            placed = self.place_job(run, topo, j)
            if not placed and must_place(job):
                return False
        return True

    # ---- one job -------------------------------------------------------------------------
    def place_job(self, run: Run, topo: Topo, j: int) -> bool:
        st = run.st
        inst = st.inst
        job = inst.jobs[j]
        cur = self._keep_current(st, j) if job.current else None
        if cur is not None:
            st.set_job(j, cur)
            return True
        types = job_types(inst, topo, job)
        why = fit_nowhere_reason(inst, topo.ix, job, st.free)
        if not types or smallest_units(job) == 0:
            run.reasons[job.name] = why or f"{self.name}: no valid size"
            return False
        leased = leased_mask(st)
        g, bound = self._search(st, topo, j, types, leased)
        if g is None:
            run.reasons[job.name] = why or (
                f"{self.name}: no placement of {smallest_units(job)}..{job.units_max} units of "
                f"{job.unit_size} GPUs under its rules (capacity bound {bound} units)"
            )
            return False
        st.set_job(j, g)
        n = len(g) // job.unit_size
        if n < job.units_max:
            run.reasons[job.name] = (
                f"{self.name}: {n} of {job.units_max} units fit under its "
                f"rules (capacity bound {bound} units)"
            )
        return True

    def _keep_current(self, st: State, j: int) -> np.ndarray | None:
        inst, ix = st.inst, st.ix
        job = inst.jobs[j]
        cur = ix.gpu_indices(job.current)
        if (cur < 0).any() or not ix.available[cur].all() or not st.free[cur].all():
            return None
        if len(np.unique(ix.gpu_type[cur])) != 1:
            return None
        if not scope_ok(inst, j, cur):
            return None
        pw = np.bincount(ix.dom[0][cur], weights=st.gpu_power[cur], minlength=ix.n_sites)
        if (pw > st.power_left + 1e-9).any():
            return None
        return cur if self.accept(st, cur) else None

    def _search(
        self, st: State, topo: Topo, j: int, types: list[int], leased: np.ndarray
    ) -> tuple[np.ndarray | None, int]:
        """Most units (overview 4): linear steps down, then bisection."""
        job = st.inst.jobs[j]
        step = job.unit_step
        lo = smallest_units(job)
        bounds = {t: self._bound(st, topo, j, t, leased) for t in types}
        bound = max(bounds.values(), default=0)
        hi = min(job.units_max, bound)
        hi -= hi % step
        if hi < lo:
            return None, bound

        def attempt(n: int) -> np.ndarray | None:
            for t in types:
                if bounds[t] >= n:
                    g = self._place_sized(st, topo, j, t, n, leased)
                    if g is not None:
                        return g
            return None

        n, tries = hi, 0
        while n >= lo and tries < self.linear_tries:
            g = attempt(n)
            if g is not None:
                return g, bound
            n -= step
            tries += 1
        best = None
        a, b = lo // step, n // step
        while a <= b:
            mid = (a + b) // 2
            g = attempt(mid * step)
            if g is not None:
                best, a = g, mid + 1
            else:
                b = mid - 1
        return best, bound

    # ---- parts, power, layout ------------------------------------------------------------
    def _parts(
        self, inst: Instance, topo: Topo, job: Job, n: int
    ) -> tuple[list[int], int, int | None]:
        """(part sizes, top level, anti-affinity level or None)."""
        if job.kind == "training":
            return [n], _lv(inst, topo, job, "dp"), None
        if job.spread is None or job.spread.min <= 1:
            return [n], 0, None
        m = job.spread.min
        if n < m:
            return [], 0, None
        lvl = min(topo.ix.level_index(job.spread.level), unit_level(inst, topo, job))
        return [n // m + (1 if i < n % m else 0) for i in range(m)], lvl, lvl

    def _site_ok(self, st: State, power_left: np.ndarray, t: int, gpus: int) -> np.ndarray:
        p = st.ix.type_power_kW[t]
        if not np.isfinite(p) or p <= 0:
            return np.ones(st.ix.n_sites, bool)
        return power_left + 1e-9 >= gpus * p

    def _gang(
        self,
        st: State,
        topo: Topo,
        t: int,
        shape: Shape,
        pods: int,
        top: int,
        mask: np.ndarray,
        leased: np.ndarray,
    ) -> Gang:
        ix = st.ix
        node_free = np.bincount(ix.gpu_node[mask], minlength=topo.N)
        tm = topo.type_mask(t) & ix.available & ~leased
        alloc = np.bincount(ix.gpu_node[tm], minlength=topo.N)
        really_free = np.bincount(ix.gpu_node[tm & st.free], minlength=topo.N)
        return Gang(
            t,
            shape.psz,
            pods,
            top,
            shape.layers,
            mask,
            node_free // shape.psz,
            alloc,
            alloc - really_free,
        )

    def _bound(self, st: State, topo: Topo, j: int, t: int, leased: np.ndarray) -> int:
        """An upper bound on the units any peer can place (rounded slice capacities)."""
        inst, ix = st.inst, st.ix
        job = inst.jobs[j]
        parts, top, anti = self._parts(inst, topo, job, job.units_max)
        if not parts:
            return 0
        shape = job_shape(inst, topo, job, t, top)
        mask = st.free & topo.type_mask(t)
        node_pods = np.bincount(ix.gpu_node[mask], minlength=topo.N) // shape.psz
        P = topo.rounded(node_pods, shape.layers)
        per_unit = job.unit_size // shape.psz
        caps = P[top] // per_unit
        p = ix.type_power_kW[t]
        if np.isfinite(p) and p > 0:
            site = topo.dom_anc(top, 0)
            left = np.where(np.isfinite(st.power_left), st.power_left, 1e18)
            units_left = np.minimum(np.floor((left + 1e-9) / (p * job.unit_size)), 2**40).astype(
                np.int64
            )
            caps = np.minimum(caps, units_left[site])
        if anti is None:
            return int(caps.max(initial=0))
        m = len(parts)
        srt = np.sort(caps)[::-1]
        if len(srt) < m:
            return 0
        return int(m * srt[m - 1] + m - 1)

    def _place_sized(
        self, st: State, topo: Topo, j: int, t: int, n: int, leased: np.ndarray
    ) -> np.ndarray | None:
        inst, ix = st.inst, st.ix
        job = inst.jobs[j]
        parts, top, anti = self._parts(inst, topo, job, n)
        if not parts:
            return None
        shape = job_shape(inst, topo, job, t, top)
        free = st.free & topo.type_mask(t)
        power = st.power_left.copy()
        pw = np.nan_to_num(ix.type_power_kW[t], nan=0.0)
        out = []
        for k in parts:
            ok = self._site_ok(st, power, t, k * job.unit_size)
            mask = free & ok[ix.dom[0]]
            if not mask.any():
                return None
            pods = k * job.unit_size // shape.psz
            gang = self._gang(st, topo, t, shape, pods, top, mask, leased)
            take = self.place(topo, gang)
            if take is None:
                return None
            g = takes_to_gpus(topo, mask, take, shape.psz)
            if len(g) != k * job.unit_size:
                return None  # a peer returned a wrong count: treat as no fit
            out.append(to_rank_order(g, job, shape))
            free[g] = False
            power -= np.bincount(ix.dom[0][g], minlength=ix.n_sites) * pw
            if anti is not None:
                used = np.unique(ix.dom[anti][g])
                free &= ~np.isin(ix.dom[anti], used)
        g = np.concatenate(out)
        if not scope_ok(inst, j, g):
            return None
        if not self.accept(st, g):
            return None
        return g
