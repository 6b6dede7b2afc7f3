# The MQTT link on an in-memory stream, under CPython and MicroPython (run by mpunit).
# tests/firmware/test_link_mqtt.py has more, including a real Mosquitto.
from navseal_fw.link_mqtt import MQTTClient, MqttLink


class FakeStream:
    # Plays a broker: CONNACK, SUBACK, PUBACK, PINGRESP; records what the client wrote.
    def __init__(self):
        self.inbuf = bytearray()
        self.written = []
        self.blocking = True

    def read(self, n):
        if not self.inbuf:
            if not self.blocking:
                return None
            raise OSError(110)
        out = bytes(self.inbuf[:n])
        self.inbuf = self.inbuf[n:]
        return out

    def write(self, data):
        data = bytes(data)
        self.written.append(data)
        kind = data[0] & 0xF0
        if kind == 0x10:
            self.inbuf.extend(b"\x20\x02\x00\x00")
        elif kind == 0x80:
            self.inbuf.extend(b"\x90\x03" + data[2:4] + b"\x01")
        elif kind == 0x30 and data[0] & 0x06:
            tlen = data[2] << 8 | data[3]
            self.inbuf.extend(b"\x40\x02" + data[4 + tlen:6 + tlen])
        elif kind == 0xC0:
            self.inbuf.extend(b"\xd0\x00")
        return len(data)

    def setblocking(self, flag):
        self.blocking = flag

    def close(self):
        pass


def test_connect_packet_is_persistent_session():
    s = FakeStream()
    c = MQTTClient("seal-1001", lambda: s, keepalive=60)
    assert c.connect(clean_session=False) == 0
    assert s.written[0] == b"\x10\x15\x00\x04MQTT\x04\x00\x00\x3c\x00\x09seal-1001"


def test_link_publishes_and_receives():
    s = FakeStream()
    got = []
    link = MqttLink(7, lambda: s, got.append)
    link.poll(0)
    assert link.connected
    assert link.send(b"\x01\x02", 5)
    assert s.written[-1] == b"\x32\x10\x00\x0aseals/7/up\x00\x02\x01\x02"
    s.inbuf.extend(b"\x30\x0f\x00\x0cseals/7/downX")
    link.poll(10)
    assert got == [b"X"]


def test_backoff_capped():
    def refuse():
        raise OSError(111)

    link = MqttLink(1, refuse, lambda f: None, backoff_ms=1000, backoff_cap_ms=8000,
                    rand=lambda n: n - 1)
    now = 0
    delays = []
    for _ in range(6):
        link.poll(now)
        delays.append(link.next_attempt_ms - now)
        now = link.next_attempt_ms
    assert delays == [2000, 4000, 8000, 8000, 8000, 8000], delays
