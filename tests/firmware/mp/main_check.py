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
