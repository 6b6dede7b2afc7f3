# MQTT link: moves frames between the seal core and the broker, nothing else. One frame per
# message, up on "<prefix>/<seal_id>/up" (QoS 1), down on "<prefix>/<seal_id>/down" (QoS 1).
#
# Two layers, as in micropython-lib's umqtt.simple / umqtt.robust:
#   MQTTClient: a minimal MQTT 3.1.1 client with umqtt.simple's API (connect, publish,
#     subscribe, check_msg, wait_msg, ping, disconnect, set_callback). The transport is injected:
#     `connect_fn()` returns a stream with read(n), write(b), setblocking(flag), close(); the
#     tests hand in an in-memory fake or a real TCP socket wrapped by SocketStream.
#   MqttLink: the policy: persistent session (clean_session False), keepalive pings,
#     reconnect with capped exponential backoff and jitter, driven by poll(now_ms) so it never
#     sleeps (the board's asyncio main, the emulator and the tests call it).

import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
# A downlink frame is at most 2083 bytes (docs/protocol.md); anything much larger is not ours.
MAX_PACKET = const(4096)


class MQTTException(Exception):
    pass


class SocketStream:
    # A socket as the stream MQTTClient reads: CPython sockets have no read/write, and
    # MicroPython's ssl sockets have nothing else, so the client talks to this shape only.
    def __init__(self, sock, timeout_s=None):
        self._sock = sock
        self._timeout = timeout_s

    def read(self, n):
        try:
            data = self._sock.recv(n)
        except OSError as e:
            if e.args and e.args[0] in (11, 35, 115):  # EAGAIN / EWOULDBLOCK / EINPROGRESS
                return None
            raise
        return data

    def write(self, data):
        if hasattr(self._sock, "sendall"):
            self._sock.sendall(data)
        else:
            self._sock.write(data)
        return len(data)

    def setblocking(self, flag):
        # Blocking means "with the connection's timeout", so a dead broker cannot hang a read.
        if flag and self._timeout is not None:
            self._sock.settimeout(self._timeout)
        else:
            self._sock.setblocking(flag)

    def close(self):
        self._sock.close()


def tcp_connector(host, port, timeout_s=10):
    # -> a connect_fn for MQTTClient that opens a real TCP connection.
    def connect():
        import socket

        addr = socket.getaddrinfo(host, port)[0][-1]
        s = socket.socket()
        s.settimeout(timeout_s)
        s.connect(addr)
        if hasattr(socket, "TCP_NODELAY"):
            # One small frame at a time: Nagle against delayed ACKs costs ~40 ms per message.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return SocketStream(s, timeout_s)

    return connect


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


