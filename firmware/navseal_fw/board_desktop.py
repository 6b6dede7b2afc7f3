# A seal board on a desktop: firmware/main.py runs unchanged on the MicroPython unix port (or
# CPython) with this board in place of board_esp32. Same interface as board_esp32.Board:
#
#   flash     the directory $NAVSEAL_FLASH (default "flash" under the working directory): the
#             board's /data; navseal.json, ca.der, the journal and state files live there
#   GNSS      bytes from a TCP socket or a file (what the receiver would put on the UART)
#   lock      levels and battery from a line-based control channel (TCP): the board's pins
#   watchdog  none (the loop-lag statistics on the control channel stand in for it)
#   reboot    the process exits with REBOOT_EXIT; its supervisor (navseal.desktop_seal) starts it
#             again, and the next boot reports SOFT (as machine.reset() does on the ESP32);
#             a killed process comes back as POWER_ON, like a power cut
#
# Wiring: board.json in the flash directory (written by whoever builds the bench, not by
# `navseal provision`: it is hardware, not provisioning):
#   {"gnss": "tcp:127.0.0.1:9100" | "file:/path/nmea.log",
#    "control": "tcp:127.0.0.1:9101",
#    "serial": "tcp:127.0.0.1:9102",            (the serial link's UART, for "link": "serial")
#    "bench_ctl": "tcp:127.0.0.1:9103"}         (a bench build's control UART: docs/hil.md, with
#                                                "bench": true in navseal.json and the serial link)
#
# Control lines to the seal (one reply line each):
#   LOCK <cable> <housing>   closed|open|1|0   -> "OK LOCK closed open"
#   LOCK PULSE <cable|housing> <ms>            -> "OK LOCK PULSE cable 50": an opening that has
#                                                 just ended, as the pin interrupts latch it
#   BATT <pct>|none                            -> "OK BATT 42"
#   STATS                                      -> loopstats.LoopStats.line(): lag since boot, heap
#   STATS PHASE                                -> the same for the lag since the last STATS PHASE
#   STATUS                                     -> "OK STATUS boot=.. pending=.. ..." (the core,
#                                                 and the slowest flash call: flash_max_ms/_op)
#   anything else                              -> "ERR <verb> ..."
import json
import os

from navseal_fw.aio import ticks_diff, ticks_ms
from navseal_fw.hal_desktop import DesktopHal

REBOOT_EXIT = 75  # EX_TEMPFAIL: "run me again"
_RESET_FILE = ".reset"  # hidden from listdir(): the reset cause for the next boot
_CONTROL_POLL_MS = 20
_MAX_LINE = 256

class _TcpPipe:
    """A non-blocking TCP connection used as a UART: read() -> bytes or None, write(b) -> n.
    Connected once at boot (to a local bench server)."""

    def __init__(self, host, port):
        import socket

        addr = socket.getaddrinfo(host, port)[0][-1]
        self._s = socket.socket()
        self._s.connect(addr)
        self._s.setblocking(False)
        self.closed = False

    def read(self):
        if self.closed:
            return None
        try:
            data = self._s.recv(512)
        except OSError as e:
            if e.args and e.args[0] in (11, 35):  # EAGAIN/EWOULDBLOCK: nothing waiting
                return None
            self.closed = True  # reset by the bench: the UART goes quiet
            return None
        if not data:
            self.closed = True  # the bench went away: the UART goes quiet
            return None
        return data

    def write(self, data):
        if self.closed:
            return len(data)
        try:
            n = self._s.send(data)
        except OSError:
            return 0
        return n if n is not None else 0


class _FileTail:
    """A file read as it grows (a recorded NMEA log, or a FIFO): read() -> new bytes or None."""

    def __init__(self, path):
        self._f = open(path, "rb")

    def read(self):
        data = self._f.read(512)
        return data or None

    def write(self, data):
        return len(data)


def _open_source(spec):
    if spec.startswith("tcp:"):
        host, port = spec[4:].rsplit(":", 1)
        return _TcpPipe(host, int(port))
    if spec.startswith("file:"):
        return _FileTail(spec[5:])
    raise ValueError("board.json: %r is neither tcp:HOST:PORT nor file:PATH" % spec)


def _runqueue_wait_ms():
    # /proc/self/schedstat: ns on a CPU, ns waiting on a run queue, time slices (Linux only)
    try:
        f = open("/proc/self/schedstat", "rb")
    except OSError:
        return 0
    try:
        return int(f.read().split()[1]) // 1000000
    finally:
        f.close()


