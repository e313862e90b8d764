"""Keep or lease: the value of accepting each lease offer, with proven intervals, and the
parameters at which the answer flips (``placer decide``, :func:`decide`).

Algorithm overview
1. For each offer (or the one named), build two copies of the instance: the offer forced
   accepted (SPEC v2 ``force: accept``; the solver chooses its blocks) and forced declined.
   Other offers keep their own ``force``. Each copy is solved by the same backend, seed and
   limits (the two solves are independent: they run in parallel on the engine).
2. The worth of accepting is ``accept.objective - decline.objective``. Each side's proven
   bound gives a proven interval: ``[accept.objective - decline.bound,
   accept.bound - decline.objective]`` (every feasible placement of a side lies between its
   objective and its bound). The decision is the better side.
3. The break-even price. With the accepted plan fixed, its value is linear in the price:
   ``A(p) = A.objective + H (p - p0) G`` (H the horizon, p0 the offer's price, G its leased
   GPUs), so accepting pays from ``p* = p0 + (D.objective - A.objective) / (H G)``. Proven
   interval: the best accepted placement at price p is at least ``A(p)`` and at most
   ``A.bound + H (p - p0) g`` with g its leased GPUs, g at least the fewest GPUs a nonempty
   set of its blocks within [min_gpus, max_gpus] holds below p0 (an accepted offer lists a
   block), at most the most such a set holds above; the declined side is unchanged by p.
   So accepting surely pays once ``A(p) >= D.bound`` and surely does not while the upper
   line is below ``D.objective``.
4. Sweeps scale one parameter of the instance by factors LO..HI (geometric spacing), solve
   both sides at each point, and where the decision flips between two points bisect the
   factor (geometric midpoint) until ``hi / lo <= 1 + tolerance``; the flip is reported as
   ``break_even: {factor, interval}``. Neighbour polish: the swept parameters change costs,
   not rules, so each point's side also tries its neighbours' placements (re-scored and
   checked under its own parameters) and keeps the best, repeatedly; a good plan found at
   one factor is not lost at the next to a time-limited solve's variance.

Imports the model, the loader and the API; the Ray engine imports ray only when chosen.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from placer.api import _instance_arg, load_instance, solve
from placer.errors import ArgumentTypeError, InstanceError, SolverError, UsageError
from placer.kernel.blocks import eligible_blocks, leased_gpu_range
from placer.model import Instance, Status
from placer.solvers.base import finalize

SWEEP_PARAMS = (
    "wan.latency",
    "wan.bandwidth",
    "wan.failures",
    "price",
    "node_failures",
    "jobs.NAME.cross_site_every",
)
ENGINES = ("local", "ray")


# ----------------------------------------------------------------------------- results
@dataclass
class Side:
    """One forced solve: its objective and proven bound (None: no placement / no bound)."""

    objective: float | None
    bound: float | None
    status: str
    seconds: float
    gpus: int = 0  # leased GPUs of the offer (accept side)
    reason: str | None = None
    plans: dict[str, str] = field(default_factory=dict)  # SPEC v3: job -> the plan it runs


@dataclass
class OfferDecision:
    """Keep or lease one offer: both sides, the worth of accepting and the break-even price,
    each with its proven interval."""

    offer: str
    decision: str  # accept | decline
    accept: Side
    decline: Side
    worth: float | None
    worth_interval: list[float | None]
    break_even_price: float | None
    break_even_interval: list[float | None]
    price: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "offer": self.offer,
            "decision": self.decision,
            "accept": {
                "objective": self.accept.objective,
                "bound": self.accept.bound,
                "gpus": self.accept.gpus,
                "status": self.accept.status,
                "plans": self.accept.plans,
            },
            "decline": {
                "objective": self.decline.objective,
                "bound": self.decline.bound,
                "status": self.decline.status,
                "plans": self.decline.plans,
            },
            "worth": self.worth,
            "worth_interval": self.worth_interval,
            "break_even_price": self.break_even_price,
            "break_even_interval": self.break_even_interval,
            "price": self.price,
        }


@dataclass
class SweepPoint:
    factor: float
    accept: float | None
    decline: float | None
    worth: float | None
    decision: str
    # neighbour polish: the factor whose placement (re-scored here) a side took, else None
    accept_plan_from: float | None = None
    decline_plan_from: float | None = None
    # SPEC v3: each side's plan per job that has plans (job -> plan)
    accept_plans: dict[str, str] = field(default_factory=dict)
    decline_plans: dict[str, str] = field(default_factory=dict)


@dataclass
class SweepResult:
    """One parameter's sweep for one offer, and the flip of the decision if any."""

    param: str
    offer: str
    points: list[SweepPoint]
    break_even: dict[str, Any] | None
    tolerance: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "offer": self.offer,
            "points": [asdict(p) for p in self.points],
            "break_even": self.break_even,
            "tolerance": self.tolerance,
        }


