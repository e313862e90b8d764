"""Bad input: every malformed instance is refused with a located message (SPEC 5 and 6).

The tests are tables. Each refused case starts from ``BASE`` (a copy of the shared example
``case1``, a valid instance), applies one small mutation and names the place the loader must
report. A place matches a reported problem when the problem's location is that path or lies
under it (``jobs[0].scope`` matches ``jobs[0].scope.dpp``), or when the problem sits on the
path's parent and its message names the missing key (``jobs[1]: needs replicas`` matches
``jobs[1].replicas``). A tuple of places accepts any one of them. To adjust a case whose
location differs slightly, edit its ``where`` in the table; nothing else depends on it.

Cases that could run away (alias bombs, deep nesting, huge topologies) run in a child process
with a memory ceiling and a hard timeout, so a loader that expands them fails the test instead
of taking the test run down with it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import builders
import pytest
import yaml

import placer
from placer import load_instance
from placer.errors import InstanceError, PlacerError
from placer.validate import instance_from_dict

# --------------------------------------------------------------------------------------------
# The valid base instance: /work/shared/examples/case1.instance.yaml, as a Python dict.
# --------------------------------------------------------------------------------------------

BASE: dict = {
    "name": "case1",
    "horizon_hours": 10,
    "topology": {
        "levels": ["site", "rack", "node"],
        "fabric": copy.deepcopy(builders.FABRIC_SITE_RACK_NODE),
        "sites": [
            {
                "name": "a",
                "gpu_type": "H100",
                "gpus_per_node": 4,
                "node_failures_per_day": 0.024,
                "power_cap_kW": 100,
                "domains": [
                    {"name": "rack", "count": 2, "shape": [2]},
                    {"name": "spare", "shape": [1]},
                ],
            },
            {
                "name": "b",
                "gpu_type": "H100",
                "gpus_per_node": 4,
                "domains": [{"count": 1, "shape": [2]}],
            },
        ],
        "wan": [
            {
                "between": ["a", "b"],
                "latency_us": 500,
                "bandwidth_GBps": 100,
                "failures_per_day": 0.24,
            }
        ],
        "unavailable": ["a/rack1/node1"],
    },
    "gpu_types": {"H100": {"power_kW": 1.0}},
    "jobs": [
        {
            "name": "j1",
            "kind": "training",
            "tp": 2,
            "pp": 2,
            "dp": 2,
            "comm": {"tp_MB": 100, "pp_MB": 50, "pp_messages": 4, "dp_MB": 200},
            "compute_ms": 1000,
            "overlap": {"dp": 0.5},
            "value": 2,
            "restart_min": 30,
            "checkpoint_interval_min": 60,
        },
        {
            "name": "inf",
            "kind": "inference",
            "tp": 4,
            "replicas": 2,
            "min_replicas": 1,
            "spread": {"level": "site", "min": 2},
            "value": 1,
        },
    ],
    "leases": {
        "offers": [
            {
                "name": "L",
                "price_per_gpu_hour": 1.5,
                "min_gpus": 4,
                "level": "rack",
                "sites": ["a"],
            }
        ]
    },
}

# Two whole units of j1 (tp=2, pp=2) in a/rack0 that obey every rule: each TP pair on one node.
VALID_CURRENT = [f"a/rack0/node{n}/gpu{g}" for n in (0, 1) for g in range(4)]
# The same GPUs interleaved so that every TP pair spans two nodes (breaks scope tp: node).
SCOPE_BREAKING_CURRENT = [f"a/rack0/node{n}/gpu{g}" for g in range(4) for n in (0, 1)]
# One unit on a good node and one on the unavailable node a/rack1/node1 (breaks rule 1).
UNAVAILABLE_CURRENT = VALID_CURRENT[:4] + [f"a/rack1/node1/gpu{g}" for g in range(4)]

OTHER_FABRIC_ENTRY = {"latency_us": 7, "bandwidth_GBps": 40}

# --------------------------------------------------------------------------------------------
# Mutations, addressed with the same dotted paths the loader reports.
# --------------------------------------------------------------------------------------------

Mutation = Callable[[dict], None]
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _TOKEN.findall(path)]


def _parent(data: dict, path: str) -> tuple[dict | list, str | int]:
    steps = _steps(path)
    node = data
    for step in steps[:-1]:
        node = node[step]
    return node, steps[-1]


def put(path: str, value: object) -> Mutation:
    """Set the value at ``path`` (a list index equal to the length appends)."""

    def mutate(data: dict) -> None:
        node, last = _parent(data, path)
        if isinstance(node, list) and last == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[last] = copy.deepcopy(value)

    return mutate


def drop(path: str) -> Mutation:
    """Delete the key or list item at ``path`` (it must exist)."""

    def mutate(data: dict) -> None:
        node, last = _parent(data, path)
        del node[last]

    return mutate


def add(path: str, value: object) -> Mutation:
    """Append ``value`` to the list at ``path``."""

    def mutate(data: dict) -> None:
        node, last = _parent(data, path)
        node[last].append(copy.deepcopy(value))

    return mutate


def chain(*mutations: Mutation) -> Mutation:
    def mutate(data: dict) -> None:
        for mutation in mutations:
            mutation(data)

    return mutate


def variant(*mutations: Mutation) -> dict:
    data = copy.deepcopy(BASE)
    chain(*mutations)(data)
    return data


def four_level_topology(site_a_domains: list, site_b_domains: list | None = None) -> Mutation:
    """Switch to levels [site, hall, rack, node] with the given domains (for the size cases)."""
    return chain(
        put("topology.levels", ["site", "hall", "rack", "node"]),
        put("topology.fabric.hall", {"latency_us": 8, "bandwidth_GBps": 30}),
        put("topology.sites[0].domains", site_a_domains),
        put("topology.sites[1].domains", site_b_domains or [{"count": 1, "shape": [1, 2]}]),
        put("topology.unavailable", []),
    )


# --------------------------------------------------------------------------------------------
# Files and assertions.
# --------------------------------------------------------------------------------------------


def dump(data: object, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=1)
    return yaml.safe_dump(data, sort_keys=False)


def write(tmp_path: Path, data: object, fmt: str = "yaml", stem: str = "instance") -> Path:
    path = tmp_path / f"{stem}.{fmt}"
    path.write_text(dump(data, fmt), encoding="utf-8")
    return path


def write_text(tmp_path: Path, text: str, suffix: str = "yaml") -> Path:
    path = tmp_path / f"raw.{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


def base_text(fmt: str) -> str:
    return dump(copy.deepcopy(BASE), fmt)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the test's anchor {old!r} must occur exactly once"
    return text.replace(old, new)


def refused(path: Path | str) -> InstanceError:
    """Load ``path``, expect an InstanceError, and check the shape of its problems."""
    with pytest.raises(InstanceError) as info:
        load_instance(path)
    err = info.value
    assert isinstance(err, PlacerError)
    assert err.problems, "an InstanceError must carry at least one problem"
    text = str(err)
    for problem in err.problems:
        assert isinstance(problem, tuple) and len(problem) == 2, problem
        location, message = problem
        assert isinstance(location, str) and isinstance(message, str), problem
        assert message.strip(), f"empty message for {location!r}"
        line = f"{location}: {message}" if location else message
        assert line in text, f"str(err) lacks the line {line!r}:\n{text}"
    assert "Traceback" not in text
    return err


def _names_place(location: str, message: str, where: str) -> bool:
    if location == where or location.startswith((where + ".", where + "[")):
        return True
    # A problem on the parent that names the missing or wrong key in its message.
    if location and where.startswith(location) and where[len(location)] in ".[":
        last = re.split(r"[.\[]", where)[-1].rstrip("]")
        return not last.isdigit() and last in message
    return False


def assert_names(err: InstanceError, where: str | tuple[str, ...], keyword: str | None) -> None:
    places = (where,) if isinstance(where, str) else where
    for location, message in err.problems:
        if any(_names_place(location, message, place) for place in places):
            if keyword is None or keyword.lower() in f"{location}: {message}".lower():
                return
    wanted = " or ".join(places) + (f" (mentioning {keyword!r})" if keyword else "")
    pytest.fail(f"no problem located at {wanted}; got:\n{err}")


def loaded(path: Path | str):
    inst = load_instance(path)
    assert isinstance(inst.warnings, list)
    assert all(isinstance(w, str) for w in inst.warnings), inst.warnings
    return inst


# --------------------------------------------------------------------------------------------
# The table of malformed instances (each refused, in YAML and in JSON).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    mutate: Mutation
    where: str | tuple[str, ...]
    keyword: str | None = None


INF = float("inf")
NAN = float("nan")

BAD_CASES: list[Bad] = [
    # Required keys and top-level shapes.
    Bad("missing-name", drop("name"), "name"),
    Bad("null-name", put("name", None), "name"),
    Bad("missing-topology", drop("topology"), "topology"),
    Bad("missing-jobs", drop("jobs"), "jobs"),
    Bad("topology-not-a-mapping", put("topology", ["site"]), "topology"),
    Bad("jobs-not-a-list", put("jobs", {"j1": {"kind": "training"}}), "jobs"),
    Bad("job-not-a-mapping", put("jobs[0]", "j1"), "jobs[0]"),
    Bad("missing-job-name", drop("jobs[0].name"), "jobs[0].name"),
    # horizon_hours > 0 and finite.
    Bad("horizon-zero", put("horizon_hours", 0), "horizon_hours"),
    Bad("horizon-negative", put("horizon_hours", -10), "horizon_hours"),
    Bad("horizon-nan", put("horizon_hours", NAN), "horizon_hours"),
    # levels.
    Bad("missing-levels", drop("topology.levels"), "topology.levels"),
    Bad(
        "levels-not-starting-with-site",
        put("topology.levels", ["dc", "rack", "node"]),
        "topology.levels",
    ),
    Bad("levels-not-ending-with-node", put("topology.levels", ["site", "rack"]), "topology.levels"),
    Bad("levels-too-short", put("topology.levels", ["site"]), "topology.levels"),
    Bad(
        "levels-duplicate",
        put("topology.levels", ["site", "rack", "rack", "node"]),
        "topology.levels",
    ),
    Bad(
        "levels-contain-cluster",
        put("topology.levels", ["site", "cluster", "node"]),
        "topology.levels",
    ),
    Bad(
        "levels-name-with-slash",
        put("topology.levels", ["site", "ra/ck", "node"]),
        "topology.levels",
    ),
    # fabric.
    Bad(
        "fabric-key-not-a-level",
        put("topology.fabric.pod", OTHER_FABRIC_ENTRY),
        "topology.fabric.pod",
    ),
    Bad(
        "fabric-entry-extra-key",
        put("topology.fabric.node.jitter_us", 1),
        "topology.fabric.node",
        "jitter_us",
    ),
    Bad(
        "fabric-missing-bandwidth-after-merge",
        drop("topology.fabric.rack.bandwidth_GBps"),
        ("topology.fabric.rack", "topology.sites[0]", "topology.sites[1]"),
        "bandwidth",
    ),
    Bad(
        "fabric-level-missing-for-one-site",
        chain(
            drop("topology.fabric.site"),
            put("topology.sites[0].fabric", {"site": {"latency_us": 20, "bandwidth_GBps": 10}}),
        ),
        ("topology.sites[1]", "topology.fabric"),
    ),
    Bad(
        "fabric-negative-latency",
        put("topology.fabric.node.latency_us", -1),
        "topology.fabric.node.latency_us",
    ),
    Bad(
        "fabric-zero-bandwidth",
        put("topology.fabric.rack.bandwidth_GBps", 0),
        "topology.fabric.rack.bandwidth_GBps",
    ),
    Bad(
        "fabric-infinite-bandwidth",
        put("topology.fabric.node.bandwidth_GBps", INF),
        "topology.fabric.node.bandwidth_GBps",
    ),
    Bad(
        "site-fabric-zero-bandwidth",
        put("topology.sites[1].fabric", {"site": {"bandwidth_GBps": 0}}),
        "topology.sites[1].fabric.site.bandwidth_GBps",
    ),
    Bad(
        "site-fabric-key-not-a-level",
        put("topology.sites[0].fabric", {"pod": OTHER_FABRIC_ENTRY}),
        "topology.sites[0].fabric.pod",
    ),
    Bad(
        "site-fabric-entry-extra-key",
        put("topology.sites[0].fabric", {"site": {"latency_us": 20, "bandwith_GBps": 5}}),
        "topology.sites[0].fabric.site",
        "bandwith_GBps",
    ),
    # sites and domains.
    Bad("site-without-domains", drop("topology.sites[1].domains"), "topology.sites[1].domains"),
    Bad(
        "site-with-empty-domains", put("topology.sites[1].domains", []), "topology.sites[1].domains"
    ),
    Bad(
        "count-zero",
        put("topology.sites[0].domains[0].count", 0),
        "topology.sites[0].domains[0].count",
    ),
    Bad(
        "count-fractional",
        put("topology.sites[0].domains[0].count", 1.5),
        "topology.sites[0].domains[0].count",
    ),
    Bad(
        "shape-too-long",
        put("topology.sites[0].domains[0].shape", [2, 2]),
        "topology.sites[0].domains[0].shape",
    ),
    Bad(
        "shape-empty",
        put("topology.sites[0].domains[0].shape", []),
        "topology.sites[0].domains[0].shape",
    ),
    Bad(
        "shape-zero-fanout",
        put("topology.sites[0].domains[0].shape", [0]),
        "topology.sites[0].domains[0].shape",
    ),
    Bad(
        "shape-negative-fanout",
        put("topology.sites[0].domains[0].shape", [-2]),
        "topology.sites[0].domains[0].shape",
    ),
    Bad(
        "shape-and-domains",
        put("topology.sites[0].domains[1].domains", [{"name": "node", "count": 1}]),
        "topology.sites[0].domains[1]",
    ),
    Bad(
        "neither-shape-nor-domains",
        drop("topology.sites[0].domains[1].shape"),
        "topology.sites[0].domains[1]",
    ),
    Bad(
        "node-entry-with-shape",
        put(
            "topology.sites[1].domains",
            [{"name": "r", "domains": [{"name": "n", "count": 2, "shape": [1]}]}],
        ),
        "topology.sites[1].domains[0].domains[0]",
    ),
    Bad(
        "sibling-collision-explicit",
        add("topology.sites[0].domains", {"name": "spare", "shape": [1]}),
        "topology.sites[0].domains",
    ),
    Bad(
        "sibling-collision-by-count",
        put("topology.sites[0].domains[1].name", "rack1"),
        "topology.sites[0].domains",
    ),
    Bad(
        "sibling-collision-by-count-suffix",
        chain(
            put("topology.sites[0].domains[0].count", 11),
            put("topology.sites[0].domains[1]", {"name": "rack1", "count": 1, "shape": [1]}),
        ),
        "topology.sites[0].domains",
    ),
    Bad(
        "site-name-collision",
        put("topology.sites[1].name", "a"),
        ("topology.sites[1]", "topology.sites[0]", "topology.sites"),
    ),
    Bad(
        "domain-name-with-slash",
        put("topology.sites[0].domains[1].name", "sp/are"),
        "topology.sites[0].domains[1].name",
    ),
    Bad(
        "domain-name-empty",
        put("topology.sites[0].domains[1].name", ""),
        "topology.sites[0].domains[1].name",
    ),
    Bad("site-name-with-slash", put("topology.sites[1].name", "b/x"), "topology.sites[1].name"),
    Bad(
        "gpus-per-node-zero",
        put("topology.sites[0].gpus_per_node", 0),
        "topology.sites[0].gpus_per_node",
    ),
    Bad(
        "site-without-gpu-type", drop("topology.sites[1].gpu_type"), "topology.sites[1]", "gpu_type"
    ),
    Bad(
        "node-failures-negative",
        put("topology.sites[0].node_failures_per_day", -0.1),
        "topology.sites[0].node_failures_per_day",
    ),
    Bad(
        "power-cap-zero", put("topology.sites[0].power_cap_kW", 0), "topology.sites[0].power_cap_kW"
    ),
    Bad(
        "power-cap-without-power-kW",
        put("gpu_types", {"H100": {"speed": 1.0}}),
        ("topology.sites[0]", "gpu_types.H100"),
        "power",
    ),
    Bad(
        "power-cap-without-any-gpu-types",
        drop("gpu_types"),
        ("topology.sites[0]", "gpu_types"),
        "power",
    ),
    # wan.
    Bad(
        "wan-unknown-site",
        put("topology.wan[0].between", ["a", "memphis-9"]),
        "topology.wan[0]",
        "memphis-9",
    ),
    Bad("wan-same-site-twice", put("topology.wan[0].between", ["a", "a"]), "topology.wan[0]"),
    Bad("wan-three-sites", put("topology.wan[0].between", ["a", "b", "a"]), "topology.wan[0]"),
    Bad(
        "wan-duplicate-link",
        add("topology.wan", {"between": ["b", "a"], "latency_us": 300, "bandwidth_GBps": 50}),
        ("topology.wan[1]", "topology.wan[0]"),
    ),
    Bad(
        "wan-zero-bandwidth",
        put("topology.wan[0].bandwidth_GBps", 0),
        "topology.wan[0].bandwidth_GBps",
    ),
    Bad(
        "wan-negative-failures",
        put("topology.wan[0].failures_per_day", -1),
        "topology.wan[0].failures_per_day",
    ),
    # unavailable.
    Bad(
        "unavailable-unknown-domain",
        add("topology.unavailable", "a/rack7"),
        "topology.unavailable[1]",
    ),
    Bad(
        "unavailable-unknown-site",
        add("topology.unavailable", "z/rack0"),
        "topology.unavailable[1]",
    ),
    Bad(
        "unavailable-gpu-out-of-range",
        add("topology.unavailable", "a/rack0/node0/gpu4"),
        "topology.unavailable[1]",
    ),
    Bad(
        "unavailable-gpu-with-leading-zero",
        add("topology.unavailable", "a/rack0/node0/gpu01"),
        "topology.unavailable[1]",
    ),
    # gpu_types.
    Bad("gpu-type-speed-zero", put("gpu_types.H100.speed", 0), "gpu_types.H100.speed"),
    Bad("gpu-type-power-zero", put("gpu_types.H100.power_kW", 0), "gpu_types.H100.power_kW"),
    # Numbers in jobs.
    Bad("tp-numeric-string", put("jobs[0].tp", "8"), "jobs[0].tp"),
    Bad("tp-bool", put("jobs[0].tp", True), "jobs[0].tp"),
    Bad("tp-fraction", put("jobs[0].tp", 8.5), "jobs[0].tp"),
    Bad("tp-infinite", put("jobs[0].tp", INF), "jobs[0].tp"),
    Bad("tp-nan", put("jobs[0].tp", NAN), "jobs[0].tp"),
    Bad("tp-zero", put("jobs[0].tp", 0), "jobs[0].tp"),
    Bad("tp-negative", put("jobs[0].tp", -2), "jobs[0].tp"),
    Bad("dp-above-1e9", put("jobs[0].dp", 2**31), "jobs[0].dp"),
    Bad("compute-ms-numeric-string", put("jobs[0].compute_ms", "1000"), "jobs[0].compute_ms"),
    Bad("value-bool", put("jobs[1].value", True), "jobs[1].value"),
    Bad("value-negative", put("jobs[1].value", -1), "jobs[1].value"),
    Bad("min-dp-above-dp", put("jobs[0].min_dp", 3), "jobs[0].min_dp"),
    Bad("min-dp-negative", put("jobs[0].min_dp", -1), "jobs[0].min_dp"),
    Bad("dp-not-a-multiple-of-ep", put("jobs[0].ep", 3), ("jobs[0].dp", "jobs[0].ep")),
    Bad("min-replicas-above-replicas", put("jobs[1].min_replicas", 3), "jobs[1].min_replicas"),
    Bad("cross-site-every-zero", put("jobs[0].cross_site_every", 0), "jobs[0].cross_site_every"),
    Bad("remaining-hours-zero", put("jobs[0].remaining_hours", 0), "jobs[0].remaining_hours"),
    Bad("migration-cost-negative", put("jobs[0].migration_cost", -5), "jobs[0].migration_cost"),
    Bad("messages-zero", put("jobs[0].comm.pp_messages", 0), "jobs[0].comm.pp_messages"),
    Bad("overlap-above-one", put("jobs[0].overlap.dp", 1.5), "jobs[0].overlap.dp"),
    Bad("overlap-negative", put("jobs[0].overlap.dp", -0.1), "jobs[0].overlap.dp"),
    # Kinds and required job fields.
    Bad("unknown-kind", put("jobs[0].kind", "batch"), "jobs[0].kind"),
    Bad("missing-kind", drop("jobs[0].kind"), "jobs[0].kind"),
    Bad("missing-value", drop("jobs[1].value"), "jobs[1].value"),
    Bad("training-without-dp", drop("jobs[0].dp"), "jobs[0].dp"),
    Bad("training-without-compute-ms", drop("jobs[0].compute_ms"), "jobs[0].compute_ms"),
    Bad("training-compute-ms-zero", put("jobs[0].compute_ms", 0), "jobs[0].compute_ms"),
    Bad("inference-without-replicas", drop("jobs[1].replicas"), "jobs[1].replicas"),
    # Unknown keys where a typo would silently change the plan: refused.
    Bad(
        "scope-unknown-key",
        put("jobs[0].scope", {"tp": "node", "dpp": "site"}),
        "jobs[0].scope",
        "dpp",
    ),
    Bad(
        "max-latency-unknown-key",
        put("jobs[0].max_latency_us", {"tpp": 10}),
        "jobs[0].max_latency_us",
        "tpp",
    ),
    Bad("comm-unknown-key", put("jobs[0].comm.tp_megabytes", 5), "jobs[0].comm", "tp_megabytes"),
    Bad("overlap-unknown-key", put("jobs[0].overlap.pp_share", 0.5), "jobs[0].overlap", "pp_share"),
    Bad("spread-unknown-key", put("jobs[1].spread.minimum", 2), "jobs[1].spread", "minimum"),
    # scope and spread values.
    Bad("scope-unknown-level", put("jobs[0].scope", {"tp": "pod"}), "jobs[0].scope.tp"),
    Bad("spread-min-zero", put("jobs[1].spread.min", 0), "jobs[1].spread.min"),
    Bad("spread-level-unknown", put("jobs[1].spread.level", "pod"), "jobs[1].spread.level"),
    Bad("spread-level-cluster", put("jobs[1].spread.level", "cluster"), "jobs[1].spread.level"),
    # current and pinned.
    Bad(
        "current-unknown-gpu",
        put("jobs[0].current", VALID_CURRENT[:7] + ["a/rack0/node1/gpu9"]),
        "jobs[0].current",
    ),
    Bad(
        "current-gpu-with-leading-zero",
        put("jobs[0].current", VALID_CURRENT[:7] + ["a/rack0/node1/gpu03"]),
        "jobs[0].current",
    ),
    Bad("current-not-whole-units", put("jobs[0].current", VALID_CURRENT[:6]), "jobs[0].current"),
    Bad(
        "current-duplicate-gpu",
        put("jobs[0].current", VALID_CURRENT[:7] + VALID_CURRENT[:1]),
        "jobs[0].current",
    ),
    Bad(
        "current-shared-with-another-job",
        chain(put("jobs[0].current", VALID_CURRENT), put("jobs[1].current", VALID_CURRENT[:4])),
        ("jobs[1].current", "jobs[0].current"),
    ),
    Bad(
        "pinned-current-on-unavailable-gpus",
        chain(put("jobs[0].current", UNAVAILABLE_CURRENT), put("jobs[0].pinned", True)),
        "jobs[0]",
    ),
    Bad(
        "pinned-current-breaking-scope",
        chain(put("jobs[0].current", SCOPE_BREAKING_CURRENT), put("jobs[0].pinned", True)),
        "jobs[0]",
    ),
    Bad(
        "pinned-current-below-min-dp",
        chain(put("jobs[0].current", VALID_CURRENT[:4]), put("jobs[0].pinned", True)),
        "jobs[0]",
    ),
    Bad(
        "pinned-current-of-a-disallowed-type",
        chain(
            put("jobs[0].current", VALID_CURRENT),
            put("jobs[0].pinned", True),
            put("jobs[0].gpu_types", ["H200"]),
        ),
        "jobs[0]",
    ),
    Bad(
        "pinned-current-over-power-cap",
        chain(
            put("jobs[0].current", VALID_CURRENT),
            put("jobs[0].pinned", True),
            put("topology.sites[0].power_cap_kW", 4),
        ),
        ("jobs[0]", "topology.sites[0]"),
    ),
    Bad(
        "running-non-preemptible-fitting-nowhere",
        chain(
            put("jobs[0].current", VALID_CURRENT),
            put("jobs[0].preemptible", False),
            put("jobs[0].gpu_types", ["H200"]),
        ),
        "jobs[0]",
    ),
    # leases.
    Bad(
        "lease-min-above-max",
        put("leases.offers[0].max_gpus", 2),
        ("leases.offers[0].min_gpus", "leases.offers[0].max_gpus"),
    ),
    Bad(
        "lease-missing-price",
        drop("leases.offers[0].price_per_gpu_hour"),
        "leases.offers[0].price_per_gpu_hour",
    ),
    Bad(
        "lease-negative-price",
        put("leases.offers[0].price_per_gpu_hour", -1),
        "leases.offers[0].price_per_gpu_hour",
    ),
    Bad("lease-unknown-level", put("leases.offers[0].level", "pod"), "leases.offers[0].level"),
    Bad(
        "lease-default-level-unknown",
        chain(drop("leases.offers[0].level"), put("leases.level", "hall")),
        "leases.level",
    ),
    Bad(
        "lease-unknown-site", put("leases.offers[0].sites", ["a", "z"]), "leases.offers[0].sites[1]"
    ),
    Bad(
        "committed-block-not-at-offer-level",
        put("leases.offers[0].committed_blocks", ["a/rack0/node0"]),
        "leases.offers[0].committed_blocks[0]",
    ),
    Bad(
        "committed-block-unknown",
        put("leases.offers[0].committed_blocks", ["a/rack9"]),
        "leases.offers[0].committed_blocks[0]",
    ),
    Bad(
        "committed-block-outside-allowed-sites",
        put("leases.offers[0].committed_blocks", ["b/rack0"]),
        "leases.offers[0].committed_blocks[0]",
    ),
    Bad(
        "committed-block-of-a-disallowed-type",
        chain(
            put("leases.offers[0].gpu_types", ["H200"]),
            put("leases.offers[0].committed_blocks", ["a/rack0"]),
        ),
        "leases.offers[0].committed_blocks[0]",
    ),
    Bad(
        "committed-blocks-overlapping-across-offers",
        chain(
            put("leases.offers[0].committed_blocks", ["a/rack0"]),
            add(
                "leases.offers",
                {
                    "name": "M",
                    "price_per_gpu_hour": 1.0,
                    "level": "site",
                    "committed_blocks": ["a"],
                },
            ),
        ),
        ("leases.offers[1].committed_blocks", "leases.offers[0].committed_blocks"),
    ),
    Bad(
        "committed-block-holding-a-pinned-job",
        chain(
            put("jobs[0].current", VALID_CURRENT),
            put("jobs[0].pinned", True),
            put("leases.offers[0].committed_blocks", ["a/rack0"]),
        ),
        ("leases.offers[0].committed_blocks", "jobs[0]"),
    ),
]

# Refusals the SPEC does not spell out but a scheduler engineer would expect (names that
# placements refer to must be unique, sizes are not negative, ...). Kept apart so that they
# are easy to drop if the project decides otherwise (and writes the choice down in docs/).
EXPECTED_BAD_CASES: list[Bad] = [
    Bad("duplicate-job-names", put("jobs[1].name", "j1"), ("jobs[1]", "jobs[0]")),
    Bad(
        "duplicate-offer-names",
        add("leases.offers", {"name": "L", "price_per_gpu_hour": 1.0, "sites": ["b"]}),
        ("leases.offers[1]", "leases.offers[0]"),
    ),
    Bad("no-sites", put("topology.sites", []), "topology.sites"),
    Bad("negative-message-size", put("jobs[0].comm.tp_MB", -5), "jobs[0].comm.tp_MB"),
    Bad("negative-restart-min", put("jobs[0].restart_min", -1), "jobs[0].restart_min"),
    Bad(
        "committed-block-listed-twice",
        put("leases.offers[0].committed_blocks", ["a/rack0", "a/rack0"]),
        "leases.offers[0].committed_blocks",
    ),
]

ALL_BAD_CASES = BAD_CASES + EXPECTED_BAD_CASES


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("case", ALL_BAD_CASES, ids=lambda case: case.id)
def test_a_malformed_instance_is_refused_naming_its_place(case: Bad, fmt: str, tmp_path: Path):
    path = write(tmp_path, variant(case.mutate), fmt)
    err = refused(path)
    assert_names(err, case.where, case.keyword)


def test_the_case_tables_have_unique_ids_and_every_mutation_changes_the_base():
    ids = [case.id for case in ALL_BAD_CASES + WARN_CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert len(BAD_CASES) >= 30
    base_text_yaml = base_text("yaml")
    for case in ALL_BAD_CASES + WARN_CASES:
        assert dump(variant(case.mutate), "yaml") != base_text_yaml, case.id


def test_the_base_instance_is_case1_and_loads_without_warnings(tmp_path: Path):
    example = Path("/work/shared/examples/case1.instance.yaml")
    if example.exists():
        assert yaml.safe_load(example.read_text()) == BASE
    inst = loaded(write(tmp_path, BASE))
    assert inst.warnings == []


def test_instance_error_is_a_placer_error():
    assert issubclass(InstanceError, PlacerError)


# --------------------------------------------------------------------------------------------
# Valid variants near the edges: they must load (so the refusals above are for the right reason).
# --------------------------------------------------------------------------------------------

VALID_VARIANTS: dict[str, Mutation] = {
    "base": chain(),
    "site-override-giving-only-latency": put(
        "topology.sites[0].fabric", {"site": {"latency_us": 20}}
    ),
    "fabric-level-given-only-by-overrides": chain(
        drop("topology.fabric.site"),
        put("topology.sites[0].fabric", {"site": {"latency_us": 20, "bandwidth_GBps": 10}}),
        put("topology.sites[1].fabric", {"site": {"latency_us": 12, "bandwidth_GBps": 20}}),
    ),
    "unavailable-single-gpu-and-whole-domain": chain(
        add("topology.unavailable", "b/rack0/node1/gpu3"), add("topology.unavailable", "a/spare")
    ),
    "explicit-nested-domains": put(
        "topology.sites[1].domains", [{"name": "r", "domains": [{"name": "n", "count": 2}]}]
    ),
    "running-job": put("jobs[0].current", VALID_CURRENT),
    "running-job-breaking-scope-not-pinned": put("jobs[0].current", SCOPE_BREAKING_CURRENT),
    "pinned-job": chain(put("jobs[0].current", VALID_CURRENT), put("jobs[0].pinned", True)),
    "running-non-preemptible-job": chain(
        put("jobs[0].current", VALID_CURRENT), put("jobs[0].preemptible", False)
    ),
    "current-null": put("jobs[0].current", None),
    "current-empty": put("jobs[0].current", []),
    "committed-block": put("leases.offers[0].committed_blocks", ["a/rack0"]),
    "integral-float-tp": put("jobs[0].tp", 2.0),
    "scope-cluster": put("jobs[0].scope", {"dp": "cluster"}),
    "max-latency-instead-of-scope": put("jobs[0].max_latency_us", {"dp": 1000}),
    "spread-min-one": put("jobs[1].spread.min", 1),
    "no-jobs": put("jobs", []),
    "no-leases": drop("leases"),
    "no-gpu-types-and-no-power-cap": chain(
        drop("gpu_types"), drop("topology.sites[0].power_cap_kW")
    ),
    "no-horizon-uses-default": drop("horizon_hours"),
}


@pytest.mark.parametrize("name", list(VALID_VARIANTS))
def test_a_valid_variant_near_the_edges_loads(name: str, tmp_path: Path):
    loaded(write(tmp_path, variant(VALID_VARIANTS[name])))


def test_an_integral_float_is_accepted_as_an_integer(tmp_path: Path):
    as_float = loaded(write(tmp_path, variant(put("jobs[0].tp", 2.0)), stem="float"))
    as_int = loaded(write(tmp_path, BASE, stem="int"))
    assert as_float.model_dump() == as_int.model_dump()

    eight = loaded(write(tmp_path, variant(put("jobs[0].tp", 8.0)), stem="eight"))
    tp = eight.model_dump()["jobs"][0]["tp"]
    assert tp == 8 and isinstance(tp, int) and not isinstance(tp, bool)


def test_an_integral_float_written_in_yaml_text_is_accepted(tmp_path: Path):
    text = replace_once(base_text("yaml"), "  tp: 2\n", "  tp: 8.0\n")
    inst = loaded(write_text(tmp_path, text))
    assert inst.model_dump()["jobs"][0]["tp"] == 8


@pytest.mark.parametrize(
    "mutation",
    [
        chain(),
        chain(
            put("jobs[0].current", VALID_CURRENT),
            put("jobs[0].preemptible", False),
            put("leases.offers[0].committed_blocks", ["a/rack1"]),
        ),
    ],
    ids=["base", "running-job-and-committed-block"],
)
def test_json_and_yaml_versions_of_an_instance_load_to_equal_instances(mutation, tmp_path: Path):
    data = variant(mutation)
    from_yaml = loaded(write(tmp_path, data, "yaml"))
    from_json = loaded(str(write(tmp_path, data, "json")))
    assert from_json.model_dump() == from_yaml.model_dump()


def test_the_format_is_found_from_the_content_not_the_extension(tmp_path: Path):
    reference = loaded(write(tmp_path, BASE, "yaml", stem="reference")).model_dump()
    yaml_in_json_file = tmp_path / "yaml_inside.json"
    yaml_in_json_file.write_text(base_text("yaml"), encoding="utf-8")
    json_in_txt_file = tmp_path / "json_inside.txt"
    json_in_txt_file.write_text(base_text("json"), encoding="utf-8")
    assert loaded(yaml_in_json_file).model_dump() == reference
    assert loaded(json_in_txt_file).model_dump() == reference


# --------------------------------------------------------------------------------------------
# Accepted with a warning.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Warn:
    id: str
    mutate: Mutation
    needles: tuple[str, ...]  # regexes that must all match one warning (case-insensitive)


WARN_CASES: list[Warn] = [
    Warn("unknown-top-level-key", put("colour", "blue"), (r"colour",)),
    Warn("unknown-key-in-a-job", put("jobs[0].colour", "blue"), (r"jobs\[0\]", r"colour")),
    Warn(
        "unknown-key-in-a-site",
        put("topology.sites[0].colour", "blue"),
        (r"topology\.sites\[0\]", r"colour"),
    ),
    Warn(
        "unknown-key-in-a-domain-entry",
        put("topology.sites[0].domains[1].colour", "blue"),
        (r"topology\.sites\[0\]\.domains\[1\]", r"colour"),
    ),
    Warn(
        "unknown-key-in-a-wan-link",
        put("topology.wan[0].colour", "blue"),
        (r"topology\.wan\[0\]", r"colour"),
    ),
    Warn(
        "unknown-key-in-a-gpu-type",
        put("gpu_types.H100.colour", "blue"),
        (r"gpu_types\.H100", r"colour"),
    ),
    Warn(
        "unknown-key-in-an-offer",
        put("leases.offers[0].colour", "blue"),
        (r"leases\.offers\[0\]", r"colour"),
    ),
    Warn("non-monotone-fabric-latency", put("topology.fabric.rack.latency_us", 1), (r"fabric",)),
    Warn(
        "non-monotone-fabric-bandwidth",
        put("topology.fabric.site.bandwidth_GBps", 100),
        (r"fabric",),
    ),
    Warn("job-gpu-type-no-site-has", put("jobs[0].gpu_types", ["B200"]), (r"jobs\[0\]",)),
    Warn("job-fitting-its-scope-nowhere", put("jobs[0].tp", 8), (r"jobs\[0\]",)),
    Warn("ep-on-an-inference-job", put("jobs[1].ep", 2), (r"jobs\[1\]", r"\bep\b")),
    Warn(
        "spread-on-a-training-job",
        put("jobs[0].spread", {"level": "site", "min": 2}),
        (r"jobs\[0\]", r"spread"),
    ),
    Warn(
        "preemptible-false-without-current",
        put("jobs[0].preemptible", False),
        (r"jobs\[0\]", r"preemptible"),
    ),
]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@pytest.mark.parametrize("case", WARN_CASES, ids=lambda case: case.id)
def test_a_questionable_instance_loads_with_a_warning_naming_the_place(
    case: Warn, fmt: str, tmp_path: Path
):
    inst = loaded(write(tmp_path, variant(case.mutate), fmt))
    for warning in inst.warnings:
        if all(re.search(needle, warning, re.IGNORECASE) for needle in case.needles):
            return
    pytest.fail(f"no warning matching {case.needles}; warnings: {inst.warnings}")


# --------------------------------------------------------------------------------------------
# Refused at the parsing stage: duplicate keys, syntax errors, tags, odd values in raw text.
# --------------------------------------------------------------------------------------------

DUPLICATE_KEY_TEXTS: dict[str, tuple[str, Callable[[], str], str]] = {
    # id: (suffix, text, the duplicated key)
    "yaml-duplicate-key-in-a-job": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  tp: 2\n", "  tp: 2\n  tp: 4\n"),
        "tp",
    ),
    "yaml-duplicate-key-quoted-differently": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  tp: 2\n", '  tp: 2\n  "tp": 4\n'),
        "tp",
    ),
    "yaml-duplicate-top-level-key": ("yaml", lambda: base_text("yaml") + "name: other\n", "name"),
    "yaml-duplicate-key-in-a-flow-mapping": (
        "yaml",
        lambda: replace_once(
            base_text("yaml"), "  overlap:\n    dp: 0.5\n", "  overlap: {dp: 0.5, dp: 0.9}\n"
        ),
        "dp",
    ),
    "json-duplicate-key-in-a-job": (
        "json",
        lambda: replace_once(base_text("json"), '"tp": 2', '"tp": 2, "tp": 4'),
        "tp",
    ),
    "json-duplicate-top-level-key": (
        "json",
        lambda: replace_once(
            base_text("json"), '"name": "case1"', '"name": "case1", "name": "other"'
        ),
        "name",
    ),
}


@pytest.mark.parametrize("case_id", list(DUPLICATE_KEY_TEXTS))
def test_a_duplicate_mapping_key_is_refused_naming_the_key(case_id: str, tmp_path: Path):
    suffix, text, key = DUPLICATE_KEY_TEXTS[case_id]
    err = refused(write_text(tmp_path, text(), suffix))
    message = str(err)
    assert "duplicate" in message.lower(), message
    assert re.search(rf"\b{key}\b", message), message


SYNTAX_ERROR_TEXTS: dict[str, tuple[str, Callable[[], str]]] = {
    "yaml-unclosed-flow-sequence": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  kind: training\n", "  kind: [training\n"),
    ),
    "yaml-bad-indentation": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  kind: training\n", "    kind: training\n"),
    ),
    "json-truncated": ("json", lambda: base_text("json")[:-40]),
}


@pytest.mark.parametrize("case_id", list(SYNTAX_ERROR_TEXTS))
def test_a_syntax_error_is_refused_naming_the_line(case_id: str, tmp_path: Path):
    suffix, text = SYNTAX_ERROR_TEXTS[case_id]
    err = refused(write_text(tmp_path, text(), suffix))
    assert re.search(r"line\s*\d+", str(err), re.IGNORECASE), str(err)


NON_FINITE_TEXTS: dict[str, tuple[str, Callable[[], str]]] = {
    "json-1e400": (
        "json",
        lambda: replace_once(base_text("json"), '"compute_ms": 1000', '"compute_ms": 1e400'),
    ),
    "json-Infinity": (
        "json",
        lambda: replace_once(base_text("json"), '"compute_ms": 1000', '"compute_ms": Infinity'),
    ),
    "yaml-1.0e+400": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  compute_ms: 1000\n", "  compute_ms: 1.0e+400\n"),
    ),
    "yaml-dot-inf": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  compute_ms: 1000\n", "  compute_ms: .inf\n"),
    ),
    "yaml-dot-nan": (
        "yaml",
        lambda: replace_once(base_text("yaml"), "  compute_ms: 1000\n", "  compute_ms: .nan\n"),
    ),
}


@pytest.mark.parametrize("case_id", list(NON_FINITE_TEXTS))
def test_a_non_finite_number_is_refused_wherever_it_is_written(case_id: str, tmp_path: Path):
    suffix, text = NON_FINITE_TEXTS[case_id]
    err = refused(write_text(tmp_path, text(), suffix))
    assert_names(err, "jobs[0].compute_ms", None)


@pytest.mark.parametrize(
    ("path", "value", "place"),
    [
        ("colour", math.inf, "colour"),
        ("jobs[0].owner", {"budget": [1, math.nan]}, "jobs[0].owner.budget[1]"),
        ("topology.notes", -math.inf, "topology.notes"),
    ],
)
def test_a_non_finite_number_under_an_unknown_key_is_refused(tmp_path, path, value, place):
    """SPEC 6: non-finite numbers are refused *everywhere*, also under a key placer does not
    know (which is otherwise accepted with a warning), with the place named."""
    err = refused(write(tmp_path, variant(put(path, value))))
    assert_names(err, place, None)
    assert "finite" in str(err)


def test_a_non_finite_number_under_an_unknown_key_of_a_placement_is_refused(tmp_path):
    import placer
    from placer.errors import PlacementError

    p = tmp_path / "p.json"
    p.write_text('{"jobs": [{"name": "a", "units": 0, "gpus": [], "cost": NaN}], "x": 1e400}')
    with pytest.raises(PlacementError) as e:
        placer.load_placement(p)
    assert "jobs[0].cost: must be a finite number" in str(e.value)
    assert "x: must be a finite number" in str(e.value)


PYTHON_TAGS = {
    "os-system": '!!python/object/apply:os.system ["touch {marker}"]',
    "subprocess-call": '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
    "new-os-system": '!!python/object/new:os.system ["touch {marker}"]',
}


@pytest.mark.parametrize("tag", list(PYTHON_TAGS))
def test_a_python_object_tag_is_refused_and_nothing_is_executed(tag: str, tmp_path: Path):
    marker = tmp_path / "executed"
    value = PYTHON_TAGS[tag].format(marker=marker)
    text = replace_once(base_text("yaml"), "name: case1\n", f"name: {value}\n")
    refused(write_text(tmp_path, text))
    assert not marker.exists(), "the loader executed a YAML python tag"


NOT_A_MAPPING_TEXTS = {
    "yaml-list": ("yaml", "- name: case1\n- name: case2\n"),
    "json-list": ("json", "[1, 2, 3]"),
    "yaml-string": ("yaml", "just some words\n"),
    "json-number": ("json", "42"),
    "empty-file": ("yaml", ""),
    "yaml-null": ("yaml", "null\n"),
    "yaml-two-documents": ("yaml", "---\nname: a\n---\nname: b\n"),
}


@pytest.mark.parametrize("case_id", list(NOT_A_MAPPING_TEXTS))
def test_a_file_that_is_not_one_mapping_is_refused(case_id: str, tmp_path: Path):
    suffix, text = NOT_A_MAPPING_TEXTS[case_id]
    refused(write_text(tmp_path, text, suffix))


def test_a_file_that_is_not_text_is_refused(tmp_path: Path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00\x81name: \x00\xc3\x28 \x9f\x92\x96")
    refused(path)


# --------------------------------------------------------------------------------------------
# Run-away inputs, in a child process with a memory ceiling and a hard timeout.
# --------------------------------------------------------------------------------------------

_CHILD = r"""
import json, resource, sys, time, traceback
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from placer import load_instance
from placer.errors import InstanceError
try:  # warm-up on the valid base, so that one-time costs are not timed
    load_instance(sys.argv[2])
