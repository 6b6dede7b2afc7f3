"""The world around a desktop seal (navseal_fw.board_desktop on the unix port): a GNSS receiver
that streams NMEA over TCP at 1 Hz along a route, and the control line that sets the lock inputs
and reads the seal's statistics. Both are TCP servers the seal connects to at boot (board.json),
and again after each reboot."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from navseal.hil.nmea_gen import Fix, epoch


class LineServer:
    """A listening socket on loopback; the newest client is the one served."""

    def __init__(self) -> None:
        self._listen = socket.socket()
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.listen(4)
        self.port = self._listen.getsockname()[1]
        self.conn: socket.socket | None = None
        self.accepted = 0
        self._buf = b""
        self._cond = threading.Condition()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listen.accept()
            except OSError:
                return
            with self._cond:
                self.conn = conn
                self._buf = b""
                self.accepted += 1
                self._cond.notify_all()

    def wait_client(self, n: int = 1, timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.accepted >= n, timeout)

    def send(self, data: bytes) -> bool:
        conn = self.conn
        if conn is None:
            return False
        try:
            conn.sendall(data)
            return True
        except OSError:
            return False

    def read_line(self, timeout: float) -> str | None:
        conn = self.conn
        if conn is None:
            return None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            conn.settimeout(left)
            try:
                chunk = conn.recv(4096)
            except (socket.timeout, OSError):
                return None
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    def close(self) -> None:
        self._closed = True
        self._listen.close()
        if self.conn is not None:
            self.conn.close()


class GnssFeed:
    """1 Hz NMEA (GGA + RMC) at the current time, driving east at `speed_kmh` from `start`."""

    def __init__(self, start=(430000000, 747000000), speed_kmh: float = 50.0) -> None:
        self.server = LineServer()
        self.lat, self.lon = start
        self.speed = speed_kmh
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "GnssFeed":
        self._thread.start()
        return self

    def _run(self) -> None:
        step_e7 = int(self.speed / 3.6 / 111_319.49 * 1e7 / 0.73)  # ~cos(43 deg)
        while not self._stop.wait(1.0 - (time.time() % 1.0)):
            fix = Fix(float(int(time.time())), self.lat, self.lon, self.speed, 90.0)
            if self.server.send(("\r\n".join(epoch(fix)) + "\r\n").encode()):
                self.sent += 1
            self.lon += step_e7

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self.server.close()


class Control:
    """The seal's control line: LOCK, BATT, STATS, STATUS (navseal_fw.board_desktop)."""

    def __init__(self) -> None:
        self.server = LineServer()

    def ask(self, line: str, timeout: float = 5.0) -> str:
        self.server.send(line.encode() + b"\n")
        reply = self.server.read_line(timeout)
        if reply is None:
            raise AssertionError(f"no reply to {line!r} on the control line")
        return reply

    def fields(self, line: str) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for word in self.ask(line).split()[1:]:
            key, sep, value = word.partition("=")
            if sep:
                out[key] = int(value) if value.lstrip("-").isdigit() else value
        return out

    def close(self) -> None:
        self.server.close()


def write_wiring(flash_dir: Path, gnss: GnssFeed, control: Control) -> None:
    flash_dir.mkdir(parents=True, exist_ok=True)
    (flash_dir / "board.json").write_text(json.dumps({
        "gnss": f"tcp:127.0.0.1:{gnss.server.port}",
        "control": f"tcp:127.0.0.1:{control.server.port}",
    }))
