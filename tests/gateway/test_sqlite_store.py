"""The store on both engines (SQLite, PostgreSQL: tests/fixtures_postgres.py): transactions,
savepoints, foreign keys, outbox cursors, thread-safety, key handling; SQLite's file specifics."""

import sqlite3
import threading

import psycopg
import pytest
from fixtures_postgres import engine_store

from navseal.gateway.store import MIGRATIONS, SqliteStore, StoreError

both_engines = pytest.mark.usefixtures("store_engine")


def test_migrations_run_once_and_a_second_open_is_safe(tmp_path):
    path = tmp_path / "gw.sqlite3"
    a = SqliteStore(path)
    b = SqliteStore(path)  # e.g. the outbox thread opening the same file
    assert a.schema_version == b.schema_version == len(MIGRATIONS)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    a.provision_seal(7, bytes(32), 1.0)
    assert b.seal_key(7) == bytes(32)
    a.close(), b.close()


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "gw.sqlite3"
    SqliteStore(path).close()
    c = sqlite3.connect(path)
    c.execute("UPDATE schema_version SET version = 99")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(path)


@both_engines
def test_foreign_keys_are_enforced(tmp_path):
    store = engine_store(tmp_path / "gw.sqlite3")
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)):
        with store.transaction() as tx:
            tx.insert_records([{"seal_id": 999, "rseq": 1, "escort_id": None, "kind": "FIX", "time": 0,
                                "lat": 0, "lon": 0, "speed": 0, "course": 0, "fix_quality": 1,
                                "satellites": 5, "hdop": 9, "cable_intact": 1, "housing_closed": 1,
                                "battery_pct": 50, "value": None, "received_at": 0.0}])


@both_engines
def test_transaction_rolls_back_everything_on_error(tmp_path):
    store = engine_store(tmp_path / "gw.sqlite3")
    store.provision_seal(1, bytes(32), 0.0)
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.update_seal(1, last_seen_at=5.0)
            tx.next_downlink_seq(1)
            raise RuntimeError("boom")
    with store.transaction() as tx:
        seal = tx.get_seal(1)
    assert seal["last_seen_at"] is None and seal["downlink_seq"] == 0


@both_engines
def test_savepoint_undoes_one_unit_only(tmp_path):
    store = engine_store(tmp_path / "gw.sqlite3")
    store.provision_seal(1, bytes(32), 0.0)
    with store.transaction() as tx:
        with tx.savepoint():
            tx.update_seal(1, last_seen_at=1.0)
        with pytest.raises(ValueError):
            with tx.savepoint():
                tx.update_seal(1, last_seen_at=2.0)
                raise ValueError
    with store.transaction() as tx:
        assert tx.get_seal(1)["last_seen_at"] == 1.0


def _event(i, seal=1):
    return {"event_id": f"{i:032x}", "kind": "POSITION", "seal_id": seal, "occurred_at": "x", "emitted_at": "y", "n": i}


@both_engines
def test_outbox_cursor_per_sink_and_idempotent_event_ids(tmp_path):
    store = engine_store(tmp_path / "gw.sqlite3")
    store.provision_seal(1, bytes(32), 0.0)
    with store.transaction() as tx:
        new = tx.insert_events([_event(i) for i in range(5)], [None] * 5, 0.0)
        again = tx.insert_events([_event(0), _event(5)], [None] * 2, 0.0)
    assert len(new) == 5 and [e["n"] for e in again] == [5]  # the re-derived event is not queued twice
    items = store.outbox_fetch("a", 3)
    assert [i.event["n"] for i in items] == [0, 1, 2]
    store.outbox_mark_delivered("a", items[-1].outbox_id, now=1.0)
    assert store.outbox_depth("a") == 3
    assert store.outbox_depth("b") == 6  # a new sink starts at the beginning; "a" does not block it
    assert [i.event["n"] for i in store.outbox_fetch("a", 10)] == [3, 4, 5]
    store.outbox_mark_delivered("a", 1, now=2.0)  # never backwards
    assert store.outbox_depth("a") == 3
    store.outbox_note_failure("b", "connection refused", next_attempt_at=10.0, now=1.0)
    status = store.outbox_status()
    assert status["b"]["attempts"] == 1 and status["b"]["last_error"] == "connection refused"
    assert status["a"]["depth"] == 3


@both_engines
def test_downlink_seq_is_monotonic_and_persisted(tmp_path):
    path = tmp_path / "gw.sqlite3"
    store = engine_store(path)
    store.provision_seal(1, bytes(32), 0.0)
    with store.transaction() as tx:
        seqs = [tx.next_downlink_seq(1) for _ in range(3)]
    store.close()
    store = engine_store(path)
    with store.transaction() as tx:
        seqs.append(tx.next_downlink_seq(1))
    assert seqs == [1, 2, 3, 4]


@both_engines
def test_provision_validates_and_replaces_key(tmp_path):
    store = engine_store(tmp_path / "gw.sqlite3")
    with pytest.raises(StoreError):
        store.provision_seal(1, b"short", 0.0)
    with pytest.raises(StoreError):
        store.provision_seal(0, bytes(32), 0.0)
    store.provision_seal(1, bytes(32), 0.0)
    store.provision_seal(1, b"\x01" * 32, 1.0)
    assert store.seal_key(1) == b"\x01" * 32
    assert all("key" not in s for s in store.seals())


@both_engines
def test_one_store_object_shared_by_threads(tmp_path):
    store = engine_store(tmp_path / "gw.sqlite3")
    store.provision_seal(1, bytes(32), 0.0)
    errors = []

    def work():
        try:
            for _ in range(200):
                with store.transaction() as tx:
                    tx.next_downlink_seq(1)
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    with store.transaction() as tx:
        assert tx.get_seal(1)["downlink_seq"] == 800
