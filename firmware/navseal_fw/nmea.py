"""NMEA 0183 parser for the seal's GNSS receiver: RMC, GGA, GSA, GNS, VTG.

Past 400 lines on purpose: one table-driven parser whose sentence parsers are small and share
the field helpers; one module is one import on the seal.

Runs unchanged on MicroPython (board, WebAssembly test interpreter) and CPython (emulator).
Shaped after Peter Hinch's as_GPS: a table from sentence type to a small parser; a parser
raises ValueError on a bad field and one dispatcher catches and counts it. Nothing that comes
in on the UART can raise out of ``feed``.

API (the seal core depends on this; keep it stable)
---------------------------------------------------
    parser = NmeaParser()
    n = parser.feed(data)   # bytes / bytearray / memoryview in any chunking (UART reads)
    # n: number of NEW VALID FIXES completed inside this chunk (0, 1, more if the chunk held
    # several epochs). parser.fix is one Fix object, updated in place, holding the latest.
    if n:
        f = parser.fix
        f.time, f.lat_e7, f.lon_e7, f.speed, f.course, f.quality, f.sats, f.hdop

A "fix" is completed by an RMC sentence with status A whose FAA mode (NMEA 2.3+, field 12), when
present, is A autonomous, D differential, F float RTK, P precise or R RTK; E (estimated, dead
reckoning), M (manual input), S (simulator) and N (no fix) are not a fix, nor is any other
letter. RMC is the one sentence that carries date, time, position, speed and course together, so
`time`, `lat_e7`, `lon_e7` always belong to the same epoch. Its date and time must exist on the
calendar (no 31 February, month 13, day 0, hour 24, minute 60) and every numeric field is digits
to its end (`4807.038abc` is refused, however many decimals come before the junk). GGA/GNS/GSA update `quality`, `sats`, `hdop`
(`dim`) as they arrive (receivers send them in the same one-second burst as the RMC, before
or after it); VTG updates `speed` and `course`.

Fix attributes (all ints, no floats anywhere):
    valid    True while the latest RMC reports a valid fix; an RMC with status V (or a mode
             that is not a fix) makes it False. Loss of fix is "no valid fix for N seconds": the core's call.
    time     Unix seconds UTC of the latest valid fix (0 before the first one).
    lat_e7   latitude in 1e-7 degree, converted exactly from ddmm.mmmm (integer maths,
             rounded to nearest); NO_POS (0x7FFFFFFF) before the first fix. Kept at the last
             known value when the fix is lost.
    lon_e7   longitude, same rules.
    speed    ground speed in 0.1 km/h (the wire unit); 0 when not reported.
    course   course over ground, true, in 0.1 degree (0..3599); -1 unknown.
    quality  the wire's fix quality: 0 none, 1 GNSS, 2 differential (DGPS/RTK/PPS),
             3 estimated (dead reckoning). From GGA/GNS; from the RMC mode letter if no GGA.
    sats     satellites used (GGA/GNS), 0 when unknown (not clamped: the wire takes 0..63).
    hdop     horizontal dilution in 0.1 units (GGA/GNS/GSA); -1 unknown.
    dim      GSA fix dimension: 0 unknown, 1 none, 2 2D, 3 3D.
    count    valid fixes seen since the parser was created.
  and wire helpers that allocate nothing: course_u8() (2-degree units, 255 unknown),
  hdop_u8() (0..254, 255 unknown), fix_u8() (quality << 6 | min(sats, 63)).

Parser attributes:
    fix              the Fix above.
    utc              Unix seconds UTC of the latest RMC that had a well-formed date and time,
                     with or without a fix (receivers often know the time before they have a
                     position); 0 if none yet. Cold-starting receivers may report 1980 or
                     other bogus dates here: sanity-check before setting a clock from it.
    counters (ints, only ever increase):
    sentences        supported sentences (talker and type below) with a correct checksum
    clean_sentences  ... of those, parsed without error
    bad_fields       ... of those, fields that did not parse (e.g. minutes >= 60)
    crc_fails        supported sentences whose '*hh' is wrong, not hex, or followed by garbage
    unknown          sentences of other talkers or types (GSV, ZDA, $P..., SD...): skipped
                     before the checksum, so ignored traffic costs almost no CPU
    too_long         sentence longer than _LINE_MAX bytes, dropped up to its end
    partial          sentence cut short: no '*hh' before the line (or the next '$') ended
    noise            bytes outside any sentence (binary noise, comments, NULs)
    no_fix           RMC sentences reporting no fix (status V, or a mode other than A D F P R)
    bad_dates        RMC sentences that claimed a fix (status A, a fix mode) with a date or time
                     that does not exist (also counted in bad_fields): the seal's GNSS_ANOMALY
                     "invalid date" comes from this counter

Talkers accepted: GP GL GA GB BD GN (GPS, GLONASS, Galileo, BeiDou twice, combined).
Sentences end at CR/LF or at the next '$' (some receivers run two sentences together).

Memory: one line buffer per parser (_LINE_MAX bytes) allocated once; per sentence one bytes
copy and the field list from split(). (Past 400 lines because this docstring is the API the core
and the tests rely on; the parsing itself is about 300.) Unix seconds above 2**30 are long ints on MicroPython,
which allocates a little; that is the price of the wire's u32 time.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]  # stub's signature is generic
        return x


NO_POS = const(0x7FFFFFFF)
# NMEA 0183 limits a sentence to 82 characters including '$' and CR LF. Real receivers
# exceed it (the gpsd captures in tests hold 87-113 byte GSA/GSV/GGA lines), so allow some
# slack; anything longer is a run-on line or noise and is dropped.
_LINE_MAX = const(120)

_TALKERS = (b"GP", b"GL", b"GA", b"GB", b"BD", b"GN")
_FIX_MODES = b"ADFPR"  # RMC mode letters that are a fix: autonomous, differential, float, precise, RTK
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_HEX = b"0123456789ABCDEFabcdef"
_POW10 = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000)


class Fix:
    """The latest GNSS solution, updated in place by NmeaParser (see module docstring)."""

    def __init__(self):
        self.valid = False
        self.time = 0
        self.lat_e7 = NO_POS
        self.lon_e7 = NO_POS
        self.speed = 0
        self.course = -1
        self.quality = 0
        self.sats = 0
        self.hdop = -1
        self.dim = 0
        self.count = 0

    def course_u8(self):
        # Wire unit is 2 degrees (0..179), 255 unknown; round to nearest, 360 wraps to 0.
        if self.course < 0:
            return 255
        return ((self.course + 10) // 20) % 180

    def hdop_u8(self):
        if self.hdop < 0:
            return 255
        return self.hdop if self.hdop < 254 else 254

    def fix_u8(self):
        sats = self.sats if self.sats < 63 else 63
        return (self.quality << 6) | sats


def _digits(field):
    # int() alone would also accept signs, spaces and underscores; NMEA numbers have none.
    if not field:
        raise ValueError("empty")
    for c in field:
        if c < 48 or c > 57:
            raise ValueError("not a digit")
    return int(field)


def _check_digits(field, start):
    # Extra decimals are dropped, but they must still be digits: "4807.0380000abc" is junk.
    for k in range(start, len(field)):
        c = field[k]
        if c < 48 or c > 57:
            raise ValueError("not a digit")


def _scaled(field, places):
    """Unsigned decimal text to an int scaled by 10**places, extra digits truncated."""
    dot = field.find(b".")
    if dot < 0:
        return _digits(field) * _POW10[places]
    whole = _digits(field[:dot]) if dot else 0
    if len(field) > dot + 1 + places:
        _check_digits(field, dot + 1 + places)
    frac = field[dot + 1 : dot + 1 + places]
    value = whole * _POW10[places]
    if frac:
        value += _digits(frac) * _POW10[places - len(frac)]
    return value


def _angle(field, hemi, deg_digits, neg, pos):
    """ddmm.mmmm / dddmm.mmmm plus hemisphere letter to 1e-7 degree, exact integer maths."""
    dot = field.find(b".")
    if dot < 0:
        dot = len(field)
    if dot != deg_digits + 2:
        raise ValueError("angle format")
    degrees = _digits(field[:deg_digits])
    minutes = _digits(field[deg_digits:dot])
    if minutes >= 60:
        raise ValueError("minutes")
    frac = field[dot + 1 : dot + 8]  # 7 decimals of a minute is already below 1e-7 degree
    if len(field) > dot + 8:
        _check_digits(field, dot + 8)
    k = len(frac)
    scaled = minutes * _POW10[k] + (_digits(frac) if k else 0)
    # scaled / 10**k minutes = scaled * 10**(7-k) / 60 units of 1e-7 degree; the product
    # stays below 6e8, inside MicroPython's small-int range.
    value = degrees * 10000000 + (scaled * _POW10[7 - k] + 30) // 60
    if value > (900000000 if deg_digits == 2 else 1800000000):
        raise ValueError("angle range")
    if hemi == neg:
        return -value
    if hemi != pos:
        raise ValueError("hemisphere")
    return value


def _tod(field):
    """hhmmss[.sss] to seconds of the day (fraction dropped)."""
    if len(field) < 6 or (len(field) > 6 and field[6] != 0x2E):  # '.'
        raise ValueError("time")
    if len(field) > 7:
        _check_digits(field, 7)
    hh = _digits(field[0:2])
    mm = _digits(field[2:4])
    ss = _digits(field[4:6])
    if hh > 23 or mm > 59 or ss > 60:
        raise ValueError("time range")
    return hh * 3600 + mm * 60 + ss


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _unix(date, tod):
    if len(date) != 6:
        raise ValueError("date")
    d = _digits(date[0:2])
    m = _digits(date[2:4])
    yy = _digits(date[4:6])
    # Two-digit year: NMEA's own ambiguity. 80..99 are the 1980s/90s (cold-start dates).
    year = 2000 + yy if yy < 80 else 1900 + yy
    if m < 1 or m > 12 or d < 1:
        raise ValueError("date range")
    last = _MONTH_DAYS[m - 1]
    if m == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        last = 29
    if d > last:
        raise ValueError("date range")
    return days_from_civil(year, m, d) * 86400 + tod


def _gga_quality(q):
    # GGA: 0 invalid, 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float, 6 estimated,
    # 7 manual input, 8 simulator. Manual and simulated positions are not a fix.
    if q == 1:
        return 1
    if 2 <= q <= 5:
        return 2
    if q == 6:
        return 3
    return 0


def _mode_quality(mode):
    # FAA mode letters (RMC field 12, one per system in GNS): A autonomous, D differential,
    # P precise, R RTK, F float RTK, E estimated, M manual, S simulator, N no fix.
    best = 0
    for c in mode:
        if c in b"DPRF":
            return 2
        if c == 65:  # 'A'
            best = 1
        elif c == 69 and best == 0:  # 'E'
            best = 3
    return best


class NmeaParser:
    """Bytes from the GNSS UART in, Fix updated in place out (see module docstring)."""

    def __init__(self):
        self.fix = Fix()
        self.utc = 0
        self.sentences = 0
        self.clean_sentences = 0
        self.crc_fails = 0
        self.unknown = 0
        self.bad_fields = 0
        self.too_long = 0
        self.partial = 0
        self.noise = 0
        self.no_fix = 0
        self.bad_dates = 0
        self._buf = bytearray(_LINE_MAX)
        self._mv = memoryview(self._buf)
        self._len = 0  # bytes of the current sentence in _buf, 0 = between sentences
        self._drop = False  # current sentence overflowed _LINE_MAX: swallow it to its end

    # ---- framing -----------------------------------------------------------------------

    def feed(self, data):
        """Consume UART bytes; return the number of new valid fixes they completed."""
        if not isinstance(data, bytes):
            data = bytes(data)  # MicroPython's bytearray/memoryview have no find()
        before = self.fix.count
        n = len(data)
        i = 0
        while i < n:
            nl = data.find(b"\n", i)
            end = n if nl < 0 else nl
            while i < end:
                d = data.find(b"$", i, end)
                stop = end if d < 0 else d
                if stop > i:
                    if self._len:
                        self._append(data, i, stop)
                    else:
                        self.noise += stop - i
                if d < 0:
                    break
                # '$' ends whatever sentence was open and starts a new one.
                if self._len:
                    self._end_sentence()
                self._buf[0] = 0x24
                self._len = 1
                i = d + 1
            if nl < 0:
                break
            if self._len:
                self._end_sentence()
            else:
                self.noise += 1  # a bare newline outside a sentence
            i = nl + 1
        return self.fix.count - before

    def _append(self, data, start, stop):
        if self._drop:
            return
        k = stop - start
        if self._len + k > _LINE_MAX:
            self._drop = True
            self.too_long += 1
            return
        self._mv[self._len : self._len + k] = memoryview(data)[start:stop]
        self._len += k

    def _end_sentence(self):
        length = self._len
        dropped = self._drop
        self._len = 0
        self._drop = False
        if dropped:
            return
        buf = self._buf
        while length and buf[length - 1] in b"\r \t\x00":
            length -= 1
        line = bytes(self._mv[:length])
        star = line.find(b"*")
        if star < 0:
            self.partial += 1
            return
        # Type first: sentences we do not use (GSV, ZDA, proprietary ...: often most of the
        # traffic) cost neither a checksum loop nor a split.
        parser = None
        if star >= 6 and line[6] == 0x2C and line[1:3] in _TALKERS:  # "$ttSSS,"
            parser = _PARSERS.get(line[3:6])
        if parser is None:
            self.unknown += 1
            return
        cs = 0
        for k in range(1, star):
            cs ^= line[k]
        hh = line[star + 1 :]
        if len(hh) != 2 or hh[0] not in _HEX or hh[1] not in _HEX or int(hh, 16) != cs:
            self.crc_fails += 1
            return
        self.sentences += 1
        try:
            parser(self, line[1:star].split(b","))
        except (ValueError, IndexError):
            self.bad_fields += 1
            return
        self.clean_sentences += 1

    # ---- sentence parsers: raise ValueError/IndexError on bad fields ---------------------

    def _rmc(self, f):
        # 1 time, 2 status, 3 lat, 4 N/S, 5 lon, 6 E/W, 7 knots, 8 course, 9 date,
        # 10 magvar, 11 E/W, [12 FAA mode], [13 nav status]
        status = f[2]
        if status != b"V" and status != b"A":
            raise ValueError("status")
        mode = f[12] if len(f) > 12 else b""
        claims = status == b"A" and (not mode or (len(mode) == 1 and mode[0] in _FIX_MODES))
        utc = 0
        if f[1] and f[9]:
            try:
                utc = _unix(f[9], _tod(f[1]))
            except ValueError:
                if claims:
                    self.bad_dates += 1
                raise
        fix = self.fix
        if not claims:
            if utc:
                self.utc = utc
            fix.valid = False
            fix.quality = 0
            self.no_fix += 1
            return
        if not utc:
            raise ValueError("fix without date")
        # Parse everything before touching the fix, so a bad field leaves it consistent.
        lat = _angle(f[3], f[4], 2, b"S", b"N")
        lon = _angle(f[5], f[6], 3, b"W", b"E")
        speed = 0
        if f[7]:
            # knots * 1.852 = km/h; in integers: knot/1000 * 1852 / 100000 = 0.1 km/h
            speed = (_scaled(f[7], 3) * 1852 + 50000) // 100000
        course = _scaled(f[8], 1) % 3600 if f[8] else -1
        self.utc = utc
        fix.valid = True
        fix.time = utc
        fix.lat_e7 = lat
        fix.lon_e7 = lon
        fix.speed = speed
        fix.course = course
        if fix.quality == 0:
            q = _mode_quality(mode) if mode else 1
            fix.quality = q if q else 1
        fix.count += 1

    def _gga(self, f):
        # 1 time, 2 lat, 3 N/S, 4 lon, 5 E/W, 6 quality, 7 sats, 8 hdop, 9 alt, ...
        q = _gga_quality(_digits(f[6])) if f[6] else 0
        sats = _digits(f[7]) if f[7] else 0
        hdop = _scaled(f[8], 1) if f[8] else -1
        fix = self.fix
        fix.quality = q
        fix.sats = sats
        fix.hdop = hdop

    def _gns(self, f):
        # 1 time, 2 lat, 3 N/S, 4 lon, 5 E/W, 6 mode letters (one per system), 7 sats, 8 hdop
        q = _mode_quality(f[6])
        sats = _digits(f[7]) if f[7] else 0
        hdop = _scaled(f[8], 1) if f[8] else -1
        fix = self.fix
        fix.quality = q
        fix.sats = sats
        fix.hdop = hdop

    def _gsa(self, f):
        # 1 M/A, 2 dimension 1/2/3, 3..14 PRNs, 15 PDOP, 16 HDOP, 17 VDOP, [18 system id]
        dim = _digits(f[2]) if f[2] else 0
        if dim > 3:
            raise ValueError("dim")
        hdop = _scaled(f[16], 1) if f[16] else -1
        fix = self.fix
        fix.dim = dim
        if hdop >= 0:
            fix.hdop = hdop

    def _vtg(self, f):
        # NMEA 2.3+: 1 course T, 2 'T', 3 course M, 4 'M', 5 knots, 6 'N', 7 km/h, 8 'K', [9 mode]
        # NMEA 2.0 and older: 1 course T, 2 course M, 3 knots, 4 km/h
        if len(f) >= 9 and f[2] == b"T":
            course_f, knots_f, kmh_f = f[1], f[5], f[7]
            mode = f[9] if len(f) > 9 else b""
        else:
            course_f, knots_f, kmh_f = f[1], f[3], f[4]
            mode = b""
        if mode == b"N" or not (knots_f or kmh_f):
            return  # no fix: leave the last speed and course alone
        if kmh_f:
            speed = _scaled(kmh_f, 1)
        else:
            speed = (_scaled(knots_f, 3) * 1852 + 50000) // 100000
        course = _scaled(course_f, 1) % 3600 if course_f else -1
        fix = self.fix
        fix.speed = speed
        fix.course = course


# Sentence type -> parser (functions of the class, called with the parser instance): one table
# for every parser instance, not a dict of bound methods each (the seal's heap is small).
_PARSERS = {
    b"RMC": NmeaParser._rmc,
    b"GGA": NmeaParser._gga,
    b"GSA": NmeaParser._gsa,
    b"GNS": NmeaParser._gns,
    b"VTG": NmeaParser._vtg,
}
