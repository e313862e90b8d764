"""Re-planning: the instance a full solve starts from (:func:`replan_instance`), whether a
solve's result is worth adopting (:func:`verdict`), and adopting a plan made elsewhere from
an earlier state (:func:`read_plan`, then :func:`adopt`).

A plan is merged into the state that moved meanwhile: jobs it names take its GPUs and plans,
running jobs it does not name keep theirs, jobs released meanwhile are ignored, its leases
replace the live ones. The merged state must pass the checker against the live hardware,
keep every pinned job where it is and every non-preemptible job placed.

For a service that adopts a plan while other threads change the state, the same merge in
steps: :func:`prepare` merges it into a copy (a checkpoint) and checks it whole, away from
the live state; :func:`advance` and :func:`catch_up` bring the merged copy to a later state
by redoing only the jobs whose merged holding differs, verified against the whole merged
state as every live operation is. The result equals :func:`adopt` on the later state.

Imports the checker, the live state, documents, leases and results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from placer.check import check_compiled
from placer.errors import ConflictError, PlacementError, SolverError
from placer.live import leases
from placer.live.documents import job_dict, parse_pending, snapshot
from placer.live.results import ActionCause, Change, job_action, moved
from placer.live.state import EMPTY, Checkpoint, LiveState, under
from placer.live.verify import verify as verify_state
from placer.model import Job

__all__ = [
    "IndexedPlacement",
    "Plan",
    "Prepared",
    "adopt",
    "advance",
    "catch_up",
    "kept_reason",
    "named_document",
    "overlaps",
    "prepare",
    "read_plan",
    "replan_instance",
    "same_hardware",
    "verdict",
]


class Laps:
    """Seconds spent per named phase, each lap ending where the call names it: how a
    service profiles a replan's commit under its lock (``PLACER_SERVE_PROFILE=1``).
    ``Laps(False)`` records nothing (the default of every caller)."""

    def __init__(self, on: bool = True) -> None:
        self.on = on
        self.phases: dict[str, float] = {}
        self.t = time.perf_counter() if on else 0.0

    def __call__(self, name: str) -> None:
        if self.on:
            now = time.perf_counter()
            self.phases[name] = self.phases.get(name, 0.0) + now - self.t
            self.t = now

    def text(self) -> str:
        return ", ".join(f"{k} {1e3 * v:.1f}" for k, v in self.phases.items())


NO_LAPS = Laps(False)


def replan_instance(
    live: LiveState, pending: Any, ids: bool = True, jobs: list[Job] | None = None
) -> dict[str, Any]:
    """The snapshot's instance document (running jobs with `current`) plus the `pending`
    jobs; a name already running or given twice is a ConflictError at
    ``pending[i].name``. `ids` False: each `current` holds the GPUs' indices (an int64
    array, not JSON) for :func:`named_document` in another process: naming the 170,000
    busy GPUs of a loaded colossus takes 13 ms, and pickling the names 30 to 60 ms that
    hold every request thread of the service (the GIL); the indices pickle in about 1 ms.
    `jobs`: the `pending` jobs parsed already (:func:`parse_pending`; they depend on the
    instance only), kept by a caller that parses them once for the whole replan."""
    inst_d, _ = snapshot(live, ids)
    names = {j["name"] for j in inst_d["jobs"]}
    extra = []
    if jobs is None:
        jobs = list(parse_pending(live, pending))
    for i, m in enumerate(jobs):
        if m.name in names:
            raise ConflictError(f"pending[{i}].name: {m.name!r} is already running or pending")
        names.add(m.name)
        extra.append(job_dict(m))
    inst_d["jobs"] = inst_d["jobs"] + extra
    return inst_d


def named_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A :func:`replan_instance` document taken with ``ids=False`` with each `current` named
    again (GPU ids), from the document's own topology: the document that ``ids=True``
    gives."""
    jobs = doc["jobs"]
    if not any(isinstance(j.get("current"), np.ndarray) for j in jobs):
        return doc
    from placer.api import load_instance

    ix = load_instance({**doc, "jobs": []}).index  # numbering: the topology's, as live
    return {
        **doc,
        "jobs": [
            {**j, "current": ix.gpu_ids(j["current"])}
            if isinstance(j.get("current"), np.ndarray)
            else j
            for j in jobs
        ],
    }


