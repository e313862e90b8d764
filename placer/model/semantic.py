"""Cross-field checks of an instance that need no expanded topology (SPEC 1 and 6).

Collects every problem (``(location, message)``) and every warning rather than stopping at
the first. Also computes the node and GPU counts arithmetically, so an instance that would
expand past SPEC's limits is refused before anything is expanded.

Imports neither numpy nor any solver.
"""

from __future__ import annotations

from placer.model.instance import CLUSTER, DIMS, DomainEntry, Instance, Job

MAX_GPUS = 4_000_000
MAX_NODES = 1_000_000


class Findings:
    """Problems and warnings gathered by the checks."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def error(self, loc: str, msg: str) -> None:
        self.problems.append((loc, msg))

    def warn(self, loc: str, msg: str) -> None:
        self.warnings.append(f"{loc}: {msg}")


def check_levels(inst: Instance, f: Findings) -> bool:
    levels = inst.topology.levels
    loc = "topology.levels"
    ok = True
    if len(levels) < 2:
        f.error(loc, "needs at least two levels (site ... node)")
        return False
    if levels[0] != "site":
        f.error(loc, f"the first level must be 'site', not {levels[0]!r}")
        ok = False
    if levels[-1] != "node":
        f.error(loc, f"the last level must be 'node', not {levels[-1]!r}")
        ok = False
    seen = set()
    for i, lv in enumerate(levels):
        if not lv:
            f.error(f"{loc}[{i}]", "must be a non-empty name")
            ok = False
        if "/" in lv:
            f.error(f"{loc}[{i}]", f"must not contain '/': {lv!r}")
            ok = False
        if lv == CLUSTER:
            f.error(f"{loc}[{i}]", "'cluster' is reserved (it means: no bound)")
            ok = False
        if lv in seen:
            f.error(f"{loc}[{i}]", f"duplicate level {lv!r}")
            ok = False
        seen.add(lv)
    return ok


def merged_fabric(inst: Instance, site_index: int) -> dict[str, tuple[float | None, float | None]]:
    """Fabric of one site per level: (latency_us, bandwidth_GBps), override merged per field."""
    topo = inst.topology
    site = topo.sites[site_index]
    out = {}
    for lv in topo.levels:
        base = topo.fabric.get(lv)
        over = (site.fabric or {}).get(lv)
        lat = base.latency_us if base else None
        bw = base.bandwidth_GBps if base else None
        if over is not None:
            lat = over.latency_us if over.latency_us is not None else lat
            bw = over.bandwidth_GBps if over.bandwidth_GBps is not None else bw
        out[lv] = (lat, bw)
    return out


def check_fabric(inst: Instance, f: Findings) -> None:
    topo = inst.topology
    levels = topo.levels
    for key in topo.fabric:
        if key not in levels:
            f.error(f"topology.fabric.{key}", f"not a level (levels are {levels})")
    for si, site in enumerate(topo.sites):
        for key in site.fabric or {}:
            if key not in levels:
                f.error(f"topology.sites[{si}].fabric.{key}", f"not a level (levels are {levels})")
        fab = merged_fabric(inst, si)
        for lv, (lat, bw) in fab.items():
            if lat is None:
                f.error(
                    f"topology.sites[{si}].fabric.{lv}.latency_us",
                    f"site {site.name!r} has no latency_us for level {lv!r} "
                    "(give it in topology.fabric or the site's fabric)",
                )
            if bw is None:
                f.error(
                    f"topology.sites[{si}].fabric.{lv}.bandwidth_GBps",
                    f"site {site.name!r} has no bandwidth_GBps for level {lv!r} "
                    "(give it in topology.fabric or the site's fabric)",
                )
        # monotone: narrower levels (later) should have latency <= and bandwidth >= wider ones
        vals = [fab[lv] for lv in reversed(levels)]  # node first
        for (la, ba), (lb, bb), wide in zip(vals, vals[1:], list(reversed(levels))[1:]):
            if None in (la, ba, lb, bb):
                continue
            if lb < la or bb > ba:
                f.warn(
                    f"topology.sites[{si}].fabric.{wide}",
                    f"fabric of site {site.name!r} is not monotone at level {wide!r} "
                    "(latency falls or bandwidth rises toward wider levels)",
                )
                break


def _count_entry(
    e: DomainEntry,
    depth: int,
    n_levels: int,
    loc: str,
    gpn: int | None,
    gtype: str | None,
    f: Findings,
    types: set[str],
) -> tuple[int, int]:
    """(nodes, gpus) under one entry (with its count); reports structural problems."""
    gpn = e.gpus_per_node if e.gpus_per_node is not None else gpn
    gtype = e.gpu_type if e.gpu_type is not None else gtype
    count = e.count if e.count is not None else 1
    below = n_levels - 1 - depth  # levels strictly below this entry's level
    nodes = 0
    gpus = 0
    if depth == n_levels - 1:  # a node entry
        if e.shape is not None or e.domains is not None:
            f.error(loc, "a node entry has neither `shape` nor `domains`")
            return 0, 0
        nodes_each = 1
    elif (e.shape is None) == (e.domains is None):
        f.error(loc, "needs exactly one of `shape` and `domains`")
        return 0, 0
    elif e.shape is not None:
        if len(e.shape) != below:
            f.error(
                f"{loc}.shape",
                f"must list exactly {below} fan-out(s), one per level below, not {len(e.shape)}",
            )
            return 0, 0
        nodes_each = 1
        for s in e.shape:
            nodes_each *= s
            if nodes_each > MAX_NODES:
                break
    else:
        if not e.domains:
            f.error(f"{loc}.domains", "must not be empty")
            return 0, 0
        nodes_each = 0
        gpus_each = 0
        _check_sibling_names(e.domains, depth + 1, n_levels, f"{loc}.domains", f, None)
        for ci, child in enumerate(e.domains):
            cn, cg = _count_entry(
                child, depth + 1, n_levels, f"{loc}.domains[{ci}]", gpn, gtype, f, types
            )
            nodes_each += cn
            gpus_each += cg
            if nodes_each > MAX_NODES:
                break
        return nodes_each * count, gpus_each * count
    if gpn is None:
        f.error(loc, "no gpus_per_node (set it on the site or the entry)")
        return 0, 0
    if gtype is None:
        f.error(loc, "no gpu_type (set it on the site or the entry)")
        return 0, 0
    types.add(gtype)
    nodes = nodes_each * count
    gpus = nodes * gpn
    return nodes, gpus


def _check_sibling_names(
    entries: list[DomainEntry],
    depth: int,
    n_levels: int,
    loc: str,
    f: Findings,
    levels: list[str] | None,
) -> None:
    """Refuse two siblings with one name, also names made by `count` (`rack` x 11 gives
    `rack10`, which an entry named `rack1` with count 1 gives too)."""
    names: set[str] = set()
    for i, e in enumerate(entries):
        base = e.name if e.name is not None else (levels[depth] if levels else "")
        if e.count is not None:
            if e.count > MAX_NODES:
                continue  # refused by the size check
            gen = (f"{base}{k}" for k in range(e.count))
        else:
            gen = iter([base])
        for nm in gen:
            if nm in names:
                f.error(f"{loc}[{i}].name", f"sibling name {nm!r} is used twice")
                break
            names.add(nm)


def check_sites(inst: Instance, f: Findings) -> tuple[int, int, dict[str, set[str]]]:
    """Structure of every site; returns (nodes, gpus, gpu types per site)."""
    topo = inst.topology
    L = len(topo.levels)
    seen: dict[str, int] = {}
    total_nodes = total_gpus = 0
    types_of: dict[str, set[str]] = {}
    if not topo.sites:
        f.error("topology.sites", "needs at least one site")
    for si, site in enumerate(topo.sites):
        loc = f"topology.sites[{si}]"
        if site.name in seen:
            f.error(f"{loc}.name", f"duplicate site name {site.name!r}")
        seen[site.name] = si
        if not site.domains:
            f.error(f"{loc}.domains", "a site needs a non-empty `domains`")
            continue
        # default child names are the level name
        _fill_default_names(site.domains, 1, topo.levels)
        _check_sibling_names(site.domains, 1, L, f"{loc}.domains", f, topo.levels)
        types: set[str] = set()
        for di, e in enumerate(site.domains):
            n, g = _count_entry(
                e, 1, L, f"{loc}.domains[{di}]", site.gpus_per_node, site.gpu_type, f, types
            )
            total_nodes += n
            total_gpus += g
            if total_nodes > MAX_NODES or total_gpus > MAX_GPUS:
                break
        types_of[site.name] = types
        if total_nodes > MAX_NODES or total_gpus > MAX_GPUS:
            break
    if total_nodes > MAX_NODES:
        f.error("topology.sites", f"expands to more than {MAX_NODES:,} nodes; refused")
    elif total_gpus > MAX_GPUS:
        f.error("topology.sites", f"expands to {total_gpus:,} GPUs, more than {MAX_GPUS:,}")
    return total_nodes, total_gpus, types_of


def _fill_default_names(entries: list[DomainEntry], depth: int, levels: list[str]) -> None:
    """An entry without `name` is named after its level (SPEC 1.1)."""
    for e in entries:
        if e.name is None and depth < len(levels):
            e.name = levels[depth]
        if e.domains:
            _fill_default_names(e.domains, depth + 1, levels)


def check_power(inst: Instance, types_of: dict[str, set[str]], f: Findings) -> None:
    for si, site in enumerate(inst.topology.sites):
        if site.power_cap_kW is None:
            continue
        for t in sorted(types_of.get(site.name, ())):
            gt = inst.gpu_types.get(t)
            if gt is None or gt.power_kW is None:
                f.error(
                    f"topology.sites[{si}].power_cap_kW",
                    f"site {site.name!r} has a power cap but GPU type {t!r} has no power_kW "
                    f"(set gpu_types.{t}.power_kW)",
                )


def check_wan(inst: Instance, f: Findings) -> None:
    names = {s.name for s in inst.topology.sites}
    pairs: dict[frozenset, int] = {}
    for wi, w in enumerate(inst.topology.wan):
        loc = f"topology.wan[{wi}].between"
        if len(w.between) != 2:
            f.error(loc, f"must name exactly two sites, not {len(w.between)}")
            continue
        a, b = w.between
        bad = False
        for s in (a, b):
            if s not in names:
                f.error(loc, f"unknown site {s!r}")
                bad = True
        if bad:
            continue
        if a == b:
            f.error(loc, f"must join two distinct sites, not {a!r} twice")
            continue
        key = frozenset((a, b))
        if key in pairs:
            f.error(
                loc, f"a second link between {a!r} and {b!r} (first: topology.wan[{pairs[key]}])"
            )
        pairs[key] = wi


def _check_shape(job: Job, loc, levels: list[str], all_types: set[str], f: Findings) -> None:
    """The rules of one job's shape keys (sizes, scopes, spread, types, value). `loc(key)` is
    where a problem of `key` is reported: the job's own key, or, for the job under a plan
    (v3), the plan's (SPEC 6: ``jobs[i].plans[k].<key>``)."""
    fields_set = job.model_fields_set
    if job.value is None:
        f.error(loc("value"), "is required")
    if job.kind == "training":
        if job.dp is None:
            f.error(loc("dp"), "is required for a training job")
        if job.compute_ms is None:
            f.error(loc("compute_ms"), "is required for a training job")
        if job.dp is not None:
            if job.min_dp is not None and job.min_dp > job.dp:
                f.error(loc("min_dp"), f"must be at most dp ({job.dp}), not {job.min_dp}")
            if job.dp % job.ep:
                f.error(loc("dp"), f"must be a multiple of ep ({job.ep}), not {job.dp}")
        if job.replicas is not None or job.min_replicas is not None:
            f.warn(loc("replicas"), "replicas/min_replicas are ignored on a training job")
        if job.spread is not None:
            f.warn(loc("spread"), "spread is ignored on a training job")
    else:
        if job.replicas is None:
            f.error(loc("replicas"), "is required for an inference job")
        elif job.min_replicas is not None and job.min_replicas > job.replicas:
            f.error(
                loc("min_replicas"),
                f"must be at most replicas ({job.replicas}), not {job.min_replicas}",
            )
        if "ep" in fields_set:
            f.warn(loc("ep"), "ep is ignored on an inference job")
        if job.dp is not None or job.min_dp is not None:
            f.warn(loc("dp"), "dp/min_dp are ignored on an inference job")
        if job.microbatches is not None:
            f.warn(loc("microbatches"), "microbatches is ignored on an inference job")
    for d in DIMS:
        sc = getattr(job.scope, d)
        if sc is not None and sc != CLUSTER and sc not in levels:
            f.error(f"{loc('scope')}.{d}", f"unknown level {sc!r} (levels: {levels} or 'cluster')")
    if job.spread is not None and job.spread.level not in levels:
        f.error(f"{loc('spread')}.level", f"unknown level {job.spread.level!r} (levels: {levels})")
    if job.gpu_types is not None:
        if not job.gpu_types:
            f.error(loc("gpu_types"), "must not be empty (omit it to allow any type)")
        elif not set(job.gpu_types) & all_types and job.plan is None:
            # a job under a plan (v3) is not warned about here: SPEC 6 gives the "fits
            # nowhere" warning of a job with plans only when no plan fits anywhere, and
            # _warn_fit_nowhere (validate.py) then names every plan's reason
            f.warn(
                loc("gpu_types"),
                f"no site has any of the types {job.gpu_types}; job {job.name!r} gets 0 units",
            )


