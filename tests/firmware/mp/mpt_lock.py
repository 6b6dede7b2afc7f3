# Debounced lock inputs. Runs under CPython and MicroPython.
from navseal_fw.lock import (CABLE_BEGAN, CABLE_CLOSED, CABLE_OPENED, CLOSED, HOUSING_BEGAN,
                             HOUSING_OPENED, NO_CHANGE, OPENED, DebouncedInput, LockInputs)


def drive(inp, samples):
    """samples: (level, ms) pairs, sampled every ms in between; returns [(t, event)]."""
    out = []
    t = 0
    for level, dur in samples:
        for _ in range(dur):
            ev = inp.update(level, t)
            if ev != NO_CHANGE:
                out.append((t, ev))
            t += 1
    return out


def test_glitch_shorter_than_debounce_is_not_a_change():
    inp = DebouncedInput(debounce_ms=50)
    assert drive(inp, [(1, 100), (0, 49), (1, 200)]) == []
    assert inp.closed and inp.glitches == 1


def test_real_break_always_reported_once():
    inp = DebouncedInput(debounce_ms=50)
    assert drive(inp, [(1, 100), (0, 500)]) == [(150, OPENED)]
    assert not inp.closed
    assert drive(inp, [(1, 60)]) == [(50, CLOSED)]


def test_slow_sampling_still_sees_a_held_break():
    inp = DebouncedInput(debounce_ms=50)
    events = [inp.update(lvl, t) for lvl, t in ((1, 0), (0, 100), (0, 200), (0, 300))]
    assert events == [NO_CHANGE, NO_CHANGE, OPENED, NO_CHANGE]


def test_chattering_break_is_caught():
    inp = DebouncedInput(debounce_ms=50)
    # a cut cable whose ends touch: open 20 ms, closed 20 ms, forever
    events = drive(inp, [(0, 20), (1, 20)] * 20)
    assert events and events[0][1] == OPENED


def test_closed_level_zero_and_initial_open_state():
    inp = DebouncedInput(debounce_ms=10, closed_level=0, closed=False)
    assert drive(inp, [(0, 30)]) == [(10, CLOSED)]


def test_ticks_wraparound():
    inp = DebouncedInput(debounce_ms=50)
    t0 = 0x40000000 - 20
    assert inp.update(1, t0) == NO_CHANGE
    assert inp.update(0, t0 + 10) == NO_CHANGE
    assert inp.update(0, (t0 + 40) & 0x3FFFFFFF) == NO_CHANGE
    assert inp.update(0, (t0 + 70) & 0x3FFFFFFF) == OPENED


def test_lock_inputs_bits_and_edges():
    lock = LockInputs(debounce_ms=20)
    assert lock.bits() == 0xC0 and lock.intact()
    ev = 0
    for t in range(0, 40):
        ev |= lock.update(0, 1, t)
    # the edge, and the sample that began the excursion (the tamper logic dates openings by it)
    assert ev == CABLE_OPENED | CABLE_BEGAN and lock.bits() == 0x40 and not lock.intact()
    ev = 0
    for t in range(40, 80):
        ev |= lock.update(1, 0, t)
    assert ev == CABLE_CLOSED | HOUSING_OPENED | CABLE_BEGAN | HOUSING_BEGAN and lock.bits() == 0x80
