"""SealCore behaviours one at a time (the full story is in test_seal_scenario.py)."""

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenario_escort import LAT0, LON0, SEAL, T0, Gateway, nmea_fix, route_line  # noqa: E402
from scenario_escort import test_key as key_for  # noqa: E402

from navseal_fw import codec as C  # noqa: E402
from navseal_fw.hal import MemHal  # noqa: E402
from navseal_fw.seal import Config, SealCore  # noqa: E402


class Rig:
    def __init__(self, hal=None, **cfg):
        base = {"seal_id": SEAL, "key": key_for(SEAL), "report_moving_s": 10, "report_stopped_s": 60,
                "report_inactive_s": 600, "heartbeat_s": 300, "gnss_lost_s": 30, "ack_timeout_s": 10,
                "journal_capacity": 512, "journal_seg_records": 32}
        base.update(cfg)
        self.cfg = Config(base)
        self.hal = hal or MemHal(unix0=T0)
        self.gw = Gateway(SEAL, self.cfg.key_bytes)
        self.up = True
        self.sent = []
        self.lat, self.lon = LAT0, LON0
        self.core = SealCore(self.cfg, self.hal, self._send)
        self.core.start(self.hal.now_ms)
        self.flush()

    def _send(self, frame):
        self.sent.append(frame)
        if self.up:
            self.gw.receive(frame, self.hal.unix())
        return self.up

    def flush(self):
        while self.gw.out and self.up:
            self.core.on_downlink(self.gw.out.pop(0), self.hal.now_ms)

    def fix(self, dlat=0, dlon=0, speed=0):
        self.lat += dlat
        self.lon += dlon
        self.core.feed_gnss(nmea_fix(self.hal.unix(), self.lat, self.lon, speed, 0), self.hal.now_ms)

    def run(self, seconds, dlat=0, dlon=0, speed=0, gnss=True):
        # One GNSS epoch a second; in between, poll at every deadline the core asks for.
        for _ in range(seconds):
            end = self.hal.now_ms + 1000
            while True:
                d = self.core.next_deadline_ms()
                if d >= end:
                    break
                self.hal.now_ms = max(d, self.hal.now_ms + 1)
                self.core.poll(self.hal.now_ms)
                self.flush()
            self.hal.now_ms = end
            if gnss:
                self.fix(dlat, dlon, speed)
            self.core.poll(self.hal.now_ms)
            self.flush()

    def activate(self, **kw):
        self.core.on_downlink(self.gw.activate(self.hal.unix(), **kw), self.hal.now_ms)
        self.flush()
        return self.gw.results[-1][3]


def test_boot_sends_hello_reboot_event_and_state():
    r = Rig()
    assert [C.type_name(f[3]) for f in r.sent] == ["HELLO", "STATE", "EVENT"]
    assert r.gw.hellos[0][0] == 1 and r.gw.events(C.EV_REBOOT) == [1]
    r2 = SealCore(r.cfg, r.hal, lambda f: True)
    r2.start(r.hal.now_ms)
    assert r2.boot == 2 and r2.journal.next_rseq == 3


def test_boot_counter_is_not_masked_to_16_bits():
    """Protocol version 2: boot is u32, so boot 65536 follows 65535 (no wrap, no replay refusals)."""
    from navseal_fw.persist import Counter

    hal = MemHal(unix0=T0)
    Counter(hal, "boot").save(0xFFFF)
    r = Rig(hal=hal)
    assert r.core.boot == 0x10000 and r.gw.hellos[-1][0] == 0x10000
    assert Counter(hal, "boot").load() == 0x10000


def test_state_and_command_result_carry_the_evidence_block():
    """The evidence names the escort (after DEACTIVATE the one just ended) and the journal's top."""
    r = Rig()
    ev = r.gw.states[-1][10]  # the boot STATE, after the REBOOT event (rseq 1) was journaled
    assert len(ev) == 19 and ev[0] == 0 and ev[3] == 1 == r.core.journal.next_rseq - 1
    assert ev[1:3] + ev[4:] == (0,) * 17  # nothing else is known yet
    r.run(3)
    assert r.activate() == C.RES_OK
    assert r.gw.results[-1][6][0] == 77 and r.gw.states[-1][10][0] == 77
    r.run(30, dlat=150, speed=200)
    r.core.on_downlink(r.gw.deactivate(r.hal.unix()), r.hal.now_ms)
    r.flush()
    result = r.gw.results[-1]
    assert result[3] == C.RES_OK and result[4] == C.INACTIVE and result[5] == 0
    assert result[6][0] == 77 and result[6][3] == r.core.journal.next_rseq - 1 > ev[3]
    assert r.gw.states[-1][0] == C.INACTIVE and r.gw.states[-1][10][0] == 77