def verdict(has_placement: bool, reason: str | None, objective: float, before: float) -> str:
    """Why a solve's result is not adopted ('' when it may be: it found a placement whose
    objective beats the live `before`)."""
    if not has_placement:
        return f"the solve found no placement: {reason}"
    if objective <= before + 1e-6 * max(1.0, abs(before)):
        return f"kept the live plan: the solve's {objective:,.1f} vu does not beat {before:,.1f} vu"
    return ""


class Entry(NamedTuple):
    """One job of an :class:`IndexedPlacement`: its name, units and plan (SPEC v3; None:
    none named); ``gpus`` is always empty (the GPUs are the placement's indices)."""

    name: str
    units: int
    plan: str | None
    gpus: tuple = ()


@dataclass
class IndexedPlacement:
    """A placement (SPEC 2) as the process that solved it sends it back: per job its name,
    units and plan, and its GPUs as indices of the topology's numbering (the live
    cluster's); the leases as SPEC 2 entries (``offer``, ``blocks``). What
    :func:`read_plan` reads, without GPU ids: on a loaded colossus the Placement model of a
    replan holds 170,000 GPU ids, and unpickling it took the service 130 ms of the GIL
    (every request thread) after each solve; these arrays take about 1 ms. Made by
    :meth:`of`.

    ``analyses``: per job the plan moves or starts, the kernel's analysis of its GPUs
    under its plan (:func:`~placer.kernel.cost.analyse_job`: a function of the job, its
    GPUs and the topology), computed where it was solved; None for the others. The merge
    takes it instead of analysing the job again (40% of scoring it) where it is the same
    job, plan and GPUs over the same topology and hardware (see :func:`prepare`)."""

    jobs: list[Entry]
    gpus: list[np.ndarray | None]  # per job; None: no GPUs
    leases: list[Any]
    analyses: list[Any] | None = None

    @classmethod
    def of(cls, placement: Any, instance: Any, analyse: bool = False) -> IndexedPlacement:
        """`placement` (a :class:`~placer.Placement` of `instance`) with its GPU ids read by
        the instance's index (an unknown id is -1, refused by :func:`read_plan` with its
        location); `analyse`: with the ``analyses`` of the jobs it moves (from their
        `current`, or to another plan than their `current_plan`) or starts."""
        from placer.kernel.cost import analyse_job, as_batch

        index = instance.index
        spec = {j.name: j for j in instance.jobs} if analyse else {}
        jobs, gpus, analyses = [], [], []
        for pj in placement.jobs:
            jobs.append(Entry(pj.name, pj.units, pj.plan))
            g = np.asarray(index.gpu_indices(list(pj.gpus)), np.int64) if pj.gpus else None
            gpus.append(g)
            job, a = spec.get(pj.name), None
            if job is not None and g is not None and (g >= 0).all():
                same = (
                    job.current is not None
                    and job.current_plan == pj.plan
                    and np.array_equal(index.cached_indices(job.current), g)
                )
                k = job.plan_index(pj.plan) if job.plans else None
                if not same and (k is not None or not job.plans):
                    run = under(job, k)
                    if len(g) == pj.units * run.unit_size:
                        a = analyse_job(index, run, as_batch(g, run))
            analyses.append(a)
        return cls(jobs, gpus, list(placement.leases), analyses if analyse else None)

    def parsed(self) -> dict[int, np.ndarray]:
        """Each job's GPU indices by its position (see :func:`read_plan`). An array
        unpickled holds its own copy of the int64 dtype, and ``np.asarray(g, np.int64)``
        makes a new view of it at every read: they are made once here, so that the merge
        finds the same objects where it compares holdings by identity first."""
        for i, g in enumerate(self.gpus):
            if g is not None:
                self.gpus[i] = np.asarray(g, np.int64)
        return {i: g for i, g in enumerate(self.gpus) if g is not None}


