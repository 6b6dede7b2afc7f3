"""SQLite implementation of the console's reads and writes (gateway/store/console.py).

`SqliteConsoleReads` is mixed into `SqliteStore` (it uses the store's `_read`), `SqliteConsoleTx`
into `SqliteTx`. Every page is one indexed query: the escorts table walks `escorts` backwards by id
(or one of its indexes) and stops after `limit` rows; an alarm filter is one pass over the alarm
kinds' entries of `events_kind`; the alarm feed seeks `events_kind` per kind.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
from typing import Any, Sequence

from .console import ConsoleReads, ConsoleTx, EscortQuery
from .wire_fixes import RECORD_FIX, run_fixes

_ESCORT_ROW = (
    "SELECT e.*, s.last_seen_at AS seal_last_seen_at, s.last_fix_time AS seal_last_fix_time, "
    "s.last_battery_pct AS seal_battery_pct, s.last_cable_intact AS seal_cable_intact, "
    "s.last_housing_closed AS seal_housing_closed FROM escorts e JOIN seals s ON s.seal_id = e.seal_id"
)


class _Args:
    """Named parameters for a query being built: `add(value)` gives its placeholder."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return ":" + name

    def many(self, values: Sequence[Any]) -> str:
        return "(" + ", ".join(self.add(v) for v in values) + ")" if values else "(NULL)"


def _in_offices(args: _Args, offices: Sequence[str], alias: str = "e") -> str:
    if not offices:
        return "FALSE"
    marks = args.many(list(offices))
    return f"({alias}.departure_office_code IN {marks} OR {alias}.dest_office_code IN {marks})"


def _prefix_end(text: str) -> str:
    """The smallest string above every string starting with `text` (a range an index can walk)."""
    return text + "\U0010ffff"


