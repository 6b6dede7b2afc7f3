# How the seal's loop keeps time, measured by the loop itself: the lag of every wake (how late a
# task woke after the sleep it asked for: a blocked loop shows here first) and the heap, sampled
# once a second after a collection. main.py feeds it; the desktop board's control line reports
# it (STATS; STATS PHASE also starts a new phase window).
import gc
from array import array

from navseal_fw.aio import ticks_diff, ticks_ms

GC_EVERY_MS = 1000  # collect once a second: small pauses, no fragmentation build-up
_BINS = 100  # 1 ms bins below 100 ms, one bin above


class LagHistogram:
    def __init__(self):
        self.bins = array("I", bytes(4 * (_BINS + 1)))
        self.n = 0
        self.max_ms = 0
        self.busy_max = 0  # the longest step of the loop's own work (a core call, a dispatch)
        self.busy_at = "-"  # which task took it

    def add(self, ms):
        if ms < 0:
            ms = 0
        self.n += 1
        if ms > self.max_ms:
            self.max_ms = ms
        self.bins[ms if ms < _BINS else _BINS] += 1

    def percentile(self, q):
        # -> the smallest lag (ms) that q percent of the samples do not exceed; 100 = over 99 ms
        need = self.n * q / 100
        seen = 0
        for ms in range(_BINS + 1):
            seen += self.bins[ms]
            if seen >= need:
                return ms
        return _BINS

    def reset(self):
        for i in range(_BINS + 1):
            self.bins[i] = 0
        self.n = 0
        self.max_ms = 0
        self.busy_max = 0
        self.busy_at = "-"


class LoopStats:
    def __init__(self):
        self.total = LagHistogram()  # since boot
        self.phase = LagHistogram()  # since the last phase_line()
        self.heap_modules = 0  # live heap once the modules are imported (main.build())
        self.heap_base = 0  # live heap after boot (modules, core, link)
        self.heap_peak = 0  # highest live heap after a collection
        self.alloc_peak = 0  # highest heap in use just before a collection (with garbage)
        self.free_min = -1
        self._gc_at = ticks_ms()

    @property
    def n(self):
        return self.total.n

    def lag(self, ms):
        self.total.add(ms)
        self.phase.add(ms)

    def busy(self, ms, where):
        # A lag spike with a short busy_max was not our code: the OS, or another task's I/O.
        for h in (self.total, self.phase):
            if ms > h.busy_max:
                h.busy_max = ms
                h.busy_at = where

    def sample_heap(self, force=False):
        if not hasattr(gc, "mem_alloc"):
            return 0  # CPython (tests, emulator): its own memory manager, nothing to learn
        now = ticks_ms()
        if not force and ticks_diff(now, self._gc_at) < GC_EVERY_MS:
            return 0
        self._gc_at = now
        before = gc.mem_alloc()
        if before > self.alloc_peak:
            self.alloc_peak = before
        gc.collect()
        live = gc.mem_alloc()
        free = gc.mem_free()
        if live > self.heap_peak:
            self.heap_peak = live
        if self.free_min < 0 or free < self.free_min:
            self.free_min = free
        return live

    def line(self, h=None):
        h = self.total if h is None else h
        return ("STATS lag_n=%d lag_p50=%d lag_p99=%d lag_max=%d busy_max=%d busy_at=%s "
                "heap_modules=%d heap_base=%d heap_peak=%d alloc_peak=%d free_min=%d"
                % (h.n, h.percentile(50), h.percentile(99), h.max_ms, h.busy_max, h.busy_at,
                   self.heap_modules, self.heap_base, self.heap_peak, self.alloc_peak,
                   self.free_min))

    def phase_line(self):
        line = self.line(self.phase)
        self.phase.reset()
        return line
