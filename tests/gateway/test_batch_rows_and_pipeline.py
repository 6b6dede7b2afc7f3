"""A batch of frames reads its seals' rows once (prefetch) and, on PostgreSQL, sends its writes
pipelined (decision 0021): what a frame sees is still what the frames before it wrote, a frame
refused after its writes leaves nothing behind, a statement failing on the server refuses only its
frame, and the round trips per frame stay few."""

from __future__ import annotations

import contextlib

import pytest
from fixtures_postgres import current_engine
from pipeline_support import T0, FakeSeal, activate, downlinks_of, make_pipeline

from navseal.gateway.commands import Commands
from navseal.gateway.store import StoreError

pytestmark = pytest.mark.usefixtures("store_engine")

POINT = [(43.2, 76.9)]
# A test of what only PostgreSQL has: the module's engine parameter narrowed to it.
ONLY_POSTGRESQL = pytest.mark.parametrize("store_engine", ["postgresql"], indirect=True)


def seal_row(store, seal_id):
    with store.transaction() as tx:
        return tx.get_seal(seal_id)


def ack_seq(result, seal):
    (ack,) = downlinks_of(result, seal, "ACK")
    return ack.seq


def test_two_frames_of_one_seal_in_one_batch_see_each_other(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    a, b = FakeSeal(1001), FakeSeal(1002)
    for seal in (a, b):
        pipeline.provision_seal(seal.seal_id, seal.key)
    first = a.records(T0, POINT)
    batch = [(first, "t"), (b.records(T0, POINT), "t"), (a.records(T0 + 10, POINT), "t"), (first, "t"),
             (a.hello(T0 + 20), "t")]
    results = pipeline.handle_uplinks(batch)
    assert [r.result for r in results] == ["accepted", "accepted", "accepted", "duplicate", "accepted"]
    # One downlink seq after the other: each frame took the seq the frame before it left.
    seqs = [ack_seq(results[i], a) for i in (0, 2, 3, 4)]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    row = seal_row(store, a.seal_id)
    assert (row["downlink_seq"], row["last_seq"]) == (seqs[-1], a.seq)
    # The next batch goes on from there.
    assert ack_seq(pipeline.handle_uplink(a.records(T0 + 30, POINT), "t"), a) == seqs[-1] + 1
    assert len(store.records(a.seal_id)) == 3


def test_a_frame_refused_after_its_writes_leaves_nothing_for_the_next(tmp_path, monkeypatch, caplog):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    pipeline.provision_seal(seal.seal_id, seal.key)
    due = Commands.due
    seen: list = []

    def failing_due(self, tx, seal_id, now, key):  # after the frame's records, uplink and seal row
        if not seen or seen[-1] is not tx:  # the first frame of every transaction
            seen.append(tx)
            raise RuntimeError("a bug, simulated")
        return due(self, tx, seal_id, now, key)

    monkeypatch.setattr(Commands, "due", failing_due)
    before = seal_row(store, seal.seal_id)["downlink_seq"]
    frames = [seal.records(T0, POINT), seal.records(T0 + 10, POINT), seal.records(T0 + 20, POINT)]
    results = pipeline.handle_uplinks([(f, "t") for f in frames])
    assert [(r.result, r.reason) for r in results] == [("rejected", "internal_error"), ("accepted", None),
                                                        ("accepted", None)]
    # The refused frame's downlink seq and window were rolled back with it, in the store and for
    # the frames after it in the batch.
    assert [ack_seq(r, seal) for r in results[1:]] == [before + 1, before + 2]
    row = seal_row(store, seal.seal_id)
    assert (row["downlink_seq"], row["last_seq"]) == (before + 2, 3)
    assert sorted(r["rseq"] for r in store.records(seal.seal_id)) == [2, 3]
    if current_engine().name == "postgresql":  # pipelined, no savepoint: the batch ran again with them
        assert len(seen) == 2 and "again statement by statement" in caplog.text


def test_a_frame_refused_before_writing_costs_its_batch_nothing(tmp_path, caplog):
    pipeline, store, clock = make_pipeline(tmp_path)
    seals = [FakeSeal(1001), FakeSeal(1002)]
    for seal in seals:
        pipeline.provision_seal(seal.seal_id, seal.key)
    pipeline.handle_uplink(seals[0].records(T0, POINT), "t")
    replayed = seals[0].records(T0 + 5, POINT)
    pipeline.handle_uplink(seals[0].records(T0 + 10, POINT), "t")  # the window moves past it
    batch = [seals[1].records(T0 + 20, POINT), replayed, seals[0].records(T0 + 30, POINT)]
    results = pipeline.handle_uplinks([(f, "t") for f in batch])
    assert [(r.result, r.reason) for r in results] == [("accepted", None), ("rejected", "replayed"),
                                                        ("accepted", None)]
    assert "again statement by statement" not in caplog.text
    assert [r["rseq"] for r in store.records(seals[0].seal_id)] == [1, 3, 4]


def _refuse_uplinks_of(store, seal_id):
    """A statement the server refuses for one seal's frames (a trigger), as a bad frame could cause."""
    if current_engine().name == "sqlite":
        store._c.execute(f"CREATE TRIGGER refuse_one BEFORE INSERT ON uplinks WHEN NEW.seal_id = {seal_id} "
                         "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        return
    store._c.raw("CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation'; END $$")
    store._c.raw(f"CREATE TRIGGER refuse_one BEFORE INSERT ON uplinks FOR EACH ROW "
                 f"WHEN (NEW.seal_id = {seal_id}) EXECUTE FUNCTION refuse_one()")


def test_a_statement_the_server_refuses_refuses_only_its_frame(tmp_path, caplog):
    pipeline, store, clock = make_pipeline(tmp_path)
    seals = [FakeSeal(1001 + i) for i in range(4)]
    for seal in seals:
        pipeline.provision_seal(seal.seal_id, seal.key)
    _refuse_uplinks_of(store, 1003)
    batch = [(seal.records(T0, POINT), "t") for seal in seals] + [(seals[0].records(T0 + 10, POINT), "t")]
    results = pipeline.handle_uplinks(batch)
    assert [(r.result, r.reason) for r in results] == [
        ("accepted", None), ("accepted", None), ("rejected", "internal_error"), ("accepted", None),
        ("accepted", None)]
    assert results[2].downlink == []
    assert pipeline.last_store_error is None  # the store works: ingest is not paused
    assert [len(store.records(s.seal_id)) for s in seals] == [2, 1, 0, 1]
    assert ack_seq(results[4], seals[0]) == ack_seq(results[0], seals[0]) + 1
    if current_engine().name == "postgresql":  # found by running the pipelined batch again, unpipelined
        assert "again statement by statement" in caplog.text


def test_an_escorted_seal_answers_from_its_rows_read_once(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    clock.advance(10)
    frames = [seal.records(clock.t, POINT), seal.state(clock.t, active=True, escort_id=escort["escort_id"]),
              seal.records(clock.t + 10, POINT)]
    results = pipeline.handle_uplinks([(f, "t") for f in frames])
    assert [r.result for r in results] == ["accepted"] * 3
    assert [e["kind"] for r in results for e in r.events] == ["POSITION", "POSITION"]
    assert all(e["escort_id"] == escort["escort_id"] for r in results for e in r.events)


@ONLY_POSTGRESQL  # round trips are PostgreSQL's
def test_round_trips_per_frame_on_postgresql(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seals = [FakeSeal(1001 + i) for i in range(32)]
    for seal in seals:
        pipeline.provision_seal(seal.seal_id, seal.key)
    # The first frames: the seals' keys read once (kept), the seal-rejecting watch's first look.
    pipeline.handle_uplinks([(seal.records(T0, POINT * 5), f"mqtt:{seal.seal_id}") for seal in seals])
    trips, sent = store._c.round_trips, store._c.statements
    results = pipeline.handle_uplinks([(seal.records(T0 + 60, POINT * 5), f"mqtt:{seal.seal_id}")
                                       for seal in seals])
    assert all(r.result == "accepted" for r in results)
    n = len(results)
    # The batch's reads in one round trip (seals, escorts, commands, stored rseqs), its writes and
    # COMMIT in one more (before: about ten per frame, one per statement).
    assert store._c.round_trips - trips <= 2
    assert store._c.statements - sent >= 3 * n  # run, uplink, seal: all still sent (no savepoints)


@ONLY_POSTGRESQL  # SQLite raises at the statement and keeps the transaction
@pytest.mark.parametrize("pipelined", [True, False])
def test_an_error_swallowed_inside_a_transaction_commits_nothing(tmp_path, pipelined):
    """PostgreSQL answers COMMIT in an aborted transaction with ROLLBACK, not with an error: the
    store says so (StoreError: not committed, nothing may be ACKed) instead of returning."""
    pipeline, store, clock = make_pipeline(tmp_path)
    pipeline.provision_seal(1001, FakeSeal(1001).key)
    with pytest.raises(StoreError, match="nothing committed"):
        with (store.pipelined_transaction() if pipelined else store.transaction()) as tx:
            tx.update_seal(1001, last_seen_at=T0)
            with contextlib.suppress(Exception):  # a caller that should not have swallowed it
                tx._c.execute("SELECT 1 / 0").fetchall()
    assert seal_row(store, 1001)["last_seen_at"] is None


def test_records_sent_again_in_the_same_batch_are_stored_once(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal, other = FakeSeal(1001), FakeSeal(1002)
    for s in (seal, other):
        pipeline.provision_seal(s.seal_id, s.key)
    pipeline.handle_uplink(seal.records(T0, POINT), "t")  # rseq 1, stored before the batch
    batch = [seal.records(T0 + 10, POINT * 2),  # rseq 2-3
             other.records(T0 + 10, POINT * 3),
             seal.records(T0 + 20, POINT * 4, first_rseq=1),  # 1-4 again under a new seq: only 4 is new
             seal.records(T0 + 30, POINT * 2, first_rseq=3)]  # 3-4: nothing new
    results = pipeline.handle_uplinks([(f, "t") for f in batch])
    assert [(r.result, r.records_committed, r.records_duplicate) for r in results] == [
        ("accepted", 2, 0), ("accepted", 3, 0), ("accepted", 1, 3), ("accepted", 0, 2)]
    assert [r["rseq"] for r in store.records(seal.seal_id)] == [1, 2, 3, 4]
    assert [r["rseq"] for r in store.records(other.seal_id)] == [1, 2, 3]


@ONLY_POSTGRESQL  # the writes held back and sent together are the pipelined batch's
def test_a_batch_sends_its_writes_together_and_leaves_each_seal_as_its_last_frame_did(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seals = [FakeSeal(1001 + i) for i in range(3)]
    for seal in seals:
        pipeline.provision_seal(seal.seal_id, seal.key)
    pipeline.handle_uplinks([(seal.records(T0, POINT), f"mqtt:{seal.seal_id}") for seal in seals])
    before = {seal.seal_id: seal_row(store, seal.seal_id) for seal in seals}
    batch = [(seal.records(T0 + 10 * k, POINT * 2), f"mqtt:{seal.seal_id}") for k in (1, 2) for seal in seals]
    trips = store._c.round_trips
    results = pipeline.handle_uplinks(batch)
    assert [r.result for r in results] == ["accepted"] * 6
    assert store._c.round_trips - trips <= 2
    for i, seal in enumerate(seals):
        row = seal_row(store, seal.seal_id)
        # two updates of one seal in the batch, merged: the second frame's values, two seqs on
        assert (row["last_boot"], row["last_seq"]) == (seal.boot, seal.seq)
        assert row["downlink_seq"] == before[seal.seal_id]["downlink_seq"] + 2
        assert ack_seq(results[3 + i], seal) == ack_seq(results[i], seal) + 1 == row["downlink_seq"]
        assert [r["rseq"] for r in store.records(seal.seal_id)] == [1, 2, 3, 4, 5]
