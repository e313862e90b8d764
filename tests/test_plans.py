"""SPEC v3 plans and microbatches: validation (located), the kernel, the checker (rule 8),
placement I/O, the solvers' variants, and that v1/v2 files keep their exact output.

The worked example (case-v3-plans) is a fixed point of test_kernel and test_check; the
brute-force optima with plans are in test_conformance; random instances with plans run
through the kernel-vs-reference and checker-vs-reference property tests.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import placer
from placer.errors import InstanceError
from placer.kernel.capacity import fit_nowhere_reason
from placer.solvers.plans import expand, first_plans
from placer.validate import instance_from_dict

try:
    from . import builders
except ImportError:  # tests/ on sys.path
    import builders


def _inst(jobs, gpn=4, nodes=2, **kw):
    """Two sites a and b of `nodes` nodes of `gpn` GPUs, one WAN link."""
    return builders.two_sites(jobs, gpn, nodes, **kw)


def _job(**kw):
    j = {"name": "T", "kind": "training", "compute_ms": 1000, "value": 2, "tp": 4}
    j.update(kw)
    return j


def _problems(d) -> list[tuple[str, str]]:
    with pytest.raises(InstanceError) as e:
        instance_from_dict(d)
    return e.value.problems


def _locs(d) -> list[str]:
    return [loc for loc, _ in _problems(d)]


# --------------------------------------------------------------------------------------
# validation (SPEC 6 "Jobs with plans")
# --------------------------------------------------------------------------------------


def test_a_job_under_a_plan_takes_each_given_key_wholesale_and_the_rest_from_the_job():
    inst = instance_from_dict(
        _inst(
            [
                _job(
                    dp=2,
                    min_dp=1,
                    comm={"tp_MB": 100, "dp_MB": 4000},
                    scope={"tp": "node", "dp": "site"},
                    plans=[
                        {"name": "a"},
                        {"name": "b", "dp": 4, "comm": {"pp_MB": 50}, "scope": {"pp": "cluster"}},
                    ],
                )
            ]
        )
    )
    a, b = inst.jobs[0].variants()
    assert (a.plan, a.dp, a.min_dp, a.comm.dp_MB) == ("a", 2, 1, 4000)
    # b's comm replaces the job's whole comm (no dp_MB), its scope the job's whole scope
    assert (b.plan, b.dp, b.min_dp, b.comm.tp_MB, b.comm.dp_MB, b.comm.pp_MB) == (
        "b",
        4,
        1,  # a min_dp the plan does not replace still applies to it
        0.0,
        0.0,
        50.0,
    )
    assert b.effective_scope() == {"tp": "node", "pp": "cluster", "dp": "site", "ep": "site"}
    assert inst.jobs[0].plan is None and a.plans is None


@pytest.mark.parametrize(
    "plans, loc",
    [
        ([], "jobs[0].plans"),
        ([{"name": "x", "dp": 1}, {"name": "x", "dp": 2}], "jobs[0].plans[1].name"),
        ([{"name": "x", "dp": 1, "kind": "inference"}], "jobs[0].plans[0].kind"),
        ([{"name": "x", "dp": 1, "current": []}], "jobs[0].plans[0].current"),
        ([{"name": "x", "dp": 1, "tpp": 2}], "jobs[0].plans[0].tpp"),
        ([{"name": "x", "dp": 1, "tp": None}], "jobs[0].plans[0].tp"),
        ([{"name": "x", "dp": 1, "tp": 0}], "jobs[0].plans[0].tp"),
        ([{"name": "", "dp": 1}], "jobs[0].plans[0].name"),
        ([{"dp": 1}], "jobs[0].plans[0].name"),
        ([{"name": "x", "dp": 1}, {"name": "y"}], "jobs[0].plans[1].dp"),
        ([{"name": "x", "dp": 1, "microbatches": 0}], "jobs[0].plans[0].microbatches"),
        ([{"name": "x", "dp": 2, "min_dp": 3}], "jobs[0].plans[0].min_dp"),
        ([{"name": "x", "dp": 3, "ep": 2}], "jobs[0].plans[0].dp"),
        ([{"name": "x", "dp": 1, "scope": {"dp": "galaxy"}}], "jobs[0].plans[0].scope.dp"),
        ([{"name": "x", "dp": 1, "comm": {"dp_mb": 1}}], "jobs[0].plans[0].comm.dp_mb"),
        ([{"name": "x", "dp": 1, "gpu_types": []}], "jobs[0].plans[0].gpu_types"),
        ([{"name": "x", "dp": 1, "mix_types": True}], "jobs[0].plans[0].mix_types"),
    ],
)
def test_every_bad_plan_is_refused_at_its_place(plans, loc):
    assert loc in _locs(_inst([_job(plans=plans)]))


def test_value_dp_and_compute_ms_may_come_from_the_job_or_from_each_plan():
    ok = _job(plans=[{"name": "x", "dp": 1, "value": 3}, {"name": "y", "dp": 2}])
    del ok["value"]
    ok["plans"][1]["value"] = 1
    instance_from_dict(_inst([ok]))
    bad = copy.deepcopy(ok)
    del bad["plans"][1]["value"]
    assert _locs(_inst([bad])) == ["jobs[0].plans[1].value"]
    # a job without plans still needs its own value
    assert _locs(_inst([{k: v for k, v in _job(dp=1).items() if k != "value"}])) == [
        "jobs[0].value"
    ]


def test_a_job_min_dp_above_a_plans_dp_is_that_plans_problem():
    probs = _problems(
        _inst([_job(min_dp=3, plans=[{"name": "x", "dp": 2}, {"name": "y", "dp": 4}])])
    )
    assert probs == [("jobs[0].plans[0].min_dp", "must be at most dp (2), not 3")]


def test_current_plan_rules():
    cur = [f"a/node0/gpu{k}" for k in range(4)]
    plans = [{"name": "x", "dp": 1}, {"name": "y", "dp": 1, "pp": 2}]
    assert _locs(_inst([_job(plans=plans, current=cur)])) == ["jobs[0].current_plan"]
    assert _locs(_inst([_job(plans=plans, current=cur, current_plan="z")])) == [
        "jobs[0].current_plan"
    ]
    # current must be whole units of its current plan (y's units are 8 GPUs)
    assert _locs(_inst([_job(plans=plans, current=cur, current_plan="y")])) == ["jobs[0].current"]
    instance_from_dict(_inst([_job(plans=plans, current=cur, current_plan="x")]))
    # current_plan without plans is refused; without current it is ignored with a warning
    assert _locs(_inst([_job(dp=1, current_plan="x")])) == ["jobs[0].current_plan"]
    inst = instance_from_dict(_inst([_job(plans=plans, current_plan="x")]))
    assert any(w.startswith("jobs[0].current_plan:") for w in inst.warnings)


def test_microbatches_on_an_inference_job_is_ignored_with_a_warning():
    inst = instance_from_dict(
        _inst([{"name": "S", "kind": "inference", "replicas": 1, "value": 1, "microbatches": 4}])
    )
    assert any(w.startswith("jobs[0].microbatches:") for w in inst.warnings)


def test_fits_nowhere_is_warned_only_when_no_plan_fits():
    # 8 GPUs per site: a plan of 16 GPUs in one site fits nowhere, one of 8 does
    fits = _job(plans=[{"name": "big", "dp": 4}, {"name": "small", "dp": 2}])
    inst = instance_from_dict(_inst([fits]))
    assert not any("fits nowhere" in w for w in inst.warnings)
    assert fit_nowhere_reason(inst, inst.index, inst.jobs[0]) == ""
    none = _job(plans=[{"name": "big", "dp": 4}, {"name": "bigger", "dp": 8}])
    inst = instance_from_dict(_inst([none]))
    (w,) = [w for w in inst.warnings if "fits nowhere" in w]
    assert "no plan fits: plan 'big'" in w and "plan 'bigger'" in w
    # worded as a solve and Cluster.submit word it: `no plan fits: plan 'a': ...` when the
    # plans' reasons differ (it said `under every plan: plan 'a': ...`), `under every plan:
    # <one sentence>` when they agree, the sentence alone for a job of one plan
    same = _job(plans=[{"name": "big", "dp": 4}, {"name": "big2", "dp": 4, "value": 1}])
    why = fit_nowhere_reason(*_ix(same))
    assert why.startswith("under every plan: ") and "plan '" not in why
    one = _job(plans=[{"name": "big", "dp": 4}])
    assert fit_nowhere_reason(*_ix(one)) == fit_nowhere_reason(*_ix(_job(dp=4)))


def test_a_plan_naming_no_type_of_any_site_is_not_warned_about_when_another_plan_fits():
    # SPEC 6: the "fits nowhere" warning of a job with plans (a job whose gpu_types names no
    # type any site has is one, SPEC 6 "Jobs") is given only when no plan fits anywhere
    # (the plan's own gpu_types warning said "job 'T' gets 0 units under plan 'z'")
    job = _job(dp=1, plans=[{"name": "z", "gpu_types": ["Z"]}, {"name": "h"}])
    assert instance_from_dict(_inst([job])).warnings == []
    job["plans"][1]["gpu_types"] = ["Y"]  # now no plan fits: one warning naming both plans
    (w,) = instance_from_dict(_inst([job])).warnings
    assert w.startswith("jobs[0]: ") and "fits nowhere" in w
    assert "plan 'z'" in w and "plan 'h'" in w
    # a job without plans keeps its own gpu_types warning
    ws = instance_from_dict(_inst([_job(dp=1, gpu_types=["Z"])])).warnings
    assert any(w.startswith("jobs[0].gpu_types: no site has any of the types") for w in ws)


def _ix(job):
    inst = instance_from_dict(_inst([job]))
    return inst, inst.index, inst.jobs[0]


def test_a_running_non_preemptible_job_is_refused_only_when_no_plan_fits_even_alone():
    cur = [f"a/node0/gpu{k}" for k in range(4)]
    job = _job(
        current=cur,
        current_plan="one",
        preemptible=False,
        plans=[{"name": "one", "dp": 1}, {"name": "huge", "dp": 8}],
    )
    instance_from_dict(_inst([job]))  # it may change plan: 'one' fits
    job["plans"][0]["gpu_types"] = ["Z"]  # now no plan fits anywhere
    (loc, msg), *_ = _problems(_inst([job]))
    assert loc == "jobs[0]" and "fits nowhere even alone" in msg


def test_the_schema_describes_plans_and_microbatches():
    from placer.io import instance_schema, placement_schema

    schema = instance_schema()
    job = schema["$defs"]["Job"]["properties"]
    assert {"plans", "current_plan", "microbatches"} <= set(job)
    assert "Plan" in schema["$defs"]
    assert schema["$defs"]["Plan"].get("additionalProperties") is False
    assert "plan" in placement_schema()["$defs"]["PlacedJob"]["properties"]


# --------------------------------------------------------------------------------------
# the kernel and the checker
# --------------------------------------------------------------------------------------


def _score(d, placement):
    inst = instance_from_dict(copy.deepcopy(d))
    return inst, placer.score(inst, placement), placer.check(inst, placement)


def test_the_1f1b_bubble_stretches_the_compute_time():
    # pp 2 on one node, m = 4 microbatches: c_step = 1000 * (4 + 2 - 1) / 4 = 1250, plus the
    # latency terms of a TP pair (2 * 1 * 2 us) and a PP boundary (2 us) on the node
    d = _inst([_job(tp=2, pp=2, dp=1, microbatches=4)])
    gpus = [f"a/node0/gpu{k}" for k in range(4)]
    _, s, v = _score(d, {"jobs": [{"name": "T", "units": 1, "gpus": gpus}]})
    row = s.jobs[0]
    assert v == []
    assert row["step_ms"] == pytest.approx(1250.006)
    assert row["efficiency"] == pytest.approx(1000 / 1250.006)
    # with pp = 1 microbatches change nothing
    d = _inst([_job(tp=4, dp=1, microbatches=4)])
    _, s, _ = _score(d, {"jobs": [{"name": "T", "units": 1, "gpus": gpus}]})
    assert s.jobs[0]["step_ms"] == pytest.approx(1000.012)  # a TP group of 4: 2 * 3 * 2 us


def test_a_plan_change_on_the_same_gpus_is_a_move_and_pays_once():
    cur = [f"a/node0/gpu{k}" for k in range(4)]
    d = _inst(
        [
            _job(
                current=cur,
                current_plan="x",
                migration_cost=5,
                plans=[{"name": "x", "dp": 1}, {"name": "y", "dp": 1, "value": 3}],
            )
        ]
    )
    _, same, _ = _score(d, {"jobs": [{"name": "T", "units": 1, "plan": "x", "gpus": cur[::-1]}]})
    _, other, _ = _score(d, {"jobs": [{"name": "T", "units": 1, "plan": "y", "gpus": cur}]})
    assert not same.jobs[0]["moved"] and same.totals["migration_cost"] == 0
    assert other.jobs[0]["moved"] and other.totals["migration_cost"] == 5
    assert other.jobs[0]["plan"] == "y"
    eff = 1000 / 1000.012  # a TP group of 4 on a node: 2 * 3 * 2 us
    assert other.objective == pytest.approx(10 * 3 * 4 * eff - 5)


@pytest.mark.parametrize(
    "entry, rule8",
    [
        ({"units": 1}, True),  # placed with plans, names none
        ({"units": 1, "plan": "nope"}, True),  # names a plan it does not have
        ({"units": 1, "plan": "x"}, False),
        ({"units": 0, "plan": "nope", "gpus": []}, False),  # 0 units: ignored
    ],
)
def test_rule_8_a_placed_job_with_plans_names_one_of_them(entry, rule8):
    d = _inst([_job(plans=[{"name": "x", "dp": 1}])])
    inst = instance_from_dict(d)
    e = {"name": "T", "gpus": [f"a/node0/gpu{k}" for k in range(4)], **entry}
    got = placer.check(inst, {"jobs": [e]})
    assert any(v.rule == 8 for v in got) == rule8
    if rule8:  # the kernel cannot score a job whose shape is unknown
        with pytest.raises(placer.PlacementError) as err:
            placer.score(inst, {"jobs": [e]})
        assert err.value.problems[0][0] == "jobs[0].plan"


def test_rule_8_a_plan_on_a_job_without_plans_and_a_pinned_job_keeping_its_plan():
    gpus = [f"a/node0/gpu{k}" for k in range(4)]
    inst = instance_from_dict(_inst([_job(dp=1)]))
    got = placer.check(inst, {"jobs": [{"name": "T", "units": 1, "plan": "x", "gpus": gpus}]})
    assert [v.rule for v in got] == [8]
    pinned = _job(
        current=gpus,
        current_plan="x",
        pinned=True,
        plans=[{"name": "x", "dp": 1}, {"name": "y", "dp": 1}],
    )
    inst = instance_from_dict(_inst([pinned]))
    got = placer.check(inst, {"jobs": [{"name": "T", "units": 1, "plan": "y", "gpus": gpus}]})
    assert [v.rule for v in got] == [8]
    assert (
        placer.check(inst, {"jobs": [{"name": "T", "units": 1, "plan": "x", "gpus": gpus}]}) == []
    )


def test_v1_and_v2_placements_carry_no_plan_key():
    inst_d, pl_d, _ = builders.load_example("case1")
    inst = instance_from_dict(inst_d)
    res = placer.solve(inst, solver="greedy")
    dumped = json.loads(json.dumps(res.to_dict()))
    assert all("plan" not in j for j in dumped["jobs"])
    assert all(j["plan"] is None for j in dumped["score"]["jobs"])


# --------------------------------------------------------------------------------------
# the solvers' variants
# --------------------------------------------------------------------------------------


def test_the_virtual_instance_has_one_job_per_plan_and_only_the_running_one_keeps_current():
    cur = [f"a/node0/gpu{k}" for k in range(4)]
    d = _inst(
        [
            _job(
                current=cur,
                current_plan="y",
                preemptible=False,
                migration_cost=2,
                plans=[{"name": "x", "dp": 1}, {"name": "y", "dp": 1}, {"name": "z", "dp": 2}],
            ),
            {"name": "S", "kind": "inference", "tp": 4, "replicas": 1, "value": 1},
        ]
    )
    inst = instance_from_dict(d)
    vinst, g = expand(inst)
    assert [j.name for j in vinst.jobs] == ["T/x", "T/y", "T/z", "S"]
    assert [bool(j.current) for j in vinst.jobs] == [False, True, False, False]
    assert all(j.preemptible for j in vinst.jobs)  # the group keeps the must
    assert g.must == [True, False] and g.members == [[0, 1, 2], [3]]
    assert vinst.index is inst.index  # the topology is shared, not rebuilt
    peers, _ = expand(inst, first_only=True)
    assert [j.name for j in peers.jobs] == ["T/y", "S"]  # a running job keeps its plan
    assert [len(j.plans or []) for j in first_plans(inst).jobs] == [1, 0]


@pytest.mark.parametrize("backend", ["greedy", "cpsat", "mip"])
def test_every_backend_switches_a_running_job_to_a_better_plan_and_charges_the_move(backend):
    cur = [f"a/node0/gpu{k}" for k in range(4)] + [f"b/node0/gpu{k}" for k in range(4)]
    d = _inst(
        [
            _job(
                dp=2,
                current=cur,
                current_plan="sync",
                migration_cost=5,
                comm={"tp_MB": 100, "dp_MB": 40000},
                scope={"dp": "cluster"},
                plans=[{"name": "sync"}, {"name": "diloco", "cross_site_every": 50, "value": 1.9}],
            )
        ],
        nodes=1,
    )
    inst = instance_from_dict(d)
    res = placer.solve(inst, solver=backend, time_limit=10)
    (t,) = res.placement.jobs
    assert (t.plan, t.units) == ("diloco", 2)
    row = res.score.jobs[0]
    assert row["plan"] == "diloco" and row["moved"] and row["migration_cost"] == 5
    assert placer.check(inst, res.placement) == []


def test_a_job_left_out_under_every_plan_gets_one_reason_naming_them():
    d = _inst(
        [_job(plans=[{"name": "big", "dp": 4}, {"name": "bigger", "dp": 8}])],
    )
    inst = instance_from_dict(d)
    for backend in ("greedy", "cpsat"):
        (t,) = placer.solve(inst, solver=backend, time_limit=5).placement.jobs
        assert t.units == 0 and "plan 'big'" in t.reason and "plan 'bigger'" in t.reason


def test_a_plan_placement_round_trips_through_a_file(tmp_path):
    inst_d, pl_d, expected = builders.load_example("case-v3-plans")
    inst = instance_from_dict(inst_d)
    res = placer.solve(inst, solver="cpsat", time_limit=10)
    p = tmp_path / "placement.json"
    p.write_text(json.dumps(res.to_dict()))
    back = placer.load_placement(p, inst)
    assert {j.name: j.plan for j in back.jobs} == {"T": res.placement.jobs[0].plan, "S": None}
    assert placer.score(inst, back).objective == pytest.approx(res.objective)
    # the optimum beats the worked example's placement, which pays for T's plan change
    assert res.objective >= expected["objective"] - 1e-9
    assert np.isfinite(res.bound)


@pytest.mark.parametrize("opts", [{}, {"exclude_none": True}, {"exclude_unset": True}])
def test_a_dumped_instance_reads_back_with_the_same_plans(opts):
    # a plan is the keys it gives: a dump must not write defaults (`mix_types: false`) that
    # would replace the job's own values when read back (placer decide re-loads dumps)
    plans = [{"name": "x", "dp": 1}, {"name": "y", "dp": 4, "min_dp": None}]
    d = _inst([_job(mix_types="balanced", min_dp=1, plans=plans)])
    inst = instance_from_dict(d)
    back = instance_from_dict(json.loads(json.dumps(inst.model_dump(mode="json", **opts))))
    for a, b in zip(inst.jobs[0].variants(), back.jobs[0].variants(), strict=True):
        assert a.model_dump() == b.model_dump() and a.mix_types == "balanced"
    assert [v.units_min for v in back.jobs[0].variants()] == [1, 4]


# --------------------------------------------------------------------------------------
# the CLI's tables (issue 15 audit)
# --------------------------------------------------------------------------------------


def _cli(*args):
    from typer.testing import CliRunner

    from placer.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def _table_rows(text: str, first: str) -> list[list[str]]:
    return [
        [c.strip() for c in ln.strip("│").split("│")]
        for ln in text.splitlines()
        if ln.startswith("│") and ln.strip("│ ").startswith(first)
    ]


def test_placer_score_names_the_plan_each_job_runs_and_v1_tables_are_unchanged(tmp_path):
    # T runs pp-across on the GPUs it ran sync-dp on: "moved: yes" must be explained
    ex = builders.EXAMPLES
    res = _cli("score", ex / "case-v3-plans.instance.yaml", ex / "case-v3-plans.placement.json")
    assert res.exit_code == 0, res.output
    head = next(ln for ln in res.output.splitlines() if "T_tp ms" in ln)
    assert [c.strip() for c in head.strip("┃").split("┃")][:4] == ["job", "units", "plan", "GPUs"]
    (t,) = _table_rows(res.output, "T ")
    (s,) = _table_rows(res.output, "S ")
    assert t[2] == "pp-across" and t[-1] == "yes" and s[2] == ""
    # a v1 placement: no plan column
    inst_d, pl_d, _ = builders.load_example("case1")
    (tmp_path / "i.json").write_text(json.dumps(inst_d))
    (tmp_path / "p.json").write_text(json.dumps(pl_d))
    res = _cli("score", tmp_path / "i.json", tmp_path / "p.json")
    assert res.exit_code == 0 and "plan" not in res.output


def test_placer_show_lists_each_plans_cross_site_every():
    # diloco-10 differs from sync-dp by its outer synchronisation (and its value) only
    res = _cli("show", builders.EXAMPLES / "case-v3-plans.instance.yaml")
    assert res.exit_code == 0, res.output
    rows = {r[1]: r for r in _table_rows(res.output, "T ") if len(r) == 9}
    assert [rows[p][7] for p in ("sync-dp*", "diloco-10", "pp-across")] == ["1", "10", "1"]


@pytest.mark.parametrize("backend", ["greedy", "cpsat"])
def test_a_reason_names_the_holders_by_their_own_names_not_the_variants(backend):
    # the solvers place the virtual instance, whose jobs are named `<job>/<plan>`: a reason
    # said "those of its types are held by job 'A/p4' (8)", a job the user never wrote
    a = _job(name="A", value=3, plans=[{"name": "p4", "dp": 2}])
    b = _job(name="B", value=1, dp=1)
    c = _job(name="C", value=1, plans=[{"name": "q4", "dp": 1}, {"name": "q2", "tp": 2, "dp": 2}])
    inst = instance_from_dict(builders.one_site(2, 4, "H", [a, b, c]))
    res = placer.solve(inst, solver=backend, time_limit=5)
    rows = {j.name: j for j in res.placement.jobs}
    assert rows["A"].units == 2 and rows["B"].units == rows["C"].units == 0
    for n in ("B", "C"):
        assert "held by job 'A' (8)" in rows[n].reason and "A/p4" not in rows[n].reason


def test_real_job_names_rewrites_only_variant_job_references():
    from placer.solvers.plans import real_job_names

    real = {"A/p4": "A", "O'x/p": "O'x"}
    text = "held by job 'A/p4' (8), job \"O'x/p\" (1), job 'B' (2); the block 'A/p4' is free"
    assert real_job_names(text, real) == (
        "held by job 'A' (8), job \"O'x\" (1), job 'B' (2); the block 'A/p4' is free"
    )
