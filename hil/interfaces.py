"""What a bench can do to a seal: five tiny interfaces (labgrid's `protocol/` in miniature).

A test talks to these only. The emulator bench and a real-hardware bench each bind drivers to
them, so the same scenario runs on either. A bench that lacks a capability (no power relay, no
lock relay) leaves it out and declares the missing feature; the pytest plugin skips tests that
need it (``@pytest.mark.needs("power")``).

Every wait takes a timeout and waits on an event or a queue; nothing here sleeps blindly.
"""

from __future__ import annotations

import abc
from typing import Iterable


class BenchError(RuntimeError):
    """The bench itself failed (port gone, process died, no reply): not a seal verdict."""


class LinkPort(abc.ABC):
    """The seal's data link as the gateway sees it: whole frames in and out (COBS on serial)."""

    @abc.abstractmethod
    def send(self, frame: bytes) -> None:
        """Write one frame (the port adds the serial framing)."""

    @abc.abstractmethod
    def receive(self, timeout: float) -> bytes | None:
        """The next frame body received, or None when ``timeout`` seconds pass without one."""

    @abc.abstractmethod
    def close(self) -> None: ...


class GnssStimulus(abc.ABC):
    """NMEA into the seal's GNSS UART."""

    @abc.abstractmethod
    def send_sentences(self, sentences: Iterable[str]) -> None:
        """Feed whole sentences (``$..*hh``, without CR LF); returns once the seal has them."""


class LockStimulus(abc.ABC):
    """The cable loop and the housing switch (a relay or GPIO on a real bench)."""

    @abc.abstractmethod
    def set_lock(self, cable_closed: bool, housing_closed: bool) -> None:
        """Set both raw input levels; returns once they are applied."""


class PowerControl(abc.ABC):
    """Supply power to the seal (labgrid's PowerProtocol: on, off, cycle)."""

    @abc.abstractmethod
    def on(self) -> None: ...

    @abc.abstractmethod
    def off(self) -> None:
        """Cut power now: no shutdown, no flush (a real power cut)."""

    def cycle(self) -> None:
        self.off()
        self.on()

    @property
    @abc.abstractmethod
    def is_on(self) -> bool: ...


class Clock(abc.ABC):
    """Time as the bench stamps frames and measures waits."""

    @abc.abstractmethod
    def unix(self) -> int:
        """Wall clock, Unix seconds (what downlink frames carry in ``time``)."""

    @abc.abstractmethod
    def monotonic(self) -> float:
        """Seconds, only differences matter (deadlines of waits)."""
