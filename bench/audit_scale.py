"""Hand-written (from SPEC v3 text only) three-campus instance of ~180,000 GPUs with a few
hundred mixed jobs, running jobs, offers, plans and microbatches: the outside audit's probe
of placer at real sizes (`python -m bench.audit_scale OUT.yaml [--jobs N] [--seed S]`)."""

from __future__ import annotations

import random

import yaml


def topology():
    return {
        "levels": ["site", "hall", "pod", "rack", "node"],
        "fabric": {
            "node": {"latency_us": 2, "bandwidth_GBps": 450},
            "rack": {"latency_us": 4, "bandwidth_GBps": 50},
            "pod": {"latency_us": 6, "bandwidth_GBps": 50},
            "hall": {"latency_us": 9, "bandwidth_GBps": 50},
            "site": {"latency_us": 14, "bandwidth_GBps": 25},
        },
        "sites": [
            {  # 5 x 24 x 8 x 8 nodes x 8 = 61,440 H100
                "name": "alpha",
                "node_failures_per_day": 0.004,
                "power_cap_kW": 100000,
                "gpu_type": "H100",
                "gpus_per_node": 8,
                "fabric": {"site": {"latency_us": 20, "bandwidth_GBps": 12.5}},
                "domains": [{"name": "hall", "count": 5, "shape": [24, 8, 8]}],
            },
            {  # explicit nesting: 4 GB200 halls of 12 NVL72-ish pods (8 racks x 18 trays x 4)
                # = 27,648 GB200, plus 2 H200 halls (24 x 8 x 8 x 8) = 24,576
                "name": "beta",
                "node_failures_per_day": 0.003,
                "fabric": {"rack": {"latency_us": 1.5, "bandwidth_GBps": 450}},
                "domains": [
                    {
                        "name": "gb",
                        "count": 4,
                        "gpu_type": "GB200",
                        "gpus_per_node": 4,
                        "domains": [{"name": "pod", "count": 12, "shape": [8, 18]}],
                    },
                    {
                        "name": "hh",
                        "count": 2,
                        "gpu_type": "H200",
                        "gpus_per_node": 8,
                        "shape": [24, 8, 8],
                    },
                ],
            },
            {  # 8 x 16 x 8 x 8 nodes x 8 = 65,536 H200
                "name": "gamma",
                "node_failures_per_day": 0.002,
                "gpu_type": "H200",
                "gpus_per_node": 8,
                "power_cap_kW": 120000,
                "domains": [{"name": "hall", "count": 8, "shape": [16, 8, 8]}],
            },
        ],
        "wan": [
            {
                "between": ["alpha", "beta"],
                "latency_us": 400,
                "bandwidth_GBps": 100,
                "failures_per_day": 0.05,
            },
            {
                "between": ["beta", "gamma"],
                "latency_us": 150,
                "bandwidth_GBps": 200,
                "failures_per_day": 0.02,
            },
            {"between": ["alpha", "gamma"], "latency_us": 900, "bandwidth_GBps": 50},
        ],
        "unavailable": [
            "alpha/hall2/pod3/rack7/node5",
            "alpha/hall3/pod0",
            "gamma/hall1/pod2/rack1/node1/gpu3",
            "beta/gb1/pod4/rack2",
        ],
    }


def node_ids(site, hall, pods, racks, nodes):
    for p in range(pods):
        for r in range(racks):
            for n in range(nodes):
                yield f"{site}/{hall}/pod{p}/rack{r}/node{n}"


