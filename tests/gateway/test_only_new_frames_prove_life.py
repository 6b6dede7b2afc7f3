"""Only new authenticated frames prove a seal alive (issue 9 item 8): a captured frame re-sent by
someone who jams the seal never refreshes last-seen nor postpones SIGNAL_LOST, and a seal's frame
sent on another seal's MQTT topic is refused and counted."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, make_pipeline

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

HOUR = 3600


def test_a_replayed_byte_copy_does_not_postpone_signal_lost(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    captured = seal.records(clock.advance(60), [(43.2, 76.9)])
    assert pipeline.handle_uplink(captured, "mqtt:1001").result == "accepted"
    last_heard = clock.t
    # The seal is jammed; the attacker re-sends the captured frame every 20 minutes.
    for _ in range(12):
        res = pipeline.handle_uplink(captured, "mqtt:1001")
        assert res.result == "duplicate" and res.events == []
        pipeline.tick(clock.advance(20 * 60))
        if pipeline.last_tick_events:
            break
    (lost,) = pipeline.last_tick_events
    assert lost["kind"] == "SIGNAL_LOST" and lost["details"]["last_seen_at"].startswith("2025-11-26T00:01")
    with store.transaction() as tx:
        assert tx.get_seal(1001)["last_seen_at"] == last_heard
    assert pipeline.next_deadline() is None or pipeline.next_deadline() > clock.t


def test_a_frame_on_another_seals_topic_is_refused_and_counted(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    a, b = FakeSeal(1001), FakeSeal(1002)
    activate(pipeline, a, clock)
    pipeline.provision_seal(1002, b.key)
    frame = a.records(clock.advance(60), [(43.2, 76.9)])
    res = pipeline.handle_uplink(frame, "mqtt:1002")  # seal 1001's frame through seal 1002's topic
    assert (res.result, res.reason, res.downlink) == ("rejected", "topic_mismatch", [])
    assert pipeline.metrics()["counters"]["frames_topic_mismatch"] == 1
    assert pipeline.metrics()["frames"][("rejected", "topic_mismatch")] == 1
    assert b"navseal_frames_topic_mismatch_total 1.0" in _exposition(pipeline)
    # The same frame on its own topic is fine; other transports carry no topic.
    assert pipeline.handle_uplink(frame, "mqtt:1001").result == "accepted"
    assert pipeline.handle_uplink(a.records(clock.advance(60), [(43.2, 76.9)]), "serial:/dev/ttyUSB0").accepted


def _exposition(pipeline) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(pipeline.registry)
