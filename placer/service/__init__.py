"""`placer serve`: an HTTP JSON service around one live :class:`~placer.cluster.Cluster`, for
schedulers that are not written in Python (Kueue is Go, Slurm is C), with its state in
SQLite or PostgreSQL so that a restart or a crash loses nothing (docs/scheduler.md).

Endpoints (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``, served offline):

=========================  =============================================================
``GET  /health``           200 when ready, 503 while starting, rebuilding or standing by
``POST /jobs``             submit one job (SPEC 1.2) -> decision
``POST /bind``             a job the scheduler started itself on given GPUs
``DELETE /jobs/{name}``    release a job
``GET  /jobs``             running jobs and their units
``POST /fail``             hardware failed (domain paths, node/GPU ids, [site_a, site_b])
``POST /restore``          hardware is back
``POST /replan``           full solve in a worker process; adopted if it still checks
``GET  /snapshot``         the live state as SPEC documents {instance, placement}
``GET  /score``            the live state's score (SPEC 2.1)
``GET  /events``           the committed operations (append-only log)
``POST /score``            score a posted {instance, placement} (+ ``warnings`` if any)
``POST /check``            check a posted {instance, placement} (SPEC 3; + ``warnings``)
``POST /solve``            solve a posted {instance, solver, time_limit} in a worker process
=========================  =============================================================

Modules: :mod:`.store` (SQLite / PostgreSQL), :mod:`.runtime` (the service: lock, revision,
commits, replans), :mod:`.worker` (solves in a killable process), :mod:`.guard` (tokens,
caps, ETag), :mod:`.app` (routes and models).

Imports fastapi (optional extra ``placer[serve]``); imported only by ``placer serve``.
"""

from __future__ import annotations

from typing import Any

from placer.service.app import create_app
from placer.service.guard import Token, is_loopback, parse_tokens
from placer.service.runtime import Limits, Service
from placer.service.store import open_store

__all__ = [
    "Limits",
    "Service",
    "Token",
    "create_app",
    "is_loopback",
    "open_store",
    "parse_tokens",
    "serve",
]


def serve(
    service: Service | Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens: list[Token] | None = None,
    log_level: str = "info",
) -> None:
    """Serve `service` (or a Cluster, from memory) with uvicorn until interrupted; the
    cluster is rebuilt in the background (``/health`` is 503 until it is ready)."""
    import uvicorn

    from placer.errors import UsageError

    if not tokens and not is_loopback(host):
        raise UsageError(
            f"--host {host}: tokens are required off loopback (--token-file or PLACER_TOKENS)"
        )
    _log_to_stderr(log_level)
    app = create_app(service, tokens=tokens)
    svc = app.app.state.service
    svc.start(background=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    finally:
        svc.close()


def _log_to_stderr(log_level: str) -> None:
    """The service's own log lines (ready, a replan commit's lock hold, a lost store) on
    stderr at uvicorn's level, unless the embedding program configured logging itself."""
    import logging

    log = logging.getLogger("placer.serve")
    if log.handlers or logging.getLogger().handlers:
        return
    h = logging.StreamHandler()
    h.setFormatter(logging.Formatter("%(levelname)s:     placer: %(message)s"))
    log.addHandler(h)
    level = logging.getLevelName(log_level.upper())
    log.setLevel(level if isinstance(level, int) else logging.DEBUG)
