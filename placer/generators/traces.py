"""Trace tables derived from public cluster traces (``placer/data``): GPU-count
distributions, duration quantiles and cluster summaries.

Imports numpy and the standard library only.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources

import numpy as np

# --------------------------------------------------------------------------- trace tables


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("placer").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def trace_sizes(trace: str = "itp", weighting: str = "running") -> tuple[np.ndarray, np.ndarray]:
    """GPUs per job of a trace and their probabilities, from ``placer/data/job_sizes.csv``.

    ``weighting="job"``: the share of submitted jobs; ``"running"``: the share of jobs seen
    running at a random instant (each size weighted by the summed durations of its jobs).
    Returns ``(gpus int64 (k,), probs float64 (k,))`` (read-only).
    """
    if weighting not in ("job", "running"):
        raise ValueError(f"weighting must be 'job' or 'running', not {weighting!r}")
    rows = [r for r in _read_csv("job_sizes.csv") if r["trace"] == trace]
    if not rows:
        raise ValueError(f"unknown trace {trace!r}; valid: {', '.join(traces())}")
    g = np.array([int(r["gpus"]) for r in rows], dtype=np.int64)
    col = "jobs" if weighting == "job" else "job_hours"
    w = np.array([float(r[col]) for r in rows])
    p = w / w.sum()
    g.flags.writeable = False
    p.flags.writeable = False
    return g, p


@functools.cache
def traces() -> tuple[str, ...]:
    """Names of the traces in the size table (e.g. ``('itp', 'philly')``)."""
    return tuple(dict.fromkeys(r["trace"] for r in _read_csv("job_sizes.csv")))


@functools.cache
def duration_quantiles(
    trace: str, size_class: str, weighting: str = "running"
) -> tuple[np.ndarray, np.ndarray]:
    """(quantile levels, hours) of job durations for a trace and size class
    (``'1'``, ``'2-7'``, ``'8-15'``, ``'16+'`` or ``'all'``)."""
    rows = [
        r
        for r in _read_csv("job_durations.csv")
        if r["trace"] == trace and r["size_class"] == size_class and r["weighting"] == weighting
    ]
    if not rows:
        rows = [
            r
            for r in _read_csv("job_durations.csv")
            if r["trace"] == trace and r["size_class"] == "all" and r["weighting"] == weighting
        ]
    if not rows:
        raise ValueError(f"no duration table for trace {trace!r}, weighting {weighting!r}")
    q = np.array([float(r["quantile"]) for r in rows])
    h = np.array([float(r["hours"]) for r in rows])
    return q, h


@functools.cache
def cluster_summaries() -> dict[str, dict[str, str]]:
    """Published per-cluster summaries (Acme, Helios) by cluster name."""
    return {r["cluster"]: r for r in _read_csv("cluster_summaries.csv")}


def size_class(gpus: int) -> str:
    """The duration table's size class of a trace job with `gpus` GPUs."""
    if gpus <= 1:
        return "1"
    if gpus <= 7:
        return "2-7"
    if gpus <= 15:
        return "8-15"
    return "16+"


def _mean_trace_gpus(trace: str, weighting: str) -> float:
    g, p = trace_sizes(trace, weighting)
    return float((g * p).sum())
