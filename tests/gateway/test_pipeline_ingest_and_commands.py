"""Pipeline ingest: decode/authenticate/replay/de-dup, ACK only after commit, counted refusals,
restart without loss or duplication, batches, commands to seals, and no input that raises."""

import json
import random
import sqlite3
from pathlib import Path

import pytest
from fixtures_postgres import engine_store
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import (
    T0,
    FakeSeal,
    activate,
    activation_request,
    downlinks_of,
    lock_status,
    make_pipeline,
    reencode,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navseal.gateway import events as ev
from navseal.gateway.pipeline import Pipeline
from navseal.gateway.store import SqliteStore, StoreError
from navseal.protocol import NO_RSEQ, evidence, test_key

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

VECTORS = sorted((Path(__file__).parents[2] / "protocol" / "vectors").glob("*.json"))


def frame_vectors():
    for path in VECTORS:
        v = json.loads(path.read_text())
        if v["kind"] == "frame":
            yield pytest.param(v, id=path.stem)


@pytest.mark.parametrize("vector", list(frame_vectors()))
def test_every_golden_vector_is_accepted_or_refused_with_its_reason(tmp_path, vector):
    pipeline, store, clock = make_pipeline(tmp_path)
    key = bytes.fromhex(vector["key"]) if vector["key"] else test_key(1001)
    seal_id = (vector.get("frame") or {}).get("seal_id", 1001)
    pipeline.provision_seal(seal_id, key)
    before = store.counts()
    res = pipeline.handle_uplink(bytes.fromhex(vector["hex"]), "vector")
    if "error" in vector:
        assert (res.result, res.reason) == ("rejected", vector["error"])
    elif vector["frame"]["type"] in ("ACK", "ACTIVATE", "DEACTIVATE", "CONFIG", "TIME"):
        assert (res.result, res.reason) == ("rejected", "wrong_direction")
    else:
        assert res.result == "accepted", res
        (ack,) = downlinks_of(res, FakeSeal(seal_id, key=key), "ACK")
        assert ack.payload["acked_seq"] == vector["frame"]["seq"]
    if res.result == "rejected":
        assert res.downlink == [] and store.counts() == before
        assert pipeline.metrics()["frames"] == {("rejected", res.reason): 1}


def test_records_are_committed_before_the_ack_is_returned(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    res = pipeline.handle_uplink(seal.records(T0, [(43.2, 76.9), (43.3, 76.9), (43.4, 76.9)]), "t")
    (ack,) = downlinks_of(res, seal, "ACK")
    assert ack.payload == {"acked_boot": 1, "acked_seq": 1, "committed_rseq": 3}
    # Another connection (another process) already sees the records: they are committed.
    other = engine_store(tmp_path / "gw.sqlite3")
    try:
        assert len(other.records(1001)) == 3
    finally:
        other.close()
    # A frame without journal records is acknowledged with committed_rseq = 0xFFFFFFFF.
    (ack,) = downlinks_of(pipeline.handle_uplink(seal.hello(T0), "t"), seal, "ACK")
    assert ack.payload["committed_rseq"] == NO_RSEQ


class FailingCommitStore(SqliteStore):
    fail = True

    def transaction(self):
        import contextlib

        @contextlib.contextmanager
        def tx():
            with super(FailingCommitStore, self).transaction() as t:
                yield t
                if self.fail:
                    raise StoreError("disk I/O error (simulated)")
        return tx()


def test_no_ack_when_the_commit_fails(tmp_path):
    store = FailingCommitStore(str(tmp_path / "gw.sqlite3"))
    seal = FakeSeal(1001)
    store.fail = False
    pipeline = Pipeline(store, clock=lambda: T0)
    pipeline.provision_seal(1001, seal.key)
    store.fail = True
    frame = seal.records(T0, [(43.2, 76.9)])
    res = pipeline.handle_uplink(frame, "t")
    assert (res.result, res.reason, res.downlink) == ("rejected", "store_error", [])
    store.fail = False
    assert store.counts()["records"] == 0
    # The seal retransmits the same frame (it got no ACK): now it is stored and acknowledged.
    res = pipeline.handle_uplink(frame, "t")
    assert res.result == "accepted" and downlinks_of(res, seal, "ACK")
    assert store.counts()["records"] == 1


def test_forged_unknown_replayed_and_reflected_frames_are_refused_and_counted(tmp_path, caplog):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    assert pipeline.handle_uplink(seal.records(T0, [(43.2, 76.9)]), "t").result == "accepted"
    genuine = seal.decode(seal.records(T0, [(50.0, 50.0)]))
    forged = seal.frame("RECORDS", genuine.payload, time=T0, key=b"\x00" * 32)
    stranger = FakeSeal(2002).records(T0, [(43.2, 76.9)])
    old = seal.frame("HELLO", {"fw_major": 1, "fw_minor": 0, "fw_patch": 0, "reset_cause": "POWER_ON",
                               "config_hash": 0, "journal_pending": 0}, time=T0, seq=0)  # never seen, before window
    earlier_boot = seal.frame("STATE", json.loads(json.dumps(_state())), time=T0, boot=0, seq=99)
    reflected = seal.frame("ACK", {"acked_boot": 1, "acked_seq": 1, "committed_rseq": 1}, time=T0)
    damaged = bytearray(seal.hello(T0))
    damaged[25] ^= 0x40
    caplog.set_level("WARNING", logger="navseal.gateway.pipeline")
    reasons = [pipeline.handle_uplink(f, "t").reason
               for f in (forged, stranger, old, earlier_boot, reflected, bytes(damaged), b"", b"\x00" * 40)]
    assert reasons == ["bad_mac", "unknown_seal", "replayed", "replayed", "wrong_direction", "bad_crc",
                       "truncated", "bad_magic"]
    frames = pipeline.metrics()["frames"]
    for reason in set(reasons):
        assert frames[("rejected", reason)] == reasons.count(reason)
    assert store.counts()["records"] == 1 and store.counts()["uplinks"] == 1
    # Logged once each, with the seal id and a hex excerpt.
    refused = [r for r in caplog.records if "refused frame" in r.getMessage()]
    assert len(refused) == len(reasons)
    assert "seal=1001" in refused[0].getMessage() and "hex=4e53" in refused[0].getMessage()


def _state():
    return {"state": "INACTIVE", "escort_id": 0, "alarms": {k: False for k in (
        "CABLE_CUT", "HOUSING_OPENED", "GNSS_LOST", "LOW_BATTERY", "JOURNAL_OVERFLOW", "ROUTE_DEVIATION",
        "GNSS_ANOMALY")},
        "battery_pct": 90, "journal_pending": 0, "journal_capacity": 100, "fix_time": 0, "lat": None,
        "lon": None, "lock": {"cable_intact": True, "housing_closed": True}, "evidence": evidence()}


def test_redelivered_and_retransmitted_frames_are_reacked_without_effect(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    frame = seal.records(clock.advance(60), [(43.21, 76.9), (43.22, 76.9)])
    first = pipeline.handle_uplink(frame, "mqtt")
    counts = store.counts()
    # MQTT QoS 1 redelivery: byte-identical.
    again = pipeline.handle_uplink(frame, "mqtt")
    # The seal's own retransmission after a lost ACK: same (boot, seq) with the RETRANSMIT flag.
    decoded = seal.decode(frame)
    retrans = seal.frame("RECORDS", decoded.payload, time=decoded.time, seq=decoded.seq, flags=1)
    third = pipeline.handle_uplink(retrans, "mqtt")
    assert [r.result for r in (first, again, third)] == ["accepted", "duplicate", "duplicate"]
    acks = [downlinks_of(r, seal, "ACK")[0] for r in (first, again, third)]
    assert {a.payload["committed_rseq"] for a in acks} == {seal.rseq}
    assert acks[0].seq < acks[1].seq < acks[2].seq  # every downlink frame gets a fresh seq
    assert again.events == [] and third.events == [] and again.records_committed == 0
    after = store.counts()
    assert {k: after[k] for k in ("records", "events", "outbox", "uplinks")} == {
        k: counts[k] for k in ("records", "events", "outbox", "uplinks")}
    assert escort["status"] == "active"


def test_records_overlapping_earlier_ones_are_deduplicated_by_rseq(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    base = seal.rseq
    r1 = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)] * 4), "t")
    # A rebooted seal resends part of its journal (new boot, new seq, same rseqs) plus new ones.
    seal.reboot()
    r2 = pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 76.9)] * 6, first_rseq=base + 3), "t")
    assert (r1.records_committed, r2.records_committed, r2.records_duplicate) == (4, 4, 2)
    rseqs = [r["rseq"] for r in store.records(1001)]
    assert rseqs == sorted(set(rseqs)) and len(rseqs) == base + 8
    pos = store.events(kind="POSITION")[-1]
    assert (pos["details"]["first_rseq"], pos["details"]["last_rseq"]) == (base + 5, base + 8)


