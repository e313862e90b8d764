"""Export a placement as what Slurm and Kubernetes/Kueue operators run.

`export_slurm` gives per job a compressed nodelist, the node count, GPUs per node, a ready
`sbatch` line and a rank-order note, and per accepted lease a `scontrol create reservation`
command. `export_kubernetes` gives per job a `batch/v1` Job whose pod template carries the
scheduling part (required nodeAffinity on `kubernetes.io/hostname`, and Kueue's
`podset-required-topology` annotation when the job lies in one domain of a labelled level);
on several sites it names each pod's site, labels a one-site job `placer/site`, and notes a
job whose hostnames other sites share or that spans sites (a Job runs in one cluster).

Both carry how each job runs to its launcher as environment variables (:func:`launch_env`:
the chosen plan of SPEC v3, tp, pp, the units placed, microbatches and the rank order), in
the sbatch line's ``--export`` and in the container's ``env``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import hostlist
import numpy as np

from placer.api import check, load_instance, load_placement
from placer.errors import PlacementError
from placer.model import Instance, Placement

HOSTNAME_LABEL = "kubernetes.io/hostname"
REQUIRED_TOPOLOGY = "kueue.x-k8s.io/podset-required-topology"


def _args(instance: Any, placement: Any):
    inst = instance if isinstance(instance, Instance) else load_instance(instance)
    if isinstance(placement, Placement):
        pl = placement
    elif isinstance(placement, dict):
        pl = Placement.model_validate(placement)
    else:
        pl = load_placement(Path(placement), inst)
    vs = check(inst, pl)
    if vs:
        raise PlacementError([("placement", f"not feasible, not exported: {v}") for v in vs])
    return inst, pl


RANK_ORDER = "tp-pp-dp"  # SPEC 1.2: rank r has t = r mod tp, p = (r div tp) mod pp, u = r div tp*pp


def launch_env(inst: Instance, pj: Any) -> dict[str, str]:
    """How placed job `pj` (a placement entry) runs, for its launcher: ``PLACER_PLAN`` (the
    plan it runs, SPEC v3; only for a job with plans), ``PLACER_TP``, ``PLACER_PP``,
    ``PLACER_DP`` (the units placed: the data-parallel degree of a training job, the
    replicas of an inference job), ``PLACER_EP`` (training with ep > 1),
    ``PLACER_MICROBATCHES`` (when the job under its plan gives microbatches) and
    ``PLACER_RANK_ORDER`` (``tp-pp-dp``: TP fastest, then pipeline stage, then unit, the
    order of the exported ranks). Values of the job under its chosen plan."""
    job = inst.job(pj.name)
    if job.plans:
        job = job.under(job.plan_index(pj.plan))
    env: dict[str, str] = {}
    if job.plan is not None:
        env["PLACER_PLAN"] = job.plan
    env["PLACER_TP"] = str(job.tp)
    env["PLACER_PP"] = str(job.pp)
    env["PLACER_DP"] = str(pj.units)
    if job.kind == "training" and job.ep > 1:
        env["PLACER_EP"] = str(job.ep)
    if job.kind == "training" and job.microbatches is not None:
        env["PLACER_MICROBATCHES"] = str(job.microbatches)
    env["PLACER_RANK_ORDER"] = RANK_ORDER
    return env


def _sbatch_export(env: dict[str, str]) -> tuple[str, list[str]]:
    """sbatch's ``--export=ALL,K=V,...`` (shell-quoted), and the variables it cannot carry
    (sbatch splits the list at commas)."""
    ok = {k: v for k, v in env.items() if "," not in v}
    left = [k for k in env if k not in ok]
    return shlex.quote("--export=" + ",".join(["ALL", *(f"{k}={v}" for k, v in ok.items())])), left


def _ranges(xs: list[int]) -> str:
    out, i = [], 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


def _job_nodes(gpus: list[str]) -> tuple[list[str], list[str], dict[str, list[int]]]:
    """Node paths in first-rank order, their hostnames, and each node path's ranks."""
    ranks: dict[str, list[int]] = {}
    for r, g in enumerate(gpus):
        ranks.setdefault(g.rsplit("/", 1)[0], []).append(r)
    paths = list(ranks)
    return paths, [p.rsplit("/", 1)[-1] for p in paths], ranks


