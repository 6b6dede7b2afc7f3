"""The gateway as operators run it: `navseal gateway run --config FILE` as a real subprocess, a real
Mosquitto with the project config, seals speaking real frames, sinks receiving operator events.

Covers: SIGKILL mid-stream and restart (no record lost, no event duplicated in effect), SIGTERM
(graceful: everything committed and delivered), broker restart, forged / replayed / malformed frames
refused and counted, a webhook sink down then up with the outbox depth visible.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections import Counter

import pytest

from gateway_harness import (
    NAVSEAL,
    GatewayProcess,
    MqttSeal,
    activation_body,
    bring_online_and_activate,
    free_port,
    get_json,
    make_tokens,
    post_json,
    read_jsonl,
    wait_until,
    write_config,
)
from navseal.bench.seal_frames import SealFrames
from navseal.gateway.events import validate
from navseal.gateway.store import SqliteStore
from navseal.protocol import decode_frame
from navseal.protocol import test_key as key_for
from webhook_target import WebhookTarget


@pytest.fixture
def gateway_env(tmp_path, mosquitto_broker):
    """A configured (not started) gateway with a JSON Lines sink; yields a small namespace."""
    started: list[GatewayProcess] = []
    seals: list[MqttSeal] = []

    class Env:
        broker = mosquitto_broker
        db = tmp_path / "gw.sqlite3"
        events = tmp_path / "events.jsonl"
        http_port = free_port()
        api = f"http://127.0.0.1:{http_port}"

        @classmethod
        def configure(cls, sinks=None):
            sinks = sinks if sinks is not None else [{"name": "file", "type": "jsonl", "path": str(cls.events)}]
            cls.config = write_config(tmp_path / "gw.toml", mosquitto_broker, db=cls.db,
                                      http_port=cls.http_port, sinks=sinks)
            if not hasattr(cls, "tokens"):
                cls.tokens = make_tokens(cls.db)
                cls.operator = cls.tokens["operator"]

        @classmethod
        def start(cls) -> GatewayProcess:
            gw = GatewayProcess(cls.config, cls.http_port, tmp_path / "gateway.log", cls.tokens).start()
            started.append(gw)
            return gw

        @classmethod
        def seal(cls, seal_id: int) -> MqttSeal:
            s = MqttSeal(mosquitto_broker, seal_id)
            seals.append(s)
            return s

    Env.configure()
    yield Env
    for s in seals:
        s.close()
    for gw in started:
        gw.kill()


def _acked(seal: MqttSeal, seen: dict[int, set[int]]) -> None:
    """Drain the seal's downlinks into {seal: {acked seq}}."""
    while not seal.downlinks.empty():
        frame = decode_frame(seal.downlinks.get_nowait(), seal.frames.key)
        if frame.type == "ACK":
            seen.setdefault(seal.seal_id, set()).add(frame.payload["acked_seq"])


def _stream(seals: list[MqttSeal], frames_per_seal: int, records: int, sent: dict[int, list[int]]) -> None:
    """Each seal publishes its frames (without waiting for ACKs: the broker queues them)."""
    for _ in range(frames_per_seal):
        for seal in seals:
            frame = seal.frames.records(records)
            sent.setdefault(seal.seal_id, []).append(seal.frames.seq - 1)
            seal.client.publish(f"seals/{seal.seal_id}/up", frame, qos=1)


def _check_store(db, seals: list[MqttSeal]) -> list[dict]:
    """Every record each seal sent is stored exactly once; returns the stored events."""
    store = SqliteStore(str(db))
    try:
        for seal in seals:
            rows = store.records(seal.seal_id)
            rseqs = [r["rseq"] for r in rows]
            expected = list(range(1, seal.frames.rseq))
            assert rseqs == expected, f"seal {seal.seal_id}: records lost or duplicated"
        events = store.events(limit=1_000_000)
    finally:
        store.close()
    return events


