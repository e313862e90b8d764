"""A live cluster for schedulers: place one arriving job in milliseconds, release finished
ones, repair failures, re-plan, and hand out the state as plain SPEC documents.

:class:`Cluster` is a thin front over :mod:`placer.live`: it reads the arguments, opens one
transaction per operation (:meth:`Cluster._transaction`: a checkpoint of the live state,
the operation, the verification, a rollback on any error), and calls the policy:

- :meth:`Cluster.submit` / :meth:`Cluster.start`: :mod:`placer.live.admission` (candidates
  around what runs, scored exactly by the kernel; a job with plans gets every plan's;
  ``allow_moves=K``: up to K preemptible victims tried on the state, returned as data);
- :meth:`Cluster.fail` / :meth:`Cluster.restore`: :mod:`placer.live.repair` (broken jobs
  repaired tier by tier) and :mod:`placer.live.leases`;
- :meth:`Cluster.replan` / :meth:`Cluster.adopt`: :mod:`placer.live.replan` (a full solve of
  the snapshot, adopted only when it beats the live objective).

State model (:mod:`placer.live.state`): the instance's topology index is built once; a
failure or a restore derives a copy sharing every array but the availability (and the WAN
part). Per cycle: the free mask, power left per site, leased blocks, failed hardware, each
running job's GPUs and the kernel's incremental score. A running job's live slot is the job
*under the plan it runs* (SPEC v3); its spec keeps its flags and plans.

Guarantee: every operation validates the changed state before committing it
(:mod:`placer.live.verify`: rules 1-5 for every job it changes; disjointness, availability,
leases and power over the whole state; or the whole checker with ``verify="full"``). A failed
validation is a bug: the state rolls back and :class:`~placer.errors.SolverError` is raised.
Any other error inside an operation rolls the state back too.

Imports the model, the kernel, the checker and :mod:`placer.live`; never the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from placer.check import Violation
from placer.errors import ArgumentTypeError, UsageError
from placer.kernel.score import Score, Scorer
from placer.live import admission, documents, leases, repair, replan
from placer.live.documents import slot_of, unavailable_paths
from placer.live.results import Action, ActionCause, Change, Decision, job_action
from placer.live.state import EMPTY, LiveState
from placer.live.verify import verify as verify_state
from placer.model import Instance, Job, Placement

__all__ = ["Action", "ActionCause", "Change", "Cluster", "Decision", "unavailable_paths"]

# the reasons of a fail / restore that changes nothing (both idempotent)
ALL_FAILED = "items: all of them are failed already: nothing changed"
NONE_FAILED = "items: none of them is failed: nothing changed"


@dataclass
class _Transaction:
    """One operation's transaction (see :meth:`Cluster._transaction`)."""

    leases: bool = True  # leases may change: rule 6 is verified too
    changed: set[int] = field(default_factory=set)  # slots whose GPUs changed
    check: bool = True  # False: nothing to verify (unchanged, or checked whole already)
    cancelled: bool = False  # roll back without an error (the change was not worth it)
    result: Change | None = None  # stamped with the seconds the operation took
    started: float = field(default_factory=time.perf_counter)


