"""The navseal wire format, version 2: the one declarative definition.

Everything on the host derives from the constructs below: the builder, the full parser, the fast
decoder (``fastpath.py`` reads the field layout off these definitions) and the JSON form that
``navseal decode`` prints. docs/protocol.md explains every byte and why. The firmware codec does
not import this (no construct on a board); the golden vectors made from this module bind the two.

Past 400 lines on purpose: the wire format is read and reviewed as one definition (header, every
message type, the Evidence block, the CRC and MAC), next to docs/protocol.md's tables, which a
test compares with it; split over files, a protocol change would be reviewed piecemeal.
"""

from __future__ import annotations

import hashlib
import hmac

import crcmod.predefined
from construct import (
    Adapter,
    Array,
    Bytes,
    BitsInteger,
    BitStruct,
    Checksum,
    Const,
    Enum,
    ExprAdapter,
    ExprValidator,
    Flag,
    If,
    Int8ub,
    Int16sb,
    Int16ub,
    Int32sb,
    Int32ub,
    PascalString,
    Prefixed,
    RawCopy,
    Rebuild,
    Struct,
    Switch,
    Terminated,
    len_,
    this,
)

MAGIC = b"NS"
VERSION = 2
HEADER_SIZE = 23
MAC_SIZE = 8
CRC_SIZE = 4
TRAILER_SIZE = MAC_SIZE + CRC_SIZE
MIN_FRAME = HEADER_SIZE + TRAILER_SIZE
# 2048 bytes of payload holds the largest ACTIVATE (400 route points) and a 120-record batch with
# room to spare, and still fits comfortably in a seal's RAM next to a 4 KB MQTT buffer.
MAX_PAYLOAD = 2048
MAX_FRAME = MIN_FRAME + MAX_PAYLOAD
MAX_RECORDS_PER_BATCH = 120
MAX_ROUTE_POINTS = 400
RECORD_SIZE = 16
NO_POSITION = 0x7FFFFFFF
NO_RSEQ = 0xFFFFFFFF
FLAG_RETRANSMIT = 0x01
FLAG_MORE = 0x02
RESERVED_FLAGS = 0xFC

# CRC-32/ISO-HDLC, the same function as zlib.crc32 and MicroPython's binascii.crc32.
_crc32 = crcmod.predefined.mkPredefinedCrcFun("crc-32")
CRC_CHECK_VALUE = 0xCBF43926
if _crc32(b"123456789") != CRC_CHECK_VALUE:  # pragma: no cover - would mean a broken crcmod
    raise ImportError("crcmod crc-32 does not give the CRC-32/ISO-HDLC check value")


def crc32(data: bytes) -> int:
    return _crc32(data)


def mac8(key: bytes, data: bytes | memoryview) -> bytes:
    """First 8 bytes of HMAC-SHA256: the frame's message authentication code."""
    return hmac.digest(key, data, "sha256")[:MAC_SIZE]  # one-shot (OpenSSL): no hmac object per frame


def test_key(seal_id: int) -> bytes:
    """The documented test key of seal ``seal_id`` (golden vectors, tests, demo). Never real."""
    return hashlib.sha256(b"navseal test key " + str(seal_id).encode()).digest()


test_key.__test__ = False  # not a pytest test, though its name starts with "test"


def strict_enum(subcon, **mapping):
    """An Enum that refuses values it does not name (construct's Enum passes them through)."""
    return ExprValidator(Enum(subcon, **mapping), lambda obj, ctx: obj in mapping)


def str8(max_bytes: int):
    """u8 length + UTF-8, at most ``max_bytes`` encoded bytes."""
    return ExprValidator(
        PascalString(Int8ub, "utf8"),
        lambda obj, ctx: isinstance(obj, str) and len(obj.encode("utf-8")) <= max_bytes,
    )


