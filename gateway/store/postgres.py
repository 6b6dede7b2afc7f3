"""The PostgreSQL store: `Store` and `StoreTx` on one PostgreSQL database (psycopg 3).

Past 400 lines on purpose: the connection, migrations under an advisory lock, transactions and
the locks several instances need belong together; the SQL itself is the SQLite store's.

The SQL is the SQLite store's (gateway/store/sqlite.py, sqlite_tx.py, access.py,
sqlite_console.py), run through gateway/store/dialect.py (decision 0015); this module adds the
connection, the migrations under an advisory lock, transactions, and what several gateways sharing
one database need (docs/gateway.md, "Deployment"):

- a frame's transaction locks its seal's row (`get_seal` is `SELECT ... FOR UPDATE`): two frames of
  one seal that reach two instances at once are applied one after the other;
- the audit chain's head is one locked row (`navseal_audit_head`), so appends from several
  instances stay one chain and the high-water mark is transactional (a sequence is not);
- a transaction's outbox rows get their final ids just before COMMIT, under one locked row
  (`navseal_outbox_head`) taken last: outbox ids become visible in commit order, so a sink's cursor
  never passes an id a slower transaction is still writing, and the lock cannot close a deadlock;
- `StoreTx.exclusive(name)` (timers, retention) is a transaction advisory lock, and a sink is
  fetched only by the store holding its lease, a session advisory lock (`hold_lease`);
- a deadlock or a lost connection is a StoreError: nothing of the transaction is committed, so the
  caller does not ACK (decision 0016).

Thread-safety as SqliteStore: one connection, one lock. A broken connection (PostgreSQL restarted)
is replaced at the next transaction or read; the failed call raises StoreError.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, Sequence

import psycopg
from psycopg.adapt import Dumper
from psycopg.types.numeric import Int8Dumper

from . import dialect
from .interface import BatchFailed, StoreError, StoreTx
from .seal_key_codec import KeyCodec
from .sqlite import SqlStore
from .sqlite_schema import MIGRATIONS, statements
from .sqlite_tx import INSERT_RUN, INSERT_UPLINK, SqliteTx, run_params, update_seal_sql

# pg_advisory_xact_lock key held while migrating ("navseal" in ASCII).
MIGRATION_LOCK = 0x6E61_7673_6561_6C
# Engine-internal tables (not part of the shared schema): created before the first migration.
_INTERNAL = [
    dialect.BOOTSTRAP,
    "CREATE TABLE IF NOT EXISTS navseal_audit_head (seq BIGINT NOT NULL)",
    "INSERT INTO navseal_audit_head (seq) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM navseal_audit_head)",
    "CREATE TABLE IF NOT EXISTS navseal_outbox_head (id INT PRIMARY KEY)",
    "INSERT INTO navseal_outbox_head (id) VALUES (1) ON CONFLICT DO NOTHING",
]
INTERNAL_TABLES = ("navseal_audit_head", "navseal_outbox_head", "schema_version")
# Advisory lock namespaces (the first key of the two-key form): StoreTx.exclusive, sink leases.
_EXCLUSIVE = 0x6E73
_LEASE = 0x6E6C


class _Row(dict):
    """A row as sqlite3.Row gives it: by column name or by position, and unpacked (iterated) as its
    values (`for seal_id, key in rows`); `dict(row)` and `row.keys()` give the column names."""

    __slots__ = ("_values",)

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values))
        self._values = values

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, slice)):
            return self._values[key]
        return dict.__getitem__(self, key)

    def __iter__(self) -> Any:
        return iter(self._values)


def _rows(cursor: Any) -> Any:
    names = [c.name for c in cursor.description] if cursor.description else []
    return lambda values: _Row(names, values)


class _BoolAsInt(Dumper):
    """Python booleans as 0/1: the schema keeps flags in integer columns (as SQLite does)."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _Result:
    """What a sqlite3 cursor gives after execute: rows, rowcount, lastrowid; and the server's
    status message ("COMMIT"). In pipeline mode the result is waited for only when one of them is
    read (PgConnection.sync: one round trip for every statement sent before it)."""

    __slots__ = ("_cur", "_conn", "_returns_key", "_lastrowid")

    def __init__(self, cur: Any, returns_key: bool, conn: PgConnection) -> None:
        self._cur = cur
        self._conn = conn
        self._returns_key = returns_key
        self._lastrowid: Any = ...

    def _ready(self) -> Any:
        if self._cur.pgresult is None:
            self._conn.sync()
        return self._cur

    @property
    def rowcount(self) -> int:
        return int(self._ready().rowcount)

    @property
    def lastrowid(self) -> Any:
        if self._lastrowid is ...:
            keys = self._ready().fetchall() if self._returns_key else []
            self._lastrowid = keys[-1][0] if keys else None
        return self._lastrowid

    @property
    def statusmessage(self) -> str | None:
        return self._ready().statusmessage

    def fetchone(self) -> Any:
        cur = self._ready()
        return cur.fetchone() if cur.description else None

    def fetchall(self) -> list[Any]:
        cur = self._ready()
        return cur.fetchall() if cur.description else []


