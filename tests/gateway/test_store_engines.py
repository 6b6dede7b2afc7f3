"""The two store engines stay one schema: SQLite and PostgreSQL reach the same migration version
with the same tables, columns, indexes and triggers; the SQL translation (gateway/store/dialect.py)
does what its doc says; `[store] url` selects PostgreSQL."""

from __future__ import annotations

import pytest
from fixtures_postgres import PgCluster

from navseal.gateway.config import ConfigError, effective, load_config
from navseal.gateway.store import MIGRATIONS, SqliteStore, StoreError, dialect, open_store
from navseal.gateway.store.postgres import INTERNAL_TABLES, PgStore


def _sqlite_schema(store: SqliteStore) -> dict[str, object]:
    tables = [r["name"] for r in store._read("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%'") if r["name"] not in INTERNAL_TABLES]
    return {
        "columns": {t: sorted(r["name"] for r in store._read(f"PRAGMA table_info({t})")) for t in tables},
        "indexes": sorted(r["name"] for r in store._read(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")),
        "triggers": sorted(r["name"] for r in store._read("SELECT name FROM sqlite_master WHERE type = 'trigger'")),
    }


def _pg_schema(store: PgStore) -> dict[str, object]:
    columns: dict[str, list[str]] = {}
    for r in store._read("SELECT table_name, column_name FROM information_schema.columns "
                         "WHERE table_schema = current_schema()"):
        if r["table_name"] not in INTERNAL_TABLES:
            columns.setdefault(r["table_name"], []).append(r["column_name"])
    return {
        "columns": {t: sorted(c) for t, c in columns.items()},
        # primary keys and UNIQUE constraints: SQLite's autoindexes, not written in the migrations
        "indexes": sorted(r["indexname"] for r in store._read(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
            if not r["indexname"].endswith(("_pkey", "_key"))),
        "triggers": sorted({r["trigger_name"] for r in store._read(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = current_schema()")}),
    }


def test_both_engines_reach_the_same_schema(tmp_path, pg_cluster: PgCluster):
    lite = SqliteStore(str(tmp_path / "gw.sqlite3"))
    pg = PgStore(pg_cluster.database(str(tmp_path / "gw")))
    try:
        assert lite.schema_version == pg.schema_version == len(MIGRATIONS)
        a, b = _sqlite_schema(lite), _pg_schema(pg)
        assert sorted(a["columns"]) == sorted(b["columns"])
        assert a == b
        assert "audit_no_update" in a["triggers"]  # type: ignore[operator]
    finally:
        lite.close()
        pg.close()


def test_the_audit_log_is_append_only_on_postgresql_too(tmp_path, pg_cluster: PgCluster):
    from navseal.gateway import audit, auth

    store = PgStore(pg_cluster.database(str(tmp_path / "gw")))
    try:
        with store.transaction() as tx:
            audit.record(tx, auth.host_actor(), "test.action", "x", {}, outcome="ok")
        assert store.audit_high_water() == 1
        for sql in ("UPDATE audit SET action = 'x'", "DELETE FROM audit"):
            with pytest.raises(Exception, match="append-only"):
                with store.transaction() as tx:
                    tx._c.execute(sql)
        assert [r["seq"] for r in store.audit_rows()] == [1]
    finally:
        store.close()


def test_reopening_migrates_nothing_and_a_newer_schema_is_refused(tmp_path, pg_cluster: PgCluster):
    url = pg_cluster.database(str(tmp_path / "gw"))
    PgStore(url).close()
    store = PgStore(url)
    try:
        assert store.schema_version == len(MIGRATIONS)
        store._c.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    finally:
        store.close()
    with pytest.raises(StoreError, match="newer than this gateway"):
        PgStore(url)


def test_a_store_survives_a_postgresql_restart(tmp_path, pg_cluster: PgCluster):
    if pg_cluster.datadir is None:
        pytest.skip("the server is given by NAVSEAL_TEST_PG_URL: the tests may not restart it")
    store = PgStore(pg_cluster.database(str(tmp_path / "gw")))
    try:
        store.provision_seal(7, b"k" * 32, 1.0)
        pg_cluster.restart()
        with pytest.raises(StoreError):  # the connection died with the server: this call fails...
            store.provision_seal(8, b"k" * 32, 1.0)
        store.provision_seal(8, b"k" * 32, 1.0)  # ...the next one reconnects
        assert store.seal_key(7) == store.seal_key(8) == b"k" * 32
    finally:
        store.close()


@pytest.mark.parametrize("sql, args, expect, expect_args", [
    ("SELECT * FROM seals WHERE seal_id = ?", (1,), "SELECT * FROM seals WHERE seal_id = %s", (1,)),
    ("SELECT a FROM t WHERE b = :b AND c = 'x:y?'", {"b": 1}, "SELECT a FROM t WHERE b = %(b)s AND c = 'x:y?'",
     {"b": 1}),
    ("SELECT ?2 + ?1 + ?2", (5, 6), "SELECT %(_2)s + %(_1)s + %(_2)s", {"_1": 5, "_2": 6}),
    ("SELECT 1 WHERE a LIKE 'x%' AND b = ?", (1,), "SELECT 1 WHERE a LIKE 'x%%' AND b = %s", (1,)),
    ("INSERT OR IGNORE INTO sink_cursors (sink) VALUES (?)", ("s",),
     "INSERT INTO sink_cursors (sink) VALUES (%s) ON CONFLICT DO NOTHING", ("s",)),
    ("INSERT OR IGNORE INTO alarm_acks (a) VALUES (:a)", {"a": 1},
     "INSERT INTO alarm_acks (a) VALUES (%(a)s) ON CONFLICT DO NOTHING RETURNING ack_id", {"a": 1}),
    ("INSERT INTO escorts (a) VALUES (?)", (1,), "INSERT INTO escorts (a) VALUES (%s) RETURNING escort_id", (1,)),
    ("UPDATE seals SET downlink_seq = downlink_seq + 1 WHERE seal_id = ? RETURNING downlink_seq", (1,),
     "UPDATE seals SET downlink_seq = downlink_seq + 1 WHERE seal_id = %s RETURNING downlink_seq", (1,)),
])
def test_queries_are_translated_as_the_dialect_says(sql, args, expect, expect_args):
    assert dialect.query(sql, args) == (expect, expect_args)


def test_migrations_are_translated_as_the_dialect_says():
    assert dialect.ddl("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, k BLOB, at REAL, "
                       "n TEXT DEFAULT 'INTEGER') WITHOUT ROWID") == (
        "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, k BYTEA, at DOUBLE PRECISION, "
        "n TEXT COLLATE \"C\" DEFAULT 'INTEGER')")
    assert dialect.ddl("CREATE TRIGGER no_del BEFORE DELETE ON audit BEGIN\n SELECT RAISE(ABORT, 'no');\nEND") == (
        "CREATE TRIGGER no_del BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION navseal_refuse('no')")
    assert dialect.ddl("CREATE TABLE p (id INTEGER PRIMARY KEY, b BLOB)") == (  # the rowid: given on NULL
        "CREATE TABLE p (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, b BYTEA)")
    with pytest.raises(dialect.DialectError):
        dialect.ddl("CREATE TRIGGER x AFTER INSERT ON t BEGIN UPDATE t SET a = 1; END")
    with pytest.raises(dialect.DialectError):
        dialect.query("SELECT ? WHERE a = :a", (1,))


def test_the_store_url_selects_postgresql_and_check_config_refuses_another_scheme(tmp_path, pg_cluster):
    url = pg_cluster.database(str(tmp_path / "gw"))
    store = open_store(load_config(None, db_path=str(tmp_path / "unused.sqlite3"), store_url=url))
    try:
        assert isinstance(store, PgStore)
    finally:
        store.close()
    assert not (tmp_path / "unused.sqlite3").exists()
    path = tmp_path / "gw.toml"
    path.write_text('[store]\nurl = "mysql://db/x"\n')
    with pytest.raises(ConfigError, match=r"\[store\] url: a postgresql:// URL"):
        load_config(path)
    path.write_text('[store]\nurl = "postgresql://gw:secret@db.example:5432/navseal"\n')
    shown = effective(load_config(path))["store_url"]
    assert shown == "postgresql://gw@db.example:5432/navseal"  # never the password


def _event(n: int) -> dict:
    return {"event_id": f"{n:032x}", "kind": "POSITION", "seal_id": 1, "occurred_at": "x", "emitted_at": "y", "n": n}


def test_outbox_ids_follow_commit_order_across_instances(tmp_path, pg_cluster: PgCluster):
    """Two instances' transactions: the one that inserted its event first commits last. A sink that
    delivered the other's event meanwhile must still get it: its id is above the cursor."""
    url = pg_cluster.database(str(tmp_path / "gw"))
    first, second, sink = PgStore(url), PgStore(url), PgStore(url)
    try:
        first.provision_seal(1, b"k" * 32, 0.0)
        slow = first.transaction()
        tx = slow.__enter__()
        tx.insert_events([_event(1)], [None], 0.0)  # takes an outbox id first...
        with second.transaction() as other:
            other.insert_events([_event(2)], [None], 0.0)  # ...this one commits first
        delivered = sink.outbox_fetch("s")
        assert [i.event["n"] for i in delivered] == [2]
        sink.outbox_mark_delivered("s", delivered[-1].outbox_id)
        slow.__exit__(None, None, None)
        assert [i.event["n"] for i in sink.outbox_fetch("s")] == [1]
        assert [e["n"] for e in sink.events()] == [2, 1]  # events carry the same ids
    finally:
        first.close(), second.close(), sink.close()


def test_a_sink_is_delivered_by_one_instance_and_another_takes_over(tmp_path, pg_cluster: PgCluster):
    url = pg_cluster.database(str(tmp_path / "gw"))
    a, b = PgStore(url), PgStore(url)
    try:
        a.provision_seal(1, b"k" * 32, 0.0)
        with a.transaction() as tx:
            tx.insert_events([_event(1)], [None], 0.0)
        assert len(a.outbox_fetch("s")) == 1
        assert b.outbox_fetch("s") == [] and b.outbox_depth("s") == 1  # a holds the lease
        assert len(b.outbox_fetch("t")) == 1  # another sink's lease is free
        a.close()  # the holder's connection ends (a process killed ends it too)
        assert wait_for(lambda: len(b.outbox_fetch("s")) == 1)
    finally:
        a.close(), b.close()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_keys_stored_before_a_master_key_are_encrypted_when_one_is_given(tmp_path, pg_cluster: PgCluster):
    from navseal.gateway.secrets import KeyCipher

    url = pg_cluster.database(str(tmp_path / "gw"))
    plain = PgStore(url)
    plain.provision_seal(3, b"\x07" * 32, 0.0)
    row = plain._read("SELECT seal_id, key FROM seals")[0]
    assert dict(row) == {"seal_id": 3, "key": b"\x07" * 32} and list(row.values()) == [3, b"\x07" * 32]
    plain.close()
    store = PgStore(url, cipher=KeyCipher(b"\x01" * 32))
    try:
        assert store.seal_key(3) == b"\x07" * 32
        assert store._read("SELECT key FROM seals")[0]["key"] != b"\x07" * 32  # encrypted at rest now
    finally:
        store.close()
    with pytest.raises(StoreError):
        PgStore(url, cipher=KeyCipher(b"\x02" * 32))  # another master key than the one they were encrypted with


def test_a_store_url_libpq_cannot_read_is_refused_with_its_key(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text('[store]\nurl = "postgresql://gw@db/navseal?nosuchparam=1"\n')
    with pytest.raises(ConfigError, match=r"^\[store\] url: "):
        load_config(path)


def test_postgresql_is_checked_before_the_gateway_runs_on_it(tmp_path, pg_cluster: PgCluster):
    from navseal.gateway.store import StoreRefused, check_store

    url = pg_cluster.database(str(tmp_path / "gw"))
    config = load_config(None, db_path=str(tmp_path / "unused.sqlite3"), store_url=url)
    with pytest.raises(StoreRefused, match="no gateway schema.*--init"):
        check_store(config)  # an empty database is not silently taken for a new gateway's
    assert check_store(config, init=True) == "new"
    PgStore(url).close()
    assert check_store(config) == "ok"
    unreachable = load_config(None, store_url="postgresql://navseal@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreRefused, match="cannot connect"):
        check_store(unreachable)


def test_dead_letters_and_probe_on_postgresql(tmp_path, pg_cluster: PgCluster):
    store = PgStore(pg_cluster.database(str(tmp_path / "gw")))
    try:
        store.provision_seal(1, b"k" * 32, 0.0)
        with store.transaction() as tx:
            tx.insert_events([_event(1), _event(2)], [None, None], 0.0)
        first = store.outbox_fetch("s")[0]
        dead = store.outbox_dead_letter("s", first.outbox_id, first.event["event_id"], "422 refused", 5.0)
        assert [i.event["n"] for i in store.outbox_fetch("s")] == [2]  # the sink moved on
        assert [d["event"]["n"] for d in store.dead_letters(sink="s", status="dead")] == [1]
        assert store.dead_letters(sink="other") == [] and store.dead_letter_counts() == {"s": 1}
        with store.transaction() as tx:
            assert tx.request_dead_letter_replay(dead, 6.0)["status"] == "replay"
        store.dead_letter_settled(dead, delivered=True, error=None, now=7.0)
        assert store.dead_letter_counts() == {}
        store.write_probe()
    finally:
        store.close()
