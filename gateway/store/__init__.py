"""Storage for the gateway: the interface the core uses, and its engines.

    interface.py     Store and StoreTx (what the core needs), status values, StoreError
    access.py        users, tokens, sessions, the audit log (AccessTx, inherited by StoreTx)
    seal_key_codec.py seal keys as stored: encrypted with the master key
    wire_fixes.py    position records as stored (one run per frame, wire bytes) and read back as rows
    sqlite.py        SqliteStore: the embedded default (one file, WAL)
    sqlite_tx.py     one SQLite transaction (StoreTx)
    sqlite_schema.py the migrations (SQLite's dialect; PostgreSQL's through dialect.py)
    sqlite_check.py  the file checked before the gateway runs on it; the commit mark beside it
    dialect.py       the store's SQL as PostgreSQL runs it (decision 0015)
    postgres.py      PgStore: several gateways on one PostgreSQL database

`open_store(config)` gives the store a GatewayConfig names. The names below are the package's
public surface: import them from `navseal.gateway.store`.
"""

from __future__ import annotations

from typing import Any

from .interface import (
    BatchFailed,
    CMD_ACKED,
    CMD_CANCELLED,
    CMD_FAILED,
    CMD_QUEUED,
    CMD_SENT,
    ESCORT_ACTIVE,
    ESCORT_ARMED,
    ESCORT_DEACTIVATED,
    ESCORT_DEACTIVATION_REQUESTED,
    ESCORT_EVIDENCE_PENDING,
    ESCORT_FAILED,
    ESCORT_REQUESTED,
    MONITORED_STATUSES,
    OPEN_COMMAND_STATUSES,
    OPEN_ESCORT_STATUSES,
    OutboxItem,
    Store,
    StoreError,
    StoreTx,
)
from .sqlite import SqliteStore
from . import dialect
from .sqlite_check import StoreRefused, check_store_file
from .sqlite_schema import MIGRATIONS
from .wire_fixes import RECORD_FIX, RECORD_SIZE, WIRE_FIX_FIELDS, WIRE_FIX_FORMAT, fix_row, run_rows, wire_fix_rows

__all__ = [
    "CMD_ACKED", "CMD_CANCELLED", "CMD_FAILED", "CMD_QUEUED", "CMD_SENT",
    "ESCORT_ACTIVE", "ESCORT_ARMED", "ESCORT_DEACTIVATED", "ESCORT_DEACTIVATION_REQUESTED",
    "ESCORT_EVIDENCE_PENDING",
    "ESCORT_FAILED", "ESCORT_REQUESTED", "MIGRATIONS", "MONITORED_STATUSES", "OPEN_COMMAND_STATUSES",
    "OPEN_ESCORT_STATUSES", "OutboxItem", "RECORD_FIX", "SqliteStore", "Store", "StoreError", "BatchFailed", "StoreRefused",
    "StoreTx", "check_store",
    "WIRE_FIX_FIELDS", "WIRE_FIX_FORMAT", "RECORD_SIZE", "fix_row", "open_store", "run_rows", "wire_fix_rows",
]


def open_store(config: Any, cipher: Any = None, *, commit_mark: bool = False) -> Store:
    """The store a `GatewayConfig` names: PostgreSQL at `store_url` when set, else SQLite at
    `db_path`; `cipher` from secrets.load_master_key encrypts seal keys at rest; `commit_mark`: this
    store keeps the commit mark (the gateway's ingest store only; SQLite's file check)."""
    url = getattr(config, "store_url", None)
    if url:
        from .postgres import PgStore  # psycopg is needed only for PostgreSQL

        return PgStore(url, cipher=cipher)
    return SqliteStore(config.db_path, synchronous=config.db_synchronous, cipher=cipher, commit_mark=commit_mark)


def check_store(config: Any, *, init: bool = False) -> str:
    """Before the gateway runs on the store a `GatewayConfig` names: StoreRefused (one line) when it
    is missing (without `init`), empty, truncated, damaged or behind its commit mark (SQLite), or
    unreachable, without the gateway's schema (without `init`) or damaged (PostgreSQL)."""
    url = getattr(config, "store_url", None)
    if url:
        from .postgres import check_pg_store

        return check_pg_store(url, init=init)
    return check_store_file(config.db_path, init=init)
