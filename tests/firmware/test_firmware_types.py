"""Type-check the firmware against the MicroPython stubs (micropython-esp32-stubs on top of
micropython-stdlib-stubs) with mypy: catches names and signatures that CPython has and
MicroPython does not (e.g. a `zlib` import or a CPython-only str method).

How: micropython-stdlib-stubs is a reduced typeshed (`stdlib/`), used as mypy's
--custom-typeshed-dir; the ESP32 port stubs (machine, network, binascii, time, micropython ...)
are loose .pyi files in site-packages, which mypy only reads from its search path, so they are
copied (with their private helper package _mpy_shed) into a temporary directory on mypy_path.
Errors inside the stubs themselves are not ours and are silenced per module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"


def _stub_files(dist: str) -> list[str]:
    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        pytest.skip(f"{dist} not installed (bash tools/run setup)")
    return [str(f) for f in files if str(f).endswith(".pyi")]


# Files that only ever run under CPython (the emulator's desktop HAL): not checked against the
# MicroPython stubs (time.monotonic & co. are right there).
CPYTHON_ONLY = {"hal_desktop.py"}
# The codec, framing, NMEA, lock and board modules, checked on their own so a failure says which group.
IO_AND_BOARD_FILES = ["boot.py", "main.py", "navseal_fw/codec.py", "navseal_fw/cobs.py", "navseal_fw/nmea.py",
             "navseal_fw/lock.py", "navseal_fw/board_esp32.py"]


def _mypy(tmp_path, files):
    site = Path(sysconfig.get_paths()["purelib"])
    if not (site / "stdlib" / "VERSIONS").exists():
        pytest.skip("micropython-stdlib-stubs not installed (bash tools/run setup)")
    stubs = tmp_path / "stubs"
    modules = set()
    port = _stub_files("micropython-esp32-stubs")
    shed = [f for f in _stub_files("micropython-stdlib-stubs") if f.startswith("_mpy_shed/")]
    for rel in port + shed:
        dest = stubs / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site / rel, dest)
        mod = rel[: -len(".pyi")].replace("/", ".").removesuffix(".__init__")
        modules.add(mod)
    assert "machine" in modules and "micropython" in modules
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {stubs}\n"
        f"custom_typeshed_dir = {site}\n"
        "python_version = 3.11\n"
        "warn_unused_ignores = False\n"
        "check_untyped_defs = True\n"
        f"[mypy-{','.join(sorted(modules))}]\n"
        "ignore_errors = True\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), *files],
        capture_output=True, text=True, cwd=FIRMWARE, timeout=300,
    )
    return res


def test_io_codec_nmea_lock_board_type_check(tmp_path):
    res = _mypy(tmp_path, [str(FIRMWARE / f) for f in IO_AND_BOARD_FILES])
    assert res.returncode == 0, res.stdout + res.stderr


def test_whole_firmware_type_checks(tmp_path):
    files = [str(p) for p in sorted(FIRMWARE.rglob("*.py")) if p.name not in CPYTHON_ONLY]
    res = _mypy(tmp_path, files)
    assert res.returncode == 0, res.stdout + res.stderr
