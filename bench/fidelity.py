"""Issue 17 part 3: how well does the calibrated cost model predict real step and sync times?

Data: the Sia / Pollux measurements in bench/data/pollux (5,175 rows at 1,042 placements of six
models on six clusters, and 2,229 runs on up to 16 nodes; README there). Each (model, per-GPU
batch size) on a cluster is one SPEC job: data-parallel over its GPUs, ``comm.dp_MB`` its fp32
gradient; each cluster is one site of nodes (levels ``site, node``).

The calibrated model is placer's own pipeline, fitted on a training split only:
1. fabric: SPEC 4's latency and bandwidth of the ``node`` and ``site`` levels fitted to the
   training rows' sync times, each an all-reduce of the job's gradient
   (:func:`placer.calibrate.fit_level`);
2. jobs: each job's ``overlap`` and ``dp_messages`` fitted to its training sync times, and its
   ``compute_ms`` as well to its training step times, on the kernel's decomposition of every
   placement (:mod:`placer.calibrate.steps`).

Protocols (held-out figures only):
- A, unseen placements: 5-fold cross-validation over each cluster's placements (a placement
  is held out for every job at once, fabric and jobs refitted per fold);
- B, unseen jobs: leave one model out per cluster; the fabric is fitted to the other models,
  the held-out model is priced by SPEC 4 from its gradient size alone (overlap 0, 1 message);
- C, more nodes: fitted to all placements (at most 4 nodes on aws, 2 on azure and rtx),
  predicting the scalability runs on more nodes (up to 16) than any fitted placement.
Figures: median absolute percentage error, Spearman within each job (median over jobs) and
pooled over a cluster's jobs, and the order of pairs of placements of equal size.

Each protocol runs twice: SPEC 4 as it is, and with one candidate term that SPEC lacks (a
per-node NIC share: the inter-node volume of a group is multiplied by its largest number of
GPUs on one node, as if they shared one NIC), applied to the same decomposition; the
candidate is evidence for a SPEC extension, not what placer computes. Writes
bench/results/fidelity.json and docs/img/fidelity-*.png with --record (else bench/out/).

    python -m bench.fidelity [--record] [--folds 5] [--seed 0] [--clusters aws,...] [--no-plots]
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import ROOT, docs_dir, machine, parser, write

DATA = ROOT / "bench" / "data" / "pollux"
GOAL = {"mdape": 0.20, "spearman": 0.90}
CLUSTERS = {  # GPUs per node, GPU type (Sia's simulator_config.py)
    "aws": (4, "T4"),
    "azure": (8, "V100"),
    "dgx": (8, "A100"),
    "dgx-ext": (8, "A100"),
    "quad": (4, "RTX6000"),
    "rtx": (8, "RTX2080Ti"),
}
VARIANTS = ("spec", "nic-share", "per-node")  # --variants may add "hierarchical"
LABEL = {
    "spec": "SPEC 4",
    "nic-share": "+ NIC share",
    "per-node": "+ per-node bandwidth",
    "hierarchical": "+ hierarchical over nodes",
}
HIER = "hierarchical"


@dataclass
class Row:
    cluster: str
    model: str
    bsz: int
    counts: tuple[int, ...]  # GPUs per node, in node order
    step_ms: float
    sync_ms: float
    source: str  # "placements" | "scalability"

    @property
    def job(self) -> str:
        return f"{self.model}-b{self.bsz}"

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def key(self) -> str:
        return "".join(map(str, self.counts))


def load_rows() -> tuple[list[Row], dict[str, float]]:
    grad = {r["model"]: float(r["gradient_MB"]) for r in csv.DictReader(open(DATA / "models.csv"))}
    rows = []
    for r in csv.DictReader(open(DATA / "placements.csv")):
        rows.append(
            Row(
                r["cluster"],
                r["model"],
                int(r["local_bsz"]),
                tuple(int(c) for c in r["placement"]),
                float(r["step_ms"]),
                float(r["sync_ms"]),
                "placements",
            )
        )
    for r in csv.DictReader(open(DATA / "scalability.csv")):
        nodes, gpus = int(r["nodes"]), int(r["gpus"])
        counts = tuple(gpus // nodes + (1 if i < gpus % nodes else 0) for i in range(nodes))
        rows.append(
            Row(
                r["cluster"],
                r["model"],
                int(r["local_bsz"]),
                counts,
                float(r["step_ms"]),
                float(r["sync_ms"]),
                "scalability",
            )
        )
    return rows, grad


def instance_doc(cluster: str, rows: list[Row], grad: dict[str, float]) -> dict:
    """The cluster as a SPEC instance: one site of nodes, one job per (model, batch size)."""
    gpn, gtype = CLUSTERS[cluster]
    nodes = max(len(r.counts) for r in rows)
    jobs = {}
    for r in rows:
        jobs.setdefault(
            r.job,
            {
                "name": r.job,
                "kind": "training",
                "dp": 256,
                "min_dp": 1,
                "comm": {"dp_MB": grad[r.model]},
                "compute_ms": 100.0,
                "value": 1.0,
            },
        )
    return {
        "name": f"pollux-{cluster}",
        "topology": {
            "levels": ["site", "node"],
            # placeholders: every protocol fits both levels before predicting
            "fabric": {
                "node": {"latency_us": 5.0, "bandwidth_GBps": 10.0},
                "site": {"latency_us": 20.0, "bandwidth_GBps": 1.0},
            },
            "sites": [
                {
                    "name": cluster,
                    "gpu_type": gtype,
                    "gpus_per_node": gpn,
                    "domains": [{"name": "node", "count": nodes}],
                }
            ],
        },
        "gpu_types": {gtype: {"speed": 1.0}},
        "jobs": sorted(jobs.values(), key=lambda j: j["name"]),
    }


def gpu_ids(cluster: str, r: Row) -> list[str]:
    return [f"{cluster}/node{i}/gpu{k}" for i, c in enumerate(r.counts) for k in range(c)]


def level_of(r: Row) -> str:
    return "node" if len(r.counts) == 1 else "site"


def share(r: Row, shared: frozenset[str]) -> float:
    """The candidate term: at a level whose bandwidth is per node (shared by the group's
    GPUs there), a group's volume is multiplied by its most GPUs on one node."""
    return float(max(r.counts)) if level_of(r) in shared else 1.0


