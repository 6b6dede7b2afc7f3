"""The golden vectors: the host codec reproduces every one, and the files match the definition."""

import json
from pathlib import Path

import pytest

from navseal.protocol import DecodeError, SerialDeframer, decode_frame, encode_frame
from navseal.protocol import make_vectors
from navseal.protocol.schema import Frame as FrameConstruct

VECTOR_DIR = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
VECTORS = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(VECTOR_DIR.glob("*.json"))]
FRAMES = [v for v in VECTORS if v["kind"] == "frame"]
VALID = [v for v in FRAMES if "frame" in v]
INVALID = [v for v in FRAMES if "error" in v]
SERIAL = [v for v in VECTORS if v["kind"] == "serial"]


def test_enough_vectors_of_every_kind():
    assert len(VECTORS) >= 40
    types = {v["frame"]["type"] for v in VALID}
    assert types == {"HELLO", "RECORDS", "EVENT", "STATE", "COMMAND_RESULT", "ACK", "ACTIVATE",
                     "DEACTIVATE", "CONFIG", "TIME"}
    errors = {v["error"] for v in INVALID}
    assert errors == {"truncated", "bad_magic", "unsupported_version", "oversize", "trailing_bytes",
                      "bad_crc", "unknown_type", "bad_flags", "bad_mac", "bad_payload"}


def test_files_match_the_definition():
    """Regenerating gives the same files: a vector never changes silently."""
    assert make_vectors.main(["--check"]) == 0


@pytest.mark.parametrize("vec", VALID, ids=lambda v: v["name"])
@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "construct"])
def test_valid_vector_decodes_to_its_json(vec, fast):
    frame = decode_frame(bytes.fromhex(vec["hex"]), bytes.fromhex(vec["key"]), fast=fast)
    assert frame.to_json() == vec["frame"]


@pytest.mark.parametrize("vec", VALID, ids=lambda v: v["name"])
def test_valid_vector_rebuilds_byte_for_byte(vec):
    f = vec["frame"]
    built = encode_frame(f["type"], seal_id=f["seal_id"], boot=f["boot"], seq=f["seq"], time=f["time"],
                         payload=f["payload"], key=bytes.fromhex(vec["key"]), flags=f["flags"])
    assert built.hex() == vec["hex"]


@pytest.mark.parametrize("vec", VALID, ids=lambda v: v["name"])
def test_full_construct_parse_verifies_mac_and_crc(vec):
    parsed = FrameConstruct.parse(bytes.fromhex(vec["hex"]), key=bytes.fromhex(vec["key"]))
    assert parsed.mac.hex() == vec["frame"]["mac"]
    assert parsed.crc == int(vec["frame"]["crc"], 16)


@pytest.mark.parametrize("vec", INVALID, ids=lambda v: v["name"])
@pytest.mark.parametrize("fast", [True, False], ids=["fastpath", "construct"])
def test_invalid_vector_is_refused_with_its_code(vec, fast):
    with pytest.raises(DecodeError) as info:
        decode_frame(bytes.fromhex(vec["hex"]), bytes.fromhex(vec["key"]), fast=fast)
    assert info.value.code == vec["error"]


@pytest.mark.parametrize("vec", SERIAL, ids=lambda v: v["name"])
def test_serial_vector(vec):
    deframer = SerialDeframer()
    got = []
    for kind, item in deframer.feed_items(bytes.fromhex(vec["stream_hex"])):
        if kind == "error":
            got.append({"error": item})
            continue
        try:
            got.append({"frame": decode_frame(item, bytes.fromhex(vec["key"])).to_json()})
        except DecodeError as exc:
            got.append({"error": exc.code})
    assert got == vec["results"]


@pytest.mark.parametrize("vec", SERIAL, ids=lambda v: v["name"])
def test_serial_vector_byte_by_byte(vec):
    """Feeding one byte at a time gives the same bodies as one big read."""
    stream = bytes.fromhex(vec["stream_hex"])
    whole = SerialDeframer().feed_items(stream)
    deframer = SerialDeframer()
    pieces = []
    for i in range(len(stream)):
        pieces += deframer.feed_items(stream[i:i + 1])
    assert pieces == whole
