"""One emulated seal in its own process: the real firmware core behind two serial lines.

    python -m navseal.hil.emu_seal --link /dev/pts/5 --stim /dev/pts/6 --state-dir DIR \
        --seal-id 1001 --key HEX [--journal-capacity 16 --journal-seg-records 4]
    python -m navseal.hil.emu_seal --serve DIR --state-dir DIR/flash --seal-id 1001 --key HEX

With ``--serve DIR`` the runner makes its own two pseudo-terminals and leaves their names as
symlinks DIR/link and DIR/stim: a stand-in for a board on two USB-serial adapters, so the
real-hardware bench (``--bench serial --bench-port DIR/link --bench-gnss-port DIR/stim``) can be
tried without hardware.

``--link`` is the seal's data link (COBS frames, docs/protocol.md "Serial framing"); ``--stim``
is the bench-control line (docs/hil.md), answered by the firmware's own handler
(navseal_fw.benchctl, the one the board's bench build runs) through ``EmuTarget``. Both are
opened by name with pyserial, as the bench opens /dev/ttyUSB0: every byte crosses a real tty.
``--state-dir`` is the seal's flash (the firmware's DesktopHal); it outlives the process, so
SIGKILL is a real power cut.

The loop owns all I/O and time; the core (navseal_fw.seal.SealCore, through core_adapter) only
gets bytes, levels and milliseconds. It waits in select() until input arrives or the core's next
deadline, never in a sleep.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
import tty

from navseal.protocol.serial import SerialDeframer, encode_serial

from navseal_fw.benchctl import BenchCtl

from . import benchctl
from .core_adapter import SealDriver
from .frames import summarize

_MIN_WAIT_S = 0.002  # never spin: even a core that is due "now" gets a short select


def now_ms() -> int:
    return int(time.monotonic() * 1000)


def make_hal(state_dir: str):
    """The firmware's DesktopHal with one addition: a power cut armed after N flash bytes."""
    from navseal_fw.hal_desktop import DesktopHal

    class BenchHal(DesktopHal):
        cut_budget = -1  # bytes still allowed before the power dies; -1: not armed

        def open(self, name, mode="rb"):
            f = super().open(name, mode)
            if "w" in mode or "a" in mode:
                return _CuttingFile(f, self)
            return f

    return BenchHal(state_dir)


class _CuttingFile:
    """A flash file whose writes count against the HAL's cut budget; when it runs out the
    process dies by SIGKILL with exactly the allowed bytes on disk, as a real power cut."""

    def __init__(self, f, hal) -> None:
        self._f = f
        self._hal = hal

    def write(self, buf) -> int:
        budget = self._hal.cut_budget
        if budget < 0 or len(buf) < budget:
            if budget >= 0:
                self._hal.cut_budget = budget - len(buf)
            return self._f.write(buf)
        self._f.write(bytes(buf[:budget]))
        self._f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        raise SystemExit(137)  # not reached

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


class _ServedPort:
    """The seal's end of a pty it created itself (``--serve``): the master, with the few
    pyserial methods the runner uses. The runner also holds the slave open, so a bench that
    closes and reopens the port by name never makes the master see a hang-up."""

    def __init__(self, link_path: str) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        tmp = link_path + ".tmp"
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(os.ttyname(self._slave), tmp)
        os.replace(tmp, link_path)
        self.dropped = 0

    def fileno(self) -> int:
        return self.master

    @property
    def in_waiting(self) -> int:
        return 4096  # read() below never blocks; take whatever is there

    def read(self, n: int) -> bytes:
        try:
            return os.read(self.master, n)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        # A UART transmits whether anyone listens or not: with no bench reading and the pty's
        # buffer full, the rest is dropped (counted) instead of stalling the seal.
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                self.dropped += len(view)
                return

    def reset_input_buffer(self) -> None:
        pass  # a served port is fresh: nothing is waiting


class EmuTarget:
    """What the firmware's bench-control handler may do to the emulated seal (the board's
    equivalent is main.BenchTarget): simulated inputs on the HAL, the core through SealDriver."""

    def __init__(self, runner: "Runner") -> None:
        self.r = runner
        feats = ["gnss", "lock", "lock_pulse", "battery", "reboot", "link_state"]
        if not runner.args.serve:  # served, nobody would power it on again after the cut
            feats.append("write_cut")
        if runner.args.journal_capacity <= 256:
            feats.append("small_journal")
        self.features = tuple(feats)

    def feed_gnss(self, data: bytes, now: int) -> None:
        assert self.r.seal is not None
        self.r.seal.feed_gnss(data, now)

    def set_lock(self, cable: bool, housing: bool, now: int) -> None:
        assert self.r.seal is not None
        self.r.hal.set_lock(cable, housing, now)  # edges into the interrupt latch, as a board's
        self.r.seal.lock_changed(now)

    def pulse_lock(self, which: str, width_ms: int, now: int) -> None:
        """An opening that has just ended, as the board's pin interrupts latch it."""
        assert self.r.seal is not None
        self.r.hal.pulse(which, width_ms, now)

    def lock_settled(self, cable: bool, housing: bool) -> bool:
        assert self.r.seal is not None
        return self.r.seal.lock_settled(cable, housing)

    def set_battery(self, pct) -> None:
        self.r.hal.battery = pct

    def set_link(self, up: bool, now: int) -> None:
        assert self.r.seal is not None
        self.r.seal.link(up, now)

    def cut_write(self, n: int) -> None:
        self.r.hal.cut_budget = n

    def status(self) -> list:
        assert self.r.seal is not None
        return list(self.r.seal.status().items())


