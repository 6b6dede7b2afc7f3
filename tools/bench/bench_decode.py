"""Decode benchmark: CRC + MAC + full decode of batched position frames, against a hand-written
``struct`` + ``zlib`` + ``hmac`` baseline doing the same work in the same run.

    python -m navseal.bench.bench_decode [--frames 2000] [--records 60] [--rounds 5]

Both sides take the same frames, check the CRC, check the MAC, and build the same Python dicts
(asserted before timing). Rounds alternate between the two so that machine noise hits both; the
figure reported is the median round. Aims (issue 2): the project's decoder at or above 25 % of the
baseline, and at least 100,000 records/s on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
import statistics
import struct
import sys
import time
import zlib

from navseal.protocol import decode_frame, encode_frame, test_key
from navseal.protocol.schema import NO_POSITION

SEAL = 4242
KEY = test_key(SEAL)


def make_frames(n_frames: int, n_records: int) -> list[bytes]:
    rng = random.Random(1)
    frames = []
    lat, lon = 432380000, 769450000
    for f in range(n_frames):
        records = []
        for i in range(n_records):
            lat += rng.randint(-3000, 3000)
            lon += rng.randint(0, 6000)
            records.append({
                "dt": i * 60, "lat": lat, "lon": lon, "speed": rng.randint(0, 1100),
                "course": rng.randint(0, 179), "fix": {"quality": 1, "satellites": rng.randint(4, 14)},
                "hdop": rng.randint(6, 30),
                "status": {"cable_intact": True, "housing_closed": True, "battery_pct": 80}})
        frames.append(encode_frame("RECORDS", seal_id=SEAL, boot=1, seq=f, time=1764115200 + f * 3600,
                                   payload={"first_rseq": 1 + f * n_records, "base_time": 1764115200 + f * 3600,
                                            "records": records}, key=KEY))
    return frames


# ---- the hand-written baseline: what a careful engineer would write without construct ----
_HDR = struct.Struct(">2sBBBIIIIH")  # protocol version 2: u32 boot, 23-byte header
_REC = struct.Struct(">HllHBBBB")
_HEAD = struct.Struct(">IIB")


def baseline_decode(data: bytes, key: bytes) -> dict:
    magic, version, mtype, flags, seal, boot, seq, t, length = _HDR.unpack_from(data)
    if magic != b"NS" or version != 2 or len(data) != 35 + length:
        raise ValueError("bad frame")
    end = 23 + length
    if int.from_bytes(data[end + 8:], "big") != zlib.crc32(data[:end + 8]):
        raise ValueError("bad crc")
    if not hmac.compare_digest(data[end:end + 8], hmac.new(key, data[:end], hashlib.sha256).digest()[:8]):
        raise ValueError("bad mac")
    first, base, count = _HEAD.unpack_from(data, 23)
    records = []
    for dt, la, lo, sp, co, fx, hd, stt in _REC.iter_unpack(data[32:end]):
        bat = stt & 63
        records.append({
            "dt": dt, "lat": None if la == NO_POSITION else la, "lon": None if lo == NO_POSITION else lo,
            "speed": sp, "course": co, "fix": {"quality": fx >> 6, "satellites": fx & 63}, "hdop": hd,
            "status": {"cable_intact": stt >> 7 == 1, "housing_closed": (stt >> 6) & 1 == 1,
                       "battery_pct": None if bat == 63 else bat * 2}})
    return {"type": mtype, "seal_id": seal, "boot": boot, "seq": seq, "time": t,
            "payload": {"first_rseq": first, "base_time": base, "count": count, "records": records}}


def project_decode(data: bytes, key: bytes):
    return decode_frame(data, key)


def construct_decode(data: bytes, key: bytes):
    return decode_frame(data, key, fast=False)


def _time(fn, frames, key) -> float:
    start = time.perf_counter()
    for data in frames:
        fn(data, key)
    return time.perf_counter() - start


def run(n_frames: int, n_records: int, rounds: int) -> dict:
    frames = make_frames(n_frames, n_records)
    # Same work: both produce the same payload for every frame.
    for data in frames[:50]:
        assert baseline_decode(data, KEY)["payload"] == project_decode(data, KEY).payload
    ours, base, plain = [], [], []
    some = frames[: max(1, n_frames // 20)]  # construct alone is slow: time a slice of the frames
    for _ in range(rounds):
        base.append(_time(baseline_decode, frames, KEY))
        ours.append(_time(project_decode, frames, KEY))
        plain.append(_time(construct_decode, some, KEY) * len(frames) / len(some))
    t_ours, t_base, t_plain = statistics.median(ours), statistics.median(base), statistics.median(plain)
    return {
        "frames": n_frames,
        "records_per_frame": n_records,
        "frame_bytes": len(frames[0]),
        "project_frames_per_s": n_frames / t_ours,
        "project_records_per_s": n_frames * n_records / t_ours,
        "baseline_frames_per_s": n_frames / t_base,
        "baseline_records_per_s": n_frames * n_records / t_base,
        "ratio": t_base / t_ours,
        "construct_records_per_s": n_frames * n_records / t_plain,
        "construct_ratio": t_base / t_plain,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navseal.bench.bench_decode", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    r = run(args.frames, args.records, args.rounds)
    print(f"decode benchmark: {r['frames']} RECORDS frames x {r['records_per_frame']} records "
          f"({r['frame_bytes']} bytes each), median of {args.rounds} alternating rounds")
    print(f"  project (construct-derived fast path): {r['project_frames_per_s']:>10,.0f} frames/s "
          f"{r['project_records_per_s']:>12,.0f} records/s")
    print(f"  baseline (hand-written struct+zlib+hmac): {r['baseline_frames_per_s']:>7,.0f} frames/s "
          f"{r['baseline_records_per_s']:>12,.0f} records/s")
    print(f"  construct alone (for reference):          {r['construct_records_per_s']:>12,.0f} records/s "
          f"(ratio {r['construct_ratio']:.3f})")
    print(f"  ratio project/baseline: {r['ratio']:.2f} (aim >= 0.25); "
          f"records/s aim >= 100,000: {'met' if r['project_records_per_s'] >= 100_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
