"""Seeded event traces for :mod:`placer.replay` (submit, finish, fail, restore), drawn from the
real job traces in ``placer/data``: sizes, durations and arrival rates (docs/scheduler.md).

Imports numpy only (it reads a loaded instance's topology index).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from placer.model import Instance

__all__ = ["generate_trace"]


def generate_trace(
    instance: Instance,
    hours: float = 72.0,
    seed: int = 0,
    trace: str = "philly",
    load: float = 0.9,
    size_scale: int | None = None,
    inference_share: float = 0.2,
    failures: int = 0,
    repair_hours: float = 6.0,
    wan_failures: int = 0,
) -> dict[str, Any]:
    """A seeded event trace for `instance` drawn from a real job trace (``placer/data``).

    Algorithm overview
    1. Sizes: GPUs per job from ``trace_sizes(trace, "job")`` times ``size_scale`` (default:
       the power of two that brings the trace's mean job to about 1/200 of the cluster).
    2. Shape: tp = the largest power of two <= min(GPUs, GPUs per node) dividing the size;
       dp (replicas for inference) = size / tp; a third of training jobs are elastic
       (min_dp = dp / 2). GPU types: any type of the instance (one per job).
    3. Work: the duration (hours) drawn by inverse CDF from ``duration_quantiles(trace,
       size class of the unscaled size, "job")``; training gets ``remaining_hours``,
       inference a ``finish`` event at arrival + duration.
    4. Arrivals: Poisson, with the rate that makes the offered GPU-hours ``load`` x the
       available GPUs x `hours`.
    5. Values: training U(1, 3) vu per GPU-hour, inference U(1.5, 3.5); communication from
       the size (dp_MB = 40 x tp, tp_MB = 200 when tp > 1), compute 1000 ms.
    6. ``failures`` random node failures, each restored `repair_hours` later, and
       ``wan_failures`` WAN-link failures of the same length.
    """
    from placer.generators import duration_quantiles, size_class, trace_sizes

    rng = np.random.default_rng(seed)
    ix = instance.index
    g_sizes, probs = trace_sizes(trace, "job")
    avail = int(ix.available.sum())
    mean_g = float((g_sizes * probs).sum())
    if size_scale is None:
        size_scale = 1
        while mean_g * size_scale * 2 <= avail / 200:
            size_scale *= 2
    gpn = int(np.bincount(ix.node_gpus).argmax())
    types = sorted({ix.type_names[t] for t in np.unique(ix.gpu_type).tolist()})
    # mean offered GPU-hours per job, for the arrival rate
    q_all, h_all = duration_quantiles(trace, "all", "job")
    mean_h = (
        float(np.trapezoid(h_all, q_all))
        if hasattr(np, "trapezoid")
        else float(np.trapz(h_all, q_all))
    )
    per_job = mean_g * size_scale * max(mean_h, 0.1)
    lam = load * avail * hours / per_job / hours  # arrivals per hour
    events: list[dict[str, Any]] = []
    t = 0.0
    i = 0
    while True:
        t += float(rng.exponential(1.0 / lam))
        if t >= hours:
            break
        g0 = int(rng.choice(g_sizes, p=probs))
        size = max(1, g0 * size_scale)
        tp = 1
        while tp * 2 <= min(size, gpn) and size % (tp * 2) == 0:
            tp *= 2
        units = size // tp
        q, h = duration_quantiles(trace, size_class(g0), "job")
        dur = float(np.interp(rng.random(), q, h))
        dur = max(round(dur, 3), 0.05)
        inference = rng.random() < inference_share
        name = f"{'serve' if inference else 'train'}-{i:04d}-{size}g"
        job: dict[str, Any] = {
            "name": name,
            "kind": "inference" if inference else "training",
            "tp": tp,
            "gpu_types": [str(rng.choice(types))],
            "value": round(float(rng.uniform(1.5, 3.5) if inference else rng.uniform(1, 3)), 3),
            "compute_ms": 1000.0,
            "comm": {"dp_MB": 40.0 * tp} if not inference else {},
        }
        if tp > 1:
            job["comm"]["tp_MB"] = 200.0
        if inference:
            job["replicas"] = units
            job["min_replicas"] = max(1, units // 2)
            events.append({"at_hours": round(t, 4), "submit": job})
            events.append({"at_hours": round(min(t + dur, hours * 2), 4), "finish": name})
        else:
            job["dp"] = units
            if rng.random() < 1 / 3 and units >= 2:
                job["min_dp"] = units // 2
            job["remaining_hours"] = dur
            job["restart_min"] = 10.0
            job["checkpoint_interval_min"] = 60.0
            events.append({"at_hours": round(t, 4), "submit": job})
        i += 1
    nodes = np.flatnonzero(
        np.bincount(ix.gpu_node[ix.available], minlength=len(ix.node_gpus)) == ix.node_gpus
    )
    for _ in range(failures):
        n = int(rng.choice(nodes))
        at = float(rng.uniform(0, hours))
        path = ix.node_path(n)
        events.append({"at_hours": round(at, 4), "fail": [path]})
        events.append({"at_hours": round(at + repair_hours, 4), "restore": [path]})
    wan = instance.topology.wan
    for _ in range(wan_failures if wan else 0):
        w = wan[int(rng.integers(len(wan)))]
        at = float(rng.uniform(0, hours))
        events.append({"at_hours": round(at, 4), "fail": [list(w.between)]})
        events.append({"at_hours": round(at + repair_hours, 4), "restore": [list(w.between)]})
    events.sort(key=lambda e: e["at_hours"])
    return {
        "trace": {
            "instance": instance.name,
            "source": trace,
            "seed": seed,
            "hours": hours,
            "load": load,
            "size_scale": size_scale,
        },
        "events": events,
    }
