"""pydantic models of a placer instance (SPEC 1.1-1.3) with SPEC's defaults.

These models check each field on its own (types, ranges, required keys). Checks that
relate fields to each other (unknown sites, levels, GPU ids, ...) live in
:mod:`placer.model.semantic` and :mod:`placer.instance_checks`.

Unknown keys are kept (and reported as warnings) except inside ``scope``,
``max_latency_us``, ``comm``, ``overlap``, ``spread`` and fabric entries, where a typo would
silently change the plan: there they are refused (SPEC 6).

Imports neither numpy nor any solver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_serializer,
)

from placer.model.fields import (
    AtLeastOne,
    Bool,
    Force,
    Fraction,
    MixTypes,
    Name,
    NonNegFloat,
    NonNegInt,
    PosFloat,
    PosInt,
    Str,
)

DIMS = ("tp", "pp", "dp", "ep")
DEFAULT_SCOPE = {"tp": "node", "pp": "site", "dp": "site", "ep": "site"}
CLUSTER = "cluster"


_INDEX_BUILDER: Callable[[Instance], Any] | None = None


def set_index_builder(build: Callable[[Instance], Any]) -> None:
    """Register how an instance's topology index is built (the kernel does, on import);
    keeps the dependency one way: kernel -> model."""
    global _INDEX_BUILDER
    _INDEX_BUILDER = build


class _Open(BaseModel):
    """Accepts unknown keys (reported as warnings by the loader)."""

    model_config = ConfigDict(extra="allow", frozen=False, validate_default=False)


class _Closed(BaseModel):
    """Refuses unknown keys: a typo here would silently change the plan."""

    model_config = ConfigDict(extra="forbid", validate_default=False)


# --------------------------------------------------------------------------- topology


class FabricEntry(_Closed):
    """The per-GPU link between two GPUs that meet at one level."""

    latency_us: NonNegFloat | None = Field(None, description="One-way latency in microseconds.")
    bandwidth_GBps: PosFloat | None = Field(
        None, description="Effective per-GPU bandwidth each way, GB/s (10^9 bytes/s)."
    )


class DomainEntry(_Open):
    """A `domains` entry: children at the next level, expanded by `count` and `shape`."""

    name: Name | None = Field(
        None, description="Child name; with `count`, the prefix of `<name><i>`. Default: level."
    )
    count: PosInt | None = Field(None, description="Number of identical children (>= 1).")
    gpu_type: Name | None = Field(None, description="GPU type of the nodes below (inherits).")
    gpus_per_node: PosInt | None = Field(None, description="GPUs per node below (inherits).")
    shape: list[PosInt] | None = Field(
        None, description="Fan-out of every deeper level down to `node`."
    )
    domains: list[DomainEntry] | None = Field(
        None, description="Explicit children at the next level (instead of `shape`)."
    )


class Site(_Open):
    """A campus: a tree of domains below it, its own fabric overrides, failures and power."""

    name: Name = Field(description="Unique site name.")
    fabric: dict[Str, FabricEntry] | None = Field(
        None, description="Per-level overrides of the topology fabric, merged field by field."
    )
    node_failures_per_day: NonNegFloat = Field(0.0, description="Failures per node per day.")
    power_cap_kW: PosFloat | None = Field(None, description="Power cap of the site, kW.")
    gpu_type: Name | None = Field(None, description="Default GPU type of its entries.")
    gpus_per_node: PosInt | None = Field(None, description="Default GPUs per node.")
    domains: list[DomainEntry] = Field(description="Children at levels[1].")


class WanLink(_Open):
    """An undirected WAN link between two sites."""

    between: list[Name] = Field(description="The two distinct sites it joins.")
    latency_us: NonNegFloat = Field(description="One-way latency in microseconds.")
    bandwidth_GBps: PosFloat = Field(description="Whole-link capacity each way, GB/s.")
    failures_per_day: NonNegFloat = Field(0.0, description="Link failures per day.")


class Topology(_Open):
    """Levels, fabric, sites, WAN and unavailable parts."""

    levels: list[Str] = Field(description="Level names, widest first: site ... node.")
    fabric: dict[Str, FabricEntry] = Field(
        default_factory=dict, description="Per-level fabric shared by all sites."
    )
    sites: list[Site] = Field(description="The sites (campuses).")
    wan: list[WanLink] = Field(default_factory=list, description="WAN links between sites.")
    unavailable: list[Str] = Field(
        default_factory=list, description="Paths of domains, nodes or GPUs that cannot be used."
    )


class GpuType(_Open):
    """Power and speed of one GPU type."""

    power_kW: PosFloat | None = Field(None, description="Power per GPU, kW (for power caps).")
    speed: PosFloat = Field(1.0, description="Work per hour relative to the reference GPU.")
    memory_GB: PosFloat | None = Field(
        None,
        description="Extension (not SPEC): HBM per GPU, GB (10^9 bytes), for plans derived "
        "from a model description; the bundled catalogue is used where it is not given.",
    )


# --------------------------------------------------------------------------- jobs


class Scope(_Closed):
    """Widest domain level (or `cluster`) a group of each dimension may span."""

    tp: Str | None = Field(None, description="Scope of TP groups (default node).")
    pp: Str | None = Field(None, description="Scope of PP chains (default site).")
    dp: Str | None = Field(None, description="Scope of DP groups (default site).")
    ep: Str | None = Field(None, description="Scope of EP groups (default site).")


class MaxLatency(_Closed):
    """Per-dimension bound on the link latency of every pair of a group (us)."""

    tp: NonNegFloat | None = Field(None, description="Bound for TP groups, us.")
    pp: NonNegFloat | None = Field(None, description="Bound for PP chains, us.")
    dp: NonNegFloat | None = Field(None, description="Bound for DP groups, us.")
    ep: NonNegFloat | None = Field(None, description="Bound for EP groups, us.")


class Comm(_Closed):
    """Per-step, per-rank message sizes (MB) and collective counts of each dimension."""

    tp_MB: NonNegFloat = Field(0.0, description="TP all-reduce size per rank per step, MB.")
    tp_messages: PosFloat = Field(1.0, description="TP collectives per step.")
    pp_MB: NonNegFloat = Field(0.0, description="PP boundary message per step, MB.")
    pp_messages: PosFloat = Field(1.0, description="PP messages per step.")
    dp_MB: NonNegFloat = Field(0.0, description="DP all-reduce size per rank per step, MB.")
    dp_messages: PosFloat = Field(1.0, description="DP collectives per step.")
    ep_MB: NonNegFloat = Field(0.0, description="EP all-to-all size per rank per step, MB.")
    ep_messages: PosFloat = Field(1.0, description="EP collectives per step.")


class Overlap(_Closed):
    """Share of each dimension's collective time hidden by compute, in [0, 1]."""

    tp: Fraction = Field(0.0, description="Hidden share of TP time.")
    pp: Fraction = Field(0.0, description="Hidden share of PP time.")
    dp: Fraction = Field(0.0, description="Hidden share of DP time.")
    ep: Fraction = Field(0.0, description="Hidden share of EP time.")


