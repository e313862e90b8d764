"""Benchmark suites: named, seeded lists of (instance, solver, seed, time limit) runs.

`quick` runs in CI in a few minutes; `full` is the record (see docs/benchmarks.md)."""

from __future__ import annotations

from placer.solvers import names

PEERS = names(peer=True)  # every registered peer baseline
PLACER = [*names(exact=True), *names(exact=False, peer=False)]  # placer's own backends

# generated families at bench size (named so rows can be grouped and resumed)
FAMILY_SIZES = {
    "superpod": dict(sus=4, n_jobs=12),
    "multicampus": dict(sites=3, gpus_per_site=8192, n_jobs=24),
    "nvl72": dict(halls=1, sus_per_hall=4, n_jobs=16),
    "hetero": dict(n_jobs=20),
    "frontier": dict(sites=2, gpus_per_site=16384, n_jobs=6),
}
QUICK_SIZES = {
    "superpod": dict(sus=2, n_jobs=8),
    "multicampus": dict(sites=2, gpus_per_site=2048, n_jobs=10),
    "nvl72": dict(halls=1, sus_per_hall=1, n_jobs=8),
    "hetero": dict(h100_gpus=1024, h200_gpus=1024, gb200_gpus=1152, pods_per_hall=1, n_jobs=10),
}
SCALE = [(1_024, 16), (10_240, 100), (102_400, 500), (1_000_448, 5_000)]


def _run(name, instance, solver, seed, limit):
    return {"name": name, "instance": instance, "solver": solver, "seed": seed, "time_limit": limit}


def quick() -> list[dict]:
    runs = []
    for f in ("tiny", "superpod"):
        for s in PLACER + PEERS:
            runs.append(_run(f, {"file": f"instances/{f}.yaml"}, s, 0, 10))
    for fam, params in QUICK_SIZES.items():
        inst = {"family": fam, "seed": 0, "params": params}
        for s in PLACER + PEERS:
            runs.append(_run(f"{fam}-s0", inst, s, 0, 10))
    return runs


def full() -> list[dict]:
    runs = []
    for s in PLACER + PEERS:
        runs.append(_run("colossus", {"file": "instances/colossus.yaml"}, s, 0, 60))
    for f in ("tiny", "superpod"):
        for s in PLACER + PEERS:
            runs.append(_run(f, {"file": f"instances/{f}.yaml"}, s, 0, 10))
    for fam, params in FAMILY_SIZES.items():
        for seed in (0, 1, 2):
            inst = {"family": fam, "seed": seed, "params": params}
            for s in PLACER + PEERS:
                runs.append(_run(f"{fam}-s{seed}", inst, s, 0, 10 if fam != "frontier" else 60))
    for gpus, jobs in SCALE:
        inst = {"family": "scale", "seed": 0, "params": {"gpus": gpus, "n_jobs": jobs}}
        limit = 10 if gpus <= 10_240 else 60 if gpus <= 102_400 else 300
        solvers = PLACER + PEERS if gpus <= 102_400 else ["cpsat", "greedy", "kueue-bestfit"]
        for s in solvers:
            runs.append(_run(f"scale-{gpus}", inst, s, 0, limit))
    # gap against time on colossus
    for limit in (5, 15, 30):
        runs.append(_run("colossus", {"file": "instances/colossus.yaml"}, "cpsat", 0, limit))
    return runs


SUITES = {"quick": quick, "full": full}