class SqliteConsoleReads(ConsoleReads):
    """Expects the store's `_read`, `_c` (connection) and `_lock` (SqliteStore has them)."""

    _c: sqlite3.Connection
    _lock: Any

    def _read(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:  # provided by SqliteStore
        raise NotImplementedError

    def escort_rows(self, query: EscortQuery) -> list[dict[str, Any]]:
        args = _Args()
        where = []  # all must hold
        either = []  # groups of alternatives: one of each group must hold
        offices = [query.office] if query.office is not None else query.offices
        if offices is not None:
            marks = args.many(list(offices))
            either.append([f"e.departure_office_code IN {marks}", f"e.dest_office_code IN {marks}"])
        if query.text:
            text = query.text
            alternatives = [
                f"(e.declaration >= {args.add(text)} AND e.declaration < {args.add(_prefix_end(text))})",
                f"(e.vehicle >= {args.add(text.upper())} AND e.vehicle < {args.add(_prefix_end(text.upper()))})"]
            if text.isdigit() and len(text) <= 10:
                alternatives.append(f"e.seal_id = {args.add(int(text))}")
            either.append(alternatives)
        if query.statuses:
            where.append(f"e.status IN {args.many(query.statuses)}")
        if query.overdue_at is not None:
            now = args.add(query.overdue_at)
            where.append(
                f"((e.status IN {args.many(query.open_statuses)} AND e.period_end < {now}) OR "
                f"(e.status IN {args.many(query.deactivation_statuses)} AND "
                f"e.deactivation_requested_at < {now} - {args.add(query.deactivation_deadline_s)}))")
        if query.alarm_kinds:
            where.append(f"e.escort_id IN (SELECT escort_id FROM events WHERE kind IN {args.many(query.alarm_kinds)})")
        if query.since is not None:
            where.append(f"e.requested_at >= {args.add(query.since)}")
        if query.until is not None:
            where.append(f"e.requested_at < {args.add(query.until)}")
        if query.before is not None:
            where.append(f"e.escort_id < {args.add(query.before)}")
        limit = args.add(query.limit)
        if either:
            # "A or B" over two indexed columns made SQLite fetch every match and sort it (60 ms
            # for an officer's two offices among 100,000 escorts). Instead each combination of
            # alternatives is its own index walk stopping at `limit`, and the page is the newest
            # `limit` of their union: the same rows, a few hundred index entries read.
            branches = [f"SELECT escort_id FROM (SELECT e.escort_id FROM escorts e WHERE {' AND '.join([*combo, *where])} "
                        f"ORDER BY e.escort_id DESC LIMIT {limit}) AS b{n}"
                        for n, combo in enumerate(itertools.product(*either))]
            clause = f"e.escort_id IN ({' UNION '.join(branches)})"
        else:
            clause = " AND ".join(where) or "TRUE"
        return self._read(f"{_ESCORT_ROW} WHERE {clause} ORDER BY e.escort_id DESC LIMIT {limit}", args.values)

    def escort_with_seal(self, escort_id: int) -> dict[str, Any] | None:
        rows = self._read(f"{_ESCORT_ROW} WHERE e.escort_id = ?", (escort_id,))
        return rows[0] if rows else None

    def escort_alarm_counts(self, escort_ids: Sequence[int], kinds: Sequence[str]) -> list[dict[str, Any]]:
        if not escort_ids or not kinds:
            return []
        args = _Args()
        return self._read(
            "SELECT v.escort_id, v.kind, COUNT(*) AS count, "
            "SUM(CASE WHEN EXISTS (SELECT 1 FROM alarm_acks a WHERE a.event_id = v.event_id) THEN 0 ELSE 1 END) "
            "AS unacknowledged "
            f"FROM events v WHERE v.kind IN {args.many(kinds)} AND v.escort_id IN {args.many(escort_ids)} "
            "GROUP BY v.escort_id, v.kind", args.values)

    def seals_of_declarations(self, declarations: Sequence[str]) -> list[dict[str, Any]]:
        if not declarations:
            return []
        args = _Args()
        return self._read("SELECT escort_id, seal_id, declaration, vehicle, status FROM escorts "
                          f"WHERE declaration IN {args.many(sorted(set(declarations)))} ORDER BY escort_id",
                          args.values)

    def track_fixes(self, seal_id: int, escort_id: int) -> list[tuple[int, int, int, int, int | None]]:
        # Runs unpacked without a dict per record (36,000 fixes in ~20 ms), merged with the single
        # rows stored before runs existed; both come in rseq order off their escort indexes.
        single = [(r["rseq"], r["time"], r["lat"], r["lon"], r["speed"]) for r in self._read(
            "SELECT rseq, time, lat, lon, speed FROM records WHERE seal_id = ? AND escort_id = ? AND kind = ? "
            "AND lat IS NOT NULL AND lon IS NOT NULL AND fix_quality > 0 ORDER BY rseq",
            (seal_id, escort_id, RECORD_FIX))]
        runs = [fix for r in self._read(
            "SELECT first_rseq, base_time, body FROM record_runs WHERE escort_id = ? AND seal_id = ? "
            "ORDER BY first_rseq", (escort_id, seal_id))
            for fix in run_fixes(r["first_rseq"], r["base_time"], bytes(r["body"]))]
        return list(heapq.merge(single, runs)) if single else runs

    def track_version(self, seal_id: int, escort_id: int) -> tuple[int, int]:
        args = {"seal": seal_id, "escort": escort_id, "fix": RECORD_FIX}
        single = self._read("SELECT COUNT(*) AS n, COALESCE(MAX(rseq), 0) AS top FROM records "
                            "WHERE seal_id = :seal AND escort_id = :escort AND kind = :fix", args)[0]
        runs = self._read("SELECT COALESCE(SUM(last_rseq - first_rseq + 1), 0) AS n, COALESCE(MAX(last_rseq), 0) "
                          "AS top FROM record_runs WHERE escort_id = :escort AND seal_id = :seal", args)[0]
        return int(single["n"]) + int(runs["n"]), max(int(single["top"]), int(runs["top"]))

    def escort_events(self, escort_id: int, *, kinds: Sequence[str] = (), exclude: Sequence[str] = (),
                      after: int = 0, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        args = _Args()
        where = [f"escort_id = {args.add(escort_id)}", f"outbox_id > {args.add(after)}"]
        if kinds:
            where.append(f"kind IN {args.many(kinds)}")
        if exclude:
            where.append(f"kind NOT IN {args.many(exclude)}")
        rows = self._read(f"SELECT outbox_id, body FROM events WHERE {' AND '.join(where)} "
                          f"ORDER BY outbox_id LIMIT {args.add(limit)}", args.values)
        return [(r["outbox_id"], json.loads(r["body"])) for r in rows]

    def alarm_feed(self, kinds: Sequence[str], *, offices: Sequence[str] | None = None,
                   before: int | None = None, after: int = 0, limit: int = 50) -> list[tuple[int, dict[str, Any]]]:
        if not kinds:
            return []
        args = _Args()
        where = [f"v.kind IN {args.many(kinds)}", f"v.outbox_id > {args.add(after)}"]
        if before is not None:
            where.append(f"v.outbox_id < {args.add(before)}")
        join = ""
        if offices is not None:
            join = " JOIN escorts e ON e.escort_id = v.escort_id"
            where.append(_in_offices(args, offices))
        rows = self._read(f"SELECT v.outbox_id, v.body FROM events v{join} WHERE {' AND '.join(where)} "
                          f"ORDER BY v.outbox_id DESC LIMIT {args.add(limit)}", args.values)
        return [(r["outbox_id"], json.loads(r["body"])) for r in rows]

    def alarm_acks(self, *, event_ids: Sequence[str] | None = None, offices: Sequence[str] | None = None,
                   after_ack_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        args = _Args()
        where = [f"a.ack_id > {args.add(after_ack_id)}"]
        if event_ids is not None:
            where.append(f"a.event_id IN {args.many(list(event_ids))}")
        join = ""
        if offices is not None:
            join = " JOIN escorts e ON e.escort_id = a.escort_id"
            where.append(_in_offices(args, offices))
        return self._read(f"SELECT a.* FROM alarm_acks a{join} WHERE {' AND '.join(where)} "
                          f"ORDER BY a.ack_id LIMIT {args.add(limit)}", args.values)

    def alarm_ack_head(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(ack_id), 0) AS head FROM alarm_acks")[0]["head"])

    def seal_rows(self, *, offices: Sequence[str] | None = None, after: int = 0,
                  limit: int = 100) -> list[dict[str, Any]]:
        from .interface import OPEN_ESCORT_STATUSES

        args = _Args()
        open_marks = args.many(OPEN_ESCORT_STATUSES)
        where = [f"s.seal_id > {args.add(after)}"]
        if offices is not None:
            where.append(_in_offices(args, offices))
        return self._read(
            "SELECT s.seal_id, s.provisioned_at, s.last_seen_at, s.last_source, s.last_boot, s.committed_rseq, "
            "s.last_fix_time, s.last_lat, s.last_lon, s.last_cable_intact, s.last_housing_closed, "
            "s.last_battery_pct, s.last_state, s.last_hello, e.escort_id, e.status AS escort_status, "
            "e.declaration, e.vehicle, e.departure_office_code, e.dest_office_code FROM seals s "
            "LEFT JOIN escorts e ON e.escort_id = (SELECT MAX(x.escort_id) FROM escorts x "
            f"WHERE x.seal_id = s.seal_id AND x.status IN {open_marks}) "
            f"WHERE {' AND '.join(where)} ORDER BY s.seal_id LIMIT {args.add(limit)}", args.values)


class SqliteConsoleTx(ConsoleTx):
    _c: sqlite3.Connection

    def _one(self, sql: str, args: Any = ()) -> dict[str, Any] | None:  # provided by the store tx
        raise NotImplementedError

    def event_in_scope(self, event_id: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT v.event_id, v.kind, v.seal_id, v.escort_id, v.outbox_id, v.body, e.departure_office_code, "
            "e.dest_office_code FROM events v LEFT JOIN escorts e ON e.escort_id = v.escort_id "
            "WHERE v.event_id = ?", (event_id,))

    def insert_alarm_ack(self, row: dict[str, Any]) -> int | None:
        cols = list(row)
        cur = self._c.execute(f"INSERT OR IGNORE INTO alarm_acks ({', '.join(cols)}) "
                              f"VALUES ({', '.join(':' + c for c in cols)})", row)
        return int(cur.lastrowid) if cur.rowcount else None
