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
