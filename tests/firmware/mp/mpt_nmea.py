# NMEA parser: exact integer degrees, dates, no-fix, garbage, chunking, the real captures.
# Runs under CPython (pytest, in process) and under the real MicroPython interpreter.
import mpunit
from navseal_fw.nmea import NO_POS, NmeaParser, days_from_civil


def nmea(body):
    """A sentence with its correct checksum and CR LF."""
    cs = 0
    for c in body.encode():
        cs ^= c
    return ("$%s*%02X\r\n" % (body, cs)).encode()


RMC = "GPRMC,081836,A,3751.65,S,14507.36,E,000.0,360.0,130998,011.3,E"


def test_rmc_gives_exact_integer_degrees_and_unix_time():
    p = NmeaParser()
    assert p.feed(nmea(RMC)) == 1
    f = p.fix
    # 37 deg 51.65 min = 37.860833.. deg; 145 deg 07.36 min = 145.122666.. deg
    assert (f.lat_e7, f.lon_e7) == (-378608333, 1451226667)
    assert f.time == 905674716 == p.utc  # 1998-09-13 08:18:36 UTC
    assert f.valid and f.quality == 1 and f.count == 1
    assert f.speed == 0 and f.course == 0  # 360.0 wraps to 0


def test_degree_rounding_and_precision():
    p = NmeaParser()
    p.feed(nmea("GNRMC,120000.00,A,4916.45,N,12311.12,W,10.0,45.5,010126,,,A"))
    f = p.fix
    assert (f.lat_e7, f.lon_e7) == (492741667, -1231853333)
    assert f.speed == 185  # 10 knots = 18.52 km/h
    assert f.course == 455 and f.course_u8() == 23  # 45.5 deg in 2-degree steps, rounded
    p.feed(nmea("GNRMC,120001.00,A,0000.0000001,N,00000.0000006,E,0,0,010126,,,A"))
    assert (p.fix.lat_e7, p.fix.lon_e7) == (0, 0)  # 1e-7 minute is far below 1e-7 degree
    p.feed(nmea("GNRMC,120002.00,A,8959.9999999,N,17959.99999999,E,0,0,010126,,,A"))
    assert (p.fix.lat_e7, p.fix.lon_e7) == (900000000, 1800000000)


def test_days_from_civil():
    assert days_from_civil(1970, 1, 1) == 0
    assert days_from_civil(2000, 3, 1) == 11017
    assert days_from_civil(2026, 11, 26) * 86400 + 4 * 3600 == 1795665600


def test_no_fix_keeps_last_position_and_counts():
    p = NmeaParser()
    p.feed(nmea(RMC))
    assert p.feed(nmea("GPRMC,081837,V,,,,,,,130998,,,N")) == 0
    f = p.fix
    assert not f.valid and f.quality == 0 and p.no_fix == 1
    assert f.lat_e7 == -378608333 and f.time == 905674716  # last known, unchanged
    assert p.utc == 905674717  # the clock still advances without a fix
    assert p.feed(nmea("GPRMC,,V,,,,,,,,,,N")) == 0  # quectel's fully empty no-fix
    assert p.feed(nmea("GPRMC,081838,A,3751.65,S,14507.36,E,0,0,130998,,,N")) == 0  # mode N
    assert p.no_fix == 3 and p.bad_fields == 0


def test_fresh_parser_has_no_position():
    p = NmeaParser()
    assert p.fix.lat_e7 == NO_POS and p.fix.time == 0 and not p.fix.valid
    assert p.fix.course_u8() == 255 and p.fix.hdop_u8() == 255 and p.fix.fix_u8() == 0


