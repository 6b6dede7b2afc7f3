"""Retention (clause 18.3): five years counted from the day after deactivation; purge only that.

All in virtual time: an escort is driven through the real pipeline (activation, track, alarms,
deactivation), then the clock jumps years ahead."""

import datetime as dt

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, activation_request, make_pipeline

from navseal.gateway.events import iso
from navseal.gateway import retention
from navseal.gateway.retention import retention_end

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

KZ = dt.timezone(dt.timedelta(hours=5))


def ts(y, m, d, hh=0, mm=0, ss=0, tz=KZ):
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=tz).timestamp()


@pytest.mark.parametrize("deactivated, first_purge", [
    # ordinary day: kept through 2031-03-10 (local), purgeable from 2031-03-11 00:00 local
    (ts(2026, 3, 10, 14, 0), ts(2031, 3, 11)),
    # one second before local midnight is still that day
    (ts(2026, 3, 10, 23, 59, 59), ts(2031, 3, 11)),
    # 19:30 UTC on 10 March is already 11 March in Kazakhstan (UTC+5)
    (dt.datetime(2026, 3, 10, 19, 30, tzinfo=dt.timezone.utc).timestamp(), ts(2031, 3, 12)),
    # deactivated on a leap day: the period starts 1 March 2028 -> ends with 28 Feb / 1 Mar 2033
    (ts(2028, 2, 29, 12), ts(2033, 3, 1)),
    # deactivated 28 Feb of a leap year: the period starts on 29 Feb 2028; the later reading wins
    (ts(2028, 2, 28, 12), ts(2033, 3, 1)),
    # deactivated 28 Feb 2027: day after is 1 March 2027 -> 1 March 2032 (not 29 Feb 2032)
    (ts(2027, 2, 28, 12), ts(2032, 3, 1)),
    # last day of the year
    (ts(2026, 12, 31, 8), ts(2032, 1, 1)),
])
def test_retention_end_date_arithmetic(deactivated, first_purge):
    assert retention_end(deactivated) == first_purge


def test_purge_deletes_only_escorts_past_retention(tmp_path):
    # The other classes' periods out of the way (test_every_class_of_data_has_its_end covers them).
    pipeline, store, clock = make_pipeline(tmp_path, retention_unescorted_days=36500, retention_escort_horizon_days=36500)
    old, young, open_ = FakeSeal(11), FakeSeal(12), FakeSeal(13)

    def run_escort(seal, deactivate=True):
        e = activate(pipeline, seal, clock)
        for i in range(3):
            pipeline.handle_uplink(seal.records(clock.advance(600), [(43.2 + i / 100, 76.9)] * 5), "t")
        pipeline.handle_uplink(seal.event(clock.advance(10), "HOUSING_OPENED", status={
            "cable_intact": True, "housing_closed": False, "battery_pct": 70}), "t")
        if deactivate:
            pipeline.request_deactivation(seal.seal_id, e["declaration"], e["vehicle"])
            (cmd,) = [b for _, b in pipeline.tick(clock.advance(1))]
            pipeline.handle_uplink(seal.command_result(clock.advance(5), cmd), "t")
        return pipeline.status(escort_id=e["escort_id"])[0]

    e_old = run_escort(old)
    clock.advance(400 * 86400)  # a year later
    e_young = run_escort(young)
    e_open = run_escort(open_, deactivate=False)
    # Records of a seal with no escort (an idle seal's heartbeat track) are not escort data.
    idle = FakeSeal(14)
    pipeline.provision_seal(14, idle.key)
    pipeline.handle_uplink(idle.records(clock.advance(5), [(43.0, 76.0)]), "t")
    before = store.counts()
    assert e_old["status"] == e_young["status"] == "deactivated" and e_open["status"] == "active"

    end_old = retention_end(store._read("SELECT deactivated_at FROM escorts WHERE escort_id = ?",
                                        (e_old["escort_id"],))[0]["deactivated_at"])
    # One second before the end: nothing goes.
    assert sum(pipeline.purge(end_old - 1).values()) == 0
    assert store.counts() == before
    report = pipeline.purge(end_old)
    assert report["escorts"] == 1 and report["records"] == 3 * 5 + 2 and report["events"] > 0
    assert report["commands"] == 2 and report["outbox"] == report["events"]
    assert report["uplinks"] > 0
    after = store.counts()
    assert after["escorts"] == before["escorts"] - 1
    assert after["records"] == before["records"] - report["records"]
    assert pipeline.status(escort_id=e_old["escort_id"]) == []
    assert store.records(11) == []
    assert store.events(escort_id=e_old["escort_id"]) == []
    # Everything else is intact.
    assert {e["escort_id"] for e in pipeline.status(seal_id=12) + pipeline.status(seal_id=13)} == {
        e_young["escort_id"], e_open["escort_id"]}
    assert len(store.records(14)) == 1
    assert store.seal_key(11) is not None  # the seal itself is not escort data
    # Twenty years on: the young one goes too, the open escort (horizon: 100 years) does not.
    report = pipeline.purge(clock.t + 20 * 366 * 86400)
    assert report["escorts"] == 1
    assert [e["status"] for e in pipeline.status(seal_id=13)] == ["active"]
    assert len(store.records(13)) > 0 and len(store.records(14)) == 1


