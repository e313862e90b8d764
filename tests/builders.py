"""Instance dicts shared by the tests (one place, not copied across files).

Each builder returns a fresh dict, so a test may change it freely.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

TWO_LEVEL_FABRIC = {
    "node": {"latency_us": 2, "bandwidth_GBps": 400},
    "site": {"latency_us": 10, "bandwidth_GBps": 25},
}


def one_site(
    nodes: int = 2,
    gpus_per_node: int = 2,
    gpu_type: str = "H100",
    jobs: list[dict[str, Any]] | None = None,
    **site: Any,
) -> dict[str, Any]:
    """One site of `nodes` nodes (levels site/node), jobs as given."""
    return {
        "name": "one-site",
        "horizon_hours": 10,
        "gpu_types": {gpu_type: {"power_kW": 1.0}},
        "topology": {
            "levels": ["site", "node"],
            "fabric": copy.deepcopy(TWO_LEVEL_FABRIC),
            "sites": [
                {
                    "name": "a",
                    "gpu_type": gpu_type,
                    "gpus_per_node": gpus_per_node,
                    "domains": [{"count": nodes}],
                    **site,
                }
            ],
        },
        "jobs": copy.deepcopy(jobs) if jobs is not None else [],
    }


def two_sites(
    jobs: list[dict[str, Any]], gpn: int = 4, nodes: int = 2, **kw: Any
) -> dict[str, Any]:
    """Two sites a and b of `nodes` nodes of `gpn` GPUs of type "H" (levels site/node),
    one WAN link, jobs as given; `kw` adds top-level keys."""
    return {
        "name": "two-sites",
        "horizon_hours": 10,
        "topology": {
            "levels": ["site", "node"],
            "fabric": copy.deepcopy(TWO_LEVEL_FABRIC),
            "sites": [
                {"name": s, "gpu_type": "H", "gpus_per_node": gpn, "domains": [{"count": nodes}]}
                for s in ("a", "b")
            ],
            "wan": [{"between": ["a", "b"], "latency_us": 500, "bandwidth_GBps": 100}],
        },
        "jobs": copy.deepcopy(jobs),
        **kw,
    }


def training(name: str, dp: int, **kw: Any) -> dict[str, Any]:
    """A training job of `dp` units (tp = pp = 1 unless given)."""
    return {"name": name, "kind": "training", "dp": dp, "compute_ms": 100, "value": 1, **kw}


def power_clash() -> dict[str, Any]:
    """Two running, non-preemptible jobs that each fit alone but not together (power):
    every solve is `infeasible` (exact backends) or `no_solution` (heuristics)."""
    d = one_site(
        power_cap_kW=3,
        jobs=[
            training("x", 2, current=["a/node0/gpu0", "a/node0/gpu1"], preemptible=False),
            training("y", 2, current=["a/node1/gpu0", "a/node1/gpu1"], preemptible=False),
        ],
    )
    d["name"] = "clash"
    return d


FABRIC_SITE_RACK_NODE = {
    "node": {"latency_us": 2, "bandwidth_GBps": 400},
    "rack": {"latency_us": 5, "bandwidth_GBps": 50},
    "site": {"latency_us": 10, "bandwidth_GBps": 25},
}

# --------------------------------------------------------------------- the worked examples

EXAMPLES = Path(__file__).parent / "data" / "examples"
# every worked example shipped in tests/data/examples (SPEC's own, with their numbers)
EXAMPLE_CASES = sorted(
    p.name.removesuffix(".instance.yaml") for p in EXAMPLES.glob("*.instance.yaml")
)


def load_example(case: str) -> tuple[dict, dict, dict]:
    """(instance dict, placement dict, expected numbers) of a worked example."""
    inst = yaml.safe_load((EXAMPLES / f"{case}.instance.yaml").read_text())
    placement = json.loads((EXAMPLES / f"{case}.placement.json").read_text())
    expected = json.loads((EXAMPLES / f"{case}.expected.json").read_text())
    if "score" in expected:
        expected = _flatten_expected(expected)
    return inst, placement, expected


JOB_ROW = (
    "units",
    "gpus",
    "plan",
    "T_tp_ms",
    "T_pp_ms",
    "T_dp_ms",
    "T_ep_ms",
    "step_ms",
    "efficiency",
    "lambda_per_hour",
    "lost",
    "goodput",
    "value",
    "moved",
    "migration_cost",
)
TOTALS = ("job_value", "lease_revenue", "migration_cost", "objective", "gpus_used", "gpus_leased")


def _flatten_expected(e: dict) -> dict:
    """The SPEC v2 examples' form (a checker report with a nested SPEC 2.1 `score`) in the
    form of the v1 examples: jobs and offers by name, SPEC 2.1 fields (and `speed`)."""
    sc = e["score"]
    jobs = {}
    for row in sc["jobs"]:
        r = {k: row[k] for k in JOB_ROW if k in row}  # `plan` is in the v3 examples
        if row.get("units"):
            r["speed"] = row["speed"]
        jobs[row["name"]] = r
    return {
        "feasible": e["feasible"],
        "rules_violated": sorted({v["rule"] for v in e["violations"]}),
        "objective": e["objective"],
        "jobs": jobs,
        "offers": {o["offer"]: o for o in sc["offers"]},
        "totals": {k: sc["totals"][k] for k in TOTALS},
    }