class Spread(_Closed):
    """An inference job's units touch at least `min` domains of `level`."""

    level: Str = Field(description="A topology level (not `cluster`).")
    min: PosInt = Field(description="Least number of distinct domains (>= 1).")


# the keys a plan may give (SPEC 1.2, v3); each replaces the job's own value wholesale
PLAN_KEYS = (
    "tp",
    "pp",
    "dp",
    "min_dp",
    "ep",
    "replicas",
    "min_replicas",
    "microbatches",
    "scope",
    "max_latency_us",
    "comm",
    "overlap",
    "compute_ms",
    "cross_site_every",
    "gpu_types",
    "mix_types",
    "value",
)
# keys whose value may not be null in a plan (the job's field has no null)
_NOT_NULL = ("tp", "pp", "ep", "scope", "max_latency_us", "comm", "overlap", "cross_site_every")


class Plan(_Closed):
    """v3: one way to run a job. Each key it gives replaces the job's own value of that key
    wholesale (a plan's `comm` replaces the job's whole `comm`); unknown keys are refused:
    a plan changes how a job runs, never what it is."""

    name: Name = Field(description="Plan name, unique within the job.")
    tp: PosInt | None = Field(None, description="Tensor-parallel degree under this plan.")
    pp: PosInt | None = Field(None, description="Pipeline stages under this plan.")
    dp: PosInt | None = Field(None, description="Training: most units under this plan.")
    min_dp: NonNegInt | None = Field(None, description="Training: least units under this plan.")
    ep: PosInt | None = Field(None, description="Expert-parallel group size in units.")
    replicas: PosInt | None = Field(None, description="Inference: most units.")
    min_replicas: NonNegInt | None = Field(None, description="Inference: least units.")
    microbatches: PosInt | None = Field(
        None, description="Microbatches per step (the 1F1B bubble with pp > 1)."
    )
    scope: Scope | None = Field(None, description="Widest domain per dimension.")
    max_latency_us: MaxLatency | None = Field(
        None, description="Pairwise latency bound per dimension, us."
    )
    comm: Comm | None = Field(None, description="Message sizes and counts per step.")
    overlap: Overlap | None = Field(None, description="Hidden share per dimension.")
    compute_ms: PosFloat | None = Field(None, description="Step time with free communication.")
    cross_site_every: AtLeastOne | None = Field(
        None, description="The WAN phase of cross-site collectives runs once every this many steps."
    )
    gpu_types: list[Name] | None = Field(None, description="Allowed GPU types.")
    mix_types: MixTypes = Field(False, description="v2 mix_types under this plan.")
    value: NonNegFloat | None = Field(None, description="vu per GPU-hour of goodput.")

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _no_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("must not be null in a plan (leave the key out to keep the job's)")
        return v

    def given(self) -> dict[str, Any]:
        """The keys this plan gives (those written in the file), with their values."""
        return {k: getattr(self, k) for k in PLAN_KEYS if k in self.model_fields_set}

    @model_serializer(mode="wrap")
    def _only_given(self, handler: Any) -> Any:
        # a plan's meaning is the keys it gives: a dump (whatever its options) writes those
        # alone, so that reading it back gives the same plan (a default such as
        # `mix_types: false` written out would replace the job's own value)
        out = handler(self)
        if isinstance(out, dict):
            keep = self.model_fields_set | {"name"}
            out = {k: v for k, v in out.items() if k in keep}
            # an explicit null is a key the plan gives (`min_dp: null` = the plan's dp): it
            # stays, also in a dump that leaves out None values
            for k in self.model_fields_set - out.keys():
                if getattr(self, k) is None:
                    out[k] = None
        return out


