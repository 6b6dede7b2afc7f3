"""Power cut in the middle of a flash write: at most the record being written is lost, the
escort and its data survive whole or not at all, and delivery resumes in order."""

import pytest

from navseal.hil.frames import EscortData
from navseal.hil.steps import GnssFeed, activate, deactivate

pytestmark = pytest.mark.needs("write_cut", "power", "gnss", "lock")


@pytest.mark.parametrize("cut_after", [5, 27], ids=["in-first-record", "in-second-record"])
def test_power_cut_mid_journal_write_loses_nothing_already_written(dut, cut_after):
    escort = EscortData(escort_id=8601)
    activate(dut, escort)
    feed = GnssFeed(dut.bench.gnss, dut.bench.clock).start()
    try:
        first = dut.expect("RECORDS", timeout=5)
        # The gateway stops committing: nothing is released, the journal grows.
        dut.auto_ack = False
        backlog = dut.expect("STATE", where=lambda f: f.payload["journal_pending"] >= 2, timeout=10)
        feed.pause()  # the seal keeps recording its last fix; the feed must not talk to a dead seal
        dut.bench.arm_write_cut(cut_after)
        dut.bench.wait_power_lost(timeout=5)
        seen = dut.frames(since=0)
        last_state = [f for f in seen if f.type == "STATE"][-1]
        written = last_state.payload["journal_pending"]
        assert written >= backlog.payload["journal_pending"]

        dut.auto_ack = True
        dut.bench.power.on()
        hello = dut.expect("HELLO", timeout=10)
        # Everything counted before the cut is still there (the cut record was never counted).
        assert hello.payload["journal_pending"] >= written
        state = dut.expect("STATE", timeout=3)
        assert state.payload["state"] == "ACTIVE" and state.payload["escort_id"] == 8601
        feed.resume()
        dut.expect("STATE", where=lambda f: f.payload["journal_pending"] <= 1, timeout=15)
    finally:
        feed.stop()
    delivered = [r for r in dut.delivered_rseqs() if r >= first.payload["first_rseq"]]
    assert delivered == list(range(delivered[0], delivered[-1] + 1)), "a gap or a reordering after the cut"
    assert len(delivered) >= written + 1
    deactivate(dut, escort)


@pytest.mark.parametrize("cut_after", [10, 60], ids=["in-replay-window", "in-escort-record"])
def test_power_cut_mid_activation_leaves_a_whole_escort_or_none(dut, cut_after):
    escort = EscortData(escort_id=8602)
    dut.bench.arm_write_cut(cut_after)
    seq = dut.send_command("ACTIVATE", escort.activate(dut.seal_id))
    dut.bench.wait_power_lost(timeout=5)
    dut.bench.power.on()
    dut.expect("HELLO", timeout=10)
    state = dut.expect("STATE", timeout=3)
    if state.payload["state"] == "ACTIVE":
        # The whole escort made it: the matching DEACTIVATE proves its data is intact.
        assert state.payload["escort_id"] == 8602
        deactivate(dut, escort)
    else:
        assert state.payload["escort_id"] == 0
        # Not armed: the gateway repeats the command (same frame, then a fresh one) and the
        # seal either takes the repeat or, if its replay window was saved, asks for a fresh one.
        dut.send_frame(dut.commands[seq])
        res = dut.expect("COMMAND_RESULT", cmd_seq=seq, timeout=3)
        assert res.payload["result"] in ("OK", "REPLAYED")
        if res.payload["result"] == "REPLAYED":
            activate(dut, escort)
        dut.expect("STATE", state="ACTIVE", escort_id=8602, timeout=3)
        deactivate(dut, escort)
