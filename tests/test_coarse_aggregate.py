"""Issue 16 part 2: identical jobs (job arrays, sweeps) aggregated in the coarse model
(`coarse.AGGREGATE`): one set of options per class, its variables the members' sums.

The instance: the `scale` family at 6,144 GPUs over 3 sites, every 4th job replaced by 40
copies of itself (bench/aggregate.py `replicate`): 3 classes of 40 (training on one site
and over several sites, inference with a spread) and 9 distinct jobs, 129 in all. More
than 64 free GPUs, so the decomposition (not the exhaustive model) solves it.
"""

from __future__ import annotations

import copy
import re

import pytest
from builders import one_site, training

import placer
from bench.aggregate import replicate
from placer.check import check
from placer.generators import generate
from placer.solvers.cpsat import solve_cpsat
from placer.solvers.decomposition import coarse
from placer.solvers.decomposition.exact_small import SMALL_GPUS
from placer.validate import instance_from_dict


def _sweep(copies: int = 40, **edit) -> dict:
    d = replicate(generate("scale", 1, gpus=6144, sites=3, n_jobs=12), every=4, copies=copies)
    for name, fields in edit.items():
        for job in d["jobs"]:
            if job["name"].startswith(name):
                job.update(copy.deepcopy(fields))
    return d


@pytest.fixture(scope="module")
def inst():
    return instance_from_dict(_sweep())


@pytest.fixture
def agg(monkeypatch):
    """Sets coarse.AGGREGATE for one test (restored after it)."""

    def set_(on: bool) -> None:
        monkeypatch.setattr(coarse, "AGGREGATE", on)

    return set_


def _summed(inst, co_jobs, co_agg, x: list[float]) -> list[float]:
    """A point of the per-job model mapped to the aggregated one: each variable named after
    a member counted in its class's variable (named after the class's first job)."""
    rep = {}
    for first, members in co_agg.classes.items():
        for m in members:
            rep[inst.jobs[m].name] = inst.jobs[first].name
    index = {n: i for i, n in enumerate(co_agg.model.names)}
    y = [0.0] * co_agg.model.n_vars
    pat = re.compile(r"^(\w+)\[([^,\]]+)")
    for i, name in enumerate(co_jobs.model.names):
        m = pat.match(name)
        if m and m.group(2) in rep:
            name = f"{m.group(1)}[{rep[m.group(2)]}{name[m.end() :]}"
        y[index[name]] += x[i]
    return y


def _holds(lm, y: list[float]) -> None:
    for v, val in enumerate(y):
        assert lm.lb[v] - 1e-9 <= val <= lm.ub[v] + 1e-9, lm.names[v]
        assert not lm.integer[v] or abs(val - round(val)) < 1e-9
    for coeffs, sense, rhs, name in lm.rows:
        lhs = sum(c * y[i] for i, c in coeffs.items())
        tol = 1e-6 * max(1.0, abs(rhs))
        assert sense == ">=" or lhs <= rhs + tol, name
        assert sense == "<=" or lhs >= rhs - tol, name


def test_classes_are_the_identical_jobs_by_name(inst):
    classes = coarse.job_classes(inst)
    assert [len(m) for m in classes] == [40, 40, 40]
    for members in classes:
        names = [inst.jobs[j].name for j in members]
        assert names == sorted(names)
        assert len({inst.jobs[j].model_dump_json(exclude={"name"}) for j in members}) == 1


def test_the_aggregated_model_is_far_smaller_and_a_relaxation_of_the_per_job_one(inst, agg):
    """Any point of the per-job model, summed per class, is a point of the aggregated model
    with the same objective (so the aggregated optimum bounds the per-job one), and the
    aggregated model has about a tenth of the variables."""
    agg(False)
    co_jobs = coarse.build(inst)
    agg(True)
    co_agg = coarse.build(inst)
    assert co_agg.aggregated == "120 jobs in 3 classes"
    assert co_agg.model.n_vars * 5 < co_jobs.model.n_vars
    assert {op.kind for op in co_agg.options if op.members} >= {"site", "multi", "inference"}
    sol = solve_cpsat(co_jobs.model, 30.0, 0, 1, work_limit=5.0)
    assert sol.values is not None
    y = _summed(inst, co_jobs, co_agg, sol.values)
    _holds(co_agg.model, y)
    v_jobs = co_jobs.model.value(sol.values)
    assert co_agg.model.value(y) == pytest.approx(v_jobs, rel=1e-9)
    best = solve_cpsat(co_agg.model, 30.0, 0, 1)
    assert best.status == placer.Status.OPTIMAL
    assert co_agg.model.value(best.values) >= v_jobs - 1e-6 * abs(v_jobs)


