"""Firmware codec against the host construct codec on frames neither has seen: hypothesis
mutates golden-vector frames and invents payloads, and both decoders must agree on every input
(same error code, or the same JSON form), and the firmware must re-encode what it accepts to
the same bytes. Also the property the issue asks for: random bytes into the downlink decoder
never raise anything but CodecError.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navseal.protocol import ERROR_CODES, DecodeError, SerialDeframer, decode_frame, encode_serial
from navseal.protocol.schema import HEADER_SIZE, MIN_FRAME, crc32, mac8
from navseal_fw import codec as C
from navseal_fw.cobs import Deframer, cobs_decode, cobs_encode, cobs_frame

MP_DIR = Path(__file__).resolve().parent / "mp"
sys.path.insert(0, str(MP_DIR))
import mpt_codec  # noqa: E402  (the JSON mapping shared with the MicroPython-side tests)

VECTORS = [json.loads(p.read_text()) for p in sorted((Path(__file__).resolve().parents[2]
                                                       / "protocol" / "vectors").glob("*.json"))]
FRAMES = [v for v in VECTORS if v["kind"] == "frame" and "frame" in v]
KEY = bytes.fromhex(FRAMES[0]["key"])
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def host_outcome(data: bytes, key: bytes) -> dict:
    try:
        return {"frame": decode_frame(data, key).to_json()}
    except DecodeError as exc:
        return {"error": exc.code}


def fw_outcome(data: bytes, key: bytes) -> dict:
    seal = struct.unpack_from(">I", data, 5)[0] if len(data) >= 9 else 0
    codec = C.Codec(seal, key)
    try:
        js, fields = mpt_codec.frame_json(codec, data)
    except C.CodecError as exc:
        return {"error": exc.code}
    f = codec.decode(data)
    assert codec.encode(f.type, f.boot, f.seq, f.time, fields, f.flags) == data
    return {"frame": js}


def seal(raw: bytes, key: bytes, resign: bool, recrc: bool) -> bytes:
    """Optionally fix the MAC and/or CRC of a mutated frame so it reaches the deeper checks."""
    raw = bytearray(raw)
    if len(raw) >= MIN_FRAME and resign:
        length = struct.unpack_from(">H", raw, HEADER_SIZE - 2)[0]
        end = HEADER_SIZE + length
        if end + 12 == len(raw):
            raw[end : end + 8] = mac8(key, bytes(raw[:end]))
    if len(raw) >= MIN_FRAME and recrc:
        raw[-4:] = struct.pack(">I", crc32(bytes(raw[:-4])))
    return bytes(raw)


@st.composite
def mutated_frames(draw):
    v = draw(st.sampled_from(FRAMES))
    raw = bytearray.fromhex(v["hex"])
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "flip", "cut", "grow", "length"]))
        if op == "set" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif op == "flip" and raw:
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del raw[draw(st.integers(0, len(raw))):]
        elif op == "grow":
            raw += draw(st.binary(min_size=1, max_size=8))
        elif op == "length" and len(raw) >= HEADER_SIZE:
            raw[HEADER_SIZE - 2 : HEADER_SIZE] = struct.pack(">H", draw(st.integers(0, 0xFFFF)))
    return seal(bytes(raw), KEY, draw(st.booleans()), draw(st.booleans()))


@given(mutated_frames())
@SETTINGS
def test_mutated_vector_frames_get_the_same_verdict(data):
    assert fw_outcome(data, KEY) == host_outcome(data, KEY)


@st.composite
def invented_payloads(draw):
    typ = draw(st.sampled_from(list(C.TYPE_CODES)))
    v = draw(st.sampled_from([v for v in FRAMES if v["frame"]["type"] == C.type_name(typ)]))
    payload = bytearray.fromhex(v["hex"])[HEADER_SIZE:-12]
    # keep most of a real payload (so decoding goes deep), then damage it a little
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "cut", "grow"]))
        if op == "set" and payload:
            payload[draw(st.integers(0, len(payload) - 1))] = draw(st.integers(0, 255))
        elif op == "cut" and payload:
            del payload[draw(st.integers(0, len(payload) - 1)):]
        elif op == "grow":
            payload += draw(st.binary(min_size=1, max_size=5))
    body = b"NS" + struct.pack(">BBBIIIIH", 2, typ, 0, 1001, 70003, 17, 5, len(payload)) + bytes(payload)
    return seal(body + bytes(12), KEY, True, True)


@given(invented_payloads())
@SETTINGS
def test_invented_payloads_get_the_same_verdict(data):
    assert fw_outcome(data, KEY) == host_outcome(data, KEY)


@given(st.binary(max_size=120))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_ever_raise_codec_error(data):
    codec = C.Codec(1001, KEY)
    for candidate in (data, seal(b"NS\x02\x82" + data, KEY, True, True)):
        try:
            f = codec.decode(candidate)
            C.parse_payload(f.type, f.payload)
        except C.CodecError as exc:
            assert exc.code in ERROR_CODES, exc.code


@given(st.lists(st.one_of(st.binary(max_size=600), st.sampled_from([b"\x00", b"\x00\x00", b"\xff" * 300])),
                max_size=8),
       st.integers(1, 64))
@settings(max_examples=300, deadline=None)
def test_cobs_deframer_agrees_with_the_host_on_any_stream(parts, chunk):
    stream = b"".join(parts)
    host = SerialDeframer()
    want = [item if kind == "error" else bytes(item) for kind, item in host.feed_items(stream)]
    got = []
    d = Deframer(lambda b: got.append(bytes(b)), got.append)
    for i in range(0, len(stream), chunk):
        d.feed(stream[i : i + chunk])
    assert got == want


@given(st.binary(max_size=2083))
@settings(max_examples=200, deadline=None)
def test_cobs_round_trip_matches_the_host(data):
    assert cobs_frame(data) == encode_serial(data)
    assert cobs_decode(cobs_encode(data)) == data
