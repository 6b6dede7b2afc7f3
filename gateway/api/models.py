"""Request and response bodies of the HTTP API: every field checked for type, range and content.

Text is printable only (no control, format or bidirectional-override characters, which could hide
what an officer reads); declaration, plate and office code have their formats; coordinates are on
the globe; integers are integers (strict: `6001.9` and `"6001"` are not seal ids). Checks that
need the current time (a transit period in the future) are in `check_period`, called with the
gateway's clock.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from ..auth import OFFICE_CODE, ROLES, USER_NAME
from ..geo import route_from_geojson, route_from_gpx

U32 = 0xFFFFFFFF
MAX_ROUTE_INPUT_POINTS = 10_000  # before densifying; the seal takes 400 (the pipeline says so)
MAX_PERIOD_S = 366 * 86400  # a transit period of more than a year is a typo
PERIOD_START_SLACK_S = 86400  # a period may have started up to a day ago (paperwork before the seal)

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


def printable(text: str) -> str:
    """Refuse control (Cc), format (Cf: bidi overrides, zero-width), surrogate, private-use and
    unassigned characters, and line/paragraph separators; spaces are fine."""
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "C" or cat in ("Zl", "Zp"):
            raise ValueError(f"character U+{ord(ch):04X} ({unicodedata.name(ch, cat)}) is not printable text")
    return text


def _max_utf8(limit: int):
    def check(text: str) -> str:
        if len(text.encode()) > limit:
            raise ValueError(f"at most {limit} bytes of UTF-8 (the seal stores it), got {len(text.encode())}")
        return text
    return check


_DECLARATION = re.compile(r"^([0-9]{5,8})/([0-9]{6})/([0-9]{7})$")
# Plates: Latin and Cyrillic capitals (Kazakh letters included), digits, inner spaces and hyphens.
_PLATE = re.compile(r"^[0-9A-ZА-ЯЁӘҒҚҢӨҰҮҺІ](?:[0-9A-ZА-ЯЁӘҒҚҢӨҰҮҺІ -]*[0-9A-ZА-ЯЁӘҒҚҢӨҰҮҺІ])?$")


def _declaration(text: str) -> str:
    m = _DECLARATION.match(text)
    if not m:
        raise ValueError("transit declaration number: <office code, 5-8 digits>/<DDMMYY>/<7 digits>, "
                         "e.g. 10228010/261126/0000001")
    try:
        dt.datetime.strptime(m.group(2), "%d%m%y")
    except ValueError:
        raise ValueError(f"transit declaration number: {m.group(2)} is not a date DDMMYY") from None
    return text


def _plate(text: str) -> str:
    if not _PLATE.match(text):
        raise ValueError("vehicle registration number: capital letters (Latin or Cyrillic), digits, "
                         "inner spaces or hyphens, e.g. 123ABC02")
    return text


def _office(text: str) -> str:
    if not OFFICE_CODE.match(text):
        raise ValueError("customs office code: 5 to 8 digits")
    return text


SealId = Annotated[StrictInt, Field(ge=1, le=U32, description="seal number (1 .. 4294967295)")]
Declaration = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(printable),
                        AfterValidator(_declaration)]
Plate = Annotated[str, Field(min_length=1, max_length=16), AfterValidator(printable), AfterValidator(_plate),
                  AfterValidator(_max_utf8(16))]
OfficeCode = Annotated[str, Field(min_length=5, max_length=8), AfterValidator(_office)]
OfficeName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable),
                       AfterValidator(_max_utf8(64))]
Timestamp = Annotated[StrictInt | StrictFloat | str,
                      Field(description="Unix seconds, or RFC 3339 (e.g. 2026-11-29T08:00:00Z)")]
RoutePairs = list[Annotated[list[StrictInt | StrictFloat], Field(min_length=2, max_length=2)]]


def unix_seconds(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name}: not RFC 3339 time: {value[:40]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        number = moment.timestamp()
    else:
        number = float(value) if abs(value) < 1e12 else float("inf")
    if not 0 <= number <= U32:
        raise ValueError(f"{name}: Unix seconds out of range 0 .. {U32}")
    return number


def on_globe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) > MAX_ROUTE_INPUT_POINTS:
        raise ValueError(f"route: {len(points)} points, at most {MAX_ROUTE_INPUT_POINTS}")
    for i, (lat, lon) in enumerate(points):
        if not (-90.0 <= lat <= 90.0) or not (-180.0 <= lon <= 180.0):
            raise ValueError(f"route point {i}: latitude {lat} / longitude {lon} is not on the globe "
                             f"(latitude -90..90, longitude -180..180)")
    return points


def route_points(route: Any) -> list[tuple[float, float]] | None:
    """GeoJSON object, GPX text, or [[lat, lon], ...] -> [(lat, lon)] on the globe (ValueError)."""
    if route is None:
        return None
    if isinstance(route, dict):
        points = route_from_geojson(route)
    elif isinstance(route, str):
        points = route_from_gpx(route) if route.lstrip().startswith("<") else route_from_geojson(route)
    else:
        points = [(float(lat), float(lon)) for lat, lon in route]
    return on_globe(points)


class Activation(BaseModel):
    """Clause 8: what the customs office of departure sends to activate an escort."""

    model_config = _STRICT

    seal_id: SealId
    declaration: Declaration
    vehicle: Plate
    departure_office_code: OfficeCode
    departure_office_name: OfficeName
    dest_office_code: OfficeCode
    dest_office_name: OfficeName
    period_start: Timestamp
    period_end: Timestamp
    route: dict[str, Any] | Annotated[str, Field(max_length=1_000_000)] | RoutePairs | None = Field(
        default=None, description="GeoJSON LineString/Feature/FeatureCollection ([lon, lat]), GPX text, "
                                  "or [[lat, lon], ...]")
    corridor_m: Annotated[StrictInt, Field(ge=0, le=65535)] = 0

    def checked(self, now: float) -> dict[str, Any]:
        """The body as ActivationRequest.from_dict takes it, after the checks that need `now`
        (ValueError naming the field)."""
        start = unix_seconds(self.period_start, "period_start")
        end = unix_seconds(self.period_end, "period_end")
        if end <= now:
            raise ValueError("period_end: the transit period must end in the future")
        if start < now - PERIOD_START_SLACK_S:
            raise ValueError("period_start: more than a day in the past")
        if start >= end:
            raise ValueError("period_start must be before period_end")
        if end - start > MAX_PERIOD_S:
            raise ValueError("transit period: longer than a year")
        try:
            points = route_points(self.route)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"route: {exc}") from None
        body = self.model_dump()
        body.update(period_start=start, period_end=end, route=[list(p) for p in points] if points else None)
        return body


class Deactivation(BaseModel):
    """Clause 13: what the customs office of destination sends."""

    model_config = _STRICT

    seal_id: SealId
    declaration: Declaration
    vehicle: Plate


class Provision(BaseModel):
    """A seal and its key; re-keying an existing seal is for an admin, and under escort needs force."""

    model_config = _STRICT

    seal_id: SealId
    key: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="the 32-byte seal key, 64 hex digits")]
    force: StrictBool = Field(default=False, description="re-key even while the seal is under escort (admin)")


class Rekey(BaseModel):
    """A provisioned seal's new key (admin); under escort it needs force."""

    model_config = _STRICT

    key: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="the new 32-byte seal key, 64 hex digits")]
    force: StrictBool = Field(default=False, description="re-key even while the seal is under escort")


