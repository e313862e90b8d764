"""`placer replay` and `placer generate-trace`: the simulation's semantics on small cases,
every peer policy driven through the same events, the CLI."""

from __future__ import annotations

import json

import pytest
import yaml
from builders import one_site, training
from typer.testing import CliRunner

import placer
from placer.cli import app
from placer.errors import InstanceError, UsageError
from placer.replay import generate_trace, load_events, policies, replay

runner = CliRunner()


def small():
    return placer.load_instance(one_site(nodes=4, gpus_per_node=2))


def ev(events):
    return load_events({"events": events})


def test_a_training_job_completes_when_its_work_is_done():
    inst = small()
    # 8 units on 8 GPUs: goodput g (just under 1: DP latency), speed 1, units/dp = 1, so
    # 2 / g hours of work, and a value of 8 GPUs x g x 1 vu x 2 / g hours = 16 vu exactly
    events = ev([{"at_hours": 1, "submit": training("t", 8, remaining_hours=2)}])
    m = replay(inst, events, until=10)["placer"]
    assert m["completed"] == 1
    assert m["completion_mean_h"] == pytest.approx(2.0, rel=1e-2)
    assert m["queueing_mean_h"] == pytest.approx(0.0)
    # value: 8 GPUs x 1 vu/GPU-hour x goodput 1 for 2 hours
    assert m["value"] == pytest.approx(16.0, rel=1e-6)
    assert m["utilisation_mean"] == pytest.approx(m["completion_mean_h"] / 10)


def test_a_job_that_does_not_fit_waits_in_the_queue_and_starts_when_room_frees():
    inst = small()
    events = ev(
        [
            {"at_hours": 0, "submit": training("a", 8)},
            {"at_hours": 1, "submit": training("b", 4, remaining_hours=1)},
            {"at_hours": 3, "finish": "a"},
        ]
    )
    m = replay(inst, events, until=10)["placer"]
    assert m["completed"] == 1  # b; a was finished by its event
    assert m["queueing_mean_h"] == pytest.approx((0 + 2) / 2)
    assert m["completion_mean_h"] == pytest.approx(3.0, rel=1e-2)


def test_every_peer_policy_is_driven_through_the_same_events():
    inst = small()
    events = ev(
        [
            {"at_hours": 0, "submit": training("a", 4, remaining_hours=2)},
            {"at_hours": 0.5, "submit": training("b", 4, remaining_hours=1)},
            {"at_hours": 1, "fail": ["a/node0"]},
            {"at_hours": 2, "restore": ["a/node0"]},
        ]
    )
    res = replay(inst, events, policy_names=policies(), until=6, peer_time_limit=5)
    assert set(res) == set(policies()) and len(res) >= 5
    for m in res.values():
        assert m["submitted"] == 2 and m["completed"] == 2


def test_snapshots_are_written_after_every_event_and_pass_the_checker(tmp_path):
    inst = small()
    events = ev(
        [
            {"at_hours": 0, "submit": training("a", 4)},
            {"at_hours": 1, "fail": ["a/node0"]},
        ]
    )
    replay(inst, events, until=2, snapshots=tmp_path)
    files = sorted((tmp_path / "placer").glob("*.instance.json"))
    assert len(files) == 2
    for f in files:
        i = placer.load_instance(json.loads(f.read_text()))
        p = json.loads(f.with_name(f.name.replace("instance", "placement")).read_text())
        assert placer.check(i, p) == []


def test_bad_events_are_refused_with_their_location():
    with pytest.raises(InstanceError, match=r"events\[0\]\.submit\.tp"):
        load_events({"events": [{"at_hours": 0, "submit": training("a", 1, tp=0)}]})
    with pytest.raises(InstanceError, match="exactly one"):
        load_events({"events": [{"at_hours": 0, "finish": "a", "fail": ["x"]}]})
    with pytest.raises(InstanceError, match=r"events\[1\]\.submit\.name"):
        load_events(
            {
                "events": [
                    {"at_hours": 0, "submit": training("a", 1)},
                    {"at_hours": 1, "submit": training("a", 1)},
                ]
            }
        )
    with pytest.raises(UsageError, match="unknown 'nope'"):
        replay(small(), [], policy_names=["nope"])


def test_generated_traces_are_seeded_valid_and_replayable():
    inst = placer.load_instance("instances/tiny.yaml")
    a = generate_trace(inst, hours=12, seed=3, failures=1)
    assert a == generate_trace(inst, hours=12, seed=3, failures=1)
    assert a != generate_trace(inst, hours=12, seed=4, failures=1)
    evs = load_events(a)
    kinds = {e.kind for e in evs}
    assert {"submit", "fail", "restore"} <= kinds
    m = replay(inst, evs, until=12)["placer"]
    assert m["submitted"] == sum(e.kind == "submit" for e in evs)


