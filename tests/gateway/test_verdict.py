"""The clause 13 verdict on complete evidence (gateway/verdict.py), tried as a smuggler would:
open the cargo inside a coverage gap and have the seal deactivated before its backlog arrives."""

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, downlinks_of, lock_status, make_pipeline, reencode

from navseal.gateway import events as ev
from navseal.protocol import evidence

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

HOUR = 3600
MIN = 60


def kinds(events):
    return [e["kind"] for e in events]


@pytest.fixture
def gw(tmp_path):
    return make_pipeline(tmp_path)


class Journal:
    """What the seal journals inside the gap, sent only when it is back in coverage (frames are
    built at send time, as the seal builds them, so their (boot, seq) grow in sending order)."""

    def __init__(self, seal: FakeSeal) -> None:
        self.seal = seal
        self.items = []  # (rseq, kind, time, extra)

    def fixes(self, t: float, n: int, *, cable: bool = True, step: int = 10 * MIN) -> list[int]:
        out = []
        for i in range(n):
            self.seal.rseq += 1
            self.items.append((self.seal.rseq, "FIX", t + i * step, {"cable": cable}))
            out.append(self.seal.rseq)
        return out

    def event(self, t: float, code: str, value: int = 0, *, cable: bool = True) -> int:
        self.seal.rseq += 1
        self.items.append((self.seal.rseq, code, t, {"value": value, "cable": cable}))
        return self.seal.rseq

    def frames(self, rseqs) -> list[bytes]:
        """Frame builders for these journal entries: one RECORDS per run of fixes, one EVENT per
        event; call each when it is sent."""
        keep = set(rseqs)
        wanted = [i for i in self.items if i[0] in keep]
        out, run = [], []

        def flush():
            if run:
                recs = [{"dt": int(t - run[0][2]), "lat": 432_000_000, "lon": 769_000_000, "speed": 600,
                         "course": 45, "fix": {"quality": 1, "satellites": 9}, "hdop": 9,
                         "status": lock_status(cable=x["cable"])} for _, _, t, x in run]
                payload = {"first_rseq": run[0][0], "base_time": int(run[0][2]), "count": len(recs), "records": recs}
                out.append(lambda p=payload, t=run[-1][2]: self.seal.frame("RECORDS", p, time=t))
                run.clear()

        for item in wanted:
            if item[1] == "FIX" and (not run or run[-1][0] + 1 == item[0]):
                run.append(item)
                continue
            flush()
            if item[1] == "FIX":
                run.append(item)
                continue
            rseq, code, t, x = item
            payload = {"rseq": rseq, "time": int(t), "code": code, "lat": 432_000_000, "lon": 769_000_000,
                       "status": lock_status(cable=x["cable"]), "value": x["value"]}
            out.append(lambda p=payload, t=t: self.seal.frame("EVENT", p, time=t))
        flush()
        return out


def smuggler_timeline(pipeline, seal, clock):
    """Activation at t0; in coverage for an hour; a 2 h 55 min gap from t0 + 1 h; the cable cut at
    t0 + 1 h 30 min and left cut; deactivation requested at t0 + 2 h, inside the gap. Returns the
    escort, the journal of the gap and the seal's evidence block (what it really saw)."""
    escort = activate(pipeline, seal, clock)
    t0 = clock.t
    for k in range(1, 7):
        pipeline.handle_uplink(seal.records(clock.advance(10 * MIN), [(43.2, 76.9)]), "t")
    assert clock.t == t0 + HOUR
    j = Journal(seal)
    j.fixes(t0 + HOUR + 10 * MIN, 2)
    cut = t0 + HOUR + 30 * MIN
    j.event(cut, "CABLE_CUT", 1, cable=False)
    j.fixes(cut + 10 * MIN, 3, cable=False)
    clock.t = t0 + 2 * HOUR
    pipeline.request_deactivation(seal.seal_id, escort["declaration"], escort["vehicle"])
    block = evidence(escort_id=escort["escort_id"], start_rseq=0, hw_rseq=seal.rseq, openings=1,
                     opening_first=int(cut), opening_inputs={"cable": True},
                     flags={"closed": True, "opening_now": True})
    clock.t = t0 + HOUR + 2 * HOUR + 55 * MIN  # back in coverage
    return escort, j, block, cut


