"""The live cluster's state, and no policy: what runs where, what is leased, what has
failed, with a checkpoint and a rollback.

Logical state (what a checkpoint copies):
- ``slots``: each running job's live slot, the job *under the plan it runs* (SPEC v3; a
  plain job: its tp, pp, dp, ... are the plan's), in the order the jobs started; ``spec``
  the jobs as submitted (flags and plans kept), ``slot`` name -> slot index. A job that
  stops leaves a tombstone (a slot no name points to) until :meth:`LiveState.compact` (or a
  :meth:`LiveState.rebuild`) drops them, so that slot indices stay put within an operation;
- ``avail`` (GPUs not failed now) and ``links_up`` (WAN links not failed now), over the
  instance's topology;
- per offer: ``min_override`` (a min_gpus lowered to what failed hardware left) and
  ``cover`` (blocks leased to cover failed hardware, given back first on restore).

Derived from it, rebuilt by :meth:`LiveState.rebuild` (Kueue's split: the static topology
snapshot, and the free capacity of this cycle): ``inst``, the live instance (its jobs are the
``slots`` list itself, its WAN the links up, its leases the accepted offers' blocks
committed) with a derived topology index (shared arrays, availability as now); ``st``, the
greedy's :class:`~placer.solvers.decomposition.construct.State` holding each slot's GPUs and
each offer's blocks (free mask, power left, the kernel's incremental score), which the policy
modules search over.

A policy changes the state only through :meth:`LiveState.set_job`, :meth:`LiveState.set_plan`,
:meth:`LiveState.add_block`, :meth:`LiveState.add_slot`, :meth:`LiveState.drop_slot`,
:meth:`LiveState.move_to_end`, :meth:`LiveState.set_hardware` and :meth:`LiveState.rebuild`;
:meth:`LiveState.rollback` undoes them all back to a :meth:`LiveState.checkpoint`: cheaply
when only slots were added since (a refused call), by a rebuild otherwise.

Imports the model, the kernel and the greedy's state; no policy module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from placer.errors import SolverError
from placer.kernel.compiled import Compiled
from placer.kernel.score import zero_job
from placer.model import Instance, Job
from placer.solvers.decomposition.construct import State

__all__ = ["EMPTY", "Checkpoint", "LiveState", "plan_choices", "under"]

EMPTY = np.zeros(0, np.int64)


def under(spec: Job, k: int | None) -> Job:
    """The live slot of a job: the job under its plan k (SPEC 1.2, v3; k None: its default
    plan), not running (its GPUs are the live state's)."""
    if spec.plans:
        spec = spec.under(spec.default_plan if k is None else k)
    return spec.model_copy(update={"current": None})


def plan_choices(spec: Job) -> list[int | None]:
    """The plans a job may run: each of its plans (v3), or [None] without plans."""
    return list(range(len(spec.plans))) if spec.plans else [None]


@dataclass(frozen=True)
class Checkpoint:
    """The logical state at one moment (see the module docs); ``changes`` is
    :attr:`LiveState.changes` then."""

    slots: list[Job]
    slot: dict[str, int]
    spec: dict[str, Job]
    job_gpus: list[np.ndarray]
    offer_blocks: list[list[tuple[int, int]]]
    avail: np.ndarray
    links_up: np.ndarray
    min_override: dict[int, int]
    cover: list[set[tuple[int, int]]]
    tombstones: int
    changes: int
    # the kernel's per-slot figures then (Scorer.figures), for a copy that is not scored
    # again (LiveState.checkpoint(scored=True))
    figures: tuple | None = None


class LiveState:
    """See the module docs. Built empty over `base` with the hardware `avail` and
    `links_up`; slots are added and :meth:`rebuild` derives the rest."""

    def __init__(self, base: Instance, avail: np.ndarray, links_up: np.ndarray) -> None:
        self.base = base
        self.avail = avail
        self.avail.flags.writeable = False
        self.links_up = links_up
        self.min_override: dict[int, int] = {}
        self.cover: list[set[tuple[int, int]]] = [set() for _ in base.offers]
        self.slots: list[Job] = []
        self.spec: dict[str, Job] = {}
        self.slot: dict[str, int] = {}
        self.tombstones = 0
        # how many changes to the derived state (GPUs, blocks, plans, rebuilds) so far
        self.changes = 0
        self.inst: Instance = base
        self.st: Any = None

    # ------------------------------------------------------------------ reading
    @property
    def objective(self) -> float:
        return float(self.st.scorer.objective)

    def running(self) -> list[int]:
        """Slots of the running jobs, in the order they started (tombstones left out)."""
        return [j for j, job in enumerate(self.slots) if self.slot.get(job.name) == j]

    def spec_of(self, j: int) -> Job:
        """The job of slot j as submitted (its flags and plans)."""
        return self.spec[self.slots[j].name]

    def holding(self, j: int) -> tuple[np.ndarray, Job]:
        """Slot j's GPUs (rank order) and its slot (the job under the plan it runs)."""
        return self.st.job_gpus[j], self.slots[j]

    def must(self, j: int) -> bool:
        """Slot j's job must stay placed (pinned or not preemptible)."""
        spec = self.spec_of(j)
        return spec.pinned or not spec.preemptible

    def plan_index(self, j: int) -> int | None:
        """The index of slot j's plan among its job's plans (None: a job without plans)."""
        return self.spec_of(j).plan_index(self.slots[j].plan)

    def compiled(self) -> Compiled:
        """The live state as the checker's compiled placement (tombstones hold nothing)."""
        st = self.st
        gpus = [
            st.job_gpus[j] if self.slot.get(job.name) == j else EMPTY
            for j, job in enumerate(self.slots)
        ]
        units = [len(g) // job.unit_size for g, job in zip(gpus, self.slots)]
        return Compiled(gpus, [list(b) for b in st.offer_blocks], units)

    def live_offers(self, blocks: list[list[tuple[int, int]]]) -> Any:
        """The instance's leases with every accepted offer's blocks committed (min_gpus
        lowered where failed hardware left it short)."""
        base = self.base
        if base.leases is None:
            return None
        ix = base.index
        offers = []
        for o, offer in enumerate(base.offers):
            upd: dict[str, Any] = {}
            if blocks[o]:
                upd["committed_blocks"] = [ix.domain_path(lv, d) for lv, d in blocks[o]]
                upd["force"] = None
            if o in self.min_override:
                upd["min_gpus"] = self.min_override[o]
            offers.append(offer.model_copy(update=upd) if upd else offer)
        return base.leases.model_copy(update={"offers": offers})

    # ------------------------------------------------------------------ slots
    def add_slot(self, job: Job, plan: int | None = None) -> int:
        """A new slot for `job` under its plan `plan`, holding no GPUs; its index."""
        self.spec[job.name] = job
        self.slot[job.name] = len(self.slots)
        self.slots.append(under(job, plan))
        st = self.st
        if st is None:  # building: rebuild() derives the rest
            return len(self.slots) - 1
        st.job_gpus.append(EMPTY)
        return st.scorer.add_job()

    def drop_slot(self, j: int) -> None:
        """Forget the job of slot j (which holds no GPUs): popped when last, else a
        tombstone compacted on the next rebuild."""
        st = self.st
        name = self.slots[j].name
        del self.slot[name]
        del self.spec[name]
        self.changes += 1
        if j == len(self.slots) - 1:
            self.slots.pop()
            st.job_gpus.pop()
            st.scorer.remove_last_job()
        else:
            self.tombstones += 1

    def move_to_end(self, j: int) -> int:
        """Slot j's job moved after every other slot, keeping its GPUs, plan and score: slot
        j becomes a tombstone holding nothing and the job takes a new last slot, the state
        :meth:`set_job` (EMPTY), :meth:`drop_slot`, :meth:`add_slot` and :meth:`set_job`
        (its GPUs again) would leave, without re-scoring the job (0.8 ms a job on colossus).
        Sound because nothing derived depends on a job's slot: its score is a function of
        its GPUs, its plan and the WAN sharers (a count over all jobs), the objective a sum
        over jobs, and no GPU, block or power figure changes hands. The new slot's index
        (the last slot stays: dropped, it would be popped and added again there)."""
        if j == len(self.slots) - 1:
            return j
        st = self.st
        job = self.slots[j]
        new = len(self.slots)
        self.slots.append(job)  # the live instance's job list is this list
        self.slot[job.name] = new
        self.tombstones += 1
        st.job_gpus.append(st.job_gpus[j])
        st.job_gpus[j] = EMPTY
        st.scorer.move_to_end(j)
        st.version += 1
        self.changes += 1
        return new

    def set_plan(self, j: int, k: int | None) -> None:
        """Put slot j (which holds no GPUs) under its job's plan k: the live instance, the
        candidates and the scorer see the job under that plan from now on."""
        spec = self.spec_of(j)
        if not spec.plans or k == self.plan_index(j):
            return
        st = self.st
        if len(st.job_gpus[j]):
            raise SolverError(f"job {spec.name!r} changes plan while holding GPUs (a bug)")
        job = under(spec, k)
        self.slots[j] = job  # the live instance's job list is this list
        st.scorer.jobs[j] = job
        st.scorer.scores[j] = zero_job(job)
        self.changes += 1

    # ------------------------------------------------------------------ holdings
    def set_job(self, j: int, gpus: np.ndarray) -> None:
        """Slot j holds `gpus` now (EMPTY: none); a failed GPU it held never comes back
        free (the greedy's State frees only available GPUs)."""
        self.st.set_job(j, gpus)
        self.changes += 1

    def set_jobs(self, changes: dict[int, np.ndarray], analyses: dict | None = None) -> None:
        """Each slot j of `changes` holds its GPUs now: :meth:`set_job` for many slots at
        once (the GPUs the slots hold are freed first, so one may take another's), with one
        power count, one cache invalidation and one :meth:`Scorer.delta
        <placer.kernel.score.Scorer.delta>`: a job sharing a WAN link with many changed ones
        is scored again once, not once per change (a replan's merge sets 300 jobs).
        `analyses`: slot -> the kernel's analysis of its new GPUs, computed elsewhere (see
        :meth:`Scorer.delta <placer.kernel.score.Scorer.delta>`)."""
        if not changes:
            return
        if len(changes) == 1 and not analyses:
            for j, g in changes.items():
                self.set_job(j, g)
            return
        st = self.st
        ix = st.ix
        gpus = {j: np.asarray(g, np.int64) for j, g in changes.items()}
        held = [st.job_gpus[j] for j in gpus if len(st.job_gpus[j])]
        old = np.concatenate(held) if held else EMPTY
        new = np.concatenate(list(gpus.values()))
        if len(old):
            # a GPU that failed while a job held it never comes back free (as set_job)
            st.free[old[ix.available[old]]] = True
            st.power_left += np.bincount(
                ix.dom[0][old], weights=st.gpu_power[old], minlength=ix.n_sites
            )
            st.packer.touch(old)
        st.free[new] = False
        st.packer.touch(new)
        st.power_left -= np.bincount(
            ix.dom[0][new], weights=st.gpu_power[new], minlength=ix.n_sites
        )
        st.version += 1
        st.scorer.delta(gpus, commit=True, analyses=analyses)
        for j, g in gpus.items():
            st.job_gpus[j] = g
            if len(g):
                st.unreached.discard(j)
        self.changes += 1

    def add_block(self, o: int, block: tuple[int, int]) -> None:
        """Offer o leases one more whole block."""
        self.st.add_block(o, block)
        self.changes += 1

    def set_hardware(self, avail: np.ndarray, links_up: np.ndarray) -> None:
        """The hardware available now (GPUs, WAN links); :meth:`rebuild` derives from it."""
        avail.flags.writeable = False
        self.avail = avail
        self.links_up = links_up

    # ------------------------------------------------------------------ derived state
    def rebuild(
        self,
        job_gpus: list[np.ndarray] | None = None,
        offer_blocks: list[list[tuple[int, int]]] | None = None,
        figures: tuple | None = None,
    ) -> None:
        """(Re)create the live instance, index and state from the logical state and the
        holdings given (default: the current ones). Tombstones are compacted away.
        `figures`: the kernel's per-slot figures of exactly these slots and holdings over
        the same hardware (:class:`Checkpoint`), taken instead of scoring every job."""
        if job_gpus is None:
            job_gpus = list(self.st.job_gpus)
        if offer_blocks is None:
            offer_blocks = self.st.offer_blocks
        keep = [j for j, job in enumerate(self.slots) if self.slot.get(job.name) == j]
        if len(keep) != len(self.slots):
            self.slots = [self.slots[j] for j in keep]
            job_gpus = [job_gpus[j] for j in keep]
            self.slot = {job.name: k for k, job in enumerate(self.slots)}
            if figures is not None:
                figures = (*([f[j] for j in keep] for f in figures[:4]), figures[4])
        self.tombstones = 0
        base = self.base
        wan = [w for w, up in zip(base.topology.wan, self.links_up) if up]
        topo = base.topology.model_copy(update={"wan": wan})
        inst = base.model_copy(
            update={
                "jobs": self.slots,
                "topology": topo,
                "leases": self.live_offers(offer_blocks),
            }
        )
        index = base.index.derive(
            available=self.avail, wan_from=None if self.links_up.all() else inst
        )
        inst._index = index
        self.inst = inst
        self.st = State(inst, (job_gpus, offer_blocks), figures)
        self.changes += 1

    def replace_jobs(
        self,
        spec: dict[str, Job],
        slots: list[Job],
        job_gpus: list[np.ndarray],
        offer_blocks: list[list[tuple[int, int]]],
    ) -> None:
        """Every running job at once (a plan adopted whole): `slots` with `job_gpus`, in
        start order; `spec` the jobs as submitted."""
        self.spec = spec
        self.slots = slots
        self.slot = {job.name: k for k, job in enumerate(slots)}
        self.rebuild(job_gpus, offer_blocks)

    def compact(self) -> None:
        """Drop the tombstones when they outnumber the running jobs (and 32), in place:
        the running jobs keep their GPUs, plans and scores, nothing is re-scored (a job's
        figures do not depend on its slot, see :meth:`move_to_end`; a tombstone holds
        nothing). The state a :meth:`rebuild` would give, in about a millisecond where the
        rebuild re-scores every job (40 ms on colossus with 250 jobs: a service's replan
        commit did it under its lock)."""
        if self.tombstones <= max(32, len(self.slot)):
            return
        keep = self.running()
        at = {j: k for k, j in enumerate(keep)}
        st = self.st
        self.slots[:] = [self.slots[j] for j in keep]  # the live instance's job list
        self.slot = {job.name: k for k, job in enumerate(self.slots)}
        st.job_gpus = [st.job_gpus[j] for j in keep]
        st.scorer.keep_jobs(keep)
        st.unreached = {at[j] for j in st.unreached if j in at}
        st.version += 1
        self.tombstones = 0
        self.changes += 1

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_checkpoint(cls, base: Instance, cp: Checkpoint) -> LiveState:
        """A separate live state equal to `cp` (its derived state rebuilt) that shares no
        mutable part with the state `cp` was taken from: a plan can be merged into it and
        checked while that state goes on (the holdings' arrays are shared: they are
        replaced, never written, once held)."""
        live = cls(base, cp.avail, cp.links_up.copy())
        live.slots = list(cp.slots)
        live.slot = dict(cp.slot)
        live.spec = dict(cp.spec)
        live.min_override = dict(cp.min_override)
        live.cover = [set(s) for s in cp.cover]
        live.rebuild(list(cp.job_gpus), [list(b) for b in cp.offer_blocks], cp.figures)
        return live

    def checkpoint(self, scored: bool = False) -> Checkpoint:
        """The logical state now; `scored`: with the kernel's per-slot figures, so that
        :meth:`from_checkpoint` does not score every job again (40 ms on colossus: a
        service copies the state under its lock for a replan's adoption)."""
        st = self.st
        return Checkpoint(
            slots=list(self.slots),
            slot=dict(self.slot),
            spec=dict(self.spec),
            job_gpus=list(st.job_gpus),
            offer_blocks=[list(b) for b in st.offer_blocks],
            avail=self.avail,
            links_up=self.links_up.copy(),
            min_override=dict(self.min_override),
            cover=[set(s) for s in self.cover],
            tombstones=self.tombstones,
            changes=self.changes,
            figures=st.scorer.figures() if scored else None,
        )

    def rollback(self, cp: Checkpoint) -> None:
        """Back to the state of `cp`: when nothing but new slots changed since (each holds
        no GPUs), they are popped; otherwise the derived state is rebuilt from `cp`."""
        self.spec, self.slot = cp.spec, cp.slot
        self.avail, self.links_up = cp.avail, cp.links_up
        self.min_override, self.cover = cp.min_override, cp.cover
        if self.changes == cp.changes and len(self.slots) >= len(cp.slots):
            st = self.st
            while len(self.slots) > len(cp.slots):
                self.slots.pop()  # the live instance's job list: popped in place
                st.job_gpus.pop()
                st.scorer.remove_last_job()
            self.tombstones = cp.tombstones
            return
        self.slots = list(cp.slots)
        self.rebuild(list(cp.job_gpus), [list(b) for b in cp.offer_blocks])