class Job(_Open):
    """A training or inference job: k units of tp*pp GPUs."""

    name: Name = Field(description="Unique job name.")
    kind: Literal["training", "inference"] = Field(description="training | inference.")
    gpu_types: list[Name] | None = Field(None, description="Allowed GPU types; default any.")
    mix_types: MixTypes = Field(
        False,
        description="v2: false | slowest | balanced. Units may be of different allowed types "
        "(each unit one type); the job's speed is the slowest type's (slowest) or the "
        "GPU-weighted mean (balanced).",
    )
    tp: PosInt = Field(1, description="Tensor-parallel degree (ranks per TP group).")
    pp: PosInt = Field(1, description="Pipeline stages.")
    dp: PosInt | None = Field(None, description="Training: most units (data-parallel degree).")
    min_dp: NonNegInt | None = Field(None, description="Training: least units; default dp.")
    ep: PosInt = Field(1, description="Expert-parallel group size in units.")
    replicas: PosInt | None = Field(None, description="Inference: most units.")
    min_replicas: NonNegInt | None = Field(None, description="Inference: least units.")
    scope: Scope = Field(default_factory=Scope, description="Widest domain per dimension.")
    max_latency_us: MaxLatency = Field(
        default_factory=MaxLatency, description="Pairwise latency bound per dimension, us."
    )
    comm: Comm = Field(default_factory=Comm, description="Message sizes and counts per step.")
    cross_site_every: AtLeastOne = Field(
        1.0, description="The WAN phase of cross-site collectives runs once every this many steps."
    )
    compute_ms: PosFloat | None = Field(None, description="Step time with free communication.")
    overlap: Overlap = Field(default_factory=Overlap, description="Hidden share per dimension.")
    value: NonNegFloat | None = Field(
        None, description="vu per GPU-hour of goodput (required; with plans, from each plan)."
    )
    restart_min: NonNegFloat = Field(0.0, description="Minutes lost per interruption.")
    checkpoint_interval_min: NonNegFloat = Field(0.0, description="Checkpoint interval, min.")
    remaining_hours: PosFloat | None = Field(None, description="Hours of work left.")
    current: list[Str] | None = Field(None, description="Running job: GPU ids in rank order.")
    pinned: Bool = Field(False, description="Running and pinned: keeps exactly `current`.")
    preemptible: Bool = Field(True, description="False: a running job must stay placed.")
    migration_cost: NonNegFloat = Field(0.0, description="vu charged if moved or stopped.")
    spread: Spread | None = Field(None, description="Inference: least domains touched.")
    microbatches: PosInt | None = Field(
        None,
        description="v3, training: microbatches per step of a pipelined job; with pp > 1 the "
        "1F1B pipeline bubble (pp - 1)/microbatches of the compute time is charged.",
    )
    plans: list[Plan] | None = Field(
        None, description="v3: alternative parallelisations; a placed job runs exactly one."
    )
    current_plan: Name | None = Field(
        None, description="v3: the plan a running job with plans runs now."
    )

    # set on the job under a plan (:meth:`under`): the plan's name
    _plan: str | None = PrivateAttr(default=None)

    # ------------------------------------------------------------------ plans (v3)
    @property
    def plan(self) -> str | None:
        """The plan this job object runs under (None for a job without plans, or for a job
        with plans not yet put under one)."""
        return self._plan

    def plan_index(self, name: str | None) -> int | None:
        """Index of the plan called `name` among the job's plans (None if there is none)."""
        for k, p in enumerate(self.plans or []):
            if p.name == name:
                return k
        return None

    @property
    def default_plan(self) -> int | None:
        """The plan a job with plans is taken under when none is chosen: its `current_plan`
        when running, else its first plan (None for a job without plans)."""
        if not self.plans:
            return None
        if self.current and self.current_plan is not None:
            k = self.plan_index(self.current_plan)
            if k is not None:
                return k
        return 0

    def under(self, k: int | None) -> Job:
        """The job under its plan k (SPEC 1.2, v3): each key the plan gives replaces the
        job's own value wholesale, then the defaults apply. A job without plans (or
        k None) is returned as is. The result has no `plans` and reports its plan's name as
        :attr:`plan`; `current`, `current_plan` and every other key stay the job's."""
        if k is None or not self.plans:
            return self
        p = self.plans[k]
        out = self.model_copy(update={**p.given(), "plans": None})
        out._plan = p.name
        return out

    def variants(self) -> list[Job]:
        """The job under each of its plans (the job itself when it has none)."""
        if not self.plans:
            return [self]
        return [self.under(k) for k in range(len(self.plans))]

    @property
    def plan_changed(self) -> bool:
        """True for a running job under a plan other than its `current_plan` (a move)."""
        return bool(self.current) and self._plan is not None and self._plan != self.current_plan

    @property
    def units_max(self) -> int:
        """Most units wanted (dp or replicas)."""
        return (self.dp if self.kind == "training" else self.replicas) or 0

    @property
    def units_min(self) -> int:
        """Least units when placed (min_dp or min_replicas, defaulting to the maximum)."""
        if self.kind == "training":
            return self.units_max if self.min_dp is None else self.min_dp
        return self.units_max if self.min_replicas is None else self.min_replicas

    @property
    def unit_size(self) -> int:
        """GPUs per unit (tp * pp)."""
        return self.tp * self.pp

    @property
    def unit_step(self) -> int:
        """Units come in multiples of this (ep for training, 1 for inference)."""
        return self.ep if self.kind == "training" else 1

    @property
    def running(self) -> bool:
        """True when the job has a non-empty `current`."""
        return bool(self.current)

    def effective_scope(self) -> dict[str, str | None]:
        """Scope per dimension after SPEC 6's merging (None = no level bound)."""
        out: dict[str, str | None] = {}
        for d in DIMS:
            explicit = getattr(self.scope, d)
            if explicit is not None:
                out[d] = explicit
            elif getattr(self.max_latency_us, d) is not None:
                out[d] = None
            else:
                out[d] = DEFAULT_SCOPE[d]
        return out


