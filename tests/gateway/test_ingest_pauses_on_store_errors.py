"""A store that cannot take writes pauses ingest, never stalls it: the gateway stops acknowledging,
says so (/healthz, metrics, log), reconnects to the broker once the store takes writes again, and
the broker's redelivery leaves nothing lost and nothing twice. "Disk full" is SQLite's own
SQLITE_FULL, produced by `PRAGMA max_page_count` on the gateway's connection, against a real
Mosquitto and the real gateway service."""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from gateway_harness import MqttSeal, parse_metrics, wait_until
from navseal.bench.seal_frames import SealFrames
from navseal.gateway.config import load_config
from navseal.gateway.pipeline import Pipeline
from navseal.gateway.service import GatewayService
from navseal.gateway.store import SqliteStore
from navseal.protocol import decode_frame

SEAL = 4001


def _fill(store: SqliteStore) -> None:
    """Let the database grow by no page from now on: the next page it needs is 'disk full'."""
    with store._lock:
        pages = store._c.execute("PRAGMA page_count").fetchone()[0]
        store._c.execute(f"PRAGMA max_page_count = {pages}")


def _free(store: SqliteStore) -> None:
    with store._lock:
        store._c.execute("PRAGMA max_page_count = 4294967294")


def _records_frame(frames: SealFrames) -> bytes:
    return frames.records(60)


def test_a_full_store_refuses_every_frame_of_the_batch_unacknowledged(tmp_path):
    store = SqliteStore(str(tmp_path / "gw.sqlite3"))
    pipeline = Pipeline(store, clock=time.time)
    frames = SealFrames(SEAL)
    pipeline.provision_seal(SEAL, frames.key)
    assert pipeline.handle_uplink(frames.hello(), "t").accepted
    _fill(store)
    batch = [(_records_frame(frames), "t") for _ in range(40)]
    results = pipeline.handle_uplinks(batch)
    # None is acknowledged: not the frames before the failing one (rolled back), not the one the
    # store failed on, not those after it.
    assert [(r.result, r.reason, r.downlink) for r in results] == [("rejected", "store_error", [])] * 40
    assert "full" in pipeline.last_store_error
    assert store.counts()["records"] == 0
    assert pipeline.probe_store() is not None  # still full
    _free(store)
    assert pipeline.probe_store() is None
    assert all(r.accepted for r in pipeline.handle_uplinks(batch))
    assert [r["rseq"] for r in store.records(SEAL)] == list(range(1, 40 * 60 + 1))
    store.close()


def _acks(seal: MqttSeal, acked: set[int]) -> set[int]:
    while not seal.downlinks.empty():
        frame = decode_frame(seal.downlinks.get_nowait(), seal.frames.key)
        if frame.type == "ACK":
            acked.add(frame.payload["acked_seq"])
    return acked


def _metric(svc: GatewayService, name: str) -> float:
    return parse_metrics(generate_latest(svc.registry).decode()).get(name, 0.0)


def test_disk_full_pauses_ingest_says_so_and_resumes_with_nothing_lost(tmp_path, mosquitto_broker):
    config = load_config(None, db_path=str(tmp_path / "gw.sqlite3"), mqtt_host=mosquitto_broker.host,
                         mqtt_port=mosquitto_broker.port, mqtt_client_id="gw-pause", dev_test_keys=True)
    svc = GatewayService(config, http=False)
    seal = MqttSeal(mosquitto_broker, SEAL)
    try:
        svc.pipeline.provision_seal(SEAL, seal.frames.key)
        svc.start()
        assert svc.mqtt.subscribed.wait(10)
        acked: set[int] = set()
        sent: list[int] = []

        def send(n: int) -> None:
            for _ in range(n):
                frame = _records_frame(seal.frames)
                sent.append(seal.frames.seq - 1)
                seal.client.publish(f"seals/{SEAL}/up", frame, qos=1)

        send(5)
        assert wait_until(lambda: set(sent) <= _acks(seal, acked)), "frames not acknowledged before the fault"
        assert svc.health()["status"] == "ok" and svc.health()["ingest"] == {"state": "running"}

        _fill(svc.store)
        send(60)
        assert wait_until(lambda: svc.runner.paused is not None), "ingest did not pause on a full store"
        health = svc.health()
        assert health["status"] == "degraded"
        assert health["ingest"]["state"] == "paused" and health["ingest"]["reason"] == "disk_full"
        assert any(p.startswith("ingest paused: disk full") for p in health["problems"]), health["problems"]
        assert _metric(svc, 'navseal_ingest_paused{reason="disk_full"}') == 1
        assert _metric(svc, 'navseal_ingest_pauses_total{reason="disk_full"}') == 1
        # It stops acknowledging: while the disk stays full no further frame is acknowledged,
        # to the seal or to the broker (the broker keeps them in the gateway's session).
        time.sleep(2.0)
        acked_while_full = set(_acks(seal, acked))
        assert not set(sent) <= acked_while_full
        assert svc.runner.paused is not None and svc.mqtt.suspended
        send(10)  # seals keep sending meanwhile: the broker queues for the session

        _free(svc.store)
        assert wait_until(lambda: svc.runner.paused is None, timeout=30), "ingest did not resume"
        assert wait_until(lambda: set(sent) <= _acks(seal, acked), timeout=60), "frames lost across the pause"
        assert svc.health()["status"] == "ok"
        assert _metric(svc, 'navseal_ingest_paused{reason="disk_full"}') == 0
        assert _metric(svc, "navseal_ingest_deferred_frames_total") >= 0
        rseqs = [r["rseq"] for r in svc.store.records(SEAL)]
        assert rseqs == list(range(1, len(sent) * 60 + 1)), "records lost or stored twice"
    finally:
        seal.close()
        svc.stop()
