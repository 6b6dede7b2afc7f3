"""Counters cannot lock a seal out (issue 9 item 9): the boot counter is a u32 compared as a wide
integer; a seal refused again and again raises SEAL_REJECTING; an admin can reset its replay window."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, make_pipeline

from navseal.gateway.auth import Actor
from navseal.gateway.pipeline import Pipeline

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

ADMIN = Actor(user="root", role="admin", via="token")


def test_the_boot_counter_is_compared_wide_past_16_bits_up_to_u32(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001, boot=65_535)
    pipeline.provision_seal(1001, seal.key)
    assert pipeline.handle_uplink(seal.hello(clock.t), "t").result == "accepted"
    seal.boot = 65_536  # where a 16-bit counter wrapped to 0 and every frame was "replayed"
    seal.seq = 0
    assert pipeline.handle_uplink(seal.hello(clock.advance(1)), "t").result == "accepted"
    seal.boot = 0xFFFFFFFF
    seal.seq = 0
    assert pipeline.handle_uplink(seal.hello(clock.advance(1)), "t").result == "accepted"
    seal.boot = 70_000
    assert pipeline.handle_uplink(seal.hello(clock.advance(1)), "t").reason == "replayed"


def test_a_seal_refused_in_a_row_raises_one_alarm_and_its_next_good_frame_ends_it(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path, seal_rejecting_after=5)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    old = seal.records(clock.advance(60), [(43.2, 76.9)])  # captured, never delivered
    forged_by = FakeSeal(1001, key=bytes(32))
    newer = seal.records(clock.advance(60), [(43.2, 76.9)])
    pipeline.handle_uplink(newer, "t")
    results = []
    for i in range(12):  # an old frame re-sent (replayed), and frames under a wrong key (forged)
        frame = forged_by.records(clock.advance(30), [(43.2, 76.9)]) if i % 2 else old
        results.append(pipeline.handle_uplink(frame, "t").reason)
    assert set(results) == {"replayed", "bad_mac"}
    (alarm,) = store.events(kind="SEAL_REJECTING")
    assert alarm["alarm"] and alarm["escort_id"] == escort["escort_id"] and len(alarm["notify"]) == 2
    assert alarm["details"]["refused_in_a_row"] == 6 and alarm["details"]["threshold"] == 5
    assert pipeline.metrics()["events"]["SEAL_REJECTING"] == 1
    assert pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)]), "t").result == "accepted"
    (ended,) = store.events(kind="SEAL_REJECTING_ENDED")
    assert ended["details"]["refused_in_a_row"] == 12 and not ended["alarm"]
    # A short run (under the threshold) raises nothing.
    for _ in range(3):
        pipeline.handle_uplink(old, "t")
    pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)]), "t")
    assert len(store.events(kind="SEAL_REJECTING")) == 1


def test_an_admin_resets_the_replay_window_of_a_seal_whose_counters_restarted(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001, boot=900)
    pipeline.provision_seal(1001, seal.key)
    stored = seal.hello(clock.t)
    assert pipeline.handle_uplink(stored, "t").result == "accepted"
    seal.boot, seal.seq = 1, 0  # a replaced flash: the counters start again
    assert pipeline.handle_uplink(seal.hello(clock.advance(1)), "t").reason == "replayed"
    answer = pipeline.reset_replay_window(1001, actor=ADMIN)
    assert answer["previous"] == {"boot": 900, "seq": 1} and answer["refused_in_a_row"] == 1
    (row,) = [r for r in store.audit_rows() if r["action"] == "seal.reset_replay"]
    assert row["actor_user"] == "root" and row["target"] == "seal:1001"
    # A frame stored before the reset is still a duplicate, not a new proof of life.
    assert pipeline.handle_uplink(stored, "t").result == "duplicate"
    assert pipeline.handle_uplink(seal.hello(clock.advance(1)), "t").result == "accepted"
    assert pipeline.handle_uplink(seal.hello(clock.advance(1)), "t").result == "accepted"


def test_a_run_of_refusals_survives_a_restart_and_is_one_run_for_gateways_sharing_the_store(tmp_path):
    """The run is the seal's, in the store: a restarted gateway goes on counting it, and two
    gateways on one store (frames of a seal spread over them by a shared subscription) count one
    run, raise one alarm, and whichever gets the next good frame ends it."""
    first, store, clock = make_pipeline(tmp_path, seal_rejecting_after=5)
    seal = FakeSeal(1001)
    activate(first, seal, clock)
    old = seal.records(clock.advance(60), [(43.2, 76.9)])
    first.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)]), "t")
    for _ in range(4):
        assert first.handle_uplink(old, "t").reason == "replayed"
    # The gateway restarts (a new pipeline on the same store): the run goes on from 4.
    second = Pipeline(store, first.config, clock)
    third = Pipeline(store, first.config, clock)  # and another instance shares the store
    assert second.handle_uplink(old, "t").reason == "replayed"
    assert not store.events(kind="SEAL_REJECTING")
    assert third.handle_uplink(old, "t").reason == "replayed"  # the 6th in a row, on another instance
    (alarm,) = store.events(kind="SEAL_REJECTING")
    assert alarm["details"]["refused_in_a_row"] == 6
    for gw in (second, third, second):
        gw.handle_uplink(old, "t")
    assert len(store.events(kind="SEAL_REJECTING")) == 1
    assert second.reset_replay_window(1001, actor=ADMIN)["refused_in_a_row"] == 9
    # The good frame lands on the instance that never saw a refusal itself after its start.
    fourth = Pipeline(store, first.config, clock)
    assert fourth.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)]), "t").result == "accepted"
    (ended,) = store.events(kind="SEAL_REJECTING_ENDED")
    assert ended["details"]["refused_in_a_row"] == 9
    assert first.reset_replay_window(1001, actor=ADMIN)["refused_in_a_row"] == 0