def test_sigkill_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(gateway_env):
    gw = gateway_env.start()
    seals = [gateway_env.seal(2000 + i) for i in range(4)]
    for seal in seals:
        bring_online_and_activate(gateway_env.api, seal, gateway_env.operator)
    sent: dict[int, list[int]] = {}
    acked: dict[int, set[int]] = {}

    streamer = threading.Thread(target=_stream, args=(seals, 60, 20, sent))
    streamer.start()
    # Kill once the gateway is visibly in the middle of the stream.
    assert wait_until(lambda: (_acked(seals[0], acked), len(acked.get(seals[0].seal_id, ())) >= 10)[1])
    gw.kill()
    acked_before_kill = sum(len(v) for v in acked.values())
    assert acked_before_kill < 4 * 60, "the kill came after the stream: not a mid-stream kill"
    streamer.join()  # the rest of the stream is queued at the broker, in the gateway's session

    gateway_env.start()
    assert wait_until(
        lambda: all((_acked(s, acked), set(sent[s.seal_id]) <= acked.get(s.seal_id, set()))[1] for s in seals),
        timeout=60,
    ), "not every frame was acknowledged after the restart"

    events = _check_store(gateway_env.db, seals)
    # Every committed event reaches the sink; a repeat carries the same event_id and the same body.
    assert wait_until(lambda: {e["event_id"] for e in read_jsonl(gateway_env.events)}
                      >= {e["event_id"] for e in events}, timeout=30)
    delivered = read_jsonl(gateway_env.events)
    by_id: dict[str, dict] = {}
    for event in delivered:
        assert by_id.setdefault(event["event_id"], event) == event, "a re-sent event changed"
    kinds = Counter(e["kind"] for e in by_id.values())
    assert kinds["ACTIVATED"] == 4
    assert kinds["POSITION"] >= 4 * 60  # one batch event per RECORDS frame (plus the first fixes)
    # Per-seal order in the sink: each seal's POSITION batches in rseq order.
    for seal in seals:
        firsts = [e["details"]["first_rseq"] for e in delivered
                  if e["seal_id"] == seal.seal_id and e["kind"] == "POSITION"]
        deduped = list(dict.fromkeys(firsts))
        assert deduped == sorted(deduped)


def test_sigterm_is_graceful_everything_committed_and_delivered_once(gateway_env):
    gw = gateway_env.start()
    seals = [gateway_env.seal(3000 + i) for i in range(3)]
    for seal in seals:
        bring_online_and_activate(gateway_env.api, seal, gateway_env.operator)
    sent: dict[int, list[int]] = {}
    acked: dict[int, set[int]] = {}
    streamer = threading.Thread(target=_stream, args=(seals, 40, 20, sent))
    streamer.start()
    assert wait_until(lambda: (_acked(seals[0], acked), len(acked.get(seals[0].seal_id, ())) >= 5)[1])
    assert gw.terminate() == 0
    streamer.join()
    logs = gw.logs()
    stopped = [entry for entry in logs if entry.get("msg") == "gateway stopped"]
    assert stopped and stopped[-1]["undelivered_in_outbox"] == {}, "sink not flushed at shutdown"
    delivered_before = read_jsonl(gateway_env.events)
    assert len({e["event_id"] for e in delivered_before}) == len(delivered_before), "duplicate before restart"

    gateway_env.start()  # the rest of the stream waits in the broker session
    last = {s.seal_id: s.frames.seq - 1 for s in seals}
    assert wait_until(lambda: all((_acked(s, acked), last[s.seal_id] in acked.get(s.seal_id, set()))[1]
                                  for s in seals), timeout=60)
    events = _check_store(gateway_env.db, seals)
    assert wait_until(lambda: len(read_jsonl(gateway_env.events)) >= len(events), timeout=30)
    delivered = read_jsonl(gateway_env.events)
    ids = [e["event_id"] for e in delivered]
    assert len(ids) == len(set(ids)), "a graceful stop must not re-send anything"
    assert set(ids) == {e["event_id"] for e in events}


