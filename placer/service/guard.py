"""Bearer tokens and caps for `placer serve`, as one ASGI middleware in front of the routes.

- Tokens: ``--token-file FILE`` (or ``PLACER_TOKENS``) holds one token per line, optionally
  followed by a space and ``read`` (a read-only token: GET routes only); blank lines and
  ``#`` comments are skipped. With tokens, every route but ``/health``, ``/openapi.json`` and
  ``/docs`` needs ``Authorization: Bearer <token>``: missing or unknown is 401, a read-only
  token on a route that is not GET is 403. Tokens are compared with
  :func:`hmac.compare_digest` against every configured token (no early exit).
- Caps: the request body (``Content-Length`` over the cap, or chunks adding up past it: 413,
  before the route sees anything) and requests in flight (503 with ``Retry-After``).
- Every answer carries the service's revision as ``ETag`` (a route that read or wrote a
  given revision sets its own).

Imports the standard library only.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from placer.errors import UsageError

PUBLIC = ("/health", "/openapi.json", "/docs")


@dataclass(frozen=True)
class Token:
    secret: str
    read_only: bool


def parse_tokens(text: str, where: str = "tokens") -> list[Token]:
    """Tokens from the token-file format (see the module docs); errors name the line."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2 or (len(parts) == 2 and parts[1] != "read"):
            raise UsageError(
                f"{where}:{n}: expected 'TOKEN' or 'TOKEN read', got {len(parts)} words"
            )
        if len(parts[0]) < 16:
            raise UsageError(f"{where}:{n}: a token needs at least 16 characters")
        out.append(Token(parts[0], len(parts) == 2))
    return out


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _public(path: str) -> bool:
    return path in PUBLIC or path.startswith("/docs/")


async def _reply(send: Callable, status: int, msg: str, loc: list, headers: dict | None = None):
    body = json.dumps({"detail": [{"loc": loc, "msg": msg}]}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """The ASGI middleware (see the module docs). `revision` gives the ETag of answers
    whose route set none."""

    def __init__(
        self,
        app: Any,
        tokens: list[Token],
        max_body_bytes: int,
        max_concurrent: int,
        revision: Callable[[], int],
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body_bytes
        self.max_concurrent = max_concurrent
        self.revision = revision
        self.in_flight = 0

    def _who(self, header: bytes | None) -> Token | None:
        if not header:
            return None
        scheme, _, given = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        g = given.strip().encode()
        found = None
        for t in self.tokens:  # every token compared, constant time each
            if hmac.compare_digest(g, t.secret.encode()):
                found = t
        return found

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        revision = self.revision

        async def send_tagged(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                hs = list(msg.get("headers", []))
                if not any(k.lower() == b"etag" for k, _ in hs):
                    hs.append((b"etag", f'"{revision()}"'.encode()))
                msg = {**msg, "headers": hs}
            await send(msg)

        path, method = scope["path"], scope["method"]
        if _public(path):
            await self.app(scope, receive, send_tagged)
            return
        if self.in_flight >= self.max_concurrent:
            await _reply(
                send_tagged,
                503,
                f"too many requests in flight (cap {self.max_concurrent}); retry",
                ["service"],
                {"Retry-After": "1"},
            )
            return
        self.in_flight += 1
        try:
            headers = dict(scope.get("headers") or [])
            if self.tokens:
                who = self._who(headers.get(b"authorization"))
                if who is None:
                    await _reply(
                        send_tagged,
                        401,
                        "a valid bearer token is required (Authorization: Bearer <token>)",
                        ["header", "authorization"],
                        {"WWW-Authenticate": "Bearer"},
                    )
                    return
                if who.read_only and method not in ("GET", "HEAD"):
                    await _reply(
                        send_tagged,
                        403,
                        f"a read-only token cannot {method} {path}",
                        ["header", "authorization"],
                    )
                    return
            cl = headers.get(b"content-length")
            if cl is not None:
                try:
                    n = int(cl)
                except ValueError:
                    n = -1
                if n < 0:
                    await _reply(
                        send_tagged, 400, "bad Content-Length", ["header", "content-length"]
                    )
                    return
                if n > self.max_body:
                    await _reply(
                        send_tagged,
                        413,
                        f"the body has {n:,} bytes, over the cap of {self.max_body:,}",
                        ["body"],
                    )
                    return
            chunks: list[bytes] = []
            size = 0
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await _reply(
                        send_tagged,
                        413,
                        f"the body is over the cap of {self.max_body:,} bytes",
                        ["body"],
                        {"Connection": "close"},
                    )
                    return
                chunks.append(chunk)
                if not msg.get("more_body"):
                    break
            body = b"".join(chunks)
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_tagged)
        finally:
            self.in_flight -= 1
