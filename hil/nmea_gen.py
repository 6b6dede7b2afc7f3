"""NMEA sentences for the GNSS stimulus: fixes built from integer positions, routes, recorded logs.

Positions are 1e-7 degree integers (the wire's unit), written as ddmm.mmmmm so the seal's parser
gets them back to within 1e-7 degree. Only RMC (date, time, position, speed, course) and GGA
(quality, satellites, HDOP) are produced: that is what a receiver's 1 Hz burst carries for a fix.
"""

from __future__ import annotations

import calendar
import math
import time as _time
from dataclasses import dataclass
from typing import Iterable, Iterator

from navseal.emu.gnss import KNOTS_PER_KMH, checksum  # one NMEA checksum for emulator and bench


def sentence(body: str) -> str:
    """'GPRMC,...' -> '$GPRMC,...*hh'."""
    return f"${body}*{checksum(body)}"


def _angle(value_e7: int, deg_digits: int, pos: str, neg: str) -> tuple[str, str]:
    hemi = pos if value_e7 >= 0 else neg
    a = abs(value_e7)
    deg, rem = divmod(a, 10_000_000)
    # minutes * 1e5 = rem * 60 / 100, rounded to nearest
    min_e5 = (rem * 60 + 50) // 100
    if min_e5 >= 6_000_000:  # rounding carried into the next degree
        deg, min_e5 = deg + 1, min_e5 - 6_000_000
    return f"{deg:0{deg_digits}d}{min_e5 // 100000:02d}.{min_e5 % 100000:05d}", hemi


def _hms_date(t: float) -> tuple[str, str]:
    tm = _time.gmtime(int(t))
    cs = int(round((t - int(t)) * 100)) % 100
    return f"{tm.tm_hour:02d}{tm.tm_min:02d}{tm.tm_sec:02d}.{cs:02d}", f"{tm.tm_mday:02d}{tm.tm_mon:02d}{tm.tm_year % 100:02d}"


@dataclass(frozen=True)
class Fix:
    t: float  # Unix seconds UTC
    lat_e7: int
    lon_e7: int
    speed_kmh: float = 0.0
    course_deg: float = 0.0
    sats: int = 9
    hdop: float = 0.9


def rmc(fix: Fix, valid: bool = True, talker: str = "GP") -> str:
    hms, date = _hms_date(fix.t)
    if not valid:
        return sentence(f"{talker}RMC,{hms},V,,,,,,,{date},,,N")
    lat, ns = _angle(fix.lat_e7, 2, "N", "S")
    lon, ew = _angle(fix.lon_e7, 3, "E", "W")
    knots = fix.speed_kmh * KNOTS_PER_KMH
    return sentence(f"{talker}RMC,{hms},A,{lat},{ns},{lon},{ew},{knots:.2f},{fix.course_deg:.1f},{date},,,A")


def gga(fix: Fix, valid: bool = True, talker: str = "GP") -> str:
    hms, _ = _hms_date(fix.t)
    if not valid:
        return sentence(f"{talker}GGA,{hms},,,,,0,00,99.9,,M,,M,,")
    lat, ns = _angle(fix.lat_e7, 2, "N", "S")
    lon, ew = _angle(fix.lon_e7, 3, "E", "W")
    return sentence(f"{talker}GGA,{hms},{lat},{ns},{lon},{ew},1,{fix.sats:02d},{fix.hdop:.1f},450.0,M,-20.0,M,,")


def epoch(fix: Fix, valid: bool = True) -> list[str]:
    """One receiver second: GGA then RMC (RMC completes the fix in the seal's parser)."""
    return [gga(fix, valid), rmc(fix, valid)]


