# The hardware interface the seal core takes, and an in-memory fake of it.
#
# The core (seal.py, journal.py, persist.py) never imports `machine`, `os` or `time`: everything
# board-specific reaches it through one object with the methods below (labgrid style: a tiny
# interface, several drivers). Three drivers exist:
#   - MemHal (this file): RAM flash that can tear a write at any byte, virtual clock; for tests
#     and for the simulator, which runs thousands of seals in one process.
#   - DesktopHal (hal_desktop.py): files in one directory per seal; for the emulator.
#   - the board HAL (board_esp32.py): littlefs, UART, pins, ADC, RTC.
#
# Interface (duck-typed; MicroPython has no abc):
#   ticks_ms() -> int             monotonic milliseconds (only differences matter)
#   unix() -> int                 wall clock, Unix seconds UTC (0 if unknown)
#   unix_at(ms) -> int            (optional) the wall clock at an earlier ticks_ms() value, to the
#                                 second (dates an edge the pin interrupt caught); without it the
#                                 core rounds from unix() (off by a second at most)
#   set_unix(t)                   set the wall clock (TIME command, GNSS time)
#   open(name, mode) -> file      flash file, modes "rb", "wb", "ab"; file has read, readinto,
#                                 write, seek, flush, close
#   rename(old, new)              atomic, replaces `new` if it exists
#   remove(name)
#   listdir() -> list of names    files of this seal's flash area (flat, no directories)
#   size(name) -> int             file size in bytes; OSError if missing
#   gnss_read() -> bytes or None  bytes waiting on the GNSS UART
#   lock_levels() -> (cable_closed, housing_closed) raw input levels as bools
#   lock_irqs                     int, +1 at every edge the pin interrupt saw (optional, with:)
#   lock_edges(out) -> int        the interrupt latch since the last call, then cleared: fills
#                                 out[0:8], per input (cable at 0, housing at 4): edges, ms of
#                                 the first opening edge (-1 none), ms of the last closing edge
#                                 (-1 none), ms spent open in openings that also closed; returns
#                                 the number of edges. Times on ticks_ms()'s clock. The seal core
#                                 turns a pulse its sampling missed into an opening (tamper.py).
#   battery_pct() -> int or None  0..100, None if unknown
#   reset_cause() -> int          protocol code: POWER_ON 0, WATCHDOG 1, SOFT 2, BROWNOUT 3, ...
#
# The link (MQTT or serial) is not part of the HAL: the core hands frames out through a callback.


# The simulated inputs (GNSS bytes pushed in, lock levels with the pin-interrupt latch, battery)
# live in sim_inputs.py, so the desktop board can have them without this module's RAM flash.
from navseal_fw.sim_inputs import SimulatedInputs  # noqa: E402  # re-exported: MemHal's base


class PowerCut(Exception):
    # Raised by MemFlash when the simulated power fails: the operation in progress stopped part
    # way and everything after it fails until power_on().
    pass


