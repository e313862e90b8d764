"""Test-only oracle: a slow, obviously correct reading of SPEC sections 1, 3, 4 and 6.

This module exists only so that tests can cross-check the fast numpy kernel and the
checker of the ``placer`` package. It deliberately imports nothing from ``placer``:
it works on the raw instance and placement dicts (as parsed from YAML/JSON), applies
SPEC's defaults itself and follows the text of SPEC with plain dicts and loops, in the
order SPEC states things (for each job, for each group, for each pair ...). Clarity
wins over speed everywhere; do not use it on large instances.

Public API
----------
``expand(instance) -> Topo``
    the expanded topology (GPUs, domains, fabric per site, WAN links and paths).
``reference_score(instance, placement) -> dict``
    the SPEC 2.1 breakdown ``{"objective", "jobs", "offers", "totals"}``.
``reference_check(instance, placement) -> list[dict]``
    every violation of SPEC 3 as ``{"rule": 1..7, "job"|"offer"|"site": name, "what": text}``.

Readings of points SPEC leaves open (see the report that came with this file):

* A PP chain's WAN paths (for link sharing and for lambda) are the paths of its
  *boundaries* between consecutive stages in different sites; TP/DP/EP groups use the
  paths between every pair of their sites.
* A WAN path between two sites is chosen once per unordered pair; the final tie-break
  ("smaller site-name sequence") compares the sequences written from the endpoint whose
  name sorts first.
* Placement-shape problems (unknown or duplicate job name, ``len(gpus) != units*tp*pp``)
  are reported under rule 3; unknown / duplicate offer entries and a stated ``gpus`` that
  differs from the blocks' available GPUs under rule 6.
* For scoring, a job's GPU type (speed) is the type of its rank-0 GPU.
* A running job's ``moved`` is true when its GPU set differs from ``current``, which
  includes being stopped (0 units).
"""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations

import networkx as nx

DIMENSIONS = ("tp", "pp", "dp", "ep")
DEFAULT_SCOPE = {"tp": "node", "pp": "site", "dp": "site", "ep": "site"}
DEFAULT_HORIZON_HOURS = 720.0


def exact(x):
    """The decimal a number was written as, as an exact rational (0.24 + 0.48 == 0.72).

    Used wherever SPEC compares sums (path latencies and failures for the WAN tie-breaks,
    latency bounds, power caps), so that a tie or a bound met exactly in the file's decimals
    is a tie or met here too.
    """
    if isinstance(x, int):
        return Fraction(x)
    return Fraction(repr(float(x)))


class ScoreUndefined(ValueError):
    """The placement cannot be scored (unknown GPU, wrong length, unconnected sites)."""


# --------------------------------------------------------------------------------------
# Topology expansion (SPEC 1.1 and 6 "Topology")
# --------------------------------------------------------------------------------------


class Topo:
    """The expanded topology, as plain dicts.

    Attributes
    ----------
    levels : list[str]
        level names, widest first (``levels[0] == "site"``, ``levels[-1] == "node"``).
    gpus : dict[str, dict]
        gpu id -> ``{"site", "node", "type", "ancestors"}`` where ``ancestors[d]`` is the
        path of the GPU's domain at ``levels[d]`` (``ancestors[0]`` is the site name,
        ``ancestors[-1]`` the node path).
    domains : dict[str, dict]
        domain path -> ``{"depth", "site", "gpus"}`` (``gpus``: every GPU under it).
    fabric : dict[str, dict[str, tuple[float, float]]]
        site -> level -> ``(latency_us, bandwidth_GBps)`` after merging the override.
    unavailable : set[str]
        ids of GPUs under an ``unavailable`` entry.
    site_info : dict[str, dict]
        site -> ``{"node_failures_per_day", "power_cap_kW"}``.
    links : dict[frozenset, dict]
        ``frozenset({a, b})`` -> ``{"latency_us", "bandwidth_GBps", "failures_per_day"}``.
    paths : dict[tuple[str, str], dict]
        ``(a, b)`` for every ordered pair of distinct WAN-connected sites ->
        ``{"sites", "links", "latency_us", "latency_exact", "bandwidth_GBps"}``.
    gpu_types : dict[str, dict]
        type -> ``{"speed", "power_kW"}`` (speed defaults to 1, power_kW may be None).
    """

    def __init__(self):
        self.levels = []
        self.gpus = {}
        self.domains = {}
        self.fabric = {}
        self.unavailable = set()
        self.site_info = {}
        self.links = {}
        self.paths = {}
        self.gpu_types = {}

    # helpers that read like SPEC ---------------------------------------------------

    def depth_of(self, level):
        return self.levels.index(level)

    def meeting_depth(self, gpu_ids):
        """Depth of the smallest domain holding every GPU (all GPUs in one site)."""
        ancestors = [self.gpus[g]["ancestors"] for g in gpu_ids]
        sites = {a[0] for a in ancestors}
        assert len(sites) == 1, "meeting level is only defined inside one site"
        best = 0
        for depth in range(len(self.levels)):
            if len({a[depth] for a in ancestors}) == 1:
                best = depth
        return best

    def fabric_link(self, gpu_ids):
        """(latency_us, bandwidth_GBps) of the meeting level of GPUs of one site."""
        site = self.gpus[gpu_ids[0]]["site"]
        level = self.levels[self.meeting_depth(gpu_ids)]
        return self.fabric[site][level]

    def connected(self, site_a, site_b):
        return site_a == site_b or (site_a, site_b) in self.paths

    def pair_latency_exact(self, gpu_a, gpu_b):
        """Link latency (us, exact) of a pair (section 1.1); None if no WAN path."""
        site_a = self.gpus[gpu_a]["site"]
        site_b = self.gpus[gpu_b]["site"]
        if site_a == site_b:
            return exact(self.fabric_link([gpu_a, gpu_b])[0])
        if (site_a, site_b) not in self.paths:
            return None
        return self.paths[(site_a, site_b)]["latency_exact"]


