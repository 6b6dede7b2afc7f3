"""Retention (clause 18.3): the calendar that says when an escort's data may go, and the purge.

The store only finds deactivated escorts and deletes one escort's data (`StoreTx.deactivated_escorts`,
`delete_escort`); which escorts are past their retention is decided here, in one transaction.
Open escorts, failed activations and a seal's records outside any escort are never touched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .store import Store


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

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


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


def purge(store: Store, now: float, *, years: int = 5, utc_offset_h: float = 5.0) -> PurgeReport:
    """Delete the data of every escort whose retention ended by `now`, and nothing else."""
    report = PurgeReport()
    with store.transaction() as tx:
        for escort in tx.deactivated_escorts():
            if retention_end(escort["deactivated_at"], years=years, utc_offset_h=utc_offset_h) <= now:
                for table, n in tx.delete_escort(escort["escort_id"]).items():
                    setattr(report, table, getattr(report, table) + n)
    return report