MSG_TYPES = {
    "HELLO": 0x01,
    "RECORDS": 0x02,
    "EVENT": 0x03,
    "STATE": 0x04,
    "COMMAND_RESULT": 0x05,
    "ACK": 0x81,
    "ACTIVATE": 0x82,
    "DEACTIVATE": 0x83,
    "CONFIG": 0x84,
    "TIME": 0x85,
}
MSG_NAMES = {code: name for name, code in MSG_TYPES.items()}
UPLINK_TYPES = frozenset(name for name, code in MSG_TYPES.items() if code < 0x80)
DOWNLINK_TYPES = frozenset(name for name, code in MSG_TYPES.items() if code >= 0x80)

MsgType = strict_enum(Int8ub, **MSG_TYPES)

RESET_CAUSES = {"POWER_ON": 0, "WATCHDOG": 1, "SOFT": 2, "BROWNOUT": 3, "DEEPSLEEP": 4, "UNKNOWN": 255}
EVENT_CODES = {
    "CABLE_CUT": 1,
    "HOUSING_OPENED": 2,
    "LOCK_RESTORED": 3,
    "GNSS_LOST": 4,
    "GNSS_REGAINED": 5,
    "GNSS_JUMP": 6,
    "LOW_BATTERY": 7,
    "JOURNAL_OVERFLOW": 8,
    "REBOOT": 9,
    "COMMAND_REJECTED": 10,
    "ROUTE_DEVIATION": 11,
    "ROUTE_RETURNED": 12,
    "GNSS_ANOMALY": 13,
}
SEAL_STATES = {"INACTIVE": 0, "ACTIVE": 1}
COMMAND_RESULTS = {
    "OK": 0,
    "LOCK_OPEN": 1,
    "WRONG_STATE": 2,
    "MISMATCH": 3,
    "BAD_PARAMS": 4,
    "REPLAYED": 5,
    "UNSUPPORTED": 6,
    "JOURNAL_PENDING": 7,
}
# GNSS_ANOMALY event value: kind << 24 | detail (docs/protocol.md, EVENT).
GNSS_ANOMALY_KINDS = {"time_backwards": 1, "impossible_speed": 2, "invalid_date": 3, "time_forward": 4}

# A coordinate in 1e-7 degree; 0x7FFFFFFF means "no position known" (JSON null).
Position = ExprAdapter(
    Int32sb,
    decoder=lambda raw, ctx: None if raw == NO_POSITION else raw,
    encoder=lambda value, ctx: NO_POSITION if value is None else value,
)

# Lock and battery in one byte: two switches and the battery in 2 % steps (63 = unknown).
Battery2Pct = ExprAdapter(
    BitsInteger(6),
    decoder=lambda raw, ctx: None if raw == 63 else raw * 2,
    encoder=lambda pct, ctx: 63 if pct is None else pct // 2,
)
Status = BitStruct(
    "cable_intact" / Flag,
    "housing_closed" / Flag,
    "battery_pct" / Battery2Pct,
)

Fix = BitStruct(
    "quality" / BitsInteger(2),
    "satellites" / BitsInteger(6),
)

PositionRecord = Struct(
    "dt" / Int16ub,
    "lat" / Position,
    "lon" / Position,
    "speed" / Int16ub,
    "course" / Int8ub,
    "fix" / Fix,
    "hdop" / Int8ub,
    "status" / Status,
)

Hello = Struct(
    "fw_major" / Int8ub,
    "fw_minor" / Int8ub,
    "fw_patch" / Int8ub,
    "reset_cause" / strict_enum(Int8ub, **RESET_CAUSES),
    "config_hash" / Int32ub,
    "journal_pending" / Int32ub,
    Terminated,
)

Records = Struct(
    "first_rseq" / Int32ub,
    "base_time" / Int32ub,
    "count" / Rebuild(ExprValidator(Int8ub, lambda n, ctx: n <= MAX_RECORDS_PER_BATCH), len_(this.records)),
    "records" / Array(this.count, PositionRecord),
    Terminated,
)

Event = Struct(
    "rseq" / Int32ub,
    "time" / Int32ub,
    "code" / strict_enum(Int8ub, **EVENT_CODES),
    "lat" / Position,
    "lon" / Position,
    "status" / Status,
    "value" / Int32ub,
    Terminated,
)

