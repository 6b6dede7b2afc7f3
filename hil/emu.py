"""The emulator bench: the real firmware core in a separate process behind two pseudo-terminals.

    bench pty master  <-- tty -->  pty slave, opened by name with pyserial in the seal process
      link:    COBS frames (the seal's data link)
      control: bench-control lines (GNSS NMEA, lock levels, reboot, write cut; hil/benchctl.py)

The bench owns the ptys (the "cables"): they outlive the seal process, so power off is SIGKILL
(no shutdown, the state directory stays as the flash would) and power on starts the process again
on the same ports. The bench keeps the slave ends open too, so a powered-off seal looks like a
silent line, not a hang-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import tty

from .bench import Bench, ControlGnss, ControlLock, DownlinkCounter
from .interfaces import BenchError, PowerControl
from .ports import ControlPort, FdChannel, FramedLink
from .resources import SealKeys

READY_TIMEOUT_S = 15.0  # a cold Python start with imports takes ~0.3 s; CI machines are slower


class Pty:
    """One pseudo-terminal pair, raw mode, the master non-blocking."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class ProcessPower(PowerControl):
    """Power for the emulated seal: on starts the runner, off SIGKILLs it."""

    def __init__(self, bench: "EmulatorBench") -> None:
        self.bench = bench
        self.proc: subprocess.Popen | None = None
        self.wanted_on = False
        self.expect_death = False
        self.stderr_tail: list[str] = []

    @property
    def is_on(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def on(self) -> None:
        if self.is_on:
            return
        self._reap()
        b = self.bench
        ctl = b.control
        assert ctl is not None
        before = ctl.ready_count
        cmd = [
            sys.executable, "-m", "navseal.hil.emu_seal",
            "--link", b.link_pty.name, "--stim", b.ctl_pty.name,
            "--state-dir", b.state_dir, "--seal-id", str(b.seal_id), "--key", b.key.hex(),
            "--journal-capacity", str(b.journal_capacity),
            "--journal-seg-records", str(b.journal_seg_records),
        ]
        b.transcript.add("bench", f"power on (state dir {b.state_dir})")
        self.expect_death = False
        self.stderr_tail = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._pump_stderr, args=(self.proc,), daemon=True).start()
        self.wanted_on = True
        try:
            ctl.wait_ready(before, READY_TIMEOUT_S)
        except BenchError:
            raise BenchError(f"emulated seal did not boot: {self.describe_exit()}") from None

    def off(self) -> None:
        self.wanted_on = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no handler, no flush, like pulling the battery
        self._reap()
        self.bench.transcript.add("bench", "power off")

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise BenchError("emulated seal process does not die") from None
            if self.proc.stderr:
                self.proc.stderr.close()

    def _pump_stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.stderr_tail = (self.stderr_tail + [line])[-30:]
            self.bench.transcript.add("err", line)

    def describe_exit(self) -> str:
        code = None if self.proc is None else self.proc.poll()
        tail = "\n".join(self.stderr_tail[-15:])
        return f"exit code {code}" + (f"; stderr:\n{tail}" if tail else "")

    def died_unexpectedly(self) -> str | None:
        if self.wanted_on and not self.expect_death and self.proc is not None and self.proc.poll() is not None:
            return "emulated seal process died: " + self.describe_exit()
        return None


class EmulatorBench(Bench):
    kind = "emu"

    def __init__(self, state_root: str, seal_id: int = 1001, keys: SealKeys | None = None,
                 journal_capacity: int = 12, journal_seg_records: int = 4) -> None:
        super().__init__(seal_id, keys or SealKeys(), DownlinkCounter())
        self.state_root = state_root
        self.state_dir = os.path.join(state_root, "seal")
        self.journal_capacity = journal_capacity
        self.journal_seg_records = journal_seg_records
        self.link_pty = Pty()
        self.ctl_pty = Pty()
        self.link = FramedLink(FdChannel(self.link_pty.master, self.link_pty.name), self.transcript)
        self.control = ControlPort(FdChannel(self.ctl_pty.master, self.ctl_pty.name), self.transcript, self._on_log)
        self.gnss = ControlGnss(self.control, self.transcript)
        self.lock = ControlLock(self.control)
        self.power = ProcessPower(self)
        for feature in ("gnss", "lock", "lock_pulse", "power", "reboot", "battery", "write_cut",
                        "link_state"):
            self.declare(feature, True)
        self.declare("small_journal", journal_capacity <= 256,
                     f"journal capacity {journal_capacity} is too large to fill during a test")

    def prepare_test(self, name: str = "test") -> None:
        """A factory-fresh seal for every test: power off, a new flash directory, power on."""
        assert isinstance(self.power, ProcessPower)
        self.power.off()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-80:]
        self.state_dir = os.path.join(self.state_root, safe)
        if os.path.exists(self.state_dir):
            shutil.rmtree(self.state_dir)
        self.power.on()

    def arm_write_cut(self, nbytes: int) -> None:
        assert isinstance(self.power, ProcessPower)
        self.power.expect_death = True
        super().arm_write_cut(nbytes)

    def wait_power_lost(self, timeout: float) -> None:
        """Wait for an armed write cut to take the seal down."""
        assert isinstance(self.power, ProcessPower)
        proc = self.power.proc
        if proc is None:
            raise BenchError("seal is not running")
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"seal did not lose power within {timeout} s (no flash write reached the cut)") from None
        self.power.wanted_on = False
        self.transcript.add("bench", f"power lost mid-write (exit {proc.returncode})")

    def fault(self) -> str | None:
        assert isinstance(self.power, ProcessPower)
        return self.power.died_unexpectedly()

    def close(self) -> None:
        if self.power is not None:
            self.power.off()
        self.link.close()
        if self.control:
            self.control.close()
        self.link_pty.close()
        self.ctl_pty.close()
