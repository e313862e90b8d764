"""Leases of the live cluster: what each offer holds, the lease actions that report a
change, the repair of an offer that failed hardware leaves under its ``min_gpus``, and the
blocks an offer gives back when hardware is restored (:func:`restore`).

Leases are decided at construction and by a replan; submit never leases. An offer left
under its min_gpus leases another whole free block of its level within max_gpus (recorded as
``cover``), or records the shortfall (``min_override``: the snapshot writes its min_gpus
lowered to what is delivered).

Imports the live state and results; no other policy module.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from placer.errors import UsageError
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
    live: LiveState, o: int, old: LeaseInfo, reason: str, cause: ActionCause
) -> Action | None:
    """A lease action for offer o if its blocks or GPUs changed since `old`."""
    now = info(live, o)
    if (now.paths, now.gpus) == (old.paths, old.gpus):
        return None
    return Action(
        "lease",
        offer=live.base.offers[o].name,
        blocks=now.paths,
        revenue_change=now.revenue - old.revenue,
        reason=reason or f"leased GPUs {old.gpus:,} -> {now.gpus:,}",
        cause=cause,
    )


def lease_actions(
    live: LiveState, old: list[LeaseInfo], cause: ActionCause, reason: str = ""
) -> list[Action]:
    """A lease action for every offer whose blocks or GPUs changed since `old`."""
    acts = [_action(live, o, old[o], reason, cause) for o in range(len(old))]
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
    """GPUs `mask` and WAN `links` are back (some of them failed): nothing moves; an offer
    that would exceed its max_gpus gives back the blocks it took to cover a failure (a
    :class:`~placer.errors.UsageError` when that is not enough); lease actions report the
    offers whose GPUs changed."""
    base_ix = live.base.index
    before = live.objective
    old = infos(live)
    avail = live.avail | mask
    links_up = live.links_up.copy()
    links_up[links] = True
    blocks = [list(b) for b in live.st.offer_blocks]

    def leased(bl: list[tuple[int, int]]) -> int:
        m = np.zeros(base_ix.n_gpus, bool)
        for lv, d in bl:
            a, b = base_ix.gpu_range(lv, d)
            m[a:b] = True
        return int((m & avail).sum())

    for o, offer in enumerate(live.base.offers):
        hi = offer.max_gpus if offer.max_gpus is not None else math.inf
        for blk in sorted(live.cover[o], reverse=True):
            if leased(blocks[o]) <= hi:
                break
            blocks[o].remove(blk)
            live.cover[o].discard(blk)
        n = leased(blocks[o])
        if o in live.min_override and n >= offer.min_gpus:
            del live.min_override[o]
        elif o in live.min_override:
            live.min_override[o] = min(n, offer.min_gpus)
        if blocks[o] and n > hi:
            raise UsageError(
                f"items: restoring them would lease {n:,} GPUs to offer {offer.name!r}, "
                f"over its max_gpus {offer.max_gpus:,}"
            )
    live.set_hardware(avail, links_up)
    live.rebuild(None, blocks)
    change = Change(actions=lease_actions(live, old, ActionCause.RESTORE))
    change.delta = live.objective - before
    return change