class ReplayReset(BaseModel):
    seal_id: int
    reset: bool
    previous: dict[str, int | None] = Field(description="the (boot, seq) accepted last before the reset")
    refused_in_a_row: int = Field(description="frames of the seal refused in a row before the reset (this process)")
    audit_seq: int


class UserNew(BaseModel):
    model_config = _STRICT

    name: Annotated[str, Field(pattern=USER_NAME.pattern)]
    role: Literal[ROLES]  # type: ignore[valid-type]
    offices: list[Annotated[str, Field(pattern=OFFICE_CODE.pattern)]] = Field(default_factory=list, max_length=100)
    password: Annotated[str, Field(min_length=12, max_length=1024)] | None = None


class TokenNew(BaseModel):
    model_config = _STRICT

    label: Annotated[str, Field(max_length=64), AfterValidator(printable)] | None = None
    expires_in_s: Annotated[StrictInt, Field(ge=60, le=5 * 366 * 86400)] | None = None


class Login(BaseModel):
    model_config = _STRICT

    name: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


# --- responses ---


class ErrorBody(BaseModel):
    error: str = Field(description="stable code, e.g. bad_request, unauthorized, forbidden, too_large")
    message: str = Field(description="what is wrong, naming the field")


class EscortAnswer(BaseModel):
    escort: dict[str, Any]


