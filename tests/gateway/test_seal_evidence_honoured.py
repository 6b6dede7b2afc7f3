"""The seal is the authority on what it observed: its own corridor check, GNSS loss and anomalies and
its opening episodes become gateway alarms, one per episode, whatever the gateway's own view."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, downlinks_of, lock_status, make_pipeline, reencode

from navseal.gateway import events as ev
from navseal.protocol import evidence

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

HOUR = 3600


def kinds(events):
    return [e["kind"] for e in events]


@pytest.fixture
def gw(tmp_path):
    return make_pipeline(tmp_path)


def deactivate(pipeline, seal, clock, escort, **block):
    pipeline.request_deactivation(seal.seal_id, escort["declaration"], escort["vehicle"])
    (cmd,) = downlinks_of(pipeline.tick(clock.advance(1)), seal, "DEACTIVATE")
    full = evidence(escort_id=escort["escort_id"], hw_rseq=seal.rseq, flags={"closed": True}, **block)
    res = pipeline.handle_uplink(seal.command_result(clock.advance(5), reencode(seal, cmd), evidence_block=full), "t")
    (done,) = [e for e in res.events if e["kind"] == "DEACTIVATED"]
    return done


def test_the_seals_own_deviation_is_an_alarm_when_thinning_removed_the_fixes(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    route = [[43.2, 76.9], [43.2, 77.5]]
    escort = activate(pipeline, seal, clock, route=route, corridor_m=1000)
    # On the route; the off-route fixes were thinned from a full journal: only the seal's events say it.
    pipeline.handle_uplink(seal.records(clock.advance(600), [(43.2, 77.0)]), "t")
    res = pipeline.handle_uplink(seal.event(clock.advance(600), "ROUTE_DEVIATION", value=4200), "t")
    (dev,) = res.events
    assert dev["kind"] == "ROUTE_DEVIATION" and dev["alarm"] and dev["details"]["distance_m"] == 4200
    assert dev["details"]["source"].startswith("seal event ROUTE_DEVIATION")
    # A fix the gateway measures off route while the seal's deviation is open: the same episode.
    res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.3, 77.1)] * 3), "t")
    assert "ROUTE_DEVIATION" not in kinds(res.events)
    res = pipeline.handle_uplink(seal.event(clock.advance(600), "ROUTE_RETURNED"), "t")
    assert kinds(res.events) == []  # the gateway still measures the truck outside: the detour goes on
    res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 77.1)] * 2), "t")
    assert [k for k in kinds(res.events) if k != "POSITION"] == ["ROUTE_RETURNED"]
    done = deactivate(pipeline, seal, clock, escort, deviations=1, deviation_first=int(clock.t),
                      deviation_max_m=4200)
    assert done["details"]["clean"] is False and "ROUTE_DEVIATION" in done["details"]["non_routine"]
    assert len(store.events(kind="ROUTE_DEVIATION")) == 1  # the seal's count matched: nothing raised again


def test_gnss_loss_over_three_hours_is_an_alarm_and_a_short_one_is_not(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    assert kinds(pipeline.handle_uplink(seal.event(clock.advance(600), "GNSS_LOST", value=300), "t").events) == []
    assert kinds(pipeline.handle_uplink(seal.event(clock.advance(600), "GNSS_REGAINED", value=900), "t").events) == []
    lost_at = clock.advance(600)
    pipeline.handle_uplink(seal.event(lost_at, "GNSS_LOST", value=300), "t")
    # Jammed GNSS, link up: the regained event says how long it lasted.
    res = pipeline.handle_uplink(seal.event(clock.advance(4 * HOUR), "GNSS_REGAINED", value=4 * HOUR + 300), "t")
    assert kinds(res.events) == ["GNSS_LOST", "GNSS_RESTORED"]
    lost = res.events[0]
    assert lost["alarm"] and lost["details"]["lost_since"] == ev.iso(lost_at - 300)
    assert lost["occurred_at"] == ev.iso(lost_at - 300 + 3 * HOUR)
    done = deactivate(pipeline, seal, clock, escort, gnss_losses=2, gnss_longest_s=4 * HOUR + 300,
                      gnss_longest_at=int(lost_at - 300))
    assert done["details"]["clean"] is False
    assert {(f["side"], f["kind"]) for f in done["details"]["findings"]} >= {("gateway", "GNSS_LOST"),
                                                                              ("seal", "gnss_lost")}
    assert len(store.events(kind="GNSS_LOST")) == 1


def test_jammed_gnss_with_the_link_up_is_an_alarm_at_three_hours(gw):
    """No fix for 4 h 10 min, the modem left alone: the seal keeps sending (heartbeats without fix)."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    jammed_at = clock.t
    pipeline.handle_uplink(seal.event(clock.advance(300), "GNSS_LOST", value=300), "t")
    alarms = []
    while clock.t < jammed_at + 4 * HOUR + 600:
        res = pipeline.handle_uplink(seal.state(clock.advance(15 * 60), active=True, escort_id=1, pos=None), "t")
        alarms += [e for e in res.events if e["kind"] == "GNSS_LOST"]
    (lost,) = alarms
    assert lost["details"]["lost_since"] == ev.iso(jammed_at)
    assert lost["occurred_at"] == ev.iso(jammed_at + 3 * HOUR)
    assert ev.parse_iso(lost["known_at"]) - (jammed_at + 3 * HOUR) <= 15 * 60  # the next frame after 3 h
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "GNSS_REGAINED", value=int(clock.t - jammed_at)), "t")
    assert kinds(res.events) == ["GNSS_RESTORED"]


