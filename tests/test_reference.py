"""Tests of the test-only oracle in tests/reference.py (and of tests/strategies.py).

The oracle must reproduce SPEC's worked examples (copied into tests/data/examples) to a
relative tolerance of 1e-9, and a few tiny hand-computed cases whose arithmetic is written
out in comments. It never imports ``placer``.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
from builders import EXAMPLE_CASES, load_example
from hypothesis import HealthCheck, given, settings

if __package__:
    from .reference import ScoreUndefined, expand, reference_check, reference_score
    from .strategies import feasible_case, instance_and_placement
else:
    from reference import ScoreUndefined, expand, reference_check, reference_score
    from strategies import feasible_case, instance_and_placement

CASES = EXAMPLE_CASES
REL = 1e-9


def close(a, b):
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def assert_same(expected, got, where=""):
    """Every number equal to rel 1e-9; bools, None and strings exactly."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert got == expected, f"{where}: {got!r} != {expected!r}"
    elif isinstance(expected, (int, float)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), where
        assert close(expected, got), f"{where}: {got!r} != {expected!r}"
    elif isinstance(expected, dict):
        for key, value in expected.items():
            assert key in got, f"{where}.{key} missing"
            assert_same(value, got[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(expected) == len(got), where
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, f"{where}[{i}]")
    else:  # pragma: no cover
        raise TypeError(type(expected))


def by_name(score):
    return {row["name"]: row for row in score["jobs"]}


# --------------------------------------------------------------------------------------
# the worked examples
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_reference_reproduces_the_worked_example(case):
    instance, placement, expected = load_example(case)
    score = reference_score(instance, placement)
    assert_same(expected["objective"], score["objective"], "objective")
    assert_same(expected["totals"], score["totals"], "totals")
    jobs = by_name(score)
    assert set(jobs) == {j["name"] for j in instance["jobs"]}
    for name, row in expected["jobs"].items():
        assert_same(row, jobs[name], f"jobs.{name}")
    offers = {row["offer"]: row for row in score["offers"]}
    assert set(offers) == set(expected["offers"])
    for name, row in expected["offers"].items():
        assert_same(row, offers[name], f"offers.{name}")


@pytest.mark.parametrize("case", CASES)
def test_reference_checker_finds_the_worked_examples_feasible(case):
    instance, placement, expected = load_example(case)
    violations = reference_check(instance, placement)
    assert expected["feasible"] is True
    assert violations == []
    assert sorted({v["rule"] for v in violations}) == expected["rules_violated"]


def test_case1_expands_names_per_spec():
    instance, _, _ = load_example("case1")
    topo = expand(instance)
    # site a: rack0, rack1 (count 2, shape [2] -> node0, node1), spare (shape [1]); 4 GPUs/node
    assert "a/rack1/node1/gpu3" in topo.gpus
    assert "a/spare/node0/gpu0" in topo.gpus
    # site b: `count: 1` without a name -> the level's name + 0
    assert "b/rack0/node1/gpu0" in topo.gpus
    assert len(topo.gpus) == (2 * 2 + 1) * 4 + 2 * 4
    assert topo.unavailable == {f"a/rack1/node1/gpu{k}" for k in range(4)}
    assert topo.paths[("a", "b")]["latency_us"] == 500


# --------------------------------------------------------------------------------------
# tiny hand-computed cases
# --------------------------------------------------------------------------------------


def base_instance(sites, wan=(), jobs=(), levels=("site", "node"), horizon=10, **extra):
    """Sites are (name, gpus_per_node, number of nodes); fabric node 2us/400, site 10us/25."""
    instance = {
        "name": "tiny",
        "horizon_hours": horizon,
        "topology": {
            "levels": list(levels),
            "fabric": {
                "node": {"latency_us": 2, "bandwidth_GBps": 400},
                "site": {"latency_us": 10, "bandwidth_GBps": 25},
            },
            "sites": [
                {"name": n, "gpu_type": "H100", "gpus_per_node": g, "domains": [{"count": k}]}
                for n, g, k in sites
            ],
            "wan": [
                {"between": [a, b], "latency_us": lat, "bandwidth_GBps": bw, "failures_per_day": f}
                for a, b, lat, bw, f in wan
            ],
        },
        "gpu_types": {"H100": {"power_kW": 1.0}},
        "jobs": list(jobs),
    }
    instance.update(extra)
    return instance


def placed(*entries):
    return {"jobs": [{"name": n, "units": u, "gpus": list(g)} for n, u, g in entries]}


def test_pp_chains_across_two_sites_share_one_wan_boundary_volume():
    job = {
        "name": "P",
        "kind": "training",
        "tp": 1,
        "pp": 2,
        "dp": 2,
        "scope": {"pp": "cluster"},
        "comm": {"pp_MB": 100, "pp_messages": 2, "dp_MB": 40},
        "compute_ms": 1000,
        "value": 1,
        "restart_min": 30,
    }
    instance = base_instance(
        [("a", 2, 1), ("b", 2, 1)], wan=[("a", "b", 300, 50, 0.48)], jobs=[job]
    )
    # rank r: p = r mod 2, u = r div 2 -> chains (a/gpu0 -> b/gpu0) and (a/gpu1 -> b/gpu1)
    placement = placed(("P", 2, ["a/node0/gpu0", "b/node0/gpu0", "a/node0/gpu1", "b/node0/gpu1"]))
    row = by_name(reference_score(instance, placement))["P"]
    # PP: 2 boundaries between sites -> S_job = 2 * 100 = 200 MB; one job on the link
    #     -> W = 50; T = m_pp * alpha_path + S_job / W = 2 * 300/1000 + 200/50 = 0.6 + 4
    assert close(row["T_pp_ms"], 4.6)
    # DP groups (a/gpu0, a/gpu1) and (b/gpu0, b/gpu1): in one node, n = 2
    #     2(n-1) alpha + 2(n-1)/n S/B = 2*2/1000 + 40/400 = 0.004 + 0.1
    assert close(row["T_dp_ms"], 0.104)
    assert row["T_tp_ms"] == 0.0 and row["T_ep_ms"] == 0.0
    assert close(row["step_ms"], 1004.704)
    # lambda: nodes fail at 0, the WAN link at 0.48/day -> 0.02/h
    assert close(row["lambda_per_hour"], 0.02)
    # lost = 0.02 * (30 + 0/2) / 60 = 0.01
    assert close(row["lost"], 0.01)
    goodput = 1000 / 1004.704 * 0.99
    assert close(row["goodput"], goodput)
    assert close(row["value"], 10 * 1 * 1 * 4 * goodput)
    assert reference_check(instance, placement) == []


def three_site_dp(extra_link=None):
    wan = [("a", "b", 100, 40, 0.24), ("b", "c", 200, 20, 0.48)]
    if extra_link:
        wan.append(extra_link)
    job = {
        "name": "D",
        "kind": "training",
        "dp": 3,
        "scope": {"dp": "cluster"},
        "comm": {"dp_MB": 30},
        "compute_ms": 1000,
        "value": 1,
    }
    instance = base_instance([("a", 1, 1), ("b", 1, 1), ("c", 1, 1)], wan=wan, jobs=[job])
    placement = placed(("D", 3, ["a/node0/gpu0", "b/node0/gpu0", "c/node0/gpu0"]))
    return instance, placement


def test_three_site_dp_group_uses_the_largest_pair_latency():
    instance, placement = three_site_dp()
    row = by_name(reference_score(instance, placement))["D"]
    # one GPU per site: reduce-scatter parts cost 0. k = 3.
    # pair latencies: a-b 100, b-c 200, a-c 300 (via b) -> alpha_wan = 300
    # W = smallest shared bandwidth on the paths = min(40, 20) = 20
    # WAN = m 2(k-1) alpha_wan + 2(k-1)/k S_job/W = 2*2*300/1000 + 4/3 * 30/20 = 1.2 + 2.0
    assert close(row["T_dp_ms"], 3.2)
    assert close(row["step_ms"], 1003.2)
    # links on the paths: a-b, b-c -> (0.24 + 0.48)/24
    assert close(row["lambda_per_hour"], 0.03)
    assert row["lost"] == 0.0  # restart_min and checkpoint interval default to 0
    assert reference_check(instance, placement) == []


@pytest.mark.parametrize(
    "a_c_link, lam",
    [
        # equal latency 300; direct bottleneck 100 > 20 via b: the direct link wins, so
        # all three links are on the group's paths: (0.24 + 0.48 + 0.72)/24
        (("a", "c", 300, 100, 0.72), 0.06),
        # direct bottleneck 10 < 20: the path via b wins, a-c is unused: (0.24 + 0.48)/24
        (("a", "c", 300, 10, 0.72), 0.03),
        # same latency and bottleneck (20); failures 0.5 < 0.72 via b: direct wins
        (("a", "c", 300, 20, 0.5), (0.24 + 0.48 + 0.5) / 24),
        # same latency, bottleneck and failures (0.72): fewer hops, the direct link wins
        (("a", "c", 300, 20, 0.72), (0.24 + 0.48 + 0.72) / 24),
        # direct latency 301 > 300: via b, whatever the bandwidth
        (("a", "c", 301, 100, 0.72), 0.03),
    ],
)
def test_wan_path_ties_break_on_bandwidth_then_failures_then_hops(a_c_link, lam):
    instance, placement = three_site_dp(a_c_link)
    row = by_name(reference_score(instance, placement))["D"]
    # alpha_wan stays 300 and W stays 20 (the b-c link or, if chosen, a-c at >= 20)
    assert close(row["T_dp_ms"], 3.2)
    assert close(row["lambda_per_hour"], lam)


def test_wan_path_last_tie_break_is_the_smaller_site_sequence():
    # a square a-m-z and a-c-z, every link 100us / 50 GBps / 0 failures: two equal paths
    # a -> z; [a, c, z] < [a, m, z], so the path via c is used
    instance = base_instance(
        [("a", 1, 1), ("c", 1, 1), ("m", 1, 1), ("z", 1, 1)],
        wan=[
            ("a", "m", 100, 50, 0),
            ("m", "z", 100, 50, 0),
            ("a", "c", 100, 50, 0),
            ("c", "z", 100, 50, 0),
        ],
    )
    topo = expand(instance)
    assert topo.paths[("a", "z")]["sites"] == ["a", "c", "z"]
    assert topo.paths[("z", "a")]["sites"] == ["z", "c", "a"]


def test_link_bandwidth_is_shared_by_the_jobs_whose_groups_cross_it():
    # two one-GPU-per-site DP jobs across a-b; the link (100 GBps) serves both -> W = 50
    jobs = [
        {
            "name": n,
            "kind": "training",
            "dp": 2,
            "scope": {"dp": "cluster"},
            "comm": {"dp_MB": 100},
            "compute_ms": 1000,
            "value": 1,
        }
        for n in ("X", "Z")
    ]
    instance = base_instance([("a", 2, 1), ("b", 2, 1)], wan=[("a", "b", 500, 100, 0)], jobs=jobs)
    placement = placed(
        ("X", 2, ["a/node0/gpu0", "b/node0/gpu0"]), ("Z", 2, ["a/node0/gpu1", "b/node0/gpu1"])
    )
    rows = by_name(reference_score(instance, placement))
    # k = 2: 2*1*500/1000 + 2*(1/2) * 100/50 = 1 + 2 = 3
    assert close(rows["X"]["T_dp_ms"], 3.0) and close(rows["Z"]["T_dp_ms"], 3.0)
    # Z alone on one site: X has the whole link: 1 + 100/100 = 2
    alone = placed(
        ("X", 2, ["a/node0/gpu0", "b/node0/gpu0"]), ("Z", 2, ["a/node0/gpu1", "a/node0/gpu1"])
    )
    alone["jobs"][1]["gpus"] = []
    alone["jobs"][1]["units"] = 0
    assert close(by_name(reference_score(instance, alone))["X"]["T_dp_ms"], 2.0)


def test_ep_inside_a_node_is_an_all_to_all():
    job = {
        "name": "E",
        "kind": "training",
        "dp": 2,
        "ep": 2,
        "comm": {"ep_MB": 80, "dp_MB": 0},
        "compute_ms": 100,
        "value": 1,
    }
    instance = base_instance([("a", 2, 1)], jobs=[job])
    placement = placed(("E", 2, ["a/node0/gpu0", "a/node0/gpu1"]))
    row = by_name(reference_score(instance, placement))["E"]
    # all-to-all, n = 2: m (n-1) alpha + (n-1)/n S/B = 2/1000 + 0.5 * 80/400 = 0.102
    assert close(row["T_ep_ms"], 0.102)
    # all-reduce with S = 0 still pays its latency: 2 (n-1) alpha = 4/1000
    assert close(row["T_dp_ms"], 0.004)
    assert close(row["step_ms"], 100.106)


def test_inference_with_compute_time_has_efficiency_but_no_loss():
    job = {
        "name": "I",
        "kind": "inference",
        "tp": 2,
        "replicas": 1,
        "compute_ms": 40,
        "comm": {"tp_MB": 20, "tp_messages": 10},
        "overlap": {"tp": 0.5},
        "value": 2,
    }
    instance = base_instance([("a", 2, 1)], jobs=[job])
    instance["topology"]["sites"][0]["node_failures_per_day"] = 0.24
    placement = placed(("I", 1, ["a/node0/gpu0", "a/node0/gpu1"]))
    row = by_name(reference_score(instance, placement))["I"]
    # TP: 10 * 2*1*2/1000 + 2*(1/2)*20/400 = 0.04 + 0.05 = 0.09; step = 40 + 0.5*0.09
    assert close(row["T_tp_ms"], 0.09)
    assert close(row["step_ms"], 40.045)
    assert close(row["efficiency"], 40 / 40.045)
    assert close(row["lambda_per_hour"], 0.01)  # one node at 0.24/day
    assert row["lost"] == 0.0
    assert close(row["value"], 10 * 2 * 1 * 2 * 40 / 40.045)


def running_job(**extra):
    job = {
        "name": "R",
        "kind": "training",
        "dp": 2,
        "min_dp": 1,
        "compute_ms": 100,
        "value": 1,
        "current": ["a/node0/gpu0", "a/node0/gpu1"],
        "migration_cost": 7,
    }
    job.update(extra)
    return job


def test_reordering_is_not_a_move_but_a_new_gpu_set_or_a_stop_is():
    instance = base_instance([("a", 4, 1)], jobs=[running_job()])
    same = placed(("R", 2, ["a/node0/gpu1", "a/node0/gpu0"]))
    row = by_name(reference_score(instance, same))["R"]
    assert row["moved"] is False and row["migration_cost"] == 0.0

    moved = placed(("R", 2, ["a/node0/gpu0", "a/node0/gpu2"]))
    score = reference_score(instance, moved)
    assert by_name(score)["R"]["moved"] is True
    assert by_name(score)["R"]["migration_cost"] == 7.0
    assert close(score["objective"], by_name(score)["R"]["value"] - 7.0)
    assert score["totals"]["migration_cost"] == 7.0

    stopped = reference_score(instance, {"jobs": []})  # absent = 0 units
    row = by_name(stopped)["R"]
    assert row["units"] == 0 and row["step_ms"] is None and row["efficiency"] is None
    assert row["value"] == 0.0 and row["migration_cost"] == 7.0
    assert stopped["objective"] == -7.0


# --------------------------------------------------------------------------------------
# feasibility rules
# --------------------------------------------------------------------------------------


def rules(violations):
    return sorted({v["rule"] for v in violations})


def test_pinned_job_moved_breaks_rule_3():
    instance = base_instance([("a", 4, 1)], jobs=[running_job(pinned=True)])
    ok = placed(("R", 2, ["a/node0/gpu0", "a/node0/gpu1"]))
    assert reference_check(instance, ok) == []
    # pinned means the identical list in the identical order
    reordered = placed(("R", 2, ["a/node0/gpu1", "a/node0/gpu0"]))
    assert rules(reference_check(instance, reordered)) == [3]
    moved = placed(("R", 2, ["a/node0/gpu2", "a/node0/gpu3"]))
    violations = reference_check(instance, moved)
    assert rules(violations) == [3] and violations[0]["job"] == "R"


def test_units_out_of_range_and_stopped_non_preemptible_break_rule_3():
    job = running_job(preemptible=False, dp=4, min_dp=2, ep=2)
    instance = base_instance([("a", 4, 1)], jobs=[job])
    assert rules(reference_check(instance, {"jobs": []})) == [3]
    # units 3: in [2, 4] but not a multiple of ep = 2
    three = placed(("R", 3, ["a/node0/gpu0", "a/node0/gpu1", "a/node0/gpu2"]))
    assert rules(reference_check(instance, three)) == [3]
    # length of gpus must be units * tp * pp
    short = placed(("R", 2, ["a/node0/gpu0"]))
    assert 3 in rules(reference_check(instance, short))


def test_unknown_unavailable_and_reused_gpus_break_rule_1():
    jobs = [
        {"name": n, "kind": "inference", "replicas": 2, "min_replicas": 1, "value": 1}
        for n in ("U", "V")
    ]
    instance = base_instance([("a", 2, 2)], jobs=jobs)
    instance["topology"]["unavailable"] = ["a/node1/gpu1"]
    placement = placed(
        ("U", 2, ["a/node0/gpu0", "a/node1/gpu1"]), ("V", 2, ["a/node0/gpu0", "a/node9/gpu0"])
    )
    violations = reference_check(instance, placement)
    assert rules(violations) == [1]
    whats = " | ".join(v["what"] for v in violations)
    assert "unavailable" in whats and "unknown" in whats and "also used" in whats
    assert len(violations) == 3  # all of them, not just the first


def test_mixed_or_disallowed_gpu_types_break_rule_2():
    job = {"name": "T", "kind": "inference", "replicas": 2, "value": 1, "gpu_types": ["B200"]}
    instance = base_instance([("a", 1, 1), ("b", 1, 1)], jobs=[job])
    instance["topology"]["sites"][1]["gpu_type"] = "B200"
    instance["gpu_types"]["B200"] = {"power_kW": 1.2, "speed": 2.0}
    placement = placed(("T", 2, ["a/node0/gpu0", "b/node0/gpu0"]))
    violations = reference_check(instance, placement)
    assert rules(violations) == [2]
    assert len(violations) == 2  # two types, and H100 is not allowed


def test_scope_and_latency_bounds_break_rule_4():
    # TP over two nodes with the default tp scope (node)
    job = {"name": "S", "kind": "inference", "tp": 2, "replicas": 1, "value": 1}
    instance = base_instance([("a", 1, 2)], jobs=[job])
    placement = placed(("S", 1, ["a/node0/gpu0", "a/node1/gpu0"]))
    assert rules(reference_check(instance, placement)) == [4]
    # max_latency_us replaces the default scope: site level latency 10 <= 10 is fine
    instance["jobs"][0]["max_latency_us"] = {"tp": 10}
    assert reference_check(instance, placement) == []
    instance["jobs"][0]["max_latency_us"] = {"tp": 9}
    assert rules(reference_check(instance, placement)) == [4]


def test_cluster_scope_still_needs_wan_connected_sites():
    job = {
        "name": "C",
        "kind": "training",
        "dp": 2,
        "scope": {"dp": "cluster"},
        "comm": {"dp_MB": 1},
        "compute_ms": 10,
        "value": 1,
    }
    instance = base_instance([("a", 1, 1), ("b", 1, 1)], jobs=[job])  # no WAN link
    placement = placed(("C", 2, ["a/node0/gpu0", "b/node0/gpu0"]))
    assert rules(reference_check(instance, placement)) == [4]
    with pytest.raises(ScoreUndefined):
        reference_score(instance, placement)


def test_spread_not_met_breaks_rule_5():
    job = {
        "name": "I",
        "kind": "inference",
        "replicas": 2,
        "value": 1,
        "spread": {"level": "site", "min": 2},
    }
    instance = base_instance([("a", 2, 1), ("b", 2, 1)], wan=[("a", "b", 100, 10, 0)], jobs=[job])
    one_site = placed(("I", 2, ["a/node0/gpu0", "a/node0/gpu1"]))
    violations = reference_check(instance, one_site)
    assert rules(violations) == [5] and violations[0]["job"] == "I"
    two_sites = placed(("I", 2, ["a/node0/gpu0", "b/node0/gpu1"]))
    assert reference_check(instance, two_sites) == []
    # no units: spread does not apply
    assert reference_check(instance, {"jobs": []}) == []


def lease_instance(offer):
    instance = base_instance(
        [("a", 2, 2), ("b", 2, 1)], wan=[("a", "b", 100, 10, 0)], levels=("site", "node")
    )
    instance["topology"]["sites"][1]["gpu_type"] = "B200"
    instance["gpu_types"]["B200"] = {"power_kW": 1.0}
    instance["leases"] = {"level": "node", "offers": [offer]}
    return instance


def test_lease_block_of_a_wrong_gpu_type_breaks_rule_6():
    instance = lease_instance({"name": "L", "price_per_gpu_hour": 2, "gpu_types": ["H100"]})
    good = {"jobs": [], "leases": [{"offer": "L", "blocks": ["a/node0"], "gpus": 2}]}
    assert reference_check(instance, good) == []
    score = reference_score(instance, good)
    # revenue = horizon * price * leased GPUs = 10 * 2 * 2
    assert score["offers"] == [{"offer": "L", "accepted": True, "gpus": 2, "revenue": 40.0}]
    bad = {"jobs": [], "leases": [{"offer": "L", "blocks": ["b/node0"]}]}
    violations = reference_check(instance, bad)
    assert rules(violations) == [6] and violations[0]["offer"] == "L"


def test_lease_rules_levels_sizes_commitments_and_job_gpus():
    offer = {
        "name": "L",
        "price_per_gpu_hour": 1,
        "min_gpus": 3,
        "max_gpus": 4,
        "single_site": True,
        "committed_blocks": ["a/node1"],
    }
    instance = lease_instance(offer)
    instance["jobs"] = [{"name": "J", "kind": "inference", "replicas": 1, "value": 1}]
    ok = {
        "jobs": [{"name": "J", "units": 1, "gpus": ["b/node0/gpu0"]}],
        "leases": [{"offer": "L", "blocks": ["a/node0", "a/node1"]}],
    }
    assert reference_check(instance, ok) == []
    # not accepted although committed
    assert rules(reference_check(instance, {"jobs": []})) == [6]
    # too few GPUs (2 < 3) and the committed block missing
    small = {"jobs": [], "leases": [{"offer": "L", "blocks": ["a/node0"]}]}
    assert len(reference_check(instance, small)) == 2
    # a block at the wrong level, blocks in two sites, a block holding a job GPU
    wrong = {
        "jobs": [{"name": "J", "units": 1, "gpus": ["a/node1/gpu0"]}],
        "leases": [{"offer": "L", "blocks": ["a", "a/node1", "b/node0"]}],
    }
    whats = " | ".join(v["what"] for v in reference_check(instance, wrong))
    assert "not a domain of level node" in whats
    assert "single_site" in whats
    assert "holds job GPU" in whats
    assert "overlaps" in whats  # site a contains a/node1


def test_power_cap_exceeded_breaks_rule_7_counting_only_available_leased_gpus():
    job = {"name": "I", "kind": "inference", "replicas": 2, "value": 1}
    instance = base_instance([("a", 2, 2)], jobs=[job])
    instance["topology"]["unavailable"] = ["a/node1/gpu1"]
    instance["leases"] = {"level": "node", "offers": [{"name": "L", "price_per_gpu_hour": 1}]}
    instance["topology"]["sites"][0]["power_cap_kW"] = 3
    placement = {
        "jobs": [{"name": "I", "units": 2, "gpus": ["a/node0/gpu0", "a/node0/gpu1"]}],
        "leases": [{"offer": "L", "blocks": ["a/node1"]}],
    }
    # 2 job GPUs + 1 available leased GPU = 3 x 1.0 kW <= 3
    assert reference_check(instance, placement) == []
    assert reference_score(instance, placement)["totals"]["gpus_leased"] == 1
    instance["topology"]["sites"][0]["power_cap_kW"] = 2.5
    violations = reference_check(instance, placement)
    assert rules(violations) == [7] and violations[0]["site"] == "a"


def test_unknown_and_duplicate_job_entries_are_violations():
    instance = base_instance([("a", 1, 1)], jobs=[running_job(current=[])])
    placement = {
        "jobs": [
            {"name": "R", "units": 0, "gpus": []},
            {"name": "R", "units": 0, "gpus": []},
            {"name": "ghost", "units": 0, "gpus": []},
        ]
    }
    violations = reference_check(instance, placement)
    assert {v["job"] for v in violations} == {"R", "ghost"}


# --------------------------------------------------------------------------------------
# the strategies
# --------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(instance_and_placement())
def test_random_cases_are_scored_and_checked_without_errors(case):
    instance, placement = case
    json.dumps(case)  # JSON-serialisable
    before = copy.deepcopy(case)
    score = reference_score(instance, placement)
    reference_check(instance, placement)
    assert case == before  # the oracle does not mutate its inputs
    assert [row["name"] for row in score["jobs"]] == [j["name"] for j in instance["jobs"]]
    totals = score["totals"]
    assert close(
        totals["objective"],
        totals["job_value"] + totals["lease_revenue"] - totals["migration_cost"],
    )
    for row in score["jobs"]:
        if row["units"] == 0:
            assert row["efficiency"] is None and row["value"] == 0.0
        else:
            assert 0.0 < row["efficiency"] <= 1.0
            assert 0.0 <= row["goodput"] <= row["efficiency"]


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(feasible_case())
def test_feasible_cases_pass_every_rule(case):
    instance, placement = case
    json.dumps(case)
    assert reference_check(instance, placement) == []
    reference_score(instance, placement)