except Exception:
    pass
out = {}
start = time.perf_counter()
try:
    load_instance(sys.argv[1])
    out["outcome"] = "loaded"
except InstanceError as err:
    out["outcome"] = "refused"
    out["problems"] = [[str(loc), str(msg)] for loc, msg in err.problems]
except BaseException as err:
    out["outcome"] = "crashed: " + type(err).__name__
    out["traceback"] = traceback.format_exc()[-4000:]
out["seconds"] = time.perf_counter() - start
out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps(out))
"""

MEMORY_CEILING = 2 * 2**30  # address space of the child
PEAK_RSS_LIMIT_KB = 1_000_000  # about 1 GB, imports included
HARD_TIMEOUT_S = 30


def load_in_child(path: Path, tmp_path: Path) -> dict:
    warm_up = write(tmp_path, BASE, stem="warm_up")
    package_root = str(Path(list(placer.__path__)[0]).parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(warm_up), str(MEMORY_CEILING)],
            capture_output=True,
            text=True,
            timeout=HARD_TIMEOUT_S,
            env=env,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {path.name} did not finish within {HARD_TIMEOUT_S} s")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, (
        f"child died (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def assert_refused_in_bounds(result: dict, seconds: float) -> None:
    assert result["outcome"] == "refused", result
    assert result["problems"], result
    assert not any("Traceback" in msg for _, msg in result["problems"])
    assert result["seconds"] < seconds, f"took {result['seconds']:.2f} s (limit {seconds} s)"
    assert result["maxrss_kb"] < PEAK_RSS_LIMIT_KB, f"peak RSS {result['maxrss_kb']} kB"


SIZE_CASES: dict[str, Mutation] = {
    "count-1000-by-shape-1000x1000": four_level_topology(
        [{"name": "hall", "count": 1000, "shape": [1000, 1000]}]
    ),
    "count-1000-by-nested-counts-1000x1000": four_level_topology(
        [
            {
                "name": "hall",
                "count": 1000,
                "domains": [
                    {"name": "rack", "count": 1000, "domains": [{"name": "node", "count": 1000}]}
                ],
            }
        ]
    ),
    "a-trillion-racks": put("topology.sites[1].domains[0].count", 10**12),
    "ten-million-gpus-on-two-nodes": put("topology.sites[1].gpus_per_node", 5_000_000),
    "just-over-four-million-gpus": chain(
        put("topology.sites[1].gpus_per_node", 5),
        put("topology.sites[1].domains", [{"count": 800, "shape": [1000]}]),
    ),
    "just-over-one-million-nodes": chain(
        put("topology.sites[1].gpus_per_node", 1),
        put("topology.sites[1].domains", [{"count": 1001, "shape": [1000]}]),
    ),
}


@pytest.mark.parametrize("case_id", list(SIZE_CASES))
def test_an_instance_too_large_to_expand_is_refused_quickly(case_id: str, tmp_path: Path):
    path = write(tmp_path, variant(SIZE_CASES[case_id]))
    result = load_in_child(path, tmp_path)
    assert_refused_in_bounds(result, seconds=2.0)
    assert any(loc.startswith("topology") for loc, _ in result["problems"]), result["problems"]


def billion_laughs(where: str) -> str:
    """Ten lists of ten aliases, nine deep: 10^10 strings if expanded."""
    lines = ["lol:", "  l0: &l0 [" + ", ".join(['"lol"'] * 10) + "]"]
    for i in range(1, 10):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    bomb = "\n".join(lines) + "\n"
    text = base_text("yaml")
    if where == "unknown-top-level-key":
        return bomb + text
    if where == "unknown-key-in-a-job":
        return bomb + replace_once(text, "- name: j1\n", "- name: j1\n  lol: *l9\n")
    if where == "job-field":
        return bomb + replace_once(text, "  compute_ms: 1000\n", "  compute_ms: *l9\n")
    raise ValueError(where)


@pytest.mark.parametrize("where", ["unknown-top-level-key", "unknown-key-in-a-job", "job-field"])
def test_a_billion_laughs_alias_bomb_is_refused_in_bounded_time_and_memory(
    where: str, tmp_path: Path
):
    result = load_in_child(write_text(tmp_path, billion_laughs(where)), tmp_path)
    assert_refused_in_bounds(result, seconds=5.0)


DEPTH = 10_000
DEEP_TEXTS: dict[str, tuple[str, Callable[[], str]]] = {
    "yaml-deep-list": ("yaml", lambda: "[" * DEPTH + "]" * DEPTH),
    "json-deep-list": ("json", lambda: "[" * DEPTH + "]" * DEPTH),
    "json-deep-object": ("json", lambda: '{"a": ' * DEPTH + "1" + "}" * DEPTH),
    "yaml-deep-list-under-an-unknown-key": (
        "yaml",
        lambda: base_text("yaml") + "deep: " + "[" * DEPTH + "]" * DEPTH + "\n",
    ),
    "json-deep-list-under-an-unknown-key": (
        "json",
        lambda: base_text("json").rstrip()[:-1] + ', "deep": ' + "[" * DEPTH + "]" * DEPTH + "}",
    ),
}


@pytest.mark.parametrize("case_id", list(DEEP_TEXTS))
def test_a_deeply_nested_file_is_refused_with_an_error_not_a_recursion_crash(
    case_id: str, tmp_path: Path
):
    suffix, text = DEEP_TEXTS[case_id]
    result = load_in_child(write_text(tmp_path, text(), suffix), tmp_path)
    assert_refused_in_bounds(result, seconds=5.0)
    assert not any("RecursionError" in msg for _, msg in result["problems"]), result


# --------------------------------------------------------------------------------------------
# The CLI: `placer validate FILE`.
# --------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli_output(result) -> str:
    """stdout and stderr together (typer's CliRunner mixes them; be defensive if it does not)."""
    text = result.output or ""
    for stream in ("stdout", "stderr"):
        try:
            extra = getattr(result, stream) or ""
        except ValueError:  # stderr not captured separately
            extra = ""
        if extra and extra not in text:
            text += "\n" + extra
    return _ANSI.sub("", text)


def squeezed(text: str) -> str:
    """Without whitespace, so that a console's line wrapping does not matter."""
    return "".join(text.split())


@pytest.fixture
def run_cli():
    from typer.testing import CliRunner

    from placer.cli import app

    def run(*args: str):
        result = CliRunner().invoke(app, list(args))
        return result, cli_output(result)

    return run


def test_validate_says_ok_for_a_valid_instance(run_cli, tmp_path: Path):
    result, output = run_cli("validate", str(write(tmp_path, BASE)))
    assert result.exit_code == 0, output
    assert any(line.strip().lower().startswith("ok") for line in output.splitlines()), output
    assert "Traceback" not in output


def test_validate_accepts_an_instance_with_only_warnings(run_cli, tmp_path: Path):
    result, output = run_cli("validate", str(write(tmp_path, variant(put("colour", "blue")))))
    assert result.exit_code == 0, output
    assert any(line.strip().lower().startswith("ok") for line in output.splitlines()), output


def test_validate_exits_2_and_prints_every_problem_of_an_invalid_instance(run_cli, tmp_path: Path):
    path = write(tmp_path, variant(put("jobs[0].tp", "8"), put("horizon_hours", 0)))
    problems = refused(path).problems
    result, output = run_cli("validate", str(path))
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert "jobs[0].tp" in output and "horizon_hours" in output, output
    for location, message in problems:
        assert squeezed(f"{location}: {message}") in squeezed(output), (location, message, output)


@pytest.mark.parametrize("case_id", ["yaml-unclosed-flow-sequence", "json-truncated"])
def test_validate_refuses_a_syntax_error_without_a_traceback(run_cli, case_id: str, tmp_path: Path):
    suffix, text = SYNTAX_ERROR_TEXTS[case_id]
    result, output = run_cli("validate", str(write_text(tmp_path, text(), suffix)))
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert re.search(r"line\s*\d+", output, re.IGNORECASE), output


def test_validate_refuses_a_duplicate_key_without_a_traceback(run_cli, tmp_path: Path):
    suffix, text, _ = DUPLICATE_KEY_TEXTS["yaml-duplicate-key-in-a-job"]
    result, output = run_cli("validate", str(write_text(tmp_path, text(), suffix)))
    assert result.exit_code == 2, output
    assert "duplicate" in output.lower() and "Traceback" not in output, output


def test_validate_refuses_a_python_tag_without_running_it(run_cli, tmp_path: Path):
    marker = tmp_path / "executed"
    value = PYTHON_TAGS["os-system"].format(marker=marker)
    text = replace_once(base_text("yaml"), "name: case1\n", f"name: {value}\n")
    result, output = run_cli("validate", str(write_text(tmp_path, text)))
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert not marker.exists()


def test_validate_of_a_missing_file_exits_2_without_a_traceback(run_cli, tmp_path: Path):
    result, output = run_cli("validate", str(tmp_path / "no-such-file.yaml"))
    assert result.exit_code == 2, output
    assert "Traceback" not in output


def test_validate_of_a_non_finite_number_exits_2(run_cli, tmp_path: Path):
    path = write(tmp_path, variant(put("jobs[0].tp", math.inf)))
    result, output = run_cli("validate", str(path))
    assert result.exit_code == 2, output
    assert "jobs[0].tp" in output and "Traceback" not in output, output


# ---------------------------------------------------------------- SPEC 6: fits nowhere alone


def _around_pinned(power_cap=None, pin=None, run_kw=None):
    site = {} if power_cap is None else {"power_cap_kW": power_cap}
    return builders.one_site(
        nodes=2,
        gpus_per_node=4,
        jobs=[
            builders.training("pin", len(pin), current=pin, pinned=True, scope={"dp": "site"}),
            builders.training("run", preemptible=False, **run_kw),
        ],
        **site,
    )


def test_a_running_job_that_the_power_left_by_a_pinned_job_cannot_hold_is_refused():
    pin = [f"a/node0/gpu{k}" for k in range(4)]
    run = {"dp": 4, "current": [f"a/node1/gpu{k}" for k in range(4)]}
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_around_pinned(6, pin, run))
    assert e.value.problems[0][0] == "jobs[1]"
    assert "fits nowhere even alone" in e.value.problems[0][1]
    instance_from_dict(_around_pinned(8, pin, run))  # 4 kW left: it fits