def test_deactivated_only_once_the_backlog_is_in_and_the_opening_is_raised(gw):
    """A seal that obeys DEACTIVATE at once (journal records still unsent): the gateway waits for them."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort, journal, block, cut = smuggler_timeline(pipeline, seal, clock)
    first, cut_event, after = journal.frames(journal.items[i][0] for i in range(len(journal.items)))
    res = pipeline.handle_uplink(first(), "t")  # the first backlog frame: its answer carries DEACTIVATE
    (cmd,) = downlinks_of(res, seal, "DEACTIVATE")
    res = pipeline.handle_uplink(seal.command_result(clock.advance(2), reencode(seal, cmd), evidence_block=block), "t")
    assert "DEACTIVATED" not in kinds(res.events)  # no verdict from the gateway's stale view
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "evidence_pending"
    res = pipeline.handle_uplink(cut_event(), "t")
    (opening,) = res.events
    assert opening["kind"] == "UNAUTHORIZED_OPENING" and opening["occurred_at"] == ev.iso(cut)
    assert opening["details"]["episode"] == 1 and opening["escort_id"] == escort["escort_id"]
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "evidence_pending"  # 3 records to come
    res = pipeline.handle_uplink(after(), "t")
    done = [e for e in res.events if e["kind"] == "DEACTIVATED"]
    assert len(done) == 1 and done[0]["details"]["clean"] is False
    d = done[0]["details"]
    assert "gateway: UNAUTHORIZED_OPENING raised during the escort" in d["reasons"]
    assert {f["side"] for f in d["findings"]} == {"seal", "gateway"}
    assert any(r.startswith("seal: 1 opening episode(s) (cable)") for r in d["reasons"])
    assert d["evidence"] == {"start_rseq": 0, "hw_rseq": seal.rseq, "thinned": 0, "records_missing": 0}
    assert d["high_risk"] is True and kinds(res.events)[-1] == "RISK_MARKED"
    assert len(store.events(kind="UNAUTHORIZED_OPENING")) == 1  # the opening once, never twice
    row = pipeline.status(escort_id=escort["escort_id"])[0]
    assert (row["status"], row["clean"], row["high_risk"]) == ("deactivated", False, True)


def test_an_honest_seal_refuses_until_drained_and_the_verdict_follows_at_once(gw):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort, journal, block, cut = smuggler_timeline(pipeline, seal, clock)
    frames = journal.frames(i[0] for i in journal.items)
    refusals = 0
    for f in frames:
        res = pipeline.handle_uplink(f(), "t")
        for cmd in downlinks_of(res, seal, "DEACTIVATE"):  # the seal refuses while records are unsent
            res = pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, cmd), "JOURNAL_PENDING",
                                                             state="ACTIVE", escort_id=escort["escort_id"]), "t")
            assert downlinks_of(res, seal, "DEACTIVATE") == []  # not in the answer to the refusal
            refusals += 1
    assert refusals >= 1 and store.events(kind="DEACTIVATED") == []
    res = pipeline.handle_uplink(seal.state(clock.advance(60), active=True, escort_id=escort["escort_id"],
                                            cable=False, evidence_block=dict(block, flags={"closed": False,
                                            "opening_now": True, "deviating_now": False, "gnss_lost_now": False})), "t")
    (cmd,) = downlinks_of(res, seal, "DEACTIVATE")  # with the answer to the seal's next frame
    res = pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, cmd), evidence_block=block), "t")
    (done, risk) = res.events
    assert done["kind"] == "DEACTIVATED" and done["details"]["clean"] is False and risk["kind"] == "RISK_MARKED"
    assert len(store.events(kind="UNAUTHORIZED_OPENING")) == 1


def test_evidence_that_never_comes_gives_a_verdict_at_the_deadline_and_late_records_still_count(gw):
    """The seal confirms with records missing that never come before the clause 14 hour ends:
    DEACTIVATED not clean at the deadline, the opening raised from the seal's evidence; the backlog
    that arrives later is attributed to the escort and raises no second alarm."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort, journal, block, cut = smuggler_timeline(pipeline, seal, clock)
    first, cut_event, after = journal.frames(i[0] for i in journal.items)
    pipeline.tick(clock.t)  # the hour since the request passed while the truck was out of coverage
    assert kinds(pipeline.last_tick_events) == ["DEACTIVATION_OVERDUE"]
    res = pipeline.handle_uplink(first(), "t")
    (cmd,) = downlinks_of(res, seal, "DEACTIVATE")
    pipeline.handle_uplink(seal.command_result(clock.advance(2), reencode(seal, cmd), evidence_block=block), "t")
    assert pipeline.next_deadline() <= clock.t
    pipeline.tick(clock.advance(1))
    got = pipeline.last_tick_events
    assert kinds(got) == ["UNAUTHORIZED_OPENING", "DEACTIVATED", "RISK_MARKED"]
    assert got[0]["details"]["source"] == "seal evidence" and got[0]["occurred_at"] == ev.iso(cut)
    d = got[1]["details"]
    assert d["clean"] is False and d["within_deadline"] is False and d["evidence"]["records_missing"] == 4
    assert any(r.startswith("gateway: 4 journal record(s) in (0, ") for r in d["reasons"])
    # Late: attributed to the deactivated escort, evaluated, no second alarm for the same episode.
    pipeline.handle_uplink(cut_event(), "t")
    pipeline.handle_uplink(after(), "t")
    assert len(store.events(kind="UNAUTHORIZED_OPENING")) == 1
    records = store.records(1001, escort_id=escort["escort_id"])
    assert {r["rseq"] for r in records} >= {i[0] for i in journal.items}


