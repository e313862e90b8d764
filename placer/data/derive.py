"""Derive the small trace tables shipped in ``placer/data/`` from the public job traces.

Run by a developer from the repository root, with the shared data folder next to it::

    python placer/data/derive.py [--data ../shared/data] [--out placer/data]

Nothing in placer imports this module or reads the shared folder at run time: the
generators read only the CSV files this script writes. See ``placer/data/README.md`` for
the origin and licence of every input and the meaning of every column.

Algorithm overview
1. Read every job of each trace as (GPUs, duration in hours): Microsoft ITP 2021 (the ten
   ``cluster*.csv`` files of the ElasticFlow release, MIT) and Microsoft Philly 2017 (the
   job-level copy processed for the Sia simulator; Philly data CC BY 4.0).
2. ``job_sizes.csv``: per trace and GPU count, the number of jobs, the sum of their
   durations (``job_hours``: proportional to how often a job of that size is seen
   running at a random instant) and their GPU-hours.
3. ``job_durations.csv``: per trace, size class (1, 2-7, 8-15, 16+ GPUs and all) and
   weighting, 15 quantiles of the duration in hours. ``job`` weighting = over submitted
   jobs; ``running`` = length-biased (each job weighted by its duration), the law of the
   total duration of a job found running at a random instant.
4. ``cluster_summaries.csv``: a few columns of the published per-cluster summaries of
   Acme (CC BY 4.0) and Helios (MIT), copied, not recomputed.
Numbers are rounded to 4 significant digits; the output is a few KB.
"""

from __future__ import annotations

import argparse
import csv
import glob
import os
from collections.abc import Iterable

import numpy as np

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
SIZE_CLASSES = (("1", 1, 1), ("2-7", 2, 7), ("8-15", 8, 15), ("16+", 16, 10**9), ("all", 1, 10**9))


def sig(x: float, n: int = 4) -> float:
    """`x` rounded to `n` significant digits (0 stays 0)."""
    return float(f"{x:.{n}g}")


def read_itp(data: str) -> tuple[np.ndarray, np.ndarray]:
    g, d = [], []
    for f in sorted(glob.glob(os.path.join(data, "msft_itp_elasticflow", "raw", "cluster*.csv"))):
        with open(f, newline="") as fh:
            for r in csv.DictReader(fh):
                g.append(int(r["num_gpu"]))
                d.append(float(r["duration"]) / 3600.0)
    return np.array(g), np.array(d)


def read_philly(data: str) -> tuple[np.ndarray, np.ndarray]:
    g, d = [], []
    with open(os.path.join(data, "philly", "philly_jobs_sia.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            g.append(int(float(r["num_gpus"])))
            d.append(float(r["duration"]) / 3600.0)
    return np.array(g), np.array(d)


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: Iterable[float]) -> list[float]:
    """Quantiles of the law putting mass w_i on x_i (inverse of the step CDF)."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cdf = np.cumsum(ws) / ws.sum()
    out = []
    for q in qs:
        if q <= 0:
            out.append(float(xs[0]))
        else:
            out.append(float(xs[min(np.searchsorted(cdf, q - 1e-12), len(xs) - 1)]))
    return out


def size_rows(trace: str, g: np.ndarray, d: np.ndarray) -> list[list]:
    rows = []
    for s in np.unique(g).tolist():
        m = g == s
        rows.append([trace, s, int(m.sum()), sig(d[m].sum()), sig((d[m] * s).sum())])
    return rows


def duration_rows(trace: str, g: np.ndarray, d: np.ndarray) -> list[list]:
    rows = []
    for name, lo, hi in SIZE_CLASSES:
        m = (g >= lo) & (g <= hi)
        if not m.any():
            continue
        for weighting, w in (("job", np.ones(int(m.sum()))), ("running", d[m])):
            qv = weighted_quantiles(d[m], w, QUANTILES)
            rows += [
                [trace, name, weighting, q, sig(v)] for q, v in zip(QUANTILES, qv, strict=True)
            ]
    return rows


def summary_rows(data: str) -> list[list]:
    rows = []
    folder = os.path.join(data, "cluster_summaries")
    with open(os.path.join(folder, "acme_cluster_summary.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append(
                [
                    r["id"],
                    "InternLM/AcmeTrace",
                    "CC-BY-4.0",
                    "",
                    int(float(r["gpu_job_num"])),
                    sig(float(r["avg_gpu_num"])),
                    sig(float(r["med_gpu_num"])),
                    int(float(r["max_gpu"])),
                    sig(float(r["avg_run_time_gpu"])),
                    sig(float(r["med_run_time_gpu"])),
                ]
            )
    with open(os.path.join(folder, "helios_cluster_summary.csv"), newline="") as fh:
        for r in csv.DictReader(fh):
            if r["id"] == "total":
                continue
            rows.append(
                [
                    r["id"],
                    "S-Lab-System-Group/HeliosArtifact",
                    "MIT",
                    int(r["gpu_num"]),
                    int(float(r["gpu_job_num"])),
                    sig(float(r["avg_gpu_num"])),
                    sig(float(r["med_gpu_num"])),
                    "",
                    sig(float(r["avg_run_time_gpu"])),
                    sig(float(r["med_run_time_gpu"])),
                ]
            )
    return rows


def write(path: str, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=here)
    a = ap.parse_args(argv)
    traces = {"itp": read_itp(a.data), "philly": read_philly(a.data)}
    sizes, durs = [], []
    for t, (g, d) in traces.items():
        sizes += size_rows(t, g, d)
        durs += duration_rows(t, g, d)
    write(
        os.path.join(a.out, "job_sizes.csv"),
        ["trace", "gpus", "jobs", "job_hours", "gpu_hours"],
        sizes,
    )
    write(
        os.path.join(a.out, "job_durations.csv"),
        ["trace", "size_class", "weighting", "quantile", "hours"],
        durs,
    )
    write(
        os.path.join(a.out, "cluster_summaries.csv"),
        [
            "cluster",
            "source",
            "licence",
            "cluster_gpus",
            "gpu_jobs",
            "avg_gpus",
            "median_gpus",
            "max_gpus",
            "avg_run_s",
            "median_run_s",
        ],
        summary_rows(a.data),
    )


if __name__ == "__main__":
    main()
