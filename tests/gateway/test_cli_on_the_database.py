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
    assert run("provision", "--seal", "1001", "--test-key", "--db", db).returncode == 0
    result = run("activate", "--seal", "1001", "--declaration", "D-1", "--vehicle", "V-1",
                 "--departure-office", "A1", "--departure-office-name", "Almaty",
                 "--dest-office", "K1", "--dest-office-name", "Khorgos",
                 "--period-hours", "24", "--route", str(route), "--corridor", "300", "--db", db, "--json")
    assert result.returncode == 0, result.stderr
    escort = json.loads(result.stdout)["escort"]
    assert escort["route_points"] >= 2 and escort["corridor_m"] == 300
    status = run("status", "--seal", "1001", "--db", db, "--json")
    assert json.loads(status.stdout)["escorts"][0]["status"] == "requested"
    unknown = run("activate", "--seal", "77", "--declaration", "D", "--vehicle", "V", "--departure-office", "A",
                  "--departure-office-name", "Almaty", "--dest-office", "K", "--dest-office-name", "K", "--period-hours", "1", "--db", db)
    assert unknown.returncode == 1 and "unknown_seal" in unknown.stderr
    bad_route = run("activate", "--seal", "1001", "--declaration", "D", "--vehicle", "V",
                    "--departure-office", "A", "--departure-office-name", "Almaty",
                    "--dest-office", "K", "--dest-office-name", "K", "--period-hours", "1",
                    "--route", str(tmp_path / "missing.geojson"), "--db", db)
    assert bad_route.returncode == 2


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
