"""A solve in another process with a hard deadline: a Python thread cannot be killed, a
process can. One warm worker process (placer imported) waits for tasks on a pipe; a task that
is not answered by its deadline gets the process killed (SIGKILL) and a fresh one started, so
nothing of it survives. The process runs at a lower CPU priority (``nice`` 10 by default): a
solve is background work, and the service's request threads keep the CPU first. Used by
``POST /replan`` and ``POST /solve``.

Imports the standard library; the worker process imports placer.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from typing import Any


class DeadlineExceeded(Exception):
    """The solve did not answer by its deadline; its process was killed."""


class WorkerBusy(Exception):
    """The worker is solving another task."""


class WorkerFailed(Exception):
    """The worker raised or died; ``kind`` is ``usage`` (a placer error: the caller's) or
    ``crash``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _solve_task(task: dict[str, Any]) -> dict[str, Any]:
    """Solve ``task["instance"]``; the placement as a SPEC 2 document, or with ``indexed``
    as an :class:`~placer.live.replan.IndexedPlacement` (its GPUs as indices of the
    topology's numbering, the live cluster's): the heavy reading of the plan is done here,
    not in the service, whose request threads share one GIL, with the kernel's analysis of
    each job the plan moves or starts (its GPUs under its plan: the part of scoring it that
    depends on nothing else). The solve's placement was checked whole against the instance
    solved (the state the replan started from) by the solver's finalize; the service
    merges it into the state as it is then."""
    from placer.api import load_instance, solve
    from placer.live.replan import IndexedPlacement, named_document

    inst = load_instance(named_document(task["instance"]))
    res = solve(
        inst, solver=task["solver"], time_limit=task["time_limit"], seed=task.get("seed", 0)
    )
    pl: Any = res.placement
    if pl is not None:
        # 170,000 GPU ids of a loaded colossus, pickled as a Placement model, took the
        # service 130 ms of its GIL to read back, and their indices 50 ms more
        pl = (
            IndexedPlacement.of(pl, inst, analyse=True)
            if task.get("indexed")
            else pl.model_dump(mode="json", exclude_none=True)
        )
    return {
        "status": res.status.value if hasattr(res.status, "value") else str(res.status),
        "has_placement": bool(res.status.has_placement),
        "objective": res.objective,
        "reason": res.reason,
        "placement": pl,
    }


def _main(conn: Any, niceness: int = 0) -> None:  # pragma: no cover - the worker process
    import os

    if niceness:
        # a solve (and this warm-up) is background work: the service's requests keep the CPU
        os.nice(niceness)
    import placer  # noqa: F401 - warm: the first task pays no imports
    from placer.errors import PlacerError

    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        try:
            out = {"ok": True, "result": _solve_task(task)}
        except PlacerError as e:
            out = {"ok": False, "kind": "usage", "error": str(e)}
        except Exception as e:  # noqa: BLE001 - reported to the service, which answers 500
            out = {"ok": False, "kind": "crash", "error": f"{type(e).__name__}: {e}"}
        conn.send(out)


class SolveWorker:
    """One worker process; :meth:`run` sends a task and waits at most `deadline` s."""

    def __init__(self, name: str = "solve", niceness: int = 10) -> None:
        self.name = name
        self.niceness = niceness
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._busy = threading.Lock()
        self._start_lock = threading.Lock()
        self.kills = 0

    def start(self) -> None:
        """Start the process now (in the background of the first task otherwise)."""
        with self._start_lock:
            if self._proc is not None and self._proc.is_alive():
                return
            parent, child = self._ctx.Pipe()
            p = self._ctx.Process(
                target=_main,
                args=(child, self.niceness),
                daemon=True,
                name=f"placer-{self.name}",
            )
            p.start()
            child.close()
            self._proc, self._conn = p, parent

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _kill(self) -> None:
        p, conn = self._proc, self._conn
        self._proc = self._conn = None
        if p is not None:
            p.kill()
            p.join(timeout=10)
        if conn is not None:
            conn.close()

    def run(self, task: dict[str, Any], deadline: float) -> dict[str, Any]:
        """The worker's answer to `task`; raises :class:`WorkerBusy`,
        :class:`DeadlineExceeded` (the process was killed) or :class:`WorkerFailed`."""
        if not self._busy.acquire(blocking=False):
            raise WorkerBusy(f"the {self.name} worker is busy")
        try:
            t0 = time.monotonic()
            self.start()
            try:
                self._conn.send(task)
                left = deadline - (time.monotonic() - t0)
                ready = left > 0 and self._conn.poll(left)
                if not ready:
                    self._kill()
                    self.kills += 1
                    raise DeadlineExceeded(f"no answer within {deadline:g} s")
                out = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as e:
                self._kill()
                raise WorkerFailed("crash", f"the worker process died ({e})") from None
            if not out["ok"]:
                raise WorkerFailed(out["kind"], out["error"])
            return out["result"]
        finally:
            self._busy.release()

    def stop(self) -> None:
        with self._start_lock:
            self._kill()
