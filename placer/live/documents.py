"""The live state as documents, and documents into it: pure functions.

In: an instance argument, a submitted job (SPEC 1.2), pending jobs, hardware items (paths,
ids, WAN links), a plan name, a placement (SPEC 2) to start from, a :func:`state_document`
to resume from. Each refusal is a typed error naming its place (``job.tp``,
``items[2]``, ``state.jobs[3].current``).

Out: a running job's document (`current`, `current_plan`), the snapshot (instance and
placement documents any SPEC tool loads), the state document :meth:`Cluster.resume` reads,
failed hardware as the fewest paths.

Imports the model, the kernel, the checker and the live state; no policy module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from placer.check import check_compiled
from placer.errors import (
    ArgumentTypeError,
    ConflictError,
    InstanceError,
    PlacementError,
    UnknownJobError,
    UsageError,
)
from placer.io import _pydantic_problems
from placer.kernel.compiled import compile_placement
from placer.live.state import LiveState
from placer.model import Instance, Job, Placement
from placer.model.semantic import check_structure

__all__ = [
    "failed_items",
    "instance_of",
    "job_dict",
    "job_document",
    "lease_cover",
    "load_cover",
    "load_placement",
    "parse_items",
    "parse_job",
    "parse_pending",
    "plan_arg",
    "read_state",
    "slot_of",
    "snapshot",
    "state_document",
    "unavailable_paths",
]


# --------------------------------------------------------------------------- in
def instance_of(instance: Any) -> Instance:
    """A loaded instance from an :class:`~placer.Instance`, a path or a dict."""
    if isinstance(instance, (str, Path, dict)) and not isinstance(instance, bool):
        from placer.api import load_instance

        instance = load_instance(instance)
    if not isinstance(instance, Instance):
        raise ArgumentTypeError(
            f"instance: expected a placer.Instance, got {type(instance).__name__}"
        )
    return instance


def parse_job(live: LiveState, job: Any, running_ok: bool = False) -> Job:
    """A submitted job (SPEC 1.2 dict or model) checked with the instance's rules; not
    running yet, and (unless `running_ok`) no running job has its name."""
    if isinstance(job, Job):
        data: Any = job.model_dump(exclude_unset=True)
    elif isinstance(job, dict):
        data = job
    else:
        raise ArgumentTypeError(f"job: expected a SPEC job (dict or Job), got {type(job).__name__}")
    try:
        model = Job.model_validate(data)
    except ValidationError as e:
        raise InstanceError([("job." + loc, msg) for loc, msg in _pydantic_problems(e)]) from None
    tmp = live.base.model_copy(update={"jobs": [model], "leases": None})
    f = check_structure(tmp)
    if f.problems:
        raise InstanceError([(loc.replace("jobs[0]", "job", 1), msg) for loc, msg in f.problems])
    if model.current:
        raise InstanceError(
            [
                (
                    "job.current",
                    "a submitted job is not running yet (give running jobs to "
                    "Cluster(instance) with `current`)",
                )
            ]
        )
    if model.name in live.slot and not running_ok:
        raise ConflictError(f"job.name: a job named {model.name!r} is already running")
    return model


def parse_pending(live: LiveState, pending: Any) -> Iterator[Job]:
    """The `pending` jobs of a replan (a list of SPEC jobs, or None), each checked as
    :func:`parse_job` does when it is reached, problems located at ``pending[i]``."""
    if pending is not None and not isinstance(pending, (list, tuple)):
        raise ArgumentTypeError(
            f"pending: expected a list of SPEC jobs, got {type(pending).__name__}"
        )
    for i, pj in enumerate(pending or []):
        try:
            yield parse_job(live, pj, running_ok=True)
        except InstanceError as e:
            raise InstanceError(
                [(loc.replace("job", f"pending[{i}]", 1), msg) for loc, msg in e.problems]
            ) from None


def slot_of(live: LiveState, name: Any) -> int:
    """The slot of the running job `name`."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"name: expected a job name, got {type(name).__name__}")
    j = live.slot.get(name)
    if j is None:
        raise UnknownJobError(f"name: no running job {name!r}")
    return j


