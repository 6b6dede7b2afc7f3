"""Activation (clauses 8-10): refused with the lock open, accepted with it closed, first fix reported."""

import pytest

from navseal.hil.frames import EscortData
from navseal.hil.steps import GnssFeed, activate, fixes_of

pytestmark = pytest.mark.needs("lock", "gnss")


@pytest.mark.parametrize("cable, housing", [(False, True), (True, False)], ids=["cable-open", "housing-open"])
def test_activation_refused_while_the_lock_is_open(dut, cable, housing):
    dut.bench.lock.set_lock(cable, housing)
    res = activate(dut, expect_result="LOCK_OPEN")
    assert res.payload["state"] == "INACTIVE"
    assert res.payload["escort_id"] == 0
    state = dut.expect("STATE", timeout=3)
    assert state.payload["state"] == "INACTIVE"
    assert state.payload["lock"] == {"cable_intact": cable, "housing_closed": housing}
    # Closing the lock afterwards does not arm the seal by itself.
    dut.bench.lock.set_lock(True, True)
    dut.expect_none("STATE", state="ACTIVE", within=1.5)


def test_activation_accepted_with_the_lock_closed_and_first_fix_reported(dut):
    escort = EscortData(escort_id=8101)
    res = activate(dut, escort)
    assert res.payload["state"] == "ACTIVE"
    assert res.payload["escort_id"] == 8101
    state = dut.expect("STATE", state="ACTIVE", timeout=3)
    assert state.payload["escort_id"] == 8101
    assert state.payload["alarms"]["CABLE_CUT"] is False
    assert state.payload["lock"] == {"cable_intact": True, "housing_closed": True}

    # No fix yet: the first position goes out as soon as the receiver has one (clause 10).
    feed = GnssFeed(dut.bench.gnss, dut.bench.clock).start()
    try:
        first = feed.wait_fixes(1)
        rec = dut.expect("RECORDS", timeout=5)
        t, lat, lon = next(fixes_of(rec))
        assert abs(lat - first.lat_e7) <= 1 and abs(lon - first.lon_e7) <= 1
        assert abs(t - first.t) <= 1
        status = rec.payload["records"][0]["status"]
        assert status["cable_intact"] and status["housing_closed"]
        fixed = dut.expect("STATE", where=lambda f: f.payload["fix_time"] != 0, timeout=3)
        assert fixed.payload["state"] == "ACTIVE"
        assert fixed.payload["lat"] is not None
    finally:
        feed.stop()


def test_activation_repeated_with_the_same_escort_is_idempotent(dut):
    escort = EscortData(escort_id=8102)
    activate(dut, escort)
    # The gateway repeats a command whose result it missed: same answer, no second escort.
    res = activate(dut, escort)
    assert res.payload["state"] == "ACTIVE" and res.payload["escort_id"] == 8102
    other = EscortData(escort_id=8103, declaration="50508/261126/0009002")
    res = activate(dut, other, expect_result="WRONG_STATE")
    assert res.payload["escort_id"] == 8102
