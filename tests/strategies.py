"""Hypothesis strategies for small random SPEC instances and placements (tests only).

Everything produced is plain JSON-serialisable dicts, as if parsed from the files of
SPEC 1 and 2, so it can be fed both to ``tests/reference.py`` and to ``placer``.

Strategies
----------
``instances()``
    a valid random instance dict: 1-3 sites, 2-4 levels (``site`` ... ``node``), small
    shapes (a few dozen GPUs), count/shape/nested domains, entry-level GPU type overrides,
    random fabric with sometimes per-site overrides, WAN links (pair, line or triangle so
    multi-hop paths exist, sometimes none), unavailable nodes/domains/GPUs, 1-2 GPU types,
    1-4 jobs (training and inference, every optional field sometimes) and sometimes lease
    offers. No running jobs (see the two strategies below for those).
``instance_and_placement()``
    ``(instance, placement)``: a random placement (every job on distinct available GPUs of
    one type inside one WAN-connected group of sites, random unit counts, random lease
    blocks) so that the score is defined; it may break rules 3-7. Some jobs are running
    (``current``, ``migration_cost``), sometimes unmoved.
``feasible_case()``
    ``(instance, placement)`` where the placement passes every rule of SPEC 3 (checked
    with the reference checker while drawing), including pinned and non-preemptible
    running jobs, committed lease blocks and power caps.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

if __package__:
    from .reference import expand, job_defaults, job_under, reference_check
else:  # tests/ is on sys.path (pytest's default rootdir-less import mode)
    from reference import expand, job_defaults, job_under, reference_check

SITE_NAMES = ["a", "b", "c", "m", "z"]
MIDDLE_LEVELS = ["hall", "pod", "rack"]
TYPE_NAMES = ["H100", "B200"]
BANDWIDTHS = [12.5, 25.0, 50.0, 100.0, 400.0]


def _pick(draw, items, lo=0, hi=None):
    """A random sub-list (random order) of `items` with lo..hi elements."""
    items = list(items)
    hi = len(items) if hi is None else min(hi, len(items))
    lo = min(lo, hi)
    k = draw(st.integers(lo, hi))
    if k == 0:
        return []
    return draw(st.permutations(items))[:k]


# --------------------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------------------


def _entry(draw, levels, depth, index):
    """A `domains` entry at levels[depth]; index = its position among its siblings."""
    last = len(levels) - 1
    entry = {}
    if index > 0:
        entry["name"] = f"{levels[depth]}{'xyzw'[index - 1]}"
    elif draw(st.booleans()):
        entry["name"] = f"{levels[depth]}-n"
    if draw(st.booleans()):
        entry["count"] = draw(st.integers(1, 2))
    if draw(st.integers(0, 5)) == 0:
        entry["gpu_type"] = draw(st.sampled_from(TYPE_NAMES))
    if draw(st.integers(0, 5)) == 0:
        entry["gpus_per_node"] = draw(st.sampled_from([1, 2]))
    if depth == last:
        return entry
    if depth + 1 < last and draw(st.integers(0, 3)) == 0:
        n_children = draw(st.integers(1, 2))
        entry["domains"] = [_entry(draw, levels, depth + 1, i) for i in range(n_children)]
    else:
        entry["shape"] = [draw(st.integers(1, 2)) for _ in range(last - depth)]
    return entry


@st.composite
def topologies(draw):
    """(topology dict, gpu_types dict)."""
    n_sites = draw(st.integers(1, 3))
    site_names = draw(st.permutations(SITE_NAMES))[:n_sites]
    middle = sorted(_pick(draw, MIDDLE_LEVELS, 0, 2), key=MIDDLE_LEVELS.index)
    levels = ["site"] + middle + ["node"]

    types = sorted(_pick(draw, TYPE_NAMES, 1, 2))
    gpu_types = {}
    for t in types:
        spec = {"power_kW": draw(st.sampled_from([0.5, 1.0, 1.2]))}
        if draw(st.booleans()):
            spec["speed"] = draw(st.sampled_from([1.0, 1.5, 2.5]))
        gpu_types[t] = spec

    fabric = {}
    for level in levels:
        fabric[level] = {
            "latency_us": draw(st.sampled_from([1, 2, 4, 5, 10, 20])),
            "bandwidth_GBps": draw(st.sampled_from(BANDWIDTHS)),
        }

    sites = []
    for name in site_names:
        site = {
            "name": name,
            "gpu_type": draw(st.sampled_from(types)),
            "gpus_per_node": draw(st.sampled_from([1, 2, 4, 4, 8])),
        }
        if draw(st.integers(0, 2)) == 0:
            level = draw(st.sampled_from(levels))
            field = draw(st.sampled_from(["latency_us", "bandwidth_GBps", "both"]))
            override = {}
            if field in ("latency_us", "both"):
                override["latency_us"] = draw(st.sampled_from([3, 7, 30]))
            if field in ("bandwidth_GBps", "both"):
                override["bandwidth_GBps"] = draw(st.sampled_from(BANDWIDTHS))
            site["fabric"] = {level: override}
        if draw(st.booleans()):
            site["node_failures_per_day"] = draw(st.sampled_from([0.0, 0.01, 0.024, 0.1]))
        n_entries = draw(st.integers(1, 2))
        site["domains"] = [_entry(draw, levels, 1, i) for i in range(n_entries)]
        # entries may name a type outside `types`: keep gpu_types complete
        sites.append(site)

    wan = []
    if n_sites >= 2:
        if n_sites == 2:
            shape = draw(st.sampled_from(["pair", "pair", "pair", "none"]))
            pairs = [(0, 1)] if shape == "pair" else []
        else:
            shape = draw(st.sampled_from(["line", "triangle", "triangle", "pair", "none"]))
            pairs = {
                "line": [(0, 1), (1, 2)],
                "triangle": [(0, 1), (1, 2), (0, 2)],
                "pair": [(0, 1)],
                "none": [],
            }[shape]
        for i, j in pairs:
            link = {
                "between": [site_names[i], site_names[j]],
                "latency_us": draw(st.sampled_from([100, 200, 300, 500])),
                "bandwidth_GBps": draw(st.sampled_from([10.0, 25.0, 50.0, 100.0])),
            }
            if draw(st.booleans()):
                link["failures_per_day"] = draw(st.sampled_from([0.0, 0.05, 0.24]))
            wan.append(link)

    topology = {"levels": levels, "fabric": fabric, "sites": sites}
    if wan or draw(st.booleans()):
        topology["wan"] = wan

    # every type named anywhere gets a gpu_types entry (power_kW needed under power caps)
    named = set()

    def collect(entries):
        for e in entries:
            if "gpu_type" in e:
                named.add(e["gpu_type"])
            collect(e.get("domains", []))

    for s in sites:
        named.add(s["gpu_type"])
        collect(s["domains"])
    for t in sorted(named):
        if t not in gpu_types:
            gpu_types[t] = {"power_kW": 1.0}

    # a few unavailable nodes / domains / single GPUs
    topo = expand({"topology": topology, "gpu_types": gpu_types})
    assume(len(topo.gpus) <= 80)
    nodes = sorted({g["node"] for g in topo.gpus.values()})
    unavailable = []
    if len(nodes) > 1 and draw(st.integers(0, 2)) > 0:
        unavailable += _pick(draw, nodes, 0, max(1, len(nodes) // 4))
        if draw(st.integers(0, 3)) == 0:
            unavailable.append(draw(st.sampled_from(sorted(topo.gpus))))
        if len(levels) > 2 and draw(st.integers(0, 5)) == 0:
            mids = sorted(p for p, d in topo.domains.items() if d["depth"] == 1)
            unavailable.append(draw(st.sampled_from(mids)))
    if unavailable:
        topology["unavailable"] = sorted(set(unavailable))

    # power caps (need power_kW for every type, which all types have)
    for site in sites:
        if draw(st.integers(0, 3)) == 0:
            site["power_cap_kW"] = draw(st.sampled_from([2.0, 6.0, 12.0, 40.0, 1000.0]))
    return topology, gpu_types


# --------------------------------------------------------------------------------------
# jobs and leases
# --------------------------------------------------------------------------------------


def _scope_value(draw, levels):
    return draw(st.sampled_from(levels + ["cluster", "cluster"]))


def _comm(draw, dims):
    comm = {}
    for x in dims:
        if draw(st.booleans()):
            comm[f"{x}_MB"] = draw(st.sampled_from([0, 10, 40, 100, 400]))
        if draw(st.integers(0, 2)) == 0:
            comm[f"{x}_messages"] = draw(st.integers(1, 4))
    return comm


def _overlap(draw, dims):
    overlap = {}
    for x in dims:
        if draw(st.booleans()):
            overlap[x] = draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    return overlap


def _job(draw, name, levels, types, wide_scopes, kind=None):
    if kind is None:
        kind = draw(st.sampled_from(["training", "training", "inference"]))
    job = {"name": name, "kind": kind, "value": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))}
    if draw(st.integers(0, 3)) > 0:
        job["tp"] = draw(st.sampled_from([1, 2, 4]))
    if draw(st.integers(0, 2)) == 0:
        job["pp"] = draw(st.sampled_from([1, 2]))
    if draw(st.integers(0, 3)) == 0:
        job["gpu_types"] = sorted(_pick(draw, types, 1))
    if draw(st.integers(0, 3)) == 0:  # SPEC v2: units of different types
        job["mix_types"] = draw(st.sampled_from(["slowest", "balanced"]))
    dims = ["tp", "pp", "dp", "ep"] if kind == "training" else ["tp", "pp"]
    if kind == "training":
        dp = draw(st.integers(1, 4))
        job["dp"] = dp
        if draw(st.booleans()):
            job["min_dp"] = draw(st.integers(0, dp))
        if dp % 2 == 0 and draw(st.booleans()):
            job["ep"] = 2
        job["compute_ms"] = draw(st.sampled_from([100, 300, 1000, 5000]))
        if draw(st.booleans()):
            job["restart_min"] = draw(st.sampled_from([0, 10, 30]))
        if draw(st.booleans()):
            job["checkpoint_interval_min"] = draw(st.sampled_from([0, 20, 60]))
        if draw(st.integers(0, 2)) == 0:
            job["cross_site_every"] = draw(st.integers(1, 3))
        if job.get("pp", 1) > 1 and draw(st.booleans()):  # v3: the 1F1B bubble
            job["microbatches"] = draw(st.sampled_from([1, 3, 16]))
    else:
        replicas = draw(st.integers(1, 4))
        job["replicas"] = replicas
        if draw(st.booleans()):
            job["min_replicas"] = draw(st.integers(0, replicas))
        if draw(st.booleans()):
            job["compute_ms"] = draw(st.sampled_from([20, 40, 100]))
        if draw(st.integers(0, 2)) == 0:
            job["spread"] = {
                "level": draw(st.sampled_from(levels)),
                "min": draw(st.integers(1, 2)),
            }
    comm = _comm(draw, dims)
    if comm:
        job["comm"] = comm
    overlap = _overlap(draw, dims)
    if overlap:
        job["overlap"] = overlap
    scope = {}
    for x in dims:
        if x in scope:
            continue
        if wide_scopes and x != "tp" and draw(st.integers(0, 2)) > 0:
            scope[x] = "cluster"
            if x == "dp" and "ep" in dims:
                scope["ep"] = "cluster"  # else the default ep scope (site) binds DP too
        elif draw(st.integers(0, 2)) == 0:
            scope[x] = _scope_value(draw, levels)
    if scope:
        job["scope"] = scope
    if draw(st.integers(0, 4)) == 0:
        x = draw(st.sampled_from(dims))
        job["max_latency_us"] = {x: draw(st.sampled_from([5, 20, 400, 100000]))}
    if draw(st.integers(0, 3)) == 0:
        job["remaining_hours"] = draw(st.sampled_from([1, 5, 50, 5000]))
    return job


def _offers(draw, levels, site_names, types):
    leases = {}
    if draw(st.booleans()):
        leases["level"] = draw(st.sampled_from(levels))
    offers = []
    for i in range(draw(st.integers(1, 2))):
        offer = {
            "name": f"offer{i}",
            "price_per_gpu_hour": draw(st.sampled_from([0.5, 1.5, 4.0])),
        }
        if draw(st.booleans()):
            offer["min_gpus"] = draw(st.sampled_from([0, 1, 4]))
        if draw(st.integers(0, 2)) == 0:
            offer["max_gpus"] = draw(st.sampled_from([4, 8, 64]))
        if draw(st.booleans()):
            offer["level"] = draw(st.sampled_from(levels))
        if draw(st.integers(0, 2)) == 0:
            offer["sites"] = sorted(_pick(draw, site_names, 1))
        if draw(st.integers(0, 3)) == 0:
            offer["gpu_types"] = sorted(_pick(draw, types, 1))
        if draw(st.integers(0, 3)) == 0:
            offer["single_site"] = True
        offers.append(offer)
    leases["offers"] = offers
    return leases


# shape keys: each plan of a generated job with plans gives all of these that its drawn
# alternative has (so that every plan, completed by the job's keys, is a valid job)
_SHAPE_KEYS = (
    "tp", "pp", "dp", "min_dp", "ep", "replicas", "min_replicas", "microbatches", "scope",
    "max_latency_us", "cross_site_every", "gpu_types", "mix_types",
)  # fmt: skip
_SHARED_KEYS = ("comm", "overlap", "compute_ms", "value")  # a plan gives each or not


def _with_plans(draw, job, levels, types, wide_scopes):
    """v3: the job with 1-3 plans, each a drawn alternative of the same kind; the job keeps
    only keys that are valid with any shape (comm, overlap, compute_ms, value, ...)."""
    out = {k: v for k, v in job.items() if k not in _SHAPE_KEYS}
    plans = []
    for k in range(draw(st.integers(1, 3))):
        alt = _job(draw, job["name"], levels, types, wide_scopes, kind=job["kind"])
        plan = {"name": f"p{k}"}
        plan.update({key: alt[key] for key in _SHAPE_KEYS if key in alt})
        for key in _SHARED_KEYS:
            if key in alt and draw(st.booleans()):
                plan[key] = alt[key]
        plans.append(plan)
    out["plans"] = plans
    return out


def plan_names(raw):
    return [p["name"] for p in raw.get("plans") or []]


@st.composite
def instances(draw, wide_scopes=False, plans=True):
    """A valid random instance dict without running jobs."""
    topology, gpu_types = draw(topologies())
    levels = topology["levels"]
    types = sorted(gpu_types)
    instance = {"name": "random"}
    if draw(st.booleans()):
        instance["horizon_hours"] = draw(st.sampled_from([10, 100, 720]))
    instance["topology"] = topology
    instance["gpu_types"] = gpu_types
    n_jobs = draw(st.integers(1, 4))
    instance["jobs"] = [_job(draw, f"j{i}", levels, types, wide_scopes) for i in range(n_jobs)]
    if plans:
        instance["jobs"] = [
            _with_plans(draw, j, levels, types, wide_scopes) if draw(st.integers(0, 3)) == 0 else j
            for j in instance["jobs"]
        ]
    if draw(st.integers(0, 2)) == 0:
        site_names = [s["name"] for s in topology["sites"]]
        instance["leases"] = _offers(draw, levels, site_names, types)
    return instance


# --------------------------------------------------------------------------------------
# placements
# --------------------------------------------------------------------------------------


def _components(topo):
    """WAN-connected groups of sites, sorted."""
    sites = sorted(topo.fabric)
    comps = []
    for s in sites:
        for comp in comps:
            if topo.connected(comp[0], s):
                comp.append(s)
                break
        else:
            comps.append([s])
    return comps


def _allowed_types(job, topo):
    types = sorted({g["type"] for g in topo.gpus.values()})
    if job["gpu_types"] is not None:
        types = [t for t in types if t in job["gpu_types"]]
    return types


def _max_units(job):
    return job["dp"] if job["kind"] == "training" else job["replicas"]


def _random_job_gpus(draw, job, topo, taken, allow_unavailable=False):
    """Random units on distinct free GPUs of one type (v2 mix_types: each unit one type)
    within one WAN component."""
    size = job["tp"] * job["pp"]
    types = _allowed_types(job, topo) or sorted({g["type"] for g in topo.gpus.values()})
    comp = draw(st.sampled_from(_components(topo)))
    if job.get("mix_types") and len(types) > 1 and draw(st.booleans()):
        free_by_type = {
            t: sorted(
                g
                for g, info in topo.gpus.items()
                if info["type"] == t
                and info["site"] in comp
                and g not in taken
                and (allow_unavailable or g not in topo.unavailable)
            )
            for t in types
        }
        chosen = []
        for _ in range(draw(st.integers(0, _max_units(job)))):
            ok = [t for t in types if len(free_by_type[t]) >= size]
            if not ok:
                break
            t = draw(st.sampled_from(ok))
            start = draw(st.integers(0, len(free_by_type[t]) - size))
            unit = free_by_type[t][start : start + size]
            free_by_type[t] = [g for g in free_by_type[t] if g not in unit]
            chosen += unit
        return len(chosen) // size, chosen
    gpu_type = draw(st.sampled_from(types))
    free = sorted(
        g
        for g, info in topo.gpus.items()
        if info["type"] == gpu_type
        and info["site"] in comp
        and g not in taken
        and (allow_unavailable or g not in topo.unavailable)
    )
    most = min(_max_units(job), len(free) // size)
    units = draw(st.integers(0, most)) if most > 0 else 0
    if units == 0:
        return 0, []
    if draw(st.booleans()):
        start = draw(st.integers(0, len(free) - units * size))
        chosen = free[start : start + units * size]  # contiguous: tends to pack nodes
    else:
        chosen = draw(st.permutations(free))[: units * size]
    return units, list(chosen)


def _random_blocks(draw, instance, topo, offer, taken_gpus, taken_blocks_gpus, careful):
    leases = instance.get("leases") or {}
    level = offer.get("level", leases.get("level", "site"))
    depth = topo.levels.index(level)
    candidates = []
    for path, dom in sorted(topo.domains.items()):
        if dom["depth"] != depth:
            continue
        if careful:
            if offer.get("sites") is not None and dom["site"] not in offer["sites"]:
                continue
            if offer.get("gpu_types") is not None and any(
                topo.gpus[g]["type"] not in offer["gpu_types"] for g in dom["gpus"]
            ):
                continue
            if any(g in taken_gpus or g in taken_blocks_gpus for g in dom["gpus"]):
                continue
        candidates.append(path)
    blocks = _pick(draw, candidates, 0, 3)
    if careful and offer.get("single_site") and blocks:
        site = topo.domains[blocks[0]]["site"]
        blocks = [b for b in blocks if topo.domains[b]["site"] == site]
    return sorted(blocks)


def _leased_gpus(topo, blocks):
    return len({g for b in blocks for g in topo.domains[b]["gpus"] if g not in topo.unavailable})


@st.composite
def instance_and_placement(draw):
    """(instance, placement): random but scorable; may break rules 3-8."""
    instance = draw(instances())
    topo = expand(instance)
    # v3: each job with plans runs a drawn one
    chosen = {
        r["name"]: draw(st.sampled_from(plan_names(r))) for r in instance["jobs"] if r.get("plans")
    }
    jobs = [job_defaults(job_under(j, chosen.get(j["name"]))) for j in instance["jobs"]]

    taken = set()
    entries = []
    for job in jobs:
        units, gpus = _random_job_gpus(draw, job, topo, taken)
        taken.update(gpus)
        if units > 0 or draw(st.booleans()):
            entry = {"name": job["name"], "units": units, "gpus": gpus}
            if job["name"] in chosen:
                entry["plan"] = chosen[job["name"]]
            elif units and draw(st.integers(0, 9)) == 0:
                entry["plan"] = "p0"  # a plan on a job without plans: a rule-8 violation
            entries.append(entry)

    # running jobs: a current on other GPUs (moved) or the same GPUs (maybe reordered)
    current_taken = set()
    for raw, job in zip(instance["jobs"], jobs, strict=True):
        if draw(st.integers(0, 2)) != 0:
            continue
        entry = next((e for e in entries if e["name"] == job["name"]), None)
        how = draw(st.sampled_from(["same", "reordered", "other"]))
        if how != "other" and entry and entry["units"] > 0:
            current = list(entry["gpus"])
            if how == "reordered":
                size = job["tp"] * job["pp"]
                units = [current[i : i + size] for i in range(0, len(current), size)]
                units = draw(st.permutations(units))
                current = [g for u in units for g in u]
            run = chosen.get(job["name"])
        else:
            run = draw(st.sampled_from(plan_names(raw))) if raw.get("plans") else None
            shape = job_defaults(job_under(raw, run))
            _, current = _random_job_gpus(draw, shape, topo, current_taken, allow_unavailable=True)
        if not current or current_taken & set(current):
            continue
        current_taken.update(current)
        raw["current"] = current
        if run is not None:
            raw["current_plan"] = run
        if draw(st.booleans()):
            raw["migration_cost"] = draw(st.sampled_from([0, 5, 50]))

    placement = {"instance": instance["name"], "jobs": entries}
    leases = []
    taken_blocks = set()
    for offer in (instance.get("leases") or {}).get("offers", []):
        if draw(st.booleans()):
            continue
        careful = draw(st.integers(0, 3)) > 0
        blocks = _random_blocks(draw, instance, topo, offer, taken, taken_blocks, careful)
        for b in blocks:
            taken_blocks.update(topo.domains[b]["gpus"])
        entry = {"offer": offer["name"], "blocks": blocks}
        if draw(st.booleans()):
            entry["gpus"] = _leased_gpus(topo, blocks)
        leases.append(entry)
    if leases:
        placement["leases"] = leases
    # SPEC v2 `force`: accept only where the drawn blocks satisfy the offer (so the instance
    # is valid: some set of blocks meets it), decline anywhere; either may then be broken
    offers = (instance.get("leases") or {}).get("offers", [])
    bad6 = {v.get("offer") for v in reference_check(instance, placement) if v["rule"] == 6}
    granted = {e["offer"] for e in leases if e["blocks"]}
    for offer in offers:
        pick = draw(st.integers(0, 5))
        if pick == 0 and offer["name"] in granted and offer["name"] not in bad6:
            offer["force"] = "accept"
        elif pick == 1 and not offer.get("committed_blocks"):
            offer["force"] = "decline"
    return instance, placement


# --------------------------------------------------------------------------------------
# feasible cases
# --------------------------------------------------------------------------------------


def _narrowest(levels, names):
    """The narrowest of scope names (None/cluster = widest); returns a level or 'cluster'."""
    best = "cluster"
    for n in names:
        if n is None or n == "cluster":
            continue
        if best == "cluster" or levels.index(n) > levels.index(best):
            best = n
    return best


def _containers(topo, level, comp):
    if level == "cluster":
        return [None]  # the whole WAN component
    depth = topo.levels.index(level)
    return sorted(p for p, d in topo.domains.items() if d["depth"] == depth and d["site"] in comp)


def _scoped_job_gpus(draw, job, topo, taken):
    """Units placed so that every group tends to respect its scope.

    Algorithm overview:
    1. pick a GPU type (v2 mix_types: maybe every allowed type) and a WAN component;
    2. the job container is a domain of the narrowest DP/EP scope (or the component), the
       unit container a domain of the narrowest TP/PP scope inside it;
    3. each unit takes tp*pp contiguous free GPUs of one type in one unit container.
    """
    size = job["tp"] * job["pp"]
    types = _allowed_types(job, topo)
    if not types:
        return 0, []
    if job["mix_types"] and len(types) > 1 and draw(st.booleans()):
        unit_types = draw(st.permutations(types))  # units of several types
    else:
        unit_types = [draw(st.sampled_from(types))]
    comp = draw(st.sampled_from(_components(topo)))
    levels = topo.levels
    # only dimensions whose groups have several members constrain the containers
    wide_dims = [x for x in ("dp", "ep") if x in job["dims"]]
    if job["ep"] == 1:
        wide_dims = [x for x in wide_dims if x != "ep"]
    narrow_dims = [x for x in ("tp", "pp") if job[x] > 1]
    job_level = _narrowest(levels, [job["scope"][x] for x in wide_dims])
    unit_level = _narrowest(levels, [job["scope"][x] for x in narrow_dims] + [job_level])
    job_container = draw(st.sampled_from(_containers(topo, job_level, comp)))

    def free_in(container, gpu_type):
        out = []
        for g, info in sorted(topo.gpus.items()):
            if info["type"] != gpu_type or g in taken or g in topo.unavailable:
                continue
            if info["site"] not in comp:
                continue
            if container is not None and container not in info["ancestors"]:
                continue
            out.append(g)
        return out

    want = draw(st.sampled_from([_max_units(job), draw(st.integers(1, _max_units(job)))]))
    unit_containers = [
        c
        for c in _containers(topo, unit_level, comp)
        if job_container is None
        or c is None
        or c == job_container
        or c.startswith(job_container + "/")
    ]
    unit_containers = draw(st.permutations(unit_containers))
    # one unit per container in turn, or pack (a mixed job spreads: its units meet more types)
    spread_out = len(unit_types) > 1 or draw(st.integers(0, 2)) > 0
    chosen = []
    used = set()
    units = 0
    progress = True
    while units < want and progress:
        progress = False
        for c in unit_containers:
            took = False
            for gpu_type in (
                draw(st.permutations(unit_types)) if len(unit_types) > 1 else unit_types
            ):
                free = [g for g in free_in(c, gpu_type) if g not in used]
                while units < want and len(free) >= size:
                    unit = free[:size]
                    free = free[size:]
                    chosen += unit
                    used.update(unit)
                    units += 1
                    progress = took = True
                    if spread_out:
                        break
                if units >= want or (spread_out and took):
                    break
            if units >= want:
                break
    if job["kind"] == "training":
        units -= units % job["ep"]
        chosen = chosen[: units * size]
    return units, chosen


@st.composite
def feasible_case(draw, plans=True):
    """(instance, placement) satisfying every rule of SPEC 3 (with v3 plans unless
    ``plans=False``)."""
    instance = draw(instances(wide_scopes=True, plans=plans))
    topo = expand(instance)
    raw_jobs = instance["jobs"]
    chosen = {r["name"]: draw(st.sampled_from(plan_names(r))) for r in raw_jobs if r.get("plans")}
    jobs = [job_defaults(job_under(j, chosen.get(j["name"]))) for j in raw_jobs]

    taken = set()
    entries = {}
    for job in jobs:
        units, gpus = _scoped_job_gpus(draw, job, topo, taken)
        taken.update(gpus)
        entries[job["name"]] = {"name": job["name"], "units": units, "gpus": gpus}
        if job["name"] in chosen:
            entries[job["name"]]["plan"] = chosen[job["name"]]

    leases = {}
    taken_blocks = set()
    for offer in (instance.get("leases") or {}).get("offers", []):
        if draw(st.booleans()):
            continue
        blocks = _random_blocks(draw, instance, topo, offer, taken, taken_blocks, True)
        if not blocks:
            continue
        for b in blocks:
            taken_blocks.update(topo.domains[b]["gpus"])
        leases[offer["name"]] = {"offer": offer["name"], "blocks": blocks}

    def placement():
        out = {"instance": instance["name"], "jobs": list(entries.values())}
        if leases:
            out["leases"] = [dict(e, gpus=_leased_gpus(topo, e["blocks"])) for e in leases.values()]
        return out

    # the instance bends to the placement: unit ranges admit what was placed
    for raw, job in zip(raw_jobs, jobs, strict=True):
        units = entries[job["name"]]["units"]
        key = "min_dp" if job["kind"] == "training" else "min_replicas"
        # v3: the chosen plan's range (the plan gives every shape key it has)
        holder = raw
        if raw.get("plans"):
            holder = next(p for p in raw["plans"] if p["name"] == chosen[raw["name"]])
        if units == 0 or units < (holder.get(key, _max_units(job))):
            holder[key] = draw(st.integers(0, units)) if units else 0
            if job["kind"] == "training" and units and holder[key] % job["ep"]:
                holder[key] -= holder[key] % job["ep"]

    # repair: drop whatever still breaks a rule, raise power caps that are exceeded
    for _ in range(10):
        violations = reference_check(instance, placement())
        if not violations:
            break
        for v in violations:
            if "job" in v and v["job"] in entries:
                entries[v["job"]].update(units=0, gpus=[])
            elif "offer" in v:
                leases.pop(v["offer"], None)
            elif "site" in v:
                for site in instance["topology"]["sites"]:
                    if site["name"] == v["site"]:
                        site["power_cap_kW"] = 1000.0
    assert not reference_check(instance, placement()), "feasible_case repair failed"

    # running jobs: placed ones may be unmoved (pinned or not), non-preemptible, or moved
    current_taken = {g for e in entries.values() for g in e["gpus"]}
    for raw, job in zip(raw_jobs, jobs, strict=True):
        entry = entries[job["name"]]
        role = draw(st.sampled_from(["none", "none", "same", "pinned", "moved"]))
        if role == "none":
            continue
        if entry["units"] > 0 and role in ("same", "pinned"):
            raw["current"] = list(entry["gpus"])
            if raw.get("plans"):
                raw["current_plan"] = chosen[raw["name"]]
            if role == "pinned":
                raw["pinned"] = True
            elif draw(st.booleans()):
                raw["preemptible"] = False
        elif role == "moved":
            free = sorted(
                g for g in topo.gpus if g not in current_taken and g not in topo.unavailable
            )
            run = draw(st.sampled_from(plan_names(raw))) if raw.get("plans") else None
            shape = job_defaults(job_under(raw, run))
            size = shape["tp"] * shape["pp"]
            if len(free) < size:
                continue
            n = draw(st.integers(1, max(1, min(_max_units(shape), len(free) // size))))
            current = draw(st.permutations(free))[: n * size]
            current_taken.update(current)
            raw["current"] = current
            if run is not None:
                raw["current_plan"] = run
            if entry["units"] > 0 and draw(st.booleans()):
                raw["preemptible"] = False
        else:
            continue
        if draw(st.booleans()):
            raw["migration_cost"] = draw(st.sampled_from([0, 5, 50]))

    for offer in (instance.get("leases") or {}).get("offers", []):
        if offer["name"] in leases and draw(st.booleans()):
            blocks = leases[offer["name"]]["blocks"]
            offer["committed_blocks"] = sorted(_pick(draw, blocks, 1))

    final = placement()
    assert not reference_check(instance, final), "feasible_case is not feasible"
    return instance, final


__all__ = [
    "feasible_case",
    "instance_and_placement",
    "instances",
    "topologies",
]


def hardware_items(inst_d: dict) -> list:
    """What a random `fail` or `restore` may name on the instance: up to six domains per
    level below the site, and every WAN link (the live-cluster properties draw from it)."""
    import copy

    import placer

    inst = placer.load_instance(copy.deepcopy(inst_d))
    ix = inst.index
    out: list = []
    for lvl in range(1, ix.n_levels):
        out += [ix.domain_path(lvl, d) for d in range(min(ix.n_domains(lvl), 6))]
    out += [list(w.between) for w in inst.topology.wan]
    return out


def rounded(x: object) -> object:
    """An answer with its floats rounded (incremental scores differ in the last bits) and
    its `seconds` left out, for comparing two answers."""
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return x


def as_arrivals(inst_d: dict) -> list[dict]:
    """The instance's jobs as new submissions: copies without ``current``, ``current_plan``
    and ``pinned`` (what the live-cluster properties submit)."""
    import copy

    out = [copy.deepcopy(j) for j in inst_d["jobs"]]
    for j in out:
        for k in ("current", "current_plan", "pinned"):
            j.pop(k, None)
    return out
