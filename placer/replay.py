"""Trace-driven simulation over time with :class:`~placer.cluster.Cluster`: the same events
replayed under several placement policies, and event traces drawn from the real job traces
in ``placer/data``.

Events (YAML/JSON): ``{events: [{at_hours, submit: <SPEC job>} | {at_hours, finish: NAME} |
{at_hours, fail: [...]} | {at_hours, restore: [...]}]}``.

Semantics (docs/scheduler.md has the full text)
1. Time runs from 0 to ``until`` (default: the instance's ``horizon_hours``). Between two
   moments where something happens the state is constant.
2. ``submit``: the job joins the end of the queue; the queue is served in order after every
   event (a job that does not fit waits; later jobs may still start: no head-of-line block).
3. A training job with ``remaining_hours: H`` completes when its progress reaches H;
   progress runs at goodput x speed x units/dp per hour (kernel figures of the live state),
   so better placements finish sooner. Without ``remaining_hours`` it runs until its
   ``finish`` event; so does inference. A ``finish`` of a queued job removes it. A job with
   plans (SPEC v3) progresses under the plan it runs: units/dp of that plan, times
   compute_ms of its first plan / compute_ms of that plan (a step is a step of the job
   whichever plan runs it: H counts hours at its first plan's full-size compute time).
4. ``fail`` / ``restore``: :meth:`Cluster.fail` / :meth:`Cluster.restore` (the same repair
   for every policy: the comparison is about where arrivals go).
5. Delivered value: the objective's rate (per job its kernel value per hour, plus lease
   revenue per hour) integrated over time, less every migration cost charged.

Policies: ``placer`` (``Cluster.submit`` for arrivals, and ``Cluster.replan`` every
``replan_every`` hours with the queue as pending jobs) and every registered peer baseline
(``placer.solvers.names(peer=True)``), which places arrivals *its own way*: its backend is
run on the live state's instance (:meth:`Cluster.snapshot`) with every running job pinned
at its GPUs and the queued jobs added; the queued jobs it places start there
(:meth:`Cluster.start`), under their first plan (the peers have no plan choice: a solve
with a peer backend holds each job to its first plan). Nothing running ever moves under a
peer policy (as in Kueue and Slurm), except to repair failures.

Imports numpy, the model, the cluster and the solvers; never the CLI.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from placer.cluster import ActionCause, Cluster
from placer.errors import InstanceError, UsageError
from placer.generators.events import generate_trace
from placer.io import _pydantic_problems, parse_text, read_text
from placer.kernel.score import job_hours
from placer.live.documents import job_dict
from placer.model import Instance, Job
from placer.model.semantic import check_structure

__all__ = [
    "Event",
    "Events",
    "generate_trace",
    "load_events",
    "policies",
    "replay",
    "submit_problems",
]


class Event(BaseModel):
    """One event: exactly one of submit, finish, fail, restore, at `at_hours`."""

    model_config = ConfigDict(extra="forbid")

    at_hours: float = Field(ge=0, description="When, hours from the start.")
    submit: Job | None = Field(None, description="A job arrives (SPEC 1.2).")
    finish: str | None = Field(None, description="A job (running or queued) ends.")
    fail: list[str | list[str]] | None = Field(None, description="Hardware fails.")
    restore: list[str | list[str]] | None = Field(None, description="Hardware is back.")

    @model_validator(mode="after")
    def _one(self) -> Event:
        given = [k for k in ("submit", "finish", "fail", "restore") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an event has exactly one of submit, finish, fail, restore")
        return self

    @property
    def kind(self) -> str:
        return next(
            k for k in ("submit", "finish", "fail", "restore") if getattr(self, k) is not None
        )


class Events(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(description="Events, in any order (sorted by at_hours).")
    trace: dict[str, Any] | None = Field(None, description="How the trace was made.")


def submit_problems(instance: Instance, events: list[Event]) -> list[tuple[str, str]]:
    """Each submitted job checked with `instance`'s rules (the ones :meth:`Cluster.submit`
    applies: SPEC 1.2 fields against its GPU types, levels and fabric), located at its event
    in `events` (``events[3].submit.compute_ms``)."""
    problems: list[tuple[str, str]] = []
    for i, e in enumerate(events):
        if e.submit is None:
            continue
        tmp = instance.model_copy(update={"jobs": [e.submit], "leases": None})
        problems += [
            (loc.replace("jobs[0]", f"events[{i}].submit", 1), msg)
            for loc, msg in check_structure(tmp).problems
        ]
    return problems


def load_events(src: str | Path | dict, instance: Instance | None = None) -> list[Event]:
    """Read and validate an events file (or parsed dict); errors name their place
    (``events[3].submit.tp``). With `instance`, every submitted job is also checked with
    its rules (:func:`submit_problems`), so a job the cluster would refuse is refused here,
    at its event, before anything runs. Returns the events sorted by time (stable)."""
    data = src if isinstance(src, dict) else parse_text(read_text(src))
    try:
        ev = Events.model_validate(data)
    except ValidationError as e:
        raise InstanceError(_pydantic_problems(e)) from None
    names: dict[str, int] = {}
    problems = []
    for i, e in enumerate(ev.events):
        if e.submit is not None:
            if e.submit.name in names:
                problems.append(
                    (
                        f"events[{i}].submit.name",
                        f"{e.submit.name!r} is also submitted by events[{names[e.submit.name]}]",
                    )
                )
            names[e.submit.name] = i
            if e.submit.current:
                problems.append((f"events[{i}].submit.current", "an arriving job is not running"))
    if instance is not None:
        problems += submit_problems(instance, ev.events)
    if problems:
        raise InstanceError(problems)
    return sorted(ev.events, key=lambda e: e.at_hours)


def policies() -> list[str]:
    """Policy names: ``placer`` and every registered peer baseline."""
    from placer.solvers import names

    return ["placer", *names(peer=True)]


# --------------------------------------------------------------------------- simulation
@dataclass
class _JobInfo:
    job: dict
    submitted: float
    started: float | None = None
    ended: float | None = None
    completed: bool = False
    progress: float = 0.0


@dataclass
class _Run:
    policy: str
    cluster: Cluster
    queue: list[str] = field(default_factory=list)
    info: dict[str, _JobInfo] = field(default_factory=dict)
    value: float = 0.0
    migration: float = 0.0
    moves: int = 0
    stops: int = 0
    util_area: float = 0.0
    timeline: list[tuple[float, float, float]] = field(default_factory=list)


def _rates(run: _Run) -> tuple[float, dict[str, float], float]:
    """(objective rate vu/h, progress rate per running training job, GPU utilisation)."""
    c = run.cluster
    s = c.score()
    inst = c.instance
    horizon = inst.horizon_hours
    rate = sum(o["revenue"] for o in s.offers) / horizon
    prog: dict[str, float] = {}
    used = 0
    for row in s.jobs:
        spec = c.job_spec(row["name"])
        rate += row["value"] / job_hours(inst, spec)
        used += row["gpus"]
        if spec.kind == "training" and row["units"]:
            speed = row.get("speed") or 1.0
            prog[row["name"]] = row["goodput"] * speed * row["units"] * _work(spec, row["plan"])
    avail = c.available_gpus
    return rate, prog, used / avail if avail else 0.0


def _work(spec: Job, plan: str | None) -> float:
    """Progress per unit-hour of goodput x speed: 1/dp; for a job with plans (v3) the 1/dp
    of the plan it runs times compute_ms of its first plan / compute_ms of that plan (see
    the module overview, 3)."""
    if not spec.plans:
        return 1.0 / spec.units_max
    job = spec.under(spec.plan_index(plan) or 0)
    ref = spec.under(0).compute_ms or 1.0
    return ref / (job.compute_ms or ref) / job.units_max


def _account(run: _Run, change) -> None:
    for a in change.actions:
        if a.kind == "move":
            run.moves += 1
        elif a.kind == "stop" and a.cause is not ActionCause.RELEASED:
            run.stops += 1
            info = run.info.get(a.job)
            if info is not None and not info.completed:
                # a stopped job goes back to the queue, keeping its progress (its
                # queueing delay counts from its submission to its first start)
                run.queue.append(a.job)
        run.migration += a.cost


def _serve_queue(run: _Run, t: float, peer_time_limit: float) -> None:
    if not run.queue:
        return
    c = run.cluster
    if run.policy == "placer":
        left = []
        for name in run.queue:
            d = c.submit(_arrival(run, name))
            if d.placed:
                _started(run, name, t)
                _account(run, d)
            else:
                left.append(name)
        run.queue = left
        return
    # a peer: its backend on the live instance, running jobs pinned, the queue added
    from placer.api import load_instance, solve

    inst_d, _ = c.snapshot()
    for j in inst_d["jobs"]:
        j["pinned"] = True
    inst_d["jobs"] += [_arrival(run, n) for n in run.queue]
    inst = load_instance(inst_d)
    res = solve(inst, solver=run.policy, time_limit=peer_time_limit)
    placed = {}
    if res.status.has_placement:
        placed = {pj.name: (pj.gpus, pj.plan) for pj in res.placement.jobs if pj.units}
    left = []
    for name in run.queue:
        if name in placed:
            gpus, plan = placed[name]
            d = c.start(_arrival(run, name), gpus, plan=plan)
            _started(run, name, t)
            _account(run, d)
        else:
            left.append(name)
    run.queue = left


def _arrival(run: _Run, name: str) -> dict:
    """The job as it (re)starts: training work left shortened by its progress."""
    info = run.info[name]
    job = copy.deepcopy(info.job)
    if job.get("remaining_hours") is not None:
        job["remaining_hours"] = max(job["remaining_hours"] - info.progress, 1e-6)
    return job


def _started(run: _Run, name: str, t: float) -> None:
    info = run.info[name]
    if info.started is None:
        info.started = t


def _finish(run: _Run, name: str, t: float, completed: bool) -> None:
    info = run.info.get(name)
    if name in run.cluster.jobs:
        run.cluster.release(name)
    if name in run.queue:
        run.queue.remove(name)
    if info is not None and info.ended is None:
        info.ended = t
        info.completed = completed


def replay(
    instance: Instance,
    events: list[Event],
    policy_names: list[str] | None = None,
    replan_every: float | None = None,
    replan_time_limit: float = 10.0,
    replan_solver: str = "auto",
    peer_time_limit: float = 10.0,
    until: float | None = None,
    snapshots: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Replay `events` on `instance` under each policy (see the module overview).

    Returns per policy its metrics: ``value`` (delivered, vu), ``completed``,
    ``completion_mean_h`` / ``completion_p95_h`` (submit to completion, completed training
    jobs), ``queueing_mean_h`` (submit to first start), ``never_started``,
    ``utilisation_mean``, ``moves``, ``stops``, ``migration_cost`` and a ``timeline`` of
    (hours, delivered value so far, utilisation).
    """
    valid = policies()
    names = policy_names or ["placer"]
    for p in names:
        if p not in valid:
            raise UsageError(f"policy: unknown {p!r}; valid: {', '.join(valid)}")
    if replan_every is not None and not replan_every > 0:
        raise UsageError(f"replan_every: expected hours > 0, got {replan_every!r}")
    problems = submit_problems(instance, events)
    if problems:  # before any policy runs, located in the list given
        raise InstanceError(problems)
    end = instance.horizon_hours if until is None else float(until)
    out = {}
    for p in names:
        out[p] = _replay_one(
            instance,
            events,
            p,
            replan_every if p == "placer" else None,
            replan_time_limit,
            replan_solver,
            peer_time_limit,
            end,
            snapshots,
        )
    return out


