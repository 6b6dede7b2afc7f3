# Opening episodes (sans-I/O): the lock inputs' samples and pin-interrupt latch in, journal
# events and the escort's evidence out. docs/firmware.md "Opening episodes" has the state table.
#
#   t = Tamper(core)             # the SealCore: its hal, lock (LockInputs), evidence, journal,
#                                # and _event_at(code, value, unix_time), which journals
#   t.sample(now_ms, active)     # one poll: read the latch, sample, debounce, episodes
#   t.restore(now_ms) / t.begin()  # at boot (debounced state from the evidence) / ACTIVATE
#   t.flush_pending()            # journal an event whose write an exception or reset cut off
#   t.pend_due()                 # ... is there one
#   t.irq_pending()              # the board saw an edge since the last sample
#
# An episode starts at the first opening edge of either input (debounced, or a pulse the
# sampling missed that the interrupt latch caught, at least debounce_ms wide) and ends when
# both inputs are closed and debounced. Each episode journals one CABLE_CUT or HOUSING_OPENED
# (the input that opened first; value = episode number, 1-based per escort) dated by the edge;
# the other input opening within it journals its own event with the same number; the end
# journals LOCK_RESTORED (value episode << 8 | lock bits), dated by the last closing edge.
#
# Persist before acting: the evidence (episode count, open inputs, the event about to be
# journaled and the rseq it will get) is saved before each journal write. After a reset, or an
# exception between the two, flush_pending() writes the event unless the journal already holds
# it (its top reached that rseq): one event per fact, never none, never two.

from navseal_fw.evidence import CABLE, HOUSING

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

EV_CABLE_CUT = const(1)  # the protocol's event codes (codec.EV_*)
EV_HOUSING_OPENED = const(2)
EV_LOCK_RESTORED = const(3)
_LOCK_SAMPLE_MS = const(10)  # while an input is away from its debounced state
_LOCK_IDLE_MS = const(1000)  # otherwise (the pin interrupt covers what happens in between)
_NONE = const(-1)
_BOTH_CLOSED = const(0xC0)
_OPEN_AT = const(8)  # in _latch, see __init__
_CLOSE_AT = const(10)  # lock bits when an episode ends: cable intact, housing closed


