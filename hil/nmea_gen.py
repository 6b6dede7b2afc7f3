"""NMEA sentences for the GNSS stimulus: fixes built from integer positions, routes, recorded logs.

Positions are 1e-7 degree integers (the wire's unit), written as ddmm.mmmmm so the seal's parser
gets them back to within 1e-7 degree. Only RMC (date, time, position, speed, course) and GGA
(quality, satellites, HDOP) are produced: that is what a receiver's 1 Hz burst carries for a fix.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass
from typing import Iterator

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
