# COBS and the serial deframer. Runs under CPython and MicroPython.
from navseal_fw.cobs import (MAX_ENCODED, CobsError, Deframer, cobs_decode, cobs_encode,
                             cobs_frame)
from mpunit import raises

# Examples from Cheshire and Baker (and the Wikipedia table of them).
EXAMPLES = (
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255)) + b"\x01"),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
)


def test_known_encodings_both_ways():
    for raw, enc in EXAMPLES:
        assert cobs_encode(raw) == enc, raw
        assert cobs_decode(enc) == raw, enc
        assert cobs_frame(raw) == enc + b"\x00"


def test_invalid_bodies():
    raises(CobsError, cobs_decode, b"\x05\x11\x22")  # block runs past the end
    raises(CobsError, cobs_decode, b"\x03\x11\x00")  # zero inside


def test_deframer_streams_resync_and_overrun():
    bodies = []
    errors = []
    d = Deframer(lambda b: bodies.append(bytes(b)), errors.append)
    a = cobs_frame(b"\x01\x00\x02")
    b = cobs_frame(b"hello")
    stream = b"\x00\x00" + a + b"\x07\x07\x00" + b + b"\x02" * (MAX_ENCODED + 5) + b"\x00" + a
    for i in range(len(stream)):  # byte by byte
        d.feed(stream[i : i + 1])
    assert bodies == [b"\x01\x00\x02", b"hello", b"\x01\x00\x02"]
    assert errors == ["cobs_error", "overrun"]
    assert (d.frames, d.cobs_error, d.overrun, d.empty, d.pending) == (3, 1, 1, 2, 0)
    d.feed(b"\x03\x01")
    assert d.pending == 2