@dataclass
class DecideResult:
    """What :func:`decide` returns; ``to_dict()`` is the JSON of ``placer decide --json``."""

    offers: list[OfferDecision]
    sweeps: list[SweepResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "offers": [o.to_dict() for o in self.offers],
            "sweeps": [s.to_dict() for s in self.sweeps],
        }


# ----------------------------------------------------------------------------- sweeps
@dataclass(frozen=True)
class Sweep:
    """``PARAM=LO:HI[:N]``: scale PARAM by N factors from LO to HI (geometric spacing)."""

    param: str
    lo: float
    hi: float
    n: int = 5

    @classmethod
    def parse(cls, text: str, where: str = "sweep") -> Sweep:
        """``"PARAM=LO:HI[:N]"`` -> a checked Sweep; errors name `where` (``sweeps[1]``,
        ``--sweep``)."""
        if not isinstance(text, str):
            raise ArgumentTypeError(
                f"{where}: expected a 'PARAM=LO:HI[:N]' string, got {type(text).__name__}"
            )
        name, sep, rng = text.partition("=")
        parts = rng.split(":")
        if not sep or len(parts) not in (2, 3):
            raise UsageError(f"{where}: {text!r}: expected PARAM=LO:HI[:N]")
        try:
            lo, hi = float(parts[0]), float(parts[1])
            n = int(parts[2]) if len(parts) == 3 else 5
        except ValueError:
            raise UsageError(
                f"{where}: {text!r}: LO and HI must be numbers, N an integer"
            ) from None
        return cls(name, lo, hi, n).checked(where)

    def checked(self, where: str = "sweep") -> Sweep:
        for k in ("lo", "hi", "n"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int if k == "n" else int | float):
                raise ArgumentTypeError(
                    f"{where}: {k}: expected {'an integer' if k == 'n' else 'a number'}, "
                    f"got {type(v).__name__}"
                )
        if not isinstance(self.param, str):
            raise ArgumentTypeError(
                f"{where}: param: expected a string, got {type(self.param).__name__}"
            )
        ok = self.param in SWEEP_PARAMS[:-1] or (
            self.param.startswith("jobs.") and self.param.endswith(".cross_site_every")
        )
        if not ok:
            raise UsageError(
                f"{where}: {self.param!r}: unknown parameter; valid: {', '.join(SWEEP_PARAMS)}"
            )
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)) or not 0 < self.lo < self.hi:
            raise UsageError(f"{where}: {self.param}: need 0 < LO < HI, got {self.lo}:{self.hi}")
        if not 2 <= self.n <= 200:
            raise UsageError(f"{where}: {self.param}: N must be in 2..200, got {self.n}")
        return self

    @property
    def job(self) -> str | None:
        """The job a ``jobs.NAME.cross_site_every`` sweep scales (None for other params)."""
        if self.param.startswith("jobs."):
            return self.param[len("jobs.") : -len(".cross_site_every")]
        return None

    def factors(self) -> list[float]:
        r = (self.hi / self.lo) ** (1.0 / (self.n - 1))
        return [self.lo * r**i for i in range(self.n)]


