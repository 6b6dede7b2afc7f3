"""Retention: how long each class of data is kept, the clause 18.3 calendar, and the purge.

- An escort's data (escort, records, uplinks, events, outbox rows, commands, acknowledgements,
  dead letters): `retention_years` (clause 18.3: five) counted from the day after it ended, in
  local calendar days (`retention_end`). It ends when deactivated or, never deactivated, when it
  expires:
- an escort never deactivated expires `retention_escort_horizon_days` after its transit period
  ended (open: the seal was never brought to deactivation) or after its activation failed: the
  purge marks it (`expired_at`) and emits ESCORT_EXPIRED once, so the operator learns its clock
  started; its status is left as it is;
- records and uplink frames outside any escort (an idle seal's reports, frames before an
  activation) are kept `retention_unescorted_days` (default 90) from their receipt.

The store finds and deletes (`StoreTx.ended_escorts`, `escorts_to_expire`, `delete_escort`,
`delete_unescorted`); what is past its time is decided here. Rows outside escorts are looked at
`UNESCORTED_BATCH` at a time, one transaction each, so a purge of a large backlog never holds
ingest long.
Events outside escorts (SEAL_REKEYED) are kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any

from . import events as ev
from .store import Store

DAY = 86400.0
UNESCORTED_BATCH = 20_000


@dataclass
class PurgeReport:
    """Rows deleted per table by one purge."""

    escorts: int = 0
    records: int = 0
    events: int = 0
    outbox: int = 0
    commands: int = 0
    uplinks: int = 0
    alarm_acks: int = 0
    dead_letters: int = 0
    escorts_expired: int = 0  # marked expired by this purge (ESCORT_EXPIRED emitted), not deleted
    unescorted_records: int = 0
    unescorted_uplinks: int = 0
    new_events: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the ESCORT_EXPIRED events

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "new_events"}


def _add_years(day: dt.date, years: int, *, leap_day_to_march: bool) -> dt.date:
    """Same month and day `years` later. 29 February into a common year becomes 1 March or, as the
    civil-law rule for periods has it (no such date: the last day of that month), 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return dt.date(day.year + years, 3, 1) if leap_day_to_march else dt.date(day.year + years, 2, 28)


def retention_end(deactivated_at: float, *, years: int = 5, utc_offset_h: float = 5.0) -> float:
    """First instant (Unix seconds) at which an escort deactivated at `deactivated_at` may be purged.

    Clause 18.3: stored five years, "calculated from the day following the day of deactivation".
    The day of deactivation D is the local calendar day (Kazakhstan, UTC+5). The period runs from
    D+1; read as "five whole years from D+1" it ends at the start of (D+1)+5y; read as a civil-law
    period (expires on the corresponding date of the last year) it ends at the end of D+5y. We take
    the later of the two, so no reading of the rule ever finds data purged early.
    """
    offset = dt.timedelta(hours=utc_offset_h)
    local_day = (dt.datetime.fromtimestamp(deactivated_at, dt.timezone.utc) + offset).date()
    a = _add_years(local_day + dt.timedelta(days=1), years, leap_day_to_march=True)
    b = _add_years(local_day, years, leap_day_to_march=False) + dt.timedelta(days=1)
    end_day = max(a, b)
    local_midnight = dt.datetime.combine(end_day, dt.time(0), tzinfo=dt.timezone.utc) - offset
    return local_midnight.timestamp()


def purge(store: Store, now: float, *, years: int = 5, utc_offset_h: float = 5.0, unescorted_days: float = 90,
          horizon_days: float = 365) -> PurgeReport:
    """Expire escorts past the horizon (ESCORT_EXPIRED), delete the data of every escort whose
    retention ended by `now`, and records and uplinks outside escorts older than `unescorted_days`."""
    report = PurgeReport()
    with store.transaction() as tx:
        tx.exclusive("retention")  # one purge at a time across the gateway instances
        horizon = horizon_days * DAY
        expiring = tx.escorts_to_expire(now - horizon, now - horizon)
        new = [_expired_event(escort, now, horizon, years=years, utc_offset_h=utc_offset_h) for escort in expiring]
        for escort in expiring:
            tx.update_escort(escort["escort_id"], expired_at=now)
        report.new_events = tx.insert_events(new, [e["escort_id"] for e in expiring], now) if new else []
        report.escorts_expired = len(expiring)
        for escort in tx.ended_escorts():
            if retention_end(escort["ended_at"], years=years, utc_offset_h=utc_offset_h) <= now:
                for table, n in tx.delete_escort(escort["escort_id"]).items():
                    setattr(report, table, getattr(report, table) + n)
    position = None
    while True:
        with store.transaction() as tx:
            deleted, position = tx.delete_unescorted(now - unescorted_days * DAY, UNESCORTED_BATCH, position)
        report.unescorted_records += deleted["records"]
        report.unescorted_uplinks += deleted["uplinks"]
        if position is None:
            return report


def _expired_event(escort: dict[str, Any], now: float, horizon: float, *, years: int,
                   utc_offset_h: float) -> dict[str, Any]:
    """ESCORT_EXPIRED: the escort was never deactivated; its retention runs from now."""
    failed = escort["status"] == "failed"
    since = escort["failed_at"] if failed else escort["period_end"]
    return ev.make_event(
        "ESCORT_EXPIRED", seal_id=escort["seal_id"], fact=f"escort:{escort['escort_id']}", escort=escort,
        occurred_at=since + horizon, known_at=now, emitted_at=now,
        details={"status": escort["status"], "since": ev.iso(since), "horizon_days": round(horizon / DAY, 3),
                 "retention_until": ev.iso(retention_end(now, years=years, utc_offset_h=utc_offset_h))})
