"""Store-and-forward (clause 11): positions buffered while there is no coverage, then delivered
in order once acknowledged; a full journal thins positions and keeps every event."""

import pytest

from navseal.hil.frames import EscortData, rseqs
from navseal.hil.steps import GnssFeed, activate

pytestmark = pytest.mark.needs("gnss", "lock")


def drained(state) -> bool:
    return state.payload["journal_pending"] <= 1


def journal_frames(frames):
    return [f for f in frames if f.type in ("RECORDS", "EVENT")]


def test_coverage_loss_buffers_records_and_delivers_them_in_order(dut):
    activate(dut, EscortData(escort_id=8301))
    feed = GnssFeed(dut.bench.gnss, dut.bench.clock).start()
    try:
        dut.expect("RECORDS", timeout=5)
        before_gap = max(dut.delivered_rseqs())

        dut.coverage(False)
        # The seal keeps recording: wait (on frames the radio hole swallows) until the frame in
        # flight has been retransmitted with at least two positions in it.
        dut.wait_until(lambda: any(f.flags & 1 and len(rseqs(f)) >= 2 for f in dut.lost), timeout=10,
                       what="a retransmission while out of coverage")
        lost_rseqs = {r for f in dut.lost for r in rseqs(f)}
        assert lost_rseqs, "nothing was sent during the outage"
        mark = dut.mark()
        dut.coverage(True)

        # Everything sent during the outage arrives again, plus what was recorded meanwhile.
        dut.wait_until(lambda: set(dut.delivered_rseqs()) >= lost_rseqs, timeout=15,
                       what="records from the outage delivered")
        # Backlog drained: only the record of the current second may still be in flight.
        state = dut.expect("STATE", where=drained, timeout=10)
        assert state.payload["state"] == "ACTIVE"
    finally:
        feed.stop()

    delivered = dut.delivered_rseqs()
    # In order, no gaps, nothing delivered twice to the gateway's store after de-duplication.
    assert delivered == sorted(delivered)
    assert delivered == list(range(delivered[0], delivered[-1] + 1))
    assert max(delivered) > max(lost_rseqs) >= before_gap + 1
    # The first journal frame after the outage repeats the one in flight, marked RETRANSMIT.
    resent = journal_frames(dut.frames(since=mark))[0]
    assert resent.flags & 1, "the frame in flight was not marked RETRANSMIT"
    assert rseqs(resent)[0] == before_gap + 1
    # Positions keep their own fix times: never going back across the gap (repeats removed;
    # a report timer may record the same fix twice when it fires before the next one).
    times = {}
    for f in dut.frames("RECORDS"):
        for i, r in enumerate(f.payload["records"]):
            times.setdefault(f.payload["first_rseq"] + i, f.payload["base_time"] + r["dt"])
    ordered = [times[r] for r in sorted(times)]
    assert ordered == sorted(ordered)


