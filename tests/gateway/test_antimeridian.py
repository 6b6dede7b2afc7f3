"""Routes across the antimeridian (issue 9 item 10, gateway part): accepted at activation, carried
with continuous longitudes, and measured the short way by the gateway's corridor check."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, make_pipeline

from navseal.gateway import geo

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

# Chukotka: Anadyr eastwards across 180 degrees (the route a GPX file gives: longitudes in +-180).
ROUTE = [[64.73, 177.5], [64.9, 179.6], [65.0, -179.6], [65.1, -178.0]]


def test_unwrapped_longitudes_run_the_short_way():
    assert geo.unwrap(ROUTE) == [(64.73, 177.5), (64.9, 179.6), (65.0, 180.4), (65.1, 182.0)]
    assert geo.unwrap([[0, -179.0], [0, 179.0]]) == [(0.0, -179.0), (0.0, -181.0)]
    wire = geo.to_wire_route(ROUTE)
    assert all(abs(b[1] - a[1]) < 180 * 10**5 for a, b in zip(wire, wire[1:]))


def test_the_corridor_distance_across_the_antimeridian_is_the_short_one():
    route = geo.Route(geo.unwrap(ROUTE))
    # On the segment (64.9, 179.6)-(65.0, 180.4), at 180 exactly, from either side of it.
    for lon in (180.0, -180.0, -179.99, 179.99):
        assert route.distance_m(64.95, lon) < 600, lon
    # North of the route on the far side (route at about 64.975 N there): some 14 km, not half the globe.
    far = route.distance_m(65.11, -179.8)
    assert 12_000 < far < 15_100
    # The same against Vincenty's geodesic to the route's nearest vertex, for a fix near one.
    assert abs(route.distance_m(65.1, -178.0)) < 1.0
    assert abs(route.distance_m(65.1, -177.99) - geo.vincenty_m(65.1, -178.0, 65.1, -177.99)) < 1.0


def test_an_escort_across_the_antimeridian_is_activated_and_raises_no_false_deviation(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock, pos=(64.75, 177.6), route=ROUTE, corridor_m=2000)
    assert escort["status"] == "active" and escort["route_points"] >= len(ROUTE)
    track = [(64.9, 179.6), (64.95, 180.0 - 1e-7), (64.95, -179.99), (65.0, -179.6), (65.05, -178.8)]
    res = pipeline.handle_uplink(seal.records(clock.advance(600), track), "t")
    assert [e["kind"] for e in res.events] == ["POSITION"]
    # Off the route on the far side: a deviation is still seen there.
    res = pipeline.handle_uplink(seal.records(clock.advance(600), [(65.4, -178.5)] * 3), "t")
    assert "ROUTE_DEVIATION" in [e["kind"] for e in res.events]