def plan_arg(model: Job, plan: Any) -> int | None:
    """The index of the plan named by :meth:`Cluster.start`'s `plan` argument (v3)."""
    if plan is not None and not isinstance(plan, str):
        raise ArgumentTypeError(f"plan: expected a plan name, got {type(plan).__name__}")
    names = [p.name for p in model.plans or []]
    if not names:
        if plan is not None:
            raise UsageError(f"plan: job {model.name!r} has no plans (SPEC v3), so none")
        return None
    if plan is None:
        if len(names) == 1:
            return 0
        raise UsageError(
            f"plan: job {model.name!r} has plans ({', '.join(names)}): name the one it runs"
        )
    if plan not in names:
        raise UsageError(
            f"plan: job {model.name!r} has no plan {plan!r} (plans: {', '.join(names)})"
        )
    return names.index(plan)


def parse_items(base: Instance, items: Any, arg: str = "items") -> tuple[np.ndarray, list[int]]:
    """Hardware items (domain paths, node or GPU ids, WAN links ``[site_a, site_b]``) as a
    GPU mask over the instance's topology and a list of WAN link indices."""
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise ArgumentTypeError(
            f"{arg}: expected a list of paths, GPU ids or [site_a, site_b] links, "
            f"got {type(items).__name__}"
        )
    ix = base.index
    mask = np.zeros(ix.n_gpus, bool)
    links: list[int] = []
    problems = []
    for i, it in enumerate(items):
        if isinstance(it, str):
            r = ix.resolve(it)
            if r is None:
                problems.append(f"{arg}[{i}]: unknown domain, node or GPU {it!r}")
                continue
            lvl, d = r
            if lvl == ix.n_levels:
                mask[d] = True
            else:
                a, b = ix.gpu_range(lvl, d)
                mask[a:b] = True
        elif isinstance(it, (list, tuple)) and len(it) == 2 and all(isinstance(x, str) for x in it):
            found = [
                w
                for w, link in enumerate(base.topology.wan)
                if set(link.between) == set(it) and it[0] != it[1]
            ]
            if not found:
                problems.append(f"{arg}[{i}]: no WAN link between {it[0]!r} and {it[1]!r}")
            links.extend(found)
        else:
            problems.append(
                f"{arg}[{i}]: expected a domain path, a node or GPU id, or a WAN link "
                f"[site_a, site_b], got {it!r}"
            )
    if problems:
        raise UsageError("\n".join(problems))
    return mask, links


def placement_of(placement: Any) -> Placement:
    """A :class:`~placer.Placement` from a Placement, a SPEC 2 dict (validated) or a solve
    result (its placement)."""
    from placer.api import _placement_arg

    if hasattr(placement, "placement") and not isinstance(placement, (dict, Placement)):
        if placement.placement is None:
            raise UsageError(f"placement: the result has no placement ({placement.reason})")
        placement = placement.placement
    return _placement_arg(placement)


def load_placement(live: LiveState, placement: Any) -> None:
    """Start the placed jobs of `placement` (a :class:`~placer.Placement`, SPEC 2 dict or
    solve result: its `plan` per job, its leases) on an empty live state. It must pass the
    checker (against the hardware as failed, when some is)."""
    pl = placement_of(placement)
    base = live.base
    cp = compile_placement(base, pl)
    if cp.problems:
        raise PlacementError([(p.loc, p.what) for p in cp.problems])
    failures = not (live.avail == base.index.available).all() or not live.links_up.all()
    if not failures:
        bad = check_compiled(base, cp)
        if bad:
            raise PlacementError([("placement", str(v)) for v in bad])
    gpus = []
    for j, (job, g) in enumerate(zip(base.jobs, cp.job_gpus)):
        if len(g):
            live.add_slot(job, cp.job_plans[j] if cp.job_plans is not None else None)
            gpus.append(np.asarray(g, np.int64))
    if failures:
        # an offer the failures left short keeps what it has (as after `fail`)
        for o, offer in enumerate(base.offers):
            if cp.offer_blocks[o]:
                n = sum(
                    int(live.avail[slice(*base.index.gpu_range(lv, d))].sum())
                    for lv, d in cp.offer_blocks[o]
                )
                if n < offer.min_gpus:
                    live.min_override[o] = n
    live.rebuild(gpus, cp.offer_blocks)
    if failures:  # checked against the hardware as failed
        bad = check_compiled(live.inst, live.compiled())
        if bad:
            raise PlacementError([("placement", str(v)) for v in bad])


