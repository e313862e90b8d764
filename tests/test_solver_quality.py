"""Issue 8 items 5 and 8: a solve never returns less than its own greedy, reasons are true,
and the coarse bound does not promise what no placement can have (invalid stays, leases of
blocks that hold running jobs, whole nodes taken by leases)."""

from __future__ import annotations

import json
from pathlib import Path

import builders
import pytest
from hypothesis import HealthCheck, given, settings
from strategies import instances

import placer
from placer.generators import generate
from placer.solvers import names
from placer.solvers.decomposition import coarse as coarse_mod
from placer.validate import instance_from_dict

DATA = Path(__file__).resolve().parent / "data" / "solver-regressions"
EXACT = names(exact=True)


@pytest.mark.parametrize("case", sorted(p.stem for p in DATA.glob("*.json")))
@pytest.mark.parametrize("backend", EXACT)
def test_the_exact_backends_beat_greedy_and_firstfit_on_past_regressions(case, backend):
    inst = instance_from_dict(json.loads((DATA / f"{case}.json").read_text()))
    res = placer.solve(inst, solver=backend, time_limit=10)
    g = placer.solve(inst, solver="greedy", time_limit=10)
    assert res.objective >= g.objective - 1e-9 * max(1.0, abs(g.objective))
    # first-fit: within 0.01% (on small-3 it orders ranks slightly better: 5,240.03 vs
    # 5,239.98; once it was ahead by whole jobs)
    f = placer.solve(inst, solver="firstfit", time_limit=10)
    assert res.objective >= f.objective * (1 - 1e-4)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(instances())
def test_cpsat_is_never_below_its_own_greedy(d):
    try:
        inst = instance_from_dict(d)
    except placer.InstanceError:
        return
    g = placer.solve(inst, solver="greedy", time_limit=5)
    c = placer.solve(inst, solver="cpsat", time_limit=5)
    if g.objective is not None:
        assert c.objective is not None
        assert c.objective >= g.objective - 1e-6 * max(1.0, abs(g.objective))


# small generated instances (the families at a few dozen to 1,024 GPUs), seeded; on main
# before issue 8 item 5's second round, nvl72 seed 1 and superpod seed 15 were below first-fit
SMALL_FAMILIES = [
    ("nvl72", dict(halls=1, sus_per_hall=1, racks_per_su=1, trays_per_rack=8, n_jobs=5), range(4)),
    ("superpod", dict(sus=2, racks_per_su=2, nodes_per_rack=4, n_jobs=8), range(12, 18)),
    ("superpod", dict(sus=1, racks_per_su=2, nodes_per_rack=4, n_jobs=6), range(2)),
    ("multicampus", dict(sites=2, gpus_per_site=32, pods_per_hall=1, n_jobs=5), range(2)),
]


@pytest.mark.parametrize(
    "family,params,seed",
    [(f, p, s) for f, p, seeds in SMALL_FAMILIES for s in seeds],
    ids=lambda v: v if isinstance(v, (str, int)) else "",
)
def test_the_exact_backends_beat_greedy_and_firstfit_on_seeded_small_instances(
    family, params, seed
):
    inst = instance_from_dict(generate(family, seed=seed, **params))
    g = placer.solve(inst, solver="greedy", time_limit=5).objective
    f = placer.solve(inst, solver="firstfit", time_limit=5).objective
    for backend in EXACT:
        res = placer.solve(inst, solver=backend, time_limit=5, seed=0)
        assert res.objective >= g - 1e-9 * max(1.0, abs(g)), backend
        assert res.objective >= f * (1 - 1e-4), backend
        assert res.bound >= res.objective - 1e-6 * max(1.0, abs(res.objective))