def test_a_running_job_whose_dp_groups_need_whole_tp_groups_in_one_node_is_refused():
    # dp scope node with tp=2: the DP groups' node holds both units' TP groups (4 GPUs);
    # the pinned job leaves 3 free GPUs in each node
    run = {
        "dp": 2,
        "tp": 2,
        "scope": {"dp": "node"},
        "current": ["a/node0/gpu1", "a/node0/gpu2", "a/node1/gpu1", "a/node1/gpu2"],
    }
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_around_pinned(None, ["a/node0/gpu0", "a/node1/gpu0"], run))
    assert e.value.problems[0][0] == "jobs[1]"
    assert "DP group needs 4" in e.value.problems[0][1]
    instance_from_dict(_around_pinned(None, ["a/node0/gpu0", "a/node0/gpu3"], run))


# ---------------------------------------------------------------- SPEC v2: mix_types, force


def _v2(job_extra=None, offer=None):
    d = builders.one_site(nodes=2, gpus_per_node=2, jobs=[builders.training("t", 1)])
    d["jobs"][0].update(job_extra or {})
    if offer is not None:
        d["leases"] = {"level": "node", "offers": [{"name": "o", "price_per_gpu_hour": 1, **offer}]}
    return d


@pytest.mark.parametrize(
    "value, ok", [(False, True), ("slowest", True), ("balanced", True), (True, False), ("x", False)]
)
def test_mix_types_takes_false_slowest_or_balanced_and_refuses_true(value, ok):
    if ok:
        assert instance_from_dict(_v2({"mix_types": value})).jobs[0].mix_types == value
    else:
        with pytest.raises(InstanceError) as e:
            instance_from_dict(_v2({"mix_types": value}))
        assert e.value.problems[0][0] == "jobs[0].mix_types"