def test_forged_replayed_and_malformed_frames_are_refused_and_counted(gateway_env):
    gw = gateway_env.start()
    seal = gateway_env.seal(4001)
    status, _ = post_json(gateway_env.api + "/v1/seals", {"seal_id": 4001, "key": seal.frames.key.hex()},
                          token=gateway_env.operator)
    assert status == 201
    good = seal.frames.records(5)
    seal.send(good)
    ack, _ = seal.next_downlink(type_name="ACK")
    assert ack.payload["committed_rseq"] == 5

    seal.send(good)  # QoS 1 redelivery / lost ACK: same frame again -> duplicate, re-ACKed
    again, _ = seal.next_downlink(type_name="ACK")
    assert again.payload == ack.payload

    forger = SealFrames(4001, key=key_for(9999))  # seal 4001's frame signed with another key
    forger.seq = 50
    seal.send(forger.records(3))

    replay = SealFrames(4001)  # a valid old (boot, seq) with different content: a replay attack
    replay.rseq = 100
    seal.send(replay.hello())

    damaged = bytearray(seal.frames.records(2))
    damaged[30] ^= 0x01
    seal.send(bytes(damaged))
    seal.send(b"\x00" * 40)
    seal.send(b"NS")
    unknown = SealFrames(777)  # not provisioned
    seal.client.publish("seals/777/up", unknown.hello(), qos=1).wait_for_publish(10)

    def counted() -> dict:
        m = gw.metrics()
        return {reason: m.get(f'navseal_frames_total{{reason="{reason}",result="rejected"}}', 0)
                for reason in ("bad_mac", "replayed", "bad_crc", "bad_magic", "truncated", "unknown_seal")}

    assert wait_until(lambda: all(v >= 1 for v in counted().values()), timeout=15), counted()
    m = gw.metrics()
    assert m['navseal_frames_total{reason="",result="duplicate"}'] == 1
    assert m["navseal_records_committed_total"] == 5
    # Refused frames are not acknowledged, and the gateway keeps working.
    seal.send(seal.frames.records(1))
    ack, _ = seal.next_downlink(type_name="ACK")
    assert ack.payload["committed_rseq"] == 8  # rseq 6-7 were in the damaged frame (never stored)
    refusals = [e for e in gw.logs() if "refused frame" in e.get("msg", "")]
    assert any("bad_mac" in e["msg"] and "seal=4001" in e["msg"] for e in refusals)


def test_broker_restart_gateway_reconnects_and_keeps_ingesting(gateway_env):
    gw = gateway_env.start()
    seal = gateway_env.seal(5001)
    post_json(gateway_env.api + "/v1/seals", {"seal_id": 5001, "key": seal.frames.key.hex()},
              token=gateway_env.operator)
    seal.send(seal.frames.records(3))
    assert seal.next_downlink(type_name="ACK")[0].payload["committed_rseq"] == 3
    seal.close()

    gateway_env.broker.restart()
    assert wait_until(lambda: get_json(gw.api + "/healthz")[0] == 200, timeout=20)
    seal2 = gateway_env.seal(5001)
    seal2.frames = seal.frames  # same seal, same counters
    seal2.send(seal.frames.records(3))
    assert seal2.next_downlink(type_name="ACK", timeout=20)[0].payload["committed_rseq"] == 6
    assert gw.metrics()["navseal_mqtt_connected"] == 1


