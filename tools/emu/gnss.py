"""A GNSS receiver simulator: true positions in, NMEA 0183 bytes out (what the seal's UART sees).

One epoch is the burst a multi-constellation receiver sends each second: GGA, GSA, then RMC.
RMC goes last on purpose: the firmware's parser completes a fix on RMC, so the satellites and
HDOP of the same epoch are already known when it does (real receivers differ in order; both
orders parse). Talker "GN" (combined GPS+GLONASS+Galileo+BeiDou solution, NMEA 4.11 style, GSA
with a system-id field), as modern receivers on trucks send it.

Realism, all drawn from one seeded `random.Random` so a run repeats exactly:
- position error is a first-order Gauss-Markov process (correlated over `noise_tau_s`, as real
  receiver error is: it wanders, it does not jump every second), sigma `noise_m` per axis,
  growing with HDOP;
- satellites used and HDOP drift slowly inside plausible ranges; HDOP rises when sats drop;
- a fraction `crc_error_rate` of sentences is damaged on the way (a flipped character, or the
  line cut before its checksum), which the parser must count and skip;
- `fix=False` produces the empty no-fix burst receivers send in tunnels (RMC status V, GGA
  quality 0, GSA mode 1, time still running);
- `offset_m` adds a fixed displacement: a jump, or a spoofer dragging the solution away;
- games a spoofer or a faulty receiver plays (scenario actions `gnss_mode`, `gnss_time_shift`,
  `gnss_bad_date`): `mode` is the FAA mode letter of RMC (S simulator, M manual, E estimated: not
  fixes, although the status says A) with the matching GGA quality (8, 7, 6); `time_shift_s` moves
  the receiver's UTC (back: time going backwards); `bad_date` replaces RMC's date (31 February).
"""

from __future__ import annotations

import math
import random
import time as _time

from .routes import offset_m

KNOTS_PER_KMH = 1 / 1.852
# GGA fix quality per RMC mode letter: 1 GPS, 2 differential, 4/5 RTK fixed/float, 6 estimated
# (dead reckoning), 7 manual input, 8 simulator
_GGA_QUALITY = {"A": 1, "D": 2, "R": 4, "F": 5, "P": 1, "E": 6, "M": 7, "S": 8, "N": 0}


def checksum(body: str) -> str:
    """XOR of the characters between '$' and '*' as two upper-case hex digits."""
    cs = 0
    for ch in body.encode("ascii"):
        cs ^= ch
    return f"{cs:02X}"


def sentence(body: str) -> str:
    """'GNRMC,...' -> '$GNRMC,...*hh\\r\\n'."""
    return f"${body}*{checksum(body)}\r\n"


def format_lat(lat: float) -> tuple[str, str]:
    """Degrees -> ('ddmm.mmmmm', 'N'|'S'), rounded in integer 1e-5 minutes (no '60.00000')."""
    return _dm(abs(lat), 2), ("N" if lat >= 0 else "S")


def format_lon(lon: float) -> tuple[str, str]:
    return _dm(abs(lon), 3), ("E" if lon >= 0 else "W")


def _dm(value: float, deg_digits: int) -> str:
    units = round(value * 60 * 100000)  # 1e-5 minute
    deg, rest = divmod(units, 60 * 100000)
    minutes, frac = divmod(rest, 100000)
    return f"{deg:0{deg_digits}d}{minutes:02d}.{frac:05d}"


def _hms_date(unix_t: float) -> tuple[str, str]:
    tm = _time.gmtime(int(unix_t))
    hundredths = int(round((unix_t - int(unix_t)) * 100)) % 100
    return (f"{tm.tm_hour:02d}{tm.tm_min:02d}{tm.tm_sec:02d}.{hundredths:02d}",
            f"{tm.tm_mday:02d}{tm.tm_mon:02d}{tm.tm_year % 100:02d}")