@dataclass
class Plan:
    """A plan read against the live state: per job it names, its GPUs and plan index; the
    pending jobs it may start; every offer's blocks."""

    gpus: dict[str, np.ndarray]
    plan_of: dict[str, int | None]
    pending: dict[str, Job]
    blocks: list[list[tuple[int, int]]]


def read_plan(
    live: LiveState,
    pl: Any,
    pending: Any,
    parsed: dict[int, np.ndarray] | None = None,
    jobs: list[Job] | None = None,
) -> Plan:
    """Placement `pl` (a :class:`~placer.Placement`, or an :class:`IndexedPlacement`: its
    GPUs read already) and `pending` jobs read against the live state; every problem in
    one :class:`~placer.errors.PlacementError`. `parsed` keeps each entry's GPU indices
    between reads of the same plan (they depend on the topology only: reading 10,000 GPU
    ids is the costly part of a read); `jobs`, the
    `pending` jobs parsed already (they depend on the instance only: 300 jobs take 40 ms)."""
    if jobs is None:
        jobs = list(parse_pending(live, pending))
    if parsed is None and isinstance(pl, IndexedPlacement):
        parsed = pl.parsed()
    pend = {m.name: m for m in jobs if m.name not in live.slot}
    ix = live.st.ix
    problems: list[tuple[str, str]] = []
    gpus: dict[str, np.ndarray] = {}
    plan_of: dict[str, int | None] = {}  # v3: the plan each named job runs
    for i, pj in enumerate(pl.jobs):
        if pj.name not in live.slot and pj.name not in pend:
            continue  # released meanwhile (or never known): nothing to do
        job = live.spec[pj.name] if pj.name in live.slot else pend[pj.name]
        k = None
        if job.plans and pj.units > 0:
            k = job.plan_index(pj.plan)
            if k is None:
                names = ", ".join(p.name for p in job.plans)
                problems.append(
                    (
                        f"placement.jobs[{i}].plan",
                        f"job {pj.name!r} has plans ({names}): "
                        + ("it names none" if pj.plan is None else f"no plan {pj.plan!r}"),
                    )
                )
                continue
            job = job.under(k)
        elif not job.plans and pj.plan is not None and pj.units > 0:
            problems.append(
                (f"placement.jobs[{i}].plan", f"job {pj.name!r} has no plans (SPEC v3)")
            )
            continue
        plan_of[pj.name] = k
        g = parsed.get(i) if parsed is not None else None
        if g is None:
            g = ix.gpu_indices(list(pj.gpus)) if pj.gpus else EMPTY
            if parsed is not None:
                parsed[i] = g
        if (g < 0).any():
            problems.append(
                (f"placement.jobs[{i}].gpus[{int(np.argmax(g < 0))}]", "unknown GPU id")
            )
            continue
        if len(g) != pj.units * job.unit_size:
            problems.append(
                (
                    f"placement.jobs[{i}].gpus",
                    f"{len(g)} GPUs for {pj.units} units of {job.unit_size} GPUs",
                )
            )
            continue
        gpus[pj.name] = np.asarray(g, np.int64)
    offer_ix = {o.name: k for k, o in enumerate(live.base.offers)}
    blocks: list[list[tuple[int, int]]] = [[] for _ in live.base.offers]
    for i, lease in enumerate(pl.leases):
        o = offer_ix.get(lease.offer)
        if o is None:
            problems.append((f"placement.leases[{i}].offer", f"unknown offer {lease.offer!r}"))
            continue
        for k, path in enumerate(lease.blocks):
            r = ix.resolve(path)
            if r is None or r[0] >= ix.n_levels:
                problems.append((f"placement.leases[{i}].blocks[{k}]", f"unknown {path!r}"))
            else:
                blocks[o].append(r)
    for name, j in live.slot.items():
        spec = live.spec[name]
        prev, k0 = live.st.job_gpus[j], live.plan_index(j)
        g = gpus.get(name, prev)
        k = plan_of.get(name, k0) if len(g) else k0
        if spec.pinned and (len(g) != len(prev) or (g != prev).any() or k != k0):
            problems.append(("placement", f"job {name!r} is pinned: it cannot move"))
        elif not spec.preemptible and not len(g):
            problems.append(("placement", f"job {name!r} is not preemptible: it must stay"))
    if problems:
        raise PlacementError(problems)
    return Plan(gpus, plan_of, pend, blocks)


