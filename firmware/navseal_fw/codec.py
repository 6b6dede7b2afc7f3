"""The seal's frame codec: docs/protocol.md in `struct`, for MicroPython and CPython.

Past 400 lines on purpose: the seal's half of the wire format read and checked as one unit
against the golden vectors; the peer's half already lives in codec_peer.py, loaded on first use.

No construct on a board, so this is the protocol written a second time by hand; the golden
vectors in protocol/vectors/ (made from the construct definition) bind the two byte for byte.
The seal's half is here (building uplinks, checking frames, parsing downlinks); the peer's
half (parsing uplinks, building any message, type names, the codes a seal never names) is
codec_peer, loaded on first use through this module (`codec.parse_state`, `codec.RES_OK`,
`Codec.encode`), so the API below is one, and a seal's heap holds only its own half.

API
---
    c = Codec(seal_id, key)             # key: the seal's 32-byte key. Without one (None or
                                        # empty) nothing can be signed, and decode() refuses
                                        # every frame as bad_mac unless told check_mac=False
    # Encoding: one complete frame (header, payload, MAC, CRC) as bytes. Uplink, for the seal:
    c.hello(boot, seq, time, fw_major, fw_minor, fw_patch, reset_cause, config_hash, pending)
    c.records(boot, seq, time, first_rseq, base_time, count, recs)   # recs: 16*count bytes
    c.event(boot, seq, time, rseq, ev_time, code, lat, lon, status, value)
    c.state(boot, seq, time, state, escort_id, alarms, battery_pct, pending, capacity,
            fix_time, lat, lon, lock, evidence)
    c.command_result(boot, seq, time, cmd_boot, cmd_seq, cmd_type, result, state, escort_id,
                     evidence)
    # evidence: the seal's Evidence block as EVIDENCE_SIZE (55) bytes in wire layout; the seal
    # keeps it packed and fills it with struct.pack_into(EVIDENCE_FMT, buf, 0, ...)
    # every one takes flags=0 (RETRANSMIT, MORE). Downlink (gateway side, tests, emulator):
    c.encode(type, boot, seq, time, fields, flags=0)   # any type; `fields` is the tuple the
                                                       # matching parse_* returns
    # Decoding, in the order docs/protocol.md fixes; CodecError(code) on the first failure:
    f = c.decode(data, check_mac=True)  # f: c.frame, reused; f.payload is a memoryview into data
    f.type, f.flags, f.seal_id, f.boot, f.seq, f.time, f.length, f.payload, f.mac, f.crc
    fields = parse_payload(f.type, f.payload)          # tuple; CodecError("bad_payload")

Payload tuples (field order of the protocol tables; enums as ints, `pos` raw with NO_POS,
`status`/`lock`/`alarms`/`fix` as their raw bytes):
    HELLO          (fw_major, fw_minor, fw_patch, reset_cause, config_hash, journal_pending)
    RECORDS        (first_rseq, base_time, count, recs)  recs: memoryview, 16 bytes a record;
                   record(recs, i) -> (dt, lat, lon, speed, course, fix, hdop, status)
    EVENT          (rseq, time, code, lat, lon, status, value)
    STATE          (state, escort_id, alarms, battery_pct, journal_pending, journal_capacity,
                    fix_time, lat, lon, lock, evidence)
    COMMAND_RESULT (cmd_boot, cmd_seq, cmd_type, result, state, escort_id, evidence)
                   evidence: the tuple EVIDENCE_FMT unpacks, (escort_id, flags, start_rseq,
                   hw_rseq, thinned, openings, opening_first, opening_inputs, deviations,
                   deviation_first, deviation_max_m, gnss_losses, gnss_longest_s,
                   gnss_longest_at, anomalies, anomaly_first, anomaly_kinds, reboots,
                   power_losses); encode() takes that tuple or the 55 packed bytes
    ACK            (acked_boot, acked_seq, committed_rseq)
    ACTIVATE       (escort_id, seal_number, declaration, vehicle, dest_office_code,
                    dest_office_name, period_start, period_end, corridor_m, route)
                   strings as str; route: bytes of absolute (i32 lat_e5, i32 lon_e5) pairs,
                   8 bytes a point (the polyline's deltas are undone here)
    DEACTIVATE     (escort_id, seal_number, declaration, vehicle)
    CONFIG         (report_moving_s, report_stopped_s, report_inactive_s, heartbeat_s,
                    batch_max, gnss_lost_s, low_battery_pct, jump_speed_kmh, ack_timeout_s)
    TIME           (unix_time,)

Memory: one MAX_FRAME output buffer per Codec, built in place with pack_into; decoding reads
through memoryviews and allocates only the tuples it returns (plus strings and the route for
ACTIVATE/DEACTIVATE). No module-level mutable state: thousands of Codecs share a process.
"""

