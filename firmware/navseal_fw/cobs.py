"""Serial framing for the seal's UART link: COBS bodies separated by 0x00 (docs/protocol.md).

This layer knows nothing about frames (the codec judges the bodies); the codec knows nothing
about COBS.

    wire = cobs_frame(frame)            # COBS(frame) + b"\\x00", ready for uart.write()
    d = Deframer(on_body, on_error)     # callbacks: on_body(memoryview), on_error(code)
    d.feed(uart_bytes)                  # any chunking; never raises on any input
    d.frames, d.overrun, d.cobs_error, d.empty   # counters

`on_body` gets a memoryview into the deframer's own buffer: decode it (or copy it) before
returning, the next body overwrites it. `on_error` gets "overrun" (an encoded frame longer
than MAX_ENCODED: dropped without storing more of it, up to the next delimiter) or
"cobs_error" (a body that does not COBS-decode). Empty bodies (flush delimiters) are only
counted. One MAX_ENCODED buffer per deframer, allocated once; COBS is decoded in place.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):  # type: ignore[no-redef,misc]  # stub's signature is generic
        return x


MAX_FRAME = const(2083)
# COBS adds one code byte per 254 data bytes plus one; anything longer cannot be a frame.
MAX_ENCODED = const(2092)  # MAX_FRAME + MAX_FRAME // 254 + 1

OVERRUN = "overrun"
COBS_ERROR = "cobs_error"


class CobsError(ValueError):
    pass


def cobs_encode_into(data, out):
    """COBS-encode `data` into the bytearray `out` (len(data) + len(data)//254 + 1 bytes at
    most); return the encoded length. No delimiter is written."""
    n = len(data)
    code_at = 0
    o = 1
    code = 1
    for i in range(n):
        b = data[i]
        if b == 0:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 255:
                out[code_at] = code
                code_at = o
                o += 1
                code = 1
    out[code_at] = code
    return o


def cobs_encode(data):
    out = bytearray(len(data) + len(data) // 254 + 1)
    n = cobs_encode_into(data, out)
    return bytes(memoryview(out)[:n])


def cobs_frame(frame):
    """One frame as it goes on the wire: COBS body plus the 0x00 delimiter."""
    out = bytearray(len(frame) + len(frame) // 254 + 2)
    n = cobs_encode_into(frame, out)
    out[n] = 0
    return bytes(memoryview(out)[: n + 1])


def cobs_decode_in_place(buf, n):
    """Decode the COBS body buf[0:n] in place; return the decoded length or raise CobsError.

    The output never runs ahead of the input, so one buffer does."""
    i = 0
    o = 0
    while i < n:
        code = buf[i]
        if code == 0:
            raise CobsError("zero byte in body")
        end = i + code
        if end > n:
            raise CobsError("block runs past the end")
        i += 1
        while i < end:
            b = buf[i]
            if b == 0:
                raise CobsError("zero byte in block")
            buf[o] = b
            o += 1
            i += 1
        if code < 255 and i < n:
            buf[o] = 0
            o += 1
    return o


def cobs_decode(data):
    buf = bytearray(data)
    n = cobs_decode_in_place(buf, len(buf))
    return bytes(memoryview(buf)[:n])


class Deframer:
    """Raw serial bytes in, decoded bodies out through callbacks (see module docstring)."""

    def __init__(self, on_body, on_error=None, max_encoded=MAX_ENCODED):
        self.on_body = on_body
        self.on_error = on_error
        self.max_encoded = max_encoded
        self._buf = bytearray(max_encoded)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._discarding = False
        self.frames = 0
        self.overrun = 0
        self.cobs_error = 0
        self.empty = 0

    @property
    def pending(self):
        """Bytes held for a body whose delimiter has not arrived yet."""
        return self._n

    def feed(self, data):
        if not isinstance(data, bytes):
            data = bytes(data)  # MicroPython's memoryview has no find()
        n = len(data)
        src = memoryview(data)
        start = 0
        while start <= n:
            end = data.find(b"\x00", start)
            stop = n if end < 0 else end
            k = stop - start
            if k and not self._discarding:
                if self._n + k > self.max_encoded:
                    self._discarding = True
                    self._n = 0
                    self.overrun += 1
                    if self.on_error is not None:
                        self.on_error(OVERRUN)
                else:
                    self._mv[self._n : self._n + k] = src[start:stop]
                    self._n += k
            if end < 0:
                return
            self._close()
            start = end + 1

    def _close(self):
        n = self._n
        self._n = 0
        if self._discarding:
            self._discarding = False
            return
        if not n:
            self.empty += 1
            return
        try:
            m = cobs_decode_in_place(self._buf, n)
        except CobsError:
            self.cobs_error += 1
            if self.on_error is not None:
                self.on_error(COBS_ERROR)
            return
        self.frames += 1
        self.on_body(self._mv[:m])


class SerialLink:
    """The serial link: frames over a byte stream (a UART, a pty, an in-memory fake) with the
    framing above. Same shape as link_mqtt.MqttLink for the core and main.py:

        link = SerialLink(uart, on_frame)   # on_frame(bytes): a complete body from the wire
        task = asyncio.create_task(link.run())   # reads and writes the stream, never blocks
        link.send(frame) -> bool            # queued (False: queue full)
        link.ready                          # asyncio.Event: bodies wait for poll()
        link.poll(now_ms)                   # on_frame(body) for each, from the seal's loop
        link.pump()                         # one I/O step by hand (what run() repeats)

    The stream is polled, as a UART with timeout=0 is: read() returns what is waiting (or
    None), write() takes a chunk. Writes go CHUNK bytes at a time so a 2 KB frame at 115200
    baud (180 ms on the wire) never holds the loop. A serial line has no connection to come or
    go, so it is always `connected`. Bodies are copied before on_frame sees them.
    """

    POLL_MS = 10
    CHUNK = 128  # 11 ms at 115200 baud: one pump step's worth
    MAX_QUEUE = 6

    def __init__(self, stream, on_frame, on_error=None):
        import asyncio

        self.stream = stream
        self.connected = True
        self.ready = asyncio.Event()
        self._on_frame = on_frame
        self.deframer = Deframer(self._body, on_error)
        self._inbox = []
        self._outbox = []
        self._pending = None  # memoryview of the wire bytes being written
        self._closed = False
        self.sent = 0
        self.received = 0
        self.refused = 0
        self.dropped = 0  # bodies beyond MAX_QUEUE while the loop was behind
        # flush delimiter: whatever partial frame the far end holds is dropped, not merged
        self._primed = False

    def _body(self, body):
        if len(self._inbox) >= self.MAX_QUEUE:
            self.dropped += 1  # the core's protocol repeats (ACK by retransmission, commands)
            return
        self._inbox.append(bytes(body))
        self.ready.set()

    def send(self, frame, now_ms=None):
        if len(self._outbox) >= self.MAX_QUEUE:
            self.refused += 1
            return False
        if not self._primed:
            self._outbox.append(b"\x00")
            self._primed = True
        self._outbox.append(cobs_frame(frame))
        self.sent += 1
        return True

    def poll(self, now_ms=None):
        box = self._inbox
        while box:
            self._on_frame(box.pop(0))
            self.received += 1
        self.ready.clear()

    def next_deadline_ms(self):
        return None

    def busy(self):
        """True while bytes wait to be written."""
        return self._pending is not None or bool(self._outbox)

    def pump(self):
        data = self.stream.read()
        if data:
            self.deframer.feed(data)
        if self._pending is None and self._outbox:
            self._pending = memoryview(self._outbox.pop(0))
        pend = self._pending
        if pend is not None:
            n = self.stream.write(pend[: self.CHUNK])
            if n is None:
                n = 0  # a UART whose buffer is full: try again next step
            self._pending = pend[n:] if n < len(pend) else None

    async def run(self):
        from navseal_fw.aio import sleep_ms

        while not self._closed:
            self.pump()
            await sleep_ms(self.POLL_MS)

    def close(self):
        self._closed = True
