"""Bodies of the read routes the web console uses (and anyone else may): escorts table, track,
events, alarm feed, seals. Pages carry the gateway's `now` (ages and deadlines are on its clock)
and a cursor for the next page (`next`: pass it back as `cursor`; null on the last page)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .models import printable


class EscortRowsPage(BaseModel):
    now: str = Field(description="the gateway's time (RFC 3339): ages are counted to it")
    rows: list[dict[str, Any]] = Field(description="escorts newest first: state, overdue, declaration, vehicle, "
                                                   "seals, offices, last position age, alarm badges")
    next: str | None = Field(description="cursor of the next page, null on the last")
    alarm_kinds: list[str] = Field(description="the event kinds that are alarms (the `alarm` filter's values)")


class EventItem(BaseModel):
    outbox_id: int = Field(description="commit order; pass the last one back as `after`")
    event: dict[str, Any] = Field(description="the operator event as forwarded (docs/events.md)")


class EventPage(BaseModel):
    escort_id: int
    items: list[EventItem]
    next_after: int = Field(description="the last outbox_id of this page (or `after` when empty)")
    more: bool = Field(description="true: there are more events after this page")


class AlarmPage(BaseModel):
    now: str
    notify_deadline_s: float = Field(description="clause 11: the offices are told within this after the "
                                                 "gateway learned of an alarm")
    items: list[dict[str, Any]] = Field(description="newest first: outbox_id, event, notify_deadline, "
                                                    "notify_overdue, acks")
    next: str | None
    stream_after: int = Field(description="open the live feed with after=this ...")
    acks_after: int = Field(description="... and acks_after=this, so nothing between this page and it is missed")


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: Annotated[str, Field(max_length=500), AfterValidator(printable)] | None = Field(
        default=None, description="optional: what was done about it")


class AckAnswer(BaseModel):
    ack: dict[str, Any] = Field(description="ack_id, event_id, at, by {user, role, office, via}, note")


class SealPage(BaseModel):
    now: str
    rows: list[dict[str, Any]] = Field(description="seal_id, firmware, last_seen_at and age, online, battery_pct, "
                                                   "lock, last_position, journal_backlog, escort")
    next: str | None
