"""Lock integrity: tamper while ACTIVE is an alarm latched across a power cut, one event per
opening episode (numbered); a pulse shorter than the sampling period is caught; opening an
INACTIVE seal is its normal use and raises nothing."""

import pytest

from navseal.hil.frames import EscortData
from navseal.hil.steps import activate, deactivate


@pytest.mark.needs("lock", "power")
def test_cable_cut_while_active_is_latched_across_a_power_cycle(dut):
    escort = EscortData(escort_id=8201)
    activate(dut, escort)
    dut.bench.lock.set_lock(False, True)
    ev = dut.expect("EVENT", code="CABLE_CUT", timeout=3)
    assert ev.payload["status"]["cable_intact"] is False
    assert ev.payload["value"] == 1  # the escort's first opening episode
    state = dut.expect("STATE", where=lambda f: f.payload["alarms"]["CABLE_CUT"], timeout=3)
    assert state.payload["state"] == "ACTIVE"

    # Putting the cable back ends the episode but does not clear the alarm: it is evidence.
    dut.bench.lock.set_lock(True, True)
    restored = dut.expect("EVENT", code="LOCK_RESTORED", timeout=3)
    assert restored.payload["value"] == 1 << 8 | 0xC0
    after = dut.expect("STATE", where=lambda f: f.payload["lock"]["cable_intact"], timeout=3)
    assert after.payload["alarms"]["CABLE_CUT"] is True

    dut.bench.power.cycle()
    hello = dut.expect("HELLO", timeout=10)
    assert hello.payload["reset_cause"] == "POWER_ON"
    booted = dut.expect("STATE", timeout=3)
    assert booted.boot == hello.boot
    assert booted.payload["state"] == "ACTIVE" and booted.payload["escort_id"] == 8201
    assert booted.payload["alarms"]["CABLE_CUT"] is True
    assert booted.payload["alarms"]["HOUSING_OPENED"] is False
    evidence = booted.payload["evidence"]
    assert evidence["openings"] == 1 and evidence["reboots"] == 1 and evidence["power_losses"] == 1
    # ...and a second cut after the restore is a second episode, with its own number.
    dut.bench.lock.set_lock(False, True)
    again = dut.expect("EVENT", code="CABLE_CUT", timeout=3)
    assert again.payload["value"] == 2
    # Deactivated at destination: the STATE after it still says the escort did not end clean.
    dut.bench.lock.set_lock(True, True)
    dut.expect("EVENT", code="LOCK_RESTORED", timeout=3)
    deactivate(dut, escort)
    ended = dut.expect("STATE", state="INACTIVE", timeout=3)
    assert ended.payload["alarms"]["CABLE_CUT"] is True
    assert ended.payload["evidence"]["flags"]["closed"] is True
    assert ended.payload["evidence"]["openings"] == 2


@pytest.mark.needs("lock")
def test_housing_opened_while_active_raises_its_own_alarm(dut):
    activate(dut, EscortData(escort_id=8202))
    dut.bench.lock.set_lock(True, False)
    ev = dut.expect("EVENT", code="HOUSING_OPENED", timeout=3)
    assert ev.payload["status"]["cable_intact"] is True
    assert ev.payload["status"]["housing_closed"] is False
    state = dut.expect("STATE", where=lambda f: f.payload["alarms"]["HOUSING_OPENED"], timeout=3)
    assert state.payload["alarms"]["CABLE_CUT"] is False


@pytest.mark.needs("lock")
def test_opening_while_inactive_is_not_an_alarm(dut):
    # Latches of an earlier escort stay visible until the next activation (so the STATE after a
    # deactivation says whether it ended clean): compare with what the seal says before.
    before = dut.expect("STATE", timeout=3).payload["alarms"]
    dut.bench.lock.set_lock(False, False)
    dut.expect_none("EVENT", where=lambda f: f.payload["code"] in ("CABLE_CUT", "HOUSING_OPENED"), within=2.0)
    state = dut.expect("STATE", where=lambda f: not f.payload["lock"]["cable_intact"], timeout=3)
    assert state.payload["state"] == "INACTIVE"
    assert state.payload["lock"] == {"cable_intact": False, "housing_closed": False}
    for alarm in ("CABLE_CUT", "HOUSING_OPENED"):
        assert state.payload["alarms"][alarm] == before[alarm], alarm
    # Closed again and activated: the escort starts clean.
    dut.bench.lock.set_lock(True, True)
    res = activate(dut, EscortData(escort_id=8203))
    assert res.payload["state"] == "ACTIVE"
    armed = dut.expect("STATE", state="ACTIVE", timeout=3)
    assert armed.payload["alarms"]["CABLE_CUT"] is False and armed.payload["alarms"]["HOUSING_OPENED"] is False


@pytest.mark.needs("lock_pulse")
def test_a_50_ms_pulse_between_two_samples_raises_the_alarm(dut):
    # The seal samples an idle lock once a second; a 50 ms opening between two samples is seen
    # by the pin interrupts' latch: one episode, CABLE_CUT and LOCK_RESTORED, alarm latched.
    activate(dut, EscortData(escort_id=8204))
    dut.expect("STATE", state="ACTIVE", timeout=3)
    dut.bench.pulse_lock("cable", 50)
    cut = dut.expect("EVENT", code="CABLE_CUT", timeout=3)
    assert cut.payload["value"] == 1
    restored = dut.expect("EVENT", code="LOCK_RESTORED", timeout=3)
    assert restored.payload["value"] == 1 << 8 | 0xC0
    assert restored.payload["time"] >= cut.payload["time"]
    state = dut.expect("STATE", where=lambda f: f.payload["alarms"]["CABLE_CUT"], timeout=3)
    assert state.payload["lock"]["cable_intact"] is True
    assert state.payload["evidence"]["openings"] == 1
    # Shorter than the debounce time: a glitch, no episode.
    dut.bench.pulse_lock("housing", 20)
    dut.expect_none("EVENT", code="HOUSING_OPENED", within=1.5)
