"""Calibrate placer's cost model to the operator's own measurements.

- :func:`nccl`: fit SPEC 4's ``latency_us`` and ``bandwidth_GBps`` per level (and per site)
  to nvidia/nccl-tests logs; the result holds the fits with intervals, the dropped samples
  and a fabric overlay.
- :func:`steps`: fit jobs' ``compute_ms``, ``overlap`` and ``X_messages`` to measured step
  times at known placements, with the k-fold hold-out error.
- :func:`apply` / :func:`load`: an instance with an overlay applied (``--fabric``).

The fits use scipy (``pip install 'placer[calibrate]'``); overlays and the log parser do
not. See docs/calibrate.md.

Examples
--------
>>> import placer, placer.calibrate as cal  # doctest: +SKIP
>>> inst = placer.load_instance("cluster.yaml")  # doctest: +SKIP
>>> c = cal.nccl(inst, ["rack.log", "site.log"])  # doctest: +SKIP
>>> c.fits[0].level, c.fits[0].bandwidth_GBps, c.overlay  # doctest: +SKIP
>>> inst2 = cal.load("cluster.yaml", fabric=c.overlay)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from placer.calibrate.fit import LevelFit, Point, fit_level
from placer.calibrate.nccl import NcclCalibration, RunInfo, calibrate_nccl
from placer.calibrate.nccltests import Run, read
from placer.calibrate.overlay import (
    apply_overlay,
    calibrated_document,
    check_overlay,
    load_instance_with,
    read_overlay,
)
from placer.calibrate.steps import JobReport, StepsCalibration, calibrate_steps
from placer.errors import ArgumentTypeError, UsageError
from placer.model import Instance

__all__ = [
    "JobReport",
    "LevelFit",
    "NcclCalibration",
    "Point",
    "Run",
    "RunInfo",
    "StepsCalibration",
    "apply",
    "apply_overlay",
    "check_overlay",
    "fit_level",
    "load",
    "nccl",
    "read",
    "read_overlay",
    "steps",
]


def _instance(instance: Any) -> Instance:
    if isinstance(instance, Instance):
        return instance
    hint = (
        "; load it first with placer.load_instance(path)"
        if isinstance(instance, str | Path)
        else ""
    )
    raise ArgumentTypeError(
        f"instance: expected a placer.Instance, got {type(instance).__name__}{hint}"
    )


def nccl(
    instance: Instance,
    logs: Any,
    *,
    level: str | dict[str, str] | None = None,
    hosts: dict[str, str] | None = None,
    split: str | None = None,
    collective: str | None = None,
    per_site: bool = False,
    confidence: float = 0.95,
) -> NcclCalibration:
    """Fit the instance's fabric to nccl-tests logs.

    Parameters
    ----------
    instance : placer.Instance
        The cluster the logs were measured on; the logs' hostnames name its nodes.
    logs : path or list of paths (or of ``(name, text)`` pairs)
        nccl-tests text output (any version, launcher prefixes, NCCL INFO lines) or ``-J``
        JSON, of all_reduce_perf, all_gather_perf, reduce_scatter_perf, alltoall_perf or
        sendrecv_perf.
    level : str or dict, optional
        The level every log measures, or ``{file name: level}``; overrides the level found
        from the hostnames.
    hosts : dict, optional
        hostname -> node path, for nodes not named after their hosts.
    split : str, optional
        NCCL_TESTS_SPLIT of logs whose Rank lines have no Group column (``"MOD 8"``).
    collective : str, optional
        The collective of every log, when neither log nor file name tells it.
    per_site : bool
        Fit every site separately even when a level was measured in one site only.
    confidence : float
        Level of the intervals (default 0.95).

    Returns
    -------
    NcclCalibration
        ``fits`` (latency and bandwidth with intervals, points used and dropped, median
        relative residual), ``overlay`` (the SPEC keys it sets), ``runs``, ``to_dict()``,
        ``overlay_yaml()``, ``plot(path)``.
    """
    inst = _instance(instance)
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise UsageError(f"confidence: must be in (0, 1), got {confidence!r}")
    return calibrate_nccl(
        inst,
        logs,
        levels=level,
        hosts=hosts,
        split=split,
        collective=collective,
        per_site=per_site,
        confidence=confidence,
    )


def steps(
    instance: Instance,
    measured: Any,
    *,
    k: int = 5,
    seed: int = 0,
    fit: tuple[str, ...] | list[str] = ("compute", "overlap", "messages"),
    messages: tuple[float, float] = (1.0, 4096.0),
    hosts: dict[str, str] | None = None,
) -> StepsCalibration:
    """Fit jobs' compute_ms, overlap and X_messages to measured step times.

    ``measured`` is a CSV path (columns ``job``, ``gpus`` or ``nodes``, ``step_ms``) or a
    list of dicts with those keys. Returns a :class:`StepsCalibration`: per job the fitted
    values and the k-fold hold-out error (median absolute percentage error, Spearman, order
    of equal-size placements), ``summary()``, and an overlay setting the fitted values.
    """
    inst = _instance(instance)
    return calibrate_steps(inst, measured, k=k, seed=seed, fit=fit, messages=messages, hosts=hosts)


def apply(instance: Any, overlay: Any) -> dict[str, Any]:
    """The instance document (path or dict) with an overlay (path or dict) applied; raises
    :class:`~placer.errors.CalibrationError` naming each problem of the overlay."""
    return calibrated_document(instance, overlay)


def load(instance: str | Path, fabric: str | Path | dict | None = None) -> Instance:
    """Load an instance file with an overlay applied (what ``--fabric`` does)."""
    if not isinstance(instance, str | Path):
        raise ArgumentTypeError(
            f"instance: expected an instance file path, got {type(instance).__name__}"
        )
    return load_instance_with(instance, fabric)
