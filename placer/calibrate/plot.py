"""Plots of a calibration: measured against fitted time by size, one panel per level.

Needs matplotlib (the ``plot`` extra); imported only when a plot is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from placer.errors import UsageError

if TYPE_CHECKING:
    from placer.calibrate.nccl import NcclCalibration

_NAMES = {
    "allreduce": "all-reduce",
    "gather": "all-gather/reduce-scatter/all-to-all",
    "p2p": "send/recv",
}


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("plots need matplotlib: pip install 'placer[plot]'") from None
    return plt


def plot_nccl(cal: NcclCalibration, path: Path) -> Path:
    """One panel per fitted level (and site): measured samples (dots), dropped ones
    (crosses), the fitted SPEC 4 time per collective and rank count (lines); below each,
    the relative residuals."""
    plt = pyplot()
    fits = [f for f in cal.fits if f.used or f.dropped]
    if not fits:
        raise UsageError("plot: no fitted level")
    cols = len(fits)
    fig, axes = plt.subplots(
        2,
        cols,
        figsize=(4.6 * cols, 5.4),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
        sharex="col",
    )
    for c, f in enumerate(fits):
        ax, rx = axes[0][c], axes[1][c]
        kinds = sorted({(p.family, p.n) for p in f.used + [p for p, _ in f.dropped]})
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (fam, n) in enumerate(kinds):
            col = colours[i % len(colours)]
            used = [p for p in f.used if (p.family, p.n) == (fam, n)]
            drop = [p for p, _ in f.dropped if (p.family, p.n) == (fam, n) and p.bytes > 0]
            if used:
                ax.loglog(
                    [p.bytes for p in used],
                    [p.time_us for p in used],
                    "o",
                    ms=3.5,
                    color=col,
                    label=f"{_NAMES[fam]}, n={n}",
                )
            if drop:
                ax.loglog(
                    [p.bytes for p in drop],
                    [p.time_us for p in drop],
                    "x",
                    ms=6,
                    color="crimson",
                    label="dropped" if i == 0 else None,
                )
            allb = [p.bytes for p in used + drop]
            if allb and np.isfinite(f.latency_us) and np.isfinite(f.bandwidth_GBps):
                xs = np.geomspace(min(allb), max(allb), 100)
                proto = used[0] if used else drop[0]
                ys = [
                    f.predict_us(type(proto)(proto.level, proto.site, fam, n, b, 1.0, ""))
                    for b in xs
                ]
                ax.loglog(xs, ys, "-", lw=1.2, color=col)
            if used:
                res = [(p.time_us - f.predict_us(p)) / p.time_us for p in used]
                rx.semilogx([p.bytes for p in used], res, "o", ms=3, color=col)
        where = f.level + (f" @ {f.site}" if f.site else "")
        ax.set_title(f"{where}: {f.latency_us:.3g} us, {f.bandwidth_GBps:.4g} GB/s", fontsize=10)
        ax.set_ylabel("time (us)")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
        rx.axhline(0, color="grey", lw=0.8)
        rx.set_ylabel("(meas - fit) / meas", fontsize=8)
        rx.set_xlabel("bytes (nccl-tests size)")
        rx.grid(True, alpha=0.25)
    fig.suptitle(f"{cal.instance}: nccl-tests against SPEC 4 (fitted)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
