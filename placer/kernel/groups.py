"""Communication groups of a job's placement (SPEC 1.2 rank order) as index matrices.

Rank r has t = r mod tp, p = (r div tp) mod pp, u = r div (tp*pp). With the GPUs of a job in
rank order reshaped to R of shape (..., units, pp, tp):
- TP groups: R[..., u, p, :]          -> (..., units*pp, tp)
- PP chains: R[..., u, :, t]          -> boundaries (R[..., :, p, :], R[..., :, p+1, :])
- DP groups: R[..., :, p, t]          -> (..., pp*tp, units)
- EP groups: R[..., b*ep:(b+1)*ep, p, t] -> (..., units//ep * pp*tp, ep) for the complete
  blocks; when ep does not divide units (a rule-3 violation, still scored), the units with
  u div ep == units div ep form one shorter group per (t, p): (..., pp*tp, units % ep)

A leading batch axis (candidates) is allowed everywhere. Imports numpy only.
"""

from __future__ import annotations

import numpy as np


def rank_array(gpus: np.ndarray, units: int, pp: int, tp: int) -> np.ndarray:
    """(..., units*pp*tp) -> (..., units, pp, tp)."""
    return gpus.reshape(*gpus.shape[:-1], units, pp, tp)


def tp_groups(R: np.ndarray) -> np.ndarray:
    *b, u, p, t = R.shape
    return R.reshape(*b, u * p, t)


def pp_boundaries(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both ends of every boundary between consecutive stages: two (..., u*(pp-1)*tp)."""
    *b, u, p, t = R.shape
    return R[..., :, :-1, :].reshape(*b, -1), R[..., :, 1:, :].reshape(*b, -1)


def pp_chains(R: np.ndarray) -> np.ndarray:
    """(..., units*tp, pp) in stage order."""
    *b, u, p, t = R.shape
    return np.swapaxes(R, -1, -2).reshape(*b, u * t, p)


def dp_groups(R: np.ndarray) -> np.ndarray:
    *b, u, p, t = R.shape
    return np.moveaxis(R, -3, -1).reshape(*b, p * t, u)


def ep_groups(R: np.ndarray, ep: int) -> np.ndarray:
    """The EP groups of the complete blocks of ep units: (..., units//ep * pp*tp, ep)."""
    *b, u, p, t = R.shape
    full = (u // ep) * ep
    x = R[..., :full, :, :].reshape(*b, u // ep, ep, p, t)
    x = np.moveaxis(x, -3, -1)  # (..., u/ep, p, t, ep)
    return x.reshape(*b, (u // ep) * p * t, ep)


def ep_rest_groups(R: np.ndarray, ep: int) -> np.ndarray | None:
    """The EP groups of the last, incomplete block (units % ep units), or None when ep
    divides units: (..., pp*tp, units % ep)."""
    *b, u, p, t = R.shape
    rest = u % ep
    if rest == 0:
        return None
    x = np.moveaxis(R[..., u - rest :, :, :], -3, -1)  # (..., p, t, rest)
    return x.reshape(*b, p * t, rest)


def job_group_sets(R: np.ndarray, kind: str, ep: int) -> dict[str, list[np.ndarray]]:
    """Every group family of a job (PP as chains), keyed by dimension; each a list of
    (..., groups, members) matrices (EP: complete blocks, then the incomplete block)."""
    out = {"tp": [tp_groups(R)], "pp": [pp_chains(R)]}
    if kind == "training":
        out["dp"] = [dp_groups(R)]
        if ep > 1:
            out["ep"] = [ep_groups(R, ep)]
            rest = ep_rest_groups(R, ep)
            if rest is not None:
                out["ep"].append(rest)
    return out
