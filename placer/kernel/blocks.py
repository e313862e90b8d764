"""Lease blocks on the index: is a domain a valid block of an offer (SPEC 1.3 / 6)?

Shared by the loader (committed blocks), the checker (rule 6) and the solvers. Imports numpy
and the model only.
"""

from __future__ import annotations

import numpy as np

from placer.model import Instance


def offer_block_problem(
    inst: Instance, index, offer, path: str
) -> tuple[str, tuple[int, int] | None]:
    """Why `path` is not a valid block of `offer` ('' if it is), and its (level, id)."""
    level_name = inst.offer_level(offer)
    r = index.resolve(path)
    if r is None or r[0] >= index.n_levels:
        return f"unknown domain {path!r}", None
    level, d = r
    if index.levels[level] != level_name:
        return (
            f"{path!r} is a {index.levels[level]!r} domain, not a {level_name!r} block",
            None,
        )
    a, b = index.gpu_range(level, d)
    site = index.site_names[int(index.dom[0][a])] if b > a else None
    if offer.sites is not None and site not in offer.sites:
        return f"{path!r} is in site {site!r}, not one of {offer.sites}", None
    if offer.gpu_types is not None:
        types = {index.type_names[t] for t in np.unique(index.gpu_type[a:b]).tolist()}
        wrong = sorted(types - set(offer.gpu_types))
        if wrong:
            return f"{path!r} holds GPUs of type {wrong[0]!r}, not one of {offer.gpu_types}", None
    return "", (level, d)


def eligible_blocks(inst: Instance, index, offer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every domain that may be a block of `offer` on the empty cluster (level, sites,
    types): (domain ids, their site, their available GPUs), int64 arrays."""
    lvl = index.level_index(inst.offer_level(offer))
    n = index.n_domains(lvl)
    dom = index.dom[lvl]
    ok = np.ones(n, bool)
    if offer.gpu_types is not None:
        allowed = [index.type_names.index(t) for t in offer.gpu_types if t in index.type_names]
        bad = ~np.isin(index.gpu_type, allowed)
        ok &= np.bincount(dom[bad], minlength=n) == 0
    site = index.dom[0][np.minimum(index.first_gpu[lvl][:-1], index.n_gpus - 1)].astype(np.int64)
    if offer.sites is not None:
        ok &= np.isin(site, [index.site_index[s] for s in offer.sites if s in index.site_index])
    avail = np.bincount(dom[index.available], minlength=n).astype(np.int64)
    ids = np.flatnonzero(ok)
    return ids, site[ids], avail[ids]


def _sums_reachable(sizes: np.ndarray, cap: int) -> np.ndarray:
    """bool (cap+1,): which totals in 0..cap some subset of `sizes` reaches (bounded
    knapsack by binary splitting of equal sizes)."""
    reach = np.zeros(cap + 1, bool)
    reach[0] = True
    vals, counts = np.unique(sizes, return_counts=True)
    for w, c in zip(vals.tolist(), counts.tolist()):
        k = 1
        while c > 0:
            take = min(k, c)
            step = w * take
            if 0 < step <= cap:
                reach[step:] |= reach[: cap + 1 - step].copy()
            c -= take
            k *= 2
    return reach


def leased_gpu_range(inst: Instance, index, offer) -> tuple[int, int] | None:
    """The fewest and the most available GPUs `offer` can lease when accepted, on the empty
    cluster: totals of nonempty sets of its eligible blocks (of one site if single_site)
    within [min_gpus, max_gpus]; None when no set is. Exact (a subset-sum); with running
    jobs or power caps the offer's choice is narrower, so these bound its leased GPUs."""
    _, site, avail = eligible_blocks(inst, index, offer)
    return _leased_range(offer, site, avail)


def _leased_range(offer, site: np.ndarray, avail: np.ndarray) -> tuple[int, int] | None:
    """:func:`leased_gpu_range` on the eligible blocks' sites and available GPUs."""
    groups = [avail[site == s] for s in np.unique(site)] if offer.single_site else [avail]
    lo = offer.min_gpus
    out: tuple[int, int] | None = None
    for sizes in groups:
        total = int(sizes.sum())
        hi = total if offer.max_gpus is None else min(offer.max_gpus, total)
        if len(sizes) == 0 or hi < lo:
            continue
        reach = _sums_reachable(sizes, hi)
        reach[0] = bool((sizes == 0).any())  # accepted = at least one block listed
        ok = np.flatnonzero(reach[lo : hi + 1])
        if len(ok):
            few, most = lo + int(ok[0]), lo + int(ok[-1])
            out = (few, most) if out is None else (min(out[0], few), max(out[1], most))
    return out


def forced_accept_problem(inst: Instance, index, offer) -> str:
    """Why an offer with ``force: accept`` cannot be accepted even on the empty cluster
    (its min_gpus / max_gpus, sites, types, single_site), or '' when some set of its blocks
    satisfies it. Exact: a subset-sum over the blocks' available GPUs
    (:func:`leased_gpu_range`)."""
    ids, site, avail = eligible_blocks(inst, index, offer)
    if len(ids) == 0:
        return "no domain can be one of its blocks (level, sites, GPU types)"
    if _leased_range(offer, site, avail) is not None:
        return ""
    lo = offer.min_gpus
    best = (
        max(int(avail[site == s].sum()) for s in np.unique(site))
        if offer.single_site
        else int(avail.sum())
    )
    where = " in one site" if offer.single_site else ""
    if best < lo:
        return f"its blocks hold at most {best:,} available GPUs{where}, below min_gpus {lo:,}"
    return f"no set of its blocks{where} holds between {lo:,} and {offer.max_gpus:,} available GPUs"
