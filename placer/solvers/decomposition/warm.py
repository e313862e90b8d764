"""A placement read back as a point of the coarse model: a warm start (hint) for its solve.

:func:`plan_of_state` maps a :class:`~.construct.State` (the greedy's placement, or a packed
plan) to the model's decision variables: per placed job the option its GPUs match (type,
sites, unit bracket) with its units per site, pieces or (site, type) parts; per offer its
accept variable and its leased blocks per group. The other variables (option values, spread
counts, a single-site offer's site) are left to :func:`complete`, which solves the model
with those decisions fixed (presolve settles it in a fraction of a second at 100k GPUs).
A placement the model cannot represent (a job outside every option) leaves that job's
options at 0; when the completed model is then infeasible there is no full hint.

The hint changes no bound: CP-SAT starts its search from it, and the model is unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from placer.model import Instance
from placer.solvers.decomposition import coarse as coarse_mod
from placer.solvers.decomposition.construct import State
from placer.solvers.decomposition.linmodel import LinModel


def _bracket(lm: LinModel, op: coarse_mod.Option) -> tuple[int, int] | None:
    """A training option's unit range [lo, hi], read from its binary's name
    (``b[...,{lo}-{hi}]``, :func:`coarse._training_option`); None for other kinds."""
    name = lm.names[op.b]
    tail = name.rsplit(",", 1)[-1].rstrip("]")
    lo, sep, hi = tail.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit():
        return None
    return int(lo), int(hi)


def _match(
    inst: Instance, co: coarse_mod.Coarse, j: int, g: np.ndarray, ops: list
) -> dict[int, float] | None:
    """Values of the decision variables of the option of job j that GPUs `g` realise (its
    binary at 1, its units), or None when none does."""
    ix = inst.index
    job = inst.jobs[j]
    lm = co.model
    if job.current:
        cur = ix.cached_indices(job.current)
        if len(cur) == len(g) and np.array_equal(np.sort(cur), np.sort(g)):
            for op in ops:
                if op.kind == "stay":
                    return {op.b: 1.0}
    units = len(g) // job.unit_size
    types = np.unique(ix.gpu_type[g])
    site_of = ix.dom[0][g]
    cells: dict[tuple[int, int], int] = {}
    for s, t in zip(site_of.tolist(), ix.gpu_type[g].tolist()):
        cells[(s, t)] = cells.get((s, t), 0) + 1
    sites = sorted({s for s, _ in cells})
    per_site = {s: sum(n for (ss, _), n in cells.items() if ss == s) for s in sites}

    k = max(1, len(ops[0].members)) if ops else 1  # a class's variables: k members' sums

    def fits(v: int, x: float) -> bool:
        return lm.lb[v] - 1e-9 <= x <= lm.ub[v] / k + 1e-9 and abs(x - round(x)) < 1e-9

    # the narrowest option first: one site, a set of sites, then a catch-all
    rank = {"site": 0, "inference": 0, "multi": 1, "split": 2, "any": 3, "mixed": 4}
    for op in sorted(ops, key=lambda op: rank.get(op.kind, 9)):
        if op.kind == "stay":
            continue
        if op.kind == "mixed":
            if not set(cells) <= set(op.parts):
                continue
            per = op.piece or job.unit_size * op.step
            vals = {v: cells.get(c, 0) / per for c, v in op.parts.items()}
        else:
            if len(types) != 1 or int(types[0]) != op.type or not set(sites) <= set(op.sites):
                continue
            if op.kind == "inference":
                vals = {v: per_site.get(s, 0) / job.unit_size for s, v in op.n.items()}
            elif op.pieces:
                if units % op.step:
                    continue
                vals = {v: per_site.get(s, 0) / op.piece for s, v in op.pieces.items()}
                if op.kind == "multi" and set(sites) != set(op.sites):
                    continue
                # its units variable, made right after its binary (coarse._training_option)
                u = op.b + 1
                if not lm.names[u].startswith("u["):
                    continue
                vals[u] = units / op.step
            else:
                if units % op.step:
                    continue
                if op.kind == "multi" and set(sites) != set(op.sites):
                    continue
                br = _bracket(lm, op)
                if br is not None and not br[0] <= units <= br[1]:
                    continue
                vals = {v: per_site.get(s, 0) / (job.unit_size * op.step) for s, v in op.n.items()}
        if all(fits(v, x) for v, x in vals.items()):
            return {op.b: 1.0, **vals}
    return None


def plan_of_state(inst: Instance, co: coarse_mod.Coarse, st: State) -> tuple[dict[int, float], int]:
    """The decision variables' values that state `st` realises (every option variable, the
    offers' accept and lease counts), and how many placed jobs no option represents."""
    lm = co.model
    by_job: dict[int, list] = {}
    for op in co.options:
        by_job.setdefault(op.job, []).append(op)
    fixed: dict[int, float] = {}
    missed = 0
    for j, ops in by_job.items():
        for op in ops:
            fixed[op.b] = 0.0
            for v in [*op.n.values(), *op.parts.values(), *op.pieces.values()]:
                fixed[v] = 0.0
        # a class of identical jobs (coarse.AGGREGATE): its options' variables hold sums
        # over its members, each member's match added in
        for m in ops[0].members or (j,):
            g = st.job_gpus[m]
            if len(g) == 0:
                continue
            got = _match(inst, co, m, g, ops)
            if got is None:
                missed += 1
                continue
            for v, x in got.items():
                fixed[v] = fixed.get(v, 0.0) + x
    for o, a in co.offer_vars.items():
        blocks = st.offer_blocks[o]
        fixed[a] = 1.0 if blocks else 0.0
        for (oo, gi), y in co.lease_vars.items():
            if oo != o:
                continue
            grp = co.groups[gi]
            members = set(grp["members"])
            fixed[y] = float(sum(1 for lv, d in blocks if lv == grp["level"] and d in members))
    for v, x in fixed.items():  # (a value the model cannot take is no decision to fix)
        if not lm.lb[v] - 1e-9 <= x <= lm.ub[v] + 1e-9:
            fixed[v] = min(max(x, lm.lb[v]), lm.ub[v])
    return fixed, missed


def fixed_model(lm: LinModel, fixed: dict[int, float]) -> LinModel:
    """`lm` with the variables of `fixed` held at their values (a copy)."""
    lb, ub = list(lm.lb), list(lm.ub)
    for v, x in fixed.items():
        lb[v] = ub[v] = float(round(x))
    return replace(lm, lb=lb, ub=ub)


def complete(
    inst: Instance,
    co: coarse_mod.Coarse,
    st: State,
    solve,
) -> tuple[list[float] | None, dict]:
    """A full point of the coarse model for state `st`: its decisions
    (:func:`plan_of_state`) fixed and the model solved by `solve` (a function of a LinModel
    returning a :class:`~.pipeline.CoarseSolution`), which sets the other variables at their
    best. None when that fixed model has no solution (the state is not a point of the
    model, or the solve ran out of its limit); stats say which."""
    fixed, missed = plan_of_state(inst, co, st)
    sol = solve(fixed_model(co.model, fixed))
    info: dict = {"missed_jobs": missed, "native": sol.native}
    if sol.values is None:
        return None, info
    info["coarse_value"] = round(float(co.model.value(sol.values)), 1)
    return sol.values, info