def test_gnss_loss_known_only_from_the_evidence_is_raised_before_the_verdict(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    done = deactivate(pipeline, seal, clock, escort, gnss_losses=1, gnss_longest_s=5 * HOUR,
                      gnss_longest_at=int(clock.t - 6 * HOUR))
    (lost,) = store.events(kind="GNSS_LOST")
    assert lost["details"]["source"] == "seal evidence" and done["details"]["clean"] is False


def test_a_gnss_anomaly_is_an_alarm_and_makes_the_escort_not_clean(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "GNSS_ANOMALY", value=(1 << 24) | 120), "t")
    (a,) = res.events
    assert a["kind"] == "GNSS_ANOMALY" and a["alarm"]
    assert (a["details"]["anomaly"], a["details"]["detail"]) == ("time_backwards", 120)
    done = deactivate(pipeline, seal, clock, escort, anomalies=1, anomaly_first=int(clock.t),
                      anomaly_kinds={"time_backwards": True})
    assert done["details"]["clean"] is False and len(store.events(kind="GNSS_ANOMALY")) == 1


def test_one_opening_episode_is_one_alarm_and_a_new_episode_is_another(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    cut = lock_status(cable=False)
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "CABLE_CUT", value=1, status=cut), "t")
    (first,) = res.events
    assert first["kind"] == "UNAUTHORIZED_OPENING" and first["details"]["episode"] == 1
    # Clause 15: high-risk from the first non-routine situation, not only at the verdict.
    assert pipeline.status(escort_id=first["escort_id"])[0]["high_risk"] is True
    # The housing opens too, then closes again, while the cable stays cut: the same episode.
    both = lock_status(cable=False, housing=False)
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "HOUSING_OPENED", value=1, status=both), "t")
    assert kinds(res.events) == ["HOUSING_OPENED"]
    for status in (both, cut, cut):
        res = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)], status=status), "t")
        assert [k for k in kinds(res.events) if k != "POSITION"] == []
    res = pipeline.handle_uplink(seal.state(clock.advance(60), active=True, escort_id=first["escort_id"],
                                            cable=False), "t")
    assert kinds(res.events) == []
    # Both closed: the episode ends (LOCK_RESTORED: episode 1, both bits set).
    pipeline.handle_uplink(seal.event(clock.advance(60), "LOCK_RESTORED", value=(1 << 8) | 0xC0), "t")
    # A record from before the LOCK_RESTORED arriving late raises nothing.
    res = pipeline.handle_uplink(seal.records(clock.advance(5), [(43.2, 76.9)], status=cut,
                                              first_rseq=seal.rseq - 1), "t")
    assert [k for k in kinds(res.events) if k != "POSITION"] == []
    # A new episode: the lock bits of a record come first (no event yet), then the seal's CABLE_CUT 2.
    res = pipeline.handle_uplink(seal.records(clock.advance(600), [(43.25, 76.95)], status=cut), "t")
    (second,) = [e for e in res.events if e["kind"] == "UNAUTHORIZED_OPENING"]
    assert second["details"]["episode"] == 2 and second["details"]["source"].startswith("record")
    res = pipeline.handle_uplink(seal.event(clock.advance(1), "CABLE_CUT", value=2, status=cut), "t")
    assert kinds(res.events) == []
    assert len(store.events(kind="UNAUTHORIZED_OPENING")) == 2


def test_an_opening_without_a_fix_is_placed_at_the_last_known_position_flagged_stale(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock, pos=(43.21, 76.91))
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "CABLE_CUT", value=1, pos=None,
                                            status=lock_status(cable=False)), "t")
    (alarm,) = res.events
    assert alarm["details"]["position_stale"] is True
    assert (alarm["position"]["lat"], alarm["position"]["lon"]) == (43.21, 76.91)


def test_an_opening_whose_events_were_lost_is_raised_from_the_seals_count(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "CABLE_CUT", value=1, status=lock_status(cable=False)), "t")
    pipeline.handle_uplink(seal.event(clock.advance(60), "LOCK_RESTORED", value=(1 << 8) | 0xC0), "t")
    seal.rseq += 2  # episode 2's CABLE_CUT and LOCK_RESTORED, lost with a damaged journal sector...
    done = deactivate(pipeline, seal, clock, escort, openings=2, opening_first=int(clock.t - 120),
                      opening_inputs={"cable": True}, thinned=2)  # ...and the seal says so
    openings = store.events(kind="UNAUTHORIZED_OPENING")
    assert [o["details"]["episode"] for o in openings] == [1, 2]
    assert openings[1]["details"]["source"] == "seal evidence" and done["details"]["clean"] is False


def test_a_cable_episode_then_a_housing_episode_reconcile_to_one_alarm_each(gw):
    """The seal's evidence counts 2 openings (cable and housing over the escort): both were
    alarmed from their events, so the verdict raises nothing more (found by the verdict property)."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    pipeline.handle_uplink(seal.event(clock.advance(60), "CABLE_CUT", value=1, status=lock_status(cable=False)), "t")
    pipeline.handle_uplink(seal.event(clock.advance(1), "LOCK_RESTORED", value=(1 << 8) | 0xC0), "t")
    pipeline.handle_uplink(seal.event(clock.advance(300), "HOUSING_OPENED", value=2,
                                      status=lock_status(housing=False)), "t")
    pipeline.handle_uplink(seal.event(clock.advance(1), "LOCK_RESTORED", value=(2 << 8) | 0xC0), "t")
    done = deactivate(pipeline, seal, clock, escort, openings=2, opening_first=int(clock.t - 302),
                      opening_inputs={"cable": True, "housing": True})
    assert done["details"]["clean"] is False
    assert len(store.events(kind="UNAUTHORIZED_OPENING")) == 1 and len(store.events(kind="HOUSING_OPENED")) == 1