Alarms = BitStruct(
    "_reserved" / Const(0, BitsInteger(1)),
    "GNSS_ANOMALY" / Flag,
    "ROUTE_DEVIATION" / Flag,
    "JOURNAL_OVERFLOW" / Flag,
    "LOW_BATTERY" / Flag,
    "GNSS_LOST" / Flag,
    "HOUSING_OPENED" / Flag,
    "CABLE_CUT" / Flag,
)

Lock = BitStruct(
    "cable_intact" / Flag,
    "housing_closed" / Flag,
    "_reserved" / Const(0, BitsInteger(6)),
)

# The seal's persisted summary of what it observed during one escort (docs/protocol.md, "Evidence").
# Times are seal clock, Unix s, 0 = none; counts are episodes, not raw events.
EvidenceFlags = BitStruct(
    "_reserved" / Const(0, BitsInteger(4)),
    "gnss_lost_now" / Flag,
    "deviating_now" / Flag,
    "opening_now" / Flag,
    "closed" / Flag,
)

OpeningInputs = BitStruct(
    "_reserved" / Const(0, BitsInteger(6)),
    "housing" / Flag,
    "cable" / Flag,
)

AnomalyKinds = BitStruct(
    "_reserved" / Const(0, BitsInteger(4)),
    "time_forward" / Flag,
    "invalid_date" / Flag,
    "impossible_speed" / Flag,
    "time_backwards" / Flag,
)

Evidence = Struct(
    "escort_id" / Int32ub,
    "flags" / EvidenceFlags,
    "start_rseq" / Int32ub,
    "hw_rseq" / Int32ub,
    "thinned" / Int32ub,
    "openings" / Int16ub,
    "opening_first" / Int32ub,
    "opening_inputs" / OpeningInputs,
    "deviations" / Int16ub,
    "deviation_first" / Int32ub,
    "deviation_max_m" / Int32ub,
    "gnss_losses" / Int16ub,
    "gnss_longest_s" / Int32ub,
    "gnss_longest_at" / Int32ub,
    "anomalies" / Int16ub,
    "anomaly_first" / Int32ub,
    "anomaly_kinds" / AnomalyKinds,
    "reboots" / Int16ub,
    "power_losses" / Int16ub,
)
EVIDENCE_SIZE = Evidence.sizeof()  # 55 (docs/protocol.md)

SealState = Struct(
    "state" / strict_enum(Int8ub, **SEAL_STATES),
    "escort_id" / Int32ub,
    "alarms" / Alarms,
    "battery_pct" / Int8ub,
    "journal_pending" / Int32ub,
    "journal_capacity" / Int32ub,
    "fix_time" / Int32ub,
    "lat" / Position,
    "lon" / Position,
    "lock" / Lock,
    "evidence" / Evidence,
    Terminated,
)

CommandResult = Struct(
    "cmd_boot" / Int32ub,
    "cmd_seq" / Int32ub,
    "cmd_type" / MsgType,
    "result" / strict_enum(Int8ub, **COMMAND_RESULTS),
    "state" / strict_enum(Int8ub, **SEAL_STATES),
    "escort_id" / Int32ub,
    "evidence" / Evidence,
    Terminated,
)

Ack = Struct(
    "acked_boot" / Int32ub,
    "acked_seq" / Int32ub,
    "committed_rseq" / Int32ub,
    Terminated,
)


class RouteAdapter(Adapter):
    """Absolute [lat_e5, lon_e5] points <-> first point + i16 deltas (a compact polyline)."""

    def _decode(self, obj, context, path):
        if obj.count == 0:
            return []
        lat, lon = obj.first.lat, obj.first.lon
        points = [[lat, lon]]
        for delta in obj.deltas:
            lat += delta.dlat
            lon += delta.dlon
            points.append([lat, lon])
        return points

    def _encode(self, points, context, path):
        points = list(points)
        if len(points) > MAX_ROUTE_POINTS:
            raise ValueError(f"route has {len(points)} points, at most {MAX_ROUTE_POINTS}")
        deltas = []
        for (lat0, lon0), (lat1, lon1) in zip(points, points[1:]):
            dlat, dlon = lat1 - lat0, lon1 - lon0
            if not (-32768 <= dlat <= 32767 and -32768 <= dlon <= 32767):
                raise ValueError("route segment longer than an i16 delta (0.327 degree): densify it")
            deltas.append({"dlat": dlat, "dlon": dlon})
        first = {"lat": points[0][0], "lon": points[0][1]} if points else None
        return {"count": len(points), "first": first, "deltas": deltas}