import struct
import hashlib

try:
    from binascii import crc32 as _crc32
except ImportError:  # a MicroPython port built without binascii.crc32
    try:
        # CPython only (always has binascii.crc32 anyway); hidden from the MicroPython stubs
        _crc32 = __import__("zlib").crc32
    except ImportError:
        _crc32 = None  # type: ignore[assignment]  # _crc32_py below then does the work

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]  # stub's signature is generic
        return x


VERSION = const(2)
HEADER_SIZE = const(23)
MAC_SIZE = const(8)
CRC_SIZE = const(4)
TRAILER_SIZE = const(12)
MIN_FRAME = const(35)
MAX_PAYLOAD = const(2048)
MAX_FRAME = const(2083)
RECORD_SIZE = const(16)
MAX_RECORDS = const(120)
MAX_ROUTE_POINTS = const(400)
NO_POS = const(0x7FFFFFFF)
NO_RSEQ = const(0xFFFFFFFF)

FLAG_RETRANSMIT = const(0x01)
FLAG_MORE = const(0x02)
_RESERVED_FLAGS = const(0xFC)

# Message types (uplink < 0x80 <= downlink, so a frame cannot be reflected back as a command).
HELLO = const(0x01)
RECORDS = const(0x02)
EVENT = const(0x03)
STATE = const(0x04)
COMMAND_RESULT = const(0x05)
ACK = const(0x81)
ACTIVATE = const(0x82)
DEACTIVATE = const(0x83)
CONFIG = const(0x84)
TIME = const(0x85)

TYPE_CODES = (HELLO, RECORDS, EVENT, STATE, COMMAND_RESULT,
              ACK, ACTIVATE, DEACTIVATE, CONFIG, TIME)

# HELLO.reset_cause (the others: codec_peer)
RESET_POWER_ON = const(0)
RESET_BROWNOUT = const(3)

# EVENT.code: 1..13 (the ones a seal raises by this name; all of them: codec_peer)
EV_CABLE_CUT = const(1)
EV_HOUSING_OPENED = const(2)
EV_LOCK_RESTORED = const(3)
EV_GNSS_LOST = const(4)
EV_GNSS_REGAINED = const(5)
EV_LOW_BATTERY = const(7)
EV_REBOOT = const(9)
EV_COMMAND_REJECTED = const(10)
EV_GNSS_ANOMALY = const(13)

# STATE.state / COMMAND_RESULT.state
INACTIVE = const(0)
ACTIVE = const(1)

# Result codes, alarm bits, anomaly kinds, status bits, the other reset causes and event
# codes: codec_peer (a seal's modules keep their own names for them, or raise them by number).

# Evidence block (docs/protocol.md, "Evidence"): 55 bytes ending STATE and COMMAND_RESULT.
EVIDENCE_SIZE = const(55)
EVIDENCE_FMT = ">IBIIIHIBHIIHIIHIBHH"
# Evidence.flags
EVF_CLOSED = const(0x01)
EVF_OPENING_NOW = const(0x02)
EVF_DEVIATING_NOW = const(0x04)
EVF_GNSS_LOST_NOW = const(0x08)
# Evidence.opening_inputs
EVI_CABLE = const(0x01)
EVI_HOUSING = const(0x02)

# str8 maxima
MAX_DECLARATION = const(40)
MAX_VEHICLE = const(16)
MAX_OFFICE_CODE = const(16)
MAX_OFFICE_NAME = const(64)

# Error codes, in the order a decoder checks (docs/protocol.md, "Decoding order").
ERR_TRUNCATED = "truncated"
ERR_BAD_MAGIC = "bad_magic"
ERR_UNSUPPORTED_VERSION = "unsupported_version"
ERR_OVERSIZE = "oversize"
ERR_TRAILING_BYTES = "trailing_bytes"
ERR_BAD_CRC = "bad_crc"
ERR_UNKNOWN_TYPE = "unknown_type"
ERR_BAD_FLAGS = "bad_flags"
ERR_BAD_MAC = "bad_mac"
ERR_BAD_PAYLOAD = "bad_payload"

_HDR = ">BBBIIIIH"  # version, type, flags, seal_id, boot, seq, time, length (after "NS")
_EVENT = ">IIBiiBI"
_STATE = ">BIBBIIIiiB"  # then the evidence block
STATE_SIZE = const(83)
_CMDRES = ">IIBBBI"  # then the evidence block
CMDRES_SIZE = const(70)
_ACK = ">III"
_CONFIG = ">HHHHBHBHH"
_HELLO = ">BBBBII"