def along(points_e7: list[tuple[int, int]], t0: float, speed_kmh: float, step_s: float = 1.0) -> Iterator[Fix]:
    """Fixes every ``step_s`` seconds driving the polyline at constant speed (flat-earth steps,
    fine for the few kilometres a bench run covers)."""
    if not points_e7:
        return
    t = t0
    m_per_e7 = 111_319.49 / 1e7
    step_m = speed_kmh / 3.6 * step_s
    lat, lon = points_e7[0]
    yield Fix(t, lat, lon, speed_kmh, 0.0)
    for nlat, nlon in points_e7[1:]:
        kx = m_per_e7 * math.cos(math.radians(lat / 1e7))
        dx, dy = (nlon - lon) * kx, (nlat - lat) * m_per_e7
        dist = math.hypot(dx, dy)
        course = (math.degrees(math.atan2(dx, dy)) + 360.0) % 360.0
        n = max(1, int(dist // step_m)) if step_m > 0 else 1
        for i in range(1, n + 1):
            t += step_s
            yield Fix(t, lat + (nlat - lat) * i // n, lon + (nlon - lon) * i // n, speed_kmh, course)
        lat, lon = nlat, nlon


def read_log(path: str) -> Iterator[str]:
    """Sentences of a recorded receiver log (gpsd style: '#' lines are comments)."""
    with open(path, "rb") as f:
        for raw in f:
            line = raw.strip().decode("ascii", "replace")
            if line.startswith("$"):
                yield line



# Where each sentence type carries its UTC time of day (field index after the address).
_TIME_FIELD = {"RMC": 1, "GGA": 1, "GNS": 1, "GST": 1, "GBS": 1, "ZDA": 1, "GLL": 5}


def _unix(hms: str, day: int, month: int, year: int) -> int:
    return calendar.timegm((year, month, day, int(hms[0:2]), int(hms[2:4]), int(hms[4:6]), 0, 0, 0))


def _rmc_unix(f: list[str]) -> int | None:
    try:
        d = f[9]
        return _unix(f[1], int(d[0:2]), int(d[2:4]), 2000 + int(d[4:6]))
    except (IndexError, ValueError):
        return None


def redate(sentences: Iterable[str], last_fix_unix: int) -> list[str]:
    """A recorded log moved in time so that its last dated RMC falls at ``last_fix_unix``.

    A seal knows the date from its gateway, so a capture from years ago played as it is reads as
    a receiver sending time from the past (a GNSS anomaly the seal rightly refuses). Moved, the
    receiver's own sentences (talkers, field quirks, satellite views, positions) play as if live:
    every time of day, and the RMC and ZDA dates, shift by one whole-second offset (fractions are
    kept as the receiver wrote them) and each changed sentence gets its checksum again.
    """
    sentences = list(sentences)
    rmc_times = [t for s in sentences if s[3:6] == "RMC"
                 and (t := _rmc_unix(s[1:].split("*")[0].split(","))) is not None]
    if not rmc_times:
        raise ValueError("the log has no dated RMC to move")
    offset = last_fix_unix - rmc_times[-1]
    out = []
    for s in sentences:
        f = s[1:].split("*")[0].split(",")
        kind = f[0][2:]
        i = _TIME_FIELD.get(kind)
        if i is None or len(f) <= i or len(f[i]) < 6:
            out.append(s)
            continue
        try:
            if kind == "RMC":
                t = _rmc_unix(f)
            elif kind == "ZDA":
                t = _unix(f[1], int(f[2]), int(f[3]), int(f[4]))
            else:  # time of day only: any day will do, the shift is whole seconds
                t = _unix(f[i], 1, 1, 2000)
        except (IndexError, ValueError):
            t = None
        if t is None:
            out.append(s)
            continue
        hms, ddmmyy = _hms_date(t + offset)
        f[i] = hms[:6] + f[i][6:]
        if kind == "RMC":
            f[9] = ddmmyy
        elif kind == "ZDA":
            tm = _time.gmtime(t + offset)
            f[2], f[3], f[4] = f"{tm.tm_mday:02d}", f"{tm.tm_mon:02d}", f"{tm.tm_year:04d}"
        out.append(sentence(",".join(f)))
    return out
