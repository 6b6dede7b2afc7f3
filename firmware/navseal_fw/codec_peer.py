"""The peer's half of the seal's codec: what the gateway side does with the wire format, for
the tests, the emulator and the bench (navseal_fw.codec's docstring is the API): parsing uplinks
(HELLO, RECORDS, EVENT, STATE, COMMAND_RESULT), building any message from its payload tuple
(`Codec.encode`), type names. A seal only builds uplinks and parses downlinks, so none of this
is in its heap: navseal_fw.codec loads this module on first use (`codec.parse_state`,
`codec.parse_payload(STATE, ...)`, `Codec.encode`)."""

import struct

from navseal_fw.codec import (_ACK, _CMDRES, _CONFIG, _EVENT, _HELLO, _STATE, ACK, ACTIVATE,
                              ACTIVE, CMDRES_SIZE, COMMAND_RESULT, CONFIG, DEACTIVATE,
                              ERR_BAD_PAYLOAD, ERR_UNKNOWN_TYPE, EVENT, EVIDENCE_FMT,
                              EVIDENCE_SIZE, HELLO, MAX_DECLARATION, MAX_OFFICE_CODE,
                              MAX_OFFICE_NAME, MAX_RECORDS, MAX_ROUTE_POINTS, MAX_VEHICLE,
                              RECORD_SIZE, RECORDS, STATE,
                              STATE_SIZE, TIME, TYPE_CODES, CodecError, _bad, _exact,
                              _pack_records, _put_evidence)

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x


# HELLO.reset_cause (with codec.RESET_POWER_ON, RESET_BROWNOUT)
RESET_WATCHDOG = const(1)
RESET_SOFT = const(2)
RESET_DEEPSLEEP = const(4)
RESET_UNKNOWN = const(255)
# EVENT.code (with codec's EV_*)
EV_GNSS_JUMP = const(6)
EV_JOURNAL_OVERFLOW = const(8)
EV_ROUTE_DEVIATION = const(11)
EV_ROUTE_RETURNED = const(12)
# GNSS_ANOMALY event value: kind << 24 | detail
ANOMALY_TIME_BACKWARDS = const(1)  # detail: seconds back
ANOMALY_IMPOSSIBLE_SPEED = const(2)  # detail: metres
ANOMALY_INVALID_DATE = const(3)  # detail: 0
ANOMALY_TIME_FORWARD = const(4)  # detail: seconds ahead
# COMMAND_RESULT.result: 0..7
RES_OK = const(0)
RES_LOCK_OPEN = const(1)
RES_WRONG_STATE = const(2)
RES_MISMATCH = const(3)
RES_BAD_PARAMS = const(4)
RES_REPLAYED = const(5)
RES_UNSUPPORTED = const(6)
RES_JOURNAL_PENDING = const(7)  # DEACTIVATE refused: journal records not yet acknowledged
# STATE.alarms bits
AL_CABLE_CUT = const(0x01)
AL_HOUSING_OPENED = const(0x02)
AL_GNSS_LOST = const(0x04)
AL_LOW_BATTERY = const(0x08)
AL_JOURNAL_OVERFLOW = const(0x10)
AL_ROUTE_DEVIATION = const(0x20)
AL_GNSS_ANOMALY = const(0x40)
# Evidence.anomaly_kinds
EVK_TIME_BACKWARDS = const(0x01)
EVK_IMPOSSIBLE_SPEED = const(0x02)
EVK_INVALID_DATE = const(0x04)
EVK_TIME_FORWARD = const(0x08)
# status byte / STATE.lock
ST_CABLE_INTACT = const(0x80)
ST_HOUSING_CLOSED = const(0x40)
BATTERY_UNKNOWN = const(63)
TYPE_NAMES = ("HELLO", "RECORDS", "EVENT", "STATE", "COMMAND_RESULT",
              "ACK", "ACTIVATE", "DEACTIVATE", "CONFIG", "TIME")
