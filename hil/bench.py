"""A bench: one seal wired to a data link, optional stimuli and power, and a transcript.

Drivers bind the interfaces (interfaces.py) to what is there. Stimuli that go over the
bench-control line (ports.ControlPort) are shared by the emulator bench and a real board running
a bench build; power and lock relays are bench-specific. ``features`` says what this bench can do
and ``missing`` says, per feature it cannot do, why: the pytest plugin turns that into skips.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Iterable

from . import benchctl
from .interfaces import BenchError, Clock, GnssStimulus, LinkPort, LockStimulus, PowerControl
from .ports import ControlPort, Transcript
from .resources import FEATURES, SealKeys


class SystemClock(Clock):
    def unix(self) -> int:
        return int(time.time())

    def monotonic(self) -> float:
        return time.monotonic()


class DownlinkCounter:
    """The bench's (epoch, seq) for command frames: strictly increasing per seal, as a gateway's.

    A seal keeps its replay window across power cuts, so a bench talking to the same board on
    another day must continue above the last number it used: with ``path`` the counter is kept
    in a JSON file (written before the number is used, like the gateway's command store)."""

    def __init__(self, path: str | None = None, epoch: int = 0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._state: dict[str, list[int]] = {}
        self._epoch = epoch
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self._state = json.load(f)

    def next(self, seal_id: int) -> tuple[int, int]:
        with self._lock:
            epoch, seq = self._state.get(str(seal_id), [self._epoch, 0])
            seq += 1
            if seq > 0xFFFFFFFF:
                epoch, seq = epoch + 1, 1
            self._state[str(seal_id)] = [epoch, seq]
            if self.path:
                tmp = self.path + ".tmp"
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(self._state, f)
                os.replace(tmp, self.path)
            return epoch, seq


class ControlGnss(GnssStimulus):
    def __init__(self, control: ControlPort, transcript: Transcript) -> None:
        self.control = control
        self.transcript = transcript

    def send_sentences(self, sentences: Iterable[str]) -> None:
        sent = []
        for s in sentences:
            self.control.command("NMEA", s)
            sent.append(s)
        if sent:
            self.transcript.add("gnss", f"{len(sent)} sentence(s), last {sent[-1]}")


class ControlLock(LockStimulus):
    def __init__(self, control: ControlPort) -> None:
        self.control = control

    def set_lock(self, cable_closed: bool, housing_closed: bool) -> None:
        self.control.command("LOCK", benchctl.level_word(cable_closed), benchctl.level_word(housing_closed))


class Bench:
    """What a test gets: the seal's link, its stimuli and power, the keys, the transcript."""

    kind = "abstract"

    def __init__(self, seal_id: int, keys: SealKeys, downlink: DownlinkCounter) -> None:
        self.seal_id = seal_id
        self.keys = keys
        self.key = keys.key_for(seal_id)
        self.downlink = downlink
        self.transcript = Transcript()
        self.clock: Clock = SystemClock()
        self.link: LinkPort
        self.control: ControlPort | None = None
        self.gnss: GnssStimulus | None = None
        self.lock: LockStimulus | None = None
        self.power: PowerControl | None = None
        self.features: set[str] = set()
        self.missing: dict[str, str] = {}
        self.log_lines: list[str] = []
        self.last_escort: Any = None  # EscortData of the last successful ACTIVATE (steps.activate)
        self._log_lock = threading.Lock()

    # ---- features ----------------------------------------------------------------------------

    def declare(self, feature: str, available: bool, reason: str = "") -> None:
        if feature not in FEATURES:
            raise ValueError(f"unknown bench feature {feature!r}")
        if available:
            self.features.add(feature)
            self.missing.pop(feature, None)
        else:
            self.features.discard(feature)
            self.missing[feature] = reason or f"this bench cannot {FEATURES[feature]}"

    def lacking(self, needed: Iterable[str]) -> list[str]:
        """Reasons for each needed feature this bench does not have (empty: all there)."""
        out = []
        for f in needed:
            if f not in FEATURES:
                raise ValueError(f"unknown bench feature {f!r} (known: {', '.join(sorted(FEATURES))})")
            if f not in self.features:
                out.append(f"{f}: {self.missing.get(f, 'not available')}")
        return out

    # ---- log lines from the firmware ---------------------------------------------------------

    def _on_log(self, text: str) -> None:
        with self._log_lock:
            self.log_lines.append(text)

    def logs_since(self, mark: int) -> list[str]:
        with self._log_lock:
            return self.log_lines[mark:]

    def log_mark(self) -> int:
        with self._log_lock:
            return len(self.log_lines)

    # ---- bench-control commands every bench build understands --------------------------------

    def _control(self) -> ControlPort:
        if self.control is None:
            raise BenchError("this bench has no bench-control line")
        return self.control

    def reboot(self, timeout: float = 10.0) -> benchctl.Message:
        """Soft reset through the bench-control line; returns the READY notice."""
        ctl = self._control()
        before = ctl.ready_count
        ctl.command("REBOOT")
        return ctl.wait_ready(before, timeout)

    def pulse_lock(self, which: str, width_ms: int) -> None:
        """Open "cable" or "housing" for width_ms between two of the seal's samples (feature
        lock_pulse: the bench build latches it as its pin interrupts would)."""
        self._control().command("LOCK", "PULSE", which, int(width_ms))

    def set_battery(self, pct: int | None) -> None:
        self._control().command("BATT", "unknown" if pct is None else pct)

    def set_link(self, up: bool) -> None:
        """The seal's own view of its network (LINK up|down): lets it stop sending at once."""
        self._control().command("LINK", "up" if up else "down")

    def arm_write_cut(self, nbytes: int) -> None:
        """Power dies after ``nbytes`` more bytes are written to flash (mid-write)."""
        self._control().command("CUTWRITE", nbytes)

    def status(self) -> dict:
        """The seal's own view (for logs and diagnostics; tests assert on frames)."""
        return dict(self._control().command("STATUS").fields)

    def fault(self) -> str | None:
        """Why the bench cannot go on (e.g. the emulator process died unexpectedly), or None."""
        return None

    def wait_power_lost(self, timeout: float) -> None:
        raise BenchError("this bench cannot observe a power loss")

    def prepare_test(self, name: str = "test") -> None:
        """Bring the seal to a fresh, powered state before test ``name`` (bench-specific)."""

    def close(self) -> None:
        raise NotImplementedError
