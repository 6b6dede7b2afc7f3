"""One SQLite transaction: `StoreTx` (gateway/store/interface.py) on a connection inside BEGIN/COMMIT.

`SqliteStore.transaction()` (gateway/store/sqlite.py) opens the transaction and hands out a
`SqliteTx`; every read and write of one unit of work goes through it.

Past 400 lines on purpose: it is the SQL of both engines' transactions (decision 0015), one method
per StoreTx operation; what a batch reads once per seal (`prefetch`) lives in batch_rows.py and
only its hooks are here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from typing import Any, Collection, Iterable, Iterator, Sequence

from navseal.protocol.schema import MAX_RECORDS_PER_BATCH

from . import batch_rows
from .access import NO_LIMIT, SqliteAccessTx
from .sqlite_console import SqliteConsoleTx
from .interface import ESCORT_DEACTIVATED, OPEN_ESCORT_STATUSES, BatchFailed, StoreError, StoreTx
from .seal_key_codec import KeyCodec
from .wire_fixes import RECORD_COLUMNS, RECORD_SIZE

log = logging.getLogger("navseal.gateway.store")

_SEAL_COLUMNS = {
    "last_seen_at", "last_source", "last_boot", "last_seq", "committed_rseq", "downlink_seq",
    "last_fix_time", "last_lat", "last_lon", "last_cable_intact", "last_housing_closed",
    "last_battery_pct", "last_state", "last_hello", "rejecting",
}
_ESCORT_COLUMNS = {
    "status", "confirmed_at", "activated_at", "failed_at", "failure_reason",
    "deactivation_requested_at", "deactivated_at", "clean", "rule_state", "deactivation_requested_by",
    "high_risk", "expired_at",
}
_OPEN_MARKS = ", ".join("?" for _ in OPEN_ESCORT_STATUSES)
_COMMAND_COLUMNS = {
    "status", "attempts", "next_attempt_at", "sent_at", "boot", "seq", "sent_seqs", "result",
    "result_at", "error",
}
_INSERT_RECORD = (
    f"INSERT OR IGNORE INTO records ({', '.join(RECORD_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in RECORD_COLUMNS)})"
)
# A run holds at most one frame's records (run_params): runs overlapping [lo, hi] start at or after
# this many before `lo`, which keeps the overlap search a range of the (seal_id, first_rseq) key,
# however long [lo, hi] is.
_MAX_RUN = MAX_RECORDS_PER_BATCH
# The seal's records with rseq in [:lo, :hi]: single rows (events, fixes stored before runs
# existed) as (rseq, rseq), and the runs that meet the range as (first, last). batch_rows.read
# asks the same for every seal of a batch at once.
_RSEQ_SPANS = (
    "SELECT rseq, rseq FROM records WHERE seal_id = :seal AND rseq BETWEEN :lo AND :hi "
    "UNION ALL SELECT first_rseq, last_rseq FROM record_runs WHERE seal_id = :seal "
    "AND first_rseq BETWEEN :lo - :max_run + 1 AND :hi AND last_rseq >= :lo"
)


INSERT_UPLINK = ("INSERT INTO uplinks (seal_id, boot, seq, type, crc, received_at, source, escort_id, ack_rseq) "
                 "VALUES (:seal_id, :boot, :seq, :type, :crc, :received_at, :source, :escort_id, :ack_rseq)")
INSERT_RUN = ("INSERT INTO record_runs (seal_id, first_rseq, last_rseq, escort_id, base_time, body, received_at) "
              "VALUES (?, ?, ?, ?, ?, ?, ?)")


def update_seal_sql(columns: Sequence[str]) -> str:
    """The UPDATE of these columns of one seal (named parameters; `:_id` the seal); StoreError for
    a column an update may not set."""
    return f"UPDATE seals SET {_set_clause(columns, _SEAL_COLUMNS, 'seal')} WHERE seal_id = :_id"


def run_params(seal_id: int, escort_id: int | None, first_rseq: int, base_time: int, body: bytes,
               received_at: float) -> tuple[Any, ...]:
    """INSERT_RUN's parameters for a run of records (StoreTx.insert_fix_run), checked."""
    count = len(body) // RECORD_SIZE
    if not count or len(body) != count * RECORD_SIZE or count > _MAX_RUN:
        raise StoreError(f"seal {seal_id}: a run of {len(body)} bytes is not 1..{_MAX_RUN} records")
    return (seal_id, first_rseq, first_rseq + count - 1, escort_id, base_time, body, received_at)