# --------------------------------------------------------------------------- the pipeline


class Cluster:
    """One cluster's rows, instance document and per-job kernel decompositions."""

    def __init__(self, name: str, rows: list[Row], grad: dict[str, float]) -> None:
        self.name = name
        self.rows = rows
        self.grad = grad
        self.doc = instance_doc(name, rows, grad)

    def fabric(self, train: list[Row], variant: str) -> tuple[dict, frozenset[str]]:
        """Step 1: SPEC 4's node and site links fitted to the training sync times, and the
        levels whose bandwidth is taken per node: none (``spec``), the inter-node one
        (``nic-share``), or each level's better fit of the two on the training rows
        (``per-node``)."""
        from placer.calibrate import Point, fit_level

        def fit(level: str, rows: list[Row], per_node: bool):
            sh = frozenset([level]) if per_node else frozenset()
            pts = [
                Point(
                    level,
                    None,
                    "allreduce",
                    r.n,
                    self.grad[r.model] * 1e6 * share(r, sh),
                    r.sync_ms * 1000.0,
                    r.key,
                )
                for r in rows
            ]
            return fit_level(pts)

        by_level: dict[str, list[Row]] = defaultdict(list)
        for r in train:
            if r.n >= 2:
                by_level[level_of(r)].append(r)
        if variant == HIER:
            return self._fabric_hierarchical(by_level), frozenset([HIER])
        fab, shared = {}, set()
        for level, rows in by_level.items():
            if variant == "spec" or (variant == "nic-share" and level != "site"):
                f = fit(level, rows, False)
            elif variant == "nic-share":
                f = fit(level, rows, True)
                shared.add(level)
            else:
                f0, f1 = fit(level, rows, False), fit(level, rows, True)
                f = f1 if f1.median_abs_residual < f0.median_abs_residual else f0
                if f is f1:
                    shared.add(level)
            if np.isfinite(f.latency_us) and np.isfinite(f.bandwidth_GBps):
                fab[level] = {"latency_us": f.latency_us, "bandwidth_GBps": f.bandwidth_GBps}
        return fab, frozenset(shared)

    def _fabric_hierarchical(self, by_level: dict[str, list[Row]]) -> dict:
        """The node level as SPEC 4 fits it; the site level fitted to what remains of each
        multi-node sync once the busiest node's reduce-scatter and all-gather are priced:
        an all-reduce over the k nodes of each GPU's shard, S / (fewest GPUs on a node)."""
        from placer.calibrate import Point, fit_level

        fab = {}
        if by_level.get("node"):
            f = fit_level(
                [
                    Point(
                        "node",
                        None,
                        "allreduce",
                        r.n,
                        self.grad[r.model] * 1e6,
                        r.sync_ms * 1000.0,
                        r.key,
                    )
                    for r in by_level["node"]
                ]
            )
            if np.isfinite(f.latency_us) and np.isfinite(f.bandwidth_GBps):
                fab["node"] = {"latency_us": f.latency_us, "bandwidth_GBps": f.bandwidth_GBps}
        a_n = fab.get("node", {}).get("latency_us", 0.0)
        b_n = fab.get("node", {}).get("bandwidth_GBps", np.inf)
        pts = []
        for r in by_level.get("site", []):
            S, g, k = self.grad[r.model], max(r.counts), len(r.counts)
            intra = 2 * (g - 1) * a_n / 1000.0 + 2 * (g - 1) / g * S / b_n
            pts.append(
                Point(
                    "site",
                    None,
                    "allreduce",
                    k,
                    S * 1e6 / min(r.counts),
                    (r.sync_ms - intra) * 1000.0,
                    r.key,
                )
            )
        if pts:
            f = fit_level(pts)
            if np.isfinite(f.latency_us) and np.isfinite(f.bandwidth_GBps):
                fab["site"] = {"latency_us": f.latency_us, "bandwidth_GBps": f.bandwidth_GBps}
        return fab

    def instance(self, fab: dict):
        from placer.calibrate import apply_overlay
        from placer.validate import instance_from_dict

        return instance_from_dict(apply_overlay(self.doc, {"topology": {"fabric": fab}}))

    def pieces(self, inst, rows: list[Row], shared: frozenset[str]):
        """Step 2's decomposition of every row, per job (the kernel, then the candidate)."""
        from placer.calibrate.steps import Measurement, decompose

        names = {j.name: i for i, j in enumerate(inst.jobs)}
        by_job: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_job[r.job].append(i)
        out = {}
        ix = inst.index
        for jname, idx in by_job.items():
            ji = names[jname]
            ms = [
                Measurement(
                    ji, np.asarray(ix.gpu_indices(gpu_ids(self.name, rows[i]))), rows[i].step_ms, ""
                )
                for i in idx
            ]
            P = decompose(inst, inst.jobs[ji], ms)
            if HIER in shared and "dp" in P.V:
                # multi-node rows: the candidate's terms instead of the kernel's ring
                a_s, a_n = ix.lat_us[0]
                b_s, b_n = ix.bw_GBps[0]
                S = inst.jobs[ji].comm.dp_MB
                for pos, i in enumerate(idx):
                    c = rows[i].counts
                    if len(c) < 2:
                        continue
                    g, k = max(c), len(c)
                    P.L["dp"][pos] = -np.inf
                    P.V["dp"][pos] = -np.inf
                    P.L["dp"][pos, 0] = (2 * (g - 1) * a_n + 2 * (k - 1) * a_s) / 1000.0
                    P.V["dp"][pos, 0] = (
                        2 * (g - 1) / g * S / b_n + 2 * (k - 1) / k * (S / min(c)) / b_s
                    )
            elif shared and "dp" in P.V:
                mult = np.array([share(rows[i], shared) for i in idx])
                P.V["dp"] = np.where(np.isfinite(P.V["dp"]), P.V["dp"] * mult[:, None], -np.inf)
            out[jname] = (inst.jobs[ji], np.asarray(idx), P)
        return out


