"""What the live cluster's operations return: :class:`Action` (one change a scheduler
carries out, with its :class:`ActionCause`), :class:`Change` and :class:`Decision`; and
:func:`job_action`, the one diff of a job's holding before and after (start, move or stop).

Imports numpy and the model; nothing else of placer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np

from placer.model import Job

__all__ = ["Action", "ActionCause", "Change", "Decision", "Holding", "job_action"]

# a running job's holding: its GPUs (rank order) and its live slot (the job under its plan)
Holding = tuple[np.ndarray, Job]


class ActionCause(StrEnum):
    """Why an action happened (its ``reason`` is the sentence; this is for programs)."""

    SUBMIT = "submit"  # the submitted job starts
    BIND = "bind"  # a job the scheduler started itself (Cluster.start)
    DISPLACED = "displaced"  # moved or stopped to make room for a submitted job
    RELEASED = "released"  # the job finished or was cancelled
    REPAIR = "repair"  # moved, stopped or leased again after failed hardware
    RESTORE = "restore"  # a lease gives back blocks when hardware is back
    REPLAN = "replan"  # a full re-plan (Cluster.replan or Cluster.adopt)


@dataclass
class Action:
    """One change a scheduler must carry out.

    ``kind``: ``start`` (a job begins on ``gpus``), ``move`` (a running job's GPU set
    changes: new ``gpus``, ``units_before`` -> ``units``), ``stop`` (a running job is left
    out), ``lease`` (an offer's blocks or leased GPUs change: ``blocks`` after, ``gpus``
    empty). ``cost`` is the migration cost charged (vu); ``revenue_change`` the change of
    the offer's lease revenue over the horizon (vu); ``cause`` an :class:`ActionCause`.
    SPEC v3: for a job with plans, ``plan`` is the plan it runs after the action (start,
    move) and ``plan_before`` the one it ran before (move, stop); a move may change only the
    plan (the same GPUs, another plan: a move, charged as SPEC 4 says).
    """

    kind: str
    job: str | None = None
    offer: str | None = None
    units: int = 0
    units_before: int = 0
    gpus: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    cost: float = 0.0
    revenue_change: float = 0.0
    reason: str = ""
    cause: ActionCause | None = None
    plan: str | None = None
    plan_before: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # fields one level deep, lists copied: dataclasses.asdict deep-copies each GPU id
        # (a replan moving every job of colossus: 170,000 ids, about 1 s under the
        # service's lock)
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["gpus"], d["blocks"] = list(self.gpus), list(self.blocks)
        if self.cause is not None:
            d["cause"] = ActionCause(self.cause).value
        keep = {"kind", "cost"} | ({"units", "units_before"} if self.job else set())
        return {k: v for k, v in d.items() if k in keep or v not in (None, "", [], 0, 0.0)}


@dataclass
class Change:
    """What an operation did: its actions, the change in objective (migration costs
    included), the migration cost charged, and the must jobs it could not keep.
    ``applied`` (not in :meth:`to_dict`) is False when a `fail` (hardware failed already),
    a `restore` (hardware none of which is failed), a `replan` or an `adopt` (a plan not
    taken) left the state as it was; ``reason`` says why. (An unplaced submit says it with
    :attr:`Decision.placed`.)"""

    actions: list[Action] = field(default_factory=list)
    delta: float = 0.0
    cost: float = 0.0
    lost: list[str] = field(default_factory=list)
    reason: str | None = None
    seconds: float = 0.0
    applied: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": [a.to_dict() for a in self.actions],
            "delta": self.delta,
            "cost": self.cost,
            "lost": list(self.lost),
            "reason": self.reason,
            "seconds": self.seconds,
        }


@dataclass
class Decision(Change):
    """The answer to :meth:`Cluster.submit`: ``placed``, the job's ``gpus`` in rank order,
    its ``units``, the change in objective ``delta`` (the displaced jobs' migration costs
    included) and, when not placed, a true ``reason``. SPEC v3: ``plan`` names the plan the
    job runs when it has plans (chosen with its GPUs), else None."""

    job: str = ""
    placed: bool = False
    gpus: list[str] = field(default_factory=list)
    units: int = 0
    plan: str | None = None

    @classmethod
    def started(
        cls, start: Action, delta: float, moved: list[Action] | None = None, cost: float = 0.0
    ) -> Decision:
        """The Decision of a job placed by its `start` action (and the moves and stops of
        the jobs it displaced, `moved`, charged `cost`)."""
        return cls(
            job=start.job or "",
            placed=True,
            gpus=start.gpus,
            units=start.units,
            plan=start.plan,
            actions=[start, *(moved or [])],
            delta=delta,
            cost=cost,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "placed": self.placed,
            "units": self.units,
            "gpus": list(self.gpus),
            "plan": self.plan,
            **super().to_dict(),
        }


def job_action(
    spec: Job,
    ix: Any,
    before: Holding | None,
    after: Holding | None,
    cause: ActionCause,
    reason: str = "",
    charge: bool = True,
) -> Action:
    """The action that takes job `spec` (as submitted: its migration cost) from its holding
    `before` to `after` (None or no GPUs: not running): ``start``, ``stop`` or ``move`` (new
    GPUs, or a new plan on the same ones). A move or a stop charges the job's migration
    cost when `charge` (a released job is not charged); a start charges nothing. `ix`: the
    topology index naming the GPUs."""
    g0, was = before if before is not None else (None, None)
    g1, now = after if after is not None else (None, None)
    running_after = g1 is not None and len(g1) > 0
    if was is None or g0 is None or not len(g0):
        assert now is not None and g1 is not None
        units = len(g1) // now.unit_size
        return Action(
            "start",
            job=spec.name,
            units=units,
            gpus=ix.gpu_ids(g1),
            reason=reason,
            cause=cause,
            plan=now.plan,
        )
    cost = spec.migration_cost if charge else 0.0
    if not running_after:
        return Action(
            "stop",
            job=spec.name,
            units_before=len(g0) // was.unit_size,
            cost=cost,
            reason=reason,
            cause=cause,
            plan_before=was.plan,
        )
    assert now is not None and g1 is not None
    return Action(
        "move",
        job=spec.name,
        units=len(g1) // now.unit_size,
        units_before=len(g0) // was.unit_size,
        gpus=ix.gpu_ids(g1),
        cost=cost,
        reason=reason,
        cause=cause,
        plan=now.plan,
        plan_before=was.plan,
    )


def moved(before: Holding, after: Holding) -> bool:
    """A running job's holding changed: other GPUs (or none), or another plan."""
    (g0, was), (g1, now) = before, after
    if len(g0) != len(g1) or (g0 != g1).any():
        return True
    return len(g1) > 0 and now.plan != was.plan