def _rank_order(paths, hosts, ranks) -> tuple[list[dict], str, bool]:
    order = [{"node": h, "ranks": _ranges(ranks[p])} for p, h in zip(paths, hosts, strict=True)]
    contiguous = all(rs == list(range(rs[0], rs[0] + len(rs))) for rs in ranks.values())
    in_order = hosts == hostlist.expand_hostlist(hostlist.collect_hostlist(hosts))
    if contiguous and in_order:
        note = (
            "ranks follow the nodelist: srun's default block distribution gives node i "
            "the ranks listed for it"
        )
        return order, note, False
    note = (
        "the placement's rank order is not the sorted nodelist: run with "
        "SLURM_HOSTFILE=<job>.hosts (one hostname per rank, in `hostfile`) and "
        "srun --distribution=arbitrary"
    )
    return order, note, True


def export_slurm(instance: Any, placement: Any, script: str = "job.sh") -> dict[str, Any]:
    """Per job: nodelist, nodes, gpus_per_node, sbatch (with ``--export`` of
    :func:`launch_env`), srun, rank order, plan and env; leases: reservations.

    Raises PlacementError when the placement is not feasible for the instance.
    """
    inst, pl = _args(instance, placement)
    levels = inst.topology.levels
    block_level = levels.index("block") if "block" in levels else None
    multi = len(inst.topology.sites) > 1
    host_sites = _hostname_sites(inst.index) if multi else {}
    jobs = []
    for pj in pl.jobs:
        if not pj.gpus:
            jobs.append(
                {
                    "name": pj.name,
                    "nodelist": "",
                    "nodes": 0,
                    "gpus_per_node": 0,
                    "sbatch": None,
                    "srun": None,
                    "note": pj.reason or "not placed",
                }
            )
            continue
        paths, hosts, ranks = _job_nodes(list(pj.gpus))
        counts = {len(ranks[p]) for p in paths}
        gpn = max(counts)
        nodelist = hostlist.collect_hostlist(hosts)
        notes = []
        if len(counts) > 1:
            notes.append(
                f"uneven GPUs per node {sorted(counts)}: --gpus-per-node={gpn} asks the "
                "most; the rank order says which GPUs are used"
            )
        node_sites = [p.split("/", 1)[0] for p in paths]
        within, across, shared = _host_repeats(hosts, node_sites, host_sites)
        if within is not None:
            notes.append(
                f"hostname {within[0]} names several nodes of site {within[1]}: Slurm node "
                "names are unique in a cluster, so the nodelist cannot tell them apart (the "
                "instance's node names must be the Slurm ones)"
            )
        if across is not None:
            notes.append(
                f"hostnames repeat across sites ({across} in {', '.join(host_sites[across])}): "
                "submit per site cluster"
            )
        sites = sorted(set(node_sites))
        if len(sites) > 1:
            notes.append(f"spans sites {', '.join(sites)}: one allocation per site's Slurm cluster")
        elif shared is not None:
            others = [s for s in host_sites[shared] if s != sites[0]]
            notes.append(
                f"hostname {shared} also names a node in {', '.join(others)}: submit it to "
                f"site {sites[0]}'s Slurm cluster"
            )
        seg = None
        if block_level is not None:
            per_block: dict[str, int] = {}
            for p in paths:
                b = "/".join(p.split("/")[: block_level + 1])
                per_block[b] = per_block.get(b, 0) + 1
            sizes = set(per_block.values())
            if len(per_block) > 1 and len(sizes) == 1:
                seg = sizes.pop()
        order, rank_note, arbitrary = _rank_order(paths, hosts, ranks)
        env = launch_env(inst, pj)
        export, left = _sbatch_export(env)
        if left:
            notes.append(
                f"{', '.join(left)} hold a comma, which sbatch --export cannot carry: set "
                "them in the script (the JSON's env)"
            )
        opts = [
            f"--job-name={pj.name}",
            f"--nodes={len(hosts)}",
            f"--nodelist={nodelist}",
            f"--gpus-per-node={gpn}",
            f"--ntasks-per-node={gpn}",
            export,
        ]
        if seg is not None:
            opts.append(f"--segment={seg}")
        srun = "srun --distribution=arbitrary" if arbitrary else "srun"
        entry: dict[str, Any] = {
            "name": pj.name,
            "nodelist": nodelist,
            "nodes": len(hosts),
            "gpus_per_node": gpn,
            "sbatch": "sbatch " + " ".join(opts) + f" {script}",
            "srun": (f"SLURM_HOSTFILE={pj.name}.hosts " if arbitrary else "") + srun,
            "segment": seg,
            "rank_order": order,
            "rank_note": rank_note,
            "plan": env.get("PLACER_PLAN"),
            "env": env,
        }
        if arbitrary:
            entry["hostfile"] = [g.rsplit("/", 2)[-2] for g in pj.gpus]
        if notes:
            entry["note"] = "; ".join(notes)
        jobs.append(entry)
    idx = inst.index
    leases = []
    for lg in pl.leases:
        if not lg.blocks:
            continue
        hosts: list[str] = []
        for b in lg.blocks:
            level, d = idx.resolve(b)
            g0, g1 = idx.gpu_range(level, d)
            seen = dict.fromkeys(int(n) for n in idx.gpu_node[g0:g1])
            hosts += [idx.node_path(n).rsplit("/", 1)[-1] for n in seen]
        nl = hostlist.collect_hostlist(hosts)
        minutes = int(round(inst.horizon_hours * 60))
        leases.append(
            {
                "offer": lg.offer,
                "blocks": list(lg.blocks),
                "nodelist": nl,
                "nodes": len(hosts),
                "gpus": lg.gpus,
                "reservation": (
                    f"scontrol create reservation ReservationName=lease-{lg.offer} "
                    f"StartTime=now Duration={minutes} Nodes={nl} "
                    f"Accounts={lg.offer} Flags=IGNORE_JOBS"
                ),
            }
        )
    return {"instance": inst.name, "jobs": jobs, "leases": leases}


