"""Operator events: the JSON the tracking system receives (docs/events.md, schema/event.schema.json).

An event is a plain dict built here and nowhere else. Its `event_id` is derived from the fact
(seal, kind and what identifies the fact: a journal rseq, an escort, a deadline), never from the
time it was built, so the same fact derived again (after a restart, a redelivered frame) has the
same id; the store keeps the first copy, and every re-send is byte-identical.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = 1

KINDS = (
    "ACTIVATED",
    "ACTIVATION_FAILED",
    "POSITION",
    "UNAUTHORIZED_OPENING",
    "HOUSING_OPENED",
    "SIGNAL_LOST",
    "SIGNAL_RESTORED",
    "ROUTE_DEVIATION",
    "ROUTE_RETURNED",
    "LOW_BATTERY",
    "TRANSIT_OVERDUE",
    "DEACTIVATION_REQUESTED",
    "DEACTIVATED",
    "DEACTIVATION_OVERDUE",
    "SEAL_REKEYED",
    "GNSS_LOST",
    "GNSS_RESTORED",
    "GNSS_ANOMALY",
    "RISK_MARKED",
    "NOTIFY_OVERDUE",
    "SEAL_REJECTING",
    "SEAL_REJECTING_ENDED",
    "ESCORT_EXPIRED",
)

# Kinds that tell the offices of departure and destination (clause 11: within one hour).
ALARM_KINDS = frozenset({
    "ACTIVATION_FAILED",
    "UNAUTHORIZED_OPENING",
    "HOUSING_OPENED",
    "SIGNAL_LOST",
    "ROUTE_DEVIATION",
    "LOW_BATTERY",
    "TRANSIT_OVERDUE",
    "DEACTIVATION_OVERDUE",
    "GNSS_LOST",
    "GNSS_ANOMALY",
    "SEAL_REJECTING",
})

# The non-routine situations of clause 3.8 (signal lost > 3 h, unauthorized removal/opening,
# deviation from the route), with the seal's own GNSS loss over 3 h and GNSS anomalies (positions
# that cannot be trusted): any of them during an escort makes its DEACTIVATED not clean.
NON_ROUTINE_KINDS = frozenset({"SIGNAL_LOST", "UNAUTHORIZED_OPENING", "HOUSING_OPENED", "ROUTE_DEVIATION",
                               "GNSS_LOST", "GNSS_ANOMALY"})

SCHEMA_PATH = Path(__file__).with_name("schema") / "event.schema.json"


def iso(ts: float | None) -> str | None:
    """Unix seconds -> RFC 3339 UTC ('Z'); whole seconds print without a fraction, others with ms."""
    if ts is None:
        return None
    whole = int(ts // 1)
    day, sec = divmod(whole, 86400)
    text = f"{_day(day)}T{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}"
    if ts == whole:
        return text + "Z"
    return text + f".{min(999, int(round((ts - whole) * 1000))):03d}Z"


@functools.lru_cache(maxsize=4096)
def _day(day: int) -> str:
    # Formatting is on the hot path (one per position record): the date part is cached per day.
    return (_EPOCH + _dt.timedelta(days=day)).strftime("%Y-%m-%d")


_EPOCH = _dt.date(1970, 1, 1)


def parse_iso(text: str) -> float:
    """RFC 3339 -> Unix seconds; a time without a zone is taken as UTC."""
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.timestamp()


def event_id(seal_id: int, kind: str, fact: str) -> str:
    """Stable id: the same (seal, kind, fact) always gives the same 32 hex digits."""
    digest = hashlib.sha256(f"navseal-event/1|{seal_id}|{kind}|{fact}".encode()).hexdigest()
    return digest[:32]


def valid_position(lat_e7: int | None, lon_e7: int | None) -> bool:
    """Known and on the globe: the wire's i32 reaches +-214 degrees, a broken receiver may send that."""
    return (lat_e7 is not None and lon_e7 is not None
            and -900_000_000 <= lat_e7 <= 900_000_000 and -1_800_000_000 <= lon_e7 <= 1_800_000_000)


def position(lat_e7: int | None, lon_e7: int | None, time: float | None = None) -> dict[str, Any] | None:
    """Wire position (1e-7 degree integers) -> event position (degrees), or None if unknown/invalid."""
    if lat_e7 is None or lon_e7 is None or not valid_position(lat_e7, lon_e7):
        return None
    return {"lat": lat_e7 / 1e7, "lon": lon_e7 / 1e7, "time": iso(time)}


def offices(escort: Mapping[str, Any] | None) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    if not escort:
        return None, None
    departure = {"code": escort["departure_office_code"], "name": escort["departure_office_name"]}
    destination = {"code": escort["dest_office_code"], "name": escort["dest_office_name"]}
    return departure, destination


def make_event(
    kind: str,
    *,
    seal_id: int,
    fact: str,
    escort: Mapping[str, Any] | None,
    occurred_at: float,
    known_at: float,
    emitted_at: float,
    position: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one operator event. `fact` identifies the fact for the stable `event_id`.

    occurred_at: when the fact happened (seal clock for seal facts, gateway clock for deadlines);
    known_at: when the gateway learned it (frame receipt or the tick that saw the deadline pass);
    emitted_at: when the event was committed to the outbox. An alarm's fact-to-emit latency is
    emitted_at - occurred_at; the rule that offices are told within one hour (clause 11) is about it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    departure, destination = offices(escort)
    alarm = kind in ALARM_KINDS
    notify: list[dict[str, str]] = []
    if alarm:
        for role, office in (("departure", departure), ("destination", destination)):
            if office:
                notify.append({"role": role, "office_code": office["code"], "office_name": office["name"]})
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id(seal_id, kind, fact),
        "kind": kind,
        "alarm": alarm,
        "seal_id": seal_id,
        "escort_id": escort["escort_id"] if escort else None,
        "declaration": escort["declaration"] if escort else None,
        "vehicle": escort["vehicle"] if escort else None,
        "departure_office": departure,
        "destination_office": destination,
        "occurred_at": iso(occurred_at),
        "known_at": iso(known_at),
        "emitted_at": iso(emitted_at),
        "position": position,
        "notify": notify,
        "details": details or {},
    }


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def validator():  # -> jsonschema validator (imported lazily: runtime does not need jsonschema)
    import jsonschema

    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate(events: Iterable[Mapping[str, Any]]) -> None:
    """Raise jsonschema.ValidationError for the first event that breaks the contract."""
    v = validator()
    for event in events:
        v.validate(event)