def test_gga_gsa_gns_vtg_fill_quality_sats_hdop_speed():
    p = NmeaParser()
    p.feed(nmea("GPGGA,081836,3751.65,S,14507.36,E,2,11,0.9,545.4,M,46.9,M,,"))
    p.feed(nmea(RMC))
    f = p.fix
    assert (f.quality, f.sats, f.hdop) == (2, 11, 9)
    assert f.fix_u8() == (2 << 6) | 11
    p.feed(nmea("GNGSA,A,3,01,02,03,,,,,,,,,,2.5,1.3,2.1,1"))
    assert f.dim == 3 and f.hdop == 13
    p.feed(nmea("GNGNS,081837,3751.65,S,14507.36,E,NAE,07,1.1,545.4,46.9,,,V"))
    assert (f.quality, f.sats, f.hdop) == (1, 7, 11)
    p.feed(nmea("GNGNS,081837,3751.65,S,14507.36,E,EEN,04,2.0,545.4,46.9,,,V"))
    assert f.quality == 3
    p.feed(nmea("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"))
    assert (f.speed, f.course) == (102, 547)
    p.feed(nmea("GPVTG,054.7,034.4,005.5,010.3"))  # NMEA 2.0 layout without unit letters
    assert (f.speed, f.course) == (103, 547)
    p.feed(nmea("GPVTG,,T,,M,,N,,K,N"))  # no fix: leaves them alone
    assert (f.speed, f.course) == (103, 547)
    p.feed(nmea("GPGGA,081838,,,,,0,00,99.99,,M,,M,,"))
    assert (f.quality, f.sats, f.hdop, f.hdop_u8()) == (0, 0, 999, 254)
    assert p.clean_sentences == 9 and p.bad_fields == 0


def test_talkers():
    for talker in ("GP", "GL", "GA", "GB", "BD", "GN"):
        p = NmeaParser()
        assert p.feed(nmea(talker + RMC[2:])) == 1, talker
    p = NmeaParser()
    assert p.feed(nmea("GQ" + RMC[2:]) + nmea("PMTK001,604,3") + nmea("GPGSV,1,1,00")) == 0
    assert p.unknown == 3 and p.sentences == 0 and p.clean_sentences == 0


def test_checksum_errors_and_partial_lines():
    p = NmeaParser()
    good = nmea(RMC)
    bad = good.replace(b"*", b"*0")[:-5] + b"00\r\n"
    assert p.feed(bad) == 0 and p.crc_fails == 1
    assert p.feed(good[:-5] + b"*zz\r\n") == 0 and p.crc_fails == 2
    assert p.feed(good[:30] + b"\r\n") == 0 and p.partial == 1
    assert p.feed(good[:-2] + b"junk\r\n") == 0 and p.crc_fails == 3
    lower = nmea(RMC.lower())
    assert p.feed(lower[:-1]) == 0  # no line end yet
    assert p.feed(b"\n") == 0 and p.unknown == 1  # '$gprmc' is no known sentence
    assert p.feed(good) == 1


def test_two_sentences_run_together_both_count():
    p = NmeaParser()
    line = nmea("GPGSA,A,1,,,,,,,,,,,,,,,")[:-2] + nmea(RMC)
    assert p.feed(line) == 1 and p.clean_sentences == 2


def test_a_new_dollar_cuts_a_partial_sentence():
    p = NmeaParser()
    assert p.feed(b"$GPGSV,3,1,11,23,87,270,,13,68,270,,24,60,270," + nmea(RMC)) == 1
    assert p.partial == 1


def test_line_length_limit():
    p = NmeaParser()
    long_line = nmea("GPGSA," + "1," * 80 + "1")
    assert p.feed(long_line + nmea(RMC)) == 1
    assert p.too_long == 1 and p.clean_sentences == 1


