"""Debounced tamper inputs: the cable loop and the housing switch. Sans-I/O.

API (the seal core depends on this; keep it stable)
---------------------------------------------------
    cable = DebouncedInput(debounce_ms=50, closed_level=1, closed=True)
    ev = cable.update(raw_level, now_ms)   # raw pin level (0/1) sampled at now_ms
    # ev is NO_CHANGE (0), OPENED (1) or CLOSED (2): an edge of the DEBOUNCED state.
    cable.closed      # debounced state, bool
    cable.glitches    # excursions that ended before they became a change (counted, not alarms)
    cable.settled()   # True when no excursion is being integrated (the raw level agrees)
    cable.settle()    # drop the excursion being integrated

    lock = LockInputs(debounce_ms=50)      # both inputs, as the wire sees them
    ev = lock.update(cable_raw, housing_raw, now_ms)   # bit set of the four edges below
    if ev & CABLE_OPENED: ...              # CABLE_OPENED 1, CABLE_CLOSED 2,
                                           # HOUSING_OPENED 4, HOUSING_CLOSED 8, and
                                           # CABLE_BEGAN 16, HOUSING_BEGAN 32: this sample
                                           # started an excursion from the debounced state
    lock.bits()   # wire lock byte: bit 7 cable_intact, bit 6 housing_closed
    lock.intact() # both closed

Debounce rule (an integrating debouncer): time the raw level spends away from the debounced
state is added up; time back at the debounced state drains it at half speed. When the sum
reaches `debounce_ms` the state flips and update() returns the edge. So
- a single glitch shorter than debounce_ms never flips the state;
- a real break held for debounce_ms always flips it, however the samples fall;
- a chattering break (a cut cable whose ends touch now and then) still flips it once it is
  away at least a third of the time, where a plain "stable for N ms" debouncer could be
  reset forever.
`closed` starts from the constructor (the core passes the persisted state); if the input
really is in the other state at boot, the first `debounce_ms` of samples report that edge.

Latching while ACTIVE is the escort state machine's business, not this module's: this one
only turns raw samples into clean edges.

now_ms is any millisecond clock (time.ticks_ms() on the board, a virtual clock in the
simulator). A step backwards is read as a MicroPython ticks wrap-around (period 2**30 ms);
failing that it counts as zero time.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]  # stub's signature is generic
        return x


NO_CHANGE = const(0)
OPENED = const(1)
CLOSED = const(2)

CABLE_OPENED = const(1)
CABLE_CLOSED = const(2)
HOUSING_OPENED = const(4)
HOUSING_CLOSED = const(8)
CABLE_BEGAN = const(16)
HOUSING_BEGAN = const(32)

_TICKS_PERIOD = const(0x40000000)  # MicroPython ticks_ms() wraps at 2**30


class DebouncedInput:
    """One contact input, debounced (see module docstring)."""

    def __init__(self, debounce_ms=50, closed_level=1, closed=True):
        if debounce_ms < 0:
            raise ValueError("debounce_ms")
        self.debounce_ms = debounce_ms
        self.closed_level = 1 if closed_level else 0
        self.closed = bool(closed)
        self.glitches = 0
        self._away = 0  # integrated time away from the debounced state, in half-milliseconds
        self._last_ms = None  # time of the previous sample
        self._last_away = False

    def settled(self):
        """No excursion from the debounced state is being integrated."""
        return self._away == 0 and not self._last_away

    def settle(self):
        """Forget the excursion being integrated (it was accounted for otherwise: the seal's
        pin-interrupt latch measured it whole)."""
        self._away = 0
        self._last_away = False

    def update(self, raw_level, now_ms):
        """Take one raw sample; return NO_CHANGE, OPENED or CLOSED."""
        raw_closed = (1 if raw_level else 0) == self.closed_level
        away = raw_closed != self.closed
        last = self._last_ms
        self._last_ms = now_ms
        if last is None:
            dt = 0
        else:
            dt = now_ms - last
            if dt < 0:
                dt += _TICKS_PERIOD
                if dt < 0:
                    dt = 0
        # The level seen at the previous sample is taken to have held until now.
        # Half-millisecond units: time away counts double, time back drains at half speed.
        if self._last_away:
            self._away += 2 * dt
        elif self._away:
            self._away -= dt
            if self._away <= 0:
                self._away = 0
                self.glitches += 1
        self._last_away = away
        if away and self._away >= 2 * self.debounce_ms:
            self.closed = raw_closed
            self._away = 0
            self._last_away = False
            return CLOSED if raw_closed else OPENED
        return NO_CHANGE

    def _began(self, was_away):
        # After update(): did this sample start an excursion (away now, nothing integrated and
        # not away before)? (With debounce_ms 0 the flip itself is the start: not reported.)
        return self._last_away and not was_away and self._away == 0


class LockInputs:
    """Cable loop plus housing switch, reported the way the wire wants them."""

    def __init__(self, debounce_ms=50, cable_closed_level=1, housing_closed_level=1,
                 cable_closed=True, housing_closed=True):
        self.cable = DebouncedInput(debounce_ms, cable_closed_level, cable_closed)
        self.housing = DebouncedInput(debounce_ms, housing_closed_level, housing_closed)

    def update(self, cable_raw, housing_raw, now_ms):
        """Sample both inputs; return a bit set of CABLE_/HOUSING_ OPENED/CLOSED edges."""
        ev = 0
        c = self.cable
        was = c._last_away
        e = c.update(cable_raw, now_ms)
        if e == OPENED:
            ev |= CABLE_OPENED
        elif e == CLOSED:
            ev |= CABLE_CLOSED
        if c._began(was):
            ev |= CABLE_BEGAN
        h = self.housing
        was = h._last_away
        e = h.update(housing_raw, now_ms)
        if e == OPENED:
            ev |= HOUSING_OPENED
        elif e == CLOSED:
            ev |= HOUSING_CLOSED
        if h._began(was):
            ev |= HOUSING_BEGAN
        return ev

    def intact(self):
        return self.cable.closed and self.housing.closed

    def bits(self):
        return (0x80 if self.cable.closed else 0) | (0x40 if self.housing.closed else 0)