def test_webhook_sink_down_then_up_loses_nothing_and_depth_is_visible(gateway_env):
    target = WebhookTarget()
    gateway_env.configure(sinks=[
        {"name": "ops", "type": "webhook", "url": target.url, "timeout_s": 2},
        {"name": "file", "type": "jsonl", "path": str(gateway_env.events)},
    ])
    gw = gateway_env.start()  # the receiver is down from the start
    seal = gateway_env.seal(6001)
    bring_online_and_activate(gateway_env.api, seal, gateway_env.operator)
    seal.send(seal.frames.event("CABLE_CUT", cable_intact=False))
    assert wait_until(lambda: any(e["kind"] == "UNAUTHORIZED_OPENING" for e in read_jsonl(gateway_env.events)))
    # ACTIVATED, POSITION, UNAUTHORIZED_OPENING wait for "ops"
    assert wait_until(lambda: gw.metrics()['navseal_outbox_depth{sink="ops"}'] >= 3)
    m = gw.metrics()
    assert m['navseal_outbox_depth{sink="file"}'] == 0  # one sink down does not hold up another
    assert m['navseal_sink_failures{sink="ops"}'] >= 1
    status, outbox = get_json(gw.api + "/v1/outbox", gateway_env.tokens["auditor"])
    assert outbox["sinks"]["ops"]["depth"] >= 3 and outbox["sinks"]["ops"]["last_error"]

    target.start()
    try:
        expected = {e["event_id"] for e in read_jsonl(gateway_env.events)}
        assert target.wait_for(len(expected), timeout=20)
        assert set(target.unique) == expected
        validate(list(target.unique.values()))  # the documented JSON Schema (docs/events.md)
        alarm = next(e for e in target.unique.values() if e["kind"] == "UNAUTHORIZED_OPENING")
        assert [n["role"] for n in alarm["notify"]] == ["departure", "destination"]
        assert wait_until(lambda: gw.metrics()['navseal_outbox_depth{sink="ops"}'] == 0)
    finally:
        target.stop()


def test_cli_commands_against_the_running_gateway(gateway_env):
    gw = gateway_env.start()
    seal = gateway_env.seal(7001)
    cli = [NAVSEAL, "gateway"]
    api = ["--api", gw.api]
    env = dict(os.environ, NAVSEAL_TOKEN=gateway_env.operator)

    def run(*args):
        return subprocess.run(cli + list(args), capture_output=True, text=True, timeout=60, env=env)

    anonymous = subprocess.run(cli + ["status", *api], capture_output=True, text=True, timeout=60,
                               env={k: v for k, v in env.items() if k != "NAVSEAL_TOKEN"})
    assert anonymous.returncode == 1 and "401 unauthorized" in anonymous.stderr
    assert run("provision", "--seal", "7001", "--test-key", *api).returncode == 0
    body = activation_body(7001)
    result = run("activate", "--seal", "7001", "--declaration", body["declaration"], "--vehicle", "123ABC02",
                 "--departure-office", "10228010", "--departure-office-name", "Almaty",
                 "--dest-office", "10232010", "--dest-office-name", "Khorgos", "--period-hours", "48", *api)
    assert result.returncode == 0, result.stderr
    assert "activation queued" in result.stdout
    seal.send(seal.frames.hello())
    _, activate_raw = seal.next_downlink(type_name="ACTIVATE")
    seal.send(seal.frames.command_result(activate_raw))
    seal.send(seal.frames.records(1))
    assert wait_until(lambda: '"status": "active"' in run("status", "--seal", "7001", "--json", *api).stdout)

    wrong = run("deactivate", "--seal", "7001", "--declaration", "WRONG", "--vehicle", "123ABC02", *api)
    assert wrong.returncode == 1 and "refused" in wrong.stderr
    ok = run("deactivate", "--seal", "7001", "--declaration", body["declaration"], "--vehicle", "123ABC02", *api)
    assert ok.returncode == 0, ok.stderr
    _, deactivate_raw = seal.next_downlink(type_name="DEACTIVATE")
    seal.send(seal.frames.command_result(deactivate_raw))
    assert wait_until(lambda: any(e["kind"] == "DEACTIVATED" for e in read_jsonl(gateway_env.events)))
    deactivated = next(e for e in read_jsonl(gateway_env.events) if e["kind"] == "DEACTIVATED")
    assert deactivated["seal_id"] == 7001

    unreachable = run("status", "--api", "http://127.0.0.1:9")
    assert unreachable.returncode == 3
