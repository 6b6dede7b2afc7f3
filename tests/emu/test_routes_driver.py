"""Shipped routes, GeoJSON/GPX loading, and the route driver's speed profile, stops and detours."""

from __future__ import annotations

import json

import pytest

from navseal.emu.driver import Detour, DriveProfile, RouteDriver, Stop
from navseal.emu.routes import Route, RouteError, haversine_m, load_route, shipped_routes

T0 = 1_795_000_000.0


def test_shipped_routes_are_plausible_kazakh_roads():
    assert {"almaty-khorgos", "dostyk-almaty", "kordai-almaty"} <= set(shipped_routes())
    for name, km in (("almaty-khorgos", (280, 360)), ("dostyk-almaty", (600, 750)), ("kordai-almaty", (180, 260))):
        r = load_route(name)
        assert km[0] < r.length_m / 1000 < km[1], name
        assert 40 <= len(r.points) <= 150
        for lat, lon in r.points:  # inside Kazakhstan's south-east
            assert 42.5 < lat < 47 and 74 < lon < 83
        longest = max(haversine_m(*a, *b) for a, b in zip(r.points, r.points[1:]))
        assert longest < 30_000  # under the wire route's 36 km delta limit


def test_almaty_khorgos_ends_where_it_says():
    r = load_route("almaty-khorgos")
    assert haversine_m(*r.points[0], 43.2567, 76.9286) < 2000  # Almaty
    assert haversine_m(*r.points[-1], 44.21, 80.406) < 2000  # Khorgos crossing


def test_geojson_and_gpx_files(tmp_path):
    gj = tmp_path / "r.geojson"
    gj.write_text(json.dumps({"type": "LineString", "coordinates": [[76.9, 43.2], [77.0, 43.3]]}))
    assert load_route(str(gj)).points == [(43.2, 76.9), (43.3, 77.0)]  # GeoJSON is [lon, lat]
    gpx = tmp_path / "r.gpx"
    gpx.write_text('<gpx xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
                   '<trkpt lat="43.2" lon="76.9"/><trkpt lat="43.3" lon="77.0"/></trkseg></trk></gpx>')
    assert load_route("r.gpx", base_dir=tmp_path).points == [(43.2, 76.9), (43.3, 77.0)]
    with pytest.raises(RouteError, match="nowhere"):
        load_route("nowhere")
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "Point", "coordinates": [1, 2]}')
    with pytest.raises(RouteError, match="bad.geojson"):
        load_route(str(bad))


def test_constant_speed_drive_takes_length_over_speed():
    r = Route([(43.0, 77.0), (43.0, 78.0)])
    d = RouteDriver(r, DriveProfile(cruise_kmh=81, urban_km=0, variation=0.0), t0=T0)
    assert d.duration_s == pytest.approx(r.length_m / (81 / 3.6), rel=1e-6)
    mid = d.state(T0 + d.duration_s / 2)
    assert mid.moving and mid.speed_kmh == pytest.approx(81)
    assert mid.km == pytest.approx(r.length_m / 2000, rel=1e-6)
    assert mid.course_deg == pytest.approx(90, abs=1)
    end = d.state(T0 + d.duration_s + 10)
    assert end.arrived and end.speed_kmh == 0 and end.stop_kind == "arrived"


def test_stops_hold_the_truck_and_say_why():
    r = load_route("kordai-almaty")
    p = DriveProfile(depart_after_s=600, stops=[Stop(50, 1800, "rest"), Stop(-1, 3600, "border_queue")])
    d = RouteDriver(r, p, t0=T0, seed=1)
    assert d.state(T0 + 300).stop_kind == "departure" and not d.state(T0 + 300).moving
    t50 = d.time_at_km(50)
    a, b = d.state(t50 + 10), d.state(t50 + 1700)
    assert not a.moving and a.stop_kind == "rest" and (a.lat, a.lon) == (b.lat, b.lon)
    assert d.state(t50 + 1900).moving
    q = d.state(d.t_arrive - 100)
    assert q.stop_kind == "border_queue" and q.km == pytest.approx(r.length_m / 1000 - 1, abs=0.01)
    # urban speed near the ends, cruise in between, all deterministic for a seed
    assert d.state(T0 + 700).speed_kmh == pytest.approx(40)
    assert RouteDriver(r, p, t0=T0, seed=1).state(T0 + 9000) == d.state(T0 + 9000)


def test_detour_leaves_the_route_and_comes_back():
    r = Route([(43.0, 77.0), (43.0, 78.0)])
    d = RouteDriver(r, DriveProfile(variation=0.0, detours=[Detour(20, 40, 3000)]), t0=T0)
    off = d.state(d.time_at_km(30))
    assert haversine_m(off.lat, off.lon, 43.0, off.lon) == pytest.approx(3000, rel=0.01)
    assert off.lat < 43.0  # right of an eastbound truck is south
    back = d.state(d.time_at_km(45))
    assert abs(back.lat - 43.0) < 1e-6
