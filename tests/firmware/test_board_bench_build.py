"""The HIL suite's short-pulse test on the board path: firmware/main.py (the .mpy image) on
MicroPython's unix port as a bench build ("bench": true, the serial link), at the board-path heap
cap, with the desktop board's two UARTs (the COBS link and the bench-control line) relayed to raw
ptys: `pytest tests/hil --bench serial` drives it as it drives a board on two USB-serial adapters.
The bench's LOCK PULSE goes through app.py's bench task (benchctl.BenchTarget.pulse_lock, feature
lock_pulse) into the desktop board's interrupt latch, whose flag wakes the loop."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest

from mp_unix import require_unix

from navseal.desktop_seal import DesktopSeal, build_image
from navseal.protocol import test_key

HIL = Path(__file__).resolve().parents[1] / "hil"
SEAL = 1001


class PtyRelay:
    """One UART of the desktop seal: a loopback TCP server the seal connects to at boot (and again
    after each reboot), relayed both ways to a raw pty whose slave the bench opens by path. With
    nobody reading, what the seal sends is dropped, as a UART's would be."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._listen = socket.socket()
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.listen(2)
        self.port = self._listen.getsockname()[1]
        self.accepted = 0
        self._conn: socket.socket | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            watch = [self._listen, self.master] + ([self._conn] if self._conn else [])
            try:
                ready, _, _ = select.select(watch, [], [], 0.2)
            except (OSError, ValueError):
                return
            for r in ready:
                if r is self._listen:
                    conn, _ = self._listen.accept()
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = conn
                    self.accepted += 1
                elif r is self.master:
                    try:
                        data = os.read(self.master, 4096)
                    except (BlockingIOError, OSError):
                        continue
                    if self._conn is not None:
                        try:
                            self._conn.sendall(data)
                        except OSError:
                            pass
                else:
                    try:
                        data = r.recv(4096)
                    except OSError:
                        data = b""
                    if not data:  # the seal rebooted (or stopped): wait for its next connection
                        r.close()
                        self._conn = None
                        continue
                    try:
                        os.write(self.master, data)
                    except BlockingIOError:
                        pass

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._listen.close()
        if self._conn is not None:
            self._conn.close()
        os.close(self.master)
        os.close(self._slave)


@pytest.mark.slow
@pytest.mark.micropython
def test_the_hil_short_pulse_test_passes_on_the_board_path(tmp_path):
    require_unix()
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "navseal.json").write_text(json.dumps(
        {"seal_id": SEAL, "key": test_key(SEAL).hex(), "link": "serial", "bench": True}))
    link, ctl = PtyRelay(), PtyRelay()
    (flash / "board.json").write_text(json.dumps(
        {"serial": f"tcp:127.0.0.1:{link.port}", "bench_ctl": f"tcp:127.0.0.1:{ctl.port}"}))
    seal = DesktopSeal(build_image(tmp_path / "image", "mpy"), flash, heapsize="176K",
                       log_path=tmp_path / "seal.log").start()
    try:
        deadline = time.monotonic() + 30
        while (link.accepted == 0 or ctl.accepted == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.accepted and ctl.accepted, seal.log()
        res = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
             str(HIL / "test_tamper.py") + "::test_a_50_ms_pulse_between_two_samples_raises_the_alarm",
             "--bench", "serial", "--bench-port", link.path, "--bench-gnss-port", ctl.path,
             "--bench-log-dir", str(tmp_path / "logs")],
            capture_output=True, text=True, timeout=180,
            env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")))
        out = res.stdout + res.stderr
        assert res.returncode == 0, out[-3000:] + "\n--- seal ---\n" + seal.log()[-2000:]
        assert "1 passed" in out, out[-1500:]
        # The bench rebooted the seal for its baseline (a fresh boot): the program came back.
        assert seal.boots >= 2 and set(seal.exit_codes) <= {75}, (seal.exit_codes, seal.log()[-2000:])
    finally:
        seal.stop()
        link.close()
        ctl.close()