class GnssSim:
    def __init__(self, seed: int = 0, *, noise_m: float = 2.5, noise_tau_s: float = 30.0,
                 crc_error_rate: float = 0.002, altitude_m: float = 700.0, talker: str = "GN") -> None:
        self.rng = random.Random(seed)
        self.noise_m = noise_m
        self.noise_tau_s = noise_tau_s
        self.crc_error_rate = crc_error_rate
        self.altitude_m = altitude_m
        self.talker = talker
        self.offset_m = (0.0, 0.0)  # (north, east): a jump or spoofed displacement
        self.mode = "A"  # RMC FAA mode letter of a fix
        self.time_shift_s = 0.0  # the receiver's UTC minus the true time
        self.bad_date: str | None = None  # ddmmyy put in RMC instead of the true date
        self._err_n = 0.0
        self._err_e = 0.0
        self._sats = self.rng.randint(9, 14)
        self._last_t: float | None = None
        self._prns = sorted(self.rng.sample(range(1, 33), 12))
        # Counters, so tests and reports can say what was sent.
        self.epochs = 0
        self.no_fix_epochs = 0
        self.damaged = 0

    # --- state evolution ---
    def _step(self, unix_t: float) -> float:
        dt = 1.0 if self._last_t is None else max(unix_t - self._last_t, 0.0)
        self._last_t = unix_t
        rng = self.rng
        if rng.random() < min(1.0, dt / 20.0):  # satellites come and go every ~20 s
            self._sats = min(18, max(5, self._sats + rng.choice((-1, 1))))
        hdop = round(max(0.6, 0.5 + 6.0 / self._sats + rng.uniform(-0.1, 0.1)), 1)
        a = math.exp(-dt / self.noise_tau_s)
        sigma = self.noise_m * hdop
        s = sigma * math.sqrt(1 - a * a)
        self._err_n = a * self._err_n + rng.gauss(0.0, s)
        self._err_e = a * self._err_e + rng.gauss(0.0, s)
        return hdop

    # --- output ---
    def epoch(self, unix_t: float, lat: float, lon: float, speed_kmh: float, course_deg: float,
              *, fix: bool = True) -> bytes:
        """The NMEA burst of one epoch as bytes (CRLF line ends)."""
        self.epochs += 1
        hms, date = _hms_date(unix_t + self.time_shift_s)
        if self.bad_date is not None:
            date = self.bad_date
        t = self.talker
        if not fix:
            self.no_fix_epochs += 1
            self._last_t = unix_t
            lines = [
                f"{t}GGA,{hms},,,,,0,00,99.99,,,,,,",
                f"{t}GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99,1",
                f"{t}RMC,{hms},V,,,,,,,{date},,,N,V",
            ]
        else:
            hdop = self._step(unix_t)
            north = self._err_n + self.offset_m[0]
            east = self._err_e + self.offset_m[1]
            plat, plon = offset_m(lat, lon, north, east)
            la, ns = format_lat(plat)
            lo, ew = format_lon(plon)
            sats = self._sats
            # Speed noise: a few tenths of a km/h while moving, a true 0 when standing (receivers'
            # static hold); course is meaningless when standing, so it is left empty like theirs.
            if speed_kmh > 0.5:
                kn = max(0.0, speed_kmh + self.rng.gauss(0.0, 0.3)) * KNOTS_PER_KMH
                cog = f"{(course_deg + self.rng.gauss(0.0, 0.5)) % 360:.1f}"
            else:
                kn, cog = 0.0, ""
            pdop = round(hdop * 1.6, 2)
            vdop = round(hdop * 1.3, 2)
            prns = ",".join(f"{p:02d}" for p in self._prns[: min(sats, 12)])
            prns += "," * (12 - min(sats, 12))
            alt = self.altitude_m + self._err_n * 1.5
            quality = _GGA_QUALITY.get(self.mode, 1)
            lines = [
                f"{t}GGA,{hms},{la},{ns},{lo},{ew},{quality},{sats:02d},{hdop:.1f},{alt:.1f},M,-30.0,M,,",
                f"{t}GSA,A,3,{prns},{pdop:.2f},{hdop:.2f},{vdop:.2f},1",
                f"{t}RMC,{hms},A,{la},{ns},{lo},{ew},{kn:.3f},{cog},{date},,,{self.mode},V",
            ]
        out = []
        for body in lines:
            line = sentence(body)
            if self.crc_error_rate and self.rng.random() < self.crc_error_rate:
                line = self._damage(line)
                self.damaged += 1
            out.append(line)
        return "".join(out).encode("ascii")

    def _damage(self, line: str) -> str:
        """What a noisy UART does: one character changed, or the tail lost."""
        rng = self.rng
        if rng.random() < 0.5:
            star = line.index("*")
            i = rng.randrange(1, star)
            ch = line[i]
            new = "7" if ch != "7" else "3"
            return line[:i] + new + line[i + 1:]
        cut = rng.randrange(8, line.index("*"))
        return line[:cut] + "\r\n"
