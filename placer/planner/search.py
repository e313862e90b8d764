"""Deriving a job's SPEC v3 `plans` from its `model:` and `planner:` (see docs/plans.md).

Algorithm overview
1. Candidate GPU types: the job's `gpu_types` (or every type in the topology) that have a
   memory size (the instance's `memory_GB`, else the catalogue) and a dense peak for the
   model's precision.
2. Shapes: tp a power of two dividing the heads, up to the NVLink domain of some type (the
   node, or the rack of NVL72-style sites written with trays as nodes); the plan is for
   the types whose NVLink domain holds the group, its TP scope the widest level any of them
   needs (GB200 trays: the rack; the H100 node still holds the group); pp a divisor of the
   layer count; ep (MoE) with experts divisible by tp * ep; every
   recomputation choice asked for; every variant. All within the planner's ranges.
3. dp and microbatches: the most units of tp * pp GPUs within `planner.gpus` such that dp x
   microbatches x micro_batch is the global batch (within `batch_slack`); min_dp from
   `min_gpus`.
4. Per shape: memory per GPU of the worst stage (:func:`formulas.peak_memory`); the plan's
   `gpu_types` keep the types it fits. Traffic per step (`comm`), compute time per type
   from the FLOPs of the slowest stage and the type's peak at the stated MFU; `compute_ms`
   for a speed-1 GPU; `value` scaled by the share of the executed FLOPs that is model work
   (recomputation, the output layer's extra load on the last stage).
5. Step time at the best level of each type (:func:`hardware.best_step`); efficiency =
   useful compute / step. Shapes that fit nowhere are dropped (unless none fits), and so
   are shapes below half the job's best efficiency (they only add choices no solver takes).
6. A Pareto set per variant over (GPUs per unit, memory per GPU, traffic beyond the
   NVLink domain, efficiency at the best level, GPUs at full size), cut to `max_plans` by
   taking in turn from each variant its most efficient plan, its least memory, its smallest
   unit, its least traffic, then the rest by efficiency. A running job's `current_plan` is
   always kept. Plans are listed by variant, most efficient first.

Imports the planner's formulas, spec and hardware modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from placer.model.instance import CLUSTER, MaxLatency, Overlap, Scope
from placer.planner import formulas as F
from placer.planner.hardware import (
    Estimate,
    Hardware,
    Shape,
    best_step,
    effective_scope,
    pool_speed,
)
from placer.planner.spec import ModelSpec, PlannerSpec, Variant, allowed, parse, parse_closed

# job keys the planner derives: giving them beside `model:` is refused
DERIVED = ("tp", "pp", "dp", "min_dp", "ep", "microbatches", "comm", "compute_ms", "plans")
STATE_BYTES = {"adam": 16.0, "sgd": 12.0}
MB = 1e6
GB = 1e9
SLACK_SEARCH = 100_000  # most dp values tried with batch_slack
EFFICIENCY_FLOOR = 0.5  # plans below this share of the job's best efficiency are not offered


def _sig(x: float, digits: int = 6) -> float:
    """x to `digits` significant digits (files stay readable, figures exact enough)."""
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


@dataclass
class PlanInfo:
    """One derived plan and every figure behind it (for `placer plans`)."""

    plan: dict[str, Any]
    variant: str | None
    recompute: str
    memory: F.Memory
    fits: dict[str, tuple[float, bool]]  # type -> (HBM GB, fits), over the job's types
    traffic: F.Traffic
    compute_ms_by_type: dict[str, float]
    work_share: float
    estimates: dict[str, Estimate]  # type (or "mixed") -> best-level step
    efficiency: float
    variant_index: int = 0

    @property
    def name(self) -> str:
        return self.plan["name"]

    @property
    def memory_GB(self) -> float:
        return self.memory.total / GB

    @property
    def outer_MB(self) -> float:
        """Traffic beyond the NVLink domain per GPU per step: PP + DP + EP."""
        c = self.plan["comm"]
        return c.get("pp_MB", 0.0) + c.get("dp_MB", 0.0) + c.get("ep_MB", 0.0)

    def criteria(self) -> tuple[float, ...]:
        """The Pareto criteria, each to be minimised."""
        p = self.plan
        return (
            p["tp"] * p["pp"],
            round(self.memory_GB, 6),
            round(self.outer_MB, 6),
            -round(self.efficiency, 9),
            -p["tp"] * p["pp"] * p["dp"],
        )

    def best(self) -> tuple[str, Estimate] | None:
        """The fastest estimate (pool name, estimate), or None when it fits nowhere."""
        ok = [(k, e) for k, e in self.estimates.items() if e.step_ms is not None]
        return min(ok, key=lambda kv: kv[1].step_ms) if ok else None  # type: ignore[arg-type, return-value]

    def to_dict(self) -> dict[str, Any]:
        best = self.best()
        return {
            "plan": self.plan,
            "variant": self.variant,
            "recompute": self.recompute,
            "memory_GB": {
                "total": self.memory_GB,
                "stage": self.memory.stage,
                "states": self.memory.states / GB,
                "activations": self.memory.activations / GB,
                "overhead": self.memory.overhead / GB,
            },
            "fits": {t: {"memory_GB": hbm, "fits": ok} for t, (hbm, ok) in self.fits.items()},
            "compute_ms_by_type": self.compute_ms_by_type,
            "work_share": self.work_share,
            "efficiency": self.efficiency,
            "best": None if best is None else {"pool": best[0], **_est_dict(best[1])},
            "estimates": {k: _est_dict(e) for k, e in self.estimates.items()},
        }


def _est_dict(e: Estimate) -> dict[str, Any]:
    return {
        "step_ms": e.step_ms,
        "units": e.units,
        "compute_ms": e.compute_ms,
        "T_ms": e.T_ms,
        "levels": e.where,
        "arrangement": e.arrangement,
        "sites": e.sites,
        "reason": e.reason,
    }


@dataclass
class JobPlans:
    """The plans derived for one job."""

    index: int
    name: str
    plans: list[PlanInfo]
    candidates: int
    dropped: dict[str, int] = field(default_factory=dict)  # why candidates were left out
    types: list[str] = field(default_factory=list)  # the candidate GPU types
    excluded_types: dict[str, str] = field(default_factory=dict)  # type -> why not a candidate
    model: F.Model | None = None
    mfu: float = 0.0
    precision: str = "bf16"

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.name,
            "index": self.index,
            "candidates": self.candidates,
            "dropped": self.dropped,
            "types": self.types,
            "excluded_types": self.excluded_types,
            "mfu": self.mfu,
            "precision": self.precision,
            "plans": [p.to_dict() for p in self.plans],
        }


class PlanError(Exception):
    """Located problems of one job's model description."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{a}: {b}" for a, b in problems))


