"""`Cluster.restore` never raises for a state the cluster reached and never leaves one that
breaks a rule: restored GPUs inside leased blocks are powered and count toward the offer's
max_gpus (SPEC rule 7, 1.3: only available GPUs are paid for and powered), so when bringing
all of them back would put a site over its power cap or an offer over its max_gpus, offers
first give back the blocks they took to cover a failure (where they stay at their
min_gpus), and the restored GPUs that still do not fit stay unavailable: the Change says
which and why (``reason``, and the lease actions' reasons), and a later restore brings them
back once they fit.

Found by a random example of tests/test_cluster_adopt.py: a hall unavailable in the
instance, leased with 0 GPUs, restored under a power cap the running jobs nearly filled.
"""

from __future__ import annotations

import copy
import json

from builders import one_site, training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer import Cluster

if __package__:
    from .reference import reference_check
    from .strategies import as_arrivals, feasible_case, hardware_items
else:
    from reference import reference_check
    from strategies import as_arrivals, feasible_case, hardware_items


def assert_valid(c: Cluster) -> None:
    """The snapshot passes both checkers, and a resumed twin is the same cluster."""
    inst_d, pl_d = c.snapshot()
    assert reference_check(copy.deepcopy(inst_d), copy.deepcopy(pl_d)) == []
    assert c.check() == []
    r = Cluster.resume(c.instance, json.loads(json.dumps(c.state())), verify="full")
    assert json.dumps(r.snapshot(), sort_keys=True) == json.dumps(c.snapshot(), sort_keys=True)


def leased_hall_cluster() -> Cluster:
    """The minimal reproduction: one site capped at 6 kW (0.5 kW a GPU: 12 GPUs), two
    halls of one 8-GPU node; hall0 is unavailable in the instance and leased whole by an
    offer (0 GPUs delivered); jobs use 7 GPUs of hall1 (3.5 kW)."""
    d = {
        "name": "restore-power",
        "gpu_types": {"B200": {"power_kW": 0.5}},
        "topology": {
            "levels": ["site", "hall", "node"],
            "fabric": {
                lvl: {"latency_us": 1, "bandwidth_GBps": 12.5} for lvl in ("site", "hall", "node")
            },
            "sites": [
                {
                    "name": "a",
                    "gpu_type": "B200",
                    "gpus_per_node": 8,
                    "domains": [{"count": 2, "shape": [1]}],
                    "power_cap_kW": 6.0,
                }
            ],
            "unavailable": ["a/hall0"],
        },
        "jobs": [training("j", 7)],
        "leases": {
            "offers": [{"name": "o", "price_per_gpu_hour": 0.5, "level": "hall", "sites": ["a"]}]
        },
    }
    pl = {
        "instance": "restore-power",
        "jobs": [{"name": "j", "units": 7, "gpus": [f"a/hall1/node0/gpu{g}" for g in range(7)]}],
        "leases": [{"offer": "o", "blocks": ["a/hall0"]}],
    }
    return Cluster(placer.load_instance(d), pl, verify="full")


def test_restoring_a_leased_hall_brings_back_what_the_power_cap_allows_and_keeps_the_rest():
    c = leased_hall_cluster()
    ch = c.restore(["a/hall0"])  # all 8: 3.5 + 4 kW over the 6 kW cap (a SolverError before)
    (act,) = ch.actions
    assert act.kind == "lease" and act.offer == "o" and act.blocks == ["a/hall0"]
    assert "power cap" in act.reason
    assert c.snapshot()[1]["leases"] == [{"offer": "o", "blocks": ["a/hall0"], "gpus": 5}]
    assert c.failed == [] and c.available_gpus == 8 + 5  # the 3 kept out stay unavailable
    assert "power cap" in ch.reason and "a/hall0/node0/gpu7" in ch.reason
    assert ch.delta > 0  # 5 GPUs' lease revenue
    assert_valid(c)
    # the rest stays out until the power is there: the same answer again, nothing changes
    before = c.snapshot()
    again = c.restore(["a/hall0"])
    assert again.actions == [] and "power cap" in again.reason and c.snapshot() == before
    c.release("j")  # 3.5 kW free: the 3 GPUs kept out come back
    ch = c.restore(["a/hall0"])
    assert ch.reason is None and c.available_gpus == 16
    assert c.snapshot()[1]["leases"][0]["gpus"] == 8
    assert_valid(c)