def predict(cl: Cluster, train: list[Row], test: list[Row], variant: str, fit_jobs: bool):
    """Sync and step predictions of `test` from a model fitted to `train`."""
    from placer.calibrate.steps import Pieces, fit_job

    fab, shared = cl.fabric(train, variant)
    if len(fab) < 2 and any(len(r.counts) > 1 for r in test):
        return None
    inst = cl.instance({**cl.doc["topology"]["fabric"], **fab})
    rows = train + test
    ntr = len(train)
    sync = np.full(len(test), np.nan)
    step = np.full(len(test), np.nan)
    for job, idx, P in cl.pieces(inst, rows, shared).values():
        tr = idx[idx < ntr]
        te = idx[idx >= ntr]
        if len(te) == 0:
            continue
        lt = np.arange(len(idx))[idx < ntr]  # positions in P of training rows
        le = np.arange(len(idx))[idx >= ntr]
        if "dp" not in P.L:
            sync[te - ntr] = 0.0
            continue
        if not fit_jobs or len(lt) < 3:
            sync[te - ntr] = P.T("dp", 1.0, le)  # SPEC defaults: overlap 0, one message
            continue
        y_sync = np.array([rows[i].sync_ms for i in idx])
        y_step = np.array([rows[i].step_ms for i in idx])
        comm_only = Pieces(np.zeros(len(idx)), P.L, P.V)
        ok = lt[np.array([rows[i].n for i in tr]) >= 2]
        if len(ok) >= 3:
            f = fit_job(job, comm_only, y_sync, ok, ("overlap", "messages"))
            sync[te - ntr] = f.predict(comm_only, le)
        else:  # too few measured collectives of this job to fit it: SPEC's defaults
            sync[te - ntr] = P.T("dp", 1.0, le)
        g = fit_job(job, P, y_step, lt)
        step[te - ntr] = g.predict(P, le)
    return sync, step


