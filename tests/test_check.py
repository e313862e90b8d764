"""The feasibility checker (SPEC 3 with the readings of SPEC 6).

What is tested here:
1. ``placer.api.check`` reports the same SET of violated rule numbers as the reference
   checker ``tests/reference.py`` on random placements, and nothing on feasible ones.
   (The reference also flags a lease entry whose stated ``gpus`` differs from the real
   count; SPEC does not make that a violation, so that one is ignored.)
2. One tiny hand-made placement per rule 1-7 breaking exactly that rule: the violation has
   the rule's number and names the job, offer or site.
3. One placement breaking every rule at once: all of them are reported.
4. Rule 4 with ``max_latency_us``: every pair of a group, also on a non-monotone fabric
   where the largest pair latency is not the latency of the group's meeting level.
"""

from __future__ import annotations

import copy
from pathlib import Path

import builders
import pytest
from hypothesis import HealthCheck, given, settings

from placer.api import check
from placer.io import placement_from_data
from placer.kernel.capacity import fit_nowhere_reason
from placer.validate import instance_from_dict

if __package__:
    from .reference import reference_check
    from .strategies import feasible_case, instance_and_placement
else:
    from reference import reference_check
    from strategies import feasible_case, instance_and_placement

EXAMPLES = Path(__file__).parent / "data" / "examples"
HYP = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


def load(inst_d, pl_d):
    return (instance_from_dict(copy.deepcopy(inst_d)), placement_from_data(copy.deepcopy(pl_d)))


def violations(inst_d, pl_d):
    inst, pl = load(inst_d, pl_d)
    return check(inst, pl)


def reference_rules(inst_d, pl_d) -> set[int]:
    """Rules the reference finds, without its lease-entry `gpus` count (not a SPEC rule)."""
    return {
        v["rule"]
        for v in reference_check(inst_d, pl_d)
        if not (v["rule"] == 6 and v["what"].startswith("entry says"))
    }


# --------------------------------------------------------------------------------------
# 1. agreement with the reference
# --------------------------------------------------------------------------------------


@settings(max_examples=200, **HYP)
@given(instance_and_placement())
def test_checker_agrees_with_the_reference_on_the_set_of_violated_rules(case):
    inst_d, pl_d = case
    got = violations(inst_d, pl_d)
    assert {v.rule for v in got} == reference_rules(inst_d, pl_d), [str(v) for v in got]
    for v in got:  # every violation names who breaks it
        assert v.job or v.offer or v.site, str(v)


@settings(max_examples=100, **HYP)
@given(feasible_case())
def test_checker_finds_no_violation_on_feasible_cases(case):
    inst_d, pl_d = case
    assert [str(v) for v in violations(inst_d, pl_d)] == []


@settings(max_examples=100, **HYP)
@given(feasible_case())
def test_a_job_placed_in_a_feasible_case_is_never_said_to_fit_nowhere(case):
    # fit_nowhere_reason is a necessary-condition test (the loader warns with it and refuses
    # running non-preemptible jobs by it): a job that a feasible placement holds, units of
    # several types for a v2 mixed job included, must never get a reason
    inst_d, pl_d = case
    inst = instance_from_dict(copy.deepcopy(inst_d))  # never refused: the placement exists
    placed = {e["name"] for e in pl_d["jobs"] if e["units"]}
    for job in inst.jobs:
        if job.name in placed:
            assert fit_nowhere_reason(inst, inst.index, job) == "", job.name
            assert not any("fits nowhere" in w and repr(job.name) in w for w in inst.warnings)


@pytest.mark.parametrize("case", builders.EXAMPLE_CASES)
def test_checker_agrees_with_the_worked_examples(case):
    inst_d, pl_d, expected = builders.load_example(case)
    got = violations(inst_d, pl_d)
    assert (not got) == expected["feasible"]
    assert sorted({v.rule for v in got}) == sorted(set(expected["rules_violated"]))


# --------------------------------------------------------------------------------------
# the tiny hand-made instance
# --------------------------------------------------------------------------------------