def _targets(live: LiveState, plan: Plan) -> list[tuple[str, Job, Any, int | None, Any]]:
    """The merge of `plan` into `live` (see the module docs), job by job in the order the
    merged state keeps them (running jobs in start order, then the pending ones): name,
    job as submitted, its holding now (None: not running), its plan index and holding
    after (GPUs EMPTY: stopped or not started)."""
    out = []
    order = [live.slots[j].name for j in sorted(live.slot.values())] + list(plan.pending)
    for name in order:
        orig = live.spec.get(name) or plan.pending[name]
        j = live.slot.get(name)
        prev = live.holding(j) if j is not None else None
        k0 = live.plan_index(j) if j is not None else None
        k = plan.plan_of.get(name, k0)
        g = plan.gpus.get(name, prev[0] if prev is not None else EMPTY)
        # v3: under the plan it runs; a running job that keeps its plan keeps its live slot,
        # which is that job already (a copy of each job took 0.1 s of a commit's lock on
        # colossus with 1,000 jobs running)
        after = prev[1] if prev is not None and k == k0 else under(orig, k)
        out.append((name, orig, prev, k, (g, after)))
    return out


def _job_actions(live: LiveState, targets: list, cache: dict | None = None) -> Change:
    """The start, move and stop actions from `live` to the merged `targets` (their
    migration cost summed). `cache` keeps each job's action between rounds of
    :func:`advance`: a job whose holding and target are the same objects as last time
    (holdings are replaced, never written) has the same action."""
    ix = live.st.ix
    change = Change()
    for name, orig, prev, k, after in targets:
        key = (orig, after[0], *(prev if prev is not None else (None, None)))
        hit = cache.get(name) if cache is not None else None
        if hit is not None and hit[1] == k and all(a is b for a, b in zip(hit[0], key)):
            action = hit[2]
        elif (prev is None and len(after[0])) or (prev is not None and moved(prev, after)):
            action = job_action(orig, ix, prev, after, ActionCause.REPLAN, "replan")
        else:
            action = None
        if cache is not None:
            cache[name] = (key, k, action)
        if action is not None:
            change.actions.append(action)
            change.cost += action.cost
    return change


def adopt(live: LiveState, plan: Plan) -> tuple[Change, float]:
    """Merge `plan` into the live state (see the module docs): the Change (start, move,
    stop and lease actions, cause ``replan``; its delta the objective change less the
    migration costs) and the objective before. A merged state that fails the checker is a
    :class:`~placer.errors.PlacementError` (the caller rolls back)."""
    before = live.objective
    old_lease = leases.infos(live)
    targets = _targets(live, plan)
    change = _job_actions(live, targets)
    kept = [(name, orig, after) for name, orig, _p, _k, after in targets if len(after[0])]
    live.replace_jobs(
        {name: orig for name, orig, _ in kept},
        [after[1] for _, _, after in kept],
        [after[0] for _, _, after in kept],
        plan.blocks,
    )
    bad = check_compiled(live.inst, live.compiled())
    if bad:
        raise PlacementError([("placement", f"against the live state: {v}") for v in bad[:20]])
    change.actions += leases.lease_actions(live, old_lease, ActionCause.REPLAN, "replan")
    change.delta = live.objective - before - change.cost
    return change, before


def kept_reason(change: Change, before: float, after: float) -> str:
    """Why an adopted plan is not worth it ('' when its objective less the migration costs
    it charges beats the live `before`; `after` its objective)."""
    if change.delta > 1e-6 * max(1.0, abs(before)):
        return ""
    return (
        f"kept the live plan: the plan's {after - change.cost:,.1f} vu (migration charged) "
        f"does not beat {before:,.1f} vu"
    )


