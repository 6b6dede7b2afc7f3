# SealCore: the sans-I/O core of one seal. Bytes, readings and time in; frames and deadlines out.
#
# Past 400 lines on purpose: one state machine whose handlers all read the same state; what can
# stand alone has left it (escort, evidence, tamper, gnss_check, corridor, journal), and each
# further module costs the seal heap (docs/firmware.md, memory table).
#
#   core = SealCore(config, hal, send)       # send(frame_bytes) -> True if the link took it
#   core.start(now_ms)                       # boot: counter, recovery, HELLO, REBOOT event
#   core.feed_gnss(uart_bytes, now_ms)       # NMEA from the receiver, any chunking
#   core.poll(now_ms)                        # samples lock inputs and battery via the HAL,
#                                            # runs every timer, sends what is due
#   core.on_downlink(frame_bytes, now_ms)    # a frame from the gateway (ACK or command)
#   core.on_link(up, now_ms)                 # the link came or went
#   core.next_deadline_ms()                  # when poll() next has something to do
#
# No module-level state and no I/O of its own: thousands of SealCores run in one CPython process
# in the simulator, each with its own HAL (MemHal or DesktopHal). The board's main.py reads the
# UART and calls these methods from a small asyncio loop.
#
# Modules it drives: escort.py (state machine, replay window, route), evidence.py (what the seal
# observed during the escort, persisted, in every STATE and COMMAND_RESULT), tamper.py (opening
# episodes from samples and the pin-interrupt latch), gnss_check.py (which fixes to believe,
# anomalies), corridor.py (the seal's own route check), journal.py (store and forward).
# (This file is past 400 lines: it is the one place that wires those parts to the frames and
# timers, kept together so the order of "persist, then journal, then send" is visible.)
#
# Delivery: every position and event goes through the journal (flash) and is released only by an
# ACK whose committed_rseq covers it. One journal frame is in flight at a time (stop-and-wait, as
# docs/protocol.md requires for the cumulative ACK); it is re-sent after ack_timeout_s, doubling
# up to _RETRY_CAP_S. HELLO, STATE and COMMAND_RESULT are not journaled: STATE repeats by itself
# and the gateway repeats a command until it sees its result.

import struct
from binascii import unhexlify
from binascii import crc32

from navseal_fw import codec
from navseal_fw import escort as E
from navseal_fw import journal as J
from navseal_fw.corridor import EV_DEVIATION
from navseal_fw.evidence import Evidence
from navseal_fw.gnss_check import INVALID_DATE, GnssCheck
from navseal_fw.lock import LockInputs
from navseal_fw.nmea import NO_POS, NmeaParser
from navseal_fw.persist import Counter, Store
from navseal_fw.tamper import Tamper

if False:  # for the type checker only; MicroPython has no typing module at run time
    from typing import Any

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

FW_VERSION = (0, 1, 0)

# Event codes, frame flags and the ACK's "no record": one definition, in the codec.
from navseal_fw.codec import (EV_COMMAND_REJECTED, EV_GNSS_ANOMALY, EV_GNSS_LOST,  # noqa: E402
                              EV_GNSS_REGAINED, EV_LOW_BATTERY, EV_REBOOT, FLAG_MORE,
                              FLAG_RETRANSMIT, RESET_BROWNOUT, RESET_POWER_ON)
from navseal_fw.codec import NO_RSEQ as NO_COMMIT  # noqa: E402

# COMMAND_REJECTED reasons
_REJ_BAD_MAC = const(1)
_REJ_REPLAYED = const(2)
_REJ_WRONG_TYPE = const(3)
_REJ_BAD_PAYLOAD = const(4)


_RETRY_CAP_S = const(600)  # a frame in flight is retried at least every 10 minutes
_MAX_TX_REMEMBERED = const(8)  # transmissions of one journal frame whose ACK still counts
_BATTERY_SAMPLE_MS = const(60000)
_LOW_BATTERY_HYST = const(5)  # back to normal only at low + 5 %
_MOVING_DECI_KMH = const(50)  # 5 km/h: below this the vehicle counts as stopped
# Forged commands are journaled (they are evidence) but at most this many an hour, so a radio
# spraying garbage cannot fill the journal with events that may never be thinned.
_MAX_REJECTED_PER_HOUR = const(20)
CLOCK_SANE = 1600000000  # a GNSS or RTC time before 2020-09 is a cold-start artefact

