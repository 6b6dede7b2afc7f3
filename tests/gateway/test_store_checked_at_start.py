"""`navseal gateway run` refuses a store it must not run on, with one line and exit 4, on real files:
missing (without --init), 0 bytes, cut in half, 4 kB of random bytes written mid-file, and a -wal
file deleted after a real gateway process that had acknowledged frames was killed with SIGKILL
(committed data lost: caught by the commit mark kept beside the database)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from gateway_harness import (
    NAVSEAL,
    GatewayProcess,
    MqttSeal,
    bring_online_and_activate,
    free_port,
    make_tokens,
    wait_until,
    write_config,
)
from navseal.gateway.secrets import new_master_key_file
from navseal.gateway.store import SqliteStore, StoreRefused, check_store
from navseal.gateway.store.sqlite_check import check_store_file, mark_path, read_mark
from navseal.protocol import decode_frame

EXIT_STORE = 4


def _config(tmp_path, db) -> os.PathLike:
    master = tmp_path / "master.key"
    if not master.exists():
        new_master_key_file(master)
    path = tmp_path / "gw.toml"
    path.write_text(f'db_path = "{db}"\nmaster_key_file = "{master}"\n[mqtt]\nhost = ""\n'
                    f"[http]\nport = {free_port()}\n")
    return path


def _run(config, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([NAVSEAL, "gateway", "run", *extra, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def _refused(result: subprocess.CompletedProcess, words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_STORE, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("navseal gateway: ") and words in lines[0], lines[0]


def _database(path, seals: int = 300) -> None:
    """A database of several hundred kB: seals with keys and records (multi-page tables)."""
    store = SqliteStore(str(path))
    try:
        for sid in range(1, seals + 1):
            store.provision_seal(sid, os.urandom(32), time.time())
        with store.transaction() as tx:
            tx.insert_records([{"seal_id": sid, "rseq": r, "escort_id": None, "kind": "FIX", "time": 1_700_000_000 + r,
                                "lat": 1, "lon": 2, "speed": 0, "course": 0, "fix_quality": 1, "satellites": 7,
                                "hdop": 9, "cable_intact": 1, "housing_closed": 1, "battery_pct": 80, "value": None,
                                "received_at": time.time()} for sid in range(1, seals + 1) for r in range(1, 11)])
    finally:
        store.close()  # the last connection checkpoints: everything is in the main file


def test_a_missing_database_is_refused_without_init_and_created_with_it(tmp_path):
    db = tmp_path / "gw.sqlite3"
    config = _config(tmp_path, db)
    _refused(_run(config), "--init")
    assert not db.exists()
    proc = subprocess.Popen([NAVSEAL, "gateway", "run", "--init", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: read_mark(mark_path(str(db))) is not None or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, proc.stderr.read()
    finally:
        proc.terminate()
        proc.wait(30)
    assert db.stat().st_size > 0 and (os.stat(mark_path(str(db))).st_mode & 0o777) == 0o600
    # Once created, it is used as it is, with or without --init.
    assert check_store_file(str(db)) == "ok"


def test_an_empty_file_is_refused(tmp_path):
    db = tmp_path / "gw.sqlite3"
    db.write_bytes(b"")
    config = _config(tmp_path, db)
    _refused(_run(config), "is empty (0 bytes)")
    _refused(_run(config, "--init"), "is empty (0 bytes)")  # --init never writes over a file
    assert db.stat().st_size == 0


def test_a_file_cut_in_half_is_refused(tmp_path):
    db = tmp_path / "gw.sqlite3"
    _database(db)
    size = db.stat().st_size
    assert size > 100_000
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    _refused(_run(_config(tmp_path, db)), "truncated")


@pytest.mark.parametrize("where", [0.3, 0.5, 0.77])
def test_4kb_of_random_bytes_mid_file_are_refused(tmp_path, where):
    db = tmp_path / "gw.sqlite3"
    _database(db)
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.seek(int(size * where) + 123)  # not page-aligned: it hits two pages
        f.write(os.urandom(4096))
    assert db.stat().st_size == size
    _refused(_run(_config(tmp_path, db)), "damaged")


def test_not_a_database_is_refused(tmp_path):
    db = tmp_path / "gw.sqlite3"
    db.write_bytes(b"hello, I am a text file\n" * 100)
    _refused(_run(_config(tmp_path, db)), "not a SQLite database")


def test_a_deleted_wal_after_sigkill_is_refused_as_lost_committed_data(tmp_path, mosquitto_broker):
    db = tmp_path / "gw.sqlite3"
    http_port = free_port()
    config = write_config(tmp_path / "gw.toml", mosquitto_broker, db=db, http_port=http_port, sinks=[])
    tokens = make_tokens(db)
    gw = GatewayProcess(config, http_port, tmp_path / "gateway.log", tokens).start()
    seal = MqttSeal(mosquitto_broker, 3001)
    try:
        bring_online_and_activate(gw.api, seal, tokens["operator"])
        acked = set()
        sent = set()
        for _ in range(30):
            frame = seal.frames.records(20)
            sent.add(decode_frame(frame, seal.frames.key).seq)
            seal.send(frame)
        deadline = time.monotonic() + 30
        while not sent <= acked and time.monotonic() < deadline:
            frame = decode_frame(seal.downlinks.get(timeout=30), seal.frames.key)
            if frame.type == "ACK":
                acked.add(frame.payload["acked_seq"])
        assert len(acked) >= 30, "the gateway did not acknowledge the frames"
        gw.kill()
    finally:
        seal.close()
        gw.kill()
    wal = db.with_name(db.name + "-wal")
    assert wal.exists() and wal.stat().st_size > 0, "the committed frames should still be in the WAL"

    # Control: the same files, WAL included, pass the check (a restart after SIGKILL is fine).
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (db.name, wal.name, db.name + "-shm", db.name + ".commit-mark"):
        if (tmp_path / name).exists():
            shutil.copy2(tmp_path / name, copy / name)
    assert check_store_file(str(copy / db.name)) == "ok"
    store = SqliteStore(str(copy / db.name))
    try:
        assert len(store.records(3001)) == 1 + 30 * 20
    finally:
        store.close()

    wal.unlink()
    _refused(subprocess.run([NAVSEAL, "gateway", "run", "--config", str(config)], capture_output=True, text=True,
                            timeout=60), "lost committed data")
    with pytest.raises(StoreRefused, match="lost committed data"):
        check_store(type("C", (), {"db_path": str(db)})(), init=True)


def test_a_missing_database_with_its_mark_left_is_refused_even_with_init(tmp_path):
    db = tmp_path / "gw.sqlite3"
    _database(db, seals=3)
    store = SqliteStore(str(db), commit_mark=True)
    store.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            os.unlink(str(db) + suffix)
    _refused(_run(_config(tmp_path, db), "--init"), "is missing but its commit mark")
    assert not db.exists()