def sweeps_arg(sweeps: Any, instance: Instance, flag: str | None = None) -> list[Sweep]:
    """`decide`'s `sweeps` argument as checked Sweeps, before any solve runs.

    One ``"PARAM=LO:HI[:N]"`` string or :class:`Sweep`, or an iterable of them (None: no
    sweep). Anything else raises :class:`ArgumentTypeError` naming ``sweeps`` (``sweeps[2]``
    for an item); a bad sweep or a ``jobs.NAME`` naming no job of the instance raises
    :class:`UsageError` naming it. `flag` names the CLI option instead (``--sweep``).
    """
    if sweeps is None:
        return []
    if isinstance(sweeps, str | Sweep):
        sweeps = [sweeps]
    elif isinstance(sweeps, bytes | dict) or not isinstance(sweeps, Iterable):
        raise ArgumentTypeError(
            f"{flag or 'sweeps'}: expected a 'PARAM=LO:HI[:N]' string, a Sweep or a list of "
            f"them, got {type(sweeps).__name__}"
        )
    names = {j.name for j in instance.jobs}
    out = []
    for i, s in enumerate(sweeps):
        where = flag or f"sweeps[{i}]"
        if isinstance(s, Sweep):
            s = s.checked(where)
        elif isinstance(s, str):
            s = Sweep.parse(s, where)
        else:
            raise ArgumentTypeError(
                f"{where}: expected a 'PARAM=LO:HI[:N]' string or a Sweep, got {type(s).__name__}"
            )
        if s.job is not None and s.job not in names:
            near = difflib.get_close_matches(s.job, sorted(names), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise UsageError(f"{where}: {s.param}: no job named {s.job!r} in the instance{hint}")
        out.append(s)
    return out


def scaled(data: dict, param: str, factor: float, offer: str | None = None) -> dict:
    """A copy of an instance dict with `param` scaled by `factor` (see :data:`SWEEP_PARAMS`)."""
    d = copy.deepcopy(data)
    topo = d["topology"]
    if param.startswith("wan."):
        key = {"latency": "latency_us", "bandwidth": "bandwidth_GBps", "failures": None}[param[4:]]
        for link in topo.get("wan") or []:
            if key is None:
                link["failures_per_day"] = float(link.get("failures_per_day", 0.0)) * factor
            else:
                link[key] = float(link[key]) * factor
    elif param == "node_failures":
        for s in topo["sites"]:
            s["node_failures_per_day"] = float(s.get("node_failures_per_day", 0.0)) * factor
    elif param == "price":
        for o in (d.get("leases") or {}).get("offers", []):
            if offer is None or o["name"] == offer:
                o["price_per_gpu_hour"] = float(o["price_per_gpu_hour"]) * factor
    elif param.startswith("jobs."):
        name = param[len("jobs.") : -len(".cross_site_every")]  # checked by sweeps_arg
        jobs = [j for j in d["jobs"] if j.get("name") == name]
        if not jobs:
            raise UsageError(f"sweep {param}: no job named {name!r}")
        for j in jobs:
            j["cross_site_every"] = max(1.0, float(j.get("cross_site_every", 1.0)) * factor)
            for p in j.get("plans") or []:  # SPEC v3: a plan's own value, scaled alike
                if "cross_site_every" in p:
                    p["cross_site_every"] = max(1.0, float(p["cross_site_every"]) * factor)
    return d


# ----------------------------------------------------------------------------- one side
def _forced(data: dict, offer: str, force: str) -> dict:
    d = copy.deepcopy(data)
    for o in (d.get("leases") or {}).get("offers", []):
        if o["name"] == offer:
            o["force"] = force
    return d


def solve_side(
    data: dict,
    offer: str,
    force: str,
    solver: str,
    time_limit,
    seed: int,
    options: dict,
    keep_plan: bool = False,
) -> dict:
    """Solve the instance dict with `offer` forced `accept` or `decline` (a task of the
    engines: plain data in and out, so that it runs in another process or on Ray). With
    `keep_plan`, the placement comes back too, compactly: each job's GPU indices (int32)
    and each offer's blocks as (level, domain) pairs."""
    d = _forced(data, offer, force)
    t0 = time.perf_counter()
    try:
        inst = load_instance(d)
    except InstanceError as e:
        # e.g. a forced acceptance that no set of blocks meets: that side has no placement
        return {
            "objective": None,
            "bound": None,
            "status": str(Status.INFEASIBLE),
            "seconds": time.perf_counter() - t0,
            "gpus": 0,
            "reason": str(e).splitlines()[0],
        }
    res = solve(inst, solver=solver, time_limit=time_limit, seed=seed, threads=1, **options)
    gpus = 0
    if res.score is not None:
        gpus = next((o["gpus"] for o in res.score.offers if o["offer"] == offer), 0)
    out = {
        "objective": res.objective,
        "bound": res.bound,
        "status": str(res.status),
        "seconds": res.seconds,
        "gpus": int(gpus),
        "reason": res.reason,
        "plans": {pj.name: pj.plan for pj in res.placement.jobs if pj.units and pj.plan},
    }
    if keep_plan and res.objective is not None:
        out["plan"] = _compact(inst, res.placement)
    return out


def _compact(inst: Instance, placement) -> dict:
    """A placement as arrays: each job's GPU indices (int32) and plan (SPEC v3, an index
    into its plans), each offer's blocks."""
    ix = inst.index
    by_name = {pj.name: pj for pj in placement.jobs}
    jobs, plans = [], []
    for job in inst.jobs:
        pj = by_name.get(job.name)
        g = ix.cached_indices(pj.gpus) if pj is not None and pj.gpus else []
        jobs.append(np.asarray(g, np.int32))
        plans.append(job.plan_index(pj.plan) if pj is not None and len(g) else None)
    grants = {lg.offer: lg.blocks for lg in placement.leases}
    blocks = [[ix.resolve(b) for b in grants.get(o.name, [])] for o in inst.offers]
    return {"jobs": jobs, "blocks": blocks, "plans": plans}


def _plan_names(inst: Instance, plan: dict) -> dict[str, str]:
    """job -> plan name of a compact placement's placed jobs that have plans."""
    return {
        job.name: job.plans[k].name
        for job, g, k in zip(inst.jobs, plan["jobs"], plan["plans"])
        if len(g) and k is not None and job.plans
    }


def _rescore(inst: Instance, plan: dict) -> float | None:
    """The objective of another sweep point's placement on this point's (forced) instance,
    checked (None if it breaks a rule here, e.g. a latency bound that a latency factor
    tightened)."""
    try:
        res = finalize(
            inst,
            "neighbour",
            list(plan["jobs"]),
            plan["blocks"],
            {},
            None,
            0.0,
            job_plans=plan["plans"],
        )
    except SolverError:
        return None
    return res.objective


# ----------------------------------------------------------------------------- engines
class _Engine:
    """Runs independent solve tasks; results in the order given."""

    def __init__(self, engine: str, jobs: int | None) -> None:
        if engine not in ENGINES:
            raise UsageError(f"engine: {engine!r} is not one of {', '.join(ENGINES)}")
        self.engine = engine
        self.jobs = jobs or max(1, min(4, os.cpu_count() or 1))
        self._pool = None
        self._ray = None

    def __enter__(self) -> _Engine:
        if self.engine == "ray":
            try:
                import ray
            except ImportError:
                raise UsageError("engine 'ray' needs Ray: pip install 'placer[ray]'") from None
            if not ray.is_initialized():
                address = os.environ.get("RAY_ADDRESS")
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.jobs, log_to_driver=False, include_dashboard=False)
            self._ray = ray
            self._remote = ray.remote(num_cpus=1)(solve_side)
        elif self.jobs > 1:
            self._pool = ProcessPoolExecutor(max_workers=self.jobs)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def run(self, tasks: list[tuple], progress: Callable[[int], None] | None = None) -> list:
        if not tasks:
            return []
        if self._ray is not None:
            refs = [self._remote.remote(*t) for t in tasks]
            out: list = [None] * len(refs)
            pending = {r: i for i, r in enumerate(refs)}
            while pending:
                done, _ = self._ray.wait(list(pending), num_returns=1)
                for r in done:
                    out[pending.pop(r)] = self._ray.get(r)
                    if progress:
                        progress(1)
            return out
        if self._pool is not None:
            futs = [self._pool.submit(solve_side, *t) for t in tasks]
            out = []
            for f in futs:
                out.append(f.result())
                if progress:
                    progress(1)
            return out
        out = []
        for t in tasks:
            out.append(solve_side(*t))
            if progress:
                progress(1)
        return out


