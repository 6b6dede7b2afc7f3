"""Run code under the real MicroPython interpreter (WebAssembly port, via Node.js).

    from mp_helper import run_mp, require_mp
    res = run_mp("import navseal_fw.nmea; print('ok')")      # CompletedProcess
    assert res.returncode == 0, res.stderr

The firmware package is copied to /lib/navseal_fw inside the interpreter (as on a board).
`copies` adds more host paths (file or directory) as (host, mp_path) pairs. `require_mp()`
skips the calling test when Node.js or the npm package is missing (run `bash tools/run setup`).

Memory: the WebAssembly build does not cap its heap, and it frees no garbage while Python
code runs (gc.collect() inside one run has no effect; collection happens between top-level
calls from JS). So within one run gc.mem_alloc() counts allocation, not the live heap:
- for the live heap, pass `steps="EXPR"` (EXPR gives a generator): the runner advances it one
  step per top-level call, collecting between steps, and prints `MP_HEAP <peak after a step>
  <peak live> <base> <steps>`; `parse_heap(stdout)` reads it back;
- `mpmem.Peak` (tests/micropython/mpmem.py, copied to /lib with `with_mpmem=True`, the
  default) samples gc.mem_alloc() inside a run (allocation totals, or live sizes measured as
  the difference around creating an object); `parse_peak(stdout)` reads `MP_PEAK a b`.

The pytest fixture `micropython` (import it into a test module: `from mp_helper import
micropython`) returns run_mp, skipping the test when the interpreter is unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "tests" / "micropython" / "runner.mjs"
MPMEM = REPO / "tests" / "micropython" / "mpmem.py"
PACKAGE = (REPO / "tools" / "micropython-wasm" / "node_modules" / "@micropython"
           / "micropython-webassembly-pyscript" / "micropython.mjs")


def node_binary() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def mp_available() -> str | None:
    """None when the interpreter can run, else the reason it cannot."""
    if node_binary() is None:
        return "Node.js not installed (bash tools/run setup)"
    if not PACKAGE.exists():
        return "MicroPython WebAssembly package missing (bash tools/run setup)"
    return None


def require_mp() -> None:
    reason = mp_available()
    if reason:
        pytest.skip(reason)


def run_mp(code: str | None = None, *, script: str | os.PathLike | None = None,
           copies: list[tuple[str | os.PathLike, str]] = (), heapsize: str = "1m",
           argv: list[str] = (), firmware: bool = True, with_mpmem: bool = True,
           use_async: bool = False, steps: str | None = None, timeout: float = 120.0,
           check: bool = False) -> subprocess.CompletedProcess:
    """Run `code` (or the file `script`) under MicroPython; return the finished process."""
    node = node_binary()
    if node is None:
        raise RuntimeError("Node.js not found; run `bash tools/run setup`")
    cmd = [node, str(RUNNER), "--heapsize", heapsize]
    if not firmware:
        cmd.append("--no-firmware")
    if use_async:
        cmd.append("--async")
    if steps is not None:
        cmd += ["--steps", steps]
    if with_mpmem:
        cmd += ["--copy", f"{MPMEM}:/lib/mpmem.py"]
    for host, dest in copies:
        cmd += ["--copy", f"{host}:{dest}"]
    for a in argv:
        cmd += ["--argv", a]
    if (code is None) == (script is None):
        raise ValueError("give exactly one of code or script")
    if code is not None:
        cmd += ["--code", code]
    else:
        cmd.append(str(script))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if check and res.returncode != 0:
        raise AssertionError(
            f"MicroPython exited {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}")
    return res


def parse_heap(stdout: str) -> tuple[int, int, int, int]:
    """(peak after a step, peak live, base, steps) from the runner's --steps `MP_HEAP` line."""
    for line in stdout.splitlines()[::-1]:
        if line.startswith("MP_HEAP "):
            a, b, c, d = (int(x) for x in line.split()[1:5])
            return a, b, c, d
    raise ValueError("no MP_HEAP line in output")


def parse_peak(stdout: str) -> tuple[int, int]:
    """(peak sampled gc.mem_alloc(), peak live heap after gc.collect()) from `MP_PEAK a b`."""
    for line in stdout.splitlines()[::-1]:
        if line.startswith("MP_PEAK "):
            _, sampled, live = line.split()
            return int(sampled), int(live)
    raise ValueError("no MP_PEAK line in output")


@pytest.fixture
def micropython():
    require_mp()
    return run_mp