def test_a_late_opening_the_seal_did_not_account_for_is_still_raised(gw):
    """A seal whose evidence says nothing happened, with records missing: the verdict at the
    deadline is not clean (evidence incomplete); the CABLE_CUT arriving after it still raises the alarm."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort, journal, block, cut = smuggler_timeline(pipeline, seal, clock)
    first, cut_event, after = journal.frames(i[0] for i in journal.items)
    lying = dict(block, openings=0, opening_first=0, opening_inputs={"cable": False, "housing": False},
                 flags={"closed": True, "opening_now": False, "deviating_now": False, "gnss_lost_now": False})
    res = pipeline.handle_uplink(first(), "t")
    (cmd,) = downlinks_of(res, seal, "DEACTIVATE")
    pipeline.handle_uplink(seal.command_result(clock.advance(2), reencode(seal, cmd), evidence_block=lying), "t")
    pipeline.tick(clock.advance(1))
    (done,) = [e for e in pipeline.last_tick_events if e["kind"] == "DEACTIVATED"]
    assert done["details"]["clean"] is False and done["details"]["evidence"]["records_missing"] == 4
    res = pipeline.handle_uplink(cut_event(), "t")
    (opening,) = res.events
    assert opening["kind"] == "UNAUTHORIZED_OPENING" and opening["escort_id"] == escort["escort_id"]
    assert opening["occurred_at"] == ev.iso(cut)


@pytest.mark.parametrize("thinned", [5, 4])
def test_thinned_records_count_as_accounted_for(gw, thinned):
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    pipeline.handle_uplink(seal.records(clock.advance(600), [(43.2, 76.9)] * 3), "t")  # rseq 2..4
    seal.rseq += 5  # five positions thinned from a full journal: never sent
    pipeline.handle_uplink(seal.records(clock.advance(600), [(43.2, 76.9)] * 2), "t")  # rseq 10..11
    pipeline.request_deactivation(1001, escort["declaration"], escort["vehicle"])
    (cmd,) = downlinks_of(pipeline.tick(clock.advance(1)), seal, "DEACTIVATE")
    block = evidence(escort_id=escort["escort_id"], hw_rseq=seal.rseq, thinned=thinned, flags={"closed": True})
    res = pipeline.handle_uplink(seal.command_result(clock.advance(5), reencode(seal, cmd), evidence_block=block), "t")
    if thinned == 5:  # every record stored or thinned: the verdict at once, clean
        (done,) = res.events
        assert done["kind"] == "DEACTIVATED" and done["details"]["clean"] is True
        assert done["details"]["high_risk"] is False and done["details"]["evidence"]["records_missing"] == 0
        return
    assert res.events == []  # one record neither stored nor thinned: wait for it
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "evidence_pending"
    pipeline.tick(clock.advance(HOUR))  # the clause 14 hour from the request is over
    done = [e for e in pipeline.last_tick_events if e["kind"] == "DEACTIVATED"]
    assert kinds(pipeline.last_tick_events) == ["DEACTIVATION_OVERDUE", "DEACTIVATED", "RISK_MARKED"]
    assert done[0]["details"]["clean"] is False and done[0]["details"]["evidence"]["records_missing"] == 1
    assert pipeline.next_deadline() is None


def test_a_seal_without_an_account_of_the_escort_is_not_clean(gw):
    """A flash wiped during the escort: the seal's block names no escort (0). No clean verdict."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    pipeline.request_deactivation(1001, escort["declaration"], escort["vehicle"])
    (cmd,) = downlinks_of(pipeline.tick(clock.advance(1)), seal, "DEACTIVATE")
    res = pipeline.handle_uplink(seal.command_result(clock.advance(5), reencode(seal, cmd),
                                                     evidence_block=evidence(escort_id=0)), "t")
    (done, risk) = res.events
    assert done["details"]["clean"] is False
    assert done["details"]["findings"] == [{"side": "seal", "kind": "evidence_missing",
                                            "text": "holds no account of this escort (its evidence names escort 0)"}]


