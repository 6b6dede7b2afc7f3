"""`navseal gateway ... --db`: the commands straight on the database, and the retention purge."""

from __future__ import annotations

import json
import subprocess

from gateway_harness import NAVSEAL

from navseal.bench.seal_frames import SealFrames
from navseal.gateway.config import load_config
from navseal.gateway.pipeline import Pipeline
from navseal.gateway.store import SqliteStore


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NAVSEAL, "gateway", *args], capture_output=True, text=True, timeout=60)


def test_provision_activate_status_on_the_database(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    route = tmp_path / "route.gpx"
    route.write_text('<gpx><rte><rtept lat="43.2" lon="76.9"/><rtept lat="44.2" lon="79.9"/></rte></gpx>')
    refused = run("provision", "--seal", "1001", "--test-key", "--db", db)
    assert refused.returncode == 1 and "test_key" in refused.stderr  # not without the development flag
    assert run("provision", "--seal", "1001", "--test-key", "--dev-test-keys", "--db", db).returncode == 0
    result = run("activate", "--seal", "1001", "--declaration", "10228010/261126/0000001", "--vehicle", "V-1",
                 "--departure-office", "10228010", "--departure-office-name", "Almaty",
                 "--dest-office", "10232010", "--dest-office-name", "Khorgos",
                 "--period-hours", "24", "--route", str(route), "--corridor", "300", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    escort = json.loads(result.stdout)["escort"]
    assert escort["route_points"] >= 2 and escort["corridor_m"] == 300
    status = run("status", "--seal", "1001", "--db", db, "--json")
    assert json.loads(status.stdout)["escorts"][0]["status"] == "requested"
    unknown = run("activate", "--seal", "77", "--declaration", "10228010/261126/0000002", "--vehicle", "V",
                  "--departure-office", "10228010", "--departure-office-name", "Almaty", "--dest-office", "10232010",
                  "--dest-office-name", "K", "--period-hours", "1", "--db", db)
    assert unknown.returncode == 1 and "unknown_seal" in unknown.stderr
    checked = run("activate", "--seal", "1001", "--declaration", "D-1", "--vehicle", "V",
                  "--departure-office", "10228010", "--departure-office-name", "Almaty", "--dest-office", "10232010",
                  "--dest-office-name", "K", "--period-hours", "1", "--db", db)
    assert checked.returncode == 1 and "declaration" in checked.stderr  # the API's checks apply to --db too
    bad_route = run("activate", "--seal", "1001", "--declaration", "10228010/261126/0000001", "--vehicle", "V",
                    "--departure-office", "10228010", "--departure-office-name", "Almaty",
                    "--dest-office", "10232010", "--dest-office-name", "K", "--period-hours", "1",
                    "--route", str(tmp_path / "missing.geojson"), "--db", db)
    assert bad_route.returncode == 2
    # Every command that opened the database is in the audit log under the host account.
    store = SqliteStore(db)
    try:
        rows = store.audit_rows()
    finally:
        store.close()
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("seal.provision", "refused"), ("seal.provision", "ok"), ("escort.activate", "ok"), ("escort.read", "ok"),
        ("escort.activate", "refused"), ("escort.activate", "refused")]
    assert all(r["via"] == "db" and r["actor_user"].startswith("host:") for r in rows)


def test_purge_keeps_five_years_after_deactivation(tmp_path):
    """Build a finished escort at a known time through the real pipeline, then purge as of dates."""
    db = str(tmp_path / "gw.sqlite3")
    clock = [1_764_115_200.0]  # 2025-11-26T00:00:00Z
    config = load_config(None, db_path=db)
    store = SqliteStore(db)
    pipeline = Pipeline(store, config, lambda: clock[0])
    seal = SealFrames(1001, t0=int(clock[0]))
    pipeline.provision_seal(1001, seal.key)
    pipeline.request_activation({
        "seal_id": 1001, "declaration": "D-1", "vehicle": "V-1", "departure_office_code": "A",
        "departure_office_name": "Almaty", "dest_office_code": "K", "dest_office_name": "Khorgos",
        "period_start": clock[0], "period_end": clock[0] + 86400})
    activate = [raw for _, raw in pipeline.handle_uplink(seal.hello(), "t").downlink if raw[3] == 0x82][0]
    pipeline.handle_uplink(seal.command_result(activate), "t")
    pipeline.handle_uplink(seal.records(3), "t")
    pipeline.request_deactivation(1001, "D-1", "V-1")
    deactivate = [raw for _, raw in pipeline.handle_uplink(seal.records(1), "t").downlink if raw[3] == 0x83][0]
    pipeline.handle_uplink(seal.command_result(deactivate), "t")
    assert pipeline.status(seal_id=1001)[0]["status"] == "deactivated"
    store.close()

    early = run("purge", "--db", db, "--now", "2030-11-26T00:00:00Z")
    assert early.returncode == 0, early.stderr
    assert json.loads(early.stdout)["purged"]["escorts"] == 0
    late = run("purge", "--db", db, "--now", "2030-11-28T00:00:00Z")
    purged = json.loads(late.stdout)["purged"]
    assert purged["escorts"] == 1 and purged["records"] >= 4


def test_users_and_tokens_from_the_command_line(tmp_path):
    """The first admin on the gateway host (--db), then everything else through the API with its token."""
    import os
    import stat

    from navseal.gateway.service import GatewayService

    db = str(tmp_path / "gw.sqlite3")
    assert run("user", "add", "root", "--role", "admin", "--db", db).returncode == 0
    token_file = tmp_path / "root.token"
    issued = run("user", "token", "root", "--out", str(token_file), "--db", db)
    assert issued.returncode == 0 and "nst_" not in issued.stdout  # the token went to the file only
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    svc = GatewayService(load_config(None, db_path=db, http_port=0, mqtt_host=""), enable_mqtt=False)
    svc.start()
    try:
        api = ["--api", svc.http.url, "--token-file", str(token_file)]
        bad = run("user", "add", "alice", "--role", "officer", *api)
        assert bad.returncode == 1 and "office" in bad.stderr
        added = subprocess.run([NAVSEAL, "gateway", "user", "add", "alice", "--role", "officer", "--office",
                                "10232010", "--password-file", "-", *api], input="correct horse battery\n",
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        listed = json.loads(run("user", "list", "--json", *api).stdout)["users"]
        assert [(u["name"], u["role"], u["offices"], u["password"]) for u in listed] == [
            ("alice", "officer", ["10232010"], True), ("root", "admin", [], False)]
        alice = run("user", "token", "alice", *api).stdout.strip()
        env = dict(os.environ, NAVSEAL_TOKEN=alice)
        as_alice = subprocess.run([NAVSEAL, "gateway", "user", "list", "--api", svc.http.url],
                                  capture_output=True, text=True, timeout=60, env=env)
        assert as_alice.returncode == 1 and "403 forbidden" in as_alice.stderr
        assert run("user", "disable", "alice", *api).returncode == 0
        gone = subprocess.run([NAVSEAL, "gateway", "status", "--api", svc.http.url],
                              capture_output=True, text=True, timeout=60, env=env)
        assert gone.returncode == 1 and "401 unauthorized" in gone.stderr
    finally:
        svc.stop()
    store = SqliteStore(db)
    actions = [(r["action"], r["actor_user"], r["via"], r["outcome"]) for r in store.audit_rows()]
    store.close()
    assert actions[:2] == [("user.add", actions[0][1], "db", "ok"), ("token.issue", actions[0][1], "db", "ok")]
    assert ("user.add", "root", "token", "ok") in actions and ("user.disable", "root", "token", "ok") in actions
    assert ("request.refused", "alice", "token", "refused") in actions


def test_seal_rekey_and_reset_replay_from_the_command_line(tmp_path):
    db = str(tmp_path / "gw.sqlite3")
    assert run("provision", "--seal", "1001", "--test-key", "--dev-test-keys", "--db", db).returncode == 0
    key_file = tmp_path / "new.key"
    key_file.write_text("ab" * 32 + "\n")
    rekeyed = run("seal", "rekey", "--seal", "1001", "--key-file", str(key_file), "--db", db)
    assert rekeyed.returncode == 0 and "re-keyed" in rekeyed.stdout, rekeyed.stderr
    assert run("seal", "rekey", "--seal", "1001", "--key", "ab" * 32, "--db", db).returncode == 2  # argv is public
    unknown = run("seal", "rekey", "--seal", "77", "--key-file", str(key_file), "--db", db)
    assert unknown.returncode == 1 and "unknown_seal" in unknown.stderr
    reset = run("seal", "reset-replay", "--seal", "1001", "--db", db)
    assert reset.returncode == 0 and "replay window reset" in reset.stdout, reset.stderr
    store = SqliteStore(db)
    try:
        assert store.seal_key(1001) == bytes.fromhex("ab" * 32)
        actions = [(r["action"], r["outcome"]) for r in store.audit_rows()]
    finally:
        store.close()
    assert ("seal.rekey", "ok") in actions and ("seal.rekey", "refused") in actions
    assert ("seal.reset_replay", "ok") in actions
