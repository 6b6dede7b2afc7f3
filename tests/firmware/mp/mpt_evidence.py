# The seal's evidence under both interpreters: opening episodes (samples, the interrupt latch,
# reboots), GNSS anomaly episodes, the Evidence block on the wire, DEACTIVATE on a drained
# journal, and the escort's thinned count. (The CPython suites test_episodes*.py,
# test_gnss_evidence.py go further; this is the same core on the real MicroPython.)
import hashlib

from navseal_fw import codec as C
from navseal_fw import escort as E
from navseal_fw import journal as J
from navseal_fw.evidence import CABLE, HOUSING, Evidence
from navseal_fw.gnss_check import CLEAR_FIXES, IMPOSSIBLE_SPEED, TIME_BACKWARDS, TIME_FORWARD, GnssCheck
from navseal_fw.hal import MemHal
from navseal_fw.seal import Config, SealCore

T0 = 1764115200
SEAL = 1001
KEY = hashlib.sha256(b"navseal test key 1001").digest()


class Seal:
    # A SealCore on MemHal whose frames are decoded and acknowledged at once.
    def __init__(self, hal=None):
        self.hal = hal or MemHal(unix0=T0)
        self.gw = C.Codec(SEAL, KEY)
        self.seq = 0
        self.events = []  # (code, value, time)
        self.results = []
        self.states = []
        self.out = []
        self.cfg = Config({"seal_id": SEAL, "key": KEY, "journal_capacity": 256,
                           "journal_seg_records": 16})
        self.boot()

    def boot(self, cause=0):
        self.hal.cause = cause
        self.core = SealCore(self.cfg, self.hal, self._send)
        self.core.start(self.hal.now_ms)
        self._flush()

    def _down(self, typ, fields):
        self.seq += 1
        return self.gw.encode(typ, 0, self.seq, self.hal.unix(), fields)

    def _send(self, frame):
        f = self.gw.decode(frame)
        p = C.parse_payload(f.type, f.payload)
        committed = C.NO_RSEQ
        if f.type == C.EVENT:
            self.events.append((p[2], p[6], p[1]))
            committed = p[0]
        elif f.type == C.RECORDS:
            committed = p[0] + p[2] - 1
        elif f.type == C.COMMAND_RESULT:
            self.results.append(p)
        elif f.type == C.STATE:
            self.states.append(p)
        self.out.append(self._down(C.ACK, (f.boot, f.seq, committed)))
        return True

    def _flush(self):
        while self.out:
            self.core.on_downlink(self.out.pop(0), self.hal.now_ms)

    def step(self, ms):
        end = self.hal.now_ms + ms
        while True:
            d = self.core.next_deadline_ms()
            if d >= end:
                break
            self.hal.now_ms = d if d > self.hal.now_ms else self.hal.now_ms + 1
            self.core.poll(self.hal.now_ms)
            self._flush()
        self.hal.now_ms = end
        self.core.poll(end)
        self._flush()

    def command(self, typ, fields):
        self.core.on_downlink(self._down(typ, fields), self.hal.now_ms)
        self._flush()
        return self.results[-1]

    def activate(self):
        return self.command(C.ACTIVATE, (77, SEAL, "DECL", "VEH", "55201", "Khorgos", T0,
                                         T0 + 86400, 0, b""))

    def deactivate(self):
        return self.command(C.DEACTIVATE, (77, SEAL, "DECL", "VEH"))

    def codes(self, *codes):
        return [(c, v) for c, v, t in self.events if c in codes]


