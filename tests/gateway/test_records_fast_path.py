"""The RECORDS fast path must be invisible: decode_frame with flat_records (the records' wire values
and bytes, what ingest stores) accepts exactly what the dict decoding accepts, with the same header
and records, and the rows read back from the stored runs equal the rows built from decode_frame's
payload, whatever mix of runs, overlaps and single rows (stored before runs existed) a seal has."""

import random
import struct
import zlib

import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import make_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navseal.bench.seal_frames import SealFrames
from navseal.gateway.store import RECORD_FIX, run_rows, wire_fix_rows
from navseal.protocol import DecodeError, decode_frame, encode_frame, schema, test_key

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

SEAL = 4242
KEY = test_key(SEAL)


def _key_for(seal_id):
    return KEY if seal_id == SEAL else None


_STATUS = st.fixed_dictionaries({"cable_intact": st.booleans(), "housing_closed": st.booleans(),
                                 "battery_pct": st.one_of(st.none(), st.integers(0, 62).map(lambda v: v * 2))})
_COORD = st.one_of(st.none(), st.integers(-2**31, 2**31 - 2))
_RECORD = st.fixed_dictionaries({
    "dt": st.integers(0, 0xFFFF), "lat": _COORD, "lon": _COORD, "speed": st.integers(0, 0xFFFF),
    "course": st.integers(0, 255),
    "fix": st.fixed_dictionaries({"quality": st.integers(0, 3), "satellites": st.integers(0, 63)}),
    "hdop": st.integers(0, 255), "status": _STATUS,
})


def _records_frame(records, *, first_rseq=1, base_time=1_764_115_200, seq=1, flags=0, key=KEY, seal_id=SEAL):
    return encode_frame("RECORDS", seal_id=seal_id, boot=3, seq=seq, time=base_time, key=key, flags=flags,
                        payload={"first_rseq": first_rseq, "base_time": base_time, "count": len(records),
                                 "records": records})


def _reference_rows(frame):
    """The rows as the pipeline built them from decode_frame's payload before the fast path."""
    p = frame.payload
    out = []
    for i, rec in enumerate(p["records"]):
        out.append({"rseq": p["first_rseq"] + i, "kind": RECORD_FIX, "time": p["base_time"] + rec["dt"],
                    "lat": rec["lat"], "lon": rec["lon"], "speed": rec["speed"], "course": rec["course"],
                    "fix_quality": rec["fix"]["quality"], "satellites": rec["fix"]["satellites"],
                    "hdop": rec["hdop"], "cable_intact": int(bool(rec["status"]["cable_intact"])),
                    "housing_closed": int(bool(rec["status"]["housing_closed"])),
                    "battery_pct": rec["status"]["battery_pct"], "value": None})
    return out


def fast_records(raw, key_for):
    """What ingest takes from a frame: (Frame, the records' wire values); None when refused or not
    an authentic RECORDS frame (ingest then refuses it with decode_frame's reason)."""
    try:
        frame = decode_frame(raw, key_for, flat_records=True)
    except DecodeError:
        return None
    if frame.type != "RECORDS" or frame.mac_ok is not True:
        return None
    fields = frame.payload.pop("fields")
    body = frame.payload.pop("body")
    assert body == raw[schema.HEADER_SIZE + 9:schema.HEADER_SIZE + frame.length]  # the records' bytes, as sent
    assert list(run_rows(frame.seal_id, None, frame.payload["first_rseq"], frame.payload["base_time"], body, 0.0)) == [
        dict(r, seal_id=frame.seal_id, escort_id=None, received_at=0.0)
        for r in wire_fix_rows(frame.payload["first_rseq"], frame.payload["base_time"], fields)]
    return frame, fields


