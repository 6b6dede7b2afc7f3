"""Debounce properties: a lone glitch shorter than the debounce is never a change; a break
held for the debounce time is always exactly one change, whatever the sampling period."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from navseal_fw.lock import CLOSED, NO_CHANGE, OPENED, DebouncedInput


def run(inp, level_at, t_end, period):
    events = []
    t = 0
    while t <= t_end:
        ev = inp.update(level_at(t), t)
        if ev != NO_CHANGE:
            events.append((t, ev))
        t += period
    return events


@given(debounce=st.integers(5, 200), period=st.integers(1, 5), start=st.integers(0, 500),
       width_frac=st.floats(0.0, 0.95))
@settings(max_examples=300, deadline=None)
def test_lone_glitch_is_never_a_change(debounce, period, start, width_frac):
    width = int(debounce * width_frac)
    # the sampler sees the glitch as lasting up to one period longer than it is
    width = max(0, width - period)
    inp = DebouncedInput(debounce_ms=debounce)
    events = run(inp, lambda t: 0 if start <= t < start + width else 1, start + 10 * debounce, period)
    assert events == [] and inp.closed


@given(debounce=st.integers(5, 200), period=st.integers(1, 100), start=st.integers(0, 500),
       hold_extra=st.integers(0, 500))
@settings(max_examples=300, deadline=None)
def test_held_break_is_exactly_one_change(debounce, period, start, hold_extra):
    # the first sample that sees the break is up to one period late, the deciding one too
    hold = debounce + 2 * period + hold_extra
    inp = DebouncedInput(debounce_ms=debounce)
    events = run(inp, lambda t: 0 if start <= t < start + hold + period else 1,
                 start + hold - 1, period)
    assert [e for _, e in events] == [OPENED]
    t_open = events[0][0]
    assert start + debounce <= t_open <= start + debounce + 2 * period


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 300)), max_size=40),
       st.integers(1, 100))
@settings(max_examples=300, deadline=None)
def test_events_alternate_and_match_state(pattern, debounce):
    inp = DebouncedInput(debounce_ms=debounce)
    t = 0
    last = None
    for level, dur in pattern:
        for _ in range(dur):
            ev = inp.update(level, t)
            if ev != NO_CHANGE:
                assert ev != last
                assert inp.closed == (ev == CLOSED)
                last = ev
            t += 1
