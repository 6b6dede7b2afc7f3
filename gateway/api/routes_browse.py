"""The escorts table and the seals list: filtered, keyset-paginated reads (the console's pages 1 and 4).

An officer's scope is part of each store query (never a filter applied afterwards), so a page is
`limit` rows of their offices however many escorts other offices have.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from .. import console_views as cv
from .. import events as ev
from ..store.console import EscortQuery
from .access import office_scope
from .console_models import EscortRowsPage, SealPage
from .errors import ApiError
from .models import unix_seconds
from .routes_escorts import ERRORS, service
from .routes_tracks import reader

router = APIRouter()


def cursor_value(cursor: str | None) -> int | None:
    """A page cursor is the id the next page starts below (escorts) or above (seals)."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise ApiError(400, "bad_request", "cursor: pass back the `next` of the previous page")
    return int(cursor)


def _time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return unix_seconds(float(value) if value.replace(".", "", 1).isdigit() else value, name)
    except ValueError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def escort_query(*, offices: tuple[str, ...] | None, now: float, config: Any, state: str | None, office: str | None,
                 alarm: str | None, since: str | None, until: str | None, q: str | None, cursor: str | None,
                 limit: int) -> EscortQuery:
    """The table's filters as a store query; an officer's `office` filter must be one of theirs."""
    if office is not None and offices is not None and office not in offices:
        raise ApiError(403, "forbidden", f"office {office} is not one of yours ({', '.join(offices)})")
    statuses: tuple[str, ...] = ()
    overdue_at = None
    if state == "overdue":
        overdue_at = now
    elif state is not None:
        if state not in cv.STATES and not state.isidentifier():
            raise ApiError(400, "bad_request", f"state: one of {', '.join(cv.STATES)}")
        statuses = cv.statuses_of(state)
    kinds: tuple[str, ...] = ()
    if alarm == "any":
        kinds = cv.alarm_kinds()
    elif alarm is not None:
        if alarm not in ev.KINDS:
            raise ApiError(400, "bad_request", f"alarm: 'any' or an event kind ({', '.join(cv.alarm_kinds())})")
        kinds = (alarm,)
    return EscortQuery(offices=offices, office=office, statuses=statuses, overdue_at=overdue_at,
                       deactivation_deadline_s=config.deactivation_deadline_s,
                       open_statuses=cv.transit_statuses(), deactivation_statuses=cv.deactivation_statuses(),
                       alarm_kinds=kinds, since=_time(since, "since"), until=_time(until, "until"),
                       text=q or None, before=cursor_value(cursor), limit=limit)


def escort_page(store: Any, query: EscortQuery, *, now: float, config: Any) -> dict[str, Any]:
    """One page of the table: the rows, their alarm badges and their vehicles' other seals
    (three indexed queries, whatever the page)."""
    rows = store.escort_rows(query)
    ids = [r["escort_id"] for r in rows]
    alarms = cv.group_by_escort(store.escort_alarm_counts(ids, cv.alarm_kinds()))
    together = cv.seals_by_escort(rows, store.seals_of_declarations([r["declaration"] for r in rows]))
    out = [cv.escort_row(r, now=now, config=config, alarms=alarms.get(r["escort_id"], ()),
                         seals=together.get(r["escort_id"], ())) for r in rows]
    return {"now": ev.iso(now), "rows": out, "alarm_kinds": list(cv.alarm_kinds()),
            "next": str(ids[-1]) if len(ids) == query.limit and ids else None}


@router.get("/v1/console/escorts", response_model=EscortRowsPage, responses=ERRORS,
            summary="The escorts table: filtered, newest first, paginated (an officer sees their offices' only)")
def escorts_table(
        state: str | None = Query(default=None, max_length=40, description=f"one of {', '.join(cv.STATES)}"),
        office: str | None = Query(default=None, pattern=r"^[0-9]{5,8}$", description="departure or destination"),
        alarm: str | None = Query(default=None, max_length=40, description="'any', or an alarm kind"),
        since: str | None = Query(default=None, max_length=40, description="activation requested at or after "
                                                                          "(RFC 3339 or Unix seconds)"),
        until: str | None = Query(default=None, max_length=40, description="... and before"),
        q: str | None = Query(default=None, min_length=1, max_length=40,
                              description="declaration or plate starting with this, or a seal id"),
        cursor: str | None = Query(default=None, max_length=20), limit: int = Query(default=50, ge=1, le=200),
        offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    now = svc.clock()
    query = escort_query(offices=offices, now=now, config=svc.config, state=state, office=office, alarm=alarm,
                         since=since, until=until, q=q, cursor=cursor, limit=limit)
    return escort_page(reader(svc), query, now=now, config=svc.config)


@router.get("/v1/seals", response_model=SealPage, responses=ERRORS,
            summary="Provisioned seals: firmware, last seen, battery, journal backlog, escort "
                    "(an officer: the seals escorting for their offices now)")
def seals(cursor: str | None = Query(default=None, max_length=20), limit: int = Query(default=100, ge=1, le=500),
          offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    now = svc.clock()
    rows = reader(svc).seal_rows(offices=offices, after=cursor_value(cursor) or 0, limit=limit)
    return {"now": ev.iso(now), "rows": [cv.seal_row(r, now=now, config=svc.config) for r in rows],
            "next": str(rows[-1]["seal_id"]) if len(rows) == limit and rows else None}
