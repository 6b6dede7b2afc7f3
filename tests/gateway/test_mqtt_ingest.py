"""The MQTT driver against a real Mosquitto (project config): persistent session, acks only after
commit (redelivery), broker restart, shared subscriptions, downlink topic, order per seal."""

from __future__ import annotations

import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from navseal.gateway.mqtt_ingest import MqttIngest, MqttSettings


def publisher(broker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, items: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()


class Collector:
    def __init__(self, ack: bool = True) -> None:
        self.ack = ack
        self.items: "queue.Queue[tuple[bytes, str]]" = queue.Queue()

    def submit(self, raw, source, reply, ack) -> None:
        self.items.put((raw, source))
        if self.ack:
            ack()

    def take(self, n: int, timeout: float = 10.0) -> list[tuple[bytes, str]]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            out.append(self.items.get(timeout=max(0.01, deadline - time.monotonic())))
        return out


def ingest(broker, collector: Collector, **settings) -> MqttIngest:
    base = {"host": broker.host, "port": broker.port, "client_id": "gw-test", "reconnect_max_s": 0.5}
    base.update(settings)
    driver = MqttIngest(MqttSettings(**base), collector.submit)
    driver.start()
    assert driver.subscribed.wait(10), "ingest did not subscribe"
    return driver


def frames(seal: int, n: int) -> list[tuple[str, bytes]]:
    return [(f"seals/{seal}/up", f"{seal}:{i}".encode()) for i in range(n)]


def test_frames_in_order_with_source_and_downlink_topic(mosquitto_broker):
    collector = Collector()
    driver = ingest(mosquitto_broker, collector)
    pub = publisher(mosquitto_broker)
    down: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
    sub_ok = threading.Event()
    pub.on_message = lambda c, u, m: down.put((m.topic, m.payload))
    pub.on_subscribe = lambda *a: sub_ok.set()
    pub.subscribe("seals/+/down", qos=1)
    try:
        interleaved = [item for pair in zip(frames(1, 50), frames(2, 50)) for item in pair]
        publish_all(pub, interleaved + [("seals/notanumber/up", b"x"), ("seals/3/up/extra", b"y")])
        got = collector.take(100)
        for seal in (1, 2):
            assert [raw for raw, src in got if src == f"mqtt:{seal}"] == [p for _, p in frames(seal, 50)]
        assert collector.items.empty()
        assert driver.stats.received == 100
        assert sub_ok.wait(5)
        driver.publish_downlink(7, b"\x01\x02").wait_for_publish(5)
        assert down.get(timeout=5) == ("seals/7/down", b"\x01\x02")
    finally:
        pub.loop_stop()
        driver.stop()
    # The malformed topic "seals/notanumber/up" is counted, not handed on ("seals/3/up/extra" does
    # not even match the subscription).
    assert driver.stats.bad_topic == 1


def test_frames_published_while_gateway_down_arrive_when_it_returns(mosquitto_broker):
    first = ingest(mosquitto_broker, Collector())
    first.stop()
    pub = publisher(mosquitto_broker)
    try:
        publish_all(pub, frames(5, 20))
    finally:
        pub.loop_stop()
    collector = Collector()
    second = ingest(mosquitto_broker, collector)
    try:
        assert [raw for raw, _ in collector.take(20)] == [p for _, p in frames(5, 20)]
    finally:
        second.stop()


def test_unacked_frames_are_redelivered_to_the_next_session(mosquitto_broker):
    no_ack = Collector(ack=False)  # a gateway that dies before committing
    first = ingest(mosquitto_broker, no_ack)
    pub = publisher(mosquitto_broker)
    try:
        publish_all(pub, frames(9, 5))
        assert len(no_ack.take(5)) == 5
        first.stop()
        collector = Collector()
        second = ingest(mosquitto_broker, collector)
        try:
            assert [raw for raw, _ in collector.take(5)] == [p for _, p in frames(9, 5)]
            publish_all(pub, frames(10, 1))
            assert collector.take(1)[0][0] == b"10:0"
        finally:
            second.stop()
    finally:
        pub.loop_stop()


def test_broker_restart_reconnects_and_session_survives(mosquitto_broker):
    collector = Collector()
    driver = ingest(mosquitto_broker, collector)
    try:
        mosquitto_broker.stop()
        deadline = time.monotonic() + 10
        while driver.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not driver.connected.is_set()
        mosquitto_broker.start()
        assert driver.subscribed.wait(15), "did not reconnect after the broker restart"
        pub = publisher(mosquitto_broker)
        try:
            publish_all(pub, frames(4, 10))
        finally:
            pub.loop_stop()
        assert [raw for raw, _ in collector.take(10)] == [p for _, p in frames(4, 10)]
        assert driver.stats.connects >= 2
    finally:
        driver.stop()


def test_shared_subscription_splits_load_between_instances(mosquitto_broker):
    a, b = Collector(), Collector()
    gw_a = ingest(mosquitto_broker, a, client_id="gw-a", shared_group="navseal")
    gw_b = ingest(mosquitto_broker, b, client_id="gw-b", shared_group="navseal")
    pub = publisher(mosquitto_broker)
    try:
        publish_all(pub, [item for seal in range(1, 11) for item in frames(seal, 10)])
        deadline = time.monotonic() + 10
        while a.items.qsize() + b.items.qsize() < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        got_a, got_b = a.items.qsize(), b.items.qsize()
        assert got_a + got_b == 100, "each frame exactly once across the group"
        assert got_a > 10 and got_b > 10, f"load not split: {got_a} / {got_b}"
    finally:
        pub.loop_stop()
        gw_a.stop()
        gw_b.stop()


def test_production_acl_binds_each_seal_to_its_own_topics(mosquitto_factory):
    """With the shipped ACL and per-seal logins, seal 1001 cannot publish as seal 1002, and the
    gateway (its own user) still reads every seal's uplink through a shared subscription."""
    from navseal.gateway.mosquitto_broker import PRODUCTION_ACL

    broker = mosquitto_factory(users={"1001": "pw1", "1002": "pw2", "navseal-gateway": "gwpw"},
                               acl_file=PRODUCTION_ACL)
    collector = Collector()
    gw = ingest(broker, collector, username="navseal-gateway", password="gwpw", shared_group="navseal")
    seal = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="seal-1001", protocol=mqtt.MQTTv5)
    seal.username_pw_set("1001", "pw1")
    seal.connect(broker.host, broker.port)
    seal.loop_start()
    try:
        publish_all(seal, [("seals/1002/up", b"forged-topic")])  # the broker drops it (ACL)
        publish_all(seal, [("seals/1001/up", b"own-topic")])
        assert collector.take(1)[0] == (b"own-topic", "mqtt:1001")
        assert collector.items.empty(), "a frame published on another seal's topic got through"
        intruder = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        intruder.username_pw_set("1001", "wrong")
        result: list = []
        intruder.on_connect = lambda c, u, f, rc, p: result.append(rc)
        intruder.connect(broker.host, broker.port)
        intruder.loop_start()
        deadline = time.monotonic() + 5
        while not result and time.monotonic() < deadline:
            time.sleep(0.01)
        intruder.loop_stop()
        assert result and result[0].is_failure, "a wrong password was accepted"
    finally:
        seal.loop_stop()
        gw.stop()


