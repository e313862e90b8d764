"""Import a Kubernetes cluster (Kueue `Topology` + `kubectl get nodes -o json`) as an instance.

The Topology's `spec.levels[].nodeLabel` (widest first) become placer levels below `site`;
a last level `kubernetes.io/hostname` is the node level. Each node's GPUs are
`status.allocatable["nvidia.com/gpu"]`, its type the GPU feature discovery label
`nvidia.com/gpu.product` (or `--type-map`). Unschedulable or NotReady nodes are `unavailable`.
Sites come from a label (`--site-label`, e.g. `topology.kubernetes.io/zone`) or one per file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from placer.errors import InstanceError
from placer.formats.common import (
    LEAF_FABRIC,
    NODE_FABRIC,
    TIER_STEP_US,
    FormatWarning,
    load_partial,
    load_wan,
    parse_type_map,
    read_text,
    read_yaml,
    spec_type,
)
from placer.formats.export import HOSTNAME_LABEL

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"


def load_kueue_topology(path: str | Path) -> tuple[str, list[str]]:
    """(name, node labels widest first) of the first `kind: Topology` document in `path`."""
    text = read_text(path, "the Kueue Topology")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        raise InstanceError([(str(path), f"not valid YAML: {e}")]) from None
    for d in docs:
        if isinstance(d, dict) and d.get("kind") == "Topology":
            api = str(d.get("apiVersion", ""))
            if not api.startswith("kueue.x-k8s.io/"):
                raise InstanceError([(str(path), f"Topology apiVersion {api!r} is not Kueue's")])
            levels = (d.get("spec") or {}).get("levels") or []
            labels = [lv.get("nodeLabel") for lv in levels if isinstance(lv, dict)]
            if not labels or not all(isinstance(x, str) and x for x in labels):
                raise InstanceError([(str(path), "spec.levels[].nodeLabel must be non-empty")])
            return str((d.get("metadata") or {}).get("name", "default")), labels
    raise InstanceError([(str(path), "no document with kind: Topology")])


def level_names(labels: list[str]) -> list[str]:
    """Placer level names for node labels: `cloud.provider.com/topology-rack` -> `rack`."""
    out: list[str] = []
    for lbl in labels:
        base = lbl.rsplit("/", 1)[-1]
        base = re.sub(r"^(topology[-.])", "", base) or base
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", base)
        if base in ("site", "node") or base in out:
            base = f"{base}-{len(out)}"
        out.append(base)
    return out


def _nodes(path: str | Path) -> list[dict]:
    doc = read_yaml(path, "the node list")
    if isinstance(doc, dict) and doc.get("kind") == "Node":
        return [doc]
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        return doc["items"]
    if isinstance(doc, list):
        return doc
    raise InstanceError([(str(path), "expected `kubectl get nodes -o json` (a NodeList)")])


def import_kubernetes(
    topology: str | Path,
    nodes: list[str | Path],
    sites: list[str] | None = None,
    site_label: str | None = None,
    jobs: str | Path | None = None,
    wan: str | Path | None = None,
    type_map: list[str] | dict[str, str] | None = None,
    gpu_type: str = "H100",
    name: str | None = None,
) -> tuple[dict[str, Any], list[FormatWarning]]:
    """Build a SPEC instance dict from a Kueue Topology and node lists; return it and warnings."""
    tmap = parse_type_map(type_map)
    warns: list[FormatWarning] = []
    topo_file = str(topology)
    _, labels = load_kueue_topology(topology)
    if labels[-1] == HOSTNAME_LABEL:
        labels = labels[:-1]
    if site_label is not None and site_label in labels:
        if labels[0] != site_label:
            raise InstanceError([("--site-label", f"{site_label} is not the widest level")])
        labels = labels[1:]
    lvl_names = level_names(labels)
    if not nodes:
        raise InstanceError([("--nodes", "at least one node list is needed")])
    if sites and len(sites) != len(nodes):
        raise InstanceError([("--site", f"{len(sites)} names for {len(nodes)} node lists")])
    trees: dict[str, dict] = {}
    unavailable: list[str] = []
    types: set[str] = set()
    for fi, path in enumerate(nodes):
        f = str(path)
        default_site = sites[fi] if sites else Path(f).stem
        for i, nd in enumerate(_nodes(path)):
            meta = nd.get("metadata") or {}
            nname = meta.get("name")
            lbls = meta.get("labels") or {}
            where = f"items[{i}] (node {nname})"
            if not nname:
                raise InstanceError([(f"{f}:items[{i}]", "node without metadata.name")])
            alloc = (nd.get("status") or {}).get("allocatable") or {}
            try:
                gpus = int(str(alloc.get(GPU_RESOURCE, "0")))
            except ValueError:
                raise InstanceError([(f"{f}:{where}", f"bad {GPU_RESOURCE} allocatable")]) from None
            if gpus < 1:
                warns.append(FormatWarning(f, None, f"{where}: no {GPU_RESOURCE}; left out"))
                continue
            missing = [k for k in labels if k not in lbls]
            if missing:
                warns.append(
                    FormatWarning(
                        f,
                        None,
                        f"{where}: no label {missing[0]}; left out "
                        "(Kueue's topology-aware scheduling skips it too)",
                    )
                )
                continue
            if site_label is not None:
                site = lbls.get(site_label)
                if not site:
                    warns.append(
                        FormatWarning(f, None, f"{where}: no site label {site_label}; left out")
                    )
                    continue
            else:
                site = default_site
            site = str(site).replace("/", "-")
            if lbls.get(PRODUCT_LABEL):
                t = spec_type(lbls[PRODUCT_LABEL], tmap)
            else:
                warns.append(
                    FormatWarning(
                        f,
                        None,
                        f"{where}: no {PRODUCT_LABEL}; type {gpu_type} assumed (--gpu-type)",
                    )
                )
                t = gpu_type
            types.add(t)
            cur = trees.setdefault(site, {})
            path_names = [site]
            for k in labels:
                v = str(lbls[k]).replace("/", "-")
                cur = cur.setdefault(v, {})
                path_names.append(v)
            if nname in cur:
                warns.append(FormatWarning(f, None, f"{where}: node listed twice; first kept"))
                continue
            cur[nname] = {"name": nname, "gpus_per_node": gpus, "gpu_type": t}
            spec = nd.get("spec") or {}
            conds = {
                c.get("type"): c.get("status")
                for c in (nd.get("status") or {}).get("conditions") or []
            }
            if spec.get("unschedulable") or conds.get("Ready", "True") != "True":
                why = "unschedulable" if spec.get("unschedulable") else "NotReady"
                warns.append(FormatWarning(f, None, f"{where}: {why}; marked unavailable"))
                unavailable.append("/".join([*path_names, nname]))
    if not trees:
        raise InstanceError([(topo_file, "no node with GPUs and every topology label")])

    def build(tree: dict, depth: int) -> list[dict]:
        if depth == len(labels):
            return list(tree.values())
        return [{"name": k, "domains": build(v, depth + 1)} for k, v in tree.items()]

    levels = ["site", *lvl_names, "node"]
    fab: dict[str, dict] = {"node": dict(NODE_FABRIC)}
    lat = LEAF_FABRIC["latency_us"]
    for lv in lvl_names[::-1]:
        fab[lv] = {"latency_us": lat, "bandwidth_GBps": LEAF_FABRIC["bandwidth_GBps"]}
        lat += TIER_STEP_US
    fab["site"] = {"latency_us": lat, "bandwidth_GBps": 25.0}
    warns.append(
        FormatWarning(
            topo_file,
            None,
            "fabric from placer's default table "
            "(docs/formats.md): Kubernetes labels carry no link speeds",
        )
    )
    topo: dict[str, Any] = {
        "levels": levels,
        "fabric": fab,
        "sites": [{"name": s, "domains": build(t, 0)} for s, t in trees.items()],
    }
    if unavailable:
        topo["unavailable"] = unavailable
    if wan is not None:
        topo["wan"] = load_wan(wan)
    inst: dict[str, Any] = {"name": name or next(iter(trees)), "topology": topo, "jobs": []}
    if jobs is not None:
        inst.update(load_partial(jobs))
    return inst, warns


def level_labels(topology: str | Path, site_label: str | None = None) -> dict[str, str]:
    """Placer level -> node label, as `import_kubernetes` names them (for the export)."""
    _, labels = load_kueue_topology(topology)
    if labels[-1] == HOSTNAME_LABEL:
        labels = labels[:-1]
    if site_label is not None and labels and labels[0] == site_label:
        labels = labels[1:]
    return dict(zip(level_names(labels), labels, strict=True))
