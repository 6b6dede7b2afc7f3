# Desktop HAL for the emulator: the seal's flash is one directory on the host (one per seal),
# the clock is the host's (or a virtual one handed in), inputs are plain attributes the emulator
# sets (cable cut, housing open, battery level) and GNSS bytes it pushes.
#
# Same interface as hal.MemHal (see hal.py). Runs under CPython; under MicroPython's unix port it
# works too (os.rename/remove/listdir/stat exist there), the board uses its own HAL.

import os
import time

from navseal_fw.sim_inputs import SimulatedInputs


class DesktopHal(SimulatedInputs):
    def __init__(self, root, clock_ms=None, unix_fn=None):
        # root: directory that stands for this seal's flash (created if missing).
        # clock_ms: a function giving monotonic ms (virtual time); default the host's.
        # unix_fn: a function giving Unix seconds; default derived from clock_ms and the host
        #          clock at start, so virtual time moves the wall clock too.
        self.root = root
        try:
            os.mkdir(root)
        except OSError:
            pass  # exists
        self._clock_ms = clock_ms if clock_ms is not None else _host_ms
        self._unix_fn = unix_fn
        self._unix_offset = int(time.time()) - self._clock_ms() // 1000
        self._init_inputs(battery=100)

    def _path(self, name):
        if "/" in name or name.startswith("."):
            raise ValueError("flat names only: %r" % name)
        return self.root + "/" + name

    # clock
    def ticks_ms(self):
        return self._clock_ms()

    def unix(self):
        if self._unix_fn is not None:
            return self._unix_fn()
        return self._unix_offset + self._clock_ms() // 1000

    def unix_at(self, ms):
        if self._unix_fn is not None:
            return self._unix_fn() - (self._clock_ms() - ms + 500) // 1000
        return self._unix_offset + ms // 1000

    def set_unix(self, t):
        if self._unix_fn is not None:
            raise OSError("clock is driven from outside")
        self._unix_offset = t - self._clock_ms() // 1000

    # flash
    def open(self, name, mode="rb"):
        return open(self._path(name), mode)

    def rename(self, old, new):
        # os.replace where it exists: atomic and replacing on every platform, like littlefs.
        rep = getattr(os, "replace", None)
        if rep is not None:
            rep(self._path(old), self._path(new))
        else:
            os.rename(self._path(old), self._path(new))

    def remove(self, name):
        os.remove(self._path(name))

    def listdir(self):
        return [n for n in os.listdir(self.root) if not n.startswith(".")]

    def size(self, name):
        return os.stat(self._path(name))[6]


    def write_config(self, values, name="navseal.json"):
        # Provisioning helper for the emulator: what `navseal provision` writes to a board.
        import json

        with self.open(name, "wb") as f:
            f.write(json.dumps(values).encode())


def _host_ms():
    ticks = getattr(time, "ticks_ms", None)  # MicroPython's unix port
    if ticks is not None:
        return ticks()
    return int(getattr(time, "monotonic")() * 1000)