@dataclass
class Prepared:
    """A plan merged into a copy of the live state taken at one moment (``base``) and
    checked whole there, away from the live state (:func:`prepare`); :func:`catch_up`
    brings it to the live state as it is later. ``reason``: why it was not worth adopting
    against ``base`` (the decision is taken again at the commit, against the live state
    then)."""

    base: Checkpoint
    merged: LiveState | None
    placement: Any
    pending: Any
    parsed: dict[int, np.ndarray]
    change: Change
    before: float
    reason: str = ""
    actions: dict[str, Any] = field(default_factory=dict)  # see _job_actions
    jobs: list[Job] | None = None  # the pending jobs parsed (see read_plan)
    taken: bool = False  # the commit took ``merged`` as the live state
    # checked(name, job): the job (as submitted) passed rules 1-5 on its GPUs in the plan
    # in the solve's whole check, over the hardware of ``base`` (see prepare)
    checked: Any = None
    # name -> (GPUs, plan, analysis) sent by the solve's process (IndexedPlacement), for
    # the jobs the merge may take it for (same hardware, every WAN link up: same numbering)
    analyses: dict[str, tuple[np.ndarray, str | None, Any]] = field(default_factory=dict)
    how: str = ""  # how it was merged (profiling): whole, or the jobs redone


def same_hardware(a: Checkpoint, b: Checkpoint) -> bool:
    """Two states with the same hardware failed and the same leases (blocks, cover)."""
    return (
        (a.avail is b.avail or np.array_equal(a.avail, b.avail))
        and np.array_equal(a.links_up, b.links_up)
        and a.min_override == b.min_override
        and a.cover == b.cover
        and a.offer_blocks == b.offer_blocks
    )


def prepare(
    base_inst: Any,
    base: Checkpoint,
    pl: Any,
    pending: Any,
    parsed: dict[int, np.ndarray] | None = None,
    jobs: list[Job] | None = None,
    full: bool = False,
    solved: Checkpoint | None = None,
    laps: Laps | None = None,
) -> Prepared:
    """Merge placement `pl` and the `pending` jobs into a copy of the checkpoint `base`
    (a state of the live cluster over `base_inst`), away from the live state; a plan that
    does not pass gets a PlacementError. `jobs`: the `pending` jobs parsed already.

    The plan is merged as :func:`catch_up` merges a later state: only the jobs whose
    holding it changes are redone on the copy, then the plan's leased blocks are taken
    where they differ (a rebuild that keeps every job's kernel figures), and the result is
    verified against the whole of it (rules 1-5 for the redone jobs; disjointness,
    availability, leased blocks, power and must-stay jobs over all, and rule 6 over every
    lease when the blocks changed; `full`: the whole checker), as every live operation is:
    the copy passed the same when it was live. Its result equals :func:`adopt`'s on the
    copy. Rebuilding the derived state and running the whole checker, as :func:`adopt`
    does, re-scores every job and checks every GPU: 0.2 to 0.3 s of a service's GIL on
    colossus after each solve, which queued the submits of every request thread (the solve
    itself was checked whole by its worker process, against the state it was solved from).

    `solved`: the checkpoint of the state the plan was solved from, whose solve checked
    the whole plan (:func:`placer.solvers.base.finalize`): with the same hardware as
    `base`, rules 1-5 of a job it placed are not checked again (the same job, plan, GPUs
    and hardware), only what involves the other jobs (0.4 ms a job on colossus).

    `laps`: called between the phases of the merge (at most about 10 ms apart on colossus),
    e.g. by a service to let its request threads run first (see :class:`Laps`)."""
    laps = laps or Laps(True)
    if parsed is None:
        parsed = pl.parsed() if isinstance(pl, IndexedPlacement) else {}
    if isinstance(pl, IndexedPlacement):
        pend = {m.name for m in jobs} if jobs is not None else set()
        bad = overlaps(base_inst, base, pl, parsed, pend)
        if bad:
            raise PlacementError(bad)
        laps("overlaps")
    fork = LiveState.from_checkpoint(base_inst, base)
    laps("copy")
    if jobs is None:
        jobs = list(parse_pending(fork, pending))
    plan = read_plan(fork, pl, pending, parsed, jobs)
    laps("read the plan")
    prep = Prepared(base, fork, pl, pending, parsed, Change(), 0.0, jobs=jobs)
    if solved is not None and same_hardware(solved, base):
        pend = {m.name: m for m in jobs}

        def checked(name: str, job: Job) -> bool:
            return solved.spec.get(name) is job or pend.get(name) is job

        prep.checked = checked
        if isinstance(pl, IndexedPlacement) and pl.analyses and base.links_up.all():
            prep.analyses = {
                e.name: (pl.gpus[i], e.plan, a)
                for i, (e, a) in enumerate(zip(pl.jobs, pl.analyses, strict=True))
                if a is not None
            }
    # the copy is both the state merged into and the state the actions are against:
    # catch_up reads all it needs of the latter before changing the copy
    blocks = None if plan.blocks == fork.st.offer_blocks else plan.blocks
    prep.change, prep.before = catch_up(fork, prep, full, laps, plan=plan, blocks=blocks)
    prep.how = ", ".join(k for k in laps.phases if k.startswith("redo"))
    if blocks is not None:
        prep.how += ", the plan's leases taken"
    # profiling: whether the solve's rule checks and the sent analyses could be taken (the
    # same hardware as the state solved, every WAN link up)
    prep.how += (
        f", the solve's rule checks and {len(prep.analyses)} analyses taken"
        if prep.checked is not None
        else ", rules checked here (the hardware moved since the solve's copy)"
    )
    prep.reason = kept_reason(prep.change, prep.before, fork.objective)
    return prep


