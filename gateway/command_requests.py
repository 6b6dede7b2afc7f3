"""What customs offices ask of the gateway, as the core takes it: `ActivationRequest` (clause 8
data), its parsing from JSON (the HTTP API and the CLI), and `CommandError`, the one refusal type
of every command (its `code` is stable: the HTTP layer and the CLI map it to a status).

The parsing here is the core's own minimum; an HTTP layer with declarative validation may replace
`ActivationRequest.from_dict` and keep the dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from . import events as ev
from .auth import Actor
from .geo import route_from_geojson, route_from_gpx

# Who acts when an in-process tool (simulator, emulator, a test) calls the pipeline without an identity.
SYSTEM_ACTOR = Actor("system", "system", via="process")


class CommandError(ValueError):
    """A command request was refused. `code` is stable (HTTP/CLI map it), the message explains.

    Codes: "bad_request" (a field missing/invalid), "unknown_seal" (not provisioned),
    "busy" (the seal already has an open escort), "not_found" (no such escort),
    "not_active" (escort not in a state that allows this), "mismatch" (DEACTIVATE data do not
    match the escort: seal/declaration/vehicle), "forbidden" (not the caller's escort or seal),
    "escorted" (re-keying a seal under escort without force).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ActivationRequest:
    """Clause 8 data from the customs office of departure."""

    seal_id: int
    declaration: str  # transit declaration number (<= 40 bytes UTF-8)
    vehicle: str  # state registration number (<= 16 bytes)
    departure_office_code: str
    departure_office_name: str
    dest_office_code: str  # <= 16 bytes
    dest_office_name: str  # <= 64 bytes
    period_start: float  # Unix s
    period_end: float  # Unix s: transit deadline (TRANSIT_OVERDUE after it)
    route: Sequence[Sequence[float]] | None = None  # [(lat, lon)] degrees; geo.route_from_geojson/gpx
    corridor_m: int = 0  # half-width; 0 = no route check

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ActivationRequest":
        """From JSON (HTTP API / CLI): same field names; `route` may be [[lat, lon], ...], a GeoJSON
        object (LineString/Feature/FeatureCollection), or GPX text. Times may be Unix seconds or
        RFC 3339 strings. Raises CommandError("bad_request") naming the field."""
        if not isinstance(data, dict):
            raise CommandError("bad_request", "activation request must be a JSON object")
        missing = [k for k in ("seal_id", "declaration", "vehicle", "departure_office_code",
                               "departure_office_name", "dest_office_code", "dest_office_name",
                               "period_start", "period_end") if data.get(k) in (None, "")]
        if missing:
            raise CommandError("bad_request", f"activation request: missing {', '.join(missing)}")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise CommandError("bad_request", f"activation request: unknown fields {sorted(unknown)}")
        route = data.get("route")
        try:
            if isinstance(route, dict):
                route = route_from_geojson(route)
            elif isinstance(route, str):
                route = route_from_gpx(route) if route.lstrip().startswith("<") else route_from_geojson(route)
        except ValueError as exc:
            raise CommandError("bad_request", f"route: {exc}") from None
        try:
            return cls(
                seal_id=_int(data["seal_id"], "seal_id"),
                declaration=str(data["declaration"]),
                vehicle=str(data["vehicle"]),
                departure_office_code=str(data["departure_office_code"]),
                departure_office_name=str(data["departure_office_name"]),
                dest_office_code=str(data["dest_office_code"]),
                dest_office_name=str(data["dest_office_name"]),
                period_start=_time_value(data["period_start"], "period_start"),
                period_end=_time_value(data["period_end"], "period_end"),
                route=route,
                corridor_m=_int(data.get("corridor_m", 0) or 0, "corridor_m"),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, CommandError):
                raise
            raise CommandError("bad_request", f"activation request: {exc}") from None


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise CommandError("bad_request", f"{name} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise CommandError("bad_request", f"{name} must be an integer, got {value!r}") from None


def _time_value(value: Any, name: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return ev.parse_iso(value)
        except ValueError:
            pass
    raise CommandError("bad_request", f"{name} must be Unix seconds or an RFC 3339 time, got {value!r}")

