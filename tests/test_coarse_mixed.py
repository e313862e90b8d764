"""The coarse model's SPEC v2 mixed-type options: interruption brackets, a bound that no
feasible placement beats (random instances with mixed jobs), and the re-priced second
plan."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer.solvers.decomposition import coarse
from placer.solvers.decomposition.construct import State
from placer.solvers.decomposition.pipeline import reprice_mixed
from placer.validate import instance_from_dict

try:
    from .strategies import feasible_case
except ImportError:  # run from inside tests/
    from strategies import feasible_case

HYP = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@given(
    lo=st.floats(0.0, 0.99),
    width=st.floats(0.0, 1.0),
    ratio=st.sampled_from([1.04, 1.25, 2.0]),
)
def test_lost_brackets_cover_the_range_within_the_ratio(lo, width, ratio):
    hi = min(1.0, lo + width)
    br = coarse._lost_brackets(lo, hi, ratio)
    # a wide range gets a larger ratio, so that the brackets stay at most _MAX_BRACKETS
    top = min(hi, coarse._TOP_LOSS)
    if top > lo:
        ratio = max(ratio, ((1 - lo) / (1 - top)) ** (1 / coarse._MAX_BRACKETS))
    assert br and br[0][0] == lo and br[-1][1] is None and br[-1][0] <= max(lo, coarse._TOP_LOSS)
    for (a, b), (c, _) in zip(br, br[1:]):
        assert b == c  # contiguous
        assert (1 - a) / (1 - b) <= ratio * (1 + 1e-9)
    assert all(a < 1.0 for a, _ in br) and len(br) <= coarse._MAX_BRACKETS + 1


def _mixed(inst_d: dict) -> bool:
    return any(j.get("mix_types") for j in inst_d["jobs"])


@settings(max_examples=30, **HYP)
@given(case=feasible_case(plans=False))
def test_the_coarse_bound_is_never_below_a_feasible_placement(case):
    # the decomposition's bound (exhaustive model off) against a random feasible placement,
    # scored by the kernel; the strategy draws mixed-type jobs and mixed placements too
    inst_d, pl_d = case
    inst = instance_from_dict(copy.deepcopy(inst_d))
    value = placer.score(inst, pl_d).objective
    res = placer.solve(inst, solver="cpsat", time_limit=10, seed=0, exact_small=False)
    if res.bound is not None:
        assert res.bound >= value - 1e-6 * max(1.0, abs(value)), (res.bound, value)


def _frontier_instance() -> dict:
    """Two sites of two types each; one mixed job that the first plan oversizes."""
    sites = []
    for s in ("a", "b"):
        sites.append(
            {
                "name": s,
                "gpus_per_node": 8,
                "node_failures_per_day": 0.05,
                "domains": [
                    {"name": "h", "gpu_type": "H100", "shape": [4, 4]},
                    {"name": "g", "gpu_type": "GB200", "shape": [4, 4]},
                ],
            }
        )
    return {
        "name": "frontier-small",
        "horizon_hours": 100,
        "gpu_types": {"H100": {"speed": 1.0}, "GB200": {"speed": 2.5}},
        "topology": {
            "levels": ["site", "hall", "rack", "node"],
            "fabric": {
                "node": {"latency_us": 1, "bandwidth_GBps": 400},
                "rack": {"latency_us": 3, "bandwidth_GBps": 50},
                "hall": {"latency_us": 5, "bandwidth_GBps": 25},
                "site": {"latency_us": 8, "bandwidth_GBps": 12},
            },
            "sites": sites,
            "wan": [{"between": ["a", "b"], "latency_us": 100, "bandwidth_GBps": 20}],
        },
        "jobs": [
            {
                "name": "big",
                "kind": "training",
                "gpu_types": ["H100", "GB200"],
                "mix_types": "balanced",
                "tp": 8,
                "dp": 32,
                "min_dp": 4,
                "comm": {"tp_MB": 2000, "dp_MB": 4000, "dp_messages": 4},
                "compute_ms": 2000,
                "value": 2.0,
                "restart_min": 10,
                "checkpoint_interval_min": 30,
            },
            {
                "name": "gb",
                "kind": "training",
                "gpu_types": ["GB200"],
                "tp": 8,
                "dp": 16,
                "min_dp": 1,
                "comm": {"tp_MB": 2000, "dp_MB": 1000},
                "compute_ms": 2000,
                "value": 1.8,
            },
        ],
    }


def test_repricing_scales_only_the_mixed_options_of_packed_jobs():
    inst = instance_from_dict(_frontier_instance())
    co = coarse.build(inst)
    mixed = [op for op in co.options if op.kind == "mixed"]
    assert mixed and {inst.jobs[op.job].name for op in mixed} == {"big"}
    assert all(op.value >= 0 for op in mixed)  # a value variable under tangent planes
    # a plan that takes the first mixed option with one unit per part, valued at 10x what
    # the packing below realises per speed-weighted GPU
    op = mixed[0]
    vals = [0.0] * co.model.n_vars
    vals[op.b] = 1.0
    for v in op.parts.values():
        vals[v] = 1.0
    st_ = State(inst)
    ix = inst.index
    parts = []
    for (s, t), _v in sorted(op.parts.items()):
        a, b = ix.gpu_range(0, s)
        g = np.arange(a, b)
        parts.append(g[ix.gpu_type[g] == t][: inst.jobs[0].unit_size])
    st_.set_job(0, np.concatenate(parts))
    real = float(st_.scorer.scores[0].value[0])
    vals[op.value] = 10 * real / co.model.obj[op.value]
    lm = reprice_mixed(inst, co, vals, st_)
    assert lm is not None
    for other in co.options:
        for v in [other.value, *other.n.values(), *other.parts.values()]:
            if v < 0:
                continue
            before, after = co.model.obj.get(v, 0.0), lm.obj.get(v, 0.0)
            if other.kind == "mixed" and v == other.value:
                assert np.isclose(after, before * 0.1)
            else:
                assert after == before
    assert lm.rows is co.model.rows  # the same constraints: only the prices change


def test_the_decomposition_does_not_oversize_a_mixed_job():
    # the decomposition (exhaustive model off) against the exhaustive optimum of the same
    # small instance: within 5% (the mixed option's optimism once oversized the job)
    inst = instance_from_dict(_frontier_instance())
    exact = placer.solve(inst, solver="cpsat", time_limit=30, seed=0)
    dec = placer.solve(inst, solver="cpsat", time_limit=30, seed=0, exact_small=False)
    assert dec.bound >= exact.objective - 1e-6 * exact.objective
    assert dec.objective >= 0.95 * exact.objective, (dec.objective, exact.objective)