def read_state(
    instance: Instance, state: Any
) -> tuple[Instance, dict[str, Any], dict[str, list[str]]]:
    """A :func:`state_document` read over `instance`: the instance with its running jobs,
    their placement (SPEC 2 dict) and each offer's ``cover`` paths; problems are
    :class:`~placer.errors.PlacementError` s located in the state."""
    if not isinstance(state, dict):
        raise ArgumentTypeError(f"state: expected a dict, got {type(state).__name__}")
    problems: list[tuple[str, str]] = []
    if state.get("version") != 1:
        problems.append(("state.version", f"expected 1, got {state.get('version')!r}"))
    for key in ("failed", "restored", "leases", "jobs"):
        if not isinstance(state.get(key), list):
            problems.append((f"state.{key}", "expected a list"))
    if problems:
        raise PlacementError(problems)
    models: list[Job] = []
    placed = []
    for i, jd in enumerate(state["jobs"]):
        try:
            m = Job.model_validate(jd)
        except ValidationError as e:
            problems += [(f"state.jobs[{i}].{loc}", msg) for loc, msg in _pydantic_problems(e)]
            continue
        if not m.current:
            problems.append((f"state.jobs[{i}].current", "a running job needs its GPUs"))
            continue
        if m.plans and m.plan_index(m.current_plan) is None:
            problems.append(
                (f"state.jobs[{i}].current_plan", "a running job with plans names the one it runs")
            )
            continue
        models.append(m.model_copy(update={"current": None}))
        placed.append(_placed_entry(m.under(m.default_plan), list(m.current)))  # v3: its plan
    cover: dict[str, list[str]] = {}
    leases = []
    for i, lease in enumerate(state["leases"]):
        if not isinstance(lease, dict) or not isinstance(lease.get("offer"), str):
            problems.append((f"state.leases[{i}]", "expected {offer, blocks, cover}"))
            continue
        leases.append({"offer": lease["offer"], "blocks": list(lease.get("blocks") or [])})
        cover[lease["offer"]] = list(lease.get("cover") or [])
    if problems:
        raise PlacementError(problems)
    inst = instance.model_copy(update={"jobs": models})
    inst._index = instance.index
    return inst, {"instance": instance.name, "jobs": placed, "leases": leases}, cover


def load_cover(live: LiveState, cover: dict[str, list[str]]) -> None:
    """Each offer's ``cover`` paths (a state document's) as blocks it leases."""
    ix = live.base.index
    for o, offer in enumerate(live.base.offers):
        for k, path in enumerate(cover.get(offer.name, [])):
            r = ix.resolve(path)
            if r is None or r not in live.st.offer_blocks[o]:
                raise PlacementError(
                    [(f"state.leases.{offer.name}.cover[{k}]", f"not a leased block {path!r}")]
                )
            live.cover[o].add(r)


# --------------------------------------------------------------------------- out
def job_dict(job: Job) -> dict[str, Any]:
    """A job as a SPEC 1.2 document that loads back to the same job: each plan written with
    the keys it gives only (a plan's defaults, e.g. ``mix_types: false``, would replace the
    job's own value when read back)."""
    d = job.model_dump(mode="json", exclude_none=True)
    if job.plans:
        d["plans"] = [p.model_dump(mode="json", exclude_unset=True) for p in job.plans]
    return d


