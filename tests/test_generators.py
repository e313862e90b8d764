"""The seeded instance generators (``placer.generators``).

What is tested here:
1. Every family, with its defaults and with small and unusual parameters, over several
   seeds, gives a dict that ``instance_from_dict`` accepts with no error and no warning.
2. Same family, seed and parameters -> the identical dict (and YAML); other seeds differ.
3. ``to_yaml`` round-trips through ``yaml.safe_load`` and stays small (count/shape).
4. ``scale`` at 10k GPUs in the fast suite; at 1M GPUs (slow) it generates in < 2 s, stays
   under SPEC's limits and a 1M-GPU instance validates.
5. The job-size distribution of generated jobs matches the derived trace table.
6. Running jobs: ``current`` names existing GPUs in whole units, pinned ones keep their
   scope; the greedy solver returns a feasible placement on a small instance of each family.
7. The data tables ship inside the package and are small; unknown families, parameters
   and traces are refused with the valid names.
"""

from __future__ import annotations

import collections
import copy
import inspect
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import placer
from placer import generators as G
from placer.generators import FAMILIES, generate, to_yaml
from placer.validate import instance_from_dict

SEEDS = [0, 1, 2, 7]

# small instances of every family (fast to validate and to solve)
SMALL = {
    "superpod": dict(sus=2),
    "multicampus": dict(sites=2, gpus_per_site=2048),
    "nvl72": dict(halls=1, sus_per_hall=2),
    "hetero": dict(h100_gpus=1024, h200_gpus=512, gb200_gpus=576),
    "frontier": dict(sites=2, gpus_per_site=4096),
    "scale": dict(gpus=2048, n_jobs=20),
    "fragmented": dict(sus=1, n_jobs=6),
}

# parameters away from the defaults, one set per line
VARIANTS = [
    ("superpod", dict(sus=16, trace="philly")),
    ("superpod", dict(size_scale="kalos", weighting="job", running_share=0.5)),
    (
        "multicampus",
        dict(
            sites=4,
            gpus_per_site=[4096, 8192, 2048, 1024],
            wan_latency_us=100.0,
            wan_bandwidth_GBps=[50, 200, 800, 3200, 50, 200],
            wan_failures_per_day=0.1,
        ),
    ),
    ("multicampus", dict(sites=1, gpus_per_site=4096, running_share=0.6, size_scale=8)),
    ("multicampus", dict(gpu_type="H200", trace="philly")),
    ("nvl72", dict(running_share=0.7, size_scale=4, n_jobs=30)),
    ("nvl72", dict(halls=3, power_cap_factor=None, trace="philly")),
    ("hetero", dict(gb200_gpus=0)),
    ("hetero", dict(h100_gpus=0, h200_gpus=0)),
    ("hetero", dict(running_share=0.6, size_scale=4, n_jobs=40)),
    ("frontier", dict(sites=1, gpus_per_site=32768, n_frontier=4)),
    ("frontier", dict(sites=3, gpus_per_site=16384, running_share=0.5)),
    ("scale", dict(gpus=1024, n_jobs=100)),
    ("scale", dict(gpus=20000, n_jobs=300, running_share=0.3, trace="philly")),
]


def validated(d: dict):
    inst = instance_from_dict(copy.deepcopy(d))
    assert inst.warnings == [], inst.warnings
    return inst


def job_gpus(job: dict) -> int:
    units = job["dp"] if job["kind"] == "training" else job["replicas"]
    return job.get("tp", 1) * job.get("pp", 1) * units


# --------------------------------------------------------------------------------------
# 1. validity
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("seed", SEEDS)
def test_every_family_validates_without_warnings(family, seed):
    d = generate(family, seed)
    inst = validated(d)
    assert inst.index.n_gpus > 0
    assert len(d["jobs"]) > 0


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("seed", SEEDS)
def test_small_instances_validate_without_warnings(family, seed):
    validated(generate(family, seed, **SMALL[family]))


@pytest.mark.parametrize(
    ("family", "params"), VARIANTS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(VARIANTS)]
)
@pytest.mark.parametrize("seed", [0, 3])
def test_unusual_parameters_validate_without_warnings(family, params, seed):
    validated(generate(family, seed, **params))


