# MQTT link: moves frames between the seal core and the broker, nothing else. One frame per
# message, up on "<prefix>/<seal_id>/up" (QoS 1), down on "<prefix>/<seal_id>/down" (QoS 1).
#
# Past 400 lines on purpose: the MQTT packets, the session and the outage handling share the
# packet-id bookkeeping (as in mqtt_as, one module); split, it would cross modules and cost heap.
#
# Shaped after Peter Hinch's mqtt_as (micropython-mqtt), on asyncio streams: every network step
# is a coroutine with a measured timeout, so the loop never blocks and a dead broker is told from
# a quiet one by time, never by errno (a timed-out recv is OSError(11) on the unix port, 110 on
# the ESP32). The core is never called from inside the link's I/O:
#
#   link = MqttLink(seal_id, opener, on_frame, on_state, user=..., password=...)
#   task = asyncio.create_task(link.run())   # connect, keepalive, reconnect with backoff: forever
#   link.send(frame) -> bool     # queued for publishing (False: link down or queue full; the
#                                # core's journal keeps what matters and retries by its timer)
#   link.ready                   # asyncio.Event: downlinks or a state change wait for poll()
#   link.poll(now_ms)            # from the seal's loop: on_state(up) and on_frame(frame) calls;
#                                # a downlink is PUBACKed only after on_frame returned, so a
#                                # command that could not be processed (MemoryError, reboot) is
#                                # redelivered by the broker instead of being lost
#   link.close()
#
# `opener` is a coroutine function returning (reader, writer) asyncio streams: tcp_opener() for
# a real socket (TLS when given an ssl context), an in-memory fake in the tests.
#
# QoS 1 both ways. Up: packet ids tracked in flight (at most _MAX_INFLIGHT); a PUBACK not back
# within response_ms means the broker stalls: reconnect, then re-send what is in flight (DUP
# when the broker kept the session). Down: a redelivery (DUP) of a message this link already
# handed to the core, whose PUBACK was lost with the connection, is only acknowledged again.

import asyncio
import struct
from binascii import crc32

from navseal_fw.aio import TIMEOUT_ERRORS, sleep_ms, ticks_diff, ticks_ms, wait_event, wait_ms
from navseal_fw.mqtt_wire import (CONNACK, DUP, MAX_PACKET, PINGRESP, PUBACK, PUBLISH, SUBACK,
                                  SUBSCRIBE, MQTTException, connect_packet, lstr, packet)

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

_MAX_INFLIGHT = const(4)  # uplink PUBLISHes awaiting PUBACK (the core sends one journal frame
_MAX_OUT = const(6)  # at a time; STATE/RESULT ride beside it) and frames queued behind them
_MAX_IN = const(6)  # downlinks waiting for poll(); beyond, the socket is not read (backpressure)
_RECENT = const(8)  # (pid, crc) of downlinks handed to the core, for DUP redeliveries
_MIN_WAIT_MS = const(5)

# Errors that mean "this connection is gone": reconnect. Anything else (MemoryError, a bug)
# leaves run() so the seal's fault handling sees it.
CONN_ERRORS = (OSError, EOFError, MQTTException) + TIMEOUT_ERRORS


def tcp_opener(host, port, ssl=None, server_hostname=None):
    """-> an opener for MqttLink: asyncio.open_connection, over TLS when `ssl` is an
    SSLContext (server certificate checked against the context's CA, name `server_hostname`,
    default `host`). The address is resolved once: getaddrinfo blocks, and a seal's broker is
    given as an address or a name that does not move during a run."""
    box = []  # type: list  # the resolved address, once

    async def open_():
        if not box:
            box.append(_address(host, port))
        ip = box[0]
        if ssl is None:
            return await asyncio.open_connection(ip, port)
        return await asyncio.open_connection(ip, port, ssl=ssl,
                                             server_hostname=server_hostname or host)

    return open_


