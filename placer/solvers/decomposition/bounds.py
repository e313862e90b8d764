"""A proven bound from any dual vector of the coarse model's LP relaxation.

An LP solver's reported optimum is a float from a solve that stops at its own tolerances;
the bound placer reports must hold. Weak duality gives one that does, whatever the
multipliers: for ``max c.x`` subject to ``lo_r <= a_r.x <= hi_r`` and ``l <= x <= u``, and any
``y``,

    c.x = (c - A'y).x + y.(Ax) <= sum_j max(d_j l_j, d_j u_j) + sum_r max(y_r lo_r, y_r hi_r)

with ``d = c - A'y`` (the Lagrangian relaxation of every row). Each term is finite when the
row's side that ``y_r``'s sign picks is finite; a multiplier of the wrong sign for a one-sided
row is set to 0 (any ``y`` is allowed), and every variable of the coarse model has finite
bounds. With the LP's optimal duals the figure is the LP optimum up to the solver's
tolerances; with poor ones it is looser but still an upper bound on every integer (and
fractional) point of the model, so on the kernel's objective (the coarse model is a
relaxation of it).

Imports numpy only.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from placer.solvers.decomposition.linmodel import LinModel

REL_SAFETY = 1e-9  # of the sum of the terms' magnitudes: float rounding in the sums below


def row_arrays(lm: LinModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows as flat arrays: (row index, variable index, coefficient) per nonzero, and
    each row's lower and upper side (-inf / inf where open)."""
    rows = lm.rows
    lens = np.fromiter((len(r[0]) for r in rows), np.int64, len(rows))
    n_nz = int(lens.sum())
    ri = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    vi = np.fromiter(itertools.chain.from_iterable(r[0].keys() for r in rows), np.int64, n_nz)
    co = np.fromiter(itertools.chain.from_iterable(r[0].values() for r in rows), float, n_nz)
    sense = [r[1] for r in rows]
    rhs = np.fromiter((r[2] for r in rows), float, len(rows))
    lo = np.where(np.array([x == "<=" for x in sense], bool), -math.inf, rhs)
    hi = np.where(np.array([x == ">=" for x in sense], bool), math.inf, rhs)
    return ri, vi, co, lo, hi


def lagrangian_bound(lm: LinModel, y, arrays=None) -> float | None:
    """An upper bound on ``lm``'s objective (its constant included) from multipliers `y`, one
    per row, of any sign and quality (see the module's docstring); None when it is not
    finite (a variable without a finite bound under a nonzero reduced cost)."""
    ri, vi, co, lo, hi = row_arrays(lm) if arrays is None else arrays
    y = np.nan_to_num(np.asarray(y, float), nan=0.0, posinf=0.0, neginf=0.0)
    if len(y) != len(lo):
        raise ValueError(f"{len(y)} multipliers for {len(lo)} rows")
    # the sign the finite side needs: y >= 0 on a `<=` row, y <= 0 on a `>=` row
    y = np.where(np.isinf(hi) & (y > 0), 0.0, y)
    y = np.where(np.isinf(lo) & (y < 0), 0.0, y)
    n = lm.n_vars
    c = np.zeros(n)
    if lm.obj:
        c[np.fromiter(lm.obj.keys(), np.int64)] = np.fromiter(lm.obj.values(), float)
    d = c - np.bincount(vi, weights=co * y[ri], minlength=n)
    lb = np.asarray(lm.lb, float)
    ub = np.asarray(lm.ub, float)
    with np.errstate(invalid="ignore"):
        var_t = np.where(d > 0, d * ub, np.where(d < 0, d * lb, 0.0))
        row_t = np.where(y > 0, y * hi, np.where(y < 0, y * lo, 0.0))
    total = float(var_t.sum() + row_t.sum())
    if not math.isfinite(total):
        return None
    mag = float(np.abs(var_t).sum() + np.abs(row_t).sum() + np.abs(c).sum())
    return total + lm.obj_const + REL_SAFETY * mag + 1e-9


def dual_bound(lm: LinModel, y, arrays=None) -> float | None:
    """The tighter of :func:`lagrangian_bound` at `y` and at `-y` (both hold): a solver's
    sign convention for the duals of a maximisation is then irrelevant."""
    arrays = row_arrays(lm) if arrays is None else arrays
    y = np.asarray(y, float)
    got = [
        b
        for b in (lagrangian_bound(lm, y, arrays), lagrangian_bound(lm, -y, arrays))
        if b is not None
    ]
    return min(got) if got else None
