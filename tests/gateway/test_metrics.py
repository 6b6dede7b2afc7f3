"""Metrics on prometheus_client: one registry per pipeline, counters exposed as counters, the two
histograms, and `Pipeline.metrics()` read from the same collectors that `/metrics` renders."""

import pytest
from pipeline_support import FakeSeal, activate, lock_status, make_pipeline
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from navseal.gateway.metrics import PIPELINE_COUNTERS

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")


def _families(pipeline):
    return {f.name: f for f in text_string_to_metric_families(generate_latest(pipeline.registry).decode())}


def test_two_pipelines_in_one_process_count_separately(tmp_path_factory):
    a, _, _ = make_pipeline(tmp_path_factory.mktemp("a"))
    b, _, _ = make_pipeline(tmp_path_factory.mktemp("b"))
    a.handle_uplink(b"garbage!", "t")
    a.handle_uplink(b"garbage!", "t")
    b.handle_uplink(b"NS", "t")
    assert a.metrics()["frames"] == {("rejected", "truncated"): 2}
    assert b.metrics()["frames"] == {("rejected", "truncated"): 1}
    assert a.registry is not b.registry


def test_rendered_families_are_the_snapshot(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)  # ACTIVATED and POSITION events, commands sent and acked
    pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9 + i / 1000) for i in range(5)]), "t")
    pipeline.handle_uplink(seal.event(clock.advance(1), "CABLE_CUT", status=lock_status(cable=False)), "t")
    pipeline.handle_uplink(b"\x00" * 40, "t")
    snap = pipeline.metrics()
    families = _families(pipeline)

    assert families["navseal_frames"].type == "counter"
    frames = {(s.labels["result"], s.labels["reason"]): s.value
              for s in families["navseal_frames"].samples if s.name == "navseal_frames_total"}
    assert frames == snap["frames"] and snap["frames"][("rejected", "bad_magic")] == 1
    events = {s.labels["kind"]: s.value for s in families["navseal_events"].samples if s.name.endswith("_total")}
    assert events == snap["events"] and snap["events"]["UNAUTHORIZED_OPENING"] == 1
    for name in PIPELINE_COUNTERS:  # every core counter is a Prometheus counter of its own
        family = families[f"navseal_{name}"]
        assert family.type == "counter"
        (total,) = [s.value for s in family.samples if s.name == f"navseal_{name}_total"]
        assert total == snap["counters"][name]
    assert snap["counters"]["records_committed"] == store.counts()["records"]
    assert snap["counters"]["commands_acked"] == 1
    for family, key in (("navseal_ingest_seconds", "ingest_s"), ("navseal_alarm_latency_seconds", "alarm_latency_s")):
        assert families[family].type == "histogram"
        buckets = [(float(s.labels["le"]), s.value) for s in families[family].samples if s.name.endswith("_bucket")]
        assert buckets == snap[key]["buckets"]
    assert snap["ingest_s"]["count"] == sum(snap["frames"].values())
    assert snap["alarm_latency_s"]["count"] == 1  # the opening; ACTIVATED and POSITION are not alarms