def _placed_entry(slot: Job, gpus: list[str]) -> dict[str, Any]:
    """A running job's entry in a placement document (SPEC 2; `plan` with plans)."""
    entry: dict[str, Any] = {"name": slot.name, "units": len(gpus) // slot.unit_size}
    if slot.plan is not None:
        entry["plan"] = slot.plan
    entry["gpus"] = gpus
    return entry


def unavailable_paths(index: Any, unavailable: np.ndarray) -> list[str]:
    """The fewest domain paths and GPU ids that name exactly the GPUs in `unavailable`
    bool (G,): whole domains where a domain is wholly unavailable, GPU ids elsewhere."""
    L = index.n_levels
    out: list[str] = []
    covered_prev: np.ndarray | None = None
    for lvl in range(L):
        n = index.n_domains(lvl)
        cnt = np.bincount(index.dom[lvl][unavailable], minlength=n)
        size = np.diff(index.first_gpu[lvl])
        full = (cnt == size) & (size > 0)
        above = np.zeros(n, bool) if covered_prev is None else covered_prev[index.parent[lvl]]
        listed = full & ~above
        out.extend(index.domain_path(lvl, int(d)) for d in np.flatnonzero(listed))
        covered_prev = above | listed
    rest = unavailable & ~covered_prev[index.gpu_node]
    out.extend(index.gpu_ids(np.flatnonzero(rest)))
    return out


def job_document(live: LiveState, j: int, ids: bool = True) -> dict[str, Any]:
    """The running job of slot j as a SPEC 1.2 document with `current` (its GPUs now, rank
    order; `ids` False: their indices in the topology, an int64 array) and, with plans,
    `current_plan` (the plan it runs now)."""
    slot = live.slots[j]
    jd = job_dict(live.spec[slot.name])
    g = live.st.job_gpus[j]
    jd["current"] = live.st.ix.gpu_ids(g) if ids else g
    if slot.plan is not None:
        jd["current_plan"] = slot.plan
    return jd


def failed_items(live: LiveState) -> list[Any]:
    """Failed hardware as paths (domains, nodes, GPUs) and WAN links ``[site_a, site_b]``."""
    ix = live.base.index
    out: list[Any] = unavailable_paths(ix, ix.available & ~live.avail)
    out += [list(w.between) for w, up in zip(live.base.topology.wan, live.links_up) if not up]
    return out


def lease_cover(live: LiveState) -> dict[str, list[str]]:
    """Per offer, the blocks it leased to cover failed hardware."""
    ix = live.base.index
    return {
        offer.name: [ix.domain_path(lv, d) for lv, d in sorted(live.cover[o])]
        for o, offer in enumerate(live.base.offers)
        if live.cover[o]
    }


def state_document(live: LiveState, jobs: bool = True) -> dict[str, Any]:
    """The state document (see :meth:`Cluster.state`)."""
    st, ix = live.st, live.st.ix
    cover = lease_cover(live)
    leases = [
        {
            "offer": offer.name,
            "blocks": [ix.domain_path(lv, d) for lv, d in st.offer_blocks[o]],
            "cover": cover.get(offer.name, []),
        }
        for o, offer in enumerate(live.base.offers)
        if st.offer_blocks[o]
    ]
    bix = live.base.index
    out: dict[str, Any] = {
        "version": 1,
        "instance": live.base.name,
        "failed": failed_items(live),
        "restored": unavailable_paths(bix, live.avail & ~bix.available),
        "leases": leases,
    }
    if jobs:
        out["jobs"] = [job_document(live, j) for j in live.running()]
    return out


def snapshot(live: LiveState, ids: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The live state as plain SPEC documents ``(instance, placement)`` (see
    :meth:`Cluster.snapshot`); `ids` False: GPUs as indices (see :func:`job_document`)."""
    base, st = live.base, live.st
    ix = st.ix
    d = base.model_dump(mode="json", exclude_none=True)
    d["topology"]["unavailable"] = unavailable_paths(ix, ~live.avail)
    d["topology"]["wan"] = [
        w.model_dump(mode="json", exclude_none=True)
        for w, up in zip(base.topology.wan, live.links_up)
        if up
    ]
    jobs, placed = [], []
    for j in live.running():
        jd = job_document(live, j, ids)
        jobs.append(jd)
        placed.append(_placed_entry(live.slots[j], jd["current"]))
    d["jobs"] = jobs
    leases = []
    if base.leases is not None:
        offers = live.live_offers(st.offer_blocks)
        d["leases"] = offers.model_dump(mode="json", exclude_none=True)
        for o, offer in enumerate(offers.offers):
            if st.offer_blocks[o]:
                leases.append(
                    {
                        "offer": offer.name,
                        "blocks": [ix.domain_path(lv, dd) for lv, dd in st.offer_blocks[o]],
                        "gpus": sum(len(st.block_gpus(b)) for b in st.offer_blocks[o]),
                    }
                )
    return d, {"instance": base.name, "jobs": placed, "leases": leases}
