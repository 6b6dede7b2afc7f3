"""Definition-level checks: CRC choice, sizes promised by docs/protocol.md, fast path derivation."""

import zlib

import pytest

from navseal.protocol import EncodeError, encode_frame, test_key
from navseal.protocol import fastpath, schema


def test_crc_is_crc32_iso_hdlc_like_zlib_and_binascii():
    assert schema.crc32(b"123456789") == 0xCBF43926
    assert schema.crc32(b"navseal") == zlib.crc32(b"navseal")


def test_record_is_16_bytes_and_header_21():
    assert schema.PositionRecord.sizeof() == 16
    assert fastpath.struct_format(schema.PositionRecord) == ">HllHBBBB"
    assert schema.HEADER_SIZE == 21 and schema.MAX_FRAME == 2081


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
