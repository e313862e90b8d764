"""The benchmarks' output convention (docs/benchmarks.md, "Where results go"): a run writes to
the untracked bench/out/ unless it is given --record; every benchmark module takes --record
through bench.common.parser and writes through bench.common, never to the record directly."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

import bench.common as common

ROOT = Path(__file__).resolve().parent.parent
# run_one.py is the suite runner's child: it prints one row for its parent and writes nothing
MODULES = sorted(
    p for p in (ROOT / "bench").glob("*.py") if p.name not in ("common.py", "run_one.py")
)


@pytest.fixture()
def dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(common, "OUT", tmp_path / "out")
    yield tmp_path
    common.set_record(False)


def test_a_run_writes_to_bench_out_unless_recorded(dirs):
    common.parser("x").parse_args([])
    p = common.write("figure", {"a": 1})
    assert p == dirs / "out" / "figure.json" and json.loads(p.read_text()) == {"a": 1}
    assert not (dirs / "results").exists()
    assert common.docs_dir() == dirs / "out" / "docs"
    common.parser("x").parse_args(["--record"])
    assert common.write("figure", {"a": 2}) == dirs / "results" / "figure.json"
    assert common.docs_dir() == common.ROOT / "docs"


def test_bench_out_is_ignored_by_git():
    out = subprocess.run(
        ["git", "check-ignore", "-q", "bench/out/x.json"], cwd=ROOT, capture_output=True
    )
    assert out.returncode == 0


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_benchmark_takes_record_and_writes_through_bench_common(path):
    tree = ast.parse(path.read_text())
    src = path.read_text()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    # no parser of its own (it would not take --record), no direct path to the record
    assert "ArgumentParser" not in attrs | names, path.name
    assert "RESULTS" not in names, path.name
    assert '"docs"' not in src and "'docs'" not in src, path.name
    if "def main(" in src:
        assert "parser(" in src, f"{path.name}: main() should parse with bench.common.parser"
