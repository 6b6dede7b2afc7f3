"""Clause 11 per sink: an alarm a sink has not taken within notify_deadline_s raises NOTIFY_OVERDUE,
once per alarm and sink."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, lock_status, make_pipeline

from navseal.gateway import events as ev
from navseal.gateway.config import SinkConfig

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

HOUR = 3600


def test_an_alarm_not_delivered_to_a_sink_within_the_hour_is_overdue_there_once(tmp_path):
    sinks = [SinkConfig(name="customs", type="jsonl", path=str(tmp_path / "a.jsonl")),
             SinkConfig(name="risk", type="jsonl", path=str(tmp_path / "b.jsonl"))]
    pipeline, store, clock = make_pipeline(tmp_path, sinks=sinks)
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    res = pipeline.handle_uplink(seal.event(clock.advance(60), "CABLE_CUT", value=1,
                                            status=lock_status(cable=False)), "t")
    (alarm,) = [e for e in res.events if e["alarm"]]
    known = clock.t
    # The customs sink takes everything at once; the risk sink is down.
    head = store.outbox_fetch("customs", 1000)[-1].outbox_id
    store.outbox_mark_delivered("customs", head, clock.t)
    assert pipeline.next_deadline() is None or pipeline.next_deadline() > known  # nothing due yet
    pipeline.tick(clock.advance(60))  # the check learns the alarm's deadline
    assert pipeline.next_deadline() == known + HOUR
    pipeline.tick(known + HOUR - 30)
    assert [e for e in pipeline.last_tick_events if e["kind"] == "NOTIFY_OVERDUE"] == []
    clock.t = known + HOUR + 1
    pipeline.tick(clock.t)
    (late,) = [e for e in pipeline.last_tick_events if e["kind"] == "NOTIFY_OVERDUE"]
    assert late["details"]["alarm_event_id"] == alarm["event_id"] and late["details"]["sink"] == "risk"
    assert late["occurred_at"] == ev.iso(known + HOUR) and late["escort_id"] == alarm["escort_id"]
    assert late["alarm"] is False  # told to the operator, not a new alarm for the offices
    pipeline.tick(clock.advance(3 * HOUR))
    assert len(store.events(kind="NOTIFY_OVERDUE")) == 1  # once per alarm and sink