def test_families_have_docstrings_and_defaults():
    for name, fn in FAMILIES.items():
        assert inspect.getdoc(fn), name
        sig = inspect.signature(fn)
        assert sig.parameters["seed"].default == 0
        p = G.params(name)
        assert "n_jobs" in p and "horizon_hours" in p
        assert all(
            v.default is not inspect.Parameter.empty
            for k, v in sig.parameters.items()
            if v.kind == v.KEYWORD_ONLY
        )


def test_multicampus_wan_follows_fibre_latency_and_given_parameters():
    d = generate("multicampus", 5, sites=4, gpus_per_site=1024)
    wan = d["topology"]["wan"]
    assert len(wan) == 6  # full mesh
    for link in wan:
        # >= 1 km of fibre at 4.9 us/km plus 20 us of equipment
        assert link["latency_us"] >= G.FIBRE_US_PER_KM + G.DCI_EQUIPMENT_US
        assert link["bandwidth_GBps"] in G.WAN_LADDER_GBPS
    d = generate(
        "multicampus",
        5,
        sites=3,
        gpus_per_site=1024,
        wan_latency_us=[100, 200, 300],
        wan_bandwidth_GBps=400,
        wan_failures_per_day=0.0,
    )
    assert [w["latency_us"] for w in d["topology"]["wan"]] == [100, 200, 300]
    assert {w["bandwidth_GBps"] for w in d["topology"]["wan"]} == {400}
    assert {w["failures_per_day"] for w in d["topology"]["wan"]} == {0.0}


def test_nvl72_has_trays_as_nodes_and_rack_scoped_tp():
    d = generate("nvl72", 0)
    site = d["topology"]["sites"][0]
    assert site["gpus_per_node"] == 4
    assert site["domains"][0]["shape"][-1] == 18  # 18 trays = 72 GPUs per rack
    assert d["topology"]["fabric"]["rack"]["bandwidth_GBps"] == 722.0
    tp8 = [j for s in range(6) for j in generate("nvl72", s)["jobs"] if j.get("tp", 1) > 4]
    assert tp8 and all(j["scope"]["tp"] == "rack" for j in tp8)


def test_hetero_names_types_with_speed_and_power():
    d = generate("hetero", 0)
    assert set(d["gpu_types"]) == {"H100", "H200", "GB200"}
    for t in d["gpu_types"].values():
        assert t["power_kW"] > 0 and t["speed"] > 0
    for job in d["jobs"]:
        # a job that may also run on 4-GPU GB200 trays keeps TP inside a tray
        types = job.get("gpu_types") or list(d["gpu_types"])
        if "GB200" in types and len(types) > 1:
            assert job.get("tp", 1) <= 4


