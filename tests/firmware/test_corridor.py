"""The seal's corridor check against the gateway's ellipsoidal distance (gateway/geo.py), and the
hysteresis under GNSS noise. The firmware-side basics (both interpreters) are mp/mpt_corridor.py.
"""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from navseal.emu.gnss import GnssSim
from navseal.emu.routes import offset_m
from navseal.gateway.geo import Route
from navseal_fw.corridor import EV_DEVIATION, EV_RETURNED, FAR_M, Corridor
from navseal_fw.nmea import NmeaParser


def _wire_route(pts):
    return b"".join(struct.pack(">ii", a, b) for a, b in pts)


@st.composite
def route_and_fix(draw):
    """A wire route (i16 deltas in 1e-5 degree, as ACTIVATE carries it) anywhere up to 80 degrees
    of latitude, and a fix up to 80 km from one of its points."""
    lat0 = draw(st.integers(-7800000, 7800000))
    lon0 = draw(st.integers(-17900000, 17900000))
    pts = [(lat0, lon0)]
    for _ in range(draw(st.integers(0, 7))):
        dlat = draw(st.integers(-32767, 32767))
        dlon = draw(st.integers(-32767, 32767))
        pts.append((max(-8000000, min(8000000, pts[-1][0] + dlat)), pts[-1][1] + dlon))
    base = draw(st.sampled_from(pts))
    dist = draw(st.sampled_from([0.0, 30.0, 300.0, 3000.0, 30000.0, 65000.0, 80000.0]))
    dist *= draw(st.floats(0.0, 1.0))
    bearing = draw(st.floats(0.0, 359.999))
    lat, lon = offset_m(base[0] / 1e5, base[1] / 1e5, dist * math.cos(math.radians(bearing)),
                        dist * math.sin(math.radians(bearing)))
    return pts, round(lat * 1e7), round(((lon + 180) % 360 - 180) * 1e7)


def _gateway_m(pts, lat_e7, lon_e7):
    # gateway/geo.Route takes longitudes in -180..180: shift route and fix together so the route
    # does not cross the antimeridian (distances do not change under a rotation about the axis).
    shift = -pts[0][1] / 1e5
    def norm(lon):
        return (lon + shift + 180) % 360 - 180
    route = Route([(a / 1e5, norm(b / 1e5)) for a, b in pts])
    return route.distance_m(lat_e7 / 1e7, norm(lon_e7 / 1e7))


@given(route_and_fix())
@settings(max_examples=1500, deadline=None)
def test_within_a_quarter_percent_of_the_gateway_up_to_70_km(case):
    pts, lat_e7, lon_e7 = case
    c = Corridor()
    c.set_route(_wire_route(pts), 1000)
    got = c.distance_m(lat_e7, lon_e7)
    want = _gateway_m(pts, lat_e7, lon_e7)
    if want <= FAR_M - 200:
        # 0.25 % plus 4 m: the e5 route and the e7 fix are rounded on the seal, not on the gateway
        assert abs(got - want) <= 0.0025 * want + 4, (got, want)
    else:
        assert got >= min(want * 0.9975 - 4, FAR_M), (got, want)  # at least the bound


def test_error_figures_against_the_gateway():
    """Largest error on a fixed sample, printed for docs/firmware.md; a regression bound."""
    import random

    rnd = random.Random(11)
    worst_near = worst_rel = 0.0
    for _ in range(4000):
        lat0 = rnd.randint(-7000000, 7000000)
        pts = [(lat0, rnd.randint(-17900000, 17900000))]
        for _ in range(rnd.randint(1, 6)):
            pts.append((pts[-1][0] + rnd.randint(-32767, 32767), pts[-1][1] + rnd.randint(-32767, 32767)))
        base = rnd.choice(pts)
        d = rnd.choice([100.0, 1000.0, 10000.0, 65000.0]) * rnd.random()
        brg = rnd.uniform(0, 2 * math.pi)
        lat, lon = offset_m(base[0] / 1e5, base[1] / 1e5, d * math.cos(brg), d * math.sin(brg))
        fix = (round(lat * 1e7), round(((lon + 180) % 360 - 180) * 1e7))
        c = Corridor()
        c.set_route(_wire_route(pts), 1000)
        got, want = c.distance_m(*fix), _gateway_m(pts, *fix)
        if want < 1000:
            worst_near = max(worst_near, abs(got - want))
        elif want < FAR_M - 200:
            worst_rel = max(worst_rel, abs(got - want) / want)
    print(f"corridor vs gateway, |lat| <= 70: worst {worst_near:.1f} m below 1 km, "
          f"{100 * worst_rel:.3f} % from 1 km to 70 km")
    assert worst_near <= 4 and worst_rel <= 0.0025