def overlaps(
    base_inst: Any,
    base: Checkpoint,
    pl: IndexedPlacement,
    parsed: dict[int, np.ndarray],
    pending: set[str],
) -> list[tuple[str, str]]:
    """The GPUs plan `pl` gives a job (running in `base`, or one of the `pending` names)
    that a running job of `base` it does not name holds: such a job keeps its GPUs in the
    merge (it started after the state the plan was solved from), so the merged state would
    hold them twice (SPEC 3) and the plan cannot pass. A few milliseconds over colossus,
    where merging a plan to find the same took a service 0.1 to 0.4 s of its GIL (the
    common refusal under churn: a plan moving a job onto GPUs the submits took meanwhile).
    Problems as :func:`prepare` raises them (at most 5); empty: none found (the merge
    checks the rest)."""
    named = {e.name for e in pl.jobs}
    others = [(name, j) for name, j in base.slot.items() if name not in named]
    if not others:
        return []
    n = len(base.avail)
    held = np.zeros(n, bool)
    for _, j in others:
        held[base.job_gpus[j]] = True
    problems: list[tuple[str, str]] = []
    for i, e in enumerate(pl.jobs):
        g = parsed.get(i)
        if g is None or not len(g) or (e.name not in base.slot and e.name not in pending):
            continue
        if g.min() < 0 or g.max() >= n:
            continue  # an unknown GPU: read_plan says where
        hit = g[held[g]]
        if len(hit):
            gpu = int(hit[0])
            who = next(name for name, j in others if (base.job_gpus[j] == gpu).any())
            problems.append(
                (
                    "placement",
                    f"against the live state: GPU {base_inst.index.gpu_id(gpu)!r} of job "
                    f"{e.name!r} in the plan is held by {who!r}, which started after the state "
                    "the plan was solved from (SPEC 3: a GPU runs one job)",
                )
            )
            if len(problems) == 5:
                break
    return problems


def _same(a: Job, b: Job) -> bool:
    return a is b or a == b