@pytest.mark.needs("small_journal")
def test_journal_full_thins_positions_and_keeps_every_event(dut):
    activate(dut, EscortData(escort_id=8302))
    feed = GnssFeed(dut.bench.gnss, dut.bench.clock).start()
    try:
        dut.expect("RECORDS", timeout=5)
        first_hidden = max(dut.delivered_rseqs()) + 1
        # The modem knows it has no network (if the bench can say so): the seal then resends
        # as soon as coverage returns instead of after its backed-off retry timer.
        seal_knows = "link_state" in dut.bench.features
        dut.coverage(False, seal_knows=seal_knows)
        feed.wait_fixes(feed.fixes + 3)
        # Events in the middle of the positions: the housing opened (latched), then closed and
        # reopened a few times (each closing is a LOCK_RESTORED event while the alarm is latched).
        for _ in range(4):
            dut.bench.lock.set_lock(True, False)
            dut.bench.lock.set_lock(True, True)
        # Keep recording until the seal has thinned: its heartbeats say so. The gateway does
        # not hear them (no coverage) but the bench does, which is all the test needs to know.
        dut.wait_until(lambda: any(f.type == "STATE" and f.payload["alarms"]["JOURNAL_OVERFLOW"] for f in dut.lost),
                       timeout=30, what="journal overflow reported by the seal")
        dut.coverage(True, seal_knows=seal_knows)
        dut.expect("EVENT", code="JOURNAL_OVERFLOW", timeout=15)
        dut.expect("STATE", where=drained, timeout=15)
    finally:
        feed.stop()

    got = [f for f in dut.frames() if f.type in ("RECORDS", "EVENT")]
    events = {f.payload["code"]: f for f in got if f.type == "EVENT"}
    assert "HOUSING_OPENED" in events and "JOURNAL_OVERFLOW" in events
    restored = {f.payload["rseq"] for f in got if f.type == "EVENT" and f.payload["code"] == "LOCK_RESTORED"}
    assert len(restored) == 4, f"every LOCK_RESTORED event survives thinning, got {len(restored)}"
    # One event per thinning pass, each naming how many positions it dropped.
    thinned = [f.payload["value"] for f in got if f.type == "EVENT" and f.payload["code"] == "JOURNAL_OVERFLOW"]
    assert all(v > 0 for v in thinned), thinned
    delivered = [r for r in dut.delivered_rseqs() if r >= first_hidden]
    assert delivered == sorted(delivered)
    # Positions were dropped: gaps in the sequence, and only position numbers are missing.
    missing = set(range(first_hidden, delivered[-1] + 1)) - set(delivered)
    # The event's count may be higher: thinning also counts positions that were already
    # acknowledged but still on flash before a journal compaction ran (docs/firmware.md, thinning).
    assert 0 < len(missing) <= sum(thinned)
    event_rseqs = {f.payload["rseq"] for f in got if f.type == "EVENT"}
    assert not missing & event_rseqs
    state = dut.expect("STATE", timeout=3)
    assert state.payload["alarms"]["JOURNAL_OVERFLOW"] is True


# Regression: only an ACK of one of the journal frame's own transmissions ends its stop-and-wait
# (a late ACK of a STATE sent meanwhile once ended it; fixed in 5dbd572).
def test_a_late_ack_of_a_state_frame_does_not_end_the_wait_for_the_batch(dut):
    activate(dut, EscortData(escort_id=8303))
    feed = GnssFeed(dut.bench.gnss, dut.bench.clock).start()
    try:
        dut.expect("RECORDS", timeout=5)
        dut.coverage(False)
        # Out of coverage until the batch in flight has been retransmitted with a STATE heartbeat
        # between its first and its latest transmission.
        def state_inside_the_retry_window() -> bool:
            journal = [f for f in dut.lost if f.type == "RECORDS"]
            if not journal or not journal[-1].flags & 1:
                return False
            return any(f.type == "STATE" and journal[0].seq < f.seq < journal[-1].seq for f in dut.lost)
        dut.wait_until(state_inside_the_retry_window, timeout=8, what="a STATE between transmissions")
        dut.coverage(True)
        journal = [f for f in dut.lost if f.type == "RECORDS"]
        state = next(f for f in dut.lost if f.type == "STATE" and journal[0].seq < f.seq < journal[-1].seq)
        dut.auto_ack = False
        # The gateway heard that STATE after all and acknowledges it late (an MQTT redelivery,
        # a slow broker): an ACK that names a frame without journal records.
        dut.ack(state)
        nxt = dut.expect("RECORDS", timeout=10)
        assert nxt.flags & 1, (f"batch rseq {rseqs(nxt)[0]}.. sent again as a new frame after an ACK of "
                               f"STATE {state.boot}/{state.seq}, which released nothing")
        assert rseqs(nxt)[0] == rseqs(journal[0])[0]
    finally:
        dut.auto_ack = True
        feed.stop()
