"""Import Slurm `topology.conf` / `topology.yaml` + `slurm.conf` Gres as a SPEC instance.

Tree topologies become levels `site, [tierK..tier2,] leaf, node`; block topologies
`site, [blocksN..,] block, node` (one aggregation level per `BlockSizes` entry after the
base); flat ones `site, node`. Node names are the Slurm names, so a GPU id ends in
`<hostname>/gpu<k>`. Defects are warned with file:line and resolved where unambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hostlist
import yaml

from placer.errors import InstanceError
from placer.formats.common import (
    BLOCK_FABRIC,
    LEAF_FABRIC,
    NODE_FABRIC,
    TIER_STEP_US,
    FormatWarning,
    LineLoader,
    load_partial,
    load_wan,
    parse_type_map,
    read_text,
    spec_type,
)


@dataclass
class _Sw:
    name: str
    line: int
    nodes: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    link_speed: float | None = None


@dataclass
class SlurmTopology:
    """A parsed topology: `kind` tree | block | flat, entries in file order."""

    kind: str
    file: str
    switches: list[_Sw] = field(default_factory=list)  # tree: switches; block: blocks
    block_sizes: list[int] = field(default_factory=list)
    block_sizes_line: int | None = None
    flat_nodes: list[str] = field(default_factory=list)
    warnings: list[FormatWarning] = field(default_factory=list)  # found while parsing


def _expand(expr: str, file: str, line: int) -> list[str]:
    try:
        return hostlist.expand_hostlist(expr)
    except hostlist.BadHostlist as e:
        raise InstanceError([(f"{file}:{line}", f"bad hostlist {expr!r}: {e}")]) from None


def _kv(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in line.split():
        k, sep, v = tok.partition("=")
        if sep:
            out[k.lower()] = v
    return out


# The keys Slurm reads on each kind of topology.conf line (slurm.conf(5), topology.conf(5)).
_CONF_KEYS = {
    "switchname": ("SwitchName", "Switches", "Nodes", "LinkSpeed"),
    "blockname": ("BlockName", "Nodes"),
    "blocksizes": ("BlockSizes",),
}
_YAML_KEYS = {"switch": ("switch", "children", "nodes"), "block": ("block", "nodes")}


def _unknown_keys(s: str, kind: str, topo: SlurmTopology, line: int) -> None:
    """Warn (file:line) about each key a `kind` line does not take, and each token without
    `=`: Slurm would refuse the line; placer reads the keys it knows and says what it drops."""
    known = _CONF_KEYS[kind]
    for tok in s.split():
        k, sep, _ = tok.partition("=")
        if not sep:
            what = f"a token without '=', {tok!r}"
        elif k.lower() not in {x.lower() for x in known}:
            what = f"unknown key {k}= ({tok})"
        else:
            continue
        topo.warnings.append(
            FormatWarning(
                topo.file,
                line,
                f"{what} on a {known[0]}= line ignored; such a line takes {', '.join(known)}",
            )
        )


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines without comments, `\\` continuations joined, with the first line's number."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for i, raw in enumerate(text.splitlines(), 1):
        s = raw.split("#", 1)[0].rstrip()
        if not buf:
            start = i
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def parse_topology_conf(text: str, file: str = "topology.conf") -> SlurmTopology:
    """Parse a tree (`SwitchName=`) or block (`BlockName=`, `BlockSizes=`) topology.conf."""
    topo = SlurmTopology(kind="flat", file=file)
    kinds = set()
    for ln, s in _logical_lines(text):
        kv = _kv(s)
        if "switchname" in kv:
            kinds.add("tree")
            _unknown_keys(s, "switchname", topo, ln)
            sw = _Sw(kv["switchname"], ln)
            if "nodes" in kv:
                sw.nodes = _expand(kv["nodes"], file, ln)
            if "switches" in kv:
                sw.children = _expand(kv["switches"], file, ln)
            if "linkspeed" in kv:
                try:
                    sw.link_speed = float(kv["linkspeed"])
                except ValueError:
                    raise InstanceError(
                        [(f"{file}:{ln}", f"LinkSpeed must be a number, not {kv['linkspeed']!r}")]
                    ) from None
            topo.switches.append(sw)
        elif "blockname" in kv:
            kinds.add("block")
            _unknown_keys(s, "blockname", topo, ln)
            topo.switches.append(_Sw(kv["blockname"], ln, _expand(kv.get("nodes", ""), file, ln)))
        elif "blocksizes" in kv:
            kinds.add("block")
            _unknown_keys(s, "blocksizes", topo, ln)
            topo.block_sizes = _sizes(kv["blocksizes"].split(","), file, ln)
            topo.block_sizes_line = ln
        else:
            raise InstanceError(
                [(f"{file}:{ln}", f"expected SwitchName=, BlockName= or BlockSizes=: {s!r}")]
            )
    if len(kinds) > 1:
        raise InstanceError([(file, "mixes SwitchName= (tree) and BlockName= (block) lines")])
    if kinds:
        topo.kind = kinds.pop()
    if not topo.switches:
        raise InstanceError([(file, "no SwitchName= or BlockName= line")])
    return topo


def _sizes(items: list[Any], file: str, line: int | None) -> list[int]:
    try:
        sizes = [int(str(x).strip()) for x in items if str(x).strip()]
    except ValueError:
        raise InstanceError([(f"{file}:{line}", f"BlockSizes must be integers: {items}")]) from None
    if not sizes or any(x < 1 for x in sizes) or sizes != sorted(set(sizes)):
        raise InstanceError(
            [(f"{file}:{line}", f"BlockSizes must be increasing and >= 1: {sizes}")]
        )
    return sizes


def _unknown_yaml_keys(entry: dict, kind: str, topo: SlurmTopology) -> None:
    known = _YAML_KEYS[kind]
    for k in entry:
        if k != "__line__" and k not in known:
            topo.warnings.append(
                FormatWarning(
                    topo.file,
                    entry.get("__line__"),
                    f"unknown key {k!r} of a {kind} entry ignored; it takes {', '.join(known)}",
                )
            )


def parse_topology_yaml(text: str, file: str = "topology.yaml", name: str | None = None):
    """Parse Slurm 25.05+ topology.yaml; pick `name`, else `cluster_default`, else the first."""
    try:
        doc = yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise InstanceError([(file, f"not valid YAML: {e}")]) from None
    if not isinstance(doc, list) or not all(isinstance(t, dict) for t in doc):
        raise InstanceError([(file, "expected a list of topologies (- topology: NAME ...)")])
    chosen = None
    if name is not None:
        chosen = next((t for t in doc if t.get("topology") == name), None)
        if chosen is None:
            names = ", ".join(str(t.get("topology")) for t in doc)
            raise InstanceError([(file, f"no topology named {name!r} (have {names})")])
    else:
        chosen = next((t for t in doc if t.get("cluster_default")), doc[0] if doc else None)
    if chosen is None:
        raise InstanceError([(file, "no topology")])
    topo = SlurmTopology(kind="flat", file=file)
    if "tree" in chosen:
        topo.kind = "tree"
        for sw in (chosen["tree"] or {}).get("switches") or []:
            ln = sw.get("__line__", 0)
            if "switch" not in sw:
                raise InstanceError([(f"{file}:{ln}", "a switch entry without `switch:`")])
            _unknown_yaml_keys(sw, "switch", topo)
            s = _Sw(str(sw["switch"]), ln)
            if sw.get("nodes"):
                s.nodes = _expand(str(sw["nodes"]), file, ln)
            if sw.get("children"):
                s.children = _expand(str(sw["children"]), file, ln)
            topo.switches.append(s)
    elif "block" in chosen:
        topo.kind = "block"
        blk = chosen["block"] or {}
        if blk.get("block_sizes") is not None:
            bs = blk["block_sizes"]
            topo.block_sizes = _sizes(
                bs if isinstance(bs, list) else str(bs).split(","), file, blk.get("__line__")
            )
            topo.block_sizes_line = blk.get("__line__")
        for b in blk.get("blocks") or []:
            ln = b.get("__line__", 0)
            _unknown_yaml_keys(b, "block", topo)
            topo.switches.append(
                _Sw(str(b["block"]), ln, _expand(str(b.get("nodes", "")), file, ln))
            )
    elif chosen.get("flat"):
        topo.kind = "flat"
    else:
        raise InstanceError(
            [(f"{file}:{chosen.get('__line__', 0)}", "expected tree, block or flat")]
        )
    return topo


# ---------------------------------------------------------------------------- slurm.conf


@dataclass
class NodeGres:
    gpus: int
    raw_type: str | None
    line: int


def parse_slurm_conf(text: str, file: str = "slurm.conf") -> tuple[dict[str, NodeGres], list]:
    """Per node, its GPU count and raw Gres type from `NodeName=... Gres=gpu:<type>:<n>`."""
    nodes: dict[str, NodeGres] = {}
    warns: list[FormatWarning] = []
    default: dict[str, str] = {}
    for ln, s in _logical_lines(text):
        kv = _kv(s)
        if "nodename" not in kv:
            continue
        if kv["nodename"].upper() == "DEFAULT":
            default.update({k: v for k, v in kv.items() if k != "nodename"})
            continue
        gres = kv.get("gres", default.get("gres", ""))
        counts: dict[str | None, int] = {}
        for item in filter(None, re.split(r",(?![^(]*\))", gres)):
            item = re.sub(r"\(.*\)$", "", item)
            parts = item.split(":")
            if parts[0] != "gpu":
                continue
            try:
                n = int(parts[-1]) if len(parts) > 1 else 1
            except ValueError:
                raise InstanceError([(f"{file}:{ln}", f"bad GPU Gres count in {item!r}")]) from None
            typ = parts[1] if len(parts) == 3 else None
            counts[typ] = counts.get(typ, 0) + n
        if len(counts) > 1:
            warns.append(
                FormatWarning(
                    file,
                    ln,
                    f"nodes {kv['nodename']} have several GPU types "
                    f"{sorted(map(str, counts))}; the most numerous is used",
                )
            )
        typ, n = max(counts.items(), key=lambda kv_: kv_[1]) if counts else (None, 0)
        for node in _expand(kv["nodename"], file, ln):
            if node in nodes:
                warns.append(
                    FormatWarning(
                        file,
                        ln,
                        f"node {node} defined again; the first "
                        f"definition (line {nodes[node].line}) is kept",
                    )
                )
                continue
            nodes[node] = NodeGres(n, typ, ln)
    return nodes, warns


# ---------------------------------------------------------------------------- resolution


def _prefix_fixer(topo: SlurmTopology, known: set[str] | None, warns: list[FormatWarning]):
    """A function name -> name fixing a missing common prefix (`n019` -> `circe-n019`)."""
    names = [n for sw in topo.switches for n in sw.nodes]
    prefixes: dict[str, int] = {}
    for n in names:
        m = re.match(r"^(.*[-_.])[^-_.]+$", n)
        if m:
            prefixes[m.group(1)] = prefixes.get(m.group(1), 0) + 1
    best = max(prefixes.items(), key=lambda x: x[1])[0] if prefixes else None

    def fix(name: str, line: int) -> str:
        if known is not None:
            if name in known:
                return name
            cands = [p + name for p in ([best] if best else []) if p + name in known]
            if not cands:
                cands = [
                    k for k in known if k.endswith(name) and re.match(r".*[-_.]$", k[: -len(name)])
                ]
            if len(cands) == 1:
                warns.append(
                    FormatWarning(
                        topo.file,
                        line,
                        f"node {name} is not in slurm.conf; read as {cands[0]} (missing prefix)",
                    )
                )
                return cands[0]
            warns.append(
                FormatWarning(topo.file, line, f"node {name} is not in slurm.conf; left out")
            )
            return ""
        if best and not name.startswith(best) and best + name not in names:
            if prefixes[best] >= 0.5 * len(names):
                warns.append(
                    FormatWarning(
                        topo.file,
                        line,
                        f"node {name} lacks the prefix "
                        f"{best!r} of the other nodes; read as {best + name}",
                    )
                )
                return best + name
        return name

    return fix


def _tree_domains(topo: SlurmTopology, fix, warns) -> tuple[list[dict], list[str], dict]:
    f = topo.file
    sws: dict[str, _Sw] = {}
    for sw in topo.switches:
        if sw.name in sws:
            warns.append(
                FormatWarning(
                    f,
                    sw.line,
                    f"switch {sw.name} defined again; the first (line {sws[sw.name].line}) is kept",
                )
            )
            continue
        sws[sw.name] = sw
    owner: dict[str, _Sw] = {}
    for sw in sws.values():
        kept = []
        for n in sw.nodes:
            n = fix(n, sw.line)
            if not n:
                continue
            if n in owner:
                o = owner[n]
                warns.append(
                    FormatWarning(
                        f,
                        sw.line,
                        f"node {n} is under two switches, {o.name} "
                        f"(line {o.line}) and {sw.name}; the first, {o.name}, "
                        "keeps it",
                    )
                )
                continue
            owner[n] = sw
            kept.append(n)
        sw.nodes = kept
    parent: dict[str, str] = {}
    for sw in sws.values():
        kept = []
        for c in sw.children:
            if c not in sws:
                warns.append(
                    FormatWarning(
                        f, sw.line, f"switch {sw.name} names an undefined switch {c}; ignored"
                    )
                )
            elif c in parent:
                warns.append(
                    FormatWarning(
                        f,
                        sw.line,
                        f"switch {c} is under two switches, "
                        f"{parent[c]} and {sw.name}; the first keeps it",
                    )
                )
            elif c == sw.name:
                raise InstanceError([(f"{f}:{sw.line}", f"switch {c} is its own child")])
            else:
                parent[c] = sw.name
                kept.append(c)
        sw.children = kept
    # cycles: a switch whose parents lead back to it
    for s in sws:
        seen, cur = {s}, s
        while cur in parent:
            cur = parent[cur]
            if cur in seen:
                raise InstanceError([(f"{f}:{sws[s].line}", f"switch {s} is in a cycle")])
            seen.add(cur)

    def nonempty(name: str) -> bool:
        sw = sws[name]
        sw.children = [c for c in sw.children if nonempty(c)]
        return bool(sw.nodes or sw.children)

    roots = [s for s in sws if s not in parent]
    live_roots = []
    for r in roots:
        if nonempty(r):
            live_roots.append(r)
    for s, sw in sws.items():
        if not sw.nodes and not sw.children:
            warns.append(
                FormatWarning(f, sw.line, f"switch {s} has no nodes (directly or below); left out")
            )
    if not live_roots:
        raise InstanceError([(f, "no switch has any node")])
    tops = [r for r in live_roots if sws[r].children]
    if len(live_roots) > 1 and tops:
        for r in live_roots:
            if r != tops[0] and not sws[r].children:
                warns.append(
                    FormatWarning(
                        f,
                        sws[r].line,
                        f"switch {r} is not under any other switch; it hangs directly off the site",
                    )
                )
    site_children = sws[live_roots[0]].children if len(live_roots) == 1 and tops else live_roots

    def height(s: str) -> int:
        sw = sws[s]
        return 1 + max((height(c) for c in sw.children), default=0)

    depth = max(height(s) for s in site_children)
    levels = [f"tier{k}" for k in range(depth, 1, -1)] + ["leaf"]

    def build(s: str, h: int) -> dict:
        sw = sws[s]
        kids: list[dict] = []
        if sw.children and sw.nodes:
            warns.append(
                FormatWarning(
                    f,
                    sw.line,
                    f"switch {s} has both nodes and switches; its nodes go under a leaf {s}-nodes",
                )
            )
            kids.append(
                _pad({"name": f"{s}-nodes", "domains": [{"name": n} for n in sw.nodes]}, 1, h - 1)
            )
        if sw.children:
            kids += [build(c, h - 1) for c in sw.children]
            return {"name": s, "domains": kids}
        return _pad({"name": s, "domains": [{"name": n} for n in sw.nodes]}, 1, h)

    doms = [build(s, depth) for s in site_children]
    link = {lvl: None for lvl in levels}
    site_speed = sws[live_roots[0]].link_speed if len(live_roots) == 1 and tops else None

    def speeds(d: dict, h: int) -> None:
        sw = sws.get(d["name"])
        if sw is not None and sw.link_speed is not None:
            lvl = levels[depth - h]
            link[lvl] = sw.link_speed if link[lvl] is None else min(link[lvl], sw.link_speed)
        if h > 1:
            for c in d.get("domains", []):
                speeds(c, h - 1)

    for d in doms:
        speeds(d, depth)
    link["site"] = site_speed
    return doms, levels, link


def _pad(d: dict, h: int, want: int) -> dict:
    while h < want:
        d = {"name": f"{d['name']}-up", "domains": [d]}
        h += 1
    return d


def _block_domains(topo: SlurmTopology, fix, warns) -> tuple[list[dict], list[str], dict]:
    f = topo.file
    owner: dict[str, str] = {}
    blocks: list[dict] = []
    lines: list[int] = []
    for b in topo.switches:
        kept = []
        for n in b.nodes:
            n = fix(n, b.line)
            if not n:
                continue
            if n in owner:
                warns.append(
                    FormatWarning(
                        f,
                        b.line,
                        f"node {n} is in two blocks, {owner[n]} and "
                        f"{b.name}; the first, {owner[n]}, keeps it",
                    )
                )
                continue
            owner[n] = b.name
            kept.append(n)
        if kept:
            blocks.append({"name": b.name, "domains": [{"name": n} for n in kept]})
            lines.append(b.line)
        else:
            warns.append(FormatWarning(f, b.line, f"block {b.name} has no nodes; left out"))
    if not blocks:
        raise InstanceError([(f, "no block has any node")])
    sizes = topo.block_sizes or [max(len(b["domains"]) for b in blocks)]
    base = sizes[0]
    for b, line in zip(blocks, lines, strict=True):  # each kept block with its own line
        if len(b["domains"]) != base:
            warns.append(
                FormatWarning(
                    f,
                    line,
                    f"block {b['name']} has {len(b['domains'])} "
                    f"nodes, not the base block size {base}",
                )
            )
    levels = ["block"]
    doms = blocks
    prev = base
    for s in sizes[1:]:
        if s % prev:
            warns.append(
                FormatWarning(
                    f,
                    topo.block_sizes_line,
                    f"BlockSizes entry {s} is not a multiple of {prev}; no level for it",
                )
            )
            continue
        k, prev = s // prev, s
        groups = [doms[i : i + k] for i in range(0, len(doms), k)]
        if len(doms) % k:
            warns.append(
                FormatWarning(
                    f,
                    topo.block_sizes_line,
                    f"{len(doms)} domains do not "
                    f"divide into {s}-node aggregates; the last is partial",
                )
            )
        doms = [{"name": f"{g[0]['name']}-{g[-1]['name']}", "domains": g} for g in groups]
        levels.insert(0, f"blocks{s}")
    return doms, levels, {}


def _fabric(levels: list[str], kind: str, link: dict, file: str, warns) -> dict[str, dict]:
    fab: dict[str, dict] = {"node": dict(NODE_FABRIC)}
    below = levels[1:-1][::-1]  # narrowest first, without site and node
    lat = LEAF_FABRIC["latency_us"]
    used_table = ["node"]
    for i, lvl in enumerate(below):
        if kind == "block" and lvl == "block":
            fab[lvl] = dict(BLOCK_FABRIC)
            lat = BLOCK_FABRIC["latency_us"]
            used_table.append(lvl)
            continue
        if i:
            lat += TIER_STEP_US
        sp = link.get(lvl)
        fab[lvl] = {
            "latency_us": lat,
            "bandwidth_GBps": sp / 8 if sp else LEAF_FABRIC["bandwidth_GBps"],
        }
        if not sp:
            used_table.append(lvl)
    lat += TIER_STEP_US
    sp = link.get("site")
    fab["site"] = {"latency_us": lat, "bandwidth_GBps": sp / 8 if sp else 25.0}
    if not sp:
        used_table.append("site")
    order = ["node", *below, "site"]
    for a, b in zip(order, order[1:], strict=False):  # fabric is monotone toward wider levels
        if fab[b]["bandwidth_GBps"] > fab[a]["bandwidth_GBps"]:
            warns.append(
                FormatWarning(
                    file,
                    None,
                    f"bandwidth of level {b} capped at level "
                    f"{a}'s {fab[a]['bandwidth_GBps']:g} GB/s (monotone fabric)",
                )
            )
            fab[b]["bandwidth_GBps"] = fab[a]["bandwidth_GBps"]
        fab[b]["latency_us"] = max(fab[b]["latency_us"], fab[a]["latency_us"])
    if used_table:
        warns.append(
            FormatWarning(
                file,
                None,
                "fabric of levels "
                + ", ".join(used_table)
                + " from placer's default table (docs/formats.md), not the file",
            )
        )
    if any(v for v in link.values()):
        warns.append(FormatWarning(file, None, "LinkSpeed read as Gb/s per GPU (GB/s = /8)"))
    return fab


def _site(
    topo: SlurmTopology,
    site: str,
    gres: dict[str, NodeGres] | None,
    conf_file: str,
    type_map: dict[str, str],
    gpus_per_node: int,
    gpu_type: str,
    warns,
) -> tuple[dict, list, dict]:
    fix = _prefix_fixer(topo, set(gres) if gres is not None else None, warns)
    if topo.kind == "tree":
        doms, levels, link = _tree_domains(topo, fix, warns)
    elif topo.kind == "block":
        doms, levels, link = _block_domains(topo, fix, warns)
    else:
        if gres is None:
            raise InstanceError([(topo.file, "a flat topology needs --nodes slurm.conf")])
        doms, levels, link = [{"name": n} for n in gres], [], {}
    levels = ["site", *levels, "node"]
    placed: list[dict] = []

    def leaves(d: dict, depth: int) -> None:
        if depth == len(levels) - 1:
            placed.append(d)
        else:
            for c in d.get("domains", []):
                leaves(c, depth + 1)

    for d in doms:
        leaves(d, 1)
    gpu_kinds: set[str] = set()
    if gres is not None:
        drop = set()
        for nd in placed:
            g = gres[nd["name"]]
            if g.gpus < 1:
                warns.append(
                    FormatWarning(conf_file, g.line, f"node {nd['name']} has no GPU Gres; left out")
                )
                drop.add(nd["name"])
                continue
            if g.raw_type is None:
                warns.append(
                    FormatWarning(
                        conf_file,
                        g.line,
                        f"node {nd['name']} has an untyped "
                        f"GPU Gres; type {gpu_type} assumed (--gpu-type)",
                    )
                )
                t = gpu_type
            else:
                t = spec_type(g.raw_type, type_map)
            nd["gpus_per_node"] = g.gpus
            nd["gpu_type"] = t
            gpu_kinds.add(t)
        in_topo = {nd["name"] for nd in placed}
        missing = [n for n in gres if n not in in_topo and gres[n].gpus > 0]
        if missing:
            warns.append(
                FormatWarning(
                    topo.file,
                    None,
                    f"{len(missing)} GPU nodes of {conf_file} "
                    f"are in no switch or block: {hostlist.collect_hostlist(missing)};"
                    " left out (Slurm cannot place multi-node jobs on them)",
                )
            )
        if drop:
            doms = _prune(doms, drop, len(levels) - 1)
        if not doms:
            raise InstanceError([(topo.file, "no node with GPUs is in the topology")])
    else:
        gpu_kinds.add(gpu_type)
        warns.append(
            FormatWarning(
                topo.file,
                None,
                f"no --nodes slurm.conf: every node taken as {gpus_per_node} x {gpu_type}",
            )
        )
    s = {"name": site, "domains": doms}
    if gres is None:
        s.update(gpu_type=gpu_type, gpus_per_node=gpus_per_node)
    fab = _fabric(levels, topo.kind, link, topo.file, warns)
    return s, levels, {"fabric": fab, "kind": topo.kind, "types": gpu_kinds}


def _prune(doms: list[dict], drop: set[str], depth_left: int) -> list[dict]:
    out = []
    for d in doms:
        if depth_left == 1:
            if d["name"] not in drop:
                out.append(d)
        else:
            kids = _prune(d.get("domains", []), drop, depth_left - 1)
            if kids:
                out.append({**d, "domains": kids})
    return out


def load_topology(path: str | Path, name: str | None = None) -> SlurmTopology:
    text = read_text(path, "the topology file")
    p = str(path)
    if p.endswith((".yaml", ".yml")):
        return parse_topology_yaml(text, p, name)
    return parse_topology_conf(text, p)


def import_slurm(
    topologies: list[tuple[str | Path, str]],
    nodes: str | Path | None = None,
    jobs: str | Path | None = None,
    wan: str | Path | None = None,
    type_map: list[str] | dict[str, str] | None = None,
    gpus_per_node: int = 8,
    gpu_type: str = "H100",
    name: str | None = None,
    topology_name: str | None = None,
) -> tuple[dict[str, Any], list[FormatWarning]]:
    """Build a SPEC instance dict from Slurm files; return it with the warnings (as data).

    `topologies` is a list of (topology file, site name) pairs, one site each. `nodes` is a
    slurm.conf with `Gres=gpu:<type>:<n>` (shared by all sites). `jobs` is a partial instance
    (jobs, leases, gpu_types); `wan` a list of WAN links. Raises InstanceError on what cannot
    be resolved.
    """
    if not topologies:
        raise InstanceError([("--topology", "at least one topology file is needed")])
    tmap = parse_type_map(type_map)
    warns: list[FormatWarning] = []
    gres = None
    conf = str(nodes) if nodes is not None else ""
    if nodes is not None:
        gres, w = parse_slurm_conf(read_text(nodes, "slurm.conf"), conf)
        warns += w
    sites, levels, fabrics, types = [], None, [], set()
    seen = set()
    for path, site in topologies:
        if site in seen:
            raise InstanceError([("--site", f"site {site!r} given twice")])
        seen.add(site)
        topo = load_topology(path, topology_name)
        warns += topo.warnings
        s, lv, info = _site(topo, site, gres, conf, tmap, gpus_per_node, gpu_type, warns)
        if levels is None:
            levels = lv
        elif lv != levels:
            raise InstanceError(
                [
                    (
                        str(path),
                        f"levels {lv} differ from the first site's {levels}"
                        " (all sites of an instance share one level list)",
                    )
                ]
            )
        sites.append(s)
        fabrics.append(info["fabric"])
        types |= info["types"]
    assert levels is not None
    topo_doc: dict[str, Any] = {"levels": levels, "fabric": fabrics[0], "sites": sites}
    for s, fab in zip(sites[1:], fabrics[1:], strict=True):
        if fab != fabrics[0]:
            s["fabric"] = fab
    if wan is not None:
        topo_doc["wan"] = load_wan(wan)
    inst: dict[str, Any] = {"name": name or sites[0]["name"], "topology": topo_doc, "jobs": []}
    if jobs is not None:
        inst.update(load_partial(jobs))
    return inst, warns
