"""Gateway storage: the interface the pipeline needs, and its SQLite implementation.

Everything the gateway knows lives here: seals (keys, replay window, downlink counter, last fix),
escorts (clause 8 data, status, timestamps, rule state), records (the track and the seal's journal
events, unique per (seal, rseq)), accepted uplink frames (for exact-duplicate re-ACKs), events (the
operator JSON, unique by event_id), the outbox (one row per event; each sink keeps its own durable
cursor) and commands (ACTIVATE/DEACTIVATE/... with their downlink (boot, seq) and status).

Transactions: the pipeline opens `store.transaction()` and does all the reads and writes of one
frame (or one batch of frames, one savepoint each) inside it; the ACK is built from what was
committed and released only after `transaction()` exits without error.

Thread-safety rule: one `SqliteStore` object holds ONE connection guarded by ONE lock; every public
method and every transaction takes the lock, so any thread may call it (a transaction blocks the
others until it ends). Several `SqliteStore` objects (threads or processes) may open the same file:
WAL mode lets readers run beside the one writer, and `busy_timeout` makes a second writer wait
rather than fail. Migrations run under `BEGIN IMMEDIATE`, so opening the file twice is safe.

A PostgreSQL implementation would implement `Store` (and `StoreTx`) with the same SQL shapes:
nothing outside this module writes SQL.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import json
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

# Escort status values, in lifecycle order. "Monitored" ones are those the rules watch.
ESCORT_REQUESTED = "requested"  # ACTIVATE queued/sent, seal has not confirmed yet
ESCORT_ARMED = "armed"  # seal answered OK; waiting for its first fix with the lock intact
ESCORT_ACTIVE = "active"  # ACTIVATED emitted
ESCORT_DEACTIVATION_REQUESTED = "deactivation_requested"
ESCORT_DEACTIVATED = "deactivated"
ESCORT_FAILED = "failed"  # ACTIVATION_FAILED emitted; no tracking
OPEN_ESCORT_STATUSES = (ESCORT_REQUESTED, ESCORT_ARMED, ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED)
MONITORED_STATUSES = (ESCORT_ARMED, ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED)

# Command status values.
CMD_QUEUED = "queued"
CMD_SENT = "sent"
CMD_ACKED = "acked"
CMD_FAILED = "failed"
CMD_CANCELLED = "cancelled"
OPEN_COMMAND_STATUSES = (CMD_QUEUED, CMD_SENT)

# Record kinds: a position fix, or one of the seal's journal event codes (protocol EVENT names).
RECORD_FIX = "FIX"


class StoreError(Exception):
    """The store could not do what was asked (I/O, constraint); the caller must not ACK."""


@dataclass
class OutboxItem:
    outbox_id: int
    event: dict[str, Any]


@dataclass
class PurgeReport:
    escorts: int = 0
    records: int = 0
    events: int = 0
    outbox: int = 0
    commands: int = 0
    uplinks: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------------


class StoreTx(abc.ABC):
    """What the pipeline does inside one transaction. Rows are plain dicts keyed by column."""

    # seals
    @abc.abstractmethod
    def get_seal(self, seal_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def update_seal(self, seal_id: int, **columns: Any) -> None: ...

    @abc.abstractmethod
    def next_downlink_seq(self, seal_id: int) -> int:
        """Allocate the next downlink `seq` for this seal (persisted, strictly increasing)."""

    def update_seal_next_seq(self, seal_id: int, **columns: Any) -> int:
        """update_seal, then next_downlink_seq (one statement where the store can: once per frame)."""
        self.update_seal(seal_id, **columns)
        return self.next_downlink_seq(seal_id)

    # uplink frames
    @abc.abstractmethod
    def get_uplink(self, seal_id: int, boot: int, seq: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def insert_uplink(self, row: dict[str, Any]) -> None: ...

    # escorts
    @abc.abstractmethod
    def get_escort(self, escort_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def open_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None:
        """The seal's escort that is not finished (requested/armed/active/deactivation_requested)."""

    @abc.abstractmethod
    def latest_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def insert_escort(self, row: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    def update_escort(self, escort_id: int, **columns: Any) -> None: ...

    @abc.abstractmethod
    def find_escorts(self, **where: Any) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def escorts_with_status(self, statuses: Sequence[str]) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def escorts_with_seal(self, statuses: Sequence[str]) -> list[dict[str, Any]]:
        """Escorts in these statuses, each with its seal's `seal_last_seen_at` (one query: timers)."""

    # records
    @abc.abstractmethod
    def existing_rseqs(self, seal_id: int, first: int, last: int) -> set[int]: ...

    @abc.abstractmethod
    def insert_records(self, rows: Sequence[dict[str, Any]]) -> None: ...

    def insert_wire_fixes(self, seal_id: int, escort_id: int | None, first_rseq: int, base_time: int,
                          fields: Sequence[int], received_at: float) -> int:
        """Store a RECORDS batch given as its wire fields: `fields` holds, per record and in wire
        order, the 8 values of a PositionRecord as `struct` unpacks them (WIRE_FIX_FORMAT); record i
        is rseq `first_rseq + i`. Records already stored (same seal and rseq) are left as they are.
        Returns how many were stored. (The hot path: SQLite decodes the bit fields itself.)"""
        rows = [dict(r, seal_id=seal_id, escort_id=escort_id, received_at=received_at)
                for r in wire_fix_rows(first_rseq, base_time, fields)]
        if rows:
            existing = self.existing_rseqs(seal_id, rows[0]["rseq"], rows[-1]["rseq"])
            rows = [r for r in rows if r["rseq"] not in existing]
            self.insert_records(rows)
        return len(rows)

    # events + outbox
    @abc.abstractmethod
    def insert_events(self, events: Sequence[dict[str, Any]], escort_ids: Sequence[int | None],
                      now: float) -> list[dict[str, Any]]:
        """Insert events not yet stored (by event_id) and one outbox row each; return the new ones."""

    # commands
    @abc.abstractmethod
    def insert_command(self, row: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    def update_command(self, command_id: int, **columns: Any) -> None: ...

    @abc.abstractmethod
    def open_commands(self, seal_id: int | None = None) -> list[dict[str, Any]]:
        """Queued or sent commands, oldest first (all seals when seal_id is None)."""

    @abc.abstractmethod
    def commands_for_escort(self, escort_id: int) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def head_commands(self) -> list[dict[str, Any]]:
        """Per seal, its oldest open command, with `seal_last_seen_at` and `seal_key` (timers)."""

    @abc.abstractmethod
    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        """Nested unit: rolled back alone if the block raises (one frame of a batch)."""


class Store(abc.ABC):
    """Storage interface; `SqliteStore` implements it. Every method is thread-safe."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[StoreTx]:
        """One atomic, durable unit: commits on normal exit, rolls back if the block raises."""

    # keys
    @abc.abstractmethod
    def provision_seal(self, seal_id: int, key: bytes, now: float) -> None:
        """Create the seal or replace its key (keeps its history and counters)."""

    @abc.abstractmethod
    def seal_key(self, seal_id: int) -> bytes | None: ...

    # outbox (GW2's worker; see docs/team/GW2-needs.md)
    @abc.abstractmethod
    def outbox_fetch(self, sink: str, limit: int = 100) -> list[OutboxItem]:
        """Events after this sink's cursor, oldest first (so per-seal order is kept)."""

    @abc.abstractmethod
    def outbox_mark_delivered(self, sink: str, upto_outbox_id: int, now: float | None = None) -> None:
        """Advance the sink's durable cursor to `upto_outbox_id` (never backwards)."""

    @abc.abstractmethod
    def outbox_note_failure(self, sink: str, error: str, next_attempt_at: float, now: float) -> None:
        """Record a failed delivery attempt at the cursor (attempts, next_attempt_at, last_error)."""

    @abc.abstractmethod
    def outbox_depth(self, sink: str) -> int: ...

    @abc.abstractmethod
    def outbox_status(self) -> dict[str, dict[str, Any]]:
        """Per known sink: cursor, depth, attempts, next_attempt_at, last_error."""

    # reading
    @abc.abstractmethod
    def events(self, *, seal_id: int | None = None, escort_id: int | None = None,
               kind: str | None = None, after_outbox_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def records(self, seal_id: int, *, escort_id: int | None = None, limit: int = 100_000) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests, status and metrics)."""

    # retention
    @abc.abstractmethod
    def purge(self, now: float, *, retention_years: int = 5, utc_offset_h: float = 5.0) -> PurgeReport:
        """Delete the data of escorts whose retention ended (clause 18.3), and nothing else."""

    @abc.abstractmethod
    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Retention date arithmetic (clause 18.3)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------

# Numbered migrations: index i brings the schema from version i to i+1. Never edit a released one.
MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE seals (
        seal_id INTEGER PRIMARY KEY,
        key BLOB NOT NULL,
        provisioned_at REAL NOT NULL,
        last_seen_at REAL,
        last_source TEXT,
        last_boot INTEGER,            -- uplink replay window: last accepted (boot, seq)
        last_seq INTEGER,
        committed_rseq INTEGER,       -- highest journal rseq stored
        downlink_seq INTEGER NOT NULL DEFAULT 0,  -- last downlink seq used (ACKs and commands)
        last_fix_time INTEGER,        -- last known position (seal clock) and lock/battery
        last_lat INTEGER,
        last_lon INTEGER,
        last_cable_intact INTEGER,
        last_housing_closed INTEGER,
        last_battery_pct INTEGER,
        last_state TEXT,              -- JSON of the last STATE payload
        last_hello TEXT               -- JSON of the last HELLO payload
    );

    CREATE TABLE escorts (
        escort_id INTEGER PRIMARY KEY AUTOINCREMENT,
        seal_id INTEGER NOT NULL REFERENCES seals(seal_id),
        declaration TEXT NOT NULL,
        vehicle TEXT NOT NULL,
        departure_office_code TEXT NOT NULL,
        departure_office_name TEXT NOT NULL,
        dest_office_code TEXT NOT NULL,
        dest_office_name TEXT NOT NULL,
        period_start REAL NOT NULL,
        period_end REAL NOT NULL,
        route TEXT,                   -- JSON [[lat_deg, lon_deg], ...] or NULL
        corridor_m INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        requested_at REAL NOT NULL,
        confirmed_at REAL,
        activated_at REAL,
        failed_at REAL,
        failure_reason TEXT,
        deactivation_requested_at REAL,
        deactivated_at REAL,
        clean INTEGER,                -- NULL until deactivated, then 1/0
        rule_state TEXT NOT NULL DEFAULT '{}'  -- JSON: the rules' memory (flags, hysteresis)
    );
    CREATE INDEX escorts_seal ON escorts(seal_id, status);
    CREATE INDEX escorts_declaration ON escorts(declaration);
    CREATE INDEX escorts_vehicle ON escorts(vehicle);
    CREATE INDEX escorts_status ON escorts(status);
    CREATE INDEX escorts_deactivated ON escorts(deactivated_at) WHERE deactivated_at IS NOT NULL;

    CREATE TABLE records (
        seal_id INTEGER NOT NULL REFERENCES seals(seal_id),
        rseq INTEGER NOT NULL,
        escort_id INTEGER REFERENCES escorts(escort_id),
        kind TEXT NOT NULL,           -- 'FIX' or the seal's EVENT code name
        time INTEGER NOT NULL,        -- seal clock, Unix s
        lat INTEGER, lon INTEGER,     -- 1e-7 degree, NULL when unknown
        speed INTEGER, course INTEGER, fix_quality INTEGER, satellites INTEGER, hdop INTEGER,
        cable_intact INTEGER, housing_closed INTEGER, battery_pct INTEGER,
        value INTEGER,                -- EVENT value
        received_at REAL NOT NULL,
        PRIMARY KEY (seal_id, rseq)
    ) WITHOUT ROWID;
    CREATE INDEX records_escort ON records(escort_id);

    CREATE TABLE uplinks (
        seal_id INTEGER NOT NULL REFERENCES seals(seal_id),
        boot INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        crc INTEGER NOT NULL,
        received_at REAL NOT NULL,
        source TEXT,
        escort_id INTEGER REFERENCES escorts(escort_id),
        ack_rseq INTEGER NOT NULL,    -- committed_rseq the ACK carried (re-sent on a duplicate)
        PRIMARY KEY (seal_id, boot, seq)
    ) WITHOUT ROWID;
    CREATE INDEX uplinks_escort ON uplinks(escort_id);

    CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        outbox_id INTEGER NOT NULL UNIQUE,   -- position in the outbox (forwarding order)
        kind TEXT NOT NULL,
        seal_id INTEGER NOT NULL,
        escort_id INTEGER REFERENCES escorts(escort_id),
        occurred_at TEXT,
        emitted_at TEXT NOT NULL,
        body TEXT NOT NULL            -- the operator JSON, byte-identical on every re-send
    );
    CREATE INDEX events_escort ON events(escort_id);
    CREATE INDEX events_seal ON events(seal_id, outbox_id);

    -- The outbox: one row per event in commit order; each sink reads past its own cursor.
    CREATE TABLE outbox (
        outbox_id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        seal_id INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE sink_cursors (
        sink TEXT PRIMARY KEY,
        delivered_upto INTEGER NOT NULL DEFAULT 0,
        delivered_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,      -- failed attempts at the current head
        next_attempt_at REAL,
        last_error TEXT
    );

    CREATE TABLE commands (
        command_id INTEGER PRIMARY KEY AUTOINCREMENT,
        seal_id INTEGER NOT NULL REFERENCES seals(seal_id),
        escort_id INTEGER REFERENCES escorts(escort_id),
        type TEXT NOT NULL,           -- ACTIVATE, DEACTIVATE, CONFIG, TIME
        payload TEXT NOT NULL,        -- JSON payload of the protocol message
        status TEXT NOT NULL,         -- queued, sent, acked, failed, cancelled
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        sent_at REAL,
        boot INTEGER,                 -- downlink (boot, seq) of the latest transmission
        seq INTEGER,
        sent_seqs TEXT NOT NULL DEFAULT '[]',  -- every (boot, seq) used, to match late results
        result TEXT,
        result_at REAL,
        error TEXT
    );
    CREATE INDEX commands_open ON commands(seal_id, command_id) WHERE status IN ('queued', 'sent');
    CREATE INDEX commands_escort ON commands(escort_id);
    """,
]

_SEAL_COLUMNS = {
    "last_seen_at", "last_source", "last_boot", "last_seq", "committed_rseq", "downlink_seq",
    "last_fix_time", "last_lat", "last_lon", "last_cable_intact", "last_housing_closed",
    "last_battery_pct", "last_state", "last_hello", "key",
}
_ESCORT_COLUMNS = {
    "status", "confirmed_at", "activated_at", "failed_at", "failure_reason",
    "deactivation_requested_at", "deactivated_at", "clean", "rule_state",
}
_COMMAND_COLUMNS = {
    "status", "attempts", "next_attempt_at", "sent_at", "boot", "seq", "sent_seqs", "result",
    "result_at", "error",
}
_RECORD_COLUMNS = (
    "seal_id", "rseq", "escort_id", "kind", "time", "lat", "lon", "speed", "course", "fix_quality",
    "satellites", "hdop", "cable_intact", "housing_closed", "battery_pct", "value", "received_at",
)
_INSERT_RECORD = (
    f"INSERT OR IGNORE INTO records ({', '.join(_RECORD_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _RECORD_COLUMNS)})"
)


# -- position records straight from the wire ------------------------------------------------------
# A RECORDS frame carries up to 120 position records; turning each into a dict and binding it by
# name cost ~0.4 ms per 60-record frame, most of a frame's work. Instead one multi-row INSERT per
# frame takes the records as `struct` unpacked them and SQLite splits the bit fields. The column
# expressions are generated from the protocol's construct definition (field order, bit positions);
# the two value adapters are translated by a table that is checked against the adapters themselves
# at import, and any field or adapter this does not know makes the import fail (so a protocol change
# cannot silently store wrong columns). tests/gateway/test_fast_ingest_perf.py compares the stored
# rows with decode_frame's on random frames.
def _wire_fix_layout() -> tuple[str, list[tuple[str, str, str]]]:
    from navseal.protocol import fastpath, schema  # the store knows the wire only here

    def position_sql(x: str) -> str:
        return f"NULLIF({x}, {schema.NO_POSITION})"

    def battery_sql(x: str) -> str:
        return f"(NULLIF({x}, 63) * 2)"

    for raw in (schema.NO_POSITION, 0, 1, -1, 900_000_000, -2**31, 2**31 - 2):
        expect = None if raw == schema.NO_POSITION else raw
        if schema.Position._decode(raw, None, None) != expect:
            raise ImportError(f"protocol Position adapter changed (decodes {raw}): update store.py")
    for raw in range(64):
        if schema.Battery2Pct._decode(raw, None, None) != (None if raw == 63 else raw * 2):
            raise ImportError(f"protocol Battery2Pct adapter changed (decodes {raw}): update store.py")
    def position_py(x: str) -> str:
        return f"(None if {x} == {schema.NO_POSITION} else {x})"

    def battery_py(x: str) -> str:
        return f"(None if {x} == 63 else {x} * 2)"

    adapters = {id(schema.Position): (position_sql, position_py), id(schema.Battery2Pct): (battery_sql, battery_py)}
    columns = {"dt": "time", "lat": "lat", "lon": "lon", "speed": "speed", "course": "course",
               "fix.quality": "fix_quality", "fix.satellites": "satellites", "hdop": "hdop",
               "status.cable_intact": "cable_intact", "status.housing_closed": "housing_closed",
               "status.battery_pct": "battery_pct"}

    def adapt(adapter: Any, expr: str) -> tuple[str, str]:
        """(SQL, Python) for the value `expr` (the same text in both languages) through `adapter`."""
        if adapter is None:
            return expr, expr
        if id(adapter) not in adapters:
            raise ImportError(f"unknown adapter {adapter!r} in PositionRecord: update store.py")
        sql, py = adapters[id(adapter)]
        return sql(expr), py(expr)

    fmt = ""
    out: list[tuple[str, tuple[str, str]]] = []  # (field, (SQL, Python) with {0}..{7} for its values)
    for j, f in enumerate(fastpath.layout(schema.PositionRecord)):
        fmt += f.fmt
        value = "{%d}" % j
        if f.bits:
            for b in f.bits:
                if b.name.startswith("_"):
                    raise ImportError("PositionRecord has reserved bits now: update store.py")
                out.append((f"{f.name}.{b.name}", adapt(b.adapter, f"(({value} >> {b.shift}) & {(1 << b.width) - 1})")))
        else:
            if len(f.adapters) > 1:
                raise ImportError(f"PositionRecord.{f.name}: adapter chain: update store.py")
            out.append((f.name, adapt(f.adapters[0] if f.adapters else None, value)))
    mapped = []
    for name, (sql, py) in out:
        if name not in columns:
            raise ImportError(f"PositionRecord.{name} has no records column: update store.py")
        mapped.append((columns[name], sql, py))
    if sorted(c for c, _, _ in mapped) != sorted(columns.values()):
        raise ImportError("PositionRecord lost a field the records table stores: update store.py")
    return fmt, mapped


WIRE_FIX_FORMAT, _WIRE_FIX_EXPRS = _wire_fix_layout()  # "HiiHBBBB": one record's struct format
WIRE_FIX_FIELDS = len(WIRE_FIX_FORMAT)
_WIRE_FIX_SQL: dict[int, str] = {}


def _insert_wire_fixes_sql(count: int) -> str:
    """INSERT OR IGNORE of `count` records. Parameters: ?1 seal_id, ?2 escort_id, ?3 received_at,
    ?4 base_time, ?5 first_rseq, then the records' wire fields from ?6 on."""
    sql = _WIRE_FIX_SQL.get(count)
    if sql is None:
        exprs = {col: sql for col, sql, _ in _WIRE_FIX_EXPRS}
        exprs["time"] = "(?4 + " + exprs["time"] + ")"
        values = []
        for i in range(count):
            args = [f"?{6 + i * WIRE_FIX_FIELDS + j}" for j in range(WIRE_FIX_FIELDS)]
            row = {"seal_id": "?1", "rseq": f"(?5 + {i})", "escort_id": "?2", "kind": f"'{RECORD_FIX}'",
                   "value": "NULL", "received_at": "?3"}
            row.update({col: expr.format(*args) for col, expr in exprs.items()})
            values.append("(" + ", ".join(row[c] for c in _RECORD_COLUMNS) + ")")
        sql = _WIRE_FIX_SQL[count] = (f"INSERT OR IGNORE INTO records ({', '.join(_RECORD_COLUMNS)}) VALUES "
                                      + ", ".join(values))
    return sql


def _make_fix_row() -> Any:
    """fix_row(fields, rseq, base_time, seal_id, escort_id, received_at) -> the record's row dict,
    generated from the same expressions as the INSERT (Python flavour): for the rules, which need
    an escorted frame's records one by one. Equal to wire_fix_rows (tests)."""
    exprs = {col: py for col, _, py in _WIRE_FIX_EXPRS}
    args = [f"v{j}" for j in range(WIRE_FIX_FIELDS)]
    values = {col: expr.format(*args) for col, expr in exprs.items()}
    values["time"] = f"base_time + {values['time']}"
    values.update(seal_id="seal_id", rseq="rseq", escort_id="escort_id", kind=repr(RECORD_FIX), value="None",
                  received_at="received_at")
    src = (f"def fix_row(fields, rseq, base_time, seal_id, escort_id, received_at):\n"
           f"    {', '.join(args)}, = fields\n"
           f"    return {{{', '.join(f'{c!r}: {values[c]}' for c in _RECORD_COLUMNS)}}}\n")
    namespace: dict[str, Any] = {}
    exec(compile(src, "<store fix_row>", "exec"), namespace)  # noqa: S102 - generated above
    return namespace["fix_row"]


fix_row = _make_fix_row()


def wire_fix_rows(first_rseq: int, base_time: int, fields: Sequence[int]) -> list[dict[str, Any]]:
    """The same rows in Python (reference and non-SQLite stores): dicts without seal/escort/received_at."""
    decode = _python_fix_decoder()
    rows = []
    for i in range(len(fields) // WIRE_FIX_FIELDS):
        rec = decode(fields[i * WIRE_FIX_FIELDS:(i + 1) * WIRE_FIX_FIELDS])
        fix, status = rec["fix"], rec["status"]
        rows.append({"rseq": first_rseq + i, "kind": RECORD_FIX, "time": base_time + rec["dt"],
                     "lat": rec["lat"], "lon": rec["lon"], "speed": rec["speed"], "course": rec["course"],
                     "fix_quality": fix["quality"], "satellites": fix["satellites"], "hdop": rec["hdop"],
                     "cable_intact": int(bool(status["cable_intact"])),
                     "housing_closed": int(bool(status["housing_closed"])),
                     "battery_pct": status["battery_pct"], "value": None})
    return rows


_PY_FIX_DECODER: list[Any] = []


def _python_fix_decoder() -> Any:
    if not _PY_FIX_DECODER:
        from navseal.protocol import fastpath, schema

        _PY_FIX_DECODER.append(fastpath.generate_tuple_decoder(schema.PositionRecord, "decode_fix")[1])
    return _PY_FIX_DECODER[0]


def _dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


def _set_clause(columns: dict[str, Any], allowed: set[str], what: str) -> str:
    unknown = set(columns) - allowed
    if unknown:
        raise StoreError(f"{what}: cannot update {sorted(unknown)}")
    return ", ".join(f"{c} = :{c}" for c in columns)


class _SqliteTx(StoreTx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn
        self._sp = 0

    def _one(self, sql: str, args: Any = ()) -> dict[str, Any] | None:
        return _dict(self._c.execute(sql, args).fetchone())

    def _all(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._c.execute(sql, args).fetchall()]

    # seals
    def get_seal(self, seal_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM seals WHERE seal_id = ?", (seal_id,))

    def update_seal(self, seal_id: int, **columns: Any) -> None:
        if columns:
            sql = f"UPDATE seals SET {_set_clause(columns, _SEAL_COLUMNS, 'seal')} WHERE seal_id = :_id"
            self._c.execute(sql, {**columns, "_id": seal_id})

    def update_seal_next_seq(self, seal_id: int, **columns: Any) -> int:
        sets = _set_clause(columns, _SEAL_COLUMNS, "seal") + ", " if columns else ""
        if "downlink_seq" in columns:
            raise StoreError("seal: update_seal_next_seq allocates downlink_seq itself")
        row = self._c.execute(
            f"UPDATE seals SET {sets}downlink_seq = downlink_seq + 1 WHERE seal_id = :_id RETURNING downlink_seq",
            {**columns, "_id": seal_id},
        ).fetchone()
        if row is None:
            raise StoreError(f"seal {seal_id} is not provisioned")
        return int(row[0])

    def next_downlink_seq(self, seal_id: int) -> int:
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
        self._c.execute(
            "INSERT INTO uplinks (seal_id, boot, seq, type, crc, received_at, source, escort_id, ack_rseq) "
            "VALUES (:seal_id, :boot, :seq, :type, :crc, :received_at, :source, :escort_id, :ack_rseq)",
            row,
        )

    # escorts
    def get_escort(self, escort_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM escorts WHERE escort_id = ?", (escort_id,))

    def open_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM escorts WHERE seal_id = ? AND status IN (?, ?, ?, ?) ORDER BY escort_id DESC LIMIT 1",
            (seal_id, *OPEN_ESCORT_STATUSES),
        )

    def latest_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM escorts WHERE seal_id = ? ORDER BY escort_id DESC LIMIT 1", (seal_id,))

    def insert_escort(self, row: dict[str, Any]) -> int:
        cols = list(row)
        cur = self._c.execute(
            f"INSERT INTO escorts ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row
        )
        return int(cur.lastrowid or 0)

    def update_escort(self, escort_id: int, **columns: Any) -> None:
        if columns:
            sql = f"UPDATE escorts SET {_set_clause(columns, _ESCORT_COLUMNS, 'escort')} WHERE escort_id = :_id"
            self._c.execute(sql, {**columns, "_id": escort_id})

    def find_escorts(self, **where: Any) -> list[dict[str, Any]]:
        allowed = {"escort_id", "seal_id", "declaration", "vehicle", "status"}
        unknown = set(where) - allowed
        if unknown:
            raise StoreError(f"cannot search escorts by {sorted(unknown)}")
        clause = " AND ".join(f"{k} = :{k}" for k, v in where.items() if v is not None) or "1"
        return self._all(f"SELECT * FROM escorts WHERE {clause} ORDER BY escort_id", where)

    def escorts_with_status(self, statuses: Sequence[str]) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in statuses)
        return self._all(f"SELECT * FROM escorts WHERE status IN ({marks}) ORDER BY escort_id", tuple(statuses))

    def escorts_with_seal(self, statuses: Sequence[str]) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in statuses)
        return self._all(
            f"SELECT e.*, s.last_seen_at AS seal_last_seen_at FROM escorts e JOIN seals s USING (seal_id) "
            f"WHERE e.status IN ({marks}) ORDER BY e.escort_id", tuple(statuses))

    # records
    def existing_rseqs(self, seal_id: int, first: int, last: int) -> set[int]:
        rows = self._c.execute(
            "SELECT rseq FROM records WHERE seal_id = ? AND rseq BETWEEN ? AND ?", (seal_id, first, last)
        ).fetchall()
        return {r[0] for r in rows}

    def insert_records(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self._c.executemany(_INSERT_RECORD, rows)

    def insert_wire_fixes(self, seal_id: int, escort_id: int | None, first_rseq: int, base_time: int,
                          fields: Sequence[int], received_at: float) -> int:
        count = len(fields) // WIRE_FIX_FIELDS
        if not count:
            return 0
        cur = self._c.execute(_insert_wire_fixes_sql(count),
                              (seal_id, escort_id, received_at, base_time, first_rseq, *fields))
        return int(cur.rowcount)

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
        cur = self._c.execute(
            f"INSERT INTO commands ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row
        )
        return int(cur.lastrowid or 0)

    def update_command(self, command_id: int, **columns: Any) -> None:
        if columns:
            sql = f"UPDATE commands SET {_set_clause(columns, _COMMAND_COLUMNS, 'command')} WHERE command_id = :_id"
            self._c.execute(sql, {**columns, "_id": command_id})

    def open_commands(self, seal_id: int | None = None) -> list[dict[str, Any]]:
        if seal_id is None:
            return self._all("SELECT * FROM commands WHERE status IN ('queued', 'sent') ORDER BY command_id")
        return self._all(
            "SELECT * FROM commands WHERE seal_id = ? AND status IN ('queued', 'sent') ORDER BY command_id",
            (seal_id,),
        )

    def commands_for_escort(self, escort_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM commands WHERE escort_id = ? ORDER BY command_id", (escort_id,))

    def head_commands(self) -> list[dict[str, Any]]:
        return self._all(
            "SELECT c.*, s.last_seen_at AS seal_last_seen_at, s.key AS seal_key FROM commands c "
            "JOIN seals s USING (seal_id) WHERE c.command_id IN ("
            "  SELECT MIN(command_id) FROM commands WHERE status IN ('queued', 'sent') GROUP BY seal_id) "
            "ORDER BY c.command_id")

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._sp += 1
        name = f"sp{self._sp}"
        self._c.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._c.execute(f"ROLLBACK TO {name}")
            self._c.execute(f"RELEASE {name}")
            raise
        else:
            self._c.execute(f"RELEASE {name}")


class SqliteStore(Store):
    """SQLite in WAL mode, one file, foreign keys on, numbered migrations; see the module doc."""

    def __init__(self, path: str, *, synchronous: str = "FULL", busy_timeout_s: float = 30.0,
                 cache_kib: int = 32 * 1024, wal_autocheckpoint_pages: int = 4000) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly a block.
        self._c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                  timeout=busy_timeout_s)
        self._c.row_factory = sqlite3.Row
        self._c.execute("PRAGMA journal_mode = WAL")
        self._c.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self._c.execute("PRAGMA foreign_keys = ON")
        self._c.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        # Page cache (KiB when negative): ingest touches, per seal, the leaf pages of records, its
        # index, uplinks and seals; SQLite's 2 MB default thrashes at a few hundred seals. Memory only:
        # durability is unchanged.
        self._c.execute(f"PRAGMA cache_size = {-int(cache_kib)}")
        # WAL checkpoint every ~16 MB of WAL instead of SQLite's 4 MB: ingest dirties ~6 pages per
        # frame, so the default ran a checkpoint (copy to the database file and fsync it) every few
        # batches, ~25 us per frame; at 4000 pages pages rewritten meanwhile are copied once. Commits
        # stay durable (the WAL is fsynced at every commit with synchronous=FULL); the cost is a
        # larger -wal file and a longer single checkpoint.
        self._c.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint_pages)}")
        self._migrate()

    # -- schema --
    def _migrate(self) -> None:
        with self._lock:
            self._c.execute("BEGIN IMMEDIATE")
            try:
                self._c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = self._c.execute("SELECT version FROM schema_version").fetchone()
                version = row[0] if row else 0
                if row is None:
                    self._c.execute("INSERT INTO schema_version (version) VALUES (0)")
                if version > len(MIGRATIONS):
                    raise StoreError(f"{self.path}: schema version {version} is newer than this gateway "
                                     f"({len(MIGRATIONS)}); refusing to open")
                for number in range(version, len(MIGRATIONS)):
                    for statement in _statements(MIGRATIONS[number]):
                        self._c.execute(statement)
                    self._c.execute("UPDATE schema_version SET version = ?", (number + 1,))
                self._c.execute("COMMIT")
            except BaseException:
                self._c.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._c.execute("SELECT version FROM schema_version").fetchone()[0])

    # -- transactions --
    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        with self._lock:
            try:
                self._c.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"begin: {exc}") from exc
            try:
                yield _SqliteTx(self._c)
            except BaseException:
                self._c.execute("ROLLBACK")
                raise
            try:
                self._c.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._c.execute("ROLLBACK")
                raise StoreError(f"commit: {exc}") from exc

    def _read(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._c.execute(sql, args).fetchall()]

    # -- keys --
    def provision_seal(self, seal_id: int, key: bytes, now: float) -> None:
        if not (0 < seal_id <= 0xFFFFFFFF):
            raise StoreError(f"seal id {seal_id} out of range 1..4294967295")
        if len(key) != 32:
            raise StoreError(f"seal {seal_id}: key must be 32 bytes, got {len(key)}")
        with self.transaction() as tx:
            if tx.get_seal(seal_id) is None:
                self._c.execute("INSERT INTO seals (seal_id, key, provisioned_at) VALUES (?, ?, ?)",
                                (seal_id, bytes(key), now))
            else:
                tx.update_seal(seal_id, key=bytes(key))

    def seal_key(self, seal_id: int) -> bytes | None:
        rows = self._read("SELECT key FROM seals WHERE seal_id = ?", (seal_id,))
        return bytes(rows[0]["key"]) if rows else None

    def seals(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM seals ORDER BY seal_id")
        for r in rows:
            r.pop("key", None)  # never hand keys out through status paths
        return rows

    # -- outbox --
    def outbox_fetch(self, sink: str, limit: int = 100) -> list[OutboxItem]:
        with self._lock:
            upto = self._cursor(sink)
            rows = self._c.execute(
                "SELECT o.outbox_id, e.body FROM outbox o JOIN events e ON e.event_id = o.event_id "
                "WHERE o.outbox_id > ? ORDER BY o.outbox_id LIMIT ?", (upto, limit)).fetchall()
        return [OutboxItem(r[0], json.loads(r[1])) for r in rows]

    def _cursor(self, sink: str) -> int:
        row = self._c.execute("SELECT delivered_upto FROM sink_cursors WHERE sink = ?", (sink,)).fetchone()
        if row is None:
            # A sink seen for the first time starts at the beginning: it gets every stored event.
            self._c.execute("INSERT OR IGNORE INTO sink_cursors (sink) VALUES (?)", (sink,))
            return 0
        return int(row[0])

    def outbox_mark_delivered(self, sink: str, upto_outbox_id: int, now: float | None = None) -> None:
        with self._lock:
            self._c.execute("INSERT OR IGNORE INTO sink_cursors (sink) VALUES (?)", (sink,))
            self._c.execute(
                "UPDATE sink_cursors SET delivered_upto = MAX(delivered_upto, ?), delivered_at = ?, "
                "attempts = 0, next_attempt_at = NULL, last_error = NULL WHERE sink = ?",
                (upto_outbox_id, now, sink))

    def outbox_note_failure(self, sink: str, error: str, next_attempt_at: float, now: float) -> None:
        with self._lock:
            self._c.execute("INSERT OR IGNORE INTO sink_cursors (sink) VALUES (?)", (sink,))
            self._c.execute(
                "UPDATE sink_cursors SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE sink = ?", (next_attempt_at, error[:500], sink))

    def outbox_depth(self, sink: str) -> int:
        with self._lock:
            upto = self._cursor(sink)
            return int(self._c.execute("SELECT COUNT(*) FROM outbox WHERE outbox_id > ?", (upto,)).fetchone()[0])

    def outbox_status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for row in self._read("SELECT * FROM sink_cursors ORDER BY sink"):
            row["depth"] = self.outbox_depth(row["sink"])
            out[row.pop("sink")] = row
        return out

    # -- reading --
    def events(self, *, seal_id: int | None = None, escort_id: int | None = None,
               kind: str | None = None, after_outbox_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        where = ["outbox_id > :after"]
        if seal_id is not None:
            where.append("seal_id = :seal_id")
        if escort_id is not None:
            where.append("escort_id = :escort_id")
        if kind is not None:
            where.append("kind = :kind")
        rows = self._read(
            f"SELECT body FROM events WHERE {' AND '.join(where)} ORDER BY outbox_id LIMIT :limit",
            {"after": after_outbox_id, "seal_id": seal_id, "escort_id": escort_id, "kind": kind, "limit": limit})
        return [json.loads(r["body"]) for r in rows]

    def records(self, seal_id: int, *, escort_id: int | None = None, limit: int = 100_000) -> list[dict[str, Any]]:
        if escort_id is None:
            return self._read("SELECT * FROM records WHERE seal_id = ? ORDER BY rseq LIMIT ?", (seal_id, limit))
        return self._read("SELECT * FROM records WHERE seal_id = ? AND escort_id = ? ORDER BY rseq LIMIT ?",
                          (seal_id, escort_id, limit))

    def counts(self) -> dict[str, int]:
        tables = ("seals", "escorts", "records", "uplinks", "events", "outbox", "commands")
        with self._lock:
            return {t: int(self._c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}

    # -- retention --
    def purge(self, now: float, *, retention_years: int = 5, utc_offset_h: float = 5.0) -> PurgeReport:
        report = PurgeReport()
        with self.transaction():
            candidates = self._c.execute(
                "SELECT escort_id, deactivated_at FROM escorts WHERE status = ? AND deactivated_at IS NOT NULL",
                (ESCORT_DEACTIVATED,)).fetchall()
            expired = [row[0] for row in candidates
                       if retention_end(row[1], years=retention_years, utc_offset_h=utc_offset_h) <= now]
            for escort_id in expired:
                c = self._c
                report.outbox += c.execute(
                    "DELETE FROM outbox WHERE event_id IN (SELECT event_id FROM events WHERE escort_id = ?)",
                    (escort_id,)).rowcount
                report.events += c.execute("DELETE FROM events WHERE escort_id = ?", (escort_id,)).rowcount
                report.records += c.execute("DELETE FROM records WHERE escort_id = ?", (escort_id,)).rowcount
                report.uplinks += c.execute("DELETE FROM uplinks WHERE escort_id = ?", (escort_id,)).rowcount
                report.commands += c.execute("DELETE FROM commands WHERE escort_id = ?", (escort_id,)).rowcount
                report.escorts += c.execute("DELETE FROM escorts WHERE escort_id = ?", (escort_id,)).rowcount
        return report

    def close(self) -> None:
        with self._lock:
            self._c.close()


def _statements(script: str) -> Iterable[str]:
    """Split a migration into statements (no semicolons inside our DDL strings or comments)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            yield statement.strip()


def open_store(config: Any) -> SqliteStore:
    """The store a `GatewayConfig` names (today always SQLite)."""
    return SqliteStore(config.db_path, synchronous=config.db_synchronous)