def expand(instance):
    """Expand ``instance["topology"]`` (and ``gpu_types``) into a :class:`Topo`."""
    topo = Topo()
    t = instance["topology"]
    topo.levels = list(t["levels"])
    levels = topo.levels
    last = len(levels) - 1

    for type_name, spec in (instance.get("gpu_types") or {}).items():
        spec = spec or {}
        topo.gpu_types[type_name] = {
            "speed": float(spec.get("speed", 1.0)),
            "power_kW": spec.get("power_kW"),
        }

    default_fabric = t.get("fabric") or {}

    def add_domain(path, depth, site):
        if path in topo.domains:
            raise ValueError(f"duplicate domain path {path!r}")
        topo.domains[path] = {"depth": depth, "site": site, "gpus": []}

    def add_node(node_path, ancestors, site, gpu_type, gpus_per_node):
        for k in range(int(gpus_per_node)):
            gpu_id = f"{node_path}/gpu{k}"
            topo.gpus[gpu_id] = {
                "site": site,
                "node": node_path,
                "type": gpu_type,
                "ancestors": list(ancestors),
            }
            for anc in ancestors:
                topo.domains[anc]["gpus"].append(gpu_id)

    def expand_shape(path, depth, ancestors, shape, site, gpu_type, gpn):
        # `path` is a domain at `depth`; shape lists the fan-out of depth+1, depth+2, ...
        if depth == last:
            add_node(path, ancestors, site, gpu_type, gpn)
            return
        fan_out = int(shape[0])
        for i in range(fan_out):
            child = f"{path}/{levels[depth + 1]}{i}"
            add_domain(child, depth + 1, site)
            expand_shape(child, depth + 1, ancestors + [child], shape[1:], site, gpu_type, gpn)

    def expand_entries(entries, depth, parent_path, ancestors, site, gpu_type, gpn):
        for entry in entries:
            entry_type = entry.get("gpu_type", gpu_type)
            entry_gpn = entry.get("gpus_per_node", gpn)
            base = entry.get("name", levels[depth])
            if "count" in entry:
                names = [f"{base}{i}" for i in range(int(entry["count"]))]
            else:
                names = [base]
            for name in names:
                path = f"{parent_path}/{name}"
                add_domain(path, depth, site)
                here = ancestors + [path]
                if depth == last:
                    add_node(path, here, site, entry_type, entry_gpn)
                elif "shape" in entry:
                    shape = list(entry["shape"])
                    assert len(shape) == last - depth, f"{path}: shape length"
                    expand_shape(path, depth, here, shape, site, entry_type, entry_gpn)
                else:
                    expand_entries(
                        entry["domains"], depth + 1, path, here, site, entry_type, entry_gpn
                    )

    for site in t["sites"]:
        name = site["name"]
        # fabric: topology default, overridden field by field per level by the site
        override = site.get("fabric") or {}
        merged = {}
        for level in levels:
            entry = dict(default_fabric.get(level) or {})
            entry.update(override.get(level) or {})
            merged[level] = (float(entry["latency_us"]), float(entry["bandwidth_GBps"]))
        topo.fabric[name] = merged
        topo.site_info[name] = {
            "node_failures_per_day": float(site.get("node_failures_per_day", 0) or 0),
            "power_cap_kW": site.get("power_cap_kW"),
        }
        add_domain(name, 0, name)
        expand_entries(
            site["domains"], 1, name, [name], name, site.get("gpu_type"), site.get("gpus_per_node")
        )

    for entry in t.get("unavailable") or []:
        if entry in topo.domains:
            topo.unavailable.update(topo.domains[entry]["gpus"])
        elif entry in topo.gpus:
            topo.unavailable.add(entry)
        else:
            raise ValueError(f"topology.unavailable: unknown path {entry!r}")

    # WAN links and minimum-latency paths with the tie-breaks of section 6
    graph = nx.Graph()
    graph.add_nodes_from(topo.fabric)
    for link in t.get("wan") or []:
        a, b = link["between"]
        key = frozenset((a, b))
        topo.links[key] = {
            "latency_us": float(link["latency_us"]),
            "bandwidth_GBps": float(link["bandwidth_GBps"]),
            "failures_per_day": float(link.get("failures_per_day", 0) or 0),
        }
        graph.add_edge(a, b)

    site_names = sorted(topo.fabric)
    for a, b in combinations(site_names, 2):  # a < b by name: the sequence is read from a
        best_key = None
        best_path = None
        for path in nx.all_simple_paths(graph, a, b):
            hops = [frozenset((path[i], path[i + 1])) for i in range(len(path) - 1)]
            latency = sum(exact(topo.links[h]["latency_us"]) for h in hops)
            bottleneck = min(exact(topo.links[h]["bandwidth_GBps"]) for h in hops)
            failures = sum(exact(topo.links[h]["failures_per_day"]) for h in hops)
            key = (latency, -bottleneck, failures, len(hops), list(path))
            if best_key is None or key < best_key:
                best_key, best_path = key, path
        if best_path is None:
            continue  # no WAN path: these sites cannot share a group
        hops = [frozenset((best_path[i], best_path[i + 1])) for i in range(len(best_path) - 1)]
        latency_us = 0.0
        for h in hops:
            latency_us += topo.links[h]["latency_us"]
        info = {
            "links": hops,
            "latency_us": latency_us,
            "latency_exact": best_key[0],
            "bandwidth_GBps": min(topo.links[h]["bandwidth_GBps"] for h in hops),
        }
        topo.paths[(a, b)] = dict(info, sites=list(best_path))
        topo.paths[(b, a)] = dict(info, sites=list(reversed(best_path)))
    return topo