def export_kubernetes(
    instance: Any,
    placement: Any,
    level_labels: dict[str, str] | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Per placed job a `batch/v1` Job manifest holding the scheduling part.

    One pod per node (Indexed completion; pod i runs on the i-th node of `nodes`, whose
    ranks the rank order lists), each asking its node's GPUs, its container's env carrying
    :func:`launch_env`; a required nodeAffinity on `kubernetes.io/hostname` pins the node
    set. `level_labels` maps placer levels to node
    labels (as from a Kueue Topology); where a job lies in one domain of such a level, the
    narrowest one is written as `kueue.x-k8s.io/podset-required-topology`.

    Several sites: each rank-order entry names its pod's site, a job in one site carries the
    label `placer/site` (the cluster to apply it to), and a `note` says when a hostname of
    the job also names a node of another site or the job spans sites (one Kubernetes
    cluster per site: its Job must be split per site cluster).
    """
    inst, pl = _args(instance, placement)
    levels = inst.topology.levels
    labels = level_labels or {}
    multi = len(inst.topology.sites) > 1
    host_sites = _hostname_sites(inst.index) if multi else {}
    out = []
    for pj in pl.jobs:
        if not pj.gpus:
            continue
        paths, hosts, ranks = _job_nodes(list(pj.gpus))
        gpn = max(len(r) for r in ranks.values())
        order, _, _ = _rank_order(paths, hosts, ranks)
        pod_sites = [p.split("/", 1)[0] for p in paths]
        for o, site in zip(order, pod_sites, strict=True):
            o["site"] = site
        sites = list(dict.fromkeys(pod_sites))
        notes = _site_notes(hosts, pod_sites, sites, host_sites)
        env = launch_env(inst, pj)
        ann: dict[str, str] = {}
        for li in range(len(levels) - 2, 0, -1):
            lbl = labels.get(levels[li])
            if lbl and len({"/".join(p.split("/")[: li + 1]) for p in paths}) == 1:
                ann[REQUIRED_TOPOLOGY] = lbl
                break
        name = _k8s_name(pj.name)
        lbl = {"placer/job": name}
        if multi and len(sites) == 1:
            lbl[SITE_LABEL] = _k8s_label_value(sites[0])
        meta: dict[str, Any] = {"name": name, "labels": dict(lbl)}
        if namespace:
            meta["namespace"] = namespace
        pod_meta: dict[str, Any] = {"labels": dict(lbl)}
        if ann:
            pod_meta["annotations"] = ann
        manifest = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta,
            "spec": {
                "parallelism": len(hosts),
                "completions": len(hosts),
                "completionMode": "Indexed",
                "template": {
                    "metadata": pod_meta,
                    "spec": {
                        "restartPolicy": "Never",
                        "affinity": {
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchExpressions": [
                                                {
                                                    "key": HOSTNAME_LABEL,
                                                    "operator": "In",
                                                    "values": sorted(set(hosts)),
                                                }
                                            ]
                                        }
                                    ]
                                }
                            }
                        },
                        "containers": [
                            {
                                "name": name,
                                "env": [{"name": k, "value": v} for k, v in env.items()],
                                "resources": {"limits": {"nvidia.com/gpu": gpn}},
                            }
                        ],
                    },
                },
            },
        }
        entry: dict[str, Any] = {
            "name": pj.name,
            "nodes": hosts,
            "sites": sites,
            "gpus_per_node": gpn,
            "rank_order": order,
            "plan": env.get("PLACER_PLAN"),
            "env": env,
            "manifest": manifest,
        }
        if notes:
            entry["note"] = "; ".join(notes)
        out.append(entry)
    return {"instance": inst.name, "jobs": out}


SITE_LABEL = "placer/site"


def _host_repeats(
    hosts: list[str], node_sites: list[str], host_sites: dict[str, list[str]]
) -> tuple[tuple[str, str] | None, str | None, str | None]:
    """What a job's node hostnames (`hosts`, one per node, its site in `node_sites`) share:
    (a hostname that names two of its nodes in one site, and that site), a hostname it has
    in two sites, and a hostname that a node of another site also has (`host_sites`:
    :func:`_hostname_sites`; empty on one site); each the first in node order, or None.
    The Slurm and Kubernetes exports word their notes from it."""
    within = None
    job_sites: dict[str, set[str]] = {}
    for h, s in zip(hosts, node_sites, strict=True):
        have = job_sites.setdefault(h, set())
        if within is None and s in have:
            within = (h, s)
        have.add(s)
    across = next((h for h in hosts if len(job_sites[h]) > 1), None)
    shared = next((h for h in hosts if len(host_sites.get(h, ())) > 1), None)
    return within, across, shared


def _hostname_sites(idx) -> dict[str, list[str]]:
    """Node name -> the sites that have a node of that name (in site order)."""
    L = idx.n_levels - 1
    n = len(idx.node_gpus)
    site = np.arange(n)
    for lv in range(L, 0, -1):
        site = idx.parent[lv][site]
    out: dict[str, list[str]] = {}
    for k, s in enumerate(site.tolist()):
        sites = out.setdefault(idx.domain_name(L, k), [])
        name = idx.site_names[s]
        if name not in sites:
            sites.append(name)
    return out


def _site_notes(hosts, pod_sites, sites, host_sites) -> list[str]:
    """Notes for a job's pods on several sites, or on hostnames other sites have too."""

    def pods(s: str) -> str:
        r = _ranges([i for i, x in enumerate(pod_sites) if x == s])
        return f"pod {r} in {s}" if r.isdigit() else f"pods {r} in {s}"

    where = ", ".join(pods(s) for s in sites)
    notes = []
    within, across, shared = _host_repeats(hosts, pod_sites, host_sites)
    if within is not None:
        notes.append(
            f"hostname {within[0]} names several nodes of site {within[1]}: Kubernetes node "
            "names are unique, so the hostname affinity cannot hold them (the instance's node "
            "names must be the Kubernetes ones)"
        )
    if across is not None:
        notes.append(
            f"hostnames repeat across sites ({across} in {', '.join(host_sites[across])}), so "
            "each site is its own Kubernetes cluster (node names are unique in one) and this "
            f"Job cannot run as one: split it per site cluster ({where})"
        )
    elif len(sites) > 1:
        notes.append(
            f"spans sites {', '.join(sites)}: a Job runs in one Kubernetes cluster; with one "
            f"cluster per site, split it per site cluster ({where})"
        )
    elif shared is not None:
        others = [s for s in host_sites[shared] if s != sites[0]]
        notes.append(
            f"hostname {shared} also names a node in {', '.join(others)}: apply it to site "
            f"{sites[0]}'s cluster (label {SITE_LABEL})"
        )
    return notes


def _k8s_label_value(value: str) -> str:
    """`value` as a Kubernetes label value (63 characters of [A-Za-z0-9-_.], alphanumeric
    at both ends)."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", s)


def _k8s_name(name: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (s or "job")[:63].rstrip("-")