def test_restart_on_the_same_file_loses_nothing_and_duplicates_nothing(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    frames = []
    for i in range(1, 21):
        if i == 11:
            frames.append(seal.event(clock.t + 605, "CABLE_CUT", status=lock_status(cable=False)))
        frames.append(seal.records(clock.t + 60 * i, [(43.2 + i / 1000, 76.9)] * 10))
    for f in frames[:12]:
        assert pipeline.handle_uplink(f, "t").result == "accepted"
    seq_before = store._read("SELECT downlink_seq FROM seals WHERE seal_id = 1001")[0]["downlink_seq"]
    events_before = store.events()
    store.close()  # the process dies; a new one opens the same file

    pipeline2, store2, _ = make_pipeline(tmp_path, clock)
    # The broker redelivers everything not acknowledged at the MQTT level (here: all of it).
    results = [pipeline2.handle_uplink(f, "t") for f in frames]
    assert [r.result for r in results] == ["duplicate"] * 12 + ["accepted"] * 9
    assert len(store2.records(1001)) == 1 + 20 * 10 + 1
    acks = [downlinks_of(r, seal, "ACK")[0] for r in results]
    assert acks[0].seq > seq_before and all(a.seq < b.seq for a, b in zip(acks, acks[1:]))
    events = store2.events()
    assert events[: len(events_before)] == events_before
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    assert [e["kind"] for e in events].count("UNAUTHORIZED_OPENING") == 1
    assert pipeline2.status(escort_id=escort["escort_id"])[0]["status"] == "active"


def test_batch_commits_once_and_isolates_bad_frames(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    a, b = FakeSeal(1), FakeSeal(2)
    for s in (a, b):
        pipeline.provision_seal(s.seal_id, s.key)
    fa = a.records(T0, [(43.0, 76.0)] * 3)
    items = [(fa, "t"), (b"garbage", "t"), (b.records(T0, [(44.0, 77.0)] * 2), "t"), (fa, "t"),
             (a.records(T0, [(43.1, 76.0)]), "t")]
    results = pipeline.handle_uplinks(items)
    assert [(r.result, r.reason) for r in results] == [
        ("accepted", None), ("rejected", "truncated"), ("accepted", None), ("duplicate", None), ("accepted", None)]
    assert [r.records_committed for r in results] == [3, 0, 2, 0, 1]
    assert all(downlinks_of(r, a if i != 2 else b, "ACK") for i, r in enumerate(results) if r.accepted)


def test_commands_wait_for_the_seal_then_retry_until_acknowledged(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path, command_retry_initial_s=30, command_retry_max_s=120)
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    assert escort["status"] == "requested"
    # The seal has never called in: nothing to send, nothing to wake up for.
    assert pipeline.tick(clock.advance(10)) == [] and pipeline.next_deadline() is None
    res = pipeline.handle_uplink(seal.hello(clock.advance(10)), "t")
    (cmd1,) = downlinks_of(res, seal, "ACTIVATE")
    assert cmd1.payload["escort_id"] == escort["escort_id"] and cmd1.payload["seal_number"] == 1001
    assert cmd1.payload["declaration"] == escort["declaration"] and cmd1.flags == 0
    # Not answered: resent after the backoff (30 s, 60 s, then capped at 120 s), fresh seq, RETRANSMIT flag.
    assert pipeline.next_deadline() == clock.t + 30
    assert pipeline.tick(clock.advance(29)) == []
    (cmd2,) = downlinks_of(pipeline.tick(clock.advance(2)), seal, "ACTIVATE")
    assert cmd2.seq > cmd1.seq and cmd2.flags & 1 and cmd2.payload == cmd1.payload
    assert pipeline.next_deadline() == pytest.approx(clock.t + 60)
    # The first transmission's result arrives late: it still closes the command.
    pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, cmd1)), "t")
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "armed"
    assert pipeline.tick(clock.advance(600)) == []
    cmds = pipeline.status(escort_id=escort["escort_id"])[0]["commands"]
    assert [(c["type"], c["status"], c["attempts"]) for c in cmds] == [("ACTIVATE", "acked", 2)]


