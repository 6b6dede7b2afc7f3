"""pytest plugin for the navseal HIL bench (entry point ``pytest11: navseal_bench``).

Options (group "navseal bench"):
    --bench emu|serial        which bench (default emu: the real firmware core in a process
                              behind pseudo-terminals)
    --bench-port PATH         serial bench: the seal's data link (/dev/ttyUSB0)
    --bench-baud N            both serial lines (default 115200)
    --bench-gnss-port PATH    serial bench: the bench-control line (GNSS feed, lock, reboot)
    --bench-keys SPEC         'test' (default), 'ID=HEX,...' or a JSON file {"ID": "HEX"}
    --bench-seal-id N         the seal on the bench (default 1001)
    --bench-power-on/-off CMD serial bench: power relay commands
    --bench-lock-cmd CMD      serial bench: lock relay command ('{cable}', '{housing}' -> 1/0)
    --bench-gnss-raw PORT     serial bench: raw NMEA into the GNSS UART pin (--bench-gnss-baud, 9600)
    --bench-log-dir DIR       also write each test's bench log to DIR/<test>.log
Fixtures: ``bench`` (session), ``dut`` (function: a seal in a known state, fast timers).
Marker: ``@pytest.mark.needs("power", "lock")`` skips, with the bench's reason, what it cannot do.
Each test's bench transcript (frames both ways, bench-control lines, firmware log) is attached to
its report as the section "Captured stdout navseal bench" (so ``-o junit_logging=system-out``
puts it into JUnit XML) and, with --bench-log-dir, named in the JUnit property ``bench_log``.
"""

from __future__ import annotations

import os
import re

import pytest

from .bench import Bench
from .dut import Dut
from .interfaces import BenchError
from .resources import FEATURES, SealKeys, SerialPortResource

__all__ = ["pytest_addoption", "pytest_configure", "pytest_runtest_makereport", "bench", "dut",
           "navseal_bench_needs"]

_MARK_KEY = pytest.StashKey[tuple]()

# Timers short enough for a bench run (the wire allows 1 s at least); see docs/hil.md.
FAST_CONFIG = {
    "report_moving_s": 1, "report_stopped_s": 1, "report_inactive_s": 3600, "heartbeat_s": 1,
    "batch_max": 120, "gnss_lost_s": 3, "low_battery_pct": 15, "jump_speed_kmh": 250,
    "ack_timeout_s": 1,
}


_DEFAULTS = {
    "--bench": "emu", "--bench-port": None, "--bench-baud": 115200, "--bench-gnss-port": None,
    "--bench-keys": "test", "--bench-seal-id": 1001, "--bench-power-on": None,
    "--bench-power-off": None, "--bench-lock-cmd": None, "--bench-log-dir": None,
    "--bench-gnss-raw": None, "--bench-gnss-baud": 9600,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("navseal bench", "navseal hardware-in-the-loop bench")
    g.addoption("--bench", choices=("emu", "serial"), default="emu", help="emu (default) or serial")
    g.addoption("--bench-port", default=None, help="serial bench: the seal's data link port")
    g.addoption("--bench-baud", type=int, default=115200, help="baud rate of both serial lines")
    g.addoption("--bench-gnss-port", default=None, help="serial bench: the bench-control port")
    g.addoption("--bench-keys", default="test", help="'test', 'ID=HEX,...' or a JSON file")
    g.addoption("--bench-seal-id", type=int, default=1001, help="the seal on the bench")
    g.addoption("--bench-power-on", default=None, help="serial bench: command that powers the seal")
    g.addoption("--bench-power-off", default=None, help="serial bench: command that cuts power")
    g.addoption("--bench-lock-cmd", default=None, help="serial bench: lock relay command template")
    g.addoption("--bench-gnss-raw", default=None,
                help="serial bench: port wired to the seal's GNSS UART RX (raw NMEA, no bench build)")
    g.addoption("--bench-gnss-baud", type=int, default=9600, help="baud rate of --bench-gnss-raw")
    g.addoption("--bench-log-dir", default=None, help="write each test's bench log here")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*features): skip unless the bench can do all of these (" + ", ".join(sorted(FEATURES)) + ")",
    )


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    def opt(name: str):
        # Defaults also when the options were never registered: loaded from a conftest below
        # the rootdir (tests/hil/conftest.py), pytest_addoption runs only if that folder was
        # named on the command line.
        return request.config.getoption(name, default=_DEFAULTS[name])
    keys = SealKeys.parse(opt("--bench-keys"))
    b: Bench
    if opt("--bench") == "emu":
        from .emu import EmulatorBench

        b = EmulatorBench(str(tmp_path_factory.mktemp("navseal-emu")), seal_id=opt("--bench-seal-id"), keys=keys)
    else:
        from .serial_bench import SerialBench, default_state_file

        if not opt("--bench-port"):
            raise pytest.UsageError("--bench serial needs --bench-port (e.g. /dev/ttyUSB0)")
        baud = opt("--bench-baud")
        ctl = opt("--bench-gnss-port")
        b = SerialBench(SerialPortResource(opt("--bench-port"), baud), opt("--bench-seal-id"), keys,
                        control_port=SerialPortResource(ctl, baud) if ctl else None,
                        power_on=opt("--bench-power-on"), power_off=opt("--bench-power-off"),
                        lock_cmd=opt("--bench-lock-cmd"), state_file=default_state_file(),
                        raw_gnss_port=SerialPortResource(opt("--bench-gnss-raw"), opt("--bench-gnss-baud"))
                        if opt("--bench-gnss-raw") else None)
    yield b
    b.close()