# ----------------------------------------------------------------------------- arithmetic
def _side(r: dict) -> Side:
    return Side(
        r["objective"],
        r["bound"],
        r["status"],
        r["seconds"],
        r["gpus"],
        r["reason"],
        r.get("plans") or {},
    )


def _gpu_range(inst: Instance, offer) -> tuple[int, int]:
    """The fewest and most GPUs the accepted offer can lease: nonempty sets of its blocks
    within [min_gpus, max_gpus] (an accepted offer lists at least one block, SPEC 1.3)."""
    r = leased_gpu_range(inst, inst.index, offer)
    if r is not None:
        return r
    _, _, avail = eligible_blocks(inst, inst.index, offer)
    total = int(avail.sum())
    return offer.min_gpus, total if offer.max_gpus is None else min(total, offer.max_gpus)


def _decision(inst: Instance, name: str, acc: Side, dec: Side) -> OfferDecision:
    offer = next(o for o in inst.offers if o.name == name)
    p0, H = offer.price_per_gpu_hour, inst.horizon_hours
    A, Ab = acc.objective, acc.bound
    D, Db = dec.objective, dec.bound
    if A is None or D is None:
        decision = "accept" if D is None and A is not None else "decline"
        return OfferDecision(name, decision, acc, dec, None, [None, None], None, [None, None], p0)
    Ab = A if Ab is None else Ab  # a heuristic side: its objective is all that is known
    Db = D if Db is None else Db
    worth = A - D
    interval = [A - Db, Ab - D]
    G = acc.gpus
    be = be_lo = be_hi = None
    if G > 0:
        be = max(0.0, p0 + (D - A) / (H * G))
        # surely pays once A + H (p - p0) G >= D.bound
        be_hi = max(0.0, p0 + (Db - A) / (H * G))
        # surely does not while A.bound + H (p - p0) g < D.objective
        need = D - Ab
        gmin, gmax = _gpu_range(inst, offer)
        if need <= 0:  # below p0: g >= the fewest GPUs a nonempty set of its blocks holds
            be_lo = 0.0 if gmin <= 0 else max(0.0, p0 + need / (H * gmin))
        else:  # above p0: g <= the most GPUs its blocks hold
            be_lo = p0 + need / (H * gmax) if gmax > 0 else None
    return OfferDecision(
        name,
        "accept" if worth > 0 else "decline",
        acc,
        dec,
        worth,
        interval,
        be,
        [be_lo, be_hi],
        p0,
    )