# --------------------------------------------------------------------------- figures


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def figures(rows: list[Row], pred: np.ndarray, what: str, fold: np.ndarray | None = None) -> dict:
    """Held-out figures; pairs are ranked by one fit each (the fold that held both out)."""
    from placer.calibrate.steps import pair_order

    meas = np.array([getattr(r, f"{what}_ms") for r in rows])
    ok = np.isfinite(pred) & (meas > 0)
    ape = np.abs(pred[ok] - meas[ok]) / meas[ok]
    jobs: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if ok[i]:
            jobs[(r.cluster, r.job)].append(i)
    within = [spearman(pred[i], meas[i]) for i in map(np.asarray, jobs.values())]
    within = [s for s in within if np.isfinite(s)]
    fold = np.zeros(len(rows), np.int64) if fold is None else np.asarray(fold)
    agree = pairs = 0.0
    for idx in map(np.asarray, jobs.values()):
        keys = np.unique([rows[i].key for i in idx], return_inverse=True)[1]
        sizes = np.array([rows[i].n for i in idx], float)
        a, p = pair_order(pred[idx], meas[idx], sizes, keys, fold[idx])
        agree += a
        pairs += p
    pooled = [
        spearman(
            pred[[i for i in range(len(rows)) if ok[i] and rows[i].cluster == c]],
            meas[[i for i in range(len(rows)) if ok[i] and rows[i].cluster == c]],
        )
        for c in sorted({r.cluster for r in rows})
    ]
    pooled = [x for x in pooled if np.isfinite(x)]
    return {
        "rows": int(ok.sum()),
        "mdape": float(np.median(ape)) if len(ape) else None,
        "p90_ape": float(np.quantile(ape, 0.9)) if len(ape) else None,
        "spearman_within_job": float(np.median(within)) if within else None,
        "spearman_pooled_per_cluster": float(np.median(pooled)) if pooled else None,
        "pair_order_equal_size": agree / pairs if pairs else None,
        "pairs": int(pairs),
    }


def protocol_a(cl: Cluster, variant: str, folds: int, seed: int, fit_jobs: bool = True):
    """Unseen placements: k-fold over the cluster's placements."""
    rows = [r for r in cl.rows if r.source == "placements"]
    keys = sorted({r.key for r in rows})
    rng = np.random.default_rng(seed)
    fold_of = {keys[i]: j % folds for j, i in enumerate(rng.permutation(len(keys)))}
    sync = np.full(len(rows), np.nan)
    step = np.full(len(rows), np.nan)
    for f in range(folds):
        tr = [r for r in rows if fold_of[r.key] != f]
        te_i = [i for i, r in enumerate(rows) if fold_of[r.key] == f]
        out = predict(cl, tr, [rows[i] for i in te_i], variant, fit_jobs)
        if out is not None:
            sync[te_i], step[te_i] = out
    held = [i for i, r in enumerate(rows) if r.n >= 2]
    folds_ = np.array([fold_of[rows[i].key] for i in held])
    return [rows[i] for i in held], sync[held], step[held], folds_


def protocol_b(cl: Cluster, variant: str):
    """Unseen jobs: leave one model out; SPEC 4 prices the new job from its gradient."""
    rows = [r for r in cl.rows if r.source == "placements" and r.n >= 2]
    out_rows, out_sync = [], []
    for m in sorted({r.model for r in rows}):
        tr = [r for r in rows if r.model != m]
        te = [r for r in rows if r.model == m]
        res = predict(cl, tr, te, variant, fit_jobs=False)
        if res is None:
            continue
        out_rows += te
        out_sync.append(res[0])
    return out_rows, (np.concatenate(out_sync) if out_sync else np.zeros(0))