_REC = ">HiiHBBBB"
_EV_MAX = const(13)  # EVENT.code: 1..13
_RES_MAX = const(7)  # COMMAND_RESULT.result: 0..7
_AL_RESERVED = const(0x80)  # STATE.alarms
# The Evidence block's three bit-field bytes: where they are in it, and their reserved bits
_EV_FLAGS_AT = const(4)
_EV_INPUTS_AT = const(23)
_EV_KINDS_AT = const(50)
_EVF_RESERVED = const(0xF0)
_EVI_RESERVED = const(0xFC)
_EVK_RESERVED = const(0xF0)


def parse_uplink(typ, p):
    """The payload tuple of an uplink type (codec.parse_payload hands them here)."""
    if typ == RECORDS:
        return parse_records(p)
    if typ == EVENT:
        return parse_event(p)
    if typ == STATE:
        return parse_state(p)
    if typ == HELLO:
        return parse_hello(p)
    if typ == COMMAND_RESULT:
        return parse_command_result(p)
    raise CodecError(ERR_UNKNOWN_TYPE)


def type_name(t):
    for i in range(len(TYPE_CODES)):
        if TYPE_CODES[i] == t:
            return TYPE_NAMES[i]
    return None


def type_code(name):
    for i in range(len(TYPE_NAMES)):
        if TYPE_NAMES[i] == name:
            return TYPE_CODES[i]
    raise CodecError("unknown_type", name)


def is_known_type(t):
    return t in TYPE_CODES


def pack_record(buf, off, dt, lat, lon, speed, course, fix, hdop, status):
    """One 16-byte RECORDS record into buf at off."""
    struct.pack_into(_REC, buf, off, dt, lat, lon, speed, course, fix, hdop, status)


def _as_utf8(s, limit):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(b) > limit:
        raise CodecError(ERR_BAD_PAYLOAD, "string longer than its limit")
    return b


def _pack_str8(buf, off, s, limit):
    b = _as_utf8(s, limit)
    buf[off] = len(b)
    memoryview(buf)[off + 1 : off + 1 + len(b)] = b
    return off + 1 + len(b)


def _pack_route(buf, off, route):
    # route: absolute (i32 lat_e5, i32 lon_e5) pairs -> count, first point, i16 deltas.
    if len(route) % 8:
        raise CodecError(ERR_BAD_PAYLOAD, "route is not whole points")
    count = len(route) // 8
    if count > MAX_ROUTE_POINTS:
        raise CodecError(ERR_BAD_PAYLOAD, "route longer than 400 points")
    struct.pack_into(">H", buf, off, count)
    off += 2
    if not count:
        return off
    lat, lon = struct.unpack_from(">ii", route, 0)
    struct.pack_into(">ii", buf, off, lat, lon)
    off += 8
    for i in range(1, count):
        nlat, nlon = struct.unpack_from(">ii", route, 8 * i)
        dlat = nlat - lat
        dlon = nlon - lon
        if dlat < -32768 or dlat > 32767 or dlon < -32768 or dlon > 32767:
            raise CodecError(ERR_BAD_PAYLOAD, "route segment too long for an i16 delta")
        struct.pack_into(">hh", buf, off, dlat, dlon)
        off += 4
        lat = nlat
        lon = nlon
    return off


