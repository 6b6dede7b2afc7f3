# The MQTT link's behaviour against an in-memory broker, as async checks that run unchanged under
# CPython (asyncio.run), the WebAssembly MicroPython (top-level await) and the unix port
# (asyncio.run): tests/firmware/test_link_async.py drives them. Each returns a dict of what it saw.
#
# FakeBroker plays Mosquitto at the packet level: CONNACK (session present when it kept the
# session), SUBACK, PUBACK, PINGRESP; it can hold PUBACKs, stall (answer nothing at all, as a
# SIGSTOPped broker), refuse connections, and cut a connection in the middle of a packet.
import asyncio
import struct

from navseal_fw.aio import sleep_ms, ticks_diff, ticks_ms
from navseal_fw.link_mqtt import MqttLink

SEAL = 1001
DOWN = b"seals/1001/down"


class FakeConn:
    # One connection as asyncio streams: the link reads with readexactly, writes with
    # write/drain; what it writes is parsed by the broker packet by packet.
    def __init__(self, broker):
        self.broker = broker
        self.inbuf = b""
        self.closed = False
        self.held = []  # answers held back while the broker stalls

    async def readexactly(self, n):
        while len(self.inbuf) < n:
            if self.closed:
                raise EOFError("connection closed")
            await sleep_ms(2)
        out = self.inbuf[:n]
        self.inbuf = self.inbuf[n:]
        return out

    def write(self, data):
        if self.closed:
            raise OSError(32)  # EPIPE
        self.broker.on_client(self, bytes(data))

    async def drain(self):
        if self.closed:
            raise OSError(32)

    def close(self):
        self.closed = True

    def answer(self, data):
        if self.broker.stalled:
            self.held.append(data)
        else:
            self.inbuf += data


def publish_packet(pid, payload, topic=DOWN, dup=False):
    body = struct.pack(">H", len(topic)) + topic + struct.pack(">H", pid) + payload
    return bytes((0x32 | (0x08 if dup else 0), len(body))) + body


class FakeBroker:
    def __init__(self):
        self.conns = []
        self.accepting = True
        self.stalled = False
        self.hold_puback = False
        self.session = False  # a session kept from an earlier connection
        self.uplinks = []  # (pid, payload, dup) in arrival order
        self.acked = []  # pids the client PUBACKed
        self.unacked = {}  # pid -> payload: downlinks sent, not yet PUBACKed (the session)
        self.held_pubacks = []
        self.connects = 0

    async def opener(self):
        await sleep_ms(1)
        if not self.accepting:
            raise OSError(111)  # ECONNREFUSED
        conn = FakeConn(self)
        self.conns.append(conn)
        return conn, conn

    @property
    def conn(self):
        return self.conns[-1]

    def on_client(self, conn, data):
        kind = data[0] & 0xF0
        if kind == 0x10:
            self.connects += 1
            conn.answer(bytes((0x20, 2, 1 if self.session else 0, 0)))
            self.session = True
            # a kept session redelivers what the client never acknowledged
            for pid in self.unacked:
                conn.answer(publish_packet(pid, self.unacked[pid], dup=True))
        elif kind == 0x80:
            conn.answer(bytes((0x90, 3)) + data[2:4] + b"\x01")
        elif kind == 0x30:
            tlen = struct.unpack(">H", data[2:4])[0]
            pid = struct.unpack(">H", data[4 + tlen:6 + tlen])[0]
            self.uplinks.append((pid, data[6 + tlen:], bool(data[0] & 0x08)))
            puback = b"\x40\x02" + data[4 + tlen:6 + tlen]
            if self.hold_puback:
                self.held_pubacks.append((conn, puback))
            else:
                conn.answer(puback)
        elif kind == 0x40:
            pid = struct.unpack(">H", data[2:4])[0]
            self.acked.append(pid)
            self.unacked.pop(pid, None)
        elif kind == 0xC0:
            conn.answer(b"\xd0\x00")

    def deliver(self, pid, payload):
        self.unacked[pid] = payload
        self.conn.answer(publish_packet(pid, payload))

    def release_pubacks(self):
        self.hold_puback = False
        for conn, p in self.held_pubacks:
            conn.answer(p)
        self.held_pubacks = []

    def unstall(self):
        self.stalled = False
        for c in self.conns:
            for d in c.held:
                c.inbuf += d
            c.held = []


