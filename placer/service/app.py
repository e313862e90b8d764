"""The FastAPI application of `placer serve` (routes, request and answer models, errors, the
offline ``/docs``). The state, the store and the workers are :mod:`placer.service.runtime`;
tokens and caps :mod:`placer.service.guard`.

Every status a route can answer is in the OpenAPI document with its body model, and the
request models carry the limits the server enforces (the caps of this server included), so
a client generated from ``/openapi.json`` and the server agree.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from placer.errors import ConflictError, LocatedError, PlacerError, UnknownJobError
from placer.live.results import ActionCause
from placer.model import Instance, Job, Placement
from placer.model.fields import Name
from placer.service.guard import Guard, Token
from placer.service.runtime import Limits, Service, ServiceError


# --------------------------------------------------------------------------- answers
class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")
    loc: list[str | int] = Field(description="Where: body, header, job field, item index.")
    msg: str = Field(description="What is wrong.")


class ErrorOut(BaseModel):
    detail: list[Problem] = Field(description="One entry per problem.")


class ActionOut(BaseModel):
    kind: Literal["start", "move", "stop", "lease"]
    job: str | None = None
    offer: str | None = None
    units: int = 0
    units_before: int = 0
    gpus: list[str] = Field(default_factory=list, description="GPU ids in rank order.")
    blocks: list[str] = Field(default_factory=list)
    cost: float = Field(description="Migration cost charged (vu).")
    revenue_change: float = 0.0
    reason: str = ""
    cause: ActionCause | None = None
    plan: str | None = Field(None, description="SPEC v3: the plan the job runs after it.")
    plan_before: str | None = Field(None, description="SPEC v3: the plan it ran before.")


class ChangeOut(BaseModel):
    actions: list[ActionOut]
    delta: float = Field(description="Objective change, migration costs included (vu).")
    cost: float
    lost: list[str]
    reason: str | None
    seconds: float
    revision: int = Field(description="The state's revision after this answer (also ETag).")
    replayed: bool = Field(False, description="An answer recorded for this Idempotency-Key.")


class HardwareOut(ChangeOut):
    applied: bool = Field(
        True,
        description="False: nothing to fail or restore (failed already, or not failed); "
        "nothing changed (`reason` says so) and no new revision.",
    )


class DecisionOut(ChangeOut):
    job: str
    placed: bool
    units: int
    gpus: list[str]
    plan: str | None = Field(None, description="SPEC v3: the plan it runs (a job with plans).")


class ReplanOut(ChangeOut):
    applied: bool = Field(True, description="False: nothing changed (`reason` says why).")
    moved: bool | None = Field(None, description="The state moved while the solve ran.")
    from_revision: int | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "starting", "standby", "failed"]
    revision: int
    jobs: int | None = None
    objective: float | None = None
    store: str
    error: str | None = None


class JobsOut(BaseModel):
    jobs: dict[str, int] = Field(description="Running jobs and their units.")
    free_gpus: int
    revision: int


class SnapshotOut(BaseModel):
    instance: dict[str, Any] = Field(description="SPEC 1 instance (running jobs as current).")
    placement: dict[str, Any] = Field(description="SPEC 2 placement.")
    revision: int


WARNINGS = (
    "Only when there is something to say: what `placer check` / `placer score` warn about "
    "on stderr, e.g. an unknown key of the instance (SPEC 6: accepted with a warning that "
    "names it) or a placement whose `instance` names another instance (SPEC 2). Never "
    "an error."
)


def _warned(answer: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """`answer` with `warnings` (WARNINGS) when there are any: no key when there are none."""
    if warnings:
        answer["warnings"] = list(warnings)
    return answer


class CheckOut(BaseModel):
    feasible: bool
    violations: list[dict[str, Any]]
    warnings: list[str] = Field(default_factory=list, description=WARNINGS)


class EventsOut(BaseModel):
    events: list[dict[str, Any]]
    revision: int


# --------------------------------------------------------------------------- requests
def _strict_number(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("must be a number, not a boolean")
    return v


def _strict_int(v: Any) -> Any:
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError(f"must be an integer, not {v!r}")
    return v


Seconds = Annotated[float, BeforeValidator(_strict_number)]
Count = Annotated[int, BeforeValidator(_strict_int)]
Link = Annotated[list[Name], Field(min_length=2, max_length=2)]
Where = Annotated[str, Field(min_length=1, max_length=1000)]
Item = Annotated[
    Where | Link,
    Field(description="A domain path, a node or GPU id, or a WAN link [site_a, site_b]."),
]

ERR = {"model": ErrorOut}
COMMON = {401: ERR, 403: ERR, 413: ERR, 422: ERR, 503: ERR}


def _responses(*codes: int, **extra: Any) -> dict[int | str, Any]:
    out: dict[int | str, Any] = dict(COMMON)
    for c in codes:
        out[c] = ERR
    out.update({int(k): v for k, v in extra.items()})
    return out


def _loc(loc: str) -> list[str]:
    return loc.replace("[", ".").replace("]", "").split(".") if loc else []


def _problems(e: PlacerError) -> list[dict[str, Any]]:
    if isinstance(e, LocatedError):
        return [{"loc": _loc(loc), "msg": msg} for loc, msg in e.problems]
    out = []
    for line in str(e).splitlines() or [str(e)]:
        loc, sep, msg = line.partition(": ")
        out.append(
            {"loc": _loc(loc), "msg": msg} if sep and " " not in loc else {"loc": [], "msg": line}
        )
    return out


def _docs_assets() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    p = Path(fastapi_offline.__file__).parent / "static"
    return p if (p / "swagger-ui-bundle.js").exists() else None


def create_app(
    service: Service | Any, tokens: list[Token] | None = None, limits: Limits | None = None
) -> Any:
    """The ASGI application serving `service` (a :class:`Service`, or a
    :class:`~placer.cluster.Cluster` served from memory), behind the tokens and caps."""
    from placer.cluster import Cluster

    if isinstance(service, Cluster):
        service = Service(service.instance, cluster=service, limits=limits)
    svc: Service = service
    lim = svc.limits
    tokens = tokens or []

    class SubmitBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        job: Job = Field(description="The arriving job (SPEC 1.2), without `current`.")
        allow_moves: Count = Field(0, ge=0, le=1000, description="Most jobs it may displace.")
        max_migration_cost: Seconds | None = Field(
            None, ge=0, description="Most migration cost (vu) a plan with moves may charge."
        )

    class BindBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        job: Job = Field(description="A job started by the scheduler itself (SPEC 1.2).")
        gpus: list[Where] = Field(min_length=1, description="Its GPU ids in rank order.")
        plan: Name | None = Field(
            None,
            description="SPEC v3: the plan it runs, one of the job's plans (may be left out "
            "when it has one plan); none for a job without plans.",
        )

    class ItemsBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[Item] = Field(min_length=1, max_length=100_000)

    class ReplanBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        time_limit: Seconds = Field(
            min(10.0, lim.max_solve_seconds),
            gt=0,
            le=lim.max_solve_seconds,
            description=f"Seconds for the solve (at most {lim.max_solve_seconds:g}, the cap).",
        )
        solver: str = Field("auto", min_length=1, description="Backend name (placer solvers).")
        pending: list[Job] = Field(
            default_factory=list, max_length=lim.max_jobs, description="Jobs that may start."
        )
        seed: Count = Field(0, ge=0, le=2**31 - 1, description="Solver seed (an integer).")

    class DocumentsBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        instance: Instance = Field(description="A SPEC 1 instance.")
        placement: Placement = Field(description="A SPEC 2 placement.")

    class SolveBody(BaseModel):
        model_config = ConfigDict(extra="forbid")
        instance: Instance = Field(description="A SPEC 1 instance.")
        solver: str = Field("auto", min_length=1, description="Backend name.")
        time_limit: Seconds = Field(
            min(10.0, lim.max_solve_seconds),
            gt=0,
            le=lim.max_solve_seconds,
            description=f"Seconds (at most {lim.max_solve_seconds:g}, the cap).",
        )
        seed: Count = Field(0, ge=0, le=2**31 - 1, description="Solver seed (an integer).")

    def known_query(request: Request) -> None:
        """Unknown query parameters are refused (a typo such as ?sinse=5 would be ignored)."""
        route = request.scope.get("route")
        known = {p.alias for p in route.dependant.query_params} if route is not None else set()
        extra = sorted(set(request.query_params) - known)
        if extra:
            raise ServiceError(422, f"unknown query parameter {extra[0]!r}", ["query", extra[0]])

    app = FastAPI(
        dependencies=[Depends(known_query)],
        title="placer",
        description=(
            "A live GPU cluster: place arriving jobs, repair failures, re-plan. Every answer "
            "carries the state's revision as `ETag`; a mutation may send `If-Match` (412 when "
            "stale) and `Idempotency-Key` (a retry gets the recorded answer)."
        ),
        version=__import__("placer").__version__,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url="/docs/oauth2-redirect",
    )
    assets = _docs_assets()
    if assets is not None:
        app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(
                "<html><body><h1>placer</h1><p>The interactive docs need the package "
                "fastapi-offline (pip install 'placer[serve]'); the API is described at "
                "<a href='/openapi.json'>/openapi.json</a>.</p></body></html>"
            )
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="placer - API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def docs_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    def error(status: int, problems: list[dict], headers: dict | None = None) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": problems}, headers=headers)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error(exc.status, [{"loc": exc.loc, "msg": str(exc)}], exc.headers or None)

    @app.exception_handler(PlacerError)
    async def placer_error(request: Request, exc: PlacerError) -> JSONResponse:
        status = (
            404
            if isinstance(exc, UnknownJobError)
            else 409
            if isinstance(exc, ConflictError)
            else 400
        )
        return error(status, _problems(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, [{"loc": [], "msg": str(exc.detail)}], exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        out = []
        for e in exc.errors():
            p = {"loc": [str(x) if not isinstance(x, int) else x for x in e.get("loc", ())]}
            p["msg"] = str(e.get("msg", ""))
            p["type"] = str(e.get("type", ""))
            out.append(p)
        return error(422, out)

    def tag(response: Response, d: dict) -> dict:
        response.headers["ETag"] = f'"{d["revision"]}"'
        return d

    IfMatch = Annotated[
        str | None,
        Header(description="The revision (ETag) the change is based on: 412 when stale."),
    ]
    Key = Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Makes a retry safe: a key already committed gets its recorded answer.",
        ),
    ]

    @app.get(
        "/health",
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "Starting, standby or failed."}},
    )
    def health(response: Response) -> Any:
        """Ready (200) or not (503: starting, rebuilding, standby, failed)."""
        c = svc.cluster
        ok = svc.status == "ready" and c is not None
        d = {
            "status": "ok" if ok else svc.status,
            "revision": svc.revision,
            "store": svc.store.kind if svc.store is not None else "memory",
            "error": svc.error,
        }
        if ok:
            with svc.lock:
                d.update(jobs=len(c.jobs), objective=c.objective, revision=svc.revision)
                t = svc.read_point()
            try:
                svc.durable(t)  # the revision it reports is on disk (group commit)
            except ServiceError as e:  # its commit failed: the service rebuilds from the store
                d.update(status="failed", error=str(e))
                del d["jobs"], d["objective"]
                return JSONResponse(status_code=503, content=d, headers={"Retry-After": "1"})
            return d
        return JSONResponse(status_code=503, content=d, headers={"Retry-After": "1"})

    @app.get("/jobs", response_model=JobsOut, responses=_responses())
    def jobs(response: Response) -> Any:
        """Running jobs and their units."""
        with svc.lock:
            c = svc.ready_cluster()
            d = {"jobs": c.jobs, "free_gpus": c.free_gpus, "revision": svc.revision}
            t = svc.read_point()
        svc.durable(t)  # what it read is on disk (group commit)
        return tag(response, d)

    @app.post("/jobs", response_model=DecisionOut, responses=_responses(400, 409, 412))
    def submit(
        body: SubmitBody, response: Response, if_match: IfMatch = None, idempotency_key: Key = None
    ) -> Any:
        """Submit one job: the Decision (placed or not, with a true reason)."""
        job = body.job.model_dump(mode="json", exclude_unset=True)
        req = {
            "job": job,
            "allow_moves": body.allow_moves,
            "max_migration_cost": body.max_migration_cost,
        }

        def run(c: Any) -> Any:
            return c.submit(
                job, allow_moves=body.allow_moves, max_migration_cost=body.max_migration_cost
            )

        return tag(response, svc.mutate("submit", req, run, if_match, idempotency_key))

    @app.post("/bind", response_model=DecisionOut, responses=_responses(400, 409, 412))
    def bind(
        body: BindBody, response: Response, if_match: IfMatch = None, idempotency_key: Key = None
    ) -> Any:
        """A job the scheduler started itself on given GPUs (validated as a submit's choice)."""
        job = body.job.model_dump(mode="json", exclude_unset=True)
        req = {"job": job, "gpus": body.gpus}
        if body.plan is not None:
            req["plan"] = body.plan

        def run(c: Any) -> Any:
            return c.start(job, list(body.gpus), plan=body.plan)

        return tag(response, svc.mutate("bind", req, run, if_match, idempotency_key))

    @app.delete("/jobs/{name}", response_model=ChangeOut, responses=_responses(404, 412))
    def release(
        response: Response,
        name: Annotated[str, PathParam(min_length=1, description="A running job.")],
        if_match: IfMatch = None,
        idempotency_key: Key = None,
    ) -> Any:
        """Release a job (finished or cancelled)."""
        return tag(
            response,
            svc.mutate(
                "release", {"name": name}, lambda c: c.release(name), if_match, idempotency_key
            ),
        )

    @app.post("/fail", response_model=HardwareOut, responses=_responses(400, 412))
    def fail(
        body: ItemsBody, response: Response, if_match: IfMatch = None, idempotency_key: Key = None
    ) -> Any:
        """Hardware failed: the repair's actions. Idempotent: items all failed already change
        nothing (`applied` false, no actions, `reason` says so, no new revision)."""
        items = list(body.items)
        return tag(
            response,
            svc.mutate(
                "fail", {"items": items}, lambda c: c.fail(items), if_match, idempotency_key
            ),
        )

    @app.post("/restore", response_model=HardwareOut, responses=_responses(400, 412))
    def restore(
        body: ItemsBody, response: Response, if_match: IfMatch = None, idempotency_key: Key = None
    ) -> Any:
        """Hardware is back. Idempotent: items none of which is failed change nothing
        (`applied` false, no actions, `reason` says so, no new revision)."""
        items = list(body.items)
        return tag(
            response,
            svc.mutate(
                "restore", {"items": items}, lambda c: c.restore(items), if_match, idempotency_key
            ),
        )

    @app.post("/replan", response_model=ReplanOut, responses=_responses(400, 409, 412, 500))
    def replan(
        response: Response,
        body: Annotated[ReplanBody, Body()] = None,  # type: ignore[assignment]
        if_match: IfMatch = None,
        idempotency_key: Key = None,
    ) -> Any:
        """A full solve from the live state in a worker process (killed at time_limit + the
        grace): adopted when it beats the live plan and passes the checker against the state
        as it is when the solve ends (submits go on meanwhile)."""
        body = body or ReplanBody()
        req = {
            "time_limit": body.time_limit,
            "solver": body.solver,
            "pending": [j.model_dump(mode="json", exclude_unset=True) for j in body.pending],
            "seed": body.seed,
        }
        _solver_ok(body.solver)
        return tag(response, svc.replan(req, if_match, idempotency_key))

    @app.get("/snapshot", response_model=SnapshotOut, responses=_responses())
    def snapshot(response: Response) -> Any:
        """The live state as SPEC documents."""
        with svc.lock:
            c = svc.ready_cluster()
            inst, pl = c.snapshot()
            rev = svc.revision
            t = svc.read_point()
        svc.durable(t)
        return tag(response, {"instance": inst, "placement": pl, "revision": rev})

    @app.get("/score", response_model=dict[str, Any], responses=_responses())
    def live_score(response: Response) -> Any:
        """The live state's score (SPEC 2.1)."""
        with svc.lock:
            c = svc.ready_cluster()
            d = c.score().to_dict()
            d["revision"] = svc.revision
            t = svc.read_point()
        svc.durable(t)
        return tag(response, d)

    @app.get("/events", response_model=EventsOut, responses=_responses())
    def events(
        response: Response,
        since: Annotated[int, Query(ge=0, le=2**62, description="After this revision.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """Committed operations after a revision (the append-only log), oldest first."""
        with svc.lock:
            svc.ready_cluster()
            rev = svc.revision
            t = svc.read_point()
        svc.durable(t)  # the revision it reports is on disk, as are its events (group commit)
        evs = svc.store.events(since, limit) if svc.store is not None else []
        return {"events": evs, "revision": rev}

    def _posted(inst: Instance) -> Any:
        import placer
        from placer.model.semantic import Findings, check_sites

        if len(inst.jobs) > lim.max_jobs:
            raise ServiceError(
                413,
                f"{len(inst.jobs):,} jobs, over the cap of {lim.max_jobs:,}",
                ["instance", "jobs"],
            )
        try:
            _, gpus, _ = check_sites(inst.model_copy(deep=True), Findings())
        except Exception:  # noqa: BLE001 - a malformed topology: load_instance says where
            gpus = 0
        if gpus > lim.max_gpus:
            raise ServiceError(
                413, f"{gpus:,} GPUs, over the cap of {lim.max_gpus:,}", ["instance", "topology"]
            )
        d = inst.model_dump(mode="json", exclude_none=True)
        return placer.load_instance(d), d

    @app.post("/score", response_model=dict[str, Any], responses=_responses(400))
    def score_posted(body: DocumentsBody) -> Any:
        """Score a posted {instance, placement} (SPEC 2.1). `warnings` (a list of strings),
        only when there is something to say: e.g. an unknown key of the instance, or a
        placement whose `instance` names another instance. Never an error."""
        from placer.api import placement_warnings, score_quietly

        inst, _ = _posted(body.instance)
        d = score_quietly(inst, body.placement).to_dict()
        return _warned(d, [*inst.warnings, *placement_warnings(inst, body.placement)])

    @app.post(
        "/check",
        response_model=CheckOut,
        response_model_exclude_unset=True,
        responses=_responses(400),
    )
    def check_posted(body: DocumentsBody) -> Any:
        """Check a posted {instance, placement} (SPEC 3), with `warnings` when there is
        something to say (an unknown key of the instance, a placement whose `instance` names
        another instance)."""
        from placer.api import check_quietly, placement_warnings

        inst, _ = _posted(body.instance)
        v = check_quietly(inst, body.placement)
        d = {"feasible": not v, "violations": [x.to_dict() for x in v]}
        return _warned(d, [*inst.warnings, *placement_warnings(inst, body.placement)])

    @app.post("/solve", response_model=dict[str, Any], responses=_responses(400, 500))
    def solve_posted(body: SolveBody) -> Any:
        """Solve a posted instance in a worker process (killed at time_limit + the grace):
        a SPEC 2 placement, with `warnings` (a list of strings) when the instance has
        something to warn about (an unknown key, say: what `placer solve` prints on stderr).
        """
        inst, d = _posted(body.instance)
        _solver_ok(body.solver)
        out = svc.solve(d, body.solver, body.time_limit, body.seed)
        return _warned(dict(out), inst.warnings) if isinstance(out, dict) else out

    def _solver_ok(name: str) -> None:
        from placer.solvers import names

        valid = ["auto", *names()]
        if name not in valid:
            raise ServiceError(
                400, f"unknown solver {name!r}; valid: {', '.join(valid)}", ["body", "solver"]
            )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        # limits the semantic checks enforce on a posted instance (SPEC 1.1)
        comps = schema.get("components", {}).get("schemas", {})
        for model, prop, n in (
            ("Topology", "levels", 2),
            ("Topology", "sites", 1),
            ("Site", "domains", 1),
        ):
            field = comps.get(model, {}).get("properties", {}).get(prop)
            if field is not None:
                field["minItems"] = n
        if tokens:
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path, ops in schema["paths"].items():
                if path in ("/health",):
                    continue
                for op in ops.values():
                    op["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.service = svc
    return Guard(app, tokens, lim.max_body_bytes, lim.max_concurrent, lambda: svc.revision)
