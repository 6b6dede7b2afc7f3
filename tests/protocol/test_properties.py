"""Property tests: build(parse(x)) == x for every message, and no input escapes DecodeError."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navseal.protocol import (
    MAX_RECORDS_PER_BATCH,
    DecodeError,
    SerialDeframer,
    decode_frame,
    encode_frame,
    test_key,
)
from navseal.protocol.schema import EVENT_CODES, RESET_CAUSES, SEAL_STATES, COMMAND_RESULTS, MSG_TYPES

KEY = test_key(7)
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
pos = st.one_of(st.none(), st.integers(-0x80000000, 0x7FFFFFFE))
battery = st.one_of(st.none(), st.integers(0, 62).map(lambda v: v * 2))
status = st.fixed_dictionaries({"cable_intact": st.booleans(), "housing_closed": st.booleans(),
                                "battery_pct": battery})
record = st.fixed_dictionaries({
    "dt": u16, "lat": pos, "lon": pos, "speed": u16, "course": u8,
    "fix": st.fixed_dictionaries({"quality": st.integers(0, 3), "satellites": st.integers(0, 63)}),
    "hdop": u8, "status": status})
text = lambda n: st.text(max_size=n // 4)  # noqa: E731  (4 bytes per char at most in UTF-8)
alarm_names = ("GNSS_ANOMALY", "ROUTE_DEVIATION", "JOURNAL_OVERFLOW", "LOW_BATTERY", "GNSS_LOST",
               "HOUSING_OPENED", "CABLE_CUT")
flags_of = lambda *names: st.fixed_dictionaries({n: st.booleans() for n in names})  # noqa: E731
evidence = st.fixed_dictionaries({
    "escort_id": u32, "flags": flags_of("closed", "opening_now", "deviating_now", "gnss_lost_now"),
    "start_rseq": u32, "hw_rseq": u32, "thinned": u32, "openings": u16, "opening_first": u32,
    "opening_inputs": flags_of("cable", "housing"), "deviations": u16, "deviation_first": u32,
    "deviation_max_m": u32, "gnss_losses": u16, "gnss_longest_s": u32, "gnss_longest_at": u32,
    "anomalies": u16, "anomaly_first": u32,
    "anomaly_kinds": flags_of("time_backwards", "impossible_speed", "invalid_date", "time_forward"),
    "reboots": u16, "power_losses": u16})
route = st.lists(st.tuples(st.integers(-32768, 32767), st.integers(-32768, 32767)), max_size=60).map(
    lambda deltas: [[1000 + sum(d[0] for d in deltas[:i]), 2000 + sum(d[1] for d in deltas[:i])]
                    for i in range(len(deltas))])

PAYLOADS = {
    "HELLO": st.fixed_dictionaries({"fw_major": u8, "fw_minor": u8, "fw_patch": u8,
                                    "reset_cause": st.sampled_from(sorted(RESET_CAUSES)),
                                    "config_hash": u32, "journal_pending": u32}),
    "RECORDS": st.fixed_dictionaries({"first_rseq": u32, "base_time": u32,
                                      "records": st.lists(record, max_size=MAX_RECORDS_PER_BATCH)}),
    "EVENT": st.fixed_dictionaries({"rseq": u32, "time": u32, "code": st.sampled_from(sorted(EVENT_CODES)),
                                    "lat": pos, "lon": pos, "status": status, "value": u32}),
    "STATE": st.fixed_dictionaries({
        "state": st.sampled_from(sorted(SEAL_STATES)), "escort_id": u32,
        "alarms": st.fixed_dictionaries({k: st.booleans() for k in alarm_names}), "battery_pct": u8,
        "journal_pending": u32, "journal_capacity": u32, "fix_time": u32, "lat": pos, "lon": pos,
        "lock": st.fixed_dictionaries({"cable_intact": st.booleans(), "housing_closed": st.booleans()}),
        "evidence": evidence}),
    "COMMAND_RESULT": st.fixed_dictionaries({
        "cmd_boot": u32, "cmd_seq": u32, "cmd_type": st.sampled_from(sorted(MSG_TYPES)),
        "result": st.sampled_from(sorted(COMMAND_RESULTS)), "state": st.sampled_from(sorted(SEAL_STATES)),
        "escort_id": u32, "evidence": evidence}),
    "ACK": st.fixed_dictionaries({"acked_boot": u32, "acked_seq": u32, "committed_rseq": u32}),
    "ACTIVATE": st.fixed_dictionaries({
        "escort_id": u32, "seal_number": u32, "declaration": text(40), "vehicle": text(16),
        "dest_office_code": text(16), "dest_office_name": text(64), "period_start": u32,
        "period_end": u32, "corridor_m": u16, "route": route}),
    "DEACTIVATE": st.fixed_dictionaries({"escort_id": u32, "seal_number": u32, "declaration": text(40),
                                         "vehicle": text(16)}),
    "CONFIG": st.fixed_dictionaries({k: u16 for k in (
        "report_moving_s", "report_stopped_s", "report_inactive_s", "heartbeat_s", "gnss_lost_s",
        "jump_speed_kmh", "ack_timeout_s")} | {"batch_max": u8, "low_battery_pct": u8}),
    "TIME": st.fixed_dictionaries({"unix_time": u32}),
}

messages = st.sampled_from(sorted(PAYLOADS)).flatmap(
    lambda t: st.tuples(st.just(t), PAYLOADS[t], u32, u32, u32, u32, st.integers(0, 3)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_build_parse_build_is_identity(msg):
    type_name, payload, seal, boot, seq, time, flags = msg
    raw = encode_frame(type_name, seal_id=seal, boot=boot, seq=seq, time=time, payload=payload,
                       key=KEY, flags=flags)
    for fast in (True, False):
        frame = decode_frame(raw, KEY, fast=fast)
        again = encode_frame(frame.type, seal_id=frame.seal_id, boot=frame.boot, seq=frame.seq,
                             time=frame.time, payload=frame.payload, key=KEY, flags=frame.flags)
        assert again == raw
    assert decode_frame(raw, KEY, fast=True).payload == decode_frame(raw, KEY, fast=False).payload


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_only_raise_decode_error(data):
    for fast in (True, False):
        try:
            decode_frame(data, KEY, fast=fast)
        except DecodeError:
            pass


VALID_HEX = [json.loads(p.read_text())["hex"] for p in
             sorted((Path(__file__).resolve().parents[2] / "protocol" / "vectors").glob("*.json"))
             if "frame" in json.loads(p.read_text())]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(VALID_HEX), st.data())
def test_mutated_valid_frames_only_raise_decode_error(hexstr, data):
    """Single-byte mutations of real frames (which keep most structure) never crash a decoder."""
    raw = bytearray(bytes.fromhex(hexstr))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(u8)
    for key in (KEY, None):
        for fast in (True, False):
            try:
                decode_frame(bytes(raw), key, fast=fast)
            except DecodeError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000))
def test_deframer_never_raises_and_bounds_its_buffer(data):
    deframer = SerialDeframer()
    deframer.feed(data)
    assert deframer.pending <= deframer.max_encoded


_EVIDENCE_VECTORS = [json.loads(p.read_text()) for p in
                     sorted((Path(__file__).resolve().parents[2] / "protocol" / "vectors").glob("*.json"))]
_EVIDENCE_VECTORS = [v for v in _EVIDENCE_VECTORS
                     if "frame" in v and v["frame"]["type"] in ("STATE", "COMMAND_RESULT")]
# Reserved bits of the Evidence block's three bit-field bytes (docs/protocol.md, "Evidence").
_EVIDENCE_RESERVED = {4: 0xF0, 23: 0xFC, 50: 0xF0}  # anomaly_kinds: bit 3 is time_forward


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_EVIDENCE_VECTORS), st.integers(0, 54), u8)
def test_any_evidence_byte_decodes_exactly_or_is_a_reserved_bit(vec, offset, value):
    """Every byte of the Evidence block of a real STATE / COMMAND_RESULT, set to any value (MAC and
    CRC fixed up): the frame decodes and rebuilds byte for byte, unless a reserved bit is set, which
    is bad_payload. Both parsers agree."""
    from navseal.protocol.make_vectors import H, _resign
    from navseal.protocol.schema import EVIDENCE_SIZE

    raw = bytearray(bytes.fromhex(vec["hex"]))
    at = len(raw) - 12 - EVIDENCE_SIZE + offset  # the block ends both payloads
    raw[at] = value
    raw = _resign(raw, bytes.fromhex(vec["key"]))
    assert raw[:H] == bytes.fromhex(vec["hex"])[:H]
    reserved = value & _EVIDENCE_RESERVED.get(offset, 0)
    for fast in (True, False):
        if reserved:
            try:
                decode_frame(raw, bytes.fromhex(vec["key"]), fast=fast)
            except DecodeError as exc:
                assert exc.code == "bad_payload"
            else:
                raise AssertionError("a reserved evidence bit was accepted")
            continue
        frame = decode_frame(raw, bytes.fromhex(vec["key"]), fast=fast)
        again = encode_frame(frame.type, seal_id=frame.seal_id, boot=frame.boot, seq=frame.seq,
                             time=frame.time, payload=frame.payload, key=bytes.fromhex(vec["key"]),
                             flags=frame.flags)
        assert again == raw
