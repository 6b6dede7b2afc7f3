"""link_mqtt: exact MQTT 3.1.1 bytes against an in-memory stream, reconnect policy, and a real
Mosquitto (persistent session, QoS 1 both ways, broker restart)."""

import queue
import struct
import time

import pytest

from navseal_fw.link_mqtt import MQTTClient, MqttLink, tcp_connector


class FakeStream:
    """An in-memory socket that plays a broker: answers CONNECT, SUBSCRIBE, PUBLISH QoS 1 and
    PINGREQ, records every packet the client wrote."""

    def __init__(self, session_present=0):
        self.inbuf = bytearray()
        self.written = []
        self.blocking = True
        self.closed = False
        self.session_present = session_present

    def push(self, data):
        self.inbuf.extend(data)

    def read(self, n):
        if not self.inbuf:
            if not self.blocking:
                return None
            raise OSError(110)  # would hang: a real socket would time out
        out = bytes(self.inbuf[:n])
        del self.inbuf[:n]
        return out

    def write(self, data):
        data = bytes(data)
        self.written.append(data)
        kind = data[0] & 0xF0
        if kind == 0x10:
            self.push(bytes((0x20, 2, self.session_present, 0)))
        elif kind == 0x80:
            self.push(bytes((0x90, 3)) + data[2:4] + b"\x01")
        elif kind == 0x30 and data[0] & 0x06:
            tlen = struct.unpack(">H", data[2:4])[0]
            self.push(b"\x40\x02" + data[4 + tlen:6 + tlen])
        elif kind == 0xC0:
            self.push(b"\xd0\x00")
        return len(data)

    def setblocking(self, flag):
        self.blocking = flag

    def close(self):
        self.closed = True


def test_connect_bytes_persistent_session_and_keepalive():
    s = FakeStream(session_present=1)
    c = MQTTClient("seal-1001", lambda: s, keepalive=60)
    assert c.connect(clean_session=False) == 1
    assert s.written[0] == (b"\x10\x15\x00\x04MQTT\x04\x00\x00\x3c" + b"\x00\x09seal-1001")


def test_publish_qos1_waits_for_puback_and_delivers_downlink_meanwhile():
    s = FakeStream()
    got = []
    c = MQTTClient("seal-1", lambda: s)
    c.set_callback(lambda t, m: got.append((bytes(t), bytes(m))))
    c.connect(clean_session=False)
    # A downlink message is already waiting when we publish (QoS 1, pid 7).
    s.push(b"\x32" + bytes((2 + 12 + 2 + 3,)) + b"\x00\x0cseals/1/down" + b"\x00\x07" + b"abc")
    c.publish("seals/1/up", b"\x01\x02", qos=1)
    assert got == [(b"seals/1/down", b"abc")]
    assert s.written[1] == b"\x32\x10\x00\x0aseals/1/up\x00\x01\x01\x02"
    assert s.written[2] == b"\x40\x02\x00\x07"  # our PUBACK for the downlink


def test_link_frames_in_and_out():
    s = FakeStream()
    frames, states = [], []
    link = MqttLink(1001, lambda: s, frames.append, states.append)
    link.poll(0)
    assert link.connected and states == [True]
    assert s.written[1][0] == 0x82 and b"seals/1001/down" in s.written[1]
    assert link.send(b"FRAME", 10)
    s.push(b"\x30" + bytes((2 + 15 + 4,)) + b"\x00\x0fseals/1001/down" + b"DOWN")
    link.poll(20)
    assert frames == [b"DOWN"]
    # Keepalive: a ping after half the keepalive without traffic.
    n = len(s.written)
    link.poll(20 + 30000)
    assert s.written[n] == b"\xc0\x00"


def test_reconnect_backoff_is_capped_exponential_with_jitter():
    calls = []

    def refuse():
        calls.append(1)
        raise OSError(111)

    link = MqttLink(1, refuse, lambda f: None, backoff_ms=1000, backoff_cap_ms=16000,
                    rand=lambda n: n - 1)  # jitter at its top: delay == d
    now = 0
    delays = []
    for _ in range(8):
        link.poll(now)
        delays.append(link.next_attempt_ms - now)
        now = link.next_attempt_ms
    assert delays == [2000, 4000, 8000, 16000, 16000, 16000, 16000, 16000]
    assert len(calls) == 8
    low = MqttLink(1, refuse, lambda f: None, backoff_ms=1000, backoff_cap_ms=16000, rand=lambda n: 0)
    low.poll(0)
    assert low.next_attempt_ms == 1000  # bottom of [d/2, d]
    assert link.send(b"x") is False


