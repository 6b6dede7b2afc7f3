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
    def __init__(self):
        self.frames = []
        self.polls = 0

    def send(self, frame, now_ms=None):
        self.frames.append(bytes(frame))
        return True

    def poll(self, now_ms):
        self.polls += 1

    def next_deadline_ms(self):
        return None


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
    await main_module.run(board, core, link, duration_ms=400)
    if peak is not None:
        peak.sample()
    assert board.fed >= 1 and link.polls >= 1
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