def test_reporting_intervals_moving_stopped_inactive():
    r = Rig()
    r.run(5)
    base = r.gw.positions
    r.run(600)  # inactive: one an hour... here every 600 s
    assert r.gw.positions - base == 1
    assert r.activate() == C.RES_OK
    base = r.gw.positions
    r.run(120, dlat=150, dlon=150, speed=200)  # moving at ~20 km/h: every 10 s
    assert 11 <= r.gw.positions - base <= 13
    base = r.gw.positions
    r.run(600)  # stopped: every 60 s
    assert 9 <= r.gw.positions - base <= 11


def test_gnss_lost_and_regained():
    r = Rig()
    r.run(5)
    r.run(40, gnss=False)
    assert r.gw.events(C.EV_GNSS_LOST)
    assert r.core.alarms() & C.AL_GNSS_LOST
    r.run(2)
    assert r.gw.events(C.EV_GNSS_REGAINED) and not r.core.alarms() & C.AL_GNSS_LOST


def test_low_battery_event_once_with_hysteresis():
    r = Rig()
    r.hal.battery = 14
    r.run(61)
    r.run(61)
    assert len(r.gw.events(C.EV_LOW_BATTERY)) == 1 and r.gw.event_values(C.EV_LOW_BATTERY) == [14]
    assert r.core.alarms() & C.AL_LOW_BATTERY
    r.hal.battery = 17
    r.run(61)
    assert r.core.alarms() & C.AL_LOW_BATTERY  # not yet: 15 + 5
    r.hal.battery = 20
    r.run(61)
    assert not r.core.alarms() & C.AL_LOW_BATTERY


def test_lock_glitch_is_no_alarm_but_a_real_break_is_and_latches():
    r = Rig()
    r.run(2)
    r.activate()
    r.hal.cable_closed = False
    r.hal.advance(20)
    r.core.poll(r.hal.now_ms)
    r.hal.cable_closed = True
    r.run(2)
    assert not r.gw.events(C.EV_CABLE_CUT)
    r.hal.housing_closed = False
    r.run(1)
    assert r.gw.events(C.EV_HOUSING_OPENED) and r.core.alarms() & C.AL_HOUSING_OPENED
    r.hal.housing_closed = True
    r.run(1)
    assert r.gw.events(C.EV_LOCK_RESTORED)
    assert r.core.alarms() & C.AL_HOUSING_OPENED  # latched