def check_jobs(inst: Instance, types_of: dict[str, set[str]], f: Findings) -> None:
    levels = inst.topology.levels
    all_types = set().union(*types_of.values()) if types_of else set()
    seen: dict[str, int] = {}
    for ji, j in enumerate(inst.jobs):
        loc = f"jobs[{ji}]"
        if j.name in seen:
            f.error(f"{loc}.name", f"duplicate job name {j.name!r} (also jobs[{seen[j.name]}])")
        seen[j.name] = ji
        if j.plans is None:
            _check_shape(j, lambda key, loc=loc: f"{loc}.{key}", levels, all_types, f)
            if j.current_plan is not None:
                f.error(f"{loc}.current_plan", "the job has no plans (current_plan needs plans)")
        else:
            _check_plans(j, loc, levels, all_types, f)
        if j.preemptible is False and not j.current:
            f.warn(f"{loc}.preemptible", "preemptible: false without `current` has no effect")
        if j.pinned and not j.current:
            f.warn(f"{loc}.pinned", "pinned without `current` has no effect")


def _check_plans(job: Job, loc: str, levels: list[str], all_types: set[str], f: Findings) -> None:
    """v3 (SPEC 6): a non-empty list of uniquely named plans, each of which, completed by the
    job's keys and the defaults, is a valid job; `current_plan` names one of them when the
    job runs."""
    if not job.plans:
        f.error(f"{loc}.plans", "must not be empty (leave `plans` out for a job without plans)")
        return
    names: dict[str, int] = {}
    for k, p in enumerate(job.plans):
        if p.name in names:
            f.error(
                f"{loc}.plans[{k}].name",
                f"duplicate plan name {p.name!r} (also plans[{names[p.name]}])",
            )
        names.setdefault(p.name, k)
        _check_shape(job.under(k), lambda key, k=k: f"{loc}.plans[{k}].{key}", levels, all_types, f)
    if job.current:
        if job.current_plan is None:
            f.error(
                f"{loc}.current_plan",
                "is required for a running job with plans (the plan it runs now)",
            )
        elif job.current_plan not in names:
            f.error(
                f"{loc}.current_plan",
                f"unknown plan {job.current_plan!r} (plans: {', '.join(names)})",
            )
    elif job.current_plan is not None:
        f.warn(f"{loc}.current_plan", "current_plan without `current` is ignored")