@pytest.mark.parametrize("value", ["accept", "decline", None])
def test_force_takes_accept_decline_or_null(value):
    inst = instance_from_dict(_v2(offer={"force": value}))
    assert inst.offers[0].force == value


@pytest.mark.parametrize("value", ["yes", True, 1])
def test_any_other_force_is_refused_with_its_place(value):
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_v2(offer={"force": value}))
    assert e.value.problems[0][0] == "leases.offers[0].force"


def test_force_decline_with_committed_blocks_is_refused():
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_v2(offer={"force": "decline", "committed_blocks": ["a/node0"]}))
    assert e.value.problems[0][0] == "leases.offers[0].force"


@pytest.mark.parametrize(
    "offer",
    [
        {"min_gpus": 5},  # 4 GPUs in all
        {"min_gpus": 3, "max_gpus": 3},  # blocks of 2: 2 or 4, never 3
        {"gpu_types": ["B200"]},
    ],
)
def test_force_accept_that_no_set_of_blocks_meets_is_refused(offer):
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_v2(offer={"force": "accept", **offer}))
    assert e.value.problems[0][0] == "leases.offers[0].force"
    assert "empty cluster" in e.value.problems[0][1]


@pytest.mark.parametrize("offer", [{"min_gpus": 4}, {"min_gpus": 3, "max_gpus": 4}, {}])
def test_force_accept_that_some_set_of_blocks_meets_is_accepted(offer):
    instance_from_dict(_v2(offer={"force": "accept", **offer}))