class Cluster:
    """A live cluster: running jobs, leases and failed hardware over one instance's
    topology (see the module overview).

    Parameters
    ----------
    instance : a loaded :class:`~placer.Instance` (or a path / dict, loaded here).
    placement : optional :class:`~placer.Placement`, SPEC 2 dict or solve
        :class:`~placer.Result`: its placed jobs run where it puts them (under the `plan`
        it names, SPEC v3) and its leases hold. It must pass the checker; one whose
        `instance` names another instance warns (:class:`~placer.errors.PlacementWarning`,
        as :func:`placer.check` does), not an error. Without it the
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
        inst = documents.instance_of(instance)
        if placement is not None:
            from placer.api import warn_placement

            placement = documents.placement_of(placement)
            warn_placement(inst, placement, stacklevel=2)
        self._build(inst, placement, verify, failed, None)

    @classmethod
    def _start(cls, instance: Instance, placement: Placement | None, verify: str) -> Cluster:
        """``Cluster(instance, placement, verify=verify)`` without its PlacementWarning: for
        the service, which warned when it was given the placement."""
        c = cls.__new__(cls)
        c._build(instance, placement, verify, None, None)
        return c

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
        avail = instance.index.available.copy()
        links_up = np.ones(len(instance.topology.wan), bool)
        if restored:  # unavailable in the instance, restored since
            avail |= documents.parse_items(instance, restored, "state.restored")[0]
        if failed:
            mask, links = documents.parse_items(instance, failed, "failed")
            avail &= ~mask
            links_up[links] = False
        self._live = live = LiveState(instance, avail, links_up)
        if placement is not None:
            # checked whole by the checker against the hardware as it is (failed included):
            # a second full check would double a restart's time with 10,000 jobs
            documents.load_placement(live, placement)
        else:
            if not admission.admit_running(live):  # True: checked whole already
                verify_state(live, set(range(len(live.slots))), full=True)

    @contextmanager
    def _transaction(self, leases: bool = True) -> Iterator[_Transaction]:
        """The one transaction of every operation: a checkpoint of the live state; the
        operation (it records the slots it changed, whether the state needs no check, or
        that it is cancelled); then the verification (:mod:`placer.live.verify`). Any error,
        a failed verification included, and a cancel roll the state back to the checkpoint.
        The result set on the transaction gets the seconds the operation took."""
        live = self._live
        tx = _Transaction(leases=leases)
        saved = live.checkpoint()
        try:
            yield tx
            if tx.cancelled:
                live.rollback(saved)
            elif tx.check:
                full = self._verify_mode == "full"
                verify_state(live, tx.changed, full=full, leases=tx.leases)
        except BaseException:
            live.rollback(saved)
            raise
        live.compact()
        if tx.result is not None:
            tx.result.seconds = time.perf_counter() - tx.started

    # ------------------------------------------------------------------ reading
    @property
    def objective(self) -> float:
        """The kernel's objective of the live state (SPEC 4), from the incremental score."""
        return self._live.objective

    @property
    def jobs(self) -> dict[str, int]:
        """Running jobs and their units, in the order they started."""
        live = self._live
        return {
            live.slots[j].name: len(live.st.job_gpus[j]) // live.slots[j].unit_size
            for j in live.running()
        }

    def job_gpus(self, name: str) -> list[str]:
        """GPU ids of a running job in rank order."""
        st = self._live.st
        return st.ix.gpu_ids(st.job_gpus[slot_of(self._live, name)])

    @property
    def free_gpus(self) -> int:
        """Available GPUs held by no job and no lease."""
        return int(self._live.st.free.sum())

    @property
    def failed(self) -> list[str]:
        """Failed hardware as paths (domains, nodes, GPUs) and WAN links."""
        return documents.failed_items(self._live)

    @property
    def instance(self) -> Instance:
        """The instance the cluster was built from (its hardware as given: :attr:`index`
        has it as failed now; its jobs as given: :attr:`jobs` are the running ones)."""
        return self._live.base

    @property
    def index(self) -> Any:
        """The live topology index (:class:`~placer.kernel.topology.TopologyIndex`): GPU
        ids, domains, and ``available`` as the hardware is now."""
        return self._live.st.ix

    @property
    def available_gpus(self) -> int:
        """GPUs available now (not failed, not unavailable in the instance)."""
        return int(self._live.st.ix.available.sum())

    def job_spec(self, name: str) -> Job:
        """The running job `name` as it was submitted (its flags: pinned, preemptible,
        migration_cost); raises :class:`~placer.errors.UnknownJobError`."""
        return self._live.spec_of(slot_of(self._live, name))

    def job_plan(self, name: str) -> str | None:
        """The plan (SPEC v3) the running job `name` runs now; None for a job without
        plans. Raises :class:`~placer.errors.UnknownJobError`."""
        return self._live.slots[slot_of(self._live, name)].plan

    def job_document(self, name: str) -> dict[str, Any]:
        """The running job `name` as a SPEC 1.2 document with `current` (its GPUs now, in
        rank order) and, for a job with plans, `current_plan` (the plan it runs now): its
        entry in :meth:`snapshot`'s instance."""
        return documents.job_document(self._live, slot_of(self._live, name))

    def encoded_documents(
        self,
        encode: Any,
        cache: dict[str, tuple[Any, Any]],
        names: Any = None,
        prep: replan.Prepared | None = None,
    ) -> dict[str, Any]:
        """``encode(job_document(name))`` for the running jobs `names` (None: all; a name
        not running there is left out) of the live state, or of `prep`'s merged state (the
        plan :meth:`commit_adopt` would take).
        `cache` (name -> (key, encoded), kept by the caller) is reused for a job whose spec,
        plan and GPUs are those it was encoded from. Why: a service encodes a replan's
        documents without its lock, from the prepared state (megabytes of GPU ids on a large
        cluster), so that under the lock only the jobs :meth:`commit_adopt` redid are
        encoded again (the others are the same objects in the adopted state)."""
        live = self._live if prep is None else prep.merged
        if live is None:
            return {}
        out: dict[str, Any] = {}
        for name in live.slot if names is None else names:
            j = live.slot.get(name)
            if j is None:  # not running there (stopped by the plan)
                continue
            spec, plan, g = live.spec[name], live.slots[j].plan, live.st.job_gpus[j]
            hit = cache.get(name)
            if hit is not None:
                spec0, plan0, g0 = hit[0]
                if (spec0 is spec or spec0 == spec) and plan0 == plan and np.array_equal(g0, g):
                    out[name] = hit[1]
                    continue
            enc = encode(documents.job_document(live, j))
            cache[name] = ((spec, plan, g.copy()), enc)
            out[name] = enc
        return out

    @property
    def lease_cover(self) -> dict[str, list[str]]:
        """Per offer, the blocks it leased to cover failed hardware (given back first when
        :meth:`restore` would take it over its max_gpus or a site over its power cap)."""
        return documents.lease_cover(self._live)

    def state(self, jobs: bool = True) -> dict[str, Any]:
        """The live state as one JSON document that :meth:`resume` rebuilds exactly (same
        :meth:`snapshot`, same behaviour after): ``failed`` (:attr:`failed`), ``restored``
        (hardware unavailable in the instance and restored since), ``leases``
        (per accepted offer its ``blocks`` and the ``cover`` blocks of :attr:`lease_cover`),
        and with `jobs` the running ``jobs`` in the order they started
        (:meth:`job_document`)."""
        return documents.state_document(self._live, jobs)

    @classmethod
    def resume(cls, instance: Any, state: dict[str, Any], *, verify: str = "changed") -> Cluster:
        """Rebuild a cluster from :meth:`state` over `instance` (the same instance the state
        was taken on): its jobs run where the state puts them, its failed hardware stays
        failed, its leases hold. Problems are :class:`~placer.errors.PlacementError` s
        located in the state (``state.jobs[3].current``)."""
        instance = documents.instance_of(instance)
        inst, placement, cover = documents.read_state(instance, state)
        c = cls.__new__(cls)
        c._build(inst, placement, verify, state["failed"], state["restored"])
        documents.load_cover(c._live, cover)
        return c

    def placement(self) -> Placement:
        """The live placement (SPEC 2), jobs in the order they started."""
        return Placement.model_validate(self.snapshot()[1])

    def score(self) -> Score:
        """The kernel's score of the live state (SPEC 2.1), running jobs only."""
        live = self._live
        running = live.running()
        inst = live.inst.model_copy(update={"jobs": [live.slots[j] for j in running]})
        inst._index = live.inst.index
        st = live.st
        return Scorer(inst, [st.job_gpus[j] for j in running], st.offer_blocks).result()

    def check(self) -> list[Violation]:
        """Every violation of :meth:`snapshot` by the independent path: the documents are
        loaded and checked as any SPEC tool would (empty = feasible)."""
        from placer.api import check, load_instance

        inst_d, pl_d = self.snapshot()
        return check(load_instance(inst_d), pl_d)

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The live state as plain SPEC documents ``(instance, placement)``: running jobs
        with `current` (their GPUs now) and, with plans, `current_plan` (the plan they run
        now; their placement entries name it as `plan`), failed hardware under
        ``topology.unavailable``, a failed WAN link left out of ``topology.wan``, accepted
        offers with their blocks as ``committed_blocks``."""
        return documents.snapshot(self._live)

    # ------------------------------------------------------------------ operations
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
        with self._transaction(leases=False) as tx:
            model = documents.parse_job(self._live, job)
            moves, cap = admission.moves_args(allow_moves, max_migration_cost)
            decision, changed = admission.submit(self._live, model, moves, cap)
            tx.result, tx.changed, tx.check = decision, changed or set(), changed is not None
        return decision

    def start(self, job: Any, gpus: list[str], plan: str | None = None) -> Decision:
        """Start a job on GPUs chosen elsewhere (another scheduler's binding, a peer
        policy in a replay): validated like a submit's choice (free, available, rules 1-5,
        power). A job with plans (SPEC v3) runs the `plan` named (it may be left out when
        the job has one plan only); a job without plans takes none. Raises
        :class:`~placer.errors.UsageError` naming what is wrong."""
        live = self._live
        with self._transaction(leases=False) as tx:
            model = documents.parse_job(live, job)
            if not isinstance(gpus, (list, tuple)) or not all(isinstance(x, str) for x in gpus):
                raise ArgumentTypeError("gpus: expected a list of GPU ids in rank order")
            k = documents.plan_arg(model, plan)
            g = live.st.ix.gpu_indices(list(gpus))
            if (g < 0).any():
                raise UsageError(f"gpus[{int(np.argmax(g < 0))}]: unknown GPU id")
            j = live.add_slot(model, k)
            unit = live.slots[j].unit_size
            if len(g) % unit:
                under = f" under plan {live.slots[j].plan!r}" if model.plans else ""
                raise UsageError(
                    f"gpus: {len(g)} GPU ids are not whole units of {model.name!r}{under} "
                    f"(tp*pp = {unit} GPUs each)"
                )
            if not len(g) or not live.st.fits(j, g):
                under = f" under plan {plan!r}" if model.plans else ""
                raise UsageError(
                    f"gpus: not a valid placement of {model.name!r}{under} now (taken, "
                    "unavailable, wrong size or type, a scope or a power cap broken)"
                )
            before = live.objective
            live.set_job(j, g)
            act = job_action(model, live.st.ix, None, live.holding(j), ActionCause.BIND)
            act.gpus = list(gpus)  # the ids as the caller gave them
            tx.changed = {j}
            tx.result = Decision.started(act, live.objective - before)
        return tx.result

    def release(self, name: str) -> Change:
        """A job finished or was cancelled: its GPUs become free. Nothing else moves."""
        live = self._live
        with self._transaction(leases=False) as tx:
            j = slot_of(live, name)
            before = live.objective
            spec, held = live.spec_of(j), live.holding(j)
            live.set_job(j, EMPTY)
            live.drop_slot(j)
            stop = job_action(
                spec, live.st.ix, held, None, ActionCause.RELEASED, "released", charge=False
            )
            tx.result = Change(actions=[stop], delta=live.objective - before)
        return tx.result

    def fail(self, items: list[Any]) -> Change:
        """Hardware failed: domain paths, node or GPU ids, WAN links ``[site_a, site_b]``.

        Repairs the jobs it breaks with the fewest moves (see :mod:`placer.live.repair`)
        and returns the actions (move, stop, start, lease) with their costs; ``lost`` names
        the jobs that had to stay placed but found no room even after stopping every
        preemptible job. Idempotent, as :meth:`restore`: when every item is failed already
        (or unavailable in the instance), nothing changes and the Change says so (no
        actions, ``reason`` ``items: all of them are failed already: nothing changed``).
        Raises :class:`~placer.errors.UsageError` only for unknown items.
        """
        live = self._live
        with self._transaction() as tx:
            mask, links = documents.parse_items(live.base, items)
            if not (mask & live.avail).any() and not live.links_up[links].any():
                tx.check = False
                tx.result = Change(reason=ALL_FAILED, applied=False)
            else:
                tx.result, tx.changed = repair.fail(live, mask, links)
        return tx.result

    def restore(self, items: list[Any]) -> Change:
        """Hardware is back (the same item forms as :meth:`fail`). Nothing moves; leases
        whose blocks regain GPUs report it. Restored GPUs of leased blocks are powered and
        count toward the offer's max_gpus: where all of them would not fit (a site's power
        cap, an offer's max_gpus), offers give back the blocks they took to cover a failure,
        and the restored GPUs that still do not fit stay unavailable (:attr:`failed`), named
        in the Change's ``reason`` (see :func:`placer.live.leases.restore`). Idempotent, as
        :meth:`fail`: when none of the items is failed, nothing changes and the Change says
        so (no actions, ``reason`` ``items: none of them is failed: nothing changed``).
        Raises :class:`~placer.errors.UsageError` only for unknown items."""
        live = self._live
        with self._transaction() as tx:
            mask, links = documents.parse_items(live.base, items)
            if not (mask & ~live.avail).any() and live.links_up[links].all():
                tx.check = False
                tx.result = Change(reason=NONE_FAILED, applied=False)
            else:
                tx.result = leases.restore(live, mask, links)
        return tx.result

    def replan_instance(
        self,
        pending: list[Any] | None = None,
        ids: bool = True,
        *,
        jobs: list[Job] | None = None,
    ) -> dict[str, Any]:
        """The instance document a replan solves: :meth:`snapshot`'s instance (running jobs
        with `current`) plus the `pending` jobs (SPEC 1.2 dicts or models; a name already
        running or given twice is a :class:`~placer.errors.ConflictError` naming
        ``pending[i].name``). Solve it anywhere (another process) and hand the result to
        :meth:`adopt`. `ids` False: each `current` holds GPU indices, for another process
        to name (:func:`placer.live.replan.named_document`): cheaper to take and to send.
        `jobs`: :meth:`parse_pending` of `pending`, parsed once for the whole replan."""
        return replan.replan_instance(self._live, pending, ids, jobs)

    def parse_pending(self, pending: list[Any] | None) -> list[Job]:
        """The `pending` jobs of a replan checked as :meth:`submit` checks a job (problems
        located at ``pending[i]``), for :meth:`replan_instance` and :meth:`prepare_adopt`:
        they depend on the instance only, and parsing 300 jobs takes 40 to 150 ms."""
        return list(documents.parse_pending(self._live, pending))

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
        n_running = len(self._live.slot)
        inst = load_instance(inst_d)
        before = self.objective
        res = solve(inst, solver=solver, time_limit=time_limit, seed=seed, **options)
        why = replan.verdict(res.status.has_placement, res.reason, res.objective, before)
        if why:
            return Change(reason=why, seconds=time.perf_counter() - started, applied=False)
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
        return self._adopt(placement, pending)

    def _adopt(
        self,
        placement: Any,
        pending: list[Any] | None,
        parsed: dict[int, np.ndarray] | None = None,
        jobs: list[Job] | None = None,
    ) -> Change:
        """:meth:`adopt`, with `placement` also an
        :class:`~placer.live.replan.IndexedPlacement`, its GPU indices read already
        (`parsed`) and the `pending` jobs parsed already (`jobs`)."""
        live = self._live
        with self._transaction() as tx:
            plan = replan.read_plan(live, _plan_arg(placement), pending, parsed, jobs)
            change, before = replan.adopt(live, plan)
            tx.check = False  # replan.adopt checked the merged state whole (PlacementError)
            why = replan.kept_reason(change, before, live.objective)
            if why:
                tx.cancelled = True
                change = Change(reason=why, applied=False)
            tx.result = change
        return change

    # -------------------------------------------- adopting in two steps (placer serve)
    def adopt_base(self) -> Any:
        """Step 1 of :meth:`adopt` in two steps (a service adopting a plan while other
        threads change the cluster): a copy of the live state now (cheap: under the
        caller's lock), for :meth:`prepare_adopt`: with the kernel's figures of each job, so
        that the copies made of it are not scored again."""
        return self._live.checkpoint(scored=True)

    def prepare_adopt(
        self,
        base: Any,
        placement: Any,
        pending: list[Any] | None = None,
        gpu_indices: list[Any] | None = None,
        jobs: list[Job] | None = None,
        solved_from: Any = None,
        laps: Any = None,
    ) -> replan.Prepared:
        """Step 2: the heavy part of :meth:`adopt` (the plan merged into the state of
        `base`, the derived state rebuilt, the whole checker) on a copy: it reads nothing
        of the live state but the instance, so it runs without the caller's lock while
        other operations go on. A plan that does not pass against `base` gets a
        :class:`~placer.errors.PlacementError`; ``reason`` says when it is not worth
        adopting against `base` (:meth:`commit_adopt` decides against the state then).
        `gpu_indices`: per job of `placement`, its GPUs as indices of this cluster's
        topology (:meth:`index`; None for a job without GPUs), e.g. computed by the process
        that solved it: reading 170,000 GPU ids takes 50 ms on colossus. They are checked
        like the ids (units, and the merged state whole). `placement` may be an
        :class:`~placer.live.replan.IndexedPlacement` (its GPUs as indices already: what
        ``placer serve``'s worker sends back). `jobs`: :meth:`parse_pending` of `pending`.

        A plan that keeps the leases is merged job by job, the jobs it changes verified
        against the whole merged state as every operation is (``verify="full"``: the whole
        checker), not rebuilt and checked whole: see :func:`placer.live.replan.prepare`.
        `solved_from`: the :meth:`adopt_base` taken with the :meth:`replan_instance` that
        was solved (the solve checked its plan whole against it: rules 1-5 of the jobs it
        placed are not checked again over the same hardware). `laps`: a
        :class:`~placer.live.replan.Laps` called between the merge's phases."""
        parsed = None
        if gpu_indices is not None:
            parsed = {
                i: np.asarray(g, np.int64) for i, g in enumerate(gpu_indices) if g is not None
            }
        full = self._verify_mode == "full"
        pl = _plan_arg(placement)
        return replan.prepare(
            self._live.base, base, pl, pending, parsed, jobs, full, solved_from, laps
        )

    def advance_adopt(self, base: Any, prep: replan.Prepared) -> replan.Prepared:
        """Optional step 2b (without the lock): `prep` brought to `base`, a newer
        :meth:`adopt_base`, on a copy (:func:`placer.live.replan.advance`), so that the
        commit has less to redo when the state moves fast. PlacementError as
        :meth:`prepare_adopt`."""
        return replan.advance(self._live.base, prep, base, full=self._verify_mode == "full")

    def commit_adopt(self, prep: replan.Prepared, laps: Any = None) -> Change:
        """Step 3 (under the caller's lock): adopt the prepared plan into the live state as
        it is now, the same result as :meth:`adopt` now would give. Nothing changed since
        ``base``: the prepared state is taken as it is. Jobs started, moved or stopped
        since: only the jobs whose merged holding differs are redone on the prepared state
        and verified against the whole of it (:func:`placer.live.replan.catch_up`).
        Hardware failed or restored, or leases changed since (or pending jobs the plan
        starts after jobs that arrived since): :meth:`adopt` whole. Raises
        :class:`~placer.errors.PlacementError` when the plan no longer passes; a Change
        with a ``reason`` when it no longer beats the live plan."""
        if prep.merged is None:  # committed already, or refused: adopt it whole
            return self._adopt(prep.placement, prep.pending, prep.parsed, prep.jobs)
        laps = laps or replan.NO_LAPS
        live = self._live
        same_hw = replan.same_hardware(live.checkpoint(), prep.base)
        laps("same hardware")
        merged = prep.merged
        try:
            full = self._verify_mode == "full"
            out = replan.catch_up(live, prep, full, laps) if same_hw else None
        except BaseException:
            prep.merged = None  # partly redone: not to be taken
            raise
        if out is None:
            return self._adopt(prep.placement, prep.pending, prep.parsed, prep.jobs)
        change, before = out
        why = replan.kept_reason(change, before, merged.objective)
        if why:
            prep.merged = None
            return Change(reason=why, applied=False)
        merged.compact()
        laps("compact")
        self._live = merged
        prep.merged = None  # taken: a second commit of the same preparation adopts whole
        prep.taken = True
        return change

    def prepared_state(self, prep: replan.Prepared) -> dict[str, Any] | None:
        """(Without the lock) :meth:`state` without jobs as :meth:`commit_adopt` leaves it
        when it takes `prep`'s merged state (its hardware and leases are those of the
        prepared state: a commit that finds them changed adopts whole, and the caller
        reads :meth:`state` then, see ``prep.taken``). None: nothing prepared."""
        return None if prep.merged is None else documents.state_document(prep.merged, False)


def _plan_arg(placement: Any) -> Any:
    """A placement to adopt: an :class:`~placer.live.replan.IndexedPlacement` as it is,
    else a Placement or a SPEC 2 dict (validated: located PlacementError)."""
    if isinstance(placement, replan.IndexedPlacement):
        return placement
    from placer.api import _placement_arg

    return _placement_arg(placement)
