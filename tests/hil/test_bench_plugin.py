"""The pytest plugin itself, run in a separate pytest on a throw-away bench that has nothing:
options are registered, `needs` skips with the bench's reason (with `bench` or `dut`), tests
without the marker never touch the bench."""

import os
import subprocess
import sys

CONFTEST = '''
import importlib.metadata, os
import pytest
from navseal.hil.bench import Bench, DownlinkCounter
from navseal.hil.resources import SealKeys

if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") or not any(
        ep.value == "navseal.hil.plugin" for ep in importlib.metadata.entry_points(group="pytest11")):
    from navseal.hil.plugin import *  # noqa

STARTED = []

class DeskBench(Bench):
    kind = "desk"
    def close(self):
        pass

@pytest.fixture(scope="session")
def bench():
    STARTED.append(1)
    b = DeskBench(1001, SealKeys(), DownlinkCounter())
    b.declare("power", False, "no relay on this desk")
    yield b

def pytest_sessionfinish(session):
    print(f"\\nbench started {len(STARTED)} time(s)")
'''

TESTS = '''
import pytest

@pytest.mark.needs("power")
def test_needs_power_with_bench(bench):
    raise AssertionError("must have been skipped")

@pytest.mark.needs("gnss", "power")
def test_needs_two_with_dut(dut):
    raise AssertionError("must have been skipped")

def test_plain():
    pass
'''


def run_pytest(tmp_path, *args):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_desk.py").write_text(TESTS)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           str(tmp_path), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_needs_marker_skips_with_the_benchs_reasons(tmp_path):
    res = run_pytest(tmp_path, "-rs", "-s", "--strict-markers")  # strict: `needs` is registered
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "1 passed, 2 skipped" in out
    assert "bench 'desk' lacks power: no relay on this desk" in out
    assert "bench 'desk' lacks gnss: not available; power: no relay on this desk" in out
    assert "bench started 1 time(s)" in out


def test_plain_tests_never_start_the_bench(tmp_path):
    res = run_pytest(tmp_path, "-s", "-k", "plain")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "bench started 0 time(s)" in out


def test_options_are_in_their_own_group(tmp_path):
    res = run_pytest(tmp_path, "--help")
    assert res.returncode == 0
    help_text = res.stdout
    group = help_text[help_text.index("navseal hardware-in-the-loop bench"):]
    for opt in ("--bench={emu,serial}", "--bench-port", "--bench-baud", "--bench-gnss-port", "--bench-keys",
                "--bench-log-dir"):
        assert opt in group, opt