def test_broken_connection_goes_down_and_comes_back():
    streams = [FakeStream(), FakeStream()]
    it = iter(streams)
    states = []
    link = MqttLink(5, lambda: next(it), lambda f: None, states.append, rand=lambda n: 0)
    link.poll(0)

    def broken(data):
        raise OSError(32)  # EPIPE

    streams[0].write = broken
    assert link.send(b"x", 100) is False
    assert states == [True, False] and not link.connected
    link.poll(link.next_attempt_ms)
    assert link.connected and states == [True, False, True]
    assert link.send(b"y")


# ---- against a real Mosquitto -----------------------------------------------------------------

def _wait(pred, timeout=10.0, step=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if step:
            step()
        if pred():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def subscriber(mosquitto_broker):
    paho = pytest.importorskip("paho.mqtt.client")
    q = queue.Queue()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-gw")
    c.on_message = lambda cl, u, m: q.put((m.topic, m.payload))
    c.connect(mosquitto_broker.host, mosquitto_broker.port)
    c.subscribe("seals/+/up", qos=1)
    c.loop_start()
    yield c, q
    c.loop_stop()
    c.disconnect()


def test_real_mosquitto_up_down_and_persistent_session_over_restart(mosquitto_broker, subscriber):
    gw, q = subscriber
    frames, states = [], []
    link = MqttLink(1001, tcp_connector(mosquitto_broker.host, mosquitto_broker.port, 5),
                    frames.append, states.append, keepalive_s=10, backoff_ms=100, backoff_cap_ms=400)
    t0 = time.monotonic()
    now = lambda: int((time.monotonic() - t0) * 1000)
    assert _wait(lambda: link.connected, step=lambda: link.poll(now()))
    assert link.send(b"\x4e\x53up-1", now())
    assert q.get(timeout=5) == ("seals/1001/up", b"\x4e\x53up-1")
    gw.publish("seals/1001/down", b"down-1", qos=1).wait_for_publish(5)
    assert _wait(lambda: frames == [b"down-1"], step=lambda: link.poll(now()))
    # The seal loses its connection (coverage gap); a command published meanwhile waits in its
    # persistent session (clean_session False, QoS 1) and arrives after the reconnect.
    link.client.sock._sock.close()
    assert _wait(lambda: not link.connected, step=lambda: link.send(b"probe", now()))
    gw.publish("seals/1001/down", b"down-2", qos=1).wait_for_publish(5)
    ok = _wait(lambda: link.connected and b"down-2" in frames, timeout=15, step=lambda: link.poll(now()))
    assert ok, (states, frames, link.last_error)
    # The broker restarts: the link notices, backs off, reconnects and re-subscribes.
    # (Observed with Debian's Mosquitto 2.0.11: a session whose client was connected at the
    # SIGTERM came back with session_present 0, so the link always re-subscribes.)
    mosquitto_broker.restart()
    assert _wait(lambda: not link.connected, step=lambda: (link.poll(now()), link.send(b"probe", now())))
    assert _wait(lambda: link.connected, timeout=15, step=lambda: link.poll(now()))
    assert _wait(gw.is_connected, timeout=10)
    gw.publish("seals/1001/down", b"down-3", qos=1).wait_for_publish(5)
    assert _wait(lambda: b"down-3" in frames, timeout=10, step=lambda: link.poll(now()))
    assert states[0] is True and states.count(False) == 2 and states[-1] is True


def test_real_mosquitto_with_the_production_login_and_acl(mosquitto_factory):
    from pathlib import Path

    paho = pytest.importorskip("paho.mqtt.client")
    acl = Path(__file__).resolve().parents[2] / "gateway" / "mosquitto" / "acl"
    broker = mosquitto_factory(users={"1001": "seal-secret", "navseal-gateway": "gw-secret"},
                               acl_file=acl)
    q = queue.Queue()
    gw = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="gw-acl")
    gw.username_pw_set("navseal-gateway", "gw-secret")
    gw.on_message = lambda cl, u, m: q.put((m.topic, m.payload))
    gw.connect(broker.host, broker.port)
    gw.subscribe("seals/+/up", qos=1)
    gw.loop_start()
    try:
        frames = []
        t0 = time.monotonic()
        now = lambda: int((time.monotonic() - t0) * 1000)  # noqa: E731
        bad = MqttLink(1001, tcp_connector(broker.host, broker.port, 5), frames.append,
                       user="1001", password="wrong", backoff_ms=100)
        bad.poll(now())
        assert not bad.connected and "refused" in str(bad.last_error)
        link = MqttLink(1001, tcp_connector(broker.host, broker.port, 5), frames.append,
                        user="1001", password="seal-secret", backoff_ms=100)
        assert _wait(lambda: link.connected, step=lambda: link.poll(now()))
        assert link.send(b"hello-acl", now())
        assert q.get(timeout=5) == ("seals/1001/up", b"hello-acl")
        gw.publish("seals/1001/down", b"cmd", qos=1).wait_for_publish(5)
        assert _wait(lambda: frames == [b"cmd"], step=lambda: link.poll(now()))
        link.close()
    finally:
        gw.loop_stop()
        gw.disconnect()