class Runner:
    def __init__(self, args) -> None:
        import serial  # pyserial

        self.args = args
        self.key = bytes.fromhex(args.key)
        if args.serve:
            os.makedirs(args.serve, exist_ok=True)
            self.link = _ServedPort(os.path.join(args.serve, "link"))
            self.stim = _ServedPort(os.path.join(args.serve, "stim"))
            print(f"serving {args.serve}/link {args.serve}/stim", flush=True)
        else:
            self.link = serial.Serial(args.link, args.baud, timeout=0)
            self.stim = serial.Serial(args.stim, args.baud, timeout=0)
        # Power-on: UART FIFOs start empty; whatever the bench sent while we were off is gone.
        self.link.reset_input_buffer()
        self.stim.reset_input_buffer()
        self.deframer = SerialDeframer()
        self.hal = make_hal(args.state_dir)
        self.hal.cause = args.reset_cause
        self.seal: SealDriver | None = None
        self.control = BenchCtl(EmuTarget(self))

    # ---- output ------------------------------------------------------------------------------

    def ctl(self, line: bytes) -> None:
        self.stim.write(line)

    def log(self, text: str) -> None:
        self.ctl(benchctl.format_log(text))

    def send_frame(self, frame: bytes) -> bool:
        self.link.write(encode_serial(frame))
        self.log("tx " + summarize(frame))
        return True

    # ---- boot --------------------------------------------------------------------------------

    def boot(self) -> None:
        options = {
            "journal_capacity": self.args.journal_capacity,
            "journal_seg_records": self.args.journal_seg_records,
        }
        self.seal = SealDriver(self.hal, self.args.seal_id, self.key, self.send_frame, options)
        self.log(f"boot: reset cause {self.hal.cause}, state dir {self.args.state_dir}")
        self.seal.start(now_ms())
        self.ctl(benchctl.format_ready(self.args.seal_id, self.seal.boot, self.seal.fw))

    # ---- input -------------------------------------------------------------------------------

    def on_link_bytes(self, data: bytes) -> None:
        assert self.seal is not None
        for kind, item in self.deframer.feed_items(data):
            if kind != "body":
                self.log(f"rx serial framing error: {item}")
                continue
            before = self.seal.counters()
            self.seal.downlink(item, now_ms())
            self.log("rx " + summarize(item, self.key) + " -> " + diff_counters(before, self.seal.counters()))

    def on_control_bytes(self, data: bytes) -> None:
        self.control_replies(self.control.feed(data, now_ms()))

    def control_replies(self, lines: list) -> None:
        for line in lines:
            self.ctl(line)
        if self.control.reboot_requested:  # the reply is out: soft reset, then READY
            assert self.seal is not None
            self.seal.close()
            self.hal.cause = 2  # SOFT
            self.deframer = SerialDeframer()
            self.control = BenchCtl(EmuTarget(self))
            self.boot()

    # ---- loop --------------------------------------------------------------------------------

    def run(self) -> None:
        self.boot()
        assert self.seal is not None
        while True:
            wait = (self.seal.next_deadline_ms() - now_ms()) / 1000.0
            if self.control.busy():
                wait = min(wait, 0.01)
            wait = min(max(wait, _MIN_WAIT_S), 1.0)
            ready, _, _ = select.select([self.link, self.stim], [], [], wait)
            if self.link in ready:
                data = self.link.read(self.link.in_waiting or 1)
                if data:
                    self.on_link_bytes(data)
            if self.stim in ready:
                data = self.stim.read(self.stim.in_waiting or 1)
                if data:
                    self.on_control_bytes(data)
            self.seal.poll(now_ms())
            self.control_replies(self.control.poll(now_ms()))


def diff_counters(before: tuple, after: tuple) -> str:
    names = ("accepted", "errors", "not_mine", "replayed", "rejected", "ack_ignored")
    out = []
    for name, b, a in zip(names, before, after):
        if isinstance(a, dict):
            out += [f"{k}" for k in a if a[k] != b.get(k, 0)]
        elif a != b:
            out.append(name)
    return ",".join(out) or "no effect"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m navseal.hil.emu_seal", description=__doc__.split("\n")[0])
    p.add_argument("--link", help="serial port for the data link (COBS frames)")
    p.add_argument("--stim", help="serial port for the bench-control line")
    p.add_argument("--serve", metavar="DIR", help="make own ptys, symlinked as DIR/link and DIR/stim")
    p.add_argument("--state-dir", required=True, help="directory standing for the seal's flash")
    p.add_argument("--seal-id", type=int, required=True)
    p.add_argument("--key", required=True, help="the seal's 32-byte key, hex")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--journal-capacity", type=int, default=100000)
    p.add_argument("--journal-seg-records", type=int, default=1021)
    p.add_argument("--reset-cause", type=int, default=0, help="reported in HELLO (0 POWER_ON)")
    args = p.parse_args(argv)
    if not args.serve and not (args.link and args.stim):
        p.error("give --link and --stim, or --serve DIR")
    if len(bytes.fromhex(args.key)) != 32:
        p.error("--key must be 32 bytes of hex")
    runner = Runner(args)
    try:
        runner.run()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
