"""The SQLite store: `Store` and `StoreTx` (gateway/store/interface.py) on one SQLite file.

`SqlStore` holds what both engines share (reads, outbox, dead letters), written in SQLite's
dialect; `SqliteStore` adds the file, its migrations and transactions. `PgStore`
(gateway/store/postgres.py) runs the same SQL on PostgreSQL through gateway/store/dialect.py.

Thread-safety rule: one `SqliteStore` object holds ONE connection guarded by ONE lock; every public
method and every transaction takes the lock, so any thread may call it (a transaction blocks the
others until it ends). Several `SqliteStore` objects (threads or processes) may open the same file:
WAL mode lets readers run beside the one writer, and `busy_timeout` makes a second writer wait
rather than fail. Migrations (gateway/store/sqlite_schema.py) run under `BEGIN IMMEDIATE`, so
opening the file twice is safe.

Every transaction adds one to `commit_mark.seq`; the store opened with `commit_mark=True` (the
gateway's ingest store) keeps the commit mark file beside the database (gateway/store/sqlite_check.py).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import sqlite3
import threading
from typing import Any, Iterator, Sequence

from .interface import OutboxItem, Store, StoreError, StoreTx
from .sqlite_check import CommitMark, mark_path
from .sqlite_console import SqliteConsoleReads
from .sqlite_schema import MIGRATIONS, statements
from .seal_key_codec import KeyCodec
from .sqlite_tx import SqliteTx, is_store_failure
from .wire_fixes import run_rows


def _create_private(path: str) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask, typically 0644);
    SQLite gives its -wal and -shm files the database file's mode. An existing file that others
    may read is tightened."""
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)


