"""link_mqtt against a real Mosquitto (under CPython; the unix port runs it in the board-path
test): QoS 1 both ways, a downlink queued in the persistent session during a gap, a broker
restart, and the production login and ACL. Packet bytes and backoff are in mp/mpt_link.py,
stalls and drops against an in-memory broker in test_link_async.py."""

import asyncio
import queue
from pathlib import Path

import pytest

from navseal_fw.aio import sleep_ms, ticks_diff, ticks_ms
from navseal_fw.link_mqtt import MqttLink, tcp_opener

ACL = Path(__file__).resolve().parents[2] / "gateway" / "mosquitto" / "acl"


async def until(pred, ms=10000, link=None):
    t0 = ticks_ms()
    while not pred():
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        if link is not None:
            link.poll(0)
        await sleep_ms(10)
    return True


@pytest.fixture
def gateway_client():
    paho = pytest.importorskip("paho.mqtt.client")
    made = []

    def make(broker, user=None, password=None):
        q = queue.Queue()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-gw-{len(made)}")
        if user:
            c.username_pw_set(user, password)
        c.on_message = lambda cl, u, m: q.put((m.topic, m.payload))
        c.connect(broker.host, broker.port)
        c.subscribe("seals/+/up", qos=1)
        c.loop_start()
        made.append(c)
        return c, q

    yield make
    for c in made:
        c.loop_stop()
        c.disconnect()


async def _get(q, timeout_ms=5000):
    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < timeout_ms:
        try:
            return q.get_nowait()
        except queue.Empty:
            await sleep_ms(10)
    raise AssertionError("nothing arrived")


def test_real_mosquitto_up_down_and_persistent_session_over_restart(mosquitto_broker, gateway_client):
    gw, q = gateway_client(mosquitto_broker)
    frames, states = [], []

    async def scenario():
        link = MqttLink(1001, tcp_opener(mosquitto_broker.host, mosquitto_broker.port),
                        frames.append, states.append, keepalive_s=10, backoff_ms=100,
                        backoff_cap_ms=400, response_ms=3000)
        task = asyncio.create_task(link.run())
        assert await until(lambda: link.connected, link=link)
        assert link.send(b"\x4e\x53up-1")
        assert await _get(q) == ("seals/1001/up", b"\x4e\x53up-1")
        gw.publish("seals/1001/down", b"down-1", qos=1)
        assert await until(lambda: frames == [b"down-1"], link=link)
        # A coverage gap: the connection dies; a command published meanwhile waits in the
        # persistent session (clean_session False, QoS 1) and arrives after the reconnect.
        link._w.transport.abort()
        assert await until(lambda: link.failures == 1)
        gw.publish("seals/1001/down", b"down-2", qos=1)
        assert await until(lambda: link.connected and b"down-2" in frames, 15000, link=link), \
            (states, frames, link.last_error)
        # The broker restarts: the link notices, backs off, reconnects and re-subscribes.
        await asyncio.get_running_loop().run_in_executor(None, mosquitto_broker.restart)
        assert await until(lambda: link.connected and link.failures >= 2, 15000, link=link)
        assert await until(gw.is_connected, 10000)
        gw.publish("seals/1001/down", b"down-3", qos=1)
        assert await until(lambda: b"down-3" in frames, 10000, link=link)
        link.close()
        await sleep_ms(50)
        task.cancel()
        return link

    link = asyncio.run(scenario())
    assert frames == [b"down-1", b"down-2", b"down-3"]
    assert states[0] is True and states.count(True) == 3 and states.count(False) == 2
    assert link.sent == 1


def test_real_mosquitto_with_the_production_login_and_acl(mosquitto_factory, gateway_client):
    broker = mosquitto_factory(users={"1001": "seal-secret", "navseal-gateway": "gw-secret"},
                               acl_file=ACL)
    gw, q = gateway_client(broker, "navseal-gateway", "gw-secret")
    frames = []

    async def scenario():
        bad = MqttLink(1001, tcp_opener(broker.host, broker.port), frames.append,
                       user="1001", password="wrong", backoff_ms=100, response_ms=3000)
        bad_task = asyncio.create_task(bad.run())
        assert await until(lambda: bad.failures >= 1)
        assert not bad.connected and "refused" in str(bad.last_error)
        bad.close()
        bad_task.cancel()
        link = MqttLink(1001, tcp_opener(broker.host, broker.port), frames.append,
                        user="1001", password="seal-secret", backoff_ms=100, response_ms=3000)
        task = asyncio.create_task(link.run())
        assert await until(lambda: link.connected, link=link)
        assert link.send(b"hello-acl")
        assert await _get(q) == ("seals/1001/up", b"hello-acl")
        gw.publish("seals/1001/down", b"cmd", qos=1)
        assert await until(lambda: frames == [b"cmd"], link=link)
        link.close()
        await sleep_ms(50)
        task.cancel()

    asyncio.run(scenario())
