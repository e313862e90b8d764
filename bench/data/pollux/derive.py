"""Derive the fidelity benchmark's sample from the Sia/Pollux placement measurements.

A developer tool (not imported): reads ``<model>/placements-<cluster>.csv`` and
``<model>/scalability-<cluster>.csv`` of the shared data folder and writes
``placements.csv`` and ``scalability.csv`` here. Kept: every placement of every model and
cluster except ``gpt_pmp`` (pipeline-parallel, whose `placement` means something else), at
three per-GPU batch sizes per (cluster, model): the smallest, the middle and the largest of
those measured at every placement; times in milliseconds, 4 significant digits.

    python bench/data/pollux/derive.py --data ../shared/data/perf_placement_sia_pollux
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

HERE = Path(__file__).parent
CLUSTERS = ("aws", "azure", "dgx", "dgx-ext", "quad", "rtx")
MODELS = ("bert", "cifar10", "deepspeech2", "imagenet", "ncf", "yolov3")


def sig4(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x:.{max(0, 3 - int(math.floor(math.log10(abs(x)))))}f}"


def bsz_of(r: dict) -> int:
    return int(float(r["local_bsz"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    a = ap.parse_args()
    prow, srow = [], []
    for model in MODELS:
        for cl in CLUSTERS:
            pf = a.data / model / f"placements-{cl}.csv"
            sf = a.data / model / f"scalability-{cl}.csv"
            if not pf.exists():
                continue
            rows = list(csv.DictReader(pf.open()))
            by_pl: dict[str, set[int]] = {}
            for r in rows:
                by_pl.setdefault(r["placement"], set()).add(bsz_of(r))
            common = sorted(set.intersection(*by_pl.values()))
            keep = sorted({common[0], common[len(common) // 2], common[-1]})
            for r in rows:
                if bsz_of(r) in keep:
                    prow.append(
                        [
                            cl,
                            model,
                            r["placement"],
                            bsz_of(r),
                            sig4(1000 * float(r["step_time"])),
                            sig4(1000 * float(r["sync_time"])),
                        ]
                    )
            if sf.exists():
                for r in csv.DictReader(sf.open()):
                    if bsz_of(r) in keep:
                        srow.append(
                            [
                                cl,
                                model,
                                int(r["num_nodes"]),
                                int(r["num_replicas"]),
                                bsz_of(r),
                                sig4(1000 * float(r["step_time"])),
                                sig4(1000 * float(r["sync_time"])),
                            ]
                        )
    with (HERE / "placements.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cluster", "model", "placement", "local_bsz", "step_ms", "sync_ms"])
        w.writerows(prow)
    with (HERE / "scalability.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cluster", "model", "nodes", "gpus", "local_bsz", "step_ms", "sync_ms"])
        w.writerows(srow)
    print(f"placements.csv: {len(prow)} rows; scalability.csv: {len(srow)} rows")


if __name__ == "__main__":
    main()