def _check_agrees(raw):
    fast = fast_records(raw, _key_for)
    try:
        ref = decode_frame(raw, _key_for)
    except DecodeError:
        assert fast is None, "fast path accepted a frame decode_frame refuses"
        return None
    if ref.type != "RECORDS" or ref.mac_ok is not True:
        assert fast is None
        return None
    assert fast is not None, "an authentic RECORDS frame must take the fast path"
    frame, fields = fast
    assert (frame.version, frame.type, frame.flags, frame.seal_id, frame.boot, frame.seq, frame.time,
            frame.length, frame.mac, frame.crc, frame.mac_ok) == (
        ref.version, ref.type, ref.flags, ref.seal_id, ref.boot, ref.seq, ref.time, ref.length, ref.mac, ref.crc,
        ref.mac_ok)
    assert frame.payload == {k: ref.payload[k] for k in ("first_rseq", "base_time", "count")}
    assert wire_fix_rows(ref.payload["first_rseq"], ref.payload["base_time"], fields) == _reference_rows(ref)
    return ref


@settings(max_examples=150, deadline=None)
@given(records=st.lists(_RECORD, max_size=120), first=st.integers(0, 2**32 - 1), flags=st.sampled_from([0, 1, 2, 3]))
def test_fast_path_equals_decode_frame_on_authentic_records(records, first, flags):
    raw = _records_frame(records, first_rseq=first, flags=flags)
    assert _check_agrees(raw) is not None


@settings(max_examples=300, deadline=None)
@given(records=st.lists(_RECORD, min_size=1, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_fast_path_declines_whatever_decode_frame_refuses(records, seed):
    """Mutations: a flipped byte (CRC fixed up or not), truncation, extension, wrong key or seal,
    another type, reserved flags, a count that disagrees with the length."""
    rng = random.Random(seed)
    raw = bytearray(_records_frame(records))
    how = rng.randrange(6)
    if how == 0:
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    elif how == 1:  # a change the CRC does not catch (recomputed): the MAC or a check must
        raw[rng.randrange(len(raw) - 12)] ^= 1 << rng.randrange(8)
        raw[-4:] = zlib.crc32(raw[:-4]).to_bytes(4, "big")
    elif how == 2:
        raw = raw[:rng.randrange(len(raw))]
    elif how == 3:
        raw += bytes([rng.randrange(256)])
    elif how == 4:
        raw = bytearray(_records_frame(records, key=test_key(SEAL + 1)))
    else:
        raw = bytearray(_records_frame(records, seal_id=SEAL + 1, key=test_key(SEAL + 1)))
    _check_agrees(bytes(raw))


def test_every_golden_vector_takes_the_fast_path_exactly_when_decode_frame_accepts_it():
    import json
    from pathlib import Path

    checked = 0
    for path in sorted((Path(__file__).parents[2] / "protocol" / "vectors").glob("*.json")):
        v = json.loads(path.read_text())
        if v["kind"] != "frame":
            continue
        key = bytes.fromhex(v["key"]) if v.get("key") else None
        raw = bytes.fromhex(v["hex"])
        fast = fast_records(raw, lambda _sid: key)
        try:
            ref = decode_frame(raw, key) if key else None
        except DecodeError:
            ref = None
        if ref is not None and ref.type == "RECORDS":
            assert fast is not None and fast[0].seq == ref.seq
            assert wire_fix_rows(ref.payload["first_rseq"], ref.payload["base_time"], fast[1]) == _reference_rows(ref)
            checked += 1
        else:
            assert fast is None, path.name
    assert checked >= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_RECORD, min_size=1, max_size=120), overlap=st.integers(0, 130))
