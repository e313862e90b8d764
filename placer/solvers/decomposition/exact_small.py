"""Exact mode for small instances: every placement of every job as a column, chosen by the
backend's MIP/CP, with WAN sharing handled by penalty cuts until the bound meets the
incumbent. Used by the exact backends when the columns are few enough.

Algorithm overview
1. Columns: for each job, each allowed unit count and GPU type, every map of ranks to
   nodes within the nodes' free GPUs (GPUs inside one node are interchangeable for the
   score, so a map stands for all its GPU choices). Vectorised rule checks (scopes,
   max_latency, WAN connectivity, spread) drop infeasible maps; the kernel scores the rest
   in one batch with every WAN link unshared (optimistic). Per job, maps with the same
   node counts and WAN links keep only the best. A running job's maps onto its current
   nodes use its current GPUs, so "moved" and migration cost are exact.
2. Model: one column per job at most (exactly one for running non-preemptible jobs; SPEC
   v3: one over all the variants of a job with plans, see :mod:`placer.solvers.plans`); per
   node, GPUs of chosen columns and leased blocks within its free GPUs; offers whole, with
   min/max GPUs, single_site, committed blocks; power per site; objective = column values
   + lease revenue - migration of stopped jobs - delta.
3. Solve, realise the chosen columns on concrete GPUs and score them with the kernel
   (exact WAN sharing). If the true objective is below the model's, the chosen set L of
   columns that cross the WAN lost loss(L); add delta >= loss(L) (sum_{c in L} x_c - |L| + 1).
   Any set containing L loses at least loss(L) (more sharers only slow columns down), so
   the model stays an upper bound; repeat until the model's optimum equals the best true
   objective found (proven optimal) or time runs out (bound = model's optimum).

Imports numpy and the kernel; solver libraries only through the LinModel backends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from placer.kernel.blocks import offer_block_problem
from placer.kernel.capacity import allowed_types, dimension_level
from placer.kernel.cost import analyse_job, as_batch
from placer.kernel.groups import job_group_sets, rank_array
from placer.kernel.score import evaluate_job, score_compiled
from placer.model import Instance, Status
from placer.model.instance import DIMS
from placer.solvers.decomposition.construct import _late
from placer.solvers.decomposition.linmodel import LinModel
from placer.solvers.plans import must_place, siblings

SMALL_GPUS = 64  # free GPUs up to which the exhaustive column model is tried
MAX_COLUMNS = 20_000
MAX_MAPS = 200_000


@dataclass
class Column:
    job: int
    counts: dict[int, int]  # node -> GPUs
    gpus: np.ndarray  # a concrete GPU array (rank order) realising the column
    value: float  # value - migration, WAN unshared
    links: frozenset[int]
    on_current: bool


def _valid_units(job) -> list[int]:
    lo = max(job.units_min, 1)
    return [n for n in range(lo, job.units_max + 1) if n % job.unit_step == 0]


def _feasible_mask(inst: Instance, job, gpus: np.ndarray) -> np.ndarray:
    """Rules 4 and 5 for a batch of candidate GPU arrays (C, n): bool (C,)."""
    ix = inst.index
    C, n = gpus.shape
    units = n // job.unit_size
    R = rank_array(gpus, units, job.pp, job.tp)
    fams = job_group_sets(R, job.kind, job.ep)
    ok = np.ones(C, bool)
    scope = job.effective_scope()
    for d in DIMS:
        for M in fams.get(d, []):
            ok &= _family_ok(ix, job, scope, d, M)
    if job.kind == "inference" and job.spread is not None:
        dd = np.sort(ix.dom[ix.level_index(job.spread.level)][gpus], axis=1)
        distinct = 1 + (dd[:, 1:] != dd[:, :-1]).sum(axis=1)
        ok &= distinct >= job.spread.min
    return ok


def _family_ok(ix, job, scope, d: str, M: np.ndarray) -> np.ndarray:
    ok = np.ones(M.shape[0], bool)
    if M.shape[-1] > 1:
        sites = ix.dom[0][M]
        ok &= np.isfinite(ix.wan_lat_us[sites, sites[..., :1]]).all(axis=(1, 2))
        lv = scope[d]
        if lv not in (None, "cluster"):
            dd = ix.dom[ix.level_index(lv)][M]
            ok &= (dd == dd[..., :1]).all(axis=(1, 2))
        bound = getattr(job.max_latency_us, d)
        if bound is not None:
            a = M[..., :, None]
            b = M[..., None, :]
            a, b = np.broadcast_arrays(a, b)
            lat = ix.pair_latency_us(a.reshape(-1), b.reshape(-1)).reshape(a.shape)
            same = a == b
            lat = np.where(same, 0.0, lat)
            ok &= (lat <= bound + 1e-9).all(axis=(1, 2, 3))
    return ok


class _Symmetry:
    """Interchangeable subtrees of one job's candidate nodes (step 1 of the overview).

    Two sibling domains inside a site are interchangeable when their candidate nodes, in
    tree order, have the same (type, capacity, GPUs of the job's current placement): the
    kernel sees a placement's domains, never their names, and fabric, failures and power
    are per site, so mapping one subtree onto the other position by position keeps every
    score. `prev[k]` lists, per level, the previous interchangeable sibling of local node
    k's domain (-1: none); `swaps` are the permutations of local node indices exchanging two
    such neighbours (together they generate the whole group)."""

    def __init__(self, ix, nodes: np.ndarray, sig: list[tuple]) -> None:
        L = ix.n_levels
        first = ix.first_gpu[-1][nodes]
        self.path = [
            [int(ix.dom[lv][g]) for lv in range(L - 1)] + [int(nd)]
            for g, nd in zip(first.tolist(), nodes.tolist())
        ]
        # members (local node indices, tree order) and signature of each domain per level
        members: list[dict[int, list[int]]] = [{} for _ in range(L)]
        for k, p in enumerate(self.path):
            for lv in range(L):
                members[lv].setdefault(p[lv], []).append(k)
        signature: list[dict[int, tuple]] = [{} for _ in range(L)]
        for d, ks in members[L - 1].items():
            signature[L - 1][d] = sig[ks[0]]
        for lv in range(L - 2, -1, -1):
            for d, ks in members[lv].items():
                kids = []
                for k in ks:
                    c = self.path[k][lv + 1]
                    if not kids or kids[-1] != c:
                        kids.append(c)
                signature[lv][d] = tuple(signature[lv + 1][c] for c in kids)
        self.prev: list[dict[int, int]] = [{} for _ in range(L)]
        self.swaps: list[np.ndarray] = []
        for lv in range(1, L):
            last: dict[tuple, int] = {}  # (parent, signature) -> last sibling seen
            for d, ks in members[lv].items():  # dicts keep tree order
                key = (self.path[ks[0]][lv - 1], signature[lv][d])
                p = last.get(key, -1)
                self.prev[lv][d] = p
                last[key] = d
                if p >= 0:
                    perm = np.arange(len(nodes))
                    a, b = members[lv][p], ks
                    perm[a], perm[b] = b, a
                    self.swaps.append(perm)
        self.L = L

    def maps(
        self, cap: np.ndarray, m: int, gran: int, same: list, give_up_at, limit: int
    ) -> np.ndarray | None:
        """One map of m positions (gran GPUs each) to local nodes per orbit of the group
        (used domains of each class in first-use order), within `cap`, position by
        position for all partial maps at once; `same[i]`: (level, j) pairs, position i in
        the same domain of that level as the earlier position j (a scope: the group
        permutes domains of a level among themselves, so this prunes no orbit). None past
        `limit` maps or `give_up_at`."""
        L, K = self.L, len(self.path)
        path = np.array(self.path, np.int64).reshape(K, L)
        local, prev = [], []  # per level >= 1: local domain id per node, previous sibling
        for lv in range(1, L):
            ids = {d: i for i, d in enumerate(dict.fromkeys(path[:, lv].tolist()))}
            local.append(np.array([ids[d] for d in path[:, lv].tolist()], np.int64))
            pv = np.full(len(ids), -1, np.int64)
            for d, i in ids.items():
                q = self.prev[lv].get(d, -1)
                pv[i] = ids[q] if q >= 0 else -1
            prev.append(pv)
        maps = np.zeros((1, 0), np.int64)
        counts = np.zeros((1, K), np.int64)
        used = [np.zeros((1, len(pv)), bool) for pv in prev]
        for i in range(m):
            if give_up_at is not None and time.perf_counter() > give_up_at:
                return None
            parts = []
            for k in range(K):
                ok = counts[:, k] + gran <= cap[k]
                for lv, j in same[i]:
                    ok &= path[maps[:, j], lv] == path[k, lv]
                for x in range(L - 1):
                    d = local[x][k]
                    p = prev[x][d]
                    if p >= 0:
                        ok &= used[x][:, d] | used[x][:, p]
                rows = np.flatnonzero(ok)
                if len(rows):
                    parts.append((k, rows))
            if not parts:
                return np.zeros((0, m), np.int64)
            rows = np.concatenate([r for _, r in parts])
            if len(rows) > limit:
                return None
            ks = np.concatenate([np.full(len(r), k, np.int64) for k, r in parts])
            maps = np.concatenate([maps[rows], ks[:, None]], axis=1)
            counts = counts[rows]
            counts[np.arange(len(rows)), ks] += gran
            used = [u[rows] for u in used]
            for x in range(L - 1):
                used[x][np.arange(len(rows)), local[x][ks]] = True
        return maps

    def orbit(self, cmap: np.ndarray, limit: int) -> list[np.ndarray] | None:
        """Every image of a map under the group with a distinct node-count vector."""
        K = len(self.path)
        seen = {np.bincount(cmap, minlength=K).tobytes(): cmap}
        todo = [cmap]
        while todo:
            x = todo.pop()
            for perm in self.swaps:
                y = perm[x]
                key = np.bincount(y, minlength=K).tobytes()
                if key not in seen:
                    seen[key] = y
                    todo.append(y)
                    if len(seen) > limit:
                        return None
        return list(seen.values())


class _JobMaps:
    """Scoring of one job's maps onto its candidate nodes of one type (or "mixed")."""

    def __init__(self, inst, job, t, nodes, cap, table, gran, bw_max) -> None:
        self.inst, self.job, self.t, self.nodes, self.cap = inst, job, t, nodes, cap
        self.table, self.gran, self.bw_max = table, gran, bw_max

    def score(self, maps: np.ndarray, n: int, units: int):
        """The feasible ones of `maps` (positions of gran GPUs -> local nodes), realised
        and kernel-scored: (maps, gpus, counts, net value, links, moved), or None."""
        inst, job, nodes, gran = self.inst, self.job, self.nodes, self.gran
        ix = inst.index
        maps = np.repeat(maps, gran, axis=1)
        K = len(nodes)
        cell = np.arange(len(maps))[:, None] * K + maps  # (row, node) of each rank
        counts = np.bincount(cell.ravel(), minlength=len(maps) * K).reshape(len(maps), K)
        del cell
        fit = (counts <= self.cap[None, :]).all(axis=1)
        if self.t == "mixed":
            ut = ix.node_type[nodes[maps]].reshape(len(maps), units, job.unit_size)
            fit &= (ut == ut[:, :, :1]).all(axis=(1, 2))
        maps, counts = maps[fit], counts[fit]
        if len(maps) == 0:
            return None
        # occ: how many earlier ranks of the row share the rank's node (its GPU on the node)
        occ = np.empty_like(maps)
        run = np.zeros((len(maps), K), np.int64)
        rows = np.arange(len(maps))
        for i in range(n):
            occ[:, i] = run[rows, maps[:, i]]
            run[rows, maps[:, i]] += 1
        node_ids = nodes[maps]
        gpus = np.empty_like(maps)
        for nd, arr in self.table.items():
            sel = node_ids == nd
            if sel.any():
                gpus[sel] = arr[np.minimum(occ[sel], len(arr) - 1)]
        ok = _feasible_mask(inst, job, gpus)
        if not ok.any():
            return None
        self.kept = np.flatnonzero(fit)[ok]  # rows of the input that are returned
        maps, gpus, counts = maps[ok][:, ::gran], gpus[ok], counts[ok]
        ana = analyse_job(ix, job, as_batch(gpus, job))
        sc = evaluate_job(inst, ix, job, gpus, ana, self.bw_max)
        return maps, gpus, counts, sc.value - sc.migration, ana.links, sc.moved


def _scope_pairs(inst: Instance, job, units: int, gran: int) -> list[list[tuple[int, int]]]:
    """Per map position (gran ranks): (level, earlier position) pairs it must share a
    domain of that level with -- each rank with the first member of each of its groups
    whose dimension's scope (or latency bound) is narrower than the cluster."""
    ix = inst.index
    tp, pp = job.tp, job.pp
    usz = tp * pp
    training = job.kind == "training"
    dims = [d for d in ("tp", "pp", "dp", "ep") if _groups(job, d, units)]
    lv = {d: dimension_level(inst, ix, job, d) for d in dims}
    out: list[list[tuple[int, int]]] = []
    for i in range(units * usz // gran):
        pairs = set()
        for r in range(i * gran, (i + 1) * gran):
            u, p, t = r // usz, (r // tp) % pp, r % tp
            first = {
                "tp": r - t,
                "pp": r - p * tp,
                "dp": p * tp + t,
                "ep": (u - u % job.ep) * usz + p * tp + t if training else r,
            }
            for d in dims:
                f = first[d]
                if lv[d] is not None and f // gran < i:
                    pairs.add((lv[d], f // gran))
        out.append(sorted(pairs))
    return out


def _groups(job, dim: str, units: int) -> bool:
    """Whether `units` units of `job` form a group of `dim` with two or more members."""
    if dim == "tp":
        return job.tp > 1
    if dim == "pp":
        return job.pp > 1
    if job.kind != "training":
        return False
    return (job.ep > 1) if dim == "ep" else units > 1


def _best_per_key(got) -> dict[tuple, int]:
    """Per (node counts, WAN links): the index of the best-valued map (the first of equals),
    keys in order of first appearance."""
    _, _, counts, net, links, _ = got
    key = np.ascontiguousarray(np.concatenate([counts, links.astype(np.int64)], axis=1))
    rows = key.view(np.dtype((np.void, key.shape[1] * key.itemsize))).reshape(-1)
    _, first, inv = np.unique(rows, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    # per key the best net value, then the first row reaching it (within 1e-12)
    top = np.full(len(first), -np.inf)
    np.maximum.at(top, inv, net)
    rows = np.flatnonzero(net >= top[inv] - 1e-12)
    pick = np.full(len(first), len(net), np.int64)
    np.minimum.at(pick, inv[rows], rows)
    return {int(k): int(pick[k]) for k in np.argsort(first, kind="stable")}


SCORE_CHUNK = 16_384  # maps scored between two looks at the deadline (about 0.15 s)


def _score_until(jm: _JobMaps, maps: np.ndarray, n: int, units: int, give_up_at: float | None):
    """`jm.score(maps, ...)` in chunks of SCORE_CHUNK maps, the deadline checked between
    them: (its result, False), or (None, True) when `give_up_at` passed first. Rows are
    scored independently, so the chunks' results joined in order are the whole call's."""
    if len(maps) <= SCORE_CHUNK:
        return jm.score(maps, n, units), False
    parts, kept = [], []
    for a in range(0, len(maps), SCORE_CHUNK):
        if _late(give_up_at):
            return None, True
        got = jm.score(maps[a : a + SCORE_CHUNK], n, units)
        if got is not None:
            parts.append(got)
            kept.append(jm.kept + a)
    if not parts:
        return None, False
    jm.kept = np.concatenate(kept)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))), False


def build_columns(
    inst: Instance, free: np.ndarray, give_up_at: float | None = None, info: dict | None = None
) -> list[Column] | None:
    """All columns, or None when there would be too many (`info["why"] = "size"`) or
    `give_up_at` passes first (`"time"`: more time may build them; the jobs whose columns
    are done are kept in `info["done"]`, and a call with the same `info` resumes).

    Maps are enumerated once per orbit of the job's interchangeable subtrees
    (:class:`_Symmetry`); the best map of each node-count vector is then carried to every
    image of the orbit, and the images are scored by the kernel again (so a column's value
    is the kernel's, whatever the symmetry argument)."""
    ix = inst.index

    def why(reason: str) -> None:
        if info is not None:
            info["why"] = reason
        return None

    bw_max = ix.link_bw_GBps.copy()
    node_free = np.bincount(ix.gpu_node[free], minlength=len(ix.node_gpus))
    cols: list[Column] = []
    done: dict[int, list[Column]] = {} if info is None else info.setdefault("done", {})
    for j, job in enumerate(inst.jobs):
        if job.pinned and job.current:
            continue
        if j in done:
            cols += done[j]
            continue
        first_col = len(cols)
        cur = ix.cached_indices(job.current) if job.current else None
        cur_counts = None
        if cur is not None:
            cur_counts = np.bincount(ix.gpu_node[cur], minlength=len(ix.node_gpus))
        types = allowed_types(inst, ix, job)
        # SPEC v2 mix_types: also every map over the nodes of all its types, units one type
        for t in types + (["mixed"] if job.mix_types and len(types) > 1 else []):
            of_t = np.isin(ix.node_type, types) if t == "mixed" else ix.node_type == t
            nodes = np.flatnonzero(of_t & (node_free > 0))
            if cur is not None:
                nodes = np.union1d(nodes, np.flatnonzero((cur_counts > 0) & of_t))
            if len(nodes) == 0:
                continue
            cap = node_free[nodes].copy()
            if cur is not None:
                cap = np.maximum(cap, cur_counts[nodes])
            own = np.zeros(len(nodes), np.int64) if cur is None else cur_counts[nodes]
            sym = _Symmetry(
                ix,
                nodes,
                [(int(ix.node_type[nd]), int(c), int(o)) for nd, c, o in zip(nodes, cap, own)],
            )
            # realise: current GPUs first on current nodes, then free GPUs
            table = {}
            for nd in nodes.tolist():
                a = int(ix.first_gpu[-1][nd])
                mine = [] if cur is None else [g for g in cur.tolist() if ix.gpu_node[g] == nd]
                rest = [g for g in range(a, a + int(ix.node_gpus[nd])) if free[g] and g not in mine]
                table[nd] = np.array(mine + rest, np.int64)
            # a TP group whose scope is the node sits on one node: map TP groups, not GPUs
            gran = job.tp if job.effective_scope()["tp"] == ix.levels[-1] else 1
            jm = _JobMaps(inst, job, t, nodes, cap, table, gran, bw_max)

            for units in _valid_units(job):
                if give_up_at is not None and time.perf_counter() > give_up_at:
                    return why("time")
                n = units * job.unit_size
                same = _scope_pairs(inst, job, units, gran)
                reps = sym.maps(cap, n // gran, gran, same, give_up_at, MAX_MAPS)
                if reps is None:
                    timed_out = give_up_at is not None and time.perf_counter() > give_up_at
                    return why("time" if timed_out else "size")
                if len(reps) == 0:
                    continue
                # (one units count of a job can score 150,000 maps, 1.4 s: the deadline is
                # checked between chunks of them, not only between counts)
                got, cut = _score_until(jm, reps, n, units, give_up_at)
                if cut:
                    return why("time")
                if got is None:
                    continue
                images = []
                for c in _best_per_key(got).values():
                    if _late(give_up_at):
                        return why("time")
                    orb = sym.orbit(got[0][c], MAX_COLUMNS)
                    if orb is None or len(images) + len(orb) > MAX_MAPS:
                        return why("size")
                    images += orb
                got, cut = _score_until(jm, np.array(images, np.int64), n, units, give_up_at)
                if cut:
                    return why("time")
                if got is None:
                    continue
                maps, gpus, counts, net, links, moved = got
                best = list(_best_per_key(got).values())
                # a column's map as a plain product of maps would find it first: the ranks
                # on its nodes in tree order, when that scores as well (ties then break as
                # they always did); columns in that order too
                flat = np.sort(maps[best], axis=1)
                alt = jm.score(flat, n, units)
                if alt is not None:
                    for i, r in enumerate(jm.kept.tolist()):
                        c = best[r]
                        if alt[3][i] >= net[c] - 1e-9 * max(1.0, abs(net[c])) and np.array_equal(
                            alt[4][i], links[c]
                        ):
                            gpus[c], net[c], moved[c] = alt[1][i], alt[3][i], alt[5][i]
                            maps[c] = flat[r]
                srt = np.sort(maps[best], axis=1)
                best = [best[i] for i in np.lexsort(srt.T[::-1])]
                for c in best:
                    cnt = {int(nodes[k]): int(counts[c, k]) for k in np.flatnonzero(counts[c])}
                    cols.append(
                        Column(
                            j,
                            cnt,
                            gpus[c].copy(),
                            float(net[c]),
                            frozenset(np.flatnonzero(links[c]).tolist()),
                            cur is not None and not bool(moved[c]),
                        )
                    )
                if len(cols) > MAX_COLUMNS:
                    return why("size")
        done[j] = cols[first_col:]
    return cols


def _blocks(inst: Instance, free: np.ndarray, pinned_mask: np.ndarray):

    ix = inst.index
    out = []  # (offer, level, domain, site, gpus, nodes)
    for o, offer in enumerate(inst.offers):
        lvl = ix.level_index(inst.offer_level(offer))
        for d in range(ix.n_domains(lvl)):
            path = ix.domain_path(lvl, d)
            why, _ = offer_block_problem(inst, ix, offer, path)
            if why:
                continue
            a, b = ix.gpu_range(lvl, d)
            if b <= a or pinned_mask[a:b].any():
                continue
            nodes = np.unique(ix.gpu_node[a:b]).tolist()
            out.append((o, lvl, d, int(ix.dom[0][a]), int(ix.available[a:b].sum()), nodes))
    return out


class SmallExact:
    """The column model and its penalty-cut loop (see the overview)."""

    def __init__(
        self, inst: Instance, columns: list[Column], free: np.ndarray, pinned_mask: np.ndarray
    ) -> None:
        self.inst = inst
        self.cols = columns
        self.free = free
        ix = inst.index
        lm = LinModel()
        self.x = [lm.var(f"x{c}", 0, 1) for c in range(len(columns))]
        gpu_power = np.nan_to_num(ix.type_power_kW, nan=0.0)
        node_rows: dict[int, dict[int, float]] = {}
        power: dict[int, dict[int, float]] = {}
        const = 0.0
        by_job: dict[int, list[int]] = {}
        for c, col in enumerate(columns):
            lm.maximize(self.x[c], col.value)
            by_job.setdefault(col.job, []).append(c)
            for nd, k in col.counts.items():
                node_rows.setdefault(nd, {})[self.x[c]] = float(k)
                s = int(ix.dom[0][ix.first_gpu[-1][nd]])
                p = float(gpu_power[ix.node_type[nd]]) * k
                power.setdefault(s, {})[self.x[c]] = power.get(s, {}).get(self.x[c], 0.0) + p
        by_group: dict[int, list[int]] = {}  # SPEC v3: the columns of all of a job's plans
        for j, job in enumerate(inst.jobs):
            cs = by_job.get(j, [])
            if job.pinned and job.current:
                continue
            if job.current:
                const -= job.migration_cost  # stopped unless a column is chosen
                for c in cs:
                    lm.maximize(self.x[c], job.migration_cost)
            by_group.setdefault(siblings(inst, j)[0], []).extend(cs)
        for j, cs in by_group.items():
            if cs:
                lm.add({self.x[c]: 1.0 for c in cs}, "<=", 1)
            if must_place(inst, j):
                lm.add({self.x[c]: 1.0 for c in cs}, ">=", 1)
        self.blocks = _blocks(inst, free, pinned_mask)
        self.y = [lm.var(f"y{b}", 0, 1) for b in range(len(self.blocks))]
        node_block: dict[int, dict[int, float]] = {}
        for b, (o, lvl, d, s, g, nodes) in enumerate(self.blocks):
            offer = inst.offers[o]
            lm.maximize(self.y[b], inst.horizon_hours * offer.price_per_gpu_hour * g)
            a0, b0 = ix.gpu_range(lvl, d)
            av = ix.available[a0:b0]
            p = float((gpu_power[ix.gpu_type[a0:b0]] * av).sum())
            power.setdefault(s, {})[self.y[b]] = p
            for nd in nodes:
                node_block.setdefault(nd, {})[self.y[b]] = 1.0
                # a leased block holds no job GPU
                row = dict(node_rows.get(nd, {}))
                nf = float(np.bincount(ix.gpu_node[free], minlength=len(ix.node_gpus))[nd])
                row[self.y[b]] = max(nf, 1.0)
                lm.add(row, "<=", max(nf, 1.0))
        for row in node_block.values():
            lm.add(row, "<=", 1)
        nf_all = np.bincount(ix.gpu_node[free], minlength=len(ix.node_gpus))
        for nd, row in node_rows.items():
            lm.add(row, "<=", float(nf_all[nd]))
        self.accept = []
        for o, offer in enumerate(inst.offers):
            a = lm.var(f"a{o}", 0, 1)
            self.accept.append(a)
            mine = [b for b, blk in enumerate(self.blocks) if blk[0] == o]
            tot = {self.y[b]: float(self.blocks[b][4]) for b in mine}
            for b in mine:
                lm.add({self.y[b]: 1.0, a: -1.0}, "<=", 0)
            lm.add({**tot, a: -float(offer.min_gpus)}, ">=", 0)
            if offer.max_gpus is not None:
                lm.add(tot, "<=", offer.max_gpus)
            if not mine:
                lm.add({a: 1.0}, "<=", 0)
            lm.add({a: 1.0, **{self.y[b]: -1.0 for b in mine}}, "<=", 0)
            if offer.force == "accept":  # SPEC v2
                lm.add({a: 1.0}, ">=", 1)
            elif offer.force == "decline":
                lm.add({a: 1.0}, "<=", 0)
            if offer.committed_blocks:
                paths = set(offer.committed_blocks)
                for b in mine:
                    if ix.domain_path(self.blocks[b][1], self.blocks[b][2]) in paths:
                        lm.add({self.y[b]: 1.0}, ">=", 1)
                lm.add({a: 1.0}, ">=", 1)
            if offer.single_site:
                sites = sorted({self.blocks[b][3] for b in mine})
                ws = {s: lm.var(f"w{o},{s}", 0, 1) for s in sites}
                if ws:
                    lm.add({w: 1.0 for w in ws.values()}, "<=", 1)
                for b in mine:
                    lm.add({self.y[b]: 1.0, ws[self.blocks[b][3]]: -1.0}, "<=", 0)
        pinned_power = np.zeros(ix.n_sites)
        np.add.at(pinned_power, ix.dom[0][pinned_mask], gpu_power[ix.gpu_type[pinned_mask]])
        for s, row in power.items():
            cap = ix.power_cap_kW[s]
            if np.isfinite(cap):
                lm.add(row, "<=", float(cap - pinned_power[s]))
        # the penalty never exceeds the value of all columns together
        worst = sum(
            max((max(col.value, 0.0) for col in columns if col.job == j), default=0.0)
            for j in range(len(inst.jobs))
        )
        self.delta = lm.var("delta", 0, float(np.ceil(worst)) + 1.0)
        lm.maximize(self.delta, -1.0)
        lm.obj_const = const
        self.lm = lm

    def realise(self, vals: list[float], base_gpus: list[np.ndarray]):
        ix = self.inst.index
        job_gpus = [g.copy() for g in base_gpus]
        used = ~self.free.copy()
        chosen = [c for c in range(len(self.cols)) if vals[self.x[c]] > 0.5]
        chosen.sort(key=lambda c: not self.cols[c].on_current)
        for c in chosen:
            col = self.cols[c]
            g = col.gpus.copy()
            if used[g].any() or len(np.unique(g)) != len(g):
                # same node counts on other free GPUs of those nodes (interchangeable)
                for r in range(len(g)):
                    nd = int(ix.gpu_node[col.gpus[r]])
                    a = int(ix.first_gpu[-1][nd])
                    cand = [
                        x
                        for x in range(a, a + int(ix.node_gpus[nd]))
                        if not used[x] and x not in g[:r]
                    ]
                    g[r] = cand[0]
            used[g] = True
            job_gpus[col.job] = g
        blocks = [[] for _ in self.inst.offers]
        for b, (o, lvl, d, _s, _gp, _nodes) in enumerate(self.blocks):
            if vals[self.y[b]] > 0.5:
                blocks[o].append((lvl, d))
        return chosen, job_gpus, blocks

    def solve(self, solve_lm, deadline: float | None, base_gpus: list[np.ndarray]):
        """The cut loop; returns (job_gpus, offer_blocks, true objective, bound, proven)."""
        best = None
        bound = None
        cuts = 0
        while True:
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0.05:
                break
            sol = solve_lm(self.lm, left)
            if sol.values is None:
                if sol.status == Status.INFEASIBLE:
                    return None, None, None, None, Status.INFEASIBLE
                break
            bound = sol.bound if bound is None else min(bound, sol.bound)
            chosen, job_gpus, blocks = self.realise(sol.values, base_gpus)
            true = score_compiled(self.inst, job_gpus, blocks).objective
            if best is None or true > best[2]:
                best = (job_gpus, blocks, true)
            if sol.status == Status.OPTIMAL and true >= sol.bound - 1e-7 * max(1.0, abs(true)):
                return best[0], best[1], best[2], max(best[2], bound), True
            linked = [c for c in chosen if self.cols[c].links]
            # the model's value of this choice without the current penalty
            loss = self.lm.value(sol.values) + sol.values[self.delta] - true
            if not linked or loss <= 1e-9 * max(1.0, abs(true)):
                # no sharing to correct: the model is exact here
                return best[0], best[1], best[2], bound, sol.status == Status.OPTIMAL
            row = {self.delta: 1.0}
            for c in linked:
                row[self.x[c]] = -loss
            self.lm.add(row, ">=", loss * (1 - len(linked)))
            cuts += 1
        if best is None:
            return None, None, None, bound, False
        return best[0], best[1], best[2], bound, False