class _MemFile:
    # A file handle on MemFlash. Writes go straight to the flash image (like littlefs/FAT after
    # flush); a power cut mid-write leaves exactly the bytes that made it.

    def __init__(self, flash, name, mode):
        self._flash = flash
        self._name = name
        self._pos = 0
        self._writable = "w" in mode or "a" in mode
        self.closed = False
        if "w" in mode:
            flash._files[name] = bytearray()
        elif name not in flash._files:
            if "a" in mode:
                flash._files[name] = bytearray()
            else:
                raise OSError(2)  # ENOENT
        if "a" in mode:
            self._pos = len(flash._files[name])

    def _data(self):
        self._flash._check_power()
        if self.closed:
            raise ValueError("closed file")
        data = self._flash._files.get(self._name)
        if data is None:
            raise OSError(2)
        return data

    def read(self, n=-1):
        data = self._data()
        end = len(data) if n is None or n < 0 else min(len(data), self._pos + n)
        out = bytes(data[self._pos:end])
        self._pos = end
        return out

    def readinto(self, buf):
        data = self._data()
        n = min(len(buf), len(data) - self._pos)
        if n <= 0:
            return 0
        buf[0:n] = memoryview(data)[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, pos, whence=0):
        data = self._data()
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += len(data)
        self._pos = pos
        return pos

    def tell(self):
        return self._pos

    def write(self, buf):
        data = self._data()
        if not self._writable:
            raise OSError(9)  # EBADF
        n = len(buf)
        allowed = self._flash._spend(n)
        if self._pos > len(data):
            data.extend(bytes(self._pos - len(data)))
        end = self._pos + allowed
        if self._pos == len(data) and allowed == n:
            data.extend(buf)  # appending: no slice copy (journal records, persisted files)
        else:
            data[self._pos:end] = memoryview(buf)[0:allowed]
        self._pos = end
        self._flash.bytes_written += allowed
        if allowed < n:
            self._flash._cut()
        return n

    def flush(self):
        self._data()

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MemFlash:
    # A flat file system in RAM. `cut_after(n)` arms a power cut: after n more bytes have been
    # written the current write stops (its first bytes stay, the rest never arrive) and every
    # later call raises PowerCut until power_on(). Renames and removes are atomic (littlefs
    # guarantees this; FAT via MicroPython's unlink-then-rename is covered by persist.py).
    # A `cut_ops` count makes metadata operations (rename/remove) cut too.

    def __init__(self):
        self._files = {}
        self._budget = -1
        self._ops = -1
        self.powered = True
        self.bytes_written = 0

    def cut_after(self, nbytes=-1, ops=-1):
        self._budget = nbytes
        self._ops = ops

    def power_on(self):
        self.powered = True
        self._budget = -1
        self._ops = -1

    def _cut(self):
        self.powered = False
        raise PowerCut()

    def _check_power(self):
        if not self.powered:
            raise PowerCut()

    def _spend(self, n):
        self._check_power()
        if self._budget < 0:
            return n
        if n <= self._budget:
            self._budget -= n
            return n
        allowed = self._budget
        self._budget = 0
        return allowed

    def _op(self):
        self._check_power()
        if self._ops == 0:
            self._cut()
        if self._ops > 0:
            self._ops -= 1

    def open(self, name, mode="rb"):
        self._check_power()
        if "w" in mode or "a" in mode:
            self._op()
        return _MemFile(self, name, mode)

    def rename(self, old, new):
        self._op()
        if old not in self._files:
            raise OSError(2)
        self._files[new] = self._files.pop(old)

    def remove(self, name):
        self._op()
        if name not in self._files:
            raise OSError(2)
        del self._files[name]

    def listdir(self):
        self._check_power()
        return list(self._files)

    def size(self, name):
        self._check_power()
        if name not in self._files:
            raise OSError(2)
        return len(self._files[name])

    def used_bytes(self):
        n = 0
        for data in self._files.values():
            n += len(data)
        return n

    # Test helpers: peek at and damage the image.
    def raw(self, name):
        return self._files[name]

    def snapshot(self):
        copy = {}
        for name in self._files:
            copy[name] = bytearray(self._files[name])
        return copy


class MemHal(SimulatedInputs):
    # The whole HAL in RAM with a virtual clock: the test (or simulator) sets the inputs.

    def __init__(self, flash=None, unix0=1764115200):
        self.flash = flash if flash is not None else MemFlash()
        self.now_ms = 0
        self._unix0 = unix0
        self._unix_at_ms0 = unix0
        self._init_inputs(battery=90)

    # clock
    def ticks_ms(self):
        return self.now_ms

    def advance(self, ms):
        self.now_ms += ms

    def unix(self):
        return self._unix_at_ms0 + self.now_ms // 1000

    def unix_at(self, ms):
        return self._unix_at_ms0 + ms // 1000

    def set_unix(self, t):
        self._unix_at_ms0 = t - self.now_ms // 1000

    # flash
    def open(self, name, mode="rb"):
        return self.flash.open(name, mode)

    def rename(self, old, new):
        self.flash.rename(old, new)

    def remove(self, name):
        self.flash.remove(name)

    def listdir(self):
        return self.flash.listdir()

    def size(self, name):
        return self.flash.size(name)

