"""Opening episodes through SealCore: one event per episode and input, dated by the edge, short
openings caught by the pin-interrupt latch, nothing lost or doubled across reboots, power cuts
and exceptions; DEACTIVATE on a drained journal; reboots in the evidence."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scenario_escort import T0  # noqa: E402
from test_seal import Rig  # noqa: E402

from navseal_fw import codec as C  # noqa: E402
from navseal_fw import escort as E  # noqa: E402
from navseal_fw.evidence import CABLE, HOUSING  # noqa: E402
from navseal_fw.hal import PowerCut  # noqa: E402
from navseal_fw.seal import SealCore  # noqa: E402

CLOSED = 0xC0  # lock bits: cable intact, housing closed


def step(r, ms, responsive=True):
    """Let `ms` pass: polling at every deadline the core asks for (a responsive loop), or not at
    all until the end (a loop blocked in link I/O)."""
    end = r.hal.now_ms + ms
    if responsive:
        while True:
            d = r.core.next_deadline_ms()
            if d >= end:
                break
            r.hal.now_ms = max(d, r.hal.now_ms + 1)
            r.core.poll(r.hal.now_ms)
            r.flush()
    r.hal.now_ms = end
    r.core.poll(end)
    r.flush()


def armed(**cfg):
    r = Rig(**cfg)
    r.run(2)
    assert r.activate() == C.RES_OK
    step(r, 1500)
    return r


def lock(r, cable=None, housing=None):
    r.hal.set_lock(cable, housing, r.hal.now_ms)


def reboot(r, cause=C.RESET_SOFT):
    r.hal.cause = cause
    r.core = SealCore(r.cfg, r.hal, r._send)
    r.core.start(r.hal.now_ms)
    r.flush()


def openings(r):
    return [(code, v) for _, code, v, _ in r.gw.evs if code in (C.EV_CABLE_CUT, C.EV_HOUSING_OPENED)]


def test_open_close_open_is_two_episodes():
    r = armed()
    for n in (1, 2):
        lock(r, cable=False)
        step(r, 300)
        lock(r, cable=True)
        step(r, 300)
        assert r.gw.event_values(C.EV_CABLE_CUT)[-1] == n
        assert r.gw.event_values(C.EV_LOCK_RESTORED)[-1] == n << 8 | CLOSED
    ev = r.core.evidence
    assert (ev.openings, ev.opening_inputs, ev.opening_now) == (2, CABLE, False)
    assert r.core.alarms() & C.AL_CABLE_CUT and not r.core.alarms() & C.AL_HOUSING_OPENED


def test_a_cable_that_stays_cut_while_the_housing_closes_again_is_one_episode():
    r = armed()
    lock(r, cable=False)
    step(r, 300)
    lock(r, housing=False)
    step(r, 300)
    lock(r, housing=True)
    step(r, 2000)
    assert openings(r) == [(C.EV_CABLE_CUT, 1), (C.EV_HOUSING_OPENED, 1)]
    assert not r.gw.events(C.EV_LOCK_RESTORED) and r.core.evidence.opening_now
    lock(r, housing=False)  # the housing again, same episode: its event is not repeated
    step(r, 300)
    lock(r, housing=True)
    step(r, 300)
    lock(r, cable=True)
    step(r, 300)
    assert openings(r) == [(C.EV_CABLE_CUT, 1), (C.EV_HOUSING_OPENED, 1)]
    assert r.gw.event_values(C.EV_LOCK_RESTORED) == [1 << 8 | CLOSED]
    assert r.core.evidence.opening_inputs == CABLE | HOUSING and r.core.evidence.openings == 1


def test_closing_and_reopening_within_the_debounce_time_is_the_same_episode():
    r = armed()
    lock(r, cable=False)
    step(r, 300)
    lock(r, cable=True)
    step(r, 20)
    lock(r, housing=False)  # 20 ms after the cable closed: not closed and stable in between
    step(r, 300)
    lock(r, housing=True)
    step(r, 300)
    assert openings(r) == [(C.EV_CABLE_CUT, 1), (C.EV_HOUSING_OPENED, 1)]
    assert r.gw.event_values(C.EV_LOCK_RESTORED) == [1 << 8 | CLOSED]


@pytest.mark.parametrize("responsive", [True, False])
def test_events_are_dated_by_the_edge_not_by_the_poll(responsive):
    r = armed()
    step(r, 1000 - r.hal.now_ms % 1000 + 500)  # half-way through a second
    t_cut = r.hal.now_ms
    lock(r, cable=False)
    step(r, 900, responsive)  # a blocked loop samples 900 ms late, in the next second
    step(r, 200)
    t_close = r.hal.now_ms
    lock(r, cable=True)
    step(r, 1300, responsive)
    step(r, 200)
    assert r.gw.event_times(C.EV_CABLE_CUT) == [T0 + t_cut // 1000]
    assert r.gw.event_times(C.EV_LOCK_RESTORED) == [T0 + t_close // 1000]


def test_without_the_interrupt_latch_the_first_sample_dates_the_opening():
    r = armed()
    step(r, 1000 - r.hal.now_ms % 1000 + 500)
    r.hal.cable_closed = False  # a level change no interrupt reported
    step(r, 2000)
    t = r.gw.event_times(C.EV_CABLE_CUT)[0]
    assert T0 + r.hal.now_ms // 1000 - 2 <= t <= T0 + r.hal.now_ms // 1000 - 1


@pytest.mark.parametrize("responsive", [True, False])
def test_a_50_ms_pulse_between_two_samples_is_an_episode(responsive):
    r = armed()
    step(r, 400)  # the core sampled; its next sample is up to a second away
    r.hal.pulse("cable", 50, r.hal.now_ms)
    end = r.hal.now_ms
    step(r, 3000, responsive)
    step(r, 300)
    assert openings(r) == [(C.EV_CABLE_CUT, 1)]
    assert r.gw.event_times(C.EV_CABLE_CUT) == [T0 + (end - 50) // 1000]
    assert r.gw.event_values(C.EV_LOCK_RESTORED) == [1 << 8 | CLOSED]
    assert r.gw.event_times(C.EV_LOCK_RESTORED) == [T0 + end // 1000]
    assert r.core.tamper.pulses == 1 and r.core.evidence.openings == 1


def test_a_pulse_shorter_than_the_debounce_is_a_counted_glitch():
    r = armed()
    step(r, 400)
    r.hal.pulse("housing", 20, r.hal.now_ms)
    step(r, 2000)
    assert openings(r) == [] and not r.gw.events(C.EV_LOCK_RESTORED)
    assert r.core.tamper.glitches == 1 and r.core.evidence.openings == 0


def test_two_pulses_of_both_inputs_between_samples_overlapping_or_not():
    r = armed()
    step(r, 400)
    now = r.hal.now_ms
    r.hal.pulse("cable", 100, now - 50)  # cable [now-150, now-50], housing [now-100, now]:
    r.hal.pulse("housing", 100, now)     # one episode, both inputs
    step(r, 2000, responsive=False)
    step(r, 300)
    assert openings(r) == [(C.EV_CABLE_CUT, 1), (C.EV_HOUSING_OPENED, 1)]
    assert r.gw.event_values(C.EV_LOCK_RESTORED) == [1 << 8 | CLOSED]
    now = r.hal.now_ms
    r.hal.pulse("housing", 100, now - 500)  # housing [now-600, now-500], cable [now-200, now]:
    r.hal.pulse("cable", 200, now)          # two episodes, the housing's first
    step(r, 2000, responsive=False)
    step(r, 300)
    assert openings(r)[2:] == [(C.EV_HOUSING_OPENED, 2), (C.EV_CABLE_CUT, 3)]
    assert r.gw.event_values(C.EV_LOCK_RESTORED)[1:] == [2 << 8 | CLOSED, 3 << 8 | CLOSED]


def test_openings_while_inactive_are_no_episodes():
    r = Rig()
    r.run(2)
    lock(r, cable=False)
    step(r, 300)
    lock(r, cable=True)
    r.hal.pulse("housing", 80, r.hal.now_ms + 100)
    step(r, 2000)
    assert openings(r) == [] and not r.gw.events(C.EV_LOCK_RESTORED)
    assert r.core.evidence.openings == 0 and r.core.alarms() & 3 == 0


def test_a_reboot_during_an_episode_neither_repeats_nor_loses_it():
    r = armed()
    lock(r, cable=False)
    step(r, 300)
    reboot(r)
    step(r, 2000)
    assert openings(r) == [(C.EV_CABLE_CUT, 1)]  # still open after the boot: the same episode
    lock(r, cable=True)
    step(r, 300)
    assert r.gw.event_values(C.EV_LOCK_RESTORED) == [1 << 8 | CLOSED]
    # opened again, then closed while the seal was off: the boot ends the episode
    lock(r, cable=False)
    step(r, 300)
    r.hal.cable_closed = True
    reboot(r, C.RESET_POWER_ON)
    step(r, 2000)
    assert openings(r) == [(C.EV_CABLE_CUT, 1), (C.EV_CABLE_CUT, 2)]
    assert r.gw.event_values(C.EV_LOCK_RESTORED) == [1 << 8 | CLOSED, 2 << 8 | CLOSED]
    ev = r.core.evidence
    assert (ev.openings, ev.reboots, ev.power_losses) == (2, 2, 1)


@pytest.mark.parametrize("after_append", [False, True])
@pytest.mark.parametrize("then_reboot", [False, True])
def test_an_exception_while_journaling_loses_no_episode_and_doubles_none(after_append, then_reboot):
    r = armed()
    j = r.core.journal
    real = j.append_event

    def failing(*a):
        j.append_event = real
        if after_append:
            real(*a)
        raise MemoryError("allocation failed")

    j.append_event = failing
    lock(r, cable=False)
    with pytest.raises(MemoryError):
        step(r, 300)
    if then_reboot:
        reboot(r, C.RESET_WATCHDOG)
    step(r, 500)
    assert openings(r) == [(C.EV_CABLE_CUT, 1)]
    assert r.core.evidence.openings == 1


def test_power_cut_at_every_byte_of_an_opening_gives_one_event():
    # The opening's flash writes (evidence, then the event) cut at every byte: after the
    # reboot (the cable still cut) the journal holds exactly one CABLE_CUT for episode 1.
    n = 0
    while True:
        r = armed()
        r.hal.flash.cut_after(n)
        lock(r, cable=False)
        try:
            step(r, 300)
        except PowerCut:
            r.hal.flash.power_on()
            reboot(r, C.RESET_POWER_ON)
            step(r, 1000)
            assert openings(r) == [(C.EV_CABLE_CUT, 1)], n
            assert r.core.evidence.openings == 1, n
            n += 1
            continue
        r.hal.flash.power_on()
        assert openings(r) == [(C.EV_CABLE_CUT, 1)]
        break
    assert n > 100  # the cuts really fell inside the writes


def test_deactivate_waits_for_a_drained_journal_and_freezes_the_evidence():
    r = armed()
    r.up = False
    r.core.on_link(False, r.hal.now_ms)
    lock(r, cable=False)
    step(r, 300)
    lock(r, cable=True)
    step(r, 300)
    r.run(400, dlat=150, speed=200)  # moving: a position every 10 s
    assert r.core.journal.pending > 40  # several frames: each event ends a batch
    r.core.on_downlink(r.gw.deactivate(r.hal.unix()), r.hal.now_ms)
    assert r.core.results[-1] == E.JOURNAL_PENDING and r.core.escort.state == C.ACTIVE
    # Coverage back. The gateway ACKs frame after frame; the ACK that drains the journal and
    # the DEACTIVATE arrive together, ACK first (as the gateway sends them): accepted.
    r.up = True
    r.gw.hold_acks = True
    r.core.on_link(True, r.hal.now_ms)
    codec = C.Codec(r.cfg.seal_id, r.cfg.key_bytes)
    for _ in range(20):
        f = codec.decode([x for x in r.sent if x[3] in (C.RECORDS, C.EVENT)][-1])
        p = C.parse_payload(f.type, f.payload)
        last = p[0] + p[2] - 1 if f.type == C.RECORDS else p[0]
        ack = r.gw._down(C.ACK, (f.boot, f.seq, last), r.hal.unix())
        if last == r.core.journal.next_rseq - 1:
            r.core.on_downlink(ack, r.hal.now_ms)
            r.core.on_downlink(r.gw.deactivate(r.hal.unix()), r.hal.now_ms)
            break
        r.core.on_downlink(ack, r.hal.now_ms)
        assert r.core.results[-1] == E.JOURNAL_PENDING
    assert r.core.results[-1] == C.RES_OK and r.core.escort.state == C.INACTIVE
    ev = r.core.evidence
    assert ev.closed and ev.hw_rseq == r.core.journal.acked == r.core.journal.next_rseq - 1
    assert ev.openings == 1
    # Frozen: an opening after deactivation changes nothing; the alarm stays for the ended escort.
    lock(r, cable=False)
    step(r, 300)
    assert ev.openings == 1 and r.core.alarms() & C.AL_CABLE_CUT
    r2 = SealCore(r.cfg, r.hal, lambda f: True)
    r2.start(r.hal.now_ms)
    assert r2.evidence.closed and r2.evidence.hw_rseq == ev.hw_rseq  # and it stays so


def test_reboots_and_power_losses_during_the_escort():
    r = Rig()
    reboot(r, C.RESET_POWER_ON)  # inactive: not counted
    r.run(2)
    r.activate()
    for cause in (C.RESET_SOFT, C.RESET_POWER_ON, C.RESET_BROWNOUT, C.RESET_WATCHDOG):
        reboot(r, cause)
    ev = r.core.evidence
    assert (ev.reboots, ev.power_losses) == (4, 2)
    assert r.core.boot == 6