# Defaults, one place (docs/firmware.md "Core" lists them). Config file keys are the same names.
DEFAULTS = {
    "seal_id": 0,
    "key": "",
    "report_moving_s": 30,
    "report_stopped_s": 300,
    "report_inactive_s": 3600,
    "heartbeat_s": 900,
    "batch_max": 60,
    "gnss_lost_s": 300,
    "low_battery_pct": 15,
    "jump_speed_kmh": 250,
    "ack_timeout_s": 30,
    "debounce_ms": 50,
    "journal_capacity": 100000,
    "journal_seg_records": 1021,  # 32 + 1021 x 20 = 20,452 B: exactly five 4 KB littlefs blocks
    "thin_keep": 2,
    "route_confirm_fixes": 2,  # fixes in a row outside (inside) for a deviation (return)
    "route_hysteresis_m": 200,  # back inside only this far within the edge (corridor.py)
}
# The CONFIG command's fields, in wire order (docs/protocol.md, 0x84 CONFIG).
CONFIG_FIELDS = ("report_moving_s", "report_stopped_s", "report_inactive_s", "heartbeat_s",
                 "batch_max", "gnss_lost_s", "low_battery_pct", "jump_speed_kmh", "ack_timeout_s")
CONFIG_FILE = "navseal.json"


class Config:
    # Provisioning: seal id, key and intervals, from a JSON file on flash written by
    # `navseal provision`; CONFIG commands override the intervals (persisted in "cfg").

    def __init__(self, values=None):
        # Spelled out (not a setattr loop) so readers and the type checker see every field.
        d = DEFAULTS
        self.seal_id = d["seal_id"]
        self.key = d["key"]
        self.report_moving_s = d["report_moving_s"]
        self.report_stopped_s = d["report_stopped_s"]
        self.report_inactive_s = d["report_inactive_s"]
        self.heartbeat_s = d["heartbeat_s"]
        self.batch_max = d["batch_max"]
        self.gnss_lost_s = d["gnss_lost_s"]
        self.low_battery_pct = d["low_battery_pct"]
        self.jump_speed_kmh = d["jump_speed_kmh"]
        self.ack_timeout_s = d["ack_timeout_s"]
        self.debounce_ms = d["debounce_ms"]
        self.journal_capacity = d["journal_capacity"]
        self.journal_seg_records = d["journal_seg_records"]
        self.thin_keep = d["thin_keep"]
        self.route_confirm_fixes = d["route_confirm_fixes"]
        self.route_hysteresis_m = d["route_hysteresis_m"]
        self.key_bytes = b""
        self.file_crc = 0
        if values:
            self.update(values)

    def update(self, values):
        for k in values:
            if k in DEFAULTS:
                setattr(self, k, values[k])
        # The wire lets CONFIG carry any u8/u16 (docs/protocol.md); a batch must fit one frame
        # and a zero interval would spin the loop, so clamp here, where the values are used.
        # (Values come from JSON or the wire, hence Any for the type checker.)
        bm = self.batch_max  # type: Any
        self.batch_max = 1 if bm < 1 else (120 if bm > 120 else bm)
        rc = self.route_confirm_fixes  # type: Any
        self.route_confirm_fixes = 1 if rc < 1 else (60 if rc > 60 else rc)
        for name in ("report_moving_s", "report_stopped_s", "report_inactive_s", "heartbeat_s",
                     "gnss_lost_s", "ack_timeout_s"):
            v = getattr(self, name)  # type: Any
            if v < 1:
                setattr(self, name, 1)
        key = self.key
        if isinstance(key, (bytes, bytearray)):
            self.key_bytes = bytes(key)
        elif isinstance(key, str) and key:
            self.key_bytes = unhexlify(key)
        if self.key_bytes and len(self.key_bytes) != 32:
            raise ValueError("key must be 32 bytes")

    @classmethod
    def load(cls, hal, name=CONFIG_FILE):
        import json

        f = hal.open(name, "rb")
        try:
            raw = f.read()
        finally:
            f.close()
        cfg = cls(json.loads(raw))
        cfg.file_crc = crc32(raw) & 0xFFFFFFFF
        if not cfg.seal_id or not cfg.key_bytes:
            raise ValueError("config needs seal_id and key")
        return cfg


