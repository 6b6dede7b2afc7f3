# main.run(): the board's asyncio loop around SealCore, on an in-memory board with a real-time
# clock. Async, so it is driven by test_main_loop.py (asyncio.run under CPython, top-level await
# under the WebAssembly MicroPython, which has no asyncio.run).
import time

from navseal_fw import codec as C
from navseal_fw.hal import MemHal
from navseal_fw.seal import Config, SealCore

KEY = bytes(range(32))
SEAL = 1001


def _now_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()  # type: ignore[attr-defined]
    return int(time.monotonic() * 1000)


class RealTimeBoard(MemHal):
    def __init__(self):
        MemHal.__init__(self)
        self._t0 = _now_ms()
        self.fed = 0

    def ticks_ms(self):
        return _now_ms() - self._t0

    def wdt_feed(self):
        self.fed += 1


class FakeLink:
    # The link shape main.run() drives: send() queues, run() is the link's own task, ready
    # tells the loop that poll() has downlinks or state changes to hand to the core.
    def __init__(self):
        import asyncio

        self.frames = []
        self.polls = 0
        self.ready = asyncio.Event()
        self.ran = False
        self.closed = False

    def send(self, frame, now_ms=None):
        self.frames.append(bytes(frame))
        return True

    def poll(self, now_ms):
        self.polls += 1
        self.ready.clear()

    async def run(self):
        self.ran = True

    def close(self):
        self.closed = True

    def next_deadline_ms(self):
        return None


def gc_module():
    import gc

    return gc


def nmea(body):
    cs = 0
    for c in body.encode():
        cs ^= c
    return ("$%s*%02X\r\n" % (body, cs)).encode()


async def check(main_module, peak=None):
    board = RealTimeBoard()
    link = FakeLink()
    cfg = Config({"seal_id": SEAL, "key": KEY})
    core = SealCore(cfg, board, link.send)
    board.push_gnss(nmea("GNGGA,120000.00,4314.2800,N,07656.7000,E,1,09,0.9,700.0,M,0.0,M,,"))
    board.push_gnss(nmea("GNRMC,120000.00,A,4314.2800,N,07656.7000,E,20.0,90.0,261126,,,A"))
    link.ready.set()  # e.g. the link came up
    stats = await main_module.run(board, core, link, duration_ms=400)
    if peak is not None:
        peak.sample()
    assert board.fed >= 1 and link.polls >= 1 and link.ran and link.closed
    assert stats.n >= 3, stats.line()
    assert stats.heap_base > 0 or not hasattr(gc_module(), "mem_alloc"), stats.line()
    c = C.Codec(SEAL, KEY)
    types = [c.decode(f).type for f in link.frames]
    assert types and types[0] == C.HELLO, types
    assert C.STATE in types, types
    assert core.gnss.fix.count == 1 and core.gnss.fix.lat_e7 == 432380000
    return types


class FakeUart:
    def __init__(self):
        self.out = bytearray()
        self.inbox = bytearray()

    def write(self, b):
        self.out.extend(b)
        return len(b)

    def read(self):
        if not self.inbox:
            return None
        data = bytes(self.inbox)
        self.inbox = bytearray()
        return data


class SerialBoard(RealTimeBoard):
    def __init__(self):
        RealTimeBoard.__init__(self)
        self.uart = FakeUart()

    def bench_uart(self):
        return self.uart


async def check_serial(main_module):
    """main.build() from a provisioned navseal.json with the serial link, then the loop: COBS
    frames come out of the bench UART and an ACK/TIME going in is taken."""
    from binascii import hexlify

    from navseal_fw.cobs import Deframer, cobs_frame

    board = SerialBoard()
    f = board.open("navseal.json", "wb")
    f.write(('{"seal_id": %d, "key": "%s", "link": "serial"}' % (SEAL, hexlify(KEY).decode())).encode())
    f.close()
    core, link = main_module.build(board)
    gw = C.Codec(SEAL, KEY)
    board.uart.inbox.extend(cobs_frame(gw.encode(C.TIME, 0, 1, 1764115200, (1764115300,))))
    await main_module.run(board, core, link, duration_ms=300)
    assert board.uart.out[:1] == b"\x00"  # flush delimiter first
    bodies = []
    Deframer(lambda b: bodies.append(bytes(b))).feed(bytes(board.uart.out))
    types = [gw.decode(b).type for b in bodies]
    assert types[0] == C.HELLO and C.STATE in types, types
    assert link.received == 1 and core.rx_ok >= 1
    return types


