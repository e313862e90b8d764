"""Conformance of every solver backend on tiny instances whose optimum this test proves by
brute force (every ordered GPU choice of every job, every set of lease blocks).

Every backend's placement passes the checker (finalize raises otherwise) and carries the
kernel's score; exact backends hit the optimum; every reported bound is >= the optimum,
also the bound of the decomposition (exact_small disabled), which is what large instances
rely on.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from placer.check import check_compiled
from placer.kernel.compiled import Compiled
from placer.kernel.score import score_compiled
from placer.solvers import names
from placer.validate import instance_from_dict

EXACT = names(exact=True)  # every registered backend with a proven bound
BACKENDS = names(peer=False)  # placer's own backends: greedy and the exact ones


def fabric():
    return {
        "node": {"latency_us": 2, "bandwidth_GBps": 400},
        "rack": {"latency_us": 5, "bandwidth_GBps": 50},
        "site": {"latency_us": 10, "bandwidth_GBps": 25},
    }


def two_sites(wan_latency=500.0, wan_bw=100.0, gpn=2, racks=(1, 1), nodes=2, **site_kw):
    return {
        "levels": ["site", "rack", "node"],
        "fabric": fabric(),
        "sites": [
            {
                "name": "a",
                "gpu_type": "H100",
                "gpus_per_node": gpn,
                "node_failures_per_day": 0.01,
                "domains": [{"name": "rack", "count": racks[0], "shape": [nodes]}],
                **site_kw,
            },
            {
                "name": "b",
                "gpu_type": "H100",
                "gpus_per_node": gpn,
                "domains": [{"name": "rack", "count": racks[1], "shape": [nodes]}],
            },
        ],
        "wan": [
            {
                "between": ["a", "b"],
                "latency_us": wan_latency,
                "bandwidth_GBps": wan_bw,
                "failures_per_day": 0.1,
            }
        ],
    }


def two_types():
    """Site a: 2 one-GPU nodes of type F; site b: 2 of type G (SPEC v2 mixed jobs)."""
    t = two_sites(gpn=1)
    t["sites"][0]["gpu_type"] = "F"
    t["sites"][1]["gpu_type"] = "G"
    return t


def training(name, tp=1, pp=1, dp=2, min_dp=None, value=2.0, **kw):
    j = {
        "name": name,
        "kind": "training",
        "tp": tp,
        "pp": pp,
        "dp": dp,
        "comm": {"tp_MB": 50, "pp_MB": 20, "dp_MB": 400},
        "compute_ms": 500,
        "value": value,
        "restart_min": 10,
        "checkpoint_interval_min": 20,
    }
    if min_dp is not None:
        j["min_dp"] = min_dp
    j.update(kw)
    return j


def inference(name, tp=1, replicas=2, min_replicas=0, value=1.0, **kw):
    j = {
        "name": name,
        "kind": "inference",
        "tp": tp,
        "replicas": replicas,
        "min_replicas": min_replicas,
        "value": value,
        "comm": {"tp_MB": 5},
        "compute_ms": 20,
    }
    j.update(kw)
    return j


def _mixed_gpn():
    """Site a: two 1-GPU nodes; site b: one 2-GPU node (TP inside a node fits only in b)."""
    t = two_sites(gpn=1)
    t["sites"][1].update(gpus_per_node=2, domains=[{"name": "rack", "count": 1, "shape": [1]}])
    return t


def inst_dict(name, topology, jobs, offers=None, **kw):
    d = {"name": name, "horizon_hours": 10, "topology": topology, "jobs": jobs, **kw}
    if offers:
        d["leases"] = {"offers": offers}
    return d


CASES = {
    "one-job-two-sites": inst_dict(
        "c1", two_sites(), [training("t", dp=4, min_dp=2, scope={"dp": "cluster"})]
    ),
    "job-and-inference-share-wan": inst_dict(
        "c2",
        two_sites(),
        [
            training("t", dp=4, min_dp=2, scope={"dp": "cluster"}, cross_site_every=4),
            inference("i", tp=2, replicas=2, scope={"tp": "cluster"}),
        ],
    ),
    "tp-pp-units-in-racks": inst_dict(
        "c3",
        two_sites(racks=(2, 1), nodes=1, gpn=2),
        [training("t", tp=2, pp=2, dp=1), inference("i", replicas=2, value=0.5)],
    ),
    "lease-vs-job-cheap-offer": inst_dict(
        "c4",
        two_sites(),
        [training("t", dp=4, min_dp=2)],
        offers=[{"name": "L", "price_per_gpu_hour": 0.5, "level": "site"}],
    ),
    "lease-vs-job-rich-offer": inst_dict(
        "c5",
        two_sites(),
        [training("t", dp=4, min_dp=2)],
        offers=[{"name": "L", "price_per_gpu_hour": 5.0, "level": "site", "min_gpus": 4}],
    ),
    "power-cap-binds": inst_dict(
        "c6",
        two_sites(power_cap_kW=2.5),
        [training("t", dp=4, min_dp=1, value=3.0), inference("i", replicas=4, value=1.0)],
        gpu_types={"H100": {"power_kW": 1.0}},
    ),
    "pinned-and-nonpreemptible": inst_dict(
        "c7",
        two_sites(),
        [
            training("p", dp=1, current=["a/rack0/node0/gpu0"], pinned=True),
            training(
                "r",
                dp=2,
                current=["a/rack0/node1/gpu0", "b/rack0/node0/gpu0"],
                preemptible=False,
                migration_cost=5.0,
                scope={"dp": "cluster"},
            ),
            inference("i", replicas=3, value=4.0),
        ],
    ),
    "spread-over-sites": inst_dict(
        "c8",
        two_sites(),
        [
            inference(
                "i", replicas=3, min_replicas=2, value=2.0, spread={"level": "site", "min": 2}
            ),
            training("t", dp=2, value=1.5),
        ],
    ),
    # SPEC v2: a job whose units must span two GPU types to reach its size, next to a job
    # that wants only the fast type (slowest and balanced speed rules)
    "mix-slowest-spans-types": inst_dict(
        "v2a",
        two_types(),
        [
            training("m", dp=3, min_dp=2, mix_types="slowest", scope={"dp": "cluster"}),
            inference("i", replicas=1, value=3.0, gpu_types=["G"]),
        ],
        gpu_types={"F": {"speed": 1.0}, "G": {"speed": 2.5}},
    ),
    "mix-balanced-spans-types": inst_dict(
        "v2b",
        two_types(),
        [
            training("m", dp=3, min_dp=2, mix_types="balanced", scope={"dp": "cluster"}),
            inference("i", replicas=1, value=3.0, gpu_types=["G"]),
        ],
        gpu_types={"F": {"speed": 1.0}, "G": {"speed": 2.5}},
    ),
    # SPEC v2 `force`: a cheap offer that must be taken, a rich one that must not be
    "force-accept-cheap-offer": inst_dict(
        "v2c",
        two_sites(),
        [training("t", dp=4, min_dp=2)],
        offers=[{"name": "L", "price_per_gpu_hour": 0.1, "level": "site", "force": "accept"}],
    ),
    "force-decline-rich-offer": inst_dict(
        "v2d",
        two_sites(),
        [training("t", dp=4, min_dp=2)],
        offers=[
            {"name": "L", "price_per_gpu_hour": 5.0, "level": "site", "force": "decline"},
            {"name": "M", "price_per_gpu_hour": 0.2, "level": "rack", "min_gpus": 4},
        ],
    ),
    # SPEC v3 plans: TP inside a node (one fits only on site b's 2-GPU nodes) against data
    # parallelism over the WAN against a pipeline with a bubble; the solver picks the plan
    "plans-choose-the-shape": inst_dict(
        "v3a",
        _mixed_gpn(),
        [
            {
                **training("t", value=2.0),
                "plans": [
                    {
                        "name": "dp-wan",
                        "dp": 3,
                        "min_dp": 2,
                        "scope": {"dp": "cluster"},
                        "comm": {"dp_MB": 20000},
                    },
                    {"name": "tp2", "tp": 2, "dp": 1},
                    {"name": "pp2", "pp": 2, "dp": 1, "microbatches": 4, "value": 2.2},
                ],
            },
            inference("i", replicas=2, min_replicas=0, value=1.2),
        ],
    ),
    # a running job pays its migration cost to change plan (here on the same GPUs) when the
    # new plan is worth it
    "plans-running-job-switches": inst_dict(
        "v3b",
        two_sites(gpn=1, wan_bw=10.0, nodes=1),
        [
            {
                **training("t", dp=2, scope={"dp": "cluster"}, value=2.0),
                "comm": {"dp_MB": 20000},
                "current": ["a/rack0/node0/gpu0", "b/rack0/node0/gpu0"],
                "current_plan": "sync",
                "migration_cost": 3.0,
                "plans": [
                    {"name": "sync"},
                    {"name": "single", "dp": 1, "value": 1.8},
                    {"name": "diloco", "cross_site_every": 8, "value": 1.6},
                ],
            },
            inference("i", replicas=1, min_replicas=0, value=0.1),
        ],
    ),
    # a running job that is not preemptible must stay placed under one of its plans
    "plans-must-stay-placed": inst_dict(
        "v3c",
        two_sites(gpn=1),
        [
            {
                **training("t", value=0.5),
                "current": ["a/rack0/node0/gpu0", "a/rack0/node1/gpu0"],
                "current_plan": "two",
                "preemptible": False,
                "migration_cost": 1.0,
                "plans": [{"name": "two", "dp": 2}, {"name": "one", "dp": 1}],
            },
            inference("i", replicas=4, min_replicas=3, value=1.5),
        ],
    ),
    # a plan whose TP groups need whole nodes against one of the same units at a lower value
    # that needs none: every free GPU lies in a free node, so the GPU rows imply the
    # whole-node rows and the coarse model may drop the slower plan's options (plans._implies,
    # on mid-sized models; forced on in test_the_coarse_model_in_two_branches_...)
    "plans-whole-nodes-implied": inst_dict(
        "v3d",
        two_sites(gpn=2, nodes=1),
        [
            {
                **training("t", dp=2, min_dp=1, value=2.0),
                "plans": [
                    {"name": "tp2", "tp": 2, "dp": 2, "min_dp": 1},
                    {"name": "pp2", "pp": 2, "dp": 2, "min_dp": 1, "microbatches": 4},
                ],
            },
            inference("i", replicas=1, min_replicas=0, value=0.3),
        ],
    ),
    # a sub-site spread next to a site lease, with an unavailable domain in the site: the
    # coarse model's spread/lease coupling must count only usable domains
    "spread-and-site-lease-with-unavailable": inst_dict(
        "c9",
        {**two_sites(gpn=1, racks=(3, 2), nodes=1), "unavailable": ["a/rack2"]},
        [inference("i", replicas=2, min_replicas=2, value=2.0, spread={"level": "rack", "min": 2})],
        offers=[
            {"name": "L", "price_per_gpu_hour": 1.0, "level": "site", "min_gpus": 1, "sites": ["a"]}
        ],
    ),
}


def free_gpus(inst):
    ix = inst.index
    return [int(g) for g in np.flatnonzero(ix.available)]


def brute_force(inst) -> float:
    """Largest kernel objective over every feasible placement (ordered GPU choices of every
    job, every subset of every offer's candidate blocks)."""
    ix = inst.index
    gpus = free_gpus(inst)
    options = []  # per job: (plan, GPUs) choices (SPEC v3: under each of its plans)
    for job in inst.jobs:
        opts = [(job.default_plan, np.zeros(0, np.int64))]
        if job.pinned and job.current:
            opts = [(job.default_plan, ix.gpu_indices(job.current))]
        else:
            for k in range(len(job.plans)) if job.plans else [None]:
                shape = job.under(k)
                for units in range(max(shape.units_min, 1), shape.units_max + 1):
                    if units % shape.unit_step:
                        continue
                    n = units * shape.unit_size
                    for perm in itertools.permutations(gpus, n):
                        opts.append((k, np.array(perm, np.int64)))
        options.append(opts)
    lease_opts = []
    for offer in inst.offers:
        lvl = ix.level_index(inst.offer_level(offer))
        blocks = [(lvl, d) for d in range(ix.n_domains(lvl))]
        subsets = [[]]
        for k in range(1, len(blocks) + 1):
            subsets += [list(c) for c in itertools.combinations(blocks, k)]
        lease_opts.append(subsets)
    best = -np.inf
    for combo in itertools.product(*options):
        plans = [k for k, _ in combo]
        job_gpus = [g for _, g in combo]
        flat = np.concatenate(job_gpus) if combo else np.zeros(0, np.int64)
        if len(np.unique(flat)) != len(flat):
            continue
        jobs = [job.under(k) for job, k in zip(inst.jobs, plans)]
        for leases in itertools.product(*lease_opts) if lease_opts else [()]:
            cp = Compiled(
                job_gpus,
                list(leases),
                [len(g) // j.unit_size for g, j in zip(job_gpus, jobs)],
                job_plans=plans,
                declared_plans=[j.plan if len(g) else None for g, j in zip(job_gpus, jobs)],
            )
            if check_compiled(inst, cp):
                continue
            best = max(best, score_compiled(inst, job_gpus, cp.offer_blocks, plans).objective)
    return best


SLOW = {"job-and-inference-share-wan", "power-cap-binds"}  # brute force takes a minute+


@pytest.fixture(
    scope="module",
    params=[pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in sorted(CASES)],
)
def case(request):
    inst = instance_from_dict(copy.deepcopy(CASES[request.param]))
    return request.param, inst, brute_force(inst)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_returns_a_checked_placement_no_better_than_the_optimum(case, backend):
    import placer

    name, inst, opt = case
    res = placer.solve(inst, solver=backend, time_limit=30, seed=0)
    assert res.status in ("optimal", "feasible")
    assert placer.check(inst, res.placement) == []
    assert placer.score(inst, res.placement).objective == pytest.approx(res.objective, rel=1e-12)
    assert res.objective <= opt + 1e-6 * max(1, abs(opt))
    if res.bound is not None:
        assert res.bound >= opt - 1e-6 * max(1, abs(opt))


@pytest.mark.parametrize("backend", EXACT)
def test_exact_backends_hit_the_brute_force_optimum(case, backend):
    import placer

    name, inst, opt = case
    res = placer.solve(inst, solver=backend, time_limit=60, seed=0)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(opt, rel=1e-6)


@pytest.mark.parametrize("backend", EXACT)
def test_the_decomposition_bound_is_never_below_the_optimum(case, backend):
    import placer

    name, inst, opt = case
    res = placer.solve(inst, solver=backend, time_limit=30, seed=0, exact_small=False)
    assert res.bound is not None
    assert res.bound >= opt - 1e-6 * max(1, abs(opt))
    assert res.objective <= res.bound + 1e-9


PLAN_CASES = sorted(k for k in CASES if k.startswith("plans-"))


@pytest.mark.parametrize("name", PLAN_CASES)
@pytest.mark.parametrize("backend", EXACT)
def test_the_coarse_model_in_two_branches_keeps_a_valid_bound(name, backend, monkeypatch):
    """plans.solve_first_plans_first (held to first plans, then the other plans above that
    optimum) and the implied rows of plans.drop_dominated, which the decomposition uses on
    mid-sized coarse models, forced on here: the bound is never below the brute-force
    optimum and the placement never above it."""
    import placer
    from placer.solvers import plans as plans_mod

    monkeypatch.setattr(plans_mod, "BRANCH_MIN_VARS", 0)
    monkeypatch.setattr(plans_mod, "IMPLIED_MIN_VARS", 0)
    inst = instance_from_dict(copy.deepcopy(CASES[name]))
    opt = brute_force(inst)
    res = placer.solve(inst, solver=backend, time_limit=30, seed=0, exact_small=False)
    assert res.bound is not None
    assert res.bound >= opt - 1e-6 * max(1, abs(opt))
    assert res.objective <= opt + 1e-6 * max(1, abs(opt))


def test_the_lease_decision_flips_with_the_price():
    import placer

    cheap = placer.solve(
        instance_from_dict(copy.deepcopy(CASES["lease-vs-job-cheap-offer"])), solver="cpsat"
    )
    rich = placer.solve(
        instance_from_dict(copy.deepcopy(CASES["lease-vs-job-rich-offer"])), solver="cpsat"
    )
    # cheap offer: the job is worth more than leasing its site; rich: a whole site is leased
    assert sum(1 for j in cheap.placement.jobs if j.units) == 1
    assert rich.placement.leases and rich.placement.leases[0].blocks


def test_the_lease_decision_flips_with_wan_latency():
    """A job that needs both sites: over a fast WAN it runs; over a slow one leasing wins."""
    import placer

    def build(lat):
        return instance_from_dict(
            inst_dict(
                "flip",
                two_sites(wan_latency=lat),
                [
                    training(
                        "t",
                        dp=8,
                        min_dp=8,
                        value=1.0,
                        scope={"dp": "cluster"},
                        comm={"dp_MB": 400, "dp_messages": 50},
                    )
                ],
                offers=[{"name": "L", "price_per_gpu_hour": 0.45, "level": "site"}],
            )
        )

    fast = placer.solve(build(5.0), solver="cpsat")
    slow = placer.solve(build(20000.0), solver="cpsat")
    assert fast.placement.jobs[0].units == 8 and not fast.placement.leases
    assert slow.placement.jobs[0].units == 0 and slow.placement.leases


def test_pinned_and_non_preemptible_running_jobs_stay_placed():
    import placer

    inst = instance_from_dict(copy.deepcopy(CASES["pinned-and-nonpreemptible"]))
    for backend in BACKENDS:
        res = placer.solve(inst, solver=backend)
        got = {j.name: j for j in res.placement.jobs}
        assert got["p"].gpus == ["a/rack0/node0/gpu0"]
        assert got["r"].units >= 1


def test_offers_sharing_a_level_count_each_block_once_in_the_coarse_model():
    """Two offers that may both take the same site: the coarse model must see one block,
    not two (a double count made the bound loose and the plan unrealisable)."""
    from placer.solvers.decomposition.coarse import block_groups

    d = inst_dict(
        "two-offers",
        two_sites(),
        [training("t", dp=2)],
        offers=[
            {"name": "L1", "price_per_gpu_hour": 1.0, "level": "site", "sites": ["a"]},
            {"name": "L2", "price_per_gpu_hour": 1.1, "level": "site", "sites": ["a"]},
        ],
    )
    inst = instance_from_dict(d)
    groups, per_offer = block_groups(inst, inst.index.available.copy())
    for g in groups:
        assert len(g["members"]) == len(set(g["members"]))
    import placer

    res = placer.solve(inst, solver="cpsat", exact_small=False)
    leased = [lg for lg in res.placement.leases if lg.blocks]
    assert len(leased) <= 1
    assert res.gap is not None and res.gap < 0.02


@pytest.mark.parametrize("backend", EXACT)
def test_lp_rounding_for_huge_models_gives_checked_placements_and_valid_bounds(case, backend):
    """The path taken by thousands of jobs (LP relaxation bound + rounding), forced here."""
    import placer

    name, inst, opt = case
    res = placer.solve(inst, solver=backend, time_limit=30, exact_small=False, lp_rounding="always")
    assert res.status in ("optimal", "feasible")
    assert placer.check(inst, res.placement) == []
    assert res.bound is not None and res.bound >= opt - 1e-6 * max(1, abs(opt))


@pytest.mark.parametrize("lp", ["highs", "glop"])
def test_the_coarse_lp_bound_from_its_duals_is_never_below_the_optimum(case, lp):
    """The bound cpsat takes from the coarse model's LP relaxation (HiGHS past 20,000
    variables, GLOP below), by weak duality on the solver's duals (issue 16)."""
    from placer.solvers import plans as plans_mod
    from placer.solvers.cpsat import solve_lp_glop, solve_lp_highs
    from placer.solvers.decomposition import coarse as coarse_mod

    name, inst, opt = case
    if plans_mod.has_plans(inst):  # (SPEC v3: the model is the expanded instance's)
        inst, _ = plans_mod.expand(inst, first_only=False)
    co = coarse_mod.build(inst)
    sol = (solve_lp_highs if lp == "highs" else solve_lp_glop)(co.model, 30.0)
    assert sol.status == "optimal", sol.native
    assert sol.bound is not None and sol.bound >= opt - 1e-6 * max(1, abs(opt))
    assert sol.bound >= co.model.value(sol.values) - 1e-6 * max(1, abs(sol.bound))