class SealCore:
    def __init__(self, config, hal, send):
        self.cfg = config
        self.hal = hal
        self._send = send
        self.seal_id = config.seal_id
        self.codec = codec.Codec(config.seal_id, config.key_bytes)
        self.journal = J.Journal(hal, capacity=config.journal_capacity,
                                 seg_records=config.journal_seg_records, thin_keep=config.thin_keep)
        self.escort = E.Escort(hal, config.seal_id, config.route_confirm_fixes,
                               config.route_hysteresis_m)
        self.evidence = Evidence(hal)
        self.gnss = NmeaParser()
        self.gcheck = GnssCheck(config.jump_speed_kmh)
        self.lock = LockInputs(config.debounce_ms)
        self.tamper = Tamper(self)
        self._boot_ctr = Counter(hal, "boot")
        self._cfg_store = Store(hal, "cfg")
        self.boot = 0
        self.seq = 0
        self.link_up = True
        # position state (last accepted fix)
        self.lat = NO_POS
        self.lon = NO_POS
        self.fix_time = 0
        self.speed = 0
        self.course_u8 = 255
        self.fix_u8 = 0
        self.hdop_u8 = 255
        self._have_fix = False
        self._last_fix_ms = 0  # the last fix taken (or boot)
        # The gateway's time from the newest authenticated downlink, and when it came (monotonic):
        # GNSS time is held against it (gnss_check.py). 0: none since boot.
        self._gw_t = 0
        self._gw_ms = 0
        self._act_ms = 0  # activation (or boot): stretches without a fix start here at the earliest
        self._state_due = False  # a STATE to send once the journal is drained
        self._state_due_since = 0
        self.gnss_lost = False
        self._loss_ms = 0  # when the lost stretch began (ms), while gnss_lost
        self.battery = None
        self.low_battery = False
        self.overflow_flag = False
        self._thinned_seen = 0
        # timers (ms on the caller's clock)
        self._now = 0
        self._last_report = 0
        self._next_heartbeat = 0
        self._next_battery = 0
        self._first_position = False  # send a position at the next fix (after activation)
        # journal frame in flight
        self._inflight = False
        self._if_seqs = []  # seqs of this journal frame's transmissions (first and retries)
        self._if_last_rseq = 0
        self._if_deadline = 0
        self._retry_ms = 0
        # counters (ints, only ever increase): refusals by reason, for metrics and tests
        self.rx_ok = 0
        self.rx_errors = {}
        self.rx_not_mine = 0
        self.rx_replayed = 0
        self.rx_rejected = 0
        self.acks_ignored = 0
        self.retransmits = 0
        self.tx_frames = 0
        self.tx_failed = 0
        self.last_tx_error = None
        self._rej_hour_start = 0
        self._rej_in_hour = 0
        self.results = []  # last few COMMAND_RESULT codes (for tests and the emulator's log)

    # ---- boot -------------------------------------------------------------------------------

    def start(self, now_ms):
        self._now = now_ms
        raw = self._cfg_store.load()
        if raw is not None and len(raw) == 16:
            self._apply_config_bytes(raw)
        # u32 on the wire and in flash: at one boot a second it lasts 136 years, so it never wraps
        # (a wrap would make every later frame look replayed to the gateway).
        self.boot = (self._boot_ctr.load() + 1) & 0xFFFFFFFF
        self._boot_ctr.save(self.boot)
        self.seq = 0
        self.escort.load()
        self.journal.recover()
        cause = self.hal.reset_cause()
        self._restore_evidence(cause)
        self._sample_battery()
        self._out(self.codec.hello(self.boot, self._next_seq(), self.hal.unix(), FW_VERSION[0],
                                   FW_VERSION[1], FW_VERSION[2], cause & 0xFF, self.cfg.file_crc,
                                   self.journal.pending))
        self._event(EV_REBOOT, cause)
        self._last_fix_ms = now_ms
        self._act_ms = now_ms
        self._last_report = now_ms - 3600000  # report at the first fix
        self._next_heartbeat = now_ms + self.cfg.heartbeat_s * 1000
        self._next_battery = now_ms + _BATTERY_SAMPLE_MS
        self._send_state()
        self._pump()

    def _restore_evidence(self, cause):
        # The evidence follows the escort: ACTIVATE writes the escort, then resets the evidence;
        # DEACTIVATE writes the escort, then freezes it. A power cut between the two is finished
        # here, before anything is journaled (the journal's top is still the one of that moment).
        e = self.escort
        ev = self.evidence
        ev.load()
        j = self.journal
        top = j.next_rseq - 1
        if e.state == E.ACTIVE:
            if ev.escort_id != e.escort_id or ev.closed:
                ev.reset(e.escort_id, top)
                j.set_thin_floor(top)
            ev.reboots = ev.inc(ev.reboots)
            if cause == RESET_POWER_ON or cause == RESET_BROWNOUT:
                ev.power_losses = ev.inc(ev.power_losses)
            e.corridor.deviated = ev.deviating
            self.gcheck.kinds_now = ev.anom_kinds_now
            if ev.loss_start:
                # A GNSS loss was going on: it goes on (ended by the next fix, with its duration)
                self.gnss_lost = True
                lost_s = self.hal.unix() - ev.loss_start
                self._loss_ms = self._now - (lost_s * 1000 if lost_s > 0 else 0)
            ev.save()  # the reboot is counted before the seal does anything else
            self.tamper.restore(self._now)
            self.tamper.flush_pending()
        elif ev.escort_id and ev.escort_id == e.last_escort_id and not ev.closed:
            ev.closed = True
            ev.hw_rseq = top
            ev.thinned = j.esc_thinned
            ev.save()
            j.set_thin_floor(J.NO_FLOOR)

    # ---- inputs -----------------------------------------------------------------------------

    def feed_gnss(self, data, now_ms):
        self._now = now_ms
        p = self.gnss
        if p.feed(data):
            self._on_fix(p.fix)
        if p.bad_dates != self.gcheck.bad_dates:
            self.gcheck.bad_dates = p.bad_dates
            self.gcheck.note(INVALID_DATE)
            self._anomaly()
        if p.utc > CLOCK_SANE and self.hal.unix() < CLOCK_SANE:
            # A clock never set gets the receiver's time even without a fix (a first estimate);
            # after that only fixes the GnssCheck took set it (_on_fix), and the gateway (TIME).
            self.hal.set_unix(p.utc)

    def _on_fix(self, f):
        g = self.gcheck
        have = self._have_fix
        clock = 0
        if not have:  # the first fix after a boot is judged against the seal's clock
            clock = self.hal.unix()
            if clock < CLOCK_SANE:
                clock = 0
        ok = g.judge(f.time, f.lat_e7, f.lon_e7, self._now, clock, self.gateway_time())
        active = self.escort.state == E.ACTIVE
        if g.kind:
            self._anomaly()
        if g.episode_ended and active:
            self.evidence.anom_kinds_now = 0
            self.evidence.save()
        if not ok:
            return
        t = self.hal.unix()
        if f.time - t > 2 or t - f.time > 2:
            # The clock follows the fixes taken: never a refused one (a spoofer's future, a
            # replayed past), and back again once true GNSS is confirmed (gnss_check.py).
            self.hal.set_unix(f.time)
        self._have_fix = True
        self.lat = f.lat_e7
        self.lon = f.lon_e7
        self.fix_time = f.time
        self.speed = f.speed if f.speed < 0xFFFF else 0xFFFF
        self.course_u8 = f.course_u8()
        self.fix_u8 = f.fix_u8()
        self.hdop_u8 = f.hdop_u8()
        if active:
            self._stretch(self._now)
        self._last_fix_ms = self._now
        if self.gnss_lost:
            self.gnss_lost = False
            lost_s = (self._now - self._loss_ms) // 1000
            if active and self.evidence.loss_start:
                self.evidence.loss_start = 0
                self.evidence.save()
            self._event(EV_GNSS_REGAINED, lost_s)
        if active:
            self._route_check()
        if self._first_position:
            self._first_position = False
            self._record_position()
            self._last_report = self._now
            self._pump()

    def gateway_time(self):
        """The gateway's time now (its newest authenticated downlink carried forward on the
        monotonic clock), or 0 when no downlink came since boot."""
        if not self._gw_t:
            return 0
        return self._gw_t + (self._now - self._gw_ms) // 1000

    def _stretch(self, now_ms):
        # The longest stretch without a fix this escort (since the last fix, or since activation
        # or boot), an ongoing one included: ACTIVE only. RAM; written with the next evidence
        # save, at the latest before it is reported. A stretch still going on is only a
        # candidate: if it is the longest, its start stays and its length grows.
        start = self._last_fix_ms if self._last_fix_ms > self._act_ms else self._act_ms
        gap_s = (now_ms - start) // 1000
        if self.evidence.gap(gap_s):
            self.evidence.gnss_longest_at = self.hal.unix() - gap_s

    def _anomaly(self):
        # The GnssCheck found an anomaly to raise (once per kind per episode).
        g = self.gcheck
        kind = g.kind
        if not kind:
            return
        g.kind = 0
        if self._active():
            ev = self.evidence
            if ev.anom_kinds_now == 0:
                ev.anomalies = ev.inc(ev.anomalies)
                if not ev.anomaly_first:
                    ev.anomaly_first = self.hal.unix()
            ev.anom_kinds_now = g.kinds_now
            ev.anomaly_kinds |= 1 << (kind - 1)
            ev.save()
        self._event(EV_GNSS_ANOMALY, kind << 24 | g.detail)

    def _route_check(self):
        # ACTIVE only.
        c = self.escort.corridor
        code = c.check(self.lat, self.lon)
        ev = self.evidence
        d = c.d
        ev.distance(d)  # RAM; written with the next save (see Evidence.dirty)
        if code:
            if code == EV_DEVIATION:
                ev.deviations = ev.inc(ev.deviations)
                if not ev.deviation_first:
                    ev.deviation_first = self.hal.unix()
            ev.deviating = c.deviated
            ev.save()
            self._event(code, d if code == EV_DEVIATION else 0)

    def _active(self):
        return self.escort.state == E.ACTIVE

    def poll(self, now_ms):
        self._now = now_ms
        t = self.tamper
        if t.pend_due():
            t.flush_pending()  # an event an exception cut off last time
        if now_ms >= t.next_ms or t.irq_pending():
            t.sample(now_ms, self._active())
        if not self.gnss_lost and now_ms - self._last_fix_ms >= self.cfg.gnss_lost_s * 1000:
            self._gnss_lost(now_ms)
        # The interval is looked up at every poll, so a vehicle that starts moving reports at the
        # moving rate from then on rather than after the stopped interval runs out.
        if now_ms >= self._last_report + self._interval() * 1000:
            if self._have_fix and not self.gnss_lost:
                self._record_position()
            else:
                self._first_position = True  # due, but no fix: report at the next one
            self._last_report = now_ms
        if now_ms >= self._next_battery:
            self._next_battery = now_ms + _BATTERY_SAMPLE_MS
            self._sample_battery()
        if self.journal.thinned != self._thinned_seen:
            self._thinned_seen = self.journal.thinned
            self.overflow_flag = True
        if now_ms >= self._next_heartbeat:
            self._next_heartbeat = now_ms + self.cfg.heartbeat_s * 1000
            # After a gap the STATE waits for the backlog (_pump), but not beyond one heartbeat
            # interval (a link too slow to ever drain must not silence the heartbeat).
            if (not self._state_due
                    or now_ms - self._state_due_since >= self.cfg.heartbeat_s * 1000):
                self._state_due = False
                self._send_state()
        self._pump()

    def _interval(self):
        if self.escort.state != E.ACTIVE:
            return self.cfg.report_inactive_s
        if self.speed >= _MOVING_DECI_KMH:
            return self.cfg.report_moving_s
        return self.cfg.report_stopped_s

    def _gnss_lost(self, now_ms):
        self.gnss_lost = True
        self._loss_ms = self._last_fix_ms
        lost_s = (now_ms - self._last_fix_ms) // 1000
        if self._active():
            ev = self.evidence
            ev.gnss_losses = ev.inc(ev.gnss_losses)
            ev.loss_start = self.hal.unix() - lost_s
            self._stretch(now_ms)
            ev.save()
        self._event(EV_GNSS_LOST, lost_s)

    def lock_changed(self, now_ms):
        # A pin-change interrupt (board) or an emulator's input change: sample at the next poll
        # instead of up to a second later.
        self.tamper.next_ms = now_ms

    def _sample_battery(self):
        pct = self.hal.battery_pct()
        self.battery = pct
        if pct is None:
            return
        if not self.low_battery and pct < self.cfg.low_battery_pct:
            self.low_battery = True
            self._event(EV_LOW_BATTERY, pct)
        elif self.low_battery and pct >= self.cfg.low_battery_pct + _LOW_BATTERY_HYST:
            self.low_battery = False

    # ---- journal ----------------------------------------------------------------------------

    def status_byte(self):
        b = self.battery
        return self.lock.bits() | (63 if b is None else (b if b <= 100 else 100) // 2)

    def alarms(self):
        # Openings: latched for the escort (an episode was seen); the rest: as they are now.
        ev = self.evidence
        a = ev.opening_inputs if (self._active() or ev.closed) else 0  # bits 0, 1 = alarm bits
        if self._active() and self.escort.corridor.deviated:
            a |= E.ALARM_ROUTE_DEVIATION
        if self.gcheck.kinds_now:
            a |= E.ALARM_GNSS_ANOMALY
        if self.gnss_lost:
            a |= E.ALARM_GNSS_LOST
        if self.low_battery:
            a |= E.ALARM_LOW_BATTERY
        if self.overflow_flag:
            a |= E.ALARM_JOURNAL_OVERFLOW
        return a

    def _record_position(self):
        self.journal.append_position(self.fix_time or self.hal.unix(), self.lat, self.lon,
                                     self.speed, self.course_u8, self.fix_u8, self.hdop_u8,
                                     self.status_byte())

    def _event(self, code, value):
        self.journal.append_event(self.hal.unix(), code, self.lat, self.lon, self.status_byte(),
                                  value)

    def _event_at(self, code, value, t):
        # An event dated by when it happened (an edge), not by when the seal got to it.
        self.journal.append_event(t, code, self.lat, self.lon, self.status_byte(), value)

    def _pump(self):
        # Send the next journal frame if none is in flight; retransmit one whose ACK is late.
        if not self.link_up:
            return
        if self._inflight:
            if self._now < self._if_deadline:
                return
            # A retransmission re-reads the journal from the first unreleased record, so it may
            # differ from the first transmission: longer if records were appended meanwhile,
            # shorter if thinning dropped a position of it. Either is fine for the gateway,
            # which de-duplicates by rseq; the ACK's committed_rseq is capped below.
            self.retransmits += 1
            self._send_journal(FLAG_RETRANSMIT)
            self._retry_ms *= 2
            if self._retry_ms > _RETRY_CAP_S * 1000:
                self._retry_ms = _RETRY_CAP_S * 1000
            self._if_deadline = self._now + self._retry_ms
            return
        if self.journal.pending == 0:
            if self._state_due:
                # Coverage came back with a backlog: the STATE goes after it, so the gateway
                # learns of a tamper from the journal's event (true time and place) first.
                self._state_due = False
                self._send_state()
            return
        del self._if_seqs[:]
        if self._send_journal(0):
            self._inflight = True
            self._retry_ms = self.cfg.ack_timeout_s * 1000
            self._if_deadline = self._now + self._retry_ms

    def _send_journal(self, flags):
        j = self.journal
        kind = j.peek(self.cfg.batch_max)
        if kind == J.KIND_NONE:
            self._inflight = False
            return False
        more = FLAG_MORE if j.pending > (j.b_last - j.b_first + 1) else 0
        seq = self._next_seq()
        if kind == J.KIND_EVENT:
            frame = self.codec.event(self.boot, seq, self.hal.unix(), j.b_first, j.ev_time,
                                     j.ev_code, j.ev_lat, j.ev_lon, j.ev_status, j.ev_value,
                                     flags | more)
        else:
            frame = self.codec.records(self.boot, seq, self.hal.unix(), j.b_first, j.b_base_time,
                                       j.b_count, j.batch, flags | more)
        self._out(frame)
        seqs = self._if_seqs
        seqs.append(seq)
        if len(seqs) > _MAX_TX_REMEMBERED:
            seqs.pop(0)
        self._if_last_rseq = j.b_last
        return True

    # ---- frames -----------------------------------------------------------------------------

    def _next_seq(self):
        s = self.seq
        self.seq = (s + 1) & 0xFFFFFFFF
        return s

    def _out(self, frame):
        # The link may refuse (False) or fail (OSError, e.g. a UART write error): either way the
        # frame is counted as failed and the core goes on; journal frames are retried by their
        # timer, STATE by the next heartbeat, a COMMAND_RESULT by the gateway repeating.
        self.tx_frames += 1
        try:
            ok = self._send(frame)
        except OSError as e:
            self.last_tx_error = e
            ok = False
        if ok is False:
            self.tx_failed += 1

    def _send_state(self):
        e = self.escort
        b = self.battery
        self._out(self.codec.state(self.boot, self._next_seq(), self.hal.unix(), e.state,
                                   e.escort_id, self.alarms(), 255 if b is None else b,
                                   self.journal.pending, self.journal.capacity, self.fix_time,
                                   self.lat, self.lon, self.lock.bits(), self._evidence()))

    def _result(self, boot, seq, mtype, result):
        self.results.append(result)
        if len(self.results) > 8:
            self.results.pop(0)
        e = self.escort
        self._out(self.codec.command_result(self.boot, self._next_seq(), self.hal.unix(), boot,
                                            seq, mtype, result, e.state, e.escort_id,
                                            self._evidence()))

    def on_link(self, up, now_ms):
        self._now = now_ms
        self.link_up = up
        if up:
            # Tell the gateway where we stand (HELLO and heartbeats may have gone nowhere): at
            # once if the journal is empty, else once it is drained (see _pump). Re-send what
            # was in flight now rather than after the backed-off timeout.
            if self.journal.pending == 0 and not self._inflight:
                self._send_state()
            else:
                self._state_due = True
                self._state_due_since = now_ms
            if self._inflight:
                self._if_deadline = now_ms
                self._retry_ms = self.cfg.ack_timeout_s * 1000 // 2
            self._pump()

    def on_downlink(self, data, now_ms):
        self._now = now_ms
        try:
            fr = self.codec.decode(data)
        except codec.CodecError as e:
            self._count_error(e.code)
            # A frame that fails only its MAC and names this seal is a forgery (or a key
            # mix-up): evidence, so it is journaled. Frames for other seals are just counted.
            if e.code == codec.ERR_BAD_MAC and struct.unpack_from(">I", data, 5)[0] == self.seal_id:
                self._reject(_REJ_BAD_MAC)
            self._pump()
            return
        if fr.seal_id != self.seal_id:
            self.rx_not_mine += 1
            return
        t = fr.type
        if not codec.is_downlink(t):
            self._reject(_REJ_WRONG_TYPE)  # an uplink frame reflected at us
            return
        if not self.escort.fresh(fr.boot, fr.seq):
            self.rx_replayed += 1
            if t != codec.ACK:
                # Refused and reported both ways: the result for the gateway, the event as
                # evidence (rate-limited with the other rejections). A duplicate ACK is normal
                # (MQTT QoS 1 may redeliver) and only counted.
                self._result(fr.boot, fr.seq, t, E.REPLAYED)
                self._reject(_REJ_REPLAYED)
            return
        try:
            p = codec.parse_payload(t, fr.payload)
        except codec.CodecError as e:
            self._count_error(e.code)
            self.escort.accept(fr.boot, fr.seq, t != codec.ACK)
            self._reject(_REJ_BAD_PAYLOAD)
            if t != codec.ACK:
                self._result(fr.boot, fr.seq, t, E.BAD_PARAMS)
            return
        self.rx_ok += 1
        if fr.time > CLOCK_SANE and fr.time > self.gateway_time():
            # Every authenticated downlink carries the gateway's time; the newest one counts (a
            # frame the broker held back carries an older time and changes nothing).
            self._gw_t = fr.time
            self._gw_ms = now_ms
        if t == codec.ACK:
            self.escort.accept(fr.boot, fr.seq, False)
            self._on_ack(p)
        else:
            self.escort.accept(fr.boot, fr.seq, True)
            self._command(fr, p)
        self._pump()

    def _on_ack(self, p):
        acked_boot, acked_seq, committed = p
        # Only an ACK of one of this journal frame's own transmissions ends the wait: the
        # gateway also ACKs STATE and COMMAND_RESULT frames (committed_rseq 0xFFFFFFFF), which
        # may be sent between a batch and its retransmission.
        if (not self._inflight or acked_boot != self.boot or committed == NO_COMMIT
                or acked_seq not in self._if_seqs):
            self.acks_ignored += 1  # an ACK for HELLO/STATE/RESULT, or a late duplicate
            return
        self.journal.release(committed if committed < self._if_last_rseq else self._if_last_rseq)
        self._inflight = False

    def _command(self, fr, p):
        t = fr.type
        e = self.escort
        if t == codec.ACTIVATE:
            (escort_id, seal_number, decl, vehicle, dcode, dname, pstart, pend, corridor,
             route) = p
            was = e.state
            r = e.activate(self.lock.intact(), escort_id, seal_number, decl, vehicle, dcode, dname,
                           pstart, pend, corridor, route)
            if r == E.OK and was != E.ACTIVE:
                self._begin_evidence(escort_id)
            self._result(fr.boot, fr.seq, t, r)
            if r == E.OK and was != E.ACTIVE:
                self.overflow_flag = False
                self._send_state()
                # Clause 10: the gateway reports ACTIVATED on the first fix with the lock intact.
                if self._have_fix and not self.gnss_lost:
                    self._record_position()
                else:
                    self._first_position = True
                self._last_report = self._now
        elif t == codec.DEACTIVATE:
            escort_id, seal_number, decl, vehicle = p
            was = e.state
            r = e.deactivate(escort_id, seal_number, decl, vehicle, self.journal.pending)
            if r == E.OK and was == E.ACTIVE:
                self._freeze_evidence()
            self._result(fr.boot, fr.seq, t, r)
            if r == E.OK:
                self._send_state()
        elif t == codec.CONFIG:
            raw = struct.pack(">HHHHBHBHH", *p)
            if not 1 <= p[4] <= J.MAX_BATCH or min(p[0], p[1], p[2], p[3], p[8]) == 0:
                self._result(fr.boot, fr.seq, t, E.BAD_PARAMS)
                return
            self._cfg_store.save(raw)
            self._apply_config_bytes(raw)
            # Re-arm running timers with the new values (the report interval and the GNSS loss
            # limit are looked up at every poll already).
            self._next_heartbeat = self._now + self.cfg.heartbeat_s * 1000
            if self._inflight:
                self._retry_ms = self.cfg.ack_timeout_s * 1000
                if self._if_deadline > self._now + self._retry_ms:
                    self._if_deadline = self._now + self._retry_ms
            self._result(fr.boot, fr.seq, t, E.OK)
        elif t == codec.TIME:
            self.hal.set_unix(p[0])
            self._gw_t = p[0]  # the gateway's explicit time, back or forward
            self._gw_ms = self._now
            self._result(fr.boot, fr.seq, t, E.OK)
        else:
            self._result(fr.boot, fr.seq, t, E.UNSUPPORTED)

    # ---- evidence ---------------------------------------------------------------------------

    def _begin_evidence(self, escort_id):
        # ACTIVATE: a new escort's evidence from the journal's top (its records are above it).
        # What is going on at this moment counts for it: a GNSS loss, an anomaly episode.
        ev = self.evidence
        top = self.journal.next_rseq - 1
        ev.reset(escort_id, top)
        self._act_ms = self._now
        now = self.hal.unix()
        if self.gnss_lost:
            ev.gnss_losses = 1
            ev.loss_start = now
            self._loss_ms = self._now
        if self.gcheck.kinds_now:
            ev.anomalies = 1
            ev.anomaly_first = now
            ev.anomaly_kinds = ev.anom_kinds_now = self.gcheck.kinds_now
        ev.save()
        self.journal.set_thin_floor(top)
        self.tamper.begin()

    def _freeze_evidence(self):
        # DEACTIVATE (accepted only with the journal drained): the block is closed with the
        # journal's top and the escort's thinned count, and sent as it is until the next ACTIVATE.
        ev = self.evidence
        self._stretch(self._now)
        ev.closed = True
        ev.hw_rseq = self.journal.next_rseq - 1
        ev.thinned = self.journal.esc_thinned
        ev.save()
        self.journal.set_thin_floor(J.NO_FLOOR)

    def _evidence(self):
        # The Evidence block for a STATE or COMMAND_RESULT, packed into a new 55-byte buffer. A
        # value that grew since the last save (largest distance, longest stretch without a fix)
        # is written first: the seal never reports what its flash does not hold.
        ev = self.evidence
        if self._active():
            self._stretch(self._now)
        if ev.dirty():
            ev.save()
        j = self.journal
        buf = bytearray(codec.EVIDENCE_SIZE)  # a frame's worth of garbage, not a buffer kept
        ev.pack_into(buf, j.next_rseq - 1, j.esc_thinned)
        return buf

    def _apply_config_bytes(self, raw):
        vals = struct.unpack(">HHHHBHBHH", raw)
        for i in range(len(CONFIG_FIELDS)):
            setattr(self.cfg, CONFIG_FIELDS[i], vals[i])

    def _count_error(self, code):
        self.rx_errors[code] = self.rx_errors.get(code, 0) + 1

    def _reject(self, reason):
        self.rx_rejected += 1
        now_s = self._now // 1000
        if now_s - self._rej_hour_start >= 3600:
            self._rej_hour_start = now_s
            self._rej_in_hour = 0
        if self._rej_in_hour < _MAX_REJECTED_PER_HOUR:
            self._rej_in_hour += 1
            self._event(EV_COMMAND_REJECTED, reason)

    # ---- timers -----------------------------------------------------------------------------

    def next_deadline_ms(self):
        d = self.tamper.next_ms
        if self.tamper.irq_pending() or self.tamper.pend_due():
            d = self._now
        for t in (self._last_report + self._interval() * 1000, self._next_heartbeat,
                  self._next_battery):
            if t < d:
                d = t
        if not self.gnss_lost:
            t = self._last_fix_ms + self.cfg.gnss_lost_s * 1000
            if t < d:
                d = t
        if self.link_up:
            if self._inflight:
                if self._if_deadline < d:
                    d = self._if_deadline
            elif self.journal.pending:
                d = self._now
        return d