# --------------------------------------------------------------------------- leases


class Offer(_Open):
    """An outside tenant's offer to lease whole blocks."""

    name: Name = Field(description="Unique offer name.")
    price_per_gpu_hour: NonNegFloat = Field(description="vu per available GPU-hour.")
    min_gpus: NonNegInt = Field(0, description="Least leased GPUs if accepted.")
    max_gpus: NonNegInt | None = Field(None, description="Most leased GPUs; default unbounded.")
    level: Str | None = Field(None, description="Level of its blocks; default leases.level.")
    sites: list[Name] | None = Field(None, description="Sites its blocks may be in.")
    gpu_types: list[Name] | None = Field(None, description="Allowed GPU types of its blocks.")
    single_site: Bool = Field(False, description="All its blocks in one site.")
    committed_blocks: list[Str] | None = Field(
        None, description="Blocks under a signed contract: the offer is accepted with them."
    )
    force: Force = Field(
        None,
        description="v2: accept | decline | null. The offer must be accepted (blocks chosen "
        "by the solver) or must not be; null leaves the choice to the solver.",
    )


class Leases(_Open):
    """Lease offers and their default block level."""

    level: Str = Field("site", description="Default level of a leasable block.")
    offers: list[Offer] = Field(default_factory=list, description="The offers.")


