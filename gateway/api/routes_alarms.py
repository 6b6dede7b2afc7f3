"""Alarms across the caller's escorts: a page of the feed, a live feed (server-sent events), and
acknowledging one (who and when, audited in the same transaction).

The live feed (`GET /v1/alarms/stream`, `text/event-stream`) sends `alarm` messages (an item as in the
page), `ack` messages (an acknowledgement by anyone in scope) and `notify_overdue` messages (a sink did
not take an alarm within the clause 11 hour). Each message's `id` is `<outbox_id>:<ack_id>`, so a
browser's EventSource that reconnects sends it back as `Last-Event-ID` and misses nothing. The
stream sleeps on the runner's bell (gateway/bell.py) and reads the store only after a commit
that made events, at most every `MIN_QUERY_INTERVAL_S`; it ends by itself after `MAX_STREAM_S` (the
browser reconnects) and at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from .. import audit
from .. import console_views as cv
from .. import events as ev
from ..auth import OFFICER, Actor
from .access import current_actor, office_scope
from .console_models import AckAnswer, AckBody, AlarmPage
from .errors import ApiError
from .routes_browse import cursor_value
from .routes_escorts import ERRORS, service
from .routes_tracks import reader

router = APIRouter()
EventId = Path(pattern=r"^[0-9a-f]{32}$", description="the alarm's event_id")
MIN_QUERY_INTERVAL_S = 0.2  # a busy gateway rings many times a second; the feed reads at most this often
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and the browser from closing the stream
MAX_STREAM_S = 600.0  # then the stream ends and EventSource reconnects (re-checking the session)
RETRY_MS = 1000


def feed_items(store: Any, rows: list[tuple[int, dict[str, Any]]], offices: tuple[str, ...] | None, *,
               now: float, config: Any) -> list[dict[str, Any]]:
    """Feed items for alarm events (outbox_id, event): with their acknowledgements and whether a
    sink reported their clause 11 notification overdue."""
    alarms = [(o, e) for o, e in rows if e.get("kind") not in cv.FEED_EXTRA_KINDS]
    if not alarms:
        return []
    acks = cv.group_by_event(store.alarm_acks(event_ids=[e["event_id"] for _, e in alarms]))
    late = {e["details"].get("alarm_event_id") for _, e in
            store.alarm_feed(cv.FEED_EXTRA_KINDS, offices=offices, after=min(o for o, _ in alarms) - 1, limit=10_000)}
    items = []
    for outbox_id, event in alarms:
        item = cv.alarm_item(outbox_id, event, acks.get(event["event_id"], ()), now=now, config=config)
        item["notify_overdue"] = item["notify_overdue"] or event["event_id"] in late
        items.append(item)
    return items


@router.get("/v1/alarms", response_model=AlarmPage, responses=ERRORS,
            summary="Alarms of the caller's escorts, newest first, with the clause 11 deadline and acknowledgements")
def alarms(cursor: str | None = Query(default=None, max_length=20), limit: int = Query(default=50, ge=1, le=200),
           offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    now = svc.clock()
    store = reader(svc)
    after, acks_after = _heads(store, offices)  # before the page: what commits meanwhile is streamed
    rows = store.alarm_feed(cv.alarm_kinds(), offices=offices, before=cursor_value(cursor), limit=limit)
    return {"now": ev.iso(now), "notify_deadline_s": svc.config.notify_deadline_s,
            "items": feed_items(store, rows, offices, now=now, config=svc.config),
            "next": str(rows[-1][0]) if len(rows) == limit else None,
            "stream_after": after, "acks_after": acks_after}


def _last_event_id(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    alarm, _, ack = text.partition(":")
    if not alarm.isdigit() or not ack.isdigit():
        return None
    return int(alarm), int(ack)


def _message(kind: str, data: Any, cursor: tuple[int, int] | None = None) -> bytes:
    head = f"event: {kind}\n" + (f"id: {cursor[0]}:{cursor[1]}\n" if cursor else "")
    return (head + "data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n\n").encode()


@router.get("/v1/alarms/stream", responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
            summary="Live alarm feed (server-sent events: alarm, ack, notify_overdue)",
            description="Starts after `after` (an outbox_id, default: now) and `acks_after`, or after the "
                        "`Last-Event-ID` an EventSource sends when it reconnects.")
async def alarm_stream(request: Request, after: int | None = Query(default=None, ge=0),
                       acks_after: int | None = Query(default=None, ge=0),
                       last_event_id: str | None = Header(default=None, max_length=50),
                       offices=Depends(office_scope), svc: Any = Depends(service)) -> StreamingResponse:
    store = reader(svc)
    bell = svc.bell
    resumed = _last_event_id(last_event_id)
    if resumed is not None:
        after, acks_after = resumed
    if after is None or acks_after is None:
        top = await anyio.to_thread.run_sync(lambda: _heads(store, offices))
        after = top[0] if after is None else after
        acks_after = top[1] if acks_after is None else acks_after
    cursor = [after, acks_after]

    def read() -> list[bytes]:
        now = svc.clock()
        out = []
        rows = store.alarm_feed(cv.alarm_kinds() + cv.FEED_EXTRA_KINDS, offices=offices, after=cursor[0], limit=200)
        rows.reverse()  # oldest first on the wire
        items = {i["outbox_id"]: i for i in feed_items(store, rows, offices, now=now, config=svc.config)}
        acks = store.alarm_acks(offices=offices, after_ack_id=cursor[1], limit=200)
        if acks:
            cursor[1] = acks[-1]["ack_id"]
        for outbox_id, event in rows:
            cursor[0] = max(cursor[0], outbox_id)
            if outbox_id in items:
                out.append(_message("alarm", items[outbox_id], tuple(cursor)))
            else:
                out.append(_message("notify_overdue", {"outbox_id": outbox_id, "event": event}, tuple(cursor)))
        out += [_message("ack", cv.ack_view(a), tuple(cursor)) for a in acks]
        return out

    async def stream() -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n: navseal alarm feed\n\n".encode()
        started = time.monotonic()
        last_query = 0.0
        seen = bell.rings
        pending = True  # read once at the start: what came between the page and the stream
        while not bell.closed and time.monotonic() - started < MAX_STREAM_S:
            if pending:
                wait = MIN_QUERY_INTERVAL_S - (time.monotonic() - last_query)
                if wait > 0:
                    await asyncio.sleep(wait)
                seen = bell.rings
                last_query = time.monotonic()
                for message in await anyio.to_thread.run_sync(read):
                    yield message
            pending = await bell.wait(KEEPALIVE_S, since=seen)
            if not pending:
                yield b": keepalive\n\n"
            if await request.is_disconnected():
                return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _heads(store: Any, offices: tuple[str, ...] | None) -> tuple[int, int]:
    """Where a new stream starts: after the newest alarm and the newest acknowledgement now."""
    newest = store.alarm_feed(cv.alarm_kinds() + cv.FEED_EXTRA_KINDS, offices=offices, limit=1)
    return (newest[0][0] if newest else 0), store.alarm_ack_head()


@router.post("/v1/alarms/{event_id}/ack", status_code=201, response_model=AckAnswer, responses=ERRORS,
             summary="Acknowledge an alarm (an officer of its offices, or the operator): who and when, audited")
def acknowledge(body: AckBody, event_id: str = EventId, actor: Actor = Depends(current_actor),
                offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    now = svc.clock()
    target = f"event:{event_id}"
    ack: dict[str, Any] = {}
    with svc.store.transaction() as tx:
        row = tx.event_in_scope(event_id)
        escort = None if row is None else {"departure_office_code": row["departure_office_code"],
                                           "dest_office_code": row["dest_office_code"]}
        if row is None or row["escort_id"] is None or not cv.in_scope(escort, offices):
            refusal: ApiError | None = ApiError(404, "not_found", f"no alarm {event_id}")
        elif row["kind"] not in ev.ALARM_KINDS:
            refusal = ApiError(400, "bad_request", f"event {event_id} is a {row['kind']}, not an alarm")
        else:
            office = _acting_office(actor, escort)
            ack = {"event_id": event_id, "escort_id": row["escort_id"], "at": now, "actor_user": actor.user,
                   "actor_role": actor.role, "actor_office": office, "via": actor.via, "note": body.note}
            ack_id = tx.insert_alarm_ack(ack)
            if ack_id is None:
                refusal = ApiError(409, "exists", f"you acknowledged alarm {event_id} before")
            else:
                refusal = None
                ack["ack_id"] = ack_id
                audit.record(tx, actor, "alarm.ack", target, {"ack_id": ack_id, "kind": row["kind"],
                                                             "escort_id": row["escort_id"], "office": office,
                                                             "note": body.note}, now=now)
    if refusal is not None:
        audit.record_alone(svc.store, actor, "alarm.ack", target, {"code": refusal.code, "reason": refusal.message})
        raise refusal
    svc.bell.ring()
    return {"ack": cv.ack_view(ack)}


def _acting_office(actor: Actor, escort: dict[str, Any]) -> str | None:
    """The office an officer acknowledges for: the escort's destination if it is theirs, else its
    departure office; None for the operator."""
    if actor.role != OFFICER:
        return None
    for code in (escort["dest_office_code"], escort["departure_office_code"]):
        if code in actor.offices:
            return code
    return None