def check_leases(inst: Instance, f: Findings) -> None:
    if inst.leases is None:
        return
    levels = inst.topology.levels
    sites = {s.name for s in inst.topology.sites}
    if inst.leases.level not in levels:
        f.error("leases.level", f"unknown level {inst.leases.level!r} (levels: {levels})")
    seen: dict[str, int] = {}
    for oi, o in enumerate(inst.leases.offers):
        loc = f"leases.offers[{oi}]"
        if o.name in seen:
            f.error(f"{loc}.name", f"duplicate offer name {o.name!r}")
        seen[o.name] = oi
        if o.level is not None and o.level not in levels:
            f.error(f"{loc}.level", f"unknown level {o.level!r} (levels: {levels})")
        if o.max_gpus is not None and o.min_gpus > o.max_gpus:
            f.error(f"{loc}.min_gpus", f"must be at most max_gpus ({o.max_gpus}), not {o.min_gpus}")
        for i, s in enumerate(o.sites or []):
            if s not in sites:
                f.error(f"{loc}.sites[{i}]", f"unknown site {s!r}")


def check_structure(inst: Instance) -> Findings:
    """Every check that needs no expansion. The instance is usable only without problems."""
    f = Findings()
    if not check_levels(inst, f):
        return f
    check_fabric(inst, f)
    _, _, types_of = check_sites(inst, f)
    if f.problems:
        return f
    check_power(inst, types_of, f)
    check_wan(inst, f)
    check_jobs(inst, types_of, f)
    check_leases(inst, f)
    return f