def test_stop_and_wait_retransmit_backoff_and_release_only_by_ack():
    r = Rig()
    r.gw.hold_acks = True
    n0 = len(r.sent)
    acked0 = r.core.journal.acked
    r.run(3)
    inflight = [f for f in r.sent[n0:] if f[3] in (C.RECORDS, C.EVENT)]
    assert len(inflight) == 1  # one journal frame in flight, nothing more
    times = []
    for _ in range(200):
        n = len(r.sent)
        r.run(1)
        if any(f[3] in (C.RECORDS, C.EVENT) for f in r.sent[n:]):
            times.append(r.hal.now_ms // 1000)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[:3] == [20, 40, 80]  # 10 s timeout, doubling
    assert all(f[4] & C.FLAG_RETRANSMIT for f in r.sent[-1:] if f[3] in (C.RECORDS, C.EVENT))
    assert r.core.journal.acked == acked0 and r.core.journal.pending >= 1
    r.gw.hold_acks = False
    r.hal.advance(200000)
    for _ in range(10):
        r.core.poll(r.hal.now_ms)
        r.flush()
    assert r.core.journal.pending == 0 and r.core.journal.acked == r.core.journal.next_rseq - 1


def test_ack_for_another_frame_releases_nothing():
    r = Rig()
    r.gw.hold_acks = True
    r.hal.battery = 5
    r.run(61)  # a LOW_BATTERY event is in flight, not acknowledged
    acked, ignored = r.core.journal.acked, r.core.acks_ignored
    ack = r.gw._down(C.ACK, (r.core.boot, 999, 50), r.hal.unix())
    r.core.on_downlink(ack, r.hal.now_ms)
    assert r.core.journal.acked == acked and r.core.acks_ignored == ignored + 1


def test_forged_reflected_and_garbage_frames():
    r = Rig()
    own = C.Codec(SEAL, key_for(SEAL))
    r.core.on_downlink(own.encode(C.HELLO, 1, 1, T0, (0, 1, 0, 0, 0, 0)), r.hal.now_ms)
    forger = C.Codec(SEAL, b"\x02" * 32)
    for i in range(30):
        r.core.on_downlink(forger.encode(C.TIME, 0, 100 + i, T0, (T0 + 5,)), r.hal.now_ms)
    assert r.core.rx_errors["bad_mac"] == 30
    r.flush()
    r.run(1)
    # Journaled as evidence, but rate-limited so garbage cannot fill the journal.
    assert r.core.rx_rejected == 31
    r.core.on_downlink(b"\x00" * 40, r.hal.now_ms)
    r.core.on_downlink(b"NS", r.hal.now_ms)
    other = C.Codec(SEAL + 1, key_for(SEAL + 1))
    r.core.on_downlink(other.encode(C.TIME, 0, 1, T0, (T0,)), r.hal.now_ms)
    r.flush()
    r.run(1)
    reasons = r.gw.event_values(C.EV_COMMAND_REJECTED)
    assert reasons.count(1) == 19 and reasons.count(3) == 1  # 20 an hour in all
    assert r.core.rx_errors["bad_magic"] == 1 and r.core.rx_errors["truncated"] == 1
    assert r.core.rx_not_mine == 0  # another seal's frame fails our MAC first
    assert r.core.rx_errors["bad_mac"] == 31


def test_config_and_time_commands():
    r = Rig()
    cmd = r.gw._down(C.CONFIG, (5, 50, 500, 100, 20, 60, 20, 200, 7), r.hal.unix())
    r.core.on_downlink(cmd, r.hal.now_ms)
    assert r.gw.results[-1][3] == C.RES_OK and r.core.cfg.report_moving_s == 5
    bad = r.gw._down(C.CONFIG, (5, 50, 500, 100, 0, 60, 20, 200, 7), r.hal.unix())
    r.core.on_downlink(bad, r.hal.now_ms)
    assert r.gw.results[-1][3] == C.RES_BAD_PARAMS
    # Persisted: a reboot keeps the CONFIG values.
    core2 = SealCore(Config({"seal_id": SEAL, "key": key_for(SEAL)}), r.hal, lambda f: True)
    core2.start(r.hal.now_ms)
    assert core2.cfg.report_moving_s == 5 and core2.cfg.low_battery_pct == 20
    r.core.on_downlink(r.gw._down(C.TIME, (T0 + 86400,), r.hal.unix()), r.hal.now_ms)
    assert r.hal.unix() == T0 + 86400


def test_route_deviation_seal_side():
    r = Rig()
    r.run(2)
    assert r.activate(route=route_line(3, 1000), corridor=300) == C.RES_OK
    r.run(60, dlon=5000, speed=1400)  # due east at ~145 km/h, away from the north-east line
    assert r.gw.events(C.EV_ROUTE_DEVIATION) and r.core.alarms() & C.AL_ROUTE_DEVIATION


def test_config_file_on_flash():
    hal = MemHal()
    f = hal.open("navseal.json", "wb")
    f.write(b'{"seal_id": 1001, "key": "%s", "heartbeat_s": 60}' % key_for(SEAL).hex().encode())
    f.close()
    cfg = Config.load(hal)
    assert cfg.seal_id == 1001 and cfg.key_bytes == key_for(SEAL) and cfg.heartbeat_s == 60
    assert cfg.file_crc != 0
    f = hal.open("navseal.json", "wb")
    f.write(b'{"seal_id": 1001}')
    f.close()
    with pytest.raises(ValueError):
        Config.load(hal)


def test_many_cores_share_nothing():
    hal_a, hal_b = MemHal(unix0=T0), MemHal(unix0=T0)
    a = Rig(hal=hal_a)
    b = Rig(hal=hal_b)
    a.run(3)
    a.activate()
    assert a.core.escort.state == 1 and b.core.escort.state == 0
    assert a.core.journal is not b.core.journal and a.core.codec is not b.core.codec


def test_a_late_ack_of_a_state_frame_does_not_end_the_wait_for_the_batch():
    r = Rig()
    r.gw.hold_acks = True
    r.run(2)  # a position in flight, not acknowledged
    assert r.core._inflight
    r.gw.hold_acks = False
    state_frames = [f for f in r.sent if f[3] == C.STATE]
    st = C.Codec(SEAL, key_for(SEAL)).decode(state_frames[-1])
    # The gateway ACKs the STATE (no records): the batch must still be waited for.
    r.core.on_downlink(r.gw._down(C.ACK, (st.boot, st.seq, C.NO_RSEQ), r.hal.unix()), r.hal.now_ms)
    assert r.core._inflight
    n = len(r.sent)
    r.run(30)
    retx = [f for f in r.sent[n:] if f[3] in (C.RECORDS, C.EVENT)]
    assert retx and retx[0][4] & C.FLAG_RETRANSMIT  # the same batch again, flagged
    assert r.core.journal.pending == 0


def test_config_rearms_the_heartbeat():
    r = Rig(heartbeat_s=900)
    r.run(2)
    cmd = r.gw._down(C.CONFIG, (10, 60, 600, 5, 60, 300, 15, 250, 30), r.hal.unix())
    r.core.on_downlink(cmd, r.hal.now_ms)
    r.flush()
    n = len(r.gw.states)
    r.run(12)
    assert len(r.gw.states) - n >= 2  # every 5 s now, not after the old 900 s ran out


def test_lock_changed_samples_at_once():
    r = Rig()
    r.run(2)
    r.activate()
    r.run(1)
    t0 = r.hal.now_ms
    r.hal.cable_closed = False
    r.core.lock_changed(t0)
    assert r.core.next_deadline_ms() <= t0
    while not r.gw.events(C.EV_CABLE_CUT) and r.hal.now_ms < t0 + 1000:
        r.hal.now_ms = max(r.core.next_deadline_ms(), r.hal.now_ms + 1)
        r.core.poll(r.hal.now_ms)
        r.flush()
    assert r.gw.events(C.EV_CABLE_CUT)
    assert r.hal.now_ms - t0 <= 100  # debounce (50 ms) plus sampling, not a second


def test_after_a_gap_the_journal_goes_before_the_state():
    r = Rig()
    r.run(2)
    r.activate()
    r.up = False
    r.core.on_link(False, r.hal.now_ms)
    r.hal.cable_closed = False
    r.run(120)
    assert r.core.journal.pending > 0
    n = len(r.sent)
    r.up = True
    r.core.on_link(True, r.hal.now_ms)
    r.flush()
    r.run(5)
    kinds = [f[3] for f in r.sent[n:]]
    assert C.STATE in kinds
    first_state = kinds.index(C.STATE)
    assert kinds[0] in (C.RECORDS, C.EVENT)
    # The CABLE_CUT event (with the time of the cut) reached the gateway before any STATE.
    assert r.core.journal.pending == 0 or first_state > 0
    codec = C.Codec(SEAL, key_for(SEAL))
    ev_positions = [i for i, f in enumerate(r.sent[n:])
                    if f[3] == C.EVENT and C.parse_payload(C.EVENT, codec.decode(f).payload)[2] == C.EV_CABLE_CUT]
    assert ev_positions and ev_positions[0] < first_state


def test_a_failing_link_write_is_counted_not_fatal():
    hal = MemHal(unix0=T0)
    calls = []

    def broken(frame):
        calls.append(frame)
        raise OSError(5)

    core = SealCore(Config({"seal_id": SEAL, "key": key_for(SEAL), "journal_capacity": 256,
                            "journal_seg_records": 16}), hal, broken)
    core.start(0)
    assert core.tx_failed == len(calls) >= 3 and isinstance(core.last_tx_error, OSError)
    assert core.journal.pending == 1  # the REBOOT event waits for a working link


def test_a_backlog_that_never_drains_does_not_silence_the_heartbeat():
    r = Rig(heartbeat_s=60)
    r.run(2)
    r.activate()
    r.up = False
    r.core.on_link(False, r.hal.now_ms)
    r.run(130)
    assert r.core.journal.pending > 0
    r.gw.hold_acks = True  # the gateway takes frames but never commits them
    n = len(r.gw.states)
    r.up = True
    r.core.on_link(True, r.hal.now_ms)
    r.run(50)
    assert len(r.gw.states) == n  # waiting for the backlog...
    r.run(80)
    assert len(r.gw.states) > n  # ...but not for ever