class BenchBoard(SerialBoard):
    """A bench build's board: the control UART and the input overrides of board_esp32.Board."""

    def __init__(self):
        SerialBoard.__init__(self)
        self.ctl = FakeUart()
        self.ctl_opened = 0
        self.rebooted = 0

    def bench_ctl_uart(self):
        self.ctl_opened += 1
        return self.ctl

    def bench_set_lock(self, cable, housing):
        self.cable_closed, self.housing_closed = cable, housing

    def bench_set_battery(self, pct):
        self.battery = pct

    def reboot(self):
        self.rebooted += 1


def _provision(board, extra):
    from binascii import hexlify

    f = board.open("navseal.json", "wb")
    f.write(('{"seal_id": %d, "key": "%s", "link": "serial"%s}'
             % (SEAL, hexlify(KEY).decode(), extra)).encode())
    f.close()


BENCH_SCRIPT = (b"PING a1\nFEATURES\nBATT 33\nLINK down\nLOCK open closed\nSTATUS\n"
                + b"NMEA " + nmea("GNRMC,120000.00,A,4314.2800,N,07656.7000,E,20.0,90.0,261126,,,A").rstrip()
                + b"\nCUTWRITE 5\nBOGUS 1\n" + b"Q" * 300 + b"\nREBOOT\nPING never\n")


async def check_bench(main_module):
    """"bench": true: main.run() answers the control line on the board's bench_ctl_uart()."""
    board = BenchBoard()
    _provision(board, ', "bench": true')
    core, link = main_module.build(board)
    uart = main_module.bench_uart_for(board)
    assert uart is board.ctl and board.ctl_opened == 1
    board.ctl.inbox.extend(BENCH_SCRIPT)
    await main_module.run(board, core, link, duration_ms=600, bench_uart=uart)
    lines = bytes(board.ctl.out).decode().split("\n")
    assert lines[-1] == "", lines
    lines = lines[:-1]
    assert lines[0].startswith("LOG boot: reset cause 0"), lines
    assert lines[1] == "READY seal=%d boot=%d fw=0.1.0" % (SEAL, core.boot), lines
    got = lines[2:]
    assert got[0] == "OK PING a1", got
    assert got[1] == "OK FEATURES gnss lock battery reboot link_state", got
    assert got[2] == "OK BATT 33" and got[3] == "OK LINK down", got
    assert got[4] == "OK LOCK open closed", got  # after the debounce, before STATUS
    assert got[5].startswith("OK STATUS boot=%d " % core.boot) and "cable=open" in got[5], got
    assert got[6] == "OK NMEA", got
    assert got[7] == "ERR CUTWRITE unsupported", got
    assert got[8] == "ERR BOGUS unknown verb 'BOGUS'", got
    assert got[9].startswith("ERR ? line too long"), got
    assert got[10] == "OK REBOOT" and len(got) == 11, got  # nothing after the reset request
    assert board.rebooted == 1
    assert board.battery_pct() == 33 and not core.lock.cable.closed and core.lock.housing.closed
    assert core.gnss.fix.count >= 1
    return got


async def check_bench_disabled(main_module):
    """No "bench" (or false, or a modem link): the control UART is never opened."""
    board = BenchBoard()
    _provision(board, "")
    assert main_module.bench_uart_for(board) is None
    core, link = main_module.build(board)
    board.ctl.inbox.extend(b"PING a1\n")
    await main_module.run(board, core, link, duration_ms=150)
    for extra in (', "bench": false', ', "bench": 1', ', "bench": "yes"'):
        _provision(board, extra)
        assert main_module.bench_uart_for(board) is None, extra
    f = board.open("navseal.json", "wb")  # LTE modem link: its UART is the control line's
    f.write(b'{"seal_id": 1001, "key": "00", "bench": true}')
    f.close()
    assert main_module.bench_uart_for(board) is None
    assert board.ctl_opened == 0 and board.ctl.out == bytearray() and board.ctl.inbox == bytearray(b"PING a1\n")
    assert board.cable_closed and board.battery == 90