def test_the_coarse_model_tells_apart_options_worth_less_than_one_vu():
    # room for one of two jobs worth about 2.5 and 3 vu: the coarse model's value variables
    # once counted whole vu and credited 1 vu to every option not chosen (bound 5.0 here)
    d = builders.one_site(
        nodes=1,
        gpus_per_node=1,
        jobs=[
            {**builders.training("poor", 1), "value": 0.25},
            {**builders.training("rich", 1), "value": 0.3},
        ],
    )
    inst = instance_from_dict(d)
    for backend in EXACT:
        res = placer.solve(inst, solver=backend, time_limit=5, exact_small=False)
        placed = {j.name: j.units for j in res.placement.jobs}
        assert placed == {"poor": 0, "rich": 1}
        assert res.objective <= res.bound <= res.objective * (1 + 1e-3)


def test_a_reason_never_blames_others_when_nothing_else_is_placed():
    # one job, too big for the cluster's nodes: nothing is placed or leased
    d = builders.one_site(nodes=2, gpus_per_node=2, jobs=[builders.training("big", 1, tp=4)])
    inst = instance_from_dict(d)
    for backend in names(peer=False):
        res = placer.solve(inst, solver=backend, time_limit=5)
        why = res.placement.jobs[0].reason
        assert why and "worth more" not in why
        assert "needs 4" in why


def test_a_job_that_lost_its_gpus_to_another_is_told_who_holds_them():
    d = builders.one_site(
        nodes=1,
        gpus_per_node=4,
        jobs=[
            {**builders.training("rich", 1, tp=4), "value": 10},
            builders.training("poor", 1, tp=4),
        ],
    )
    res = placer.solve(instance_from_dict(d), solver="cpsat", time_limit=5)
    poor = next(j for j in res.placement.jobs if j.name == "poor")
    assert poor.units == 0 and "'rich'" in poor.reason


def test_a_running_job_whose_current_breaks_its_spread_has_no_stay_option():
    job = {
        "name": "serve",
        "kind": "inference",
        "replicas": 2,
        "value": 1,
        "spread": {"level": "node", "min": 2},
        "current": ["a/node0/gpu0", "a/node0/gpu1"],
    }
    inst = instance_from_dict(builders.one_site(nodes=2, gpus_per_node=2, jobs=[job]))
    co = coarse_mod.build(inst)
    assert not [op for op in co.options if op.kind == "stay"]
    job["spread"]["min"] = 1
    inst = instance_from_dict(builders.one_site(nodes=2, gpus_per_node=2, jobs=[job]))
    assert [op for op in coarse_mod.build(inst).options if op.kind == "stay"]


def test_the_coarse_bound_does_not_lease_the_block_a_staying_job_holds():
    # hall0 (2 GPUs) holds a running job that stays (moving costs too much); the offer fits
    # only hall0 (max 2 GPUs): the bound must not count the stay and that lease together
    d = {
        "name": "stay-lease",
        "horizon_hours": 10,
        "topology": {
            "levels": ["site", "hall", "node"],
            "fabric": {
                "node": {"latency_us": 2, "bandwidth_GBps": 400},
                "hall": {"latency_us": 5, "bandwidth_GBps": 50},
                "site": {"latency_us": 10, "bandwidth_GBps": 25},
            },
            "sites": [
                {
                    "name": "a",
                    "gpu_type": "H100",
                    "domains": [
                        {"name": "hall0", "gpus_per_node": 2, "shape": [1]},
                        {"name": "hall1", "gpus_per_node": 4, "shape": [1]},
                    ],
                }
            ],
        },
        "jobs": [
            {
                **builders.training("run", 1, tp=2),
                "value": 5,
                "current": ["a/hall0/node0/gpu0", "a/hall0/node0/gpu1"],
                "migration_cost": 1e6,
            }
        ],
        "leases": {
            "level": "hall",
            "offers": [{"name": "o", "price_per_gpu_hour": 10, "max_gpus": 2}],
        },
    }
    inst = instance_from_dict(d)
    res = placer.solve(inst, solver="cpsat", time_limit=5, exact_small=False)
    assert res.placement.leases == []
    # without the row the bound was the stay (100) plus the lease (200)
    assert res.bound < res.objective + 10