def test_rows_stored_by_sqlite_equal_the_reference_rows(tmp_path_factory, records, overlap):
    """Including a resent run that overlaps stored records (those stay as first stored)."""
    pipeline, store, clock = make_pipeline(tmp_path_factory.mktemp("rows"))
    pipeline.provision_seal(SEAL, KEY)
    first = _records_frame(records, first_rseq=1000, seq=1)
    res = pipeline.handle_uplink(first, "t")
    assert res.result == "accepted" and res.records_committed == len(records)
    shifted = [dict(r, speed=(r["speed"] + 1) & 0xFFFF) for r in records]
    start = 1000 + min(overlap, len(records))
    second = _records_frame(shifted, first_rseq=start, seq=2)
    res2 = pipeline.handle_uplink(second, "t")
    dup = max(0, 1000 + len(records) - start)
    assert (res2.records_committed, res2.records_duplicate) == (len(records) - dup, dup)
    expected = {r["rseq"]: r for r in _reference_rows(decode_frame(first))}
    for r in _reference_rows(decode_frame(second)):
        expected.setdefault(r["rseq"], r)
    stored = store.records(SEAL)
    assert [r["rseq"] for r in stored] == sorted(expected)
    for row in stored:
        assert {k: row[k] for k in expected[row["rseq"]]} == expected[row["rseq"]]
        assert row["seal_id"] == SEAL and row["escort_id"] is None and row["received_at"] == clock.t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_RECORD, min_size=1, max_size=120), data=st.data())
def test_runs_single_rows_and_holes_read_back_as_one_journal(tmp_path_factory, records, data):
    """Rseqs a seal has already stored in any shape (earlier runs, single rows as stored before
    runs existed), then a frame over all of them: only the holes are stored (as runs), nothing
    twice; records(), existing_rseqs, count_rseqs and the track agree with the reference."""
    pipeline, store, clock = make_pipeline(tmp_path_factory.mktemp("holes"))
    pipeline.provision_seal(SEAL, KEY)
    first = 5000
    ref_frame = decode_frame(_records_frame(records, first_rseq=first))
    reference = {r["rseq"]: r for r in _reference_rows(ref_frame)}
    n = len(records)
    taken = sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n), label="stored before"))
    legacy = set(data.draw(st.sets(st.sampled_from(taken), max_size=len(taken)), label="as single rows")) if taken else set()
    seq = 1
    with store.transaction() as tx:
        tx.insert_records([dict(reference[first + i], seal_id=SEAL, escort_id=None, received_at=1.0)
                           for i in sorted(legacy)])
    for i in taken:
        if i in legacy:
            continue
        raw = _records_frame([records[i]], first_rseq=first + i, seq=seq)
        seq += 1
        assert pipeline.handle_uplink(raw, "t").records_committed == 1
    res = pipeline.handle_uplink(_records_frame(records, first_rseq=first, seq=seq), "t")
    assert (res.records_committed, res.records_duplicate) == (n - len(taken), len(taken))
    stored = store.records(SEAL)
    assert [r["rseq"] for r in stored] == sorted(reference)
    for row in stored:
        assert {k: row[k] for k in reference[row["rseq"]]} == reference[row["rseq"]]
    with store.transaction() as tx:
        assert tx.existing_rseqs(SEAL, first - 3, first + n + 3) == set(reference)
        lo, hi = sorted(data.draw(st.tuples(st.integers(first - 200, first + n + 200),
                                            st.integers(first - 200, first + n + 200)), label="range"))
        assert tx.count_rseqs(SEAL, lo, hi) == len([r for r in reference if lo <= r <= hi])
        assert tx.existing_rseqs(SEAL, lo, hi) == {r for r in reference if lo <= r <= hi}
    assert store.counts()["records"] == n
    assert store.records(SEAL, limit=3) == stored[:3]


def test_the_track_merges_single_rows_and_runs_in_journal_order(tmp_path):
    from pipeline_support import FakeSeal, activate

    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(SEAL, key=KEY)
    escort_id = activate(pipeline, seal, clock)["escort_id"]
    point = {"dt": 0, "lat": 433_000_000, "lon": 749_000_000, "speed": 100, "course": 10,
             "fix": {"quality": 1, "satellites": 9}, "hdop": 9,
             "status": {"cable_intact": True, "housing_closed": True, "battery_pct": 90}}
    base = int(clock.t)
    start = seal.rseq + 1
    # rseq start+1 as a single row (as stored before runs existed), the rest as a run around it
    other = dict(point, dt=1, lat=433_100_000, lon=749_100_000, speed=5)
    (legacy,) = _reference_rows(decode_frame(_records_frame([other], first_rseq=start + 1, base_time=base)))
    legacy.update(seal_id=SEAL, escort_id=escort_id, received_at=1.0)
    with store.transaction() as tx:
        tx.insert_records([legacy])
    records = [dict(point, dt=i, lat=point["lat"] + i) for i in range(4)]
    raw = seal.frame("RECORDS", {"first_rseq": start, "base_time": base, "count": 4, "records": records}, time=clock.t)
    seal.rseq += 4
    res = pipeline.handle_uplink(raw, "t")
    assert res.result == "accepted" and (res.records_committed, res.records_duplicate) == (3, 1)
    track = store.track_fixes(SEAL, escort_id)
    assert [t[0] for t in track][-4:] == [start, start + 1, start + 2, start + 3]
    assert track[-3] == (start + 1, base + 1, 433_100_000, 749_100_000, 5)  # the single row, not the run's copy
    n, top = store.track_version(SEAL, escort_id)
    assert top == start + 3 and n >= 4


