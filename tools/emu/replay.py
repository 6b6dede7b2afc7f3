"""Replay a recorded NMEA log into a seal, one receiver epoch at a time.

A log (for example the gpsd captures in tests/data/nmea/) is cut into epochs, each ending
with an RMC sentence, so feeding one chunk per second reproduces the receiver's timing. Bytes are
passed through as recorded: garbage, NULs, run-together sentences and bad checksums reach the
firmware's parser exactly as the receiver sent them. Lines starting with '#' (gpsd's header
comments) are not receiver output and are skipped.

Recorded dates are years old; a seal activated today would see its fixes as from 2007. With
`retime=True` the time and date of RMC/GGA/GNS/ZDA sentences whose checksum is valid are moved to
the replay clock (and their checksum recomputed); damaged sentences stay damaged.
"""

from __future__ import annotations

import time as _time
from pathlib import Path
from typing import Iterator

_TIME_FIELD = {b"RMC": 1, b"GGA": 1, b"GNS": 1, b"ZDA": 1, b"GLL": 5}


class ReplayError(ValueError):
    pass


def _valid(line: bytes) -> bool:
    star = line.rfind(b"*")
    if not line.startswith(b"$") or star < 0 or len(line) < star + 3:
        return False
    cs = 0
    for ch in line[1:star]:
        cs ^= ch
    try:
        return int(line[star + 1:star + 3], 16) == cs
    except ValueError:
        return False


def _retime(line: bytes, unix_t: int) -> bytes:
    body_end = line.rfind(b"*")
    eol = line[body_end + 3:]
    fields = line[1:body_end].split(b",")
    kind = fields[0][2:]
    idx = _TIME_FIELD.get(kind)
    if idx is None or len(fields) <= idx or not fields[idx]:
        return line
    tm = _time.gmtime(unix_t)
    old = fields[idx]
    frac = old[6:] if len(old) > 6 else b""
    fields[idx] = b"%02d%02d%02d" % (tm.tm_hour, tm.tm_min, tm.tm_sec) + frac
    if kind == b"RMC" and len(fields) > 9 and fields[9]:
        fields[9] = b"%02d%02d%02d" % (tm.tm_mday, tm.tm_mon, tm.tm_year % 100)
    if kind == b"ZDA" and len(fields) > 4:
        fields[2:5] = [b"%02d" % tm.tm_mday, b"%02d" % tm.tm_mon, b"%04d" % tm.tm_year]
    body = b",".join(fields)
    cs = 0
    for ch in body:
        cs ^= ch
    return b"$" + body + b"*%02X" % cs + eol


class NmeaReplay:
    """Epochs of a recorded log. `next_epoch(unix_t)` gives the bytes of the next one (looping
    at the end of the log when `loop`, else None once exhausted)."""

    def __init__(self, path: str | Path, *, retime: bool = True, loop: bool = True) -> None:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ReplayError(f"{path}: {exc.strerror or exc}") from None
        self.path = path
        self.retime = retime
        self.loop = loop
        self.epochs = self._split(data)
        if not self.epochs:
            raise ReplayError(f"{path}: no RMC sentence, nothing to replay")
        self._i = 0

    @staticmethod
    def _split(data: bytes) -> list[list[bytes]]:
        epochs: list[list[bytes]] = []
        current: list[bytes] = []
        for line in data.splitlines(keepends=True):
            if line.startswith(b"#"):
                continue
            current.append(line)
            # An epoch ends at an RMC (the sentence that completes a fix in the firmware).
            if b"RMC," in line:
                epochs.append(current)
                current = []
        return epochs

    def __len__(self) -> int:
        return len(self.epochs)

    def next_epoch(self, unix_t: float) -> bytes | None:
        if self._i >= len(self.epochs):
            if not self.loop:
                return None
            self._i = 0
        lines = self.epochs[self._i]
        self._i += 1
        if not self.retime:
            return b"".join(lines)
        t = int(unix_t)
        return b"".join(_retime(line, t) if _valid(line.rstrip(b"\r\n")) else line for line in lines)

    def __iter__(self) -> Iterator[bytes]:
        for lines in self.epochs:
            yield b"".join(lines)
