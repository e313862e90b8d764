"""The communication-cost kernel: SPEC section 4 on dense arrays.

Algorithm overview
1. Compile every placed job's GPUs (rank order) to R (units, pp, tp) and form its group
   families (TP, DP, EP matrices; PP boundaries as pairs), see :mod:`placer.kernel.groups`.
2. Analyse each family once: split every group into its site parts (sort by site,
   segment), find each part's meeting level as the number of levels on which the part's
   domain ids agree (min == max per segment), and its reduce-scatter time
   m (n_s-1) alpha + (n_s-1)/n_s S/B. Groups over k > 1 sites get their distinct site
   sets, each set's largest pair latency and the WAN links on its pair paths.
3. Count, for every WAN link, the distinct placed jobs having any group whose path uses
   it; shared bandwidth = link bandwidth / that count.
4. Finish each family: one site -> ring (2 x part time) or all-to-all (1 x); k sites ->
   2 x slowest part + [m 2(k-1) alpha_wan + 2(k-1)/k S_job/W] / cross_site_every.
   PP: slowest boundary, m alpha + S/B, or across sites m alpha_path + S_job/W_path.
5. Per job: step, efficiency, interruption rate (distinct nodes' and links' failure
   rates), lost time, goodput, value; offers' revenue; migration costs; the objective.

No Python loop runs over GPUs or groups: loops run over jobs, dimensions, levels and
distinct site sets. Shapes: R int64 (C, units, pp, tp) with a candidate axis C (1 when
scoring a placement). Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from placer.kernel.groups import (
    dp_groups,
    ep_groups,
    ep_rest_groups,
    pp_boundaries,
    rank_array,
    tp_groups,
)


@dataclass
class Family:
    """Analysis of one group family of one job for C candidates (see step 2)."""

    kind: str  # "allreduce" | "alltoall" | "pp"
    C: int
    rows_per_c: int
    part_time: np.ndarray  # float64 (C*rows,): slowest part (RS) time, or PP same-site time
    k: np.ndarray  # int64 (C*rows,): sites touched (PP: 1 same site, 2 across)
    set_id: np.ndarray  # int64 (C*rows,): id into site_sets (-1 when k == 1)
    set_alpha_us: np.ndarray  # float64 (n_sets,)
    set_links: np.ndarray  # bool (n_sets, W)
    n_cross: np.ndarray  # int64 (C,): cross-site rows per candidate

    def links_used(self) -> np.ndarray:
        """bool (C, W): links any cross-site row of each candidate uses."""
        W = self.set_links.shape[1]
        out = np.zeros((self.C, W), bool)
        cross = self.set_id >= 0
        if cross.any():
            cand = np.flatnonzero(cross) // self.rows_per_c
            # each (candidate, set) pair once, as one integer (a 1-D unique: np.unique
            # over axis 1 sorted the pairs as records, 8x slower on a frontier run's PP)
            n_sets = len(self.set_alpha_us)
            pairs = np.unique(cand * n_sets + self.set_id[cross])
            np.logical_or.at(out, pairs // n_sets, self.set_links[pairs % n_sets])
        return out

    def time(self, shared_bw: np.ndarray, m: float, S: float, cse: float) -> np.ndarray:
        """float64 (C,): slowest row of each candidate."""
        if self.rows_per_c == 0:
            return np.zeros(self.C)
        t = self.part_time * (2.0 if self.kind == "allreduce" else 1.0)
        cross = self.set_id >= 0
        if cross.any():
            if self.set_links.shape[1]:
                setW = np.where(self.set_links, shared_bw[None, :], np.inf).min(axis=1)
            else:
                setW = np.full(len(self.set_alpha_us), np.inf)
            sid = self.set_id[cross]
            k = self.k[cross].astype(float)
            alpha = self.set_alpha_us[sid]
            W = setW[sid]
            cand = np.flatnonzero(cross) // self.rows_per_c
            S_job = S * self.n_cross[cand]
            with np.errstate(divide="ignore", invalid="ignore"):
                if self.kind == "pp":
                    wan = m * alpha / 1000.0 + S_job / W
                    t[cross] = wan
                else:
                    wan = all_reduce_ms(k, m, S_job, alpha, W)
                    t[cross] = 2.0 * self.part_time[cross] + wan / cse
            t[cross] = np.where(np.isnan(t[cross]), np.inf, t[cross])
        return t.reshape(self.C, self.rows_per_c).max(axis=1)


def reduce_scatter_ms(n, m, S, lat_us, bw_GBps):
    """SPEC 4: a reduce-scatter (or all-gather) of n ranks, ``m (n-1) alpha + (n-1)/n S/B``
    in ms; also the all-to-all of an EP group. Scalars or arrays; 0 for n <= 1."""
    if np.isscalar(n) and n <= 1:
        return 0.0
    return m * (n - 1) * lat_us / 1000.0 + (n - 1) / n * S / bw_GBps


def all_reduce_ms(n, m, S, lat_us, bw_GBps):
    """SPEC 4: a ring all-reduce of n ranks, ``m 2(n-1) alpha + 2(n-1)/n S/B`` in ms: a
    reduce-scatter and an all-gather. Scalars or arrays; 0 for n <= 1."""
    return 2.0 * reduce_scatter_ms(n, m, S, lat_us, bw_GBps)


def pp_boundary_ms(m, S, lat_us, bw_GBps):
    """SPEC 4: one PP boundary, ``m_pp alpha + S/B`` in ms (S = pp_MB, or S_job over the
    WAN). Scalars or arrays."""
    return m * lat_us / 1000.0 + S / bw_GBps


def merge_families(a: Family, b: Family) -> Family:
    """One family made of the rows of a and then those of b (same kind and C), e.g. the
    complete EP blocks and the incomplete last one (groups of different sizes)."""
    C = a.C

    def cat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([x.reshape(C, -1), y.reshape(C, -1)], axis=1).ravel()

    sid_b = np.where(b.set_id >= 0, b.set_id + len(a.set_alpha_us), -1)
    return Family(
        a.kind,
        C,
        a.rows_per_c + b.rows_per_c,
        cat(a.part_time, b.part_time),
        cat(a.k, b.k),
        cat(a.set_id, sid_b),
        np.concatenate([a.set_alpha_us, b.set_alpha_us]),
        np.concatenate([a.set_links, b.set_links]),
        a.n_cross + b.n_cross,
    )


def _sets_from_membership(index, mem: np.ndarray):
    """mem bool (r, S) -> (set_id (r,), alpha_us (n,), links bool (n, W))."""
    S = index.n_sites
    W = index.pair_links.shape[1]
    if S <= 62:
        # each row's sites as one integer, site 0 the highest bit: a 1-D unique in the
        # order np.unique(mem, axis=0) gives (rows compared as records: several times
        # slower on the boundaries of a pipeline split over campuses)
        code = mem.astype(np.int64) @ (np.int64(1) << np.arange(S - 1, -1, -1, dtype=np.int64))
        codes, inv = np.unique(code, return_inverse=True)
        uniq = ((codes[:, None] >> np.arange(S - 1, -1, -1, dtype=np.int64)) & 1).astype(bool)
    else:
        uniq, inv = np.unique(mem, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    alpha = np.zeros(len(uniq))
    links = np.zeros((len(uniq), W), bool)
    for i, row in enumerate(uniq):
        s = np.flatnonzero(row)
        a, b = np.meshgrid(s, s, indexing="ij")
        off = a != b
        lat = index.wan_lat_us[a[off], b[off]]
        alpha[i] = lat.max() if len(lat) else 0.0
        if W:
            links[i] = index.pair_links[(a[off] * S + b[off])].any(axis=0)
    return inv, alpha, links


def analyse_groups(index, M: np.ndarray, m: float, S: float, kind: str) -> Family:
    """Analyse a family of groups M int (C, rows, n) (step 2 of the overview)."""
    C, rows, n = M.shape
    W = index.pair_links.shape[1]
    total = C * rows
    empty = Family(
        kind,
        C,
        rows,
        np.zeros(total),
        np.ones(total, np.int64),
        np.full(total, -1, np.int64),
        np.zeros(0),
        np.zeros((0, W), bool),
        np.zeros(C, np.int64),
    )
    if total == 0 or n <= 1:
        return empty
    flatM = M.reshape(total, n)
    L = index.n_levels
    # Domain ids grow with the GPU index at every level (tree order), so a set of GPUs
    # shares a domain iff its smallest and largest GPU do: one comparison per level.
    lo = flatM.min(axis=1)
    hi = flatM.max(axis=1)
    if (index.dom[0][lo] == index.dom[0][hi]).all():
        # fast path: every group inside one site, one part per row
        eqsum = np.ones(total, np.int64)
        for lvl in range(1, L):
            d = index.dom[lvl]
            eqsum += d[lo] == d[hi]
        lvl_of = eqsum - 1
        s0 = index.dom[0][lo]
        part = reduce_scatter_ms(n, m, S, index.lat_us[s0, lvl_of], index.bw_GBps[s0, lvl_of])
        empty.part_time = part
        return empty
    Ms = np.sort(flatM, axis=1).ravel()  # sites become contiguous runs inside each row
    ss = index.dom[0][Ms]
    pos = np.arange(total * n)
    newseg = np.ones(total * n, bool)
    newseg[1:] = (ss[1:] != ss[:-1]) | (pos[1:] % n == 0)
    starts = np.flatnonzero(newseg)
    ends = np.append(starts[1:], total * n) - 1
    seg_len = ends - starts + 1
    seg_row = starts // n
    seg_site = ss[starts]
    first, last = Ms[starts], Ms[ends]
    eqsum = np.ones(len(starts), np.int64)
    for lvl in range(1, L):
        d = index.dom[lvl]
        eqsum += d[first] == d[last]
    seg_lvl = eqsum - 1
    ns = seg_len.astype(float)
    rs = reduce_scatter_ms(
        ns, m, S, index.lat_us[seg_site, seg_lvl], index.bw_GBps[seg_site, seg_lvl]
    )
    row_first = np.searchsorted(starts, np.arange(total) * n)
    part = np.maximum.reduceat(rs, row_first)
    k = np.bincount(seg_row, minlength=total)
    cross = k > 1
    set_id = np.full(total, -1, np.int64)
    alpha = np.zeros(0)
    links = np.zeros((0, W), bool)
    if cross.any():
        cross_rows = np.flatnonzero(cross)
        mem = np.zeros((len(cross_rows), index.n_sites), bool)
        pos_of = np.full(total, -1, np.int64)
        pos_of[cross_rows] = np.arange(len(cross_rows))
        segc = cross[seg_row]
        mem[pos_of[seg_row[segc]], seg_site[segc]] = True
        inv, alpha, links = _sets_from_membership(index, mem)
        set_id[cross_rows] = inv
    n_cross = cross.reshape(C, rows).sum(axis=1)
    return Family(kind, C, rows, part, k, set_id, alpha, links, n_cross)


def analyse_pp(index, a: np.ndarray, b: np.ndarray, m: float, S: float) -> Family:
    """Analyse PP boundaries a, b int (C, rows) (both ends of each boundary)."""
    C, rows = a.shape
    W = index.pair_links.shape[1]
    total = C * rows
    a = a.reshape(-1)
    b = b.reshape(-1)
    sa = index.dom[0][a]
    sb = index.dom[0][b]
    same = sa == sb
    lvl = np.full(total, -1, np.int64)
    lvl[same] = 0
    for level in range(1, index.n_levels):
        d = index.dom[level]
        lvl += d[a] == d[b]
    part = np.zeros(total)
    part[same] = (
        m * index.lat_us[sa[same], lvl[same]] / 1000.0 + S / index.bw_GBps[sa[same], lvl[same]]
    )
    k = np.where(same, 1, 2)
    set_id = np.full(total, -1, np.int64)
    alpha = np.zeros(0)
    links = np.zeros((0, W), bool)
    if (~same).any():
        cross = np.flatnonzero(~same)
        mem = np.zeros((len(cross), index.n_sites), bool)
        mem[np.arange(len(cross)), sa[cross]] = True
        mem[np.arange(len(cross)), sb[cross]] = True
        inv, alpha, links = _sets_from_membership(index, mem)
        set_id[cross] = inv
    n_cross = (~same).reshape(C, rows).sum(axis=1)
    return Family("pp", C, rows, part, k, set_id, alpha, links, n_cross)


@dataclass
class JobAnalysis:
    """All families of one job for C candidates, plus its nodes (for failures)."""

    families: dict[str, Family]
    links: np.ndarray  # bool (C, W)


def analyse_job(index, job, R: np.ndarray) -> JobAnalysis:
    """R int (C, units, pp, tp) -> analysis of every family of the job."""
    c = job.comm
    fams: dict[str, Family] = {}
    units = R.shape[-3]
    # families of single-member groups cost nothing and cross nothing: skipped
    if job.tp > 1:
        fams["tp"] = analyse_groups(index, tp_groups(R), c.tp_messages, c.tp_MB, "allreduce")
    if job.pp > 1:
        a, b = pp_boundaries(R)
        fams["pp"] = analyse_pp(index, a, b, c.pp_messages, c.pp_MB)
    if job.kind == "training":
        if units > 1:
            fams["dp"] = analyse_groups(index, dp_groups(R), c.dp_messages, c.dp_MB, "allreduce")
        if job.ep > 1:
            # units % ep != 0 breaks rule 3 but is still scored: the units with equal
            # u div ep form the groups (SPEC 1.2), so the last block is a shorter group
            f = analyse_groups(index, ep_groups(R, job.ep), c.ep_messages, c.ep_MB, "alltoall")
            rest = ep_rest_groups(R, job.ep)
            if rest is not None:
                f = merge_families(
                    f, analyse_groups(index, rest, c.ep_messages, c.ep_MB, "alltoall")
                )
            fams["ep"] = f
    C = R.shape[0]
    links = np.zeros((C, index.pair_links.shape[1]), bool)
    for f in fams.values():
        links |= f.links_used()
    return JobAnalysis(fams, links)


def job_times(job, ana: JobAnalysis, shared_bw: np.ndarray) -> dict[str, np.ndarray]:
    """T_X (C,) for every dimension (zeros for absent ones)."""
    c = job.comm
    cse = job.cross_site_every
    out = {}
    for d in ("tp", "pp", "dp", "ep"):
        f = ana.families.get(d)
        if f is None:
            out[d] = np.zeros(ana.links.shape[0])
        else:
            out[d] = f.time(shared_bw, getattr(c, f"{d}_messages"), getattr(c, f"{d}_MB"), cse)
    return out


def as_batch(gpus: np.ndarray, job) -> np.ndarray:
    """int (C, units*tp*pp) or (units*tp*pp,) -> R int64 (C, units, pp, tp)."""
    g = np.asarray(gpus, np.int64)
    if g.ndim == 1:
        g = g[None, :]
    units = g.shape[1] // job.unit_size
    return rank_array(g, units, job.pp, job.tp)
