# ruff: noqa: UP031  (printf formats on purpose: they are nccl-tests' own)
"""Write the fixtures of the newer output forms from the measurements of
``old-2020-efa_all_reduce_perf.log`` (2 V100 nodes over EFA), in the exact printf formats of
nccl-tests 2.19.6 (src/util.cu: writeDeviceReport, writeResultHeader,
writeBenchmarkLinePreamble, writeBenchmarkLineBody, writePerIterReport, writeTimestamp; the
JSON writer of the same file). A developer tool: run it from this folder; the tests read only
its output files.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
BASE = HERE / "old-2020-efa_all_reduce_perf.log"


def getfloat(v: float, width: int) -> str:
    """nccl-tests getFloatStr: %.2f, else %.1f, else %.0f, else %.1e that fits `width`."""
    for fmt in (f"%{width}.2f", f"%{width}.1f", f"%{width}.0f"):
        s = fmt % v
        if len(s) <= width:
            return s
    return (f"%{width}.1e" if width >= 7 else f"%{width}.0e") % v


def rows() -> list[tuple[int, int, float, float]]:
    out = []
    for line in BASE.read_text().splitlines():
        t = line.split()
        if t and t[0].isdigit() and len(t) == 12:
            out.append((int(t[0]), int(t[1]), float(t[4]), float(t[8])))
    return out


def ranks(n: int, hosts: list[str], group=lambda r: 0) -> list[str]:
    per = n // len(hosts)
    return [
        f"#  Rank {r:2d} Group {group(r):2d} Pid {14 + r:6d} on {hosts[r // per]:>10s} device "
        f"{r % per:2d} [0000:{0x16 + r % per:02x}:00] Tesla V100-SXM2-32GB"
        for r in range(n)
    ]


def preamble(prog: str, extra: str = "") -> list[str]:
    return [
        "# nccl-tests version 2.19.6 nccl-headers=22907 nccl-library=22907",
        f"# Collective test starting: {prog}",
        "# nThread 1 nGpus 1 minBytes 8 maxBytes 2147483648 step: 2(factor) warmup iters: 5 "
        "iters: 1000 agg iters: 1 validation: 1 graph: 0 unalign: 0",
        *([extra] if extra else []),
        "#",
        "# Using devices",
    ]


def bw(size: int, t: float, n: int) -> tuple[float, float]:
    alg = size / 1e9 / (t * 1e-6)
    return alg, alg * 2 * (n - 1) / n


def body(t: float, alg: float, bus: float, wrong: str = "0") -> str:
    return f"  {getfloat(t, 7)}  {getfloat(alg, 6)}  {getfloat(bus, 6)}  {wrong:>6s}"


def text_variant(name: str, *, timestamps=False, per_iter=False, cputime=False) -> None:
    n = 2
    tlabel = "cputime" if cputime else "time"
    out = preamble("all_reduce_perf")
    if per_iter:
        out[3:3] = ["# Per-Iteration Report: CUDA event timing; i_* uses max over process rows "]
    out += ranks(n, ["e-r1-n0", "e-r1-n1"])
    out.append("#")
    ts_lbl, ts_pad = ("timestamp", 19) if timestamps else ("", 0)
    ts_fmt = "%Y-%m-%d %H:%M:%S" if timestamps else ""
    if per_iter:
        cols = ["size", "count", "type", "redop", "root"]
        out.append(
            "# %10s  %12s  %8s  %6s  %6s              out-of-place (+ per-iteration)"
            "                                in-place (+ per-iteration)" % ("", "", "", "", "")
        )
        half = [tlabel, "algbw", "busbw", "#wrong", "i_min", "i_max", "i_p99", "i_cv%"]
        fmt = "# %10s  %12s  %8s  %6s  %6s" + "  %7s  %6s  %6s  %6s  %7s  %7s  %7s  %7s" * 2
        out.append((fmt % tuple(cols + half + half)) + " %*s" % (ts_pad, ts_lbl))
        unit = ["(us)", "(GB/s)", "(GB/s)", "", "(us)", "(us)", "(us)", "(%)"]
        out.append(
            (fmt % tuple(["(B)", "(elements)", "", "", ""] + unit + unit))
            + " %*s" % (ts_pad, ts_fmt)
        )
    else:
        out.append(
            "# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place"
            "          " % ("", "", "", "", "")
        )
        fmt = "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s %*s"
        out.append(
            fmt
            % (
                "size",
                "count",
                "type",
                "redop",
                "root",
                tlabel,
                "algbw",
                "busbw",
                "#wrong",
                tlabel,
                "algbw",
                "busbw",
                "#wrong",
                ts_pad,
                ts_lbl,
            )
        )
        out.append(
            fmt
            % (
                "(B)",
                "(elements)",
                "",
                "",
                "",
                "(us)",
                "(GB/s)",
                "(GB/s)",
                "",
                "(us)",
                "(GB/s)",
                "(GB/s)",
                "",
                ts_pad,
                ts_fmt,
            )
        )
    for k, (size, count, t_oop, t_ip) in enumerate(rows()):
        line = "%12li  %12li  %8s  %6s  %6s" % (size, count, "float", "sum", "    -1")
        for t in (t_oop, t_ip):
            if cputime:
                t = t * 0.07 + 4.1  # host-side launch time, far below the collective's
            alg, bus = bw(size, t, n)
            line += body(t, alg, bus)
            if per_iter:
                line += "  %7s  %7s  %7s  %7s" % (
                    getfloat(t * 0.97, 7),
                    getfloat(t * 1.08, 7),
                    getfloat(t * 1.07, 7),
                    getfloat(1.9, 7),
                )
        if timestamps:
            line += "%21s" % f"2026-07-09 10:{k // 60:02d}:{k % 60:02d}"
        out.append(line)
    out += [
        "# Out of bounds values : 0 OK",
        "# Avg bus bandwidth    : 1.16154 ",
        "#",
        "# Collective test concluded: all_reduce_perf",
        "#",
        "",
    ]
    (HERE / name).write_text("\n".join(out))


def split_text(name: str) -> None:
    """16 ranks on two nodes split MOD 8: eight groups of one GPU per node."""
    n_all, n = 16, 2
    out = preamble("all_reduce_perf_mpi")
    out += ranks(n_all, ["e-r1-n0", "e-r1-n1"], group=lambda r: r % 8)
    out.append("#")
    out.append(
        "# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place"
        "          " % ("", "", "", "", "")
    )
    fmt = "# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s %*s"
    out.append(
        fmt
        % (
            "size",
            "count",
            "type",
            "redop",
            "root",
            "time",
            "algbw",
            "busbw",
            "#wrong",
            "time",
            "algbw",
            "busbw",
            "#wrong",
            0,
            "",
        )
    )
    out.append(
        fmt
        % (
            "(B)",
            "(elements)",
            "",
            "",
            "",
            "(us)",
            "(GB/s)",
            "(GB/s)",
            "",
            "(us)",
            "(GB/s)",
            "(GB/s)",
            "",
            0,
            "",
        )
    )
    for size, count, t_oop, t_ip in rows():
        line = "%12li  %12li  %8s  %6s  %6s" % (size, count, "float", "sum", "    -1")
        for t in (t_oop, t_ip):
            line += body(t, *bw(size, t, n))
        out.append(line)
    out += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 1.16154 ", ""]
    (HERE / name).write_text("NCCL_TESTS_SPLIT=MOD 8\n" + "\n".join(out))


def json_variant(name: str) -> None:
    """What -J writes for the split run (JSON_FILE_VERSION 3)."""
    n_all, n = 16, 2
    devices = [
        {
            "rank": r,
            "group": r % 8,
            "pid": 14 + r,
            "hostname": "e-r1-n0" if r < 8 else "e-r1-n1",
            "device": r % 8,
            "device_hex": f"0000:{0x16 + r % 8:02x}:00",
            "device_info": "Tesla V100-SXM2-32GB",
        }
        for r in range(n_all)
    ]
    results = []
    for size, count, t_oop, t_ip in rows():
        rec = {"size": size, "count": count, "type": "float", "redop": "sum", "root": "    -1"}
        for key, t in (("out_of_place", t_oop), ("in_place", t_ip)):
            alg, bus = bw(size, t, n)
            rec[key] = {"time": t, "alg_bw": alg, "bus_bw": bus, "nwrong": 0.0}
        rec.update(actual_iterations=1000, experiment_name="")
        results.append(rec)
    doc = {
        "version": 3,
        "start_time": "2026-07-09 10:00:00",
        "args": [
            "/opt/nccl-tests/build/all_reduce_perf_mpi",
            "-b",
            "8",
            "-e",
            "2G",
            "-f",
            "2",
            "-J",
            "run.json",
        ],
        "env": ["NCCL_TESTS_SPLIT=MOD 8", "NCCL_ALGO=Ring", "NCCL_PROTO=Simple"],
        "nccl_version": 22907,
        "config": {
            "nthreads": 1,
            "ngpus": 1,
            "minimum_bytes": 8,
            "maximum_bytes": 2147483648,
            "step_factor": 2,
            "warmup_iters": 5,
            "iterations": 1000,
            "aggregated_iterations": 1,
            "validation": 1,
            "graph": 0,
            "blocking_collectives": "false",
            "per_iter_timing": "false",
            "per_iter_skip": 0,
            "parallel_init": "false",
            "devices": devices,
        },
        "results": results,
        "out_of_bounds": {"count": 0, "okay": "true"},
        "average_bus_bandwidth": {"bandwidth": 1.16154, "okay": "unchecked"},
        "errors": [],
        "end_time": "2026-07-09 10:05:00",
    }
    (HERE / name).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    text_variant("v2.19-timestamps_all_reduce_perf.log", timestamps=True)
    text_variant("v2.19-per-iteration_all_reduce_perf.log", per_iter=True)
    text_variant("v2.19-cputime_all_reduce_perf.log", cputime=True)
    split_text("v2.19-split-mod8_all_reduce_perf.log")
    json_variant("v2.19-split-mod8_all_reduce_perf.json")
