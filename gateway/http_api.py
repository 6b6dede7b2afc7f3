"""The gateway's local HTTP JSON API: commands from customs offices, status, metrics, health.

stdlib `ThreadingHTTPServer`; bind it to localhost or a private network (it has no authentication
of its own: put a reverse proxy with TLS and client certificates in front when it must be reached
from elsewhere). Documented in docs/gateway.md and docs/openapi.json.

    POST /v1/escorts/activate     clause 8 data -> 202 {"escort": {...}}
    POST /v1/escorts/deactivate   clause 13 data -> 202 {"escort": {...}}
    GET  /v1/escorts?seal_id=&escort_id=&declaration=&vehicle=   -> 200 {"escorts": [...]}
    GET  /v1/status?...           the same (alias)
    POST /v1/seals                {"seal_id": n, "key": "<64 hex>"} -> 201
    GET  /v1/outbox               -> 200 {"sinks": {...}}
    GET  /metrics                 Prometheus text 0.0.4 (prometheus_client's generate_latest)
    GET  /healthz                 200 {"status": "ok"} or 503 with what is wrong

Errors are JSON: {"error": "<code>", "message": "..."} with 400 (bad input), 404 (unknown seal or
escort, unknown path), 405, 409 (state conflict, data mismatch), 413, 503.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .command_requests import ActivationRequest, CommandError

if TYPE_CHECKING:
    from .service import GatewayService

log = logging.getLogger("navseal.gateway.http")

MAX_BODY = 1024 * 1024  # a 400-point route as GPX is ~40 kB; 1 MiB is generous
COMMAND_TIMEOUT_S = 30.0

# CommandError codes (gateway/command_requests.py) to HTTP status.
STATUS_FOR_CODE = {
    "bad_request": 400,
    "unknown_seal": 404,
    "not_found": 404,
    "busy": 409,
    "not_active": 409,
    "mismatch": 409,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class HttpApi:
    def __init__(self, service: "GatewayService", host: str, port: int) -> None:
        self.service = service
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="http-api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
        self._server.server_close()

    # -- handlers: (query, body) -> (status, json-able) --
    def activate(self, query: dict, body: Any) -> tuple[int, Any]:
        data = _object(body)
        try:
            request = ActivationRequest.from_dict(data)
        except CommandError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise ApiError(400, "bad_request", f"activation data: {exc}") from None
        escort = self._command(lambda p: p.request_activation(request))
        return 202, {"escort": escort}

    def deactivate(self, query: dict, body: Any) -> tuple[int, Any]:
        data = _object(body)
        missing = [k for k in ("seal_id", "declaration", "vehicle") if k not in data]
        if missing:
            raise ApiError(400, "bad_request", f"missing field(s): {', '.join(missing)}")
        seal_id = _int_field(data, "seal_id")
        declaration, vehicle = _str_field(data, "declaration"), _str_field(data, "vehicle")
        escort = self._command(lambda p: p.request_deactivation(seal_id, declaration, vehicle))
        return 202, {"escort": escort}

    def escorts(self, query: dict, body: Any) -> tuple[int, Any]:
        filters: dict[str, Any] = {}
        for key in ("seal_id", "escort_id"):
            if key in query:
                filters[key] = _int_field(query, key)
        for key in ("declaration", "vehicle"):
            if key in query:
                filters[key] = query[key]
        return 200, {"escorts": self.service.pipeline.status(**filters)}

    def provision(self, query: dict, body: Any) -> tuple[int, Any]:
        data = _object(body)
        seal_id = _int_field(data, "seal_id")
        try:
            key = bytes.fromhex(_str_field(data, "key"))
        except ValueError:
            raise ApiError(400, "bad_request", "key: 64 hex digits (32 bytes) expected") from None
        if len(key) != 32:
            raise ApiError(400, "bad_request", f"key: 32 bytes expected, got {len(key)}")
        self._command(lambda p: p.provision_seal(seal_id, key))
        return 201, {"seal_id": seal_id, "provisioned": True}

    def outbox(self, query: dict, body: Any) -> tuple[int, Any]:
        return 200, {"sinks": self.service.store.outbox_status()}

    def health(self) -> tuple[int, Any]:
        problems = []
        svc = self.service
        if not svc.runner._thread.is_alive():
            problems.append("pipeline runner stopped")
        if svc.mqtt is not None and not svc.mqtt.connected.is_set():
            problems.append("mqtt broker not connected")
        if svc.serial is not None:
            problems += [f"serial {r.port} not open" for r in svc.serial.readers if not r.connected.is_set()]
        body = {
            "status": "ok" if not problems else "degraded",
            "problems": problems,
            "queue": svc.runner.queue_length(),
            "outbox_depth": {w.sink.name: svc.store.outbox_depth(w.sink.name) for w in svc.workers},
        }
        return (200 if not problems else 503), body

    def _command(self, fn: Callable) -> Any:
        return self.service.runner.call(fn, COMMAND_TIMEOUT_S)


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    return body


def _int_field(data: dict, key: str) -> int:
    value = data.get(key)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", f"{key}: an integer expected, got {value!r}") from None
    if not 0 < number <= 0xFFFFFFFF:
        raise ApiError(400, "bad_request", f"{key}: {number} out of range 1..4294967295")
    return number


def _str_field(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "bad_request", f"{key}: a non-empty string expected")
    return value


def _make_handler(api: HttpApi) -> type[BaseHTTPRequestHandler]:
    routes: dict[tuple[str, str], Callable[[dict, Any], tuple[int, Any]]] = {
        ("POST", "/v1/escorts/activate"): api.activate,
        ("POST", "/v1/escorts/deactivate"): api.deactivate,
        ("GET", "/v1/escorts"): api.escorts,
        ("GET", "/v1/status"): api.escorts,  # alias: "status" is what operators ask for
        ("POST", "/v1/seals"): api.provision,
        ("GET", "/v1/outbox"): api.outbox,
    }
    paths = {path for _, path in routes} | {"/metrics", "/healthz"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "navseal-gateway"

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            try:
                if path == "/metrics" and method == "GET":
                    self._send(200, generate_latest(api.service.registry), CONTENT_TYPE_PLAIN_0_0_4)
                    return
                if path == "/healthz" and method == "GET":
                    self._json(*api.health())
                    return
                handler = routes.get((method, path))
                if handler is None:
                    if path in paths:
                        raise ApiError(405, "method_not_allowed", f"{method} not allowed on {path}")
                    raise ApiError(404, "not_found", f"no such endpoint: {path}")
                query = dict(urllib.parse.parse_qsl(url.query))
                body = self._body() if method == "POST" else None
                self._json(*handler(query, body))
            except ApiError as exc:
                self._json(exc.status, {"error": exc.code, "message": exc.message})
            except CommandError as exc:
                self._json(STATUS_FOR_CODE.get(exc.code, 400), {"error": exc.code, "message": exc.message})
            except TimeoutError:
                self._json(503, {"error": "busy", "message": "the gateway did not answer in time; retry"})
            except Exception as exc:  # noqa: BLE001 - answer, log, keep serving
                log.exception("http %s %s failed", method, path)
                self._json(500, {"error": "internal_error", "message": f"{type(exc).__name__}: {exc}"})

        def _body(self) -> Any:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise ApiError(400, "bad_request", "bad Content-Length") from None
            if length > MAX_BODY:
                raise ApiError(413, "too_large", f"body over {MAX_BODY} bytes")
            raw = self.rfile.read(length) if length else b""
            if not raw:
                raise ApiError(400, "bad_json", "a JSON body is required")
            try:
                return json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(400, "bad_json", f"body is not JSON: {exc}") from None

        def _json(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body, default=str, ensure_ascii=False).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http %s", fmt % args)

    return Handler
