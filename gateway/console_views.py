"""What the web console shows, built from store rows: the escorts table, the alarm feed, the seals.

Plain JSON-ready dicts, like gateway/views.py (the escort itself is `views.escort_view`). Times are
RFC 3339; ages are seconds on the gateway's clock (`now` in each answer), so a browser whose clock
is off, or a demo on a compressed clock, still shows the right ages.

Escort statuses are grouped into the states an officer reads (the issue's words): awaiting
activation, active, deactivation requested, deactivated, failed; "overdue" is a flag on top (the
transit period ended without a deactivation request, or the seal was not deactivated within the
clause 14 hour), because an overdue escort is still active or still waiting for its seal.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from . import events as ev
from .config import GatewayConfig
from .store import (
    ESCORT_ACTIVE,
    ESCORT_ARMED,
    ESCORT_DEACTIVATED,
    ESCORT_DEACTIVATION_REQUESTED,
    ESCORT_FAILED,
    ESCORT_REQUESTED,
    OPEN_ESCORT_STATUSES,
)
from .views import maybe_bool

# Escort status -> the state the console shows. A status not listed (a newer gateway's) shows as itself.
STATE_OF_STATUS = {
    ESCORT_REQUESTED: "awaiting_activation",
    ESCORT_ARMED: "awaiting_activation",
    ESCORT_ACTIVE: "active",
    ESCORT_DEACTIVATION_REQUESTED: "deactivation_requested",
    "evidence_pending": "deactivation_requested",  # the seal confirmed; the verdict waits for its records
    ESCORT_DEACTIVATED: "deactivated",
    ESCORT_FAILED: "failed",
}
STATES = ("awaiting_activation", "active", "deactivation_requested", "deactivated", "failed", "overdue")
# Kinds the feed carries besides the alarms: a NOTIFY_OVERDUE names an alarm whose clause 11
# notification missed its hour at a sink; the console marks that alarm.
FEED_EXTRA_KINDS = ("NOTIFY_OVERDUE",)


def statuses_of(state: str) -> tuple[str, ...]:
    """The escort statuses a state filter selects (a raw status selects itself)."""
    found = tuple(s for s, st in STATE_OF_STATUS.items() if st == state)
    return found or (state,)


def deactivation_statuses() -> tuple[str, ...]:
    return statuses_of("deactivation_requested")


def transit_statuses() -> tuple[str, ...]:
    """Open statuses whose transit period running out makes them overdue (no deactivation asked)."""
    return tuple(s for s in OPEN_ESCORT_STATUSES if s not in deactivation_statuses())


def alarm_kinds() -> tuple[str, ...]:
    return tuple(sorted(ev.ALARM_KINDS))


def overdue(row: dict[str, Any], now: float, config: GatewayConfig) -> str | None:
    """"transit" (clause 8.5 period over, no deactivation asked), "deactivation" (clause 14 hour
    passed without the seal's confirmation) or None."""
    status = row["status"]
    if status in deactivation_statuses():
        asked = row.get("deactivation_requested_at")
        if asked is not None and now > asked + config.deactivation_deadline_s:
            return "deactivation"
        return None
    if status in transit_statuses() and row.get("period_end") is not None and now > row["period_end"]:
        return "transit"
    return None


def escort_row(row: dict[str, Any], *, now: float, config: GatewayConfig,
               alarms: Sequence[dict[str, Any]] = (), seals: Sequence[int] = ()) -> dict[str, Any]:
    """One line of the escorts table. `alarms`: this escort's (kind, count, unacknowledged);
    `seals`: every seal escorting the same declaration and vehicle (this one included)."""
    status = row["status"]
    open_ = status in OPEN_ESCORT_STATUSES
    fix_time = row.get("seal_last_fix_time") if open_ else None
    seen = row.get("seal_last_seen_at") if open_ else None
    return {
        "escort_id": row["escort_id"], "seal_id": row["seal_id"], "seals": sorted(set(seals) | {row["seal_id"]}),
        "status": status, "state": STATE_OF_STATUS.get(status, status), "overdue": overdue(row, now, config),
        "declaration": row["declaration"], "vehicle": row["vehicle"],
        "departure_office": {"code": row["departure_office_code"], "name": row["departure_office_name"]},
        "destination_office": {"code": row["dest_office_code"], "name": row["dest_office_name"]},
        "period_start": ev.iso(row["period_start"]), "period_end": ev.iso(row["period_end"]),
        "requested_at": ev.iso(row["requested_at"]), "activated_at": ev.iso(row.get("activated_at")),
        "deactivated_at": ev.iso(row.get("deactivated_at")),
        "clean": None if row.get("clean") is None else bool(row["clean"]),
        "last_position_at": ev.iso(fix_time) if fix_time else None,
        "last_position_age_s": round(now - fix_time, 1) if fix_time else None,
        "last_seen_at": ev.iso(seen), "last_seen_age_s": round(now - seen, 1) if seen else None,
        "battery_pct": row.get("seal_battery_pct") if open_ else None,
        "lock": {"cable_intact": maybe_bool(row.get("seal_cable_intact")),
                 "housing_closed": maybe_bool(row.get("seal_housing_closed"))} if open_ else None,
        "alarms": [{"kind": a["kind"], "count": a["count"], "unacknowledged": a["unacknowledged"]}
                   for a in sorted(alarms, key=lambda a: a["kind"])],
    }


def group_by_escort(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["escort_id"], []).append(r)
    return out


def group_by_event(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["event_id"], []).append(r)
    return out


def seals_by_escort(page: Sequence[dict[str, Any]], same: Sequence[dict[str, Any]]) -> dict[int, list[int]]:
    """For each escort of the page, the seals escorting its declaration and vehicle together with it
    (the same lifecycle: all open, or all closed)."""
    out = {}
    for row in page:
        open_ = row["status"] in OPEN_ESCORT_STATUSES
        out[row["escort_id"]] = [s["seal_id"] for s in same
                                 if s["declaration"] == row["declaration"] and s["vehicle"] == row["vehicle"]
                                 and (s["status"] in OPEN_ESCORT_STATUSES) == open_]
    return out


def ack_view(a: dict[str, Any]) -> dict[str, Any]:
    return {"ack_id": a["ack_id"], "event_id": a["event_id"], "at": ev.iso(a["at"]),
            "by": {"user": a["actor_user"], "role": a["actor_role"], "office": a["actor_office"], "via": a["via"]},
            "note": a["note"]}


def alarm_item(outbox_id: int, event: dict[str, Any], acks: Sequence[dict[str, Any]], *, now: float,
               config: GatewayConfig) -> dict[str, Any]:
    """One alarm of the feed: the operator event as forwarded, its clause 11 deadline (an hour
    after the gateway knew it, as the notify rule counts), who acknowledged it and when, and
    whether it is overdue: its deadline passed before anyone acknowledged it."""
    deadline = None
    try:
        deadline = ev.parse_iso(event["known_at"]) + config.notify_deadline_s
    except (KeyError, TypeError, ValueError):
        pass
    first_ack = min((a["at"] for a in acks), default=None)
    late = deadline is not None and event.get("alarm") and (
        (first_ack is None and now > deadline) or (first_ack is not None and first_ack > deadline))
    return {"outbox_id": outbox_id, "event": event, "notify_deadline": ev.iso(deadline),
            "notify_overdue": bool(late), "acks": [ack_view(a) for a in acks]}


def firmware_of(hello: dict[str, Any] | None) -> str | None:
    if not hello or hello.get("fw_major") is None:
        return None
    return f"{hello['fw_major']}.{hello.get('fw_minor', 0)}.{hello.get('fw_patch', 0)}"


def seal_row(row: dict[str, Any], *, now: float, config: GatewayConfig) -> dict[str, Any]:
    """One line of the seals page: firmware, last contact, battery, the journal backlog the seal
    last reported (records not yet acknowledged), its escort."""
    state = _json(row.get("last_state"))
    hello = _json(row.get("last_hello"))
    seen = row.get("last_seen_at")
    backlog = state.get("journal_pending") if state else None
    if backlog is None and hello:
        backlog = hello.get("journal_pending")
    escort = None
    if row.get("escort_id") is not None:
        escort = {"escort_id": row["escort_id"], "status": row["escort_status"],
                  "state": STATE_OF_STATUS.get(row["escort_status"], row["escort_status"]),
                  "declaration": row["declaration"], "vehicle": row["vehicle"]}
    return {
        "seal_id": row["seal_id"], "provisioned_at": ev.iso(row.get("provisioned_at")),
        "firmware": firmware_of(hello), "boot": row.get("last_boot"),
        "last_seen_at": ev.iso(seen), "last_seen_age_s": round(now - seen, 1) if seen else None,
        "online": bool(seen) and seen >= now - config.online_window_s, "last_source": row.get("last_source"),
        "battery_pct": row.get("last_battery_pct"),
        "lock": {"cable_intact": maybe_bool(row.get("last_cable_intact")),
                 "housing_closed": maybe_bool(row.get("last_housing_closed"))},
        "last_position": ev.position(row.get("last_lat"), row.get("last_lon"), row.get("last_fix_time")),
        "journal_backlog": backlog, "journal_capacity": state.get("journal_capacity") if state else None,
        "committed_rseq": row.get("committed_rseq"), "escort": escort,
    }


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def route_points(escort: dict[str, Any]) -> list[list[float]] | None:
    """The escort's declared route as stored ([lat, lon] pairs), None without one."""
    return json.loads(escort["route"]) if escort.get("route") else None


def in_scope(escort: dict[str, Any] | None, offices: Sequence[str] | None) -> bool:
    """Whether the caller may see this escort: its departure or destination office is theirs."""
    if escort is None:
        return False
    return (offices is None or escort.get("departure_office_code") in offices
            or escort.get("dest_office_code") in offices)
