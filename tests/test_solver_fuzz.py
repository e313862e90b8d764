"""Solvers on many generated instances: never an invalid placement (finalize raises
SolverError on one), never a bound below the placement found, statuses from the vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

import placer
from placer.generators import generate
from placer.solvers import names
from placer.validate import instance_from_dict

try:
    from tests.strategies import instance_and_placement
except ImportError:  # run from inside tests/
    from strategies import instance_and_placement

SMALL = {
    "superpod": dict(sus=1, racks_per_su=2, nodes_per_rack=4, n_jobs=6),
    "multicampus": dict(sites=2, gpus_per_site=1024, pods_per_hall=1, n_jobs=8),
    "nvl72": dict(halls=1, sus_per_hall=1, racks_per_su=2, n_jobs=6),
    "hetero": dict(h100_gpus=512, h200_gpus=512, gb200_gpus=576, pods_per_hall=1, n_jobs=8),
    "frontier": dict(sites=2, gpus_per_site=2048, n_frontier=2, n_jobs=4),
    "scale": dict(gpus=2048, n_jobs=20),
}


@pytest.mark.parametrize("family", sorted(SMALL))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "backend, options",
    [
        *((name, {}) for name in names(peer=False)),
        # the path of thousands of jobs (LP bound + rounding), forced on small instances
        *((name, {"exact_small": False, "lp_rounding": "always"}) for name in names(exact=True)),
    ],
)
def test_solvers_return_checked_placements_on_generated_instances(family, seed, backend, options):
    inst = instance_from_dict(generate(family, seed=seed, **SMALL[family]))
    res = placer.solve(inst, solver=backend, time_limit=5, seed=seed, **options)
    assert res.status in ("optimal", "feasible", "infeasible", "no_solution")
    if res.objective is not None:
        assert placer.check(inst, res.placement) == []
        if res.bound is not None:
            assert res.bound >= res.objective - 1e-6 * max(1.0, abs(res.objective))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(instance_and_placement())
def test_solvers_never_return_an_invalid_placement_on_random_instances(case):
    inst_dict, _ = case
    try:
        inst = instance_from_dict(inst_dict)
    except placer.InstanceError:
        return  # e.g. a running non-preemptible job that fits nowhere: refused, fine
    for backend in ("greedy", "cpsat"):
        res = placer.solve(inst, solver=backend, time_limit=5)
        if res.objective is not None:
            assert placer.check(inst, res.placement) == []
