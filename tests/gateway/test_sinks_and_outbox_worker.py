"""Sinks and the outbox worker: real HTTP receiver going down and up, JSON Lines, MQTT topic."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from navseal.gateway.outbox_worker import Backoff, OutboxWorker
from navseal.gateway.sinks import JsonLinesSink, MqttSink, SinkError, WebhookSink
from webhook_target import WebhookTarget


class MemoryOutbox:
    """The outbox contract (the outbox part of gateway/store/interface.py) in memory: rows and a cursor per sink."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []
        self.cursor: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, event: dict) -> None:
        with self.lock:
            self.rows.append((len(self.rows) + 1, event))

    def outbox_fetch(self, sink, limit):
        with self.lock:
            done = self.cursor.get(sink, 0)
            return [row for row in self.rows if row[0] > done][:limit]

    def outbox_mark_delivered(self, sink, upto, now=None):
        with self.lock:
            self.cursor[sink] = upto

    def outbox_depth(self, sink):
        with self.lock:
            return sum(1 for oid, _ in self.rows if oid > self.cursor.get(sink, 0))


def event(n: int, seal: int = 1) -> dict:
    return {"event_id": f"ev-{seal}-{n}", "kind": "POSITION", "seal_id": seal, "n": n}


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_webhook_down_then_up_loses_nothing_and_keeps_order():
    target = WebhookTarget().start()
    outbox = MemoryOutbox()
    worker = OutboxWorker(
        WebhookSink("ops", target.url, timeout_s=2),
        lambda: outbox,
        batch_size=7,
        backoff=Backoff(initial_s=0.02, max_s=0.2),
    )
    worker.start()
    try:
        for n in range(1, 6):
            outbox.add(event(n, seal=n % 2))
        worker.notify()
        assert target.wait_for(5)

        target.stop()  # the operator's system goes down; the gateway keeps producing
        for n in range(6, 31):
            outbox.add(event(n, seal=n % 2))
        worker.notify()
        assert wait_until(lambda: worker.stats.failures >= 3), "worker did not retry"
        assert outbox.outbox_depth("ops") == 25
        assert wait_until(lambda: worker.depth() == 25)

        target.start()  # back on the same port
        assert target.wait_for(30), f"only {len(target.unique)} of 30 events arrived"
        assert wait_until(lambda: outbox.outbox_depth("ops") == 0)
        # Every event once in effect, in outbox order (so per-seal order holds too).
        keys = [key for key, _ in target.requests]
        assert keys == [f"ev-{n % 2}-{n}" for n in range(1, 31)]
        for key, body in target.requests:
            assert body["event_id"] == key
    finally:
        worker.stop()
        target.stop()


def test_webhook_error_status_is_retried_with_same_idempotency_key():
    target = WebhookTarget().start()
    target.fail_with = 503
    outbox = MemoryOutbox()
    outbox.add(event(1))
    worker = OutboxWorker(WebhookSink("ops", target.url), lambda: outbox, backoff=Backoff(0.02, 0.1))
    worker.start()
    try:
        assert wait_until(lambda: worker.stats.failures >= 2)
        assert "HTTP 503" in worker.stats.last_error
        assert outbox.outbox_depth("ops") == 1
        target.fail_with = None
        assert target.wait_for(1)
        assert wait_until(lambda: outbox.outbox_depth("ops") == 0)
        assert [key for key, _ in target.requests] == ["ev-1-1"]
    finally:
        worker.stop()
        target.stop()


def test_webhook_sink_unreachable_raises_sink_error():
    sink = WebhookSink("ops", "http://127.0.0.1:9/none", timeout_s=1)
    try:
        sink.deliver(event(1))
    except SinkError as exc:
        assert "webhook" in str(exc)
    else:
        raise AssertionError("delivery to a closed port must fail")


def test_backoff_is_capped_exponential():
    backoff = Backoff(initial_s=1, max_s=8, jitter=0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay(hint=5) == 5
    assert backoff.next_delay(hint=100) == 8


def test_jsonl_file_sink_appends_one_line_per_event(tmp_path):
    path = tmp_path / "out" / "events.jsonl"
    outbox = MemoryOutbox()
    worker = OutboxWorker(JsonLinesSink("file", str(path)), lambda: outbox)
    worker.start()
    try:
        for n in range(1, 4):
            outbox.add(event(n))
        worker.notify()
        assert worker.flush(5)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [e["event_id"] for e in lines] == ["ev-1-1", "ev-1-2", "ev-1-3"]
    finally:
        worker.stop()


def test_mqtt_sink_publishes_json_at_qos1(mosquitto_broker):
    received: list[tuple[str, dict]] = []
    got = threading.Event()
    consumer = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    consumer.on_subscribe = lambda *a: subscribed.set()

    def on_message(client, userdata, message):
        received.append((message.topic, json.loads(message.payload)))
        if len(received) == 2:
            got.set()

    consumer.on_message = on_message
    consumer.connect(mosquitto_broker.host, mosquitto_broker.port)
    consumer.subscribe("ops/events/#", qos=1)
    consumer.loop_start()
    sink = MqttSink("ops", mosquitto_broker.host, mosquitto_broker.port, "ops/events", client_id="t-sink")
    try:
        assert subscribed.wait(5)
        sink.deliver_batch([event(1, seal=7), {**event(2, seal=7), "kind": "UNAUTHORIZED_OPENING"}])
        assert got.wait(5)
        assert received[0] == ("ops/events/7/POSITION", event(1, seal=7))
        assert received[1][0] == "ops/events/7/UNAUTHORIZED_OPENING"
    finally:
        sink.close()
        consumer.loop_stop()
        consumer.disconnect()
