"""The real-hardware bench: a seal board on a USB-serial adapter.

    link:     pyserial on --bench-port (the seal's serial data link, COBS frames)
    control:  pyserial on --bench-gnss-port (optional): the bench-control line protocol, which the
              firmware's bench build implements: NMEA into its GNSS input, lock levels, reboot
    gnss:     over the control line, or (--bench-gnss-raw PORT) raw NMEA into the GNSS UART pin
    power:    optional external commands (--bench-power-on / --bench-power-off), e.g. a USB relay
              tool; without them the bench declares "power" missing and those tests are skipped
    lock:     an external relay command (--bench-lock-cmd '... {cable} {housing}') if given,
              else the control line's LOCK, else missing

What the bench build supports is asked once with FEATURES; the bench declares exactly that.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Iterable

from .bench import Bench, ControlGnss, ControlLock, DownlinkCounter
from .interfaces import BenchError, GnssStimulus, LockStimulus, PowerControl
from .ports import ControlPort, FramedLink, PyserialChannel
from .resources import SealKeys, SerialPortResource

READY_TIMEOUT_S = 20.0  # a board boots MicroPython, mounts flash and recovers its journal


def _run(cmd: str, what: str) -> None:
    res = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise BenchError(f"{what} command {cmd!r} failed ({res.returncode}): {res.stderr.strip()[:300]}")


class ExternalPower(PowerControl):
    """Power through two shell commands (labgrid's ExternalPowerDriver)."""

    def __init__(self, bench: "SerialBench", on_cmd: str, off_cmd: str) -> None:
        self.bench = bench
        self.on_cmd = on_cmd
        self.off_cmd = off_cmd
        self._on = True  # unknown at start: assume the board is powered

    @property
    def is_on(self) -> bool:
        return self._on

    def on(self) -> None:
        if self._on:
            return  # already powered (a write cut resets the board, it does not unpower it)
        ctl = self.bench.control
        before = ctl.ready_count if ctl else 0
        _run(self.on_cmd, "power on")
        self._on = True
        self.bench.transcript.add("bench", "power on")
        if ctl is not None:
            ctl.wait_ready(before, READY_TIMEOUT_S)

    def off(self) -> None:
        _run(self.off_cmd, "power off")
        self._on = False
        self.bench.transcript.add("bench", "power off")


class RawNmeaGnss(GnssStimulus):
    """NMEA written straight into the seal's GNSS UART RX pin through its own USB-serial adapter
    (the receiver disconnected): needs no bench build, only wiring. 9600 baud is the receivers'
    default and the board's GNSS UART rate."""

    def __init__(self, resource: SerialPortResource, transcript) -> None:
        self.channel = PyserialChannel(resource)
        self.transcript = transcript

    def send_sentences(self, sentences: Iterable[str]) -> None:
        lines = [s + "\r\n" for s in sentences]
        if lines:
            self.channel.write("".join(lines).encode("ascii"))  # write() flushes: on the wire
            self.transcript.add("gnss", f"{len(lines)} sentence(s) raw, last {lines[-1].strip()}")

    def close(self) -> None:
        self.channel.close()


class RelayLock(LockStimulus):
    """Cable loop and housing switch through a relay tool: '{cable}'/'{housing}' become 1 (closed) or 0."""

    def __init__(self, template: str) -> None:
        self.template = template

    def set_lock(self, cable_closed: bool, housing_closed: bool) -> None:
        _run(self.template.format(cable=int(cable_closed), housing=int(housing_closed)), "lock relay")


class SerialBench(Bench):
    kind = "serial"

    def __init__(self, port: SerialPortResource, seal_id: int, keys: SealKeys,
                 control_port: SerialPortResource | None = None, power_on: str | None = None,
                 power_off: str | None = None, lock_cmd: str | None = None,
                 state_file: str | None = None, raw_gnss_port: SerialPortResource | None = None) -> None:
        super().__init__(seal_id, keys, DownlinkCounter(state_file))
        self._raw_gnss: RawNmeaGnss | None = None
        self.link = FramedLink(PyserialChannel(port), self.transcript)
        bench_build: set[str] = set()
        if control_port is not None:
            self.control = ControlPort(PyserialChannel(control_port), self.transcript, self._on_log)
            bench_build = set(self.control.command("FEATURES").text.split())
        no_ctl = "no bench-control port (--bench-gnss-port)"
        for feature in ("gnss", "reboot", "battery", "write_cut", "small_journal", "link_state"):
            self.declare(feature, feature in bench_build,
                         no_ctl if self.control is None else f"the bench build does not implement {feature}")
        if raw_gnss_port is not None:
            self._raw_gnss = RawNmeaGnss(raw_gnss_port, self.transcript)
            self.gnss = self._raw_gnss
            self.declare("gnss", True)
        elif self.control is not None:
            self.gnss = ControlGnss(self.control, self.transcript)
        if lock_cmd:
            self.lock = RelayLock(lock_cmd)
        elif "lock" in bench_build and self.control is not None:
            self.lock = ControlLock(self.control)
        self.declare("lock", self.lock is not None, "no lock relay (--bench-lock-cmd) and no bench-build LOCK")
        # A pulse of a few ms is the bench build's (a relay driven by a shell command cannot time
        # one): Bench.pulse_lock goes over the control line, also on a bench with a lock relay.
        self.declare("lock_pulse", "lock_pulse" in bench_build,
                     no_ctl if self.control is None else "the bench build does not implement lock_pulse")
        if power_on and power_off:
            self.power = ExternalPower(self, power_on, power_off)
        self.declare("power", self.power is not None, "no power relay (--bench-power-on/--bench-power-off)")

    def prepare_test(self, name: str = "test") -> None:
        # A board cannot be wiped between tests; the dut fixture brings it to INACTIVE with an
        # empty journal through the protocol. Only make sure it is powered.
        if self.power is not None and not self.power.is_on:
            self.power.on()

    def wait_power_lost(self, timeout: float) -> None:
        """A bench build implements CUTWRITE by resetting the board mid-write (machine.reset()
        after the allowed bytes): the power loss shows as the next READY."""
        ctl = self.control
        if ctl is None:
            raise BenchError("no bench-control line to observe the reset on")
        ctl.wait_ready(self._ready_at_cut, timeout)
        self.transcript.add("bench", "board reset mid-write")

    def arm_write_cut(self, nbytes: int) -> None:
        self._ready_at_cut = self.control.ready_count if self.control else 0
        super().arm_write_cut(nbytes)

    def close(self) -> None:
        self.link.close()
        if self.control is not None:
            self.control.close()
        if self._raw_gnss is not None:
            self._raw_gnss.close()


def default_state_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "navseal-bench", "downlink.json")