def test_every_class_of_data_has_its_end(tmp_path, monkeypatch):
    """Records and frames outside escorts go after 90 days; an escort never deactivated (open past its
    period, or failed) expires after the horizon with ESCORT_EXPIRED, once, and its data goes five
    years after that, like a deactivated one's."""
    pipeline, store, clock = make_pipeline(tmp_path, retention_escort_horizon_days=365)
    idle, open_, failed = FakeSeal(21), FakeSeal(22), FakeSeal(23)
    pipeline.provision_seal(21, idle.key)
    pipeline.handle_uplink(idle.records(clock.advance(5), [(43.0, 76.0)] * 3), "t")
    e_open = activate(pipeline, open_, clock, hours=24)
    pipeline.provision_seal(23, failed.key)
    e_failed = pipeline.request_activation(activation_request(23, t0=clock.t))
    res = pipeline.handle_uplink(failed.hello(clock.advance(1)), "t")
    (cmd,) = [b for _, b in res.downlink if failed.decode(b).type == "ACTIVATE"]
    pipeline.handle_uplink(failed.command_result(clock.advance(1), cmd, "LOCK_OPEN"), "t")
    assert pipeline.status(escort_id=e_failed["escort_id"])[0]["status"] == "failed"
    idle_records, idle_uplinks = len(store.records(21)), store._read("SELECT COUNT(*) AS n FROM uplinks WHERE seal_id = 21")[0]["n"]
    assert idle_records == 3 and idle_uplinks == 1

    # Younger idle data, received 30 days later, interleaved in key order with the old.
    clock.advance(30 * 86400)
    pipeline.handle_uplink(idle.records(clock.t, [(43.0, 76.0)] * 2), "t")
    pipeline.handle_uplink(idle.hello(clock.t), "t")
    # 89 days after the first: nothing goes. 91 days on: the first records and frames of the idle
    # seal go, nothing else (looked at two rows per transaction: the walk goes on past young rows).
    monkeypatch.setattr(retention, "UNESCORTED_BATCH", 2)
    assert sum(pipeline.purge(clock.t + 59 * 86400).values()) == 0
    report = pipeline.purge(clock.t + 61 * 86400)
    assert (report["unescorted_records"], report["unescorted_uplinks"]) == (3, 1)
    assert [r["rseq"] for r in store.records(21)] == [4, 5]
    report = pipeline.purge(clock.t + 91 * 86400)
    assert (report["unescorted_records"], report["unescorted_uplinks"]) == (2, 2)
    assert report["escorts"] == report["escorts_expired"] == 0
    assert store.records(21) == [] and len(store.records(22)) > 0
    assert store.seal_key(21) is not None  # the seal itself stays

    # A year and a day after the period's end: both escorts expire, each with ESCORT_EXPIRED, once.
    at = clock.t + 367 * 86400
    report = pipeline.purge(at)
    assert report["escorts_expired"] == 2 and report["escorts"] == 0
    expired = store.events(kind="ESCORT_EXPIRED")
    assert sorted((e["escort_id"], e["details"]["status"]) for e in expired) == [
        (e_open["escort_id"], "active"), (e_failed["escort_id"], "failed")]
    assert all(e["details"]["retention_until"] == iso(retention_end(at)) for e in expired)
    assert pipeline.purge(at + 86400)["escorts_expired"] == 0  # once
    assert len(store.events(kind="ESCORT_EXPIRED")) == 2
    assert [e["status"] for e in pipeline.status(seal_id=22)] == ["active"]  # its status is left as it is

    # Their data goes when the five years from the expiry are over, not a second before.
    end = retention_end(at)
    assert pipeline.purge(end - 1)["escorts"] == 0
    report = pipeline.purge(end)
    assert report["escorts"] == 2 and report["records"] > 0 and report["events"] >= 2
    assert store.records(22) == [] and pipeline.status(escort_id=e_open["escort_id"]) == []
    assert store.events(kind="ESCORT_EXPIRED") == []
