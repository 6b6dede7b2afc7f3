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


def test_lock_pins_interrupt_on_both_edges_into_an_allocation_free_latch():
    import gc

    b, m, t = _board()
    assert b.cable.hard and b.cable.trigger == 3 and b.housing.hard
    b.cable.level = 0
    b.housing.level = 0
    t0 = b.ticks_ms()
    out = [0] * 8
    assert b.lock_edges(out) == 0 and out == [0, -1, -1, 0, 0, -1, -1, 0]
    irqs = b.lock_irqs
    t.advance(300)
    b.cable.edge(1)  # the loop opens ...
    t.advance(700)  # ... across the fake ticks' 2**30 wrap ...
    b.cable.edge(0)  # ... and closes: all between two reads
    t.advance(5)
    assert b.lock_irqs == irqs + 2
    assert b.lock_edges(out) == 2 and m.irq_off == 0
    assert out[0:4] == [2, t0 + 300, t0 + 1000, 700] and out[4:8] == [0, -1, -1, 0]
    # an opening still in progress at a read: its width counts when it closes
    b.housing.edge(1)
    t.advance(40)
    assert b.lock_edges(out) == 1 and out[4:8] == [1, t0 + 1005, -1, 0]
    t.advance(30)
    b.housing.edge(0)
    assert b.lock_edges(out) == 1 and out[4:8] == [1, -1, t0 + 1075, 70]
    alloc = getattr(gc, "mem_alloc", None)
    if alloc is not None:  # MicroPython: a hard IRQ handler must not allocate
        before = alloc()
        for _ in range(20):
            b.cable.edge(1)
            b.cable.edge(0)
        assert alloc() == before


def test_bench_lock_and_pulse_go_through_the_latch_too():
    b, m, t = _board()
    out = [0] * 8
    b.lock_edges(out)
    b.bench_set_lock(False, True)
    assert b.lock_levels() == (False, True)
    assert b.lock_edges(out) == 1 and out[0] == 1 and out[1] >= 0 and out[4] == 0
    b.bench_set_lock(True, True)
    t.advance(200)
    b.bench_pulse("housing", 50)
    assert b.lock_edges(out) == 3 and out[4:8][0] == 2 and out[7] == 50
    assert out[6] - out[5] == 50


def test_unix_at_uses_the_rtc_sub_second():
    b, m, t = _board()
    now = b.ticks_ms()
    b.rtc.sub_us = 300000  # 0.3 s into the current second
    assert b.unix_at(now) == b.unix()
    assert b.unix_at(now - 300) == b.unix()
    assert b.unix_at(now - 301) == b.unix() - 1
    assert b.unix_at(now - 1300) == b.unix() - 1 and b.unix_at(now - 1301) == b.unix() - 2
