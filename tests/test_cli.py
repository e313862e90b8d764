"""The `placer` command line: what each command calls the library with, its exit codes, and
that no command ever prints a traceback, for every command and every solve status."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import builders
import pytest
from typer.testing import CliRunner

import placer
import placer.api
from placer.cli import MAX_ERRORS, app
from placer.errors import PlacementWarning
from placer.solvers.base import no_placement

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.yaml"
COLOSSUS = ROOT / "instances" / "colossus.yaml"

runner = CliRunner()


def run(*args: str):
    res = runner.invoke(app, [str(a) for a in args])
    text = (res.stdout or "") + (res.stderr or "")
    assert "Traceback" not in text, text
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


@pytest.fixture()
def clash_file(tmp_path):
    p = tmp_path / "clash.json"
    p.write_text(json.dumps(builders.power_clash()))
    return p


@pytest.fixture()
def tiny_placement(tmp_path):
    p = tmp_path / "placement.json"
    r = run("solve", TINY, "--time-limit", "10", "--out", p, "-q")
    assert r.exit_code == 0
    return p


# ---------------------------------------------------------------------- every command


def test_validate_prints_ok_and_exits_0():
    r = run("validate", TINY)
    assert r.exit_code == 0 and r.stdout.startswith("ok tiny")


def test_validate_names_the_place_of_an_error_and_exits_2(tmp_path):
    d = builders.one_site(jobs=[builders.training("x", dp=-1)])
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    r = run("validate", p)
    assert r.exit_code == 2
    assert "jobs[0].dp" in r.stderr


def test_a_missing_file_is_one_red_line_and_exit_2(tmp_path):
    r = run("validate", tmp_path / "nope.yaml")
    assert r.exit_code == 2 and "error" in r.stderr


@pytest.mark.parametrize("flag", [[], ["--json"]])
def test_show_exits_0(flag):
    r = run("show", TINY, *flag)
    assert r.exit_code == 0 and "east" in r.stdout


@pytest.mark.parametrize("flag", [[], ["--placement"]])
def test_schema_prints_json(flag):
    r = run("schema", *flag)
    assert r.exit_code == 0 and json.loads(r.stdout)["type"] == "object"


def test_solvers_lists_the_registry():
    r = run("solvers")
    assert r.exit_code == 0
    for name, _, _ in placer.solvers.list_solvers():
        assert name in r.stdout


def test_solvers_lists_each_backends_options():
    r = run("solvers")
    assert r.exit_code == 0
    for key in ("work_limit", "exact_small", "lp_rounding", "mip_solver"):
        assert key in r.stdout
    assert "progress" not in r.stdout  # a library callback, not a user option
    assert [k for k, _, _ in placer.solvers.options("cpsat")] == [
        "exact_small",
        "lp_rounding",
        "work_limit",
    ]


def test_generate_writes_a_loadable_instance(tmp_path):
    p = tmp_path / "g.yaml"
    r = run("generate", "superpod", "--seed", "3", "--out", p)
    assert r.exit_code == 0
    assert placer.load_instance(p).jobs


def test_generate_refuses_an_unknown_family():
    r = run("generate", "no-such-family")
    assert r.exit_code == 2 and "error" in r.stderr


def test_score_and_check_of_a_solved_placement(tiny_placement):
    r = run("score", TINY, tiny_placement, "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["totals"]["objective"] > 0
    r = run("score", TINY, tiny_placement)
    assert r.exit_code == 0 and "objective" in r.stdout
    r = run("check", TINY, tiny_placement)
    assert r.exit_code == 0 and r.stdout.startswith("ok")


def test_check_exits_1_on_violations(tmp_path, tiny_placement):
    d = json.loads(tiny_placement.read_text())
    d["jobs"][1]["gpus"] = d["jobs"][0]["gpus"][: len(d["jobs"][1]["gpus"])]
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    r = run("check", TINY, p, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["feasible"] is False


def test_a_placement_of_another_instance_is_a_warning_naming_both(tmp_path, tiny_placement):
    """SPEC 2's `instance` is compared with the instance's name: a warning on stderr (the
    library: a PlacementWarning), never an error; the exit code is unchanged."""
    d = json.loads(tiny_placement.read_text())
    assert d["instance"] == "tiny"
    d["instance"] = "tiny-old"
    p = tmp_path / "other.json"
    p.write_text(json.dumps(d))
    want = "warning: instance: the placement names instance 'tiny-old', not this instance 'tiny'"
    for args in (("check",), ("check", "--json"), ("score",), ("score", "--json")):
        r = run(args[0], TINY, p, *args[1:])
        assert r.exit_code == 0, r.output
        assert r.stderr.count(want) == 1 and want not in r.stdout
    assert json.loads(run("score", TINY, p, "--json").stdout)["totals"]["objective"] > 0
    for fmt in ("slurm", "kubernetes"):  # the exports check the placement: the same warning
        r = run("export", fmt, TINY, p, "--json")
        assert r.exit_code == 0 and r.stderr.count(want) == 1, r.output
    inst = placer.load_instance(TINY)
    with pytest.warns(PlacementWarning, match="'tiny-old', not this instance 'tiny'"):
        assert placer.check(inst, placer.load_placement(p)) == []
    with pytest.warns(PlacementWarning, match="'tiny-old', not this instance 'tiny'"):
        placer.score(inst, d)
    # infeasible as well: still exit 1, with the warning
    bad = dict(d, jobs=[dict(j) for j in d["jobs"]])
    bad["jobs"][1]["gpus"] = d["jobs"][0]["gpus"][: len(d["jobs"][1]["gpus"])]
    p.write_text(json.dumps(bad))
    r = run("check", TINY, p)
    assert r.exit_code == 1 and want in r.stderr
    # the same name, or no name: nothing
    for name in ("tiny", None):
        d["instance"] = name
        p.write_text(json.dumps(d))
        for cmd in ("check", "score"):
            r = run(cmd, TINY, p)
            assert r.exit_code == 0 and "instance:" not in r.stderr
        with warnings.catch_warnings():
            warnings.simplefilter("error", PlacementWarning)
            placer.check(inst, d)
            placer.score(inst, d)


def test_unknown_keys_of_a_placement_are_warnings_naming_them(tmp_path, tiny_placement):
    """SPEC 6: unknown keys are accepted with a warning that names them, in a placement file
    as in an instance: each named with its place on stderr (a PlacementWarning in the
    library), never an error; the exit code and the answer are unchanged."""
    d = json.loads(tiny_placement.read_text())
    plain = run("score", TINY, tiny_placement, "--json")
    assert plain.exit_code == 0 and "unknown key" not in plain.stderr
    d["colour"] = "red"
    d["jobs"][0]["owner"] = "team-a"
    d["leases"] = [dict(x, note="n") for x in d.get("leases", [])]
    d["score"] = dict(d.get("score") or {}, anything="the breakdown is not looked into")
    d["warnings"] = ["placer's own answers (the service's POST /solve) carry this key"]
    p = tmp_path / "extra.json"
    p.write_text(json.dumps(d))
    want = ["warning: colour: unknown key ignored", "warning: jobs[0].owner: unknown key ignored"]
    want += [f"warning: leases[{i}].note: unknown key ignored" for i in range(len(d["leases"]))]
    for args in (("check",), ("check", "--json"), ("score",), ("score", "--json")):
        r = run(args[0], TINY, p, *args[1:])
        assert r.exit_code == 0, r.output
        got = [line for line in r.stderr.splitlines() if "unknown key" in line]
        assert got == want, r.stderr
    assert json.loads(run("score", TINY, p, "--json").stdout) == json.loads(plain.stdout)
    inst = placer.load_instance(TINY)
    with pytest.warns(PlacementWarning) as rec:
        assert placer.check(inst, d) == []
    assert [str(w.message) for w in rec] == [w.removeprefix("warning: ") for w in want]


@pytest.mark.parametrize(
    "command",
    [("score", "--json"), ("check", "--json"), ("solve", "--json"), ("solve", "-q")],
)
def test_warnings_reach_stderr_also_with_json_or_quiet(tmp_path, command):
    # SPEC 6: unknown keys are accepted "with a warning that names them" (and microbatches
    # on an inference job is ignored with a warning); with --json or -q they were dropped
    d = builders.one_site(
        jobs=[{"name": "s", "kind": "inference", "replicas": 1, "value": 1, "microbatches": 4}]
    )
    d["colour"] = "blue"
    inst = tmp_path / "inst.json"
    inst.write_text(json.dumps(d))
    pl = tmp_path / "pl.json"
    pl.write_text(json.dumps({"jobs": [{"name": "s", "units": 1, "gpus": ["a/node0/gpu0"]}]}))
    name, flag = command
    r = run(name, inst, *([pl] if name != "solve" else []), flag)
    assert r.exit_code == 0
    assert "colour: unknown key" in r.stderr and "jobs[0].microbatches" in r.stderr
    if flag == "--json":
        json.loads(r.stdout)  # stdout is the JSON alone
    else:
        assert r.stdout == ""


# ---------------------------------------------------------------------- what is called


def test_solve_calls_the_library_with_the_parsed_arguments(monkeypatch):
    seen = {}
    real = placer.api.solve

    def spy(inst, **kw):
        seen.update(kw, name=inst.name)
        return real(inst, **kw)

    monkeypatch.setattr(placer.api, "solve", spy)
    r = run(
        "solve",
        TINY,
        "--solver",
        "mip",
        "--time-limit",
        "7",
        "--seed",
        "3",
        "--threads",
        "1",
        "-O",
        "exact_small=false",
        "-q",
    )
    assert r.exit_code == 0
    assert seen == {
        "name": "tiny",
        "solver": "mip",
        "time_limit": 7.0,
        "seed": 3,
        "threads": 1,
        "exact_small": False,
    }


def test_time_limit_0_on_the_command_line_means_no_limit(monkeypatch):
    seen = {}
    real = placer.api.solve

    def spy(inst, **kw):
        seen.update(kw)
        return real(inst, **kw)

    monkeypatch.setattr(placer.api, "solve", spy)
    assert run("solve", TINY, "--time-limit", "0", "-q", "--solver", "greedy").exit_code == 0
    assert seen["time_limit"] is None


def test_score_and_check_call_the_library_with_the_loaded_documents(monkeypatch, tiny_placement):
    calls = []
    real_score, real_check = placer.api.score, placer.api.check

    def score_spy(inst, pl):
        calls.append(("score", inst.name, len(pl.jobs)))
        return real_score(inst, pl)

    def check_spy(inst, pl):
        calls.append(("check", inst.name, len(pl.jobs)))
        return real_check(inst, pl)

    monkeypatch.setattr(placer.api, "score", score_spy)
    monkeypatch.setattr(placer.api, "check", check_spy)
    run("score", TINY, tiny_placement, "--json")
    run("check", TINY, tiny_placement)
    assert calls == [("score", "tiny", 3), ("check", "tiny", 3)]


# ---------------------------------------------------------------------- every status


@pytest.mark.parametrize("backend", [n for n, ok, _ in placer.solvers.list_solvers() if ok])
def test_solve_without_a_placement_says_why_and_exits_1_with_every_backend(backend, clash_file):
    r = run("solve", clash_file, "--solver", backend, "--time-limit", "10")
    assert r.exit_code == 1
    assert "infeasible" in r.stderr or "no_solution" in r.stderr


@pytest.mark.parametrize("flags", [[], ["--json"], ["-q"]])
def test_a_time_limit_hit_at_once_returns_the_greedys_placement_and_says_who_was_not_reached(
    flags,
):
    """Issue 16: every backend starts from the greedy, which keeps the running jobs that
    must stay even past the deadline; the jobs it did not reach say so."""
    r = run("solve", COLOSSUS, "--time-limit", "0.001", *flags)
    assert r.exit_code == 0
    if flags == ["--json"]:
        doc = json.loads(r.stdout)
        assert doc["status"] == "feasible"
        left_out = [j for j in doc["jobs"] if not j["units"]]
        assert left_out and all(
            j["reason"].startswith("not reached before the time limit") for j in left_out
        )


@pytest.mark.parametrize(
    "status",
    [
        placer.Status.OPTIMAL,
        placer.Status.FEASIBLE,
        placer.Status.INFEASIBLE,
        placer.Status.NO_SOLUTION,
    ],
)
def test_every_status_renders_with_its_exit_code(monkeypatch, status, tmp_path):
    inst = placer.load_instance(TINY)
    real = placer.api.solve

    def fake(inst_, **kw):
        if status.has_placement:
            res = real(inst_, solver="greedy", time_limit=5)
            res.status = status
            return res
        return no_placement(inst_, "fake", status, f"because {status}", time.perf_counter())

    monkeypatch.setattr(placer.api, "solve", fake)
    out = tmp_path / "o.json"
    r = run("solve", TINY, "--out", out)
    assert r.exit_code == (0 if status.has_placement else 1)
    assert json.loads(out.read_text())["instance"] == inst.name
    if not status.has_placement:
        assert f"because {status}" in r.stderr


@pytest.mark.parametrize(
    "args, where",
    [
        (["--work-limit", "-1"], "work_limit"),
        (["--threads", "0"], "threads"),
        (["--threads", "-3"], "threads"),
        (["--time-limit", "-1"], "time_limit"),
        (["--time-limit", "nan"], "time_limit"),
        (["-O", "exact_smal=false"], "exact_smal"),
        (["-O", "novalue"], "KEY=VALUE"),
        (["--solver", "gurobi-magic"], "gurobi-magic"),
    ],
)
def test_bad_solve_arguments_name_the_argument_and_exit_2(args, where):
    r = run("solve", TINY, *args)
    assert r.exit_code == 2
    assert where in r.stderr


@pytest.mark.parametrize("work_limit", ["0", "1e-6"])
def test_a_tiny_work_limit_gives_a_placement_not_a_bound_error(work_limit):
    r = run("solve", TINY, "--work-limit", work_limit, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] in ("optimal", "feasible")
    assert doc["bound"] is None or doc["bound"] >= doc["objective"] - 1e-6


# ---------------------------------------------------------------------- error flood


@pytest.mark.parametrize("command", ["check", "score"])
def test_a_flood_of_bad_gpu_entries_prints_a_capped_list(tmp_path, command):
    doc = {
        "instance": "tiny",
        "jobs": [{"name": "train-13b", "units": 1, "gpus": list(range(100_000))}],
    }
    p = tmp_path / "flood.json"
    p.write_text(json.dumps(doc))
    r = run(command, TINY, p)
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == MAX_ERRORS + 1
    assert "99,980 more" in lines[-1]
    with pytest.raises(placer.PlacementError) as e:
        placer.load_placement(p)
    assert len(e.value.problems) == 100_000  # the library keeps them all