def test_journal_pending_deactivate_waits_for_the_seals_next_frame(tmp_path):
    """Protocol version 2: DEACTIVATE answered JOURNAL_PENDING stays open (never failed) and goes
    again with the answer to the seal's next frame: not in the answer to the refusal, not by tick."""
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    pipeline.request_deactivation(1001, escort["declaration"], escort["vehicle"])
    (deact,) = downlinks_of(pipeline.tick(clock.advance(1)), seal, "DEACTIVATE")
    res = pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, deact), "JOURNAL_PENDING",
                                                     state="ACTIVE", escort_id=escort["escort_id"]), "t")
    assert [f.type for f in downlinks_of(res, seal)] == ["ACK"] and res.events == []
    (cmd,) = pipeline.status(escort_id=escort["escort_id"])[0]["commands"][1:]
    assert (cmd["type"], cmd["status"], cmd["result"]) == ("DEACTIVATE", "sent", "JOURNAL_PENDING")
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "deactivation_requested"
    # The backlog drains: the seal's next frame (its last records) is answered with ACK, then DEACTIVATE.
    assert pipeline.tick(clock.advance(1)) == [] and pipeline.next_deadline() != clock.t
    res = pipeline.handle_uplink(seal.records(clock.advance(1), [(43.21, 76.9)]), "t")
    ack, again = downlinks_of(res, seal)
    assert ack.type == "ACK" and again.type == "DEACTIVATE" and again.seq > deact.seq and again.flags & 1
    res = pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, again)), "t")
    assert "DEACTIVATED" in [e["kind"] for e in res.events]
    (cmd,) = pipeline.status(escort_id=escort["escort_id"])[0]["commands"][1:]
    assert (cmd["status"], cmd["result"], cmd["attempts"]) == ("acked", "OK", 2)