class EscortList(BaseModel):
    escorts: list[dict[str, Any]]
    next: str | None = Field(default=None, description="cursor of the next page (pass it back as `cursor`), "
                             "null on the last")


class Provisioned(BaseModel):
    seal_id: int
    provisioned: bool
    rekeyed: bool
    forced: bool


class User(BaseModel):
    name: str
    role: str
    offices: list[str]
    disabled: bool
    created_at: float
    created_by: str | None
    password: bool = Field(description="the user has a password (browser login); else tokens only")


class UserList(BaseModel):
    users: list[User]
    next: str | None = Field(default=None, description="cursor of the next page (pass it back as `cursor`), "
                             "null on the last")


class Token(BaseModel):
    token_id: str
    token: str = Field(description="shown once: keep it in a 0600 file or a secret store")
    user: str


class Me(BaseModel):
    user: str
    role: str
    offices: list[str]
    via: str
    csrf: str | None = Field(default=None, description="browser sessions: send it as X-CSRF-Token")


class AuditRow(BaseModel):
    seq: int
    at: float
    actor_user: str
    actor_role: str
    actor_office: str | None
    via: str
    action: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    rows: list[AuditRow]
    next_after_seq: int


class Outbox(BaseModel):
    sinks: dict[str, dict[str, Any]]


class IngestState(BaseModel):
    state: Literal["running", "paused"] = Field(description="paused: a store error; frames are not acknowledged "
                                                "until the store takes writes again (then the broker redelivers)")
    reason: Literal["disk_full", "store_error"] | None = None
    error: str | None = Field(None, description="the store's last error while paused")
    since: float | None = Field(None, description="Unix s when ingest paused")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    dev_test_keys: bool = Field(description="true: the gateway accepts the published test keys (development only)")
    # What runs inside (sink names, serial ports, queue) is for users, not for anyone on the network.
    problems: list[str] | None = Field(default=None, description="what is wrong (authenticated callers only)")
    queue: int | None = Field(default=None, description="frames waiting for the pipeline (authenticated only)")
    outbox_depth: dict[str, int] | None = Field(default=None, description="events not yet delivered, per sink "
                                                "(authenticated only)")
    ingest: IngestState | None = Field(default=None, description="running, or paused on a store error with the "
                                       "reason (authenticated only)")
    dead_letters: dict[str, int] | None = Field(default=None, description="per sink, events it refused for good "
                                                "waiting for an admin (authenticated only)")


class DeadLetter(BaseModel):
    dead_letter_id: int
    sink: str
    outbox_id: int
    event_id: str
    status: Literal["dead", "replay", "replayed"] = Field(description="dead: refused for good, waiting; replay: "
                                                          "to be sent again; replayed: sent again and delivered")
    error: str
    refused_at: float
    refusals: int
    replay_requested_at: float | None = None
    replayed_at: float | None = None
    event: dict[str, Any] | None = Field(description="the event as the sink was given it; null once purged")


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next: str | None = Field(description="cursor of the next page, null on the last")