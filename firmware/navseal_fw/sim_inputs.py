# The inputs of a seal whose world is simulated, shared by MemHal (hal.py, tests and simulator)
# and DesktopHal (hal_desktop.py, the emulator and the desktop board): GNSS bytes pushed in, lock
# levels with the pin-interrupt latch a board keeps, battery and reset cause as attributes.
# Its own module so the desktop board on the unix port carries it without hal.py's RAM flash.


class SimulatedInputs:
    # The inputs of a seal whose world is simulated (tests, emulator): GNSS bytes pushed in,
    # lock levels, battery and reset cause set as attributes. Shared by MemHal and DesktopHal.
    lock_flag = None  # app.run: the flag a lock edge sets to wake its loop, as on the board

    def _init_inputs(self, battery):
        self.cable_closed = True
        self.housing_closed = True
        self.battery = battery
        self.cause = 0
        self._gnss = bytearray()
        # The pin-interrupt latch a board keeps (board_esp32.py): filled by set_lock and pulse.
        self.lock_irqs = 0
        self._latch = [0, -1, -1, 0, 0, -1, -1, 0]
        self._open_since = [-1, -1]  # ms an opening still in progress began

    # lock inputs as the board's pin interrupts see them (setting cable_closed / housing_closed
    # directly changes the level without an interrupt: what a board without one would do)
    def set_lock(self, cable_closed, housing_closed, now_ms):
        """New levels (None: unchanged) at now_ms, each change an interrupt edge."""
        if cable_closed is not None and bool(cable_closed) != self.cable_closed:
            self._edge(0, bool(cable_closed), now_ms)
            self.cable_closed = bool(cable_closed)
        if housing_closed is not None and bool(housing_closed) != self.housing_closed:
            self._edge(1, bool(housing_closed), now_ms)
            self.housing_closed = bool(housing_closed)

    def pulse(self, which, width_ms, end_ms):
        """An opening of input `which` ("cable"/0 or "housing"/1) width_ms wide that ended at
        end_ms, between two samples: only the interrupt latch knows of it."""
        i = 0 if which in ("cable", 0) else 1
        self._edge(i, False, end_ms - width_ms)
        self._edge(i, True, end_ms)

    def _edge(self, i, closed, t):
        latch = self._latch
        o = 4 * i
        latch[o] += 1
        self.lock_irqs += 1
        if self.lock_flag is not None:
            self.lock_flag.set()
        if closed:
            latch[o + 2] = t
            if self._open_since[i] >= 0:
                latch[o + 3] += t - self._open_since[i]
                self._open_since[i] = -1
        else:
            if latch[o + 1] < 0:
                latch[o + 1] = t
            self._open_since[i] = t

    def lock_edges(self, out):
        latch = self._latch
        n = latch[0] + latch[4]
        for k in range(8):
            out[k] = latch[k]
            latch[k] = -1 if k in (1, 2, 5, 6) else 0
        return n

    # inputs
    def push_gnss(self, data):
        self._gnss.extend(data)

    def gnss_read(self):
        if not self._gnss:
            return None
        out = bytes(self._gnss)
        self._gnss = bytearray()
        return out

    def lock_levels(self):
        return (self.cable_closed, self.housing_closed)

    def battery_pct(self):
        return self.battery

    def reset_cause(self):
        return self.cause