# ----------------------------------------------------------------------------- decide
def decide(
    instance: Instance,
    offer: str | None = None,
    sweeps: Iterable[Sweep | str] | Sweep | str | None = (),
    engine: str = "local",
    jobs: int | None = None,
    time_limit: float | None = 60.0,
    seed: int = 0,
    solver: str = "cpsat",
    tolerance: float = 0.05,
    progress: Callable[[str, int, int], None] | None = None,
    **options: Any,
) -> DecideResult:
    """Keep or lease each offer (or the one named): see the module overview.

    Parameters
    ----------
    instance : a loaded :class:`Instance`.
    offer : an offer's name; None = every offer.
    sweeps : one ``"PARAM=LO:HI[:N]"`` string or :class:`Sweep`, or a list of them; all are
        checked (and ``jobs.NAME`` looked up) before any solve runs.
    engine : ``local`` (a process pool of `jobs` workers) or ``ray`` (``RAY_ADDRESS``, or a
        local Ray started with `jobs` CPUs).
    time_limit, seed, solver, options : passed to every solve (one thread each).
    tolerance : bisection stops when ``hi / lo <= 1 + tolerance``.
    progress : called with (stage, done, total).
    """

    instance = _instance_arg(instance)
    names = [o.name for o in instance.offers]
    if offer is not None and offer not in names:
        raise UsageError(f"offer: no offer named {offer!r}; offers: {', '.join(names) or 'none'}")
    if not names:
        raise UsageError("the instance has no lease offer to decide on")
    chosen = [offer] if offer is not None else names
    sw = sweeps_arg(sweeps, instance)
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 10):
        raise UsageError(f"tolerance: must be in (0, 10), got {tolerance!r}")
    data = instance.model_dump(mode="json", exclude_none=True)
    # a forced side must not inherit the other offers' state: each keeps its own `force`
    total = 2 * len(chosen) * (1 + sum(s.n for s in sw))
    done = [0]

    def tick(k: int = 1, stage: str = "solving") -> None:
        done[0] += k
        if progress:
            progress(stage, done[0], total)

    def pair_tasks(d: dict, name: str, keep: bool = False) -> list[tuple]:
        return [
            (d, name, f, solver, time_limit, seed, dict(options), keep)
            for f in ("accept", "decline")
        ]

    result = DecideResult([])
    with _Engine(engine, jobs) as eng:
        tasks = [t for name in chosen for t in pair_tasks(data, name)]
        out = eng.run(tasks, tick)
        for i, name in enumerate(chosen):
            result.offers.append(
                _decision(instance, name, _side(out[2 * i]), _side(out[2 * i + 1]))
            )
        for s in sw:
            for name in chosen:
                result.sweeps.append(
                    _sweep(eng, data, instance, name, s, pair_tasks, tolerance, tick)
                )
    return result


def _point(inst_data: dict, name: str, factor: float, pair: list[dict]) -> SweepPoint:
    a, d = pair[0]["objective"], pair[1]["objective"]
    worth = None if a is None or d is None else a - d
    decision = (
        "accept"
        if (worth is not None and worth > 0) or (d is None and a is not None)
        else "decline"
    )
    return SweepPoint(
        factor,
        a,
        d,
        worth,
        decision,
        pair[0].get("plan_from"),
        pair[1].get("plan_from"),
        pair[0].get("plans") or {},
        pair[1].get("plans") or {},
    )