class Ticker:
    # Stands in for the seal's loop: how late does a 10 ms sleep wake while the link works?
    def __init__(self):
        self.lags = []
        self.stop = False

    async def run(self):
        while not self.stop:
            t0 = ticks_ms()
            await sleep_ms(10)
            self.lags.append(ticks_diff(ticks_ms(), t0) - 10)

    def p99(self):
        lags = sorted(self.lags)
        return lags[len(lags) * 99 // 100] if lags else -1


async def until(pred, ms=5000):
    t0 = ticks_ms()
    while not pred():
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        await sleep_ms(5)
    return True


def make(broker, frames, states, **kw):
    return MqttLink(SEAL, broker.opener, frames.append, states.append, backoff_ms=100,
                    backoff_cap_ms=400, rand=lambda n: 0, **kw)


async def _start(link):
    task = asyncio.create_task(link.run())
    assert await until(lambda: link.connected), link.last_error
    link.poll(0)  # the "up" state change, as the seal's loop would take it
    return task


async def _stop(link, task):
    link.close()
    await sleep_ms(20)
    task.cancel()
    await sleep_ms(5)


async def downlink_during_publish():
    """A command arrives while an uplink waits for its PUBACK (what froze the old link): it is
    queued, never handled inside the publish; the handler's own send goes out; both uplinks are
    PUBACKed by packet id; the command is PUBACKed only after the seal's loop handled it."""
    broker = FakeBroker()
    frames, states = [], []
    calls = []
    link = MqttLink(SEAL, broker.opener, None, states.append, rand=lambda n: 0)

    def on_frame(frame):
        calls.append(frame)
        assert link.send(b"RESULT-" + frame)  # the core answers at once (its _pump)

    link._on_frame = on_frame
    task = await _start(link)
    broker.hold_puback = True
    assert link.send(b"RECORDS-1")
    assert await until(lambda: len(broker.uplinks) == 1)
    broker.deliver(7, b"ACTIVATE")
    assert await until(lambda: link.ready.is_set())
    in_publish = len(calls)  # nothing handled while the publish waits
    broker.release_pubacks()
    assert await until(lambda: not link._inflight)
    acked_before_poll = 7 in broker.acked
    link.poll(0)  # the seal's loop
    assert await until(lambda: 7 in broker.acked)
    assert await until(lambda: len(broker.uplinks) == 2 and not link._inflight)
    await _stop(link, task)
    return {"in_publish": in_publish, "calls": len(calls), "acked_before_poll": acked_before_poll,
            "uplinks": [u[1] for u in broker.uplinks], "sent": link.sent, "states": states}


async def broker_stalls(stall_ms=10000, response_ms=3000):
    """The broker answers nothing for stall_ms (SIGSTOP): the link times out by the clock (no
    PUBACK, then no CONNACK), backs off, never blocks the loop, and once the broker is back the
    frame in flight goes again and is PUBACKed."""
    broker = FakeBroker()
    frames, states = [], []
    link = make(broker, frames, states, response_ms=response_ms)
    ticker = Ticker()
    tick = asyncio.create_task(ticker.run())
    task = await _start(link)
    broker.stalled = True
    t0 = ticks_ms()
    assert link.send(b"RECORDS-1")
    down = await until(lambda: not link.connected, response_ms + 2000)
    detected_ms = ticks_diff(ticks_ms(), t0)
    while ticks_diff(ticks_ms(), t0) < stall_ms:
        await sleep_ms(50)
    broker.unstall()
    ok = await until(lambda: link.connected and not link._inflight, 8000)
    ticker.stop = True
    await _stop(link, task)
    tick.cancel()
    return {"down": down, "detected_ms": detected_ms, "delivered": ok,
            "uplinks": [u[1] for u in broker.uplinks], "lag_p99": ticker.p99(),
            "lag_max": max(ticker.lags), "ticks": len(ticker.lags), "failures": link.failures,
            "error": repr(link.last_error),
            "states": states}


async def drop_mid_packet():
    """The broker sends half a downlink, then the connection drops: no exception escapes, the
    link reconnects, the broker redelivers (DUP) and the command reaches the core once."""
    broker = FakeBroker()
    frames, states = [], []
    link = make(broker, frames, states)
    task = await _start(link)
    first = broker.conn
    broker.unacked[9] = b"DEACTIVATE"
    whole = publish_packet(9, b"DEACTIVATE")
    first.inbuf += whole[: len(whole) // 2]
    await sleep_ms(30)
    first.close()
    assert await until(lambda: broker.connects == 2 and link.connected)
    assert await until(lambda: link.ready.is_set())
    link.poll(0)
    assert await until(lambda: 9 in broker.acked)
    await sleep_ms(50)
    link.poll(0)
    await _stop(link, task)
    return {"frames": frames, "states": states, "connects": broker.connects,
            "error": repr(link.last_error)}


async def memory_error_is_not_acked():
    """A downlink whose handling fails (MemoryError) is not PUBACKed: after the reconnect (the
    seal rebooted) the broker redelivers it and it is handled then. A redelivery of a downlink
    that WAS handled (its PUBACK lost with the connection) is only acknowledged again."""
    broker = FakeBroker()
    frames, states = [], []
    fail = [True]

    def on_frame(frame):
        if fail[0]:
            raise MemoryError("test")
        frames.append(frame)

    link = make(broker, frames, states)
    link._on_frame = on_frame
    task = await _start(link)
    broker.deliver(11, b"ACTIVATE")
    assert await until(lambda: link.ready.is_set())
    raised = False
    try:
        link.poll(0)
    except MemoryError:
        raised = True
    await sleep_ms(50)
    acked_after_fault = 11 in broker.acked
    fail[0] = False
    broker.conn.close()  # the seal's reboot, as the broker sees it
    assert await until(lambda: broker.connects == 2 and link.connected)
    assert await until(lambda: link.ready.is_set())
    link.poll(0)
    assert await until(lambda: 11 in broker.acked)
    # Handled and PUBACKed, but say the PUBACK was lost: the broker redelivers with DUP.
    broker.unacked[11] = b"ACTIVATE"
    broker.acked = []
    broker.conn.close()
    assert await until(lambda: broker.connects == 3 and 11 in broker.acked)
    await sleep_ms(30)
    link.poll(0)
    await _stop(link, task)
    return {"raised": raised, "acked_after_fault": acked_after_fault, "frames": frames,
            "redelivered": link.redelivered}