def test_bad_fields_are_counted_not_raised():
    p = NmeaParser()
    for body in ("GPRMC,081836,A,3760.00,S,14507.36,E,0,0,130998,,",   # 60 minutes
                 "GPRMC,081836,A,3751.65,X,14507.36,E,0,0,130998,,",   # hemisphere
                 "GPRMC,081836,A,3751.65,S,14507.36,E,0,0,,,",        # fix without a date
                 "GPRMC,081836,A,,S,14507.36,E,0,0,130998,,",         # fix without latitude
                 "GPRMC,250000,A,3751.65,S,14507.36,E,0,0,130998,,",   # hour 25
                 "GPRMC,081836,A,3751.65,S,14507.36,E,-1,0,130998,,",  # negative speed
                 "GPRMC,081836,X,,,,,,,130998,,",                      # status letter
                 "GPGGA,081836,,,,,x,,,,,,,,",                        # quality not a number
                 "GPGGA,081836",                                      # too few fields
                 "GPGSA,A,7,,,,,,,,,,,,,1,1,1"):                      # dimension 7
        assert p.feed(nmea(body)) == 0, body
    assert p.bad_fields == 10 and p.fix.lat_e7 == NO_POS and p.fix.count == 0


def test_binary_noise_never_raises_and_is_counted():
    p = NmeaParser()
    noise = bytes(range(256)) * 3
    assert p.feed(noise) == 0
    assert p.feed(b"\x00\xff\r\n\r\n" + nmea(RMC) + b"\x00\x00\x00") == 1
    assert p.noise > 0
    # a stream that is all '$' and '*' and newlines
    assert p.feed(b"$$$***\n$*\n*$\r\n$" * 20) == 0
    assert p.feed(nmea(RMC)) == 1


def test_any_chunking_gives_the_same_result():
    data = (b"\x00garbage" + nmea("GPGGA,081836,3751.65,S,14507.36,E,1,08,0.9,545.4,M,46.9,M,,")
            + nmea(RMC) + nmea("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A") + b"$GPGSA,A,3")
    whole = NmeaParser()
    n_whole = whole.feed(data)
    for size in (1, 2, 3, 7, 64):
        p = NmeaParser()
        n = 0
        for i in range(0, len(data), size):
            n += p.feed(data[i : i + size])
        assert n == n_whole == 1
        assert (p.fix.lat_e7, p.fix.speed, p.fix.sats, p.noise, p.clean_sentences) == \
            (whole.fix.lat_e7, whole.fix.speed, whole.fix.sats, whole.noise, whole.clean_sentences)
    assert whole.feed(bytearray(nmea(RMC))) == 1 and whole.feed(memoryview(nmea(RMC))) == 1


# Counts on the real receiver captures (tests/data/nmea): the same under both interpreters.
# The CPython-only test test_nmea_captures.py checks fixes against an independent reference.
CAPTURES = {
    # file: (fixes, no_fix, crc_fails, partial, too_long, bad_fields)
    "furuno-gt88-gns.nmea": (16, 0, 0, 1, 0, 0),
    "gps320fw-garbage-checksum.nmea": (1, 15, 15, 9, 0, 0),
    "marine-bandg-zeus2-9.nmea": (146, 0, 0, 0, 0, 0),
    "mtk3301-sjn-fv-m11.nmea": (4, 7, 0, 4, 11, 0),
    "quectel-eg25g-nofix.nmea": (23, 37, 0, 1, 0, 0),
    "sirf2-haicom-hi305n.nmea": (68, 6, 0, 0, 0, 0),
    "ublox-neo-m9n.nmea": (61, 0, 0, 0, 0, 0),
    "unicore-um621-multignss.nmea": (16, 4, 0, 9, 0, 0),
}


def test_real_captures():
    for name in sorted(CAPTURES):
        with open(mpunit.NMEA + "/" + name, "rb") as fh:
            data = fh.read()
        p = NmeaParser()
        n = 0
        for i in range(0, len(data), 64):
            n += p.feed(data[i : i + 64])
        got = (n, p.no_fix, p.crc_fails, p.partial, p.too_long, p.bad_fields)
        assert got == CAPTURES[name], (name, got)


