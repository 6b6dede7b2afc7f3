"""Generate the golden vectors in protocol/vectors/ (docs/protocol.md, "Golden vectors").

    python -m navseal.protocol.make_vectors [--check] [--force]

The vectors are the contract between the host codec and the firmware codec, so they are made once
and kept: by default this refuses to change the bytes of an existing vector (that would be a
protocol change) and only writes new ones. ``--check`` writes nothing and fails if any file
differs from what the definition gives now.

Past 400 lines because it is mostly data: one builder call per golden vector (84 of them, each
a named case of docs/protocol.md); the generating logic itself is the short part at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from .codec import DecodeError, decode_frame, encode_frame
from .codec import evidence as _evidence
from .schema import (
    EVENT_CODES,
    GNSS_ANOMALY_KINDS,
    HEADER_SIZE,
    MAX_RECORDS_PER_BATCH,
    MAX_ROUTE_POINTS,
    crc32,
    densify_route,
    mac8,
    test_key,
)
from .serial import SerialDeframer, encode_serial

VECTOR_DIR = Path(__file__).with_name("vectors")
SEAL = 1001
KEY = test_key(SEAL)
T0 = 1764115200  # 2025-11-26T00:00:00Z
H = HEADER_SIZE  # payload offset in a frame; the u16 payload length is the header's last 2 bytes


def _rec(dt=0, lat=432380000, lon=769450000, speed=853, course=45, quality=1, sats=9, hdop=12,
         cable=True, housing=True, battery=84):
    return {
        "dt": dt, "lat": lat, "lon": lon, "speed": speed, "course": course,
        "fix": {"quality": quality, "satellites": sats}, "hdop": hdop,
        "status": {"cable_intact": cable, "housing_closed": housing, "battery_pct": battery},
    }


def _frame(type_name, payload, *, seal=SEAL, boot=3, seq=17, time=T0, flags=0, key=KEY):
    return encode_frame(type_name, seal_id=seal, boot=boot, seq=seq, time=time, payload=payload,
                        key=key, flags=flags)


def _resign(raw: bytearray, key=KEY) -> bytes:
    """Recompute MAC and CRC after a deliberate edit, so only the intended fault remains."""
    length = int.from_bytes(raw[H - 2:H], "big")
    end = H + length
    if len(raw) >= end + 12:
        raw[end:end + 8] = mac8(key, bytes(raw[:end]))
        raw[end + 8:end + 12] = crc32(bytes(raw[:end + 8])).to_bytes(4, "big")
    return bytes(raw)


def _recrc(raw: bytearray) -> bytes:
    raw[-4:] = crc32(bytes(raw[:-4])).to_bytes(4, "big")
    return bytes(raw)


def _route(n, start=(4323800, 7694500)):
    rng = random.Random(n)
    pts = [list(start)]
    for _ in range(n - 1):
        pts.append([pts[-1][0] + rng.randint(-32768, 32767), pts[-1][1] + rng.randint(-32768, 32767)])
    return pts


# An escort 77 six hours in: armed at journal rseq 1000, one opening episode still open (cable then
# housing), deviations, GNSS trouble, anomalies of three kinds, two reboots of which one a power loss.
EVIDENCE_ACTIVE = _evidence(
    escort_id=77, flags={"opening_now": True, "deviating_now": True, "gnss_lost_now": True},
    start_rseq=1000, hw_rseq=1433, thinned=12, openings=2, opening_first=T0 - 7200,
    opening_inputs={"cable": True, "housing": True}, deviations=3, deviation_first=T0 - 14400,
    deviation_max_m=4870, gnss_losses=4, gnss_longest_s=11400, gnss_longest_at=T0 - 18000, anomalies=5,
    anomaly_first=T0 - 20000, anomaly_kinds={"time_backwards": True, "impossible_speed": True,
                                             "invalid_date": True},
    reboots=2, power_losses=1)
# The same escort ended by DEACTIVATE: frozen at hw_rseq 1502, no episode open any more.
EVIDENCE_CLOSED = _evidence(
    escort_id=77, flags={"closed": True}, start_rseq=1000, hw_rseq=1502, thinned=12, openings=2,
    opening_first=T0 - 7200, opening_inputs={"cable": True, "housing": True}, deviations=3,
    deviation_first=T0 - 14400, deviation_max_m=4870, gnss_losses=4, gnss_longest_s=11400,
    gnss_longest_at=T0 - 18000, anomalies=5, anomaly_first=T0 - 20000,
    anomaly_kinds={"time_backwards": True, "impossible_speed": True, "invalid_date": True},
    reboots=2, power_losses=1)
# Offsets inside the Evidence block of its three bit-field bytes (reserved bits: bad_payload).
EVIDENCE_FLAGS_AT, EVIDENCE_INPUTS_AT, EVIDENCE_KINDS_AT = 4, 23, 50
STATE_EVIDENCE_AT, COMMAND_RESULT_EVIDENCE_AT = 28, 15


ALMATY_KHORGOS = [[4325700, 7694500], [4335200, 7730100], [4382600, 7795000], [4404200, 7850600],
                  [4417800, 7915000], [4420500, 7997800], [4419100, 8027400]]


ALARMS_OFF = {k: False for k in ("GNSS_ANOMALY", "ROUTE_DEVIATION", "JOURNAL_OVERFLOW", "LOW_BATTERY",
                                 "GNSS_LOST", "HOUSING_OPENED", "CABLE_CUT")}


def _v1_frame() -> bytes:
    """A TIME frame exactly as version 1 built it (u16 boot, 21-byte header), validly signed.

    Version 1 is retired: this is the one place its layout is still written, to prove it is refused."""
    signed = b"NS" + bytes([1, 0x85, 0]) + SEAL.to_bytes(4, "big") + (3).to_bytes(2, "big") \
        + (17).to_bytes(4, "big") + T0.to_bytes(4, "big") + (4).to_bytes(2, "big") + (T0 + 1).to_bytes(4, "big")
    signed += mac8(KEY, signed)
    return signed + crc32(signed).to_bytes(4, "big")


def valid_frames():
    """(name, description, frame bytes) for every message that must decode."""
    yield "hello", "HELLO after a power-on boot", _frame("HELLO", {
        "fw_major": 1, "fw_minor": 2, "fw_patch": 3, "reset_cause": "POWER_ON",
        "config_hash": 0x1A2B3C4D, "journal_pending": 17})
    yield "hello_watchdog", "HELLO after a watchdog reset with a big backlog", _frame("HELLO", {
        "fw_major": 0, "fw_minor": 9, "fw_patch": 255, "reset_cause": "WATCHDOG",
        "config_hash": 0, "journal_pending": 100000}, boot=65535, seq=0)
    yield "records_one", "one position record", _frame("RECORDS", {
        "first_rseq": 42, "base_time": T0 - 100, "records": [_rec(dt=0)]})
    yield "records_zero", "an empty batch (count 0)", _frame("RECORDS", {
        "first_rseq": 1, "base_time": T0, "records": []})
    yield "records_three", "three records moving east, 30 s apart", _frame("RECORDS", {
        "first_rseq": 1000, "base_time": T0 - 90, "records": [
            _rec(dt=0, lon=769450000), _rec(dt=30, lon=769460000, speed=900),
            _rec(dt=60, lon=769470000, speed=0, course=255)]})
    rng = random.Random(7)
    big = []
    for i in range(MAX_RECORDS_PER_BATCH):
        big.append(_rec(dt=i * 60, lat=-rng.randint(0, 900000000), lon=-rng.randint(0, 1800000000),
                        speed=rng.randint(0, 65535), course=rng.randint(0, 179), quality=rng.randint(0, 3),
                        sats=rng.randint(0, 63), hdop=rng.randint(0, 255), cable=bool(i % 2),
                        housing=bool(i % 3), battery=rng.choice([None, 0, 100, 2 * rng.randint(0, 50)])))
    yield "records_max_batch", "the biggest batch: 120 records, negative coordinates, edge values", \
        _frame("RECORDS", {"first_rseq": 0xFFFFFFFF - 119, "base_time": T0, "records": big}, flags=0x02)
    yield "records_negative_coords", "southern and western hemisphere, exact extremes", _frame("RECORDS", {
        "first_rseq": 5, "base_time": T0, "records": [
            _rec(lat=-900000000, lon=-1800000000), _rec(dt=1, lat=900000000, lon=1800000000),
            _rec(dt=2, lat=-1, lon=-1)]})
    yield "records_unknown_values", "no fix: position, course, hdop and battery unknown", _frame("RECORDS", {
        "first_rseq": 6, "base_time": T0, "records": [
            _rec(lat=None, lon=None, speed=0, course=255, quality=0, sats=0, hdop=255, battery=None,
                 cable=False, housing=False)]})
    for code, value in EVENT_CODES.items():
        # Values as docs/protocol.md gives them: opening episode numbers, LOCK_RESTORED's
        # episode << 8 | lock bits, a GNSS loss's duration, an anomaly's kind << 24 | detail.
        detail = {"CABLE_CUT": 1, "HOUSING_OPENED": 2, "LOCK_RESTORED": 2 << 8 | 0xC0,
                  "GNSS_REGAINED": 11400, "GNSS_JUMP": 48213, "LOW_BATTERY": 14, "JOURNAL_OVERFLOW": 2500,
                  "REBOOT": 1, "COMMAND_REJECTED": 1, "ROUTE_DEVIATION": 1250,
                  "GNSS_ANOMALY": GNSS_ANOMALY_KINDS["time_backwards"] << 24 | 3600}.get(code, 0)
        yield f"event_{code.lower()}", f"EVENT {code}", _frame("EVENT", {
            "rseq": 100 + value, "time": T0 - 10, "code": code, "lat": 432380000, "lon": 769450000,
            "status": {"cable_intact": code != "CABLE_CUT", "housing_closed": code != "HOUSING_OPENED",
                       "battery_pct": 14 if code == "LOW_BATTERY" else 84},
            "value": detail})
    yield "event_no_position", "an event before any fix", _frame("EVENT", {
        "rseq": 1, "time": T0, "code": "REBOOT", "lat": None, "lon": None,
        "status": {"cable_intact": True, "housing_closed": True, "battery_pct": None}, "value": 0})
    yield "state_inactive", "STATE of an idle seal, never escorted since provisioning", _frame("STATE", {
        "state": "INACTIVE", "escort_id": 0, "alarms": ALARMS_OFF, "battery_pct": 97,
        "journal_pending": 0, "journal_capacity": 100000, "fix_time": 0, "lat": None, "lon": None,
        "lock": {"cable_intact": False, "housing_closed": True}, "evidence": _evidence()})
    yield "state_active_all_alarms", "STATE with every alarm latched", _frame("STATE", {
        "state": "ACTIVE", "escort_id": 77, "alarms": {k: True for k in ALARMS_OFF}, "battery_pct": 255,
        "journal_pending": 4242, "journal_capacity": 100000, "fix_time": T0 - 5, "lat": 432380000,
        "lon": 769450000, "lock": {"cable_intact": False, "housing_closed": False},
        "evidence": _evidence(escort_id=77, start_rseq=1000, hw_rseq=5242, openings=1, opening_first=T0 - 60,
                              opening_inputs={"cable": True})})
    yield "state_active_evidence", \
        "STATE of an active escort with an opening episode open and a count in every evidence field", \
        _frame("STATE", {
            "state": "ACTIVE", "escort_id": 77, "alarms": dict(ALARMS_OFF, CABLE_CUT=True, HOUSING_OPENED=True,
                                                                ROUTE_DEVIATION=True, GNSS_LOST=True,
                                                                GNSS_ANOMALY=True),
            "battery_pct": 61, "journal_pending": 433, "journal_capacity": 100000, "fix_time": T0 - 11400,
            "lat": 432380000, "lon": 769450000, "lock": {"cable_intact": False, "housing_closed": False},
            "evidence": EVIDENCE_ACTIVE}, seq=4001)
    yield "state_inactive_closed", "STATE after DEACTIVATE: the ended escort's evidence, frozen (closed)", \
        _frame("STATE", {
            "state": "INACTIVE", "escort_id": 0, "alarms": ALARMS_OFF, "battery_pct": 58, "journal_pending": 0,
            "journal_capacity": 100000, "fix_time": T0 - 30, "lat": 432570000, "lon": 769450000,
            "lock": {"cable_intact": True, "housing_closed": True}, "evidence": EVIDENCE_CLOSED}, seq=4100)
    yield "command_result_ok", "ACTIVATE accepted", _frame("COMMAND_RESULT", {
        "cmd_boot": 0, "cmd_seq": 5, "cmd_type": "ACTIVATE", "result": "OK", "state": "ACTIVE",
        "escort_id": 77, "evidence": _evidence(escort_id=77, start_rseq=1000, hw_rseq=1000)})
    yield "command_result_lock_open", "ACTIVATE refused: lock open", _frame("COMMAND_RESULT", {
        "cmd_boot": 0, "cmd_seq": 6, "cmd_type": "ACTIVATE", "result": "LOCK_OPEN", "state": "INACTIVE",
        "escort_id": 0, "evidence": _evidence()})
    yield "command_result_mismatch", "DEACTIVATE refused: data do not match", _frame("COMMAND_RESULT", {
        "cmd_boot": 0, "cmd_seq": 9, "cmd_type": "DEACTIVATE", "result": "MISMATCH", "state": "ACTIVE",
        "escort_id": 77, "evidence": EVIDENCE_ACTIVE})
    yield "command_result_journal_pending", \
        "DEACTIVATE refused: journal records not yet acknowledged (the gateway sends it again)", \
        _frame("COMMAND_RESULT", {
            "cmd_boot": 0, "cmd_seq": 10, "cmd_type": "DEACTIVATE", "result": "JOURNAL_PENDING",
            "state": "ACTIVE", "escort_id": 77, "evidence": EVIDENCE_ACTIVE}, seq=4050)
    yield "command_result_deactivate_ok", "DEACTIVATE accepted: the ended escort's evidence, frozen", \
        _frame("COMMAND_RESULT", {
            "cmd_boot": 0, "cmd_seq": 11, "cmd_type": "DEACTIVATE", "result": "OK", "state": "INACTIVE",
            "escort_id": 0, "evidence": EVIDENCE_CLOSED}, seq=4099)
    yield "ack", "ACK of a RECORDS frame", _frame("ACK", {
        "acked_boot": 3, "acked_seq": 17, "committed_rseq": 44}, boot=0, seq=1)
    yield "ack_no_records", "ACK of a frame without journal records", _frame("ACK", {
        "acked_boot": 3, "acked_seq": 0, "committed_rseq": 0xFFFFFFFF}, boot=0, seq=2)
    yield "activate_typical", "ACTIVATE Almaty to Khorgos, 7-point route densified for i16 deltas, 2 km corridor", _frame("ACTIVATE", {
        "escort_id": 77, "seal_number": SEAL, "declaration": "50508/261126/0001234", "vehicle": "123ABC02",
        "dest_office_code": "50513", "dest_office_name": "Хоргос таможенный пост", "period_start": T0,
        "period_end": T0 + 3 * 86400, "corridor_m": 2000, "route": densify_route(ALMATY_KHORGOS)}, boot=0, seq=3)
    yield "activate_no_route", "ACTIVATE without a route (corridor 0)", _frame("ACTIVATE", {
        "escort_id": 78, "seal_number": SEAL, "declaration": "D", "vehicle": "V", "dest_office_code": "",
        "dest_office_name": "", "period_start": 0, "period_end": 0xFFFFFFFF, "corridor_m": 0,
        "route": []}, boot=0, seq=4)
    yield "activate_max", "the biggest ACTIVATE: every string full, 400 route points", _frame("ACTIVATE", {
        "escort_id": 0xFFFFFFFF, "seal_number": SEAL, "declaration": "9" * 40, "vehicle": "Ж" * 8,
        "dest_office_code": "1234567890123456", "dest_office_name": "x" * 64, "period_start": T0,
        "period_end": T0 + 86400, "corridor_m": 65535, "route": _route(MAX_ROUTE_POINTS)}, boot=0, seq=5)
    yield "deactivate", "DEACTIVATE (clause 13 data)", _frame("DEACTIVATE", {
        "escort_id": 77, "seal_number": SEAL, "declaration": "50508/261126/0001234", "vehicle": "123ABC02"},
        boot=0, seq=6)
    yield "config", "CONFIG with the default intervals", _frame("CONFIG", {
        "report_moving_s": 60, "report_stopped_s": 600, "report_inactive_s": 3600, "heartbeat_s": 900,
        "batch_max": 60, "gnss_lost_s": 300, "low_battery_pct": 15, "jump_speed_kmh": 300,
        "ack_timeout_s": 30}, boot=0, seq=7)
    yield "time", "TIME sets the seal clock", _frame("TIME", {"unix_time": T0 + 1}, boot=0, seq=8)
    yield "flags_retransmit_more", "a retransmitted frame with MORE set", _frame("HELLO", {
        "fw_major": 1, "fw_minor": 0, "fw_patch": 0, "reset_cause": "SOFT", "config_hash": 1,
        "journal_pending": 2}, flags=0x03)
    yield "header_max_values", "seal id, boot, seq and time at their maxima", _frame("TIME", {
        "unix_time": 0}, seal=0xFFFFFFFF, boot=0xFFFFFFFF, seq=0xFFFFFFFF, time=0xFFFFFFFF,
        key=test_key(0xFFFFFFFF))
    yield "header_boot_70000", "boot 70000: past the 16 bits of version 1", _frame("HELLO", {
        "fw_major": 1, "fw_minor": 2, "fw_patch": 3, "reset_cause": "BROWNOUT", "config_hash": 0x1A2B3C4D,
        "journal_pending": 3}, boot=70000, seq=0)
    yield "ack_boot_70000", "ACK of a frame sent in boot 70000", _frame("ACK", {
        "acked_boot": 70000, "acked_seq": 1, "committed_rseq": 45}, boot=0, seq=9)


def invalid_frames():
    """(name, description, bytes, expected error) for frames that must be refused."""
    good = _frame("RECORDS", {"first_rseq": 42, "base_time": T0, "records": [_rec(), _rec(dt=30)]})
    n = len(good)
    bad = bytearray(good)
    bad[30] ^= 0x01
    yield "bad_crc_payload_bit", "one payload bit flipped", bytes(bad), "bad_crc"
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    yield "bad_crc_trailer", "CRC bytes damaged", bytes(bad), "bad_crc"
    bad = bytearray(good)
    bad[25] ^= 0x01
    yield "bad_mac_payload_edited", "payload edited and CRC fixed up, MAC not", _recrc(bad), "bad_mac"
    forged = _frame("RECORDS", {"first_rseq": 42, "base_time": T0, "records": [_rec()]}, key=test_key(1002))
    yield "bad_mac_wrong_key", "signed with another seal's key", forged, "bad_mac"
    yield "truncated_empty", "zero bytes", b"", "truncated"
    yield "truncated_in_magic", "one byte", good[:1], "truncated"
    yield "truncated_in_header", "cut inside the header", good[:10], "truncated"
    yield "truncated_after_header", "header only", good[:H], "truncated"
    yield "truncated_in_payload", "cut inside the payload", good[:40], "truncated"
    yield "truncated_in_mac", "cut inside the MAC", good[:n - 8], "truncated"
    yield "truncated_in_crc", "last byte missing", good[:n - 1], "truncated"
    bad = bytearray(good)
    bad[H - 2:H] = (0xFFFF).to_bytes(2, "big")
    yield "oversize_length_ffff", "length field 65535", bytes(bad), "oversize"
    bad = bytearray(good)
    bad[H - 2:H] = (2049).to_bytes(2, "big")
    yield "oversize_length_2049", "length field one over the limit", bytes(bad), "oversize"
    bad = bytearray(good)
    bad[3] = 0x06
    yield "unknown_type_uplink", "type 0x06, CRC and MAC valid", _resign(bad), "unknown_type"
    bad = bytearray(good)
    bad[3] = 0x86
    yield "unknown_type_downlink", "type 0x86, CRC and MAC valid", _resign(bad), "unknown_type"
    yield "unsupported_version", "a version 1 frame (16-bit boot, 21-byte header): retired", \
        _v1_frame(), "unsupported_version"
    bad = bytearray(good)
    bad[2] = 3
    yield "unsupported_version_3", "version 3, CRC and MAC valid", _resign(bad), "unsupported_version"
    bad = bytearray(good)
    bad[0:2] = b"NT"
    yield "bad_magic", "magic NT", _resign(bad), "bad_magic"
    yield "trailing_bytes", "one byte after the CRC", good + b"\x00", "trailing_bytes"
    bad = bytearray(good)
    bad[4] = 0x04
    yield "bad_flags_reserved", "reserved flag bit 2 set", _resign(bad), "bad_flags"
    # payload faults, each with a valid length, CRC and MAC
    bad = bytearray(good)
    bad[H + 8] = 3  # count says 3, two records present
    yield "bad_payload_count_mismatch", "RECORDS count 3 with 2 records", _resign(bad), "bad_payload"
    over = _frame("RECORDS", {"first_rseq": 1, "base_time": T0, "records": [_rec()] * 120})
    bad = bytearray(over)
    bad[H + 8] = 121
    yield "bad_payload_count_over_limit", "RECORDS count 121", _resign(bad), "bad_payload"
    ev = bytearray(_frame("EVENT", {"rseq": 1, "time": T0, "code": "CABLE_CUT", "lat": 0, "lon": 0,
                                    "status": {"cable_intact": False, "housing_closed": True,
                                               "battery_pct": 50}, "value": 0}))
    ev[H + 8] = 0
    yield "bad_payload_event_code", "EVENT code 0 (unassigned)", _resign(ev), "bad_payload"
    de = bytearray(_frame("DEACTIVATE", {"escort_id": 1, "seal_number": SEAL, "declaration": "AB",
                                         "vehicle": "CD"}, boot=0))
    de[H + 9] = 0xFF  # first byte of the declaration: not UTF-8
    yield "bad_payload_utf8", "DEACTIVATE declaration is not UTF-8", _resign(de), "bad_payload"
    long_decl = bytearray(_frame("DEACTIVATE", {"escort_id": 1, "seal_number": SEAL, "declaration": "A" * 40,
                                                "vehicle": "V"}, boot=0))
    # splice in a 41-byte declaration: rebuild payload by hand
    payload = (1).to_bytes(4, "big") + SEAL.to_bytes(4, "big") + bytes([41]) + b"A" * 41 + bytes([1]) + b"V"
    raw = bytearray(long_decl[:H - 2]) + len(payload).to_bytes(2, "big") + payload + bytes(12)
    yield "bad_payload_string_too_long", "declaration of 41 bytes (max 40)", _resign(raw), "bad_payload"
    state = _frame("STATE", {
        "state": "ACTIVE", "escort_id": 77, "alarms": ALARMS_OFF, "battery_pct": 50, "journal_pending": 0,
        "journal_capacity": 1, "fix_time": 0, "lat": None, "lon": None,
        "lock": {"cable_intact": True, "housing_closed": True}, "evidence": EVIDENCE_ACTIVE})
    st = bytearray(state)
    st[H + 5] = 0x80
    yield "bad_payload_reserved_alarm_bit", "STATE alarms bit 7 set", _resign(st), "bad_payload"
    st = bytearray(state)
    st[H + STATE_EVIDENCE_AT + EVIDENCE_FLAGS_AT] |= 0x10
    yield "bad_payload_evidence_flags", "STATE evidence flags: reserved bit 4 set", _resign(st), "bad_payload"
    st = bytearray(state)
    st[H + STATE_EVIDENCE_AT + EVIDENCE_KINDS_AT] |= 0x80
    yield "bad_payload_evidence_anomaly_kinds", "STATE evidence anomaly_kinds: reserved bit 7 set", \
        _resign(st), "bad_payload"
    length = len(state) - H - 12
    short = bytearray(state[:H - 2]) + (length - 1).to_bytes(2, "big") + state[H:H + length - 1] + bytes(12)
    yield "bad_payload_state_short", "STATE one byte short (82 bytes: evidence cut)", _resign(short), \
        "bad_payload"
    result = _frame("COMMAND_RESULT", {
        "cmd_boot": 0, "cmd_seq": 10, "cmd_type": "DEACTIVATE", "result": "OK", "state": "INACTIVE",
        "escort_id": 0, "evidence": EVIDENCE_CLOSED})
    cr = bytearray(result)
    cr[H + COMMAND_RESULT_EVIDENCE_AT + EVIDENCE_INPUTS_AT] |= 0x04
    yield "bad_payload_evidence_opening_inputs", "COMMAND_RESULT evidence opening_inputs: reserved bit 2 set", \
        _resign(cr), "bad_payload"
    cr = bytearray(result)
    cr[H + 9] = 8
    yield "bad_payload_result_unknown", "COMMAND_RESULT result 8 (unassigned)", _resign(cr), "bad_payload"
    act = bytearray(_frame("ACTIVATE", {
        "escort_id": 1, "seal_number": SEAL, "declaration": "", "vehicle": "", "dest_office_code": "",
        "dest_office_name": "", "period_start": 0, "period_end": 0, "corridor_m": 0, "route": []}, boot=0))
    act[H + 22] = 0x01
    act[H + 23] = 0x91  # route_count 401
    yield "bad_payload_route_too_long", "ACTIVATE route count 401", _resign(act), "bad_payload"
    t = bytearray(_frame("TIME", {"unix_time": T0}, boot=0))
    raw = bytearray(t[:H - 2]) + (5).to_bytes(2, "big") + bytes(t[H:H + 4]) + b"\x00" + bytes(12)
    yield "bad_payload_extra_byte", "TIME payload of 5 bytes", _resign(raw), "bad_payload"


def serial_streams():
    """(name, description, stream bytes) for the serial layer."""
    a = _frame("HELLO", {"fw_major": 1, "fw_minor": 0, "fw_patch": 0, "reset_cause": "POWER_ON",
                         "config_hash": 0, "journal_pending": 0}, seq=0)
    b = _frame("RECORDS", {"first_rseq": 1, "base_time": T0, "records": [_rec(), _rec(dt=60)]}, seq=1)
    c = _frame("EVENT", {"rseq": 3, "time": T0 + 61, "code": "CABLE_CUT", "lat": 0, "lon": 0,
                         "status": {"cable_intact": False, "housing_closed": True, "battery_pct": 80},
                         "value": 0}, seq=2)
    yield "serial_two_frames", "two frames back to back", encode_serial(a) + encode_serial(b)
    yield "serial_leading_delimiters", "flush delimiters and empty frames are ignored", \
        b"\x00\x00" + encode_serial(a) + b"\x00\x00\x00" + encode_serial(c)
    rng = random.Random(42)
    noise = bytes(rng.randint(1, 255) for _ in range(23))
    yield "serial_noise_before", "line noise, then a flush delimiter, then a frame", \
        noise + b"\x00" + encode_serial(a)
    noise2 = bytes(rng.randint(0, 255) for _ in range(40))
    yield "serial_noise_between", "noise with zero bytes between two frames", \
        encode_serial(a) + noise2 + b"\x00" + encode_serial(b)
    # Flip a bit that COBS does not notice (not a code byte), so the frame layer sees bad_crc.
    damaged = bytearray(encode_serial(b))
    for pos in range(20, len(damaged) - 1):
        trial = bytearray(damaged)
        trial[pos] ^= 0x10
        bodies = SerialDeframer().feed(bytes(trial))
        if len(bodies) == 1 and _decode_json(bodies[0], KEY) == {"error": "bad_crc"}:
            damaged = trial
            break
    yield "serial_damaged_middle_frame", "the middle frame damaged: only it is lost", \
        encode_serial(a) + bytes(damaged) + encode_serial(c)
    yield "serial_overrun", "2200 bytes with no delimiter, then a good frame", \
        bytes(rng.randint(1, 255) for _ in range(2200)) + b"\x00" + encode_serial(c)
    zeros = _frame("RECORDS", {"first_rseq": 9, "base_time": 0, "records": [
        _rec(dt=0, lat=0, lon=0, speed=0, course=0, quality=0, sats=0, hdop=0, cable=False, housing=False,
             battery=0)] * 20}, seq=3)
    yield "serial_many_zero_bytes", "a frame full of zero bytes (COBS stuffing)", encode_serial(zeros)
    big = _frame("RECORDS", {"first_rseq": 1, "base_time": T0, "records": [
        _rec(dt=i + 1, lat=10000000 + i, lon=20000000 + i, speed=257, course=7, sats=9, hdop=11,
             battery=100) for i in range(120)]}, seq=4)
    yield "serial_long_nonzero_run", "the biggest batch: COBS blocks of 254", encode_serial(big)


def _decode_json(data: bytes, key: bytes | None):
    try:
        return {"frame": decode_frame(data, key).to_json()}
    except DecodeError as exc:
        return {"error": exc.code}


def build_all() -> dict[str, dict]:
    vectors: dict[str, dict] = {}
    for name, desc, data in valid_frames():
        key = test_key(0xFFFFFFFF) if name == "header_max_values" else KEY
        result = _decode_json(data, key)
        if "error" in result:
            raise RuntimeError(f"valid vector {name} does not decode: {result}")
        vectors[name] = {"name": name, "description": desc, "kind": "frame", "key": key.hex(),
                         "hex": data.hex(), **result}
    for name, desc, data, expected in invalid_frames():
        result = _decode_json(data, KEY)
        if result.get("error") != expected:
            raise RuntimeError(f"invalid vector {name}: expected {expected}, got {result}")
        vectors[name] = {"name": name, "description": desc, "kind": "frame", "key": KEY.hex(),
                         "hex": data.hex(), "error": expected}
    for name, desc, stream in serial_streams():
        deframer = SerialDeframer()
        results = []
        for kind, item in deframer.feed_items(stream):
            results.append(_decode_json(item, KEY) if kind == "body" else {"error": item})
        vectors[name] = {"name": name, "description": desc, "kind": "serial", "key": KEY.hex(),
                         "stream_hex": stream.hex(), "results": results}
    return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navseal.protocol.make_vectors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; fail on any difference")
    parser.add_argument("--force", action="store_true", help="overwrite vectors whose bytes changed")
    args = parser.parse_args(argv)
    VECTOR_DIR.mkdir(exist_ok=True)
    vectors = build_all()
    changed, written = [], 0
    for name, vec in vectors.items():
        path = VECTOR_DIR / f"{name}.json"
        text = json.dumps(vec, indent=1, ensure_ascii=False) + "\n"
        if path.exists():
            if path.read_text(encoding="utf-8") == text:
                continue
            changed.append(name)
            if args.check or not args.force:
                continue
        elif args.check:
            changed.append(name)
            continue
        path.write_text(text, encoding="utf-8")
        written += 1
    stale = sorted(p.stem for p in VECTOR_DIR.glob("*.json") if p.stem not in vectors)
    print(f"{len(vectors)} vectors, {written} written, {len(changed)} differing, {len(stale)} stale")
    if changed and not args.force:
        print("differing (a protocol change; --force to accept): " + ", ".join(changed), file=sys.stderr)
        return 1
    if stale:
        print("stale vector files: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