def test_frames_queued_for_the_gateway_survive_a_broker_restart(mosquitto_broker):
    """Gateway down, frames queued in its session, broker restarted (persistence on): delivered."""
    ingest(mosquitto_broker, Collector()).stop()
    pub = publisher(mosquitto_broker)
    try:
        publish_all(pub, frames(6, 10))
    finally:
        pub.loop_stop()
    mosquitto_broker.restart()
    collector = Collector()
    driver = ingest(mosquitto_broker, collector)
    try:
        assert [raw for raw, _ in collector.take(10)] == [p for _, p in frames(6, 10)]
    finally:
        driver.stop()


def test_protocol_setting_is_checked():
    import pytest as _pytest

    with _pytest.raises(ValueError, match="protocol"):
        MqttSettings(protocol="4")
    with _pytest.raises(ValueError, match="shared subscriptions"):
        MqttSettings(protocol="3.1.1", shared_group="g")


def test_mqtt_311_mode_keeps_its_session_across_a_restart(mosquitto_broker):
    """The 3.1.1 mode (for 3.1.1-only brokers such as the demo's amqtt) also has a persistent
    session: frames published while the gateway is down arrive when it returns."""
    first = ingest(mosquitto_broker, Collector(), protocol="3.1.1", client_id="gw-311")
    first.stop()
    pub = publisher(mosquitto_broker)
    try:
        publish_all(pub, frames(6, 10))
    finally:
        pub.loop_stop()
    collector = Collector()
    second = ingest(mosquitto_broker, collector, protocol="3.1.1", client_id="gw-311")
    try:
        assert [raw for raw, _ in collector.take(10)] == [p for _, p in frames(6, 10)]
    finally:
        second.stop()


