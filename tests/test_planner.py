"""Plans from a model description (issue 15 part 3): the expansion of `model:` into SPEC v3
`plans`, checked against SPEC's plan rules at the dict level (section 1.2 "Plans (v3)" and
section 6 "Jobs with plans (v3)"), the planner's own rules (memory, NVLink domain, layer
divisors, the global batch, the Pareto set), located errors, the best-level step against
the kernel, and `placer plans`."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import placer
from placer.cli import app
from placer.errors import InstanceError
from placer.planner import expand, expand_models
from placer.planner import formulas as F
from placer.planner.search import pareto
from placer.validate import instance_from_dict

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "model-plans.yaml"

DIMS = ("tp", "pp", "dp", "ep")
PLAN_KEYS = {
    "name", "tp", "pp", "dp", "min_dp", "ep", "replicas", "min_replicas", "microbatches",
    "scope", "max_latency_us", "comm", "overlap", "compute_ms", "cross_site_every",
    "gpu_types", "mix_types", "value",
}  # fmt: skip
COMM_KEYS = {f"{d}_{k}" for d in DIMS for k in ("MB", "messages")}


def two_sites(jobs: list[dict] | None = None) -> dict:
    """An HGX H100 site (8 GPUs per node, 512 per pod) and a GB200 NVL72 site (trays of 4
    as nodes, NVLink at the rack) joined by one WAN link."""
    return {
        "name": "planner-test",
        "topology": {
            "levels": ["site", "pod", "rack", "node"],
            "fabric": {
                "node": {"latency_us": 1.0, "bandwidth_GBps": 370},
                "rack": {"latency_us": 4.0, "bandwidth_GBps": 48.5},
                "pod": {"latency_us": 4.5, "bandwidth_GBps": 48.5},
                "site": {"latency_us": 7.0, "bandwidth_GBps": 23},
            },
            "sites": [
                {"name": "east", "gpu_type": "H100", "gpus_per_node": 8,
                 "domains": [{"name": "pod", "count": 2, "shape": [8, 8]}]},
                {"name": "west", "gpu_type": "GB200", "gpus_per_node": 4,
                 "fabric": {"node": {"latency_us": 1.0, "bandwidth_GBps": 722},
                            "rack": {"latency_us": 1.5, "bandwidth_GBps": 722}},
                 "domains": [{"name": "pod", "count": 2, "shape": [4, 18]}]},
            ],
            "wan": [{"between": ["east", "west"], "latency_us": 60, "bandwidth_GBps": 200}],
        },
        "gpu_types": {"H100": {"speed": 1.0}, "GB200": {"speed": 2.5}},
        "jobs": jobs if jobs is not None else [llama70b()],
    }  # fmt: skip


def llama70b(**over) -> dict:
    """Llama-3-70B (Meta's model card: L 80, h 8192, 64 heads, FFN 28,672, vocab 128,256)."""
    job = {
        "name": "llama-70b",
        "kind": "training",
        "value": 2.0,
        "overlap": {"tp": 0.3, "pp": 0.7, "dp": 0.8},
        "model": {
            "params": 70.6e9, "layers": 80, "hidden": 8192, "heads": 64, "seq_len": 8192,
            "vocab": 128256, "global_batch": 1024, "ffn_hidden": 28672,
        },
        "planner": {"gpus": 512, "min_gpus": 256},
    }  # fmt: skip
    for k, v in over.items():
        if k in ("model", "planner"):
            job[k] = {**job[k], **v}
        else:
            job[k] = v
    return job


def topology_types(doc: dict) -> set[str]:
    out = set()

    def walk(entries, gt):
        for e in entries:
            g = e.get("gpu_type", gt)
            if e.get("domains"):
                walk(e["domains"], g)
            else:
                out.add(g)

    for s in doc["topology"]["sites"]:
        walk(s["domains"], s.get("gpu_type"))
    return out


def plan_problems(doc: dict) -> list[str]:
    """SPEC 1.2 "Plans (v3)" and 6 "Jobs with plans (v3)" at the dict level: the rules a
    SPEC v3 loader applies to `plans` (kept until placer.load_instance loads plans)."""
    levels = doc["topology"]["levels"]
    types = topology_types(doc)
    bad: list[str] = []
    for ji, job in enumerate(doc["jobs"]):
        if "plans" not in job:
            continue
        where = f"jobs[{ji}]"
        if "model" in job or "planner" in job:
            bad.append(f"{where}: model/planner left in an expanded job")
        plans = job["plans"]
        if not isinstance(plans, list) or not plans:
            bad.append(f"{where}.plans: must be a non-empty list")
            continue
        names = [p.get("name") for p in plans]
        if len(set(names)) != len(names):
            bad.append(f"{where}.plans: names not unique")
        for k, p in enumerate(plans):
            loc = f"{where}.plans[{k}]"
            if not isinstance(p.get("name"), str) or not p["name"] or "/" in p["name"]:
                bad.append(f"{loc}.name: not a name")
            if set(p) - PLAN_KEYS:
                bad.append(f"{loc}: keys outside SPEC 1.2: {sorted(set(p) - PLAN_KEYS)}")
            u = {**{k2: v for k2, v in job.items() if k2 != "plans"}, **p}  # the job under p
            for key in ("tp", "pp", "dp", "ep", "microbatches"):
                v = u.get(key, 1)
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    bad.append(f"{loc}.{key}: must be a positive integer, not {v!r}")
            if u.get("kind") != "training" or u.get("value") is None or u.get("compute_ms") is None:
                bad.append(f"{loc}: the job under this plan is not a valid training job")
            elif not u["compute_ms"] > 0 or not math.isfinite(u["compute_ms"]):
                bad.append(f"{loc}.compute_ms: must be positive")
            min_dp = u.get("min_dp", u.get("dp"))
            if not isinstance(min_dp, int) or not 0 <= min_dp <= u.get("dp", 0):
                bad.append(f"{loc}.min_dp: must be in 0..dp")
            if u.get("dp", 0) % u.get("ep", 1):
                bad.append(f"{loc}.dp: must be a multiple of ep")
            for d, lv in (u.get("scope") or {}).items():
                if d not in DIMS or (lv != "cluster" and lv not in levels):
                    bad.append(f"{loc}.scope.{d}: {lv!r} is not a level")
            for key, v in (u.get("comm") or {}).items():
                if key not in COMM_KEYS:
                    bad.append(f"{loc}.comm.{key}: not a comm key")
                elif not (v > 0 if key.endswith("messages") else v >= 0) or not math.isfinite(v):
                    bad.append(f"{loc}.comm.{key}: out of range")
            gts = u.get("gpu_types")
            if gts is not None and (not gts or not set(gts) <= types):
                bad.append(f"{loc}.gpu_types: {gts} not types of the topology")
            if u.get("cross_site_every", 1) < 1 or u.get("value", 0) < 0:
                bad.append(f"{loc}: cross_site_every or value out of range")
    return bad


# --------------------------------------------------------------------------- expansion


def test_expanded_plans_obey_spec_plan_rules():
    doc = two_sites([llama70b(), {"name": "other", "kind": "training", "dp": 2,
                                  "compute_ms": 100, "value": 1}])  # fmt: skip
    out = expand_models(doc)
    assert plan_problems(out) == []
    assert out["jobs"][1] == doc["jobs"][1]  # jobs without a model are left alone
    job = out["jobs"][0]
    assert "model" not in job and "planner" not in job and 1 <= len(job["plans"]) <= 8
    assert {k: v for k, v in job.items() if k != "plans"} == {
        k: v for k, v in doc["jobs"][0].items() if k not in ("model", "planner")
    }


def test_expansion_leaves_its_input_alone_and_is_deterministic():
    doc = two_sites()
    before = copy.deepcopy(doc)
    a = expand_models(doc)
    assert doc == before
    assert expand_models(doc) == a


def test_a_document_without_models_comes_back_as_it_is():
    doc = two_sites([{"name": "j", "kind": "training", "dp": 1, "compute_ms": 1, "value": 1}])
    assert expand_models(doc) is doc
    assert expand("not a mapping").data == "not a mapping"  # left to the loader to refuse


def test_plans_respect_memory_nvlink_layers_and_batch():
    exp = expand(two_sites())
    (jp,) = exp.jobs
    hw = exp.hardware
    assert jp.plans
    for info in jp.plans:
        p = info.plan
        assert 80 % p["pp"] == 0 and 64 % p["tp"] == 0  # pp divides layers, tp the heads
        m = p.get("microbatches", 1024 // p["dp"])
        assert p["dp"] * m == 1024  # dp x microbatches x micro_batch = the global batch
        assert p["tp"] * p["pp"] * p["dp"] <= 512
        assert p["tp"] * p["pp"] * p.get("min_dp", p["dp"]) >= 256
        for t in p["gpu_types"]:  # fits the memory of every type it names
            assert info.memory.total <= hw.types[t].memory_GB * 1e9
        for t, (hbm, ok) in info.fits.items():  # and names every type it fits
            assert ok == (t in p["gpu_types"]) == (info.memory.total <= hbm * 1e9)
        # TP up to the NVLink domain: the H100 node (8), the GB200 rack (72; trays of 4);
        # the TP scope is the widest level a listed type needs
        if "H100" in p["gpu_types"]:
            assert p["tp"] <= 8
        if p["tp"] > 8:
            assert p["gpu_types"] == ["GB200"]
        need_rack = "GB200" in p["gpu_types"] and p["tp"] > 4
        assert p["scope"]["tp"] == ("rack" if need_rack else "node")


def test_kept_plans_are_a_pareto_set_of_at_most_max_plans():
    for k in (8, 3, 1):
        doc = two_sites([llama70b(planner={"max_plans": k})])
        (jp,) = expand(doc).jobs
        assert 1 <= len(jp.plans) <= k
        assert pareto(jp.plans) == sorted(jp.plans, key=lambda i: (i.criteria(), i.name))
    # the first plan is the most efficient (the peers run a job's first plan)
    (jp,) = expand(two_sites()).jobs
    assert jp.plans[0].efficiency == max(p.efficiency for p in jp.plans)


def test_value_scales_with_the_share_of_model_work():
    (jp,) = expand(two_sites([llama70b(model={"recompute": "auto"})])).jobs
    full = [p for p in jp.plans if p.recompute == "full"]
    sel = [p for p in jp.plans if p.recompute == "selective"]
    assert sel, "auto offers selective recomputation"
    for p in jp.plans:
        assert p.plan.get("value", 2.0) == pytest.approx(2.0 * p.work_share, rel=1e-4)
        assert 0.5 < p.work_share <= 1.0
    for p in full:  # full recomputation executes about a third more FLOPs
        assert p.work_share < 0.8


def test_variants_name_their_plans_and_carry_their_keys():
    variants = [
        {"name": "sync", "scope": {"dp": "cluster"}},
        {"name": "diloco-50", "scope": {"dp": "cluster"}, "cross_site_every": 50, "value": 1.8},
        {"name": "pp-across", "scope": {"pp": "cluster", "dp": "site"}},
    ]
    doc = two_sites([llama70b(planner={"variants": variants, "max_plans": 9})])
    out = expand_models(doc)
    assert plan_problems(out) == []
    plans = out["jobs"][0]["plans"]
    by = {v["name"]: [p for p in plans if p["name"].startswith(v["name"] + "-")] for v in variants}
    assert all(by.values()), by.keys()
    for p in by["diloco-50"]:
        assert p["cross_site_every"] == 50 and p["value"] <= 1.8 and p["scope"]["dp"] == "cluster"
    for p in by["pp-across"]:
        assert p["scope"]["pp"] == "cluster" and p["scope"]["dp"] == "site"


def test_a_running_jobs_current_plan_is_kept():
    (jp,) = expand(two_sites()).jobs
    names = [p.name for p in jp.plans]
    last = names[-1]
    doc = two_sites([llama70b(planner={"max_plans": 1}, current_plan=last)])
    out = expand_models(doc)
    assert [p["name"] for p in out["jobs"][0]["plans"]] == [last]


def test_the_instances_memory_gb_overrides_the_catalogue():
    doc = two_sites()
    base = {t for p in expand_models(doc)["jobs"][0]["plans"] for t in p["gpu_types"]}
    doc["gpu_types"]["H100"]["memory_GB"] = 20  # a much smaller H100: fewer plans fit it
    exp = expand(doc)
    assert exp.hardware.types["H100"].memory_from == "instance"
    small = [p for p in exp.jobs[0].plans if "H100" in p.plan["gpu_types"]]
    assert all(p.memory_GB <= 20 for p in small)
    assert "H100" in base


def test_unknown_gpu_types_need_a_memory_size():
    doc = two_sites()
    doc["topology"]["sites"][0]["gpu_type"] = "X100"
    doc["gpu_types"] = {"X100": {"speed": 1.0}, "GB200": {"speed": 2.5}}
    exp = expand(doc)  # X100 is left out, with the reason
    assert "X100" in exp.jobs[0].excluded_types and exp.jobs[0].types == ["GB200"]
    doc["gpu_types"]["X100"]["memory_GB"] = 96
    doc["jobs"][0]["planner"]["peak_TFLOPS"] = {"X100": 800}
    exp = expand(doc)
    assert "X100" in exp.jobs[0].types
    doc["topology"]["sites"] = doc["topology"]["sites"][:1]
    doc["topology"]["wan"] = []
    del doc["jobs"][0]["planner"]["peak_TFLOPS"]
    with pytest.raises(InstanceError, match=r"jobs\[0\]\.model: no GPU type can be planned"):
        expand(doc)


def test_speeds_that_disagree_with_the_peaks_are_warned_about():
    doc = two_sites()
    doc["gpu_types"]["GB200"]["speed"] = 1.0  # its BF16 peak is 2.53x the H100's
    exp = expand(doc)
    assert any(w.startswith("gpu_types.GB200.speed:") for w in exp.warnings), exp.warnings
    assert not any("speed" in w for w in expand(two_sites()).warnings)


@pytest.mark.parametrize(
    "change, loc, what",
    [
        (lambda j: j["model"].update(layers=-1), "jobs[0].model.layers", "positive integer"),
        (lambda j: j["model"].update(layer=80), "jobs[0].model.layer", "unknown key"),
        (lambda j: j["model"].pop("hidden"), "jobs[0].model.hidden", "is required"),
        (lambda j: j["model"].update(params="70.6e9"), "jobs[0].model.params", "70.6e+9"),
        (lambda j: j["model"].update(heads=60), "jobs[0].model.heads", "must divide hidden"),
        (lambda j: j["model"].update(experts=8), "jobs[0].model.top_k", "is required"),
        (lambda j: j["model"].update(recompute="some"), "jobs[0].model.recompute", ""),
        (lambda j: j["model"].update(zero=True), "jobs[0].model.zero", "ZeRO stage"),
        (lambda j: j.pop("planner"), "jobs[0].planner", "is required"),
        (lambda j: j["planner"].update(gpus=0), "jobs[0].planner.gpus", "positive integer"),
        (lambda j: j["planner"].update(min_gpus=600), "jobs[0].planner.min_gpus", "at most"),
        (lambda j: j["planner"].update(tp={"min": 8, "max": 2}), "jobs[0].planner.tp.min", ""),
        (lambda j: j["planner"].update(mfu=1.5), "jobs[0].planner.mfu", "(0, 1]"),
        (
            lambda j: j["planner"].update(variants=[{"name": "x", "scope": {"dp": "hal"}}]),
            "jobs[0].planner.variants[0].scope.dp",
            "unknown level 'hal'",
        ),
        (
            lambda j: j["planner"].update(variants=[{"name": "x", "scope": {"dq": "site"}}]),
            "jobs[0].planner.variants[0].scope.dq",
            "unknown key",
        ),
        (lambda j: j.update(tp=8), "jobs[0].tp", "not allowed with model"),
        (lambda j: j.update(comm={"tp_MB": 1}), "jobs[0].comm", "not allowed with model"),
        (lambda j: j.update(plans=[{"name": "a"}]), "jobs[0].plans", "not allowed with model"),
        (lambda j: j.update(kind="inference"), "jobs[0].model", "only training jobs"),
        (lambda j: j["model"].update(layers=2, params=1e9), "jobs[0].model.params", "embedding"),
    ],
)
def test_bad_model_descriptions_are_refused_with_their_place(change, loc, what):
    job = llama70b()
    change(job)
    with pytest.raises(InstanceError) as e:
        expand(two_sites([job]))
    assert any(p[0] == loc and what in p[1] for p in e.value.problems), e.value.problems


def test_every_job_is_checked_before_refusing():
    bad = llama70b()
    bad["model"]["layers"] = 0
    worse = llama70b(name="b")
    worse["model"]["vocab"] = "big"
    with pytest.raises(InstanceError) as e:
        expand(two_sites([bad, worse]))
    assert {p[0] for p in e.value.problems} == {"jobs[0].model.layers", "jobs[1].model.vocab"}


def test_a_model_that_fits_no_gpu_says_why():
    job = llama70b(planner={"gpus": 8, "min_gpus": 8})  # 70B on one H100 node
    doc = two_sites([job])
    doc["topology"]["sites"] = doc["topology"]["sites"][:1]
    doc["topology"]["wan"] = []
    with pytest.raises(InstanceError, match=r"no plan fits in memory.*80 GB of H100"):
        expand(doc)


def test_bad_hardware_is_refused_where_the_loader_would():
    doc = two_sites()
    doc["gpu_types"]["H100"]["memory_GB"] = -1
    with pytest.raises(InstanceError, match=r"gpu_types\.H100\.memory_GB: must be a positive"):
        expand(doc)
    doc = two_sites()
    doc["topology"]["sites"][0]["domains"][0]["shape"] = [8]
    with pytest.raises(InstanceError, match=r"topology\.sites\[0\]\.domains\[0\]\.shape"):
        expand(doc)


def test_moe_plans_carry_expert_parallelism():
    job = {
        "name": "moe", "kind": "training", "value": 1.0,
        "model": {"params": 141e9, "active_params": 39e9, "experts": 8, "top_k": 2,
                  "layers": 56, "hidden": 6144, "heads": 48, "seq_len": 4096, "vocab": 32768,
                  "global_batch": 512},
        "planner": {"gpus": 512},
    }  # fmt: skip
    out = expand_models(two_sites([job]))
    assert plan_problems(out) == []
    plans = out["jobs"][0]["plans"]
    assert any(p.get("ep", 1) > 1 for p in plans)
    for p in plans:
        ep = p.get("ep", 1)
        assert 8 % (p["tp"] * ep) == 0 and p["dp"] % ep == 0
        assert ("ep_MB" in p["comm"]) == (ep > 1)


# --------------------------------------------------------------------------- best level


def packed(inst, site: str, units: int, tp: int, pp: int, tp_level: str, unit_level: str):
    """GPU ids of `units` units in `site` as the best level has them: TP groups of tp GPUs
    from the start of each domain of `tp_level` (as many as fit), a unit's pp TP groups
    consecutive inside one domain of `unit_level`, never split across two `tp_level`
    domains when it fits in one, else starting at a `tp_level` domain; rank order."""
    idx = inst.index
    lv = inst.topology.levels
    si = [s.name for s in inst.topology.sites].index(site)
    g = np.flatnonzero(idx.gpu_site == si)
    tpd = idx.dom[lv.index(tp_level)][g]
    kd = idx.dom[lv.index(unit_level)][g]
    out: list[int] = []
    for K in dict.fromkeys(kd.tolist()):
        gk, tk = g[kd == K], tpd[kd == K]
        doms = [gk[tk == t] for t in dict.fromkeys(tk.tolist())]
        slots = [[d[s * tp : (s + 1) * tp] for s in range(len(d) // tp)] for d in doms]
        per = min(len(x) for x in slots)
        if pp <= per:
            chunks = [sl[c * pp : (c + 1) * pp] for sl in slots for c in range(len(sl) // pp)]
        else:
            need = -(-pp // per)
            chunks = [
                [grp for sl in slots[c * need : (c + 1) * need] for grp in sl][:pp]
                for c in range(len(slots) // need)
            ]
        for ch in chunks:
            if len(out) < units * tp * pp:
                out.extend(np.concatenate(ch).tolist())
    assert len(out) == units * tp * pp
    return [idx.gpu_id(x) for x in out]


def test_best_step_is_the_kernels_on_a_packed_placement():
    """The estimate of `placer plans` uses the kernel's formulas; a placement with the
    plan's units packed in tree order (their best level) scores the same T_X with the real
    kernel. Scored as a v2 job (tp, pp, dp, comm, compute_ms of the plan); the 1F1B bubble
    is added by hand (v3's kernel adds it)."""
    doc = two_sites()
    exp = expand(doc)
    checked = 0
    for info in exp.jobs[0].plans:
        for pool, est in info.estimates.items():
            if est.step_ms is None or est.arrangement != "units packed" or pool == "mixed":
                continue
            p = info.plan
            job = {
                "name": "j", "kind": "training", "value": 1.0, "tp": p["tp"], "pp": p["pp"],
                "dp": est.units, "comm": p["comm"], "compute_ms": p["compute_ms"],
                "scope": p["scope"], "overlap": doc["jobs"][0]["overlap"], "gpu_types": [pool],
            }  # fmt: skip
            inst = instance_from_dict({**two_sites([job]), "jobs": [job]})
            tp_level = est.where.get("tp", "node")
            unit_level = est.where.get("pp", tp_level)
            gpus = packed(inst, est.sites[0], est.units, p["tp"], p["pp"], tp_level, unit_level)
            placement = {"jobs": [{"name": "j", "units": est.units, "gpus": gpus}]}
            sc = placer.score(inst, placer.api._placement_arg(placement)).to_dict()["jobs"][0]
            for d in DIMS:
                assert sc[f"T_{d}_ms"] == pytest.approx(est.T_ms.get(d, 0.0), rel=1e-3, abs=1e-3)
            bubble = est.compute_ms - p["compute_ms"] / inst.speed_of(pool)
            assert sc["step_ms"] + bubble == pytest.approx(est.step_ms, rel=1e-3)
            checked += 1
    assert checked >= 4


def test_dp_over_sites_is_estimated_hierarchically():
    # a job larger than either site, DP allowed over the WAN (mix_types: both types)
    job = llama70b(planner={"gpus": 1536, "min_gpus": 1200}, scope={"dp": "cluster"},
                   mix_types="slowest", cross_site_every=10)  # fmt: skip
    exp = expand(two_sites([job]))
    ests = [p.estimates["mixed"] for p in exp.jobs[0].plans if "mixed" in p.estimates]
    over = [e for e in ests if e.step_ms is not None and e.arrangement == "DP over sites"]
    assert over and all(e.where["dp"] == "WAN x2" and e.sites == ["west", "east"] or
                        e.sites == ["east", "west"] for e in over)  # fmt: skip


# --------------------------------------------------------------------------- property


@st.composite
def models(draw):
    heads = draw(st.sampled_from([8, 16, 32, 64]))
    hidden = heads * draw(st.sampled_from([64, 128]))
    layers = draw(st.sampled_from([12, 16, 24, 32, 40, 48, 60, 80]))
    return {
        "layers": layers, "hidden": hidden, "heads": heads,
        "seq_len": draw(st.sampled_from([1024, 2048, 4096, 8192])),
        "vocab": draw(st.sampled_from([32000, 50257, 128256])),
        "global_batch": draw(st.sampled_from([64, 96, 256, 512, 1536])),
        "recompute": draw(st.sampled_from(["selective", "full", "auto", "none"])),
        "zero": draw(st.sampled_from([0, 1, 3])),
    }  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.sampled_from([8, 64, 256, 1024, 2048]), st.integers(1, 8))
def test_any_model_expands_to_valid_plans_or_a_located_refusal(model, gpus, max_plans):
    job = {"name": "m", "kind": "training", "value": 1.0, "model": model,
           "planner": {"gpus": gpus, "max_plans": max_plans}}  # fmt: skip
    try:
        exp = expand(two_sites([job]))
    except InstanceError as e:
        assert all(loc.startswith("jobs[0].model") for loc, _ in e.problems), e.problems
        return
    assert plan_problems(exp.data) == []
    (jp,) = exp.jobs
    assert 1 <= len(jp.plans) <= max_plans
    hw = exp.hardware
    for info in jp.plans:
        p = info.plan
        assert model["layers"] % p["pp"] == 0
        assert (
            p["dp"] * p.get("microbatches", model["global_batch"] // p["dp"])
            == model["global_batch"]
        )
        assert all(info.memory.total <= hw.types[t].memory_GB * 1e9 for t in p["gpu_types"])
        assert p["compute_ms"] > 0 and info.efficiency >= 0


# --------------------------------------------------------------------------- files and CLI

runner = CliRunner()


def run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    text = (res.stdout or "") + (res.stderr or "")
    assert "Traceback" not in text, text
    return res


def test_bundled_example_expands_to_spec_plans():
    data = yaml.safe_load(EXAMPLE.read_text())
    out = expand_models(data)
    assert plan_problems(out) == []
    assert all("plans" in j for j in out["jobs"] if j["name"] in ("llama-70b", "mixtral-8x22b"))


def test_placer_plans_prints_each_jobs_plans():
    res = run("plans", EXAMPLE)
    assert res.exit_code == 0, res.stdout
    assert "llama-70b" in res.stdout and "GB/GPU" in res.stdout and "meets at" in res.stdout
    res = run("plans", EXAMPLE, "--job", "llama-70b", "--json")
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert [j["job"] for j in d["jobs"]] == ["llama-70b"]
    plan = d["jobs"][0]["plans"][0]
    assert plan["best"]["step_ms"] > 0 and plan["memory_GB"]["total"] > 0
    assert d["gpu_types"]["H100"]["memory_from"].startswith("catalogue")


def test_placer_plans_refuses_an_unknown_job():
    res = run("plans", EXAMPLE, "--job", "nope")
    assert res.exit_code == 2 and "no job 'nope' describes a model" in res.stderr


def test_placer_plans_write_gives_a_plain_spec_v3_file(tmp_path):
    out = tmp_path / "expanded.yaml"
    res = run("plans", EXAMPLE, "--write", out)
    assert res.exit_code == 0, res.stdout + res.stderr
    data = yaml.safe_load(out.read_text())
    assert plan_problems(data) == []
    assert not any("model" in j or "planner" in j for j in data["jobs"])
    assert data == expand_models(yaml.safe_load(EXAMPLE.read_text()))
    res = run("plans", EXAMPLE, "--write", tmp_path / "expanded.json", "--json")
    assert res.exit_code == 0 and json.loads((tmp_path / "expanded.json").read_text()) == data


def test_placer_plans_refuses_a_bad_model_and_writes_nothing(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["jobs"][0]["model"]["layers"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out.yaml"
    res = run("plans", bad, "--write", out)
    assert res.exit_code == 2 and "jobs[0].model.layers: must be a positive integer" in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_the_expanded_file_loads_and_placer_plans_write_validates(tmp_path):
    inst = placer.load_instance(EXAMPLE)
    job = inst.job("llama-70b")
    assert job.plans and all(p.name for p in job.plans)
    out = tmp_path / "expanded.yaml"
    assert run("plans", EXAMPLE, "--write", out).exit_code == 0
    again = placer.load_instance(out)
    assert [p.name for p in again.job("llama-70b").plans] == [p.name for p in job.plans]


def test_formulas_module_has_no_third_party_imports():
    # the planner's formulas are plain Python: usable anywhere, checked by hand
    src = Path(F.__file__).read_text()
    assert "import numpy" not in src and "import pydantic" not in src


def test_batch_slack_lets_the_units_use_more_gpus():
    # tp 8 x pp 5 = 40 GPUs per unit: 25 units fit 1,000 GPUs, but the largest divisor of a
    # 1,024-sequence batch under 25 is 16; a 10% slack allows 25 x 41 = 1,025 sequences
    job = llama70b(planner={"gpus": 1000, "tp": [8], "pp": [5]})
    del job["planner"]["min_gpus"]
    (exact,) = expand_models(two_sites([job]))["jobs"][0]["plans"]
    assert exact["dp"] == 16 and exact["microbatches"] == 64
    job["planner"]["batch_slack"] = 0.1
    (slack,) = expand_models(two_sites([job]))["jobs"][0]["plans"]
    assert slack["dp"] == 25 and slack["microbatches"] == 41


def test_a_current_plan_the_model_does_not_give_is_refused():
    with pytest.raises(InstanceError) as e:
        expand(two_sites([llama70b(current_plan="tp3-pp1-dp1")]))
    assert e.value.problems[0][0] == "jobs[0].current_plan"
    assert "not a plan this model gives" in e.value.problems[0][1]


def test_placer_plans_refuses_a_file_that_is_bad_input_elsewhere_written_or_not(tmp_path):
    # the table was printed with exit 0, and only --write refused the file: a job without
    # `value` (its plans' value is the job's) and a malformed job that describes no model
    doc = yaml.safe_load(EXAMPLE.read_text())
    del doc["jobs"][0]["value"]
    bad = tmp_path / "no-value.yaml"
    bad.write_text(yaml.safe_dump(doc))
    for args in ((), ("--job", "llama-70b"), ("--json",)):
        res = run("plans", bad, *args)
        assert res.exit_code == 2, res.stdout
        assert "jobs[0].value: is required" in res.stderr and "plans[" not in res.stderr
        assert "GB/GPU" not in res.stdout
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["jobs"].append("x")
    bad.write_text(yaml.safe_dump(doc))
    res = run("plans", bad)
    assert res.exit_code == 2 and "jobs[3]: must be a mapping" in res.stderr
    res = run("plans", ROOT / "tests" / "data" / "formats" / "jobs.yaml")  # no topology
    assert res.exit_code == 2 and "topology" in res.stderr


def test_placer_plans_never_cuts_a_plan_name(tmp_path):
    # the name is what --job, current_plan and a placement use; at 150 columns a variant's
    # prefix made it `diloco-every-fi…` (rich's ellipsis): it is folded over lines instead
    job = llama70b(planner={"gpus": 1024, "min_gpus": 512, "max_plans": 4})
    job["planner"]["variants"] = [
        {"name": "synchronous-data-parallel"},
        {"name": "diloco-every-fifty-steps", "cross_site_every": 50, "value": 1.8},
    ]
    f = tmp_path / "long.yaml"
    f.write_text(yaml.safe_dump(two_sites([job])))
    res = run("plans", f)
    assert res.exit_code == 0, res.stderr
    plans = json.loads(run("plans", f, "--json").stdout)["jobs"][0]["plans"]
    names = [p["plan"]["name"] for p in plans]
    assert names and max(len(n) for n in names) > 40
    assert "…" not in res.stdout
    cells = "".join(
        ln.split("│")[1].strip() for ln in res.stdout.splitlines() if ln.startswith("│")
    )
    assert all(n in cells for n in names), (names, cells)


def test_a_model_job_may_leave_value_to_its_variants():
    job = llama70b(planner={"gpus": 1000, "tp": [8], "pp": [5]})
    del job["value"]
    with pytest.raises(InstanceError) as e:
        expand(two_sites([job]))
    (where, msg), *_ = e.value.problems
    assert where == "jobs[0].value" and msg.startswith("is required")
    job["planner"]["variants"] = [{"name": "a", "value": 2.0}, {"name": "b", "value": 1.5}]
    plans = expand_models(two_sites([job]))["jobs"][0]["plans"]
    assert plans and all(p["value"] > 0 for p in plans)


def test_placer_plans_on_a_file_without_models_says_so():
    res = run("plans", ROOT / "instances" / "tiny.yaml")
    assert res.exit_code == 0 and "describes a model" in res.stdout


@pytest.mark.parametrize(
    "key, value, loc",
    [
        ("scope", {"dp": "hal"}, "jobs[0].scope.dp"),
        ("scope", {"dq": "site"}, "jobs[0].scope.dq"),
        ("max_latency_us", {"dp": "far"}, "jobs[0].max_latency_us.dp"),
        ("overlap", {"dp": 2}, "jobs[0].overlap.dp"),
        ("scope", "site", "jobs[0].scope"),
    ],
)
def test_the_jobs_shared_keys_are_checked_before_they_enter_the_plans(key, value, loc):
    with pytest.raises(InstanceError) as e:
        expand(two_sites([llama70b(**{key: value})]))
    assert [p[0] for p in e.value.problems] == [loc], e.value.problems


def test_a_variants_overlap_replaces_only_the_keys_it_gives():
    variants = [{"name": "v", "overlap": {"dp": 0.5}}]
    plans = expand_models(two_sites([llama70b(planner={"variants": variants})]))["jobs"][0]
    assert all(p["overlap"] == {"tp": 0.3, "pp": 0.7, "dp": 0.5} for p in plans["plans"])