# --------------------------------------------------------------------------------------
# Jobs with their defaults (SPEC 1.2 and 6 "Jobs")
# --------------------------------------------------------------------------------------


PLAN_KEYS = (
    "tp", "pp", "dp", "min_dp", "ep", "replicas", "min_replicas", "microbatches", "scope",
    "max_latency_us", "comm", "overlap", "compute_ms", "cross_site_every", "gpu_types",
    "mix_types", "value",
)  # fmt: skip


def plan_of(raw, entry):
    """The name of the plan a raw job runs under in a placement entry (SPEC 1.2, v3): the
    entry's `plan` when the job is placed with plans; else its current_plan when running,
    else its first plan; None for a job without plans."""
    plans = raw.get("plans")
    if not plans:
        return None
    names = [p["name"] for p in plans]
    if entry and int(entry.get("units", 0)) > 0:
        return entry.get("plan") if entry.get("plan") in names else None
    if raw.get("current") and raw.get("current_plan") in names:
        return raw["current_plan"]
    return names[0]


def job_under(raw, plan_name):
    """The raw job under its plan: each key the plan gives replaces the job's wholesale."""
    if plan_name is None:
        return {k: v for k, v in raw.items() if k != "plans"}
    plan = next(p for p in raw["plans"] if p["name"] == plan_name)
    out = {k: v for k, v in raw.items() if k != "plans"}
    out.update({k: v for k, v in plan.items() if k in PLAN_KEYS})
    out["plan"] = plan_name
    return out


def job_defaults(job):
    """A copy of a raw job dict with every SPEC default filled in."""
    kind = job["kind"]
    j = {
        "name": job["name"],
        "kind": kind,
        "gpu_types": job.get("gpu_types"),
        "mix_types": job.get("mix_types") or False,
        "tp": int(job.get("tp", 1)),
        "pp": int(job.get("pp", 1)),
        "value": float(job["value"]),
        "restart_min": float(job.get("restart_min", 0) or 0),
        "checkpoint_interval_min": float(job.get("checkpoint_interval_min", 0) or 0),
        "remaining_hours": job.get("remaining_hours"),
        "current": list(job.get("current") or []),
        "pinned": bool(job.get("pinned", False)),
        "preemptible": bool(job.get("preemptible", True)),
        "migration_cost": float(job.get("migration_cost", 0) or 0),
        "cross_site_every": float(job.get("cross_site_every", 1) or 1),
        "compute_ms": job.get("compute_ms"),
        "spread": job.get("spread") if kind == "inference" else None,
        "microbatches": job.get("microbatches") if kind == "training" else None,
        "plan": job.get("plan"),
        "current_plan": job.get("current_plan"),
    }
    if kind == "training":
        j["dp"] = int(job["dp"])
        j["min_dp"] = int(job.get("min_dp", j["dp"]))
        j["ep"] = int(job.get("ep", 1))
        dims = ["tp", "pp", "dp", "ep"]
    else:
        j["replicas"] = int(job["replicas"])
        j["min_replicas"] = int(job.get("min_replicas", j["replicas"]))
        j["ep"] = 1
        dims = ["tp", "pp"]
    j["dims"] = dims

    comm = job.get("comm") or {}
    overlap = job.get("overlap") or {}
    j["S"] = {x: float(comm.get(f"{x}_MB", 0) or 0) for x in DIMENSIONS}
    j["m"] = {x: float(comm.get(f"{x}_messages", 1)) for x in DIMENSIONS}
    j["overlap"] = {x: float(overlap.get(x, 0) or 0) for x in DIMENSIONS}

    # scope: defaults merged key by key; a max_latency_us[X] drops the *default* scope of X
    explicit_scope = job.get("scope") or {}
    max_latency = job.get("max_latency_us") or {}
    scope = {}
    for x in DIMENSIONS:
        if x in explicit_scope:
            scope[x] = explicit_scope[x]
        elif x in max_latency:
            scope[x] = None
        else:
            scope[x] = DEFAULT_SCOPE[x]
    j["scope"] = scope
    j["max_latency_us"] = {x: max_latency.get(x) for x in DIMENSIONS}
    return j


