"""Leases of the live cluster: what each offer holds, the lease actions that report a
change, the repair of an offer that failed hardware leaves under its ``min_gpus``, and
restored hardware inside leased blocks (:func:`restore`: cover blocks given back, restored
GPUs beyond a power cap or max_gpus kept unavailable).

Leases are decided at construction and by a replan; submit never leases. An offer left
under its min_gpus leases another whole free block of its level within max_gpus (recorded as
``cover``), or records the shortfall (``min_override``: the snapshot writes its min_gpus
lowered to what is delivered).

Imports the live state, results and documents (to name GPUs); no other policy module.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from placer.live.documents import unavailable_paths
from placer.live.results import Action, ActionCause, Change
from placer.live.state import LiveState

__all__ = ["LeaseInfo", "info", "infos", "lease_actions", "repair_leases", "restore"]


class LeaseInfo(NamedTuple):
    """What an offer holds: its blocks' paths, its available GPUs, its revenue (vu)."""

    paths: list[str]
    gpus: int
    revenue: float


def info(live: LiveState, o: int) -> LeaseInfo:
    st = live.st
    blocks = st.offer_blocks[o]
    paths = [st.ix.domain_path(lv, d) for lv, d in blocks]
    n = sum(len(st.block_gpus(b)) for b in blocks)
    return LeaseInfo(paths, n, float(st.scorer.lease_revenue[o]))


def infos(live: LiveState) -> list[LeaseInfo]:
    return [info(live, o) for o in range(len(live.base.offers))]


def _action(
    live: LiveState,
    o: int,
    old: LeaseInfo,
    reason: str,
    cause: ActionCause,
    notes: list[str] | None = None,
) -> Action | None:
    """A lease action for offer o if its blocks or GPUs changed since `old` (its reason:
    `reason`, or the GPUs before and after, then `notes`)."""
    now = info(live, o)
    if (now.paths, now.gpus) == (old.paths, old.gpus):
        return None
    return Action(
        "lease",
        offer=live.base.offers[o].name,
        blocks=now.paths,
        revenue_change=now.revenue - old.revenue,
        reason="; ".join([reason or f"leased GPUs {old.gpus:,} -> {now.gpus:,}", *(notes or [])]),
        cause=cause,
    )


def lease_actions(
    live: LiveState,
    old: list[LeaseInfo],
    cause: ActionCause,
    reason: str = "",
    notes: dict[int, list[str]] | None = None,
) -> list[Action]:
    """A lease action for every offer whose blocks or GPUs changed since `old`; `notes`
    (per offer) are added to its reason."""
    notes = notes or {}
    acts = [_action(live, o, old[o], reason, cause, notes.get(o)) for o in range(len(old))]
    return [a for a in acts if a is not None]


def repair_leases(live: LiveState, old: list[LeaseInfo]) -> list[Action]:
    """After failed hardware: a lease action for every offer whose GPUs changed since
    `old`; an offer under its min_gpus takes another whole free block (within max_gpus,
    its site when single_site, within power), or its shortfall is recorded."""
    base = live.base
    actions = []
    for o, offer in enumerate(base.offers):
        st = live.st
        if not st.offer_blocks[o]:
            continue
        n = info(live, o).gpus
        reason = ""
        lo = offer.min_gpus
        if n < lo:
            cands = sorted(st.eligible_blocks(o), key=lambda b: (b[0], b[3]))
            hi = offer.max_gpus if offer.max_gpus is not None else math.inf
            site_fixed = {int(st.ix.dom[0][st.ix.gpu_range(*b)[0]]) for b in st.offer_blocks[o]}
            for c, s, lvl, d in cands:
                if offer.single_site and s not in site_fixed:
                    continue
                if n + c < lo or n + c > hi:
                    continue
                gp = st.block_gpus((lvl, d))
                if st.gpu_power[gp].sum() > st.power_left[s] + 1e-9:
                    continue
                live.add_block(o, (lvl, d))
                live.cover[o].add((lvl, d))
                reason = f"leased {st.ix.domain_path(lvl, d)!r} to keep min_gpus {lo:,}"
                break
            n = info(live, o).gpus
            if n < lo:
                live.min_override[o] = n
                reason = f"failed hardware leaves {n:,} leased GPUs, short of min_gpus {lo:,}"
        act = _action(live, o, old[o], reason, ActionCause.REPAIR)
        if act is not None:
            actions.append(act)
    if live.min_override:
        live.rebuild()  # the live instance carries the lowered minimum (rule 6 of the snapshot)
    return actions