class Tamper:
    # One reference to the core rather than five to its parts: a MicroPython instance's
    # attributes cost RAM, the seal's heap is small.
    @property
    def lock(self):
        return self._c.lock

    @property
    def ev(self):
        return self._c.evidence

    def __init__(self, core):
        self._c = core
        hal = core.hal
        # HAL interrupt latch (hal.py): per input edges, first opening edge, last closing edge,
        # time open in completed pulses. Absent on a HAL without interrupts.
        self._has_latch = hasattr(hal, "lock_edges")
        # latch[0:8]: the HAL's latch as read; then per input the ms its raw level left the
        # closed state (this opening: 8, 9) and of its last closing edge (10, 11). One list.
        self._latch = [0, _NONE, _NONE, 0, 0, _NONE, _NONE, 0, _NONE, _NONE, _NONE, _NONE]
        if self._has_latch:
            hal.lock_edges(self._latch)  # a board boots with it empty; a simulated one may not
        self._irqs = getattr(hal, "lock_irqs", 0)
        self._end_at = _NONE  # ms of the closing edge that may end the episode (both closed)
        self.pulses = 0  # short openings the sampling missed and the latch turned into episodes
        self.glitches = 0  # ... and shorter than debounce_ms: counted, no episode
        self.next_ms = 0  # when the inputs should be sampled next

    def pend_due(self):
        return self.ev.pend_code != 0

    def irq_pending(self):
        return self._has_latch and self._c.hal.lock_irqs != self._irqs

    def begin(self):
        # ACTIVATE (the lock is intact): a new escort has no episode yet.
        self._end_at = _NONE

    def restore(self, now_ms):
        # At boot: the debounced state the evidence persisted, so an input that was open stays
        # open (no second episode) and one that closed while the seal was off ends the episode.
        ev = self.ev
        ob = ev.open_bits if ev.opening_now and not ev.closed else 0
        self.lock.cable.closed = not ob & CABLE
        self.lock.housing.closed = not ob & HOUSING
        if ev.opening_now and not ev.closed and not ob:
            self._end_at = now_ms  # both had closed; the end was not confirmed yet

    # ---- one sample -----------------------------------------------------------------------

    def sample(self, now_ms, active):
        hal = self._c.hal
        lock = self._c.lock
        deb = lock.cable.debounce_ms
        cable, housing = hal.lock_levels()
        cable = bool(cable)
        housing = bool(housing)
        latch = self._latch
        edges = 0
        if self._has_latch:
            self._irqs = hal.lock_irqs
            edges = hal.lock_edges(latch)
        if (not edges and cable == lock.cable.closed and housing == lock.housing.closed
                and lock.cable.settled() and lock.housing.settled() and self._end_at == _NONE):
            # Nothing happened (the usual sample): the debouncers, settled, would not move.
            self.next_ms = now_ms + _LOCK_IDLE_MS
            return
        missed = None  # [(t_open, input, t_close)] of pulses the sampling never saw
        for i in (0, 1):
            inp = lock.cable if i == 0 else lock.housing
            closed_now = cable if i == 0 else housing
            if edges and latch[4 * i]:
                first_open = latch[4 * i + 1]
                last_close = latch[4 * i + 2]
                open_ms = latch[4 * i + 3]  # in openings that also closed since the last read
                if inp.closed and closed_now and open_ms:
                    # Open and closed again between two samples (or the samples saw too little
                    # of it to debounce): the latch measured it. Its start: the first opening
                    # edge in the latch, or the one an earlier read or sample saw.
                    if open_ms >= deb:
                        t0 = first_open
                        if t0 == _NONE:
                            t0 = latch[_OPEN_AT + i]
                        if t0 == _NONE:
                            t0 = (now_ms if last_close == _NONE else last_close) - open_ms
                        if missed is None:
                            missed = []
                        missed.append((t0, i, now_ms if last_close == _NONE else last_close))
                        latch[_OPEN_AT + i] = _NONE
                        self.pulses += 1
                    else:
                        self.glitches += 1
                elif not inp.closed and last_close != _NONE:
                    latch[_CLOSE_AT + i] = last_close
        ev = lock.update(1 if cable else 0, 1 if housing else 0, now_ms)
        for i in (0, 1):
            inp = lock.cable if i == 0 else lock.housing
            if missed is not None and inp.closed and (cable if i == 0 else housing):
                for m in missed:
                    if m[1] == i:
                        inp.settle()  # the latch measured that excursion: it is not a glitch
            if ev & (16 if i == 0 else 32):  # CABLE_BEGAN / HOUSING_BEGAN
                # A new excursion from the debounced state: its edge is the latch's (the first
                # opening / last closing edge since the last read) or, without one, this sample.
                t = now_ms
                if edges and latch[4 * i]:
                    t = latch[4 * i + 1] if inp.closed else latch[4 * i + 2]
                    if t == _NONE:
                        t = now_ms
                if inp.closed:
                    latch[_OPEN_AT + i] = t
                else:
                    latch[_CLOSE_AT + i] = t
            elif inp.closed and inp.settled():
                latch[_OPEN_AT + i] = _NONE  # a glitch drained away
        unsettled = cable != lock.cable.closed or housing != lock.housing.closed
        if ev & 15 or missed:
            # Edges of this sample, in the order they happened (rare: a list is fine here).
            seq = missed if missed is not None else []
            for i in (0, 1):
                if ev & (1 if i == 0 else 4):  # CABLE_OPENED / HOUSING_OPENED
                    t = latch[_OPEN_AT + i]
                    seq.append((now_ms if t == _NONE else t, i, _NONE))
                    latch[_OPEN_AT + i] = _NONE
                if ev & (2 if i == 0 else 8):  # CABLE_CLOSED / HOUSING_CLOSED
                    t = latch[_CLOSE_AT + i]
                    seq.append((now_ms if t == _NONE else t, i + 2, _NONE))
                    latch[_CLOSE_AT + i] = _NONE
            if active:
                self._episodes(seq, now_ms, deb)
        if active and self._end_at != _NONE:
            # Both inputs closed: the episode ends once they stayed so for debounce_ms (an
            # opening within that time belongs to it), dated by the last closing edge.
            if (now_ms >= self._end_at + deb and lock.cable.closed and lock.housing.closed
                    and lock.cable.settled() and lock.housing.settled()):
                self._end(self._end_at, now_ms)
            else:
                unsettled = True
        self.next_ms = now_ms + (_LOCK_SAMPLE_MS if unsettled else _LOCK_IDLE_MS)

    # ---- episodes ---------------------------------------------------------------------------

    def _episodes(self, seq, now_ms, deb):
        # seq: (t_ms, what, t_close_ms): what 0/1 = cable/housing opened (t_close: the pulse's
        # end when the latch caught it whole), 2/3 = cable/housing closed.
        steps = []
        for t, what, t_close in seq:
            steps.append((t, what))
            if t_close != _NONE:
                steps.append((t_close, what + 2))
        steps.sort()
        ev = self.ev
        moved = False
        for t, what in steps:
            bit = CABLE if what & 1 == 0 else HOUSING
            if self._end_at != _NONE and t >= self._end_at + deb:
                # closed long enough before this step: that episode ended
                self._end(self._end_at, now_ms)
            if what < 2:
                self._end_at = _NONE  # (an opening within debounce_ms continues the episode)
                if not ev.opening_now:
                    ev.opening_now = True
                    ev.openings = ev.inc(ev.openings)
                    ev.ep_inputs = 0
                    if not ev.opening_first:
                        ev.opening_first = self._unix(t, now_ms)
                ev.open_bits |= bit
                moved = True
                if not ev.ep_inputs & bit:
                    ev.ep_inputs |= bit
                    ev.opening_inputs |= bit
                    self._journal_now(EV_CABLE_CUT if bit == CABLE else EV_HOUSING_OPENED,
                                      ev.openings, self._unix(t, now_ms))
                    moved = False
            else:
                ev.open_bits &= ~bit
                moved = True
                if ev.opening_now and not ev.open_bits:
                    self._end_at = t
        if moved:
            ev.save()  # open_bits changed without an event (e.g. one of two inputs closed)

    def _end(self, t_ms, now_ms):
        self._end_at = _NONE
        ev = self.ev
        ev.opening_now = False
        self._journal_now(EV_LOCK_RESTORED, ev.openings << 8 | _BOTH_CLOSED,
                          self._unix(t_ms, now_ms))

    def _unix(self, t_ms, now_ms):
        hal = self._c.hal
        if hasattr(hal, "unix_at"):
            return hal.unix_at(t_ms)
        return hal.unix() - (now_ms - t_ms + 500) // 1000

    def _journal_now(self, code, value, t):
        ev = self.ev
        ev.pend_code = code
        ev.pend_value = value
        ev.pend_time = t
        ev.pend_rseq = self._c.journal.next_rseq
        ev.save()
        self.flush_pending()

    def flush_pending(self):
        # Write the event the evidence says is due, unless the journal already holds it.
        ev = self.ev
        if ev.pend_code == 0:
            return
        if self._c.journal.next_rseq <= ev.pend_rseq:
            self._c._event_at(ev.pend_code, ev.pend_value, ev.pend_time)
        ev.pend_code = 0  # on flash it stays until the next save; harmless (rseq passed)