class SqlStore(SqliteConsoleReads, Store):
    """What both engines share: the store's reads, outbox and dead letters, written in SQLite's
    dialect on `self._c` (a sqlite3 connection, or PostgreSQL's through gateway/store/dialect.py)
    under `self._lock`. The engine classes add the connection, migrations and transactions."""

    _c: Any
    _lock: Any
    _keys: KeyCodec

    def _encrypt_plain_keys(self) -> None:
        """Encrypt keys stored before there was a master key (32 raw bytes), and check on one
        encrypted key that this is the master key they were encrypted with (StoreError if not)."""
        with self.transaction():
            sample = self._c.execute("SELECT seal_id, key FROM seals WHERE length(key) != 32 LIMIT 1").fetchone()
            if sample is not None:
                self._keys.decode(sample[0], sample[1])
            for seal_id, key in self._c.execute("SELECT seal_id, key FROM seals WHERE length(key) = 32").fetchall():
                self._c.execute("UPDATE seals SET key = ? WHERE seal_id = ?",
                                (self._keys.encode(seal_id, bytes(key)), seal_id))

    # -- keys --
    def provision_seal(self, seal_id: int, key: bytes, now: float) -> None:
        if not (0 < seal_id <= 0xFFFFFFFF):
            raise StoreError(f"seal id {seal_id} out of range 1..4294967295")
        if len(key) != 32:
            raise StoreError(f"seal {seal_id}: key must be 32 bytes, got {len(key)}")
        with self.transaction() as tx:
            tx.put_seal_key(seal_id, key, now)

    def seal_key(self, seal_id: int) -> bytes | None:
        rows = self._read("SELECT key FROM seals WHERE seal_id = ?", (seal_id,))
        return self._keys.decode(seal_id, rows[0]["key"]) if rows else None

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
                "UPDATE sink_cursors SET delivered_upto = CASE WHEN delivered_upto > :upto THEN delivered_upto "
                "ELSE :upto END, delivered_at = :now, attempts = 0, next_attempt_at = NULL, last_error = NULL "
                "WHERE sink = :sink", {"upto": upto_outbox_id, "now": now, "sink": sink})

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

    # -- dead letters --
    def outbox_dead_letter(self, sink: str, outbox_id: int, event_id: str, error: str, now: float) -> int:
        with self.transaction():
            cur = self._c.execute(
                "INSERT INTO dead_letters (sink, outbox_id, event_id, status, error, refused_at) "
                "VALUES (?, ?, ?, 'dead', ?, ?)", (sink, outbox_id, event_id, error[:500], now))
            self._c.execute("INSERT OR IGNORE INTO sink_cursors (sink) VALUES (?)", (sink,))
            self._c.execute(
                "UPDATE sink_cursors SET delivered_upto = CASE WHEN delivered_upto > :upto THEN delivered_upto "
                "ELSE :upto END, delivered_at = :now, attempts = 0, next_attempt_at = NULL, last_error = NULL "
                "WHERE sink = :sink", {"upto": outbox_id, "now": now, "sink": sink})
            return int(cur.lastrowid)

    def dead_letters(self, *, sink: str | None = None, status: str | None = None, after_id: int = 0,
                     limit: int = 100) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT d.*, e.body FROM dead_letters d LEFT JOIN events e ON e.event_id = d.event_id "
            "WHERE d.dead_letter_id > :after AND (CAST(:sink AS TEXT) IS NULL OR d.sink = :sink) "
            "AND (CAST(:status AS TEXT) IS NULL OR d.status = :status) ORDER BY d.dead_letter_id LIMIT :limit",
            {"after": after_id, "sink": sink, "status": status, "limit": limit})
        for row in rows:
            body = row.pop("body")
            row["event"] = json.loads(body) if body is not None else None
        return rows

    def dead_letter_settled(self, dead_letter_id: int, *, delivered: bool, error: str | None, now: float) -> None:
        with self._lock:
            if delivered:
                self._c.execute("UPDATE dead_letters SET status = 'replayed', replayed_at = ? WHERE dead_letter_id = ?",
                                (now, dead_letter_id))
            else:
                self._c.execute("UPDATE dead_letters SET status = 'dead', error = ?, refused_at = ?, "
                                "refusals = refusals + 1 WHERE dead_letter_id = ?",
                                ((error or "")[:500], now, dead_letter_id))

    def dead_letter_counts(self) -> dict[str, int]:
        return {r["sink"]: int(r["n"]) for r in self._read(
            "SELECT sink, COUNT(*) AS n FROM dead_letters WHERE status = 'dead' GROUP BY sink ORDER BY sink")}

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
        # Single rows (events, fixes stored before runs) and runs unpacked, merged by rseq; each
        # run holds at least one record, so `limit` runs are always enough.
        where, args = ("seal_id = ?", (seal_id,)) if escort_id is None else (
            "seal_id = ? AND escort_id = ?", (seal_id, escort_id))
        single = self._read(f"SELECT * FROM records WHERE {where} ORDER BY rseq LIMIT ?", (*args, limit))
        runs = [row for r in self._read(f"SELECT * FROM record_runs WHERE {where} ORDER BY first_rseq LIMIT ?",
                                        (*args, limit))
                for row in run_rows(r["seal_id"], r["escort_id"], r["first_rseq"], r["base_time"], bytes(r["body"]),
                                    r["received_at"])]
        merged = heapq.merge(single, runs, key=lambda r: r["rseq"]) if single else runs
        return list(itertools.islice(merged, limit))

    def audit_rows(self, *, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return self._read("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))

    def counts(self) -> dict[str, int]:
        tables = ("seals", "escorts", "records", "uplinks", "events", "outbox", "commands", "dead_letters")
        with self._lock:
            counts = {t: int(self._c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}
            counts["records"] += int(self._c.execute(
                "SELECT COALESCE(SUM(last_rseq - first_rseq + 1), 0) FROM record_runs").fetchone()[0])
            return counts


class SqliteStore(SqlStore):
    """SQLite in WAL mode, one file (0600), foreign keys on, numbered migrations; see the module doc.
    `cipher` (gateway/secrets.KeyCipher) encrypts seal keys at rest; plaintext keys found in the
    file are encrypted when it is opened with one."""

    def __init__(self, path: str, *, synchronous: str = "FULL", busy_timeout_s: float = 30.0,
                 cache_kib: int = 32 * 1024, wal_autocheckpoint_pages: int = 4000, cipher: Any = None,
                 commit_mark: bool = False) -> None:
        self.path = str(path)
        self._mark: CommitMark | None = None
        self._lock = threading.RLock()
        self._keys = KeyCodec(cipher)
        _create_private(self.path)
        try:
            self._open(synchronous, busy_timeout_s, cache_kib, wal_autocheckpoint_pages)
        except sqlite3.DatabaseError as exc:  # a damaged file: one line, not a traceback
            raise StoreError(f"{self.path}: {exc}") from None
        if cipher is not None:
            self._encrypt_plain_keys()
        if commit_mark and self.path != ":memory:" and not self.path.startswith("file:"):
            self._mark = CommitMark(mark_path(self.path))
            self._mark.committed(self.commit_seq)
            self._mark.sync()

    def _open(self, synchronous: str, busy_timeout_s: float, cache_kib: int, wal_autocheckpoint_pages: int) -> None:
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

    @property
    def commit_seq(self) -> int:
        """How many transactions this database committed (its commit counter)."""
        with self._lock:
            return int(self._c.execute("SELECT seq FROM commit_mark").fetchone()[0])

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
                    for statement in statements(MIGRATIONS[number]):
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
                yield SqliteTx(self._c, self._keys)
            except BaseException:
                if self._c.in_transaction:  # SQLite may have rolled it back itself (disk full, I/O error)
                    self._c.execute("ROLLBACK")
                raise
            try:
                seq = self._c.execute("UPDATE commit_mark SET seq = seq + 1 RETURNING seq").fetchall()[0][0]
                self._c.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._c.execute("ROLLBACK")
                raise StoreError(f"commit: {exc}") from exc
            if self._mark is not None:
                try:
                    self._mark.committed(seq)
                except OSError as exc:  # committed, but the mark could not follow: say so, not silently
                    raise StoreError(f"commit mark {self._mark.path}: {exc}") from exc

    def _read(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return [dict(r) for r in self._c.execute(sql, args).fetchall()]
            except sqlite3.Error as exc:
                if is_store_failure(exc):
                    raise StoreError(f"read: {exc}") from exc
                raise

    def write_probe(self, nbytes: int = 64 * 1024) -> None:
        try:
            with self.transaction():
                self._c.execute("INSERT INTO store_probe (filler) VALUES (zeroblob(?))", (nbytes,))
            with self.transaction():
                self._c.execute("DELETE FROM store_probe")
        except sqlite3.Error as exc:
            raise StoreError(f"write probe: {exc}") from exc

    def audit_high_water(self) -> int:
        rows = self._read("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
        return int(rows[0]["seq"]) if rows else 0

    def close(self) -> None:
        with self._lock:
            if self._mark is not None:
                self._mark.close()
                self._mark = None
            self._c.close()
