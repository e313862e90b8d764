# ruff: noqa: UP031  (printf formats on purpose: they are nccl-tests' own)
"""Synthetic nccl-tests logs from a known fabric, in nccl-tests' own printf formats (2.19.6
src/util.cu, and the old 2020 layout), for the round-trip and parser property tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILY = {
    "all_reduce": "allreduce",
    "all_gather": "gather",
    "reduce_scatter": "gather",
    "alltoall": "gather",
    "sendrecv": "p2p",
}


def steps(family: str, n: int) -> float:
    return {"allreduce": 2.0 * (n - 1), "gather": n - 1.0, "p2p": 1.0}[family]


def factor(family: str, n: int) -> float:
    return {"allreduce": 2.0 * (n - 1) / n, "gather": (n - 1) / n, "p2p": 1.0}[family]


def getfloat(v: float, width: int) -> str:
    for fmt in (f"%{width}.2f", f"%{width}.1f", f"%{width}.0f"):
        s = fmt % v
        if len(s) <= width:
            return s
    return (f"%{width}.1e" if width >= 7 else f"%{width}.0e") % v


def spec_time_us(collective: str, n: int, nbytes: float, lat_us: float, bw: float) -> float:
    f = FAMILY[collective]
    return steps(f, n) * lat_us + factor(f, n) * nbytes / (1e3 * bw)


@dataclass
class Form:
    """Which output variant to write."""

    old: bool = False  # 2020 layout: no Group, no root, `error` column
    redop: bool = True
    cputime: bool = False
    per_iter: bool = False
    timestamps: bool = False
    prefix: str = ""  # e.g. "[1,0]<stdout>:"
    nccl_info: bool = False  # NCCL INFO lines between rows and one cut row


def write_log(
    collective: str,
    hosts: list[str],
    gpus_per_host: int,
    lat_us: float,
    bw: float,
    *,
    sizes: list[int] | None = None,
    noise: float = 0.0,
    seed: int = 0,
    split_mod: int | None = None,
    form: Form | None = None,
) -> tuple[str, list[tuple[int, float, float]]]:
    """A log of one run and its (bytes, out-of-place us, in-place us) rows as printed.

    Ranks are host-major (gpus_per_host each); with ``split_mod`` the Group column is
    rank % split_mod and the timed group has one rank per `split_mod` ranks."""
    form = form or Form()
    rng = np.random.default_rng(seed)
    n_all = len(hosts) * gpus_per_host
    n = n_all // split_mod if split_mod else n_all
    sizes = sizes or [2**k for k in range(3, 34)]
    P = form.prefix
    lines = []
    if not form.old:
        lines += [
            P + "# nccl-tests version 2.19.6 nccl-headers=22907 nccl-library=22907",
            P + f"# Collective test starting: {collective}_perf",
        ]
    lines.append(
        P + "# nThread 1 nGpus 1 minBytes 8 maxBytes 8589934592 step: 2(factor) "
        "warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0"
    )
    lines += [P + "#", P + "# Using devices"]
    for r in range(n_all):
        host = hosts[r // gpus_per_host]
        d = r % gpus_per_host
        if form.old:
            lines.append(
                P + f"#   Rank {r:2d} Pid {100 + r:6d} on {host:>10s} device {d:2d} "
                f"[0x{0x10 + d:02x}] NVIDIA H100 80GB HBM3"
            )
        else:
            g = r % split_mod if split_mod else 0
            lines.append(
                P + f"#  Rank {r:2d} Group {g:2d} Pid {100 + r:6d} on {host:>10s} "
                f"device {d:2d} [0000:{0x10 + d:02x}:00] NVIDIA H100 80GB HBM3"
            )
    lines.append(P + "#")
    tl = "cputime" if form.cputime else "time"
    wrong = "error" if form.old else "#wrong"
    pre_cols = (
        ["size", "count", "type"]
        + (["redop"] if form.redop else [])
        + ([] if form.old else ["root"])
    )
    half = [tl, "algbw", "busbw", wrong] + (
        ["i_min", "i_max", "i_p99", "i_cv%"] if form.per_iter else []
    )
    widths = {
        "size": 10,
        "count": 12,
        "type": 8,
        "redop": 6,
        "root": 6,
        tl: 7,
        "algbw": 6,
        "busbw": 6,
        wrong: 6,
        "i_min": 7,
        "i_max": 7,
        "i_p99": 7,
        "i_cv%": 7,
    }
    head = "# " + "  ".join(f"%{widths[c]}s" % c for c in pre_cols + half + half)
    if form.timestamps:
        head += " %19s" % "timestamp"
    lines += [P + "#" + " " * 50 + "out-of-place" + " " * 20 + "in-place", P + head]
    fam = FAMILY[collective]
    rows = []
    for k, size in enumerate(sizes):
        count = size // 4 // (n if fam == "gather" else 1)
        vals = ["%12li" % size, "%12li" % count, "%8s" % "float"]
        if form.redop:
            vals.append("%6s" % ("none" if collective in ("all_gather", "alltoall") else "sum"))
        if not form.old:
            vals.append("%6s" % "-1")
        line = "  ".join(vals)
        cut = len(line)  # NCCL's lines land right after the preamble of a row
        printed = []
        for _ in range(2):
            t = spec_time_us(collective, n, size, lat_us, bw) * (1 + noise * rng.standard_normal())
            ts = getfloat(t, 7)
            printed.append(float(ts))
            alg = size / 1e3 / t
            w = "%6s" % ("0e+00" if form.old else "0")
            line += f"  {ts}  {getfloat(alg, 6)}  {getfloat(alg * factor(fam, n), 6)}  {w}"
            if form.per_iter:
                line += "  " + "  ".join(getfloat(t * q, 7) for q in (0.95, 1.1, 1.08, 2.0))
        if form.timestamps:
            line += "%21s" % f"2026-07-09 10:00:{k % 60:02d}"
        rows.append((size, printed[0], printed[1]))
        if form.nccl_info and k == 0:
            lines.append(
                P + line[:cut] + f"{hosts[0]}:11:12 [0] NCCL INFO Channel 00/0 : 0[0] "
                "-> 1[1] via P2P/CUMEM"
            )
            lines.append(P + f"{hosts[0]}:11:12 [0] NCCL INFO Connected all rings")
            lines.append(P + line[cut:])
        else:
            lines.append(P + line)
        if form.nccl_info and k == 3:
            lines.append(P + f"{hosts[-1]}:11:13 [1] NCCL INFO comm 0x55 rank 1 nRanks {n_all}")
    lines += [P + "# Out of bounds values : 0 OK", P + "# Avg bus bandwidth    : 1.0 ", ""]
    return "\n".join(lines), rows
