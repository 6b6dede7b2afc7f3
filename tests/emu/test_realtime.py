"""The same scenarios in real time (compressed): against a real Mosquitto (the project's config, via
the mosquitto_broker fixture), over a real pseudo-terminal, and `navseal demo` end to end as a user runs it."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
import os
import subprocess
import sys
from pathlib import Path

import pytest

from navseal.emu.emulator import Emulator
from navseal.emu.scenario import load_scenario
from navseal.protocol import test_key

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tools" / "scenarios"


def _check(emu: Emulator) -> None:
    report = emu.check()
    failures = [f"{o.name}: {o.detail}" for o in report.failures]
    assert not failures, "\n".join(failures)


def test_emulate_against_real_mosquitto(mosquitto_broker, tmp_path):
    scenario = load_scenario(SCENARIOS / "route-deviation-and-return.toml")
    emu = Emulator(scenario, workdir=tmp_path, broker=mosquitto_broker.url, scale=1200)
    emu.run()
    _check(emu)
    kinds = [e["kind"] for e in emu.read_events()]
    assert kinds.count("ROUTE_DEVIATION") == 1 and kinds.count("DEACTIVATED") == 1
    assert emu.link.published == emu.frames_up > 100


def test_emulate_over_a_pseudo_terminal(tmp_path):
    scenario = load_scenario(SCENARIOS / "forged-deactivation.toml")
    emu = Emulator(scenario, workdir=tmp_path, serial="auto", scale=1200)
    assert emu.link.peer_path.startswith("/dev/pts/")
    emu.run()
    _check(emu)
    assert emu.link.bytes_out > 10_000  # the frames really crossed the tty, COBS-framed
    assert emu.seals[1701].rejected_commands >= 2


def test_demo_end_to_end_without_a_terminal(tmp_path):
    pytest.importorskip("amqtt", reason="the demo's embedded broker is the 'demo' extra (amqtt)")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "navseal.cli", "demo", "--seconds", "12", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert "embedded MQTT broker (amqtt)" in text
    assert "\x1b[" not in text  # no TTY: plain lines, no screen control
    assert "progress" in text and "Scenario checks: 14 passed, 0 failed" in text
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    for kind, n in (("ACTIVATED", 4), ("UNAUTHORIZED_OPENING", 1), ("DEACTIVATION_REQUESTED", 4), ("DEACTIVATED", 4)):
        assert kinds.count(kind) == n, (kind, kinds.count(kind))
    assert kinds.index("ACTIVATED") < kinds.index("UNAUTHORIZED_OPENING") < kinds.index("DEACTIVATED")
    assert len({e["event_id"] for e in events}) == len(events)
    clean = {e["seal_id"]: e["details"]["clean"] for e in events if e["kind"] == "DEACTIVATED"}
    assert clean == {3001: True, 3002: True, 3003: True, 3004: False}
    # Tracks: valid GeoJSON a GIS opens, [lon, lat] order, along the Kordai -> Almaty road.
    combined = json.loads((out / "tracks.geojson").read_text())
    assert combined["type"] == "FeatureCollection"
    lines = [f for f in combined["features"] if f["geometry"]["type"] == "LineString"]
    assert {f["properties"]["seal_id"] for f in lines} == {3001, 3002, 3003, 3004}
    for f in lines:
        coords = f["geometry"]["coordinates"]
        assert len(coords) > 100
        assert all(74 < lon < 77.5 and 42.5 < lat < 43.6 for lon, lat in coords)
    points = [f for f in combined["features"] if f["geometry"]["type"] == "Point"]
    assert any(p["properties"]["kind"] == "UNAUTHORIZED_OPENING" for p in points)
    for sid in (3001, 3002, 3003, 3004):
        assert (out / f"track-{sid}.geojson").exists()
    assert str(out / "events.jsonl") in text and str(out / "tracks.geojson") in text
    # The gateway's API ran with the real access layer: users and tokens made by the demo, said where.
    assert "gateway API on http://127.0.0.1:" in text and str(out / "demo-access.txt") in text
    access = out / "demo-access.txt"
    assert access.stat().st_mode & 0o077 == 0 and access.read_text().count("token nst_") == 4
    # ... and where the web console is, with a login for it.
    password = next(line.split("password ")[1] for line in access.read_text().splitlines()
                    if line.startswith("officer:"))
    assert re.search(r"web console on http://127\.0\.0\.1:\d+/console/: log in as demo-officer / " + re.escape(password),
                     text)
    assert "/console/" in access.read_text()
    assert "DEVELOPMENT MODE" in proc.stderr  # the seals carry the published test keys
    db = (out / "gateway.sqlite3").read_bytes()
    assert (out / "gateway.sqlite3").stat().st_mode & 0o077 == 0
    assert all(test_key(sid) not in db for sid in (3001, 3002, 3003, 3004))  # encrypted at rest
    # The script's activations and deactivations went through the API as the demo's users.
    who = {(e["kind"], (e["details"].get("activated_by") or e["details"].get("requested_by"))["user"])
           for e in events if e["kind"] in ("ACTIVATED", "DEACTIVATION_REQUESTED", "DEACTIVATED")}
    assert who == {("ACTIVATED", "demo-operator"), ("DEACTIVATION_REQUESTED", "demo-officer"),
                   ("DEACTIVATED", "demo-officer")}


def test_emulate_with_the_firmware_mqtt_client_per_seal(mosquitto_broker, tmp_path):
    # Each seal connects on its own with the board's MQTT code (navseal_fw.link_mqtt).
    scenario = load_scenario(SCENARIOS / "two-seals-one-truck.toml")
    emu = Emulator(scenario, workdir=tmp_path, broker=mosquitto_broker.url, scale=1200, mqtt_client="firmware")
    emu.run()
    _check(emu)
    assert set(emu.link.links) == {2001, 2002}
    assert all(link.sent > 50 and link.received > 50 for link in emu.link.links.values())


def test_demo_stays_with_its_console_after_the_escort_until_ctrl_c(tmp_path):
    pytest.importorskip("amqtt", reason="the demo's embedded broker is the 'demo' extra (amqtt)")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "navseal.cli", "demo", "--seconds", "12", "--stay", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "the escort is over" in line:
                break
        stay_line = lines[-1]
        assert "the escort is over; the web console stays on http://127.0.0.1:" in stay_line, "".join(lines)[-2000:]
        console = re.search(r"(http://127\.0\.0\.1:\d+)/console/", stay_line).group(1)
        time.sleep(1.0)
        assert proc.poll() is None  # still there after the escort
        with urllib.request.urlopen(console + "/console/", timeout=10) as resp:
            assert resp.status == 200
        password = next(line.split("password ")[1] for line in (out / "demo-access.txt").read_text().splitlines()
                        if line.startswith("officer:"))
        req = urllib.request.Request(console + "/v1/session", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"name": "demo-officer", "password": password}).encode())
        with urllib.request.urlopen(req, timeout=30) as resp:
            cookie = resp.headers["Set-Cookie"].split(";")[0]

        def escort():
            req = urllib.request.Request(console + "/v1/escorts?seal_id=3004", headers={"Cookie": cookie})
            with urllib.request.urlopen(req, timeout=30) as resp:
                return [(r["status"], r["clean"]) for r in json.loads(resp.read())["escorts"]]

        # The finished escort, to look at: the opened seal's verdict is there (its last frames may
        # still be crossing the broker at the scenario's last second).
        deadline = time.monotonic() + 20
        while escort() != [("deactivated", False)] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert escort() == [("deactivated", False)]
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0  # ending the stay is not an interruption
        assert "navseal demo finished" in rest and "Scenario checks: 14 passed, 0 failed" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
