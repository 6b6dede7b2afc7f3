"""Power cuts at every byte while the seal handles an ACTIVATE and while it latches a cable cut:
after the reboot the escort is either untouched or completely active, a latch is never lost,
and the replay window never lets the same command run twice."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenario_escort import DECL, SEAL, T0, VEHICLE, Gateway, route_line  # noqa: E402
from scenario_escort import test_key as key_for  # noqa: E402

from navseal_fw import codec as C  # noqa: E402
from navseal_fw.hal import MemFlash, MemHal, PowerCut  # noqa: E402
from navseal_fw.seal import Config, SealCore  # noqa: E402


def _cfg():
    return Config({"seal_id": SEAL, "key": key_for(SEAL), "journal_capacity": 256,
                   "journal_seg_records": 16})


def _boot(hal, sent=None):
    core = SealCore(_cfg(), hal, (sent if sent is not None else []).append)
    core.start(hal.now_ms)
    return core


def _clone(snap, now_ms):
    flash = MemFlash()
    flash._files = {k: bytearray(v) for k, v in snap.items()}
    hal = MemHal(flash, unix0=T0)
    hal.now_ms = now_ms
    return hal


def test_cut_at_every_byte_of_an_activation():
    base = MemHal(unix0=T0)
    _boot(base).journal.close()
    snap = base.flash.snapshot()
    gw = Gateway(SEAL, key_for(SEAL))
    cmd = gw.activate(T0, route=route_line(50, 1000), corridor=300)
    outcomes = set()
    for cut in range(0, 4000, 7):
        hal = _clone(snap, 1000)
        core = _boot(hal)
        hal.flash.cut_after(cut)
        try:
            core.on_downlink(cmd, hal.now_ms)
            done = True
        except PowerCut:
            done = False
        hal.flash.power_on()
        core = _boot(hal)
        e = core.escort
        if e.state == C.ACTIVE:
            assert (e.escort_id, e.declaration, e.vehicle, e.route_points(), e.corridor_m) == (
                77, DECL, VEHICLE, 50, 300)
            outcomes.add("active")
        else:
            assert e.escort_id == 0
            outcomes.add("inactive")
        # The same frame again is never executed twice: refused as a replay if the window
        # moved, else executed now.
        sent = []
        core._send = sent.append
        core.on_downlink(cmd, hal.now_ms)
        assert core.escort.state == C.ACTIVE or core.results[-1] == C.RES_REPLAYED
        if done:
            break
    assert done and outcomes == {"active", "inactive"}


def test_cut_at_every_byte_while_latching_a_cable_cut():
    base = MemHal(unix0=T0)
    core = _boot(base)
    gw = Gateway(SEAL, key_for(SEAL))
    core.on_downlink(gw.activate(T0), base.now_ms)
    assert core.escort.state == C.ACTIVE
    core.journal.close()
    snap = base.flash.snapshot()
    cuts = 0
    for cut in range(0, 400, 3):
        hal = _clone(snap, base.now_ms)
        core = _boot(hal)
        hal.cable_closed = False
        hal.flash.cut_after(cut)
        finished = False
        try:
            for _ in range(20):
                hal.advance(10)
                core.poll(hal.now_ms)
            finished = True
        except PowerCut:
            cuts += 1
        hal.flash.power_on()
        # Reboot with the cable still cut: the latch is there, or is set again at once.
        core = _boot(hal)
        for _ in range(20):
            hal.advance(10)
            core.poll(hal.now_ms)
        assert core.alarms() & C.AL_CABLE_CUT, cut
        core = _boot(hal)
        hal.cable_closed = True  # even with the cable back, the latch survives another reboot
        for _ in range(20):
            hal.advance(10)
            core.poll(hal.now_ms)
        assert core.alarms() & C.AL_CABLE_CUT, cut
        if finished:
            break
    assert finished and cuts >= 10  # the cut really fell inside the latch and event writes