def is_store_failure(exc: BaseException) -> bool:
    """An SQLite error that says the store cannot work (full, I/O, locked, damaged), as opposed to
    one caused by the data (a constraint)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError, sqlite3.NotSupportedError))


def _dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


def _set_clause(columns: Collection[str], allowed: set[str], what: str) -> str:
    unknown = set(columns) - allowed
    if unknown:
        raise StoreError(f"{what}: cannot update {sorted(unknown)}")
    return ", ".join(f"{c} = :{c}" for c in columns)


def _office_clause(offices: Sequence[str], args: dict[str, Any]) -> str:
    names = []
    for i, code in enumerate(offices):
        args[f"_office{i}"] = code
        names.append(f":_office{i}")
    if not names:
        return "FALSE"
    marks = ", ".join(names)
    return f"(departure_office_code IN ({marks}) OR dest_office_code IN ({marks}))"


class SqliteTx(SqliteAccessTx, SqliteConsoleTx, StoreTx):
    # Appended to a read whose rows the transaction must own until it ends. SQLite: nothing, BEGIN
    # IMMEDIATE holds the whole database; PostgreSQL's transaction (postgres.py) locks the rows.
    _row_lock = ""

    def __init__(self, conn: sqlite3.Connection, keys: KeyCodec | None = None) -> None:
        self._c = conn
        self._keys = keys or KeyCodec()
        self._sp = 0
        self._batch: batch_rows.BatchRows | None = None  # set by prefetch

    def prefetch(self, seal_ids: Iterable[int], rseqs: dict[int, tuple[int, int]] | None = None) -> None:
        ids = sorted(set(seal_ids) | set(rseqs or ()))
        if ids:
            self._batch = batch_rows.read(self._c, ids, self._ids_in, self._row_lock, rseqs or {},
                                          self._ranges, _MAX_RUN)

    @staticmethod
    def _ids_in(ids: Sequence[int]) -> tuple[str, list[Any]]:
        return f"IN ({', '.join('?' for _ in ids)})", list(ids)

    @staticmethod
    def _ranges(triples: list[tuple[int, int, int]]) -> tuple[str, list[Any]]:
        return "VALUES " + ", ".join("(?, ?, ?)" for _ in triples), [v for t in triples for v in t]

    def _one(self, sql: str, args: Any = ()) -> dict[str, Any] | None:
        return _dict(self._c.execute(sql, args).fetchone())

    def _all(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._c.execute(sql, args).fetchall()]

    # seals
    def put_seal_key(self, seal_id: int, key: bytes, now: float) -> bool:
        if not (0 < seal_id <= 0xFFFFFFFF):
            raise StoreError(f"seal id {seal_id} out of range 1..4294967295")
        if len(key) != 32:
            raise StoreError(f"seal {seal_id}: key must be 32 bytes, got {len(key)}")
        stored = self._keys.encode(seal_id, bytes(key))
        if self._batch is not None:
            self._batch.seal_written(seal_id)
        cur = self._c.execute("UPDATE seals SET key = ? WHERE seal_id = ?", (stored, seal_id))
        if cur.rowcount:
            return True
        self._c.execute("INSERT INTO seals (seal_id, key, provisioned_at) VALUES (?, ?, ?)", (seal_id, stored, now))
        return False

    def seal_ids(self) -> list[int]:
        return [r[0] for r in self._c.execute("SELECT seal_id FROM seals ORDER BY seal_id").fetchall()]

    def rejecting_seal_ids(self) -> list[int]:
        return [r[0] for r in self._c.execute("SELECT seal_id FROM seals WHERE rejecting IS NOT NULL").fetchall()]

    def get_seal(self, seal_id: int) -> dict[str, Any] | None:
        if self._batch is not None and seal_id in self._batch.seals:
            held = self._batch.seals[seal_id]
            return dict(held) if held is not None else None
        row = self._one(f"SELECT * FROM seals WHERE seal_id = ?{self._row_lock}", (seal_id,))
        if row is not None:
            row.pop("key")  # keys leave the store only through seal_key / head_commands, decrypted
        return row

    def update_seal(self, seal_id: int, **columns: Any) -> None:
        if columns:
            self._c.execute(update_seal_sql(list(columns)), {**columns, "_id": seal_id})
            if self._batch is not None:
                self._batch.seal_updated(seal_id, columns)

    def update_seal_next_seq(self, seal_id: int, **columns: Any) -> int:
        sets = _set_clause(columns, _SEAL_COLUMNS, "seal") + ", " if columns else ""
        if "downlink_seq" in columns:
            raise StoreError("seal: update_seal_next_seq allocates downlink_seq itself")
        held = self._batch.seals.get(seal_id) if self._batch is not None else None
        if held is not None:  # the row is this transaction's: its next seq is known, no read
            seq = int(held["downlink_seq"]) + 1
            self.update_seal(seal_id, **columns, downlink_seq=seq)
            return seq
        row = self._c.execute(
            f"UPDATE seals SET {sets}downlink_seq = downlink_seq + 1 WHERE seal_id = :_id RETURNING downlink_seq",
            {**columns, "_id": seal_id},
        ).fetchone()
        if row is None:
            raise StoreError(f"seal {seal_id} is not provisioned")
        return int(row[0])

    def next_downlink_seq(self, seal_id: int) -> int:
        if self._batch is not None and self._batch.seals.get(seal_id) is not None:
            return self.update_seal_next_seq(seal_id)
        row = self._c.execute(
            "UPDATE seals SET downlink_seq = downlink_seq + 1 WHERE seal_id = ? RETURNING downlink_seq",
            (seal_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"seal {seal_id} is not provisioned")
        return int(row[0])

    # uplinks
    def get_uplink(self, seal_id: int, boot: int, seq: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM uplinks WHERE seal_id = ? AND boot = ? AND seq = ?", (seal_id, boot, seq))

    def insert_uplink(self, row: dict[str, Any]) -> None:
        self._c.execute(INSERT_UPLINK, row)

    # escorts
    def get_escort(self, escort_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM escorts WHERE escort_id = ?", (escort_id,))

    def open_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None:
        if self._batch is not None and seal_id in self._batch.open_escort:
            held = self._batch.open_escort[seal_id]
            return dict(held) if held is not None else None
        return self._one(
            f"SELECT * FROM escorts WHERE seal_id = ? AND status IN ({_OPEN_MARKS}) ORDER BY escort_id DESC LIMIT 1",
            (seal_id, *OPEN_ESCORT_STATUSES),
        )

    def latest_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None:
        if self._batch is not None and seal_id in self._batch.latest_escort:
            held = self._batch.latest_escort[seal_id]
            return dict(held) if held is not None else None
        return self._one("SELECT * FROM escorts WHERE seal_id = ? ORDER BY escort_id DESC LIMIT 1", (seal_id,))

    def insert_escort(self, row: dict[str, Any]) -> int:
        cols = list(row)
        if self._batch is not None:
            self._batch.escort_written(row.get("seal_id"))
        cur = self._c.execute(
            f"INSERT INTO escorts ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row
        )
        return int(cur.lastrowid or 0)

    def update_escort(self, escort_id: int, **columns: Any) -> None:
        if columns:
            sql = f"UPDATE escorts SET {_set_clause(columns, _ESCORT_COLUMNS, 'escort')} WHERE escort_id = :_id"
            self._c.execute(sql, {**columns, "_id": escort_id})
            if self._batch is not None:
                self._batch.escort_updated(escort_id, columns)

    def find_escorts(self, *, offices: Sequence[str] | None = None, after_id: int = 0, limit: int | None = None,
                     **where: Any) -> list[dict[str, Any]]:
        allowed = {"escort_id", "seal_id", "declaration", "vehicle", "status"}
        unknown = set(where) - allowed
        if unknown:
            raise StoreError(f"cannot search escorts by {sorted(unknown)}")
        parts = [f"{k} = :{k}" for k, v in where.items() if v is not None]
        args = dict(where)
        if offices is not None:
            parts.append(_office_clause(offices, args))
        return self._page(" AND ".join(parts) or "TRUE", args, after_id, limit)

    def escorts_with_status(self, statuses: Sequence[str], *, offices: Sequence[str] | None = None,
                            after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        args: dict[str, Any] = {f"s{i}": s for i, s in enumerate(statuses)}
        clause = f"status IN ({', '.join(':' + k for k in args)})"
        if offices is not None:
            clause += " AND " + _office_clause(offices, args)
        return self._page(clause, args, after_id, limit)

    def _page(self, clause: str, args: dict[str, Any], after_id: int, limit: int | None) -> list[dict[str, Any]]:
        """Escorts matching `clause`, by escort_id after `after_id`, at most `limit` (None: all)."""
        args = {**args, "_after": after_id, "_limit": NO_LIMIT if limit is None else limit}
        return self._all(f"SELECT * FROM escorts WHERE ({clause}) AND escort_id > :_after "
                         f"ORDER BY escort_id LIMIT :_limit", args)

    def escorts_with_seal(self, statuses: Sequence[str]) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in statuses)
        return self._all(
            f"SELECT e.*, s.last_seen_at AS seal_last_seen_at FROM escorts e JOIN seals s USING (seal_id) "
            f"WHERE e.status IN ({marks}) ORDER BY e.escort_id", tuple(statuses))

    def lock_escort(self, escort_id: int) -> dict[str, Any] | None:
        return self._one(
            "SELECT e.*, s.last_seen_at AS seal_last_seen_at FROM escorts e JOIN seals s USING (seal_id) "
            f"WHERE e.escort_id = ?{self._row_lock + ' OF s' if self._row_lock else ''}", (escort_id,))

    # records
    def existing_rseqs(self, seal_id: int, first: int, last: int) -> set[int]:
        out: set[int] = set()
        for lo, hi in self._rseq_spans(seal_id, first, last):
            out.update(range(max(lo, first), min(hi, last) + 1))
        return out

    def count_rseqs(self, seal_id: int, first: int, last: int) -> int:
        return sum(min(hi, last) - max(lo, first) + 1 for lo, hi in self._rseq_spans(seal_id, first, last))

    def _rseq_spans(self, seal_id: int, first: int, last: int) -> list[tuple[int, int]]:
        if first > last:
            return []
        held = self._batch.rseq_spans(seal_id, first, last) if self._batch is not None else None
        if held is not None:
            return held
        return self._c.execute(_RSEQ_SPANS, {"seal": seal_id, "lo": first, "hi": last, "max_run": _MAX_RUN}).fetchall()

    def insert_records(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self._c.executemany(_INSERT_RECORD, rows)
            if self._batch is not None:
                for row in rows:
                    self._batch.records_written(row["seal_id"], row["rseq"], row["rseq"])

    def insert_fix_run(self, seal_id: int, escort_id: int | None, first_rseq: int, base_time: int,
                       body: bytes, received_at: float) -> None:
        params = run_params(seal_id, escort_id, first_rseq, base_time, body, received_at)
        self._c.execute(INSERT_RUN, params)
        if self._batch is not None:
            self._batch.records_written(seal_id, first_rseq, params[2])

    # events
    def insert_events(self, events: Sequence[dict[str, Any]], escort_ids: Sequence[int | None],
                      now: float) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        for event, escort_id in zip(events, escort_ids):
            if self._c.execute("SELECT 1 FROM events WHERE event_id = ?", (event["event_id"],)).fetchone():
                continue  # the same fact derived again: already stored and queued once
            cur = self._c.execute(
                "INSERT INTO outbox (event_id, seal_id, created_at) VALUES (?, ?, ?)",
                (event["event_id"], event["seal_id"], now),
            )
            self._c.execute(
                "INSERT INTO events (event_id, outbox_id, kind, seal_id, escort_id, occurred_at, emitted_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (event["event_id"], cur.lastrowid, event["kind"], event["seal_id"], escort_id,
                 event.get("occurred_at"), event["emitted_at"],
                 json.dumps(event, separators=(",", ":"), ensure_ascii=False)),
            )
            new.append(event)
        return new

    # commands
    def insert_command(self, row: dict[str, Any]) -> int:
        cols = list(row)
        if self._batch is not None:
            self._batch.command_written(row.get("seal_id"))
        cur = self._c.execute(
            f"INSERT INTO commands ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row
        )
        return int(cur.lastrowid or 0)

    def update_command(self, command_id: int, **columns: Any) -> None:
        if columns:
            sql = f"UPDATE commands SET {_set_clause(columns, _COMMAND_COLUMNS, 'command')} WHERE command_id = :_id"
            self._c.execute(sql, {**columns, "_id": command_id})
            if self._batch is not None:
                seal_id = self._batch.command_seal(command_id)
                if seal_id is not None or "status" in columns:  # unknown and closed: stays closed
                    self._batch.command_written(seal_id)

    def open_commands(self, seal_id: int | None = None) -> list[dict[str, Any]]:
        if self._batch is not None and seal_id in self._batch.commands:
            return [dict(r) for r in self._batch.commands[seal_id]]
        if seal_id is None:
            return self._all("SELECT * FROM commands WHERE status IN ('queued', 'sent') ORDER BY command_id")
        return self._all(
            "SELECT * FROM commands WHERE seal_id = ? AND status IN ('queued', 'sent') ORDER BY command_id",
            (seal_id,),
        )

    def commands_for_escort(self, escort_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM commands WHERE escort_id = ? ORDER BY command_id", (escort_id,))

    def head_commands(self) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT c.*, s.last_seen_at AS seal_last_seen_at, s.key AS seal_key FROM commands c "
            "JOIN seals s USING (seal_id) WHERE c.command_id IN ("
            "  SELECT MIN(command_id) FROM commands WHERE status IN ('queued', 'sent') GROUP BY seal_id) "
            "ORDER BY c.command_id")
        out = []
        for row in rows:
            try:
                row["seal_key"] = self._keys.decode(row["seal_id"], row["seal_key"])
            except StoreError as exc:  # one unreadable key must not stop every seal's commands
                log.error("command for seal %s not sent: %s", row["seal_id"], exc)
                continue
            out.append(row)
        return out

    # retention
    def deactivated_escorts(self) -> list[dict[str, Any]]:
        return self._all("SELECT escort_id, deactivated_at FROM escorts WHERE status = ? "
                         "AND deactivated_at IS NOT NULL ORDER BY escort_id", (ESCORT_DEACTIVATED,))

    def ended_escorts(self) -> list[dict[str, Any]]:
        return self._all("SELECT escort_id, COALESCE(deactivated_at, expired_at) AS ended_at FROM escorts "
                         "WHERE deactivated_at IS NOT NULL OR expired_at IS NOT NULL ORDER BY escort_id")

    def escorts_to_expire(self, open_ended_before: float, failed_before: float) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in OPEN_ESCORT_STATUSES)
        return self._all(
            f"SELECT * FROM escorts WHERE deactivated_at IS NULL AND expired_at IS NULL AND "
            f"((status IN ({marks}) AND period_end < ?) OR (status = 'failed' AND failed_at < ?)) ORDER BY escort_id",
            (*OPEN_ESCORT_STATUSES, open_ended_before, failed_before))

    def delete_unescorted(self, received_before: float, limit: int,
                          after: Any = None) -> tuple[dict[str, int], Any]:
        if self._batch is not None:
            self._batch.rseqs.clear()  # records go
        # A keyset walk over records_escort / uplinks_escort / record_runs_escort at escort_id IS
        # NULL, in key order: each row outside escorts is looked at once per purge, whatever its age.
        # `records` counts records, a run's as many as it holds.
        deleted = {"records": 0, "uplinks": 0}
        # (table, its key, what it counts toward, how much a row counts)
        walks = (("records", ("seal_id", "rseq"), "records", "1"),
                 ("uplinks", ("seal_id", "boot", "seq"), "uplinks", "1"),
                 ("record_runs", ("seal_id", "first_rseq"), "records", "last_rseq - first_rseq + 1"))
        position: list[Any] = list(after or ())
        position += [None] * (len(walks) - len(position))
        for i, (table, key, counts_as, amount) in enumerate(walks):
            start = position[i]
            if start == "done":
                continue
            cols = ", ".join(key)
            where = f"escort_id IS NULL AND ({cols}) > ({', '.join('?' for _ in key)})" if start else "escort_id IS NULL"
            rows = self._c.execute(f"SELECT {cols}, received_at, {amount} FROM {table} WHERE {where} "
                                   f"ORDER BY {cols} LIMIT ?", (*(start or ()), limit)).fetchall()
            old = [r for r in rows if r[len(key)] < received_before]
            if old:
                self._c.executemany(f"DELETE FROM {table} WHERE {' AND '.join(k + ' = ?' for k in key)}",
                                    [tuple(r[:len(key)]) for r in old])
            deleted[counts_as] += sum(r[len(key) + 1] for r in old)
            position[i] = tuple(rows[-1][:len(key)]) if len(rows) == limit else "done"
        return deleted, (None if all(p == "done" for p in position) else tuple(position))

    def get_dead_letter(self, dead_letter_id: int) -> dict[str, Any] | None:
        return _dict(self._c.execute("SELECT * FROM dead_letters WHERE dead_letter_id = ?",
                                     (dead_letter_id,)).fetchone())

    def request_dead_letter_replay(self, dead_letter_id: int, now: float) -> dict[str, Any] | None:
        self._c.execute("UPDATE dead_letters SET status = 'replay', replay_requested_at = ? WHERE dead_letter_id = ?",
                        (now, dead_letter_id))
        return _dict(self._c.execute("SELECT * FROM dead_letters WHERE dead_letter_id = ?",
                                     (dead_letter_id,)).fetchone())

    def delete_escort(self, escort_id: int) -> dict[str, int]:
        c = self._c
        if self._batch is not None:
            self._batch.escort_written(None)
            self._batch.command_written(None)
            self._batch.rseqs.clear()  # its records go
        deleted = {"dead_letters": c.execute(
            "DELETE FROM dead_letters WHERE event_id IN (SELECT event_id FROM events WHERE escort_id = ?)",
            (escort_id,)).rowcount}
        deleted["outbox"] = c.execute(
            "DELETE FROM outbox WHERE event_id IN (SELECT event_id FROM events WHERE escort_id = ?)",
            (escort_id,)).rowcount
        deleted["records"] = int(c.execute(
            "SELECT COALESCE(SUM(last_rseq - first_rseq + 1), 0) FROM record_runs WHERE escort_id = ?",
            (escort_id,)).fetchone()[0])
        c.execute("DELETE FROM record_runs WHERE escort_id = ?", (escort_id,))
        for table in ("alarm_acks", "events", "records", "uplinks", "commands", "escorts"):  # children first
            deleted[table] = deleted.get(table, 0) + c.execute(
                f"DELETE FROM {table} WHERE escort_id = ?", (escort_id,)).rowcount
        return deleted

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._sp += 1
        name = f"sp{self._sp}"
        self._c.execute(f"SAVEPOINT {name}")
        held = self._batch.save() if self._batch is not None else None
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, BatchFailed):
                raise  # the whole transaction is lost, its savepoints with it
            if self._batch is not None and held is not None:
                self._batch.restore(held)  # what the rolled back writes changed
            if not self._c.in_transaction:  # SQLite rolled the whole transaction back (disk full, I/O)
                raise StoreError(str(exc)) from exc
            try:
                self._c.execute(f"ROLLBACK TO {name}")
                self._c.execute(f"RELEASE {name}")
            except sqlite3.Error as undo:
                raise StoreError(f"savepoint rollback: {undo}") from exc
            if is_store_failure(exc):
                # The store failed (disk full, I/O error, damaged page), not this unit of work:
                # StoreError, so the caller treats the whole transaction as not committed.
                raise StoreError(str(exc)) from exc
            raise
        else:
            self._c.execute(f"RELEASE {name}")
