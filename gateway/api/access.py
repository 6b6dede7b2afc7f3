"""The access gate (pure ASGI middleware): size limit, authentication, the role table, CSRF.

It runs before routing and before any body is read, so a request that is too large, not
authenticated or not allowed is answered without its body being parsed and without reaching a
handler, and every such refusal is written to the audit log. For the routes it lets through it
puts the `Actor` into the request state; handlers take it with the `current_actor` dependency.

Credentials: `Authorization: Bearer nst_...` (machines, the CLI) or the `navseal_session` cookie
(browsers: Secure, HttpOnly, SameSite=Strict); a cookie-authenticated request that changes
something must also carry the session's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Callable

import anyio
from fastapi import Depends, HTTPException, Request
from starlette.routing import compile_path

from .. import audit
from ..auth import ANONYMOUS, Actor, Authenticator
from .errors import ApiError, error_bytes
from .policy import PUBLIC, ROUTE_ROLES

log = logging.getLogger("navseal.gateway.http")

MAX_BODY = 1024 * 1024  # a 400-point route as GPX is ~40 kB; 1 MiB is generous
SESSION_COOKIE = "navseal_session"
CSRF_HEADER = "x-csrf-token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_CSRF = frozenset({("POST", "/v1/session")})  # logging in has no session yet


class _TooLarge(HTTPException):
    """Raised from `receive` when a body without Content-Length grows past the limit; FastAPI
    passes HTTPExceptions through its body parsing, so it is answered 413 (and the connection closed)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body over {limit} bytes")


class AccessGate:
    def __init__(self, app: Any, *, authenticator: Authenticator, store: Any, max_body: int = MAX_BODY) -> None:
        self.app = app
        # Fail closed: the gate matches requests against the role table itself, so a route without
        # a rule is never reached (404), whatever the router would do with it.
        self.rules = [(method, path, compile_path(path)[0], roles) for (method, path), roles in ROUTE_ROLES.items()]
        self.auth = authenticator
        self.store = store
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _refuse(send, 413, "too_large", f"body over {self.max_body} bytes")
        method = scope["method"]
        path_format, rule, path_known = self._rule(method, scope["path"])
        if rule is None:
            if path_known:
                return await _refuse(send, 405, "method_not_allowed", f"{method} not allowed on {scope['path']}")
            return await _refuse(send, 404, "not_found", f"no such endpoint: {scope['path'][:200]}")
        client = (scope.get("client") or ("?",))[0]
        try:
            actor = await self._authenticate(headers)
        except ApiError as exc:
            await self._audit_refusal(ANONYMOUS, method, path_format, exc.message, client)
            return await _refuse(send, exc.status, exc.code, exc.message, exc.headers)
        if PUBLIC not in rule:
            refusal = self._authorize(actor, rule, method, path_format, headers)
            if refusal is not None:
                status, code, message = refusal
                await self._audit_refusal(actor, method, path_format, message, client)
                extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                return await _refuse(send, status, code, message, extra)
        scope.setdefault("state", {})["actor"] = actor
        return await self.app(scope, self._limited(receive), _hardened(send))

    def _rule(self, method: str, path: str) -> tuple[str | None, frozenset[str] | None, bool]:
        """(path format, allowed roles, whether the path exists with another method)."""
        method = "GET" if method == "HEAD" else method
        known = False
        for rule_method, path_format, regex, roles in self.rules:
            if regex.match(path):
                if rule_method == method:
                    return path_format, roles, True
                known = True
        return None, None, known

    async def _authenticate(self, headers: dict[str, str]) -> Actor:
        authorization = headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized", "Authorization: Bearer <token> expected",
                               {"WWW-Authenticate": "Bearer"})
            actor = await anyio.to_thread.run_sync(self.auth.token, token.strip())
            if actor is None:
                raise ApiError(401, "unauthorized", "token not valid (unknown, revoked, expired or user disabled)",
                               {"WWW-Authenticate": "Bearer"})
            return actor
        cookie = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
        if cookie:
            actor = await anyio.to_thread.run_sync(self.auth.session, cookie)
            if actor is not None:
                return actor
        return ANONYMOUS

    @staticmethod
    def _authorize(actor: Actor, rule: frozenset[str], method: str, path: str,
                   headers: dict[str, str]) -> tuple[int, str, str] | None:
        if actor is ANONYMOUS:
            return 401, "unauthorized", "authentication required: a bearer token or a session"
        if actor.role not in rule:
            return 403, "forbidden", f"{method} {path} is not allowed for role {actor.role}"
        if actor.via == "session" and method not in _SAFE and (method, path) not in _NO_CSRF:
            sent = headers.get(CSRF_HEADER, "")
            if not actor.csrf or not hmac.compare_digest(sent.encode(), actor.csrf.encode()):
                return 403, "forbidden", "missing or wrong X-CSRF-Token for this session"
        return None

    async def _audit_refusal(self, actor: Actor, method: str, path: str, reason: str, client: str) -> None:
        def write() -> None:
            audit.record_alone(self.store, actor, "request.refused", f"{method} {path}",
                               {"reason": reason, "client": client})
        try:
            await anyio.to_thread.run_sync(write)
        except Exception:  # noqa: BLE001 - the refusal stands even if the audit write failed
            log.exception("could not audit a refused request")

    def _limited(self, receive: Callable) -> Callable:
        seen = 0
        limit = self.max_body

        async def wrapped() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message
        return wrapped


def _hardened(send: Callable) -> Callable:
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            if b"cache-control" not in names:
                headers.append((b"cache-control", b"no-store"))
            headers.append((b"x-content-type-options", b"nosniff"))
            message = dict(message, headers=headers)
        await send(message)
    return wrapped


async def _refuse(send: Callable, status: int, code: str, message: str,
                  extra: dict[str, str] | None = None) -> None:
    """Answer and close the connection: a body that was not read must never be parsed as the
    next request on a kept-alive connection."""
    body = error_bytes(code, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), (b"cache-control", b"no-store")]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


# -- dependencies for routers (this API's and the web console's) --


def current_actor(request: Request) -> Actor:
    """The authenticated actor the gate admitted (anonymous on public routes)."""
    return getattr(request.state, "actor", ANONYMOUS)


def require_roles(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency for checks narrower than the route table (e.g. an action inside a route)."""
    def check(actor: Actor = Depends(current_actor)) -> Actor:
        if actor.role not in roles:
            raise ApiError(403, "forbidden", f"this needs role {' or '.join(roles)}, not {actor.role}")
        return actor
    return check


def office_scope(actor: Actor = Depends(current_actor)) -> tuple[str, ...] | None:
    """The offices whose escorts the actor may see: an officer's own; None (all) for other roles."""
    return actor.offices if actor.role == "officer" else None
