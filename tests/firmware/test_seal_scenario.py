"""The full escort scenario (tests/firmware/scenario_escort.py) under CPython and under the real
MicroPython WebAssembly interpreter, with the heap measured between steps."""

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MP_PKG = os.path.join(REPO, "tools", "micropython-wasm", "node_modules", "@micropython",
                      "micropython-webassembly-pyscript", "micropython.mjs")
sys.path.insert(0, HERE)

import scenario_escort  # noqa: E402

# ESP32 without PSRAM: MicroPython starts with a ~56 KiB heap; the firmware's live data must stay
# well inside it (the modules' bytecode has to be frozen into flash: see docs/firmware.md).
LIVE_HEAP_BUDGET = 32 * 1024


def _figures(text):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^FIGURE (\S+) (-?\d+)$", text, re.M)}


def test_scenario_cpython():
    lines = []
    scenario_escort.run(report=lines.append)
    assert lines[-1] == "SCENARIO_OK"
    figs = _figures("\n".join(lines))
    assert figs["records_delivered"] > 150
    assert figs["retransmits"] >= 1


def test_scenario_is_deterministic():
    a, b = [], []
    scenario_escort.run(report=a.append)
    scenario_escort.run(report=b.append)
    strip = lambda ls: [x for x in ls if "us_per" not in x]
    assert strip(a) == strip(b)


def test_check_really_fails():
    with pytest.raises(scenario_escort.ScenarioError):
        scenario_escort.check(False, "x")


@pytest.mark.micropython
def test_scenario_micropython_and_heap():
    node = shutil.which("node")
    if node is None or not os.path.exists(MP_PKG):
        pytest.skip("MicroPython WebAssembly interpreter not installed (bash tools/run setup)")
    out = subprocess.run(
        [node, os.path.join(HERE, "mp_stepper.mjs"), os.path.join(HERE, "scenario_escort.py"),
         "scenario", "1"],
        capture_output=True, text=True, timeout=240, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SCENARIO_OK" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    m = re.search(r"^MP_HEAP (\d+) (\d+) (\d+)$", out.stdout, re.M)
    assert m, out.stdout
    peak_step, peak_live, base = map(int, m.groups())
    print("MicroPython heap: live peak %d B, peak with one step's garbage %d B, base %d B"
          % (peak_live, peak_step, base))
    # The live heap (seal core plus this test's gateway double, world and RAM flash image).
    assert peak_live <= LIVE_HEAP_BUDGET + 4096, peak_live


@pytest.mark.micropython
def test_journal_bench_micropython():
    node = shutil.which("node")
    if node is None or not os.path.exists(MP_PKG):
        pytest.skip("MicroPython WebAssembly interpreter not installed")
    out = subprocess.run(
        [node, os.path.join(REPO, "tests", "micropython", "runner.mjs"), "--copy",
         os.path.join(HERE, "scenario_escort.py") + ":/lib/scenario_escort.py", "--code",
         "import scenario_escort; scenario_escort.bench_journal(2000)"],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    figs = _figures(out.stdout)
    print(figs)
    assert figs["journal_append_us"] > 0
