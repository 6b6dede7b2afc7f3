"""NMEA parser on the real receiver captures against an independent reference, plus properties.

The reference below is deliberately written differently (regular expressions, Fraction
arithmetic, the calendar module): for every RMC line that a careful reader would accept as a
fix, the firmware parser must produce exactly the reference's time and 1e-7 degree position.
"""

from __future__ import annotations

import calendar
import datetime
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
        if len(fields) > 12 and fields[12] and fields[12] not in (b"A", b"D", b"F", b"P", b"R"):
            continue  # FAA mode: not autonomous, differential or RTK
        hh, mm, ss = int(m.group(2)[:2]), int(m.group(2)[2:4]), int(m.group(2)[4:6])
        d, mo, yy = int(m.group(11)), int(m.group(12)), int(m.group(13))
        if Fraction(m.group(4).decode()) >= 60 or Fraction(m.group(7).decode()) >= 60:
            continue
        year = 2000 + yy if yy < 80 else 1900 + yy
        try:
            datetime.date(year, mo, d)
        except ValueError:
            continue  # not on the calendar
        if hh > 23 or mm > 59 or ss > 60:
            continue
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


_MODES = st.sampled_from(["", ",A", ",D", ",F", ",P", ",R", ",E", ",M", ",S", ",N", ",X", ",AD"])
_JUNK = st.sampled_from(["", "", "", "x", "abc", " ", "-", "0000000abc", ".5"])


@given(st.integers(0, 35), st.integers(0, 14), st.integers(0, 99), st.integers(0, 25),
       st.integers(0, 61), st.integers(0, 61), _MODES, st.sampled_from("AV"), _JUNK, _JUNK)
@settings(max_examples=800, deadline=None)
def test_a_fix_is_exactly_a_real_date_a_fix_mode_and_clean_digits(day, month, yy, hh, mm, ss, mode,
                                                                  status, lat_junk, time_junk):
    """Random RMC fields: the parser never raises and completes a fix exactly when the
    reference (datetime, the mode table, a regular expression for the digits) says so."""
    body = (f"GPRMC,{hh:02d}{mm:02d}{ss:02d}{time_junk},{status},4807.038{lat_junk},N,01131.000,E,"
            f"022.4,084.4,{day:02d}{month:02d}{yy:02d},003.1,W{mode}")
    cs = reduce(lambda a, b: a ^ b, body.encode(), 0)
    p = NmeaParser()
    got = p.feed(f"${body}*{cs:02X}\r\n".encode())
    year = 2000 + yy if yy < 80 else 1900 + yy
    try:
        datetime.date(year, month, day)
        date_ok = hh <= 23 and mm <= 59 and ss <= 60 and re.fullmatch(r"(\.\d*)?", time_junk) is not None
    except ValueError:
        date_ok = False
    mode_ok = mode in ("", ",A", ",D", ",F", ",P", ",R")
    digits_ok = re.fullmatch(r"\d*", lat_junk) is not None
    claims = status == "A" and mode_ok
    assert got == (1 if claims and date_ok and digits_ok else 0)
    assert p.bad_dates == (1 if claims and not date_ok else 0)
    if got:
        assert p.fix.time == calendar.timegm((year, month, day, hh, mm, ss))
