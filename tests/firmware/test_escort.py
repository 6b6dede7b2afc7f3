"""escort.Escort: activation rules, deactivation matching, replay window, latches, corridor."""

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


def test_latches_only_while_active_and_survive_reboot():
    hal = MemHal()
    e = reboot(hal)
    assert e.lock_opened(True, False) == 0  # opening an unarmed seal is normal
    activate(e)
    assert e.lock_opened(True, False) == E.ALARM_CABLE_CUT
    assert e.lock_opened(True, False) == 0  # already latched
    e2 = reboot(hal)
    assert e2.alarms() == E.ALARM_CABLE_CUT
    assert e2.lock_opened(False, True) == E.ALARM_HOUSING_OPENED
    assert reboot(hal).alarms() == E.ALARM_CABLE_CUT | E.ALARM_HOUSING_OPENED
    # Deactivation keeps them (the escort ended not clean); a new activation clears them.
    e3 = reboot(hal)
    e3.deactivate(7, SEAL, "10005020/261126/0001234", "123ABC02")
    assert e3.alarms() == 3
    activate(e3, escort_id=8)
    assert e3.alarms() == 0 and reboot(hal).alarms() == 0


def test_corridor_distance_and_events():
    hal = MemHal()
    e = reboot(hal)
    # A north-south segment at lon 76.945, from lat 43.238 to 43.338.
    activate(e, corridor=200, rt=route((4323800, 7694500), (4333800, 7694500)))
    # 0.001 degree of longitude east at lat 43.28 is about 81.1 m.
    d = e.distance_m(432800000, 769460000)
    assert 79 <= d <= 83
    assert e.route_check(432800000, 769460000) == (0, d)
    far = e.route_check(432800000, 769500000)  # ~405 m east
    assert far[0] == 11 and 395 <= far[1] <= 410
    assert e.route_check(432800000, 769520000)[0] == 0  # still out: no repeat
    assert e.alarms() & E.ALARM_ROUTE_DEVIATION
    assert reboot(hal).deviated
    assert e.route_check(432800000, 769521000 - 3000)[0] == 0
    assert e.route_check(432800000, 769470000)[0] == 12  # ~162 m < 90 % of 200
    # Beyond the end point the distance is to the end point.
    d_end = e.distance_m(433430000, 769450000)  # 0.005 deg north of the end: ~556 m
    assert 550 <= d_end <= 560


def test_corridor_distance_matches_a_float_reference():
    # The seal's integer distance against plain float geometry on random routes and points
    # within ~30 km: within a few metres (its unit is 4e-5 degree).
    import math
    import random

    rnd = random.Random(7)
    e = E.Escort(MemHal(), SEAL)
    worst = 0.0
    for _ in range(400):
        pts = [(rnd.randint(4000000, 4800000), rnd.randint(5000000, 8700000))]
        for _ in range(rnd.randint(1, 8)):
            pts.append((pts[-1][0] + rnd.randint(-30000, 30000), pts[-1][1] + rnd.randint(-30000, 30000)))
        e.route = route(*pts)
        p = (pts[0][0] * 100 + rnd.randint(-2500000, 2500000), pts[0][1] * 100 + rnd.randint(-2500000, 2500000))
        k = math.cos(math.radians(p[0] / 1e7))
        xy = [((lo * 100 - p[1]) * k * 0.011131949, (la * 100 - p[0]) * 0.011131949) for la, lo in pts]
        best = math.hypot(*xy[0])
        for (ax, ay), (bx, by) in zip(xy, xy[1:]):
            dx, dy = bx - ax, by - ay
            t = max(0.0, min(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy)))
            best = min(best, math.hypot(ax + t * dx, ay + t * dy))
        if best > 30000:
            continue
        got = e.distance_m(*p)
        worst = max(worst, abs(got - best))
        assert abs(got - best) <= 8 + best * 0.002, (pts, p, got, best)
    assert worst > 0  # the comparison really ran
