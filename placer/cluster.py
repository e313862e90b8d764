"""A live cluster for schedulers: place one arriving job in milliseconds, release finished
ones, repair failures, re-plan, and hand out the state as plain SPEC documents.

State model
- Immutable: the instance's topology index (:class:`~placer.kernel.topology.TopologyIndex`,
  dense arrays), built once. A failure or a restore derives a copy that shares every array
  but the availability (and, for WAN links, the WAN part).
- Per cycle, kept apart: the free mask, power left per site, leased blocks, failed hardware,
  each running job's GPUs (rank order) and an incremental score: the kernel's
  :class:`~placer.kernel.score.Scorer` caches every job's value and re-evaluates only the
  jobs whose GPUs change or that share a WAN link whose sharer count changes.
- The running jobs are the live state's jobs; a job that is not running is not part of it
  (submit it). A running job's spec keeps its flags (pinned, preemptible, migration_cost).
- SPEC v3 plans: each running job's live slot is the job *under the plan it runs* (a plain
  job: its tp, pp, dp, comm, ... are the plan's), so the packer, the checker's rules and the
  scorer see the plan's shape; the spec keeps its `plans`. A snapshot writes the plan as
  `current_plan` (and `plan` in the placement). A slot changes plan only while it holds no
  GPUs (``_set_plan``), so the scorer never mixes shapes.

Algorithm overview
- :meth:`Cluster.submit`: candidates for the one job around what runs (the greedy's packer:
  per GPU type, site and layout the most units one allowed domain holds, within power),
  each scored exactly with ``Scorer.delta``; the best is taken when it raises the objective.
  A job with plans gets the candidates of every plan, scored alike: the plan is chosen with
  the GPUs (ties keep the earlier plan). With ``allow_moves=K``, the K lowest-value
  preemptible jobs holding the job's GPU types are tried as victims (1, 2, .. K of them):
  removed, the job placed, each victim put back at its best candidate under any of its
  plans (a move) or left out (a stop); an option is kept when its objective change less
  the victims' migration costs beats placing without moves and its migration cost is
  within ``max_migration_cost``.
- :meth:`Cluster.fail`: the failed GPUs (or WAN links) leave the index; the jobs they break
  are repaired in priority order (pinned, then not preemptible, then value): (a) inside the
  job's own domain, replace only the broken units by free units nearest the job, or drop
  them when the job is elastic; (b) re-place the whole job inside the same domain (Kueue's
  rule); (c) anywhere; (c') a job with plans that fits nowhere under its plan is
  re-placed under its best other plan; (d) a job that must stay (pinned or not
  preemptible) may stop preemptible jobs, lowest value first (it and they may then run
  any of their plans), which are then re-placed when they fit; a preemptible job that fits
  nowhere is stopped. Leases keep their blocks; an offer left under its min_gpus leases
  another whole free block, or records the shortfall.
- :meth:`Cluster.replan`: a full solve of :meth:`snapshot` (running jobs are `current` and
  `current_plan`, so the solve is warm-started from them and charges migration, a plan
  change included); adopted only when it beats the live objective.

Guarantee: every operation validates the changed state before committing it (rules 1-5 for
every job it changes; disjointness, availability, leases and power over the whole state; or
the whole checker with ``verify="full"``). A failed validation is a bug: the state rolls
back and :class:`~placer.errors.SolverError` is raised.

Imports the model, the kernel, the checker and the solvers' packing; never the CLI.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from placer.check import Violation, check_compiled, rule6_leases
from placer.errors import (
    ArgumentTypeError,
    ConflictError,
    InstanceError,
    PlacementError,
    SolverError,
    UnknownJobError,
    UsageError,
)
from placer.io import _pydantic_problems
from placer.kernel.capacity import allowed_types, wan_components
from placer.kernel.compiled import Compiled, compile_placement
from placer.kernel.score import Score, Scorer, job_hours, zero_job
from placer.live.results import Action, ActionCause, Change, Decision
from placer.model import Instance, Job, Placement
from placer.model.semantic import check_structure
from placer.solvers.decomposition.construct import State, scope_ok

__all__ = ["Action", "ActionCause", "Change", "Cluster", "Decision", "unavailable_paths"]

_EMPTY = np.zeros(0, np.int64)
# a submit's option: (objective change less migration, [(slot, gpus, plan)], displacements)
_Option = tuple[float, list[tuple[int, np.ndarray, "int | None"]], list["Action"]]


# --------------------------------------------------------------------------- results
# --------------------------------------------------------------------------- helpers
def unavailable_paths(index, unavailable: np.ndarray) -> list[str]:
    """The fewest domain paths and GPU ids that name exactly the GPUs in `unavailable`
    bool (G,): whole domains where a domain is wholly unavailable, GPU ids elsewhere."""
    L = index.n_levels
    out: list[str] = []
    covered_prev: np.ndarray | None = None
    for lvl in range(L):
        n = index.n_domains(lvl)
        cnt = np.bincount(index.dom[lvl][unavailable], minlength=n)
        size = np.diff(index.first_gpu[lvl])
        full = (cnt == size) & (size > 0)
        above = np.zeros(n, bool) if covered_prev is None else covered_prev[index.parent[lvl]]
        listed = full & ~above
        out.extend(index.domain_path(lvl, int(d)) for d in np.flatnonzero(listed))
        covered_prev = above | listed
    rest = unavailable & ~covered_prev[index.gpu_node]
    out.extend(index.gpu_ids(np.flatnonzero(rest)))
    return out


def _instance_of(instance: Any) -> Instance:
    if isinstance(instance, (str, Path, dict)) and not isinstance(instance, bool):
        from placer.api import load_instance

        instance = load_instance(instance)
    if not isinstance(instance, Instance):
        raise ArgumentTypeError(
            f"instance: expected a placer.Instance, got {type(instance).__name__}"
        )
    return instance


def _density(inst: Instance, job: Job) -> float:
    """Value per GPU-hour at the fastest allowed type (job: under its plan)."""
    ix = inst.index
    types = allowed_types(inst, ix, job)
    speed = max((float(ix.type_speed[t]) for t in types), default=1.0)
    return (job.value or 0.0) * speed


def _job_doc(job: Job) -> dict[str, Any]:
    """A job as a SPEC 1.2 document that loads back to the same job: each plan written with
    the keys it gives only (a plan's defaults, e.g. ``mix_types: false``, would replace the
    job's own value when read back)."""
    d = job.model_dump(mode="json", exclude_none=True)
    if job.plans:
        d["plans"] = [p.model_dump(mode="json", exclude_unset=True) for p in job.plans]
    return d


def _under(spec: Job, k: int | None) -> Job:
    """The live slot of a job: the job under its plan k (SPEC 1.2, v3; k None: its default
    plan), not running (its GPUs are the live state's)."""
    if spec.plans:
        spec = spec.under(spec.default_plan if k is None else k)
    return spec.model_copy(update={"current": None})


def _plan_choices(spec: Job) -> list[int | None]:
    """The plans a job may run: each of its plans (v3), or [None] without plans."""
    return list(range(len(spec.plans))) if spec.plans else [None]


def _join_reasons(spec: Job, reasons: list[str]) -> str:
    """One reason for a job with plans from each plan's (as a solve words it)."""
    if len(reasons) == 1:
        return reasons[0]
    if len(set(reasons)) == 1:
        return f"under every plan: {reasons[0]}"
    names = [p.name for p in spec.plans or []]
    return "no plan fits: " + "; ".join(f"plan {n!r}: {w}" for n, w in zip(names, reasons))


# --------------------------------------------------------------------------- the cluster
class Cluster:
    """A live cluster: running jobs, leases and failed hardware over one instance's
    topology (see the module overview).

    Parameters
    ----------
    instance : a loaded :class:`~placer.Instance` (or a path / dict, loaded here).
    placement : optional :class:`~placer.Placement`, SPEC 2 dict or solve
        :class:`~placer.Result`: its placed jobs run where it puts them (under the `plan`
        it names, SPEC v3) and its leases hold. It must pass the checker. Without it the
        jobs with `current` run there under their `current_plan` (a job whose `current`
        breaks a rule now is placed afresh, under any of its plans) and committed or forced
        offers are leased. Jobs with no GPUs are not part of the live state: submit them.
    verify : ``"changed"`` (default: every operation checks what it changed, plus the
        whole state's disjointness, leases and power) or ``"full"`` (the whole checker after
        every operation; slower on large clusters).
    failed : optional hardware that has failed already (the items of :meth:`fail`, e.g.
        :attr:`failed` of another cluster): it is unavailable from the start and nothing is
        repaired, so the placement (or the jobs' `current`) must avoid it; an offer its
        failure leaves short of ``min_gpus`` keeps what it has. :meth:`restore` brings it
        back.

    Examples
    --------
    >>> c = Cluster(inst, placer.solve(inst).placement)  # doctest: +SKIP
    >>> d = c.submit({"name": "new", "kind": "training", "dp": 8, "value": 2})  # doctest: +SKIP
    >>> d.placed, d.units, d.delta  # doctest: +SKIP
    """

    def __init__(
        self,
        instance: Any,
        placement: Any = None,
        *,
        verify: str = "changed",
        failed: list[Any] | None = None,
    ) -> None:
        self._build(_instance_of(instance), placement, verify, failed, None)

    def _build(
        self,
        instance: Instance,
        placement: Any,
        verify: str,
        failed: list[Any] | None,
        restored: list[str] | None,
    ) -> None:
        if verify not in ("changed", "full"):
            raise UsageError(f"verify: expected 'changed' or 'full', got {verify!r}")
        self._verify_mode = verify
        self._base = base = instance
        bix = base.index
        self._avail = bix.available.copy()
        self._avail.flags.writeable = False
        self._links_up = np.ones(len(base.topology.wan), bool)
        self._min_override: dict[int, int] = {}
        self._added_blocks: list[set[tuple[int, int]]] = [set() for _ in base.offers]
        self._slots: list[Job] = []
        self._spec: dict[str, Job] = {}  # name -> the job as submitted (flags kept)
        self._slot: dict[str, int] = {}
        self._tombstones = 0
        self.history: list[Change] = []
        if failed or restored:
            avail = self._avail.copy()
            if restored:  # unavailable in the instance, restored since
                avail |= self._parse_items(restored, "state.restored")[0]
            if failed:
                mask, links = self._parse_items(failed, "failed")
                avail &= ~mask
                self._links_up[links] = False
            avail.flags.writeable = False
            self._avail = avail
        if placement is not None:
            self._init_from_placement(placement)
        else:
            self._init_from_current()
        self._verify(set(range(len(self._slots))), full=True)

    # ------------------------------------------------------------------ building
    def _init_from_placement(self, placement: Any) -> None:
        from placer.api import _placement_arg

        if hasattr(placement, "placement") and not isinstance(placement, (dict, Placement)):
            if placement.placement is None:
                raise UsageError(f"placement: the result has no placement ({placement.reason})")
            placement = placement.placement
        pl = _placement_arg(placement)
        base = self._base
        cp = compile_placement(base, pl)
        if cp.problems:
            raise PlacementError([(p.loc, p.what) for p in cp.problems])
        failures = not (self._avail == base.index.available).all() or not self._links_up.all()
        if not failures:
            bad = check_compiled(base, cp)
            if bad:
                raise PlacementError([("placement", str(v)) for v in bad])
        gpus = []
        for j, (job, g) in enumerate(zip(base.jobs, cp.job_gpus)):
            if len(g):
                self._register(job, cp.job_plans[j] if cp.job_plans is not None else None)
                gpus.append(np.asarray(g, np.int64))
        if failures:
            # an offer the failures left short keeps what it has (as after `fail`)
            for o, offer in enumerate(base.offers):
                if cp.offer_blocks[o]:
                    n = sum(
                        int(self._avail[slice(*base.index.gpu_range(lv, d))].sum())
                        for lv, d in cp.offer_blocks[o]
                    )
                    if n < offer.min_gpus:
                        self._min_override[o] = n
        self._rebuild(gpus, cp.offer_blocks)
        if failures:  # checked against the hardware as failed
            bad = check_compiled(self._inst, self._compiled())
            if bad:
                raise PlacementError([("placement", str(v)) for v in bad])

    def _init_from_current(self) -> None:
        base = self._base
        ix = base.index
        order = sorted(
            (j for j, job in enumerate(base.jobs) if job.current),
            key=lambda j: (
                not base.jobs[j].pinned,
                base.jobs[j].preemptible,
                -_density(base, _under(base.jobs[j], None)),
                base.jobs[j].name,
            ),
        )
        blocks: list[list[tuple[int, int]]] = [[] for _ in base.offers]
        for o, offer in enumerate(base.offers):
            for path in offer.committed_blocks or []:
                blocks[o].append(ix.resolve(path))
        self._rebuild([], blocks)
        st = self._st
        for o, offer in enumerate(base.offers):
            if offer.force == "accept" and not st.offer_blocks[o]:
                st.lease_greedy(o)
        for j in order:
            job = base.jobs[j]
            cur = ix.cached_indices(job.current)
            k = self._add_slot(job)
            if st.fits(k, cur):
                self._set_job(k, cur)
                continue
            g, _, plan = self._best_any_plan(k)
            if g is not None:
                self._set_plan(k, plan)
                self._set_job(k, g)
            elif job.pinned or not job.preemptible:
                raise InstanceError(
                    [(f"jobs[{j}]", "running and not preemptible, but no room is left for it")]
                )
            else:
                self._drop_slot(k)
        # compact: the offers' blocks as leased now
        self._rebuild(list(st.job_gpus), st.offer_blocks)

    def _register(self, job: Job, plan: int | None = None) -> None:
        self._spec[job.name] = job
        self._slot[job.name] = len(self._slots)
        self._slots.append(_under(job, plan))

    def _live_offers(self, blocks: list[list[tuple[int, int]]]) -> Any:
        """The instance's leases with every accepted offer's blocks committed (min_gpus
        lowered where failed hardware left it short)."""
        base = self._base
        if base.leases is None:
            return None
        ix = base.index
        offers = []
        for o, offer in enumerate(base.offers):
            upd: dict[str, Any] = {}
            if blocks[o]:
                upd["committed_blocks"] = [ix.domain_path(lv, d) for lv, d in blocks[o]]
                upd["force"] = None
            if o in self._min_override:
                upd["min_gpus"] = self._min_override[o]
            offers.append(offer.model_copy(update=upd) if upd else offer)
        return base.leases.model_copy(update={"offers": offers})

    def _rebuild(
        self, job_gpus: list[np.ndarray], offer_blocks: list[list[tuple[int, int]]]
    ) -> None:
        """(Re)create the live instance, index and state from the logical state (slots,
        their GPUs, blocks, availability, links). Tombstoned slots are compacted away."""
        keep = [j for j, job in enumerate(self._slots) if self._slot.get(job.name) == j]
        if len(keep) != len(self._slots):
            self._slots = [self._slots[j] for j in keep]
            job_gpus = [job_gpus[j] for j in keep]
            self._slot = {job.name: k for k, job in enumerate(self._slots)}
            self._tombstones = 0
        base = self._base
        wan = [w for w, up in zip(base.topology.wan, self._links_up) if up]
        topo = base.topology.model_copy(update={"wan": wan})
        inst = base.model_copy(
            update={
                "jobs": self._slots,
                "topology": topo,
                "leases": self._live_offers(offer_blocks),
            }
        )
        index = base.index.derive(
            available=self._avail, wan_from=None if self._links_up.all() else inst
        )
        inst._index = index
        self._inst = inst
        self._st = State(inst, (job_gpus, offer_blocks))

    def _add_slot(self, job: Job, plan: int | None = None) -> int:
        self._spec[job.name] = job
        self._slot[job.name] = len(self._slots)
        self._slots.append(_under(job, plan))
        st = self._st
        st.job_gpus.append(_EMPTY)
        return st.scorer.add_job()

    # ------------------------------------------------------------------ plans (v3)
    def _plan_index(self, j: int) -> int | None:
        """The index of slot j's plan among its job's plans (None: a job without plans)."""
        return self._spec[self._slots[j].name].plan_index(self._slots[j].plan)

    def _set_plan(self, j: int, k: int | None) -> None:
        """Put slot j (which holds no GPUs) under its job's plan k: the live instance, the
        state's candidates and the scorer see the job under that plan from now on."""
        name = self._slots[j].name
        spec = self._spec[name]
        if not spec.plans or k == self._plan_index(j):
            return
        st = self._st
        if len(st.job_gpus[j]):
            raise SolverError(f"job {name!r} changes plan while holding GPUs (a bug)")
        job = _under(spec, k)
        self._slots[j] = job  # the live instance's job list is this list
        st.scorer.jobs[j] = job
        st.scorer.scores[j] = zero_job(job)

    def _best_any_plan(
        self, j: int, sites: bool = False
    ) -> tuple[np.ndarray | None, float, int | None]:
        """The best candidate of slot j (holding no GPUs) under any of its job's plans, by
        the kernel's exact delta: ``(gpus, delta, plan)``; the slot is left under its plan
        as it was. Ties keep the earlier plan (the current one first)."""
        st = self._st
        k0 = self._plan_index(j)
        order = _plan_choices(self._spec[self._slots[j].name])
        if k0 is not None:
            order = [k0] + [k for k in order if k != k0]
        best: tuple[np.ndarray | None, float, int | None] = (None, -math.inf, k0)
        for k in order:
            self._set_plan(j, k)
            job = self._slots[j]
            cands = st.candidates(j, sites=self._useful_sites(job) if sites else None)
            g, d = st.best_candidate(j, cands)
            if g is not None and d > best[1] + 1e-9:
                best = (g, d, k)
        self._set_plan(j, k0)
        return best

    def _set_job(self, j: int, gpus: np.ndarray) -> None:
        """Slot j holds `gpus` now; a failed GPU it held never comes back free."""
        st = self._st
        old = st.job_gpus[j]
        st.set_job(j, gpus)
        if len(old):
            st.free[old] &= st.ix.available[old]

    def _drop_slot(self, j: int) -> None:
        """Forget the job of slot j (its GPUs must be released): popped when last, else a
        tombstone compacted on the next rebuild."""
        st = self._st
        name = self._slots[j].name
        del self._slot[name]
        del self._spec[name]
        if j == len(self._slots) - 1:
            self._slots.pop()
            st.job_gpus.pop()
            st.scorer.remove_last_job()
        else:
            self._tombstones += 1

    # ------------------------------------------------------------------ transactions
    def _save(self) -> tuple:
        st = self._st
        return (
            list(self._slots),
            dict(self._slot),
            dict(self._spec),
            list(st.job_gpus),
            [list(b) for b in st.offer_blocks],
            self._avail,
            self._links_up.copy(),
            dict(self._min_override),
            [set(s) for s in self._added_blocks],
        )

    def _restore_saved(self, saved: tuple) -> None:
        (
            self._slots,
            self._slot,
            self._spec,
            gpus,
            blocks,
            self._avail,
            self._links_up,
            self._min_override,
            self._added_blocks,
        ) = saved
        self._tombstones = 0
        self._rebuild(gpus, blocks)

    def _verify(self, changed: set[int], full: bool = False, leases: bool = True) -> None:
        """Raise :class:`SolverError` if the state breaks a rule (see the module docs).

        ``changed`` mode: rules 1-5 for every changed job; over the whole state, no GPU held
        twice, none unavailable, none inside a leased block, no site's power (tracked
        incrementally) over its cap, musts placed; rule 6 too when `leases` may have
        changed. ``full``: the whole checker, plus rule 7 recounted from scratch."""
        st, inst, ix = self._st, self._inst, self._inst.index
        problems: list[str] = []
        live = set(self._slot.values())
        if full or self._verify_mode == "full":
            cp = self._compiled()
            problems += [str(v) for v in check_compiled(inst, cp)]
        else:
            for j in sorted(changed & live):
                g = st.job_gpus[j]
                if len(g) and not scope_ok(inst, j, g):
                    problems.append(f"job {self._slots[j].name!r} breaks a rule of 1-5")
            held = [st.job_gpus[j] for j in live if len(st.job_gpus[j])]
            if held:
                used = np.concatenate(held)
                cnt = np.bincount(used, minlength=ix.n_gpus)
                if (cnt > 1).any():
                    problems.append(f"GPU {ix.gpu_id(int(np.argmax(cnt > 1)))!r} used twice")
                if not ix.available[used].all():
                    problems.append("a job holds an unavailable GPU")
                for blocks in st.offer_blocks:
                    for level, d in blocks:
                        a, b = ix.gpu_range(level, d)
                        if cnt[a:b].any():
                            problems.append(
                                f"a job holds a GPU of leased {ix.domain_path(level, d)!r}"
                            )
            over = np.flatnonzero(st.power_left < -1e-6 * np.maximum(1.0, ix.power_cap_kW))
            for s in over:
                problems.append(f"site {ix.site_names[int(s)]!r} over its power cap")
            if leases:
                problems += [str(v) for v in rule6_leases(inst, self._compiled())]
        for j in live:
            job = self._slots[j]
            if not job.preemptible and len(st.job_gpus[j]) == 0:
                problems.append(f"job {job.name!r} must stay placed but has no GPUs")
        if problems:
            raise SolverError("the cluster state would break SPEC 3: " + "; ".join(problems))

    def _compiled(self) -> Compiled:
        st = self._st
        gpus = [
            st.job_gpus[j] if self._slot.get(job.name) == j else _EMPTY
            for j, job in enumerate(self._slots)
        ]
        units = [len(g) // job.unit_size for g, job in zip(gpus, self._slots)]
        return Compiled(gpus, [list(b) for b in st.offer_blocks], units)

    def _commit(self, saved: tuple, changed: set[int], leases: bool = True) -> None:
        try:
            self._verify(changed, leases=leases)
        except SolverError:
            self._restore_saved(saved)
            raise
        if self._tombstones > max(32, len(self._slot)):
            self._rebuild(list(self._st.job_gpus), self._st.offer_blocks)

    # ------------------------------------------------------------------ reading
    @property
    def objective(self) -> float:
        """The kernel's objective of the live state (SPEC 4), from the incremental score."""
        return float(self._st.scorer.objective)

    @property
    def jobs(self) -> dict[str, int]:
        """Running jobs and their units, in the order they started."""
        st = self._st
        return {
            job.name: len(st.job_gpus[j]) // job.unit_size
            for j, job in enumerate(self._slots)
            if self._slot.get(job.name) == j
        }

    def job_gpus(self, name: str) -> list[str]:
        """GPU ids of a running job in rank order."""
        return self._st.ix.gpu_ids(self._st.job_gpus[self._slot_of(name)])

    @property
    def free_gpus(self) -> int:
        """Available GPUs held by no job and no lease."""
        return int(self._st.free.sum())

    @property
    def failed(self) -> list[str]:
        """Failed hardware as paths (domains, nodes, GPUs) and WAN links."""
        ix = self._base.index
        newly = ix.available & ~self._avail
        out: list[Any] = unavailable_paths(ix, newly)
        out += [list(w.between) for w, up in zip(self._base.topology.wan, self._links_up) if not up]
        return out

    @property
    def instance(self) -> Instance:
        """The instance the cluster was built from (its hardware as given: :attr:`index`
        has it as failed now; its jobs as given: :attr:`jobs` are the running ones)."""
        return self._base

    @property
    def index(self) -> Any:
        """The live topology index (:class:`~placer.kernel.topology.TopologyIndex`): GPU
        ids, domains, and ``available`` as the hardware is now."""
        return self._st.ix

    @property
    def available_gpus(self) -> int:
        """GPUs available now (not failed, not unavailable in the instance)."""
        return int(self._st.ix.available.sum())

    def job_spec(self, name: str) -> Job:
        """The running job `name` as it was submitted (its flags: pinned, preemptible,
        migration_cost); raises :class:`~placer.errors.UnknownJobError`."""
        self._slot_of(name)
        return self._spec[name]

    def job_plan(self, name: str) -> str | None:
        """The plan (SPEC v3) the running job `name` runs now; None for a job without
        plans. Raises :class:`~placer.errors.UnknownJobError`."""
        return self._slots[self._slot_of(name)].plan

    def job_document(self, name: str) -> dict[str, Any]:
        """The running job `name` as a SPEC 1.2 document with `current` (its GPUs now, in
        rank order) and, for a job with plans, `current_plan` (the plan it runs now): its
        entry in :meth:`snapshot`'s instance."""
        j = self._slot_of(name)
        jd = _job_doc(self._spec[name])
        jd["current"] = self._st.ix.gpu_ids(self._st.job_gpus[j])
        if self._slots[j].plan is not None:
            jd["current_plan"] = self._slots[j].plan
        return jd

    @property
    def lease_cover(self) -> dict[str, list[str]]:
        """Per offer, the blocks it leased to cover failed hardware (given back first when
        :meth:`restore` would take it over its max_gpus)."""
        ix = self._base.index
        return {
            offer.name: [ix.domain_path(lv, d) for lv, d in sorted(self._added_blocks[o])]
            for o, offer in enumerate(self._base.offers)
            if self._added_blocks[o]
        }

    def state(self, jobs: bool = True) -> dict[str, Any]:
        """The live state as one JSON document that :meth:`resume` rebuilds exactly (same
        :meth:`snapshot`, same behaviour after): ``failed`` (:attr:`failed`), ``restored``
        (hardware unavailable in the instance and restored since), ``leases``
        (per accepted offer its ``blocks`` and the ``cover`` blocks of :attr:`lease_cover`),
        and with `jobs` the running ``jobs`` in the order they started
        (:meth:`job_document`). Only public readers are used."""
        st, ix = self._st, self._st.ix
        cover = self.lease_cover
        leases = [
            {
                "offer": offer.name,
                "blocks": [ix.domain_path(lv, d) for lv, d in st.offer_blocks[o]],
                "cover": cover.get(offer.name, []),
            }
            for o, offer in enumerate(self._base.offers)
            if st.offer_blocks[o]
        ]
        bix = self._base.index
        out: dict[str, Any] = {
            "version": 1,
            "instance": self._base.name,
            "failed": self.failed,
            "restored": unavailable_paths(bix, self._avail & ~bix.available),
            "leases": leases,
        }
        if jobs:
            out["jobs"] = [self.job_document(n) for n in self.jobs]
        return out

    @classmethod
    def resume(cls, instance: Any, state: dict[str, Any], *, verify: str = "changed") -> Cluster:
        """Rebuild a cluster from :meth:`state` over `instance` (the same instance the state
        was taken on): its jobs run where the state puts them, its failed hardware stays
        failed, its leases hold. Problems are :class:`~placer.errors.PlacementError` s
        located in the state (``state.jobs[3].current``)."""
        instance = _instance_of(instance)
        if not isinstance(state, dict):
            raise ArgumentTypeError(f"state: expected a dict, got {type(state).__name__}")
        problems: list[tuple[str, str]] = []
        if state.get("version") != 1:
            problems.append(("state.version", f"expected 1, got {state.get('version')!r}"))
        for key in ("failed", "restored", "leases", "jobs"):
            if not isinstance(state.get(key), list):
                problems.append((f"state.{key}", "expected a list"))
        if problems:
            raise PlacementError(problems)
        models: list[Job] = []
        placed = []
        for i, jd in enumerate(state["jobs"]):
            try:
                m = Job.model_validate(jd)
            except ValidationError as e:
                problems += [(f"state.jobs[{i}].{loc}", msg) for loc, msg in _pydantic_problems(e)]
                continue
            if not m.current:
                problems.append((f"state.jobs[{i}].current", "a running job needs its GPUs"))
                continue
            if m.plans and m.plan_index(m.current_plan) is None:
                problems.append(
                    (
                        f"state.jobs[{i}].current_plan",
                        "a running job with plans names the one it runs",
                    )
                )
                continue
            shape = m.under(m.default_plan)  # v3: its current plan
            models.append(m.model_copy(update={"current": None}))
            entry = {"name": m.name, "units": len(m.current) // shape.unit_size}
            if shape.plan is not None:
                entry["plan"] = shape.plan
            placed.append({**entry, "gpus": list(m.current)})
        cover: dict[str, list[str]] = {}
        leases = []
        for i, lease in enumerate(state["leases"]):
            if not isinstance(lease, dict) or not isinstance(lease.get("offer"), str):
                problems.append((f"state.leases[{i}]", "expected {offer, blocks, cover}"))
                continue
            leases.append({"offer": lease["offer"], "blocks": list(lease.get("blocks") or [])})
            cover[lease["offer"]] = list(lease.get("cover") or [])
        if problems:
            raise PlacementError(problems)
        inst = instance.model_copy(update={"jobs": models})
        inst._index = instance.index
        pl = {"instance": instance.name, "jobs": placed, "leases": leases}
        c = cls.__new__(cls)
        c._build(inst, pl, verify, state["failed"], state["restored"])
        ix = instance.index
        for o, offer in enumerate(instance.offers):
            for k, path in enumerate(cover.get(offer.name, [])):
                r = ix.resolve(path)
                if r is None or r not in c._st.offer_blocks[o]:
                    raise PlacementError(
                        [(f"state.leases.{offer.name}.cover[{k}]", f"not a leased block {path!r}")]
                    )
                c._added_blocks[o].add(r)
        return c

    def _slot_of(self, name: str) -> int:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"name: expected a job name, got {type(name).__name__}")
        j = self._slot.get(name)
        if j is None:
            raise UnknownJobError(f"name: no running job {name!r}")
        return j

    def placement(self) -> Placement:
        """The live placement (SPEC 2), jobs in the order they started."""
        return Placement.model_validate(self.snapshot()[1])

    def score(self) -> Score:
        """The kernel's score of the live state (SPEC 2.1), running jobs only."""
        st = self._st
        live = [j for j, job in enumerate(self._slots) if self._slot.get(job.name) == j]
        inst = self._inst.model_copy(update={"jobs": [self._slots[j] for j in live]})
        inst._index = self._inst.index
        return Scorer(inst, [st.job_gpus[j] for j in live], st.offer_blocks).result()

    def check(self) -> list[Violation]:
        """Every violation of :meth:`snapshot` by the independent path: the documents are
        loaded and checked as any SPEC tool would (empty = feasible)."""
        from placer.api import check, load_instance

        inst_d, pl_d = self.snapshot()
        inst = load_instance(inst_d)
        return check(inst, pl_d)

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The live state as plain SPEC documents ``(instance, placement)``: running jobs
        with `current` (their GPUs now) and, with plans, `current_plan` (the plan they run
        now; their placement entries name it as `plan`), failed hardware under
        ``topology.unavailable``, a failed WAN link left out of ``topology.wan``, accepted
        offers with their blocks as ``committed_blocks``."""
        base, st = self._base, self._st
        ix = st.ix
        d = base.model_dump(mode="json", exclude_none=True)
        d["topology"]["unavailable"] = unavailable_paths(ix, ~self._avail)
        d["topology"]["wan"] = [
            w.model_dump(mode="json", exclude_none=True)
            for w, up in zip(base.topology.wan, self._links_up)
            if up
        ]
        jobs, placed = [], []
        for j, slot_job in enumerate(self._slots):
            if self._slot.get(slot_job.name) != j:
                continue
            jd = self.job_document(slot_job.name)
            jobs.append(jd)
            entry = {"name": slot_job.name, "units": len(jd["current"]) // slot_job.unit_size}
            if slot_job.plan is not None:
                entry["plan"] = slot_job.plan
            placed.append({**entry, "gpus": jd["current"]})
        d["jobs"] = jobs
        leases = []
        if base.leases is not None:
            live = self._live_offers(st.offer_blocks)
            d["leases"] = live.model_dump(mode="json", exclude_none=True)
            for o, offer in enumerate(live.offers):
                if st.offer_blocks[o]:
                    paths = [ix.domain_path(lv, dd) for lv, dd in st.offer_blocks[o]]
                    leases.append(
                        {
                            "offer": offer.name,
                            "blocks": paths,
                            "gpus": sum(len(st.block_gpus(b)) for b in st.offer_blocks[o]),
                        }
                    )
        return d, {"instance": base.name, "jobs": placed, "leases": leases}

    # ------------------------------------------------------------------ submit
    def _parse_job(self, job: Any, running_ok: bool = False) -> Job:
        if isinstance(job, Job):
            data: Any = job.model_dump(exclude_unset=True)
        elif isinstance(job, dict):
            data = job
        else:
            raise ArgumentTypeError(
                f"job: expected a SPEC job (dict or Job), got {type(job).__name__}"
            )
        try:
            model = Job.model_validate(data)
        except ValidationError as e:
            raise InstanceError(
                [("job." + loc, msg) for loc, msg in _pydantic_problems(e)]
            ) from None
        tmp = self._base.model_copy(update={"jobs": [model], "leases": None})
        f = check_structure(tmp)
        if f.problems:
            raise InstanceError(
                [(loc.replace("jobs[0]", "job", 1), msg) for loc, msg in f.problems]
            )
        if model.current:
            raise InstanceError(
                [
                    (
                        "job.current",
                        "a submitted job is not running yet (give running jobs to "
                        "Cluster(instance) with `current`)",
                    )
                ]
            )
        if model.name in self._slot and not running_ok:
            raise ConflictError(f"job.name: a job named {model.name!r} is already running")
        return model

    def submit(
        self, job: Any, allow_moves: int = 0, max_migration_cost: float | None = None
    ) -> Decision:
        """Place one arriving job around what runs (SPEC 1.2 job, dict or model).

        ``allow_moves=K`` lets it displace up to K preemptible running jobs (moved where
        they fit, else stopped), their migration costs charged; ``max_migration_cost`` caps
        what a plan may charge. A job with plans (SPEC v3) runs the plan whose best
        candidate scores highest: the plan is chosen together with the GPUs
        (``Decision.plan``). Returns a :class:`Decision`; a job that is not placed is data
        (``placed=False`` and a true ``reason``), not an error.
        """
        started = time.perf_counter()
        model = self._parse_job(job)
        if isinstance(allow_moves, bool) or not isinstance(allow_moves, int) or allow_moves < 0:
            raise UsageError(f"allow_moves: expected an integer >= 0, got {allow_moves!r}")
        cap = math.inf if max_migration_cost is None else float(max_migration_cost)
        if not cap >= 0:
            raise UsageError(
                f"max_migration_cost: expected a number >= 0, got {max_migration_cost!r}"
            )
        saved = self._save()
        st = self._st
        j = self._add_slot(model)
        best: _Option | None = None
        for k in _plan_choices(model):
            self._set_plan(j, k)
            if (
                not allow_moves
                and best is not None
                and self._value_bound(self._slots[j]) <= best[0] + 1e-9
            ):
                continue  # this plan cannot beat the best option so far (exact)
            sites = self._useful_sites(self._slots[j])
            g, d = st.best_candidate(j, st.candidates(j, sites=sites))
            if g is not None and d > 0 and (best is None or d > best[0] + 1e-9):
                best = (d, [(j, g, k)], [])
            if allow_moves:
                option = self._displacement(j, allow_moves, cap)
                if option is not None and (best is None or option[0] > best[0] + 1e-9):
                    best = option
        if best is None:
            reasons = []
            for k in _plan_choices(model):
                self._set_plan(j, k)
                reasons.append(st.reason(j))
            self._drop_slot(j)
            return Decision(
                job=model.name,
                placed=False,
                reason=_join_reasons(model, reasons),
                seconds=time.perf_counter() - started,
            )
        delta, changes, moved = best
        before = st.objective
        for v, _, _ in changes[1:]:  # the victims let go first (the option was built so)
            self._set_job(v, _EMPTY)
        for v, gv, kv in changes:
            if len(gv):
                self._set_plan(v, kv)
            self._set_job(v, gv)
        slot = self._slots[j]
        actions = [
            Action(
                "start",
                job=model.name,
                units=len(st.job_gpus[j]) // slot.unit_size,
                gpus=st.ix.gpu_ids(st.job_gpus[j]),
                cause=ActionCause.SUBMIT,
                plan=slot.plan,
            ),
            *moved,
        ]
        cost = sum(a.cost for a in moved)
        for a in moved:
            if a.kind == "stop":
                self._drop_slot(self._slot[a.job])
        self._commit(saved, {v for v, _, _ in changes}, leases=False)
        dec = Decision(
            job=model.name,
            placed=True,
            gpus=actions[0].gpus,
            units=actions[0].units,
            plan=slot.plan,
            actions=actions,
            delta=st.objective - before - cost,
            cost=cost,
            seconds=time.perf_counter() - started,
        )
        return dec

    def _value_bound(self, job: Job) -> float:
        """An upper bound on the objective change of placing `job` (under its plan) where
        nothing else moves: its value at goodput 1, all units, the fastest allowed type
        (adding a job never raises the others' values: WAN sharing only grows). A plan
        whose bound does not beat the best option found needs no search."""
        ix = self._st.ix
        types = allowed_types(self._inst, ix, job)
        speed = max((float(ix.type_speed[t]) for t in types), default=0.0)
        gpus = job.units_max * job.unit_size
        return job_hours(self._inst, job) * (job.value or 0.0) * speed * gpus

    def _useful_sites(self, job: Job) -> list[int]:
        """Sites with at least one unit's worth of free GPUs of one allowed type (the
        others cannot hold any unit: the packer need not scan them)."""
        st, ix = self._st, self._st.ix
        types = allowed_types(self._inst, ix, job)
        per = np.zeros(ix.n_sites, np.int64)
        for t in types:
            per = np.maximum(
                per, np.bincount(ix.dom[0][st.free & (ix.gpu_type == t)], minlength=ix.n_sites)
            )
        return [int(s) for s in np.flatnonzero(per >= job.unit_size)]

    def start(self, job: Any, gpus: list[str], plan: str | None = None) -> Decision:
        """Start a job on GPUs chosen elsewhere (another scheduler's binding, a peer
        policy in a replay): validated like a submit's choice (free, available, rules 1-5,
        power). A job with plans (SPEC v3) runs the `plan` named (it may be left out when
        the job has one plan only); a job without plans takes none. Raises
        :class:`~placer.errors.UsageError` naming what is wrong."""
        started = time.perf_counter()
        model = self._parse_job(job)
        st = self._st
        if not isinstance(gpus, (list, tuple)) or not all(isinstance(x, str) for x in gpus):
            raise ArgumentTypeError("gpus: expected a list of GPU ids in rank order")
        k = self._plan_arg(model, plan)
        g = st.ix.gpu_indices(list(gpus))
        if (g < 0).any():
            raise UsageError(f"gpus[{int(np.argmax(g < 0))}]: unknown GPU id")
        saved = self._save()
        j = self._add_slot(model, k)
        if not len(g) or not self._st.fits(j, g):
            self._drop_slot(j)
            under = f" under plan {plan!r}" if model.plans else ""
            raise UsageError(
                f"gpus: not a valid placement of {model.name!r}{under} now (taken, "
                "unavailable, wrong size or type, a scope or a power cap broken)"
            )
        before = st.objective
        self._set_job(j, g)
        self._commit(saved, {j}, leases=False)
        ids = list(gpus)
        slot = self._slots[j]
        units = len(g) // slot.unit_size
        return Decision(
            job=model.name,
            placed=True,
            gpus=ids,
            units=units,
            plan=slot.plan,
            actions=[
                Action(
                    "start",
                    job=model.name,
                    units=units,
                    gpus=ids,
                    cause=ActionCause.BIND,
                    plan=slot.plan,
                )
            ],
            delta=self.objective - before,
            seconds=time.perf_counter() - started,
        )

    @staticmethod
    def _plan_arg(model: Job, plan: Any) -> int | None:
        """The index of the plan named by :meth:`start`'s `plan` argument (v3)."""
        if plan is not None and not isinstance(plan, str):
            raise ArgumentTypeError(f"plan: expected a plan name, got {type(plan).__name__}")
        names = [p.name for p in model.plans or []]
        if not names:
            if plan is not None:
                raise UsageError(f"plan: job {model.name!r} has no plans (SPEC v3), so none")
            return None
        if plan is None:
            if len(names) == 1:
                return 0
            raise UsageError(
                f"plan: job {model.name!r} has plans ({', '.join(names)}): name the one it runs"
            )
        if plan not in names:
            raise UsageError(
                f"plan: job {model.name!r} has no plan {plan!r} (plans: {', '.join(names)})"
            )
        return names.index(plan)

    def _victims(self, job: Job, exclude: set[int]) -> list[int]:
        """Running preemptible, unpinned jobs holding GPUs of the job's types, lowest value
        per GPU-hour first (then cheapest to move, then name)."""
        st, inst = self._st, self._inst
        types = allowed_types(inst, st.ix, job)
        out = []
        for j, sj in enumerate(self._slots):
            if self._slot.get(sj.name) != j or j in exclude:
                continue
            spec = self._spec[sj.name]
            g = st.job_gpus[j]
            if spec.pinned or not spec.preemptible or not len(g):
                continue
            if np.isin(st.ix.gpu_type[g[:1]], types).any():
                out.append(j)
        return sorted(
            out,
            key=lambda j: (
                _density(inst, self._slots[j]),
                self._spec[self._slots[j].name].migration_cost,
                self._slots[j].name,
            ),
        )

    def _displacement(self, j: int, K: int, cap: float) -> _Option | None:
        """The best option placing job j (under its slot's plan now) by displacing 1..K
        victims (see the overview); a victim with plans may be put back under another plan
        (it moves either way)."""
        st = self._st
        job = self._slots[j]
        victims = self._victims(job, {j})
        best = None
        for k in range(1, min(K, len(victims)) + 1):
            group = victims[:k]
            cost = sum(self._spec[self._slots[v].name].migration_cost for v in group)
            if cost > cap:
                break
            before = st.objective
            old = {v: (st.job_gpus[v], self._plan_index(v), self._slots[v]) for v in group}
            for v in group:
                self._set_job(v, _EMPTY)
            g, _ = st.best_candidate(j, st.candidates(j))
            if g is not None:
                self._set_job(j, g)
                changes: list[tuple[int, np.ndarray, int | None]] = [(j, g, self._plan_index(j))]
                actions = []
                for v in sorted(group, key=lambda v: -_density(self._inst, self._slots[v])):
                    spec = self._spec[self._slots[v].name]
                    gv, dv, kv = self._best_any_plan(v)
                    was = old[v][2]
                    n0 = len(old[v][0]) // was.unit_size
                    if gv is not None and dv > 0:
                        self._set_plan(v, kv)
                        self._set_job(v, gv)
                        changes.append((v, gv, kv))
                        actions.append(
                            Action(
                                "move",
                                job=spec.name,
                                units=len(gv) // self._slots[v].unit_size,
                                units_before=n0,
                                gpus=st.ix.gpu_ids(gv),
                                cost=spec.migration_cost,
                                reason=f"displaced by {job.name!r}",
                                cause=ActionCause.DISPLACED,
                                plan=self._slots[v].plan,
                                plan_before=was.plan,
                            )
                        )
                    else:
                        changes.append((v, _EMPTY, old[v][1]))
                        actions.append(
                            Action(
                                "stop",
                                job=spec.name,
                                units_before=n0,
                                cost=spec.migration_cost,
                                reason=f"displaced by {job.name!r}; no room left for it",
                                cause=ActionCause.DISPLACED,
                                plan_before=was.plan,
                            )
                        )
                net = st.objective - before - cost
                if net > 0 and (best is None or net > best[0] + 1e-9):
                    best = (net, changes, actions)
                for v, _, _ in changes[1:]:
                    self._set_job(v, _EMPTY)
                self._set_job(j, _EMPTY)
            for v in group:
                self._set_plan(v, old[v][1])
                self._set_job(v, old[v][0])
        return best

    # ------------------------------------------------------------------ release
    def release(self, name: str) -> Change:
        """A job finished or was cancelled: its GPUs become free. Nothing else moves."""
        started = time.perf_counter()
        j = self._slot_of(name)
        st = self._st
        saved = self._save()
        before = st.objective
        units = len(st.job_gpus[j]) // self._slots[j].unit_size
        plan = self._slots[j].plan
        self._set_job(j, _EMPTY)
        self._drop_slot(j)
        self._commit(saved, set(), leases=False)
        return Change(
            actions=[
                Action(
                    "stop",
                    job=name,
                    units_before=units,
                    reason="released",
                    cause=ActionCause.RELEASED,
                    plan_before=plan,
                )
            ],
            delta=self.objective - before,
            seconds=time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ failures
    def _parse_items(self, items: Any, arg: str = "items") -> tuple[np.ndarray, list[int]]:
        if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
            raise ArgumentTypeError(
                f"{arg}: expected a list of paths, GPU ids or [site_a, site_b] links, "
                f"got {type(items).__name__}"
            )
        ix = self._base.index
        mask = np.zeros(ix.n_gpus, bool)
        links: list[int] = []
        problems = []
        for i, it in enumerate(items):
            if isinstance(it, str):
                r = ix.resolve(it)
                if r is None:
                    problems.append(f"{arg}[{i}]: unknown domain, node or GPU {it!r}")
                    continue
                lvl, d = r
                if lvl == ix.n_levels:
                    mask[d] = True
                else:
                    a, b = ix.gpu_range(lvl, d)
                    mask[a:b] = True
            elif (
                isinstance(it, (list, tuple))
                and len(it) == 2
                and all(isinstance(x, str) for x in it)
            ):
                found = [
                    w
                    for w, link in enumerate(self._base.topology.wan)
                    if set(link.between) == set(it) and it[0] != it[1]
                ]
                if not found:
                    problems.append(f"{arg}[{i}]: no WAN link between {it[0]!r} and {it[1]!r}")
                links.extend(found)
            else:
                problems.append(
                    f"{arg}[{i}]: expected a domain path, a node or GPU id, or a WAN link "
                    f"[site_a, site_b], got {it!r}"
                )
        if problems:
            raise UsageError("\n".join(problems))
        return mask, links

    def fail(self, items: list[Any]) -> Change:
        """Hardware failed: domain paths, node or GPU ids, WAN links ``[site_a, site_b]``.

        Repairs the jobs it breaks with the fewest moves (see the module overview) and
        returns the actions (move, stop, start, lease) with their costs; ``lost`` names the
        jobs that had to stay placed but found no room even after stopping every
        preemptible job.
        """
        started = time.perf_counter()
        mask, links = self._parse_items(items)
        saved = self._save()
        st = self._st
        before = st.objective
        old_gpus = {
            self._slots[j].name: (st.job_gpus[j], self._slots[j]) for j in self._slot.values()
        }
        old_lease = [self._lease_info(o) for o in range(len(self._base.offers))]
        newly = mask & self._avail
        avail = self._avail & ~mask
        avail.flags.writeable = False
        self._avail = avail
        wan_changed = any(self._links_up[w] for w in links)
        self._links_up[links] = False
        self._rebuild(list(st.job_gpus), st.offer_blocks)
        st = self._st
        ix = st.ix
        affected = []
        for j in self._slot.values():
            g = st.job_gpus[j]
            if not len(g):
                continue
            if newly[g].any():
                affected.append(j)
            elif (
                wan_changed and len(np.unique(ix.dom[0][g])) > 1 and not scope_ok(self._inst, j, g)
            ):
                affected.append(j)
        try:
            change = self._repair(affected, old_gpus)
            change.actions += self._repair_leases(old_lease)
        except Exception:
            self._restore_saved(saved)
            raise
        self._commit(
            saved,
            set(affected) | {self._slot[a.job] for a in change.actions if a.job in self._slot},
        )
        change.delta = self.objective - before - change.cost
        change.seconds = time.perf_counter() - started
        return change

    def _lease_info(self, o: int) -> tuple[list[str], int, float]:
        st = self._st
        blocks = st.offer_blocks[o]
        paths = [st.ix.domain_path(lv, d) for lv, d in blocks]
        n = sum(len(st.block_gpus(b)) for b in blocks)
        return paths, n, float(st.scorer.lease_revenue[o])

    def _lease_action(
        self,
        o: int,
        old: tuple[list[str], int, float],
        reason: str = "",
        cause: ActionCause = ActionCause.REPAIR,
    ) -> Action | None:
        """A lease action for offer o if its blocks or GPUs changed since `old`."""
        paths, n, rev = self._lease_info(o)
        if (paths, n) == (old[0], old[1]):
            return None
        return Action(
            "lease",
            offer=self._base.offers[o].name,
            blocks=paths,
            revenue_change=rev - old[2],
            reason=reason or f"leased GPUs {old[1]:,} -> {n:,}",
            cause=cause,
        )

    def _repair_leases(self, old: list[tuple[list[str], int, float]]) -> list[Action]:
        """Offers whose leased GPUs changed: lease actions; an offer under its min_gpus
        takes another whole free block, or its shortfall is recorded."""
        st = self._st
        base = self._base
        actions = []
        for o, offer in enumerate(base.offers):
            if not st.offer_blocks[o]:
                continue
            paths, n, rev = self._lease_info(o)
            reason = ""
            lo = offer.min_gpus
            if n < lo:
                cands = sorted(st.eligible_blocks(o), key=lambda b: (b[0], b[3]))
                hi = offer.max_gpus if offer.max_gpus is not None else math.inf
                site_fixed = {int(st.ix.dom[0][st.ix.gpu_range(*b)[0]]) for b in st.offer_blocks[o]}
                for c, s, lvl, d in cands:
                    if offer.single_site and s not in site_fixed:
                        continue
                    if n + c < lo or n + c > hi:
                        continue
                    gp = st.block_gpus((lvl, d))
                    if st.gpu_power[gp].sum() > st.power_left[s] + 1e-9:
                        continue
                    st.add_block(o, (lvl, d))
                    self._added_blocks[o].add((lvl, d))
                    reason = f"leased {st.ix.domain_path(lvl, d)!r} to keep min_gpus {lo:,}"
                    break
                paths, n, rev = self._lease_info(o)
                if n < lo:
                    self._min_override[o] = n
                    reason = f"failed hardware leaves {n:,} leased GPUs, short of min_gpus {lo:,}"
            act = self._lease_action(o, old[o], reason)
            if act is not None:
                actions.append(act)
        if self._min_override:
            # the live instance carries the lowered minimum (rule 6 of the snapshot)
            self._rebuild(list(st.job_gpus), st.offer_blocks)
        return actions

    def _must(self, j: int) -> bool:
        spec = self._spec[self._slots[j].name]
        return spec.pinned or not spec.preemptible

    def _repair(self, affected: list[int], old_gpus: dict[str, tuple[np.ndarray, Job]]) -> Change:
        """Repair the broken jobs (see the overview); `old_gpus`: each running job's GPUs
        and slot (its plan) before the failure."""
        st = self._st
        order = sorted(
            affected,
            key=lambda j: (
                not self._spec[self._slots[j].name].pinned,
                self._spec[self._slots[j].name].preemptible,
                -_density(self._inst, self._slots[j]),
                self._slots[j].name,
            ),
        )
        change = Change()
        touched: dict[int, str] = {}
        for j in order:
            if j in touched or not len(st.job_gpus[j]):
                continue  # already stopped or re-placed to make room for a must job
            g, why = self._repair_one(j)
            if g is not None:
                self._set_job(j, g)
                touched[j] = why
                continue
            if self._spec[self._slots[j].name].plans:
                # v3: no room under its plan; another plan may keep it running (a move)
                old = st.job_gpus[j]
                self._set_job(j, _EMPTY)
                g, _, k = self._best_any_plan(j)
                if g is not None and k != self._plan_index(j):
                    self._set_plan(j, k)
                    self._set_job(j, g)
                    touched[j] = f"re-placed under plan {self._slots[j].plan!r}"
                    continue
                self._set_job(j, old)
            if not self._must(j):
                self._set_job(j, _EMPTY)
                touched[j] = "no room left for it after the failure"
                continue
            # a must job: stop preemptible work, lowest value first, until it fits
            self._set_job(j, _EMPTY)
            stopped = []
            placed = False
            for v in self._victims(self._slots[j], set(touched) | {j}):
                stopped.append((v, st.job_gpus[v]))
                self._set_job(v, _EMPTY)
                gj, _, kj = self._best_any_plan(j)
                if gj is not None:
                    self._set_plan(j, kj)
                    self._set_job(j, gj)
                    placed = True
                    break
            if not placed:
                for v, gv in stopped:
                    self._set_job(v, gv)
                touched[j] = "lost: no room even after stopping every preemptible job"
                change.lost.append(self._slots[j].name)
                continue
            touched[j] = "re-placed after stopping preemptible work"
            for v, _ in stopped:  # put the stopped ones back where they fit
                gv, dv, kv = self._best_any_plan(v)
                if gv is not None and dv > 0:
                    self._set_plan(v, kv)
                    self._set_job(v, gv)
                    touched[v] = f"moved to make room for {self._slots[j].name!r}"
                else:
                    touched[v] = f"stopped to make room for {self._slots[j].name!r}"
        for j, why in touched.items():
            name = self._slots[j].name
            spec = self._spec[name]
            g = st.job_gpus[j]
            was = old_gpus[name][1]
            n0 = len(old_gpus[name][0]) // was.unit_size
            if len(g):
                change.actions.append(
                    Action(
                        "move",
                        job=name,
                        units=len(g) // self._slots[j].unit_size,
                        units_before=n0,
                        gpus=st.ix.gpu_ids(g),
                        cost=spec.migration_cost,
                        reason=why,
                        cause=ActionCause.REPAIR,
                        plan=self._slots[j].plan,
                        plan_before=was.plan,
                    )
                )
            else:
                change.actions.append(
                    Action(
                        "stop",
                        job=name,
                        units_before=n0,
                        cost=spec.migration_cost,
                        reason=why,
                        cause=ActionCause.REPAIR,
                        plan_before=was.plan,
                    )
                )
                self._drop_slot(j)
            change.cost += spec.migration_cost
        return change

    def _common_level(self, g: np.ndarray) -> int:
        """Deepest level whose one domain holds all of g (-1: several sites)."""
        ix = self._st.ix
        d = ix.dom[:, g]
        same = (d == d[:, :1]).all(axis=1)
        return int(np.argmin(same)) - 1 if not same.all() else ix.n_levels - 1

    def _repair_one(self, j: int) -> tuple[np.ndarray | None, str]:
        """New GPUs for a broken job j, tier by tier (see the overview), or None."""
        st, ix = self._st, self._st.ix
        job = self._slots[j]
        old = st.job_gpus[j]
        n = len(old) // job.unit_size
        U = old.reshape(n, job.unit_size)
        bad = ~ix.available[U].all(axis=1)
        lc = self._common_level(old[ix.available[old]] if ix.available[old].any() else old)
        tier_a: list[np.ndarray] = []
        if bad.any() and not bad.all():
            ref = int(U[~bad][0, 0])
            k = int(bad.sum())
            types = [int(ix.gpu_type[ref])]
            if job.mix_types:
                types += [t for t in allowed_types(self._inst, ix, job) if t not in types]
            found = False
            for lvl in range(max(lc, 0), -1, -1):
                region = ix.gpu_range(lvl, int(ix.dom[lvl][ref]))
                for t in types:
                    u = st.packer.units(job, t, region)
                    if len(u) < k:
                        continue
                    near = (ix.dom[:, u.first] == ix.dom[:, [ref]]).sum(axis=0)
                    pick = np.argsort(-near, kind="stable")[:k]
                    new = U.copy()
                    new[bad] = u.gpus[pick]
                    g = new.reshape(-1)
                    if self._st.fits(j, g):
                        tier_a.append(g)
                        found = True
                        break
                if found:
                    break
        if not bad.any():  # a WAN cut: keep the units in the best-connected part
            comp = wan_components(ix)[ix.dom[0][U[:, 0]]]
            vals, cnt = np.unique(comp, return_counts=True)
            keep = comp == vals[np.argmax(cnt)]
        else:
            keep = ~bad
        kept = int(keep.sum())
        if 0 < kept < n and kept >= max(job.units_min, 1) and kept % job.unit_step == 0:
            g = U[keep].reshape(-1)
            if self._st.fits(j, g):
                tier_a.append(g)
        if tier_a:
            g, _ = self._best_of(j, tier_a)
            return g, "replaced the broken units inside its domain"
        # (b) the whole job inside its domain, (c) anywhere
        self._set_job(j, _EMPTY)
        try:
            if lc >= 0:
                site = int(ix.dom[0][old[0]])
                if lc == 0:
                    cands = st.candidates(j, sites=[site])
                else:
                    cands = st.region_candidates(j, ix.gpu_range(lc, int(ix.dom[lc][old[0]])))
                if cands:
                    g, _ = st.best_candidate(j, cands)
                    if g is not None:
                        return g, f"re-placed inside its {ix.levels[lc]}"
            g, _ = st.best_candidate(j, st.candidates(j))
            if g is not None:
                return g, "re-placed"
            return None, ""
        finally:
            self._set_job(j, old)

    def _best_of(self, j: int, cands: list[np.ndarray]) -> tuple[np.ndarray, float]:
        g, d = self._st.best_candidate(j, cands)
        return (cands[0], 0.0) if g is None else (g, d)

    def restore(self, items: list[Any]) -> Change:
        """Hardware is back (the same item forms as :meth:`fail`). Nothing moves; leases
        whose blocks regain GPUs report it (an offer that would exceed its max_gpus gives
        back the blocks it took to cover a failure)."""
        started = time.perf_counter()
        mask, links = self._parse_items(items)
        base_ix = self._base.index
        back = mask & ~self._avail
        if not back.any() and not any(not self._links_up[w] for w in links):
            raise ConflictError("items: none of them is failed")
        saved = self._save()
        st = self._st
        before = st.objective
        old_lease = [self._lease_info(o) for o in range(len(self._base.offers))]
        avail = self._avail | mask
        avail.flags.writeable = False
        self._avail = avail
        self._links_up[links] = True
        blocks = [list(b) for b in st.offer_blocks]
        for o, offer in enumerate(self._base.offers):
            hi = offer.max_gpus if offer.max_gpus is not None else math.inf

            def leased(bl: list[tuple[int, int]]) -> int:
                m = np.zeros(base_ix.n_gpus, bool)
                for lv, d in bl:
                    a, b = base_ix.gpu_range(lv, d)
                    m[a:b] = True
                return int((m & avail).sum())

            for blk in sorted(self._added_blocks[o], reverse=True):
                if leased(blocks[o]) <= hi:
                    break
                blocks[o].remove(blk)
                self._added_blocks[o].discard(blk)
            n = leased(blocks[o])
            if o in self._min_override and n >= offer.min_gpus:
                del self._min_override[o]
            elif o in self._min_override:
                self._min_override[o] = min(n, offer.min_gpus)
            if blocks[o] and n > hi:
                self._restore_saved(saved)
                raise UsageError(
                    f"items: restoring them would lease {n:,} GPUs to offer {offer.name!r}, "
                    f"over its max_gpus {offer.max_gpus:,}"
                )
        self._rebuild(list(st.job_gpus), blocks)
        change = Change()
        for o in range(len(self._base.offers)):
            act = self._lease_action(o, old_lease[o], cause=ActionCause.RESTORE)
            if act is not None:
                change.actions.append(act)
        self._commit(saved, set())
        change.delta = self.objective - before
        change.seconds = time.perf_counter() - started
        return change

    # ------------------------------------------------------------------ replan
    def replan_instance(self, pending: list[Any] | None = None) -> dict[str, Any]:
        """The instance document a replan solves: :meth:`snapshot`'s instance (running jobs
        with `current`) plus the `pending` jobs (SPEC 1.2 dicts or models; a name already
        running or given twice is a :class:`~placer.errors.ConflictError` naming
        ``pending[i].name``). Solve it anywhere (another process) and hand the result to
        :meth:`adopt`."""
        inst_d, _ = self.snapshot()
        names = {j["name"] for j in inst_d["jobs"]}
        if pending is not None and not isinstance(pending, (list, tuple)):
            raise ArgumentTypeError(
                f"pending: expected a list of SPEC jobs, got {type(pending).__name__}"
            )
        extra = []
        for i, pj in enumerate(pending or []):
            try:
                m = self._parse_job(pj, running_ok=True)
            except InstanceError as e:
                raise InstanceError(
                    [(loc.replace("job", f"pending[{i}]", 1), msg) for loc, msg in e.problems]
                ) from None
            if m.name in names:
                raise ConflictError(f"pending[{i}].name: {m.name!r} is already running or pending")
            names.add(m.name)
            extra.append(_job_doc(m))
        inst_d["jobs"] = inst_d["jobs"] + extra
        return inst_d

    def replan(
        self,
        time_limit: float | None = 10.0,
        solver: str = "auto",
        pending: list[Any] | None = None,
        seed: int = 0,
        **options: Any,
    ) -> Change:
        """A full solve from the live state: the running jobs are `current` (the solve's
        warm start; moving them is charged), `pending` jobs may start, offers not yet
        accepted may be. The new plan is adopted (:meth:`adopt`) only when its objective
        (migration costs included) beats the live one; the actions reach it. A running job
        with plans (SPEC v3) may change its plan unless pinned (a move, charged: the solve
        sees its `current_plan`); a pending job runs the plan the solve chooses.
        """
        from placer.api import load_instance, solve

        started = time.perf_counter()
        inst_d = self.replan_instance(pending)
        n_running = len(self._slot)
        inst = load_instance(inst_d)
        before = self.objective
        res = solve(inst, solver=solver, time_limit=time_limit, seed=seed, **options)
        if not res.status.has_placement:
            return Change(
                reason=f"the solve found no placement: {res.reason}",
                seconds=time.perf_counter() - started,
            )
        if res.objective <= before + 1e-6 * max(1.0, abs(before)):
            return Change(
                reason=f"kept the live plan: the solve's {res.objective:,.1f} vu does not beat "
                f"{before:,.1f} vu",
                seconds=time.perf_counter() - started,
            )
        change = self.adopt(res.placement, pending=inst.jobs[n_running:])
        change.seconds = time.perf_counter() - started
        return change

    def adopt(self, placement: Any, pending: list[Any] | None = None) -> Change:
        """Adopt a plan computed elsewhere from an earlier state, e.g. a :meth:`replan`
        solved in another process from :meth:`replan_instance` while this cluster went on.

        `placement` (SPEC 2, dict or model) gives each job it names its GPUs (0 units: the
        job stops) and, for a job with plans, its `plan` (SPEC v3: a running job whose plan
        changes moved, even on the same GPUs); it may name running jobs and the `pending`
        jobs (SPEC jobs that start where it places them). Running jobs it does not name keep
        their GPUs (they arrived after the plan's state); names that are neither running nor
        pending are ignored (released meanwhile). Its ``leases`` replace the live leases.

        The merged state must pass the checker against the live state (hardware failed
        meanwhile included), keep every pinned job on its GPUs and every non-preemptible
        job placed: otherwise a :class:`~placer.errors.PlacementError` lists why and nothing
        changes. It is adopted only when its objective less the migration costs it charges
        beats the live objective; otherwise nothing changes and the Change's ``reason`` says
        so. Actions: ``start``, ``move``, ``stop`` and ``lease``, cause ``replan``.
        """
        from placer.api import _placement_arg

        started = time.perf_counter()
        pl = _placement_arg(placement)
        if pending is not None and not isinstance(pending, (list, tuple)):
            raise ArgumentTypeError(
                f"pending: expected a list of SPEC jobs, got {type(pending).__name__}"
            )
        pend: dict[str, Job] = {}
        for i, pj in enumerate(pending or []):
            try:
                m = self._parse_job(pj, running_ok=True)
            except InstanceError as e:
                raise InstanceError(
                    [(loc.replace("job", f"pending[{i}]", 1), msg) for loc, msg in e.problems]
                ) from None
            if m.name not in self._slot:
                pend[m.name] = m
        st = self._st
        ix = st.ix
        problems: list[tuple[str, str]] = []
        plan: dict[str, np.ndarray] = {}
        plan_of: dict[str, int | None] = {}  # v3: the plan each named job runs
        for i, pj in enumerate(pl.jobs):
            if pj.name not in self._slot and pj.name not in pend:
                continue  # released meanwhile (or never known): nothing to do
            job = self._spec[pj.name] if pj.name in self._slot else pend[pj.name]
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
            g = ix.gpu_indices(list(pj.gpus)) if pj.gpus else _EMPTY
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
            plan[pj.name] = np.asarray(g, np.int64)
        offer_ix = {o.name: k for k, o in enumerate(self._base.offers)}
        blocks: list[list[tuple[int, int]]] = [[] for _ in self._base.offers]
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
        old = {name: st.job_gpus[j] for name, j in self._slot.items()}
        old_plan = {name: self._plan_index(j) for name, j in self._slot.items()}
        for name, prev in old.items():
            spec = self._spec[name]
            g = plan.get(name, prev)
            k = plan_of.get(name, old_plan[name]) if len(g) else old_plan[name]
            if spec.pinned and (len(g) != len(prev) or (g != prev).any() or k != old_plan[name]):
                problems.append(("placement", f"job {name!r} is pinned: it cannot move"))
            elif not spec.preemptible and not len(g):
                problems.append(("placement", f"job {name!r} is not preemptible: it must stay"))
        if problems:
            raise PlacementError(problems)
        before = self.objective
        saved = self._save()
        old_lease = [self._lease_info(o) for o in range(len(self._base.offers))]
        change = Change()
        slots: list[Job] = []
        gpus: list[np.ndarray] = []
        spec_of: dict[str, Job] = {}
        order = [self._slots[j].name for j in sorted(self._slot.values())] + list(pend)
        for name in order:
            orig = self._spec.get(name) or pend[name]
            prev = old.get(name)
            g = plan.get(name, prev if prev is not None else _EMPTY)
            k = plan_of.get(name, old_plan.get(name))
            slot = _under(orig, k)  # v3: the job under the plan it runs after the replan
            if prev is not None:
                was = self._slots[self._slot[name]]
                changed = len(prev) != len(g) or (prev != g).any()
                if changed or (len(g) and slot.plan != was.plan):
                    kind = "move" if len(g) else "stop"
                    change.actions.append(
                        Action(
                            kind,
                            job=name,
                            units=len(g) // slot.unit_size,
                            units_before=len(prev) // was.unit_size,
                            gpus=ix.gpu_ids(g) if len(g) else [],
                            cost=orig.migration_cost,
                            reason="replan",
                            cause=ActionCause.REPLAN,
                            plan=slot.plan if len(g) else None,
                            plan_before=was.plan,
                        )
                    )
                    change.cost += orig.migration_cost
            elif len(g):
                change.actions.append(
                    Action(
                        "start",
                        job=name,
                        units=len(g) // slot.unit_size,
                        gpus=ix.gpu_ids(g),
                        reason="replan",
                        cause=ActionCause.REPLAN,
                        plan=slot.plan,
                    )
                )
            if len(g):
                spec_of[name] = orig
                slots.append(slot)
                gpus.append(g)
        self._slots = slots
        self._spec = spec_of
        self._slot = {j.name: k for k, j in enumerate(slots)}
        self._tombstones = 0
        self._rebuild(gpus, blocks)
        bad = check_compiled(self._inst, self._compiled())
        if bad:
            self._restore_saved(saved)
            raise PlacementError([("placement", f"against the live state: {v}") for v in bad[:20]])
        delta = self.objective - before - change.cost
        if not delta > 1e-6 * max(1.0, abs(before)):
            after = self.objective - change.cost
            self._restore_saved(saved)
            return Change(
                reason=f"kept the live plan: the plan's {after:,.1f} vu (migration charged) "
                f"does not beat {before:,.1f} vu",
                seconds=time.perf_counter() - started,
            )
        for o in range(len(self._base.offers)):
            act = self._lease_action(o, old_lease[o], "replan", ActionCause.REPLAN)
            if act is not None:
                change.actions.append(act)
        change.delta = delta
        change.seconds = time.perf_counter() - started
        return change