def test_the_schema_carries_the_v2_fields():
    from placer.io import instance_schema

    defs = instance_schema()["$defs"]
    # the exact values: `true` and any other string are not in the schema
    assert defs["Job"]["properties"]["mix_types"]["enum"] == [False, "slowest", "balanced"]
    assert defs["Offer"]["properties"]["force"]["enum"] == ["accept", "decline", None]


# ------------------------------------------------ SPEC v2: a mixed job's fit is pooled by unit


def _two_types(job):
    """Sites a (type F, 2 nodes of 4) and b (type G, 1 node of 4) joined by a WAN link."""
    return {
        "name": "two-types",
        "horizon_hours": 10,
        "gpu_types": {"F": {"speed": 2}, "G": {"speed": 3}},
        "topology": {
            "levels": ["site", "node"],
            "fabric": copy.deepcopy(builders.TWO_LEVEL_FABRIC),
            "sites": [
                {"name": "a", "gpu_type": "F", "gpus_per_node": 4, "domains": [{"count": 2}]},
                {"name": "b", "gpu_type": "G", "gpus_per_node": 4, "domains": [{"count": 1}]},
            ],
            "wan": [{"between": ["a", "b"], "latency_us": 500, "bandwidth_GBps": 100}],
        },
        "jobs": [builders.training("m", **{"scope": {"dp": "cluster"}, **job})],
    }