# --------------------------------------------------------------------------- instance


class Instance(_Open):
    """A whole placer instance (SPEC 1)."""

    name: Str = Field(description="Instance name.")
    horizon_hours: PosFloat = Field(720.0, description="Planning horizon, hours (> 0).")
    topology: Topology = Field(description="Levels, fabric, sites, WAN.")
    gpu_types: dict[Name, GpuType] = Field(
        default_factory=dict, description="Power and speed per GPU type."
    )
    jobs: list[Job] = Field(description="Jobs to place (may be empty).")
    leases: Leases | None = Field(None, description="Lease offers.")

    _warnings: list[str] = PrivateAttr(default_factory=list)
    _index: Any = PrivateAttr(default=None)
    # the solvers' virtual instance of one job per plan (v3) keeps its groups here
    # (:mod:`placer.solvers.plans`); None for an instance read from a file
    _plan_groups: Any = PrivateAttr(default=None)

    @property
    def warnings(self) -> list[str]:
        """Warnings found while loading (unknown keys, jobs that fit nowhere, ...)."""
        return self._warnings

    @property
    def index(self) -> Any:
        """The expanded topology (:class:`placer.kernel.topology.TopologyIndex`), built once.

        The model does not import the kernel: the kernel registers its builder with
        :func:`set_index_builder` when it is imported (``import placer`` does)."""
        if self._index is None:
            if _INDEX_BUILDER is None:
                raise RuntimeError("no topology index builder: import placer.kernel first")
            self._index = _INDEX_BUILDER(self)
        return self._index

    def job(self, name: str) -> Job:
        """The job called `name` (KeyError if none)."""
        for j in self.jobs:
            if j.name == name:
                return j
        raise KeyError(name)

    def speed_of(self, gpu_type: str) -> float:
        """Speed of a GPU type (1 when not described)."""
        t = self.gpu_types.get(gpu_type)
        return t.speed if t is not None else 1.0

    @property
    def offers(self) -> list[Offer]:
        """Lease offers (empty when there is no `leases`)."""
        return self.leases.offers if self.leases else []

    def offer_level(self, offer: Offer) -> str:
        """Block level of an offer."""
        return offer.level or (self.leases.level if self.leases else "site")