def test_frontier_has_a_few_very_large_jobs():
    d = generate("frontier", 0)
    total = 2 * 65536
    big = [j for j in d["jobs"] if job_gpus(j) >= total // 10]
    assert 2 <= len(big) <= 4
    assert job_gpus(d["jobs"][0]) >= total // 2
    assert d["jobs"][0]["scope"]["dp"] == "cluster" and d["jobs"][0]["cross_site_every"] == 100


# --------------------------------------------------------------------------------------
# 2. determinism
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_same_seed_gives_the_identical_instance(family):
    a = generate(family, 11, **SMALL[family])
    b = generate(family, 11, **SMALL[family])
    assert a == b
    assert to_yaml(a) == to_yaml(b)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_different_seeds_give_different_instances(family):
    a = generate(family, 1, **SMALL[family])
    b = generate(family, 2, **SMALL[family])
    assert a["jobs"] != b["jobs"]


def test_generation_does_not_touch_global_random_state():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    generate("superpod", 0)
    assert np.random.random() == before


# --------------------------------------------------------------------------------------
# 3. YAML
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_to_yaml_round_trips_and_is_compact(family):
    d = generate(family, 4)
    text = to_yaml(d, comment=f"generated by placer.generators: {family}, seed 4")
    assert text.startswith("# generated")
    assert yaml.safe_load(text) == d
    assert len(text) < 200_000
    # the topology is written with count/shape, a few lines whatever the size
    topo = to_yaml({"topology": d["topology"]})
    assert len(topo.splitlines()) < 60


def test_to_yaml_loads_through_the_project_parser():
    from placer.io import parse_text

    d = generate("hetero", 2)
    inst = instance_from_dict(parse_text(to_yaml(d)))
    assert inst.warnings == []


# --------------------------------------------------------------------------------------
# 4. scale
# --------------------------------------------------------------------------------------


def test_scale_at_10k_gpus_is_fast_and_valid():
    t = time.perf_counter()
    d = generate("scale", 0, gpus=10_000, n_jobs=500)
    assert time.perf_counter() - t < 2.0
    inst = validated(d)
    assert 9_728 <= inst.index.n_gpus <= 10_240  # rounded to whole 512-GPU pods
    assert len(d["jobs"]) == 500


@pytest.mark.slow
def test_scale_at_1m_gpus_generates_in_under_2s():
    t = time.perf_counter()
    d = generate("scale", 0, gpus=1_000_000, n_jobs=5000)
    elapsed = time.perf_counter() - t
    assert elapsed < 2.0, elapsed
    gpus = nodes = 0
    for site in d["topology"]["sites"]:
        for e in site["domains"]:
            n = e.get("count", 1) * int(np.prod(e["shape"]))
            nodes += n
            gpus += n * site["gpus_per_node"]
    assert 990_000 <= gpus <= 1_010_000 and nodes <= 1_000_000
    assert len(d["jobs"]) == 5000
    assert len(to_yaml({"topology": d["topology"]})) < 5_000
    # a 1M-GPU instance validates (fewer jobs: the loader's per-job checks scale with jobs)
    validated(generate("scale", 0, gpus=1_000_000, n_jobs=200))


def test_scale_refuses_more_than_spec_allows():
    with pytest.raises(ValueError, match="gpus must be"):
        generate("scale", 0, gpus=5_000_000)


# --------------------------------------------------------------------------------------
# 5. job mix vs the derived tables
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trace", ["itp", "philly"])
@pytest.mark.parametrize("weighting", ["running", "job"])
def test_job_sizes_follow_the_derived_trace_table(trace, weighting):
    d = generate(
        "scale",
        0,
        gpus=65536,
        n_jobs=3000,
        size_scale=1,
        trace=trace,
        weighting=weighting,
        running_share=0.0,
    )
    sizes = collections.Counter(job_gpus(j) for j in d["jobs"])
    g, p = G.trace_sizes(trace, weighting)
    assert set(sizes) <= set(g.tolist())
    emp = np.array([sizes[x] / 3000 for x in g.tolist()])
    # 3,000 draws: a share's standard error is at most 0.009
    assert np.abs(emp - p).max() < 0.04


def test_size_scale_multiplies_trace_sizes():
    d = generate("scale", 3, gpus=65536, n_jobs=400, size_scale=16, running_share=0.0)
    g, _ = G.trace_sizes("itp", "running")
    assert {job_gpus(j) for j in d["jobs"]} <= {16 * x for x in g.tolist()}


def test_kalos_scale_anchors_the_mean_job_size():
    kalos = float(G.cluster_summaries()["Kalos"]["avg_gpus"])
    g, p = G.trace_sizes("itp", "job")
    ratio = kalos / float((g * p).sum())
    d = generate("superpod", 0, size_scale="kalos", max_job_share=1.0, running_share=0.0)
    sizes = {job_gpus(j) for j in d["jobs"]}
    s = 2 ** round(np.log2(ratio))
    assert sizes <= {s * x for x in g.tolist()}


def test_training_jobs_map_gpu_counts_to_tp_pp_dp():
    d = generate("scale", 0, gpus=65536, n_jobs=600, size_scale=4, running_share=0.0)
    for j in d["jobs"]:
        if j["kind"] != "training":
            continue
        g = job_gpus(j)
        row = next(r for r in G.TRAINING_MODELS if g <= r[0])
        assert j["tp"] == min(8, g)
        assert j["pp"] <= row[1]
        assert j["dp"] % j.get("ep", 1) == 0
        assert j.get("min_dp", j["dp"]) % j.get("ep", 1) == 0
        assert j["compute_ms"] > 0 and j["comm"]["dp_MB"] > 0


def test_remaining_hours_are_within_the_horizon():
    for fam in FAMILIES:
        d = generate(fam, 1)
        h = d["horizon_hours"]
        for j in d["jobs"]:
            if "remaining_hours" in j:
                assert 0 < j["remaining_hours"] < h


def test_offers_are_priced_like_jobs_and_reachable():
    for fam in FAMILIES:
        d = generate(fam, 2)
        inst = validated(d)
        values = [j["value"] for j in d["jobs"]]
        speeds = [t["speed"] for t in d["gpu_types"].values()]
        for o in d.get("leases", {}).get("offers", []):  # fragmented: none by default
            assert 0.1 * min(values) <= o["price_per_gpu_hour"] <= 1.3 * max(values) * max(speeds)
            assert o["min_gpus"] <= o["max_gpus"] <= inst.index.n_gpus


# --------------------------------------------------------------------------------------
# 6. running jobs and the greedy solver
# --------------------------------------------------------------------------------------


def test_running_jobs_use_existing_gpus_in_whole_units():
    found = pinned = 0
    for fam in FAMILIES:
        for seed in range(4):
            d = generate(fam, seed, running_share=0.5, **SMALL[fam])
            inst = validated(d)  # also checks ids, whole units, no sharing, pinned rules
            ix = inst.index
            for j in d["jobs"]:
                if not j.get("current"):
                    continue
                found += 1
                pinned += bool(j.get("pinned"))
                assert (ix.gpu_indices(j["current"]) >= 0).all()
                assert len(j["current"]) % (j.get("tp", 1) * j.get("pp", 1)) == 0
                assert j["migration_cost"] >= 0
    assert found >= 10 and pinned >= 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_solves_a_small_instance_of_each_family(family):
    inst = validated(generate(family, 0, **SMALL[family]))
    r = placer.solve(inst, solver="greedy", time_limit=10)
    assert r.status in ("feasible", "optimal")
    assert r.objective is not None and r.objective > 0


# --------------------------------------------------------------------------------------
# 7. data files and errors
# --------------------------------------------------------------------------------------


def test_data_tables_ship_inside_the_package_and_are_small():
    data = Path(placer.__file__).parent / "data"
    for name in ("job_sizes.csv", "job_durations.csv", "cluster_summaries.csv", "README.md"):
        f = data / name
        assert f.is_file(), name
        assert f.stat().st_size < 20_000, name
    assert G.traces() == ("itp", "philly")
    q, h = G.duration_quantiles("itp", "all", "running")
    assert q[0] == 0 and q[-1] == 1 and (np.diff(h) >= 0).all()


def test_generators_never_read_the_shared_folder():
    for f in Path(G.__file__).parent.glob("*.py"):
        src = f.read_text()
        assert "shared" not in src.replace("shared by", ""), f.name


def test_unknown_family_parameter_or_trace_is_refused_with_valid_names():
    with pytest.raises(ValueError, match="valid: superpod"):
        generate("nope")
    with pytest.raises(TypeError, match="unknown parameter 'gpus_total'.*valid:"):
        generate("scale", 0, gpus_total=10)
    with pytest.raises(ValueError, match="unknown trace 'alibaba'"):
        generate("superpod", 0, trace="alibaba")
    with pytest.raises(ValueError, match="2 values for 3 sites"):
        generate("multicampus", 0, sites=3, gpus_per_site=[1024, 1024])


@pytest.mark.parametrize(
    "param,value,message",
    [
        ("n_jobs", -3, "n_jobs: must be >= 0"),
        ("n_offers", -1, "n_offers: must be >= 0"),
        ("load", -1.0, "load: must be >= 0"),
        ("horizon_hours", float("nan"), "horizon_hours: must be >= 0"),
        ("plan_share", 1.5, "plan_share: must be a share in 0 .. 1"),
        ("running_share", -0.1, "running_share: must be a share in 0 .. 1"),
    ],
)
def test_a_negative_count_or_a_share_outside_0_1_is_refused(param, value, message):
    """n_jobs=-3 used to give an instance with no jobs, silently."""
    with pytest.raises(ValueError, match=message):
        generate("superpod", 0, **{param: value})


def test_generate_cli_refuses_a_negative_count_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from placer.cli import app

    out = tmp_path / "g.yaml"
    r = CliRunner().invoke(app, ["generate", "superpod", "-p", "n_jobs=-3", "-o", str(out)])
    assert r.exit_code == 2 and "n_jobs: must be >= 0" in r.output
    assert not out.exists()
    assert generate("superpod", 0, n_jobs=0)["jobs"] == []  # none asked: none given
