"""The seal as it runs on a board, end to end: firmware/main.py (the .mpy image `navseal flash`
builds) on MicroPython's unix port with a capped heap (HEAP below), its own MQTT link over TLS to a real
Mosquitto started from the shipped configuration (TLS listener, passwords, per-seal ACL, the
login as client id), the real `navseal gateway run` (TLS to the broker too), and `navseal
provision` putting the seal's key, login and CA on its flash. Certificates are made by the test.

Escort: activate, cable cut, broker stalled 10 s (SIGSTOP), broker stopped 30 s while fixes
continue, housing opened inside the outage, broker back, drain, deactivate. Asserted: every rseq
the seal journaled stored exactly once, each alarm once, the escort's events in order, the
seal's loop lag p99 under 50 ms over the whole run (the link never blocks the loop, not while
the broker is down nor while it stalls), no reboot, and the heap within its budget."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from board_bench import Control, GnssFeed, write_wiring  # noqa: E402
from gateway_harness import (GatewayProcess, activation_body, free_port,  # noqa: E402
                             make_tokens, post_json, read_jsonl, wait_until)
from mp_unix import require_unix  # noqa: E402

from navseal.desktop_seal import DesktopSeal, build_image  # noqa: E402
from navseal.gateway import certs  # noqa: E402
from navseal.gateway.mosquitto_broker import PRODUCTION_ACL, TlsFiles  # noqa: E402
from navseal.gateway.secrets import new_master_key_file  # noqa: E402
from navseal.gateway.store import SqliteStore  # noqa: E402

SEAL = 1001
NAVSEAL = str(Path(sys.executable).with_name("navseal"))
# The target: 176K on this 64-bit port (128K on a 32-bit one). The seal's evidence work
# (+21.5 KB of modules) had pushed the escort past it; splitting the peer's half of the codec
# off (codec_peer) and the bench task out of app.py brought it back (docs/firmware.md, "Memory
# per build kind"). NAVSEAL_SEAL_HEAP overrides.
HEAP = os.environ.get("NAVSEAL_SEAL_HEAP", "176K")
# The heap once the seal has booted (modules, core, link, TLS context; measured 141,600 B): a
# regression past this fails here before it shows as a MemoryError in some later run.
HEAP_AFTER_BOOT_MAX = 144_000
LAG_P99_MS = 50
CORE_HEAP_64BIT = 45 * 1024  # the core's own live heap after boot (32 KB on a 32-bit port)
# A board's firmware has its CPU to itself; here the seal shares two cores with the broker, the
# gateway, this test and other test suites. Its lag spikes then came with the process waiting on
# the run queue (runq_wait_ms), not with its own work (busy_max): so the seal runs at nice -10
# when we may (root), as the one process here that stands for dedicated hardware.
# NAVSEAL_SEAL_NICE overrides it (0 to see the host's share).
SEAL_NICE = int(os.environ.get("NAVSEAL_SEAL_NICE", "-10" if os.geteuid() == 0 else "0"))


def _gateway_config(path: Path, broker, ca: Path, db: Path, http_port: int, sink: Path) -> Path:
    master = path.with_name("master.key")
    new_master_key_file(master)  # seal keys encrypted at rest
    path.write_text(f"""
db_path = "{db}"
master_key_file = "{master}"
db_synchronous = "NORMAL"
log_format = "json"
command_retry_initial_s = 2.0
command_retry_max_s = 5.0
sink_retry_initial_s = 0.05
sink_retry_max_s = 0.5

[mqtt]
host = "127.0.0.1"
port = {broker.tls_port}
client_id = "navseal-gateway"
username = "navseal-gateway"
password = "gw-secret"
tls = true
tls_ca = "{ca}"

[http]
port = {http_port}

