"""The firmware's bench-control handler (navseal_fw.benchctl) against the bench's own side of the
protocol (navseal.hil.benchctl): every line the bench can send is accepted, every line the bench
refuses to parse is answered ERR, arbitrary bytes never raise and never lose a reply; and the
board HAL's control UART sits on the documented pins. (The same handler's per-verb tests run
under both interpreters: tests/firmware/mp/mpt_benchctl.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from navseal.hil import benchctl as bench
from navseal_fw import benchctl as fw

MP_DIR = Path(__file__).resolve().parent / "mp"
sys.path.insert(0, str(MP_DIR))
try:
    from mpt_benchctl import PulseTarget as FakeTarget
finally:
    sys.path.remove(str(MP_DIR))


def _reply(line: bytes) -> bytes:
    ctl = fw.BenchCtl(FakeTarget(("gnss", "lock", "battery", "reboot", "link_state", "write_cut")))
    out = ctl.feed(line + b"\n", 0) + ctl.poll(0)
    assert len(out) == 1, (line, out)
    return out[0]


COMMANDS = [
    bench.format_command("PING", "tok-1"),
    bench.format_command("NMEA", "$GNRMC,120000.00,A,4314.2800,N,07656.7000,E,20.0,90.0,261126,,,A*6B"),
    bench.format_command("LOCK", "closed", "open"),
    bench.format_command("LOCK", "1", "0"),
    bench.format_command("LOCK", "PULSE", "cable", 50),
    bench.format_command("LOCK", "PULSE", "housing", 10000),
    bench.format_command("BATT", 0),
    bench.format_command("BATT", 100),
    bench.format_command("BATT", "unknown"),
    bench.format_command("LINK", "up"),
    bench.format_command("LINK", "down"),
    bench.format_command("REBOOT"),
    bench.format_command("CUTWRITE", 27),
    bench.format_command("STATUS"),
    bench.format_command("FEATURES"),
]


def test_every_bench_command_gets_the_reply_the_bench_expects():
    for cmd in COMMANDS:
        sent = bench.parse_command(cmd.rstrip(b"\n"))
        msg = bench.parse_message(_reply(cmd.rstrip(b"\n")).rstrip(b"\n"))
        assert (msg.kind, msg.verb) == ("OK", sent.verb), (cmd, msg)
        if sent.verb in ("PING", "BATT", "LINK", "CUTWRITE"):
            assert msg.text == sent.args[0]
        if sent.verb == "LOCK" and sent.args[0] == "PULSE":
            assert msg.text == " ".join(sent.args)
        elif sent.verb == "LOCK":
            assert msg.text == " ".join(bench.level_word(bench.LEVELS[a]) for a in sent.args)


_words = st.sampled_from(["PING", "NMEA", "LOCK", "BATT", "LINK", "REBOOT", "CUTWRITE", "STATUS",
                          "FEATURES", "open", "closed", "up", "down", "1", "0", "100", "101",
                          "-3", "unknown", "$GPRMC", "x", "ping", "PULSE", "cable", "housing",
                          "50", "10000", "10001", "00050"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_words, min_size=1, max_size=4))
@example(["BATT", "00050"])  # the two parsers once disagreed on leading zeros
def test_accepts_exactly_what_the_bench_parser_accepts(words):
    line = " ".join(words).encode()
    try:
        bench.parse_command(line)
        bench_ok = True
    except bench.ControlProtocolError:
        bench_ok = False
    msg = bench.parse_message(_reply(line).rstrip(b"\n"))
    assert (msg.kind == "OK") == bench_ok, (line, msg)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=8))
def test_arbitrary_bytes_never_raise_and_every_line_is_answered(chunks):
    ctl = fw.BenchCtl(FakeTarget())
    out = []
    for c in chunks:
        out += ctl.feed(c, 0) + ctl.poll(0)
        assert len(ctl._buf) < fw.MAX_LINE
    stream = b"".join(chunks)
    # complete, non-blank lines (the tail after the last LF is still being received)
    complete = [ln for ln in stream.split(b"\n")[:-1] if ln.rstrip(b"\r").strip()]
    if not ctl.reboot_requested:
        assert len(out) == len(complete)
    for line in out:
        assert line.endswith(b"\n") and len(line) <= fw.MAX_LINE
        bench.parse_message(line.rstrip(b"\n"))  # the bench can read every reply


def test_board_control_uart_on_documented_pins_and_overrides():
    sys.path.insert(0, str(MP_DIR))
    try:
        import fakeboard
    finally:
        sys.path.remove(str(MP_DIR))
    from navseal_fw import board_esp32 as B

    m = fakeboard.Machine()
    m.reset_calls = 0

    def reset():
        m.reset_calls += 1

    m.reset = reset
    board = B.Board(machine=m, os_mod=_FakeOs(), time_mod=fakeboard.Time())
    uart = board.bench_ctl_uart()
    assert (uart.uid, uart.tx, uart.rx, uart.baudrate) == (2, 4, 5, 115200)
    assert board.lock_levels() == (False, False)  # pull-ups, nothing wired: both open
    board.bench_set_lock(True, False)
    assert board.lock_levels() == (True, False)
    board.bench_set_battery(None)
    assert board.battery_pct() is None
    board.bench_set_battery(12)
    assert board.battery_pct() == 12
    board.reboot()
    assert m.reset_calls == 1


class _FakeOs:
    def mkdir(self, path):
        pass


def test_emulator_runner_answers_with_the_same_handler(tmp_path):
    """hil/emu_seal.py (--serve, its own ptys) answers through navseal_fw.benchctl: garbage and
    over-long lines get their ERR reply there too, and the next command still works."""
    import os
    import subprocess
    import time

    import serial

    from navseal.protocol import test_key

    proc = subprocess.Popen(
        [sys.executable, "-m", "navseal.hil.emu_seal", "--serve", str(tmp_path), "--state-dir",
         str(tmp_path / "flash"), "--seal-id", "1001", "--key", test_key(1001).hex()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(tmp_path / "stim"):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "runner did not serve its ports"
            time.sleep(0.02)
        port = serial.Serial(str(tmp_path / "stim"), 115200, timeout=5)
        port.write(b"PING sync\n")  # READY may have gone out before we opened the port
        lines = []
        while b"OK PING sync\n" not in lines:
            line = port.readline()
            assert line.endswith(b"\n"), lines
            lines.append(line)
        port.write(b"BOGUS\n" + b"Z" * 400 + b"\nFEATURES\nCUTWRITE x\n")
        got, got_no_log = [], []
        while len(got_no_log) < 4:  # LOG lines (frames sent) may come in between
            line = port.readline()
            assert line.endswith(b"\n"), got
            got.append(line)
            if not line.startswith(b"LOG"):
                got_no_log.append(line)
        assert got_no_log[:2] == [b"ERR BOGUS unknown verb 'BOGUS'\n",
                                  b"ERR ? line too long (max 256 bytes with LF)\n"], got
        assert got_no_log[2] == b"OK FEATURES gnss lock lock_pulse battery reboot link_state\n", got
        assert got_no_log[3].startswith(b"ERR CUTWRITE "), got
        port.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
