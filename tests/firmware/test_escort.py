"""escort.Escort: activation rules, deactivation matching and JOURNAL_PENDING, replay window, the
stored route (the corridor check itself: test_corridor.py, mp/mpt_corridor.py)."""

import struct

from navseal_fw import escort as E
from navseal_fw.hal import MemHal

SEAL = 1001


def route(*pts):
    return b"".join(struct.pack(">ii", a, b) for a, b in pts)


def activate(e, lock=True, escort_id=7, seal=SEAL, corridor=0, rt=b""):
    return e.activate(lock, escort_id, seal, "10005020/261126/0001234", "123ABC02", "55201", "Khorgos",
                      1764115200, 1764720000, corridor, rt)


def reboot(hal):
    e = E.Escort(hal, SEAL)
    e.load()
    return e


def test_activation_needs_a_closed_lock_and_the_right_seal():
    hal = MemHal()
    e = reboot(hal)
    assert activate(e, lock=False) == E.LOCK_OPEN and e.state == E.INACTIVE
    assert activate(e, seal=999) == E.MISMATCH
    assert activate(e, escort_id=0) == E.BAD_PARAMS
    assert activate(e) == E.OK and e.state == E.ACTIVE
    assert activate(e) == E.OK  # same escort again: idempotent
    assert activate(e, escort_id=8) == E.WRONG_STATE


def test_escort_data_survives_reboot():
    hal = MemHal()
    e = reboot(hal)
    activate(e, corridor=500, rt=route((4323800, 7694500), (4330000, 7700000)))
    e2 = reboot(hal)
    assert e2.state == E.ACTIVE and e2.escort_id == 7
    assert (e2.declaration, e2.vehicle, e2.dest_office_code, e2.dest_office_name) == (
        "10005020/261126/0001234", "123ABC02", "55201", "Khorgos")
    assert e2.corridor_m == 500 and e2.route_points() == 2


def test_deactivate_requires_matching_data():
    hal = MemHal()
    e = reboot(hal)
    activate(e)
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "999XYZ") == E.MISMATCH
    assert e.deactivate(7, SEAL, "other", "123ABC02") == E.MISMATCH
    assert e.deactivate(7, 5, "10005020/261126/0001234", "123ABC02") == E.MISMATCH
    assert e.state == E.ACTIVE
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02") == E.OK
    assert e.state == E.INACTIVE
    assert reboot(hal).state == E.INACTIVE
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02") == E.OK  # repeat
    assert e.deactivate(9, SEAL, "x", "y") == E.WRONG_STATE


def test_replay_window_is_persisted():
    hal = MemHal()
    e = reboot(hal)
    assert e.fresh(0, 0)
    e.accept(0, 5)
    assert not e.fresh(0, 5) and not e.fresh(0, 4) and e.fresh(0, 6) and e.fresh(1, 0)
    e2 = reboot(hal)
    assert not e2.fresh(0, 5) and e2.fresh(0, 6)
    e2.accept(0, 9, persist=False)  # ACKs move it in RAM only
    assert not e2.fresh(0, 8)
    assert reboot(hal).fresh(0, 8)


def test_deactivate_waits_for_the_journal():
    hal = MemHal()
    e = reboot(hal)
    activate(e)
    # MISMATCH first (a wrong command is wrong whatever the journal holds), then "not yet"
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "999XYZ", pending=3) == E.MISMATCH
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02", pending=3) == E.JOURNAL_PENDING
    assert e.state == E.ACTIVE
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02", pending=0) == E.OK
    # a repeat after the OK was lost answers OK whatever the journal holds now
    assert e.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02", pending=5) == E.OK


def test_route_survives_reboot_as_the_corridor_check_uses_it():
    hal = MemHal()
    e = reboot(hal)
    pts = ((4323800, 7694500), (4333800, 7694500), (4343800, 17994500 + 20000))
    activate(e, corridor=200, rt=route(*pts))
    e2 = reboot(hal)
    assert list(e2.corridor.pts) == [v for p in pts for v in p]
    assert e2.corridor.corridor_m == 200
    assert 80 <= e2.corridor.distance_m(432800000, 769460000) <= 82
    e2.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02")
    assert reboot(hal).route_points() == 0 and reboot(hal).corridor_m == 0
