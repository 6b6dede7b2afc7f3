"""Definition-level checks: CRC choice, sizes promised by docs/protocol.md, fast path derivation."""

import zlib

import pytest

from navseal.protocol import EncodeError, encode_frame, test_key
from navseal.protocol import fastpath, schema


def test_crc_is_crc32_iso_hdlc_like_zlib_and_binascii():
    assert schema.crc32(b"123456789") == 0xCBF43926
    assert schema.crc32(b"navseal") == zlib.crc32(b"navseal")


def test_record_is_16_bytes_and_header_23():
    assert schema.PositionRecord.sizeof() == 16
    assert fastpath.struct_format(schema.PositionRecord) == ">HllHBBBB"
    assert schema.VERSION == 2
    assert schema.HEADER_SIZE == 23 == schema.Header.sizeof() + 2
    assert schema.MIN_FRAME == 35 and schema.MAX_FRAME == 2083


def test_version_2_sizes_promised_by_the_decision():
    """docs/decisions/0001: u32 boot everywhere, a 55-byte Evidence, STATE 83 and COMMAND_RESULT 70."""
    from construct import Struct

    assert schema.EVIDENCE_SIZE == schema.Evidence.sizeof() == 55
    assert Struct(*schema.SealState.subcons[:-1]).sizeof() == 83  # without Terminated
    assert Struct(*schema.CommandResult.subcons[:-1]).sizeof() == 70
    assert schema.Ack.subcons[0].subcon.sizeof() == 4 == schema.CommandResult.subcons[0].subcon.sizeof()
    assert fastpath.struct_format(schema.Evidence) == ">LBLLLHLBHLLHLLHLBHH"
    assert schema.COMMAND_RESULTS["JOURNAL_PENDING"] == 7 and schema.EVENT_CODES["GNSS_ANOMALY"] == 13


def test_cobs_bound_follows_max_frame():
    from navseal.protocol.serial import MAX_ENCODED

    assert MAX_ENCODED == 2083 + 2083 // 254 + 1 == 2092


@pytest.mark.parametrize("route", [
    [[0, 17_990_000], [0, 18_010_000]],  # eastwards across the antimeridian: beyond +180
    [[0, -17_990_000], [0, -18_010_000]],  # westwards: beyond -180
    [[6_500_000, 17_900_000], [6_600_000, 18_100_000], [6_550_000, 18_200_000]],
])
def test_densify_keeps_continuous_longitudes_across_the_antimeridian(route):
    """Routes over 180 degrees carry continuous longitudes (docs/protocol.md, ACTIVATE): densify_route
    splits them into i16 deltas without wrapping, and they round-trip unchanged."""
    dense = schema.densify_route(route)
    assert dense[0] == route[0] and dense[-1] == route[-1] and all(p in dense for p in route)
    for (lat0, lon0), (lat1, lon1) in zip(dense, dense[1:]):
        assert abs(lat1 - lat0) <= 32767 and abs(lon1 - lon0) <= 32767
    payload = {"escort_id": 1, "seal_number": 1, "declaration": "D", "vehicle": "V", "dest_office_code": "",
               "dest_office_name": "", "period_start": 0, "period_end": 1, "corridor_m": 500, "route": dense}
    raw = encode_frame("ACTIVATE", seal_id=1, boot=0, seq=1, time=0, key=test_key(1), payload=payload)
    from navseal.protocol import decode_frame

    assert decode_frame(raw, test_key(1)).payload["route"] == dense


def test_biggest_activate_fits():
    from navseal.protocol.make_vectors import _route

    raw = encode_frame("ACTIVATE", seal_id=1, boot=0, seq=1, time=0, key=test_key(1), payload={
        "escort_id": 1, "seal_number": 1, "declaration": "9" * 40, "vehicle": "V" * 16,
        "dest_office_code": "C" * 16, "dest_office_name": "N" * 64, "period_start": 0, "period_end": 0,
        "corridor_m": 1, "route": _route(400)})
    assert len(raw) - schema.MIN_FRAME == 1764 <= schema.MAX_PAYLOAD


@pytest.mark.parametrize("payload, why", [
    ({"first_rseq": 1, "base_time": 0, "records": [{}] * 121}, "count"),
    ({"first_rseq": -1, "base_time": 0, "records": []}, "negative"),
])
def test_encoder_refuses_out_of_range(payload, why):
    with pytest.raises(EncodeError):
        encode_frame("RECORDS", seal_id=1, boot=0, seq=0, time=0, key=test_key(1), payload=payload)


def test_encoder_refuses_too_long_string_and_undensified_route():
    base = {"escort_id": 1, "seal_number": 1, "declaration": "x" * 41, "vehicle": "", "dest_office_code": "",
            "dest_office_name": "", "period_start": 0, "period_end": 0, "corridor_m": 0, "route": []}
    with pytest.raises(EncodeError):
        encode_frame("ACTIVATE", seal_id=1, boot=0, seq=0, time=0, key=test_key(1), payload=base)
    base.update(declaration="ok", route=[[0, 0], [40000, 0]])
    with pytest.raises(EncodeError, match="densify"):
        encode_frame("ACTIVATE", seal_id=1, boot=0, seq=0, time=0, key=test_key(1), payload=base)
    base["route"] = schema.densify_route(base["route"])
    assert base["route"] == [[0, 0], [20000, 0], [40000, 0]]
    encode_frame("ACTIVATE", seal_id=1, boot=0, seq=0, time=0, key=test_key(1), payload=base)


def test_fast_path_follows_the_definition():
    """The generated decoder is read off the construct Struct: a changed definition changes it."""
    from construct import Int8ub, Int16ub, Struct

    probe = Struct("a" / Int16ub, "b" / schema.Position, "c" / schema.Status, "d" / Int8ub)
    st, decode = fastpath.generate_tuple_decoder(probe)
    raw = probe.build({"a": 7, "b": None, "c": {"cable_intact": True, "housing_closed": False,
                                                 "battery_pct": None}, "d": 9})
    assert decode(st.unpack(raw)) == {"a": 7, "b": None, "c": {"cable_intact": True, "housing_closed": False,
                                                                 "battery_pct": None}, "d": 9}