def test_mtk_first_fix_values():
    with open(mpunit.NMEA + "/mtk3301-sjn-fv-m11.nmea", "rb") as fh:
        data = fh.read()
    p = NmeaParser()
    seen = None
    for line in data.split(b"\n"):
        if p.feed(line + b"\n") and seen is None:
            f = p.fix
            seen = (f.time, f.lat_e7, f.lon_e7, f.speed, f.course)
    # line 60: $GPRMC,081436.000,A,5212.982135,N,00653.101394,E,0.039,0.00,230808
    assert seen == (1219479276, 522163689, 68850232, 1, 0), seen


FIX_BODY = "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"


def test_only_autonomous_differential_and_rtk_modes_are_a_fix():
    for mode, is_fix in (("A", 1), ("D", 1), ("F", 1), ("P", 1), ("R", 1), ("", 1),
                         ("E", 0), ("M", 0), ("S", 0), ("N", 0), ("X", 0), ("AA", 0)):
        p = NmeaParser()
        body = FIX_BODY + ("," + mode if mode else "")
        assert p.feed(nmea(body)) == is_fix, mode
        assert p.fix.valid == bool(is_fix) and p.no_fix == 1 - is_fix, mode
        assert p.bad_fields == 0 and p.bad_dates == 0, mode
    p = NmeaParser()
    assert p.feed(nmea(FIX_BODY + ",A")) == 1
    assert p.feed(nmea(FIX_BODY.replace("123519", "123520") + ",S")) == 0  # simulator
    assert not p.fix.valid and p.fix.time == 764426119  # the last real fix stays


def test_junk_after_the_decimals_is_refused_however_far_out():
    for field in ("4807.038abc", "4807.0380000abc", "4807.03800000000x", "4807.038 ",
                  "4807.-38"):
        p = NmeaParser()
        assert p.feed(nmea(FIX_BODY.replace("4807.038", field) + ",A")) == 0, field
        assert p.bad_fields == 1 and p.fix.count == 0, field
    for field, speed in (("022.4x", 0), ("022.40000000001", 1)):
        p = NmeaParser()
        assert p.feed(nmea(FIX_BODY.replace("022.4", field) + ",A")) == speed, field
    p = NmeaParser()
    assert p.feed(nmea(FIX_BODY.replace("123519", "123519.00z") + ",A")) == 0
    assert p.feed(nmea(FIX_BODY.replace("123519", "123519z") + ",A")) == 0
    assert p.feed(nmea(FIX_BODY.replace("123519", "123519.25") + ",A")) == 1


def test_dates_and_times_that_do_not_exist_are_refused_and_counted():
    bad = ("310294", "300294", "290223", "290290", "310494", "311194", "231394", "000394",
           "230094", "23039x")
    for date in bad:
        p = NmeaParser()
        assert p.feed(nmea(FIX_BODY.replace("230394", date) + ",A")) == 0, date
        assert p.bad_dates == 1 and p.bad_fields == 1 and p.utc == 0, date
    for date in ("290224", "290200", "290296", "310194", "311294", "300494"):
        p = NmeaParser()
        assert p.feed(nmea(FIX_BODY.replace("230394", date) + ",A")) == 1, date
    for tod in ("243519", "126019", "120060"):
        p = NmeaParser()
        got = p.feed(nmea(FIX_BODY.replace("123519", tod) + ",A"))
        assert got == (1 if tod == "120060" else 0), tod  # second 60: a leap second
        assert p.bad_dates == (0 if tod == "120060" else 1), tod
    # A sentence that does not claim a fix is refused the same way but is no anomaly.
    p = NmeaParser()
    assert p.feed(nmea("GPRMC,123519,V,,,,,,,310294,,,N")) == 0
    assert p.bad_fields == 1 and p.bad_dates == 0 and p.utc == 0
    assert p.feed(nmea(FIX_BODY.replace("230394", "310294") + ",S")) == 0
    assert p.bad_dates == 0