def base_instance() -> dict:
    """Site a: 2 racks x 4 nodes x 2 H100 (a/rack1/node3 unavailable), power cap 100 kW;
    site b: 1 rack x 3 nodes x 2 B200; one WAN link a-b."""
    return {
        "name": "tiny",
        "horizon_hours": 10,
        "topology": {
            "levels": ["site", "rack", "node"],
            "fabric": copy.deepcopy(builders.FABRIC_SITE_RACK_NODE),
            "sites": [
                {
                    "name": "a",
                    "gpu_type": "H100",
                    "gpus_per_node": 2,
                    "power_cap_kW": 100,
                    "domains": [{"name": "rack", "count": 2, "shape": [4]}],
                },
                {
                    "name": "b",
                    "gpu_type": "B200",
                    "gpus_per_node": 2,
                    "domains": [{"name": "rack", "count": 1, "shape": [3]}],
                },
            ],
            "wan": [{"between": ["a", "b"], "latency_us": 500, "bandwidth_GBps": 100}],
            "unavailable": ["a/rack1/node3"],
        },
        "gpu_types": {"H100": {"power_kW": 1.0}, "B200": {"power_kW": 1.2}},
        "jobs": [
            {
                "name": "T",
                "kind": "training",
                "tp": 2,
                "dp": 2,
                "min_dp": 1,
                "gpu_types": ["H100"],
                "compute_ms": 100,
                "value": 1,
            },
            {
                "name": "E",
                "kind": "training",
                "dp": 4,
                "min_dp": 2,
                "ep": 2,
                "scope": {"dp": "cluster", "ep": "cluster"},
                "compute_ms": 100,
                "value": 1,
            },
            {
                "name": "I",
                "kind": "inference",
                "replicas": 2,
                "min_replicas": 1,
                "spread": {"level": "rack", "min": 2},
                "value": 1,
            },
            {
                "name": "R",
                "kind": "inference",
                "replicas": 1,
                "value": 1,
                "current": ["b/rack0/node1/gpu1"],
                "preemptible": False,
            },
            {
                "name": "P",
                "kind": "inference",
                "replicas": 1,
                "value": 1,
                "current": ["b/rack0/node1/gpu0"],
                "pinned": True,
            },
        ],
        "leases": {
            "level": "rack",
            "offers": [
                {
                    "name": "O",
                    "price_per_gpu_hour": 1,
                    "level": "node",
                    "min_gpus": 2,
                    "max_gpus": 2,
                    "sites": ["a"],
                },
                {
                    "name": "C",
                    "price_per_gpu_hour": 1,
                    "level": "node",
                    "sites": ["b"],
                    "committed_blocks": ["b/rack0/node0"],
                },
                {"name": "S", "price_per_gpu_hour": 1, "level": "node", "single_site": True},
            ],
        },
    }


def base_placement() -> dict:
    """Feasible: every rule holds."""
    return {
        "jobs": [
            {"name": "T", "units": 1, "gpus": ["a/rack0/node0/gpu0", "a/rack0/node0/gpu1"]},
            {"name": "E", "units": 2, "gpus": ["a/rack0/node1/gpu0", "a/rack0/node1/gpu1"]},
            {"name": "I", "units": 2, "gpus": ["a/rack0/node2/gpu0", "a/rack1/node0/gpu0"]},
            {"name": "R", "units": 1, "gpus": ["b/rack0/node1/gpu1"]},
            {"name": "P", "units": 1, "gpus": ["b/rack0/node1/gpu0"]},
        ],
        "leases": [
            {"offer": "O", "blocks": ["a/rack1/node1"]},
            {"offer": "C", "blocks": ["b/rack0/node0"]},
        ],
    }


