"""The expanded topology as dense arrays: an immutable index built once per instance.

Domains of each level get dense ids 0..n_l-1 in tree order, so every domain's descendants
at any deeper level, and its GPUs, form one contiguous range. GPUs are numbered node by
node (a node's GPUs are contiguous). Names are not materialised per GPU: a domain's name is
a prefix code plus an optional number, and paths are built on demand (node paths cached).

Arrays (G = GPUs, N = nodes, L = levels, S = sites):
- ``dom``: int32 (L, G), the domain id of every GPU at every level (``dom[0]`` is the site).
- ``gpu_node``: int32 (G,), ``gpu_type``: int16 (G,) index into ``type_names``,
  ``available``: bool (G,).
- ``first_gpu[l]``: int64 (n_l + 1,), GPUs of domain d of level l are
  ``first_gpu[l][d]:first_gpu[l][d+1]``.
- ``lat_us``, ``bw_GBps``: float64 (S, L), per-site fabric with overrides merged.
- ``wan_lat_us``, ``wan_bw_GBps``: float64 (S, S), min-latency path latency and bottleneck
  bandwidth (inf / 0 when there is no path, 0 / inf on the diagonal); ``wan_path_links``:
  the link indices of each pair's path; ``pair_links``: bool (S*S, W).

Imports numpy, and networkx when an instance has WAN links (no solver).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from placer.errors import InstanceError
from placer.model.instance import set_index_builder
from placer.model.semantic import merged_fabric

if TYPE_CHECKING:
    from placer.model import DomainEntry, Instance

_NUM = re.compile(r"(0|[1-9][0-9]*)\Z")


def unique_ints(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-D integer array (the same sorted distinct values) by a sort,
    or by no sort when `a` is already in order (GPU ids in topology order map to nodes and
    sites in order). numpy 2.x's np.unique hashes, and took 42 ms on a 131,072-GPU frontier
    candidate where a sort takes 6 ms: the greedy's one search of a frontier run over
    180k GPUs spent 0.45 s of its 0.6 s in it (docs/solver.md, "Short limits")."""
    a = np.asarray(a).reshape(-1)
    if len(a) < 2:
        return a.copy()
    if not (a[1:] >= a[:-1]).all():
        a = np.sort(a)
    keep = np.empty(len(a), bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def has_repeats(a: np.ndarray) -> bool:
    """Whether the 1-D integer array `a` holds a value twice (``len(np.unique(a)) !=
    len(a)``, without numpy 2.x's hashing unique: see :func:`unique_ints`)."""
    a = np.asarray(a).reshape(-1)
    if len(a) < 2:
        return False
    if not (a[1:] > a[:-1]).all():
        a = np.sort(a)
        return bool((a[1:] == a[:-1]).any())
    return False


class _LevelBuilder:
    """Growable columns of one level while expanding."""

    def __init__(self) -> None:
        self.parent: list[np.ndarray] = []
        self.prefix: list[np.ndarray] = []
        self.number: list[np.ndarray] = []
        self.n = 0
        # runs of sibling names: (parent, prefix code, first id, count, numbered)
        self.runs: list[np.ndarray] = []

    def add(self, parent: np.ndarray, prefix: np.ndarray, number: np.ndarray) -> int:
        first = self.n
        self.parent.append(parent.astype(np.int32, copy=False))
        self.prefix.append(prefix.astype(np.int32, copy=False))
        self.number.append(number.astype(np.int64, copy=False))
        self.n += len(parent)
        return first

    def add_runs(self, parent, prefix, first, count, numbered) -> None:
        cols = [
            np.atleast_1d(np.asarray(x, np.int64)) for x in (parent, prefix, first, count, numbered)
        ]
        self.runs.append(np.stack(np.broadcast_arrays(*cols)))


@dataclass(eq=False)
class TopologyIndex:
    """Immutable expanded topology of one instance (see the module docstring)."""

    levels: list[str]
    site_names: list[str]
    type_names: list[str]
    prefixes: list[str]
    parent: list[np.ndarray]  # per level: int32 (n_l,), parent id at level l-1 (-1 for sites)
    prefix: list[np.ndarray]  # per level: int32 (n_l,) prefix code
    number: list[np.ndarray]  # per level: int64 (n_l,) name number or -1
    runs: list[np.ndarray]  # per level: int64 (5, R) sorted by parent
    node_gpus: np.ndarray  # int32 (N,)
    node_type: np.ndarray  # int16 (N,)
    first_gpu: list[np.ndarray]  # per level: int64 (n_l + 1,)
    dom: np.ndarray  # int32 (L, G)
    gpu_node: np.ndarray  # int32 (G,)
    gpu_type: np.ndarray  # int16 (G,)
    available: np.ndarray  # bool (G,)
    lat_us: np.ndarray  # float64 (S, L)
    bw_GBps: np.ndarray  # float64 (S, L)
    node_fail_per_day: np.ndarray  # float64 (S,)
    power_cap_kW: np.ndarray  # float64 (S,), inf when uncapped
    type_power_kW: np.ndarray  # float64 (T,), nan when unknown
    type_speed: np.ndarray  # float64 (T,)
    wan_lat_us: np.ndarray  # float64 (S, S)
    wan_bw_GBps: np.ndarray  # float64 (S, S)
    wan_path_links: dict[tuple[int, int], tuple[int, ...]]
    pair_links: np.ndarray  # bool (S*S, W)
    link_bw_GBps: np.ndarray  # float64 (W,)
    link_fail_per_day: np.ndarray  # float64 (W,)
    site_index: dict[str, int] = field(default_factory=dict)
    _node_path_cache: dict[int, str] = field(default_factory=dict, repr=False)
    _ids_cache: dict[int, tuple[list[str], np.ndarray]] = field(default_factory=dict, repr=False)
    _id_list: list[str] | None = field(default=None, repr=False)
    _id_map: dict[str, int] | None = field(default=None, repr=False)
    _present_types: frozenset[int] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ sizes
    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_gpus(self) -> int:
        return int(self.dom.shape[1])

    @property
    def n_sites(self) -> int:
        return len(self.site_names)

    def n_domains(self, level: int) -> int:
        return len(self.parent[level])

    def level_index(self, name: str) -> int:
        return self.levels.index(name)

    @property
    def gpu_site(self) -> np.ndarray:
        return self.dom[0]

    @property
    def present_types(self) -> frozenset[int]:
        """Type codes that some node has (computed once: asked per job, per candidate, and
        an np.unique over a million nodes' types costs milliseconds)."""
        if self._present_types is None:
            self._present_types = frozenset(np.unique(self.node_type).tolist())
        return self._present_types

    # ------------------------------------------------------------------ names
    def domain_name(self, level: int, d: int) -> str:
        num = int(self.number[level][d])
        pre = self.prefixes[int(self.prefix[level][d])]
        return pre if num < 0 else f"{pre}{num}"

    def domain_path(self, level: int, d: int) -> str:
        if level == self.n_levels - 1:
            return self.node_path(d)
        parts = []
        while level >= 0:
            parts.append(self.domain_name(level, d))
            d = int(self.parent[level][d])
            level -= 1
        return "/".join(reversed(parts))

    def node_path(self, n: int) -> str:
        p = self._node_path_cache.get(n)
        if p is None:
            L = self.n_levels - 1
            parent = int(self.parent[L][n])
            p = f"{self.domain_path(L - 1, parent)}/{self.domain_name(L, n)}"
            self._node_path_cache[n] = p
        return p

    def gpu_id(self, g: int) -> str:
        if self._id_list is not None:
            return self._id_list[g]
        n = int(self.gpu_node[g])
        return f"{self.node_path(n)}/gpu{g - int(self.first_gpu[-1][n])}"

    def gpu_ids(self, gpus: np.ndarray | list[int]) -> list[str]:
        if len(gpus) > 256 or self._id_list is not None:  # worth the one-off table
            ids = self.id_table()[0]
            return [ids[g] for g in np.asarray(gpus, np.int64).tolist()]
        return [self.gpu_id(int(g)) for g in gpus]

    def id_table(self) -> tuple[list[str], dict[str, int]]:
        """Every GPU id in index order, and id -> index; built once on first use.

        Resolving placements of whole clusters (180,000 ids) is then one dict look-up per
        id instead of a walk down the tree. Memory: about 120 bytes per GPU, so it is built
        lazily (loading an instance never pays for it).
        """
        if self._id_list is None:
            L = self.n_levels - 1
            parents = self.parent[L].tolist()
            counts = self.node_gpus.tolist()
            pre = self.prefixes
            node_pre = self.prefix[L].tolist()
            node_num = self.number[L].tolist()
            maxk = max(counts, default=0)
            suffix = [f"/gpu{k}" for k in range(maxk)]
            parent_path: dict[int, str] = {}
            ids: list[str] = []
            for n in range(len(counts)):
                pp = parent_path.get(parents[n])
                if pp is None:
                    pp = parent_path[parents[n]] = self.domain_path(L - 1, parents[n]) + "/"
                num = node_num[n]
                path = pp + (pre[node_pre[n]] if num < 0 else f"{pre[node_pre[n]]}{num}")
                ids.extend([path + suffix[k] for k in range(counts[n])])
            self._id_list = ids
            self._id_map = {gid: g for g, gid in enumerate(ids)}
        return self._id_list, self._id_map

    def _child(self, level: int, parent: int, name: str) -> int:
        """Id at `level` of the child called `name` of `parent` (level-1), or -1."""
        runs = self.runs[level]
        lo = np.searchsorted(runs[0], parent, "left")
        hi = np.searchsorted(runs[0], parent, "right")
        for r in range(lo, hi):
            pre = self.prefixes[int(runs[1, r])]
            if int(runs[4, r]):
                if name.startswith(pre):
                    m = _NUM.match(name, len(pre))
                    if m and int(m.group(1)) < runs[3, r]:
                        return int(runs[2, r]) + int(m.group(1))
            elif name == pre:
                return int(runs[2, r])
        return -1

    def resolve(self, path: str) -> tuple[int, int] | None:
        """(level, id) of a domain path, (n_levels, gpu index) of a GPU id, or None."""
        parts = path.split("/")
        s = self.site_index.get(parts[0])
        if s is None:
            return None
        level, d = 0, s
        for part in parts[1:]:
            if level == self.n_levels - 1:
                if part.startswith("gpu"):
                    m = _NUM.match(part, 3)
                    if m:
                        k = int(m.group(1))
                        if k < int(self.node_gpus[d]):
                            return self.n_levels, int(self.first_gpu[-1][d]) + k
                return None
            c = self._child(level + 1, d, part)
            if c < 0:
                return None
            level, d = level + 1, c
        return level, d

    def gpu_index(self, gpu_id: str) -> int:
        """Index of a GPU id, or -1 when no such GPU exists."""
        r = self.resolve(gpu_id)
        if r is None or r[0] != self.n_levels:
            return -1
        return r[1]

    def gpu_indices(self, ids: list[str]) -> np.ndarray:
        """Indices of GPU ids (-1 for unknown ones), int64 (len(ids),)."""
        if len(ids) > 256 or self._id_map is not None:
            table = self.id_table()[1]
            try:
                return np.fromiter(map(table.__getitem__, ids), np.int64, len(ids))
            except (KeyError, TypeError):
                return np.fromiter((table.get(x, -1) for x in ids), np.int64, len(ids))
        cache: dict[str, int] = {}
        out = np.empty(len(ids), np.int64)
        for i, gid in enumerate(ids):
            node, _, tail = gid.rpartition("/")
            n = cache.get(node)
            if n is None:
                r = self.resolve(node)
                n = r[1] if r is not None and r[0] == self.n_levels - 1 else -1
                cache[node] = n
            g = -1
            if n >= 0 and tail.startswith("gpu"):
                m = _NUM.match(tail, 3)
                if m and int(m.group(1)) < int(self.node_gpus[n]):
                    g = int(self.first_gpu[-1][n]) + int(m.group(1))
            out[i] = g
        return out

    def cached_indices(self, ids: list[str]) -> np.ndarray:
        """:meth:`gpu_indices` of a list that lives as long as the instance (e.g. a job's
        `current`), computed once. Read-only."""
        hit = self._ids_cache.get(id(ids))
        if hit is None or hit[0] is not ids:
            arr = self.gpu_indices(ids)
            arr.flags.writeable = False
            hit = self._ids_cache[id(ids)] = (ids, arr)
        return hit[1]

    def gpu_range(self, level: int, d: int) -> tuple[int, int]:
        """[start, stop) of the GPUs of domain d at `level`."""
        fg = self.first_gpu[level]
        return int(fg[d]), int(fg[d + 1])

    # ------------------------------------------------------------------ links
    def pair_latency_us(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Link latency between GPUs a and b (same shape): meeting level or WAN path."""
        lvl = self.meeting_level_pairs(a, b)
        sa = self.dom[0][a]
        sb = self.dom[0][b]
        same = lvl >= 0
        out = self.wan_lat_us[sa, sb].copy()
        out[same] = self.lat_us[sa[same], lvl[same]]
        return out

    def meeting_level_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Deepest level where a and b share a domain; -1 when in different sites."""
        eq = self.dom[:, a] == self.dom[:, b]
        return eq.sum(axis=0) - 1

    # ------------------------------------------------------------------ derived
    def derive(self, available: np.ndarray | None = None, wan_from: Instance | None = None):
        """A copy for a changed cluster state, sharing every unchanged array: `available`
        bool (G,) replaces the availability, and `wan_from` (an instance with the same sites
        and a changed `topology.wan`) rebuilds only the WAN part (paths, link arrays).

        Used by :class:`placer.cluster.Cluster` when hardware fails or is restored: the tree
        is never expanded again.
        """
        import dataclasses

        changes: dict = {}
        if available is not None:
            av = np.array(available, bool)
            if av.shape != self.available.shape:
                raise ValueError(f"available: expected shape {self.available.shape}")
            av.flags.writeable = False
            changes["available"] = av
        if wan_from is not None:
            changes.update(_wan(wan_from, self.site_index))
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, inst: Instance) -> TopologyIndex:
        """Expand an instance that passed :func:`placer.model.semantic.check_structure`."""
        topo = inst.topology
        levels = list(topo.levels)
        L = len(levels)
        prefixes: list[str] = []
        prefix_code: dict[str, int] = {}

        def code(p: str) -> int:
            c = prefix_code.get(p)
            if c is None:
                c = prefix_code[p] = len(prefixes)
                prefixes.append(p)
            return c

        type_names: list[str] = list(inst.gpu_types)
        type_code = {t: i for i, t in enumerate(type_names)}

        def tcode(t: str) -> int:
            if t not in type_code:
                type_code[t] = len(type_names)
                type_names.append(t)
            return type_code[t]

        lv = [_LevelBuilder() for _ in range(L)]
        node_gpus: list[np.ndarray] = []
        node_type: list[np.ndarray] = []
        level_codes = [code(name) for name in levels]

        def expand_shape(parents: np.ndarray, depth: int, shape: list[int], gpn: int, t: int):
            """Children of `parents` (ids at depth-1... already created at `depth`)."""
            cur = parents  # ids at level `depth`
            for k, fan in enumerate(shape):
                child_level = depth + 1 + k
                n = len(cur) * fan
                par = np.repeat(cur, fan)
                num = np.tile(np.arange(fan, dtype=np.int64), len(cur))
                first = lv[child_level].add(par, np.full(n, level_codes[child_level]), num)
                lv[child_level].add_runs(
                    cur, level_codes[child_level], first + np.arange(len(cur)) * fan, fan, 1
                )
                cur = np.arange(first, first + n, dtype=np.int64)
            node_gpus.append(np.full(len(cur), gpn, np.int32))
            node_type.append(np.full(len(cur), t, np.int16))

        def expand_entries(
            entries: list[DomainEntry], parent: int, depth: int, gpn: int | None, t: str | None
        ) -> None:
            for e in entries:
                g = e.gpus_per_node if e.gpus_per_node is not None else gpn
                ty = e.gpu_type if e.gpu_type is not None else t
                name = e.name if e.name is not None else levels[depth]
                c = code(name)
                if e.count is not None:
                    first = lv[depth].add(
                        np.full(e.count, parent), np.full(e.count, c), np.arange(e.count)
                    )
                    lv[depth].add_runs(parent, c, first, e.count, 1)
                    ids = np.arange(first, first + e.count, dtype=np.int64)
                else:
                    first = lv[depth].add(np.array([parent]), np.array([c]), np.array([-1]))
                    lv[depth].add_runs(parent, c, first, 1, 0)
                    ids = np.array([first], np.int64)
                if depth == L - 1:
                    node_gpus.append(np.full(len(ids), g, np.int32))
                    node_type.append(np.full(len(ids), tcode(ty), np.int16))
                elif e.shape is not None:
                    expand_shape(ids, depth, list(e.shape), g, tcode(ty))
                else:
                    for d in ids:
                        expand_entries(e.domains or [], int(d), depth + 1, g, ty)

        for si, site in enumerate(topo.sites):
            lv[0].add(np.array([-1]), np.array([code(site.name)]), np.array([-1]))
            expand_entries(site.domains, si, 1, site.gpus_per_node, site.gpu_type)

        def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        parent = [cat(b.parent, np.int32) for b in lv]
        prefix = [cat(b.prefix, np.int32) for b in lv]
        number = [cat(b.number, np.int64) for b in lv]
        runs = []
        for b in lv:
            r = np.concatenate(b.runs, axis=1) if b.runs else np.zeros((5, 0), np.int64)
            runs.append(r[:, np.argsort(r[0], kind="stable")])
        ngpu = cat(node_gpus, np.int32)
        ntype = cat(node_type, np.int16)
        N = len(ngpu)
        # ancestors of every node at every level
        anc = np.empty((L, N), np.int32)
        anc[L - 1] = np.arange(N, dtype=np.int32)
        for level in range(L - 1, 0, -1):
            anc[level - 1] = parent[level][anc[level]]
        node_first = np.zeros(N + 1, np.int64)
        np.cumsum(ngpu, out=node_first[1:])
        G = int(node_first[-1])
        gpu_node = np.repeat(np.arange(N, dtype=np.int32), ngpu)
        dom = anc[:, gpu_node]
        first_gpu = []
        for level in range(L):
            n_l = len(parent[level])
            # first node of each domain (tree order => contiguous), then its first GPU
            first_node = np.searchsorted(anc[level], np.arange(n_l + 1), "left")
            first_gpu.append(node_first[first_node])
        S = len(topo.sites)
        lat = np.zeros((S, L))
        bw = np.zeros((S, L))
        for si in range(S):
            fab = merged_fabric(inst, si)
            for li, name in enumerate(levels):
                lat[si, li], bw[si, li] = fab[name]
        site_index = {s.name: i for i, s in enumerate(topo.sites)}
        T = len(type_names)
        tpow = np.full(T, np.nan)
        tspeed = np.ones(T)
        for name, gt in inst.gpu_types.items():
            i = type_code[name]
            if gt.power_kW is not None:
                tpow[i] = gt.power_kW
            tspeed[i] = gt.speed
        index = cls(
            levels=levels,
            site_names=[s.name for s in topo.sites],
            type_names=type_names,
            prefixes=prefixes,
            parent=parent,
            prefix=prefix,
            number=number,
            runs=runs,
            node_gpus=ngpu,
            node_type=ntype,
            first_gpu=first_gpu,
            dom=dom,
            gpu_node=gpu_node,
            gpu_type=ntype[gpu_node],
            available=np.ones(G, bool),
            lat_us=lat,
            bw_GBps=bw,
            node_fail_per_day=np.array([s.node_failures_per_day for s in topo.sites], float),
            power_cap_kW=np.array(
                [s.power_cap_kW if s.power_cap_kW is not None else np.inf for s in topo.sites]
            ),
            type_power_kW=tpow,
            type_speed=tspeed,
            **_wan(inst, site_index),
            site_index=site_index,
        )
        problems = []
        for i, path in enumerate(topo.unavailable):
            r = index.resolve(path)
            if r is None:
                problems.append((f"topology.unavailable[{i}]", f"unknown path {path!r}"))
                continue
            level, d = r
            if level == L:
                index.available[d] = False
            else:
                a, b = index.gpu_range(level, d)
                index.available[a:b] = False
        if problems:
            raise InstanceError(problems)
        for arr in (index.dom, index.gpu_node, index.gpu_type, index.available, *first_gpu):
            arr.flags.writeable = False
        return index


def _wan(inst: Instance, site_index: dict[str, int]):
    """Min-latency WAN paths with SPEC 6's tie-breaks: the index's WAN fields by name."""
    topo = inst.topology
    S = len(topo.sites)
    W = len(topo.wan)
    lbw = np.array([w.bandwidth_GBps for w in topo.wan], float)
    lfail = np.array([w.failures_per_day for w in topo.wan], float)
    lat = np.full((S, S), np.inf)
    bw = np.zeros((S, S))
    np.fill_diagonal(lat, 0.0)
    np.fill_diagonal(bw, np.inf)
    paths: dict[tuple[int, int], tuple[int, ...]] = {}
    pl = np.zeros((S * S, W), bool)
    out = {
        "wan_lat_us": lat,
        "wan_bw_GBps": bw,
        "wan_path_links": paths,
        "pair_links": pl,
        "link_bw_GBps": lbw,
        "link_fail_per_day": lfail,
    }
    if not W:
        return out  # no path between sites (networkx, a third of a second to import, unused)
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(S))
    link_of: dict[frozenset, int] = {}
    for wi, w in enumerate(topo.wan):
        a, b = (site_index[x] for x in w.between)
        # exact decimals, so that ties SPEC breaks (0.1 + 0.2 vs 0.3) are ties here too
        g.add_edge(a, b, latency=Fraction(repr(w.latency_us)))
        link_of[frozenset((a, b))] = wi
    names = [s.name for s in topo.sites]
    for a, b in itertools.combinations(range(S), 2):
        if not nx.has_path(g, a, b):
            continue
        # one path per unordered pair, written from the endpoint whose name sorts first
        src, dst = (a, b) if names[a] <= names[b] else (b, a)
        best = None
        for p in nx.all_shortest_paths(g, src, dst, weight="latency"):
            links = tuple(link_of[frozenset(e)] for e in zip(p, p[1:]))
            key = (
                -min(lbw[list(links)]),
                sum(Fraction(repr(float(lfail[i]))) for i in links),
                len(links),
                [names[x] for x in p],
            )
            if best is None or key < best[0]:
                best = (key, links)
        assert best is not None
        links = best[1]
        for x, y in ((a, b), (b, a)):  # one path per pair, used both ways
            lat[x, y] = sum(topo.wan[i].latency_us for i in links)
            bw[x, y] = min(lbw[list(links)])
            paths[(x, y)] = links
            pl[x * S + y, list(links)] = True
    return out


set_index_builder(TopologyIndex.build)
