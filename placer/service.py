"""`placer serve`: an HTTP JSON service around one live :class:`~placer.cluster.Cluster`, for
schedulers that are not written in Python (Kueue is Go, Slurm is C).

Endpoints (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

=========================  =============================================================
``GET  /health``           liveness, running jobs, objective
``POST /jobs``             submit one job (SPEC 1.2) -> decision
``POST /bind``             a job the scheduler started itself on given GPUs
``DELETE /jobs/{name}``    release a job
``GET  /jobs``             running jobs and their units
``POST /fail``             hardware failed (domain paths, node/GPU ids, [site_a, site_b])
``POST /restore``          hardware is back
``POST /replan``           full solve from the live state (pending jobs may start)
``GET  /snapshot``         the live state as SPEC documents {instance, placement}
``GET  /score``            the live state's score (SPEC 2.1)
``POST /score``            score a posted {instance, placement}
``POST /check``            check a posted {instance, placement} (SPEC 3)
``POST /solve``            solve a posted {instance, solver, time_limit}
=========================  =============================================================

Request bodies are validated with the package's own pydantic models (a job is a
:class:`~placer.model.Job`); a bad body is a 422 whose ``detail`` lists each problem with
its location (``loc``) and message (``msg``), as is a domain error (400: a bad instance,
placement or argument; 404: an unknown job; 409: a name already running). Operations on the
cluster are serialised by one lock: a request sees the state every earlier one left.

Imports fastapi (optional extra ``placer[serve]``); imported only by ``placer serve``.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from placer.cluster import Cluster
from placer.errors import LocatedError, PlacerError, UsageError
from placer.model import Instance, Job, Placement


class SubmitBody(BaseModel):
    job: Job = Field(description="The arriving job (SPEC 1.2).")
    allow_moves: int = Field(0, ge=0, description="Most preemptible jobs it may displace.")
    max_migration_cost: float | None = Field(
        None, ge=0, description="Most migration cost (vu) a plan with moves may charge."
    )


class BindBody(BaseModel):
    job: Job = Field(description="A job started by the scheduler itself (SPEC 1.2).")
    gpus: list[str] = Field(description="Its GPU ids in rank order.")


class ItemsBody(BaseModel):
    items: list[str | list[str]] = Field(
        description="Domain paths, node or GPU ids, or WAN links [site_a, site_b]."
    )


class ReplanBody(BaseModel):
    time_limit: float | None = Field(10.0, gt=0, description="Seconds for the solve.")
    solver: str = Field("auto", description="Backend name (placer solvers).")
    pending: list[Job] = Field(default_factory=list, description="Jobs that may start.")
    seed: int = Field(0, description="Solver seed.")


class DocumentsBody(BaseModel):
    instance: Instance = Field(description="A SPEC 1 instance.")
    placement: Placement = Field(description="A SPEC 2 placement.")


class SolveBody(BaseModel):
    instance: Instance = Field(description="A SPEC 1 instance.")
    solver: str = Field("auto", description="Backend name.")
    time_limit: float | None = Field(10.0, gt=0, description="Seconds.")
    seed: int = Field(0, description="Solver seed.")


def _problems(e: PlacerError) -> list[dict[str, Any]]:
    if isinstance(e, LocatedError):
        return [
            {"loc": loc.replace("[", ".").replace("]", "").split(".") if loc else [], "msg": msg}
            for loc, msg in e.problems
        ]
    out = []
    for line in str(e).splitlines() or [str(e)]:
        loc, sep, msg = line.partition(": ")
        out.append(
            {"loc": loc.replace("[", ".").replace("]", "").split("."), "msg": msg}
            if sep and " " not in loc
            else {"loc": [], "msg": line}
        )
    return out


def _dump_model(m: BaseModel) -> dict:
    return m.model_dump(mode="json", exclude_unset=True)


def create_app(cluster: Cluster) -> FastAPI:
    """The FastAPI application serving `cluster` (see the module docs)."""
    app = FastAPI(
        title="placer",
        description="A live GPU cluster: place arriving jobs, repair failures, re-plan.",
        version=__import__("placer").__version__,
    )
    lock = threading.Lock()

    @app.exception_handler(PlacerError)
    async def placer_error(request: Request, exc: PlacerError) -> JSONResponse:
        status = 400
        text = str(exc)
        if isinstance(exc, UsageError) and "no running job" in text:
            status = 404
        elif isinstance(exc, UsageError) and "already running" in text:
            status = 409
        return JSONResponse(status_code=status, content={"detail": _problems(exc)})

    @app.get("/health")
    def health() -> dict:
        with lock:
            return {"status": "ok", "jobs": len(cluster.jobs), "objective": cluster.objective}

    @app.get("/jobs")
    def jobs() -> dict:
        with lock:
            return {"jobs": cluster.jobs, "free_gpus": cluster.free_gpus}

    @app.post("/jobs")
    def submit(body: SubmitBody) -> dict:
        with lock:
            d = cluster.submit(
                _dump_model(body.job),
                allow_moves=body.allow_moves,
                max_migration_cost=body.max_migration_cost,
            )
            return d.to_dict()

    @app.post("/bind")
    def bind(body: BindBody) -> dict:
        with lock:
            return cluster.start(_dump_model(body.job), body.gpus).to_dict()

    @app.delete("/jobs/{name}")
    def release(name: str) -> dict:
        with lock:
            return cluster.release(name).to_dict()

    @app.post("/fail")
    def fail(body: ItemsBody) -> dict:
        with lock:
            return cluster.fail(body.items).to_dict()

    @app.post("/restore")
    def restore(body: ItemsBody) -> dict:
        with lock:
            return cluster.restore(body.items).to_dict()

    @app.post("/replan")
    def replan(body: ReplanBody) -> dict:
        with lock:
            return cluster.replan(
                time_limit=body.time_limit,
                solver=body.solver,
                pending=[_dump_model(j) for j in body.pending],
                seed=body.seed,
            ).to_dict()

    @app.get("/snapshot")
    def snapshot() -> dict:
        with lock:
            inst, pl = cluster.snapshot()
            return {"instance": inst, "placement": pl}

    @app.get("/score")
    def live_score() -> dict:
        with lock:
            return cluster.score().to_dict()

    @app.post("/score")
    def score_posted(body: DocumentsBody) -> dict:
        import placer

        inst = placer.load_instance(_dump_model(body.instance))
        return placer.score(inst, body.placement).to_dict()

    @app.post("/check")
    def check_posted(body: DocumentsBody) -> dict:
        import placer

        inst = placer.load_instance(_dump_model(body.instance))
        v = placer.check(inst, body.placement)
        return {"feasible": not v, "violations": [x.to_dict() for x in v]}

    @app.post("/solve")
    def solve_posted(body: SolveBody) -> dict:
        import placer

        inst = placer.load_instance(_dump_model(body.instance))
        r = placer.solve(inst, solver=body.solver, time_limit=body.time_limit, seed=body.seed)
        return r.placement.model_dump(mode="json", exclude_none=True)

    return app


def serve(cluster: Cluster, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `cluster` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(cluster), host=host, port=port, log_level="info")
