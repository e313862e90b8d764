"""The solver contract (SPEC 2.2): registry, statuses, time limits, determinism, reasons,
and the `placer solve` command's exit codes and output."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import builders
import pytest
from typer.testing import CliRunner

import placer
from placer.errors import SolverError
from placer.solvers import get_solver, list_solvers, names
from placer.validate import instance_from_dict

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.yaml"
SUPERPOD = ROOT / "instances" / "superpod.yaml"


def test_the_required_backends_are_really_available():
    avail = {name: ok for name, ok, _ in list_solvers()}
    for name in names(peer=False):
        assert avail[name], f"backend {name} must be available (no silent skips)"


def test_an_unknown_solver_name_lists_the_valid_ones():
    with pytest.raises(SolverError) as e:
        get_solver("gurobi-magic")
    assert "cpsat" in str(e.value) and "greedy" in str(e.value)


def _power_clash():
    """Two running, non-preemptible jobs that each fit alone but not together (power)."""
    return instance_from_dict(builders.power_clash())


@pytest.mark.parametrize("backend", names(exact=True))
def test_running_jobs_that_cannot_all_stay_make_the_solve_infeasible(backend):
    res = placer.solve(_power_clash(), solver=backend, time_limit=20)
    assert res.status == "infeasible"
    assert res.reason and res.placement.jobs == []
    assert res.objective is None


def test_the_greedy_says_no_solution_where_it_cannot_keep_running_jobs():
    res = placer.solve(_power_clash(), solver="greedy")
    assert res.status == "no_solution" and res.reason


def test_a_deadline_already_past_returns_the_greedys_placement_with_true_reasons():
    """Issue 16: every backend starts from the greedy, so any deadline returns at least its
    placement; here no job was reached, and each says so."""
    inst = placer.load_instance(SUPERPOD)
    res = placer.solve(inst, solver="cpsat", time_limit=1e-9, exact_small=False)
    assert res.status == "feasible"
    assert placer.check(inst, res.placement) == []
    left_out = [j for j in res.placement.jobs if not j.units]
    assert left_out
    assert all(j.reason.startswith("not reached before the time limit") for j in left_out)


@pytest.mark.parametrize("backend", names(exact=True))
def test_the_time_limit_is_honoured_with_a_valid_placement(backend):
    inst = placer.load_instance(SUPERPOD)
    t = time.perf_counter()
    res = placer.solve(inst, solver=backend, time_limit=1.5)
    took = time.perf_counter() - t
    assert took <= 1.5 + 0.5
    assert res.status in ("optimal", "feasible")
    assert placer.check(inst, res.placement) == []


@pytest.mark.parametrize("backend", names(peer=False))
def test_the_same_seed_on_one_thread_gives_the_same_output(backend):
    inst = placer.load_instance(TINY)

    def run():
        res = placer.solve(inst, solver=backend, time_limit=None, seed=7, threads=1)
        d = res.placement.model_dump(mode="json")
        d.pop("seconds")
        return json.dumps(d, sort_keys=True)

    assert run() == run()


def test_every_job_left_out_gets_a_reason_a_person_can_act_on():
    inst = placer.load_instance(SUPERPOD)
    res = placer.solve(inst, solver="cpsat", time_limit=10)
    for pj in res.placement.jobs:
        if pj.units == 0:
            assert pj.reason and "GPU" in pj.reason


def test_a_job_that_fits_nowhere_says_how_big_the_largest_block_is():
    d = placer.io.parse_text(TINY.read_text())
    d = copy.deepcopy(d)
    d["jobs"].append(
        {
            "name": "huge",
            "kind": "training",
            "tp": 8,
            "dp": 64,
            "min_dp": 64,
            "compute_ms": 100,
            "value": 9.0,
        }
    )
    inst = instance_from_dict(d)
    assert any("huge" in w for w in inst.warnings)
    res = placer.solve(inst, solver="cpsat", time_limit=10)
    huge = next(j for j in res.placement.jobs if j.name == "huge")
    assert huge.units == 0
    assert "512" in huge.reason and "largest" in huge.reason or "most free" in huge.reason


def test_every_result_carries_the_kernel_objective_and_a_consistent_gap():
    inst = placer.load_instance(TINY)
    res = placer.solve(inst, solver="cpsat", time_limit=10)
    assert placer.score(inst, res.placement).objective == pytest.approx(res.objective)
    assert res.gap == pytest.approx((res.bound - res.objective) / max(abs(res.bound), 1))


@pytest.mark.parametrize("backend", names(exact=True))
@pytest.mark.parametrize(
    "jobs",
    [[], [builders.training("huge", 64)]],
    ids=["no-jobs", "fits-nowhere"],
)
def test_an_instance_worth_nothing_is_proven_at_a_gap_of_about_0(backend, jobs):
    # SPEC 2: `optimal` is proven. The mip backend padded CBC's bound by an absolute 1e-6, so
    # an instance worth 0 reported `optimal` at a gap of 1.1e-6
    inst = instance_from_dict(builders.one_site(jobs=jobs))
    res = placer.solve(inst, solver=backend, time_limit=10, seed=0)
    assert res.status == "optimal"
    assert res.objective == 0.0
    assert 0.0 <= res.bound <= 1e-6 and res.gap <= 1e-6


# ------------------------------------------------------------------ CLI

runner = CliRunner()


def cli(*args):
    from placer.cli import app

    return runner.invoke(app, [str(a) for a in args])


def test_solve_writes_a_placement_that_check_and_score_accept(tmp_path):
    out = tmp_path / "p.json"
    r = cli("solve", TINY, "--time-limit", 10, "--out", out)
    assert r.exit_code == 0, r.output
    assert "objective" in r.output
    doc = json.loads(out.read_text())
    assert doc["status"] in ("optimal", "feasible") and doc["objective"] > 0
    assert cli("check", TINY, out).exit_code == 0
    s = cli("score", TINY, out, "--json")
    assert s.exit_code == 0
    assert json.loads(s.stdout)["objective"] == pytest.approx(doc["objective"])


def test_solve_exits_1_without_a_placement(tmp_path):
    p = tmp_path / "clash.json"
    inst = _power_clash()
    p.write_text(json.dumps(inst.model_dump(mode="json", exclude_none=True)))
    r = cli("solve", p, "--solver", "cpsat", "--quiet")
    assert r.exit_code == 1


def test_solve_exits_2_on_bad_input_and_unknown_solver(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert cli("solve", bad).exit_code == 2
    r = cli("solve", TINY, "--solver", "nope")
    assert r.exit_code == 2
    assert "valid" in r.output


def test_solvers_lists_the_backends():
    r = cli("solvers")
    assert r.exit_code == 0
    for name in names():
        assert name in r.output


def test_show_and_schema_and_validate_work_on_every_bundled_instance():
    for f in sorted((ROOT / "instances").glob("*.yaml")):
        assert cli("validate", f).exit_code == 0
        r = cli("show", f, "--json")
        assert r.exit_code == 0
        assert json.loads(r.stdout)["gpus"] > 0
    r = cli("schema")
    assert r.exit_code == 0 and "properties" in json.loads(r.stdout)


def test_generate_writes_an_instance_that_validates(tmp_path):
    out = tmp_path / "g.yaml"
    r = cli("generate", "superpod", "--seed", 3, "-p", "sus=1", "-p", "n_jobs=3", "-o", out)
    assert r.exit_code == 0, r.output
    assert cli("validate", out).exit_code == 0
    assert cli("generate", "no-such-family").exit_code == 2
    assert cli("generate", "superpod", "-p", "sus").exit_code == 2


def test_solve_passes_backend_options_and_refuses_malformed_ones():
    r = cli("solve", TINY, "-q", "-O", "exact_small=false", "-O", "lp_rounding=always")
    assert r.exit_code == 0, r.output
    assert cli("solve", TINY, "-q", "-O", "oops").exit_code == 2