_OVER_BOTH = [f"a/node{n}/gpu{g}" for n in range(2) for g in range(4)] + [
    f"b/node0/gpu{g}" for g in range(4)
]


def test_a_running_mixed_job_over_two_types_is_not_refused_as_fitting_nowhere():
    # 12 units: 8 F + 4 G; no one type has 12 GPUs, but each unit is of one type
    job = {"dp": 12, "mix_types": "balanced", "preemptible": False, "current": _OVER_BOTH}
    inst = instance_from_dict(_two_types(job))
    assert not inst.warnings
    job["mix_types"] = False  # one type per job: refused, as before
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_two_types(job))
    assert e.value.problems[0][0] == "jobs[0]"
    assert "fits nowhere even alone" in e.value.problems[0][1]


@pytest.mark.parametrize(
    "job, why",
    [
        # 13 units of 1: the two types together hold 12 GPUs
        ({"dp": 13}, "needs 13 units of 1 GPUs, each unit of one type among F/G"),
        # units of 8 (tp 8): F has 8 (one unit), G 4 (none): 2 units cannot fit
        ({"dp": 2, "tp": 8, "scope": {"dp": "cluster", "tp": "site"}}, "at most 1 unit"),
        # units of 4 (tp 4) in one node: a node holds 4, so 3 units do (8 F + 4 G) but a
        # DP group scoped to a site, holding whole TP groups, holds at most 8 GPUs
        (
            {"dp": 3, "tp": 4, "scope": {"dp": "site", "tp": "node"}},
            "a DP group needs 12 GPUs of F/G inside one site",
        ),
    ],
)
def test_a_mixed_job_that_fits_nowhere_even_pooled_is_warned_with_its_reason(job, why):
    inst = instance_from_dict(_two_types({"mix_types": "slowest", **job}))
    (msg,) = inst.warnings
    assert msg.startswith("jobs[0]") and "fits nowhere" in msg
    assert why in msg, msg


