# Figures for the firmware note: time per NMEA fix, codec encode/decode per frame, heap use of
# the parser/codec/deframer/lock. The same file runs under CPython and MicroPython:
#   python tests/micropython/bench_fw.py            (with firmware/ on sys.path)
#   node tests/micropython/runner.mjs tests/micropython/bench_fw.py
#   node tests/micropython/runner.mjs --copy tests/micropython/bench_fw.py:/lib/bench_fw.py \
#        --code "import bench_fw" --steps "bench_fw.busy()"     (live heap, MP_HEAP line)
# It prints one "FIG name value unit" line per figure.
import gc
import sys
import time

from navseal_fw import codec as C
from navseal_fw.cobs import Deframer, cobs_frame
from navseal_fw.lock import LockInputs
from navseal_fw.nmea import NmeaParser

MICRO = sys.implementation.name == "micropython"

if MICRO:
    def now_us():
        return time.ticks_us()  # type: ignore[attr-defined]

    def since_us(t0):
        return time.ticks_diff(time.ticks_us(), t0)  # type: ignore[attr-defined]
else:
    def now_us():
        return time.perf_counter_ns() // 1000

    def since_us(t0):
        return now_us() - t0


def alloc():
    return gc.mem_alloc() if MICRO else 0  # type: ignore[attr-defined]


def nmea(body):
    cs = 0
    for c in body.encode():
        cs ^= c
    return ("$%s*%02X\r\n" % (body, cs)).encode()


def fig(name, value, unit):
    print("FIG", name, value, unit)


EPOCH = (nmea("GNGGA,120000.00,4314.28000,N,07656.70000,E,1,12,0.8,700.0,M,-10.0,M,,")
         + nmea("GNGSA,A,3,01,02,03,04,05,06,07,08,,,,,1.5,0.8,1.2,1")
         + nmea("GNRMC,120000.00,A,4314.28000,N,07656.70000,E,43.2,90.0,261126,,,A,V")
         + nmea("GNVTG,90.0,T,,M,43.2,N,80.0,K,A"))


def bench_nmea(n):
    p = NmeaParser()
    p.feed(EPOCH)
    gc.collect()
    a0 = alloc()
    p.feed(EPOCH)
    per_fix_alloc = alloc() - a0
    t0 = now_us()
    fixes = 0
    for _ in range(n):
        fixes += p.feed(EPOCH)
    us = since_us(t0)
    assert fixes == n
    fig("nmea_us_per_fix", us * 1000 // n / 1000, "us (one epoch: GGA+GSA+RMC+VTG, %d bytes)" % len(EPOCH))
    fig("nmea_alloc_per_fix", per_fix_alloc, "bytes allocated (garbage) per epoch")
    return p


KEY = bytes(range(32))


def bench_codec(n):
    c = C.Codec(1001, KEY)
    recs = bytearray(16 * 60)
    for i in range(60):
        C.pack_record(recs, 16 * i, 30 * i, 432380000 + i, 769450000 + i, 800, 45, 0x49, 9, 0xEA)
    # EVENT (small uplink)
    t0 = now_us()
    for i in range(n):
        c.event(3, i, 1764115200, 10 + i, 1764115190, C.EV_CABLE_CUT, 432380000, 769450000, 0x6A, 0)
    fig("codec_encode_event_us", since_us(t0) * 1000 // n / 1000, "us per 55-byte frame")
    t0 = now_us()
    for i in range(n):
        c.records(3, i, 1764115200, 100, 1764115000, 60, recs)
    fig("codec_encode_records60_us", since_us(t0) * 1000 // n / 1000, "us per 1002-byte frame")
    down = C.Codec(1001, KEY)
    ack = down.encode(C.ACK, 0, 5, 1764115200, (3, 17, 160))
    gc.collect()
    a0 = alloc()
    f = c.decode(ack)
    C.parse_ack(f.payload)
    fig("codec_alloc_per_ack_decode", alloc() - a0, "bytes allocated (garbage) per ACK decode")
    t0 = now_us()
    for _ in range(n):
        f = c.decode(ack)
        C.parse_ack(f.payload)
    fig("codec_decode_ack_us", since_us(t0) * 1000 // n / 1000, "us per 43-byte frame (CRC, MAC, parse)")
    frame = c.records(3, 1, 1764115200, 100, 1764115000, 60, recs)
    t0 = now_us()
    for _ in range(n):
        f = c.decode(frame)
        C.parse_records(f.payload)
    fig("codec_decode_records60_us", since_us(t0) * 1000 // n / 1000, "us per 1002-byte frame")
    wire = cobs_frame(frame)
    got = []
    d = Deframer(got.append)
    t0 = now_us()
    for _ in range(n):
        d.feed(wire)
    fig("cobs_deframe_records60_us", since_us(t0) * 1000 // n / 1000, "us per 1002-byte frame")
    return c, d


def live_size(make):
    gc.collect()
    a0 = alloc()
    obj = make()
    gc.collect()
    size = alloc() - a0
    return obj, size


def busy(n=300):
    """All of this bench's parts alive and working, one step per yield: run it with
    `runner.mjs --steps "bench_fw.busy()"` for the live heap between steps (MP_HEAP line)."""
    p = NmeaParser()
    c = C.Codec(1001, KEY)
    lk = LockInputs()
    d = Deframer(lambda b: C.parse_ack(c.decode(b).payload))
    ack = cobs_frame(c.encode(C.ACK, 0, 5, 1764115200, (3, 17, 160)))
    for i in range(n):
        p.feed(EPOCH)
        d.feed(ack)
        lk.update(i & 1, 1, i)
        c.event(3, i, 1764115200, 10 + i, 1764115190, 1, 432380000, 769450000, 0x6A, 0)
        yield


def main(n_fix=2000, n_codec=500):
    bench_nmea(n_fix)
    bench_codec(n_codec)
    if MICRO:
        _, s1 = live_size(NmeaParser)
        _, s2 = live_size(lambda: C.Codec(1001, KEY))
        _, s3 = live_size(lambda: Deframer(lambda b: None))
        _, s4 = live_size(LockInputs)
        fig("heap_nmea_parser", s1, "bytes live")
        fig("heap_codec", s2, "bytes live (incl. 2083-byte frame buffer)")
        fig("heap_deframer", s3, "bytes live (incl. 2092-byte buffer)")
        fig("heap_lock_inputs", s4, "bytes live")
    print("FIG implementation", sys.implementation.name, "")


if __name__ == "__main__":
    main()
