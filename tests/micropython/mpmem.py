# Heap sampling for tests under MicroPython (runs under CPython too, reporting zeros).
#
#   from mpmem import Peak
#   peak = Peak()        # collects, remembers the baseline
#   ... work ...; peak.sample()        # gc.mem_alloc() now, garbage included (upper bound)
#   ... work ...; peak.sample_live()   # gc.collect() first: the live heap
#   peak.report()        # prints "MP_PEAK <max sampled - base> <max live - base>"
#
# The WebAssembly build does not cap its heap, so a MemoryError never comes; sampling is how
# a test learns whether the firmware would fit an ESP32's ~56 KiB MicroPython heap.
import gc

try:
    _alloc = gc.mem_alloc  # type: ignore[attr-defined]
except AttributeError:  # CPython

    def _alloc():
        return 0


class Peak:
    def __init__(self):
        gc.collect()
        self.base = _alloc()
        self.peak = 0
        self.peak_live = 0

    def sample(self):
        used = _alloc() - self.base
        if used > self.peak:
            self.peak = used
        return used

    def sample_live(self):
        gc.collect()
        used = _alloc() - self.base
        if used > self.peak_live:
            self.peak_live = used
        if used > self.peak:
            self.peak = used
        return used

    def report(self):
        print("MP_PEAK", self.peak, self.peak_live)