def test_a_mixed_dp_group_pools_whole_tp_groups_of_one_type_per_domain():
    # site a: a node of 5 F and a node of 5 G; site b: 2 nodes of 2 G. A DP group (scope
    # site) of 3 members holds their whole TP groups of 3 (scope node): site a has 10 free
    # GPUs, but only 2 TP groups of one type fit in it (one per node), site b none
    d = _two_types({"dp": 3, "tp": 3, "scope": {"dp": "site", "tp": "node"}})
    d["jobs"][0]["mix_types"] = "balanced"
    d["topology"]["sites"] = [
        {
            "name": "a",
            "gpus_per_node": 5,
            "domains": [{"name": "f", "gpu_type": "F"}, {"name": "g", "gpu_type": "G"}],
        },
        {"name": "b", "gpu_type": "G", "gpus_per_node": 2, "domains": [{"count": 2}]},
    ]
    (msg,) = instance_from_dict(d).warnings
    assert msg.startswith("jobs[0]")
    assert "a DP group needs 9 GPUs of F/G inside one site; the largest free site" in msg, msg
    assert "holds 6" in msg, msg
    d["jobs"][0]["dp"] = 2  # one TP group in each node of site a: it may fit
    assert not instance_from_dict(d).warnings


def _two_parts(jobs, wan=True, types=("H100", "H200")):
    """Two sites of one 4-GPU node each (types as given), WAN-linked or not."""
    d = {
        "name": "two-parts",
        "horizon_hours": 10,
        "gpu_types": {t: {"power_kW": 1.0} for t in types},
        "topology": {
            "levels": ["site", "node"],
            "fabric": {
                "node": {"latency_us": 2, "bandwidth_GBps": 400},
                "site": {"latency_us": 10, "bandwidth_GBps": 25},
            },
            "sites": [
                {"name": s, "gpu_type": t, "gpus_per_node": 4, "domains": [{"count": 1}]}
                for s, t in zip("ab", types)
            ],
        },
        "jobs": jobs,
    }
    if wan:
        d["topology"]["wan"] = [{"between": ["a", "b"], "latency_us": 100, "bandwidth_GBps": 10}]
    return d


