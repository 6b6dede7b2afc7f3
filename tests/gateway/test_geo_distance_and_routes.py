"""Distance to a route on the WGS84 ellipsoid, checked against Vincenty's geodesic; route formats."""

import math
import random

import pytest

from navseal.gateway import geo


def test_vincenty_reference_values():
    # Flinders Peak -> Buninyong (Vincenty 1975 / Geoscience Australia): 54 972.271 m
    d = geo.vincenty_m(-37 - 57 / 60 - 3.72030 / 3600, 144 + 25 / 60 + 29.52440 / 3600,
                       -37 - 39 / 60 - 10.15610 / 3600, 143 + 55 / 60 + 35.38390 / 3600)
    assert d == pytest.approx(54_972.271, abs=0.001)
    # A degree of latitude at the equator: 110 574.4 m
    assert geo.vincenty_m(0, 0, 1, 0) == pytest.approx(110_574.4, abs=0.1)


@pytest.mark.parametrize("seed", range(5))
def test_distance_to_a_one_point_route_is_the_geodesic(seed):
    rnd = random.Random(seed)
    lat, lon = rnd.uniform(40, 55), rnd.uniform(50, 87)  # Kazakhstan and around
    route = geo.Route([(lat, lon)])
    for _ in range(50):
        qlat, qlon = lat + rnd.uniform(-0.2, 0.2), lon + rnd.uniform(-0.2, 0.2)
        truth = geo.vincenty_m(lat, lon, qlat, qlon)
        # Tangent-plane distance: within 1 m (and 1e-4 relative) up to ~25 km.
        assert route.distance_m(qlat, qlon) == pytest.approx(truth, rel=1e-4, abs=1.0)


def test_distance_to_a_meridian_segment_is_the_perpendicular_geodesic():
    route = geo.Route([(43.0, 77.0), (44.0, 77.0)])
    for lat in (43.1, 43.5, 43.9):
        for lon in (77.001, 77.01, 77.05, 76.97):
            truth = geo.vincenty_m(lat, lon, lat, 77.0)  # the perpendicular foot lies (almost) on the parallel
            assert route.distance_m(lat, lon) == pytest.approx(truth, rel=2e-4, abs=0.5)
    # Beyond the end the nearest point is the end vertex.
    assert route.distance_m(44.01, 77.0) == pytest.approx(geo.vincenty_m(44.01, 77.0, 44.0, 77.0), abs=0.5)


def test_grid_index_agrees_with_a_full_scan():
    rnd = random.Random(7)
    points = [(43.0, 76.0)]
    for _ in range(150):
        lat, lon = points[-1]
        points.append((lat + rnd.uniform(-0.1, 0.15), lon + rnd.uniform(0.0, 0.2)))
    route = geo.Route(points)
    basis_scan = lambda lat, lon: min(  # noqa: E731
        route._segment_distance(geo._enu_basis(lat, lon), i) for i in range(route._nseg))
    for _ in range(300):
        i = rnd.randrange(len(points))
        lat, lon = points[i][0] + rnd.uniform(-0.3, 0.3), points[i][1] + rnd.uniform(-0.3, 0.3)
        assert route.distance_m(lat, lon) == pytest.approx(basis_scan(lat, lon), abs=1e-6)


def test_geojson_and_gpx_routes():
    line = {"type": "LineString", "coordinates": [[76.9, 43.2], [77.0, 43.25], [77.1, 43.3]]}
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},
        {"type": "Feature", "geometry": line, "properties": {}}]}
    expected = [(43.2, 76.9), (43.25, 77.0), (43.3, 77.1)]
    assert geo.route_from_geojson(line) == expected
    assert geo.route_from_geojson(fc) == expected
    gpx = """<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1">
      <trk><trkseg><trkpt lat="43.2" lon="76.9"/><trkpt lat="43.25" lon="77.0"/>
      <trkpt lat="43.3" lon="77.1"/></trkseg></trk></gpx>"""
    assert geo.route_from_gpx(gpx) == expected
    for bad in ({"type": "Point", "coordinates": [1, 2]}, {"type": "LineString", "coordinates": [[1, 2]]}):
        with pytest.raises(ValueError):
            geo.route_from_geojson(bad)
    with pytest.raises(ValueError, match="GPX"):
        geo.route_from_gpx("<gpx><trkpt lat='x' lon='1'/><trkpt lat='1' lon='1'/></gpx>")
    assert geo.to_wire_route(expected) == [[4320000, 7690000], [4325000, 7700000], [4330000, 7710000]]


def test_long_east_west_segment_follows_the_parallel():
    # The wire route's segment is straight in lat/lon: along 43.2 N it is the parallel, not the chord.
    route = geo.Route([(43.2, 76.9), (43.2, 77.9)])
    north = 43.2 + 0.01
    truth = geo.vincenty_m(43.2, 77.4, north, 77.4)
    assert route.distance_m(north, 77.4) == pytest.approx(truth, abs=1.0)
    assert math.isfinite(route.distance_m(-10, 10))