def restore(live: LiveState, mask: np.ndarray, links: list[int]) -> Change:
    """GPUs `mask` and WAN `links` are back (some of them failed); nothing moves.

    A restored GPU inside a leased block is leased again: it counts toward the offer's
    max_gpus and draws power (SPEC 1.3: only available GPUs are paid for and powered; rule
    7). Bringing all of it back may break either rule in a state the cluster reached (a
    block leased while its hardware was down, jobs placed in the power it left), and a
    restore must answer with data, never an error or a broken state, so:

    1. an offer that would exceed its max_gpus gives back the blocks it took to cover a
       failure; the restored GPUs of its blocks still beyond max_gpus stay unavailable;
    2. a site over its power cap: offers there give back cover blocks they no longer need
       (the offer keeps its min_gpus and another block); then restored leased GPUs stay
       unavailable until the site fits: first those an offer can spare above its min_gpus,
       the cheapest offer's first; an offer left short of its min_gpus records the
       shortfall as a failure does (``min_override``). Leaving them
       unavailable, not giving a lease back, is what keeps every rule whatever the offer's
       force, committed blocks and min_gpus: the state is the one before the restore but for
       the GPUs that fit.

    GPUs kept unavailable are named in the Change's ``reason`` (and the lease actions'
    reasons), stay in :attr:`~placer.Cluster.failed` (those the instance had available) and
    come back by a later restore once they fit. Lease actions report the offers whose GPUs
    or blocks changed."""
    base = live.base
    ix = base.index
    before = live.objective
    old = infos(live)
    back = mask & ~live.avail  # GPUs that come back
    links_up = live.links_up.copy()
    links_up[links] = True
    blocks = [list(b) for b in live.st.offer_blocks]
    avail = live.avail | back  # as it will be: less the restored GPUs kept out
    held = np.zeros(ix.n_gpus, bool)  # restored GPUs kept unavailable
    kept: list[tuple[np.ndarray, str]] = []  # (those GPUs, why), for the Change's reason
    notes: dict[int, list[str]] = {}  # per offer: what its lease action's reason adds

    def keep_out(out: np.ndarray, why: str) -> None:
        held[out] = True
        avail[out] = False
        kept.append((out, why))

    def count(bl: list[tuple[int, int]], avail: np.ndarray) -> int:
        return sum(int(avail[slice(*ix.gpu_range(lv, d))].sum()) for lv, d in bl)

    def give_back(o: int, blk: tuple[int, int], why: str) -> None:
        blocks[o].remove(blk)
        live.cover[o].discard(blk)
        path = ix.domain_path(*blk)
        notes.setdefault(o, []).append(f"gave back {path!r} (leased to cover a failure): {why}")

    def restored_in(bl: list[tuple[int, int]]) -> np.ndarray:
        """Restored GPUs of blocks `bl` not kept out yet, highest first."""
        parts = [np.arange(*ix.gpu_range(lv, d)) for lv, d in bl]
        g = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return np.sort(g[back[g] & ~held[g]])[::-1]

    # 1. max_gpus
    for o, offer in enumerate(base.offers):
        if not blocks[o] or offer.max_gpus is None:
            continue
        hi = offer.max_gpus
        for blk in sorted(live.cover[o], reverse=True):
            if count(blocks[o], avail) <= hi:
                break
            give_back(o, blk, f"over max_gpus {hi:,}")
        n = count(blocks[o], avail)
        if n > hi:  # n - hi <= what this restore adds: the offer held <= hi before
            out = restored_in(blocks[o])[: n - hi]
            keep_out(out, f"offer {offer.name!r} would go over its max_gpus {hi:,}")
            notes.setdefault(o, []).append(
                f"{len(out):,} restored GPU(s) kept unavailable: over max_gpus {hi:,}"
            )

    # 2. power caps: only restored GPUs in leased blocks draw more (no job holds one)
    cap = ix.power_cap_kW
    owner = np.full(ix.n_gpus, -1, np.int64)
    for o, bl in enumerate(blocks):
        for lv, d in bl:
            owner[slice(*ix.gpu_range(lv, d))] = o
    if np.isfinite(cap).any() and (back & ~held & (owner >= 0)).any():
        site_of = ix.dom[0]
        power = np.nan_to_num(ix.type_power_kW[ix.gpu_type], nan=0.0)
        st = live.st
        on = owner >= 0
        for j in live.slot.values():
            on[st.job_gpus[j]] = True
        draw = np.bincount(site_of[on & avail], power[on & avail], minlength=ix.n_sites)
        tol = 1e-9 * np.maximum(1.0, np.where(np.isfinite(cap), cap, 1.0))
        for s in np.flatnonzero(draw > cap + tol):
            why = f"site {ix.site_names[int(s)]!r} would go over its power cap {cap[s]:g} kW"
            for o, offer in enumerate(base.offers):  # cover blocks no longer needed
                for blk in sorted(live.cover[o], reverse=True):
                    a, b = ix.gpu_range(*blk)
                    if draw[s] <= cap[s] + tol[s] or b <= a or site_of[a] != s:
                        continue
                    rest = [x for x in blocks[o] if x != blk]
                    if not rest or count(rest, avail) < offer.min_gpus:
                        continue
                    give_back(o, blk, why)
                    draw[s] -= float(power[a:b][avail[a:b]].sum())
                    owner[a:b] = -1
            if draw[s] <= cap[s] + tol[s]:
                continue
            # first GPUs an offer can spare above its min_gpus, then the others (the offer
            # falls short: recorded below); each the cheapest offer's first, highest first
            cand = np.flatnonzero(back & ~held & (owner >= 0) & (site_of == s))[::-1]
            spare = np.zeros(len(cand), bool)
            for o in np.unique(owner[cand]):
                mine = np.flatnonzero(owner[cand] == o)
                spare[mine[: max(0, count(blocks[o], avail) - base.offers[o].min_gpus)]] = True
            price = np.array([base.offers[o].price_per_gpu_hour for o in owner[cand]], float)
            cand = cand[np.lexsort((-cand, price, ~spare))]
            k = int(np.searchsorted(np.cumsum(power[cand]), draw[s] - cap[s] - tol[s])) + 1
            out = cand[:k]
            if not len(out):
                continue
            keep_out(out, why)
            draw[s] -= float(power[out].sum())
            for o in np.unique(owner[out]):
                n_out = int((owner[out] == o).sum())
                notes.setdefault(int(o), []).append(
                    f"{n_out:,} restored GPU(s) kept unavailable: {why}"
                )

    for o, offer in enumerate(base.offers):
        n = count(blocks[o], avail)
        if o in live.min_override and n >= offer.min_gpus:
            del live.min_override[o]
        elif o in live.min_override or (blocks[o] and n < offer.min_gpus):
            # short (kept so by failed hardware, or by restored GPUs kept out for power)
            live.min_override[o] = min(n, offer.min_gpus)
            if n < offer.min_gpus and o in notes:
                notes[o].append(f"{n:,} leased GPUs, short of min_gpus {offer.min_gpus:,}")
    live.set_hardware(avail, links_up)
    live.rebuild(None, blocks)
    change = Change(actions=lease_actions(live, old, ActionCause.RESTORE, notes=notes))
    change.delta = live.objective - before
    if kept:
        parts = []
        for out, why in kept:
            m = np.zeros(ix.n_gpus, bool)
            m[out] = True
            parts.append(f"{', '.join(unavailable_paths(ix, m))} ({why})")
        change.reason = "leased GPUs kept unavailable: " + "; ".join(parts)
    return change