def _replay_one(
    instance, events, policy, replan_every, replan_tl, replan_solver, peer_tl, end, snapshots
) -> dict[str, Any]:
    run = _Run(policy, Cluster(instance))
    for name in run.cluster.jobs:  # running at the start
        run.info[name] = _JobInfo(job_dict(run.cluster.job_spec(name)), 0.0, 0.0)
        run.info[name].job.pop("current", None)
        run.info[name].job.pop("current_plan", None)
    k = 0
    t = 0.0
    next_replan = replan_every if replan_every else math.inf
    snap_dir = Path(snapshots) / policy if snapshots is not None else None
    n_snap = 0
    while True:
        rate, prog, util = _rates(run)
        t_done, who = math.inf, None
        for name, r in prog.items():
            h = run.info[name].job.get("remaining_hours")
            if h is None or r <= 0:
                continue
            td = t + max(h - run.info[name].progress, 0.0) / r
            if td < t_done:
                t_done, who = td, name
        t_ev = events[k].at_hours if k < len(events) else math.inf
        t_next = min(t_done, t_ev, next_replan, end)
        dt = max(t_next - t, 0.0)
        run.value += rate * dt
        run.util_area += util * dt
        for name, r in prog.items():
            run.info[name].progress += r * dt
        t = t_next
        run.timeline.append((t, run.value - run.migration, util))
        if t >= end:
            break
        if t_done <= t_next and who is not None and t_done <= t_ev:
            _finish(run, who, t, completed=True)
        elif t_ev <= t_next and k < len(events):
            e = events[k]
            k += 1
            if e.kind == "submit":
                job = job_dict(e.submit)
                run.info[job["name"]] = _JobInfo(job, t)
                run.queue.append(job["name"])
            elif e.kind == "finish":
                _finish(run, e.finish, t, completed=False)
            elif e.kind == "fail":
                _account(run, run.cluster.fail(e.fail))
            else:
                run.cluster.restore(e.restore)  # restored already (an overlapping item): no-op
        else:  # a periodic replan
            next_replan += replan_every
            pending = [_arrival(run, n) for n in run.queue]
            ch = run.cluster.replan(time_limit=replan_tl, solver=replan_solver, pending=pending)
            for a in ch.actions:
                if a.kind == "start" and a.job in run.queue:
                    run.queue.remove(a.job)
                    _started(run, a.job, t)
            _account(run, ch)
        _serve_queue(run, t, peer_tl)
        if snap_dir is not None:
            snap_dir.mkdir(parents=True, exist_ok=True)
            inst_d, pl_d = run.cluster.snapshot()
            (snap_dir / f"{n_snap:05d}.instance.json").write_text(json.dumps(inst_d))
            (snap_dir / f"{n_snap:05d}.placement.json").write_text(json.dumps(pl_d))
            n_snap += 1
    done = [i for i in run.info.values() if i.completed]
    comp = [i.ended - i.submitted for i in done]
    waits = [i.started - i.submitted for i in run.info.values() if i.started is not None]
    return {
        "policy": policy,
        "value": run.value - run.migration,
        "value_before_migration": run.value,
        "migration_cost": run.migration,
        "completed": len(done),
        "completion_mean_h": float(np.mean(comp)) if comp else None,
        "completion_p95_h": float(np.percentile(comp, 95)) if comp else None,
        "queueing_mean_h": float(np.mean(waits)) if waits else None,
        "never_started": sum(1 for i in run.info.values() if i.started is None),
        "utilisation_mean": run.util_area / end if end > 0 else 0.0,
        "moves": run.moves,
        "stops": run.stops,
        "submitted": len(run.info),
        "timeline": run.timeline,
    }
