"""What `placer plans` shows and writes: table rows of the derived plans, and the expanded
document written atomically (YAML, or JSON for a `.json` name).

Imports the planner and placer.io; no rendering library (the CLI renders the rows).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from placer.planner import Expansion, JobPlans, PlanInfo

DIM_NAMES = ("tp", "pp", "dp", "ep")


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1000:,.2f} s" if x >= 1000 else f"{x:,.1f} ms"


def _short(x: float) -> str:
    """687195 -> 687k, 4295 -> 4.3k, 333 -> 333."""
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def headers(jp: JobPlans) -> list[str]:
    """Column names of a job's table: one column per candidate GPU type."""
    moe = jp.model is not None and jp.model.moe
    cols = ["plan", "mb", "GPUs", "GB/GPU"]
    cols += list(jp.types)
    cols += ["MB/step " + ("tp/pp/dp/ep" if moe else "tp/pp/dp"), "compute", "best: meets at"]
    cols.append("eff.")
    return cols


def row(jp: JobPlans, p: PlanInfo) -> list[str]:
    """One plan: its name (tp, pp, dp, ep), microbatches, GPUs (min_dp..dp units), memory per
    GPU of its worst stage, per type the step at the best level there ("no": it does not fit
    in memory; "-": not a type of this plan), traffic per GPU per step per dimension,
    compute time on a speed-1 GPU, the levels where its groups meet in the fastest case, and
    its efficiency there."""
    pl = p.plan
    moe = jp.model is not None and jp.model.moe
    u = pl["tp"] * pl["pp"]
    lo = pl.get("min_dp", pl["dp"]) * u
    gpus = f"{pl['dp'] * u:,}" if lo == pl["dp"] * u else f"{lo:,}-{pl['dp'] * u:,}"
    cells = [pl["name"], str(pl.get("microbatches", "-")), gpus, f"{p.memory_GB:,.1f}"]
    for t in jp.types:
        if t not in p.fits:
            cells.append("-")
        elif not p.fits[t][1]:
            cells.append("no")
        else:
            e = p.estimates.get(t)
            ok = e is not None and e.step_ms is not None
            cells.append(_ms(e.step_ms) if ok else "nowhere")  # type: ignore[union-attr]
    c = pl["comm"]
    dims = ("tp", "pp", "dp") + (("ep",) if moe else ())
    cells.append("/".join(_short(c[f"{d}_MB"]) if f"{d}_MB" in c else "-" for d in dims))
    cells.append(_ms(pl["compute_ms"]))
    best = p.best()
    if best is None:
        cells += ["fits nowhere", "-"]
    else:
        pool, e = best
        at = "/".join(e.where.get(d, "-") for d in dims)
        cells.append(at + (f" ({e.units} units)" if e.units != pl["dp"] else ""))
        cells.append(f"{p.efficiency:.3f}")
    return cells


def title(jp: JobPlans) -> str:
    m = jp.model
    what = ""
    if m is not None:
        what = (
            f"{m.total_params / 1e9:,.1f}B"
            + (f" ({m.active_params / 1e9:,.1f}B active)" if m.moe and m.active_params else "")
            + f", {m.layers} layers, h {m.hidden}, s {m.seq_len}, batch {m.global_batch}"
        )
    return f"jobs[{jp.index}] {jp.name}: {what}; {jp.precision} at MFU {jp.mfu:g}"


def footer(jp: JobPlans) -> str:
    left = ", ".join(f"{n:,} {why}" for why, n in jp.dropped.items())
    out = f"{len(jp.plans)} plan(s) kept of {jp.candidates:,} shapes" + (
        f"; left out: {left}" if left else ""
    )
    if jp.excluded_types:
        out += "; types not planned: " + "; ".join(
            f"{t} ({w})" for t, w in jp.excluded_types.items()
        )
    return out


def type_lines(exp: Expansion) -> list[str]:
    """One line per GPU type used: memory and peak with where they come from."""
    hw = exp.hardware
    if hw is None:
        return []
    used = sorted({t for j in exp.jobs for t in j.types})
    out = []
    for t in used:
        th = hw.types[t]
        peaks = ", ".join(f"{k} {v:,g}" for k, v in th.peak_TFLOPS.items()) or "none"
        out.append(
            f"{t}: {th.memory_GB:g} GB ({th.memory_from}), dense peak TFLOP/s {peaks}"
            f" ({th.peak_from or '-'}), speed {th.speed:g}"
        )
    return out


def write_document(data: Any, path: str | Path) -> None:
    """Write the expanded document through a temporary file (nothing half-written): JSON
    when the name ends in `.json`, else YAML (key order kept; comments are not)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        text = json.dumps(data, indent=1) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent if str(p.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["footer", "headers", "row", "title", "type_lines", "write_document"]
