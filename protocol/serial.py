"""Serial framing: COBS-encoded frames separated by 0x00 (docs/protocol.md, "Serial framing").

This layer knows nothing about frames: it turns a byte stream into bodies and back. The frame
decoder (codec.py) judges the bodies. A receiver resynchronises at every 0x00, so noise costs at
most the frame it hits.
"""

from __future__ import annotations

from .schema import MAX_FRAME

DELIMITER = b"\x00"
# COBS adds one code byte per 254 data bytes plus one; anything longer cannot be a valid frame.
MAX_ENCODED = MAX_FRAME + MAX_FRAME // 254 + 1


class CobsError(ValueError):
    """A body that is not valid COBS."""


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise CobsError(f"zero byte inside a COBS body at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"code {code} at offset {i} runs past the end ({n} bytes)")
        block = data[i + 1 : end]
        if 0 in block:
            raise CobsError("zero byte inside a COBS block")
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


def encode_serial(frame: bytes) -> bytes:
    """One frame as it goes on the wire: COBS body plus the 0x00 delimiter."""
    return cobs_encode(frame) + DELIMITER


class SerialDeframer:
    """Feed raw serial bytes, get decoded bodies. Never raises on any input; counts instead.

    ``stats``: ``frames`` (bodies handed out), ``overrun`` (too long, dropped), ``cobs_error``.
    """

    def __init__(self, max_encoded: int = MAX_ENCODED):
        self.max_encoded = max_encoded
        self._buf = bytearray()
        self._discarding = False
        self.stats = {"frames": 0, "overrun": 0, "cobs_error": 0}
        self.errors: list[str] = []  # one line per refused body since the last feed()

    def feed(self, data: bytes) -> list[bytes]:
        """Bodies completed by ``data``; refusals are counted in ``stats`` and listed in ``errors``."""
        return [item for kind, item in self.feed_items(data) if kind == "body"]

    def feed_items(self, data: bytes) -> list[tuple[str, object]]:
        """Like feed, but keeps bodies and refusals in stream order:
        ``("body", bytes)`` or ``("error", "overrun" | "cobs_error")``."""
        bodies: list[tuple[str, object]] = []
        self.errors = []
        start = 0
        while start <= len(data):
            end = data.find(0, start)
            chunk = data[start:] if end < 0 else data[start:end]
            if not self._discarding:
                if len(self._buf) + len(chunk) > self.max_encoded:
                    self._discarding = True
                    self._buf.clear()
                    self.stats["overrun"] += 1
                    bodies.append(("error", "overrun"))
                    self.errors.append(f"overrun: encoded frame longer than {self.max_encoded} bytes")
                else:
                    self._buf += chunk
            if end < 0:
                break
            # delimiter reached: close the current body
            if not self._discarding and self._buf:
                try:
                    bodies.append(("body", cobs_decode(bytes(self._buf))))
                    self.stats["frames"] += 1
                except CobsError as exc:
                    self.stats["cobs_error"] += 1
                    bodies.append(("error", "cobs_error"))
                    self.errors.append(f"cobs_error: {exc}")
            self._buf.clear()
            self._discarding = False
            start = end + 1
        return bodies

    @property
    def pending(self) -> int:
        """Bytes held for a frame whose delimiter has not arrived yet."""
        return len(self._buf)
