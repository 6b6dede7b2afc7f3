# The full escort scenario, written once for CPython and MicroPython (no pytest, no f-string
# "=", no dataclasses): tests/firmware/test_seal_scenario.py runs it in-process under CPython
# and under the real MicroPython WebAssembly interpreter (tests/micropython/runner.mjs).
#
# One seal (SealCore on MemHal: RAM flash that can tear a write, virtual clock) talks to a
# gateway double built on the firmware codec. Steps: activation refused with the lock open,
# activation, a replayed and a forged command, driving (NMEA at 1 Hz), a coverage gap with
# buffering, a cable cut during the gap, a power cut in the middle of a flash write, reboot
# (latched alarm survives, journal recovered), ACKs withheld (retransmission, nothing released),
# coverage back (everything delivered in order), deactivation with mismatched data refused,
# deactivation. The heap is measured from outside (runner.mjs --steps). Prints "SCENARIO_OK" and one "FIGURE name value" line per measurement.

import gc
import struct

from navseal_fw import codec as C
from navseal_fw import codec_peer  # noqa: F401  # the gateway double's half of the codec: loaded with the harness, not counted as the core's
from navseal_fw import journal as J
from navseal_fw.hal import MemHal, PowerCut
from navseal_fw.seal import Config, SealCore

try:
    from time import ticks_diff, ticks_us

    def _us():
        return ticks_us()

    def _elapsed_us(t0):
        return ticks_diff(ticks_us(), t0)
except ImportError:  # CPython
    from time import perf_counter

    def _us():
        return perf_counter()

    def _elapsed_us(t0):
        return int((perf_counter() - t0) * 1000000)


SEAL = 1001
T0 = 1764115200  # 2025-11-26 00:00:00 UTC
LAT0 = 432380000
LON0 = 769450000
DECL = "10005020/261126/0001234"
VEHICLE = "123ABC02"


def test_key(n):
    import hashlib

    return hashlib.sha256(("navseal test key " + str(n)).encode()).digest()


class ScenarioError(Exception):
    pass


def check(cond, what):
    # Not `assert`: MicroPython drops asserts when optimising.
    if not cond:
        raise ScenarioError(what)


# ---- NMEA ------------------------------------------------------------------------------------

