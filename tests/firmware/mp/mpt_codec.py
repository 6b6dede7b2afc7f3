# Firmware codec against docs/protocol.md, by hand-computed bytes and by every golden vector.
# Runs under CPython (pytest, in process) and under the real MicroPython interpreter.
import json
import os
import struct
from binascii import hexlify, unhexlify

import mpunit
from mpunit import raises
from navseal_fw import codec as C
from navseal_fw.cobs import Deframer

# ---- hand-computed checks of the primitives and the header ----------------------------------

KEY = bytes(range(32))


def test_crc_is_crc32_iso_hdlc():
    assert C.crc(b"123456789") == 0xCBF43926
    assert C._crc32_py(b"123456789") == 0xCBF43926  # the fallback agrees


def test_hmac_matches_rfc4231_case_2():
    c = C.Codec(1, b"Jefe")
    assert hexlify(c.mac8(b"what do ya want for nothing?")) == b"5bdcc146bf60754e"


def test_hmac_long_key_rfc4231_case_6():
    c = C.Codec(1, b"\xaa" * 131)
    mac = c.mac8(b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert hexlify(mac) == b"60e431591ee0b67f"


def test_time_frame_byte_layout():
    c = C.Codec(0x01020304, KEY)
    f = c.encode(C.TIME, 0x05060708, 0x090A0B0C, 0x0D0E0F10, (0x11223344,), C.FLAG_RETRANSMIT)
    assert len(f) == 35 + 4
    assert f[0:23] == (b"NS\x02\x85\x01\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
                       b"\x0d\x0e\x0f\x10\x00\x04")
    assert f[23:27] == b"\x11\x22\x33\x44"
    assert f[27:35] == c.mac8(f[0:27])
    assert struct.unpack(">I", f[35:39])[0] == C.crc(f[0:35])


# One evidence block with a distinct value in every field (docs/protocol.md, "Evidence").
EVIDENCE = (77, C.EVF_OPENING_NOW | C.EVF_GNSS_LOST_NOW, 1000, 1433, 12, 2, 1764108000,
            C.EVI_CABLE | C.EVI_HOUSING, 3, 1764100800, 4870, 4, 11400, 1764097200, 5, 1764095200,
            C.EVK_TIME_BACKWARDS | C.EVK_INVALID_DATE, 2, 1)


def _evidence_bytes(fields=EVIDENCE):
    buf = bytearray(C.EVIDENCE_SIZE)
    struct.pack_into(C.EVIDENCE_FMT, buf, 0, *fields)
    return buf


def test_evidence_block_layout():
    assert struct.calcsize(C.EVIDENCE_FMT) == C.EVIDENCE_SIZE == 55
    b = _evidence_bytes()
    assert b[0:4] == b"\x00\x00\x00\x4d" and b[4] == 0x0A  # escort 77; opening_now, gnss_lost_now
    assert b[23] == 0x03 and b[50] == 0x05 and b[53:55] == b"\x00\x01"


def test_uplink_builders_give_the_documented_sizes():
    c = C.Codec(1001, KEY)
    ev = _evidence_bytes()
    assert len(c.hello(1, 0, 5, 1, 2, 3, C.RESET_WATCHDOG, 7, 9)) == 35 + 12
    assert len(c.event(1, 1, 5, 42, 4, C.EV_CABLE_CUT, 1, 2, 0x80 | 42, 0)) == 35 + 22
    f = c.state(70000, 2, 5, C.ACTIVE, 7, C.AL_GNSS_ANOMALY, 100, 0, 10, 0, C.NO_POS, C.NO_POS, 0xC0, ev)
    assert len(f) == 35 + 83 and f[-12 - 55:-12] == ev
    d = c.decode(f)
    assert d.boot == 70000
    assert C.parse_payload(d.type, d.payload) == (C.ACTIVE, 7, C.AL_GNSS_ANOMALY, 100, 0, 10, 0, C.NO_POS,
                                                  C.NO_POS, 0xC0, EVIDENCE)
    f = c.command_result(1, 3, 5, 0xFFFFFFFF, 9, C.DEACTIVATE, C.RES_JOURNAL_PENDING, C.ACTIVE, 7,
                         memoryview(ev))
    assert len(f) == 35 + 70 and f[-12 - 55:-12] == ev
    d = c.decode(f)
    assert C.parse_payload(d.type, d.payload) == (0xFFFFFFFF, 9, C.DEACTIVATE, C.RES_JOURNAL_PENDING,
                                                  C.ACTIVE, 7, EVIDENCE)
    raises("bad_payload", c.state, 1, 2, 5, C.ACTIVE, 7, 0, 100, 0, 10, 0, C.NO_POS, C.NO_POS, 0xC0, ev[:54])
    recs = bytearray(16 * 2)
    C.pack_record(recs, 0, 0, 1, 2, 3, 4, 5, 6, 7)
    C.pack_record(recs, 16, 30, -1, -2, 3, 4, 5, 6, 7)
    f = c.records(1, 4, 5, 100, 1000, 2, recs, C.FLAG_MORE)
    assert len(f) == 35 + 9 + 32 and f[4] == C.FLAG_MORE
    d = c.decode(f)
    first, base, count, body = C.parse_records(d.payload)
    assert (first, base, count) == (100, 1000, 2)
    assert C.record(body, 1) == (30, -1, -2, 3, 4, 5, 6, 7)


def _frame(typ=C.TIME, payload=b"\x00\x00\x00\x01", flags=0, version=2, key=KEY):
    body = b"NS" + struct.pack(">BBBIIIIH", version, typ, flags, 1001, 0, 1, 2, len(payload)) + payload
    mac = C.Codec(1001, key).mac8(body)
    return body + mac + struct.pack(">I", C.crc(body + mac))


def _reframe(raw):
    # recompute the CRC over raw[:-4] (to get past the CRC check on purpose)
    return raw[:-4] + struct.pack(">I", C.crc(raw[:-4]))


def test_decoding_order_of_docs_protocol():
    c = C.Codec(1001, KEY)
    good = _frame()
    assert c.decode(good).type == C.TIME
    raises("truncated", c.decode, good[:34])
    raises("truncated", c.decode, b"")
    raises("bad_magic", c.decode, b"XS" + good[2:])
    # magic is checked before version, version before length
    raises("bad_magic", c.decode, b"XS\x03" + good[3:])
    raises("unsupported_version", c.decode, good[:2] + b"\x01" + good[3:])
    raises("unsupported_version", c.decode, _frame(version=1))
    big = good[:21] + b"\x08\x01" + good[23:]  # length 2049, frame far too short
    raises("oversize", c.decode, big)
    raises("truncated", c.decode, good[:21] + b"\x00\x05" + good[23:])
    raises("trailing_bytes", c.decode, good + b"\x00")
    raises("bad_crc", c.decode, good[:-1] + bytes([good[-1] ^ 1]))
    raises("unknown_type", c.decode, _frame(typ=0x86))
    raises("unknown_type", c.decode, _frame(typ=0x00, flags=0x80))  # type before flags
    raises("bad_flags", c.decode, _frame(flags=0x04))
    raises("bad_mac", c.decode, _frame(key=b"\x01" * 32))
    assert c.decode(_frame(key=b"\x01" * 32), False).type == C.TIME  # MAC check skipped
    keyless = C.Codec(1001, b"")  # a seal without a key accepts nothing, signs nothing
    raises("bad_mac", keyless.decode, good)
    assert keyless.decode(good, False).type == C.TIME
    raises("no_key", keyless.encode, C.TIME, 0, 1, 2, (3,))
    raises("bad_mac", c.decode, _reframe(good[:27] + bytes([good[27] ^ 1]) + good[28:]))
    f = c.decode(_frame(typ=C.TIME, payload=b"\x00\x00\x01"))
    raises("bad_payload", C.parse_payload, f.type, f.payload)


def test_bad_payloads():
    c = C.Codec(1001, KEY)

    def payload_error(typ, payload):
        f = c.decode(_frame(typ=typ, payload=payload))
        raises("bad_payload", C.parse_payload, f.type, f.payload)

    payload_error(C.EVENT, struct.pack(">IIBiiBI", 1, 2, 14, 0, 0, 0, 0))  # code 14
    payload_error(C.EVENT, struct.pack(">IIBiiBI", 1, 2, 0, 0, 0, 0, 0))  # code 0
    payload_error(C.HELLO, struct.pack(">BBBBII", 1, 2, 3, 5, 0, 0))  # reset cause 5
    ev = bytes(_evidence_bytes())
    state = struct.pack(">BIBBIIIiiB", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    cmdres = struct.pack(">IIBBBI", 0, 0, 0x83, 0, 0, 0)
    c.decode(_frame(typ=C.STATE, payload=state + ev))  # the base cases are valid
    assert C.parse_payload(C.STATE, state + ev)[10] == EVIDENCE
    assert C.parse_payload(C.COMMAND_RESULT, cmdres + ev)[6] == EVIDENCE
    payload_error(C.STATE, struct.pack(">BIBBIIIiiB", 2, 0, 0, 0, 0, 0, 0, 0, 0, 0) + ev)
    payload_error(C.STATE, struct.pack(">BIBBIIIiiB", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01) + ev)
    payload_error(C.STATE, struct.pack(">BIBBIIIiiB", 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0) + ev)
    payload_error(C.STATE, state + ev[:54])  # one byte short
    payload_error(C.STATE, state + ev + b"\x00")  # one byte long
    payload_error(C.STATE, state)  # a version 1 STATE: no evidence
    for at, bit in ((4, 0x10), (4, 0x80), (23, 0x04), (23, 0x80), (50, 0x10), (50, 0x80)):
        bad = bytearray(ev)
        bad[at] |= bit
        payload_error(C.STATE, state + bad)
        payload_error(C.COMMAND_RESULT, cmdres + bad)
    payload_error(C.COMMAND_RESULT, struct.pack(">IIBBBI", 0, 0, 0x86, 0, 0, 0) + ev)
    payload_error(C.COMMAND_RESULT, struct.pack(">IIBBBI", 0, 0, 0x82, 8, 0, 0) + ev)
    payload_error(C.COMMAND_RESULT, cmdres + ev[:54])
    payload_error(C.RECORDS, struct.pack(">IIB", 1, 2, 121) + bytes(16 * 121))
    payload_error(C.RECORDS, struct.pack(">IIB", 1, 2, 2) + bytes(16))
    payload_error(C.DEACTIVATE, struct.pack(">II", 1, 2) + b"\x02\xc3\x28\x01A")  # bad UTF-8
    payload_error(C.DEACTIVATE, struct.pack(">II", 1, 2) + b"\x29" + b"A" * 41 + b"\x01A")
    payload_error(C.DEACTIVATE, struct.pack(">II", 1, 2) + b"\x01A\x01A\x00")  # extra byte
    payload_error(C.ACTIVATE, struct.pack(">II", 1, 2) + b"\x00" * 4 + struct.pack(">IIHH", 0, 0, 0, 401)
                  + bytes(8 + 4 * 400))


def test_activate_round_trip_with_route_deltas():
    c = C.Codec(1001, KEY)
    pts = ((4325700, 7694500), (4330450, 7712300), (4330450 - 32768, 7712300 + 32767))
    route = b"".join(struct.pack(">ii", a, b) for a, b in pts)
    fields = (77, 1001, "50508/261126/0001234", "123ABC02", "50513", "Хоргос", 1, 2, 2000, route)
    f = c.encode(C.ACTIVATE, 0, 3, 9, fields)
    d = c.decode(f)
    assert d.length == 8 + 21 + 9 + 6 + 1 + len("Хоргос".encode()) + 12 + 8 + 8
    assert C.parse_payload(d.type, d.payload) == fields
    too_far = route + struct.pack(">ii", 4330450 - 32768 - 32769, 0)
    raises("bad_payload", c.encode, C.ACTIVATE, 0, 3, 9, fields[:9] + (too_far,))
    raises("bad_payload", c.encode, C.ACTIVATE, 0, 3, 9, (1, 2, "D" * 41) + fields[3:])


def test_utf8_validation_matches_cpython_strictness():
    good = ("a", "é", "Хоргос", "€", "\U0001F600")
    for s in good:
        b = s.encode("utf-8")
        assert C.utf8_valid(b, 0, len(b)), s
    bad = (b"\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
           b"\xf5\x80\x80\x80", b"\xe2\x82", b"\xff")
    for b in bad:
        assert not C.utf8_valid(b, 0, len(b)), b


# ---- golden vectors -----------------------------------------------------------------------

RESET = {0: "POWER_ON", 1: "WATCHDOG", 2: "SOFT", 3: "BROWNOUT", 4: "DEEPSLEEP", 255: "UNKNOWN"}
EVENTS = ("", "CABLE_CUT", "HOUSING_OPENED", "LOCK_RESTORED", "GNSS_LOST", "GNSS_REGAINED",
          "GNSS_JUMP", "LOW_BATTERY", "JOURNAL_OVERFLOW", "REBOOT", "COMMAND_REJECTED",
          "ROUTE_DEVIATION", "ROUTE_RETURNED", "GNSS_ANOMALY")
STATES = ("INACTIVE", "ACTIVE")
RESULTS = ("OK", "LOCK_OPEN", "WRONG_STATE", "MISMATCH", "BAD_PARAMS", "REPLAYED", "UNSUPPORTED",
           "JOURNAL_PENDING")
ALARMS = ("CABLE_CUT", "HOUSING_OPENED", "GNSS_LOST", "LOW_BATTERY", "JOURNAL_OVERFLOW",
          "ROUTE_DEVIATION", "GNSS_ANOMALY")
# Evidence: field names in tuple order; the bit-field bytes' bits, bit 0 first.
EVIDENCE_FIELDS = ("escort_id", "flags", "start_rseq", "hw_rseq", "thinned", "openings",
                   "opening_first", "opening_inputs", "deviations", "deviation_first",
                   "deviation_max_m", "gnss_losses", "gnss_longest_s", "gnss_longest_at",
                   "anomalies", "anomaly_first", "anomaly_kinds", "reboots", "power_losses")
EVIDENCE_BITS = {"flags": ("closed", "opening_now", "deviating_now", "gnss_lost_now"),
                 "opening_inputs": ("cable", "housing"),
                 "anomaly_kinds": ("time_backwards", "impossible_speed", "invalid_date", "time_forward")}


def _pos(v):
    return None if v == C.NO_POS else v


def _unpos(v):
    return C.NO_POS if v is None else v


def _status(s):
    b = s & 63
    return {"cable_intact": bool(s & 0x80), "housing_closed": bool(s & 0x40),
            "battery_pct": None if b == 63 else 2 * b}


def _unstatus(d):
    b = 63 if d["battery_pct"] is None else d["battery_pct"] // 2
    return (0x80 if d["cable_intact"] else 0) | (0x40 if d["housing_closed"] else 0) | b


def _bits(names, value):
    out = {}
    for i in range(len(names)):
        out[names[i]] = bool(value & (1 << i))
    return out


def _unbits(names, d):
    value = 0
    for i in range(len(names)):
        if d[names[i]]:
            value |= 1 << i
    return value


def evidence_json(v):
    out = {}
    for i in range(len(EVIDENCE_FIELDS)):
        name = EVIDENCE_FIELDS[i]
        out[name] = _bits(EVIDENCE_BITS[name], v[i]) if name in EVIDENCE_BITS else v[i]
    return out


def evidence_from_json(d):
    out = []
    for name in EVIDENCE_FIELDS:
        out.append(_unbits(EVIDENCE_BITS[name], d[name]) if name in EVIDENCE_BITS else d[name])
    return tuple(out)


def _index(names, name):
    for i in range(len(names)):
        if names[i] == name:
            return i
    raise AssertionError("unknown name " + name)


def payload_json(typ, v):
    """The JSON form (docs/protocol.md) of a payload tuple from codec.parse_payload."""
    if typ == C.HELLO:
        return {"fw_major": v[0], "fw_minor": v[1], "fw_patch": v[2], "reset_cause": RESET[v[3]],
                "config_hash": v[4], "journal_pending": v[5]}
    if typ == C.RECORDS:
        recs = []
        for i in range(v[2]):
            r = C.record(v[3], i)
            recs.append({"dt": r[0], "lat": _pos(r[1]), "lon": _pos(r[2]), "speed": r[3],
                         "course": r[4], "fix": {"quality": r[5] >> 6, "satellites": r[5] & 63},
                         "hdop": r[6], "status": _status(r[7])})
        return {"first_rseq": v[0], "base_time": v[1], "count": v[2], "records": recs}
    if typ == C.EVENT:
        return {"rseq": v[0], "time": v[1], "code": EVENTS[v[2]], "lat": _pos(v[3]),
                "lon": _pos(v[4]), "status": _status(v[5]), "value": v[6]}
    if typ == C.STATE:
        return {"state": STATES[v[0]], "escort_id": v[1], "alarms": _bits(ALARMS, v[2]),
                "battery_pct": v[3], "journal_pending": v[4], "journal_capacity": v[5],
                "fix_time": v[6], "lat": _pos(v[7]), "lon": _pos(v[8]),
                "lock": {"cable_intact": bool(v[9] & 0x80), "housing_closed": bool(v[9] & 0x40)},
                "evidence": evidence_json(v[10])}
    if typ == C.COMMAND_RESULT:
        return {"cmd_boot": v[0], "cmd_seq": v[1], "cmd_type": C.type_name(v[2]),
                "result": RESULTS[v[3]], "state": STATES[v[4]], "escort_id": v[5],
                "evidence": evidence_json(v[6])}
    if typ == C.ACK:
        return {"acked_boot": v[0], "acked_seq": v[1], "committed_rseq": v[2]}
    if typ == C.ACTIVATE:
        route = []
        for i in range(len(v[9]) // 8):
            lat, lon = struct.unpack_from(">ii", v[9], 8 * i)
            route.append([lat, lon])
        return {"escort_id": v[0], "seal_number": v[1], "declaration": v[2], "vehicle": v[3],
                "dest_office_code": v[4], "dest_office_name": v[5], "period_start": v[6],
                "period_end": v[7], "corridor_m": v[8], "route": route}
    if typ == C.DEACTIVATE:
        return {"escort_id": v[0], "seal_number": v[1], "declaration": v[2], "vehicle": v[3]}
    if typ == C.CONFIG:
        names = ("report_moving_s", "report_stopped_s", "report_inactive_s", "heartbeat_s",
                 "batch_max", "gnss_lost_s", "low_battery_pct", "jump_speed_kmh", "ack_timeout_s")
        out = {}
        for i in range(9):
            out[names[i]] = v[i]
        return out
    if typ == C.TIME:
        return {"unix_time": v[0]}
    raise AssertionError("type %d" % typ)


def fields_from_json(typ, p):
    """The reverse: a payload tuple from its JSON form (to build frames from vector meaning)."""
    if typ == C.HELLO:
        return (p["fw_major"], p["fw_minor"], p["fw_patch"], _index_dict(RESET, p["reset_cause"]),
                p["config_hash"], p["journal_pending"])
    if typ == C.RECORDS:
        recs = bytearray(16 * len(p["records"]))
        for i in range(len(p["records"])):
            r = p["records"][i]
            C.pack_record(recs, 16 * i, r["dt"], _unpos(r["lat"]), _unpos(r["lon"]), r["speed"],
                          r["course"], (r["fix"]["quality"] << 6) | r["fix"]["satellites"],
                          r["hdop"], _unstatus(r["status"]))
        return (p["first_rseq"], p["base_time"], len(p["records"]), recs)
    if typ == C.EVENT:
        return (p["rseq"], p["time"], _index(EVENTS, p["code"]), _unpos(p["lat"]), _unpos(p["lon"]),
                _unstatus(p["status"]), p["value"])
    if typ == C.STATE:
        lock = (0x80 if p["lock"]["cable_intact"] else 0) | (0x40 if p["lock"]["housing_closed"] else 0)
        return (_index(STATES, p["state"]), p["escort_id"], _unbits(ALARMS, p["alarms"]), p["battery_pct"],
                p["journal_pending"], p["journal_capacity"], p["fix_time"], _unpos(p["lat"]),
                _unpos(p["lon"]), lock, evidence_from_json(p["evidence"]))
    if typ == C.COMMAND_RESULT:
        return (p["cmd_boot"], p["cmd_seq"], C.type_code(p["cmd_type"]), _index(RESULTS, p["result"]),
                _index(STATES, p["state"]), p["escort_id"], evidence_from_json(p["evidence"]))
    if typ == C.ACK:
        return (p["acked_boot"], p["acked_seq"], p["committed_rseq"])
    if typ == C.ACTIVATE:
        route = b"".join([struct.pack(">ii", pt[0], pt[1]) for pt in p["route"]])
        return (p["escort_id"], p["seal_number"], p["declaration"], p["vehicle"], p["dest_office_code"],
                p["dest_office_name"], p["period_start"], p["period_end"], p["corridor_m"], route)
    if typ == C.DEACTIVATE:
        return (p["escort_id"], p["seal_number"], p["declaration"], p["vehicle"])
    if typ == C.CONFIG:
        return (p["report_moving_s"], p["report_stopped_s"], p["report_inactive_s"], p["heartbeat_s"],
                p["batch_max"], p["gnss_lost_s"], p["low_battery_pct"], p["jump_speed_kmh"],
                p["ack_timeout_s"])
    if typ == C.TIME:
        return (p["unix_time"],)
    raise AssertionError("type %d" % typ)


def _index_dict(d, name):
    for k in d:
        if d[k] == name:
            return k
    raise AssertionError("unknown name " + name)


def frame_json(codec, data):
    """Decode data fully; the vector JSON form of the frame. Raises CodecError."""
    f = codec.decode(data)
    fields = C.parse_payload(f.type, f.payload)
    return {"version": f.version, "type": C.type_name(f.type), "flags": f.flags,
            "seal_id": f.seal_id, "boot": f.boot, "seq": f.seq, "time": f.time,
            "length": f.length, "payload": payload_json(f.type, fields),
            "mac": hexlify(bytes(f.mac)).decode(), "crc": "%08x" % f.crc, "mac_ok": True}, fields


def _load_vectors():
    names = [n for n in os.listdir(mpunit.VECTORS) if n.endswith(".json")]
    names.sort()
    out = []
    for n in names:
        with open(mpunit.VECTORS + "/" + n) as fh:
            out.append(json.load(fh))
    return out


def _outcome(codec, data):
    try:
        js, _ = frame_json(codec, data)
        return {"frame": js}
    except C.CodecError as exc:
        return {"error": exc.code}


def _check_frame_vector(v):
    key = unhexlify(v["key"])
    data = unhexlify(v["hex"])
    seal = v["frame"]["seal_id"] if "frame" in v else 1001
    codec = C.Codec(seal, key)
    got = _outcome(codec, data)
    if "error" in v:
        assert got == {"error": v["error"]}, (v["name"], got)
        return
    want = v["frame"]
    assert got == {"frame": want}, (v["name"], got, want)
    f = codec.decode(data)
    typ, flags, boot, seq, tm = f.type, f.flags, f.boot, f.seq, f.time
    fields = C.parse_payload(typ, f.payload)
    # the decoded message re-encodes to the same bytes...
    assert codec.encode(typ, boot, seq, tm, fields, flags) == data, v["name"]
    # ...and so does the vector's JSON meaning, built without the decoder
    built = codec.encode(typ, boot, seq, tm, fields_from_json(typ, want["payload"]), flags)
    assert built == data, v["name"]


def _check_serial_vector(v):
    key = unhexlify(v["key"])
    results = []
    codecs = {}

    def on_body(body):
        seal = struct.unpack_from(">I", body, 5)[0] if len(body) >= 9 else 0
        if seal not in codecs:
            codecs[seal] = C.Codec(seal, key)
        results.append(_outcome(codecs[seal], bytes(body)))

    def on_error(code):
        results.append({"error": code})

    d = Deframer(on_body, on_error)
    d.feed(unhexlify(v["stream_hex"]))
    assert results == v["results"], (v["name"], results, v["results"])


def test_every_golden_vector():
    vectors = _load_vectors()
    assert len(vectors) >= 60, "expected the lead's full vector set, found %d" % len(vectors)
    kinds = {"frame": 0, "serial": 0}
    for v in vectors:
        kinds[v["kind"]] += 1
        if v["kind"] == "frame":
            _check_frame_vector(v)
        else:
            _check_serial_vector(v)
    assert kinds["frame"] and kinds["serial"], kinds
    print("vectors checked:", kinds)


def test_every_error_code_has_a_vector():
    seen = {}
    for v in _load_vectors():
        if "error" in v:
            seen[v["error"]] = 1
    for code in ("truncated", "bad_magic", "unsupported_version", "oversize", "trailing_bytes",
                 "bad_crc", "unknown_type", "bad_flags", "bad_mac", "bad_payload"):
        assert code in seen, code
