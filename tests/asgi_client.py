"""A blocking HTTP client of an ASGI app in this process, for the service tests.

Starlette's TestClient warns (`StarletteDeprecationWarning`) when httpx2 is not installed,
and the `test` extra has httpx, not httpx2. This is what TestClient does, with the httpx the
extra has: httpx's `ASGITransport` under an `AsyncClient`, driven from the test's thread by
an anyio blocking portal (one event loop thread per client). No lifespan events (the app
has none). `raise_app_exceptions` False: an exception in the app is a 500 answer.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio.from_thread
import httpx


class ASGIClient:
    def __init__(
        self, app: Any, base_url: str = "http://testserver", raise_app_exceptions: bool = True
    ) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        self._client = httpx.AsyncClient(transport=transport, base_url=base_url)

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self._portal.call(functools.partial(self._client.request, method, url, **kw))

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)

    def close(self) -> None:
        if self._portal_cm is None:
            return
        try:
            self._portal.call(self._client.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)
            self._portal_cm = None

    def __enter__(self) -> ASGIClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