def _divisors(n: int) -> list[int]:
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def choose_dp(
    batch: int,
    micro: int,
    max_units: int,
    ep: int,
    slack: float,
    spec: PlannerSpec,
    divs: list[int],
) -> tuple[int, int] | None:
    """(dp, microbatches): the most units (a multiple of ep, within planner.dp) not above
    `max_units` with dp x m x micro = batch exactly (m integer), or within `slack` of it."""
    seqs = batch // micro
    hi = max_units - max_units % ep
    exact = [d for d in divs if d <= hi and d % ep == 0 and allowed(spec.dp, d)]
    best = (exact[-1], seqs // exact[-1]) if exact else None
    if slack > 0:
        top = min(hi, int(seqs * (1 + slack)))
        top -= top % ep
        floor = max(best[0] if best else 0, top - SLACK_SEARCH * ep)  # bounded work
        for dp in range(top, floor, -ep):
            if dp <= 0 or not allowed(spec.dp, dp):
                continue
            m = max(1, round(seqs / dp))
            if abs(dp * m - seqs) <= slack * seqs:
                return dp, m
    return best


def _pow2_upto(n: int) -> list[int]:
    out, v = [], 1
    while v <= n:
        out.append(v)
        v *= 2
    return out


def plan_job(job: dict, ji: int, hw: Hardware, warnings: list[str]) -> tuple[list[dict], JobPlans]:
    """The SPEC v3 plans of one job with `model:` (and the figures behind them). Raises
    :class:`PlanError` with located problems."""
    base = f"jobs[{ji}]"
    name = job.get("name") if isinstance(job.get("name"), str) else f"jobs[{ji}]"
    ms, ps, problems = parse(job, ji)
    kind = job.get("kind")
    if kind is not None and kind != "training":
        problems.append(
            (f"{base}.model", f"only training jobs are planned from a model (kind is {kind!r})")
        )
    for key in DERIVED:
        if key in job:
            problems.append(
                (
                    f"{base}.{key}",
                    "not allowed with model: the planner derives it"
                    + (" (restrict it under planner:)" if key in ("tp", "pp", "dp", "ep") else ""),
                )
            )
    if "value" not in job and not (
        ps is not None and ps.variants and all(v.value is not None for v in ps.variants)
    ):  # each plan's value is the job's (scaled): say so at the job, not at plans it never wrote
        problems.append((f"{base}.value", "is required (each plan's value is the job's, scaled)"))
    if problems or ms is None or ps is None:
        raise PlanError(problems)
    model = F.Model(
        layers=ms.layers,
        hidden=ms.hidden,
        heads=ms.heads,
        seq_len=ms.seq_len,
        vocab=ms.vocab,
        global_batch=ms.global_batch,
        micro_batch=ms.micro_batch,
        params=ms.params,
        active_params=ms.active_params,
        ffn_hidden=ms.ffn_hidden,
        experts=ms.experts,
        top_k=ms.top_k,
        tied_embeddings=ms.tied_embeddings,
        sequence_parallel=ms.sequence_parallel,
    )
    try:
        split = F.split_params(model)
    except ValueError as e:
        key, _, msg = str(e).partition(": ")
        raise PlanError([(f"{base}.model.{key}", msg)]) from None
    levels = hw.levels
    _check_variants(ps, levels, base, problems)
    if problems:
        raise PlanError(problems)
    # 1. candidate types
    present = [t for t in hw.types if any(s.cap.get(t, [0])[0] for s in hw.sites)]
    wanted = job.get("gpu_types")
    pool = [t for t in present if t in wanted] if isinstance(wanted, list) else present
    excluded: dict[str, str] = {}
    types = []
    for t in pool:
        th = hw.types[t]
        peak = (ps.peak_TFLOPS or {}).get(t) or th.peak_TFLOPS.get(ms.precision)
        if th.memory_GB is None:
            excluded[t] = (
                f"no memory size: not in the bundled catalogue; give gpu_types.{t}.memory_GB"
            )
        elif not peak:
            excluded[t] = (
                f"no {ms.precision} peak for {t}: give planner.peak_TFLOPS.{t}"
                if not th.peak_TFLOPS
                else f"{t} has no {ms.precision} tensor cores ({th.peak_from})"
            )
        else:
            types.append(t)
    if not types:
        why = "; ".join(f"{t}: {w}" for t, w in excluded.items())
        if not why:
            why = (
                f"the topology has none of the job's gpu_types {wanted}"
                if isinstance(wanted, list)
                else "the topology has no GPU"
            )
        raise PlanError([(f"{base}.model", f"no GPU type can be planned ({why})")])
    peak = {
        t: (ps.peak_TFLOPS or {}).get(t) or hw.types[t].peak_TFLOPS[ms.precision] for t in types
    }
    # job-level shared keys
    shared = _shared_keys(job, base, levels)
    raw_scope, raw_lat, raw_overlap = shared["scope"], shared["max_latency_us"], shared["overlap"]
    if "tp" in raw_scope:
        warnings.append(
            f"{base}.scope.tp: each plan's scope sets tp to the NVLink level the planner chose"
        )
    cse = job.get("cross_site_every", 1)
    cse = cse if isinstance(cse, (int, float)) and not isinstance(cse, bool) and cse >= 1 else 1
    value = job.get("value")
    value = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    mix = job.get("mix_types", False)
    variants: list[Variant | None] = list(ps.variants) if ps.variants else [None]
    rcs = ["selective", "full"] if ms.recompute == "auto" else [ms.recompute]
    bpp = ms.state_bytes_per_param or STATE_BYTES[ms.optimizer]
    divs = _divisors(ms.global_batch // ms.micro_batch)
    # 2. shapes
    tps = []
    for tp in _pow2_upto(max(s.cap.get(t, [0])[0] for s in hw.sites for t in types)):
        if ms.hidden % tp or ms.heads % tp or not allowed(ps.tp, tp):
            continue
        # the types whose NVLink domain holds the group; the plan's TP scope is the widest
        # level any of them needs (a bound: on the others the group still fits a node)
        needed = {t: hw.tp_domain(t, tp) for t in types}
        ts = [t for t in types if needed[t] is not None]
        if ts:
            tps.append((tp, min((needed[t] for t in ts), key=levels.index), ts))  # type: ignore[arg-type]
    pps = [p for p in _divisors(ms.layers) if allowed(ps.pp, p)]
    dropped: dict[str, int] = {}
    infos: list[PlanInfo] = []
    n_cand = 0
    for vi, var in enumerate(variants):
        scope = {k: v for k, v in raw_scope.items() if k != "tp"}
        lat = dict(raw_lat)
        overlap = dict(raw_overlap)
        v_cse = cse
        v_value = value
        if var is not None:
            if var.scope is not None:
                scope.update({k: v for k, v in var.scope.model_dump().items() if v is not None})
            if var.max_latency_us is not None:
                lat.update(
                    {k: v for k, v in var.max_latency_us.model_dump().items() if v is not None}
                )
            if var.overlap is not None:
                overlap.update(var.overlap.model_dump(exclude_unset=True))
            if var.cross_site_every is not None:
                v_cse = var.cross_site_every
            if var.value is not None:
                v_value = var.value
        for tp, tp_level, tp_types in tps:
            for pp in pps:
                units_max = ps.gpus // (tp * pp)
                if units_max < 1:
                    dropped["more GPUs per unit than planner.gpus"] = (
                        dropped.get("more GPUs per unit than planner.gpus", 0) + 1
                    )
                    continue
                eps = [1]
                if model.moe:
                    assert ms.experts is not None
                    eps = [
                        e
                        for e in _divisors(ms.experts)
                        if ms.experts % (tp * e) == 0 and e <= units_max and allowed(ps.ep, e)
                    ] or []
                    if not eps:
                        dropped["experts not divisible by tp x ep"] = (
                            dropped.get("experts not divisible by tp x ep", 0) + 1
                        )
                for ep in eps:
                    for rc in rcs:
                        n_cand += 1
                        info, why = _candidate(
                            model, split, ms, ps, hw, types=tp_types, tp=tp, tp_level=tp_level,
                            pp=pp, ep=ep, rc=rc, rcs=rcs, units_max=units_max, divs=divs,
                            bpp=bpp, peak=peak, scope=scope, lat=lat, overlap=overlap,
                            cse=v_cse, value=v_value, mix=mix, var=var,
                        )  # fmt: skip
                        if info is None:
                            dropped[why] = dropped.get(why, 0) + 1
                        else:
                            info.variant = var.name if var is not None else None
                            info.variant_index = vi
                            infos.append(info)
    if not infos:
        raise PlanError([(f"{base}.model", _nothing_fits(dropped, types, hw, model, ms, ps))])
    placeable = [i for i in infos if i.best() is not None]
    if not placeable:
        warnings.append(
            f"{base}.model: no plan's groups fit their scopes anywhere (even at min_gpus); "
            f"kept the plans that fit in memory"
        )
        placeable = infos
    else:
        dropped["fits no domain of its scope"] = len(infos) - len(placeable)
        top = max(i.efficiency for i in placeable)
        keep = [
            i
            for i in placeable
            if i.efficiency >= EFFICIENCY_FLOOR * top or i.name == job.get("current_plan")
        ]
        dropped[f"below {EFFICIENCY_FLOOR:g}x the best efficiency"] = len(placeable) - len(keep)
        placeable = keep
    current = job.get("current_plan")
    if isinstance(current, str) and current not in {i.name for i in placeable}:
        near = ", ".join(sorted(i.name for i in placeable)[:4])
        raise PlanError(
            [
                (
                    f"{base}.current_plan",
                    f"{current!r} is not a plan this model gives (plans are named by their "
                    f"shape, e.g. {near})",
                )
            ]
        )
    chosen = _select(placeable, ps.max_plans, current, len(variants))
    dropped["dominated or beyond max_plans"] = len(placeable) - len(chosen)
    dropped = {k: v for k, v in dropped.items() if v}
    chosen.sort(key=lambda i: (i.variant_index, -i.efficiency, i.name))
    jp = JobPlans(ji, name, chosen, n_cand, dropped, types, excluded, model, ps.mfu, ms.precision)
    return [i.plan for i in chosen], jp


def _shared_keys(job: dict, base: str, levels: list[str]) -> dict[str, dict]:
    """The job's own `scope`, `max_latency_us` and `overlap` (shared by its plans), checked
    as the loader checks them (they enter the plans and the best-level step)."""
    out: dict[str, dict] = {}
    problems: list[tuple[str, str]] = []
    for key, cls in (("scope", Scope), ("max_latency_us", MaxLatency), ("overlap", Overlap)):
        raw = job.get(key)
        if raw is None:
            out[key] = {}
            continue
        model, probs = parse_closed(cls, raw, f"{base}.{key}")
        problems += probs
        dumped = model.model_dump(exclude_unset=True) if model is not None else {}
        out[key] = {k: v for k, v in dumped.items() if v is not None}
    for d, lv in out["scope"].items():
        if lv != CLUSTER and lv not in levels:
            problems.append(
                (f"{base}.scope.{d}", f"unknown level {lv!r} (levels: {levels} or 'cluster')")
            )
    if problems:
        raise PlanError(problems)
    return out


def _check_variants(ps: PlannerSpec, levels: list[str], base: str, problems: list) -> None:
    for vi, v in enumerate(ps.variants or []):
        if v.scope is None:
            continue
        for d, lv in v.scope.model_dump().items():
            if lv is not None and lv != "cluster" and lv not in levels:
                problems.append(
                    (
                        f"{base}.planner.variants[{vi}].scope.{d}",
                        f"unknown level {lv!r} (levels: {levels} or 'cluster')",
                    )
                )


def _plan_name(
    var: Variant | None, tp: int, tp_level: str, pp: int, dp: int, ep: int, rc: str, rcs: list[str]
) -> str:
    parts = [var.name] if var is not None else []
    parts.append(f"tp{tp}" + ("" if tp_level == "node" else f"@{tp_level}"))
    parts += [f"pp{pp}", f"dp{dp}"]
    if ep > 1:
        parts.append(f"ep{ep}")
    if len(rcs) > 1 or rc != "selective":
        parts.append({"none": "norc", "selective": "sel", "full": "full"}[rc])
    return "-".join(parts)


def _candidate(
    model: F.Model,
    split: F.Split,
    ms: ModelSpec,
    ps: PlannerSpec,
    hw: Hardware,
    *,
    types: list[str],
    tp: int,
    tp_level: str,
    pp: int,
    ep: int,
    rc: str,
    rcs: list[str],
    units_max: int,
    divs: list[int],
    bpp: float,
    peak: dict[str, float],
    scope: dict[str, Any],
    lat: dict[str, Any],
    overlap: dict[str, Any],
    cse: float,
    value: float | None,
    mix: Any,
    var: Variant | None,
) -> tuple[PlanInfo | None, str]:
    """One shape's plan and figures, or (None, why it is left out)."""
    dm = choose_dp(ms.global_batch, ms.micro_batch, units_max, ep, ps.batch_slack, ps, divs)
    if dm is None:
        return None, "no dp divides the global batch within planner.gpus"
    dp, m = dm
    if ps.min_gpus is not None:
        min_dp = min(dp, -(-ps.min_gpus // (tp * pp)))
        min_dp += (-min_dp) % ep
        min_dp = min(min_dp, dp)
    else:
        min_dp = dp
    mem = F.peak_memory(
        model, split, tp, pp, ep, m, rc, bpp, ms.zero, max(1, min_dp), ms.overhead_GB * GB
    )
    fits = {
        t: (float(hw.types[t].memory_GB or 0.0), mem.total <= (hw.types[t].memory_GB or 0.0) * GB)
        for t in types
    }
    ok_types = sorted(t for t, (_, ok) in fits.items() if ok)
    if not ok_types:
        return None, "does not fit in memory"
    tr = F.traffic(model, split, tp, pp, dp, ep, m, rc, ms.grad_bytes, ms.zero)
    comm: dict[str, float] = {}
    for d in ("tp", "pp", "dp", "ep"):
        b = getattr(tr, f"{d}_bytes")
        if b > 0:
            comm[f"{d}_MB"] = _sig(b / MB)
            n = _sig(getattr(tr, f"{d}_messages"))
            comm[f"{d}_messages"] = int(n) if float(n).is_integer() else n
    stage = F.stage_flops_per_microbatch(model, split, pp, rc)
    c_type = {t: m * stage / tp / (peak[t] * 1e12 * ps.mfu) * 1000.0 for t in ok_types}
    ref = [t for t in ok_types if hw.types[t].speed == 1.0]
    compute_ms = (
        max(c_type[t] for t in ref) if ref else max(c_type[t] * hw.types[t].speed for t in ok_types)
    )
    model_flops = m * model.micro_batch * model.seq_len * F.model_flops_per_token(model, split)
    share = min(1.0, model_flops / (pp * m * stage))
    name = _plan_name(var, tp, tp_level, pp, dp, ep, rc, rcs)
    plan: dict[str, Any] = {"name": name, "tp": tp, "pp": pp, "dp": dp}
    if min_dp != dp:
        plan["min_dp"] = min_dp
    if ep > 1:
        plan["ep"] = ep
    if pp > 1:
        plan["microbatches"] = m
    plan_scope = {"tp": tp_level, **{k: v for k, v in scope.items() if v is not None}}
    plan["scope"] = plan_scope
    plan["comm"] = comm
    plan["compute_ms"] = _sig(compute_ms)
    plan["gpu_types"] = ok_types
    if value is not None and (share < 0.99995 or (var is not None and var.value is not None)):
        plan["value"] = _sig(value * share, 5)
    if var is not None:
        if var.cross_site_every is not None:
            plan["cross_site_every"] = var.cross_site_every
        if var.overlap is not None:
            plan["overlap"] = {k: v for k, v in overlap.items()}
        if var.max_latency_us is not None:
            plan["max_latency_us"] = {k: v for k, v in lat.items() if v is not None}
    sh = Shape(
        tp=tp,
        pp=pp,
        dp=dp,
        min_dp=min_dp,
        ep=ep,
        microbatches=m,
        comm=comm,
        compute_ms=plan["compute_ms"],
        scope=effective_scope(plan_scope, lat),
        max_latency_us={d: lat.get(d) for d in ("tp", "pp", "dp", "ep")},
        overlap={d: float(overlap.get(d, 0.0) or 0.0) for d in ("tp", "pp", "dp", "ep")},
        cross_site_every=float(cse),
    )
    ests: dict[str, Estimate] = {t: best_step(hw, sh, [t]) for t in ok_types}
    if mix and len(ok_types) > 1:
        ests["mixed"] = best_step(hw, sh, ok_types, mix)
    eff = 0.0
    for k, e in ests.items():
        if e.step_ms:
            pool = ok_types if k == "mixed" else [k]
            c = plan["compute_ms"] / pool_speed(hw, pool, mix)
            eff = max(eff, c * share / e.step_ms)
    info = PlanInfo(plan, None, rc, mem, fits, tr, c_type, share, ests, eff)
    return info, ""


def _dominates(a: tuple, b: tuple) -> bool:
    return all(x <= y for x, y in zip(a, b)) and a != b


def pareto(infos: list[PlanInfo]) -> list[PlanInfo]:
    """The plans no other plan dominates (criteria of :meth:`PlanInfo.criteria`)."""
    # sorted lexicographically, no plan can dominate one before it: one pass suffices
    order = sorted(((i.criteria(), i.name, i) for i in infos), key=lambda x: x[:2])
    front: list[tuple[tuple, PlanInfo]] = []
    for c, _, i in order:
        if not any(_dominates(f, c) for f, _ in front):
            front.append((c, i))
    return [i for _, i in front]


def _select(infos: list[PlanInfo], k: int, current: Any, n_variants: int) -> list[PlanInfo]:
    """At most k plans: per variant its Pareto set in the order of step 6, taken in turn."""
    queues: list[list[PlanInfo]] = []
    for vi in range(n_variants):
        front = pareto([i for i in infos if i.variant_index == vi])
        if not front:
            continue
        firsts = [
            max(front, key=lambda i: (i.efficiency, -len(i.name))),
            min(front, key=lambda i: (i.memory_GB, -i.efficiency)),
            min(front, key=lambda i: (i.plan["tp"] * i.plan["pp"], -i.efficiency)),
            min(front, key=lambda i: (i.outer_MB, -i.efficiency)),
        ]
        rest = sorted(front, key=lambda i: (-i.efficiency, i.name))
        q: list[PlanInfo] = []
        for i in firsts + rest:
            if i not in q:
                q.append(i)
        queues.append(q)
    out: list[PlanInfo] = []
    while len(out) < k and any(queues):
        for q in queues:
            if q and len(out) < k:
                out.append(q.pop(0))
    if isinstance(current, str) and current not in {i.name for i in out}:
        forced = next((i for i in infos if i.name == current), None)
        if forced is not None:
            if len(out) >= k:
                out.pop()
            out.append(forced)
    return out


def _nothing_fits(
    dropped: dict[str, int],
    types: list[str],
    hw: Hardware,
    model: F.Model,
    ms: ModelSpec,
    ps: PlannerSpec,
) -> str:
    biggest = max(types, key=lambda t: hw.types[t].memory_GB or 0.0)
    if "does not fit in memory" in dropped:
        return (
            f"no plan fits in memory: every shape within planner.gpus ({ps.gpus}) needs more "
            f"than the {hw.types[biggest].memory_GB:g} GB of {biggest}; allow more GPUs, "
            "recompute: full or auto, zero: 1-3, or larger GPUs"
        )
    why = ", ".join(f"{n} {w}" for w, n in sorted(dropped.items())) or "no shape"
    return f"no plan can be derived ({why})"


__all__ = ["DERIVED", "JobPlans", "PlanError", "PlanInfo", "choose_dp", "pareto", "plan_job"]