def test_episodes_one_event_per_episode_and_input():
    s = Seal()
    s.step(1000)
    assert s.activate()[3] == C.RES_OK
    s.step(1000)
    s.hal.set_lock(False, None, s.hal.now_ms)  # cable cut
    s.step(300)
    s.hal.set_lock(None, False, s.hal.now_ms)  # housing too: the same episode
    s.step(300)
    s.hal.set_lock(None, True, s.hal.now_ms)
    s.step(300)
    s.hal.set_lock(True, None, s.hal.now_ms)  # both closed: the episode ends
    s.step(300)
    s.hal.set_lock(False, None, s.hal.now_ms)  # a second opening is a second episode
    s.step(300)
    s.hal.set_lock(True, None, s.hal.now_ms)
    s.step(300)
    assert s.codes(C.EV_CABLE_CUT, C.EV_HOUSING_OPENED, C.EV_LOCK_RESTORED) == [
        (C.EV_CABLE_CUT, 1), (C.EV_HOUSING_OPENED, 1), (C.EV_LOCK_RESTORED, 1 << 8 | 0xC0),
        (C.EV_CABLE_CUT, 2), (C.EV_LOCK_RESTORED, 2 << 8 | 0xC0)]
    ev = s.core.evidence
    assert (ev.openings, ev.opening_inputs, ev.opening_now) == (2, CABLE | HOUSING, False)


def test_a_pulse_between_samples_and_a_reboot_mid_episode():
    s = Seal()
    s.step(1000)
    s.activate()
    s.step(1500)
    s.hal.pulse("housing", 50, s.hal.now_ms)  # 50 ms, between two samples
    s.step(2000)
    assert s.codes(C.EV_HOUSING_OPENED, C.EV_LOCK_RESTORED) == [
        (C.EV_HOUSING_OPENED, 1), (C.EV_LOCK_RESTORED, 1 << 8 | 0xC0)]
    s.hal.pulse("cable", 20, s.hal.now_ms)  # shorter than the debounce: a glitch
    s.step(2000)
    assert s.core.tamper.glitches == 1 and len(s.codes(C.EV_CABLE_CUT)) == 0
    s.hal.set_lock(False, None, s.hal.now_ms)
    s.step(300)
    s.boot(C.RESET_BROWNOUT)  # mid-episode: no second event
    s.step(1000)
    s.hal.set_lock(True, None, s.hal.now_ms)
    s.step(300)
    assert s.codes(C.EV_CABLE_CUT) == [(C.EV_CABLE_CUT, 2)]
    assert s.codes(C.EV_LOCK_RESTORED)[-1] == (C.EV_LOCK_RESTORED, 2 << 8 | 0xC0)
    ev = s.core.evidence
    assert (ev.openings, ev.reboots, ev.power_losses) == (2, 1, 1)


def test_the_evidence_block_on_the_wire_and_deactivate_on_a_drained_journal():
    s = Seal()
    s.step(1000)
    s.activate()
    start = s.core.evidence.start_rseq
    s.hal.set_lock(False, None, s.hal.now_ms)
    s.step(300)
    s.hal.set_lock(True, None, s.hal.now_ms)
    s.step(300)
    s.core._send_state()
    s._flush()
    block = s.states[-1][10]
    assert block[0] == 77 and block[2] == start and block[5] == 1 and block[7] == C.EVI_CABLE
    assert block[1] & C.EVF_CLOSED == 0
    # a record not yet acknowledged: "not yet"
    s.core.journal.append_event(s.hal.unix(), C.EV_LOW_BATTERY, 0, 0, 0xC0, 10)
    held = s.out
    s.out = []
    assert s.command(C.DEACTIVATE, (77, SEAL, "DECL", "VEH"))[3] == C.RES_JOURNAL_PENDING
    s.out = held + s.out
    s._flush()
    s.step(2000)
    r = s.deactivate()
    assert r[3] == C.RES_OK and r[4] == C.INACTIVE
    closed = r[6]
    assert closed[1] & C.EVF_CLOSED and closed[0] == 77 and closed[5] == 1
    assert closed[3] == s.core.journal.next_rseq - 1
    s.boot()
    assert s.states[-1][10][1] & C.EVF_CLOSED and s.states[-1][10][3] == closed[3]


