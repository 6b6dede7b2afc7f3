"""`navseal flash` end to end through the real mpremote, over a real pseudo-terminal, into a
real MicroPython: tests/micropython/fake_board.mjs puts the WebAssembly interpreter behind the
raw REPL protocol mpremote speaks to boards. Afterwards the compiled firmware must import and
work on that interpreter, and the board must have been reset."""

from __future__ import annotations

import os
import select
import subprocess
import threading
import tty

import pytest

from mp_helper import REPO, node_binary, require_mp
from navseal.cli import main as cli_main
from navseal.cmd_flash import DESKTOP_ONLY, mpremote_cmd

FAKE_BOARD = REPO / "tests" / "micropython" / "fake_board.mjs"


class PtyBoard:
    """A pty whose far end is fake_board.mjs; `port` is the path mpremote opens."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.proc = subprocess.Popen([node_binary(), str(FAKE_BOARD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, cwd=REPO)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._to_board, daemon=True),
                         threading.Thread(target=self._from_board, daemon=True)]
        for t in self._threads:
            t.start()

    def _to_board(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _from_board(self):
        fd = self.proc.stdout.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 4096)
            if not data:
                return
            os.write(self.master, data)

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self.proc.kill()
        self.proc.wait(timeout=5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def board():
    require_mp()
    if mpremote_cmd() is None:
        pytest.skip("mpremote not installed (bash tools/run setup)")
    b = PtyBoard()
    yield b
    b.close()


@pytest.mark.micropython
@pytest.mark.slow
def test_flash_installs_working_firmware_on_a_micropython_board(board, tmp_path, capsys):
    rc = cli_main(["flash", "--port", board.port, "--build-dir", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "the board is restarting" in out.out
    check = ("import os\n"
             "print(sorted(os.listdir('/lib/navseal_fw')))\n"
             "print(sorted(f for f in os.listdir('/') if f.endswith('.py')))\n"
             "print(open('/reset.log').read().strip())\n"
             "import navseal_fw.codec as c, navseal_fw.nmea as n\n"
             "print(c.__file__, hex(c.crc(b'123456789')))\n")
    res = subprocess.run([*mpremote_cmd(), "connect", board.port, "exec", check],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    modules = sorted(p.stem + ".mpy" for p in (REPO / "firmware" / "navseal_fw").glob("*.py")
                     if p.name not in DESKTOP_ONLY)
    assert lines[0] == repr(modules)
    assert lines[1] == repr(["boot.py", "main.py"])
    assert lines[2] == "reset"
    assert lines[3] == "/lib/navseal_fw/codec.mpy 0xcbf43926"  # the bytecode, not a source


@pytest.mark.micropython
@pytest.mark.slow
def test_reflash_replaces_stale_sources(board, tmp_path, capsys):
    # a stale navseal_fw/nmea.py on the board would shadow the new nmea.mpy: flash removes it
    subprocess.run([*mpremote_cmd(), "connect", board.port, "exec",
                    "import os\nfor d in ('/lib', '/lib/navseal_fw'):\n"
                    "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
                    "open('/lib/navseal_fw/nmea.py', 'w').write('raise ImportError(1)')"],
                   check=True, capture_output=True, timeout=60)
    assert cli_main(["flash", "--port", board.port, "--build-dir", str(tmp_path)]) == 0
    res = subprocess.run([*mpremote_cmd(), "connect", board.port, "exec",
                          "import navseal_fw.nmea as n\nprint(n.__file__)"],
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "/lib/navseal_fw/nmea.mpy", res.stdout + res.stderr
