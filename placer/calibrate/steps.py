"""Fit jobs' compute_ms, overlap and X_messages to measured step times at known placements
(``placer calibrate steps``), and report how well the fit predicts placements it has not seen.

Algorithm overview
1. Read the measurements: a CSV with a header naming ``job``, ``step_ms`` and either
   ``gpus`` (GPU ids in rank order) or ``nodes`` (node names or paths, Slurm hostlists such
   as ``n[01-04]``; ``NODE:k`` takes the first k GPUs of a node, a bare node all of them).
   Other columns are read past. Each row becomes the job's GPU indices in rank order.
2. Decompose each row with the kernel (SPEC 4) so that the fit never re-runs it:
   step = c * phi + sum over X of (1 - overlap_X) * T_X(m_X), where phi is the kernel's
   compute factor of that placement (1 / speed, times the pipeline bubble where SPEC 4
   charges one) and T_X(m) = max over the job's groups g of (m L_g + V_g): every group's
   time is linear in the message count (L_g its latency terms at m = 1, V_g its volume
   terms), read off the kernel's own group analysis. The job is measured alone, so a WAN
   link's shared bandwidth is its whole bandwidth.
3. Fit per job, by weighted least squares on the relative error
   (``scipy.optimize.least_squares``, box bounds): compute_ms > 0, overlap_X in [0, 1],
   X_messages in ``messages`` bounds, for the dimensions the job's rows exercise.
4. Hold-out error by k-fold cross-validation over the job's distinct placements (rows of
   one placement share a fold, so each prediction is of a placement the fit has not seen):
   median absolute percentage error, Spearman rank correlation, and the share of pairs of
   placements of equal size whose order the fit predicts (a tie counts one half).

Imports the kernel and the model; scipy inside the fit (the ``calibrate`` extra).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from placer.calibrate.fit import need_scipy
from placer.calibrate.nccl import HostMap, sig
from placer.errors import CalibrationError, UsageError
from placer.kernel.cost import Family, analyse_job, as_batch
from placer.kernel.score import evaluate_job
from placer.model import Instance

DIMS = ("tp", "pp", "dp", "ep")
PARAMS = ("compute", "overlap", "messages")


# --------------------------------------------------------------------------- reading


@dataclass
class Measurement:
    """One measured step: job index, GPU indices in rank order, step time, and (v3) the
    index of the plan it ran under (None: the job's default plan)."""

    job: int
    gpus: np.ndarray
    step_ms: float
    where: str
    plan: int | None = None

    @property
    def key(self) -> tuple[int, bytes]:
        return self.job, self.gpus.tobytes()


def _split_list(text: str) -> list[str]:
    """Items of a GPU or node list: whitespace, ';' or ',' outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if depth == 0 and (ch.isspace() or ch in ";,"):
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def read_measurements(
    inst: Instance, source: str | Path | list[dict[str, Any]], hosts: dict[str, str] | None = None
) -> list[Measurement]:
    """Rows of a step-time CSV (path) or of dicts with the same keys, resolved against the
    instance. Raises :class:`~placer.errors.CalibrationError` naming each bad row."""
    import hostlist

    ix = inst.index
    names = {j.name: i for i, j in enumerate(inst.jobs)}
    if isinstance(source, str | Path):
        where = str(source)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as e:
            raise CalibrationError([(where, f"cannot read: {e.strerror or e}")]) from None
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [(f"{where}:{i + 2}", r) for i, r in enumerate(reader)]
        cols = set(header)
        if not rows and not header:
            raise CalibrationError(
                [(where, "empty file: expected a header job,gpus|nodes,step_ms")]
            )
    elif isinstance(source, list):
        where = "measured"
        rows = [(f"measured[{i}]", r) for i, r in enumerate(source)]
        if not all(isinstance(r, dict) for _, r in rows):
            raise UsageError("measured: expected a CSV path or a list of dicts")
        cols = set().union(*(r.keys() for _, r in rows)) if rows else set()
    else:
        raise UsageError(
            f"measured: expected a CSV path or a list of dicts, got {type(source).__name__}"
        )
    missing = [c for c in ("job", "step_ms") if c not in cols]
    if "gpus" not in cols and "nodes" not in cols:
        missing.append("gpus or nodes")
    if missing:
        raise CalibrationError(
            [
                (
                    where,
                    f"missing column(s) {', '.join(missing)} (header: "
                    f"{', '.join(sorted(cols)) or 'none'})",
                )
            ]
        )
    hmap = HostMap(inst, hosts)
    L = ix.n_levels - 1
    problems: list[tuple[str, str]] = []
    out: list[Measurement] = []
    for loc, r in rows:
        jname = str(r.get("job") or "").strip()
        if jname not in names:
            problems.append((f"{loc}.job", f"unknown job {jname!r}"))
            continue
        job = inst.jobs[names[jname]]
        plan: int | None = None
        pname = str(r.get("plan") or "").strip()
        if pname:
            plan = job.plan_index(pname)
            if plan is None:
                have = ", ".join(p.name for p in job.plans or []) or "none"
                problems.append(
                    (f"{loc}.plan", f"job {jname!r} has no plan {pname!r} (plans: {have})")
                )
                continue
        job = job.under(job.default_plan if plan is None else plan)
        try:
            step = float(str(r.get("step_ms")).strip())
        except ValueError:
            step = float("nan")
        if not (math.isfinite(step) and step > 0):
            problems.append((f"{loc}.step_ms", f"must be a number > 0, got {r.get('step_ms')!r}"))
            continue
        gpus: list[int] = []
        bad = ""
        if str(r.get("gpus") or "").strip():
            for gid in _split_list(str(r["gpus"])):
                g = ix.gpu_index(gid)
                if g < 0:
                    bad = f"unknown GPU id {gid!r}"
                    break
                gpus.append(g)
            col = "gpus"
        else:
            col = "nodes"
            for item in _split_list(str(r.get("nodes") or "")):
                m = re.fullmatch(r"(.+?):(\d+)", item)
                expr, k = (m.group(1), int(m.group(2))) if m else (item, None)
                try:
                    hosts_ = hostlist.expand_hostlist(expr)
                except hostlist.BadHostlist as e:
                    bad = f"bad node list {expr!r}: {e}"
                    break
                for h in hosts_:
                    res = ix.resolve(h)
                    if res is not None and res[0] == L:
                        node = res[1]
                    else:
                        node, why = hmap.node(h)
                        if node is None:
                            bad = why
                            break
                    a = int(ix.first_gpu[L][node])
                    have = int(ix.node_gpus[node])
                    take = have if k is None else k
                    if take > have:
                        bad = f"node {h!r} has {have} GPUs, {take} asked"
                        break
                    gpus.extend(range(a, a + take))
                if bad:
                    break
        if bad:
            problems.append((f"{loc}.{col}", bad))
            continue
        if not gpus or len(gpus) % job.unit_size:
            problems.append(
                (
                    f"{loc}.{col}",
                    f"{len(gpus)} GPUs: job {jname!r} needs a "
                    f"positive multiple of tp*pp = {job.unit_size}",
                )
            )
            continue
        if len(set(gpus)) != len(gpus):
            problems.append((f"{loc}.{col}", "a GPU appears twice"))
            continue
        out.append(Measurement(names[jname], np.asarray(gpus, np.int64), step, loc, plan))
    if problems:
        raise CalibrationError(problems)
    if not out:
        raise CalibrationError([(where, "no measurements")])
    return out


# --------------------------------------------------------------------------- kernel pieces


def _per_row(f: Family, shared_bw: np.ndarray, m: float, S: float, cse: float) -> np.ndarray:
    """float64 (C, rows): every group's time (Family.time without the max over groups)."""
    R = f.rows_per_c
    if R == 0:
        return np.zeros((f.C, 0))
    g = dataclasses.replace(f, C=f.C * R, rows_per_c=1, n_cross=np.repeat(f.n_cross, R))
    return g.time(shared_bw, m, S, cse).reshape(f.C, R)


@dataclass
class Pieces:
    """A job's rows decomposed (step 2 of the overview): ``phi`` (r,), and per dimension
    arrays L, V (r, G) of every group's latency and volume terms (padded with -inf)."""

    phi: np.ndarray
    L: dict[str, np.ndarray]
    V: dict[str, np.ndarray]

    def T(self, d: str, m: float, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return np.max(m * self.L[d][rows] + self.V[d][rows], axis=1)


def decompose(inst: Instance, job, rows: list[Measurement]) -> Pieces:
    """Step 2 of the overview for one job's rows (batched by size)."""
    ix = inst.index
    bw = ix.link_bw_GBps.astype(float)
    r = len(rows)
    phi = np.zeros(r)
    lat_job = job.model_copy(
        update={
            "comm": job.comm.model_copy(
                update={f"{d}_MB": 0.0 for d in DIMS} | {f"{d}_messages": 1.0 for d in DIMS}
            )
        }
    )
    vol_job = job.model_copy(
        update={"comm": job.comm.model_copy(update={f"{d}_messages": 0.0 for d in DIMS})}
    )
    unit = job.model_copy(
        update={
            "compute_ms": 1.0,
            "overlap": job.overlap.model_copy(update={d: 1.0 for d in DIMS}),
        }
    )
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {d: [] for d in DIMS}
    by_size: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_size.setdefault(len(row.gpus), []).append(i)
    cse = float(job.cross_site_every)
    for _, idx in sorted(by_size.items()):
        G = np.stack([rows[i].gpus for i in idx])
        R = as_batch(G, job)
        a_lat = analyse_job(ix, lat_job, R)
        a_vol = analyse_job(ix, vol_job, R)
        s = evaluate_job(inst, ix, unit, G, a_vol, bw)
        phi[idx] = s.step_ms
        for d in DIMS:
            fl, fv = a_lat.families.get(d), a_vol.families.get(d)
            if fl is None:
                continue
            L = _per_row(fl, bw, 1.0, 0.0, cse)
            V = _per_row(fv, bw, 0.0, getattr(job.comm, f"{d}_MB"), cse)
            parts[d].append((np.asarray(idx), L, V))
    Ls: dict[str, np.ndarray] = {}
    Vs: dict[str, np.ndarray] = {}
    for d, lst in parts.items():
        if not lst:
            continue
        width = max(1, max(L.shape[1] for _, L, _ in lst))
        Lm = np.full((r, width), -np.inf)
        Vm = np.full((r, width), -np.inf)
        for idx, L, V in lst:
            # distinct (L, V) pairs only: groups of one job are mostly alike
            for k, i in enumerate(idx):
                pairs = np.unique(np.stack([L[k], V[k]], axis=1), axis=0)
                Lm[i, : len(pairs)] = pairs[:, 0]
                Vm[i, : len(pairs)] = pairs[:, 1]
        keep = np.isfinite(Lm).any(axis=0)
        Ls[d], Vs[d] = Lm[:, keep], Vm[:, keep]
    # a row with no groups in a dimension (one unit, no DP) has T = 0 there
    for d in list(Ls):
        empty = ~np.isfinite(Ls[d]).any(axis=1)
        Ls[d][empty, 0] = 0.0
        Vs[d][empty, 0] = 0.0
    return Pieces(phi, Ls, Vs)


# --------------------------------------------------------------------------- the fit


@dataclass
class JobFit:
    """Fitted values of one job (those not fitted keep the instance's)."""

    compute_ms: float
    overlap: dict[str, float]
    messages: dict[str, float]
    dims: list[str]

    def predict(self, P: Pieces, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        out = self.compute_ms * P.phi[rows]
        for d in self.dims:
            out = out + (1.0 - self.overlap[d]) * P.T(d, self.messages[d], rows)
        return out


def fit_job(
    job,
    P: Pieces,
    y: np.ndarray,
    rows: np.ndarray,
    fit: tuple[str, ...] = PARAMS,
    messages: tuple[float, float] = (1.0, 4096.0),
) -> JobFit:
    """Least-squares fit of one job on ``rows`` (indices into P and y)."""
    scipy = need_scipy()
    dims = [d for d in P.L if np.any(P.T(d, 1.0, rows) > 0)]
    c0 = float(job.compute_ms) if job.compute_ms else float(np.min(y[rows] / P.phi[rows]))
    base = JobFit(
        c0,
        {d: float(getattr(job.overlap, d)) for d in dims},
        {d: float(getattr(job.comm, f"{d}_messages")) for d in dims},
        dims,
    )
    names: list[tuple[str, str]] = []
    x0, lo, hi = [], [], []
    if "compute" in fit:
        names.append(("compute", ""))
        x0.append(c0)
        lo.append(1e-9)
        hi.append(np.inf)
    for d in dims:
        if "overlap" in fit:
            names.append(("overlap", d))
            x0.append(min(max(base.overlap[d], 0.0), 1.0))
            lo.append(0.0)
            hi.append(1.0)
        if "messages" in fit and np.any(P.L[d][rows] > 0):
            names.append(("messages", d))
            x0.append(min(max(base.messages[d], messages[0]), messages[1]))
            lo.append(messages[0])
            hi.append(messages[1])
    if not names:
        return base

    def build(x: np.ndarray) -> JobFit:
        f = JobFit(base.compute_ms, dict(base.overlap), dict(base.messages), dims)
        for (kind, d), v in zip(names, x):
            if kind == "compute":
                f.compute_ms = float(v)
            elif kind == "overlap":
                f.overlap[d] = float(v)
            else:
                f.messages[d] = float(v)
        return f

    yr = y[rows]

    def resid(x: np.ndarray) -> np.ndarray:
        return build(x).predict(P, rows) / yr - 1.0

    x0a = np.clip(np.asarray(x0, float), lo, hi)
    # start the compute time where the rows put it, the rest at the instance's values
    if "compute" in fit:
        comm0 = build(x0a).predict(P, rows) - x0a[0] * P.phi[rows]
        x0a[0] = max(
            float(np.median((yr - comm0) / P.phi[rows])), float(np.min(yr / P.phi[rows])) * 0.05
        )
    res = scipy.optimize.least_squares(resid, x0a, bounds=(lo, hi), x_scale="jac")
    return build(res.x)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    scipy = need_scipy()
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(a, b).statistic)


def pair_order(
    pred: np.ndarray,
    meas: np.ndarray,
    size: np.ndarray,
    key: np.ndarray,
    group: np.ndarray | None = None,
):
    """(agreeing pairs, pairs) among distinct placements of equal size, each pair predicted
    by one model (same ``group``: the cross-validation fold that held both out); a tie in
    the prediction counts one half. ``key`` identifies a placement (its rows are averaged)."""
    agree = 0.0
    total = 0
    grp = np.zeros(len(key), np.int64) if group is None else np.asarray(group)
    _, inv = np.unique(
        np.stack([np.unique(key, return_inverse=True)[1].ravel(), grp]), axis=1, return_inverse=True
    )
    inv = inv.ravel()
    cnt = np.bincount(inv)
    p = np.bincount(inv, pred) / cnt
    m = np.bincount(inv, meas) / cnt
    s = np.bincount(inv, size) / cnt
    g = np.bincount(inv, grp) / cnt
    for cls in np.unique(np.stack([s, g]), axis=1).T:
        idx = np.flatnonzero((s == cls[0]) & (g == cls[1]))
        if len(idx) < 2:
            continue
        iu = np.triu_indices(len(idx), 1)
        dp = (p[idx][:, None] - p[idx][None, :])[iu]
        dm = (m[idx][:, None] - m[idx][None, :])[iu]
        tie = np.abs(dp) <= 1e-9 * np.max(np.abs(p[idx]))
        ok = dm != 0
        total += int(ok.sum())
        agree += float(((np.sign(dp) == np.sign(dm)) & ~tie)[ok].sum() + 0.5 * tie[ok].sum())
    return agree, total


@dataclass
class JobReport:
    """One job's fit on all its rows and its cross-validated hold-out error."""

    job: str
    rows: int
    placements: int
    fit: JobFit
    folds: int
    mdape: float
    spearman: float
    pairs_agree: float
    pairs: int
    train_mdape: float
    predicted: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    measured: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "rows": self.rows,
            "placements": self.placements,
            "compute_ms": self.fit.compute_ms,
            "overlap": self.fit.overlap,
            "messages": self.fit.messages,
            "folds": self.folds,
            "heldout_mdape": self.mdape,
            "heldout_spearman": self.spearman,
            "heldout_pair_order": self.pairs_agree / self.pairs if self.pairs else None,
            "pairs": self.pairs,
            "train_mdape": self.train_mdape,
            "note": self.note,
        }


@dataclass
class StepsCalibration:
    """Result of :func:`placer.calibrate.steps`."""

    instance: str
    jobs: list[JobReport]
    k: int
    overlay: dict[str, Any]

    def summary(self) -> dict[str, float | None]:
        pred = np.concatenate([j.predicted for j in self.jobs]) if self.jobs else np.zeros(0)
        meas = np.concatenate([j.measured for j in self.jobs]) if self.jobs else np.zeros(0)
        ok = np.isfinite(pred)
        ape = np.abs(pred[ok] - meas[ok]) / meas[ok]
        agree = sum(j.pairs_agree for j in self.jobs)
        pairs = sum(j.pairs for j in self.jobs)
        sp = [j.spearman for j in self.jobs if np.isfinite(j.spearman)]
        return {
            "rows": int(len(meas)),
            "heldout_mdape": float(np.median(ape)) if len(ape) else None,
            "heldout_spearman_median_over_jobs": float(np.median(sp)) if sp else None,
            "heldout_spearman_pooled": _spearman(pred[ok], meas[ok]) if ok.sum() > 2 else None,
            "heldout_pair_order": agree / pairs if pairs else None,
            "pairs": pairs,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "k": self.k,
            "summary": self.summary(),
            "jobs": [j.to_dict() for j in self.jobs],
            "overlay": self.overlay,
        }

    def overlay_yaml(self) -> str:
        import yaml

        return (
            f"# placer calibrate steps: jobs of {self.instance} fitted to measured step "
            "times\n" + yaml.safe_dump(self.overlay, sort_keys=False, width=100)
        )


def folds_of(keys: list[bytes], k: int, seed: int) -> np.ndarray:
    """Fold of each row: distinct placements shuffled (seeded) and dealt round-robin."""
    uniq = sorted(set(keys))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    fold_of = {uniq[i]: j % k for j, i in enumerate(order)}
    return np.array([fold_of[key] for key in keys])


def calibrate_steps(
    inst: Instance,
    measured: Any,
    *,
    k: int = 5,
    seed: int = 0,
    fit: tuple[str, ...] | list[str] = PARAMS,
    messages: tuple[float, float] = (1.0, 4096.0),
    hosts: dict[str, str] | None = None,
) -> StepsCalibration:
    """Fit and cross-validate every measured job (see the module overview)."""
    fit = tuple(fit)
    for f in fit:
        if f not in PARAMS:
            raise UsageError(f"fit: unknown parameter {f!r} (choose from {', '.join(PARAMS)})")
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise UsageError(f"k: must be an integer >= 2, got {k!r}")
    kfold = k
    lo, hi = messages
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise UsageError(f"messages: expected bounds 0 < lo <= hi, got {messages!r}")
    rows = read_measurements(inst, measured, hosts) if not _is_rows(measured) else measured
    reports: list[JobReport] = []
    overlay_jobs: list[dict[str, Any]] = []
    by_job: dict[tuple[int, int], list[Measurement]] = {}
    for r in rows:
        base = inst.jobs[r.job]
        k = base.default_plan if r.plan is None else r.plan
        by_job.setdefault((r.job, -1 if k is None else k), []).append(r)
    plan_entries: dict[int, list[dict[str, Any]]] = {}
    for (ji, k), rs in sorted(by_job.items()):
        base = inst.jobs[ji]
        job = base.under(None if k < 0 else k)
        P = decompose(inst, job, rs)
        y = np.array([r.step_ms for r in rs])
        keys = [r.gpus.tobytes() for r in rs]
        n_pl = len(set(keys))
        all_rows = np.arange(len(rs))
        full = fit_job(job, P, y, all_rows, fit, messages)
        train = full.predict(P) / y - 1.0
        kk = min(kfold, n_pl)
        pred = np.full(len(rs), np.nan)
        fold = np.zeros(len(rs), np.int64)
        note = ""
        if kk >= 2:
            fold = folds_of(keys, kk, seed)
            for f in range(kk):
                tr, te = all_rows[fold != f], all_rows[fold == f]
                jf = fit_job(job, P, y, tr, fit, messages)
                pred[te] = jf.predict(P, te)
        else:
            note = f"{n_pl} distinct placement(s): no cross-validation"
        ok = np.isfinite(pred)
        ape = np.abs(pred[ok] - y[ok]) / y[ok]
        size = np.array([len(r.gpus) for r in rs], float)
        key_ids = np.unique(np.array(keys, dtype=object), return_inverse=True)[1]
        agree, pairs = (
            pair_order(pred[ok], y[ok], size[ok], key_ids[ok], fold[ok]) if ok.any() else (0, 0)
        )
        reports.append(
            JobReport(
                job.name if job.plan is None else f"{job.name}/{job.plan}",
                len(rs),
                n_pl,
                full,
                kk if kk >= 2 else 0,
                float(np.median(ape)) if len(ape) else float("nan"),
                _spearman(pred[ok], y[ok]),
                agree,
                pairs,
                float(np.median(np.abs(train))),
                pred,
                y,
                note,
            )
        )
        entry: dict[str, Any] = {"name": job.name if job.plan is None else job.plan}
        if "compute" in fit:
            entry["compute_ms"] = sig(full.compute_ms)
        if "overlap" in fit and full.dims:
            entry["overlap"] = {d: round(full.overlap[d], 4) for d in full.dims}
        if "messages" in fit:
            msgs = {f"{d}_messages": sig(full.messages[d]) for d in full.dims if np.any(P.L[d] > 0)}
            if msgs:
                entry["comm"] = msgs
        if job.plan is None:
            overlay_jobs.append(entry)
        else:  # v3: the values belong to the plan the rows ran under
            if ji not in plan_entries:
                plan_entries[ji] = []
                overlay_jobs.append({"name": base.name, "plans": plan_entries[ji]})
            plan_entries[ji].append(entry)
    return StepsCalibration(inst.name, reports, kfold, {"jobs": overlay_jobs})


def _is_rows(x: Any) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(r, Measurement) for r in x)
