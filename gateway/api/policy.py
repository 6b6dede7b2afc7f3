"""Who may call what: the one table of routes and roles (docs/gateway.md prints it).

Every route of the app must have a row here: `build_app` refuses to start otherwise, and a test
walks every route with every role and checks the allowed set exactly. `PUBLIC` means no
authentication at all. Narrower rules inside a route (an officer's offices, re-keying for an
admin only) are the route's own and are tested with it.
"""

from __future__ import annotations

from ..auth import ADMIN, AUDITOR, OFFICER, OPERATOR

PUBLIC = "anonymous"
EVERYONE = frozenset({ADMIN, OPERATOR, OFFICER, AUDITOR})
READERS = frozenset({ADMIN, OPERATOR, OFFICER, AUDITOR})

ROUTE_ROLES: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/escorts/activate"): frozenset({OPERATOR}),
    ("POST", "/v1/escorts/deactivate"): frozenset({OPERATOR, OFFICER}),
    ("GET", "/v1/escorts"): READERS,
    ("GET", "/v1/status"): READERS,
    ("POST", "/v1/seals"): frozenset({ADMIN, OPERATOR}),
    ("POST", "/v1/seals/{seal_id}/rekey"): frozenset({ADMIN}),
    ("POST", "/v1/seals/{seal_id}/reset-replay"): frozenset({ADMIN}),
    ("GET", "/v1/outbox"): frozenset({ADMIN, AUDITOR}),
    ("GET", "/v1/audit"): frozenset({ADMIN, AUDITOR}),
    ("GET", "/v1/dead-letters"): frozenset({ADMIN, AUDITOR}),
    ("POST", "/v1/dead-letters/{dead_letter_id}/replay"): frozenset({ADMIN}),
    ("GET", "/v1/users"): frozenset({ADMIN}),
    ("POST", "/v1/users"): frozenset({ADMIN}),
    ("POST", "/v1/users/{name}/disable"): frozenset({ADMIN}),
    ("POST", "/v1/users/{name}/tokens"): frozenset({ADMIN}),
    ("DELETE", "/v1/tokens/{token_id}"): frozenset({ADMIN}),
    ("GET", "/v1/me"): EVERYONE,
    ("POST", "/v1/session"): frozenset({PUBLIC}),
    ("DELETE", "/v1/session"): EVERYONE,
    ("GET", "/metrics"): frozenset({ADMIN, AUDITOR}),
    ("GET", "/healthz"): frozenset({PUBLIC}),
    ("GET", "/openapi.json"): frozenset({PUBLIC}),
    # the web console (docs/console.md): its data routes, then its files (no data in them)
    ("GET", "/v1/console/escorts"): READERS,
    ("GET", "/v1/escorts/{escort_id}/track"): READERS,
    ("GET", "/v1/escorts/{escort_id}/events"): READERS,
    ("GET", "/v1/alarms"): READERS,
    ("GET", "/v1/alarms/stream"): READERS,
    ("POST", "/v1/alarms/{event_id}/ack"): frozenset({OPERATOR, OFFICER}),
    ("GET", "/v1/seals"): READERS,
    ("GET", "/"): frozenset({PUBLIC}),
    ("GET", "/console/"): frozenset({PUBLIC}),
    ("GET", "/console/app/{name:path}"): frozenset({PUBLIC}),
    ("GET", "/console/vendor/{name:path}"): frozenset({PUBLIC}),
}


def allowed(method: str, path: str) -> frozenset[str] | None:
    return ROUTE_ROLES.get((method, path))
