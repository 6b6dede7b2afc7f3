"""The SQLite schema: numbered migrations, applied in order by `SqliteStore` at open.

Index i brings the schema from version i to i+1; the database keeps its version in
`schema_version`. Never edit a released migration: add the next one.
"""

from __future__ import annotations

import sqlite3
from typing import Iterable

from .access import ACCESS_MIGRATION
from .console import CONSOLE_MIGRATION

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
    # 2: users, tokens, sessions, the audit log; who asked for an escort's activation/deactivation
    ACCESS_MIGRATION,
    # 3: alarm acknowledgements; indexes for the console's escort pages and alarm feed
    CONSOLE_MIGRATION,
    # 4: clause 15: an escort with a non-routine situation is marked high-risk (NULL until decided)
    """
    ALTER TABLE escorts ADD COLUMN high_risk INTEGER;
    """,
    # 5: the commit counter the commit mark beside the database is compared with (sqlite_check.py)
    """
    CREATE TABLE commit_mark (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL
    );
    INSERT INTO commit_mark (id, seq) VALUES (1, 0);
    """,
    # 6: where Store.write_probe writes (and deletes) its test row while ingest is paused
    """
    CREATE TABLE store_probe (
        id INTEGER PRIMARY KEY,
        filler BLOB NOT NULL
    );
    """,
    # 7: dead letters: events a sink refused for good (status dead), asked to be sent again
    # (replay) or sent again (replayed); the sink's cursor has moved past them
    """
    CREATE TABLE dead_letters (
        dead_letter_id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL,
        outbox_id INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT NOT NULL,
        refused_at REAL NOT NULL,
        refusals INTEGER NOT NULL DEFAULT 1,
        replay_requested_at REAL,
        replayed_at REAL
    );
    CREATE INDEX dead_letters_sink ON dead_letters(sink, status, dead_letter_id);
    CREATE INDEX dead_letters_event ON dead_letters(event_id);
    """,
    # 8: retention for every data class: an escort never deactivated expires after a horizon
    # (ESCORT_EXPIRED; its retention then runs from expired_at). Records and uplinks outside
    # escorts are found through records_escort / uplinks_escort (escort_id IS NULL), not through an
    # index of their own: one more index entry per record would cost ingest ~15 % of its CPU.
    """
    ALTER TABLE escorts ADD COLUMN expired_at REAL;
    CREATE INDEX escorts_expired ON escorts(expired_at) WHERE expired_at IS NOT NULL;
    """,
    # 9: a seal's current run of refused frames (SEAL_REJECTING) kept with the seal, not in one
    # process's memory: it survives a restart, and several gateways sharing the store count one run.
    """
    ALTER TABLE seals ADD COLUMN rejecting TEXT;
    """,
    # 10: position records as the frames brought them, one row per run of consecutive new records
    # (docs/decisions/0020): body is the records' wire bytes. `records` keeps the seal's EVENT
    # records and the fixes stored before; readers take both. A rowid table: rows of ~1 kB go to
    # the end of the table instead of splitting pages across seals; the unique key finds overlaps.
    """
    CREATE TABLE record_runs (
        run_id INTEGER PRIMARY KEY,
        seal_id INTEGER NOT NULL REFERENCES seals(seal_id),
        first_rseq INTEGER NOT NULL,
        last_rseq INTEGER NOT NULL,
        escort_id INTEGER REFERENCES escorts(escort_id),
        base_time INTEGER NOT NULL,   -- seal clock, Unix s; a record's time is base_time + its dt
        body BLOB NOT NULL,           -- the records' wire bytes (protocol PositionRecord each)
        received_at REAL NOT NULL,
        UNIQUE (seal_id, first_rseq)
    );
    CREATE INDEX record_runs_escort ON record_runs(escort_id, seal_id, first_rseq);
    """,
    # 11: failed logins kept in the store, not in one process's memory: gateways sharing the store
    # count one set of failures per user name and per client address (the throttle's window).
    """
    CREATE TABLE login_failures (
        scope TEXT NOT NULL,          -- 'name' or 'client'
        key TEXT NOT NULL,            -- the user name tried, or the client's address
        at REAL NOT NULL              -- wall time, Unix s
    );
    CREATE INDEX login_failures_scope ON login_failures(scope, key, at);
    CREATE INDEX login_failures_at ON login_failures(at);
    """,
]


def statements(script: str) -> Iterable[str]:
    """Split a migration into statements: a statement ends at the ";" where SQLite says it is
    complete (so a trigger's BEGIN ... END body stays whole). No "--" inside our DDL strings."""
    pending = ""
    for piece in "\n".join(line.split("--", 1)[0] for line in script.splitlines()).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"migration ends inside a statement: {pending.strip()[:60]!r}")
