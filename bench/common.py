"""Helpers shared by the benchmarks: machine description, result files, timing.

Where results go (the project's convention, docs/benchmarks.md): a benchmark run writes to
the untracked ``bench/out/`` (ignored by git) unless it is run with ``--record``, which
writes the tracked record instead: ``bench/results/<name>.json`` and, for the benchmarks that
make them, the generated reports and plots under ``docs/``. So running a benchmark to look at
a figure never rewrites a tracked file; re-recording one is explicit. Every benchmark's
argument parser comes from :func:`parser` (it adds ``--record``); results are written with
:func:`write`, reports and plots under :func:`docs_dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"  # the tracked record (--record)
OUT = Path(__file__).resolve().parent / "out"  # untracked: every run without --record
ROOT = Path(__file__).resolve().parent.parent
_record = False


def set_record(record: bool) -> None:
    """Write the tracked record (True) or the untracked bench/out/ (False, the default)."""
    global _record
    _record = bool(record)


def recording() -> bool:
    return _record


def results_dir() -> Path:
    """bench/results/ with --record, else bench/out/."""
    return RESULTS if _record else OUT


def docs_dir() -> Path:
    """Where generated reports and plots go: docs/ with --record, else bench/out/docs/."""
    return ROOT / "docs" if _record else OUT / "docs"


class _Parser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns = super().parse_args(args, namespace)
        set_record(ns.record)
        return ns


def parser(description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with ``--record`` (see the module docstring); parsing sets where
    :func:`write` and :func:`docs_dir` write."""
    ap = _Parser(description=description, prog=prog)
    ap.add_argument(
        "--record",
        action="store_true",
        help="write the tracked record (bench/results/, docs/) instead of bench/out/",
    )
    return ap


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
    """`data` as JSON to ``<results_dir()>/<name>.json`` (see the module docstring)."""
    d = results_dir()
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.json"
    p.write_text(json.dumps(data, indent=1) + "\n")
    shown = p.relative_to(ROOT) if p.is_relative_to(ROOT) else p
    print(f"wrote {shown}" + ("" if _record else " (not the record: --record)"))
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