def _polish(data, param, name, solved: dict[float, list[dict]], factors, tick=None) -> None:
    """Neighbour polish: the parameters a sweep scales change costs, not the rules, so a
    placement found at one factor is (checked to be) valid at its neighbours. Each point's
    side takes its neighbours' placement, re-scored under its own parameters, when that
    scores higher; repeated until nothing changes, so a good plan travels along the sweep.
    The bounds are each point's own."""
    fs = sorted(factors)
    tried: set[tuple[float, int, float]] = set()  # (factor, side, where the plan was found)
    changed = True
    while changed:
        changed = False
        for i, f in enumerate(fs):
            for side, force in enumerate(("accept", "decline")):
                mine = solved[f][side]
                inst = None  # this point's forced instance, loaded once for both neighbours
                for j in (i - 1, i + 1):
                    if not 0 <= j < len(fs):
                        continue
                    other = solved[fs[j]][side]
                    plan, origin = other.get("plan"), other.get("plan_from", fs[j])
                    if plan is None or plan is mine.get("plan") or (f, side, origin) in tried:
                        continue
                    tried.add((f, side, origin))
                    if inst is None:
                        try:
                            inst = load_instance(_forced(scaled(data, param, f, name), name, force))
                        except InstanceError:
                            break
                    v = _rescore(inst, plan)
                    if tick:
                        tick(0, "polishing")
                    best = mine["objective"]
                    if v is not None and (best is None or v > best + 1e-9 * max(1.0, abs(v))):
                        mine.update(
                            objective=v,
                            plan=plan,
                            plan_from=origin,
                            plans=_plan_names(inst, plan),
                        )
                        changed = True


def _sweep(eng, data, instance, name, s: Sweep, pair_tasks, tolerance, tick) -> SweepResult:
    factors = s.factors()
    tasks = [
        t for f in factors for t in pair_tasks(scaled(data, s.param, f, name), name, keep=True)
    ]
    out = eng.run(tasks, tick)
    solved = {f: out[2 * i : 2 * i + 2] for i, f in enumerate(factors)}
    _polish(data, s.param, name, solved, factors, tick)
    points = [_point(data, name, f, solved[f]) for f in factors]
    flip = next(
        (i for i in range(len(points) - 1) if points[i].decision != points[i + 1].decision), None
    )
    be = None
    if flip is not None:
        lo, hi = points[flip], points[flip + 1]
        while hi.factor / lo.factor > 1 + tolerance:
            mid = math.sqrt(lo.factor * hi.factor)
            solved[mid] = eng.run(
                pair_tasks(scaled(data, s.param, mid, name), name, keep=True), None
            )
            _polish(data, s.param, name, solved, [lo.factor, mid, hi.factor])
            p = _point(data, name, mid, solved[mid])
            points.append(p)
            if p.decision == lo.decision:
                lo = p
            else:
                hi = p
        be = {
            "factor": math.sqrt(lo.factor * hi.factor),
            "interval": [lo.factor, hi.factor],
            "from": lo.decision,
            "to": hi.decision,
        }
    points.sort(key=lambda p: p.factor)
    return SweepResult(s.param, name, points, be, tolerance)


def plot(result: DecideResult, directory: str) -> list[str]:
    """One PNG per sweep in `directory`: both sides' objectives against the factor, with the
    break-even line. Needs matplotlib (``pip install 'placer[plot]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'placer[plot]'") from None
    os.makedirs(directory, exist_ok=True)
    paths = []
    for s in result.sweeps:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        xs = [p.factor for p in s.points]
        ax.plot(xs, [p.accept for p in s.points], "o-", label=f"accept {s.offer}")
        ax.plot(xs, [p.decline for p in s.points], "s--", label="decline")
        if s.break_even:
            ax.axvline(s.break_even["factor"], color="grey", lw=1)
            ax.text(
                s.break_even["factor"],
                ax.get_ylim()[1],
                f" x{s.break_even['factor']:.3g}",
                va="top",
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"{s.param} (factor)")
        ax.set_ylabel("objective (vu)")
        ax.set_title(f"keep or lease {s.offer}: {s.param}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, f"sweep-{s.offer}-{s.param.replace('.', '_')}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