class CodecError(ValueError):
    """A frame was refused (decoding) or could not be built (encoding). `.code` says why."""

    def __init__(self, code, detail=""):
        super().__init__(code + (": " + detail if detail else ""))
        self.code = code


def _crc32_py(data):
    # Bitwise CRC-32/ISO-HDLC: only for ports without binascii.crc32 (slow, but correct).
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def crc(data):
    """CRC-32/ISO-HDLC of a bytes-like object (check value of b"123456789": 0xCBF43926)."""
    if _crc32 is None:
        return _crc32_py(data)
    return _crc32(data) & 0xFFFFFFFF


def is_downlink(t):
    return t >= 0x80


class Frame:
    """A decoded frame's header and trailer; `payload` and `mac` are views into the input."""

    def __init__(self):
        self.version = VERSION
        self.type = 0
        self.flags = 0
        self.seal_id = 0
        self.boot = 0
        self.seq = 0
        self.time = 0
        self.length = 0
        self.payload = memoryview(b"")
        self.mac = memoryview(b"")
        self.crc = 0


class Codec:
    """Encoder and decoder for one seal (its id and key). See the module docstring."""

    def __init__(self, seal_id, key):
        self.seal_id = seal_id
        self._buf = bytearray(MAX_FRAME)
        self._mv = memoryview(self._buf)
        self.frame = Frame()
        self._ipad = None
        self._opad = None
        if key:
            self.set_key(key)

    def set_key(self, key):
        # HMAC (RFC 2104) from two SHA-256 passes; the padded keys are computed once.
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        ipad = bytearray(64)
        opad = bytearray(64)
        for i in range(64):
            k = key[i] if i < len(key) else 0
            ipad[i] = k ^ 0x36
            opad[i] = k ^ 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)

    def mac8(self, data):
        """First 8 bytes of HMAC-SHA256(key, data)."""
        if self._ipad is None:
            raise CodecError("no_key", "this Codec has no key")
        h = hashlib.sha256(self._ipad)
        h.update(data)
        inner = h.digest()
        h = hashlib.sha256(self._opad)
        h.update(inner)
        return h.digest()[:MAC_SIZE]

    # ---- decoding ----------------------------------------------------------------------

    def decode(self, data, check_mac=True):
        """Verify and split one frame; returns self.frame. Raises CodecError(code)."""
        n = len(data)
        if n < MIN_FRAME:
            raise CodecError(ERR_TRUNCATED)
        mv = data if isinstance(data, memoryview) else memoryview(data)
        if mv[0] != 0x4E or mv[1] != 0x53:
            raise CodecError(ERR_BAD_MAGIC)
        version, typ, flags, seal_id, boot, seq, tm, length = struct.unpack_from(_HDR, mv, 2)
        if version != VERSION:
            raise CodecError(ERR_UNSUPPORTED_VERSION)
        if length > MAX_PAYLOAD:
            raise CodecError(ERR_OVERSIZE)
        end = MIN_FRAME + length
        if n < end:
            raise CodecError(ERR_TRUNCATED)
        if n > end:
            raise CodecError(ERR_TRAILING_BYTES)
        signed = HEADER_SIZE + length
        crc_rx = struct.unpack_from(">I", mv, signed + MAC_SIZE)[0]
        if crc(mv[: signed + MAC_SIZE]) != crc_rx:
            raise CodecError(ERR_BAD_CRC)
        if typ not in TYPE_CODES:
            raise CodecError(ERR_UNKNOWN_TYPE)
        if flags & _RESERVED_FLAGS:
            raise CodecError(ERR_BAD_FLAGS)
        mac = mv[signed : signed + MAC_SIZE]
        if check_mac:
            if self._ipad is None:
                raise CodecError(ERR_BAD_MAC, "no key to check it with")
            want = self.mac8(mv[:signed])
            diff = 0
            for i in range(MAC_SIZE):  # no early exit: timing says nothing about the MAC
                diff |= want[i] ^ mac[i]
            if diff:
                raise CodecError(ERR_BAD_MAC)
        f = self.frame
        f.version = version
        f.type = typ
        f.flags = flags
        f.seal_id = seal_id
        f.boot = boot
        f.seq = seq
        f.time = tm
        f.length = length
        f.payload = mv[HEADER_SIZE:signed]
        f.mac = mac
        f.crc = crc_rx
        return f

    # ---- encoding ----------------------------------------------------------------------

    def _finish(self, typ, flags, boot, seq, tm, length):
        if self._ipad is None:
            raise CodecError("no_key", "cannot sign a frame without a key")
        if flags & _RESERVED_FLAGS:
            raise CodecError(ERR_BAD_FLAGS)
        buf = self._buf
        mv = self._mv
        buf[0] = 0x4E
        buf[1] = 0x53
        struct.pack_into(_HDR, buf, 2, VERSION, typ, flags, self.seal_id, boot, seq, tm, length)
        signed = HEADER_SIZE + length
        mv[signed : signed + MAC_SIZE] = self.mac8(mv[:signed])
        struct.pack_into(">I", buf, signed + MAC_SIZE, crc(mv[: signed + MAC_SIZE]))
        return bytes(mv[: signed + TRAILER_SIZE])

    def encode(self, typ, boot, seq, tm, fields, flags=0):
        """Any message from the tuple its parse_* function returns (the peer's half: tests,
        emulator, bench; a seal never calls it, so its code is not in a seal's heap)."""
        from navseal_fw.codec_peer import pack_payload

        return self._finish(typ, flags, boot, seq, tm, pack_payload(self._buf, HEADER_SIZE, typ, fields))

    def hello(self, boot, seq, tm, fw_major, fw_minor, fw_patch, reset_cause, config_hash,
              journal_pending, flags=0):
        struct.pack_into(_HELLO, self._buf, HEADER_SIZE, fw_major, fw_minor, fw_patch,
                         reset_cause, config_hash, journal_pending)
        return self._finish(HELLO, flags, boot, seq, tm, 12)

    def records(self, boot, seq, tm, first_rseq, base_time, count, recs, flags=0):
        n = _pack_records(self._buf, HEADER_SIZE, first_rseq, base_time, count, recs)
        return self._finish(RECORDS, flags, boot, seq, tm, n)

    def event(self, boot, seq, tm, rseq, ev_time, code, lat, lon, status, value, flags=0):
        struct.pack_into(_EVENT, self._buf, HEADER_SIZE, rseq, ev_time, code, lat, lon,
                         status, value)
        return self._finish(EVENT, flags, boot, seq, tm, 22)

    def state(self, boot, seq, tm, state, escort_id, alarms, battery_pct, journal_pending,
              journal_capacity, fix_time, lat, lon, lock, evidence, flags=0):
        struct.pack_into(_STATE, self._buf, HEADER_SIZE, state, escort_id, alarms, battery_pct,
                         journal_pending, journal_capacity, fix_time, lat, lon, lock)
        _put_evidence(self._buf, HEADER_SIZE + STATE_SIZE - EVIDENCE_SIZE, evidence)
        return self._finish(STATE, flags, boot, seq, tm, STATE_SIZE)

    def command_result(self, boot, seq, tm, cmd_boot, cmd_seq, cmd_type, result, state,
                       escort_id, evidence, flags=0):
        struct.pack_into(_CMDRES, self._buf, HEADER_SIZE, cmd_boot, cmd_seq, cmd_type, result,
                         state, escort_id)
        _put_evidence(self._buf, HEADER_SIZE + CMDRES_SIZE - EVIDENCE_SIZE, evidence)
        return self._finish(COMMAND_RESULT, flags, boot, seq, tm, CMDRES_SIZE)