def test_bench_frames_take_the_fast_path():
    seal = SealFrames(SEAL, key=KEY)
    raw = seal.records(60)
    assert fast_records(raw, _key_for) is not None
    assert _check_agrees(raw) is not None
    # a byte of the records changed with a valid CRC: the MAC refuses it, through decode_frame
    bad = bytearray(raw)
    bad[40] ^= 0x10
    bad[-4:] = struct.pack(">I", zlib.crc32(bad[:-4]))
    assert fast_records(bytes(bad), _key_for) is None
    with pytest.raises(DecodeError) as exc:
        decode_frame(bytes(bad), _key_for)
    assert exc.value.code == "bad_mac"


def _reference_positions(frame):
    """POSITION details as the pipeline built them from decode_frame's payload (before the fast path)."""
    from navseal.gateway import events as ev

    rows = _reference_rows(frame)
    fixes = [r for r in rows if r["fix_quality"] and ev.valid_position(r["lat"], r["lon"])]
    return fixes, [{
        "rseq": r["rseq"], "time": ev.iso(r["time"]), "lat": r["lat"] / 1e7, "lon": r["lon"] / 1e7,
        "speed_kmh": r["speed"] / 10, "course_deg": None if r["course"] == 255 else r["course"] * 2,
        "fix_quality": r["fix_quality"], "satellites": r["satellites"],
        "hdop": None if r["hdop"] == 255 else r["hdop"] / 10,
        "cable_intact": bool(r["cable_intact"]), "housing_closed": bool(r["housing_closed"]),
        "battery_pct": r["battery_pct"],
    } for r in fixes]