def densify_route(points: list[list[int]]) -> list[list[int]]:
    """Insert evenly spaced points so that no segment needs more than an i16 delta (1e-5 deg).

    Straight lines in latitude/longitude stay the same lines, so the corridor is unchanged.
    """
    out: list[list[int]] = []
    for i, (lat, lon) in enumerate(points):
        if out:
            lat0, lon0 = out[-1]
            steps = max(abs(lat - lat0), abs(lon - lon0)) // 32767 + 1
            for k in range(1, steps):
                out.append([lat0 + (lat - lat0) * k // steps, lon0 + (lon - lon0) * k // steps])
        out.append([lat, lon])
    return out


Route = RouteAdapter(
    Struct(
        "count" / ExprValidator(Int16ub, lambda n, ctx: n <= MAX_ROUTE_POINTS),
        "first" / If(this.count > 0, Struct("lat" / Int32sb, "lon" / Int32sb)),
        "deltas" / Array(lambda ctx: max(ctx.count - 1, 0), Struct("dlat" / Int16sb, "dlon" / Int16sb)),
    )
)

Activate = Struct(
    "escort_id" / Int32ub,
    "seal_number" / Int32ub,
    "declaration" / str8(40),
    "vehicle" / str8(16),
    "dest_office_code" / str8(16),
    "dest_office_name" / str8(64),
    "period_start" / Int32ub,
    "period_end" / Int32ub,
    "corridor_m" / Int16ub,
    "route" / Route,
    Terminated,
)

Deactivate = Struct(
    "escort_id" / Int32ub,
    "seal_number" / Int32ub,
    "declaration" / str8(40),
    "vehicle" / str8(16),
    Terminated,
)

Config = Struct(
    "report_moving_s" / Int16ub,
    "report_stopped_s" / Int16ub,
    "report_inactive_s" / Int16ub,
    "heartbeat_s" / Int16ub,
    "batch_max" / Int8ub,
    "gnss_lost_s" / Int16ub,
    "low_battery_pct" / Int8ub,
    "jump_speed_kmh" / Int16ub,
    "ack_timeout_s" / Int16ub,
    Terminated,
)

Time = Struct(
    "unix_time" / Int32ub,
    Terminated,
)

PAYLOADS = {
    "HELLO": Hello,
    "RECORDS": Records,
    "EVENT": Event,
    "STATE": SealState,
    "COMMAND_RESULT": CommandResult,
    "ACK": Ack,
    "ACTIVATE": Activate,
    "DEACTIVATE": Deactivate,
    "CONFIG": Config,
    "TIME": Time,
}

# Header fields in wire order; the payload's u16 length prefix ends the 23-byte header.
Header = Struct(
    "magic" / Const(MAGIC),
    "version" / Int8ub,
    "type" / MsgType,
    "flags" / Int8ub,
    "seal_id" / Int32ub,
    "boot" / Int32ub,
    "seq" / Int32ub,
    "time" / Int32ub,
)

FrameBody = Struct(
    *Header.subcons,
    "payload" / Prefixed(
        ExprValidator(Int16ub, lambda n, ctx: n <= MAX_PAYLOAD),
        Switch(this.type, PAYLOADS),
    ),
)

# The whole frame. Build with ``Frame.build(obj, key=KEY)``: the MAC and CRC are computed.
# Parse with ``Frame.parse(data, key=KEY)``: both are verified (construct's ChecksumError).
Frame = Struct(
    "body" / RawCopy(FrameBody),
    "mac" / Checksum(Bytes(MAC_SIZE), lambda kd: mac8(kd[0], kd[1]), lambda ctx: (ctx._params.key, ctx.body.data)),
    "crc" / Checksum(Int32ub, crc32, lambda ctx: ctx.body.data + ctx.mac),
    Terminated,
)