def test_cli_generate_trace_and_replay(tmp_path):
    trace = tmp_path / "t.yaml"
    r = runner.invoke(
        app,
        ["generate-trace", "instances/tiny.yaml", "--hours", "6", "--seed", "2", "-o", str(trace)],
    )
    assert r.exit_code == 0, r.output
    assert yaml.safe_load(trace.read_text())["events"]
    r = runner.invoke(
        app,
        [
            "replay",
            "instances/tiny.yaml",
            str(trace),
            "--policy",
            "placer",
            "--policy",
            "firstfit",
            "--until",
            "6",
            "--json",
            "--peer-time-limit",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert set(d) == {"placer", "firstfit"} and "value" in d["placer"]
    r = runner.invoke(app, ["replay", "instances/tiny.yaml", str(trace), "--policy", "zzz"])
    assert r.exit_code == 2 and "unknown 'zzz'" in r.output


def test_a_submitted_job_the_cluster_would_refuse_is_refused_at_its_event(tmp_path):
    inst = small()
    bad = {k: v for k, v in training("late", 2).items() if k != "compute_ms"}
    events = [
        {"at_hours": 0, "submit": training("a", 2)},
        {"at_hours": 1, "finish": "a"},
        {"at_hours": 2, "submit": training("b", 2, scope={"dp": "rack"})},
        {"at_hours": 0.5, "submit": bad},  # index 3 in the file, second once sorted
    ]
    with pytest.raises(InstanceError) as e:
        load_events({"events": events}, inst)
    assert e.value.problems == [
        (
            "events[2].submit.scope.dp",
            "unknown level 'rack' (levels: ['site', 'node'] or 'cluster')",
        ),
        ("events[3].submit.compute_ms", "is required for a training job"),
    ]
    # the library's replay checks the list it is given, before any policy runs
    with pytest.raises(InstanceError, match=r"events\[1\]\.submit\.compute_ms"):
        replay(inst, load_events({"events": events}), until=3)
    # and the CLI says where, in one line per problem, exit 2
    p, q = tmp_path / "inst.json", tmp_path / "events.yaml"
    p.write_text(json.dumps(one_site(nodes=4, gpus_per_node=2)))
    q.write_text(yaml.safe_dump({"events": events}))
    res = runner.invoke(app, ["replay", str(p), str(q)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "error: events[3].submit.compute_ms: is required for a training job" in res.stderr


# ------------------------------------------------------------------ plans (SPEC v3)
def planned(name: str, **kw) -> dict:
    """8 GPUs either way: 'dp8' (its first plan) or 'tp2' at half the compute time per step
    and 1.5x the value: the better plan finishes its work in half the time."""
    plans = [
        {"name": "dp8", "tp": 1, "dp": 8},
        {"name": "tp2", "tp": 2, "dp": 4, "compute_ms": 50, "value": 1.5},
    ]
    return {"name": name, "kind": "training", "compute_ms": 100, "value": 1, "plans": plans, **kw}


def test_replay_runs_jobs_with_plans_under_the_chosen_plan(tmp_path):
    inst = small()
    events = ev([{"at_hours": 0, "submit": planned("p", remaining_hours=2)}])
    res = replay(inst, events, policy_names=["placer", "firstfit"], until=4, snapshots=tmp_path)
    # placer runs tp2: 4 units of 4 x (100/50) work each: 2 hours of work in 1 hour
    assert res["placer"]["completed"] == 1
    assert res["placer"]["completion_mean_h"] == pytest.approx(1.0, rel=1e-2)
    assert res["placer"]["value"] == pytest.approx(8 * 1.5 * 1.0, rel=1e-2)
    # a peer has no plan choice: its first plan, dp8, which needs the full 2 hours
    assert res["firstfit"]["completion_mean_h"] == pytest.approx(2.0, rel=1e-2)
    assert res["firstfit"]["value"] == pytest.approx(8 * 1.0 * 2.0, rel=1e-2)
    for policy, plan in (("placer", "tp2"), ("firstfit", "dp8")):
        f = tmp_path / policy / "00000.instance.json"
        i_d = json.loads(f.read_text())
        p_d = json.loads(f.with_name("00000.placement.json").read_text())
        (job,) = i_d["jobs"]
        assert job["current_plan"] == plan and p_d["jobs"][0]["plan"] == plan
        assert job["plans"] == planned("p")["plans"]  # as submitted (no defaults added)
        assert placer.check(placer.load_instance(i_d), p_d) == []


def test_a_bad_plan_in_an_event_is_refused_at_its_place():
    bad = planned("p")
    bad["plans"][1]["tp"] = 0
    with pytest.raises(InstanceError, match=r"events\[0\]\.submit\.plans\[1\]\.tp"):
        load_events({"events": [{"at_hours": 0, "submit": bad}]}, small())
