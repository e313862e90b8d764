"""Helpers shared by the benchmarks: machine description, result files, timing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def load_reference():
    """The slow, obviously correct reference of SPEC 3 and 4 (tests/reference.py), loaded
    from its file (no sys.path edits): benchmarks compare against it side by side."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "placer_reference", ROOT / "tests" / "reference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def machine() -> dict:
    import numpy as np

    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        mem = (
            next(
                int(line.split()[1])
                for line in open("/proc/meminfo")
                if line.startswith("MemTotal")
            )
            // 1024
            // 1024
        )
    except (OSError, StopIteration):
        mem = None
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        rev = ""
    import placer

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_GiB": mem,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "placer": placer.__version__,
        "commit": rev,
    }


def write(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    p = RESULTS / f"{name}.json"
    p.write_text(json.dumps(data, indent=1) + "\n")
    return p


def best_of(fn, repeat: int = 5) -> float:
    """Smallest wall time of `repeat` runs (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