def test_journal_pending_for_another_command_is_a_failure(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    (cmd,) = downlinks_of(pipeline.handle_uplink(seal.hello(clock.t), "t"), seal, "ACTIVATE")
    pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, cmd), "JOURNAL_PENDING"), "t")
    (c,) = pipeline.status(escort_id=escort["escort_id"])[0]["commands"]
    assert (c["status"], c["result"]) == ("failed", "JOURNAL_PENDING")


def test_state_evidence_is_kept_in_the_stored_state(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    escort = activate(pipeline, seal, clock)
    block = evidence(escort_id=escort["escort_id"], start_rseq=1, hw_rseq=9, openings=1, opening_first=T0,
                     opening_inputs={"housing": True}, flags={"opening_now": True}, power_losses=1)
    res = pipeline.handle_uplink(seal.state(clock.advance(60), active=True, escort_id=escort["escort_id"],
                                            evidence_block=block), "t")
    assert res.result == "accepted"
    with store.transaction() as tx:
        stored = json.loads(tx.get_seal(1001)["last_state"])
    assert stored["evidence"] == block


def test_wrong_state_answer_to_a_repeated_activate_counts_as_done(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    (cmd,) = [b for _, b in pipeline.handle_uplink(seal.hello(clock.t), "t").downlink if seal.decode(b).type == "ACTIVATE"]
    res = pipeline.handle_uplink(seal.command_result(clock.advance(1), cmd, "WRONG_STATE", state="ACTIVE",
                                                     escort_id=escort["escort_id"]), "t")
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "armed"
    assert res.events == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise(tmp_path_factory, data):
    pipeline = _shared_pipeline(tmp_path_factory)
    res = pipeline.handle_uplink(data, "fuzz")
    assert res.result == "rejected" and res.reason and res.downlink == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_valid_frames_never_raise(tmp_path_factory, seed):
    pipeline = _shared_pipeline(tmp_path_factory)
    rnd = random.Random(seed)
    seal = _SEAL
    frame = bytearray(rnd.choice([
        seal.records(T0, [(43.2, 76.9)] * rnd.randint(0, 5)), seal.hello(T0), seal.event(T0, "CABLE_CUT"),
        seal.state(T0, active=True, escort_id=1)]))
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(3)
        i = rnd.randrange(len(frame))
        if op == 0:
            frame[i] ^= 1 << rnd.randrange(8)
        elif op == 1:
            del frame[i]
        else:
            frame.insert(i, rnd.randrange(256))
    res = pipeline.handle_uplink(bytes(frame), "fuzz")
    assert res.result in ("rejected", "accepted", "duplicate")


_SEAL = FakeSeal(1001)
_PIPELINES = {}


def _shared_pipeline(factory):
    if "p" not in _PIPELINES:
        pipeline, store, clock = make_pipeline(factory.mktemp("fuzz"))
        pipeline.provision_seal(1001, _SEAL.key)
        _PIPELINES["p"] = pipeline
    return _PIPELINES["p"]


def test_all_events_of_a_busy_run_validate_against_the_schema(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    e = activate(pipeline, seal, clock, route=[(43.2, 76.9), (43.2, 77.5)], corridor_m=300,
                 hours=2)
    pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 77.0), (43.25, 77.1), (43.25, 77.1)]), "t")
    pipeline.handle_uplink(seal.records(clock.advance(60), [(43.2, 77.2)]), "t")
    pipeline.handle_uplink(seal.event(clock.advance(5), "LOW_BATTERY", value=9), "t")
    pipeline.tick(clock.advance(4 * 3600))
    pipeline.handle_uplink(seal.event(clock.advance(5), "HOUSING_OPENED", status=lock_status(housing=False)), "t")
    pipeline.request_deactivation(1001, e["declaration"], e["vehicle"])
    pipeline.tick(clock.advance(2 * 3600))
    events = store.events()
    assert {x["kind"] for x in events} >= {"ACTIVATED", "POSITION", "ROUTE_DEVIATION", "ROUTE_RETURNED",
                                           "LOW_BATTERY", "SIGNAL_LOST", "SIGNAL_RESTORED", "HOUSING_OPENED",
                                           "DEACTIVATION_REQUESTED", "DEACTIVATION_OVERDUE", "TRANSIT_OVERDUE"}
    ev.validate(events)


