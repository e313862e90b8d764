"""Communication groups of a job's placement (SPEC 1.2 rank order) as index matrices.

Rank r has t = r mod tp, p = (r div tp) mod pp, u = r div (tp*pp). With the GPUs of a job in
rank order reshaped to R of shape (..., units, pp, tp):
- TP groups: R[..., u, p, :]          -> (..., units*pp, tp)
- PP chains: R[..., u, :, t]          -> boundaries (R[..., :, p, :], R[..., :, p+1, :])
- DP groups: R[..., :, p, t]          -> (..., pp*tp, units)
- EP groups: R[..., b*ep:(b+1)*ep, p, t] -> (..., units/ep * pp*tp, ep)

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
    *b, u, p, t = R.shape
    x = R.reshape(*b, u // ep, ep, p, t)
    x = np.moveaxis(x, -3, -1)  # (..., u/ep, p, t, ep)
    return x.reshape(*b, (u // ep) * p * t, ep)


def job_group_sets(R: np.ndarray, kind: str, ep: int) -> dict[str, np.ndarray]:
    """Every group family of a job (PP as chains), keyed by dimension."""
    out = {"tp": tp_groups(R), "pp": pp_chains(R)}
    if kind == "training":
        out["dp"] = dp_groups(R)
        if ep > 1 and R.shape[-3] % ep == 0:
            out["ep"] = ep_groups(R, ep)
    return out