# ---- payload builders (into a buffer at an offset; return the payload length) -----------

def _put_evidence(buf, off, ev):
    # The seal passes its packed 55-byte block (copied as it is); encode() may pass the tuple
    # parse_payload returned (packed here).
    if isinstance(ev, tuple):
        struct.pack_into(EVIDENCE_FMT, buf, off, *ev)
        return
    if len(ev) != EVIDENCE_SIZE:
        raise CodecError(ERR_BAD_PAYLOAD, "evidence is not 55 bytes")
    memoryview(buf)[off : off + EVIDENCE_SIZE] = memoryview(ev)


def _pack_records(buf, off, first_rseq, base_time, count, recs):
    if count > MAX_RECORDS:
        raise CodecError(ERR_BAD_PAYLOAD, "more than 120 records")
    size = count * RECORD_SIZE
    if len(recs) < size:
        raise CodecError(ERR_BAD_PAYLOAD, "records buffer shorter than count")
    struct.pack_into(">IIB", buf, off, first_rseq, base_time, count)
    memoryview(buf)[off + 9 : off + 9 + size] = memoryview(recs)[:size]
    return 9 + size


# ---- payload parsers: exact length, enums known, limits kept, else bad_payload -----------

def _bad(detail=""):
    return CodecError(ERR_BAD_PAYLOAD, detail)


