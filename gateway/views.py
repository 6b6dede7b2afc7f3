"""Views: what operators and tools read about escorts (`Pipeline.status`, the HTTP API, the CLI).

Plain JSON-ready dicts built from store rows: the escort's clause 8 data and lifecycle times, its
seal's last contact, position and lock state, and its commands. Times are RFC 3339 (events.iso).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from . import events as ev
from .config import GatewayConfig
from .store import OPEN_ESCORT_STATUSES, Store


def status(store: Store, config: GatewayConfig, now: float, *, seal_id: int | None = None,
           escort_id: int | None = None, declaration: str | None = None, vehicle: str | None = None,
           offices: Sequence[str] | None = None, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """Escorts matching the filters (all open escorts when none is given), each with its seal's last
    seen time, last position and open commands, in escort_id order after `after_id`, at most
    `limit` (a page). `offices`: only escorts whose departure or destination office is one of these
    (an officer's scope), in the store's query."""
    with store.transaction() as tx:
        if seal_id is None and escort_id is None and declaration is None and vehicle is None:
            escorts = tx.escorts_with_status(OPEN_ESCORT_STATUSES, offices=offices, after_id=after_id, limit=limit)
        else:
            escorts = tx.find_escorts(seal_id=seal_id, escort_id=escort_id, declaration=declaration, vehicle=vehicle,
                                      offices=offices, after_id=after_id, limit=limit)
        out = []
        for e in escorts:
            view = escort_view(e)
            seal = tx.get_seal(e["seal_id"]) or {}
            view["seal"] = {
                "last_seen_at": ev.iso(seal.get("last_seen_at")),
                "online": bool(seal.get("last_seen_at")) and seal["last_seen_at"] >= now - config.online_window_s,
                "last_position": ev.position(seal.get("last_lat"), seal.get("last_lon"), seal.get("last_fix_time")),
                "cable_intact": maybe_bool(seal.get("last_cable_intact")),
                "housing_closed": maybe_bool(seal.get("last_housing_closed")),
                "battery_pct": seal.get("last_battery_pct"),
            }
            view["commands"] = [{
                "command_id": c["command_id"], "type": c["type"], "status": c["status"],
                "attempts": c["attempts"], "seq": c["seq"], "result": c["result"], "error": c["error"],
                "created_at": ev.iso(c["created_at"]), "next_attempt_at": ev.iso(c["next_attempt_at"]),
            } for c in tx.commands_for_escort(e["escort_id"])]
            out.append(view)
        return out


def escort_view(e: dict[str, Any]) -> dict[str, Any]:
    """One escort row as the API shows it."""
    return {
        "escort_id": e["escort_id"], "seal_id": e["seal_id"], "status": e["status"],
        "declaration": e["declaration"], "vehicle": e["vehicle"],
        "departure_office": {"code": e["departure_office_code"], "name": e["departure_office_name"]},
        "destination_office": {"code": e["dest_office_code"], "name": e["dest_office_name"]},
        "period_start": ev.iso(e["period_start"]), "period_end": ev.iso(e["period_end"]),
        "corridor_m": e["corridor_m"],
        "route_points": len(json.loads(e["route"])) if e["route"] else 0,
        "requested_at": ev.iso(e["requested_at"]), "confirmed_at": ev.iso(e["confirmed_at"]),
        "activated_at": ev.iso(e["activated_at"]), "failed_at": ev.iso(e["failed_at"]),
        "failure_reason": e["failure_reason"],
        "deactivation_requested_at": ev.iso(e["deactivation_requested_at"]),
        "deactivated_at": ev.iso(e["deactivated_at"]),
        "clean": None if e["clean"] is None else bool(e["clean"]),
        "high_risk": None if e.get("high_risk") is None else bool(e["high_risk"]),
        "rule_state": json.loads(e["rule_state"] or "{}"),
        "activated_by": json.loads(e["activated_by"]) if e.get("activated_by") else None,
        "deactivation_requested_by": (json.loads(e["deactivation_requested_by"])
                                      if e.get("deactivation_requested_by") else None),
    }


def maybe_bool(value: Any) -> bool | None:
    """A nullable 0/1 column as JSON: None stays unknown."""
    return None if value is None else bool(value)