class PgConnection:
    """A psycopg connection that takes the store's SQL as written for SQLite (dialect.py) and
    answers like sqlite3 (`execute` -> fetchone/fetchall/rowcount/lastrowid). Autocommit: BEGIN and
    COMMIT are the store's. A connection error is a StoreError; the next `ensure` reconnects."""

    def __init__(self, url: str, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout = connect_timeout_s
        self._pg: psycopg.Connection[Any] | None = None
        self.in_tx = False  # set by PgStore.transaction: no silent reconnect inside one
        # Statements sent and waits for the server (round trips): what a frame costs on the wire
        # (tools/bench/bench_pg_round_trips.py, tests/gateway/test_batch_rows_and_pipeline.py).
        self.statements = 0
        self.round_trips = 0
        self.writes = 0  # statements other than SELECT: PgTx.savepoint in pipeline mode
        self._pipe: psycopg.Pipeline | None = None  # set inside `pipeline()`
        self.deferred: Callable[[], None] | None = None  # sends held-back writes (PgTx._defer)
        self.ensure()

    @property
    def in_transaction(self) -> bool:
        """As sqlite3's: inside BEGIN ... COMMIT (PostgreSQL never ends one on its own)."""
        return self.in_tx

    def ensure(self) -> psycopg.Connection[Any]:
        if self._pg is None or self._pg.closed or self._pg.broken:
            if self._pg is not None:
                with contextlib.suppress(Exception):
                    self._pg.close()
                self._pg = None
            try:
                pg = psycopg.connect(self.url, autocommit=True, row_factory=_rows,
                                     connect_timeout=max(1, int(self._timeout)), application_name="navseal-gateway")
            except psycopg.Error as exc:
                raise StoreError(f"postgresql: cannot connect: {_one_line(exc)}") from None
            pg.adapters.register_dumper(int, Int8Dumper)
            pg.adapters.register_dumper(bool, _BoolAsInt)
            self._pg = pg
        return self._pg

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """PostgreSQL's pipeline mode for the block: a statement is sent without waiting for its
        result, which is waited for only when read (`_Result`), together with everything sent
        before it; leaving the block waits for the rest. An error of the server inside it is
        BatchFailed (a statement failed: the transaction is lost, not the store) or StoreError
        (connection lost, deadlock), raised where the error is first seen, not necessarily by the
        statement that caused it."""
        pg = self._pg
        if pg is None:
            raise StoreError("postgresql: not connected")
        try:
            with pg.pipeline() as pipe:
                self._pipe = pipe
                try:
                    yield
                finally:
                    self._pipe = None
                self.round_trips += 1  # the wait for the last results, leaving the pipeline
        except psycopg.Error as exc:
            raise self._pipeline_error(exc) from exc

    @property
    def pipelining(self) -> bool:
        return self._pipe is not None

    def sync(self) -> None:
        """In pipeline mode: wait for the results of every statement sent so far (one round trip)."""
        if self._pipe is None:
            return
        self.round_trips += 1
        try:
            self._pipe.sync()
        except psycopg.Error as exc:
            raise self._pipeline_error(exc) from exc

    def send_deferred(self) -> None:
        """Writes a pipelined transaction held back (PgTx._defer) go before any other statement."""
        send = self.deferred
        if send is not None:
            self.deferred = None
            send()

    def _sent(self, pg: psycopg.Connection[Any], text: str, params: Any, returns_key: bool) -> _Result:
        self.send_deferred()
        self.statements += 1
        if not text.startswith("SELECT"):
            self.writes += 1
        if self._pipe is None:
            self.round_trips += 1
        try:
            return _Result(pg.execute(text, params), returns_key, self)
        except psycopg.Error as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            raise failure from exc

    def _failure(self, exc: psycopg.Error) -> StoreError | None:
        """What a statement's error means for the caller: the transaction lost (pipeline mode, a
        lost connection, a deadlock: StoreError), or None: the statement's own error, raised as is."""
        if self._pipe is not None:
            return self._pipeline_error(exc)
        if isinstance(exc, _RETRY_LATER):
            return StoreError(f"postgresql: {_one_line(exc)}")
        return None

    def execute(self, sql: str, args: Any = ()) -> _Result:
        text, params = dialect.query(sql, args)
        pg = self._pg if self.in_tx else self.ensure()  # outside a transaction: reconnect if needed
        if pg is None:
            raise StoreError("postgresql: not connected")
        return self._sent(pg, text, params, dialect.returns_key(sql))

    def executemany(self, sql: str, seq: Any) -> None:
        text, _ = dialect.query(sql)
        pg = self._pg
        if pg is None:
            raise StoreError("postgresql: not connected")
        rows = list(seq)
        self.send_deferred()
        self.statements += len(rows)
        self.writes += len(rows)
        if self._pipe is None:
            self.round_trips += 1  # psycopg sends executemany as one pipeline
        try:
            with pg.cursor() as cur:
                cur.executemany(text, rows)
        except psycopg.Error as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            raise failure from exc

    def raw(self, sql: str, args: Any = None) -> _Result:
        """A statement in PostgreSQL's own dialect (engine-specific parts of this module)."""
        if self._pg is None:
            raise StoreError("postgresql: not connected")
        return self._sent(self._pg, sql, args, False)

    def _pipeline_error(self, exc: psycopg.Error) -> StoreError:
        """An error seen in pipeline mode: the statements after the failed one were not run
        (PipelineAborted), so the transaction is lost; whether the store is (StoreError) or only this
        transaction's statements are (BatchFailed: running it again statement by statement finds the
        one at fault)."""
        lost = self._pg is None or self._pg.closed or self._pg.broken
        if lost or isinstance(exc, (psycopg.InterfaceError, psycopg.errors.TransactionRollback)):
            return StoreError(f"postgresql: {_one_line(exc)}")
        # Anything else (a constraint, a full disk) shows again, or not, when the batch runs again.
        return BatchFailed(f"postgresql, pipelined: {_one_line(exc)}")

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None


# The connection is gone, or PostgreSQL aborted the transaction to break a deadlock between
# instances: nothing of it is committed, so the caller must not ACK (the frames come again).
_RETRY_LATER = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.TransactionRollback)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PgTx(SqliteTx):
    """One PostgreSQL transaction: the SQLite transaction's SQL (translated), plus the row locks
    several instances need (module doc)."""

    _c: Any
    _row_lock = " FOR UPDATE"  # get_seal, lock_escort, prefetch: the seal's row is this transaction's

    @staticmethod
    def _ids_in(ids: Sequence[int]) -> tuple[str, list[Any]]:
        return "= ANY(?)", [list(ids)]  # one parameter, one statement text whatever the batch's size

    @staticmethod
    def _ranges(triples: list[tuple[int, int, int]]) -> tuple[str, list[Any]]:
        columns = [list(c) for c in zip(*triples)]
        return "SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]), CAST(? AS BIGINT[]))", columns

    def __init__(self, conn: Any, keys: KeyCodec | None = None) -> None:
        super().__init__(conn, keys)
        self._new_events: list[str] = []  # event_ids inserted: their outbox ids are set at commit
        # Held-back writes of a pipelined batch (`_defer`): runs, uplinks, and per seal its columns
        # as the batch leaves them.
        self._runs: list[tuple[Any, ...]] = []
        self._uplinks: list[dict[str, Any]] = []
        self._seal_columns: dict[int, dict[str, Any]] = {}

    # -- a pipelined batch's hot writes, sent together --
    def _defer(self) -> bool:
        """In a pipelined batch whose seals' rows are held (prefetch), a frame's three writes (its
        run, its uplink, its seal's columns) are held back and sent as one executemany per kind
        when the transaction sends any other statement, or at COMMIT: psycopg sends a statement
        with a system call and a wake-up of the server each, a third of the ingest thread. The
        order of what the server sees is kept: nothing else is sent in between, inserts of
        distinct rows commute, and a seal's updates (constants, not expressions) are merged into
        one with the latest value of each column. Counted as writes when held, so a unit that fails
        after them is BatchFailed (the batch runs again, statement by statement)."""
        return self._c.pipelining and self._batch is not None

    def _held(self) -> None:
        self._c.writes += 1
        self._c.deferred = self._send_held

    def _send_held(self) -> None:
        runs, uplinks, seals = self._runs, self._uplinks, self._seal_columns
        self._runs, self._uplinks, self._seal_columns = [], [], {}
        counted = self._c.writes  # counted when held
        if runs:
            self._c.executemany(INSERT_RUN, runs)
        if uplinks:
            self._c.executemany(INSERT_UPLINK, uplinks)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for seal_id, columns in seals.items():
            by_columns.setdefault(tuple(sorted(columns)), []).append({**columns, "_id": seal_id})
        for names, rows in by_columns.items():
            self._c.executemany(update_seal_sql(names), rows)
        self._c.writes = counted

    def insert_fix_run(self, seal_id: int, escort_id: int | None, first_rseq: int, base_time: int,
                       body: bytes, received_at: float) -> None:
        if not self._defer():
            return super().insert_fix_run(seal_id, escort_id, first_rseq, base_time, body, received_at)
        params = run_params(seal_id, escort_id, first_rseq, base_time, body, received_at)
        self._runs.append(params)
        self._held()
        assert self._batch is not None
        self._batch.records_written(seal_id, first_rseq, params[2])

    def insert_uplink(self, row: dict[str, Any]) -> None:
        if not self._defer():
            return super().insert_uplink(row)
        self._uplinks.append(dict(row))
        self._held()

    def update_seal(self, seal_id: int, **columns: Any) -> None:
        if not (columns and self._defer() and self._batch is not None and self._batch.seals.get(seal_id) is not None):
            return super().update_seal(seal_id, **columns)
        update_seal_sql(list(columns))  # refuses an unknown column now, not when sent
        self._seal_columns.setdefault(seal_id, {}).update(columns)
        self._batch.seal_updated(seal_id, columns)
        self._held()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """In a pipelined batch, a frame's unit without SAVEPOINT and RELEASE (two statements of a
        frame's five): a frame that fails before writing leaves nothing to undo; one that fails
        after is BatchFailed, and the batch runs again in a transaction with savepoints."""
        if not self._c.pipelining:
            with super().savepoint():
                yield
            return
        writes = self._c.writes
        held = self._batch.save() if self._batch is not None else None
        try:
            yield
        except Exception as exc:
            if isinstance(exc, StoreError):
                raise
            if self._c.writes != writes:
                raise BatchFailed(f"a unit failed after its writes, with no savepoint to undo them: {exc!r}") from exc
            if self._batch is not None and held is not None:
                self._batch.restore(held)
            raise

    def exclusive(self, name: str) -> None:
        self._c.execute(f"SELECT pg_advisory_xact_lock({_EXCLUSIVE}, hashtext(?))", (name,))

    def audit_tail(self) -> dict[str, Any] | None:
        self._c.execute("SELECT seq FROM navseal_audit_head FOR UPDATE")
        return super().audit_tail()

    def insert_audit(self, row: dict[str, Any]) -> int:
        seq = super().insert_audit(row)
        self._c.execute("UPDATE navseal_audit_head SET seq = CASE WHEN seq > ? THEN seq ELSE ? END", (seq, seq))
        return seq

    def insert_events(self, events: Sequence[dict[str, Any]], escort_ids: Sequence[int | None],
                      now: float) -> list[dict[str, Any]]:
        new = super().insert_events(events, escort_ids, now)
        self._new_events += [e["event_id"] for e in new]
        return new

    def before_commit(self) -> None:
        """Give this transaction's outbox rows their final ids, in commit order: under the outbox
        head's row lock, taken last (it waits for no other lock while held: no deadlock), and held
        until COMMIT, so a sink's cursor never passes an id a slower transaction is still writing."""
        self._c.send_deferred()
        if not self._new_events:
            return
        c = self._c
        c.raw("SELECT id FROM navseal_outbox_head FOR UPDATE")
        c.raw("WITH old AS (SELECT o.outbox_id FROM outbox o JOIN events e ON e.event_id = o.event_id "
              "WHERE e.event_id = ANY(%(ids)s) ORDER BY o.outbox_id), "
              "m AS (SELECT outbox_id AS old_id, nextval(pg_get_serial_sequence('outbox', 'outbox_id')) AS new_id "
              "FROM old) UPDATE outbox o SET outbox_id = m.new_id FROM m WHERE o.outbox_id = m.old_id",
              {"ids": self._new_events})
        c.raw("UPDATE events e SET outbox_id = o.outbox_id FROM outbox o "
              "WHERE o.event_id = e.event_id AND e.event_id = ANY(%(ids)s)", {"ids": self._new_events})