def test_split_options_aggregate_as_a_relaxation_too(agg):
    """PP chains that may cross sites (`split` options: pieces per site and a units
    variable) summed per class stay a point of the aggregated model."""
    d = _sweep(copies=6, **{"train-70b-0008": {"scope": {"pp": "cluster"}}})
    inst = instance_from_dict(d)
    agg(False)
    co_jobs = coarse.build(inst)
    agg(True)
    co_agg = coarse.build(inst)
    assert any(op.kind == "split" and op.members for op in co_agg.options)
    sol = solve_cpsat(co_jobs.model, 30.0, 0, 1, work_limit=5.0)
    y = _summed(inst, co_jobs, co_agg, sol.values)
    _holds(co_agg.model, y)
    assert co_agg.model.value(y) == pytest.approx(co_jobs.model.value(sol.values), rel=1e-9)


@pytest.mark.parametrize("solver", ["cpsat", "mip"])
def test_solved_with_aggregation_at_least_as_well_and_valid(inst, agg, solver):
    """The decomposition with aggregation: its bound bounds its objective, the placement
    passes the checker, the same twice, and its objective is at least the per-job model's
    (whose CP-SAT solve does not finish in its share of the limit: 1,777 variables with
    40-fold symmetry, against 139)."""
    agg(True)
    res = placer.solve(inst, solver, time_limit=20, seed=0)
    assert res.stats["aggregated"] == "120 jobs in 3 classes"
    assert res.stats.get("mode") != "exact-small"
    assert res.bound >= res.objective - 1e-6 * abs(res.objective)
    assert check(inst, res.placement) == []
    again = placer.solve(inst, solver, time_limit=20, seed=0)
    assert again.objective == pytest.approx(res.objective, rel=1e-9)
    assert [(j.name, j.gpus) for j in again.placement.jobs] == [
        (j.name, j.gpus) for j in res.placement.jobs
    ]
    agg(False)
    off = placer.solve(inst, solver, time_limit=20, seed=0)
    assert "aggregated" not in off.stats
    assert off.stats["coarse_vars"] > 5 * res.stats["coarse_vars"]
    assert res.objective >= off.objective * (1 - 1e-6)


def test_running_pinned_or_mixed_type_members_are_not_merged():
    d = _sweep(copies=5)

    def gpus(racks):  # whole racks' GPUs, in rank order (8 units of TP 8 x PP 2 in two)
        return [
            f"site0/hall0/pod0/rack{r}/node{n}/gpu{i}"
            for r in racks
            for n in range(8)
            for i in range(8)
        ]

    for job in d["jobs"]:
        if job["name"] == "train-70b-0000-a01":
            job["current"] = gpus((0,))
        if job["name"] == "train-70b-0000-a02":
            job["current"] = gpus((2, 3))
            job["pinned"] = True
        if job["name"] == "train-70b-0008-a02":
            job["mix_types"] = "slowest"  # (its loss brackets are per job: not merged)
    inst = instance_from_dict(d)
    names = [[inst.jobs[j].name for j in m] for m in coarse.job_classes(inst)]
    first = next(m for m in names if m[0].startswith("train-70b-0000"))
    assert first == ["train-70b-0000-a00", "train-70b-0000-a03", "train-70b-0000-a04"]
    mixed = next(m for m in names if m[0].startswith("train-70b-0008"))
    assert "train-70b-0008-a02" not in mixed and len(mixed) == 4


def test_the_exhaustive_small_path_does_not_aggregate(agg):
    """At most SMALL_GPUS free GPUs: the exhaustive column model solves it, unchanged."""
    d = one_site(
        nodes=4,
        gpus_per_node=8,
        jobs=[training(f"sweep-{i}", 2, min_dp=1, tp=4) for i in range(5)],
    )
    inst = instance_from_dict(d)
    assert int(inst.index.available.sum()) <= SMALL_GPUS
    assert len(coarse.job_classes(inst)) == 1
    agg(True)
    on = placer.solve(inst, "cpsat", time_limit=10)
    agg(False)
    off = placer.solve(inst, "cpsat", time_limit=10)
    assert on.stats["mode"] == off.stats["mode"] == "exact-small"
    assert "aggregated" not in on.stats
    assert on.objective == pytest.approx(off.objective, rel=1e-9)