def _exact(p, size):
    if len(p) != size:
        raise _bad("payload length")


def parse_ack(p):
    _exact(p, 12)
    return struct.unpack_from(_ACK, p, 0)


def utf8_valid(b, start, end):
    """Strict UTF-8 check of b[start:end] (as CPython decodes: no overlongs, no surrogates).

    Done by hand because some MicroPython builds accept any bytes in bytes.decode()."""
    i = start
    while i < end:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            n, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            n, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= c <= 0xEC or c == 0xEE or c == 0xEF:
            n, lo, hi = 2, 0x80, 0xBF
        elif c == 0xED:
            n, lo, hi = 2, 0x80, 0x9F
        elif c == 0xF0:
            n, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            n, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            n, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + n >= end:
            return False
        c = b[i + 1]
        if c < lo or c > hi:
            return False
        for k in range(2, n + 1):
            c = b[i + k]
            if c < 0x80 or c > 0xBF:
                return False
        i += n + 1
    return True


def _str8(p, off, limit):
    if off >= len(p):
        raise _bad("string missing")
    n = p[off]
    end = off + 1 + n
    if n > limit or end > len(p):
        raise _bad("string length")
    if not utf8_valid(p, off + 1, end):
        raise _bad("string not UTF-8")
    return bytes(p[off + 1 : end]).decode("utf-8"), end


def parse_activate(p):
    if len(p) < 8:
        raise _bad("ACTIVATE head")
    escort_id, seal_number = struct.unpack_from(">II", p, 0)
    declaration, off = _str8(p, 8, MAX_DECLARATION)
    vehicle, off = _str8(p, off, MAX_VEHICLE)
    dest_code, off = _str8(p, off, MAX_OFFICE_CODE)
    dest_name, off = _str8(p, off, MAX_OFFICE_NAME)
    if off + 12 > len(p):
        raise _bad("ACTIVATE period/corridor/route count")
    period_start, period_end, corridor_m, count = struct.unpack_from(">IIHH", p, off)
    off += 12
    if count > MAX_ROUTE_POINTS:
        raise _bad("route over 400 points")
    if len(p) != off + (8 + 4 * (count - 1) if count else 0):
        raise _bad("route length")
    route = bytearray(8 * count)
    if count:
        lat, lon = struct.unpack_from(">ii", p, off)
        struct.pack_into(">ii", route, 0, lat, lon)
        off += 8
        for i in range(1, count):
            dlat, dlon = struct.unpack_from(">hh", p, off)
            off += 4
            lat += dlat
            lon += dlon
            struct.pack_into(">ii", route, 8 * i, lat, lon)
    return (escort_id, seal_number, declaration, vehicle, dest_code, dest_name,
            period_start, period_end, corridor_m, bytes(route))


def parse_deactivate(p):
    if len(p) < 8:
        raise _bad("DEACTIVATE head")
    escort_id, seal_number = struct.unpack_from(">II", p, 0)
    declaration, off = _str8(p, 8, MAX_DECLARATION)
    vehicle, off = _str8(p, off, MAX_VEHICLE)
    if off != len(p):
        raise _bad("bytes after DEACTIVATE")
    return (escort_id, seal_number, declaration, vehicle)


def parse_config(p):
    _exact(p, 16)
    return struct.unpack_from(_CONFIG, p, 0)


def parse_time(p):
    _exact(p, 4)
    return struct.unpack_from(">I", p, 0)


def parse_payload(typ, p):
    """The payload tuple of any message type (see the module docstring). Downlinks are parsed
    here, uplinks by codec_peer (imported on first use: a seal never parses an uplink)."""
    if typ == ACK:
        return parse_ack(p)
    if typ == ACTIVATE:
        return parse_activate(p)
    if typ == DEACTIVATE:
        return parse_deactivate(p)
    if typ == CONFIG:
        return parse_config(p)
    if typ == TIME:
        return parse_time(p)
    from navseal_fw.codec_peer import parse_uplink

    return parse_uplink(typ, p)


def __getattr__(name):
    # The peer's half of the codec (uplink parsers, downlink builders, type names) lives in
    # codec_peer, loaded only when something asks for it: `codec.parse_state`, `codec.type_name`
    # keep working for the tests, the emulator and the bench, and a seal's heap never holds them.
    from navseal_fw import codec_peer

    try:
        return getattr(codec_peer, name)
    except AttributeError:
        raise AttributeError(name) from None