class Board(DesktopHal):
    def __init__(self, root=None):
        if root is None:
            root = os.getenv("NAVSEAL_FLASH") or "flash"
        self._ms = 0
        self._last_ticks = ticks_ms()
        DesktopHal.__init__(self, root, clock_ms=self._clock)  # inputs: battery 100, lock closed
        self.fault = 0  # set by main.py at boot: the fault that made the last program reboot
        self.wdt_fed = 0
        self._cause = self._take_reset_cause()
        wiring = self._wiring()
        self._gnss_src = _open_source(wiring["gnss"]) if wiring.get("gnss") else None
        self._ctl = _open_source(wiring["control"]) if wiring.get("control") else None
        self._serial_spec = wiring.get("serial")
        self._line = bytearray()
        self._reply = b""
        self.flash_max_ms = 0  # the slowest flash call (open, rename, remove): the host's disk
        self.flash_max_op = "-"
        self._wait_phase = _runqueue_wait_ms()

    # A clock that never wraps (ticks_ms wraps every 2**30 ms), like board_esp32's.
    def _clock(self):
        now = ticks_ms()
        self._ms += ticks_diff(now, self._last_ticks)
        self._last_ticks = now
        return self._ms

    def _wiring(self):
        try:
            f = open(self.root + "/board.json", "rb")
        except OSError:
            return {}
        try:
            return json.loads(f.read())
        finally:
            f.close()

    def _take_reset_cause(self):
        path = self.root + "/" + _RESET_FILE
        try:
            f = open(path, "rb")
        except OSError:
            return 0  # POWER_ON: first start, or the process was killed (a power cut)
        try:
            raw = f.read()
        finally:
            f.close()
        os.remove(path)
        try:
            return int(raw) & 0xFF
        except ValueError:
            return 255

    # ---- flash, timed: the core writes synchronously, so a slow disk is loop lag -----------

    def _timed(self, op, t0):
        ms = ticks_diff(ticks_ms(), t0)
        if ms > self.flash_max_ms:
            self.flash_max_ms = ms
            self.flash_max_op = op

    def open(self, name, mode="rb"):
        t0 = ticks_ms()
        f = DesktopHal.open(self, name, mode)
        self._timed("open", t0)
        return f

    def rename(self, old, new):
        t0 = ticks_ms()
        DesktopHal.rename(self, old, new)
        self._timed("rename", t0)

    def remove(self, name):
        t0 = ticks_ms()
        DesktopHal.remove(self, name)
        self._timed("remove", t0)

    # ---- inputs --------------------------------------------------------------------------

    def gnss_read(self):
        return self._gnss_src.read() if self._gnss_src is not None else None

    def reset_cause(self):
        # HELLO takes the low byte; the REBOOT event's value also carries the fault (bits 8-15)
        return self._cause | self.fault << 8

    # ---- board-only: watchdog, network, serial, reboot -----------------------------------

    def wdt_start(self, timeout_ms=0):
        pass

    def wdt_feed(self):
        self.wdt_fed += 1

    def network_up(self, wifi_ssid=None, wifi_password=None, apn=None):
        return None  # the host's network is up

    def bench_uart(self):
        if not self._serial_spec:
            raise OSError("board.json has no \"serial\" for the serial link")
        return _open_source(self._serial_spec)

    def bench_ctl_uart(self):
        spec = self._wiring().get("bench_ctl")
        if not spec:
            raise OSError("board.json has no \"bench_ctl\" for the bench-control line")
        return _open_source(spec)

    def bench_set_lock(self, cable_closed, housing_closed):
        self.set_lock(cable_closed, housing_closed, self.ticks_ms())  # edges into the latch

    def bench_set_battery(self, pct):
        self.battery = pct

    def bench_pulse(self, which, width_ms):
        """An opening of `which` width_ms wide that has just ended (no sample saw it)."""
        self.pulse(which, width_ms, self.ticks_ms())

    def reboot(self):
        f = open(self.root + "/" + _RESET_FILE, "wb")
        f.write(b"2")  # SOFT, as machine.reset() reports on the ESP32
        f.close()
        raise SystemExit(REBOOT_EXIT)

    # ---- the control channel (a task of main.py's loop) ------------------------------------

    async def service(self, stats, status=None):
        from navseal_fw.aio import sleep_ms

        self._status = status
        while True:
            if self._ctl is not None:
                data = self._ctl.read()
                if data:
                    self._feed(data, stats)
                if self._reply:
                    n = self._ctl.write(self._reply)
                    self._reply = self._reply[n:]
            await sleep_ms(_CONTROL_POLL_MS)

    def _feed(self, data, stats):
        for b in data:
            if b == 10:
                line = bytes(self._line).decode().strip()
                self._line = bytearray()
                if line:
                    self._reply += (self.control(line, stats) + "\n").encode()
            elif len(self._line) < _MAX_LINE:
                self._line.append(b)

    def control(self, line, stats=None):
        words = line.split()
        verb = words[0].upper()
        levels = {"closed": True, "1": True, "open": False, "0": False}
        if verb == "LOCK" and len(words) == 3 and words[1] in levels and words[2] in levels:
            # through the pin-interrupt latch (sim_inputs.SimulatedInputs), as the board's Pin.irq
            self.set_lock(levels[words[1]], levels[words[2]], self.ticks_ms())
            return "OK LOCK %s %s" % (words[1], words[2])
        if (verb == "LOCK" and len(words) == 4 and words[1].upper() == "PULSE"
                and words[2] in ("cable", "housing") and words[3].isdigit()
                and 1 <= int(words[3]) <= 10000):
            self.bench_pulse(words[2], int(words[3]))
            return "OK LOCK PULSE %s %s" % (words[2], words[3])
        if verb == "BATT" and len(words) == 2:
            if words[1] == "none":
                self.battery = None
            elif words[1].isdigit() and int(words[1]) <= 100:
                self.battery = int(words[1])
            else:
                return "ERR BATT 0..100 or none"
            return "OK BATT %s" % words[1]
        if verb == "STATS" and stats is not None:
            # The host's share of the lag: how long this process was ready to run but waited
            # for a CPU (Linux schedstat), since boot or since the last STATS PHASE.
            wait = _runqueue_wait_ms()
            if len(words) == 2 and words[1].upper() == "PHASE":
                since, self._wait_phase = self._wait_phase, wait
                return stats.phase_line() + " runq_wait_ms=%d" % (wait - since)
            return stats.line() + " runq_wait_ms=%d" % wait
        status = getattr(self, "_status", None)
        if verb == "STATUS" and status is not None:
            return "OK STATUS %s flash_max_ms=%d flash_max_op=%s" % (
                " ".join("%s=%s" % kv for kv in status()), self.flash_max_ms, self.flash_max_op)
        return "ERR %s unknown or bad arguments" % verb
