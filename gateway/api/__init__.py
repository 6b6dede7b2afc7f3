"""The gateway's HTTP API: FastAPI app (this package) served by uvicorn (server.py).

    build_app(service) -> FastAPI      routers, the access gate, uniform errors
    openapi_document()                 the OpenAPI document (docs/openapi.json is this, a test checks)

The app calls the gateway's sans-I/O pipeline through the service's runner thread, exactly as the
MQTT and serial drivers do; it owns no state of its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .access import AccessGate, current_actor, office_scope, require_roles
from .errors import STATUS_FOR_CODE, install
from .policy import ROUTE_ROLES
from . import (routes_admin, routes_alarms, routes_browse, routes_console, routes_escorts, routes_ops,
               routes_seals, routes_tracks)

TITLE = "navseal gateway API"
VERSION = "2"
OPENAPI_PATH = "/openapi.json"


class MissingRule(RuntimeError):
    pass


def build_app(service: Any = None) -> FastAPI:
    app = FastAPI(title=TITLE, version=VERSION, docs_url=None, redoc_url=None, openapi_url=OPENAPI_PATH,
                  description="Commands from customs offices and the operator, escort status, administration. "
                              "Authentication: `Authorization: Bearer <token>` or a browser session cookie "
                              "(POST /v1/session). Roles per route: docs/gateway.md.")
    install(app)
    for module in (routes_escorts, routes_seals, routes_tracks, routes_browse, routes_alarms, routes_admin, routes_ops,
                   routes_console):
        app.router.routes.extend(module.router.routes)  # flat: the access gate matches them directly
    check_rules(app)
    _document_access(app)
    app.state.service = service
    if service is not None:
        app.add_middleware(AccessGate, authenticator=service.authenticator, store=service.store)
    return app


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (the OpenAPI document included)."""
    out = []
    for route in app.routes:
        methods = getattr(route, "methods", None) or set()
        for method in sorted(methods - {"HEAD"}):
            out.append((method, route.path))
    return out


def check_rules(app: FastAPI) -> None:
    missing = [r for r in routes(app) if r not in ROUTE_ROLES]
    if missing:
        raise MissingRule(f"routes without an access rule in gateway/api/policy.py: {missing}")


def _document_access(app: FastAPI) -> None:
    """The OpenAPI document says how to authenticate and, per operation, which roles the access
    gate admits (`x-roles`, from the same table the gate enforces)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        doc.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "API token nst_<id>_<secret>"},
            "session": {"type": "apiKey", "in": "cookie", "name": "navseal_session",
                        "description": "browser session (POST /v1/session); changes also need X-CSRF-Token"},
        }
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                roles = ROUTE_ROLES[(method.upper(), path)]
                public = "anonymous" in roles
                operation["security"] = [] if public else [{"bearer": []}, {"session": []}]
                operation["x-roles"] = sorted(roles)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_document() -> dict[str, Any]:
    return build_app(None).openapi()


__all__ = ["build_app", "openapi_document", "routes", "current_actor", "office_scope", "require_roles",
           "STATUS_FOR_CODE", "MissingRule"]
