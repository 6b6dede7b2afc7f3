"""Resources: what a bench is wired to, as plain validated data (labgrid's `resource/` layer).

Nothing here opens a port; drivers (ports.py, emu.py, serial_bench.py) take these and do I/O.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from navseal.protocol import test_key

# Rates a USB-serial adapter and a MicroPython UART both support; anything else is a typo.
STANDARD_BAUDS = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)

# Features a bench may have. A test declares what it needs with @pytest.mark.needs(...).
FEATURES = {
    "gnss": "feed NMEA into the seal's GNSS UART",
    "lock": "set the cable-loop and housing inputs (relay or bench-build override)",
    "lock_pulse": "open an input for a few milliseconds between two samples (bench-build LOCK PULSE)",
    "power": "cut and restore the seal's supply",
    "reboot": "soft-reset the seal on command",
    "battery": "set the battery level the seal reads",
    "link_state": "tell the seal its network is down or up (a modem's state)",
    "write_cut": "cut power in the middle of a flash write (after N bytes)",
    "small_journal": "the seal runs with a journal small enough to fill during a test",
}


class ResourceError(ValueError):
    """A bench description that cannot work (bad baud, empty path, malformed key)."""


@dataclass(frozen=True)
class SerialPortResource:
    """A serial port by name: /dev/ttyUSB0, /dev/serial/by-id/..., or a pty's /dev/pts/N."""

    path: str
    baudrate: int = 115200

    def __post_init__(self) -> None:
        if not self.path or "\n" in self.path:
            raise ResourceError(f"serial port path {self.path!r} is empty or malformed")
        if self.baudrate not in STANDARD_BAUDS:
            raise ResourceError(f"baud rate {self.baudrate} is not one of {STANDARD_BAUDS}")


@dataclass(frozen=True)
class SealKeys:
    """The per-seal 32-byte keys the bench signs commands with and checks uplinks against."""

    keys: dict[int, bytes] = field(default_factory=dict)
    use_test_keys: bool = True  # seals not listed get the protocol's test key (never a real one)

    def __post_init__(self) -> None:
        for seal_id, key in self.keys.items():
            if not 0 <= seal_id <= 0xFFFFFFFF:
                raise ResourceError(f"seal id {seal_id} is not a u32")
            if len(key) != 32:
                raise ResourceError(f"key for seal {seal_id} has {len(key)} bytes, needs 32")

    def key_for(self, seal_id: int) -> bytes:
        if seal_id in self.keys:
            return self.keys[seal_id]
        if self.use_test_keys:
            return test_key(seal_id)
        raise ResourceError(f"no key for seal {seal_id} and test keys are off")

    @classmethod
    def parse(cls, spec: str | None) -> "SealKeys":
        """``--bench-keys``: empty/'test' (test keys), 'ID=HEX,ID=HEX', or a JSON file {"ID": "HEX"}."""
        if not spec or spec == "test":
            return cls()
        if os.path.exists(spec):
            with open(spec, encoding="utf-8") as f:
                raw = json.load(f)
            pairs = list(raw.items())
            return cls(_parse_pairs(pairs, spec), use_test_keys=False)
        pairs = []
        for item in spec.split(","):
            if "=" not in item:
                raise ResourceError(f"--bench-keys item {item!r}: expected SEAL_ID=HEX")
            pairs.append(tuple(item.split("=", 1)))
        return cls(_parse_pairs(pairs, "--bench-keys"), use_test_keys=False)


def _parse_pairs(pairs, where: str) -> dict[int, bytes]:
    out = {}
    for seal_id, hexkey in pairs:
        try:
            out[int(seal_id)] = bytes.fromhex(str(hexkey).strip())
        except ValueError as exc:
            raise ResourceError(f"{where}: {seal_id!r}: {exc}") from None
    return out