class MQTTClient:
    def __init__(self, client_id, connect_fn, keepalive=60, user=None, password=None):
        self.client_id = client_id
        self._connect_fn = connect_fn
        self.keepalive = keepalive
        self.user = user
        self.password = password
        self.sock = None
        self.cb = None
        self.pid = 0
        self.pings_outstanding = 0
        self._acked = 0  # packet id of the last PUBACK/SUBACK
        self._suback_rc = 0

    def set_callback(self, f):
        self.cb = f

    # ---- wire helpers -------------------------------------------------------------------------

    def _sock(self):
        sock = self.sock
        if sock is None:
            raise OSError(-1)  # not connected
        return sock

    def _read(self, n):
        out = b""
        sock = self._sock()
        while len(out) < n:
            chunk = sock.read(n - len(out))
            if chunk is None:
                continue  # non-blocking socket mid-packet: the rest is on its way
            if not chunk:
                raise OSError(-1)  # connection closed
            out += chunk
        return out

    def _send(self, ptype, body):
        n = len(body)
        hdr = bytearray((ptype,))
        while True:
            b = n & 0x7F
            n >>= 7
            hdr.append(b | 0x80 if n else b)
            if not n:
                break
        self._sock().write(bytes(hdr) + body)

    def _recv_len(self):
        n = 0
        shift = 0
        while True:
            b = self._read(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTException("bad remaining length")
        if n > MAX_PACKET:
            raise MQTTException("packet too large")
        return n

    def _next_pid(self):
        self.pid = self.pid % 0xFFFF + 1
        return self.pid

    # ---- API (umqtt.simple's) -----------------------------------------------------------------

    def connect(self, clean_session=True):
        self.sock = self._connect_fn()
        flags = 0x02 if clean_session else 0
        body = _str("MQTT") + bytes((4,))
        payload = _str(self.client_id)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        body += bytes((flags,)) + struct.pack(">H", self.keepalive) + payload
        self._send(_CONNECT, body)
        resp = self._read(4)
        if resp[0] != _CONNACK or resp[1] != 2:
            raise MQTTException("bad CONNACK")
        if resp[3] != 0:
            raise MQTTException("connection refused, code %d" % resp[3])
        self.pings_outstanding = 0
        return resp[2] & 1  # session present

    def disconnect(self):
        try:
            self._send(_DISCONNECT, b"")
        finally:
            self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def ping(self):
        self._send(_PINGREQ, b"")
        self.pings_outstanding += 1

    def publish(self, topic, msg, retain=False, qos=1):
        # Blocks until the PUBACK (QoS 1), delivering downlink messages that arrive meanwhile.
        pid = self._next_pid() if qos else 0
        body = _str(topic)
        if qos:
            body += struct.pack(">H", pid)
        self._send(_PUBLISH | (qos << 1) | (1 if retain else 0), body + bytes(msg))
        if not qos:
            return
        while True:
            op = self.wait_msg()
            if op == _PUBACK and self._acked == pid:
                return

    def subscribe(self, topic, qos=1):
        pid = self._next_pid()
        self._send(_SUBSCRIBE, struct.pack(">H", pid) + _str(topic) + bytes((qos,)))
        while True:
            op = self.wait_msg()
            if op == _SUBACK:
                if self._acked == pid:
                    if self._suback_rc == 0x80:
                        raise MQTTException("subscription refused")
                    return

    def wait_msg(self):
        # Read one packet (blocking). Returns its type (high nibble form), None if nothing was
        # waiting on a non-blocking socket.
        sock = self._sock()
        first = sock.read(1)
        if first is None:
            return None
        if first == b"":
            raise OSError(-1)
        sock.setblocking(True)  # the rest of the packet is on its way: wait for it
        op = first[0]
        n = self._recv_len()
        body = self._read(n) if n else b""
        kind = op & 0xF0
        if kind == _PUBLISH:
            qos = (op >> 1) & 3
            tlen = struct.unpack(">H", body[0:2])[0]
            topic = body[2:2 + tlen]
            o = 2 + tlen
            if qos:
                pid = struct.unpack(">H", body[o:o + 2])[0]
                o += 2
            msg = body[o:]
            if self.cb is not None:
                self.cb(topic, msg)
            if qos == 1:
                self._send(_PUBACK, struct.pack(">H", pid))
            elif qos == 2:
                raise MQTTException("QoS 2 not supported")
            return _PUBLISH
        if kind == _PUBACK:
            self._acked = struct.unpack(">H", body[0:2])[0]
            return _PUBACK
        if kind == _SUBACK & 0xF0:
            self._acked = struct.unpack(">H", body[0:2])[0]
            self._suback_rc = body[2] if len(body) > 2 else 0x80
            return _SUBACK
        if kind == _PINGRESP:
            self.pings_outstanding = 0
            return _PINGRESP
        return kind

    def check_msg(self):
        # Non-blocking: handle one waiting packet if any.
        self._sock().setblocking(False)
        try:
            return self.wait_msg()
        finally:
            sock = self.sock
            if sock is not None:
                sock.setblocking(True)


class MqttLink:
    # The policy layer. Frames from the core go to send(); frames for the core come out through
    # on_frame(bytes); on_state(up) tells the core when the link comes and goes (it retries its
    # in-flight frame at once instead of waiting out its backoff).

    def __init__(self, seal_id, connect_fn, on_frame, on_state=None, prefix="seals",
                 keepalive_s=60, backoff_ms=1000, backoff_cap_ms=120000, rand=None,
                 user=None, password=None):
        # user/password: the broker's per-seal login (the production Mosquitto refuses
        # anonymous clients and its ACL limits each seal to its own topics).
        self.client = MQTTClient("seal-%d" % seal_id, connect_fn, keepalive=keepalive_s,
                                 user=user, password=password)
        self.client.set_callback(self._on_msg)
        self.up_topic = "%s/%d/up" % (prefix, seal_id)
        self.down_topic = "%s/%d/down" % (prefix, seal_id)
        self._on_frame = on_frame
        self._on_state = on_state
        self.keepalive_ms = keepalive_s * 1000
        self.backoff_ms = backoff_ms
        self.backoff_cap_ms = backoff_cap_ms
        self._rand = rand if rand is not None else _default_rand
        self.connected = False
        self.attempts = 0  # consecutive failed connection attempts
        self.next_attempt_ms = 0
        self._last_tx_ms = 0
        self._now = 0
        self.sent = 0
        self.received = 0
        self.failures = 0
        self.last_error = None

    def _on_msg(self, topic, msg):
        if bytes(topic) == self.down_topic.encode():
            self.received += 1
            self._on_frame(bytes(msg))

    def _delay(self):
        # Capped exponential backoff with jitter: a uniform pick in [d/2, d], so a fleet that
        # lost the broker together does not come back in lockstep.
        d = self.backoff_ms << min(self.attempts, 16)
        if d > self.backoff_cap_ms:
            d = self.backoff_cap_ms
        return d // 2 + self._rand(d // 2 + 1)

    def _down(self, err):
        was = self.connected
        self.connected = False
        self.failures += 1
        self.last_error = err
        self.client.close()
        self.attempts += 1
        self.next_attempt_ms = self._now + self._delay()
        if was and self._on_state is not None:
            self._on_state(False)

    def poll(self, now_ms):
        self._now = now_ms
        if not self.connected:
            if now_ms < self.next_attempt_ms:
                return
            try:
                self.client.connect(clean_session=False)
                self.client.subscribe(self.down_topic, qos=1)
            except (OSError, MQTTException) as e:
                self._down(e)
                return
            self.connected = True
            self.attempts = 0
            self._last_tx_ms = now_ms
            if self._on_state is not None:
                self._on_state(True)
        try:
            while self.connected and self.client.check_msg() is not None:
                pass
            if self.connected and now_ms - self._last_tx_ms >= self.keepalive_ms // 2:
                if self.client.pings_outstanding >= 2:
                    raise MQTTException("no PINGRESP")
                self.client.ping()
                self._last_tx_ms = now_ms
        except (OSError, MQTTException) as e:
            self._down(e)

    def send(self, frame, now_ms=None):
        # -> True if the broker took it (PUBACK), False if the link is down (the journal keeps
        # what matters; the caller retries journal frames by its own timer).
        if now_ms is not None:
            self._now = now_ms
        if not self.connected:
            return False
        try:
            self.client.publish(self.up_topic, frame, qos=1)
        except (OSError, MQTTException) as e:
            self._down(e)
            return False
        self.sent += 1
        self._last_tx_ms = self._now
        return True

    def next_deadline_ms(self):
        if not self.connected:
            return self.next_attempt_ms
        return self._last_tx_ms + self.keepalive_ms // 2

    def close(self):
        if self.connected:
            try:
                self.client.disconnect()
            except OSError:
                pass
        self.connected = False


def _default_rand(n):
    try:
        from random import getrandbits
    except ImportError:
        return 0
    return getrandbits(24) % n if n > 0 else 0