def _civil(days):
    # Howard Hinnant's civil_from_days.
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _angle(v, deg_digits):
    a = -v if v < 0 else v
    deg = a // 10000000
    min_e5 = (a - deg * 10000000) * 60 // 100  # 1e-5 minute
    fmt = "%02d%02d.%05d" if deg_digits == 2 else "%03d%02d.%05d"
    return fmt % (deg, min_e5 // 100000, min_e5 % 100000)


def _sentence(body):
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    return "$%s*%02X\r\n" % (body, cs)


def nmea_fix(t, lat, lon, speed_dkmh, course_deg):
    y, mo, d = _civil(t // 86400)
    s = t % 86400
    hms = "%02d%02d%02d.00" % (s // 3600, s % 3600 // 60, s % 60)
    la = _angle(lat, 2) + ("," + ("N" if lat >= 0 else "S"))
    lo = _angle(lon, 3) + ("," + ("E" if lon >= 0 else "W"))
    knots = speed_dkmh * 10000 // 1852  # 0.01 knot
    rmc = "GPRMC,%s,A,%s,%s,%d.%02d,%d.0,%02d%02d%02d,,,A" % (
        hms, la, lo, knots // 100, knots % 100, course_deg, d, mo, y % 100)
    gga = "GPGGA,%s,%s,%s,1,09,0.9,512.0,M,-20.0,M,," % (hms, la, lo)
    return (_sentence(gga) + _sentence(rmc)).encode()


# ---- gateway double --------------------------------------------------------------------------

class Gateway:
    # Stores what the seal sends, answers ACK after "commit" (unless told to hold them), sends
    # commands. Keeps enough to check order, duplicates and release.
    def __init__(self, seal_id, key):
        self.codec = C.Codec(seal_id, key)
        self.seq = 0
        # Compact on purpose (its memory counts in the scenario's heap figure): a bitmap of
        # delivered rseq, a count of positions, the events as (rseq, code, value, time).
        self.seen = bytearray(1024)  # 8192 rseq
        self.positions = 0
        self.evs = []
        self.max_rseq = 0
        self.in_order = True
        self.dups = 0
        self.retransmits = 0
        self.hellos = []
        self.states = []
        self.results = []
        self.out = []
        self.hold_acks = False
        self.boots = {}
        self.committed = 0
        self.bad = 0

    def _down(self, typ, fields, t):
        self.seq += 1
        return self.codec.encode(typ, 0, self.seq, t, fields)

    def receive(self, frame, t):
        try:
            f = self.codec.decode(frame)
            p = C.parse_payload(f.type, f.payload)
        except C.CodecError:
            self.bad += 1
            return
        self.boots[f.boot] = 1
        if f.flags & C.FLAG_RETRANSMIT:
            self.retransmits += 1
        committed = C.NO_RSEQ
        if f.type == C.RECORDS:
            first, base, count, recs = p
            for i in range(count):
                if self._store(first + i):
                    self.positions += 1
            committed = first + count - 1
        elif f.type == C.EVENT:
            if self._store(p[0]):
                self.evs.append((p[0], p[2], p[6], p[1]))
            committed = p[0]
        elif f.type == C.HELLO:
            self.hellos.append((f.boot, p))
        elif f.type == C.STATE:
            self.states.append(p)
        elif f.type == C.COMMAND_RESULT:
            self.results.append(p)
        if self.hold_acks:
            return
        if committed != C.NO_RSEQ and committed > self.committed:
            self.committed = committed
        self.out.append(self._down(C.ACK, (f.boot, f.seq, committed), t))

    def _store(self, rseq):
        # -> True the first time this rseq arrives.
        if self.has(rseq):
            self.dups += 1
            return False
        self.seen[rseq >> 3] |= 1 << (rseq & 7)
        if rseq < self.max_rseq:
            self.in_order = False
        self.max_rseq = rseq
        return True

    def has(self, rseq):
        return bool(self.seen[rseq >> 3] & (1 << (rseq & 7)))

    def activate(self, t, escort_id=77, route=b"", corridor=0):
        return self._down(C.ACTIVATE, (escort_id, SEAL, DECL, VEHICLE, "55201", "Khorgos",
                                       T0, T0 + 7 * 86400, corridor, route), t)

    def deactivate(self, t, escort_id=77, vehicle=VEHICLE):
        return self._down(C.DEACTIVATE, (escort_id, SEAL, DECL, vehicle), t)

    def events(self, code):
        return [e[0] for e in self.evs if e[1] == code]

    def event_values(self, code):
        return [e[2] for e in self.evs if e[1] == code]

    def event_times(self, code):
        return [e[3] for e in self.evs if e[1] == code]


# ---- the world around the seal ---------------------------------------------------------------

class World:
    def __init__(self, cfg):
        self.hal = MemHal(unix0=T0)
        self.cfg = cfg
        self.gw = Gateway(SEAL, cfg.key_bytes)
        self.up = True
        self.lat = LAT0
        self.lon = LON0
        self.dlat = 0  # 1e-7 degree per second
        self.dlon = 0
        self.gnss_on = True
        self.next_gnss = 0
        self.fixes = 0
        self.fix_us = 0
        self.core = None
        self.boot_core()

    def send(self, frame):
        if not self.up:
            return False
        self.gw.receive(frame, self.hal.unix())
        return True

    def boot_core(self):
        self.core = SealCore(self.cfg, self.hal, self.send)
        self.core.start(self.hal.now_ms)
        if not self.up:
            self.core.on_link(False, self.hal.now_ms)
        self.exchange()

    def exchange(self, all_=False):
        # One downlink frame per step (a network round trip each, as on a real link) unless
        # told to deliver everything queued.
        while self.gw.out and self.up:
            self.core.on_downlink(self.gw.out.pop(0), self.hal.now_ms)
            if not all_:
                break
        # Released only after an ACK: the seal never releases beyond what the gateway committed.
        check(self.core.journal.acked <= self.gw.committed, "released before the gateway committed")

    def command(self, frame):
        self.core.on_downlink(frame, self.hal.now_ms)
        self.exchange(True)

    def set_link(self, up):
        self.up = up
        self.core.on_link(up, self.hal.now_ms)
        self.exchange()

    def speed_dkmh(self):
        dy = self.dlat * 0.011131949
        dx = self.dlon * 0.011131949 * 0.7286  # cos(43.2 deg)
        return int((dx * dx + dy * dy) ** 0.5 * 36)

    def run_to(self, t_end_ms):
        hal = self.hal
        while hal.now_ms < t_end_ms:
            nxt = self.core.next_deadline_ms()
            if self.gnss_on and self.next_gnss < nxt:
                nxt = self.next_gnss
            if nxt > t_end_ms:
                nxt = t_end_ms
            if nxt <= hal.now_ms or (self.gw.out and self.up):
                nxt = hal.now_ms + 1  # a queued ACK or command arrives 1 ms later
            hal.now_ms = nxt
            if self.gnss_on and nxt >= self.next_gnss:
                self.next_gnss = (nxt // 1000 + 1) * 1000
                self.lat += self.dlat
                self.lon += self.dlon
                data = nmea_fix(hal.unix(), self.lat, self.lon, self.speed_dkmh(), 45)
                t0 = _us()
                self.core.feed_gnss(data, nxt)
                self.core.poll(nxt)
                self.fix_us += _elapsed_us(t0)
                self.fixes += 1
            else:
                self.core.poll(nxt)
            self.exchange()
            yield


def route_line(n, step_e5):
    out = bytearray()
    for i in range(n):
        out += struct.pack(">ii", LAT0 // 100 + i * step_e5, LON0 // 100 + i * step_e5)
    return bytes(out)


def scenario(report=print):
    # A generator: it yields after every step so a driver can sample the heap between steps
    # (tests/micropython/runner.mjs --steps: the WebAssembly port collects garbage only then).
    key = test_key(SEAL)
    cfg = Config({"seal_id": SEAL, "key": key, "report_moving_s": 10, "report_stopped_s": 60,
                  "report_inactive_s": 600, "heartbeat_s": 300, "batch_max": 40,
                  "gnss_lost_s": 120, "ack_timeout_s": 20, "journal_capacity": 4096,
                  "journal_seg_records": 128})
    w = World(cfg)
    gw = w.gw
    core = w.core
    check(len(gw.hellos) == 1 and gw.hellos[0][0] == 1, "HELLO with boot 1")
    check(gw.events(C.EV_REBOOT) == [1], "REBOOT is rseq 1")

    # 1. Activation with the cable open is refused.
    yield from w.run_to(5000)
    w.hal.cable_closed = False
    yield from w.run_to(6000)
    w.command(gw.activate(w.hal.unix()))
    check(gw.results[-1][3] == C.RES_LOCK_OPEN and gw.results[-1][4] == C.INACTIVE, "LOCK_OPEN")
    check(not gw.events(C.EV_CABLE_CUT), "opening an inactive seal is no alarm")
    # 2. Lock closed: activation succeeds; a replay of the same frame is refused; a forgery is
    #    journaled as COMMAND_REJECTED.
    w.hal.cable_closed = True
    yield from w.run_to(8000)
    before = gw.positions
    act = gw.activate(w.hal.unix(), route=route_line(30, 2000), corridor=1000)
    w.command(act)
    check(gw.results[-1][3] == C.RES_OK and gw.results[-1][4] == C.ACTIVE, "ACTIVATE OK")
    check(gw.states[-1][0] == C.ACTIVE and gw.states[-1][1] == 77, "STATE ACTIVE")
    check(gw.positions == before + 1, "a first position right after activation")
    w.command(act)
    check(gw.results[-1][3] == C.RES_REPLAYED, "replayed ACTIVATE refused")
    forger = C.Codec(SEAL, b"\x01" * 32)
    w.command(forger.encode(C.DEACTIVATE, 0, 999, w.hal.unix(), (77, SEAL, DECL, VEHICLE)))
    check(core.escort.state == 1 and gw.event_values(C.EV_COMMAND_REJECTED) == [2, 1],
          "replay and forgery journaled as COMMAND_REJECTED")

    # 3. Drive 10 minutes (about 50 km/h north-east, inside the corridor).
    w.dlat = 1000
    w.dlon = 1000
    yield from w.run_to(10 * 60000)
    npos = gw.positions - before
    check(55 <= npos <= 62, "positions every 10 s while moving: %d" % npos)
    check(core.journal.pending == 0, "all acknowledged while covered")

    # 4. Coverage gap; the cable is cut (and put back) while offline.
    w.set_link(False)
    yield from w.run_to(15 * 60000)
    w.hal.cable_closed = False
    yield from w.run_to(15 * 60000 + 2000)
    w.hal.cable_closed = True
    yield from w.run_to(20 * 60000)
    check(core.alarms() & C.AL_CABLE_CUT, "cable cut latched")
    pending_before = core.journal.pending
    check(pending_before >= 55, "buffered while offline: %d" % pending_before)

    # 5. Power cut in the middle of a flash write, then reboot.
    w.hal.flash.cut_after(J.REC_SIZE // 2)
    cut = False
    try:
        yield from w.run_to(21 * 60000)
    except PowerCut:
        cut = True
    check(cut, "the power cut happened during a write")
    w.hal.flash.power_on()
    w.hal.cause = C.RESET_BROWNOUT
    old_next = core.journal.next_rseq
    w.boot_core()
    core = w.core
    check(core.boot == 2, "boot counter persisted")
    check(core.alarms() & C.AL_CABLE_CUT, "latched alarm survives the reboot")
    check(core.escort.state == C.ACTIVE and core.escort.vehicle == VEHICLE, "escort survives")
    check(core.journal.next_rseq >= old_next, "rseq never goes back")
    check(core.journal.pending >= pending_before, "journal recovered: %d" % core.journal.pending)
    yield from w.run_to(25 * 60000)

    # 6. Coverage back, but the gateway's store is slow: no ACK, so nothing is released and
    #    the frame is retransmitted after the timeout.
    gw.hold_acks = True
    pending = core.journal.pending
    w.set_link(True)
    yield from w.run_to(25 * 60000 + 45000)
    check(core.journal.pending >= pending and core.journal.acked == gw.committed,
          "nothing released without an ACK")
    check(gw.retransmits >= 1, "retransmitted after the ACK timeout")
    gw.hold_acks = False
    yield from w.run_to(30 * 60000)
    check(core.journal.pending <= 1, "backlog delivered: %d" % core.journal.pending)

    # 7. Stop; deactivation with the wrong vehicle is refused, then the right one.
    w.dlat = 0
    w.dlon = 0
    yield from w.run_to(32 * 60000)
    w.command(gw.deactivate(w.hal.unix(), vehicle="999XXX01"))
    check(gw.results[-1][3] == C.RES_MISMATCH and core.escort.state == C.ACTIVE, "MISMATCH")
    w.command(gw.deactivate(w.hal.unix()))
    check(gw.results[-1][3] == C.RES_OK and core.escort.state == C.INACTIVE, "DEACTIVATE OK")
    yield from w.run_to(34 * 60000)

    # Everything delivered, exactly once in effect, in order, and released.
    last = core.journal.next_rseq - 1
    check(core.journal.pending == 0 and core.journal.acked == last, "all released")
    missing = [r for r in range(1, last + 1) if not gw.has(r)]
    check(not missing, "every rseq delivered; missing %s" % missing[:5])
    check(gw.in_order, "delivered in rseq order")
    check(len(gw.events(C.EV_REBOOT)) == 2, "two REBOOT events")
    check(len(gw.events(C.EV_CABLE_CUT)) == 1, "one CABLE_CUT")
    check(gw.events(C.EV_LOCK_RESTORED), "LOCK_RESTORED")
    reboots = gw.event_values(C.EV_REBOOT)
    check(reboots == [C.RESET_POWER_ON, C.RESET_BROWNOUT], "REBOOT events carry the reset cause")
    check(2 in gw.boots, "frames of boot 2 arrived")
    check(not gw.events(C.EV_ROUTE_DEVIATION), "stayed inside the corridor")
    check(gw.bad == 0, "every uplink frame decoded and authenticated")
    check(gw.states[-1][2] & C.AL_CABLE_CUT, "STATE after deactivation: not clean")

    gc.collect()
    report("FIGURE records_delivered %d" % last)
    report("FIGURE retransmits %d" % gw.retransmits)
    report("FIGURE duplicates %d" % gw.dups)
    report("FIGURE fixes %d" % w.fixes)
    report("FIGURE us_per_fix %d" % (w.fix_us // w.fixes))
    report("FIGURE flash_bytes %d" % w.hal.flash.used_bytes())
    report("SCENARIO_OK")


def run(report=print):
    for _ in scenario(report):
        pass


def bench_journal_steps(n=2000, report=print):
    # Append, recovery and send+release times on MemHal (interpreter speed, not flash speed).
    # A generator so the MicroPython driver can collect garbage between chunks.
    hal = MemHal()
    j = J.Journal(hal, capacity=4 * n, seg_records=1021)
    j.recover()
    append_us = 0
    for k in range(0, n, 100):
        t0 = _us()
        for i in range(k, k + 100):
            j.append_position(T0 + i, LAT0 + i, LON0 + i, 500, 22, 0x49, 9, 0xC0 | 45)
        append_us += _elapsed_us(t0)
        yield
    j.close()
    t0 = _us()
    j2 = J.Journal(hal, capacity=4 * n, seg_records=1021)
    j2.recover()
    recover_us = _elapsed_us(t0)
    yield
    k = 0
    drain_us = 0
    while True:
        t0 = _us()
        got = j2.peek(120)
        if got:
            k += j2.b_count
            j2.release(j2.b_last)
        drain_us += _elapsed_us(t0)
        if not got:
            break
        yield
    check(k == n, "drained all")
    report("FIGURE journal_append_us %d" % (append_us // n))
    report("FIGURE journal_recover_us_%d %d" % (n, recover_us))
    report("FIGURE journal_send_release_us_per_record %d" % (drain_us // n))


def bench_journal(n=2000, report=print):
    for _ in bench_journal_steps(n, report):
        pass


def bench_fix_steps(n=600, report=print):
    # Time per GNSS epoch through the whole core: NMEA parse (GGA + RMC), jump and corridor
    # check against a 30-point route, reporting, journal append, frame encoding and MAC. The
    # link takes frames and the gateway ACKs each one at once (its decode is not timed).
    cfg = Config({"seal_id": SEAL, "key": test_key(SEAL), "report_moving_s": 10,
                  "journal_capacity": 4096, "journal_seg_records": 256})
    hal = MemHal(unix0=T0)
    gw = Gateway(SEAL, cfg.key_bytes)
    outbox = []
    core = SealCore(cfg, hal, outbox.append)
    core.start(0)
    core.on_downlink(gw.activate(hal.unix(), route=route_line(30, 2000), corridor=1000), 0)
    lat = LAT0
    lon = LON0
    total = 0
    for i in range(n):
        hal.now_ms += 1000
        lat += 1000
        lon += 1000
        data = nmea_fix(hal.unix(), lat, lon, 496, 45)
        t0 = _us()
        core.feed_gnss(data, hal.now_ms)
        core.poll(hal.now_ms)
        total += _elapsed_us(t0)
        while outbox:
            gw.receive(outbox.pop(0), hal.unix())
        while gw.out:
            core.on_downlink(gw.out.pop(0), hal.now_ms)
        if i % 10 == 9:
            yield
    check(core.journal.pending == 0, "bench: all acknowledged")
    report("FIGURE us_per_fix_core %d" % (total // n))


def bench_fix(n=600, report=print):
    for _ in bench_fix_steps(n, report):
        pass


def bench_corridor_steps(n=300, report=print):
    # The seal's corridor check per fix (corridor.Corridor.check), against the NMEA parse of one
    # epoch (GGA + RMC) measured in the same run as the baseline: a 30-point route with the fix
    # near it, a 400-point route (400 x 1.5 km) near it, and a fix 0.5 degree off (every vertex
    # far: only the window test).
    from navseal_fw.corridor import Corridor
    from navseal_fw.nmea import NmeaParser

    data = nmea_fix(T0, LAT0 + 5000, LON0 + 5000, 496, 45)
    p = NmeaParser()
    t0 = _us()
    for i in range(n):
        p.feed(data)
    nmea_us = _elapsed_us(t0)
    yield
    routes = (("30pt", route_line(30, 2000)), ("400pt", route_line(400, 1000)))
    for name, route in routes:
        c = Corridor(2, 200)
        c.set_route(route, 1000)
        for label, dlat, dlon in (("near", 1000, 1500), ("far", 5000000, 0)):
            lat = LAT0 + dlat
            lon = LON0 + dlon
            t0 = _us()
            for i in range(n):
                c.check(lat + 700 * i, lon + 1000 * i)
            us = _elapsed_us(t0)
            report("FIGURE corridor_%s_%s_x1000 %d" % (name, label, us * 1000 // max(nmea_us, 1)))
            yield
    report("FIGURE nmea_epoch_us %d" % (nmea_us // n))


def bench_corridor(n=300, report=print):
    for _ in bench_corridor_steps(n, report):
        pass


def footprint_steps(report=print):
    # The seal core's live heap, apart from the test's own objects: each print happens at the
    # start of a step, after the WebAssembly port's top-level collection, so gc.mem_alloc() is
    # the live heap there (meaningful under runner.mjs --steps only).
    alloc = getattr(gc, "mem_alloc", None)

    def live():
        return alloc() if alloc else 0

    yield
    m0 = live()
    hal = MemHal(unix0=T0)
    cfg = Config({"seal_id": SEAL, "key": test_key(SEAL), "journal_capacity": 100000,
                  "journal_seg_records": 1021})
    gw = Gateway(SEAL, cfg.key_bytes)
    outbox = []
    yield
    m1 = live()
    report("FIGURE harness_live %d" % (m1 - m0))
    core = SealCore(cfg, hal, outbox.append)
    core.start(0)
    del outbox[:]
    yield
    report("FIGURE core_live_after_boot %d (flash image %d)" % (live() - m1, hal.flash.used_bytes()))
    core.on_downlink(gw.activate(hal.unix(), route=route_line(400, 2000), corridor=1000), 0)
    del outbox[:]
    yield
    report("FIGURE core_live_active_400pt_route %d (flash image %d)"
           % (live() - m1, hal.flash.used_bytes()))
    lat = LAT0
    for i in range(120):
        hal.now_ms += 1000
        lat += 1000
        core.feed_gnss(nmea_fix(hal.unix(), lat, LON0, 400, 0), hal.now_ms)
        core.poll(hal.now_ms)
        del outbox[:]  # link down: everything stays in the journal
        yield
    report("FIGURE core_live_after_120_fixes_offline %d (flash image %d, pending %d)"
           % (live() - m1, hal.flash.used_bytes(), core.journal.pending))


def main():
    run()
    bench_journal()
    bench_fix()
