"""Uniform errors: every refusal is JSON `{"error": "<code>", "message": "..."}` with a status."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..auth import AccessError
from ..command_requests import CommandError

log = logging.getLogger("navseal.gateway.http")

# Stable error codes (CommandError, AccessError and the HTTP layer's own) to HTTP status.
STATUS_FOR_CODE = {
    "bad_request": 400,
    "bad_json": 400,
    "test_key": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_seal": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "busy": 409,
    "not_active": 409,
    "mismatch": 409,
    "escorted": 409,
    "exists": 409,
    "disabled": 409,
    "too_large": 413,
    "too_many_attempts": 429,
    "unavailable": 503,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def error_bytes(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """pydantic errors -> (code, one line naming the field)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return "bad_json", f"body is not JSON: {first.get('ctx', {}).get('error', 'invalid')}"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    # Unions name each branch (route.dict[str,any], route.str, ...): keep the field only.
    field = loc[0] if loc else "body"
    if first.get("type") == "missing":
        missing = sorted({str(e["loc"][-1]) for e in errors if e.get("type") == "missing"})
        return "bad_request", f"missing field(s): {', '.join(missing)}"
    if first.get("type") == "extra_forbidden":
        return "bad_request", f"{field}: unknown field"
    msg = str(first.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if len(loc) > 1 and not loc[1].isidentifier():
        field = ".".join(loc[:1] + [p for p in loc[1:] if p.isdigit()])
    return "bad_request", f"{field}: {msg}"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(CommandError)
    async def _command_error(request: Request, exc: CommandError) -> JSONResponse:
        return error_response(STATUS_FOR_CODE.get(exc.code, 400), exc.code, exc.message)

    @app.exception_handler(AccessError)
    async def _access_error(request: Request, exc: AccessError) -> JSONResponse:
        return error_response(STATUS_FOR_CODE.get(exc.code, 400), exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = describe_validation(list(exc.errors()))
        return error_response(400, code, message)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {400: "bad_json", 404: "not_found", 405: "method_not_allowed",
                413: "too_large"}.get(exc.status_code, "error")
        message = {404: f"no such endpoint: {request.url.path}",
                   405: f"{request.method} not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        if exc.status_code == 400:
            message = "body is not JSON (malformed, nested too deeply, or a number too long)"
        # A refused body may be partly unread: close rather than parse the rest as a request.
        headers = {"Connection": "close"} if exc.status_code in (400, 413) else None
        return error_response(exc.status_code, code, message, headers)

    @app.exception_handler(TimeoutError)
    async def _timeout(request: Request, exc: TimeoutError) -> JSONResponse:
        return error_response(503, "busy", "the gateway did not answer in time; retry")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http %s %s failed", request.method, request.url.path)
        return error_response(500, "internal_error", f"{type(exc).__name__}")
