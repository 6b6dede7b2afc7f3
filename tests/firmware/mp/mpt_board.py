# board_esp32.Board on fake `machine`/`time`: pin polarity, battery curve, reset causes,
# non-wrapping clock, RTC setting, flash files. Runs under CPython and MicroPython.
import os

import mpunit
from fakeboard import Machine, Time
from navseal_fw.board_esp32 import (PIN_CABLE, PIN_GNSS_RX, Board, battery_percent)


def _board(cause=3):
    d = mpunit.TMP + "/board"
    m = Machine(cause)
    t = Time()
    return Board(machine=m, os_mod=os, time_mod=t, flash_dir=d), m, t


def test_pins_uart_and_lock_polarity():
    b, m, t = _board()
    assert b.cable.pin == PIN_CABLE and b.gnss_uart.rx == PIN_GNSS_RX
    assert b.lock_levels() == (False, False)  # pull-ups, nothing connected: both open
    b.cable.level = 0
    b.housing.level = 0
    assert b.lock_levels() == (True, True)
    assert b.gnss_read() is None
    b.gnss_uart.inbox.extend(b"$GPRMC")
    assert b.gnss_read() == b"$GPRMC" and b.gnss_read() is None


def test_battery_curve():
    assert battery_percent(3000) == 0 and battery_percent(4300) == 100
    assert battery_percent(3700) == 25 and battery_percent(3725) == 32
    b, m, t = _board()
    b.adc.uv = 1900000  # 1.9 V at the divider = 3.8 V cell
    assert b.battery_pct() == 55


def test_reset_causes_map_to_protocol_codes():
    for cause, code in ((1, 0), (3, 1), (5, 2), (4, 4), (2, 255)):
        b, m, t = _board(cause)
        assert b.reset_cause() == code, (cause, code)


def test_clock_does_not_wrap_and_rtc_is_set_in_utc():
    b, m, t = _board()
    t0 = b.ticks_ms()
    t.advance(600)
    t.advance(600)  # across the 2**30 wrap of the fake ticks
    assert b.ticks_ms() - t0 == 1200
    assert b.unix() == 1764115200
    b.set_unix(1764115200 + 3661)  # 2025-11-26 01:01:01 UTC, a Wednesday (weekday 2)
    assert b.rtc.set_to == (2025, 11, 26, 2, 1, 1, 1, 0)


def test_watchdog_and_files():
    b, m, t = _board()
    b.wdt_feed()  # not started: no-op
    b.wdt_start(10000)
    b.wdt_feed()
    assert b.wdt.timeout == 10000 and b.wdt.fed == 1
    f = b.open("x.tmp", "wb")
    f.write(b"abc")
    f.close()
    b.rename("x.tmp", "x")
    assert "x" in b.listdir() and b.size("x") == 3
    b.remove("x")
    assert "x" not in b.listdir()