_BOTH = [f"{s}/node0/gpu{k}" for s in "ab" for k in range(4)]


def test_a_running_job_that_mixes_types_is_not_refused_for_lack_of_one_type():
    # 2 units of 4, one H100 unit (site a) and one H200 unit (site b): valid with
    # mix_types, and the only way to hold it
    job = {"name": "mix", "kind": "training", "dp": 2, "tp": 4, "compute_ms": 100, "value": 1}
    job.update(mix_types="balanced", preemptible=False, current=_BOTH)
    job.update(scope={"tp": "node", "dp": "cluster"})
    inst = instance_from_dict(_two_parts([job]))
    res = placer.solve(inst, solver="cpsat", time_limit=10, seed=0)
    assert res.status == "optimal" and placer.check(inst, res.placement) == []
    # without mix_types no type holds 8 GPUs: refused, located
    job.update(mix_types=False, current=_BOTH[:4], min_dp=1)
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_two_parts([job | {"min_dp": 2}]))
    assert e.value.problems[0][0] == "jobs[0]"
    instance_from_dict(_two_parts([job]))  # one unit may stay: accepted


def test_a_mixed_job_still_needs_whole_units_of_one_type():
    # 3 units of 4 can never fit in 4 + 4 GPUs, mixed or not (each unit is one type)
    job = {"name": "mix", "kind": "training", "dp": 3, "tp": 4, "compute_ms": 100, "value": 1}
    job.update(
        mix_types="slowest", preemptible=False, current=[f"a/node0/gpu{k}" for k in range(4)]
    )
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_two_parts([job]))
    assert e.value.problems[0][0] == "jobs[0]"
    assert "H100/H200" in e.value.problems[0][1]


def test_running_inference_replicas_in_sites_without_a_wan_path_are_not_refused():
    # replicas share no collective: one per site, the sites unlinked
    job = {"name": "srv", "kind": "inference", "replicas": 2, "tp": 4, "value": 1}
    job.update(preemptible=False, scope={"tp": "node"}, current=_BOTH)
    inst = instance_from_dict(_two_parts([job], wan=False, types=("H100", "H100")))
    res = placer.solve(inst, solver="cpsat", time_limit=10, seed=0)
    assert res.status == "optimal" and placer.check(inst, res.placement) == []
    # three replicas of 4 cannot fit in two nodes of 4
    with pytest.raises(InstanceError) as e:
        instance_from_dict(_two_parts([job | {"replicas": 3}], wan=False, types=("H100", "H100")))
    assert "in whole units" in e.value.problems[0][1]