def _address(host, port):
    # The broker's IP address as text: (ip, port) on CPython and the ESP32; on the unix port a
    # raw sockaddr (family, port, IPv4 bytes). Anything else: the name, resolved per connect.
    import socket

    addr = socket.getaddrinfo(host, port)[0][-1]
    if isinstance(addr, tuple):
        return addr[0]
    if len(addr) >= 8 and addr[0] == 2 and hasattr(socket, "inet_ntop"):  # AF_INET
        return socket.inet_ntop(socket.AF_INET, bytes(addr[4:8]))
    return host


class MqttLink:
    def __init__(self, seal_id, opener, on_frame, on_state=None, prefix="seals", keepalive_s=60,
                 backoff_ms=1000, backoff_cap_ms=120000, response_ms=10000, rand=None,
                 user=None, password=None):
        # user/password: the broker's per-seal login (user name = seal id; the production
        # broker takes it as the client id too and its ACL limits the seal to its topics).
        self.client_id = "seal-%d" % seal_id
        self._opener = opener
        self._on_frame = on_frame
        self._on_state = on_state
        self.up_topic = "%s/%d/up" % (prefix, seal_id)
        self.down_topic = "%s/%d/down" % (prefix, seal_id)
        self._up_topic = lstr(self.up_topic)
        self._down = self.down_topic.encode()
        self.keepalive_s = keepalive_s
        self.ping_ms = keepalive_s * 250  # mqtt_as: a ping every quarter keepalive when idle
        self.response_ms = response_ms
        self.backoff_ms = backoff_ms
        self.backoff_cap_ms = backoff_cap_ms
        self._rand = rand if rand is not None else _default_rand
        self.user = user
        self.password = password
        self.ready = asyncio.Event()  # poll() has something to deliver
        self._kick = asyncio.Event()  # the writer has something to send
        self.connected = False
        self.attempts = 0  # consecutive failed connections
        self.session_present = False
        self._closed = False
        self._r = None
        self._w = None
        self._gen = 0  # connection number: a PUBACK goes only on the connection it belongs to
        self._pid = 0
        self._out = []  # frames to publish
        self._inflight = {}  # pid -> [frame, sent_ms]
        self._events = []  # (gen, pid, frame) downlinks and (gen, -1, up) state changes
        self._acks = []  # pids to PUBACK
        self._recent = []  # (pid, crc) handed to the core
        self._dead = None  # the reader's exception, for the writer to raise
        self._last_tx = 0
        self._last_rx = 0
        self._ping_at = None  # ms of the PINGREQ awaiting an answer
        self.sent = 0  # PUBLISHes PUBACKed
        self.received = 0  # downlinks handed to the core
        self.redelivered = 0  # DUP redeliveries answered without the core
        self.refused = 0  # send() refusals (down or queue full)
        self.failures = 0
        self.last_error = None

    # ---- the seal's side ----------------------------------------------------------------------

    def send(self, frame, now_ms=None):
        if not self.connected or len(self._out) >= _MAX_OUT:
            self.refused += 1
            return False
        self._out.append(bytes(frame))
        self._kick.set()
        return True

    def poll(self, now_ms=None):
        ev = self._events
        while ev:
            gen, pid, item = ev.pop(0)
            if pid < 0:
                if self._on_state is not None:
                    self._on_state(item)
                continue
            self._on_frame(item)  # raises: no PUBACK, the broker redelivers after a reconnect
            self.received += 1
            if pid:
                self._remember(pid, item)  # its redelivery is acknowledged, not handled again
                if gen == self._gen and self.connected:  # a PUBACK belongs to its connection
                    self._acks.append(pid)
                    self._kick.set()
        self.ready.clear()

    def next_deadline_ms(self):
        return None  # the link runs as its own task

    def close(self):
        self._closed = True
        self._kick.set()
        self._drop_stream()

    # ---- connection supervisor ----------------------------------------------------------------

    def _delay(self):
        # Capped exponential backoff with jitter: uniform in [d/2, d], so a fleet that lost the
        # broker together does not come back in lockstep.
        d = self.backoff_ms << min(self.attempts, 16)
        if d > self.backoff_cap_ms:
            d = self.backoff_cap_ms
        return d // 2 + self._rand(d // 2 + 1)

    async def run(self):
        while not self._closed:
            try:
                await self._connect()
            except CONN_ERRORS as e:
                self._failed(e)
                await self._backoff()
                continue
            self.connected = True
            self.attempts = 0
            self._state(True)
            reader = asyncio.create_task(self._reader())
            try:
                await self._writer()
            except CONN_ERRORS as e:
                self._failed(e)
            finally:
                reader.cancel()
                self._drop_stream()
                self.connected = False
                self._state(False)
            if not self._closed:
                await self._backoff()

    async def _backoff(self):
        self._kick.clear()  # only close() may cut the wait short now
        if not self._closed:
            await wait_event(self._kick, self._delay())
        self._kick.clear()

    def _failed(self, err):
        self.failures += 1
        self.attempts += 1
        self.last_error = err
        self._drop_stream()

    def _state(self, up):
        self._events.append((self._gen, -1, up))
        self.ready.set()

    def _drop_stream(self):
        w = self._w
        self._r = self._w = None
        if w is not None:
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may raise anything
                pass

    async def _connect(self):
        self._gen += 1
        self._dead = None
        self._ping_at = None
        del self._acks[:]
        self._r, self._w = await wait_ms(self._opener(), self.response_ms)
        await self._write(connect_packet(self.client_id, self.keepalive_s, self.user,
                                         self.password))
        op, body = await wait_ms(self._read_packet(), self.response_ms)
        if op != CONNACK or len(body) != 2:
            raise MQTTException("bad CONNACK")
        if body[1]:
            raise MQTTException("connection refused, code %d" % body[1])
        self.session_present = bool(body[0] & 1)
        if not self.session_present:
            del self._recent[:]  # the broker forgot what it had not delivered: no redeliveries
        pid = self._next_pid()
        await self._write(packet(SUBSCRIBE, struct.pack(">H", pid), lstr(self.down_topic),
                                 b"\x01"))
        t0 = ticks_ms()
        while True:  # a kept session may deliver queued downlinks before the SUBACK
            left = self.response_ms - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                raise MQTTException("no SUBACK")
            op, body = await wait_ms(self._read_packet(), left)
            if op == SUBACK and len(body) >= 3 and struct.unpack(">H", body[0:2])[0] == pid:
                if body[2] == 0x80:
                    raise MQTTException("subscription refused")
                break
            await self._handle(op, body)
        # Unacknowledged uplinks go again, as the broker expects of a resumed session.
        dup = DUP if self.session_present else 0
        now = ticks_ms()
        for p in self._inflight:
            item = self._inflight[p]
            await self._publish(p, item[0], dup)
            item[1] = now

    # ---- wire ---------------------------------------------------------------------------------

    def _next_pid(self):
        self._pid = self._pid % 0xFFFF + 1
        return self._pid

    async def _write(self, data):
        w = self._w
        if w is None:
            raise OSError(-1)  # not connected
        w.write(data)
        await wait_ms(w.drain(), self.response_ms)
        self._last_tx = ticks_ms()

    async def _publish(self, pid, frame, dup=0):
        await self._write(packet(PUBLISH | 0x02 | dup, self._up_topic, struct.pack(">H", pid),
                                 frame))

    async def _read_packet(self):
        r = self._r
        if r is None:
            raise OSError(-1)
        first = await r.readexactly(1)
        return await self._rest(first[0])

    async def _reader(self):
        try:
            while True:
                r = self._r
                if r is None:
                    raise OSError(-1)
                # The first byte may take as long as the broker is quiet (the keepalive judges
                # that); the rest of a packet must follow within response_ms.
                first = await r.readexactly(1)
                op, body = await wait_ms(self._rest(first[0]), self.response_ms)
                await self._handle(op, body)
        except Exception as e:  # noqa: BLE001 - handed to the writer, which raises it in run()
            self._dead = e
            self._kick.set()

    async def _rest(self, op):
        r = self._r
        if r is None:
            raise OSError(-1)
        n = 0
        shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTException("bad remaining length")
        if n > MAX_PACKET:
            raise MQTTException("packet too large")
        body = await r.readexactly(n) if n else b""
        self._last_rx = ticks_ms()
        return op, body

    async def _handle(self, op, body):
        kind = op & 0xF0
        if kind == PUBLISH:
            await self._on_publish(op, body)
        elif kind == PUBACK and len(body) == 2:
            pid = struct.unpack(">H", body)[0]
            if self._inflight.pop(pid, None) is not None:
                self.sent += 1
                self._kick.set()  # room in the window
        elif kind == PINGRESP:
            self._ping_at = None
        # SUBACK outside connect, anything else: nothing to do

    async def _on_publish(self, op, body):
        qos = (op >> 1) & 3
        if qos == 2:
            raise MQTTException("QoS 2 not supported")
        tlen = struct.unpack(">H", body[0:2])[0]
        o = 2 + tlen
        topic = body[2:o]
        pid = 0
        if qos:
            pid = struct.unpack(">H", body[o:o + 2])[0]
            o += 2
        msg = bytes(body[o:])
        if bytes(topic) != self._down:
            if pid:
                self._acks.append(pid)  # not ours (the ACL should prevent it): drop it for good
                self._kick.set()
            return
        if pid:
            key = (pid, crc32(msg))
            if op & DUP and key in self._recent:
                self.redelivered += 1  # the core has it; our PUBACK was lost with a connection
                self._acks.append(pid)
                self._kick.set()
                return
            self._forget(pid)  # a new message may reuse a pid the broker has released
        while len(self._events) >= _MAX_IN:  # the seal's loop is behind: stop reading
            await sleep_ms(20)
        self._events.append((self._gen, pid, msg))
        self.ready.set()

    def _remember(self, pid, msg):
        self._forget(pid)
        self._recent.append((pid, crc32(msg)))
        if len(self._recent) > _RECENT:
            self._recent.pop(0)

    def _forget(self, pid):
        rec = self._recent
        for i in range(len(rec)):
            if rec[i][0] == pid:
                rec.pop(i)
                return

    async def _writer(self):
        while True:
            if self._closed:
                try:
                    await self._write(b"\xe0\x00")  # DISCONNECT
                except CONN_ERRORS:
                    pass
                return
            if self._dead is not None:
                raise self._dead
            while self._acks:
                await self._write(struct.pack(">BBH", PUBACK, 2, self._acks.pop(0)))
            while self._out and len(self._inflight) < _MAX_INFLIGHT:
                frame = self._out.pop(0)
                pid = self._next_pid()
                self._inflight[pid] = [frame, ticks_ms()]
                await self._publish(pid, frame)
            now = ticks_ms()
            wait = self.ping_ms - ticks_diff(now, self._last_tx)
            for pid in self._inflight:
                age = ticks_diff(now, self._inflight[pid][1])
                if age >= self.response_ms:
                    raise MQTTException("no PUBACK in %d ms" % age)
                if self.response_ms - age < wait:
                    wait = self.response_ms - age
            if self._ping_at is not None:
                age = ticks_diff(now, self._ping_at)
                if age >= self.response_ms:
                    raise MQTTException("no PINGRESP in %d ms" % age)
                if self.response_ms - age < wait:
                    wait = self.response_ms - age
            elif wait <= 0:
                await self._write(b"\xc0\x00")
                self._ping_at = ticks_ms()
                continue
            self._kick.clear()
            if self._acks or self._dead is not None or self._closed or (
                    self._out and len(self._inflight) < _MAX_INFLIGHT):
                continue
            await wait_event(self._kick, wait if wait > _MIN_WAIT_MS else _MIN_WAIT_MS)


def _default_rand(n):
    try:
        from random import getrandbits
    except ImportError:
        return 0
    return getrandbits(24) % n if n > 0 else 0
