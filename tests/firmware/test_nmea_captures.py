"""NMEA parser on the real receiver captures against an independent reference, plus properties.

The reference below is deliberately written differently (regular expressions, Fraction
arithmetic, the calendar module): for every RMC line that a careful reader would accept as a
fix, the firmware parser must produce exactly the reference's time and 1e-7 degree position.
"""

from __future__ import annotations

import calendar
import re
from fractions import Fraction
from functools import reduce
from math import floor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navseal_fw.nmea import NO_POS, NmeaParser

NMEA_DIR = (Path(__file__).resolve().parents[1] / "data" / "nmea").resolve()
CAPTURES = sorted(NMEA_DIR.glob("*.nmea")) if NMEA_DIR.is_dir() else []

_RMC = re.compile(
    rb"\$(GP|GL|GA|GB|BD|GN)RMC,(\d{6})(?:\.\d+)?,A,(\d\d)(\d\d(?:\.\d+)?),([NS]),(\d{3})(\d\d(?:\.\d+)?),([EW]),"
    rb"([\d.]*),([\d.]*),(\d\d)(\d\d)(\d\d),[^*]*\*([0-9A-Fa-f]{2})\r?$")


def _e7(deg: bytes, minutes: bytes, hemi: bytes, neg: bytes) -> int:
    value = (Fraction(int(deg)) + Fraction(minutes.decode()) / 60) * 10**7
    value = floor(value + Fraction(1, 2))
    return -value if hemi == neg else value


def reference_fixes(data: bytes):
    """(line, time, lat_e7, lon_e7) of each clean, valid RMC line."""
    for line in data.split(b"\n"):
        line = line.rstrip(b"\r")
        m = _RMC.fullmatch(line)
        if not m:
            continue
        body = line[1 : line.index(b"*")]
        if reduce(lambda a, b: a ^ b, body, 0) != int(m.group(14), 16):
            continue
        fields = body.split(b",")
        if len(fields) > 12 and fields[12] == b"N":
            continue  # FAA mode "no fix"
        hh, mm, ss = int(m.group(2)[:2]), int(m.group(2)[2:4]), int(m.group(2)[4:6])
        d, mo, yy = int(m.group(11)), int(m.group(12)), int(m.group(13))
        if Fraction(m.group(4).decode()) >= 60 or Fraction(m.group(7).decode()) >= 60:
            continue
        year = 2000 + yy if yy < 80 else 1900 + yy
        t = calendar.timegm((year, mo, d, hh, mm, ss))
        yield (line, t, _e7(m.group(3), m.group(4), m.group(5), b"S"),
               _e7(m.group(6), m.group(7), m.group(8), b"W"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_reference_fix_is_reproduced_exactly(path):
    data = path.read_bytes()
    expected = list(reference_fixes(data))
    p = NmeaParser()
    got = []
    for line in data.split(b"\n"):
        if p.feed(line + b"\n"):
            got.append((p.fix.time, p.fix.lat_e7, p.fix.lon_e7))
    assert got == [e[1:] for e in expected]
    # all garbage was counted, nothing escaped; nothing supported was refused on good data
    assert p.sentences > 0 and p.clean_sentences + p.bad_fields == p.sentences


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None)
def test_random_bytes_never_raise(data):
    p = NmeaParser()
    p.feed(data)
    for i in range(0, len(data), 7):
        p.feed(data[i : i + 7])


_sentence_bytes = st.lists(st.sampled_from([b"$", b"*", b",", b"\r", b"\n", b"GPRMC", b"GNGGA", b"A",
                                            b"V", b"12", b".", b"4916.45", b"N", b"E", b"\x00", b"\xff"]),
                           max_size=80).map(b"".join)


@given(_sentence_bytes)
@settings(max_examples=500, deadline=None)
def test_nmea_shaped_noise_never_raises(data):
    p = NmeaParser()
    p.feed(data + b"\n")
    assert p.fix.count == 0 or p.fix.lat_e7 != NO_POS


@given(st.integers(0, 89), st.integers(0, 59), st.integers(0, 10**7 - 1), st.integers(1, 7),
       st.sampled_from("NS"))
@settings(max_examples=500, deadline=None)
def test_latitude_is_exact(deg, minutes, frac, places, hemi):
    frac_s = str(frac).zfill(7)[:places]
    field = f"{deg:02d}{minutes:02d}.{frac_s}"
    body = f"GPRMC,120000,A,{field},{hemi},00000.0,E,0,0,010126,,,A"
    cs = reduce(lambda a, b: a ^ b, body.encode(), 0)
    p = NmeaParser()
    assert p.feed(f"${body}*{cs:02X}\r\n".encode()) == 1
    want = _e7(f"{deg:02d}".encode(), f"{minutes:02d}.{frac_s}".encode(), hemi.encode(), b"S")
    assert p.fix.lat_e7 == want


def test_the_captures_ship_with_the_repo():
    assert len(CAPTURES) == 8
