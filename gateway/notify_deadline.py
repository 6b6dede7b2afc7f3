"""Clause 11, per sink: every alarm must reach every sink within `notify_deadline_s` (1 h) of the
moment the gateway knew it. An alarm a sink has not taken by then raises NOTIFY_OVERDUE, once per
alarm and sink (its event id is derived from both, so the store keeps one however often it is
derived). The console marks the alarm (gateway/console_views.py, FEED_EXTRA_KINDS).

The sinks are the configured ones; with none configured (a simulator or tool that drains the
outbox itself), those with a cursor in the store. Checked from `Timers.tick` at most every
`CHECK_EVERY_S` of gateway time; `due` is the next deadline of an alarm still undelivered, for
`next_deadline`.
"""

from __future__ import annotations

import math
from typing import Any

from . import events as ev
from .config import GatewayConfig
from .store import Store

CHECK_EVERY_S = 60.0
SCAN_LIMIT = 2000  # events read past one sink's cursor per check (the oldest: the first to be late)


class NotifyDeadline:
    def __init__(self, store: Store, config: GatewayConfig) -> None:
        self.store = store
        self.config = config
        self.checked_at = -math.inf
        self.due: float | None = None

    def check(self, now: float) -> list[dict[str, Any]]:
        """NOTIFY_OVERDUE events for alarms past their deadline at a sink (committed; new ones only)."""
        if now < self.checked_at + CHECK_EVERY_S and (self.due is None or now <= self.due):
            return []
        self.checked_at = now
        status = self.store.outbox_status()
        names = [s.name for s in self.config.sinks] or list(status)
        late: list[tuple[str, dict[str, Any], float]] = []
        due: float | None = None
        for name in names:
            cursor = int((status.get(name) or {}).get("delivered_upto") or 0)
            for event in self.store.events(after_outbox_id=cursor, limit=SCAN_LIMIT):
                if not event.get("alarm"):
                    continue
                deadline = ev.parse_iso(event["known_at"]) + self.config.notify_deadline_s
                if now > deadline:
                    late.append((name, event, deadline))
                else:
                    due = deadline if due is None else min(due, deadline)
        self.due = due
        if not late:
            return []
        new: list[dict[str, Any]] = []
        with self.store.transaction() as tx:
            for name, alarm, deadline in late:
                event = ev.make_event(
                    "NOTIFY_OVERDUE", seal_id=alarm["seal_id"], fact=f"{alarm['event_id']}:{name}",
                    escort=_escort_of(alarm), occurred_at=deadline, known_at=now, emitted_at=now,
                    position=alarm.get("position"),
                    details={"alarm_event_id": alarm["event_id"], "alarm_kind": alarm["kind"], "sink": name,
                             "alarm_known_at": alarm["known_at"], "deadline": ev.iso(deadline),
                             "deadline_s": self.config.notify_deadline_s})
                new += tx.insert_events([event], [alarm.get("escort_id")], now)
        return new


def _escort_of(alarm: dict[str, Any]) -> dict[str, Any] | None:
    """The escort fields an event carries, read back from the alarm (make_event's `escort`)."""
    if alarm.get("escort_id") is None:
        return None
    dep, dest = alarm.get("departure_office") or {}, alarm.get("destination_office") or {}
    return {"escort_id": alarm["escort_id"], "declaration": alarm.get("declaration"), "vehicle": alarm.get("vehicle"),
            "departure_office_code": dep.get("code"), "departure_office_name": dep.get("name"),
            "dest_office_code": dest.get("code"), "dest_office_name": dest.get("name")}