def jobs(n, rng):
    out = []
    # running jobs: carve nodes of gamma/hall7 and alpha/hall4 in order
    gamma7 = list(node_ids("gamma", "hall7", 16, 8, 8))
    alpha4 = list(node_ids("alpha", "hall4", 24, 8, 8))
    pools = {"H200": gamma7, "H100": alpha4}
    for i in range(n):
        r = rng.random()
        name = f"j{i:03d}"
        if r < 0.3:
            j = {
                "name": name,
                "kind": "inference",
                "tp": rng.choice([1, 2, 4, 8]),
                "replicas": rng.choice([4, 8, 16, 32, 64]),
                "value": round(rng.uniform(1, 3), 2),
            }
            j["min_replicas"] = rng.choice([0, j["replicas"] // 2, j["replicas"]])
            if rng.random() < 0.5:
                j["compute_ms"] = 40
                j["comm"] = {"tp_MB": 20, "tp_messages": 160}
            if rng.random() < 0.4:
                j["spread"] = {"level": rng.choice(["site", "hall"]), "min": 2}
            if rng.random() < 0.3:
                j["gpu_types"] = rng.choice([["H100"], ["H200", "GB200"]])
        else:
            tp = rng.choice([4, 8])
            pp = rng.choice([1, 1, 2, 4, 8])
            dp = rng.choice([2, 4, 8, 16, 32, 64, 128, 256])
            j = {
                "name": name,
                "kind": "training",
                "tp": tp,
                "pp": pp,
                "dp": dp,
                "min_dp": rng.choice([dp, max(1, dp // 2), max(1, dp // 4)]),
                "compute_ms": rng.choice([800, 2000, 5000]),
                "comm": {
                    "tp_MB": 500,
                    "tp_messages": 32,
                    "pp_MB": 100,
                    "pp_messages": 16,
                    "dp_MB": rng.choice([200, 1800, 8000]),
                },
                "overlap": {"dp": 0.7},
                "value": round(rng.uniform(1, 4), 2),
                "restart_min": 10,
                "checkpoint_interval_min": 30,
            }
            if pp > 1 and rng.random() < 0.5:
                j["microbatches"] = rng.choice([8, 32])
            if rng.random() < 0.2:
                j["scope"] = {"pp": "hall", "dp": "cluster"}
                j["cross_site_every"] = rng.choice([1, 20])
            if rng.random() < 0.1:
                j["max_latency_us"] = {"dp": 20}
            if rng.random() < 0.15:
                j["ep"] = 2
                j["comm"]["ep_MB"] = 300
                j["dp"] = max(2, dp - dp % 2)
                j["min_dp"] = max(2, j["min_dp"] - j["min_dp"] % 2)
            if rng.random() < 0.2:
                j["gpu_types"] = ["H100", "H200"]
                if rng.random() < 0.5:
                    j["mix_types"] = rng.choice(["slowest", "balanced"])
            if rng.random() < 0.1:
                j["remaining_hours"] = rng.choice([5, 50])
            if rng.random() < 0.12:  # v3 plans
                base = {k: j.pop(k) for k in ("tp", "pp", "dp", "min_dp", "comm") if k in j}
                j.pop("microbatches", None)
                j.pop("ep", None)
                j["plans"] = [
                    {"name": "flat", **base},
                    {
                        "name": "deep",
                        "tp": 8,
                        "pp": 4,
                        "dp": max(1, base["dp"] // 2),
                        "min_dp": max(1, base["min_dp"] // 2),
                        "microbatches": 16,
                        "comm": {"tp_MB": 400, "pp_MB": 300, "dp_MB": 900},
                        "scope": {"pp": "site"},
                    },
                    {
                        "name": "diloco",
                        "dp": base["dp"],
                        "min_dp": base["min_dp"],
                        "cross_site_every": 50,
                        "value": round(j["value"] * 0.9, 2),
                        "scope": {"dp": "cluster"},
                    },
                ]
        # running jobs: ~8% (training without mix, with one of the two pools)
        if i % 12 == 5 and j["kind"] == "training" and "mix_types" not in j:
            t = j.get("gpu_types", ["H200"])[0] if j.get("gpu_types") else "H200"
            t = "H200" if t != "H100" else "H100"
            j["gpu_types"] = [t]
            shape = j["plans"][0] if "plans" in j else j
            tp, pp = shape.get("tp", 1), shape.get("pp", 1)
            units = shape.get("min_dp", shape["dp"])
            need_nodes = units * tp * pp // 8
            if units * tp * pp % 8 == 0 and need_nodes <= 64:
                pool = pools[t]
                nodes, pools[t] = pool[:need_nodes], pool[need_nodes:]
                j["current"] = [f"{nd}/gpu{k}" for nd in nodes for k in range(8)]
                if "plans" in j:
                    j["current_plan"] = "flat"
                    # current must be whole units of the plan, units within range of the plan
                j["migration_cost"] = 100
                if i % 36 == 5:
                    j["preemptible"] = False
        out.append(j)
    return out


def instance(n_jobs=300, seed=0, version=3):
    rng = random.Random(seed)
    inst = {
        "name": f"audit-scale-{n_jobs}",
        "horizon_hours": 168,
        "topology": topology(),
        "gpu_types": {
            "H100": {"power_kW": 1.0, "speed": 1.0},
            "H200": {"power_kW": 1.1, "speed": 1.3},
            "GB200": {"power_kW": 1.2, "speed": 2.5},
        },
        "jobs": jobs(n_jobs, rng),
        "leases": {
            "level": "site",
            "offers": [
                {
                    "name": "lab-hall",
                    "price_per_gpu_hour": 2.2,
                    "level": "hall",
                    "min_gpus": 12000,
                    "max_gpus": 30000,
                    "sites": ["alpha"],
                    "gpu_types": ["H100"],
                },
                {
                    "name": "lab-gb",
                    "price_per_gpu_hour": 5.5,
                    "level": "hall",
                    "min_gpus": 6000,
                    "sites": ["beta"],
                    "single_site": True,
                    "gpu_types": ["GB200"],
                },
            ],
        },
    }
    if version < 3:
        for j in inst["jobs"]:
            if "plans" in j:
                p = j.pop("plans")[0]
                p.pop("name")
                j.update(p)
                if j.pop("current_plan", None):
                    pass
            j.pop("microbatches", None)
        if version < 2:
            for j in inst["jobs"]:
                j.pop("mix_types", None)
            inst["leases"]["offers"][1].pop("force", None)
    return inst


if __name__ == "__main__":
    from bench.common import parser

    ap = parser("The real-size audit's three-campus instance, written as YAML to OUT.")
    ap.add_argument("out")
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--version", type=int, default=3)
    a = ap.parse_args()
    with open(a.out, "w") as f:
        yaml.safe_dump(instance(a.jobs, a.seed, a.version), f, sort_keys=False, width=200)