def _skip_unless_able(b: Bench, node: pytest.Item) -> None:
    needed = [f for m in node.iter_markers("needs") for f in m.args]
    lacking = b.lacking(needed)
    if lacking:
        pytest.skip(f"bench '{b.kind}' lacks " + "; ".join(lacking))


@pytest.fixture(autouse=True)
def navseal_bench_needs(request: pytest.FixtureRequest) -> None:
    """Skip a test marked ``needs(...)`` that the bench cannot run, also when it uses ``bench``
    without ``dut``. Tests without the marker never touch (or start) the bench."""
    if request.node.get_closest_marker("needs") is not None:
        _skip_unless_able(request.getfixturevalue("bench"), request.node)


@pytest.fixture
def dut(bench: Bench, request: pytest.FixtureRequest):
    """A seal ready for a scenario: powered, inactive, lock closed, fast timers, journal empty."""
    _skip_unless_able(bench, request.node)
    request.node.stash[_MARK_KEY] = (bench, bench.transcript.mark())
    bench.transcript.add("bench", f"==== {request.node.nodeid}")
    bench.prepare_test(request.node.nodeid)
    d = Dut(bench)
    try:
        baseline(d)
        yield d
    finally:
        d.close()
    d.assert_clean()


def baseline(d: Dut) -> None:
    """Known state through the protocol alone, so it works on a board that cannot be wiped:
    lock closed, fast timers (CONFIG), INACTIVE, a fresh boot, journal drained."""
    b = d.bench
    if b.lock is not None:
        b.lock.set_lock(True, True)
    seq = d.send_command("CONFIG", FAST_CONFIG)
    res = d.expect("COMMAND_RESULT", cmd_seq=seq, timeout=5)
    if res.payload["result"] != "OK":
        raise BenchError(f"seal refused the bench CONFIG: {res.payload['result']}")
    if res.payload["state"] == "ACTIVE":
        known = getattr(b, "last_escort", None)
        if known is None:
            pytest.skip("seal is ACTIVE with an escort this bench did not start; deactivate it first")
        from .steps import deactivate  # repeats it while the seal answers JOURNAL_PENDING

        deactivate(d, known)
    # A fresh boot journals a REBOOT event, so the journal holds at least one record; the
    # auto-ACK releases frame after frame until one goes out without the MORE flag: drained.
    # Frames of an earlier boot may still be queued on a board's line: match on the new boot.
    if "reboot" in b.features:
        ready = b.reboot()
    elif b.power is not None:
        b.power.cycle()
        ready = b.control.last_ready if b.control is not None else None
    else:
        d.expect("STATE", journal_pending=0, timeout=30)  # no way to reboot: wait for a heartbeat
        d.skip_to_end()
        return
    boot = int(ready.fields["boot"]) if ready is not None and "boot" in ready.fields else None

    def this_boot(f) -> bool:
        return boot is None or f.boot == boot

    d.expect("HELLO", where=this_boot, timeout=30)
    d.expect(where=lambda f: this_boot(f) and _last_journal_frame(f), timeout=30)
    d.skip_to_end()


def _last_journal_frame(f) -> bool:
    return f.type in ("RECORDS", "EVENT") and not f.flags & 2  # MORE: records still waiting


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    held = item.stash.get(_MARK_KEY, None)
    if held is None:
        return
    # The terminal shows the sections of a failed setup or call; JUnit XML takes captured
    # output from the teardown report (pytest's junitxml), which also has the whole test.
    if rep.when == "setup" and rep.passed or rep.when == "call" and rep.passed:
        return
    b, mark = held
    text = "\n".join(b.transcript.since(mark)) + "\n"
    rep.sections.append(("Captured stdout navseal bench", text))
    if rep.when != "teardown":
        return
    log_dir = item.config.getoption("--bench-log-dir", default=None)
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid) + ".log")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        item.user_properties.append(("bench_log", path))
        rep.user_properties.append(("bench_log", path))
