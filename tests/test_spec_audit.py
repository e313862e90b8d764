"""Regressions found by an outside-in SPEC conformance audit (CLI and library driven from
SPEC.md alone): each test names the SPEC section it holds placer to."""

from __future__ import annotations

import pytest
import yaml

import placer
from placer.errors import InstanceError
from placer.io import parse_text
from tests.builders import one_site, training


def _yaml():
    inst = one_site(nodes=2, gpus_per_node=2, jobs=[training("t", dp=2)])
    return yaml.safe_dump(inst, sort_keys=False)


# SPEC 6 "Files and validation": a file is YAML or JSON; JSON and YAML 1.2 read `1e-3` as a
# number. PyYAML's YAML 1.1 rules read an exponent without a dot or a sign as a string, so a
# hand-written `node_failures_per_day: 1e-3` was refused as "must be a number, not str".
@pytest.mark.parametrize(
    "text, value",
    [("1e-3", 1e-3), ("1e3", 1000.0), ("2.5e2", 250.0), ("1.e3", 1000.0), (".5e1", 5.0)],
)
def test_yaml_exponent_floats_are_numbers(text, value):
    assert parse_text(f"a: {text}\n")["a"] == value


def test_yaml_other_scalars_unchanged():
    d = parse_text("a: 8\nb: '1e3'\nc: 0.5\nd: 1.0e+3\ne: 1e3x\nf: e3\n")
    assert d == {"a": 8, "b": "1e3", "c": 0.5, "d": 1000.0, "e": "1e3x", "f": "e3"}
    assert isinstance(d["a"], int)
    # the global PyYAML loader is not changed
    assert yaml.safe_load("a: 1e3") == {"a": "1e3"}


def test_instance_with_exponent_floats_loads(tmp_path):
    text = _yaml().replace("horizon_hours: 10", "horizon_hours: 1e1")
    text = text.replace("compute_ms: 100", "compute_ms: 1e2")
    p = tmp_path / "i.yaml"
    p.write_text(text)
    inst = placer.load_instance(p)
    assert inst.horizon_hours == 10.0
    assert inst.jobs[0].compute_ms == 100.0


def test_yaml_1e400_is_refused_as_non_finite(tmp_path):
    p = tmp_path / "i.yaml"
    p.write_text(_yaml().replace("compute_ms: 100", "compute_ms: 1e400"))
    with pytest.raises(InstanceError) as e:
        placer.load_instance(p)
    (loc, msg), *_ = e.value.problems
    assert loc == "jobs[0].compute_ms" and "finite" in msg


def test_quoted_numeric_string_still_refused(tmp_path):
    p = tmp_path / "i.yaml"
    p.write_text(_yaml().replace("compute_ms: 100", "compute_ms: '1e2'"))
    with pytest.raises(InstanceError) as e:
        placer.load_instance(p)
    assert e.value.problems[0][0] == "jobs[0].compute_ms"