def protocol_c(cl: Cluster, variant: str):
    """More nodes: fitted to every placement, predicting larger scalability runs."""
    train = [r for r in cl.rows if r.source == "placements"]
    most = max(len(r.counts) for r in train)
    jobs = {r.job for r in train}
    test = [
        r
        for r in cl.rows
        if r.source == "scalability" and len(r.counts) > most and r.job in jobs and r.n >= 2
    ]
    if not test:
        return [], np.zeros(0), np.zeros(0)
    sync, step = predict(cl, train, test, variant, fit_jobs=True)
    return test, sync, step


def residual_structure(data: list[tuple]) -> dict:
    """Where SPEC 4's held-out errors come from: per cluster, the Spearman correlation of
    log(measured / predicted) sync with features of the placement that SPEC 4 does not see
    (within one node, and across nodes)."""
    out: dict = {}
    feats = {
        "gpus_on_busiest_node": lambda r: max(r.counts),
        "nodes": lambda r: len(r.counts),
        "imbalance_max_over_mean": lambda r: max(r.counts) * len(r.counts) / r.n,
    }
    for c in sorted({r.cluster for r, *_ in data}):
        rows = [(r, p) for r, p, _ in data if r.cluster == c and np.isfinite(p) and p > 0]
        res = np.array([np.log(r.sync_ms / p) for r, p in rows])
        cell: dict = {
            "median_abs_log_residual": float(np.median(np.abs(res))) if len(res) else None
        }
        for where, keep in (
            ("one_node", lambda r: len(r.counts) == 1),
            ("across_nodes", lambda r: len(r.counts) > 1),
        ):
            idx = [i for i, (r, _) in enumerate(rows) if keep(r)]
            for name, f in feats.items():
                v = np.array([f(rows[i][0]) for i in idx], float)
                if len(idx) > 10 and np.ptp(v) > 0:
                    cell[f"{where}:{name}"] = spearman(v, res[idx])
        out[c] = cell
    return out


# --------------------------------------------------------------------------- plots


