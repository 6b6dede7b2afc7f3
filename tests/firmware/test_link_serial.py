"""The seal core over the serial link (cobs.SerialLink) through a real pseudo-terminal:
frames both ways with COBS framing, line noise on the downlink, resynchronisation."""

import os
import sys
import time
import tty

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenario_escort import LAT0, LON0, SEAL, T0, Gateway, nmea_fix  # noqa: E402
from scenario_escort import test_key as key_for  # noqa: E402

from navseal_fw import codec as C  # noqa: E402
from navseal_fw.cobs import Deframer, SerialLink, cobs_frame  # noqa: E402
from navseal_fw.hal import MemHal  # noqa: E402
from navseal_fw.seal import Config, SealCore  # noqa: E402


class FdStream:
    """A UART-like object on a file descriptor: read() -> bytes or None, write(bytes)."""

    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)

    def read(self):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        return data or None

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[n:]
        return len(data)


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    yield FdStream(master), FdStream(slave)
    os.close(master)
    os.close(slave)


def test_seal_over_a_pty_with_line_noise(pty_pair):
    gw_side, seal_side = pty_pair
    hal = MemHal(unix0=T0)
    cfg = Config({"seal_id": SEAL, "key": key_for(SEAL), "report_moving_s": 5, "report_stopped_s": 5,
                  "report_inactive_s": 5, "journal_capacity": 512, "journal_seg_records": 32})
    box = []
    link = SerialLink(seal_side, lambda frame: box[0].on_downlink(frame, hal.now_ms))
    core = SealCore(cfg, hal, lambda frame: link.send(frame, hal.now_ms))
    box.append(core)
    gw = Gateway(SEAL, cfg.key_bytes)
    deframer = Deframer(lambda body: gw.receive(bytes(body), hal.unix()))

    def pump(seconds):
        # Virtual time for the seal, real bytes through the kernel's pty for the frames.
        for _ in range(seconds):
            hal.advance(1000)
            core.feed_gnss(nmea_fix(hal.unix(), LAT0, LON0, 0, 0), hal.now_ms)
            core.poll(hal.now_ms)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                data = gw_side.read()
                if data:
                    deframer.feed(data)
                while gw.out:
                    gw_side.write(cobs_frame(gw.out.pop(0)))
                link.pump()  # one I/O step (the board runs link.run(), which repeats it)
                link.poll(hal.now_ms)
                if not gw.out and not core._inflight and not data and not link.busy():
                    break
                time.sleep(0.001)

    core.start(hal.now_ms)
    pump(3)
    assert gw.hellos and gw.hellos[0][0] == 1
    # Noise on the line: garbage, a half frame, a zero-free run; then a real command.
    gw_side.write(b"\x13\x37garbage\x00" + cobs_frame(gw.activate(hal.unix()))[:20] + b"\x00")
    gw_side.write(cobs_frame(gw.activate(hal.unix())))
    pump(30)
    assert gw.results and gw.results[-1][3] == C.RES_OK
    assert core.escort.state == C.ACTIVE
    assert link.deframer.frames >= 2
    # The garbage and the half frame are counted (by the deframer or the frame decoder).
    assert sum(core.rx_errors.values()) + link.deframer.cobs_error >= 2
    assert core.journal.pending == 0 and gw.positions >= 5
    assert gw.in_order and gw.bad == 0