class PgStore(SqlStore):
    """PostgreSQL at `url` (postgresql://user:password@host:port/database); see the module doc.
    `cipher` as SqliteStore's."""

    def __init__(self, url: str, *, cipher: Any = None, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.path = _safe(url)  # what messages name
        self._lock = threading.RLock()
        self._keys = KeyCodec(cipher)
        self._c = PgConnection(url, connect_timeout_s)
        self._lease_conn: Any = None
        self._leases: set[str] = set()
        self._migrate()
        if cipher is not None:
            self._encrypt_plain_keys()

    # -- schema --
    def _migrate(self) -> None:
        with self.transaction():
            c = self._c
            c.raw("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            c.raw("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            row = c.raw("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                c.raw("INSERT INTO schema_version (version) VALUES (0)")
            if version > len(MIGRATIONS):
                raise StoreError(f"{self.path}: schema version {version} is newer than this gateway "
                                 f"({len(MIGRATIONS)}); refusing to open")
            if version < len(MIGRATIONS):
                # One round trip for all of it (a script without parameters may hold several statements).
                script = [*_INTERNAL]
                for number in range(version, len(MIGRATIONS)):
                    script += dialect.migration(list(statements(MIGRATIONS[number])))
                    script.append(f"UPDATE schema_version SET version = {number + 1}")
                c.raw(";\n".join(script))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._c.execute("SELECT version FROM schema_version").fetchone()[0])

    # -- transactions --
    def transaction(self) -> contextlib.AbstractContextManager[StoreTx]:
        return self._transaction(pipelined=False)

    def pipelined_transaction(self) -> contextlib.AbstractContextManager[StoreTx]:
        """The transaction in pipeline mode (decision 0021): BEGIN, savepoints and writes whose
        results are not read cost no round trip; COMMIT is confirmed before this returns."""
        return self._transaction(pipelined=True)

    @contextlib.contextmanager
    def _transaction(self, *, pipelined: bool) -> Iterator[StoreTx]:
        with self._lock:
            c = self._c
            c.ensure()
            c.in_tx = True
            try:
                try:
                    with c.pipeline() if pipelined else contextlib.nullcontext():
                        c.raw("BEGIN")
                        tx = PgTx(c, self._keys)
                        yield tx
                        tx.before_commit()
                        try:
                            done = c.raw("COMMIT")
                        except psycopg.Error as exc:
                            raise StoreError(f"commit: {_one_line(exc)}") from exc
                    status = done.statusmessage  # pipelined: waited for as the pipeline ended
                except BaseException:
                    c.deferred = None  # held-back writes of a failed transaction are never sent
                    with contextlib.suppress(StoreError, psycopg.Error):
                        c.raw("ROLLBACK")
                    raise
                if status != "COMMIT":  # an aborted transaction "commits" as ROLLBACK, no error
                    raise StoreError(f"commit: the server answered {status}: nothing committed")
            finally:
                c.in_tx = False
                c.deferred = None

    def _read(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            self._c.ensure()
            return [dict(r) for r in self._c.execute(sql, args).fetchall()]

    # -- sink leases --
    def outbox_fetch(self, sink: str, limit: int = 100) -> list[Any]:
        if not self.hold_lease(f"sink:{sink}"):
            return []  # another instance delivers this sink; it takes over when that one is gone
        return super().outbox_fetch(sink, limit)

    def hold_lease(self, name: str) -> bool:
        """Whether this store's connection holds the lease `name` (taking it when free): a session
        advisory lock, so it ends with the holder's connection (its process killed, its host
        gone: as soon as PostgreSQL notices) and another instance takes it on its next try."""
        with self._lock:
            conn = self._c.ensure()
            if conn is not self._lease_conn:  # a new connection holds none of the old one's leases
                self._lease_conn, self._leases = conn, set()
            if name not in self._leases:
                row = self._c.raw(f"SELECT pg_try_advisory_lock({_LEASE}, hashtext(%s))", (name,)).fetchone()
                if not row[0]:
                    return False
                self._leases.add(name)
            return True

    # -- what SqlStore writes with SQLite specifics --
    def audit_high_water(self) -> int:
        rows = self._read("SELECT seq FROM navseal_audit_head")
        return int(rows[0]["seq"]) if rows else 0

    def write_probe(self, nbytes: int = 64 * 1024) -> None:
        try:
            with self.transaction():
                self._c.raw("INSERT INTO store_probe (filler) VALUES (decode(repeat('00', %s::int), 'hex'))", (nbytes,))
            with self.transaction():
                self._c.raw("DELETE FROM store_probe")
        except psycopg.Error as exc:
            raise StoreError(f"write probe: {_one_line(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            self._c.close()


def _safe(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://?"
    host = info.get("host", "")
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{info.get('user', '')}@{host}{port}/{info.get('dbname', '')}"


def check_pg_store(url: str, *, init: bool = False) -> str:
    """Before the gateway runs on PostgreSQL (the SQLite file checks' counterpart): StoreRefused,
    one line, when the server cannot be reached, or the database holds no gateway schema (without
    `init`: `navseal gateway run --init` creates it), or a newer one. Damage and lost commits are
    the server's to detect (WAL, `initdb --data-checksums`, its replication and backups).
    Returns "new" when `init` will create the schema, "ok" when it passed."""
    from .sqlite_check import StoreRefused

    where = _safe(url)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreRefused(f"{where}: cannot connect: {_one_line(exc)}") from None
    try:
        with conn:
            row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            version = conn.execute("SELECT version FROM schema_version").fetchone()[0] if row[0] else 0
            if version == 0:
                if not init:
                    raise StoreRefused(f"{where}: no gateway schema in this database; `navseal gateway run --init` "
                                       f"creates it (an existing one is never written over)")
                return "new"
            if version > len(MIGRATIONS):
                raise StoreRefused(f"{where}: schema version {version} is newer than this gateway "
                                   f"({len(MIGRATIONS)}); refusing to open")
    except psycopg.Error as exc:
        raise StoreRefused(f"{where}: {_one_line(exc)}") from None
    return "ok"
