"""Byte channels and the two serial lines of a bench: the framed data link and the control line.

Transport and framing are separate (pyserial's ReaderThread/Protocol split): a *channel* moves
bytes (a pty master fd, or pyserial on a named port); ``FramedLink`` and ``ControlPort`` each own
one reader thread that turns bytes into frames or lines and hands them over through queues.
A reader thread that fails records the exception (``failure``): nothing is swallowed.
"""

from __future__ import annotations

import os
import queue
import select
import threading
import time
from typing import Callable

from navseal.protocol.serial import SerialDeframer, encode_serial

from . import benchctl
from .interfaces import BenchError, LinkPort
from .resources import SerialPortResource

_POLL_S = 0.05  # how often a reader notices close(); reads themselves wake on data at once
_WRITE_STALL_S = 5.0


class Transcript:
    """Everything that crossed the bench's lines, time-stamped, for the test report."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def add(self, channel: str, text: str) -> None:
        stamp = time.monotonic() - self._t0
        with self._lock:
            self._lines.append(f"{stamp:9.3f} {channel:<5} {text}")

    def mark(self) -> int:
        with self._lock:
            return len(self._lines)

    def since(self, mark: int = 0) -> list[str]:
        with self._lock:
            return self._lines[mark:]


class FdChannel:
    """A file descriptor as a byte channel (the bench's end of a pty: its master)."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self._wlock = threading.Lock()

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + _WRITE_STALL_S
        with self._wlock:
            while view:
                try:
                    n = os.write(self.fd, view)
                except BlockingIOError:
                    # Nobody drains the other end (a seal powered off for long): fail, not hang.
                    if time.monotonic() > deadline:
                        raise BenchError(f"{self.name}: line blocked for {_WRITE_STALL_S} s") from None
                    select.select([], [self.fd], [], 0.1)
                    continue
                view = view[n:]

    def close(self) -> None:
        pass  # the fd belongs to whoever created the pty


class PyserialChannel:
    """pyserial on a named port (/dev/ttyUSB0, /dev/serial/by-id/..., a pty slave)."""

    def __init__(self, resource: SerialPortResource) -> None:
        import serial  # pyserial

        self.name = resource.path
        try:
            self._ser = serial.Serial(resource.path, resource.baudrate, timeout=_POLL_S, write_timeout=5)
        except serial.SerialException as exc:
            raise BenchError(f"cannot open {resource.path}: {exc}") from None
        self._wlock = threading.Lock()

    def read(self, timeout: float) -> bytes:
        # pyserial returns after its own timeout (_POLL_S) when nothing arrives.
        return self._ser.read(max(1, self._ser.in_waiting))

    def write(self, data: bytes) -> None:
        with self._wlock:
            self._ser.write(data)
            self._ser.flush()

    def reset_input(self) -> None:
        self._ser.reset_input_buffer()

    def close(self) -> None:
        self._ser.close()


class _Reader:
    """One thread reading a channel until close(); ``on_bytes`` turns bytes into items."""

    def __init__(self, channel, on_bytes: Callable[[bytes], None], name: str) -> None:
        self.channel = channel
        self._on_bytes = on_bytes
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self.channel.read(_POLL_S)
                if data:
                    self._on_bytes(data)
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised to the test by the owner
            if not self._stop.is_set():
                self.failure = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class FramedLink(LinkPort):
    """COBS-framed frames over a channel. Received bodies queue up; refusals are counted."""

    def __init__(self, channel, transcript: Transcript | None = None, tag: str = "link") -> None:
        self.channel = channel
        self.transcript = transcript
        self.tag = tag
        self.deframer = SerialDeframer()
        self._q: "queue.Queue[bytes]" = queue.Queue()
        self.bytes_in = 0
        self.bytes_out = 0
        self._reader = _Reader(channel, self._on_bytes, f"{tag}-reader")

    def _on_bytes(self, data: bytes) -> None:
        self.bytes_in += len(data)
        for kind, item in self.deframer.feed_items(data):
            if kind == "body":
                self._q.put(item)  # type: ignore[arg-type]
            elif self.transcript:
                self.transcript.add(self.tag, f"!! serial framing: {item}")

    def send(self, frame: bytes) -> None:
        wire = encode_serial(frame)
        self.bytes_out += len(wire)
        self.channel.write(wire)

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (noise, a damaged frame): the seal's deframer must cope."""
        self.bytes_out += len(data)
        self.channel.write(data)

    def receive(self, timeout: float) -> bytes | None:
        self.check()
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            self.check()
            return None

    def check(self) -> None:
        if self._reader.failure is not None:
            raise BenchError(f"{self.tag} reader failed: {self._reader.failure!r}")

    def close(self) -> None:
        self._reader.stop()
        self.channel.close()


class ControlPort:
    """The bench-control line: one command at a time, its reply awaited; READY and LOG lines
    arrive asynchronously (LOG lines go to ``on_log``, READY notices are counted)."""

    def __init__(self, channel, transcript: Transcript | None = None, on_log: Callable[[str], None] | None = None) -> None:
        self.channel = channel
        self.transcript = transcript
        self.on_log = on_log
        self._splitter = benchctl.LineSplitter()
        self._replies: "queue.Queue[benchctl.Message]" = queue.Queue()
        self._cmd_lock = threading.Lock()
        self._ready_cv = threading.Condition()
        self.ready_count = 0
        self.last_ready: benchctl.Message | None = None
        self.garbage = 0
        self._reader = _Reader(channel, self._on_bytes, "control-reader")

    def _on_bytes(self, data: bytes) -> None:
        for line in self._splitter.feed(data):
            try:
                msg = benchctl.parse_message(line)
            except benchctl.ControlProtocolError as exc:
                self.garbage += 1
                self._note(f"!! {exc}")
                continue
            if msg.kind == "LOG":
                self._note(f"LOG {msg.text}")
                if self.on_log:
                    self.on_log(msg.text)
            elif msg.kind == "READY":
                self._note(f"READY {msg.text}")
                with self._ready_cv:
                    self.ready_count += 1
                    self.last_ready = msg
                    self._ready_cv.notify_all()
            else:
                self._replies.put(msg)

    def _note(self, text: str) -> None:
        if self.transcript:
            self.transcript.add("ctl", text)

    def command(self, verb: str, *args: object, timeout: float = 5.0) -> benchctl.Message:
        """Send one command and wait for its reply. ERR raises BenchError with the reason."""
        line = benchctl.format_command(verb, *args)
        with self._cmd_lock:
            while not self._replies.empty():  # replies to commands that timed out earlier
                self._note(f"!! late reply dropped: {self._replies.get_nowait()}")
            if verb != "NMEA":  # NMEA lines are noted by the GNSS driver, in bulk
                self._note("> " + line.decode().rstrip())
            self.channel.write(line)
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"no reply to {verb} within {timeout} s on the control line")
                try:
                    msg = self._replies.get(timeout=min(remaining, 0.2))
                except queue.Empty:
                    self.check()
                    continue
                if msg.verb != verb:
                    self._note(f"!! reply {msg.kind} {msg.verb} while waiting for {verb}")
                    continue
                if msg.kind == "ERR":
                    raise BenchError(f"seal refused {verb}: {msg.text}")
                return msg

    def wait_ready(self, after: int, timeout: float) -> benchctl.Message:
        """Wait until READY number ``after + 1`` (counted since this port opened) arrives."""
        with self._ready_cv:
            ok = self._ready_cv.wait_for(lambda: self.ready_count > after, timeout=timeout)
            if not ok:
                raise BenchError(f"seal did not report READY within {timeout} s")
            assert self.last_ready is not None
            return self.last_ready

    def check(self) -> None:
        if self._reader.failure is not None:
            raise BenchError(f"control reader failed: {self._reader.failure!r}")

    def close(self) -> None:
        self._reader.stop()
        self.channel.close()