def groups_of(job, units):
    """Rank lists of every group of every dimension (SPEC 1.2 "Rank order").

    Returns ``{"tp": [...], "pp": [...], "dp": [...], "ep": [...]}``; a PP chain is listed
    in stage order. Inference jobs have no DP or EP groups.
    """
    tp, pp = job["tp"], job["pp"]

    def rank(t, p, u):
        return t + tp * p + tp * pp * u

    groups = {"tp": [], "pp": [], "dp": [], "ep": []}
    for u in range(units):
        for p in range(pp):
            groups["tp"].append([rank(t, p, u) for t in range(tp)])
    for u in range(units):
        for t in range(tp):
            groups["pp"].append([rank(t, p, u) for p in range(pp)])
    if job["kind"] == "training" and units > 0:
        for t in range(tp):
            for p in range(pp):
                groups["dp"].append([rank(t, p, u) for u in range(units)])
        ep = job["ep"]
        for t in range(tp):
            for p in range(pp):
                for block in range((units + ep - 1) // ep):
                    members = [u for u in range(units) if u // ep == block]
                    groups["ep"].append([rank(t, p, u) for u in members])
    return groups


def placement_entries(placement):
    """job name -> placement entry (first one wins; duplicates are a check matter)."""
    out = {}
    for entry in placement.get("jobs") or []:
        out.setdefault(entry["name"], entry)
    return out


def lease_entries(placement):
    out = {}
    for entry in placement.get("leases") or []:
        out.setdefault(entry["offer"], entry)
    return out


def offer_level(instance, offer):
    leases = instance.get("leases") or {}
    return offer.get("level", leases.get("level", "site"))


# --------------------------------------------------------------------------------------
# Score (SPEC 4 with the readings of SPEC 6 "Score")
# --------------------------------------------------------------------------------------


def _sites_of(topo, gpu_ids):
    return sorted({topo.gpus[g]["site"] for g in gpu_ids})


def _group_wan_paths(topo, dim, gpu_ids):
    """WAN paths of one group: every pair of its sites (TP/DP/EP), or, for a PP chain,
    each boundary between consecutive stages lying in different sites."""
    pairs = []
    if dim == "pp":
        for a, b in zip(gpu_ids, gpu_ids[1:], strict=False):
            sa, sb = topo.gpus[a]["site"], topo.gpus[b]["site"]
            if sa != sb:
                pairs.append((sa, sb))
    else:
        for sa, sb in combinations(_sites_of(topo, gpu_ids), 2):
            pairs.append((sa, sb))
    paths = []
    for sa, sb in pairs:
        if (sa, sb) not in topo.paths:
            raise ScoreUndefined(f"sites {sa!r} and {sb!r} have no WAN path")
        paths.append(topo.paths[(sa, sb)])
    return paths


def reference_score(instance, placement):
    """The SPEC 2.1 breakdown of ``placement`` on ``instance``."""
    topo = expand(instance)
    horizon = float(instance.get("horizon_hours", DEFAULT_HORIZON_HOURS))
    entries = placement_entries(placement)
    jobs = []
    for raw in instance.get("jobs") or []:
        entry = entries.get(raw["name"])
        plan = plan_of(raw, entry)
        if raw.get("plans") and entry and int(entry.get("units", 0)) > 0 and plan is None:
            raise ScoreUndefined(f"{raw['name']}: placed with plans but no plan of its own")
        jobs.append(job_defaults(job_under(raw, plan)))

    # 1. every placed job's GPUs (rank order) and groups
    placed = {}  # name -> {"gpus": [...], "groups": {...}, "units": int}
    for job in jobs:
        entry = entries.get(job["name"])
        units = int(entry.get("units", 0)) if entry else 0
        gpus = list(entry.get("gpus") or []) if entry else []
        if units == 0:
            continue
        if len(gpus) != units * job["tp"] * job["pp"]:
            raise ScoreUndefined(f"{job['name']}: len(gpus) != units*tp*pp")
        for g in gpus:
            if g not in topo.gpus:
                raise ScoreUndefined(f"{job['name']}: unknown GPU {g!r}")
        placed[job["name"]] = {"gpus": gpus, "units": units, "groups": groups_of(job, units)}

    # 2. link sharing: for each WAN link, the distinct placed jobs with any group using it
    users = {key: set() for key in topo.links}
    for job in jobs:
        if job["name"] not in placed:
            continue
        p = placed[job["name"]]
        for dim in DIMENSIONS:
            for group in p["groups"][dim]:
                members = [p["gpus"][r] for r in group]
                for path in _group_wan_paths(topo, dim, members):
                    for link in path["links"]:
                        users[link].add(job["name"])

    def shared_bandwidth(link):
        return topo.links[link]["bandwidth_GBps"] / len(users[link])

    def smallest_shared_bandwidth(paths):
        return min(shared_bandwidth(link) for path in paths for link in path["links"])

    # 3. per job
    job_rows = []
    for job in jobs:
        name = job["name"]
        hours = horizon
        if job["remaining_hours"] is not None:
            hours = min(float(job["remaining_hours"]), horizon)
        row = {
            "name": name,
            "units": 0,
            "gpus": 0,
            "plan": None,
            "T_tp_ms": 0.0,
            "T_pp_ms": 0.0,
            "T_dp_ms": 0.0,
            "T_ep_ms": 0.0,
            "step_ms": None,
            "efficiency": None,
            "lambda_per_hour": 0.0,
            "lost": 0.0,
            "goodput": 0.0,
            "value": 0.0,
            "moved": False,
            "migration_cost": 0.0,
        }
        gpus = placed[name]["gpus"] if name in placed else []
        if job["current"]:
            # moved: the GPU set differs (reordering alone is not a move), or (v3) the plan
            # differs from current_plan; stopped: 0 units
            changed = job["plan"] is not None and job["plan"] != job["current_plan"]
            if set(gpus) != set(job["current"]) or (changed and name in placed):
                row["moved"] = True
                row["migration_cost"] = job["migration_cost"]
        if name not in placed:
            job_rows.append(row)
            continue

        p = placed[name]
        units = p["units"]
        n_gpus = len(gpus)
        row["units"] = units
        row["gpus"] = n_gpus
        row["plan"] = job["plan"]
        speeds = [topo.gpu_types.get(topo.gpus[g]["type"], {}).get("speed", 1.0) for g in gpus]
        if job["mix_types"] == "slowest":  # SPEC 4 (v2): the slowest type's speed
            speed = min(speeds)
        elif job["mix_types"] == "balanced":  # the GPU-weighted mean of their speeds
            speed = sum(speeds) / len(speeds)
        else:  # one type: the type of rank 0
            speed = speeds[0]

        # 3a. for each dimension, for each group: its time; T_X is the slowest group
        T = {}
        for dim in DIMENSIONS:
            m = job["m"][dim]
            S = job["S"][dim]
            groups = [[gpus[r] for r in group] for group in p["groups"][dim]]
            if dim == "pp":
                T[dim] = _pp_time(topo, groups, m, S, smallest_shared_bandwidth)
            else:
                T[dim] = _collective_time(
                    topo, dim, groups, m, S, job["cross_site_every"], smallest_shared_bandwidth
                )
        for dim in DIMENSIONS:
            row[f"T_{dim}_ms"] = T[dim]

        # 3b. step time and efficiency
        if job["compute_ms"] is None:
            efficiency = 1.0
        else:
            c = float(job["compute_ms"]) / speed
            step = c
            mb = job["microbatches"]
            if mb is not None and job["pp"] > 1:  # v3: the 1F1B pipeline bubble
                step = c * (mb + job["pp"] - 1) / mb
            for dim in job["dims"]:
                step += (1.0 - job["overlap"][dim]) * T[dim]
            row["step_ms"] = step
            efficiency = c / step
        row["efficiency"] = efficiency

        # 3c. interruptions: each node once, each WAN link on its groups' paths once
        node_site = {topo.gpus[g]["node"]: topo.gpus[g]["site"] for g in gpus}
        node_rate = 0.0
        for node in sorted(node_site):
            node_rate += topo.site_info[node_site[node]]["node_failures_per_day"]
        links = set()
        for dim in DIMENSIONS:
            for group in p["groups"][dim]:
                members = [gpus[r] for r in group]
                for path in _group_wan_paths(topo, dim, members):
                    links.update(path["links"])
        link_rate = 0.0
        for link in sorted(links, key=sorted):
            link_rate += topo.links[link]["failures_per_day"]
        lam = (node_rate + link_rate) / 24.0
        row["lambda_per_hour"] = lam
        if job["kind"] == "training":
            lost = min(1.0, lam * (job["restart_min"] + job["checkpoint_interval_min"] / 2) / 60)
        else:
            lost = 0.0
        row["lost"] = lost
        goodput = efficiency * (1.0 - lost)
        row["goodput"] = goodput
        row["value"] = hours * job["value"] * speed * n_gpus * goodput
        row["speed"] = speed
        job_rows.append(row)

    # 4. offers
    lease_by_offer = lease_entries(placement)
    offer_rows = []
    for offer in (instance.get("leases") or {}).get("offers") or []:
        entry = lease_by_offer.get(offer["name"])
        blocks = list(entry.get("blocks") or []) if entry else []
        leased = set()
        for block in blocks:
            if block not in topo.domains:
                raise ScoreUndefined(f"offer {offer['name']}: unknown block {block!r}")
            for g in topo.domains[block]["gpus"]:
                if g not in topo.unavailable:
                    leased.add(g)
        accepted = bool(blocks)
        revenue = horizon * float(offer["price_per_gpu_hour"]) * len(leased) if accepted else 0.0
        offer_rows.append(
            {"offer": offer["name"], "accepted": accepted, "gpus": len(leased), "revenue": revenue}
        )

    job_value = sum((r["value"] for r in job_rows), 0.0)
    lease_revenue = sum((r["revenue"] for r in offer_rows), 0.0)
    migration = sum((r["migration_cost"] for r in job_rows), 0.0)
    objective = job_value + lease_revenue - migration
    return {
        "objective": objective,
        "jobs": job_rows,
        "offers": offer_rows,
        "totals": {
            "job_value": job_value,
            "lease_revenue": lease_revenue,
            "migration_cost": migration,
            "objective": objective,
            "gpus_used": sum(r["gpus"] for r in job_rows),
            "gpus_leased": sum(r["gpus"] for r in offer_rows),
        },
    }


def _in_site_time(topo, dim, members, m, S):
    """One collective of a group whose members all lie in one site."""
    n = len(members)
    if n <= 1:
        return 0.0
    alpha_us, B = topo.fabric_link(members)
    if dim == "ep":  # all-to-all
        return m * (n - 1) * alpha_us / 1000.0 + (n - 1) / n * S / B
    return m * 2 * (n - 1) * alpha_us / 1000.0 + 2 * (n - 1) / n * S / B  # ring all-reduce


def _reduce_scatter_time(topo, members, m, S):
    n = len(members)
    if n <= 1:
        return 0.0
    alpha_us, B = topo.fabric_link(members)
    return m * (n - 1) * alpha_us / 1000.0 + (n - 1) / n * S / B


def _collective_time(topo, dim, groups, m, S, cross_site_every, smallest_shared_bandwidth):
    """T_X for TP, DP or EP: the slowest group."""
    spanning = [g for g in groups if len(_sites_of(topo, g)) > 1]
    S_job = S * len(spanning)
    slowest = 0.0
    for members in groups:
        sites = _sites_of(topo, members)
        k = len(sites)
        if k == 1:
            t = _in_site_time(topo, dim, members, m, S)
        else:
            # hierarchical: reduce-scatter in each site part (slowest part), WAN all-reduce
            # between the k parts, all-gather in each part (same time as reduce-scatter)
            parts = [[g for g in members if topo.gpus[g]["site"] == s] for s in sites]
            rs = max(_reduce_scatter_time(topo, part, m, S) for part in parts)
            paths = _group_wan_paths(topo, dim, members)
            alpha_wan = max(path["latency_us"] for path in paths)
            W = smallest_shared_bandwidth(paths)
            wan = m * 2 * (k - 1) * alpha_wan / 1000.0 + 2 * (k - 1) / k * S_job / W
            t = 2 * rs + wan / cross_site_every
        slowest = max(slowest, t)
    return slowest


def _pp_time(topo, chains, m, S, smallest_shared_bandwidth):
    """T_PP: the slowest boundary of the slowest chain."""
    cross = 0
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            if topo.gpus[a]["site"] != topo.gpus[b]["site"]:
                cross += 1
    S_job = S * cross
    slowest = 0.0
    for chain in chains:
        for a, b in zip(chain, chain[1:], strict=False):
            sa, sb = topo.gpus[a]["site"], topo.gpus[b]["site"]
            if sa == sb:
                alpha_us, B = topo.fabric_link([a, b])
                t = m * alpha_us / 1000.0 + S / B
            else:
                if (sa, sb) not in topo.paths:
                    raise ScoreUndefined(f"sites {sa!r} and {sb!r} have no WAN path")
                path = topo.paths[(sa, sb)]
                t = m * path["latency_us"] / 1000.0 + S_job / smallest_shared_bandwidth([path])
            slowest = max(slowest, t)
    return slowest


# --------------------------------------------------------------------------------------
# Feasibility (SPEC 3 with the readings of SPEC 6)
# --------------------------------------------------------------------------------------


def reference_check(instance, placement):
    """Every violation of SPEC 3, as ``{"rule", "job"|"offer"|"site", "what"}`` dicts."""
    topo = expand(instance)
    violations = []

    def violation(rule, kind, name, what):
        violations.append({"rule": rule, kind: name, "what": what})

    entries = placement_entries(placement)
    jobs = {}
    for raw in instance.get("jobs") or []:
        entry = entries.get(raw["name"])
        plan = plan_of(raw, entry)
        placed = bool(entry) and int(entry.get("units", 0)) > 0
        # Rule 8 (v3): a placed job with plans names one of them; a job without plans names
        # none; a pinned job keeps its current_plan
        if placed and raw.get("plans") and plan is None:
            violation(8, "job", raw["name"], f"names no plan of its own ({entry.get('plan')!r})")
            plan = raw["plans"][0]["name"]  # the other rules need a shape: skip it below
            bad_plan = True
        else:
            bad_plan = False
        if placed and not raw.get("plans") and entry.get("plan") is not None:
            violation(8, "job", raw["name"], "names a plan, but the job has no plans")
        if (
            placed
            and raw.get("plans")
            and raw.get("pinned")
            and raw.get("current")
            and entry.get("plan") != raw.get("current_plan")
        ):
            violation(8, "job", raw["name"], "pinned job does not keep its current_plan")
        jobs[raw["name"]] = job_defaults(job_under(raw, plan))
        jobs[raw["name"]]["bad_plan"] = bad_plan

    # placement entries: unknown and duplicate names are violations (rule 3, our reading)
    seen = set()
    for entry in placement.get("jobs") or []:
        name = entry["name"]
        if name not in jobs:
            violation(3, "job", name, f"unknown job {name!r}")
        elif name in seen:
            violation(3, "job", name, f"job {name!r} appears twice in the placement")
        seen.add(name)
    entries = placement_entries(placement)

    # every job's units and GPUs (absent job: 0 units)
    job_gpus = {}
    job_units = {}
    for name in jobs:
        entry = entries.get(name)
        job_units[name] = int(entry.get("units", 0)) if entry else 0
        job_gpus[name] = list(entry.get("gpus") or []) if entry else []
        if jobs[name]["bad_plan"]:  # no shape to check the entry against (rule 8)
            job_units[name], job_gpus[name] = 0, []

    # Rule 1: every GPU exists, is available, and is used at most once (also inside a job)
    owner = {}
    for name in jobs:
        for g in job_gpus[name]:
            if g not in topo.gpus:
                violation(1, "job", name, f"unknown GPU {g!r}")
                continue
            if g in topo.unavailable:
                violation(1, "job", name, f"GPU {g!r} is unavailable")
            if g in owner:
                if owner[g] == name:
                    violation(1, "job", name, f"GPU {g!r} used twice by the job")
                else:
                    violation(1, "job", name, f"GPU {g!r} also used by job {owner[g]!r}")
            else:
                owner[g] = name

    # Rule 2: all GPUs of a job of one allowed type (v2 mix_types: each unit one type)
    for name, job in jobs.items():
        types = sorted({topo.gpus[g]["type"] for g in job_gpus[name] if g in topo.gpus})
        size = job["tp"] * job["pp"]
        gl = job_gpus[name]
        if job["mix_types"] and len(gl) % size == 0:
            for u in range(len(gl) // size):
                ut = {topo.gpus[g]["type"] for g in gl[u * size : (u + 1) * size] if g in topo.gpus}
                if len(ut) > 1:
                    violation(2, "job", name, f"unit {u} has GPUs of several types {sorted(ut)}")
                    break
        elif len(types) > 1:
            violation(2, "job", name, f"GPUs of several types {types}")
        allowed = job["gpu_types"]
        if allowed is not None:
            for t in types:
                if t not in allowed:
                    violation(2, "job", name, f"GPU type {t!r} not in {list(allowed)}")

    # Rule 3: units, running and pinned jobs (and the placement's shape)
    for name, job in jobs.items():
        units = job_units[name]
        gpus = job_gpus[name]
        if len(gpus) != units * job["tp"] * job["pp"]:
            violation(
                3,
                "job",
                name,
                f"{len(gpus)} GPUs listed but units*tp*pp = {units * job['tp'] * job['pp']}",
            )
        if units != 0:
            if job["kind"] == "training":
                if not (job["min_dp"] <= units <= job["dp"]):
                    violation(
                        3, "job", name, f"units {units} not in [{job['min_dp']}, {job['dp']}]"
                    )
                if units % job["ep"] != 0:
                    violation(3, "job", name, f"units {units} not a multiple of ep {job['ep']}")
            else:
                if not (job["min_replicas"] <= units <= job["replicas"]):
                    violation(
                        3,
                        "job",
                        name,
                        f"units {units} not in [{job['min_replicas']}, {job['replicas']}]",
                    )
        if job["current"]:
            if not job["preemptible"] and units == 0:
                violation(3, "job", name, "running non-preemptible job left out")
            if job["pinned"] and gpus != job["current"]:
                violation(3, "job", name, "pinned job does not keep exactly its current GPUs")

    # Rule 4: scope and latency bounds of every group
    for name, job in jobs.items():
        units = job_units[name]
        gpus = job_gpus[name]
        if units == 0 or len(gpus) != units * job["tp"] * job["pp"]:
            continue
        if any(g not in topo.gpus for g in gpus):
            continue
        groups = groups_of(job, units)
        for dim in job["dims"]:
            level = job["scope"][dim]
            bound = job["max_latency_us"][dim]
            for group in groups[dim]:
                members = [gpus[r] for r in group]
                if len(members) <= 1:
                    continue
                sites = _sites_of(topo, members)
                # every group must lie in WAN-connected sites
                for sa, sb in combinations(sites, 2):
                    if not topo.connected(sa, sb):
                        violation(4, "job", name, f"{dim} group spans unconnected sites {sa}, {sb}")
                if level is not None and level != "cluster":
                    depth = topo.depth_of(level)
                    domains = {topo.gpus[g]["ancestors"][depth] for g in members}
                    if len(domains) > 1:
                        violation(
                            4,
                            "job",
                            name,
                            f"{dim} group spans {len(domains)} domains of level {level}",
                        )
                if bound is not None:
                    for a, b in combinations(members, 2):
                        lat = topo.pair_latency_exact(a, b)
                        if lat is None or lat > exact(bound):
                            shown = None if lat is None else float(lat)
                            violation(
                                4,
                                "job",
                                name,
                                f"{dim} pair {a}, {b} latency {shown} > max_latency_us {bound}",
                            )

    # Rule 5: spread of inference jobs with units
    for name, job in jobs.items():
        spread = job["spread"]
        if not spread or job_units[name] == 0:
            continue
        depth = topo.depth_of(spread["level"])
        domains = {topo.gpus[g]["ancestors"][depth] for g in job_gpus[name] if g in topo.gpus}
        if len(domains) < int(spread["min"]):
            violation(
                5,
                "job",
                name,
                f"units touch {len(domains)} domains of level {spread['level']} < {spread['min']}",
            )

    # Rule 6: leases
    leases = instance.get("leases") or {}
    offers = {o["name"]: o for o in leases.get("offers") or []}
    seen_offers = set()
    for entry in placement.get("leases") or []:
        oname = entry["offer"]
        if oname not in offers:
            violation(6, "offer", oname, f"unknown offer {oname!r}")
        elif oname in seen_offers:
            violation(6, "offer", oname, f"offer {oname!r} appears twice")
        seen_offers.add(oname)
    lease_by_offer = lease_entries(placement)
    job_gpu_set = {g for name in jobs for g in job_gpus[name]}
    block_owner = {}  # gpu -> (offer, block) for disjointness across offers and levels
    leased_by_site = {}
    for oname, offer in offers.items():
        entry = lease_by_offer.get(oname)
        blocks = list(entry.get("blocks") or []) if entry else []
        level = offer_level(instance, offer)
        allowed_sites = offer.get("sites")
        allowed_types = offer.get("gpu_types")
        leased = set()
        block_sites = set()
        for block in blocks:
            if block not in topo.domains:
                violation(6, "offer", oname, f"unknown block {block!r}")
                continue
            dom = topo.domains[block]
            block_sites.add(dom["site"])
            if topo.levels[dom["depth"]] != level:
                violation(6, "offer", oname, f"block {block!r} is not a domain of level {level}")
            if allowed_sites is not None and dom["site"] not in allowed_sites:
                violation(6, "offer", oname, f"block {block!r} outside sites {list(allowed_sites)}")
            if allowed_types is not None:
                bad = sorted({topo.gpus[g]["type"] for g in dom["gpus"]} - set(allowed_types))
                if bad:
                    violation(6, "offer", oname, f"block {block!r} holds GPU types {bad}")
            used = [g for g in dom["gpus"] if g in job_gpu_set]
            if used:
                violation(6, "offer", oname, f"block {block!r} holds job GPU {used[0]!r}")
            for g in dom["gpus"]:
                if g in block_owner:
                    violation(
                        6,
                        "offer",
                        oname,
                        f"block {block!r} overlaps block {block_owner[g][1]!r} "
                        f"of offer {block_owner[g][0]!r}",
                    )
                    break
            for g in dom["gpus"]:
                block_owner.setdefault(g, (oname, block))
                if g not in topo.unavailable:
                    leased.add(g)
        for g in leased:
            site = topo.gpus[g]["site"]
            leased_by_site.setdefault(site, []).append(g)
        accepted = bool(blocks)
        if offer.get("single_site") and len(block_sites) > 1:
            violation(6, "offer", oname, f"single_site offer has blocks in {sorted(block_sites)}")
        force = offer.get("force")  # SPEC v2
        if force == "accept" and not blocks:
            violation(6, "offer", oname, "force: accept, but the offer is not accepted")
        if force == "decline" and blocks:
            violation(6, "offer", oname, "force: decline, but the offer is accepted")
        committed = list(offer.get("committed_blocks") or [])
        if committed:
            if not accepted:
                violation(6, "offer", oname, "offer with committed_blocks is not accepted")
            for block in committed:
                if block not in blocks:
                    violation(6, "offer", oname, f"committed block {block!r} not leased")
        if accepted:
            lo = float(offer.get("min_gpus", 0) or 0)
            hi = offer.get("max_gpus")
            if len(leased) < lo or (hi is not None and len(leased) > float(hi)):
                violation(6, "offer", oname, f"{len(leased)} leased GPUs not in [{lo}, {hi}]")
        if entry is not None and entry.get("gpus") is not None:
            if int(entry["gpus"]) != len(leased):
                violation(
                    6,
                    "offer",
                    oname,
                    f"entry says {entry['gpus']} GPUs but its blocks hold {len(leased)}",
                )

    # Rule 7: power per site: (GPUs used by jobs + GPUs leased) x power_kW <= cap
    for site, info in topo.site_info.items():
        cap = info["power_cap_kW"]
        if cap is None:
            continue
        powered = set()
        for name in jobs:
            for g in job_gpus[name]:
                if g in topo.gpus and topo.gpus[g]["site"] == site:
                    powered.add(g)
        powered.update(leased_by_site.get(site, []))
        total = Fraction(0)
        for g in powered:
            total += exact(topo.gpu_types[topo.gpus[g]["type"]]["power_kW"])
        if total > exact(cap):
            violation(7, "site", site, f"power {float(total)} kW > power_cap_kW {cap}")

    return violations