def test_evidence_record_round_trip():
    hal = MemHal()
    ev = Evidence(hal)
    ev.reset(9, 41)
    ev.openings = 3
    ev.opening_inputs = CABLE
    ev.deviation_max_m = 70000
    ev.loss_start = T0
    ev.pend_code = 1
    ev.pend_value = 3
    ev.pend_rseq = 50
    ev.save()
    ev2 = Evidence(hal)
    assert ev2.load()
    got = (ev2.escort_id, ev2.start_rseq, ev2.openings, ev2.opening_inputs, ev2.deviation_max_m,
           ev2.loss_start, ev2.pend_code, ev2.pend_value, ev2.pend_rseq)
    assert got == (9, 41, 3, CABLE, 70000, T0, 1, 3, 50), got
    buf = bytearray(C.EVIDENCE_SIZE)
    ev2.pack_into(buf, 60, 2)
    assert buf[4] == C.EVF_GNSS_LOST_NOW  # a loss going on


def test_gnss_check_episodes():
    g = GnssCheck(250)
    ms = [0]

    def judge(t, lat, lon, clock=0, auth=0):
        ms[0] += 1000  # a fix a second
        return g.judge(t, lat, lon, ms[0], clock, auth)

    assert judge(T0, 432000000, 770000000) and g.kind == 0
    assert not judge(T0 - 5, 432000000, 770000000) and g.kind == TIME_BACKWARDS and g.detail == 5
    assert not judge(T0 - 5, 432000000, 770000000) and g.kind == 0  # the same episode
    assert not judge(T0 + 2, 442000000, 770000000) and g.kind == IMPOSSIBLE_SPEED
    assert judge(T0 + 3, 442000000, 770000000)  # a second fix agrees: taken (good run: 1)
    for k in range(CLEAR_FIXES - 2):
        assert judge(T0 + 4 + k, 442000000, 770000000) and not g.episode_ended
    assert judge(T0 + 2 + CLEAR_FIXES, 442000000, 770000000) and g.episode_ended
    assert g.kinds_now == 0
    assert not judge(T0, 442000000, 770000000) and g.kind == TIME_BACKWARDS  # raised again
    # far ahead of the last fix plus the time since: refused, taken once a second fix agrees
    t = g.last_t
    assert not judge(t + 1 + 3600, 442000000, 770000000) and g.kind == TIME_FORWARD
    assert judge(t + 2 + 3600, 442000000, 770000000) and g.last_t == t + 3602
    # true GNSS again: refused once (backwards from the spoofed time), then it agrees: taken
    assert not judge(t + 3, 442000000, 770000000)
    assert judge(t + 4, 442000000, 770000000) and g.last_t == t + 4
    # against the gateway's time: refused however many agree
    for k in range(3):
        assert not judge(t + 3600 + k, 442000000, 770000000, auth=t + 5 + k)
    assert judge(t + 8, 442000000, 770000000, auth=t + 8)
    # after a boot (no fix yet) the seal's own clock is the reference, with some slack, and a
    # clock ahead of GNSS is argued with: the second fix that agrees is taken
    g = GnssCheck(250)
    assert not judge(T0 - 400, 442000000, 770000000, clock=T0) and g.kind == TIME_BACKWARDS
    assert judge(T0 - 399, 442000000, 770000000, clock=T0 + 1)
    g = GnssCheck(250)
    assert judge(T0 - 200, 442000000, 770000000, clock=T0)


def test_thinned_positions_of_the_escort_are_counted():
    hal = MemHal()
    j = J.Journal(hal, capacity=16, seg_records=4)
    j.recover()
    for i in range(3):
        j.append_position(T0 + i, 0, 0, 0, 0, 0, 0, 0xC0)
    j.set_thin_floor(3)
    for i in range(3, 40):
        j.append_position(T0 + i, 0, 0, 0, 0, 0, 0, 0xC0)
    j.close()
    j2 = J.Journal(hal, capacity=16, seg_records=4)
    j2.recover()
    on_flash = []
    while j2.peek() != J.KIND_NONE:
        on_flash.extend(range(j2.b_first, j2.b_last + 1))
        j2.release(j2.b_last)
    missing = [r for r in range(4, j2.next_rseq) if r not in on_flash]
    assert j2.esc_thinned == j.esc_thinned == len(missing) > 5
    assert E.JOURNAL_PENDING == C.RES_JOURNAL_PENDING
