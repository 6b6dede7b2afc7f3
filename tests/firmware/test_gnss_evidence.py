"""GNSS through SealCore: which fixes the seal believes, anomaly episodes (time going backwards,
impossible speed, impossible dates), losses and their evidence, the seal's own deviations in the
evidence, and how often all of it writes flash."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenario_escort import LAT0, LON0, _sentence, nmea_fix, route_line  # noqa: E402
from test_seal import Rig  # noqa: E402

from navseal_fw import codec as C  # noqa: E402
from navseal_fw.gnss_check import CLEAR_FIXES  # noqa: E402
from navseal_fw.seal import SealCore  # noqa: E402

BACK = C.ANOMALY_TIME_BACKWARDS << 24
SPEED = C.ANOMALY_IMPOSSIBLE_SPEED << 24
DATE = C.ANOMALY_INVALID_DATE << 24


def active(**cfg):
    r = Rig(**cfg)
    r.run(3)
    assert r.activate() == C.RES_OK
    r.run(2)
    return r


def feed(r, data):
    r.core.feed_gnss(data, r.hal.now_ms)
    r.core.poll(r.hal.now_ms)
    r.flush()


def anomalies(r):
    return r.gw.event_values(C.EV_GNSS_ANOMALY)


def test_an_impossible_jump_is_one_anomaly_and_taken_only_once_a_second_fix_agrees():
    r = active()
    before = r.core.lat
    r.run(1, dlat=10000000)  # 1 degree north in one second
    assert r.core.lat == before
    (v,) = anomalies(r)
    assert v >> 24 == C.ANOMALY_IMPOSSIBLE_SPEED and 110000 <= v & 0xFFFFFF <= 112000
    assert r.core.alarms() & C.AL_GNSS_ANOMALY
    r.run(1)  # the receiver insists: it was right, the seal follows
    assert r.core.lat == LAT0 + 10000000
    r.run(3, dlat=-10000000)  # and back: one episode, one event per kind
    assert len(anomalies(r)) == 1
    r.run(CLEAR_FIXES + 2)
    assert not r.core.alarms() & C.AL_GNSS_ANOMALY  # the episode ended after a good run
    ev = r.core.evidence
    assert (ev.anomalies, ev.anomaly_kinds) == (1, C.EVK_IMPOSSIBLE_SPEED)
    assert ev.anomaly_first == r.gw.event_times(C.EV_GNSS_ANOMALY)[0]


def test_time_going_backwards_is_refused_as_a_fix_and_as_the_clock():
    r = active()
    t = r.hal.unix()
    lat = r.core.lat
    for k in range(5):  # a replay of an hour ago, second after second
        r.hal.advance(1000)
        feed(r, nmea_fix(t - 3600 + k, lat + 5000, LON0, 0, 0))
    assert r.core.lat == lat and r.core.fix_time < t + 1
    assert r.hal.unix() >= t + 5  # the clock did not go back
    assert anomalies(r) == [BACK | 3601]  # once in the episode; behind the gateway's time now
    r.run(CLEAR_FIXES + 1)
    r.hal.advance(1000)
    feed(r, nmea_fix(r.hal.unix() - 30, lat, LON0, 0, 0))  # a new episode: raised again
    assert anomalies(r)[1] >> 24 == C.ANOMALY_TIME_BACKWARDS and r.core.evidence.anomalies == 2
    # a repeated epoch (same time as the last fix) is ignored, no anomaly
    r.run(CLEAR_FIXES + 1)
    feed(r, nmea_fix(r.core.fix_time, lat, LON0, 0, 0))
    assert len(anomalies(r)) == 2


def test_after_a_reboot_a_fix_far_behind_the_seals_clock_is_time_going_backwards():
    r = active()
    r.core = SealCore(r.cfg, r.hal, r._send)
    r.core.start(r.hal.now_ms)
    r.flush()
    r.hal.advance(1000)
    feed(r, nmea_fix(r.hal.unix() - 86400, LAT0, LON0, 0, 0))
    assert anomalies(r) == [BACK | 86400] and not r.core._have_fix
    r.hal.advance(1000)
    feed(r, nmea_fix(r.hal.unix() - 100, LAT0, LON0, 0, 0))  # within the slack: a clock lag
    assert r.core._have_fix


def test_an_impossible_date_in_a_fix_is_an_anomaly():
    r = active()
    body = "GPRMC,120000.00,A,4314.28000,N,07656.70000,E,0.00,0.0,310226,,,A"
    feed(r, _sentence(body).encode())
    assert anomalies(r) == [DATE]
    feed(r, _sentence(body.replace("120000", "120001")).encode())  # same episode: once
    assert anomalies(r) == [DATE] and r.core.evidence.anomaly_kinds == C.EVK_INVALID_DATE


def test_simulator_and_estimated_fixes_do_not_count_so_the_gnss_is_lost():
    r = active(gnss_lost_s=30)
    for _ in range(40):
        r.run(1, gnss=False)
        t = r.hal.unix()
        feed(r, nmea_fix(t, LAT0, LON0, 0, 0).replace(b",A*", b",S*")[:-5] + b"\r\n")
    assert r.gw.events(C.EV_GNSS_LOST) and r.core.gnss_lost


def test_loss_and_regain_in_the_evidence_an_ongoing_one_included():
    r = active(gnss_lost_s=30)
    t_last = r.hal.unix()
    r.run(100, gnss=False)
    assert r.gw.event_values(C.EV_GNSS_LOST) == [30]
    ev = r.core.evidence
    assert ev.gnss_losses == 1 and ev.loss_start in (t_last, t_last + 1)
    r.core._send_state()  # an ongoing loss counts as it is now
    r.flush()
    sent = r.gw.states[-1][10]
    assert 99 <= sent[12] <= 101 and sent[13] in (t_last, t_last + 1)  # gnss_longest_s / _at
    assert sent[1] & C.EVF_GNSS_LOST_NOW
    r.run(1)
    (lost_s,) = r.gw.event_values(C.EV_GNSS_REGAINED)
    assert 100 <= lost_s <= 102 and not ev.loss_start
    r.run(10, gnss=False)  # a short gap: no loss, and not the longest
    assert ev.gnss_losses == 1 and 100 <= ev.gnss_longest_s <= 102


def test_a_loss_goes_on_across_a_reboot_and_its_duration_counts_from_before():
    r = active(gnss_lost_s=30)
    r.run(60, gnss=False)
    r.core = SealCore(r.cfg, r.hal, r._send)
    r.core.start(r.hal.now_ms)
    r.flush()
    assert r.core.gnss_lost and r.core.alarms() & C.AL_GNSS_LOST
    r.run(20, gnss=False)
    r.run(1)
    (lost_s,) = r.gw.event_values(C.EV_GNSS_REGAINED)
    assert 80 <= lost_s <= 83
    assert r.core.evidence.gnss_losses == 1 and len(r.gw.events(C.EV_GNSS_LOST)) == 1


def test_deviations_in_the_evidence_and_no_flash_write_per_fix():
    r = Rig(heartbeat_s=300, report_moving_s=3600, report_stopped_s=3600)
    r.run(3)
    assert r.activate(route=route_line(3, 1000), corridor=300) == C.RES_OK
    r.run(5)
    ev = r.core.evidence
    gen0 = ev.generation
    r.run(100, dlon=3000, speed=900)  # due east, away from the north-east line: deviates
    assert ev.deviations == 1 and ev.deviating and ev.deviation_first
    grows = ev.deviation_max_m
    assert grows > 1500
    # Written when it deviated, then not once per fix although the distance grew every second:
    # only with a STATE (heartbeat 300 s: none yet).
    assert ev.generation - gen0 == 1
    assert ev.dirty()
    r.core._send_state()
    r.flush()
    assert not ev.dirty() and ev.generation - gen0 == 2
    assert r.gw.states[-1][10][10] == grows  # deviation_max_m as sent = as stored
    r2 = SealCore(r.cfg, r.hal, lambda f: True)
    r2.start(r.hal.now_ms)
    assert r2.evidence.deviation_max_m == grows and r2.escort.corridor.deviated


FORWARD = C.ANOMALY_TIME_FORWARD << 24


def _boot_without_gateway(r):
    """A reboot after which no downlink reaches the seal: its clock is only what GNSS (or a
    past boot) set, and there is no gateway time to hold fixes against. -> the events raised."""
    r.up = False
    r.core = SealCore(r.cfg, r.hal, r._send)
    raised = []
    event = r.core._event

    def spy(code, value):
        raised.append((code, value))
        event(code, value)

    r.core._event = spy
    r.core.start(r.hal.now_ms)
    return raised


def _fix_at(r, t, lat=LAT0):
    r.hal.advance(1000)
    feed(r, nmea_fix(t, lat, LON0, 0, 0))


def _anomalies_of(raised):
    return [v for code, v in raised if code == C.EV_GNSS_ANOMALY]


def test_a_forward_jump_is_refused_and_never_locks_the_seal_out_of_true_gnss():
    r = Rig()
    r.run(3)
    raised = _boot_without_gateway(r)
    truth = r.hal.unix()
    for _ in range(3):
        truth += 1
        _fix_at(r, truth)
    assert r.core.fix_time == truth
    # A spoofer pushes the time a day ahead, second after second.
    truth += 1
    _fix_at(r, truth + 86400)
    assert r.core.fix_time == truth - 1  # refused
    assert _anomalies_of(raised) == [FORWARD | 86400]
    truth += 1
    _fix_at(r, truth + 86400)
    # With nothing but its own GNSS history to go by, the seal takes a second fix that agrees
    # (as with an impossible speed): it cannot tell the spoofer from a receiver that was right.
    assert r.core.fix_time == truth + 86400 and r.hal.unix() == truth + 86400
    # The spoofer stops: the first true fix is "time going backwards", the second agrees with it
    # and is taken, and the clock comes back with it. One event per kind in the episode.
    truth += 1
    _fix_at(r, truth)
    truth += 1
    _fix_at(r, truth)
    assert r.core.fix_time == truth and r.hal.unix() == truth
    (fwd, back) = _anomalies_of(raised)
    assert fwd == FORWARD | 86400 and back >> 24 == C.ANOMALY_TIME_BACKWARDS
    for _ in range(5):
        truth += 1
        _fix_at(r, truth)
        assert r.core.fix_time == truth
    assert len(_anomalies_of(raised)) == 2


def test_a_seal_whose_clock_is_ahead_of_true_gnss_recovers_after_a_reboot_with_one_anomaly():
    r = Rig()
    r.run(3)
    truth = r.hal.unix()
    r.hal.set_unix(truth + 86400)  # the clock a day ahead (a spoofer set it, or a past boot's RTC)
    raised = _boot_without_gateway(r)
    truth += 1
    _fix_at(r, truth)
    assert not r.core._have_fix  # far behind the seal's clock: refused once
    truth += 1
    _fix_at(r, truth)
    assert r.core._have_fix and r.core.fix_time == truth and r.hal.unix() == truth
    assert [v >> 24 for v in _anomalies_of(raised)] == [C.ANOMALY_TIME_BACKWARDS]


def test_with_the_gateways_time_a_forward_jump_stays_refused_and_a_long_one_is_gnss_lost():
    r = active(gnss_lost_s=30)
    assert r.core.gateway_time() == r.hal.unix()  # from the ACKs' time
    lat = r.core.lat
    taken = r.core.fix_time
    for _ in range(40):  # a spoofer an hour ahead, alone on the air for 40 s
        r.hal.advance(1000)
        feed(r, nmea_fix(r.hal.unix() + 3600, lat + 5000, LON0, 0, 0))
    assert r.core.fix_time == taken and r.core.lat == lat  # none taken, however many agree
    assert anomalies(r) == [FORWARD | 3600]  # once in the episode
    assert r.hal.unix() < taken + 60  # nor the clock
    assert r.gw.event_values(C.EV_GNSS_LOST)  # refusing for long is a loss, as without a fix
    assert r.core.evidence.anomaly_kinds == C.EVK_TIME_FORWARD
    r.run(2)  # true GNSS: taken at once
    assert r.core.fix_time == r.hal.unix() and r.gw.event_values(C.EV_GNSS_REGAINED)


def test_a_clock_ahead_at_boot_with_the_gateways_time_takes_the_first_fix_and_raises_one_anomaly():
    r = Rig()
    r.run(3)
    truth = r.hal.unix()
    r.hal.set_unix(truth + 3600)  # the RTC an hour ahead before the boot
    ms0 = r.hal.now_ms
    t0 = truth

    def send(frame):  # the gateway dates its downlinks by its own (true) clock
        r.gw.receive(frame, t0 + (r.hal.now_ms - ms0) // 1000)
        return True

    r.core = SealCore(r.cfg, r.hal, send)
    r.core.start(r.hal.now_ms)
    r.flush()  # HELLO's ACK: the gateway's time
    truth += 1
    _fix_at(r, truth)
    assert r.core._have_fix and r.core.fix_time == truth and r.hal.unix() == truth
    assert [v >> 24 for v in anomalies(r)] == [C.ANOMALY_TIME_BACKWARDS]
    assert 3599 <= anomalies(r)[0] & 0xFFFFFF <= 3601