def test_a_backlog_from_before_the_escort_was_armed_raises_nothing_on_it(gw):
    """Records belong to an escort by the seal's rseq range: the journal top when armed
    (start_rseq, in the ACTIVATE confirmation's evidence) bounds the new escort's records."""
    pipeline, store, clock = gw
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation({
        "seal_id": 1001, "declaration": "50508/261126/0001001", "vehicle": "123ABC02",
        "departure_office_code": "50508", "departure_office_name": "Almaty customs post",
        "dest_office_code": "50513", "dest_office_name": "Khorgos customs post",
        "period_start": clock.t, "period_end": clock.t + 48 * HOUR})
    res = pipeline.handle_uplink(seal.hello(clock.t), "t")
    (cmd,) = downlinks_of(res, seal, "ACTIVATE")
    old = lock_status(cable=False)  # the seal was open on the bench before this escort
    seal.rseq = 5  # its journal holds rseq 1..5 not yet sent
    block = evidence(escort_id=escort["escort_id"], start_rseq=5, hw_rseq=5)
    pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, cmd), evidence_block=block), "t")
    res = pipeline.handle_uplink(seal.records(clock.advance(1), [(43.2, 76.9)] * 5, status=old, first_rseq=1), "t")
    assert res.events == [] and res.result == "accepted"
    assert all(r["escort_id"] is None for r in store.records(1001))
    res = pipeline.handle_uplink(seal.records(clock.advance(10), [(43.2, 76.9)]), "t")  # rseq 6: this escort's
    assert [e["kind"] for e in res.events] == ["ACTIVATED", "POSITION"]
