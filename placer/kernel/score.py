"""Scoring placements with the kernel: full scores, batch scores of one job's candidates,
and score changes from moving or swapping units (SPEC 4, with SPEC 6's readings).

A placement here is *compiled*: ``job_gpus[j]`` is an int64 array of GPU indices in rank
order for instance job j (empty when it has 0 units), ``offer_blocks[o]`` a list of
``(level, domain id)`` blocks for offer o (empty when not accepted).

Imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from placer.kernel.compiled import jobs_under
from placer.kernel.cost import JobAnalysis, analyse_job, as_batch, job_times
from placer.model import Instance

DIM_KEYS = ("tp", "pp", "dp", "ep")


def _clean(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class JobScore:
    """Per-candidate figures of one job (arrays of shape (C,))."""

    T: dict[str, np.ndarray]
    step_ms: np.ndarray
    efficiency: np.ndarray
    lam: np.ndarray
    lost: np.ndarray
    goodput: np.ndarray
    value: np.ndarray
    moved: np.ndarray
    migration: np.ndarray
    speed: np.ndarray | None = None  # the job's speed per candidate (v2: mixed types)


def bubble(job) -> float:
    """The 1F1B pipeline bubble factor (SPEC 4, v3): c_step = c * (m + pp - 1) / m for a
    training job with `microbatches` m and pp > 1, else 1."""
    m = job.microbatches
    if job.kind != "training" or m is None or job.pp <= 1:
        return 1.0
    return (m + job.pp - 1) / m


def job_hours(inst: Instance, job) -> float:
    h = inst.horizon_hours
    return min(job.remaining_hours, h) if job.remaining_hours is not None else h


def job_speed(index, job, gpus: np.ndarray) -> np.ndarray:
    """The job's speed per candidate (SPEC 4), float64 (C,) for ``gpus`` int (C, n): its
    type's speed; with v2 `mix_types`, the slowest of its GPUs' types (``slowest``: a
    synchronous step waits for the slowest replica) or their GPU-weighted mean
    (``balanced``: each replica's share of the batch proportional to its speed)."""
    if job.mix_types == "slowest":
        return index.type_speed[index.gpu_type[gpus]].min(axis=1)
    if job.mix_types == "balanced":
        return index.type_speed[index.gpu_type[gpus]].mean(axis=1)
    return index.type_speed[index.gpu_type[gpus[:, 0]]]


def evaluate_job(
    inst: Instance, index, job, gpus: np.ndarray, ana: JobAnalysis, shared_bw: np.ndarray
) -> JobScore:
    """Figures of a job for C candidate GPU arrays ``gpus`` int (C, n) with n > 0."""
    C, n = gpus.shape
    T = job_times(job, ana, shared_bw)
    speed = job_speed(index, job, gpus)
    if job.compute_ms is not None:
        comp = job.compute_ms / speed
        # a group over sites with no WAN path has T = inf (rule 4): (1 - 1) * inf is nan,
        # and either way the step is not finite and the efficiency 0
        with np.errstate(invalid="ignore", divide="ignore"):
            comm = sum((1.0 - getattr(job.overlap, d)) * T[d] for d in DIM_KEYS)
            step = comp * bubble(job) + comm
            eff = np.where(np.isfinite(step), comp / step, 0.0)
    else:  # inference without compute time
        step = np.full(C, np.nan)
        eff = np.ones(C)
    nodes = np.sort(index.gpu_node[gpus], axis=1)
    first = np.ones_like(nodes, bool)
    first[:, 1:] = nodes[:, 1:] != nodes[:, :-1]
    node_site = index.dom[0][index.first_gpu[-1][nodes]]
    fail = (index.node_fail_per_day[node_site] * first).sum(axis=1)
    if ana.links.shape[1]:
        fail = fail + ana.links.astype(float) @ index.link_fail_per_day
    lam = fail / 24.0
    if job.kind == "training":
        lost = np.minimum(1.0, lam * (job.restart_min + job.checkpoint_interval_min / 2) / 60.0)
    else:
        lost = np.zeros(C)
    goodput = eff * (1.0 - lost)
    value = job_hours(inst, job) * job.value * speed * n * goodput
    moved = np.zeros(C, bool)
    if job.plan_changed:  # v3: a running job under another plan than its current_plan
        moved[:] = True
    elif job.current:
        cur = np.sort(index.cached_indices(job.current))
        if len(cur) != n:
            moved[:] = True
        else:
            moved = (np.sort(gpus, axis=1) != cur[None, :]).any(axis=1)
    migration = np.where(moved, job.migration_cost, 0.0)
    return JobScore(T, step, eff, lam, lost, goodput, value, moved, migration, speed)


def zero_job(job) -> JobScore:
    z = np.zeros(1)
    moved = np.array([bool(job.current)])
    return JobScore(
        {d: z for d in DIM_KEYS},
        np.full(1, np.nan),
        np.full(1, np.nan),
        z,
        z,
        z,
        z,
        moved,
        np.where(moved, job.migration_cost, 0.0),
    )


def offer_gpus(index, blocks: list[tuple[int, int]]) -> int:
    """Available GPUs in the union of blocks."""
    if not blocks:
        return 0
    mask = np.zeros(index.n_gpus, bool)
    for level, d in blocks:
        a, b = index.gpu_range(level, d)
        mask[a:b] = True
    return int((mask & index.available).sum())


@dataclass
class Score:
    """A placement's score: objective and the SPEC 2.1 breakdown."""

    objective: float
    jobs: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    totals: dict[str, Any]
    job_scores: list[JobScore] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The exact form of SPEC 2.1."""
        return {
            "objective": self.objective,
            "jobs": self.jobs,
            "offers": self.offers,
            "totals": self.totals,
        }


class Scorer:
    """Kernel state over one compiled placement, for full, batch and delta scoring.

    Examples
    --------
    >>> s = Scorer(inst, job_gpus, offer_blocks)  # doctest: +SKIP
    >>> s.objective, s.delta({3: new_gpus_of_job_3})  # doctest: +SKIP
    """

    def __init__(
        self,
        inst: Instance,
        job_gpus: list[np.ndarray],
        offer_blocks: list[list[tuple[int, int]]] | None = None,
        job_plans: list[int | None] | None = None,
    ) -> None:
        self.inst = inst
        self.index = index = inst.index
        # v3: each job under its chosen plan (index into its `plans`; None: its default)
        self.plans: list[int | None] = [
            job_plans[j] if job_plans is not None and j < len(job_plans) else None
            for j in range(len(inst.jobs))
        ]
        self.jobs = jobs_under(inst, self.plans)
        self.job_gpus = [np.asarray(g, np.int64) for g in job_gpus]
        self.offer_blocks = offer_blocks or [[] for _ in inst.offers]
        W = index.pair_links.shape[1]
        self.ana: list[JobAnalysis | None] = []
        self.users = np.zeros(W, np.int64)
        for job, g in zip(self.jobs, self.job_gpus):
            if len(g) == 0:
                self.ana.append(None)
                continue
            a = analyse_job(index, job, as_batch(g, job))
            self.ana.append(a)
            self.users += a.links[0]
        self.scores: list[JobScore] = [self._eval(j) for j in range(len(inst.jobs))]
        self._jobs_total: float | None = None  # sum of job values less migration, cached
        self.lease_revenue = [
            inst.horizon_hours * o.price_per_gpu_hour * offer_gpus(index, bl)
            for o, bl in zip(inst.offers, self.offer_blocks)
        ]

    def add_job(self) -> int:
        """Register the job just appended to ``inst.jobs``, with 0 units; returns its index.

        A stateful caller (:class:`placer.cluster.Cluster`) grows the job list this way and
        then places the job with :meth:`delta` (``commit=True``)."""
        job = self.inst.jobs[len(self.job_gpus)]
        self.plans.append(None)
        job = job.under(job.default_plan)
        self.jobs.append(job)
        self.job_gpus.append(np.zeros(0, np.int64))
        self.ana.append(None)
        self.scores.append(zero_job(job))
        self._jobs_total = None
        return len(self.job_gpus) - 1

    def remove_last_job(self) -> None:
        """Forget the last job (which must have 0 units): the inverse of :meth:`add_job`,
        for a caller that pops it from ``inst.jobs``."""
        if len(self.job_gpus[-1]):
            raise ValueError("remove_last_job: the last job still has GPUs")
        self.job_gpus.pop()
        self.plans.pop()
        self.jobs.pop()
        self.ana.pop()
        self.scores.pop()
        self._jobs_total = None

    def move_to_end(self, j: int) -> int:
        """Job j's figures moved to a new last index (for a caller that appends the same job
        to ``inst.jobs``), index j left holding nothing and scored so (a tombstone): no job
        is re-scored, since a job's score depends on its GPUs, plan and the WAN sharers
        (counted over all jobs), not on its index, and the objective is a sum over jobs.
        Returns the new index."""
        self.job_gpus.append(self.job_gpus[j])
        self.plans.append(self.plans[j])
        self.jobs.append(self.jobs[j])
        self.ana.append(self.ana[j])
        self.scores.append(self.scores[j])
        z = zero_job(self.jobs[j])
        self.job_gpus[j], self.ana[j], self.scores[j] = np.zeros(0, np.int64), None, z
        if self._jobs_total is not None:
            self._jobs_total += float(z.value[0]) - float(z.migration[0])
        return len(self.job_gpus) - 1

    def figures(self) -> tuple:
        """This scorer's per-job figures now (copies of the lists; the figures themselves
        are replaced, never written, on a change), for :meth:`restored`."""
        return (
            list(self.plans),
            list(self.jobs),
            list(self.ana),
            list(self.scores),
            self.users.copy(),
        )

    @classmethod
    def restored(
        cls,
        inst: Instance,
        job_gpus: list[np.ndarray],
        offer_blocks: list[list[tuple[int, int]]],
        figures: tuple,
    ) -> Scorer:
        """A scorer of `inst` holding `job_gpus` and `offer_blocks` from the
        :meth:`figures` of a scorer that held exactly those over the same jobs, plans and
        hardware: nothing is analysed or scored again (what makes a copy of a live
        cluster's state cheap: scoring every job of colossus takes 40 ms)."""
        s = cls.__new__(cls)
        s.inst = inst
        s.index = index = inst.index
        s.plans, s.jobs, s.ana, s.scores, s.users = (
            list(figures[0]),
            list(figures[1]),
            list(figures[2]),
            list(figures[3]),
            figures[4].copy(),
        )
        s.job_gpus = [np.asarray(g, np.int64) for g in job_gpus]
        s.offer_blocks = offer_blocks
        s._jobs_total = None
        s.lease_revenue = [
            inst.horizon_hours * o.price_per_gpu_hour * offer_gpus(index, bl)
            for o, bl in zip(inst.offers, offer_blocks)
        ]
        if not len(s.jobs) == len(s.job_gpus) == len(inst.jobs):
            raise ValueError("Scorer.restored: figures of another placement")
        return s

    def keep_jobs(self, keep: list[int]) -> None:
        """Keep only the jobs `keep` (in that order), for a caller that filters
        ``inst.jobs`` the same way; every job left out must hold no GPUs. No job is
        re-scored (the argument of :meth:`move_to_end`: a job's score does not depend on its
        index, and the jobs left out share no WAN link)."""
        kept = set(keep)
        if any(len(g) for j, g in enumerate(self.job_gpus) if j not in kept):
            raise ValueError("keep_jobs: a job left out still has GPUs")
        self.job_gpus = [self.job_gpus[j] for j in keep]
        self.plans = [self.plans[j] for j in keep]
        self.jobs = [self.jobs[j] for j in keep]
        self.ana = [self.ana[j] for j in keep]
        self.scores = [self.scores[j] for j in keep]
        self._jobs_total = None

    def shared_bw(self, users: np.ndarray | None = None) -> np.ndarray:
        u = self.users if users is None else users
        return self.index.link_bw_GBps / np.maximum(u, 1)

    def _eval(self, j: int, users: np.ndarray | None = None) -> JobScore:
        job = self.jobs[j]
        g = self.job_gpus[j]
        if len(g) == 0:
            return zero_job(job)
        return evaluate_job(
            self.inst, self.index, job, g[None, :], self.ana[j], self.shared_bw(users)
        )

    @property
    def objective(self) -> float:
        if self._jobs_total is None:
            self._jobs_total = sum(float(s.value[0]) - float(s.migration[0]) for s in self.scores)
        return self._jobs_total + float(sum(self.lease_revenue))

    # ---------------------------------------------------------------- batch
    def job_under(self, j: int, plan: int | None) -> Any:
        """Job j under its plan `plan` (v3; None: the plan it is scored under now)."""
        if plan is None:
            return self.jobs[j]
        return self.inst.jobs[j].under(plan)

    def batch_values(self, j: int, candidates: np.ndarray, plan: int | None = None) -> np.ndarray:
        """Net value (value - migration) of job j for each candidate GPU array.

        ``candidates`` int (C, units*tp*pp). WAN sharing counts the other jobs as placed
        now plus this job; the effect of the candidate on other jobs' sharing is left out
        (use :meth:`delta` for the exact change of one candidate). `plan` (v3): the
        candidates' plan (default: the job's plan now).
        """
        job = self.job_under(j, plan)
        cand = np.asarray(candidates, np.int64)
        if cand.shape[1] == 0:
            s = zero_job(job)
            return np.repeat(-s.migration, cand.shape[0])
        ana = analyse_job(self.index, job, as_batch(cand, job))
        own = self.ana[j].links[0] if self.ana[j] is not None else 0
        others = self.users - own
        # a link the candidate uses has the other jobs' users plus this one (exact for the
        # links it uses; the others do not enter its time)
        bw = self.index.link_bw_GBps / (others + 1)
        s = evaluate_job(self.inst, self.index, job, cand, ana, bw)
        return s.value - s.migration

    # ---------------------------------------------------------------- delta
    def delta(
        self,
        changes: dict[int, np.ndarray],
        commit: bool = False,
        plans: dict[int, int | None] | None = None,
        analyses: dict[int, JobAnalysis] | None = None,
    ) -> float:
        """Change in objective if jobs in `changes` got the given GPU arrays (moves, swaps).

        Only the changed jobs and the jobs sharing a WAN link whose sharer count changes
        are re-evaluated. With ``commit`` the change is applied. `plans` (v3): the plan of
        a changed job (index into its `plans`), where it changes. `analyses`: a changed
        job's :func:`~placer.kernel.cost.analyse_job` of its new GPUs (under its plan, over
        this topology), computed elsewhere (a service's solve worker: 40% of scoring).
        """
        new_ana = dict()
        users = self.users.copy()
        new_jobs = {}
        for j, g in changes.items():
            g = np.asarray(g, np.int64)
            old = self.ana[j]
            if old is not None:
                users -= old.links[0]
            job = self.jobs[j]
            if plans is not None and j in plans:
                k = plans[j]
                job = self.inst.jobs[j].under(self.inst.jobs[j].default_plan if k is None else k)
                new_jobs[j] = (k, job)
            a = analyses.get(j) if analyses is not None and len(g) else None
            if a is None and len(g):
                a = analyse_job(self.index, job, as_batch(g, job))
            new_ana[j] = (g, a)
            if a is not None:
                users += a.links[0]
        changed_links = users != self.users
        affected = set(changes)
        if changed_links.any():
            for j, a in enumerate(self.ana):
                if a is not None and (a.links[0] & changed_links).any():
                    affected.add(j)
        saved = {j: (self.job_gpus[j], self.ana[j]) for j in changes}
        saved_jobs = {j: (self.plans[j], self.jobs[j]) for j in new_jobs}
        for j, (g, a) in new_ana.items():
            self.job_gpus[j], self.ana[j] = g, a
        for j, (k, job) in new_jobs.items():
            self.plans[j], self.jobs[j] = k, job
        new_scores = {j: self._eval(j, users) for j in affected}
        d = sum(
            float(new_scores[j].value[0] - new_scores[j].migration[0])
            - float(self.scores[j].value[0] - self.scores[j].migration[0])
            for j in affected
        )
        if commit:
            self.users = users
            for j, s in new_scores.items():
                self.scores[j] = s
            if self._jobs_total is not None:
                self._jobs_total += d
        else:
            for j, (g, a) in saved.items():
                self.job_gpus[j], self.ana[j] = g, a
            for j, (k, job) in saved_jobs.items():
                self.plans[j], self.jobs[j] = k, job
        return d

    # ---------------------------------------------------------------- report
    def result(self) -> Score:
        inst = self.inst
        jobs = []
        tot_value = tot_mig = 0.0
        used = 0
        for job, g, s in zip(self.jobs, self.job_gpus, self.scores):
            n = len(g)
            units = n // job.unit_size
            row = {"name": job.name, "units": units, "gpus": n, "plan": job.plan if n else None}
            for d in DIM_KEYS:
                row[f"T_{d}_ms"] = _clean(s.T[d][0]) if n else 0.0
            if n == 0:
                row.update(
                    step_ms=None,
                    efficiency=None,
                    lambda_per_hour=0.0,
                    lost=0.0,
                    goodput=0.0,
                    value=0.0,
                )
            else:
                row.update(
                    step_ms=_clean(s.step_ms[0]),
                    efficiency=float(s.efficiency[0]),
                    lambda_per_hour=float(s.lam[0]),
                    lost=float(s.lost[0]),
                    goodput=float(s.goodput[0]),
                    value=float(s.value[0]),
                )
            row["moved"] = bool(s.moved[0])
            row["migration_cost"] = float(s.migration[0])
            row["speed"] = float(s.speed[0]) if n and s.speed is not None else None
            jobs.append(row)
            tot_value += row["value"]
            tot_mig += row["migration_cost"]
            used += n
        offers = []
        leased = 0
        for o, bl, rev in zip(inst.offers, self.offer_blocks, self.lease_revenue):
            gp = offer_gpus(self.index, bl)
            offers.append({"offer": o.name, "accepted": bool(bl), "gpus": gp, "revenue": rev})
            leased += gp
        lease = float(sum(self.lease_revenue))
        obj = tot_value + lease - tot_mig
        totals = {
            "job_value": tot_value,
            "lease_revenue": lease,
            "migration_cost": tot_mig,
            "objective": obj,
            "gpus_used": used,
            "gpus_leased": leased,
        }
        return Score(obj, jobs, offers, totals, list(self.scores))


def score_compiled(
    inst: Instance,
    job_gpus: list[np.ndarray],
    offer_blocks: list[list[tuple[int, int]]] | None = None,
    job_plans: list[int | None] | None = None,
) -> Score:
    """Score a compiled placement (SPEC 4); `job_plans` (v3) chooses each job's plan."""
    return Scorer(inst, job_gpus, offer_blocks, job_plans).result()
