"""Keys as secrets (encrypted at rest, a 0600 database, master key handling) and the audit log's
hash chain (an edited or deleted row is found by `navseal gateway audit verify`)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess

import pytest

from gateway_harness import NAVSEAL
from navseal.gateway import audit
from navseal.gateway.auth import Actor
from navseal.gateway.config import ConfigError, load_config
from navseal.gateway.secrets import KeyCipher, load_master_key, new_master_key_file
from navseal.gateway.store import SqliteStore, StoreError

KEY = bytes(range(100, 132))
ADMIN = Actor("root", "admin")


def cipher() -> KeyCipher:
    return KeyCipher(bytes(32))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_store_and_its_wal_files_are_0600_and_hold_no_plaintext_key(tmp_path):
    db = tmp_path / "gw.sqlite3"
    old = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        store = SqliteStore(str(db), cipher=cipher())
        store.provision_seal(1001, KEY, 0.0)
        assert store.seal_key(1001) == KEY
        files = [db, tmp_path / "gw.sqlite3-wal", tmp_path / "gw.sqlite3-shm"]
        assert all(p.exists() for p in files)
        assert {str(p.name): mode(p) for p in files} == {p.name: 0o600 for p in files}
        raw = b"".join(p.read_bytes() for p in files)
        assert KEY not in raw and KEY.hex().encode() not in raw
        store.close()
    finally:
        os.umask(old)


def test_an_existing_world_readable_store_is_tightened(tmp_path):
    db = tmp_path / "gw.sqlite3"
    SqliteStore(str(db)).close()
    os.chmod(db, 0o644)
    SqliteStore(str(db)).close()
    assert mode(db) == 0o600


def test_plaintext_keys_are_encrypted_when_a_master_key_arrives_and_a_wrong_one_is_refused(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    plain = SqliteStore(db)
    plain.provision_seal(7, KEY, 0.0)
    plain.close()
    store = SqliteStore(db, cipher=cipher())
    assert store.seal_key(7) == KEY
    store.close()
    with sqlite3.connect(db) as c:
        [(blob,)] = c.execute("SELECT key FROM seals").fetchall()
    assert KEY not in bytes(blob) and len(blob) == 61
    with pytest.raises(StoreError, match="does not decrypt"):
        SqliteStore(db, cipher=KeyCipher(b"\x01" * 32))
    no_key = SqliteStore(db)
    with pytest.raises(StoreError, match="no master key"):
        no_key.seal_key(7)
    no_key.close()


def test_a_ciphertext_moved_to_another_seal_does_not_decrypt(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    store = SqliteStore(db, cipher=cipher())
    store.provision_seal(1, KEY, 0.0)
    store.provision_seal(2, bytes(32), 0.0)
    store.close()
    with sqlite3.connect(db) as c:
        c.execute("UPDATE seals SET key = (SELECT key FROM seals WHERE seal_id = 1) WHERE seal_id = 2")
    store = SqliteStore(db, cipher=cipher())
    assert store.seal_key(1) == KEY
    with pytest.raises(StoreError, match="seal 2"):
        store.seal_key(2)
    store.close()


def test_master_key_file_must_be_private(tmp_path):
    path = tmp_path / "master.key"
    new_master_key_file(path)
    assert mode(path) == 0o600
    config = load_config(None, master_key_file=str(path))
    assert load_master_key(config, environ={}) is not None
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="0640.*chmod 600"):
        load_master_key(config, environ={})
    with pytest.raises(ConfigError, match="NAVSEAL_MASTER_KEY"):
        load_master_key(load_config(None), environ={"NAVSEAL_MASTER_KEY": "abc"})


def test_keys_come_from_a_file_or_stdin_never_argv(tmp_path):
    db = tmp_path / "gw.sqlite3"
    env = dict(os.environ, NAVSEAL_MASTER_KEY="00" * 32)
    gone = subprocess.run([NAVSEAL, "gateway", "provision", "--seal", "5", "--key", KEY.hex(), "--db", str(db)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert gone.returncode == 2 and "--key-file" in gone.stderr and KEY.hex() not in gone.stderr
    piped = subprocess.run([NAVSEAL, "gateway", "provision", "--seal", "5", "--key-file", "-", "--db", str(db)],
                           input=KEY.hex() + "\n", capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0, piped.stderr
    key_file = tmp_path / "seal-6.key"
    key_file.write_text(KEY.hex())
    from_file = subprocess.run([NAVSEAL, "gateway", "provision", "--seal", "6", "--key-file", str(key_file),
                                "--db", str(db)], capture_output=True, text=True, env=env, timeout=60)
    assert from_file.returncode == 0, from_file.stderr
    store = SqliteStore(str(db), cipher=cipher())
    assert store.seal_key(5) == store.seal_key(6) == KEY
    store.close()
    assert KEY not in db.read_bytes()


# -- the audit log ------------------------------------------------------------------------------


def write_rows(db: str, n: int) -> None:
    store = SqliteStore(db)
    for i in range(n):
        with store.transaction() as tx:
            audit.record(tx, ADMIN, "seal.provision", f"seal:{i}", {"i": i}, now=1000.0 + i)
    store.close()


def verify(db: str) -> tuple[int, dict]:
    result = subprocess.run([NAVSEAL, "gateway", "audit", "verify", "--db", db], capture_output=True, text=True,
                            timeout=60)
    return result.returncode, json.loads(result.stdout)


def tamper(db: str, sql: str) -> None:
    """What someone with the file could do: drop the append-only triggers, then change rows."""
    with sqlite3.connect(db) as c:
        c.execute("DROP TRIGGER IF EXISTS audit_no_update")
        c.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        c.execute(sql)


def test_the_audit_log_refuses_updates_and_deletes(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    write_rows(db, 2)
    with sqlite3.connect(db) as c:
        for sql in ("UPDATE audit SET outcome = 'ok'", "DELETE FROM audit WHERE seq = 1"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                c.execute(sql)


def test_audit_verify_passes_an_intact_chain_and_prints_its_head(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    write_rows(db, 5)
    code, out = verify(db)
    store = SqliteStore(db)
    last = store.audit_rows()[-1]
    store.close()
    assert code == 0 and out["ok"] and out["rows"] == 5
    assert (out["head_seq"], out["head_hash"]) == (5, last["hash"])


@pytest.mark.parametrize("change, finding", [
    ("UPDATE audit SET actor_user = 'someone-else' WHERE seq = 3", "row 3: contents do not match its hash"),
    ("UPDATE audit SET details = '{\"i\":99}' WHERE seq = 1", "row 1: contents do not match its hash"),
    ("DELETE FROM audit WHERE seq = 2", "row 2: missing"),
    ("DELETE FROM audit WHERE seq = 5", "rows 5..5: deleted from the end"),
])
def test_audit_verify_finds_an_edited_or_deleted_row(tmp_path, change, finding):
    db = str(tmp_path / "gw.sqlite3")
    write_rows(db, 5)
    tamper(db, change)
    code, out = verify(db)
    assert code == 1 and not out["ok"]
    assert any(p.startswith(finding) for p in out["problems"]), out["problems"]


def test_a_rehashed_edit_still_breaks_the_link_to_the_next_row(tmp_path):
    """Editing a row and fixing its own hash is not enough: the next row names the old hash."""
    db = str(tmp_path / "gw.sqlite3")
    write_rows(db, 3)
    store = SqliteStore(db)
    row = dict(store.audit_rows()[1])
    store.close()
    row["actor_user"] = "mallory"
    new_hash = audit.chain_hash(row["prev_hash"], row)
    tamper(db, f"UPDATE audit SET actor_user = 'mallory', hash = '{new_hash}' WHERE seq = 2")
    code, out = verify(db)
    assert code == 1 and any(p.startswith("row 3: does not follow") for p in out["problems"])


def test_an_unreadable_key_stops_only_its_own_seal(tmp_path):
    """A key row that does not decrypt (copied from another seal, or a wrong master key for it):
    that seal's frames and commands fail; every other seal's commands still go out."""
    from navseal.bench.seal_frames import SealFrames
    from navseal.gateway.config import load_config
    from navseal.gateway.pipeline import Pipeline

    db = str(tmp_path / "gw.sqlite3")
    clock = [1_800_000_000.0]
    store = SqliteStore(db, cipher=cipher())
    pipeline = Pipeline(store, load_config(None, db_path=db), lambda: clock[0])
    seals = {sid: SealFrames(sid, key=bytes([sid]) * 32, t0=int(clock[0])) for sid in (1, 2)}
    for sid, seal in seals.items():
        pipeline.provision_seal(sid, seal.key)
        pipeline.handle_uplink(seal.hello(), "t")  # heard: online
        pipeline.request_activation({
            "seal_id": sid, "declaration": f"10228010/261126/000000{sid}", "vehicle": "123ABC02",
            "departure_office_code": "10228010", "departure_office_name": "A", "dest_office_code": "10232010",
            "dest_office_name": "K", "period_start": clock[0], "period_end": clock[0] + 86400})
    store.close()
    with sqlite3.connect(db) as c:
        c.execute("UPDATE seals SET key = (SELECT key FROM seals WHERE seal_id = 1) WHERE seal_id = 2")
    store = SqliteStore(db, cipher=cipher())
    pipeline = Pipeline(store, load_config(None, db_path=db), lambda: clock[0])
    clock[0] += 60
    sent = pipeline.tick()
    assert [sid for sid, _ in sent] == [1]
    assert pipeline.handle_uplink(seals[2].records(1), "t").result == "rejected"
    assert pipeline.handle_uplink(seals[1].records(1), "t").result == "accepted"
    store.close()
