# MQTT 3.1.1 packets, the few a seal needs: building CONNECT, SUBSCRIBE, PUBLISH, PUBACK, PINGREQ
# and the limits of what it reads. No I/O here (link_mqtt.py does that).
import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

# Packet types (high nibble of the first byte). Public names: MicroPython drops underscored
# const() names from a module's globals, and link_mqtt imports these.
CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)
SUBACK = const(0x90)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)
DUP = const(0x08)
# A downlink frame is at most 2083 bytes (docs/protocol.md); anything much larger is not ours.
MAX_PACKET = const(4096)


class MQTTException(Exception):
    pass


def lstr(s):
    # an MQTT string: u16 length, bytes
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack(">H", len(b)) + b


def packet(ptype, *parts):
    """One MQTT packet: fixed header with the remaining length, then the parts, in one buffer
    (one write, one TLS record)."""
    n = 0
    for p in parts:
        n += len(p)
    hdr = bytearray((ptype,))
    rem = n
    while True:
        b = rem & 0x7F
        rem >>= 7
        hdr.append(b | 0x80 if rem else b)
        if not rem:
            break
    out = bytearray(len(hdr) + n)
    out[0:len(hdr)] = hdr
    o = len(hdr)
    for p in parts:
        out[o:o + len(p)] = p
        o += len(p)
    return out


def connect_packet(client_id, keepalive_s, user=None, password=None, clean=False):
    flags = 0x02 if clean else 0
    payload = lstr(client_id)
    if user is not None:
        flags |= 0x80
        payload += lstr(user)
        if password is not None:
            flags |= 0x40
            payload += lstr(password)
    return packet(CONNECT, lstr("MQTT"), bytes((4, flags)), struct.pack(">H", keepalive_s),
                  payload)