def plot(results: dict, samples: dict) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots (pip install -e '.[plot]')")
        return []
    img = docs_dir() / "img"
    img.mkdir(parents=True, exist_ok=True)
    variants = list(samples["A"])
    paths = []
    clusters = sorted({r.cluster for r, s, _ in samples["A"]["spec"] if np.isfinite(s)})
    fig, axes = plt.subplots(
        len(variants),
        len(clusters),
        figsize=(3.1 * len(clusters), 3.0 * len(variants)),
        squeeze=False,
    )
    for v_i, variant in enumerate(variants):
        data = samples["A"][variant]
        for c_i, c in enumerate(clusters):
            ax = axes[v_i][c_i]
            pts = [(r.sync_ms, s) for r, s, _ in data if r.cluster == c and np.isfinite(s)]
            if not pts:
                continue
            m, p = np.array(pts).T
            lo, hi = min(m.min(), p[p > 0].min()), max(m.max(), p.max())
            ax.loglog(m, np.maximum(p, lo), ".", ms=2.5, alpha=0.5)
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            ax.plot([lo, hi], [lo * 1.2, hi * 1.2], "k:", lw=0.6)
            ax.plot([lo, hi], [lo / 1.2, hi / 1.2], "k:", lw=0.6)
            ape = np.median(np.abs(p - m) / m)
            ax.set_title(f"{c}, {LABEL[variant]}: {ape:.0%}", fontsize=8)
            if c_i == 0:
                ax.set_ylabel("predicted sync (ms)")
            if v_i == len(variants) - 1:
                ax.set_xlabel("measured sync (ms)")
    fig.suptitle(
        "Held-out sync time of unseen placements (5-fold), measured vs predicted; dotted: +-20%",
        fontsize=10,
    )
    fig.tight_layout()
    p = img / "fidelity-unseen-placements.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    # more nodes: sync against nodes for each model on aws at its middle batch size
    data = {v: samples["C"][v] for v in variants}
    rows_c = [r for r, *_ in data["spec"] if r.cluster == "aws"]
    if rows_c:
        models = sorted({r.model for r in rows_c})
        fig, axes = plt.subplots(1, len(models), figsize=(3.0 * len(models), 3.2), squeeze=False)
        for k, model in enumerate(models):
            ax = axes[0][k]
            bs = sorted({r.bsz for r in rows_c if r.model == model})
            b = bs[len(bs) // 2]
            for v, style in zip(variants, ("o-", "s--", "^:", "d-.")):
                pts = sorted(
                    (r.n, r.sync_ms, s)
                    for r, s, _ in data[v]
                    if r.cluster == "aws" and r.model == model and r.bsz == b
                )
                if not pts:
                    continue
                n, m, s = np.array(pts).T
                if v == "spec":
                    ax.plot(n, m, "k.", ms=5, label="measured")
                ax.plot(n, s, style, ms=3, lw=1, label=LABEL[v])
            ax.set_title(f"{model} (b{b})", fontsize=9)
            ax.set_xlabel("GPUs (balanced over 6-16 nodes)")
            if k == 0:
                ax.set_ylabel("sync (ms)")
                ax.legend(fontsize=7)
        fig.suptitle("aws: fitted to <= 4 nodes, predicting 6-16 nodes", fontsize=10)
        fig.tight_layout()
        p = img / "fidelity-more-nodes.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clusters", default=",".join(CLUSTERS))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--name", default="fidelity", help="results file bench/results/NAME.json")
    ap.add_argument("--models", default="", help="--example: only these models (comma-separated)")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"models to compare, from {', '.join(LABEL)} (spec first)",
    )
    ap.add_argument(
        "--example",
        type=Path,
        metavar="DIR",
        help="only write DIR/pollux-<cluster>.yaml (fabric fitted to every placement) and "
        "DIR/pollux-<cluster>-steps.csv (its measured steps) for `placer calibrate steps`",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows, grad = load_rows()
    if args.example is not None:
        models = set(args.models.split(",")) if args.models else None
        write_example(args.example, args.clusters.split(",")[0], rows, grad, models)
        return
    wanted = args.clusters.split(",")
    clusters = {c: Cluster(c, [r for r in rows if r.cluster == c], grad) for c in wanted}
    results: dict = {"goal": GOAL, "variants": {}}
    samples: dict = {"A": {}, "B": {}, "C": {}}
    variants = args.variants.split(",")
    if variants[0] != "spec" or not set(variants) <= set(LABEL):
        ap.error(f"--variants: spec first, then any of {', '.join(LABEL)}")
    for variant in variants:
        res: dict = {}
        a_rows, a_sync, a_step, a_fold = [], [], [], []
        b_rows, b_sync = [], []
        c_rows, c_sync, c_step = [], [], []
        a0_sync = []
        for c, cl in clusters.items():
            r, s, st, fo = protocol_a(cl, variant, args.folds, args.seed)
            a_rows += r
            a_sync.append(s)
            a_step.append(st)
            a_fold.append(fo)
            if variant == "spec":
                a0_sync.append(protocol_a(cl, variant, args.folds, args.seed, fit_jobs=False)[1])
            r, s = protocol_b(cl, variant)
            b_rows += r
            b_sync.append(s)
            r, s, st = protocol_c(cl, variant)
            c_rows += r
            c_sync.append(s)
            c_step.append(st)
            print(f"{variant:9s} {c:8s} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        A_sync, A_step, F = np.concatenate(a_sync), np.concatenate(a_step), np.concatenate(a_fold)
        res["unseen_placements"] = {
            "sync": figures(a_rows, A_sync, "sync", F),
            **(
                {"sync_fabric_only": figures(a_rows, np.concatenate(a0_sync), "sync", F)}
                if a0_sync
                else {}
            ),
            "step": figures(a_rows, A_step, "step", F),
            "per_cluster": {
                c: figures(
                    [r for r in a_rows if r.cluster == c],
                    A_sync[[i for i, r in enumerate(a_rows) if r.cluster == c]],
                    "sync",
                    F[[i for i, r in enumerate(a_rows) if r.cluster == c]],
                )
                for c in clusters
            },
        }
        B = np.concatenate(b_sync) if b_sync else np.zeros(0)
        res["unseen_jobs"] = {"sync": figures(b_rows, B, "sync")}
        C_sync, C_step = np.concatenate(c_sync), np.concatenate(c_step)
        res["more_nodes"] = {
            "sync": figures(c_rows, C_sync, "sync"),
            "step": figures(c_rows, C_step, "step"),
            "clusters": sorted({r.cluster for r in c_rows}),
        }
        results["variants"][variant] = res
        samples["A"][variant] = list(zip(a_rows, A_sync, A_step))
        samples["C"][variant] = list(zip(c_rows, C_sync, C_step))
    results["spec_residuals_vs_placement"] = residual_structure(samples["A"]["spec"])
    results["data"] = {
        "placement_rows": sum(1 for r in rows if r.source == "placements" and r.cluster in wanted),
        "scalability_rows": sum(
            1 for r in rows if r.source == "scalability" and r.cluster in wanted
        ),
        "clusters": wanted,
        "gradient_MB": grad,
        "folds": args.folds,
        "seed": args.seed,
    }
    results["seconds"] = time.perf_counter() - t0
    results["machine"] = machine()
    paths = [] if args.no_plots else plot(results, samples)
    results["plots"] = [
        str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths
    ]
    write(args.name, results)
    report(results)
    for p in paths:
        print(f"wrote {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}")


def write_example(
    out: Path, cluster: str, rows: list[Row], grad: dict[str, float], models: set[str] | None
) -> None:
    """A cluster's instance (fabric fitted to all its placements) and its measured steps."""
    import yaml

    from placer.calibrate import apply_overlay

    keep = [r for r in rows if r.cluster == cluster and (models is None or r.model in models)]
    cl = Cluster(cluster, keep, grad)
    train = [r for r in cl.rows if r.source == "placements"]
    fab, _ = cl.fabric(train, "spec")
    rnd = {lv: {k: float(f"{v:.4g}") for k, v in e.items()} for lv, e in fab.items()}
    doc = apply_overlay(cl.doc, {"topology": {"fabric": rnd}})
    out.mkdir(parents=True, exist_ok=True)
    inst = out / f"pollux-{cluster}.yaml"
    inst.write_text(
        f"# {cluster} of the Sia/Pollux measurements (bench/data/pollux), fabric "
        "fitted to its sync times\n" + yaml.safe_dump(doc, sort_keys=False)
    )
    csv_path = out / f"pollux-{cluster}-steps.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", "nodes", "step_ms"])
        for r in train:
            nodes = " ".join(f"{cluster}/node{i}:{c}" for i, c in enumerate(r.counts))
            w.writerow([r.job, nodes, r.step_ms])
    print(f"wrote {inst} and {csv_path} ({len(train)} rows)")


