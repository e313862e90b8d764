"""pydantic models of a placement (SPEC 2): the solver's output and `placer check`'s input.

Imports neither numpy nor any solver.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from placer.model.fields import NonNegInt, Number, Str


class Status(StrEnum):
    """A solve's status (SPEC 2): one vocabulary for every backend, the CLI and the files.

    ``optimal``: proven; ``feasible``: valid, not proven optimal; ``infeasible``: proven that no
    feasible placement exists; ``no_solution``: a limit was hit before any placement was found.
    A ``str`` enum: ``Status.OPTIMAL == "optimal"``.
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"

    @property
    def has_placement(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


class PlacedJob(BaseModel):
    """One job's units and GPUs in rank order."""

    model_config = ConfigDict(extra="allow")

    name: Str = Field(description="Job name.")
    units: NonNegInt = Field(description="Units placed (0 = not placed).")
    plan: Str | None = Field(
        None, description="v3: the chosen plan of a placed job that has plans (else none)."
    )
    gpus: list[Str] = Field(default_factory=list, description="GPU ids in rank order.")
    reason: Str | None = Field(None, description="Why the job has 0 (or fewer) units.")

    @model_serializer(mode="wrap")
    def _drop_null_plan(self, handler: Any) -> Any:
        # a job without plans carries no `plan` key (a v1/v2 file's output is unchanged)
        out = handler(self)
        if isinstance(out, dict) and out.get("plan", 0) is None:
            del out["plan"]
        return out


class LeaseGrant(BaseModel):
    """An accepted offer and its blocks."""

    model_config = ConfigDict(extra="allow")

    offer: Str = Field(description="Offer name.")
    blocks: list[Str] = Field(default_factory=list, description="Paths of leased domains.")
    gpus: NonNegInt | None = Field(None, description="Available GPUs leased (informative).")


class Placement(BaseModel):
    """A placement of jobs and leases (SPEC 2)."""

    model_config = ConfigDict(extra="allow")

    instance: Str | None = Field(None, description="Instance name.")
    solver: Str | None = Field(None, description="Backend that produced it.")
    status: Status | None = Field(None, description="optimal|feasible|infeasible|no_solution.")
    objective: Number | None = Field(None, description="Kernel score (SPEC 4).")
    bound: Number | None = Field(None, description="Proven upper bound, or null.")
    gap: Number | None = Field(None, description="(bound - objective) / max(|bound|, 1).")
    seconds: Number | None = Field(
        None, description="Wall-clock solve time (loading the instance not included)."
    )
    load_seconds: Number | None = Field(
        None,
        description="Wall-clock time to read, validate and expand the instance (the CLI "
        "measures it apart from the solve; null from the library).",
    )
    reason: Str | None = Field(None, description="Why there is no placement.")
    stopped: Str | None = Field(
        None,
        description="Why the solve returned with a gap (bound above objective) while its "
        "time limit had time left (what more time would not change).",
    )
    jobs: list[PlacedJob] = Field(default_factory=list, description="Placed jobs.")
    leases: list[LeaseGrant] = Field(default_factory=list, description="Accepted offers.")
    score: dict[str, Any] | None = Field(None, description="Score breakdown (SPEC 2.1).")