def pack_payload(buf, off, typ, f):
    if typ == HELLO:
        struct.pack_into(_HELLO, buf, off, f[0], f[1], f[2], f[3], f[4], f[5])
        return 12
    if typ == RECORDS:
        return _pack_records(buf, off, f[0], f[1], f[2], f[3])
    if typ == EVENT:
        struct.pack_into(_EVENT, buf, off, f[0], f[1], f[2], f[3], f[4], f[5], f[6])
        return 22
    if typ == STATE:
        struct.pack_into(_STATE, buf, off, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                         f[8], f[9])
        _put_evidence(buf, off + STATE_SIZE - EVIDENCE_SIZE, f[10])
        return STATE_SIZE
    if typ == COMMAND_RESULT:
        struct.pack_into(_CMDRES, buf, off, f[0], f[1], f[2], f[3], f[4], f[5])
        _put_evidence(buf, off + CMDRES_SIZE - EVIDENCE_SIZE, f[6])
        return CMDRES_SIZE
    if typ == ACK:
        struct.pack_into(_ACK, buf, off, f[0], f[1], f[2])
        return 12
    if typ == ACTIVATE:
        start = off
        struct.pack_into(">II", buf, off, f[0], f[1])
        off = _pack_str8(buf, off + 8, f[2], MAX_DECLARATION)
        off = _pack_str8(buf, off, f[3], MAX_VEHICLE)
        off = _pack_str8(buf, off, f[4], MAX_OFFICE_CODE)
        off = _pack_str8(buf, off, f[5], MAX_OFFICE_NAME)
        struct.pack_into(">IIH", buf, off, f[6], f[7], f[8])
        off = _pack_route(buf, off + 10, f[9])
        return off - start
    if typ == DEACTIVATE:
        start = off
        struct.pack_into(">II", buf, off, f[0], f[1])
        off = _pack_str8(buf, off + 8, f[2], MAX_DECLARATION)
        off = _pack_str8(buf, off, f[3], MAX_VEHICLE)
        return off - start
    if typ == CONFIG:
        struct.pack_into(_CONFIG, buf, off, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8])
        return 16
    if typ == TIME:
        struct.pack_into(">I", buf, off, f[0])
        return 4
    raise CodecError(ERR_UNKNOWN_TYPE)


def parse_hello(p):
    _exact(p, 12)
    v = struct.unpack_from(_HELLO, p, 0)
    if v[3] > RESET_DEEPSLEEP and v[3] != RESET_UNKNOWN:
        raise _bad("reset_cause")
    return v


def parse_records(p):
    if len(p) < 9:
        raise _bad("RECORDS head")
    first_rseq, base_time, count = struct.unpack_from(">IIB", p, 0)
    if count > MAX_RECORDS:
        raise _bad("count over 120")
    if len(p) != 9 + RECORD_SIZE * count:
        raise _bad("count and length disagree")
    return (first_rseq, base_time, count, p[9:])


def record(recs, i):
    """Record i of a RECORDS payload: (dt, lat, lon, speed, course, fix, hdop, status)."""
    return struct.unpack_from(_REC, recs, RECORD_SIZE * i)


def parse_event(p):
    _exact(p, 22)
    v = struct.unpack_from(_EVENT, p, 0)
    if v[2] < 1 or v[2] > _EV_MAX:
        raise _bad("event code")
    return v


def _evidence(p, off):
    if (p[off + _EV_FLAGS_AT] & _EVF_RESERVED or p[off + _EV_INPUTS_AT] & _EVI_RESERVED
            or p[off + _EV_KINDS_AT] & _EVK_RESERVED):
        raise _bad("evidence reserved bits")
    return struct.unpack_from(EVIDENCE_FMT, p, off)


def parse_state(p):
    _exact(p, STATE_SIZE)
    v = struct.unpack_from(_STATE, p, 0)
    if v[0] > ACTIVE or v[2] & _AL_RESERVED or v[9] & 0x3F:
        raise _bad("state, alarms or lock")
    return v + (_evidence(p, STATE_SIZE - EVIDENCE_SIZE),)


def parse_command_result(p):
    _exact(p, CMDRES_SIZE)
    v = struct.unpack_from(_CMDRES, p, 0)
    if v[2] not in TYPE_CODES or v[3] > _RES_MAX or v[4] > ACTIVE:
        raise _bad("cmd_type, result or state")
    return v + (_evidence(p, CMDRES_SIZE - EVIDENCE_SIZE),)
