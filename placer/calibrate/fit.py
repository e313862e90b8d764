"""Fit SPEC 4's ``latency_us`` and ``bandwidth_GBps`` of one level to timed collectives.

Algorithm overview
1. Every sample is one collective of n ranks meeting at the level, of ``bytes`` (nccl-tests'
   `size`) in ``time_us``. SPEC 4 prices it ``a(n) alpha + f(n) bytes / B``: a = 2(n-1) and
   f = 2(n-1)/n for an all-reduce, n-1 and (n-1)/n for all-gather, reduce-scatter and
   all-to-all, 1 and 1 for a send/receive (a PP boundary); f is nccl-tests' busbw/algbw, so
   B is the bus bandwidth the run tends to at large sizes.
2. The model is linear in x = (alpha, 1/B). Weighted least squares on the relative error,
   min sum ((a_i alpha + c_i / B) / t_i - 1)^2 with alpha >= 0, 1/B >= 0, is one
   non-negative least-squares problem (``scipy.optimize.nnls``).
3. Samples that cannot inform the fit are dropped first, each with its reason: 0 bytes (the
   call overhead only), wrong results, CPU time (``-C 1``). Then outliers: while the worst
   relative residual exceeds max(4 robust standard deviations, 10%), that sample is
   dropped and the fit repeated (at most a third of the samples); a protocol switch of an
   unpinned run (NCCL_PROTO not Simple) shows up here.
4. Intervals: the covariance s^2 (A'A)^-1 of the weighted problem, s^2 the residual
   variance, gives a Student-t interval for alpha and for 1/B; B's interval is the
   reciprocal of 1/B's (monotone, so exact), open-ended when 1/B's reaches 0.

Imports numpy, and scipy inside :func:`fit_level` (the ``calibrate`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from placer.calibrate.nccltests import factor, steps
from placer.errors import UsageError

OUTLIER_SIGMAS = 4.0
OUTLIER_FLOOR = 0.10
MAX_DROPPED_SHARE = 1.0 / 3.0


def need_scipy():
    """scipy, or a UsageError naming the extra that brings it."""
    try:
        import scipy.optimize
        import scipy.stats
    except ImportError:
        raise UsageError(
            "placer.calibrate fits with scipy, which is not installed: "
            "pip install 'placer[calibrate]'"
        ) from None
    return scipy


@dataclass(frozen=True)
class Point:
    """One timed collective at a known level: ``family`` is ``allreduce``, ``gather`` or
    ``p2p`` (see :mod:`placer.calibrate.nccltests`), ``where`` its place in its file."""

    level: str
    site: str | None
    family: str
    n: int
    bytes: float
    time_us: float
    where: str
    in_place: bool = False
    wrong: bool = False
    cputime: bool = False

    def design(self) -> tuple[float, float]:
        """(latency terms, bytes/1e3 on the bus): time_us = a alpha + c / B_GBps."""
        return steps(self.family, self.n), factor(self.family, self.n) * self.bytes / 1e3


@dataclass
class LevelFit:
    """The fitted link of one level (and site, or None for the topology default)."""

    level: str
    site: str | None
    latency_us: float
    bandwidth_GBps: float
    latency_interval: tuple[float, float]
    bandwidth_interval: tuple[float, float]
    confidence: float
    used: list[Point] = field(default_factory=list)
    dropped: list[tuple[Point, str]] = field(default_factory=list)
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))  # relative, of `used`
    note: str = ""

    @property
    def median_abs_residual(self) -> float:
        return float(np.median(np.abs(self.residuals))) if len(self.residuals) else float("nan")

    def predict_us(self, p: Point) -> float:
        a, c = p.design()
        return a * self.latency_us + c / self.bandwidth_GBps

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "site": self.site,
            "latency_us": self.latency_us,
            "latency_interval": list(self.latency_interval),
            "bandwidth_GBps": self.bandwidth_GBps,
            "bandwidth_interval": list(self.bandwidth_interval),
            "confidence": self.confidence,
            "points": len(self.used),
            "dropped": [
                {"where": p.where, "bytes": p.bytes, "why": why} for p, why in self.dropped
            ],
            "median_abs_relative_residual": self.median_abs_residual,
            "note": self.note,
        }


def _solve(A: np.ndarray) -> np.ndarray:
    scipy = need_scipy()
    x, _ = scipy.optimize.nnls(A, np.ones(len(A)))
    return x


def fit_level(
    points: list[Point], confidence: float = 0.95, drop_outliers: bool = True
) -> LevelFit:
    """Fit one level's latency and bandwidth to its points (see the module overview).

    Raises :class:`~placer.errors.UsageError` when scipy is missing; a level whose points
    cannot determine both terms (fewer than 3 usable points, or all of one size) is still
    returned, with a ``note`` saying what is missing and the undetermined term at the
    bound (bandwidth inf or latency 0).
    """
    scipy = need_scipy()
    if not points:
        raise UsageError("fit_level: no points")
    level, site = points[0].level, points[0].site
    dropped: list[tuple[Point, str]] = []
    keep: list[Point] = []
    for p in points:
        if p.cputime:
            dropped.append((p, "CPU time (-C 1), not the collective's time"))
        elif p.wrong:
            dropped.append((p, "the run reported wrong results"))
        elif p.bytes <= 0:
            dropped.append((p, "0 bytes: times the call overhead only"))
        elif not (p.time_us > 0 and np.isfinite(p.time_us)):
            dropped.append((p, "time not positive"))
        elif p.n < 2:
            dropped.append((p, "one rank: no communication"))
        else:
            keep.append(p)
    nan2 = (float("nan"), float("nan"))
    if len(keep) < 3:
        return LevelFit(
            level,
            site,
            float("nan"),
            float("nan"),
            nan2,
            nan2,
            confidence,
            keep,
            dropped,
            note=f"{len(keep)} usable point(s): at least 3 needed",
        )
    D = np.array([p.design() for p in keep])
    t = np.array([p.time_us for p in keep])
    active = np.ones(len(keep), bool)
    max_drop = int(len(keep) * MAX_DROPPED_SHARE)
    while True:
        A = D[active] / t[active, None]
        x = _solve(A)
        r = A @ x - 1.0
        if not drop_outliers or (~active).sum() >= max_drop or active.sum() <= 4:
            break
        med = np.median(r)
        sigma = 1.4826 * np.median(np.abs(r - med))
        worst = int(np.argmax(np.abs(r - med)))
        limit = max(OUTLIER_SIGMAS * sigma, OUTLIER_FLOOR)
        if abs(r[worst] - med) <= limit:
            break
        idx = np.flatnonzero(active)[worst]
        active[idx] = False
        dropped.append(
            (
                keep[idx],
                f"outlier: measured {1.0 / (1.0 + r[worst]) - 1.0:+.0%} off the fit "
                f"(relative residual {abs(r[worst] - med):.0%} from the median, limit "
                f"{limit:.0%})",
            )
        )
    used = [p for p, a in zip(keep, active) if a]
    A = D[active] / t[active, None]
    m = len(used)
    alpha, beta = float(x[0]), float(x[1])
    note = ""
    ratios = D[active, 0] / np.maximum(D[active, 1], 1e-300)
    if np.ptp(np.log(ratios)) < 1e-9:
        note = "all points share one size and rank count: latency and bandwidth not separable"
    lat_iv, inv_iv = nan2, nan2
    if m > 2:
        s2 = float(r @ r) / (m - 2)
        try:
            cov = s2 * np.linalg.inv(A.T @ A)
            q = float(scipy.stats.t.ppf(0.5 + confidence / 2, m - 2))
            h = q * np.sqrt(np.maximum(np.diag(cov), 0.0))
            lat_iv = (max(0.0, alpha - float(h[0])), alpha + float(h[0]))
            inv_iv = (max(0.0, beta - float(h[1])), beta + float(h[1]))
        except np.linalg.LinAlgError:
            note = note or "singular design: intervals undetermined"
    bw = 1.0 / beta if beta > 0 else float("inf")
    bw_iv = (
        (
            1.0 / inv_iv[1] if inv_iv[1] > 0 else float("inf"),
            1.0 / inv_iv[0] if inv_iv[0] > 0 else float("inf"),
        )
        if not np.isnan(inv_iv[0])
        else nan2
    )
    if beta <= 0:
        note = note or "no bandwidth term in the data (only small sizes?): bandwidth unbounded"
    residuals = A @ x - 1.0
    return LevelFit(
        level, site, alpha, bw, lat_iv, bw_iv, confidence, used, dropped, residuals, note
    )
