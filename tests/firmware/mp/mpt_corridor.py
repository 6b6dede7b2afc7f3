# The seal's corridor check: distances, wide corridors, the antimeridian, the hysteresis, and
# that a fix allocates nothing. Runs under CPython (pytest, in process) and the real MicroPython.
# (tests/firmware/test_corridor.py compares the distances with the gateway's ellipsoidal ones.)
import gc
import struct

from navseal_fw.corridor import EV_DEVIATION, EV_RETURNED, FAR_M, Corridor


def route(*pts):
    return b"".join([struct.pack(">ii", a, b) for a, b in pts])


def corridor(c_m, *pts, confirm=2, hyst=100):
    c = Corridor(confirm, hyst)
    c.set_route(route(*pts), c_m)
    return c


def test_distance_to_a_meridian_segment_and_beyond_its_end():
    # lon 76.945 from lat 43.238 to 43.338; 0.001 degree of longitude at 43.28 N is 81.2 m
    c = corridor(200, (4323800, 7694500), (4333800, 7694500))
    assert 80 <= c.distance_m(432800000, 769460000) <= 82
    assert 555 <= c.distance_m(433430000, 769450000) <= 557  # 0.005 degree past the end
    assert c.distance_m(432800000, 769450000) == 0


def test_no_route_and_one_point_routes():
    c = Corridor()
    assert c.distance_m(432800000, 769460000) == -1 and c.check(432800000, 769460000) == 0
    c.set_route(route((4323800, 7694500)), 500)
    assert 110 <= c.distance_m(432390000, 769450000) <= 112  # 0.001 degree north: 111.1 m


def test_wide_corridors_do_not_saturate():
    # 0.5 and 0.75 degree of longitude east of a north-south route at 42.4 N: 41,164 m and
    # 61,746 m on the ellipsoid (gateway/geo.py); a corridor over 36 km still sees the deviation.
    pts = ((4200000, 7700000), (4230000, 7700000), (4260000, 7700000), (4290000, 7700000))
    c = corridor(50000, *pts)
    d40 = c.distance_m(424000000, 775000000)
    d60 = c.distance_m(424000000, 777500000)
    assert abs(d40 - 41164) <= 41 and abs(d60 - 61746) <= 62, (d40, d60)
    assert c.check(424000000, 777500000) == 0 and c.check(424000000, 777500000) == EV_DEVIATION
    assert c.deviated and c.d == d60
    # far beyond every vertex window: a lower bound, never less
    assert c.distance_m(424000000, 800000000) == FAR_M
    assert c.distance_m(-424000000, 770000000) == FAR_M


def test_antimeridian_route_with_continuous_longitudes():
    # 179.8 E to 180.2 E (= 179.8 W) along 64 N; the fix is at 179.9 W, 0.01 degree north.
    c = corridor(1000, (6400000, 17980000), (6400000, 18000000), (6400000, 18020000))
    d = c.distance_m(640100000, -1799000000)
    assert 1110 <= d <= 1116, d
    # the same geometry shifted to the Greenwich meridian gives the same distance
    g = corridor(1000, (6400000, -20000), (6400000, 0), (6400000, 20000))
    assert abs(g.distance_m(640100000, 1000000) - d) <= 1
    # west of the antimeridian, route written with negative longitudes beyond -180
    w = corridor(1000, (6400000, -18020000), (6400000, -17980000))
    assert abs(w.distance_m(640100000, 1799000000) - d) <= 1


def test_deviation_and_return_need_confirm_fixes_and_the_hysteresis():
    c = corridor(1000, (4300000, 7600000), (4330000, 7600000), confirm=2, hyst=100)
    assert c.margin_m() == 100
    def at(metres):
        # 1e-7 degree of longitude at 43.15 N is 8.124 mm
        return 431500000, 760000000 + metres * 1000000 // 8124
    seen = []
    for m in (900, 1100, 950, 1100, 1200, 1300, 950, 850, 1100, 890, 880, 870):
        seen.append(c.check(*at(m)))
    # one fix out is not a deviation; two in a row are; one fix well inside is not a return,
    # nor are two in the hysteresis band; two in a row below corridor - margin are
    assert seen == [0, 0, 0, 0, EV_DEVIATION, 0, 0, 0, 0, 0, EV_RETURNED, 0], seen
    assert 1095 <= c.run_max <= 1105 and not c.deviated  # the latest run outside: one fix


def test_margin_is_a_tenth_of_the_corridor_at_least_the_hysteresis_at_most_half():
    assert corridor(5000, (0, 0), (1000, 0), hyst=100).margin_m() == 500
    assert corridor(600, (0, 0), (1000, 0), hyst=100).margin_m() == 100
    assert corridor(150, (0, 0), (1000, 0), hyst=100).margin_m() == 75


def test_a_fix_allocates_nothing():
    alloc = getattr(gc, "mem_alloc", None)
    pts = []
    for i in range(30):
        pts.append((4323800 + 2000 * i, 7694500 + 2000 * i))
    c = corridor(1000, *pts)
    lat = 432380000
    lon = 769450000
    c.check(lat, lon)  # warm up (first calls may intern names)
    if alloc is None:
        return  # CPython: every int is an object; the check is MicroPython's
    gc.collect()
    before = alloc()
    for i in range(50):
        c.check(lat + 3000 * i, lon + 5000 * i)
        c.distance_m(lat - 300000 * i, lon + 700000 * i)  # far off: the other code paths
    after = alloc()
    assert after == before, (before, after)