def test_one_pipeline_called_from_several_threads(tmp_path):
    import threading

    pipeline, store, clock = make_pipeline(tmp_path)
    seals = [FakeSeal(3000 + i) for i in range(4)]
    streams = []
    for s in seals:
        activate(pipeline, s, clock)
        streams.append([s.records(clock.t + 60 * k, [(43.2, 76.9 + k / 1000)] * 20) for k in range(1, 26)])
    errors, results = [], []

    def feed(frames):
        try:
            for f in frames:
                results.append(pipeline.handle_uplink(f, "thread"))
        except Exception as exc:  # pragma: no cover - reported by the assertion
            errors.append(exc)

    def timers():
        try:
            for _ in range(50):
                pipeline.tick(clock.t)
                pipeline.next_deadline()
                pipeline.status()
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(fr,)) for fr in streams] + [threading.Thread(target=timers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 100 and all(r.result == "accepted" for r in results)
    assert store.counts()["records"] == 4 * (1 + 25 * 20)


_I32 = st.integers(-(2**31), 2**31 - 2) | st.none() | st.sampled_from([900_000_000, -900_000_000, 0])
_STATUS = st.fixed_dictionaries({"cable_intact": st.booleans(), "housing_closed": st.booleans(),
                                 "battery_pct": st.sampled_from([None, 0, 2, 18, 50, 100])})
_RECORD = st.fixed_dictionaries({
    "dt": st.integers(0, 65535), "lat": _I32, "lon": _I32, "speed": st.integers(0, 65535),
    "course": st.integers(0, 255), "fix": st.fixed_dictionaries({"quality": st.integers(0, 3),
                                                                  "satellites": st.integers(0, 63)}),
    "hdop": st.integers(0, 255), "status": _STATUS})
_EVENT_CODES = ["CABLE_CUT", "HOUSING_OPENED", "LOCK_RESTORED", "GNSS_LOST", "GNSS_REGAINED", "GNSS_JUMP",
                "LOW_BATTERY", "JOURNAL_OVERFLOW", "REBOOT", "COMMAND_REJECTED", "ROUTE_DEVIATION", "ROUTE_RETURNED",
                "GNSS_ANOMALY"]
_MESSAGE = st.one_of(
    st.tuples(st.just("RECORDS"), st.fixed_dictionaries({
        "first_rseq": st.integers(0, 2**32 - 1), "base_time": st.integers(0, 2**32 - 1),
        "records": st.lists(_RECORD, max_size=8)})),
    st.tuples(st.just("EVENT"), st.fixed_dictionaries({
        "rseq": st.integers(0, 2**32 - 1), "time": st.integers(0, 2**32 - 1), "code": st.sampled_from(_EVENT_CODES),
        "lat": _I32, "lon": _I32, "status": _STATUS, "value": st.integers(0, 2**32 - 1)})),
    st.tuples(st.just("COMMAND_RESULT"), st.fixed_dictionaries({
        "cmd_boot": st.integers(0, 3), "cmd_seq": st.integers(0, 20), "cmd_type": st.sampled_from(["ACTIVATE", "DEACTIVATE"]),
        "result": st.sampled_from(["OK", "LOCK_OPEN", "WRONG_STATE", "MISMATCH", "BAD_PARAMS", "REPLAYED", "UNSUPPORTED",
                                   "JOURNAL_PENDING"]),
        "state": st.sampled_from(["INACTIVE", "ACTIVE"]), "escort_id": st.integers(0, 5),
        "evidence": st.builds(evidence, escort_id=st.integers(0, 5), hw_rseq=st.integers(0, 2**32 - 1),
                              openings=st.integers(0, 3), flags=st.fixed_dictionaries({"closed": st.booleans()}))})),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(_MESSAGE, min_size=1, max_size=12), gaps=st.lists(st.integers(0, 5 * 3600), min_size=12, max_size=12))
def test_authentic_frames_with_arbitrary_content_never_raise(tmp_path_factory, messages, gaps):
    """Well-formed, authenticated frames carrying edge values (no position with a fix, the poles,
    out-of-range latitudes, rseq at the top of u32, results for unknown commands) into an active
    escort with a route: every frame gets an answer, the timers keep working, nothing raises."""
    pipeline, store, clock = make_pipeline(tmp_path_factory.mktemp("content"))
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock, route=[(43.0, 77.0), (44.0, 78.0)], corridor_m=500)
    for (kind, payload), gap in zip(messages, gaps):
        if kind == "RECORDS":
            payload = dict(payload, count=len(payload["records"]))
            if payload["first_rseq"] + payload["count"] - 1 > 2**32 - 1:
                payload["first_rseq"] = 2**32 - payload["count"]
        res = pipeline.handle_uplink(seal.frame(kind, payload, time=clock.advance(gap)), "prop")
        assert res.result == "accepted", res
        assert downlinks_of(res, seal, "ACK")
        pipeline.tick(clock.t)
        pipeline.next_deadline()
    assert pipeline.metrics()["counters"].get("tick_errors", 0) == 0


def test_commands_survive_a_restart_and_keep_their_seq_order(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(1001)
    pipeline.provision_seal(1001, seal.key)
    escort = pipeline.request_activation(activation_request(1001, t0=clock.t))
    res = pipeline.handle_uplink(seal.hello(clock.t), "t")
    (first,) = downlinks_of(res, seal, "ACTIVATE")
    store.close()
    pipeline, store, _ = make_pipeline(tmp_path, clock)
    res = pipeline.handle_uplink(seal.state(clock.advance(60), active=False, pos=None), "t")
    (again,) = downlinks_of(res, seal, "ACTIVATE")  # due again (30 s backoff passed), after the restart
    (ack,) = downlinks_of(res, seal, "ACK")
    assert first.seq < ack.seq < again.seq and again.flags & 1
    res = pipeline.handle_uplink(seal.command_result(clock.advance(1), reencode(seal, again)), "t")
    assert pipeline.status(escort_id=escort["escort_id"])[0]["status"] == "armed"
