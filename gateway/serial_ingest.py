"""Serial ingest: seals (or a customs post's reader, or a bench) on one or more serial ports.

One reader thread per port (the pyserial `ReaderThread` shape: the transport owns the port, the
framing is a separate object). Bytes go through the protocol's COBS deframer
(navseal.protocol.serial.SerialDeframer, which counts overruns and COBS errors); each frame body is
handed to `submit(frame, source, reply)`, where `reply(frame)` writes a downlink COBS-framed back to
the same port. A port that disappears (USB unplugged, pty closed) is closed and reopened with capped
exponential backoff; the seal re-sends whatever was not ACKed, so nothing is lost, only delayed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

import serial

from navseal.protocol.serial import SerialDeframer, encode_serial

log = logging.getLogger("navseal.gateway.serial")

Submit = Callable[[bytes, str, Callable[[bytes], None]], None]


@dataclass
class SerialPortStats:
    opens: int = 0
    open_failures: int = 0
    disconnects: int = 0
    frames: int = 0
    bytes_in: int = 0
    downlinks: int = 0
    downlinks_dropped: int = 0


class SerialPortReader:
    """Read one port forever (until stop), reopening it when it goes away."""

    READ_TIMEOUT_S = 0.2  # how quickly stop() is noticed
    READ_SIZE = 4096

    def __init__(
        self,
        port: str,
        submit: Submit,
        *,
        baudrate: int = 115200,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.port = port
        self.source = f"serial:{port}"
        self.baudrate = baudrate
        self._submit = submit
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self.stats = SerialPortStats()
        self.deframer = SerialDeframer()
        self.connected = threading.Event()
        self._serial: serial.Serial | None = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serial-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._close()

    def write_frame(self, frame: bytes) -> bool:
        """Write a downlink COBS-framed. False (and counted) when the port is not open: the seal
        re-sends its frame or the pipeline re-sends its command, so dropping here is safe."""
        data = encode_serial(frame)
        with self._write_lock:
            port = self._serial
            if port is None:
                self.stats.downlinks_dropped += 1
                return False
            try:
                port.write(data)
                port.flush()
            except (serial.SerialException, OSError) as exc:
                self.stats.downlinks_dropped += 1
                log.warning("serial %s: downlink write failed: %s", self.port, exc)
                return False
            self.stats.downlinks += 1
        return True

    # -- loop --------------------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stop.is_set():
            if not self._open():
                self._stop.wait(delay)
                delay = min(self._backoff_max, delay * 2)
                continue
            delay = self._backoff_initial
            self._read_until_error()
            self._close()

    def _open(self) -> bool:
        try:
            port = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.READ_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.stats.open_failures += 1
            if self.stats.open_failures in (1, 10) or self.stats.open_failures % 100 == 0:
                log.warning("serial %s: cannot open (%s), retrying", self.port, exc)
            return False
        with self._write_lock:
            self._serial = port
        # A partial frame from before the unplug must not be glued to the first new bytes.
        self.deframer = SerialDeframer()
        self.stats.opens += 1
        self.stats.open_failures = 0
        self.connected.set()
        log.info("serial %s: open at %d baud", self.port, self.baudrate)
        return True

    def _read_until_error(self) -> None:
        port = self._serial
        assert port is not None
        while not self._stop.is_set():
            try:
                waiting = port.in_waiting
                data = port.read(max(1, min(waiting, self.READ_SIZE)) if waiting else 1)
                if data and port.in_waiting:
                    data += port.read(min(port.in_waiting, self.READ_SIZE))
            except Exception as exc:  # noqa: BLE001 - SerialException, OSError, termios.error, ...
                # Whatever a vanished device makes pyserial raise, the answer is the same: close,
                # reopen with backoff. The thread must never die with the port marked open.
                self.stats.disconnects += 1
                log.warning("serial %s: port lost (%s: %s); reopening", self.port, type(exc).__name__, exc)
                return
            if not data:
                continue
            self.stats.bytes_in += len(data)
            for frame in self.deframer.feed(data):
                self.stats.frames += 1
                try:
                    self._submit(frame, self.source, self.write_frame)
                except Exception:  # noqa: BLE001 - a consumer bug must not stop the port
                    log.exception("serial %s: submit failed", self.port)

    def _close(self) -> None:
        self.connected.clear()
        with self._write_lock:
            port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass


class SerialIngest:
    """All configured ports."""

    def __init__(self, ports: list[dict], submit: Submit) -> None:
        self.readers = [
            SerialPortReader(
                spec["port"],
                submit,
                baudrate=int(spec.get("baudrate", 115200)),
                backoff_initial_s=float(spec.get("reopen_initial_s", 0.1)),
                backoff_max_s=float(spec.get("reopen_max_s", 5.0)),
            )
            for spec in ports
        ]

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()
