"""The live service behind the HTTP routes: one :class:`~placer.cluster.Cluster`, its durable
store, the revision, and the replan and solve workers.

Concurrency: one short lock around the cluster. A mutation takes it, checks ``If-Match``,
changes the cluster and queues its changed rows and event for the store; it answers only
once they are written, without the lock (group commit, :meth:`Service.durable`: the first
operation to wait writes every queued one in one transaction, one fsync; the others wait
for it). Reads answer once what they saw is written.

A replan takes the lock three times, briefly: to take the instance to solve (and the
revision); once the solve is back, to take a copy of the state (:meth:`Cluster.adopt_base`),
into which the plan is merged without the lock (:meth:`Cluster.prepare_adopt`); and to commit
it (:meth:`Cluster.commit_adopt`: only the jobs that changed since the copy are redone and
verified against the whole merged state, the same result as adopting the plan whole against
the state as it is then). The solve runs in a worker process, so submits, releases and
failures go on during a replan and wait at most for those short holds.

The request threads share one GIL with the replan's thread, so what the replan does in this
process after its solve delays them even without the lock. The worker does the heavy part:
it checks the solve's plan whole against the state it was solved from and reads its GPU ids
into indices (:class:`~placer.live.replan.IndexedPlacement`: no Placement of 170,000 ids to
unpickle here). The merge here redoes only the jobs the plan moves or starts, in one batch,
and checks what involves the other jobs (disjointness, availability, leased blocks, power,
must-stay jobs); rules 1-5 of a job alone are not checked again where the solve's check
passed them over the same hardware. A plan that gives a job GPUs that a job started since
holds is refused before any merging (:func:`placer.live.replan.overlaps`), and the merge and
the encoding yield to the operations in flight between their steps.

If a commit fails after the cluster changed in memory (disk, connection, or another writer
took over), every operation in it and queued after it answers 503 (none was acknowledged),
and the in-memory cluster is dropped and rebuilt from the store (on PostgreSQL this waits as
a standby if another service became the writer): no answer runs ahead of disk.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from placer.cluster import Change, Cluster
from placer.errors import PlacementError, PlacerError, UsageError
from placer.live import documents
from placer.live.replan import NO_LAPS, Laps, verdict
from placer.model import Instance
from placer.service.store import Commit, FencedError, Store, StoreError, encode
from placer.service.worker import DeadlineExceeded, SolveWorker, WorkerBusy, WorkerFailed

log = logging.getLogger("placer.serve")
# PLACER_SERVE_PROFILE=1: log the phases of a replan's commit under the lock, its timeline,
# and the garbage collector's pauses over 10 ms
PROFILE = os.environ.get("PLACER_SERVE_PROFILE", "") not in ("", "0")


def _freeze_heap() -> None:
    """Once ready: a full collection, then every object alive moved out of the garbage
    collector's sight (``gc.freeze``). The cluster (the instance's models, the live state)
    is most of the heap; a full collection traversing it held the GIL, every request
    thread waiting, 130 and 327 ms in two runs of bench 3b at a load average of 5 (500
    submits during a 13 s solve, then a refused merge). Frozen objects are still freed by
    reference counting when dropped; only cyclic garbage among them would stay."""
    import gc

    gc.collect()
    gc.freeze()


def _log_gc_pauses() -> None:
    import gc

    t0 = [0.0]

    def pause(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            t0[0] = time.perf_counter()
        elif time.perf_counter() - t0[0] > 0.01:
            log.info(
                "gc pause: generation %d, %.1f ms (at %.3f s of the last replan)",
                info["generation"],
                1e3 * (time.perf_counter() - t0[0]),
                t0[0] - _REPLAN_T0[0],
            )

    gc.callbacks.append(pause)


_REPLAN_T0 = [0.0]  # profiling: when the last replan's request came

if PROFILE:
    _log_gc_pauses()


@dataclass
class Limits:
    """Caps of the service (each has a ``placer serve`` flag)."""

    max_body_bytes: int = 1 << 20  # 1 MiB: 413 beyond, chunked bodies included
    max_gpus: int = 1_000_000  # GPUs of a posted instance (/solve, /score, /check)
    max_jobs: int = 5_000  # jobs of a posted instance, and pending jobs of a replan
    max_solve_seconds: float = 60.0  # time_limit of /solve and /replan
    solve_grace_seconds: float = 30.0  # deadline = time_limit + this (loading, answering)
    max_concurrent: int = 64  # requests in flight: 503 beyond


# a replan's prepared plan is caught up to a newer copy of the state (without the lock)
# while more than this many commits landed since its copy, at most this many times; then
# the commit redoes what is left under the lock. Each round is Python work beside the
# request threads (25 to 80 ms on colossus, more when the lock is contended: it waits its
# turn each time), and a commit redoes a late job in about 0.5 ms: bench 3b, three pairs,
# no round (20 to 22 commits redone) held the lock 31 to 34 ms against 21 to 29 ms after
# three rounds, for the same submit p99 (32 to 42 against 26 to 56 ms), and runs where the
# rounds met a queue spent 0.5 to 0.7 s in them (p99 169 and 202 ms). So a round only
# when a slow merge let many commits through (a second of them at 50 a second)
CATCH_UP_REVISIONS = 50
CATCH_UP_ROUNDS = 3

# a replan's work in this process after its solve (merging the plan, encoding its rows:
# 0.1 to 0.2 s of Python on colossus under load) yields to the request threads, which share
# the GIL with it: between its steps (about 10 ms apart) it waits while an operation is in
# flight, at most this long each time (so that a saturated service still ends its replan)
YIELD_CAP_S = 0.02


class ServiceError(PlacerError):
    """An answer other than 200 decided by the service (status, location, message)."""

    def __init__(self, status: int, msg: str, loc: list[str] | None = None, **headers: str):
        super().__init__(msg)
        self.status = status
        self.loc = loc or []
        self.headers = headers


class Service:
    """See the module docs. ``store=None`` keeps the state in memory only (tests and
    embedding; ``placer serve`` always has a store)."""

    def __init__(
        self,
        instance: Instance,
        *,
        placement: Any = None,
        store: Store | None = None,
        limits: Limits | None = None,
        verify: str = "changed",
        cluster: Cluster | None = None,
    ) -> None:
        self.instance = instance
        self.instance_doc = instance.model_dump(mode="json", exclude_none=True)
        if placement is not None:  # one of another instance warns here, as Cluster does
            from placer.api import warn_placement

            placement = documents.placement_of(placement)
            warn_placement(instance, placement, stacklevel=2)
        self.placement = placement
        self.store = store
        self.limits = limits or Limits()
        self.verify = verify
        self.lock = threading.Lock()
        self.cluster: Cluster | None = cluster
        self.revision = 0
        self.status = "starting"
        self.error: str | None = None
        self.ready_seconds: float | None = None
        self.replan_worker = SolveWorker("replan")
        self.solve_worker = SolveWorker("solve")
        self._replanning: int | None = None  # revision the running replan started from
        self.replan_hold_s: float | None = None  # the last replan commit's hold of the lock
        self._adopt_s = 0.0  # of which commit_adopt
        self._laps = NO_LAPS  # its phases (PLACER_SERVE_PROFILE)
        self._replan_t0 = 0.0  # when the last replan's request came (profiling)
        self._state: dict[str, Any] | None = None
        self._seqs: dict[str, int] = {}
        self._memory_keys: dict[str, tuple[int, str, dict]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # group commit (see durable): operations applied in memory, queued for the store
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # held by the one thread writing a batch
        self._ticket: _Ticket | None = None  # (lock held) the operation just queued
        self._last: _Ticket | None = None  # the last operation queued
        self._pending_keys: dict[str, tuple[int, str, dict[str, Any], _Ticket]] = {}
        self.commits = 0  # store transactions written (a group commit writes several)
        self._active = 0  # operations in flight up to the release of the lock
        self._active_lock = threading.Lock()
        self.yielded_s = 0.0  # the time replans spent letting operations run first
        if cluster is not None and store is None:
            self._state = cluster.state(jobs=False)
            self.revision = 1
            self.status = "ready"

    # ------------------------------------------------------------------ life cycle
    def start(self, background: bool = True) -> None:
        """Become the writer and rebuild (or create) the cluster; /health is 503 until then."""
        if self.status == "ready":
            return
        if background:
            self._thread = threading.Thread(target=self._boot, name="placer-boot", daemon=True)
            self._thread.start()
        else:
            self._boot()
            if self.status != "ready":
                raise StoreError(self.error or "the service did not start")

    def _boot(self) -> None:
        t0 = time.perf_counter()
        try:
            store = self.store
            if store is None:
                c = Cluster._start(self.instance, self.placement, self.verify)
                with self.lock:
                    self.cluster, self._state, self.revision = c, c.state(jobs=False), 1
            else:
                self.status = "standby"
                if getattr(store, "_conn", None) is None:
                    store.open()
                store.acquire(self._stop)
                self.status = "starting"
                stored = store.load()
                if stored is None:
                    c = Cluster._start(self.instance, self.placement, self.verify)
                    state = c.state()
                    rev = store.initialise(
                        self.instance_doc, state, {"jobs": len(c.jobs), "objective": c.objective}
                    )
                    seqs = {jd["name"]: k for k, jd in enumerate(state["jobs"])}
                else:
                    check_same_instance(stored.instance, self.instance_doc)
                    c = Cluster.resume(self.instance, stored.state, verify=self.verify)
                    rev, seqs = stored.revision, stored.seqs
                with self.lock:
                    self.cluster, self._state, self._seqs = c, c.state(jobs=False), seqs
                    self.revision = rev
            _freeze_heap()
            self.ready_seconds = time.perf_counter() - t0
            self.status = "ready"
            self.replan_worker.start()  # warm for the first replan (after ready: no delay)
            log.info("ready at revision %d in %.2f s", self.revision, self.ready_seconds)
        except Exception as e:  # noqa: BLE001 - reported by /health and the CLI
            if self._stop.is_set():
                return
            self.error = str(e) if isinstance(e, PlacerError) else f"{type(e).__name__}: {e}"
            self.status = "failed"
            log.error("the service cannot start: %s", self.error)

    def wait_ready(self, timeout: float = 60.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.status in ("ready", "failed"):
                return self.status == "ready"
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._stop.set()
        self.replan_worker.stop()
        self.solve_worker.stop()
        if self.store is not None:
            self.store.close()

    def _lost(self, e: Exception) -> None:
        """A commit failed after the cluster changed: forget memory, rebuild from disk."""
        log.error("commit failed (%s): rebuilding from the store", e)
        self.cluster = None
        self.status = "starting"
        store = self.store
        if store is not None:
            store.close()
        self._thread = threading.Thread(target=self._boot, name="placer-reboot", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ helpers
    def ready_cluster(self) -> Cluster:
        if self.status != "ready" or self.cluster is None:
            raise ServiceError(
                503, f"the service is {self.status}: not ready", ["service"], **{"Retry-After": "1"}
            )
        return self.cluster

    def check_if_match(self, if_match: str | None) -> None:
        if if_match is None:
            return
        tags = [t.strip() for t in if_match.split(",")]
        if "*" in tags:
            return
        mine = f'"{self.revision}"'
        if not any(t in (mine, f"W/{mine}", str(self.revision)) for t in tags):
            raise ServiceError(
                412,
                f"stale revision {if_match}: the state is at revision {self.revision} "
                "(read it again, then retry)",
                ["header", "if-match"],
            )

    def replayed(self, key: str | None) -> dict[str, Any] | None:
        if not key:
            return None
        pending = self._pending_keys.get(key)
        if pending is not None:  # queued, not written yet: answered once it is
            self._ticket = pending[3]
            return {**pending[2], "revision": pending[0], "replayed": True}
        hit = self.store.replayed(key) if self.store is not None else self._memory_keys.get(key)
        return None if hit is None else {**hit[2], "revision": hit[0], "replayed": True}

    def _commit(
        self,
        op: str,
        request: dict[str, Any],
        result: Change,
        key: str | None,
        encoded: _Encoded | None = None,
        laps: Laps = NO_LAPS,
    ) -> dict[str, Any]:
        """Persist what `result` changed (lock held); the answer with its revision.
        `encoded`: the documents and actions a replan encoded without the lock (only what
        changed since is encoded here)."""
        c = self.cluster
        assert c is not None
        d = result.to_dict()
        names = {a.job for a in result.actions if a.job}
        running = c.jobs  # in start order: new jobs get their sequence numbers in it
        delete = [n for n in names if n not in running]
        laps("answer to_dict and running jobs")
        upsert: dict[str, Any] = {}
        stored: dict[str, Any] | str = d
        if self.store is not None:
            kept = [n for n in running if n in names]
            if encoded is None:
                upsert = {n: c.job_document(n) for n in kept}
            else:
                upsert = c.encoded_documents(encode, encoded.docs, kept)
                laps(f"encode {len(kept)} documents")
                stored = encoded.change(d, result.actions)
                laps("encode the answer")
        # failed and restored hardware, leases and their cover blocks: only fail, restore and
        # replan change them, or an operation with lease actions (every lease change is one);
        # reading them scans every GPU (about 10 ms on colossus), so jobs-only commits skip it
        jobs_only = op in ("submit", "bind", "release") and self._state is not None
        if jobs_only and not any(a.kind == "lease" for a in result.actions):
            state = self._state
        elif encoded is not None and encoded.state is not None and encoded.taken():
            state = encoded.state  # the prepared state's, read without the lock
        else:
            state = c.state(jobs=False)
        changed_state = state if state != self._state else None
        laps("state without jobs")
        if self.store is None:
            self.revision += 1
            for n in delete:
                self._seqs.pop(n, None)
            if key:
                self._memory_keys[key] = (self.revision, op, d)
        else:
            # queued for the group commit (the caller waits for it without the lock)
            self.revision += 1
            # the answer as it is now (written later by another thread, while the caller
            # adds its revision and more)
            stored = dict(stored) if isinstance(stored, dict) else stored
            commit = Commit(op, request, stored, upsert, delete, changed_state, key)
            t = _Ticket(self.revision, commit)
            if key:
                self._pending_keys[key] = (self.revision, op, d, t)
            with self._queue_lock:
                self._queue.append(t)
            self._ticket = self._last = t
        self._state = state
        d["revision"] = self.revision
        return d

    # ------------------------------------------------------------------ mutations
    def mutate(
        self,
        op: str,
        request: dict[str, Any],
        fn: Any,
        if_match: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Run ``fn(cluster)`` (a Decision or Change) as one durable operation."""
        asked = time.perf_counter()
        with self._active_lock:
            self._active += 1
        try:
            with self.lock:
                self._ticket = None
                if PROFILE:
                    d = self._profiled(asked, op, request, fn, if_match, key)
                else:
                    d = self._mutate(op, request, fn, if_match, key)
                t = self._ticket or self._last
        finally:
            with self._active_lock:
                self._active -= 1
        self.durable(t)
        return d

    def yield_to_operations(self, cap: float = YIELD_CAP_S) -> float:
        """(Without the lock) wait while an operation is in flight, at most `cap` s: what
        a replan's work after its solve calls between its steps, so that the operations
        that came meanwhile are not slowed by it (they share the GIL). The seconds
        waited."""
        if not self._active:
            return 0.0
        t0 = time.perf_counter()
        end = t0 + cap
        while self._active and time.perf_counter() < end:
            time.sleep(0.0005)
        waited = time.perf_counter() - t0
        self.yielded_s += waited
        return waited

    def _mutate(
        self,
        op: str,
        request: dict[str, Any],
        fn: Any,
        if_match: str | None,
        key: str | None,
        laps: Laps = NO_LAPS,
    ) -> dict[str, Any]:
        """:meth:`mutate` under the lock: its answer, its commit queued if it changed
        anything (``self._ticket``)."""
        c = self.ready_cluster()
        hit = self.replayed(key)
        if hit is not None:
            return hit
        self.check_if_match(if_match)
        result = fn(c)
        laps("operation")
        # a fail or restore changes the hardware without actions, unless it changed nothing
        changed = bool(result.actions) or (op in ("fail", "restore") and result.applied)
        if getattr(result, "placed", True) is False or not changed:
            d = result.to_dict()
            d["revision"] = self.revision
            if op in ("fail", "restore"):
                d["applied"] = False  # (a committed one answers the default, true)
            return d
        return self._commit(op, request, result, key, laps=laps)

    # ------------------------------------------------------------------ group commit
    def read_point(self) -> _Ticket | None:
        """(Lock held) what a reader of the state now waits for (:meth:`durable`): the
        last operation queued for the store."""
        return self._last

    def durable(self, t: _Ticket | None) -> None:
        """Wait (without the lock) until the operation of ticket `t` and every one before it
        are on disk; ServiceError 503 if their commit failed (nothing of them was written).
        Group commit: the first waiter whose operation is not written yet takes every queued
        operation and writes them in one transaction (one fsync for all), while the others
        wait for it; the state's lock is not held meanwhile, so other operations go on in
        memory and queue behind. Answers (and reads) come only after the commit that holds
        what they saw: an acknowledged operation is never lost, and a later one never
        commits without the earlier ones (one transaction, in revision order)."""
        if t is None:
            return
        while not t.done.is_set():
            with self._flush_lock:
                if not t.done.is_set():
                    self._flush()
        if t.error is not None:
            raise ServiceError(503, t.error, ["service"], **{"Retry-After": "1"})

    def _flush(self) -> None:
        """(The flush lock held) write every queued operation in one store transaction."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        store = self.store
        assert store is not None
        try:
            store.commit_many([t.commit for t in batch], self._seqs)
        except Exception as e:  # noqa: BLE001 - any failure: memory is ahead of disk
            msg = (
                "this service is no longer the writer"
                if isinstance(e, FencedError)
                else f"the state could not be written ({e})"
            )
            with self.lock:  # every operation applied in memory on top of the batch fails too
                with self._queue_lock:
                    rest, self._queue = self._queue, []
                self._pending_keys.clear()
                self._last = None
                if self.cluster is not None and not self._stop.is_set():  # not when closing
                    self._lost(e)
            for t in batch + rest:
                t.error = f"{msg}; nothing was committed"
                t.done.set()
            return
        self.commits += 1
        for t in batch:
            if t.commit.idempotency_key:
                self._pending_keys.pop(t.commit.idempotency_key, None)
            t.done.set()

    def _profiled(
        self,
        asked: float,
        op: str,
        request: dict[str, Any],
        fn: Any,
        if_match: str | None,
        key: str | None,
    ) -> dict[str, Any]:
        """:meth:`mutate` under the lock, timed (``PLACER_SERVE_PROFILE``): a hold over 10 ms
        or a wait for the lock over 20 ms is logged with its phases and when it was, in
        seconds since the running replan's request (if any)."""
        held = time.perf_counter()
        laps = Laps(True)
        try:
            return self._mutate(op, request, fn, if_match, key, laps)
        finally:
            now = time.perf_counter()
            if now - held > 0.01 or held - asked > 0.02:
                at = f"{now - self._replan_t0:.3f}" if self._replan_t0 else "-"
                log.info(
                    "%s held the lock %.1f ms after waiting %.1f ms (at %s s of the replan): %s",
                    op,
                    1e3 * (now - held),
                    1e3 * (held - asked),
                    at,
                    laps.text(),
                )

    def replan(
        self,
        request: dict[str, Any],
        if_match: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /replan`` (see the module docs), answered once what it saw (its own
        commit, if applied) is on disk."""
        last = self._last
        d = self._replan(request, if_match, key)
        t = d.pop("_ticket", None) or self._last or last
        t0 = time.perf_counter()
        self.durable(t)
        if PROFILE and d.get("applied"):
            log.info("replan written %.1f ms after its commit", 1e3 * (time.perf_counter() - t0))
        return d

    def _replan(
        self,
        request: dict[str, Any],
        if_match: str | None,
        key: str | None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        self._replan_t0 = _REPLAN_T0[0] = started
        pending = request.get("pending") or []
        # the pending jobs parsed once for the whole replan (the merge uses them too), and
        # without the lock: they depend on the instance only, and 300 jobs take 40 to 150 ms
        # that held every submit. A problem is raised in the lock, after the checks before it
        c0, jobs, bad = self.cluster, None, None
        if c0 is not None and self.status == "ready":
            try:
                jobs = c0.parse_pending(pending)
            except PlacerError as e:
                bad = e
        with self.lock:
            c = self.ready_cluster()
            hit = self.replayed(key)
            if hit is not None:
                return hit
            self.check_if_match(if_match)
            if self._replanning is not None:
                raise ServiceError(
                    409,
                    f"a replan is already running (from revision {self._replanning})",
                    ["replan"],
                )
            if c is not c0 or (jobs is None and bad is None):  # rebuilt meanwhile
                jobs = c.parse_pending(pending)
            elif bad is not None:
                raise bad
            doc = c.replan_instance(pending, ids=False, jobs=jobs)  # the worker names the GPUs
            solved_from = c.adopt_base()  # the state the solve checks its plan against
            rev0 = self.revision
            before = c.objective
            self._replanning = rev0
        tl = _Timeline(started, PROFILE)
        try:
            task = {
                "instance": doc,
                "solver": request["solver"],
                "time_limit": request["time_limit"],
                "seed": request["seed"],
                # the placement read there, its GPUs as indices (IndexedPlacement): its
                # document validated here held the GIL (every request thread) for a quarter
                # of a second on colossus, and its Placement model unpickled, 130 ms
                "indexed": True,
            }
            deadline = request["time_limit"] + self.limits.solve_grace_seconds
            try:
                res = self.replan_worker.run(task, deadline)
            except DeadlineExceeded:
                return self._not_applied(
                    f"the solve did not finish by its deadline ({deadline:g} s: time_limit + "
                    f"{self.limits.solve_grace_seconds:g} s grace); its process was killed and "
                    "nothing changed",
                    started,
                )
            except WorkerFailed as e:
                if e.kind == "usage":
                    raise UsageError(str(e)) from None
                raise ServiceError(500, f"the replan worker failed: {e}", ["replan"]) from None
            why = verdict(res["has_placement"], res["reason"], res["objective"], before)
            tl("solved")
            if why:
                return self._not_applied(why, started)
            # the plan merged into a copy of the state now and checked whole, without the
            # lock (submits go on); under the lock only the jobs that moved since are redone
            with self.lock:
                c = self.ready_cluster()
                base, rev1 = c.adopt_base(), self.revision
                tl("copied (lock)")
            try:
                steps = _Yielding(self)
                prep = c.prepare_adopt(
                    base, res["placement"], pending, jobs=jobs, solved_from=solved_from, laps=steps
                )
                tl(f"prepared ({prep.how}; {1e3 * steps.waited:.1f} ms yielded)")
            except PlacementError as e:
                state = (
                    f"the state moved (revision {rev0} -> {rev1}) and the plan no longer passes"
                    if rev1 != rev0
                    else f"the plan does not pass (revision {rev0}, the state it was solved from)"
                )
                return self._not_applied(f"{state} the checker against it: {_problems(e)}", started)
            encoded = self._encode(c, prep)
            tl("encoded")
            # under churn, catch the prepared plan up to a newer copy without the lock, so
            # that the commit redoes only what the last short round let through
            rounds = 0
            while True:
                self.yield_to_operations()
                with self.lock:
                    held, cpu = time.perf_counter(), time.thread_time()
                    tl("waited for the lock")
                    if self.ready_cluster() is not c:  # rebuilt from the store meanwhile
                        return self._not_applied(
                            "the service was rebuilt from its store during the replan; "
                            "nothing changed",
                            started,
                        )
                    if self.revision - rev1 > CATCH_UP_REVISIONS and rounds < CATCH_UP_ROUNDS:
                        base, rev1 = c.adopt_base(), self.revision
                        tl("copied (lock)")
                    else:
                        behind = self.revision - rev1
                        try:
                            self._ticket = None
                            d = self._commit_plan(c, prep, request, key, rev0, started, encoded)
                            if self._ticket is not None:
                                d["_ticket"] = self._ticket
                            return d
                        finally:
                            self.replan_hold_s = time.perf_counter() - held
                            log.info(
                                "replan commit held the lock %.1f ms (%.1f ms of CPU in its "
                                "thread; %d commits to catch up after %d rounds; adopting "
                                "%.1f ms)",
                                1e3 * self.replan_hold_s,
                                1e3 * (time.thread_time() - cpu),
                                behind,
                                rounds,
                                1e3 * self._adopt_s,
                            )
                            if self._laps.on:
                                tl("committed (lock)")
                                log.info("replan commit phases (ms): %s", self._laps.text())
                rounds += 1
                try:
                    prep = c.advance_adopt(base, prep)
                    tl("advanced")
                except PlacementError as e:
                    return self._not_applied(
                        f"the state moved (revision {rev0} -> {rev1}) and the plan no longer "
                        f"passes the checker against it: {_problems(e)}",
                        started,
                    )
                encoded = self._encode(c, prep, encoded)
                tl("encoded")
        finally:
            self._replanning = None
            if tl.on:
                tl("done")
                log.info("replan timeline (s): %s", tl.text())

    def _commit_plan(
        self,
        c: Cluster,
        prep: Any,
        request: dict[str, Any],
        key: str | None,
        rev0: int,
        started: float,
        encoded: _Encoded | None = None,
    ) -> dict[str, Any]:
        """Adopt a prepared plan into the cluster as it is now and commit it (lock held)."""
        moved = self.revision != rev0
        t0 = time.perf_counter()
        self._adopt_s = 0.0
        laps = self._laps = Laps(PROFILE)
        try:
            change = c.commit_adopt(prep, laps)
            self._adopt_s = time.perf_counter() - t0
            laps("kept")
        except PlacementError as e:
            return self._not_applied(
                f"the state moved (revision {rev0} -> {self.revision}) and the plan no "
                f"longer passes the checker against it: {_problems(e)}",
                started,
            )
        if change.reason:
            return self._not_applied(change.reason, started)
        change.seconds = time.perf_counter() - started
        d = self._commit("replan", request, change, key, encoded, laps)
        d["applied"] = True
        d["moved"] = moved
        d["from_revision"] = rev0
        return d

    def _encode(self, c: Cluster, prep: Any, encoded: _Encoded | None = None) -> _Encoded | None:
        """(Without the lock) the prepared plan's job documents and actions as the store
        writes them, so that the commit under the lock encodes only what it redid: on
        colossus a replan moving every job writes 170,000 GPU ids twice (rows and event),
        about 0.1 s of encoding. Only the jobs the plan starts or moves: the others' rows
        are not written (encoding every job of colossus, 170,000 GPU ids, took 30 to 75 ms of
        the GIL from the request threads after every solve)."""
        if self.store is None:
            return None
        encoded = encoded or _Encoded()
        encoded.prep = prep
        encoded.state = c.prepared_state(prep)
        self.yield_to_operations()
        names = [a.job for a in prep.change.actions if a.job]
        for k in range(0, len(names), 32):  # in steps, yielding to the operations between
            c.encoded_documents(encode, encoded.docs, names[k : k + 32], prep=prep)
            self.yield_to_operations()
        for k, a in enumerate(prep.change.actions):
            hit = encoded.actions.get(id(a))
            if hit is None or hit[0] is not a:
                encoded.actions[id(a)] = (a, encode(a.to_dict()))
            if k % 32 == 31:
                self.yield_to_operations()
        return encoded

    def _not_applied(self, reason: str, started: float) -> dict[str, Any]:
        d = Change(reason=reason, seconds=time.perf_counter() - started).to_dict()
        d.update(applied=False, revision=self.revision)
        return d

    # ------------------------------------------------------------------ posted solves
    def solve(self, doc: dict[str, Any], solver: str, time_limit: float, seed: int) -> dict:
        deadline = time_limit + self.limits.solve_grace_seconds
        task = {"instance": doc, "solver": solver, "time_limit": time_limit, "seed": seed}
        try:
            res = self.solve_worker.run(task, deadline)
        except WorkerBusy:
            raise ServiceError(
                503,
                "a posted solve is already running; retry later",
                ["solve"],
                **{"Retry-After": "5"},
            ) from None
        except DeadlineExceeded:
            raise ServiceError(
                503,
                f"the solve did not finish by its deadline ({deadline:g} s); it was killed",
                ["solve"],
            ) from None
        except WorkerFailed as e:
            if e.kind == "usage":
                raise UsageError(str(e)) from None
            raise ServiceError(500, f"the solve worker failed: {e}", ["solve"]) from None
        if res["placement"] is None:
            raise ServiceError(400, f"the solve found no placement: {res['reason']}", ["instance"])
        return res["placement"]


class _Yielding(Laps):
    """The phases of a replan's merge (profiling), and between them the merge yields to
    the operations in flight (:meth:`Service.yield_to_operations`)."""

    def __init__(self, svc: Service) -> None:
        super().__init__(True)
        self.svc = svc
        self.waited = 0.0

    def __call__(self, name: str) -> None:
        super().__call__(name)
        w = self.svc.yield_to_operations()
        if w:
            self.waited += w
            self.t = time.perf_counter()  # the wait is no phase's


class _Ticket:
    """One operation queued for the store's group commit (see :meth:`Service.durable`)."""

    __slots__ = ("revision", "commit", "done", "error")

    def __init__(self, revision: int, commit: Commit) -> None:
        self.revision = revision
        self.commit = commit
        self.done = threading.Event()
        self.error: str | None = None


@dataclass
class _Encoded:
    """A replan's JSON encoded without the lock: job documents (name -> (key, text), see
    :meth:`Cluster.encoded_documents`) and actions (id -> (action, text): the commit's
    Change reuses the prepared Action objects of the jobs it did not redo)."""

    docs: dict[str, tuple[Any, str]] = field(default_factory=dict)
    actions: dict[int, tuple[Any, str]] = field(default_factory=dict)
    prep: Any = None  # the preparation encoded
    state: dict[str, Any] | None = None  # its state without jobs (Cluster.prepared_state)

    def taken(self) -> bool:
        """The commit took the prepared state (not adopted whole): `state` is the live one."""
        return self.prep is not None and self.prep.taken

    def change(self, d: dict[str, Any], actions: list[Any]) -> str:
        """The JSON text of `d` (``Change.to_dict`` of `actions`), reusing the actions
        encoded already."""
        parts = []
        for a, ad in zip(actions, d["actions"], strict=True):
            hit = self.actions.get(id(a))
            parts.append(hit[1] if hit is not None and hit[0] is a else encode(ad))
        rest = encode({k: v for k, v in d.items() if k != "actions"})
        return '{"actions":[' + ",".join(parts) + "]" + ("," + rest[1:] if rest != "{}" else "}")


class _Timeline:
    """Profiling (``PLACER_SERVE_PROFILE``): when each step of a replan ended, in seconds
    since its request, with the milliseconds it took."""

    def __init__(self, started: float, on: bool) -> None:
        self.on, self.started, self.last = on, started, started
        self.steps: list[str] = []

    def __call__(self, what: str) -> None:
        if self.on:
            now = time.perf_counter()
            self.steps.append(f"{what} {now - self.started:.3f} ({1e3 * (now - self.last):.1f} ms)")
            self.last = now

    def text(self) -> str:
        return "; ".join(self.steps)


def _problems(e: PlacementError) -> str:
    return "; ".join(f"{loc}: {msg}" for loc, msg in e.problems[:5])


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}{'.' if path else ''}{k}"
            d = _first_difference(a[k], b[k], f"{path}{'.' if path else ''}{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} ({len(a)} entries in the state, {len(b)} in INSTANCE)"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path} ({a!r} in the state, {b!r} in INSTANCE)"


def check_same_instance(stored: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse to resume a state over a different instance (its jobs may differ: the running
    jobs come from the state)."""
    a = {k: v for k, v in stored.items() if k != "jobs"}
    b = {k: v for k, v in given.items() if k != "jobs"}
    d = _first_difference(a, b)
    if d is not None:
        raise UsageError(
            f"INSTANCE: the state holds a cluster of a different instance: {d} differs. "
            "Resume with the instance the state was made on, or start a new state file"
        )