def catch_up(
    live: LiveState,
    prep: Prepared,
    full: bool = False,
    laps: Laps = NO_LAPS,
    plan: Plan | None = None,
    blocks: list[list[tuple[int, int]]] | None = None,
) -> tuple[Change, float] | None:
    """The prepared merge brought to `live`, the live state as it is now (jobs started,
    moved or stopped since ``prep.base``; hardware and leases unchanged: the caller sees to
    it): the same plan merged into `live` (:func:`read_plan` against it: pinned and
    must-stay jobs included), the prepared state changed only for the jobs whose merged
    holding differs, those verified against the whole merged state (rules 1-5 for them;
    disjointness, availability, no GPU of a leased block, power and must-stay jobs over
    all; the blocks themselves passed rule 6 whole when prepared, against the same
    hardware; `full`: the whole checker), as every live operation is. Returns the Change against
    `live` and its objective, the merged state in ``prep.merged``, its jobs in the order
    :func:`adopt` keeps them (pending jobs the plan starts after the jobs that arrived
    since: the copy's are started again after those, under the lock of a service, which
    before adopted the whole plan there: 0.2 s on colossus). A plan that no
    longer passes gets a PlacementError (`live` and nothing else is unchanged either way
    until the caller takes ``prep.merged``). `live` may be ``prep.merged`` itself (see
    :func:`prepare`): everything read of `live` is read before the merged state changes.
    `plan`: the plan read against `live` already. `blocks`: the plan's leased blocks
    where they differ from the merged state's (:func:`prepare` only): taken once the jobs
    are redone, by a rebuild that keeps every job's kernel figures (the blocks change no
    job's score: the free GPUs, power and lease revenue are derived again), and rule 6 is
    then checked over every lease.

    Rules 1-5 (a job alone on its GPUs, over the hardware) are not checked again for a
    redone job that `live` holds the same way (it passed them when placed) or that passed
    them in the solve's whole check (``prep.checked``): on colossus 0.4 ms a job, under a
    service's lock at the commit."""
    fork = prep.merged
    assert fork is not None
    if plan is None:
        plan = read_plan(live, prep.placement, prep.pending, prep.parsed, prep.jobs)
    laps("read_plan")
    before = live.objective
    old_leases = leases.infos(live)
    targets = _targets(live, plan)
    laps("targets")
    want = {name: (orig, k, after) for name, orig, _p, k, after in targets if len(after[0])}
    diff = []
    for name in list(fork.slot) + [n for n in want if n not in fork.slot]:
        j = fork.slot.get(name)
        w = want.get(name)
        if (
            j is None
            or w is None
            or not _same(fork.spec[name], w[0])
            or fork.plan_index(j) != w[1]
            or (
                fork.st.job_gpus[j] is not w[2][0]  # holdings are shared, never written
                and not np.array_equal(fork.st.job_gpus[j], w[2][0])
            )
        ):
            diff.append(name)
    laps("diff")
    # jobs that start in the merged state after the copy (arrived since, or released and
    # submitted again) run before the plan's pending jobs, as adopt orders them: the pending
    # jobs the copy started are taken out and started again after them
    # (one whose holding is otherwise the same only moves to the end: its slot, GPUs and
    # score are the same, nothing to re-score or verify; the others are redone there)
    readd: set[str] = set()
    move: set[str] = set()
    if plan.pending and any(
        n not in plan.pending
        and (n not in fork.slot or (n in want and not _same(fork.spec[n], want[n][0])))
        for n in diff
    ):
        readd = {n for n in plan.pending if n in fork.slot and n in want}
        move = readd.difference(diff)
        diff += [n for n in fork.slot if n in move]
    changed: set[int] = set()
    # free every changed job's GPUs first (one may take another's), all in one change
    fork.set_jobs(
        {
            j: EMPTY
            for j in (fork.slot.get(name) for name in diff if name not in move)
            if j is not None and len(fork.st.job_gpus[j])
        }
    )
    for name in diff:
        j = fork.slot.get(name)
        w = want.get(name)
        if name in move:
            continue
        if j is not None and (w is None or not _same(fork.spec[name], w[0]) or name in readd):
            fork.drop_slot(j)  # stopped, released, released and submitted again, or re-added
    sets: dict[int, np.ndarray] = {}
    for name, (orig, k, after) in want.items():  # in the merged order: new slots at the end
        if name not in diff:
            continue
        j = fork.slot.get(name)
        if name in move:
            fork.move_to_end(j)  # as dropped and added again, not re-scored
            continue
        if j is None:
            j = fork.add_slot(orig, k)
        else:
            fork.set_plan(j, k)
        sets[j] = after[0]
    # the analyses the solve's process sent, for the same job, plan and GPUs (see prepare)
    known = {}
    if prep.analyses and prep.checked is not None:
        for j, g in sets.items():
            name = fork.slots[j].name
            hit = prep.analyses.get(name)
            if (
                hit is not None
                and (hit[0] is g or np.array_equal(hit[0], g))
                and hit[1] == fork.slots[j].plan
                and prep.checked(name, fork.spec_of(j))
            ):
                known[j] = hit[2]
    fork.set_jobs(sets, known)  # every redone job placed in one change (one re-score of sharers)
    changed = set(sets)
    laps(f"redo {len(changed)} jobs ({len(move)} moved to the end)")
    if blocks is not None:
        # the free GPUs and the power are derived again from the holdings and the blocks
        # (a job may have moved into a block the plan gives back): a rebuild, keeping each
        # job's figures (its score depends on its GPUs, plan and the WAN sharers only)
        names = {fork.slots[j].name for j in changed}
        fork.rebuild(None, [list(b) for b in blocks], fork.st.scorer.figures())
        changed = {fork.slot[n] for n in names}
        laps("leases taken")
    # rules 1-5 of a job alone hold where it held them (the same job, plan and GPUs over
    # the same hardware: as live holds it, or as the solve's whole check found it)
    tgt = {t[0]: t for t in targets}
    checked = prep.checked

    def passed(j: int) -> bool:
        _name, _orig, prev, _k, after = tgt[fork.slots[j].name]
        if prev is not None and not moved(prev, after):
            return True
        return checked is not None and checked(fork.slots[j].name, fork.spec_of(j))

    changed = {j for j in changed if not passed(j)}
    laps("rules 1-5 passed already")
    try:
        # rule 6 is not checked again: the merged state's blocks passed it whole (prepare)
        # against the same hardware (the caller sees to it), and what a job can break of it,
        # holding a GPU of a leased block, is checked over the whole state here
        verify_state(fork, changed, full=full, leases=blocks is not None, laps=laps)
    except SolverError as e:
        raise PlacementError([("placement", f"against the live state: {e}")]) from None
    change = _job_actions(live, targets, prep.actions)
    laps("job actions")
    change.actions += leases.lease_actions(fork, old_leases, ActionCause.REPLAN, "replan")
    change.delta = fork.objective - before - change.cost
    laps("lease actions")
    return change, before


def advance(base_inst: Any, prep: Prepared, base: Checkpoint, full: bool = False) -> Prepared:
    """`prep` brought to the newer state `base` (a checkpoint of the live state taken
    since), still away from the live state: :func:`catch_up` against a copy of `base`
    (only the jobs that changed between the two are redone), or :func:`prepare` again
    when the hardware or the leases changed. The commit then has only what changed after
    `base` to redo. A plan that no longer passes against `base` gets a PlacementError."""
    if prep.merged is None or not same_hardware(prep.base, base):
        return prepare(base_inst, base, prep.placement, prep.pending, prep.parsed, prep.jobs, full)
    view = LiveState.from_checkpoint(base_inst, base)
    try:
        out = catch_up(view, prep, full)
    except BaseException:
        prep.merged = None
        raise
    if out is None:
        return prepare(base_inst, base, prep.placement, prep.pending, prep.parsed, prep.jobs, full)
    prep.change, prep.before = out
    prep.base = base
    prep.reason = kept_reason(prep.change, prep.before, prep.merged.objective)
    return prep