[[sinks]]
name = "operator"
type = "jsonl"
path = "{sink}"
""")
    return path


def _provision(tmp: Path, api: str, token: str, broker, bundle: dict, flash: Path) -> None:
    key_file = tmp / "seal.key"
    res = subprocess.run(
        [NAVSEAL, "provision", "--seal", str(SEAL), "--generate-key", "--key-out", str(key_file),
         "--broker-host", "127.0.0.1", "--broker-port", str(broker.tls_port),
         "--ca", str(bundle["ca.crt"]), "--api", api, "--passwd-file", str(broker.workdir / "passwd"),
         "--flash-dir", str(flash),
         "--set", "report_moving_s=2", "--set", "report_stopped_s=5", "--set", "ack_timeout_s=5",
         "--set", "heartbeat_s=60", "--set", "mqtt_keepalive_s=20", "--set", "mqtt_backoff_cap_s=2"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "NAVSEAL_TOKEN": token})
    assert res.returncode == 0, res.stdout + res.stderr
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct((flash / "navseal.json").stat().st_mode & 0o777) == "0o600"
    broker.process.send_signal(signal.SIGHUP)  # Mosquitto re-reads its password file


def _events(sink: Path, kind: str) -> list[dict]:
    return [e for e in read_jsonl(sink) if e["kind"] == kind]


def _phase(control: Control) -> dict:
    # the loop's lag since the previous phase boundary (and the heap so far)
    return control.fields("STATS PHASE")


@pytest.mark.slow
@pytest.mark.micropython
def test_board_path_escort_over_tls_with_broker_stall_and_outage(tmp_path, mosquitto_factory):
    require_unix()
    bundle = certs.write_bundle(tmp_path / "certs", hosts=["127.0.0.1", "localhost"])
    broker = mosquitto_factory(users={"navseal-gateway": "gw-secret"}, acl_file=PRODUCTION_ACL,
                               tls=TlsFiles(bundle["ca.crt"], bundle["server.crt"], bundle["server.key"]))
    http_port = free_port()
    sink = tmp_path / "events.jsonl"
    cfg = _gateway_config(tmp_path / "gateway.toml", broker, bundle["ca.crt"], tmp_path / "gw.sqlite3",
                          http_port, sink)
    tokens = make_tokens(tmp_path / "gw.sqlite3", roles=("operator", "officer"))
    gateway = GatewayProcess(cfg, http_port, tmp_path / "gateway.log", tokens).start()
    gnss = GnssFeed().start()
    control = Control()
    flash = tmp_path / "flash"
    seal = None
    try:
        _provision(tmp_path, gateway.api, tokens["operator"], broker, bundle, flash)
        write_wiring(flash, gnss, control)
        image = build_image(tmp_path / "image", "mpy")
        seal = DesktopSeal(image, flash, heapsize=HEAP, log_path=tmp_path / "seal.log",
                           nice=SEAL_NICE).start()
        assert control.server.wait_client(), seal.log()
        status, body = post_json(gateway.api + "/v1/escorts/activate", activation_body(SEAL),
                                 token=tokens["operator"])
        assert status == 202, body
        assert wait_until(lambda: _events(sink, "ACTIVATED"), 60), (seal.log(), gateway.log_path.read_text()[-3000:])
        phases = {"activation": _phase(control)}

        # Cable cut (the loop's pin): UNAUTHORIZED_OPENING once.
        assert control.ask("LOCK open closed") == "OK LOCK open closed"
        assert wait_until(lambda: _events(sink, "UNAUTHORIZED_OPENING"), 30)
        phases["cable cut"] = _phase(control)

        # The broker stalls (SIGSTOP) for 10 s: PUBACKs and pings go unanswered.
        broker.process.send_signal(signal.SIGSTOP)
        time.sleep(10)  # the fault under test is this long; nothing is asserted before it ends
        broker.process.send_signal(signal.SIGCONT)
        phases["broker stall"] = _phase(control)

        # The broker is stopped for 30 s while fixes continue; the housing is opened meanwhile.
        broker.stop()
        outage_start = time.monotonic()
        time.sleep(15)
        assert control.ask("LOCK open open") == "OK LOCK open open"
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_start)))
        phases["broker outage"] = _phase(control)
        broker.start()
        assert wait_until(lambda: _events(sink, "HOUSING_OPENED"), 60), seal.log()[-2000:]

        # Drain: the seal's journal empties into the gateway.
        def drained() -> bool:
            st = control.fields("STATUS")
            return st.get("pending") == 0 and st.get("state") == "ACTIVE"

        assert wait_until(drained, 90, interval=0.5), control.ask("STATUS")
        phases["drain"] = _phase(control)
        status, body = post_json(gateway.api + "/v1/escorts/deactivate",
                                 {"seal_id": SEAL, "declaration": activation_body(SEAL)["declaration"],
                                  "vehicle": "123ABC02"}, token=tokens["officer"])
        assert status == 202, body
        assert wait_until(lambda: _events(sink, "DEACTIVATED"), 60), seal.log()[-2000:]
        assert wait_until(lambda: control.fields("STATUS").get("pending") == 0, 60)
        final = control.fields("STATUS")
        phases["deactivation"] = _phase(control)
        whole = control.fields("STATS")
    finally:
        if seal is not None:
            seal.stop()
        gateway.terminate()
        gnss.stop()
        control.close()

    # Every rseq the seal journaled is stored exactly once (the count equals the highest rseq, so
    # none is missing either).
    top = int(final["next_rseq"]) - 1
    store = SqliteStore(str(tmp_path / "gw.sqlite3"))
    try:
        rseqs = [r["rseq"] for r in store.records(SEAL)]
    finally:
        store.close()
    assert rseqs == list(range(1, top + 1)), (len(rseqs), top)

    kinds = [e["kind"] for e in read_jsonl(sink)]
    for alarm in ("UNAUTHORIZED_OPENING", "HOUSING_OPENED"):
        assert kinds.count(alarm) == 1, kinds
    assert kinds.count("ACTIVATED") == 1 and kinds.count("DEACTIVATED") == 1, kinds
    assert kinds.index("ACTIVATED") < kinds.index("UNAUTHORIZED_OPENING") < kinds.index(
        "HOUSING_OPENED") < kinds.index("DEACTIVATED")
    deactivated = _events(sink, "DEACTIVATED")[0]
    assert deactivated["details"].get("clean") is False, deactivated

    # One program from start to end: no freeze, no fault, no reboot.
    assert seal.boots == 1 and not (flash / "fault").exists(), seal.log()
    lag_keys = ("lag_n", "lag_p50", "lag_p99", "lag_max", "busy_max", "busy_at", "runq_wait_ms")
    report = {name: {k: st[k] for k in lag_keys} for name, st in phases.items()}
    report["whole run"] = {k: whole[k] for k in lag_keys}
    heap = {k: whole[k] for k in ("heap_modules", "heap_base", "heap_peak", "alloc_peak", "free_min")}
    flash_io = {k: final[k] for k in ("flash_max_ms", "flash_max_op")}
    print(f"\nBOARD_PATH lag {json.dumps(report)}\nBOARD_PATH heap {json.dumps(heap)} (-X heapsize={HEAP}, .mpy)"
          f"\nBOARD_PATH flash {json.dumps(flash_io)}")
    assert whole["lag_n"] > 500, whole
    # A 99th percentile needs 100 samples to mean anything: the run, the stall and the outage
    # have them (the short phases are in the run's figure and reported on their own).
    for name in ("whole run", "broker stall", "broker outage"):
        st = report[name]
        assert st["lag_n"] >= 100 and st["lag_p99"] < LAG_P99_MS, (name, report)
    assert whole["free_min"] > 0
    assert whole["heap_peak"] - whole["heap_modules"] < CORE_HEAP_64BIT, heap
    assert whole["heap_base"] < HEAP_AFTER_BOOT_MAX, heap
    assert os.path.exists(flash / "ca.der")