def _f(x, pct=False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.0%}" if pct else f"{x:.2f}"


def report(res: dict) -> None:
    names = list(res["variants"])
    vs = [res["variants"][v] for v in names]
    print(
        f"\ngoal for unseen placements: median error <= {GOAL['mdape']:.0%}, "
        f"Spearman >= {GOAL['spearman']}"
    )
    print(f"{'held out':30s}" + "".join(f"{LABEL[v]:>29s}" for v in names))
    cols = "|err| rho(job) rho(pool) pairs"
    print(f"{'':30s}" + "".join(f"{cols:>29s}" for _ in names))
    lines = [
        ("unseen placements: sync", ("unseen_placements", "sync")),
        ("  fabric only (no job fit)", ("unseen_placements", "sync_fabric_only")),
        ("unseen placements: step", ("unseen_placements", "step")),
        ("unseen jobs: sync", ("unseen_jobs", "sync")),
        ("more nodes: sync", ("more_nodes", "sync")),
        ("more nodes: step", ("more_nodes", "step")),
    ]
    for label, (a, b) in lines:
        cells = []
        for v in vs:
            f = v[a].get(b)
            cells.append(
                "-"
                if f is None
                else f"{_f(f['mdape'], True):>5s} {_f(f['spearman_within_job']):>8s} "
                f"{_f(f['spearman_pooled_per_cluster']):>9s} {_f(f['pair_order_equal_size']):>5s}"
            )
        print(f"{label:30s}" + "".join(f"{c:>29s}" for c in cells))
    print("\nunseen placements, sync, per cluster: |err| rho(job) pairs")
    for c in vs[0]["unseen_placements"]["per_cluster"]:
        cells = []
        for v in vs:
            f = v["unseen_placements"]["per_cluster"][c]
            cells.append(
                f"{_f(f['mdape'], True):>5s} {_f(f['spearman_within_job']):>5s} "
                f"{_f(f['pair_order_equal_size']):>5s}"
            )
        print(f"  {c:8s}" + " | ".join(cells))
    print(f"({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
