"""What the web console and the public track, event, alarm and seal routes read, whatever the engine.

`ConsoleReads` is mixed into `Store` (reads outside any transaction: the API reads on a connection
of its own, so a long read never holds up ingest); `ConsoleTx` is mixed into `StoreTx` (an alarm's
acknowledgement is written in the same transaction as its audit row). `EscortQuery` is the escorts
table's filter and page, as plain data. The tables and indexes come from the store's migrations
(`CONSOLE_MIGRATION`): the acknowledgements, and the indexes that keep a page of the escorts table
and of the alarm feed an index walk with 100,000 escorts stored.

Pages are keyset pages (`before` / `after` an id), never OFFSET: the cost of a page does not grow with
how far back it is, and rows arriving meanwhile do not shift it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

CONSOLE_MIGRATION = """
    CREATE TABLE alarm_acks (
        ack_id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the live feed's cursor for acknowledgements
        event_id TEXT NOT NULL,
        escort_id INTEGER REFERENCES escorts(escort_id),
        at REAL NOT NULL,
        actor_user TEXT NOT NULL,
        actor_role TEXT NOT NULL,
        actor_office TEXT,
        via TEXT NOT NULL,
        note TEXT,                                  -- the audit row written with it names the ack_id
        UNIQUE (event_id, actor_user)
    );
    CREATE INDEX alarm_acks_escort ON alarm_acks(escort_id);
    CREATE INDEX events_kind ON events(kind, outbox_id, escort_id);
    CREATE INDEX escorts_requested ON escorts(requested_at);
"""


@dataclass(frozen=True)
class EscortQuery:
    """One page of the escorts table: newest first, `limit` rows with `escort_id < before`.

    offices     the caller's scope (an officer's offices; None: every escort)
    office      only escorts departing from or bound for this office
    statuses    only these escort statuses (empty: any)
    overdue_at  only escorts overdue at this time: in one of `open_statuses` with the transit
                period over, or in one of `deactivation_statuses` with the request older than
                `deactivation_deadline_s`
    alarm_kinds only escorts with an event of one of these kinds (empty: no alarm filter)
    since/until requested (activation asked for) in [since, until)
    text        declaration or plate starting with it, or the seal id it spells
    """

    offices: tuple[str, ...] | None = None
    office: str | None = None
    statuses: tuple[str, ...] = ()
    overdue_at: float | None = None
    deactivation_deadline_s: float = 3600.0
    open_statuses: tuple[str, ...] = ()
    deactivation_statuses: tuple[str, ...] = ()
    alarm_kinds: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None
    text: str | None = None
    before: int | None = None
    limit: int = 50


class ConsoleReads(abc.ABC):
    """Reads for the console and the public read routes (mixed into `Store`)."""

    @abc.abstractmethod
    def escort_rows(self, query: EscortQuery) -> list[dict[str, Any]]:
        """A page of escorts (columns of `escorts`), newest first, each with its seal's
        `seal_last_seen_at`, `seal_last_fix_time`, `seal_battery_pct`, `seal_cable_intact`,
        `seal_housing_closed`."""

    @abc.abstractmethod
    def escort_with_seal(self, escort_id: int) -> dict[str, Any] | None:
        """One escort as `escort_rows` gives it, or None."""

    @abc.abstractmethod
    def escort_alarm_counts(self, escort_ids: Sequence[int], kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Per (escort_id, kind) of these kinds: `count`, `unacknowledged` (no acknowledgement at all)."""

    @abc.abstractmethod
    def seals_of_declarations(self, declarations: Sequence[str]) -> list[dict[str, Any]]:
        """`escort_id`, `seal_id`, `declaration`, `vehicle`, `status` of every escort of these declarations
        (several seals escort one vehicle: one escort each)."""

    def track_fixes(self, seal_id: int, escort_id: int) -> list[tuple[int, int, int, int, int | None]]:
        """The escort's valid position fixes in journal order as (rseq, time, lat_e7, lon_e7,
        speed in 0.1 km/h): fixes with a position and a fix quality, nothing else. Engines override
        this with one narrow query; this form works on any store that has `records`."""
        out = []
        for r in self.records(seal_id, escort_id=escort_id, limit=10_000_000):  # type: ignore[attr-defined]
            if r["kind"] == "FIX" and r["lat"] is not None and r["lon"] is not None and r["fix_quality"]:
                out.append((r["rseq"], r["time"], r["lat"], r["lon"], r["speed"]))
        return out

    def track_version(self, seal_id: int, escort_id: int) -> tuple[int, int]:
        """(how many fixes, highest rseq) of the escort's track: a cached track is still right while
        this is unchanged (late records change it too). Engines override this with one cheap query."""
        fixes = self.track_fixes(seal_id, escort_id)
        return len(fixes), (fixes[-1][0] if fixes else 0)

    @abc.abstractmethod
    def escort_events(self, escort_id: int, *, kinds: Sequence[str] = (), exclude: Sequence[str] = (),
                      after: int = 0, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        """(outbox_id, event) of the escort's events in commit order after `after`, only `kinds`
        when given, never `exclude`."""

    @abc.abstractmethod
    def alarm_feed(self, kinds: Sequence[str], *, offices: Sequence[str] | None = None,
                   before: int | None = None, after: int = 0, limit: int = 50) -> list[tuple[int, dict[str, Any]]]:
        """(outbox_id, event) of events of these kinds, newest first, with `after < outbox_id <
        before`; with `offices`, only those of escorts departing from or bound for one of them."""

    @abc.abstractmethod
    def alarm_acks(self, *, event_ids: Sequence[str] | None = None, offices: Sequence[str] | None = None,
                   after_ack_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Acknowledgements (rows of `alarm_acks`) by ack_id: of these events, or all after
        `after_ack_id`; with `offices`, only those of escorts of these offices."""

    @abc.abstractmethod
    def alarm_ack_head(self) -> int:
        """The highest ack_id stored (0: none): where a live feed of acknowledgements starts."""

    @abc.abstractmethod
    def seal_rows(self, *, offices: Sequence[str] | None = None, after: int = 0,
                  limit: int = 100) -> list[dict[str, Any]]:
        """A page of seals by id (never their keys), each with its open escort's `escort_id`,
        `escort_status`, `declaration`, `vehicle`, `departure_office_code`, `dest_office_code`
        (None when idle); with `offices`, only seals escorting for one of them now."""


class ConsoleTx(abc.ABC):
    """Writes of the console, inside one store transaction (mixed into `StoreTx`)."""

    @abc.abstractmethod
    def event_in_scope(self, event_id: str) -> dict[str, Any] | None:
        """`event_id`, `kind`, `seal_id`, `escort_id`, `outbox_id`, `body` (the event JSON text), and the
        escort's `departure_office_code` and `dest_office_code` (None without an escort)."""

    @abc.abstractmethod
    def insert_alarm_ack(self, row: dict[str, Any]) -> int | None:
        """Store an acknowledgement; its ack_id, or None when this user acknowledged the event before."""