def _downlink_listener(broker) -> tuple[mqtt.Client, "queue.Queue[bytes]"]:
    client = publisher(broker)
    got: "queue.Queue[bytes]" = queue.Queue()
    subscribed = threading.Event()
    client.on_message = lambda c, u, m: got.put(m.payload)
    client.on_subscribe = lambda *a: subscribed.set()
    client.subscribe("seals/+/down", qos=1)
    assert subscribed.wait(5)
    return client, got


def test_downlinks_never_overfill_the_window_and_keep_their_order(mosquitto_broker):
    # paho's own in-flight limit is off (it walks every message in flight on each PUBACK): the
    # driver keeps the window. Here a window of 3 against 60 downlinks published back to back.
    driver = ingest(mosquitto_broker, Collector(), receive_maximum=3)
    listener, got = _downlink_listener(mosquitto_broker)
    seen_in_flight = []
    publish = driver.client.publish

    def observed_publish(*args, **kwargs):
        seen_in_flight.append(driver.downlinks_in_flight)
        return publish(*args, **kwargs)

    driver.client.publish = observed_publish
    try:
        assert driver.downlink_window == 3
        infos = [driver.publish_downlink(9, i.to_bytes(2, "big")) for i in range(60)]
        for info in infos:
            info.wait_for_publish(5)
        assert [got.get(timeout=5) for _ in range(60)] == [i.to_bytes(2, "big") for i in range(60)]
        assert max(seen_in_flight) <= 2  # each publish went into a window with room
        deadline = time.monotonic() + 5
        while driver.downlinks_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert driver.downlinks_in_flight == 0  # every PUBACK counted: the window does not leak
    finally:
        listener.loop_stop()
        driver.stop()


def test_downlinks_while_disconnected_do_not_wait_and_are_sent_after_the_reconnect(mosquitto_broker):
    driver = ingest(mosquitto_broker, Collector(), receive_maximum=3)
    listener, got = _downlink_listener(mosquitto_broker)
    try:
        driver.suspend()
        started = time.monotonic()
        for i in range(10):  # more than the window: paho keeps them all
            driver.publish_downlink(9, bytes([i]))
        assert time.monotonic() - started < 1.0
        driver.resume()
        assert sorted(got.get(timeout=10) for _ in range(10)) == [bytes([i]) for i in range(10)]
    finally:
        listener.loop_stop()
        driver.stop()


def test_a_broker_that_stops_acknowledging_holds_one_downlink_for_the_wait_only(mosquitto_broker, monkeypatch):
    from navseal.gateway import mqtt_ingest

    monkeypatch.setattr(mqtt_ingest, "DOWNLINK_WINDOW_WAIT_S", 0.3)
    driver = ingest(mosquitto_broker, Collector(), receive_maximum=2)
    try:
        driver.client.loop_stop()  # still connected, but no PUBACK is read: the window stays full
        started = time.monotonic()
        for i in range(6):
            driver.publish_downlink(9, bytes([i]))
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 0.9  # the third waited once; the rest did not wait again
        assert driver.downlinks_in_flight == 6
        driver.client.loop_start()  # PUBACKs read again: the count drains to nothing
        deadline = time.monotonic() + 5
        while driver.downlinks_in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert driver.downlinks_in_flight == 0
    finally:
        driver.stop()