def _edge_run(seed: int, offset_m_: float, corridor_m: int, minutes: int = 30) -> list[int]:
    """Drive at 60 km/h along a straight north-south route, `offset_m_` east of it, with the
    emulator's GNSS noise (Gauss-Markov, 25 m per axis times HDOP); the corridor's events."""
    lat0, lon0 = 43.0, 77.0
    pts = [(round((lat0 + 0.3 * i) * 1e5), round(lon0 * 1e5)) for i in range(8)]
    c = Corridor(confirm_fixes=2, hysteresis_m=200)
    c.set_route(_wire_route(pts), corridor_m)
    sim = GnssSim(seed, noise_m=25.0, crc_error_rate=0.0)
    parser = NmeaParser()
    events = []
    t0 = 1795665600
    for s in range(minutes * 60):
        lat, lon = offset_m(lat0 + 0.001, lon0, 60 / 3.6 * s, offset_m_)
        if parser.feed(sim.epoch(t0 + s, lat, lon, 60.0, 0.0)):
            ev = c.check(parser.fix.lat_e7, parser.fix.lon_e7)
            if ev:
                events.append(ev)
    return events


def test_no_deviation_return_flap_along_the_corridor_edge_with_25_m_noise():
    # 20 seeds, 30 minutes each, on the edge, 40 m outside, and 40, 100 (the middle of the
    # hysteresis band of a 500 m corridor) and 160 m inside. With a 100 m band instead of 200 m
    # 15 of these 200 runs flap, with 50 m 45 of them (measured, 2026-11-29).
    flaps = []
    for seed in range(20):
        for offset in (-160.0, -100.0, -40.0, 0.0, 40.0):
            for corridor_m in (500, 2000):
                ev = _edge_run(seed, corridor_m + offset, corridor_m)
                # At most one deviation, and never a return followed by another deviation.
                if ev.count(EV_DEVIATION) > 1 or ev.count(EV_RETURNED) > 1:
                    flaps.append((seed, offset, corridor_m, ev))
    assert not flaps, flaps


def test_the_noise_run_does_deviate_when_really_outside():
    # The same drive 300 m outside a 500 m corridor: one deviation, no return (the check bites).
    assert _edge_run(3, 800.0, 500, minutes=5) == [EV_DEVIATION]


@given(route_and_fix(), st.lists(st.tuples(st.integers(-300000, 300000), st.integers(-300000, 300000)),
                                 min_size=1, max_size=12))
@settings(max_examples=300, deadline=None)
def test_a_sequence_of_fixes_gives_what_a_fresh_check_gives(case, moves):
    """The check starts from the segment nearest the last fix and keeps its scales while the
    latitude changes by less than 0.005 degree (speed-ups): the answer must be the same as
    without that memory, wherever the next fix lands, to one step of the q12 longitude scale
    (1/kx: 0.02 % at the equator, 0.13 % at 80 degrees) and two metres of rounding."""
    pts, lat, lon = case
    kept = Corridor()
    kept.set_route(_wire_route(pts), 1000)
    for dlat, dlon in moves:
        lat = max(-850000000, min(850000000, lat + dlat))
        lon = (lon + dlon + 1800000000) % 3600000000 - 1800000000
        fresh = Corridor()
        fresh.set_route(_wire_route(pts), 1000)
        a, b = kept.distance_m(lat, lon), fresh.distance_m(lat, lon)
        assert abs(a - b) <= b * 0.0015 + 2, (a, b)


def test_the_scale_tables_are_wgs84():
    """corridor._KY/_KX (big-endian u16, q12) against the WGS84 radii of curvature."""
    from navseal_fw import corridor as C

    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    for deg in range(91):
        phi = math.radians(deg)
        w = 1 - e2 * math.sin(phi) ** 2
        m = a * (1 - e2) / w ** 1.5  # meridian
        n = a / math.sqrt(w)  # prime vertical
        per_e5 = math.pi / 180 * 1e-5 * 4096
        assert C.scale(C._KY, deg * 100000) == round(m * per_e5), deg
        assert C.scale(C._KX, deg * 100000) == round(n * math.cos(phi) * per_e5), deg
        assert C.scale(C._KX, -deg * 100000) == C.scale(C._KX, deg * 100000)
