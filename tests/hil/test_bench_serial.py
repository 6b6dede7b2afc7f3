"""The real-hardware bench driver (pyserial on named ports) against an emulated seal that serves
its own pseudo-terminals, as a board on two USB-serial adapters would appear. The scenario files
run unchanged with --bench serial; what this bench cannot do is skipped with the reason."""

import os
import select
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from navseal.hil.dut import Dut
from navseal.hil.resources import SealKeys, SerialPortResource
from navseal.hil.serial_bench import SerialBench
from navseal.hil.steps import activate
from navseal.protocol import test_key

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def served_seal(tmp_path):
    """An emulated seal behind ptys it made itself: -> (link path, control path)."""
    serve = tmp_path / "ports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "navseal.hil.emu_seal", "--serve", str(serve), "--state-dir",
         str(tmp_path / "flash"), "--seal-id", "1001", "--key", test_key(1001).hex()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("serving"):
        proc.kill()
        pytest.fail(f"served seal did not start: {line!r} {proc.stderr.read().decode()[-800:]}")
    yield str(serve / "link"), str(serve / "stim")
    proc.kill()
    proc.wait(timeout=5)


def test_serial_bench_declares_what_the_bench_build_offers(served_seal, tmp_path):
    link, stim = served_seal
    b = SerialBench(SerialPortResource(link), 1001, SealKeys(), control_port=SerialPortResource(stim),
                    state_file=str(tmp_path / "downlink.json"))
    try:
        assert {"gnss", "lock", "reboot", "battery"} <= b.features
        assert b.lacking(["power"]) == ["power: no power relay (--bench-power-on/--bench-power-off)"]
        assert "write_cut" not in b.features
        d = Dut(b)
        try:
            b.lock.set_lock(False, True)
            res = activate(d, expect_result="LOCK_OPEN")
            used = (0, res.payload["cmd_seq"])
        finally:
            d.close()
    finally:
        b.close()
    # The command counter is kept on disk: the next session continues above it.
    b2 = SerialBench(SerialPortResource(link), 1001, SealKeys(), control_port=SerialPortResource(stim),
                     state_file=str(tmp_path / "downlink.json"))
    try:
        assert b2.downlink.next(1001) > used
    finally:
        b2.close()


def test_scenarios_run_unchanged_on_the_serial_bench(served_seal, tmp_path):
    link, stim = served_seal
    junit = tmp_path / "junit.xml"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         os.path.join(HERE, "test_activation.py"),
         os.path.join(HERE, "test_tamper.py") + "::test_cable_cut_while_active_is_latched_across_a_power_cycle",
         os.path.join(HERE, "test_tamper.py") + "::test_a_50_ms_pulse_between_two_samples_raises_the_alarm",
         "--bench", "serial", "--bench-port", link, "--bench-gnss-port", stim,
         f"--junitxml={junit}", "-o", "junit_logging=system-out", "--bench-log-dir", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=120, env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "5 passed, 1 skipped" in out, out[-1500:]
    assert "lacks power: no power relay" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    case = cases["test_activation_accepted_with_the_lock_closed_and_first_fix_reported"]
    system_out = case.find("system-out").text
    assert "COMMAND_RESULT" in system_out and "LOG tx RECORDS" in system_out
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert os.path.exists(props["bench_log"])