def test_restoring_failed_leased_hardware_under_a_power_cap_the_jobs_filled_meanwhile():
    """A state reached by fail and submit alone: the leased node failed, jobs took its power,
    the node comes back: it stays failed (the lease keeps 0 GPUs) and the Change says why."""
    d = one_site(nodes=4, gpus_per_node=2, power_cap_kW=6)
    d["leases"] = {"level": "node", "offers": [{"name": "o", "price_per_gpu_hour": 1.0}]}
    pl = {"instance": "one-site", "jobs": [], "leases": [{"offer": "o", "blocks": ["a/node3"]}]}
    c = Cluster(placer.load_instance(d), pl, verify="full")
    c.submit(training("x", 4))  # 4 + 2 leased = 6 kW
    c.fail(["a/node3"])  # the lease delivers 0 GPUs: 4 kW
    assert c.submit(training("y", 2)).placed  # 6 kW again
    ch = c.restore(["a/node3"])
    assert ch.actions == [] and "a/node3" in ch.reason and "power cap" in ch.reason
    assert c.failed == ["a/node3"]
    assert_valid(c)
    c.release("y")
    ch = c.restore(["a/node3"])
    assert [a.kind for a in ch.actions] == ["lease"] and c.failed == [] and ch.reason is None
    assert_valid(c)


def test_an_offer_gives_back_its_cover_block_before_restored_gpus_stay_out_for_power():
    d = one_site(nodes=4, gpus_per_node=2, power_cap_kW=6)
    d["leases"] = {
        "level": "node",
        "offers": [{"name": "o", "price_per_gpu_hour": 1.0, "min_gpus": 2}],
    }
    pl = {"instance": "one-site", "jobs": [], "leases": [{"offer": "o", "blocks": ["a/node3"]}]}
    c = Cluster(placer.load_instance(d), pl, verify="full")
    c.submit(training("x", 2))  # 2 + 2 leased = 4 kW
    c.fail(["a/node3"])  # the offer covers its min_gpus with another node: 4 kW
    cover = "a/node1"
    assert c.lease_cover == {"o": [cover]}
    assert c.submit(training("y", 2)).placed  # 6 kW
    ch = c.restore(["a/node3"])  # node3 back: 8 kW with the cover, 6 kW without
    assert ch.reason is None and c.failed == [] and c.lease_cover == {}
    (act,) = ch.actions
    assert act.blocks == ["a/node3"] and cover in act.reason
    assert_valid(c)


def test_restored_gpus_beyond_an_offers_max_gpus_stay_out_instead_of_an_error():
    d = one_site(nodes=2, gpus_per_node=4)
    d["topology"]["unavailable"] = ["a/node1/gpu2", "a/node1/gpu3"]
    d["leases"] = {
        "level": "node",
        "offers": [{"name": "o", "price_per_gpu_hour": 1.0, "max_gpus": 3}],
    }
    pl = {"instance": "one-site", "jobs": [], "leases": [{"offer": "o", "blocks": ["a/node1"]}]}
    c = Cluster(placer.load_instance(d), pl, verify="full")
    ch = c.restore(["a/node1"])  # 4 leased GPUs, over max_gpus 3 (a UsageError before)
    assert "max_gpus 3" in ch.reason and "a/node1/gpu3" in ch.reason
    assert c.snapshot()[1]["leases"][0]["gpus"] == 3
    assert_valid(c)
    ch = c.restore(["a/node0"])  # never failed: nothing changes, the Change says so
    assert ch.actions == [] and ch.reason == "items: none of them is failed: nothing changed"


