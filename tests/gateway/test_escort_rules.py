"""The escort rules through the real pipeline, in virtual time (three hours pass in microseconds)."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, activation_request, downlinks_of, lock_status, make_pipeline, reencode

import json
import math

from navseal.gateway import events as ev
from navseal.gateway import geo
from navseal.gateway.command_requests import CommandError

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

HOUR = 3600


def kinds(result_or_events):
    items = result_or_events.events if hasattr(result_or_events, "events") else result_or_events
    return [e["kind"] for e in items]


@pytest.fixture
def gw(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    yield pipeline, store, clock
    ev.validate(store.events())  # every test's events keep the operator contract


def _activate_cmd(pipeline, seal, clock):
    res = pipeline.handle_uplink(seal.hello(clock.t), "t")
    (cmd,) = [b for _, b in res.downlink if seal.decode(b).type == "ACTIVATE"]
    return cmd


def test_activated_only_after_confirmation_and_a_fix_with_the_lock_intact(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    # Fixes before the seal confirmed do not activate.
    cmd = _activate_cmd(pipeline, seal, clock)
    assert kinds(pipeline.handle_uplink(seal.records(clock.advance(5), [(43.2, 76.9)]), "t")) == []
    res = pipeline.handle_uplink(seal.command_result(clock.advance(5), cmd), "t")
    assert kinds(res) == [] and pipeline.status(seal_id=1001)[0]["status"] == "armed"
    # A confirmation alone is not enough (clause 10): a STATE without a fix changes nothing.
    assert kinds(pipeline.handle_uplink(seal.state(clock.advance(5), active=True, escort_id=escort["escort_id"],
                                                   pos=None), "t")) == []
    res = pipeline.handle_uplink(seal.state(clock.advance(5), active=True, escort_id=escort["escort_id"]), "t")
    assert kinds(res) == ["ACTIVATED"]
    activated = res.events[0]
    assert activated["position"]["lat"] == pytest.approx(43.2) and activated["escort_id"] == escort["escort_id"]
    assert activated["details"]["lock"] == {"cable_intact": True, "housing_closed": True}
    assert pipeline.status(seal_id=1001)[0]["status"] == "active"


def test_activation_failed_when_the_seal_reports_the_lock_open(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    cmd = _activate_cmd(pipeline, seal, clock)
    res = pipeline.handle_uplink(seal.command_result(clock.advance(3), cmd, "LOCK_OPEN"), "t")
    assert kinds(res) == ["ACTIVATION_FAILED"]
    failed = res.events[0]
    assert failed["details"]["reason"] == "LOCK_OPEN" and failed["alarm"]
    assert {n["role"] for n in failed["notify"]} == {"departure", "destination"}
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "failed"
    # The seal is free again: a new activation can be requested.
    assert pipeline.request_activation(activation_request(1001, t0=clock.t))["status"] == "requested"


def test_activation_failed_when_the_first_fix_shows_the_lock_broken(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    pipeline.request_activation(activation_request(1001, t0=clock.t))
    cmd = _activate_cmd(pipeline, seal, clock)
    pipeline.handle_uplink(seal.command_result(clock.advance(3), cmd), "t")
    res = pipeline.handle_uplink(seal.records(clock.advance(3), [(43.2, 76.9)], status=lock_status(cable=False)), "t")
    assert kinds(res) == ["ACTIVATION_FAILED"]
    assert res.events[0]["details"]["reason"] == "lock_not_intact_at_first_fix"
    # The seal was armed: it is told to disarm (same frame's answer), and that closes quietly.
    (cmd,) = downlinks_of(res, seal, "DEACTIVATE")
    res = pipeline.handle_uplink(seal.command_result(clock.advance(3), reencode(seal, cmd)), "t")
    assert kinds(res) == [] and [c["status"] for c in pipeline.status(seal_id=1001)[0]["commands"]] == [
        "acked", "acked"]


def test_an_unconfirmed_activation_can_be_withdrawn(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    cmd = _activate_cmd(pipeline, seal, clock)  # sent, never answered
    view = pipeline.request_deactivation(1001, escort["declaration"], escort["vehicle"])
    assert view["status"] == "deactivation_requested"
    (deact,) = downlinks_of(pipeline.tick(clock.advance(1)), seal, "DEACTIVATE")
    # The seal never got the ACTIVATE: it is inactive and says so.
    res = pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, deact), "WRONG_STATE",
                                                     state="INACTIVE"), "t")
    assert kinds(res) == ["DEACTIVATED"]
    assert [c["status"] for c in pipeline.status(seal_id=1001)[0]["commands"]] == ["cancelled", "acked"]
    # A late answer to the withdrawn ACTIVATE changes nothing.
    assert kinds(pipeline.handle_uplink(seal.command_result(clock.advance(1), cmd), "t")) == []


def test_signal_lost_after_three_hours_then_restored_and_the_buffer_fills_the_track(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    last_heard = clock.t
    assert pipeline.next_deadline() == last_heard + 3 * HOUR
    pipeline.tick(last_heard + 3 * HOUR)  # exactly three hours: not "more than"
    assert pipeline.last_tick_events == []
    pipeline.tick(clock.advance(3 * HOUR + 1))
    (lost,) = pipeline.last_tick_events
    assert lost["kind"] == "SIGNAL_LOST" and lost["alarm"]
    assert ev.parse_iso(lost["occurred_at"]) == last_heard + 3 * HOUR
    assert lost["details"]["last_seen_at"] == ev.iso(last_heard)
    pipeline.tick(clock.advance(HOUR))
    assert pipeline.last_tick_events == []  # said once
    # The seal comes back with five hours of buffered positions.
    clock.advance(HOUR)
    gap = clock.t - last_heard
    buffered = [(43.2 + i / 100, 76.9) for i in range(30)]
    res = pipeline.handle_uplink(seal.records(clock.t - 60, buffered, step=600), "t")
    assert kinds(res) == ["SIGNAL_RESTORED", "POSITION"]
    assert res.events[0]["details"]["gap_s"] == pytest.approx(gap)
    assert len(res.events[1]["details"]["positions"]) == 30
    assert len(store.records(1001)) == 31  # first fix + the whole gap
    assert pipeline.next_deadline() == clock.t + 3 * HOUR


def test_openings_raise_one_alarm_per_episode_with_time_position_and_offices(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    t_cut = clock.advance(60)
    res = pipeline.handle_uplink(seal.event(t_cut, "CABLE_CUT", pos=(43.3, 77.0),
                                            status=lock_status(cable=False)), "t")
    (alarm,) = res.events
    assert alarm["kind"] == "UNAUTHORIZED_OPENING" and alarm["occurred_at"] == ev.iso(t_cut)
    assert alarm["position"]["lat"] == pytest.approx(43.3)
    assert [n["office_code"] for n in alarm["notify"]] == ["50508", "50513"]
    assert alarm["declaration"] == escort["declaration"] and alarm["vehicle"] == escort["vehicle"]
    # Records still showing the cable open do not repeat the alarm; the housing is a separate one.
    res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.3, 77.0)] * 3,
                                              status=lock_status(cable=False, housing=False)), "t")
    assert kinds(res) == ["HOUSING_OPENED", "POSITION"]
    # Restored, then cut again: a second episode, a second alarm with a different id.
    pipeline.handle_uplink(seal.event(clock.advance(60), "LOCK_RESTORED"), "t")
    res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.3, 77.0)], status=lock_status(cable=False)), "t")
    assert kinds(res) == ["UNAUTHORIZED_OPENING", "POSITION"] and res.events[0]["event_id"] != alarm["event_id"]


def test_route_deviation_with_hysteresis_does_not_flap(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path, route_hysteresis_m=100, route_confirm_fixes=2)
    seal = FakeSeal(1001)
    # A route due north along the 77 E meridian (a geodesic), corridor 1 km; fixes are offset east
    # by exact metres (one degree of longitude is (pi/180) N cos(lat) on the ellipsoid).
    activate(pipeline, seal, clock, pos=(43.05, 77.0), route=[(43.0, 77.0), (44.0, 77.0)], corridor_m=1000)

    def offsets(*metres):
        out = []
        for i, m in enumerate(metres):
            lat = 43.1 + i / 1000
            n = geo.A / math.sqrt(1 - geo.E2 * math.sin(math.radians(lat)) ** 2)
            out.append((lat, 77.0 + m / (math.pi / 180 * n * math.cos(math.radians(lat)))))
        return out

    # One noisy fix outside is not a deviation (needs two in a row).
    res = pipeline.handle_uplink(seal.records(clock.advance(60), offsets(200, 1050, 980, 1020, 990)), "t")
    assert kinds(res) == ["POSITION"]
    # Two in a row outside: deviation, dated at the first of them.
    res = pipeline.handle_uplink(seal.records(clock.advance(60), offsets(990, 1100, 1200, 1500)), "t")
    assert kinds(res) == ["ROUTE_DEVIATION", "POSITION"]
    dev = res.events[0]
    assert dev["details"]["distance_m"] == pytest.approx(1100, abs=1) and dev["details"]["corridor_m"] == 1000
    assert dev["alarm"] and {n["role"] for n in dev["notify"]} == {"departure", "destination"}
    # Wobbling just inside the edge (within the hysteresis band) does not return.
    res = pipeline.handle_uplink(seal.records(clock.advance(60), offsets(980, 1010, 950, 1005, 920)), "t")
    assert kinds(res) == ["POSITION"]
    res = pipeline.handle_uplink(seal.records(clock.advance(60), offsets(890, 300)), "t")
    assert kinds(res) == ["ROUTE_RETURNED", "POSITION"]
    assert res.events[0]["details"]["max_distance_m"] == pytest.approx(1500, abs=1)
    assert res.events[0]["details"]["distance_m"] == pytest.approx(890, abs=1)


def test_transit_overdue_once_past_the_period(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock, hours=2)
    end = ev.parse_iso(escort["period_end"])
    for _ in range(3):  # the seal keeps reporting, so no signal loss
        pipeline.handle_uplink(seal.records(clock.advance(HOUR), [(43.2, 76.9)]), "t")
    pipeline.tick(clock.t)
    assert kinds(pipeline.last_tick_events) == ["TRANSIT_OVERDUE"]
    assert pipeline.last_tick_events[0]["occurred_at"] == ev.iso(end)
    pipeline.tick(clock.advance(60))
    assert pipeline.last_tick_events == []


def test_deactivation_mismatch_is_refused_with_a_clear_message(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    with pytest.raises(CommandError) as info:
        pipeline.request_deactivation(1001, escort["declaration"], "999ZZZ01")
    assert info.value.code == "mismatch"
    assert "vehicle '999ZZZ01'" in info.value.message and "'123ABC02'" in info.value.message
    with pytest.raises(CommandError) as info:
        pipeline.request_deactivation(1002, escort["declaration"], escort["vehicle"])
    assert info.value.code == "unknown_seal"
    with pytest.raises(CommandError) as info:
        pipeline.request_activation(activation_request(1001, t0=clock.t))
    assert info.value.code == "busy"
    assert store.counts()["commands"] == 1  # nothing was queued by the refused requests


def test_clean_deactivation_within_the_hour(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    pipeline.handle_uplink(seal.records(clock.advance(600), [(43.2, 76.9)] * 5), "t")
    pipeline.request_deactivation(1001, " " + escort["declaration"], escort["vehicle"])
    assert pipeline.request_deactivation(1001, escort["declaration"], escort["vehicle"])["status"] == \
        "deactivation_requested"  # asked twice: no second command
    (req,) = store.events(kind="DEACTIVATION_REQUESTED")
    assert req["details"]["deadline"] == ev.iso(clock.t + HOUR)
    (cmd,) = downlinks_of(pipeline.tick(clock.advance(1)), seal, "DEACTIVATE")
    assert cmd.payload == {"escort_id": escort["escort_id"], "seal_number": 1001,
                           "declaration": escort["declaration"], "vehicle": escort["vehicle"]}
    res = pipeline.handle_uplink(seal.command_result(clock.advance(600), reencode(seal, cmd)), "t")
    (done,) = res.events
    assert done["kind"] == "DEACTIVATED" and done["details"]["clean"] is True
    assert done["details"]["within_deadline"] is True and done["details"]["reasons"] == []
    pipeline.tick(clock.advance(2 * HOUR))
    assert pipeline.last_tick_events == []  # no overdue, no signal loss once deactivated
    assert pipeline.next_deadline() is None
    assert pipeline.status(escort_id=escort["escort_id"])[0]["clean"] is True


def test_deactivation_overdue_then_late_and_not_clean_after_an_alarm(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    pipeline.handle_uplink(seal.event(clock.advance(60), "HOUSING_OPENED", status=lock_status(housing=False)), "t")
    pipeline.handle_uplink(seal.event(clock.advance(60), "LOCK_RESTORED"), "t")
    pipeline.request_deactivation(1001, escort["declaration"], escort["vehicle"])
    requested = clock.t
    # The seal is out of reach: no DEACTIVATE can be delivered.
    clock.advance(HOUR)
    assert pipeline.next_deadline() == requested + HOUR
    pipeline.tick(clock.t)
    assert pipeline.last_tick_events == []
    out = pipeline.tick(clock.advance(1))
    assert kinds(pipeline.last_tick_events) == ["DEACTIVATION_OVERDUE"] and out == []  # seal offline
    # It calls in; the command goes out with its answer to that frame.
    res = pipeline.handle_uplink(seal.state(clock.advance(60), active=True, escort_id=escort["escort_id"]), "t")
    (cmd,) = downlinks_of(res, seal, "DEACTIVATE")
    res = pipeline.handle_uplink(seal.command_result(clock.advance(5), reencode(seal, cmd)), "t")
    done, risk = res.events
    assert done["details"]["clean"] is False and done["details"]["within_deadline"] is False
    assert done["details"]["non_routine"] == ["HOUSING_OPENED"] and done["details"]["high_risk"] is True
    assert done["details"]["reasons"] == ["gateway: HOUSING_OPENED raised during the escort"]
    # Clause 15: one RISK_MARKED with the same reasons for the risk management system.
    assert risk["kind"] == "RISK_MARKED" and risk["details"]["reasons"] == done["details"]["reasons"]
    assert pipeline.status(escort_id=escort["escort_id"])[0]["high_risk"] is True


def test_low_battery_once_per_episode(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)] * 3,
                                              status=lock_status(battery=18)), "t")
    assert kinds(res) == ["LOW_BATTERY", "POSITION"] and res.events[0]["details"]["battery_pct"] == 18
    assert kinds(pipeline.handle_uplink(seal.event(clock.advance(60), "LOW_BATTERY", value=15), "t")) == []
    pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)], status=lock_status(battery=90)), "t")
    res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)], status=lock_status(battery=10)), "t")
    assert kinds(res) == ["LOW_BATTERY", "POSITION"]


def test_several_seals_escort_one_vehicle(gw):
    pipeline, store, clock = gw
    seals = [FakeSeal(2001), FakeSeal(2002)]
    escorts = [activate(pipeline, s, clock, declaration="50508/261126/0009999") for s in seals]
    assert len({e["escort_id"] for e in escorts}) == 2
    by_vehicle = pipeline.status(vehicle="123ABC02")
    assert sorted(e["seal_id"] for e in by_vehicle) == [2001, 2002]
    # Only the opened compartment's seal alarms; each seal deactivates on its own data.
    res = pipeline.handle_uplink(seals[1].event(clock.advance(30), "CABLE_CUT", status=lock_status(cable=False)), "t")
    assert [(e["kind"], e["seal_id"]) for e in res.events] == [("UNAUTHORIZED_OPENING", 2002)]
    pipeline.request_deactivation(2001, "50508/261126/0009999", "123ABC02")
    assert [e["status"] for e in pipeline.status(vehicle="123ABC02")] == ["deactivation_requested", "active"]


def test_bad_activation_requests_are_refused_with_the_field_named(gw):
    pipeline, store, clock = gw
    pipeline.provision_seal(1001, FakeSeal(1001).key)
    cases = {
        "vehicle": ({"vehicle": "X" * 17}, "vehicle is 17 bytes"),
        "period": ({"period_end": clock.t - 10}, "transit period"),
        "corridor without route": ({"corridor_m": 500}, "without a route"),
        "missing": ({"declaration": ""}, "missing declaration"),
        "geojson order": ({"route": {"type": "LineString", "coordinates": [[43.2, 176.9], [43.3, 177.0]]}},
                          "out of range"),
    }
    for name, (change, text) in cases.items():
        with pytest.raises(CommandError) as info:
            pipeline.request_activation({**activation_request(1001, t0=clock.t), **change})
        assert info.value.code == "bad_request" and text in info.value.message, name
    # A long route is densified (i16 deltas reach ~36 km) before it is sent.
    escort = pipeline.request_activation({**activation_request(1001, t0=clock.t), "corridor_m": 2000,
                                          "route": {"type": "LineString", "coordinates": [[76.9, 43.2], [79.9, 43.2]]}})
    assert escort["route_points"] > 2


@pytest.mark.parametrize("seed", range(3))
def test_corridor_shortcut_gives_the_same_events_as_measuring_every_fix(tmp_path, seed):
    """The rules skip the geometry while a fix provably stays inside; compare with a reference
    state machine that measures every fix (random walk weaving across the corridor edge)."""
    import random

    rnd = random.Random(seed)
    corridor, hysteresis, confirm = 800, 100, 2
    pipeline, store, clock = make_pipeline(tmp_path, route_hysteresis_m=hysteresis, route_confirm_fixes=confirm)
    seal = FakeSeal(1001)
    route_pts = [(43.0, 77.0), (43.3, 77.2), (43.5, 77.1), (43.9, 77.6)]
    activate(pipeline, seal, clock, pos=(43.0, 77.0), route=route_pts, corridor_m=corridor)
    # The same polyline the gateway checks against: the densified wire route, in degrees.
    route = geo.Route(json.loads(store._read("SELECT route FROM escorts")[0]["route"]))
    lat, lon, off = 43.0, 77.0, 0.0
    fixes = []
    for i in range(1500):
        lat += 0.0004
        lon = 77.0 + (lat - 43.0) * (0.2 / 0.3) if lat < 43.3 else 77.2 - (lat - 43.3) * 0.5
        off = max(-2500.0, min(2500.0, off + rnd.gauss(0, 120)))
        fixes.append((min(lat, 43.49), lon + off / 81_000))
    # reference
    expected, deviating, outside = [], False, 0
    for f in fixes:
        d = route.distance_m(*f)
        if not deviating:
            outside = outside + 1 if d > corridor else 0
            if outside >= confirm:
                deviating, outside = True, 0
                expected.append("ROUTE_DEVIATION")
        elif d <= corridor - hysteresis:
            deviating = False
            expected.append("ROUTE_RETURNED")
    got = []
    for i in range(0, len(fixes), 60):
        res = pipeline.handle_uplink(seal.records(clock.advance(600), fixes[i:i + 60]), "t")
        got += [k for k in kinds(res) if k.startswith("ROUTE_")]
    assert len(expected) >= 4 and got == expected


def test_a_restarted_gateway_does_not_blame_seals_for_its_own_outage(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    a, b = FakeSeal(1001), FakeSeal(1002)
    activate(pipeline, a, clock)
    activate(pipeline, b, clock)
    store.close()
    clock.advance(5 * HOUR)  # the gateway was down; seal a kept publishing to the broker meanwhile
    pipeline, store, _ = make_pipeline(tmp_path, clock)
    pipeline.tick(clock.t)
    assert pipeline.last_tick_events == []
    assert pipeline.next_deadline() == clock.t + 120  # the startup grace
    # The broker's backlog for seal a arrives; seal b really is silent.
    pipeline.handle_uplink(a.records(clock.advance(30), [(43.2, 76.9)] * 3), "t")
    pipeline.tick(clock.advance(91))
    assert [(e["kind"], e["seal_id"]) for e in pipeline.last_tick_events] == [("SIGNAL_LOST", 1002)]