class FaultBoard(RealTimeBoard):
    def __init__(self):
        RealTimeBoard.__init__(self)
        self.rebooted = 0

    def reboot(self):
        self.rebooted += 1


class DownlinkLink(FakeLink):
    # One downlink waiting; it is PUBACKed (acked) only if on_frame returns.
    def __init__(self, on_frame):
        FakeLink.__init__(self)
        self.on_frame = on_frame
        self.waiting = [b"COMMAND"]
        self.acked = 0
        self.ready.set()

    def poll(self, now_ms):
        self.polls += 1
        while self.waiting:
            self.on_frame(self.waiting.pop(0))
            self.acked += 1
        self.ready.clear()


async def check_fault(main_module):
    """MemoryError in a callback (the downlink handler) stops the loop with that error instead
    of killing one task silently; main's fault path records it and reboots; nothing is acked."""
    from navseal_fw import fault

    board = FaultBoard()
    core = SealCore(Config({"seal_id": SEAL, "key": KEY}), board, lambda f: True)

    def boom(frame, now_ms):
        raise MemoryError("memory allocation failed, allocating 2083 bytes")

    core.on_downlink = boom
    link = DownlinkLink(lambda frame: core.on_downlink(frame, board.ticks_ms()))
    caught = None
    try:
        await main_module.run(board, core, link, duration_ms=2000)
    except MemoryError as e:
        caught = e
    assert caught is not None, "run() ended without the fault"
    assert link.acked == 0
    main_module.fault_reboot(board, caught)
    assert board.rebooted == 1
    assert fault.take(board) == fault.MEMORY and fault.take(board) == fault.NONE
    return True


async def check_lock_pulse(main_module):
    """A 50 ms opening between two samples, while the loop naps up to a second: the board's
    lock flag (a ThreadSafeFlag where the port has one) wakes the loop at the edge, which reads
    the interrupt latch, so the opening is an episode within milliseconds, not at the next poll.
    Returns the delays (ms) from each pulse to its episode."""
    import asyncio

    board = RealTimeBoard()
    link = FakeLink()  # link down: nothing shortens the loop's naps
    cfg = Config({"seal_id": SEAL, "key": KEY})
    core = SealCore(cfg, board, link.send)
    gw = C.Codec(SEAL, KEY)
    delays = []

    async def bench():
        await _sleep(300)
        t = board.unix()
        core.on_downlink(gw.encode(C.ACTIVATE, 0, 1, t, (77, SEAL, "DECL", "VEH", "55201", "Khorgos",
                                                        t - 60, t + 86400, 0, b"")), board.ticks_ms())
        assert core.escort.state == 1, "not activated"
        for i, which in enumerate(("cable", "housing", "cable")):
            await _sleep(1300)  # the loop settles into its one-second naps
            assert board.lock_flag is not None, "run() gave the board no lock flag"
            assert core.evidence.openings == i
            t0 = _now_ms()
            board.pulse(which, 50, board.ticks_ms())
            while core.evidence.openings == i and _now_ms() - t0 < 2000:
                await _sleep(2)
            delays.append(_now_ms() - t0)

    task = asyncio.create_task(bench())
    await main_module.run(board, core, link, duration_ms=5000)
    await task
    assert core.evidence.openings == 3, core.evidence.openings
    assert core.alarms() & 0x03 == 0x03, core.alarms()  # CABLE_CUT and HOUSING_OPENED raised
    assert core.tamper.glitches == 0
    return delays


async def _sleep(ms):
    import asyncio

    if hasattr(asyncio, "sleep_ms"):
        await asyncio.sleep_ms(ms)
    else:
        await asyncio.sleep(ms / 1000)
