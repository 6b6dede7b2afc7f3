"""The GNSS simulator's NMEA, read by the firmware's own parser (navseal_fw.nmea)."""

from __future__ import annotations

import re

import pytest

from navseal.emu.gnss import GnssSim, checksum, format_lat, format_lon, sentence
from navseal_fw.nmea import NmeaParser

T = 1_795_000_000  # 2026-11-18T...Z


def test_checksum_matches_a_published_sentence():
    # From the NMEA 0183 examples everyone quotes (gpsd's and u-blox's documentation).
    body = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert checksum(body) == "47"
    assert sentence(body) == f"${body}*47\r\n"


@pytest.mark.parametrize("value,text", [(43.2567, "4315.40200"), (-0.5, "0030.00000"), (44.99999999, "4500.00000")])
def test_latitude_format_rounds_without_sixty_minutes(value, text):
    assert format_lat(value)[0] == text
    assert "60.0" not in format_lon(76.99999999)[0]


def test_exact_position_speed_course_without_noise():
    sim = GnssSim(1, noise_m=0.0, crc_error_rate=0.0)
    p = NmeaParser()
    assert p.feed(sim.epoch(T, 43.2567, 76.9286, 80.0, 45.0)) == 1
    f = p.fix
    assert f.valid and f.time == T
    assert abs(f.lat_e7 - 432567000) <= 2 and abs(f.lon_e7 - 769286000) <= 2  # 1e-5 minute rounding
    assert abs(f.speed - 800) <= 15  # 0.1 km/h, speed noise sigma 0.3 km/h
    assert abs(f.course - 450) <= 30
    assert 5 <= f.sats <= 18 and 6 <= f.hdop <= 20 and f.dim == 3 and f.quality == 1
    assert p.crc_fails == p.partial == p.bad_fields == 0 and p.clean_sentences == 3


def test_every_sentence_has_a_valid_checksum_and_fits_the_line_limit():
    sim = GnssSim(2, crc_error_rate=0.0)
    for i in range(200):
        for line in sim.epoch(T + i, 45.0 + i * 1e-4, 80.0, 60.0, 90.0).decode().splitlines():
            m = re.fullmatch(r"\$([^*]+)\*([0-9A-F]{2})", line)
            assert m and checksum(m.group(1)) == m.group(2)
            assert len(line) + 2 <= 82  # NMEA 0183's own limit


def test_noise_is_realistic_and_correlated():
    sim = GnssSim(3, noise_m=2.5, crc_error_rate=0.0)
    p = NmeaParser()
    errs = []
    for i in range(600):
        p.feed(sim.epoch(T + i, 43.0, 77.0, 0.0, 0.0))
        errs.append((p.fix.lat_e7 - 430000000) * 0.0111)  # metres north
    rms = (sum(e * e for e in errs) / len(errs)) ** 0.5
    assert 0.5 < rms < 15
    steps = [abs(a - b) for a, b in zip(errs, errs[1:])]
    assert max(steps) < 3 * rms  # it wanders, it does not jump from second to second


def test_damaged_sentences_are_counted_not_fatal():
    sim = GnssSim(4, crc_error_rate=0.05)
    p = NmeaParser()
    fixes = sum(p.feed(sim.epoch(T + i, 43.0, 77.0, 50.0, 10.0)) for i in range(1000))
    assert sim.damaged > 50
    # A damaged header makes an unknown type (skipped before the checksum), else a CRC fail or partial.
    assert p.crc_fails + p.partial + p.unknown == sim.damaged
    # A fix is lost only when its RMC was the damaged sentence (one in three of them).
    assert 1000 - sim.damaged <= fixes < 1000


def test_no_fix_epoch_and_jump():
    sim = GnssSim(5, noise_m=0.0, crc_error_rate=0.0)
    p = NmeaParser()
    assert p.feed(sim.epoch(T, 43.0, 77.0, 50.0, 10.0, fix=False)) == 0
    assert not p.fix.valid and p.no_fix == 1 and p.utc == T  # time runs on without a fix
    sim.offset_m = (10_000.0, 0.0)
    assert p.feed(sim.epoch(T + 1, 43.0, 77.0, 50.0, 10.0)) == 1
    assert abs(p.fix.lat_e7 / 1e7 - 43.0 - 10_000 / 111_195) < 1e-4


def test_same_seed_same_bytes():
    a, b = GnssSim(9), GnssSim(9)
    assert [a.epoch(T + i, 43, 77, 60, 1) for i in range(50)] == [b.epoch(T + i, 43, 77, 60, 1) for i in range(50)]