def test_a_class_plan_is_shared_out_by_name_within_each_option_range(inst, agg):
    """coarse.expand: c members per option, the first by name not yet given one, each
    within the option's unit range, the class's units per site kept."""
    agg(True)
    co = coarse.build(inst)
    sol = solve_cpsat(co.model, 30.0, 0, 1)
    ops, vals = coarse.expand(inst, co, sol.values)
    for first, members in co.classes.items():
        mine = [op for op in ops if op.job in members]
        jobs = [op.job for op in mine]
        assert len(jobs) == len(set(jobs))
        assert jobs == list(members[: len(jobs)])
        taken = sum(round(sol.values[op.b]) for op in co.options if op.members == members)
        assert len(jobs) == taken
        for op in co.options:
            if op.members != members or round(sol.values[op.b]) == 0:
                continue
            unit = inst.jobs[first].unit_size
            total = op.site_units(sol.values, unit)
            parts = [o for o in mine if (o.kind, o.sites, o.type) == (op.kind, op.sites, op.type)]
            got = {}
            for o in parts:
                su = o.site_units(vals, unit)
                for s, n in su.items():
                    got[s] = got.get(s, 0) + n
            assert {s: n for s, n in got.items() if n} == {s: n for s, n in total.items() if n}


def test_the_greedy_placement_read_back_sums_the_members(inst, agg):
    """warm.plan_of_state on the aggregated model: each placed member matches its class's
    options, the class's variables hold the members' sums, and the completed point values
    the placement at least at the kernel's objective (the model bounds it)."""
    from placer.solvers.decomposition import warm
    from placer.solvers.decomposition.construct import best_greedy

    agg(True)
    co = coarse.build(inst)
    st = best_greedy(inst)
    fixed, missed = warm.plan_of_state(inst, co, st)
    assert missed == 0
    for members in co.classes.values():
        placed = sum(1 for m in members if len(st.job_gpus[m]))
        taken = sum(fixed[op.b] for op in co.options if op.members == members)
        assert taken == placed
    hint, info = warm.complete(inst, co, st, lambda lm: solve_cpsat(lm, 10.0, 0, 1, work_limit=5.0))
    assert hint is not None
    assert co.model.value(hint) >= st.objective - 1e-6 * abs(st.objective)


def test_an_lp_plan_rounds_a_class_to_whole_members(inst, agg):
    """The LP relaxation's rounding (the path of large models) counts a class's members per
    option (`_class_counts`: its weight rounded up in all, the whole parts first), and the
    placement it leads to passes the checker under the LP's bound."""
    from placer.solvers.decomposition.pipeline import _class_counts

    op_a, op_b = coarse.Option(0, "site", 0, (0,), 1.0), coarse.Option(0, "site", 0, (1,), 1.0)
    op_a.b, op_b.b = 0, 1
    op_a.members = op_b.members = (0, 1, 2, 3, 4)
    assert _class_counts([2.4, 1.3], [op_a, op_b]) == [(op_a, 3), (op_b, 1)]
    assert _class_counts([5.0, 0.0], [op_a, op_b]) == [(op_a, 5)]
    agg(True)
    res = placer.solve(inst, "cpsat", time_limit=20, lp_rounding="always")
    assert res.stats["aggregated"] == "120 jobs in 3 classes"
    assert "rounding" in res.stats["coarse_native"]
    assert res.bound >= res.objective - 1e-6 * abs(res.objective)
    assert check(inst, res.placement) == []


def test_a_running_job_the_plan_moves_is_packed_before_larger_jobs():
    """primal_from_coarse: a running, non-preemptible job that the plan moves (its
    `current` breaks rule 3, so it cannot stay) is packed right after the jobs that stay,
    before larger jobs: a packing that leaves it out is no candidate at all. One node of
    8 GPUs, a plan (over capacity on purpose) with a job of 8 GPUs and the must of 4."""
    from placer.solvers.decomposition.pipeline import primal_from_coarse

    CURRENT = ["a/node0/gpu0", "a/node0/gpu1"]
    d = one_site(
        nodes=1,
        gpus_per_node=8,
        jobs=[
            training("big", 1, tp=8, value=5.0),
            # running on one unit of the two it needs (rule 3): it cannot stay
            training("must", 2, min_dp=2, tp=2, preemptible=False, current=CURRENT),
        ],
    )
    inst = instance_from_dict(d)
    co = coarse.build(inst)
    vals = [0.0] * co.model.n_vars
    for op in co.options:
        if op.kind == "site":
            vals[op.b] = 1.0
            for v in op.n.values():
                vals[v] = float(co.model.ub[v])
    st = primal_from_coarse(inst, co, vals)
    assert not st.unplaced_musts()
    assert len(st.job_gpus[1]) == 4 and len(st.job_gpus[0]) == 0  # (before: 8 and 0)
