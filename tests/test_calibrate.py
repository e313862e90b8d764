"""placer.calibrate: the nccl-tests reader on every output form, the fit (round trip from a
known fabric), host mapping, overlays and --fabric, the step-time fit with its hold-out
error, and the `placer calibrate` commands."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import builders
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from nccl_synth import Form, write_log
from typer.testing import CliRunner

import placer
import placer.calibrate as cal
from placer.calibrate import nccltests
from placer.calibrate.fit import Point, fit_level
from placer.cli import app
from placer.errors import ArgumentTypeError, CalibrationError, UsageError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "nccl"
CLUSTER = DATA / "cluster.yaml"
TINY = ROOT / "instances" / "tiny.yaml"
runner = CliRunner()


def run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    text = (res.stdout or "") + (res.stderr or "")
    assert "Traceback" not in text, text
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


@pytest.fixture(scope="module")
def cluster():
    return placer.load_instance(CLUSTER)


# ------------------------------------------------------------------ every log form parses

# file -> (collective, where it was told, ranks, groups, samples, first (bytes, us), cputime)
FIXTURES = {
    "old-2020-efa_all_reduce_perf.log": ("all_reduce", "file name", 2, 1, 58, (8, 52.16), False),
    "h100-2024_all_reduce_perf.log": ("all_reduce", "file name", 16, 1, 62, (8, 135.8), False),
    "h200-tag-output.log": ("all_gather", "bandwidth ratio", 16, 1, 48, (1024, 28.39), False),
    "v2.13-2023_reduce_scatter_perf.log": (
        "reduce_scatter",
        "file name",
        8,
        1,
        16,
        (0, 5.70),
        False,
    ),
    "old-2021-blank-redop_alltoall_perf.log": (
        "alltoall",
        "file name",
        64,
        1,
        4,
        (268435456, 520935.0),
        False,
    ),
    "a40-2024_sendrecv_perf.log": ("sendrecv", "file name", 2, 1, 10, (256, 34.24), False),
    "v2.19-timestamps_all_reduce_perf.log": ("all_reduce", "log", 2, 1, 58, (8, 52.16), False),
    "v2.19-per-iteration_all_reduce_perf.log": ("all_reduce", "log", 2, 1, 58, (8, 52.16), False),
    "v2.19-cputime_all_reduce_perf.log": ("all_reduce", "log", 2, 1, 58, (8, 7.75), True),
    "v2.19-split-mod8_all_reduce_perf.log": ("all_reduce", "log", 16, 8, 58, (8, 52.16), False),
    "v2.19-split-mod8_all_reduce_perf.json": ("all_reduce", "json", 16, 8, 58, (8, 52.16), False),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_fixture_form_parses_by_its_header(name):
    coll, told, ranks, groups, samples, first, cpu = FIXTURES[name]
    (run_,) = nccltests.read(DATA / name)
    assert (run_.collective, run_.collective_from) == (coll, told)
    assert len(run_.ranks) == ranks and len(run_.groups()) == groups
    assert len(run_.samples) == samples and not run_.skipped
    s = run_.samples[0]
    assert (s.bytes, s.time_us, s.in_place) == (first[0], first[1], False)
    assert run_.cputime is cpu


def test_fixtures_are_documented_with_their_source():
    readme = (DATA / "README.md").read_text()
    for name in FIXTURES:
        assert name in readme, name


def test_a_row_cut_by_an_nccl_info_line_is_joined_back():
    (r,) = nccltests.read(DATA / "h200-tag-output.log")
    first = [s for s in r.samples if s.bytes == 1024]
    assert [(s.time_us, s.in_place) for s in first] == [(28.39, False), (28.07, True)]
    assert {s.line for s in first} == {29}  # the row's own line, not the continuation's


def test_a_column_printed_blank_is_placed_by_the_header_positions():
    (r,) = nccltests.read(DATA / "old-2021-blank-redop_alltoall_perf.log")
    assert [(s.bytes, s.time_us, s.wrong) for s in r.samples] == [
        (268435456, 520935.0, False),
        (268435456, 519562.0, True),  # in-place `error` 1e+00: wrong results
        (536870912, 1041974.0, False),
        (536870912, 1041299.0, True),
    ]


def test_sendrecv_in_place_wrong_na_is_not_wrong():
    (r,) = nccltests.read(DATA / "a40-2024_sendrecv_perf.log")
    assert not any(s.wrong for s in r.samples)


def test_split_groups_from_the_group_column_and_the_json_env():
    for name in ("v2.19-split-mod8_all_reduce_perf.log", "v2.19-split-mod8_all_reduce_perf.json"):
        (r,) = nccltests.read(DATA / name)
        g = r.groups()
        assert r.split == "MOD 8" and sorted(len(v) for v in g.values()) == [2] * 8
        assert {k.host for k in g[0]} == {"e-r1-n0", "e-r1-n1"}


def test_old_logs_take_the_split_as_an_argument():
    text, _ = write_log("all_reduce", ["e-r0-n0", "e-r0-n1"], 8, 3.0, 40.0, form=Form(old=True))
    (r,) = nccltests.read("old_all_reduce_perf.log", text)
    assert len(r.groups()) == 1
    g = r.groups("MOD 8")
    assert len(g) == 8 and all(len(v) == 2 for v in g.values())
    assert {k.host for k in g[3]} == {"e-r0-n0", "e-r0-n1"}


@pytest.mark.parametrize(
    "rule,proc,color",
    [
        ("MOD 8", 13, 5),
        ("% 8", 13, 5),
        ("DIV 8", 13, 1),
        ("/8", 13, 1),
        ("AND 0x7", 13, 5),
        ("& 7", 13, 5),
        ("OR 0b111", 8, 15),
        ("| 7", 8, 15),
    ],
)
def test_split_rules_follow_nccl_tests(rule, proc, color):
    assert nccltests.split_rule(rule)(proc) == color


def test_a_bad_split_rule_is_refused():
    with pytest.raises(CalibrationError, match="NCCL_TESTS_SPLIT 'XOR 3'"):
        nccltests.split_rule("XOR 3")


@settings(max_examples=40, deadline=None)
@given(
    old=st.booleans(),
    redop=st.booleans(),
    per_iter=st.booleans(),
    timestamps=st.booleans(),
    cputime=st.booleans(),
    prefix=st.sampled_from(["", "[1,0]<stdout>:", "[0] ", "0: ", "(head, rank=0, pid=38) "]),
    info=st.booleans(),
    coll=st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "alltoall", "sendrecv"]),
    seed=st.integers(0, 1000),
)
def test_every_column_variant_reads_back_what_was_printed(
    old, redop, per_iter, timestamps, cputime, prefix, info, coll, seed
):
    form = Form(
        old=old,
        redop=redop or not old,
        per_iter=per_iter and not old,
        timestamps=timestamps and not old,
        cputime=cputime and not old,
        prefix=prefix,
        nccl_info=info,
    )
    text, rows = write_log(
        coll,
        ["e-r0-n0", "e-r0-n1"],
        4,
        3.0,
        40.0,
        noise=0.05,
        seed=seed,
        sizes=[8, 4096, 1 << 20, 1 << 30],
        form=form,
    )
    (r,) = nccltests.read(f"{coll}_perf.log", text)
    got = [(s.bytes, s.time_us) for s in r.samples]
    want = [x for b, o, i in rows for x in ((b, o), (b, i))]
    assert got == want and not r.skipped
    assert r.collective == coll and len(r.ranks) == 8 and r.cputime == form.cputime


def test_two_interleaved_runs_are_refused_naming_the_line():
    with pytest.raises(CalibrationError) as e:
        nccltests.read(DATA / "bad-two-runs_all_reduce_perf.log")
    ((loc, msg),) = e.value.problems
    assert loc.endswith("bad-two-runs_all_reduce_perf.log:8") and "rank 0 appears twice" in msg


@pytest.mark.parametrize(
    "text,where,what",
    [
        ("hello\nworld\n", "x.log", "no nccl-tests results"),
        ('{"results": [', "x.log:1", "not valid JSON"),
        ('{"config": {}}', "x.log", "without a `results` list"),
    ],
)
def test_unreadable_logs_are_refused_with_their_place(text, where, what):
    with pytest.raises(CalibrationError) as e:
        nccltests.read("x.log", text)
    assert e.value.problems[0][0] == where and what in e.value.problems[0][1]


def test_a_log_without_rank_lines_is_refused():
    text = (DATA / "old-2020-efa_all_reduce_perf.log").read_text()
    text = "\n".join(x for x in text.splitlines() if "Rank" not in x)
    with pytest.raises(CalibrationError, match="no `#  Rank N"):
        nccltests.read("x_all_reduce_perf.log", text)


def test_a_collective_nothing_tells_is_refused_unless_given():
    text = (DATA / "old-2020-efa_all_reduce_perf.log").read_text()
    with pytest.raises(CalibrationError, match="cannot tell the collective"):
        nccltests.read("efa.log", text)  # 2 ranks: all-reduce and send/recv look alike
    (r,) = nccltests.read("efa.log", text, collective="all_reduce")
    assert r.collective_from == "given"


# ------------------------------------------------------------------ the fit


TRUTH = {"node": (1.0, 370.0), "rack": (4.0, 48.5), "site": (7.0, 23.0)}


def synthetic_logs(seed: int, west=(5.5, 40.0)):
    """One log per level of the fixture cluster, from a known fabric, with 3% noise."""
    logs = []
    t, _ = write_log("all_reduce", ["e-r0-n0"], 8, *TRUTH["node"], noise=0.03, seed=seed)
    logs.append(("node_all_reduce_perf.log", t))
    t, _ = write_log(
        "all_reduce",
        ["e-r1-n0", "e-r1-n1", "e-r1-n2", "e-r1-n3"],
        8,
        *TRUTH["rack"],
        noise=0.03,
        seed=seed + 1,
        split_mod=8,
    )
    logs.append(("rack_all_reduce_perf.log", t))
    t, _ = write_log(
        "alltoall",
        ["e-r0-n1", "e-r1-n1", "e-r2-n0", "e-r3-n0"],
        1,
        *TRUTH["site"],
        noise=0.03,
        seed=seed + 2,
    )
    logs.append(("site_alltoall_perf.log", t))
    if west:
        t, _ = write_log("sendrecv", ["w-r1-n0", "w-r1-n1"], 1, *west, noise=0.03, seed=seed + 3)
        logs.append(("west_sendrecv_perf.log", t))
    return logs


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_round_trip_recovers_the_fabric_at_every_level(cluster, seed):
    c = cal.nccl(cluster, synthetic_logs(seed))
    got = {(f.level, f.site): f for f in c.fits}
    truth = {
        ("node", None): TRUTH["node"],
        ("site", None): TRUTH["site"],
        ("rack", "east"): TRUTH["rack"],
        ("rack", "west"): (5.5, 40.0),
    }
    assert set(got) == set(truth)
    for key, (lat, bw) in truth.items():
        f = got[key]
        assert abs(f.latency_us / lat - 1) <= 0.10, (key, f.latency_us)
        assert abs(f.bandwidth_GBps / bw - 1) <= 0.03, (key, f.bandwidth_GBps)
        assert f.latency_interval[0] <= f.latency_us <= f.latency_interval[1]
        assert f.bandwidth_interval[0] <= f.bandwidth_GBps <= f.bandwidth_interval[1]
    # rack measured in two sites: one override each; node and site: the topology default
    assert c.overlay["topology"]["fabric"].keys() == {"node", "site"}
    assert [s["name"] for s in c.overlay["topology"]["sites"]] == ["east", "west"]


def test_one_site_per_level_calibrates_the_default_unless_per_site(cluster):
    logs = synthetic_logs(5, west=None)
    c = cal.nccl(cluster, logs)
    assert set(c.overlay["topology"]["fabric"]) == {"node", "rack", "site"}
    c2 = cal.nccl(cluster, logs, per_site=True)
    assert "fabric" not in c2.overlay["topology"]
    (east,) = c2.overlay["topology"]["sites"]
    assert east["name"] == "east" and set(east["fabric"]) == {"node", "rack", "site"}


def test_the_fit_drops_what_cannot_inform_it_and_says_why():
    pts = [
        Point("rack", None, "allreduce", 4, float(b), 6 * 4.0 + 1.5 * b / 48.5e3, f"l:{i}")
        for i, b in enumerate(2 ** np.arange(3, 31))
    ]
    pts.append(Point("rack", None, "allreduce", 4, 0.0, 20.0, "zero"))
    pts.append(Point("rack", None, "allreduce", 4, 1e6, 50.0, "bad", wrong=True))
    pts.append(Point("rack", None, "allreduce", 4, 1e6, 50.0, "cpu", cputime=True))
    pts[10] = Point("rack", None, "allreduce", 4, pts[10].bytes, pts[10].time_us * 3, "outlier")
    f = fit_level(pts)
    why = {p.where: w for p, w in f.dropped}
    assert set(why) == {"zero", "bad", "cpu", "outlier"}
    assert "0 bytes" in why["zero"] and "wrong" in why["bad"] and "CPU time" in why["cpu"]
    assert re.match(r"outlier: measured \+19\d% off the fit", why["outlier"])
    assert f.latency_us == pytest.approx(4.0, rel=1e-6)
    assert f.bandwidth_GBps == pytest.approx(48.5, rel=1e-6)


def test_too_few_points_leave_the_level_unfitted_and_out_of_the_overlay(cluster):
    text, _ = write_log("all_reduce", ["e-r0-n0"], 8, 1.0, 370.0, sizes=[1 << 20])
    c = cal.nccl(cluster, [("node_all_reduce_perf.log", text)])
    (f,) = c.fits
    assert "at least 3" in f.note and c.overlay == {"topology": {}}


def test_a_missing_scipy_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(UsageError, match=r"pip install 'placer\[calibrate\]'"):
        fit_level([Point("node", None, "p2p", 2, 8.0, 1.0, "x")] * 3)


# ------------------------------------------------------------------ placing runs


def test_hostnames_with_a_domain_and_explicit_maps_find_their_nodes(cluster):
    text, _ = write_log(
        "all_reduce", ["e-r0-n0.cluster.local", "gpu-box-7"], 8, 4.0, 48.5, noise=0.01
    )
    logs = [("rack_all_reduce_perf.log", text)]
    with pytest.raises(CalibrationError, match="host 'gpu-box-7' is not a node"):
        cal.nccl(cluster, logs)
    c = cal.nccl(cluster, logs, hosts={"gpu-box-7": "east/r0/e-r0-n3"})
    assert (c.runs[0].level, c.runs[0].site) == ("rack", "east")
    with pytest.raises(CalibrationError, match="not a node path"):
        cal.nccl(cluster, logs, hosts={"gpu-box-7": "east/r0"})


def test_level_overrides_the_hosts_per_file(cluster):
    text, _ = write_log("all_reduce", ["unknown-a", "unknown-b"], 8, 4.0, 48.5, noise=0.01)
    c = cal.nccl(
        cluster, [("a_all_reduce_perf.log", text)], level={"a_all_reduce_perf.log": "rack"}
    )
    assert c.runs[0].level == "rack" and c.runs[0].level_from == "given"
    with pytest.raises(UsageError, match="not a level"):
        cal.nccl(cluster, [("a_all_reduce_perf.log", text)], level="pod")


def test_a_run_across_sites_is_refused(cluster):
    text, _ = write_log("sendrecv", ["e-r0-n0", "w-r0-n0"], 1, 400.0, 50.0)
    with pytest.raises(CalibrationError, match="span sites"):
        cal.nccl(cluster, [("wan_sendrecv_perf.log", text)])


def test_unfitted_collectives_are_reported_not_fitted(cluster):
    text, _ = write_log("all_reduce", ["e-r0-n0"], 8, 1.0, 370.0, noise=0.01)
    text2 = text.replace("all_reduce_perf", "broadcast_perf")
    c = cal.nccl(cluster, [("node_all_reduce_perf.log", text), ("b.log", text2)])
    assert "no SPEC 4 term" in c.runs[1].note and len(c.fits) == 1


def test_misuse_names_the_argument(cluster):
    with pytest.raises(ArgumentTypeError, match="instance: expected a placer.Instance"):
        cal.nccl(str(CLUSTER), [DATA / "h200-tag-output.log"])
    with pytest.raises(UsageError, match="logs"):
        cal.nccl(cluster, [])
    with pytest.raises(UsageError, match="collective"):
        cal.nccl(cluster, [DATA / "h200-tag-output.log"], collective="gather")


# ------------------------------------------------------------------ overlays and --fabric


def test_an_overlay_merges_field_by_field_and_validates():
    base = yaml.safe_load(TINY.read_text())
    ov = {
        "topology": {
            "fabric": {"rack": {"bandwidth_GBps": 20}},
            "sites": [{"name": "west", "fabric": {"site": {"latency_us": 9}}}],
        },
        "jobs": [
            {
                "name": "train-13b",
                "compute_ms": 900,
                "overlap": {"dp": 0.5},
                "comm": {"dp_messages": 6},
            }
        ],
    }
    doc = cal.apply(base, ov)
    assert doc["topology"]["fabric"]["rack"] == {"latency_us": 4.0, "bandwidth_GBps": 20}
    west = next(s for s in doc["topology"]["sites"] if s["name"] == "west")
    assert west["fabric"] == {"site": {"latency_us": 9}}
    job = doc["jobs"][0]
    assert job["compute_ms"] == 900 and job["overlap"] == {"tp": 0.3, "pp": 0.7, "dp": 0.5}
    assert job["comm"]["dp_messages"] == 6 and job["comm"]["dp_MB"] == 3250
    assert base["topology"]["fabric"]["rack"]["bandwidth_GBps"] == 48.5  # base untouched
    inst = placer.load_instance(doc)
    assert inst.index.bw_GBps[0, 1] == 20


@pytest.mark.parametrize(
    "ov,loc,what",
    [
        (
            {"topology": {"fabric": {"rak": {"latency_us": 1}}}},
            "topology.fabric.rak",
            "unknown level",
        ),
        (
            {"topology": {"fabric": {"rack": {"latency": 1}}}},
            "topology.fabric.rack.latency",
            "unknown key",
        ),
        (
            {"topology": {"fabric": {"rack": {"bandwidth_GBps": 0}}}},
            "topology.fabric.rack.bandwidth_GBps",
            "> 0",
        ),
        (
            {"topology": {"fabric": {"rack": {"latency_us": True}}}},
            "topology.fabric.rack.latency_us",
            "finite number",
        ),
        (
            {"topology": {"sites": [{"name": "north", "fabric": {}}]}},
            "topology.sites[0].name",
            "unknown site",
        ),
        ({"topology": {"levels": ["site", "node"]}}, "topology.levels", "unknown key"),
        ({"jobs": [{"name": "x", "compute_ms": 1}]}, "jobs[0].name", "unknown job"),
        ({"jobs": [{"name": "train-13b", "overlap": {"dp": 2}}]}, "jobs[0].overlap.dp", "[0, 1]"),
        ({"jobs": [{"name": "train-13b", "value": 9}]}, "jobs[0].value", "unknown key"),
        ({"name": "x"}, "name", "unknown key"),
    ],
)
def test_a_bad_overlay_is_refused_naming_the_place(ov, loc, what):
    base = yaml.safe_load(TINY.read_text())
    with pytest.raises(CalibrationError) as e:
        cal.apply(base, ov)
    ((got_loc, msg),) = e.value.problems
    assert got_loc == f"overlay: {loc}" and what in msg


def test_fabric_changes_what_score_reports(tmp_path):
    pl = tmp_path / "p.json"
    assert run("solve", TINY, "-t", "10", "-q", "-o", pl).exit_code == 0
    ov = tmp_path / "fab.yaml"
    ov.write_text(
        yaml.safe_dump(
            {
                "topology": {
                    "fabric": {"site": {"bandwidth_GBps": 2.0}, "rack": {"bandwidth_GBps": 4.0}}
                }
            }
        )
    )
    a = json.loads(run("score", TINY, pl, "--json").stdout)
    b = json.loads(run("score", TINY, pl, "--json", "--fabric", ov).stdout)
    assert b["objective"] < a["objective"]
    slow = {j["name"]: j["T_dp_ms"] for j in b["jobs"]}
    fast = {j["name"]: j["T_dp_ms"] for j in a["jobs"]}
    assert any(slow[k] > fast[k] for k in fast)


@pytest.mark.parametrize("cmd", ["solve", "decide", "serve", "score"])
def test_every_scoring_command_takes_fabric_and_names_a_bad_one(tmp_path, cmd):
    ov = tmp_path / "fab.yaml"
    ov.write_text("topology:\n  fabric:\n    pod: {latency_us: 1}\n")
    args = [cmd, TINY] + ([tmp_path / "none.json"] if cmd == "score" else [])
    r = run(*args, "--fabric", ov)
    assert r.exit_code == 2
    assert f"{ov}: topology.fabric.pod: unknown level" in r.stderr


def test_fabric_on_solve_and_decide(tmp_path):
    ov = tmp_path / "fab.yaml"
    ov.write_text(yaml.safe_dump({"topology": {"fabric": {"site": {"bandwidth_GBps": 5}}}}))
    r = run("solve", TINY, "-t", "5", "-q", "--json", "--fabric", ov)
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] in ("optimal", "feasible")
    r = run("decide", TINY, "-t", "5", "--json", "--fabric", ov)
    assert r.exit_code == 0 and json.loads(r.stdout)["offers"]


def test_calibrate_apply_writes_the_calibrated_instance(tmp_path):
    ov = tmp_path / "fab.yaml"
    ov.write_text(yaml.safe_dump({"topology": {"fabric": {"node": {"latency_us": 0.5}}}}))
    out = tmp_path / "cal.yaml"
    r = run("calibrate", "apply", TINY, ov, "-o", out)
    assert r.exit_code == 0 and "wrote" in r.stdout
    inst = placer.load_instance(out)
    assert inst.topology.fabric["node"].latency_us == 0.5
    assert inst.topology.fabric["node"].bandwidth_GBps == 370
    same = cal.load(TINY, fabric=ov)
    assert (same.index.lat_us == inst.index.lat_us).all()


# ------------------------------------------------------------------ calibrate nccl (CLI)


def test_calibrate_nccl_writes_overlay_report_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "fab.yaml", tmp_path / "fit.png"
    r = run(
        "calibrate",
        "nccl",
        DATA / "old-2020-efa_all_reduce_perf.log",
        DATA / "a40-2024_sendrecv_perf.log",
        "-i",
        CLUSTER,
        "-o",
        out,
        "--plot",
        png,
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "fitted fabric" in r.stdout and "dropped" in r.stdout
    ov = yaml.safe_load(out.read_text())
    assert [s["name"] for s in ov["topology"]["sites"]] == ["east", "west"]
    assert png.stat().st_size > 10_000
    j = json.loads(
        run(
            "calibrate",
            "nccl",
            DATA / "v2.19-split-mod8_all_reduce_perf.json",
            "-i",
            CLUSTER,
            "--json",
        ).stdout
    )
    assert j["fits"][0]["level"] == "rack" and j["runs"][0]["groups"] == 8


def test_calibrate_nccl_bad_input_exits_2_with_the_place(tmp_path):
    r = run("calibrate", "nccl", DATA / "bad-two-runs_all_reduce_perf.log", "-i", CLUSTER)
    assert r.exit_code == 2 and "bad-two-runs_all_reduce_perf.log:8" in r.stderr
    r = run("calibrate", "nccl", tmp_path / "none.log", "-i", CLUSTER)
    assert r.exit_code == 2 and "cannot read" in r.stderr


# ------------------------------------------------------------------ calibrate steps

STEPS_DOC = {
    "name": "steps",
    "topology": {
        "levels": ["site", "rack", "node"],
        "fabric": {
            "node": {"latency_us": 2, "bandwidth_GBps": 300},
            "rack": {"latency_us": 6, "bandwidth_GBps": 40},
            "site": {"latency_us": 10, "bandwidth_GBps": 15},
        },
        "sites": [
            {
                "name": "a",
                "gpu_type": "H100",
                "gpus_per_node": 8,
                "domains": [{"name": "rack", "count": 2, "shape": [4]}],
            }
        ],
    },
    "jobs": [
        {
            "name": "ddp",
            "kind": "training",
            "dp": 32,
            "min_dp": 1,
            "compute_ms": 100,
            "overlap": {"dp": 0.3},
            "comm": {"dp_MB": 400, "dp_messages": 16},
            "value": 1,
        },
        {
            "name": "mp",
            "kind": "training",
            "tp": 4,
            "pp": 2,
            "dp": 4,
            "min_dp": 1,
            "compute_ms": 300,
            "overlap": {"tp": 0.1, "pp": 0.5, "dp": 0.6},
            "comm": {
                "tp_MB": 200,
                "tp_messages": 40,
                "pp_MB": 50,
                "pp_messages": 8,
                "dp_MB": 800,
                "dp_messages": 4,
            },
            "value": 1,
        },
    ],
}


def measured_rows(noise: float = 0.01, seed: int = 1, reps: int = 24):
    """Step times the kernel gives the true jobs at random placements, with noise."""
    inst = placer.load_instance(copy.deepcopy(STEPS_DOC))
    ix = inst.index
    rng = np.random.default_rng(seed)
    nodes = [ix.node_path(n) for n in range(ix.n_domains(2))]
    rows = []
    for _ in range(reps):
        for j, job in enumerate(inst.jobs):
            units = int(rng.integers(1, 5)) * (1 if job.name == "mp" else 2)
            n = units * job.unit_size
            gpus, perm, k = [], rng.permutation(len(nodes)), 0
            while len(gpus) < n:
                take = min(n - len(gpus), int(rng.integers(4, 9)))
                gpus += [f"{nodes[perm[k]]}/gpu{g}" for g in range(take)]
                k += 1
            pl = {"instance": "steps", "jobs": [{"name": job.name, "units": units, "gpus": gpus}]}
            step = placer.score(inst, pl).jobs[j]["step_ms"]
            rows.append(
                {
                    "job": job.name,
                    "gpus": " ".join(gpus),
                    "step_ms": step * (1 + noise * rng.standard_normal()),
                }
            )
    return rows


def test_steps_fit_recovers_compute_and_overlap_and_predicts_held_out_steps():
    doc = copy.deepcopy(STEPS_DOC)
    doc["jobs"][0].update(compute_ms=50, overlap={}, comm={"dp_MB": 400})
    doc["jobs"][1].update(
        compute_ms=100, overlap={}, comm={"tp_MB": 200, "pp_MB": 50, "dp_MB": 800}
    )
    inst = placer.load_instance(doc)
    c = cal.steps(inst, measured_rows(noise=0.003), k=4)
    ddp, mp = c.jobs
    assert ddp.fit.compute_ms == pytest.approx(100, rel=0.03)
    assert ddp.fit.overlap["dp"] == pytest.approx(0.3, abs=0.05)
    assert mp.fit.compute_ms == pytest.approx(300, rel=0.03)
    s = c.summary()
    assert s["heldout_mdape"] < 0.02 and s["heldout_spearman_pooled"] > 0.9
    assert 0 <= s["heldout_pair_order"] <= 1 and s["pairs"] > 0
    assert c.overlay["jobs"][0]["name"] == "ddp" and "compute_ms" in c.overlay["jobs"][0]
    # the fitted overlay is a valid overlay of the instance it was fitted on
    assert placer.load_instance(cal.apply(doc, c.overlay)).jobs[0].compute_ms > 90


def test_steps_decomposition_matches_the_kernel():
    from placer.calibrate.steps import JobFit, decompose, read_measurements

    inst = placer.load_instance(copy.deepcopy(STEPS_DOC))
    rows = measured_rows(noise=0.0, reps=6)
    ms = read_measurements(inst, rows)
    for ji, job in enumerate(inst.jobs):
        mine = [m for m in ms if m.job == ji]
        P = decompose(inst, job, mine)
        f = JobFit(
            job.compute_ms,
            {d: getattr(job.overlap, d) for d in P.L},
            {d: getattr(job.comm, f"{d}_messages") for d in P.L},
            list(P.L),
        )
        assert f.predict(P) == pytest.approx([m.step_ms for m in mine], rel=1e-9)


def test_steps_csv_with_node_lists(tmp_path):
    inst = placer.load_instance(copy.deepcopy(STEPS_DOC))
    p = tmp_path / "m.csv"
    p.write_text(
        "job,nodes,step_ms,note\n"
        "ddp,a/rack0/node0:2,120,one node\n"
        'ddp,"a/rack0/node[0-1]:2",150,two nodes\n'
        "mp,a/rack1/node3,400,all 8 GPUs\n"
    )
    from placer.calibrate.steps import read_measurements

    ms = read_measurements(inst, p)
    assert [len(m.gpus) for m in ms] == [2, 4, 8]
    assert ms[1].where == f"{p}:3"


@pytest.mark.parametrize(
    "csv,loc,what",
    [
        ("job,gpus\nddp,a/rack0/node0/gpu0\n", "", "missing column(s) step_ms"),
        ("job,gpus,step_ms\nnope,a/rack0/node0/gpu0,3\n", ":2.job", "unknown job 'nope'"),
        ("job,gpus,step_ms\nddp,a/rack0/node0/gpu9,3\n", ":2.gpus", "unknown GPU id"),
        ("job,gpus,step_ms\nmp,a/rack0/node0/gpu0,3\n", ":2.gpus", "multiple of tp*pp = 8"),
        ("job,gpus,step_ms\nddp,a/rack0/node0/gpu0,-1\n", ":2.step_ms", "> 0"),
        ("job,nodes,step_ms\nddp,a/rack0/node0:9,3\n", ":2.nodes", "has 8 GPUs, 9 asked"),
        ("job,nodes,step_ms\nddp,ghost,3\n", ":2.nodes", "host 'ghost' is not a node"),
    ],
)
def test_a_bad_steps_csv_is_refused_naming_the_row(tmp_path, csv, loc, what):
    inst = placer.load_instance(copy.deepcopy(STEPS_DOC))
    p = tmp_path / "m.csv"
    p.write_text(csv)
    with pytest.raises(CalibrationError) as e:
        cal.steps(inst, p)
    ((got, msg),) = e.value.problems
    assert got == f"{p}{loc}" and what in msg


def test_steps_misuse_names_the_argument():
    inst = placer.load_instance(copy.deepcopy(STEPS_DOC))
    with pytest.raises(UsageError, match="k: must be an integer >= 2"):
        cal.steps(inst, measured_rows(reps=2), k=1)
    with pytest.raises(UsageError, match="fit: unknown parameter 'speed'"):
        cal.steps(inst, measured_rows(reps=2), fit=("speed",))
    with pytest.raises(UsageError, match="measured"):
        cal.steps(inst, 42)


def test_calibrate_steps_cli(tmp_path):
    inst_file = tmp_path / "i.json"
    inst_file.write_text(json.dumps(STEPS_DOC))
    p = tmp_path / "m.csv"
    rows = measured_rows(reps=10)
    p.write_text(
        "job,gpus,step_ms\n" + "".join(f"{r['job']},{r['gpus']},{r['step_ms']}\n" for r in rows)
    )
    out = tmp_path / "jobs.yaml"
    r = run("calibrate", "steps", p, "-i", inst_file, "-k", "3", "-o", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "held out: median |error|" in r.stdout
    assert {j["name"] for j in yaml.safe_load(out.read_text())["jobs"]} == {"ddp", "mp"}
    r = run("calibrate", "steps", p, "-i", inst_file, "--json")
    assert json.loads(r.stdout)["summary"]["rows"] == len(rows)
    r = run("calibrate", "steps", p, "-i", TINY)
    assert r.exit_code == 2 and "unknown job 'ddp'" in r.stderr


def test_builders_instance_takes_an_overlay():
    doc = builders.one_site(nodes=2)
    d2 = cal.apply(doc, {"topology": {"fabric": {"node": {"bandwidth_GBps": 100}}}})
    assert d2["topology"]["fabric"]["node"] == {"latency_us": 2, "bandwidth_GBps": 100}


def test_steps_of_a_job_with_plans_fit_each_plan_and_overlay_its_plan():
    doc = copy.deepcopy(STEPS_DOC)
    job = doc["jobs"][0]
    job["plans"] = [
        {"name": "wide", "dp": 32, "min_dp": 1, "comm": {"dp_MB": 400, "dp_messages": 2}},
        {
            "name": "pipe",
            "pp": 2,
            "dp": 16,
            "min_dp": 1,
            "microbatches": 8,
            "comm": {"dp_MB": 200, "pp_MB": 50},
        },
    ]
    truth = placer.load_instance(copy.deepcopy(doc))
    ix = truth.index
    nodes = [ix.node_path(n) for n in range(ix.n_domains(2))]
    rows = []
    rng = np.random.default_rng(3)
    for rep in range(12):
        for plan, units in (("wide", 2 + 2 * (rep % 3)), ("pipe", 1 + rep % 4)):
            n = units * (2 if plan == "pipe" else 1)
            perm = rng.permutation(len(nodes))
            gpus = [f"{nodes[perm[i // 4]]}/gpu{i % 4}" for i in range(n)]
            pl = {
                "instance": "steps",
                "jobs": [{"name": "ddp", "units": units, "gpus": gpus, "plan": plan}],
            }
            step = placer.score(truth, pl).jobs[0]["step_ms"]
            rows.append({"job": "ddp", "plan": plan, "gpus": " ".join(gpus), "step_ms": step})
    c = cal.steps(truth, rows, k=3, fit=("compute", "overlap"))
    names = {j.job: j for j in c.jobs}
    assert set(names) == {"ddp/wide", "ddp/pipe"}
    for j in names.values():  # exact data: the kernel's own step times are fitted exactly
        assert j.fit.compute_ms == pytest.approx(100, rel=1e-4) and j.mdape < 1e-4
    (entry,) = [e for e in c.overlay["jobs"] if e["name"] == "ddp"]
    assert [p["name"] for p in entry["plans"]] == ["wide", "pipe"]
    applied = cal.apply(
        doc,
        {
            "jobs": [
                {
                    "name": "ddp",
                    "plans": [{"name": "pipe", "compute_ms": 90, "comm": {"dp_messages": 3}}],
                }
            ]
        },
    )
    pipe = applied["jobs"][0]["plans"][1]
    assert pipe["compute_ms"] == 90 and pipe["comm"] == {
        "dp_MB": 200,
        "pp_MB": 50,
        "dp_messages": 3,
    }
    with pytest.raises(CalibrationError, match="unknown plan 'deep'"):
        cal.apply(doc, {"jobs": [{"name": "ddp", "plans": [{"name": "deep", "compute_ms": 1}]}]})
    bad = [dict(rows[0], plan="deep")]
    with pytest.raises(CalibrationError, match="has no plan 'deep'"):
        cal.steps(truth, bad)


@pytest.mark.slow
def test_the_fidelity_benchmark_runs_end_to_end_on_one_cluster(tmp_path):
    """bench.fidelity on the one-node cluster (quad): every protocol, held-out figures."""
    from bench import common, fidelity

    fidelity.main(["--clusters", "quad", "--no-plots", "--name", "fidelity-test"])
    d = json.loads((common.results_dir() / "fidelity-test.json").read_text())
    a = d["variants"]["spec"]["unseen_placements"]["sync"]
    assert a["rows"] > 0 and 0 <= a["mdape"] < 1
    fidelity.main(["--example", str(tmp_path), "--clusters", "aws", "--models", "ncf"])
    inst = placer.load_instance(tmp_path / "pollux-aws.yaml")
    c = cal.steps(inst, tmp_path / "pollux-aws-steps.csv", k=3)
    assert {j.job for j in c.jobs} == {"ncf-b32", "ncf-b257", "ncf-b2051"}
