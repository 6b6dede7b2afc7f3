"""GNSS: loss and recovery of the fix while ACTIVE; a recorded receiver log played into the seal."""

import os

import pytest

from navseal.hil import nmea_gen
from navseal.hil.frames import EscortData
from navseal.hil.steps import GnssFeed, activate

pytestmark = pytest.mark.needs("gnss", "lock")

CAPTURES = os.path.join(os.path.dirname(__file__), "..", "data", "nmea")  # real receivers' logs


def test_gnss_loss_and_recovery_while_active(dut):
    activate(dut, EscortData(escort_id=8501))
    # Driving the emulator's shipped route (tools/routes/almaty-khorgos.geojson) at 80 km/h.
    feed = GnssFeed(dut.bench.gnss, dut.bench.clock, route="almaty-khorgos", speed_kmh=80).start()
    try:
        dut.expect("RECORDS", timeout=5)
        feed.valid(False)  # the receiver keeps talking, without a fix (RMC status V)
        lost = dut.expect("EVENT", code="GNSS_LOST", timeout=8)
        assert lost.payload["value"] >= 3  # seconds without a fix (bench CONFIG gnss_lost_s=3)
        assert lost.payload["lat"] is not None  # the last known position goes with it
        dut.expect("STATE", where=lambda f: f.payload["alarms"]["GNSS_LOST"], timeout=3)
        # No positions while there is no fix: nothing newer than the event.
        dut.expect_none("RECORDS", where=lambda f: f.payload["first_rseq"] > lost.payload["rseq"], within=2.0)

        feed.valid(True)
        back = dut.expect("EVENT", code="GNSS_REGAINED", timeout=5)
        assert back.payload["rseq"] > lost.payload["rseq"]
        rec = dut.expect("RECORDS", where=lambda f: f.payload["first_rseq"] > back.payload["rseq"], timeout=5)
        assert rec.payload["records"][0]["fix"]["quality"] == 1
        assert abs(rec.payload["records"][0]["speed"] - 800) <= 1  # 0.1 km/h
        dut.expect("STATE", where=lambda f: not f.payload["alarms"]["GNSS_LOST"], timeout=3)
    finally:
        feed.stop()


def _last_rmc_fix(path: str) -> tuple[int, int]:
    """Last valid RMC position of a capture, with float maths (independent of both parsers)."""
    last = None
    for s in nmea_gen.read_log(path):
        f = s.split("*")[0].split(",")
        if f[0][3:] == "RMC" and len(f) > 6 and f[2] == "A":
            lat = int(f[3][:2]) + float(f[3][2:]) / 60
            lon = int(f[5][:3]) + float(f[5][3:]) / 60
            last = (round(lat * 1e7) * (1 if f[4] == "N" else -1), round(lon * 1e7) * (1 if f[6] == "E" else -1))
    assert last is not None, f"{path} has no valid RMC"
    return last


def test_recorded_receiver_log_gives_the_seal_its_position(dut):
    path = os.path.join(CAPTURES, "ublox-neo-m9n.nmea")
    want_lat, want_lon = _last_rmc_fix(path)
    # The capture is from 2020; the seal knows today's date from its gateway and would rightly
    # refuse a receiver living in the past (GNSS_ANOMALY time_backwards), so it plays moved to now.
    dut.bench.gnss.send_sentences(nmea_gen.redate(nmea_gen.read_log(path), dut.bench.clock.unix()))
    state = dut.expect("STATE", where=lambda f: f.payload["fix_time"] != 0, timeout=5)
    assert abs(state.payload["lat"] - want_lat) <= 2
    assert abs(state.payload["lon"] - want_lon) <= 2


def test_a_capture_from_the_past_is_refused_as_time_going_backwards(dut):
    """The same capture as recorded (2020): a receiver replaying the past is an anomaly, not a fix."""
    path = os.path.join(CAPTURES, "ublox-neo-m9n.nmea")
    dut.bench.gnss.send_sentences(nmea_gen.read_log(path))
    anomaly = dut.expect("EVENT", code="GNSS_ANOMALY", timeout=5)
    assert anomaly.payload["value"] >> 24 == 1  # kind 1: time_backwards (docs/protocol.md)
    dut.expect_none("STATE", where=lambda f: f.payload["fix_time"] != 0, within=2.0)
