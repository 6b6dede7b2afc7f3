"""The full escort scenario (tests/firmware/scenario_escort.py) under CPython and under the real
MicroPython WebAssembly interpreter (tests/micropython/runner.mjs --steps: one generator step
per top-level call, garbage collected and the heap measured between steps); the core's own
footprint; time per fix and per journal record on both interpreters."""

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
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^FIGURE (\S+) (-?\d+)", text, re.M)}


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
    strip = lambda ls: [x for x in ls if "us_per" not in x]  # noqa: E731
    assert strip(a) == strip(b)


def test_check_really_fails():
    with pytest.raises(scenario_escort.ScenarioError):
        scenario_escort.check(False, "x")


def _stepper(expr):
    """Run scenario_escort's generator EXPR under MicroPython, one step per top-level call."""
    node = shutil.which("node")
    if node is None or not os.path.exists(MP_PKG):
        pytest.skip("MicroPython WebAssembly interpreter not installed (bash tools/run setup)")
    out = subprocess.run(
        [node, os.path.join(REPO, "tests", "micropython", "runner.mjs"), "--copy",
         os.path.join(HERE, "scenario_escort.py") + ":/lib/scenario_escort.py",
         "--code", "import scenario_escort as S", "--steps", expr],
        capture_output=True, text=True, timeout=240, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def _heap(stdout):
    m = re.search(r"^MP_HEAP (\d+) (\d+) (\d+)", stdout, re.M)
    assert m, stdout
    return tuple(map(int, m.groups()))


@pytest.mark.micropython
def test_scenario_micropython_and_heap():
    out = _stepper("S.scenario()")
    assert "SCENARIO_OK" in out, out[-2000:]
    peak_step, peak_live, base = _heap(out)
    print("MicroPython heap over the scenario: live peak %d B, peak with one step's garbage %d B,"
          " base after imports %d B" % (peak_live, peak_step, base))
    # Live heap of the seal core plus this test's gateway double, world and RAM flash image.
    assert peak_live <= LIVE_HEAP_BUDGET + 4096, peak_live


@pytest.mark.micropython
def test_core_footprint_micropython():
    out = _stepper("S.footprint_steps()")
    figs = _figures(out)
    print(out)
    # The seal core alone (the test's gateway double and buffers are measured separately).
    assert figs["core_live_after_boot"] < 12 * 1024
    assert figs["core_live_active_400pt_route"] < 24 * 1024


@pytest.mark.micropython
def test_fix_and_journal_speed_micropython_vs_cpython():
    lines = []
    scenario_escort.bench_fix(300, report=lines.append)
    scenario_escort.bench_journal(2000, report=lines.append)
    cpy = _figures("\n".join(lines))
    mp = _figures(_stepper("S.bench_fix_steps(300)") + _stepper("S.bench_journal_steps(2000)"))
    ratio = mp["us_per_fix_core"] / max(cpy["us_per_fix_core"], 1)
    print("us per fix: MicroPython %d, CPython %d, ratio %.1f; journal append us: MP %d, CPython %d;"
          " recover 2000 us: MP %d, CPython %d"
          % (mp["us_per_fix_core"], cpy["us_per_fix_core"], ratio, mp["journal_append_us"],
             cpy["journal_append_us"], mp["journal_recover_us_2000"], cpy["journal_recover_us_2000"]))
    # A fix a second must cost a small fraction of a second even at the WebAssembly port's speed.
    assert mp["us_per_fix_core"] < 20000


@pytest.mark.micropython
def test_corridor_cost_against_the_nmea_parse_micropython_and_cpython():
    """Per fix, the corridor check as a ratio to one epoch's NMEA parse in the same run (x1000).
    docs/firmware.md "Corridor" has the figures before and after the rewrite."""
    lines = []
    scenario_escort.bench_corridor(300, report=lines.append)
    cpy = _figures("\n".join(lines))
    mp = _figures(_stepper("S.bench_corridor_steps(300)"))
    for name in ("30pt_near", "30pt_far", "400pt_near", "400pt_far"):
        key = "corridor_%s_x1000" % name
        print("corridor %s: %.2f x the NMEA epoch on MicroPython, %.2f x on CPython"
              % (name, mp[key] / 1000, cpy[key] / 1000))
    print("NMEA epoch: MicroPython %d us, CPython %d us" % (mp["nmea_epoch_us"], cpy["nmea_epoch_us"]))
    # A 30-point route costs less than parsing the epoch that carried the fix.
    assert mp["corridor_30pt_near_x1000"] < 1500