HYP = dict(
    deadline=None,
    derandomize=True,  # CI runs the same examples every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(max_examples=30, **HYP)
@given(case=feasible_case(), data=st.data())
def test_any_fail_and_restore_sequence_answers_with_data_and_keeps_every_rule(case, data):
    """Restores of any hardware (failed meanwhile, or unavailable in the instance), between
    fails, submits and releases: no error (none of it failed: nothing changes), the checker passes
    after each, and a resumed twin is the same cluster."""
    run_operations(case, data)


@st.composite
def leased_case(draw) -> tuple[dict, dict]:
    """A small cluster where restores meet leases and power caps (the random instances of
    `feasible_case` lease in one example of twenty): 1-2 sites of 2-5 nodes of 1-4 GPUs
    (1 kW each), unavailable GPUs and nodes, 1-2 node-level offers leasing 1-2 nodes each
    (min_gpus and max_gpus around what they deliver), a power cap a few GPUs above what
    the leases draw (or none); no job runs yet."""
    n_sites = draw(st.integers(1, 2))
    nodes, gpn = draw(st.integers(2, 5)), draw(st.sampled_from([1, 2, 4]))
    names = ["a", "b"][:n_sites]
    node_ids = [f"{s}/node{n}" for s in names for n in range(nodes)]
    gpus = [f"{n}/gpu{g}" for n in node_ids for g in range(gpn)]
    unavailable = draw(st.lists(st.sampled_from(gpus + node_ids), max_size=4, unique=True))
    down = {g for g in gpus if g in unavailable or g.rsplit("/", 1)[0] in unavailable}
    offers, leases, draws = [], [], dict.fromkeys(names, 0)
    free = list(node_ids)
    for k in range(draw(st.integers(1, 2))):
        offer = {"name": f"o{k}", "price_per_gpu_hour": draw(st.sampled_from([0.5, 1.0, 2.0]))}
        blocks = draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True))
        free = [n for n in free if n not in blocks]
        up = [g for b in blocks for g in gpus if g.startswith(b + "/") and g not in down]
        offer["min_gpus"] = draw(st.integers(0, min(len(up), 2)))
        if draw(st.booleans()):
            offer["max_gpus"] = len(up) + draw(st.integers(0, 2))
        offers.append(offer)
        leases.append({"offer": offer["name"], "blocks": blocks})
        for g in up:
            draws[g.split("/")[0]] += 1
        if len(free) < 1:
            break
    sites = []
    for name in names:
        site = {"name": name, "gpu_type": "H100", "gpus_per_node": gpn}
        site["domains"] = [{"count": nodes}]
        if draw(st.integers(0, 3)):  # mostly capped: 0-4 GPUs' worth above the leases
            site["power_cap_kW"] = float(max(1, draws[name] + draw(st.integers(0, 4))))
        sites.append(site)
    inst = {
        "name": "leased",
        "horizon_hours": 10,
        "gpu_types": {"H100": {"power_kW": 1.0}},
        "topology": {
            "levels": ["site", "node"],
            "fabric": {
                "node": {"latency_us": 2, "bandwidth_GBps": 400},
                "site": {"latency_us": 10, "bandwidth_GBps": 25},
            },
            "sites": sites,
            "wan": [{"between": names, "latency_us": 500, "bandwidth_GBps": 50}]
            if n_sites == 2
            else [],
            "unavailable": unavailable,
        },
        "jobs": [training(f"j{d}", d, min_dp=1) for d in (1, 2, 3)],
        "leases": {"level": "node", "offers": offers},
    }
    pl = {"instance": "leased", "jobs": [], "leases": leases}
    assert placer.check(placer.load_instance(copy.deepcopy(inst)), pl) == []
    return inst, pl