_ON_GLOBE = st.fixed_dictionaries({
    "dt": st.integers(0, 0xFFFF), "lat": st.one_of(st.none(), st.integers(-900_000_000, 900_000_000)),
    "lon": st.one_of(st.none(), st.integers(-1_800_000_000, 1_800_000_000), st.just(2_000_000_000)),
    "speed": st.integers(0, 0xFFFF), "course": st.sampled_from([0, 1, 45, 179, 255]),
    "fix": st.fixed_dictionaries({"quality": st.integers(0, 3), "satellites": st.integers(0, 63)}),
    "hdop": st.sampled_from([0, 9, 254, 255]),
    "status": st.fixed_dictionaries({"cable_intact": st.just(True), "housing_closed": st.just(True),
                                     "battery_pct": st.one_of(st.none(), st.sampled_from([40, 84, 100]))}),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(_ON_GLOBE, min_size=1, max_size=120), day_offset=st.integers(0, 3))
def test_position_events_equal_the_reference(tmp_path_factory, records, day_offset):
    """An active escort's POSITION event: same positions, same dates (batches may cross midnight)."""
    from pipeline_support import FakeSeal, activate

    from navseal.gateway import events as ev

    pipeline, store, clock = make_pipeline(tmp_path_factory.mktemp("pos"))
    seal = FakeSeal(SEAL, key=KEY)
    activate(pipeline, seal, clock)
    base = int(clock.t) + 86400 * day_offset - 40_000  # dt up to 65535 s: crosses a midnight
    raw = seal.frame("RECORDS", {"first_rseq": seal.rseq + 1, "base_time": base, "count": len(records),
                                 "records": records}, time=clock.t)
    seal.rseq += len(records)
    res = pipeline.handle_uplink(raw, "t")
    assert res.result == "accepted"
    fixes, positions = _reference_positions(decode_frame(raw))
    got = [e for e in res.events if e["kind"] == "POSITION"]
    if not fixes:
        assert got == []
        return
    (event,) = got
    assert event["details"]["positions"] == positions
    assert event["details"]["count"] == len(positions)
    assert event["occurred_at"] == ev.iso(fixes[-1]["time"])
    assert event["position"] == ev.position(fixes[-1]["lat"], fixes[-1]["lon"], fixes[-1]["time"])


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(st.tuples(st.integers(0, 2**16 - 1),
                                 st.one_of(st.just(schema.NO_POSITION), st.integers(-2**31, 2**31 - 1)),
                                 st.one_of(st.just(schema.NO_POSITION), st.integers(-2**31, 2**31 - 1)),
                                 st.integers(0, 2**16 - 1), st.integers(0, 255), st.integers(0, 255),
                                 st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=5),
       first=st.integers(0, 2**32 - 1), base=st.integers(0, 2**32 - 1))
def test_fix_row_equals_the_reference_decoder(fields, first, base):
    from navseal.gateway.store import fix_row

    flat = tuple(v for t in fields for v in t)
    reference = wire_fix_rows(first, base, flat)
    for i, t in enumerate(fields):
        row = fix_row(t, first + i, base, SEAL, 7, 1.5)
        assert row == dict(reference[i], seal_id=SEAL, escort_id=7, received_at=1.5)


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)  # a file written by an older gateway
def test_a_store_from_before_record_runs_keeps_its_records_after_the_upgrade(tmp_path):
    """A database at migration 9 holds fixes one row each; opened by this gateway it migrates, reads
    them back unchanged beside new runs, and a frame repeating some of them stores only the rest."""
    import sqlite3

    from navseal.gateway.config import GatewayConfig
    from navseal.gateway.pipeline import Pipeline
    from navseal.gateway.store import MIGRATIONS, SqliteStore
    from navseal.gateway.store.sqlite_schema import statements
    from navseal.gateway.store.wire_fixes import RECORD_COLUMNS

    point = {"dt": 0, "lat": 433_000_000, "lon": 749_000_000, "speed": 100, "course": 10,
             "fix": {"quality": 1, "satellites": 9}, "hdop": 9,
             "status": {"cable_intact": True, "housing_closed": True, "battery_pct": 90}}
    records = [dict(point, dt=i, lat=point["lat"] + i) for i in range(6)]
    reference = _reference_rows(decode_frame(_records_frame(records, first_rseq=1)))
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (9)")
        for number in range(9):
            for statement in statements(MIGRATIONS[number]):
                db.execute(statement)
        db.execute("INSERT INTO seals (seal_id, key, provisioned_at) VALUES (?, ?, 1.0)", (SEAL, KEY))
        db.executemany(f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) "
                       f"VALUES ({', '.join(':' + c for c in RECORD_COLUMNS)})",
                       [dict(r, seal_id=SEAL, escort_id=None, received_at=1.0) for r in reference[:3]])
    store = SqliteStore(str(path))
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert store.records(SEAL) == [dict(r, seal_id=SEAL, escort_id=None, received_at=1.0) for r in reference[:3]]
        pipeline = Pipeline(store, GatewayConfig(db_path=str(path)), lambda: 2.0)
        res = pipeline.handle_uplink(_records_frame(records, first_rseq=1, seq=1), "t")
        assert (res.result, res.records_committed, res.records_duplicate) == ("accepted", 3, 3)
        stored = store.records(SEAL)
        assert [r["rseq"] for r in stored] == [1, 2, 3, 4, 5, 6]
        assert [r["received_at"] for r in stored] == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        for row, ref in zip(stored, reference):
            assert {k: row[k] for k in ref} == ref
        assert store.counts()["records"] == 6
    finally:
        store.close()