def with_job(pl: dict, name: str, gpus: list[str] | None, units: int | None = None) -> dict:
    """The placement with job `name`'s entry replaced (None: removed)."""
    pl = copy.deepcopy(pl)
    jobs = [e for e in pl["jobs"] if e["name"] != name]
    if gpus is not None:
        size = 2 if name == "T" else 1  # T has tp 2, every other job of base_instance 1
        jobs.append(
            {"name": name, "units": len(gpus) // size if units is None else units, "gpus": gpus}
        )
    pl["jobs"] = jobs
    return pl


def with_lease(pl: dict, offer: str, blocks: list[str] | None) -> dict:
    pl = copy.deepcopy(pl)
    leases = [e for e in pl["leases"] if e["offer"] != offer]
    if blocks is not None:
        leases.append({"offer": offer, "blocks": blocks})
    pl["leases"] = leases
    return pl


def assert_only_rule(inst_d, pl_d, rule, **who):
    """Exactly `rule` is broken, by the job/offer/site given in `who` (a name or a set)."""
    got = violations(inst_d, pl_d)
    assert got, "no violation found"
    assert {v.rule for v in got} == {rule}, [str(v) for v in got]
    assert reference_rules(inst_d, pl_d) == {rule}
    for key, names in who.items():
        names = {names} if isinstance(names, str) else set(names)
        assert {getattr(v, key) for v in got} <= names, [str(v) for v in got]
        assert all(getattr(v, key) for v in got)
    return got


def test_the_base_placement_is_feasible():
    assert violations(base_instance(), base_placement()) == []
    assert reference_check(base_instance(), base_placement()) == []


# --------------------------------------------------------------------------------------
# 2. one rule at a time
# --------------------------------------------------------------------------------------


RULE1_CASES = {
    "unknown GPU id": ("T", ["a/rack0/node0/gpu0", "a/rack0/node0/gpu7"], {"T"}),
    "unavailable GPU": ("I", ["a/rack0/node2/gpu0", "a/rack1/node3/gpu0"], {"I"}),
    "GPU of another job": ("E", ["a/rack0/node0/gpu1", "a/rack0/node1/gpu1"], {"T", "E"}),
    "GPU twice in a job": ("E", ["a/rack0/node1/gpu0", "a/rack0/node1/gpu0"], {"E"}),
}


@pytest.mark.parametrize("what", sorted(RULE1_CASES))
def test_rule_1_gpu_ids_exist_are_available_and_used_once(what):
    name, gpus, who = RULE1_CASES[what]
    assert_only_rule(base_instance(), with_job(base_placement(), name, gpus), 1, job=who)


def test_rule_2_gpus_of_a_job_are_of_one_allowed_type():
    inst, pl = base_instance(), base_placement()
    # T allows H100 only: on two B200s of one node
    assert_only_rule(
        inst, with_job(pl, "T", ["b/rack0/node2/gpu0", "b/rack0/node2/gpu1"]), 2, job="T"
    )
    # E allows any type, but one H100 and one B200 (its scopes are cluster-wide)
    assert_only_rule(
        inst, with_job(pl, "E", ["a/rack0/node1/gpu0", "b/rack0/node2/gpu0"]), 2, job="E"
    )


RULE3_CASES = {
    # E: dp 4, min_dp 2, ep 2
    "units below min_dp (and not a multiple of ep)": ("E", ["a/rack0/node1/gpu0"], None),
    "units not a multiple of ep": (
        "E",
        ["a/rack0/node1/gpu0", "a/rack0/node1/gpu1", "a/rack1/node0/gpu1"],
        None,
    ),
    # T: tp 2, so 2 units need 4 GPUs
    "len(gpus) != units*tp*pp": ("T", ["a/rack0/node0/gpu0", "a/rack0/node0/gpu1"], 2),
    # R is running and not preemptible
    "running non-preemptible job left out": ("R", None, None),
    # P is pinned on b/rack0/node1/gpu0
    "pinned job moved": ("P", ["b/rack0/node2/gpu0"], None),
    "pinned job stopped": ("P", None, None),
}


@pytest.mark.parametrize("what", sorted(RULE3_CASES))
def test_rule_3_unit_counts_running_and_pinned_jobs(what):
    name, gpus, units = RULE3_CASES[what]
    assert_only_rule(base_instance(), with_job(base_placement(), name, gpus, units), 3, job=name)


def test_rule_3_unknown_and_duplicate_job_entries():
    pl = base_placement()
    pl["jobs"].append({"name": "nope", "units": 0, "gpus": []})
    got = violations(base_instance(), pl)
    assert [(v.rule, v.job) for v in got] == [(3, "nope")]
    pl = base_placement()
    pl["jobs"].append({"name": "T", "units": 0, "gpus": []})
    got = violations(base_instance(), pl)
    assert [(v.rule, v.job) for v in got] == [(3, "T")]


def test_rule_3_applies_to_the_declared_units_of_an_entry_with_unknown_gpus():
    # E declares 5 units (dp 4) and names a GPU that does not exist: rules 1 and 3
    pl = with_job(
        base_placement(),
        "E",
        [
            "a/rack0/node1/gpu0",
            "a/rack0/node1/gpu9",
            "a/rack1/node0/gpu1",
            "a/rack1/node1/gpu0",
            "a/rack1/node1/gpu1",
        ],
    )
    pl = with_lease(pl, "O", ["a/rack1/node2"])
    got = violations(base_instance(), pl)
    assert {(v.rule, v.job) for v in got} == {(1, "E"), (3, "E")}
    assert reference_rules(base_instance(), pl) == {1, 3}
    # the running non-preemptible R with a broken entry is not "left out"
    pl = with_job(base_placement(), "R", ["b/rack0/node1/gpu5"])
    got = violations(base_instance(), pl)
    assert [(v.rule, v.job) for v in got] == [(1, "R")]


def test_rule_4_a_group_lies_within_one_domain_of_its_scope():
    # T's TP pair (scope node) over two nodes of one rack
    pl = with_job(base_placement(), "T", ["a/rack0/node0/gpu0", "a/rack0/node2/gpu1"])
    got = assert_only_rule(base_instance(), pl, 4, job="T")
    assert "TP" in got[0].what


def test_rule_4_checks_the_incomplete_ep_block_too():
    # ep 3, 5 units: EP groups {0,1,2} and {3,4}; the incomplete group spans two sites
    # under the default EP scope `site` (DP scope is cluster): rules 3 (5 % 3) and 4
    inst = base_instance()
    inst["jobs"][1].update(dp=6, min_dp=3, ep=3, scope={"dp": "cluster"})
    pl = with_job(
        base_placement(),
        "E",
        [
            "a/rack0/node1/gpu0",
            "a/rack0/node1/gpu1",
            "a/rack0/node3/gpu0",
            "a/rack0/node3/gpu1",
            "b/rack0/node2/gpu0",
        ],
    )
    got = violations(inst, pl)
    assert {(v.rule, v.job) for v in got} == {(3, "E"), (4, "E"), (2, "E")}
    assert reference_rules(inst, pl) == {2, 3, 4}
    assert any(v.rule == 4 and "EP" in v.what for v in got)
    # both EP groups in site a: rule 3 only (the DP group may span sites)
    pl = with_job(
        base_placement(),
        "E",
        [
            "a/rack0/node1/gpu0",
            "a/rack0/node1/gpu1",
            "a/rack0/node3/gpu0",
            "a/rack0/node3/gpu1",
            "a/rack1/node2/gpu0",
        ],
    )
    pl = with_lease(pl, "O", ["a/rack1/node1"])
    assert {v.rule for v in violations(inst, pl)} == {3}


def test_rule_5_an_inference_job_touches_spread_min_domains():
    pl = with_job(base_placement(), "I", ["a/rack0/node2/gpu0", "a/rack0/node2/gpu1"])
    assert_only_rule(base_instance(), pl, 5, job="I")


RULE6_CASES = {
    # O: level node, sites [a], 2 <= GPUs <= 2
    "block of the wrong level": ("O", ["a/rack1"], "O"),
    "block outside the offer's sites": ("O", ["b/rack0/node2"], "O"),
    "block holding a job's GPU": ("O", ["a/rack1/node0"], "O"),
    "fewer than min_gpus (only unavailable GPUs)": ("O", ["a/rack1/node3"], "O"),
    "more than max_gpus": ("O", ["a/rack1/node1", "a/rack1/node2"], "O"),
    "unknown block": ("O", ["a/rack1/node9"], "O"),
    # C: committed_blocks [b/rack0/node0]
    "committed offer not accepted": ("C", None, "C"),
    "committed block not leased": ("C", ["b/rack0/node2"], "C"),
    # S: single_site
    "single-site offer over two sites": ("S", ["a/rack1/node2", "b/rack0/node2"], "S"),
    "blocks of two offers overlap": ("S", ["b/rack0/node0"], {"S", "C"}),
}


@pytest.mark.parametrize("what", sorted(RULE6_CASES))
def test_rule_6_leases(what):
    offer, blocks, who = RULE6_CASES[what]
    pl = with_lease(base_placement(), offer, blocks)
    assert_only_rule(base_instance(), pl, 6, offer=who)


def test_rule_6_unknown_and_duplicate_offer_entries():
    pl = base_placement()
    pl["leases"].append({"offer": "nope", "blocks": []})
    got = violations(base_instance(), pl)
    assert [(v.rule, v.offer) for v in got] == [(6, "nope")]
    pl = base_placement()
    pl["leases"].append({"offer": "O", "blocks": ["a/rack1/node2"]})
    got = violations(base_instance(), pl)
    assert [(v.rule, v.offer) for v in got] == [(6, "O")]


def test_rule_7_power_per_site():
    # site a draws 8 kW: T 2 + E 2 + I 2 GPUs, plus O's leased a/rack1/node1 (2) at 1 kW
    inst = base_instance()
    inst["topology"]["sites"][0]["power_cap_kW"] = 8
    assert violations(inst, base_placement()) == []
    inst["topology"]["sites"][0]["power_cap_kW"] = 7.9
    assert_only_rule(inst, base_placement(), 7, site="a")
    # leased blocks are powered only for their available GPUs: a/rack1/node3 is
    # unavailable, so leasing it as well adds nothing (but breaks O's min_gpus? no: O
    # then holds 2 GPUs, within [2, 2])
    inst["topology"]["sites"][0]["power_cap_kW"] = 8
    pl = with_lease(base_placement(), "O", ["a/rack1/node1", "a/rack1/node3"])
    assert violations(inst, pl) == []
    # site b has no cap: any draw is fine
    pl = with_lease(base_placement(), "S", ["b/rack0/node2"])
    assert violations(inst, pl) == []


# --------------------------------------------------------------------------------------
# 3. several rules at once
# --------------------------------------------------------------------------------------


def test_a_placement_breaking_every_rule_reports_all_of_them():
    inst = base_instance()
    inst["topology"]["sites"][0]["power_cap_kW"] = 3
    pl = {
        "jobs": [
            # rule 4: T's TP pair over two nodes (rule 7: site a draws 5 kW > 3)
            {"name": "T", "units": 1, "gpus": ["a/rack0/node0/gpu0", "a/rack0/node2/gpu1"]},
            # rule 2: E mixes H100 and B200; rule 3: 3 units not a multiple of ep 2
            {
                "name": "E",
                "units": 3,
                "gpus": ["a/rack0/node1/gpu0", "a/rack0/node1/gpu1", "b/rack0/node2/gpu0"],
            },
            # rule 1: unavailable GPU; rule 5: one rack only
            {"name": "I", "units": 2, "gpus": ["a/rack1/node3/gpu0", "a/rack1/node3/gpu1"]},
            {"name": "R", "units": 1, "gpus": ["b/rack0/node1/gpu1"]},
            {"name": "P", "units": 1, "gpus": ["b/rack0/node1/gpu0"]},
        ],
        # rule 6: O's block holds a GPU of T
        "leases": [
            {"offer": "O", "blocks": ["a/rack0/node0"]},
            {"offer": "C", "blocks": ["b/rack0/node0"]},
        ],
    }
    got = violations(inst, pl)
    assert {v.rule for v in got} == {1, 2, 3, 4, 5, 6, 7}
    assert reference_rules(inst, pl) == {1, 2, 3, 4, 5, 6, 7}
    who = {(v.rule, v.job or v.offer or v.site) for v in got}
    assert {(1, "I"), (2, "E"), (3, "E"), (4, "T"), (5, "I"), (6, "O"), (7, "a")} <= who


# --------------------------------------------------------------------------------------
# 4. rule 4 with max_latency_us
# --------------------------------------------------------------------------------------


def latency_instance(bound: dict, **job_extra) -> dict:
    """A non-monotone fabric: two GPUs of one node are 6 us apart, two nodes of one rack
    3 us (faster than the node), two racks of one site 10 us. Sites a, b, c on a line with
    WAN latencies a-b 0.1 us, b-c 0.2 us (a-c: 0.1 + 0.2 = exactly 0.3 in decimals)."""
    job = {
        "name": "L",
        "kind": "inference",
        "tp": 4,
        "replicas": 2,
        "min_replicas": 1,
        "value": 1,
        "max_latency_us": bound,
    }
    job.update(job_extra)
    return {
        "name": "lat",
        "horizon_hours": 10,
        "topology": {
            "levels": ["site", "rack", "node"],
            "fabric": {
                "node": {"latency_us": 6, "bandwidth_GBps": 400},
                "rack": {"latency_us": 3, "bandwidth_GBps": 50},
                "site": {"latency_us": 10, "bandwidth_GBps": 25},
            },
            "sites": [
                {
                    "name": s,
                    "gpu_type": "H100",
                    "gpus_per_node": 2,
                    "domains": [{"name": "rack", "count": 2, "shape": [2]}],
                }
                for s in ("a", "b", "c")
            ],
            "wan": [
                {"between": ["a", "b"], "latency_us": 0.1, "bandwidth_GBps": 100},
                {"between": ["b", "c"], "latency_us": 0.2, "bandwidth_GBps": 100},
            ],
        },
        "jobs": [job],
    }


NODE_PAIRS = [
    "a/rack0/node0/gpu0",
    "a/rack0/node0/gpu1",
    "a/rack0/node1/gpu0",
    "a/rack0/node1/gpu1",
]
ONE_PER_NODE = [
    "a/rack0/node0/gpu0",
    "a/rack0/node1/gpu0",
    "a/rack1/node0/gpu0",
    "a/rack1/node1/gpu0",
]


@pytest.mark.parametrize(
    "gpus, bound, broken",
    [
        # meeting level rack (3 us) but two pairs share a node (6 us): the largest pair is 6
        (NODE_PAIRS, 3, True),
        (NODE_PAIRS, 5.9, True),
        (NODE_PAIRS, 6, False),
        # one GPU per node over two racks: pairs at rack (3) and site (10)
        (ONE_PER_NODE, 9, True),
        (ONE_PER_NODE, 10, False),
    ],
)
def test_rule_4_max_latency_bounds_every_pair_on_a_non_monotone_fabric(gpus, bound, broken):
    inst = latency_instance({"tp": bound})
    pl = {"jobs": [{"name": "L", "units": 1, "gpus": gpus}]}
    got = violations(inst, pl)
    assert bool(got) == broken
    assert reference_rules(inst, pl) == ({4} if broken else set())
    if broken:
        assert [(v.rule, v.job) for v in got] == [(4, "L")]


def test_rule_4_max_latency_of_a_pair_in_one_rack_is_the_rack_latency():
    # two GPUs on different nodes of one rack: the only pair meets at rack (3 us), although
    # a node pair would be slower (6 us)
    inst = latency_instance({"tp": 3}, tp=2)
    pl = {"jobs": [{"name": "L", "units": 1, "gpus": ["a/rack0/node0/gpu0", "a/rack0/node1/gpu0"]}]}
    assert violations(inst, pl) == []
    pl = {"jobs": [{"name": "L", "units": 1, "gpus": ["a/rack0/node0/gpu0", "a/rack0/node0/gpu1"]}]}
    assert [v.rule for v in violations(inst, pl)] == [4]


@pytest.mark.parametrize("bound, broken", [(0.3, False), (0.29, True), (0.2, True)])
def test_rule_4_max_latency_over_a_multi_hop_wan_path(bound, broken):
    # a PP chain a -> c: the pair's latency is the WAN path a-b-c, 0.1 + 0.2 = 0.3 us in the
    # file's decimals (a bound met exactly is met, whatever the float sum says)
    inst = latency_instance({"pp": bound}, tp=1, pp=2)
    pl = {"jobs": [{"name": "L", "units": 1, "gpus": ["a/rack0/node0/gpu0", "c/rack0/node0/gpu0"]}]}
    got = violations(inst, pl)
    assert [(v.rule, v.job) for v in got] == ([(4, "L")] if broken else [])
    assert reference_rules(inst, pl) == ({4} if broken else set())


def test_rule_4_max_latency_bounds_every_pair_of_a_pp_chain_not_only_neighbours():
    # stages a, b, c: neighbours a-b (0.1) and b-c (0.2) meet a bound of 0.25, but the pair
    # a-c (0.3) does not
    inst = latency_instance({"pp": 0.25}, tp=1, pp=3)
    pl = {
        "jobs": [
            {
                "name": "L",
                "units": 1,
                "gpus": ["a/rack0/node0/gpu0", "b/rack0/node0/gpu0", "c/rack0/node0/gpu0"],
            }
        ]
    }
    assert [(v.rule, v.job) for v in violations(inst, pl)] == [(4, "L")]
    assert reference_rules(inst, pl) == {4}


def test_rule_4_an_explicit_scope_still_applies_next_to_max_latency():
    # max_latency_us.tp drops the default TP scope (node) only; an explicit scope stays
    inst = latency_instance({"tp": 100}, tp=2)
    pl = {"jobs": [{"name": "L", "units": 1, "gpus": ["a/rack0/node0/gpu0", "a/rack1/node0/gpu0"]}]}
    assert violations(inst, pl) == []
    inst = latency_instance({"tp": 100}, tp=2, scope={"tp": "rack"})
    assert [(v.rule, v.job) for v in violations(inst, pl)] == [(4, "L")]
    assert reference_rules(inst, pl) == {4}


def test_rule_4_groups_over_sites_without_a_wan_path():
    inst = latency_instance({"tp": 1000}, tp=2)
    inst["topology"]["wan"] = inst["topology"]["wan"][:1]  # c is cut off
    pl = {"jobs": [{"name": "L", "units": 1, "gpus": ["a/rack0/node0/gpu0", "c/rack0/node0/gpu0"]}]}
    assert [(v.rule, v.job) for v in violations(inst, pl)] == [(4, "L")]
    assert reference_rules(inst, pl) == {4}


def test_a_job_of_several_types_that_fits_on_none_names_each_type_in_its_reason():
    """The real-size audit: a job with no gpu_types was told 'needs 128 GB200 GPUs ...', the
    last type tried, while the other types failed too (and for other reasons)."""
    d = builders.two_sites([builders.training("big", 4, tp=4, min_dp=4)], gpn=4)
    a, b = d["topology"]["sites"]
    a["gpu_type"], b["gpu_type"], b["domains"] = "H100", "GB200", [{"count": 3}]
    d["gpu_types"] = {"H100": {"speed": 1.0}, "GB200": {"speed": 2.0}}
    inst = instance_from_dict(d)
    why = fit_nowhere_reason(inst, inst.index, inst.jobs[0])
    assert why.startswith("on each of its GPU types: ")
    assert "16 H100 GPUs" in why and "16 GB200 GPUs" in why
    d["jobs"][0]["gpu_types"] = ["GB200"]
    inst = instance_from_dict(d)
    one = fit_nowhere_reason(inst, inst.index, inst.jobs[0])
    assert "GB200" in one and "H100" not in one and not one.startswith("on each")


def test_an_ep_group_reads_an_ep_group():
    from placer.kernel.capacity import article

    assert [article(d) for d in ("tp", "pp", "dp", "ep")] == ["a", "a", "a", "an"]