@settings(max_examples=80, **HYP)
@given(case=leased_case(), data=st.data())
def test_restores_under_leases_and_power_caps_answer_with_data_and_keep_every_rule(case, data):
    """The same, where it matters: leased nodes fail, jobs take the power they leave (and
    the cover blocks' power), the nodes and the instance's unavailable GPUs come back."""
    run_operations(case, data)


def run_operations(case: tuple[dict, dict], data) -> None:
    """Random fails, restores, submits and releases on the case's cluster (see the two
    properties above)."""
    inst_d, pl_d = case
    inst = placer.load_instance(copy.deepcopy(inst_d))
    c = Cluster(inst, pl_d, verify="full")
    arrivals = as_arrivals(inst_d)
    # leased blocks fail too: the jobs may take the power they leave, then they come back
    leased = [b for lease in pl_d.get("leases") or [] for b in lease["blocks"]]
    items = hardware_items(inst_d) + leased
    # what a restore names: what failed meanwhile, and what the instance has unavailable
    # (in a leased block: power and max_gpus it brings back that were never counted)
    back = list(inst_d["topology"].get("unavailable", []))
    if not items and not back:
        return
    ops = ["submit", "submit", "release", "fail", "restore", "restore"]
    for step in range(data.draw(st.integers(1, 10))):
        kind = data.draw(st.sampled_from(ops))
        if kind == "submit" and arrivals:
            job = copy.deepcopy(data.draw(st.sampled_from(arrivals)))
            job["name"] = f"{job['name']}-{step}"
            c.submit(job, allow_moves=data.draw(st.integers(0, 2)))
        elif kind == "release" and c.jobs:
            c.release(data.draw(st.sampled_from(sorted(c.jobs))))
        elif kind == "fail" and items:
            it = data.draw(st.sampled_from(items))
            c.fail([it])
            back.append(it)
        elif kind == "restore" and back:
            it = back.pop(data.draw(st.integers(0, len(back) - 1)))
            c.restore([it])  # none of it failed: a no-op; any error is the bug this test is for
        assert c.check() == []
    assert_valid(c)


def test_an_offer_that_gave_back_its_cover_keeps_the_restored_gpus_its_min_gpus_needs():
    """Two offers regain a node each under a cap the jobs filled: the cheap one gives back
    its cover block and needs its node for its min_gpus, so the dear one's GPUs stay out."""
    d = one_site(nodes=6, gpus_per_node=2, power_cap_kW=8)
    d["leases"] = {
        "level": "node",
        "offers": [
            {"name": "cheap", "price_per_gpu_hour": 0.5, "min_gpus": 2},
            {"name": "dear", "price_per_gpu_hour": 2.0},
        ],
    }
    pl = {
        "instance": "one-site",
        "jobs": [],
        "leases": [
            {"offer": "cheap", "blocks": ["a/node5"]},
            {"offer": "dear", "blocks": ["a/node4"]},
        ],
    }
    c = Cluster(placer.load_instance(d), pl, verify="full")
    c.submit(training("x", 2))  # 2 + 4 leased = 6 kW
    c.fail(["a/node5", "a/node4"])  # 'cheap' covers its min_gpus with another node: 4 kW
    (cover,) = c.lease_cover["cheap"]
    assert c.submit(training("y", 2)).placed and c.submit(training("z", 2)).placed  # 8 kW
    ch = c.restore(["a/node5", "a/node4"])  # 12 kW; 10 without the cover
    assert c.lease_cover == {} and c.failed == ["a/node4"]
    assert "a/node4 (site 'a' would go over its power cap 8 kW)" in ch.reason
    got = {a.offer: a for a in ch.actions}
    assert got["cheap"].blocks == ["a/node5"] and cover in got["cheap"].reason
    assert "dear" not in got  # it delivered 0 GPUs before and still does
    assert c.snapshot()[1]["leases"] == [
        {"offer": "cheap", "blocks": ["a/node5"], "gpus": 2},
        {"offer": "dear", "blocks": ["a/node4"], "gpus": 0},
    ]
    assert_valid(c)
