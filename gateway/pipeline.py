"""The gateway's sans-I/O core: bytes and time in; committed state, downlink frames and events out.

`Pipeline.handle_uplink(raw, source)` runs one frame through
CRC -> decode -> authenticate (per-seal key) -> replay window -> de-duplicate -> escort state ->
rules -> durable commit, and only then builds the ACK. It owns no socket, thread, loop or sleep:
the drivers (gateway/mqtt_ingest.py, serial_ingest.py, the HTTP API, the CLI) call it and send what
it returns. Time comes from the injected `clock` (Unix seconds) and from `tick(now)`.

Replay window: a seal's (boot, seq) must grow. A frame at or below the last accepted one is a
"duplicate" if exactly that (boot, seq) was accepted before (MQTT QoS 1 redelivery, or the seal's
retransmission after a lost ACK): it is re-ACKed with the same committed_rseq and changes nothing.
Otherwise it is refused as "replayed". Records are also de-duplicated by (seal, rseq), so a
journal batch the seal resends under a new seq stores nothing twice and raises no event twice.

Commands: per seal, the oldest open command is the only one in flight (the seal's downlink replay
window needs increasing seqs). It goes out in the answer to the seal's next frame, or from `tick`
while the seal counts as online (heard within `online_window_s`); unanswered, it is resent with a
fresh downlink seq and the RETRANSMIT flag after a capped exponential backoff, until a
COMMAND_RESULT for any of its transmissions (or a STATE showing it done) closes it. A DEACTIVATE
answered JOURNAL_PENDING (the seal still holds records we have not acknowledged) is "not yet":
it stays open and goes again with the answer to the seal's next frame, never from `tick` and never
in the answer to the refusal itself (the backlog is still there then). Every downlink frame (ACKs
too) takes the next persisted per-seal seq.

Thread-safety: every public method takes one lock, so drivers may call from several threads.
Several processes may share one SQLite file: all state is read inside the write transaction.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import struct
import threading
import zlib
import time as _time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from navseal.protocol import DecodeError, EncodeError, Frame, decode_frame, encode_frame
from navseal.protocol import NO_RSEQ, UPLINK_TYPES
from navseal.protocol import fastpath, schema
from navseal.protocol.schema import densify_route

from . import events as ev
from .config import GatewayConfig
from .geo import route_from_geojson, route_from_gpx, to_wire_route
from .rules import EscortRules
from .store import (
    CMD_ACKED,
    CMD_CANCELLED,
    CMD_FAILED,
    CMD_QUEUED,
    CMD_SENT,
    ESCORT_ACTIVE,
    ESCORT_ARMED,
    ESCORT_DEACTIVATION_REQUESTED,
    ESCORT_REQUESTED,
    MONITORED_STATUSES,
    Store,
    WIRE_FIX_FORMAT,
    StoreError,
    StoreTx,
    fix_row,
)

log = logging.getLogger("navseal.gateway.pipeline")

Clock = Callable[[], float]

# Protocol string limits (docs/protocol.md, ACTIVATE/DEACTIVATE): bytes of UTF-8.
_STR_LIMITS = {"declaration": 40, "vehicle": 16, "dest_office_code": 16, "dest_office_name": 64}
_MAX_ROUTE_POINTS = 400
_U32 = 0xFFFFFFFF

# ACK fast path: one ACK per uplink frame, so building it through construct (~0.15 ms) is a visible
# share of a frame's cost. The struct layouts are derived from the construct definition (as the
# codec's decode fast path is), and a test checks the bytes against encode_frame.
_ACK_HEADER = struct.Struct(
    ">" + f"{len(schema.MAGIC)}s" + fastpath.struct_format(schema.Struct(*schema.Header.subcons[1:]))[1:] + "H")
_ACK_PAYLOAD = struct.Struct(fastpath.struct_format(schema.PAYLOADS["ACK"]))
_ACK_TYPE = schema.MSG_TYPES["ACK"]

# RECORDS fast path. Position batches are the bulk of the traffic, and decode_frame turns every
# record into nested dicts that the INSERT then turned back into columns. `fast_records` accepts
# only a frame that decode_frame would accept as an authentic RECORDS frame (the same checks, on
# layouts and limits read from the same schema) and returns the records as the flat tuple `struct`
# unpacks, which the store inserts as they are. Anything else (another type, any defect, an unknown
# or changed key) goes through decode_frame, which alone decides every refusal and its reason.
_HEADER = _ACK_HEADER  # the same 21-byte header layout, up to and including the payload length
_RECORDS_TYPE = schema.MSG_TYPES["RECORDS"]
_RECORDS_HEAD = struct.Struct(fastpath.struct_format(schema.Struct(*schema.Records.subcons[:2])) + "B")
_FIX_STRUCTS: dict[int, struct.Struct] = {}  # record count -> struct of that many records
assert fastpath.struct_format(schema.PositionRecord) == ">" + WIRE_FIX_FORMAT
assert struct.calcsize(">" + WIRE_FIX_FORMAT) == schema.RECORD_SIZE
_NF = len(WIRE_FIX_FORMAT)  # wire fields per record


class CommandError(ValueError):
    """A command request was refused. `code` is stable (HTTP/CLI map it), the message explains.

    Codes: "bad_request" (a field missing/invalid), "unknown_seal" (not provisioned),
    "busy" (the seal already has an open escort), "not_found" (no such escort),
    "not_active" (escort not in a state that allows this), "mismatch" (DEACTIVATE data do not
    match the escort: seal/declaration/vehicle).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ActivationRequest:
    """Clause 8 data from the customs office of departure."""

    seal_id: int
    declaration: str  # transit declaration number (<= 40 bytes UTF-8)
    vehicle: str  # state registration number (<= 16 bytes)
    departure_office_code: str
    departure_office_name: str
    dest_office_code: str  # <= 16 bytes
    dest_office_name: str  # <= 64 bytes
    period_start: float  # Unix s
    period_end: float  # Unix s: transit deadline (TRANSIT_OVERDUE after it)
    route: Sequence[Sequence[float]] | None = None  # [(lat, lon)] degrees; geo.route_from_geojson/gpx
    corridor_m: int = 0  # half-width; 0 = no route check

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ActivationRequest":
        """From JSON (HTTP API / CLI): same field names; `route` may be [[lat, lon], ...], a GeoJSON
        object (LineString/Feature/FeatureCollection), or GPX text. Times may be Unix seconds or
        RFC 3339 strings. Raises CommandError("bad_request") naming the field."""
        if not isinstance(data, dict):
            raise CommandError("bad_request", "activation request must be a JSON object")
        missing = [k for k in ("seal_id", "declaration", "vehicle", "departure_office_code",
                               "departure_office_name", "dest_office_code", "dest_office_name",
                               "period_start", "period_end") if data.get(k) in (None, "")]
        if missing:
            raise CommandError("bad_request", f"activation request: missing {', '.join(missing)}")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise CommandError("bad_request", f"activation request: unknown fields {sorted(unknown)}")
        route = data.get("route")
        try:
            if isinstance(route, dict):
                route = route_from_geojson(route)
            elif isinstance(route, str):
                route = route_from_gpx(route) if route.lstrip().startswith("<") else route_from_geojson(route)
        except ValueError as exc:
            raise CommandError("bad_request", f"route: {exc}") from None
        try:
            return cls(
                seal_id=_int(data["seal_id"], "seal_id"),
                declaration=str(data["declaration"]),
                vehicle=str(data["vehicle"]),
                departure_office_code=str(data["departure_office_code"]),
                departure_office_name=str(data["departure_office_name"]),
                dest_office_code=str(data["dest_office_code"]),
                dest_office_name=str(data["dest_office_name"]),
                period_start=_time_value(data["period_start"], "period_start"),
                period_end=_time_value(data["period_end"], "period_end"),
                route=route,
                corridor_m=_int(data.get("corridor_m", 0) or 0, "corridor_m"),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, CommandError):
                raise
            raise CommandError("bad_request", f"activation request: {exc}") from None


@dataclass
class IngestResult:
    """What one uplink frame produced. Downlink frames are safe to send: the commit is done."""

    result: str  # "accepted" | "duplicate" | "rejected"
    reason: str | None = None  # rejection reason: a DecodeError code, "unknown_seal", "replayed",
    #                            "wrong_direction", "store_error", "internal_error"
    seal_id: int | None = None
    frame_type: str | None = None
    records_committed: int = 0  # new records stored by this frame (duplicates not counted)
    records_duplicate: int = 0
    downlink: list[tuple[int, bytes]] = field(default_factory=list)  # (seal_id, frame) to send
    events: list[dict[str, Any]] = field(default_factory=list)  # new events (already in the outbox)
    ingest_s: float = 0.0  # processing time of this frame (process clock)

    @property
    def accepted(self) -> bool:
        return self.result in ("accepted", "duplicate")


class Histogram:
    """Prometheus-style cumulative histogram (bucket upper bounds in seconds) plus sum/count."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets) + (math.inf,)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break

    def snapshot(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for bound, n in zip(self.buckets, self.counts):
            running += n
            cumulative.append((bound, running))
        return {"buckets": cumulative, "sum": self.sum, "count": self.count}


class _Reject(Exception):
    def __init__(self, reason: str, detail: str, seal_id: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.seal_id = seal_id


@dataclass
class _Work:
    """One frame in flight inside a transaction; turned into an IngestResult after commit."""

    raw: bytes
    source: str
    t0: float
    result: IngestResult
    ack: dict[str, Any] | None = None  # ACK payload; encoded after commit
    ack_seq: int | None = None
    key: bytes | None = None
    frame_boot: int = 0
    frame_seq: int = 0
    commands: list[tuple[int, bytes]] = field(default_factory=list)
    fixes: tuple[int, ...] | None = None  # RECORDS: the records' wire fields (fast_records)
    hold_commands: bool = False  # the frame was a JOURNAL_PENDING refusal: answer it with no command


class Pipeline:
    """See the module docstring. Construct once per process (or per store) and share it."""

    def __init__(self, store: Store, config: GatewayConfig | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self.config = config or GatewayConfig()
        self.clock: Clock = clock or _time.time
        self._lock = threading.RLock()
        self._keys: dict[int, bytes] = {}
        # Metrics (read by the drivers; see metrics()).
        self.frames: Counter[tuple[str, str]] = Counter()  # (result, reason or "") -> frames
        self.events_by_kind: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        self.alarm_latency = Histogram((1, 5, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 24 * 3600))
        self.ingest_time = Histogram((0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0))
        self.last_tick_events: list[dict[str, Any]] = []
        # SIGNAL_LOST waits until this pipeline has run `startup_grace_s`: after a gateway outage
        # the broker first delivers what the seals sent meanwhile, and a seal that did send must
        # not be reported silent because the gateway was.
        self._started_at = self.clock()
        # Called (no arguments, from the caller's thread) when a command creates an earlier deadline,
        # so a driver sleeping until next_deadline() can wake up and tick.
        self.wakeup: Callable[[], None] | None = None

    # ------------------------------------------------------------------------------------------
    # ingest
    # ------------------------------------------------------------------------------------------
    def handle_uplink(self, raw: bytes, source: str = "") -> IngestResult:
        """One frame in; never raises. The ACK (if any) is in `result.downlink`, built after commit."""
        return self.handle_uplinks([(raw, source)])[0]

    def handle_uplinks(self, items: Sequence[tuple[bytes, str]]) -> list[IngestResult]:
        """Several frames in ONE transaction (one savepoint each), results in input order; ACKs
        are built only after the single commit. Faster than frame by frame (one fsync)."""
        with self._lock:
            works: list[_Work] = []
            pending: list[_Work] = []
            for raw, source in items:
                w = _Work(raw=b"", source=source, t0=_time.perf_counter(), result=IngestResult("rejected"))
                works.append(w)
                try:
                    w.raw = raw if isinstance(raw, bytes) else bytes(raw)
                    self._precheck(w)
                    pending.append(w)
                except _Reject as rej:
                    self._rejected(w, rej)
                except Exception as exc:  # a bug must not take the ingest down
                    log.exception("internal error before commit: seal=%s source=%s", w.result.seal_id, source)
                    self._rejected(w, _Reject("internal_error", repr(exc), w.result.seal_id), logged=True)
            if pending:
                self._commit_batch(pending)
            for w in works:
                self._account(w)
            return [w.result for w in works]

    def _precheck(self, w: _Work) -> None:
        """CRC, decode, authenticate: everything that needs no transaction."""
        raw = w.raw
        fast = fast_records(raw, self._key_for)
        if fast is not None:
            frame, w.fixes = fast
            w.result.seal_id = frame.seal_id
            w.result.frame_type = frame.type
            w.key = self._keys[frame.seal_id]
            w.frame = frame  # type: ignore[attr-defined]
            return
        try:
            frame = decode_frame(raw, self._key_for)
        except DecodeError as exc:
            if exc.code == "bad_mac" and exc.seal_id is not None and self._reload_key(exc.seal_id):
                try:
                    frame = decode_frame(raw, self._key_for)  # the key was replaced meanwhile
                except DecodeError as exc2:
                    raise _Reject(exc2.code, exc2.detail, exc2.seal_id) from None
            else:
                raise _Reject(exc.code, exc.detail, exc.seal_id) from None
        w.result.seal_id = frame.seal_id
        w.result.frame_type = frame.type
        if frame.mac_ok is not True:
            raise _Reject("unknown_seal", f"seal {frame.seal_id} is not provisioned", frame.seal_id)
        if frame.type not in UPLINK_TYPES:
            raise _Reject("wrong_direction", f"{frame.type} is a downlink message", frame.seal_id)
        w.key = self._keys[frame.seal_id]
        w.frame = frame  # type: ignore[attr-defined]

    def _commit_batch(self, pending: list[_Work]) -> None:
        done: list[_Work] = []
        try:
            with self.store.transaction() as tx:
                for w in pending:
                    try:
                        with tx.savepoint():
                            self._process(tx, w)
                        done.append(w)
                    except _Reject as rej:
                        self._rejected(w, rej)
                    except StoreError:
                        raise
                    except Exception as exc:
                        log.exception("internal error processing frame: seal=%s source=%s hex=%s",
                                      w.result.seal_id, w.source, self._excerpt(w.raw))
                        self._rejected(w, _Reject("internal_error", repr(exc), w.result.seal_id), logged=True)
        except Exception as exc:  # the commit failed: nothing of this batch is stored, so no ACK
            log.error("store commit failed, %d frame(s) not acknowledged: %s", len(pending), exc)
            for w in done:
                w.result = IngestResult("rejected", "store_error", w.result.seal_id, w.result.frame_type)
                w.ack = None
                w.commands = []
            return
        # Committed: now (and only now) the ACKs may be built and released.
        for w in done:
            seal_id, seq, key = w.result.seal_id, w.ack_seq, w.key
            if w.ack is not None and seal_id is not None and seq is not None and key is not None:
                try:
                    w.result.downlink.append((seal_id, self._encode("ACK", seal_id, seq, w.ack, key)))
                except Exception:  # stored already; the seal's retransmission gets a re-ACK
                    log.exception("seal %s: could not build the ACK %s", seal_id, w.ack)
                    self.counters["ack_encode_errors"] += 1
            w.result.downlink.extend(w.commands)

    def _process(self, tx: StoreTx, w: _Work) -> None:
        frame = w.frame  # type: ignore[attr-defined]
        now = self.clock()
        seal_id = frame.seal_id
        seal = tx.get_seal(seal_id)
        if seal is None:  # deleted between precheck and now
            raise _Reject("unknown_seal", f"seal {seal_id} is not provisioned", seal_id)
        r = w.result
        last = (seal["last_boot"], seal["last_seq"]) if seal["last_boot"] is not None else None
        if last is not None and (frame.boot, frame.seq) <= last:
            seen = tx.get_uplink(seal_id, frame.boot, frame.seq)
            if seen is None or seen["type"] != frame.type:
                raise _Reject("replayed", f"(boot {frame.boot}, seq {frame.seq}) is not after "
                                          f"the last accepted {last}", seal_id)
            # A redelivery (MQTT QoS 1) or a retransmission after a lost ACK: same message, already
            # committed. Answer with the same ACK content; change nothing.
            r.result = "duplicate"
            tx.update_seal(seal_id, last_seen_at=max(now, seal["last_seen_at"] or 0), last_source=w.source)
            w.ack = {"acked_boot": frame.boot, "acked_seq": frame.seq, "committed_rseq": seen["ack_rseq"]}
            w.ack_seq = tx.next_downlink_seq(seal_id)
            return

        escort = tx.open_escort_for_seal(seal_id)
        rules = EscortRules(escort, self.config, now) if escort else None
        seal_updates: dict[str, Any] = {"last_seen_at": now, "last_source": w.source,
                                        "last_boot": frame.boot, "last_seq": frame.seq}
        if rules is not None:
            rules.heard()
        ack_rseq = NO_RSEQ
        other_events: list[dict[str, Any]] = []
        p = frame.payload
        if frame.type == "RECORDS":
            ack_rseq = self._records(tx, w, frame, now, rules, seal_updates, other_events)
        elif frame.type == "EVENT":
            ack_rseq = p["rseq"]
            self._seal_event(tx, w, frame, now, rules, seal_updates)
        elif frame.type == "STATE":
            seal_updates["last_state"] = json.dumps(p, separators=(",", ":"))
            if p.get("battery_pct") not in (None, 255):
                seal_updates["last_battery_pct"] = p["battery_pct"]
            lock = p.get("lock") or {}
            seal_updates["last_cable_intact"] = int(bool(lock.get("cable_intact")))
            seal_updates["last_housing_closed"] = int(bool(lock.get("housing_closed")))
            if p.get("fix_time") and ev.valid_position(p.get("lat"), p.get("lon")):
                if p["fix_time"] >= (seal["last_fix_time"] or 0):
                    seal_updates.update(last_fix_time=p["fix_time"], last_lat=p["lat"], last_lon=p["lon"])
            if rules is not None:
                self._reconcile_state(tx, rules, p, frame)
                rules.state_report(p, frame.time)
        elif frame.type == "HELLO":
            seal_updates["last_hello"] = json.dumps({**p, "boot": frame.boot}, separators=(",", ":"))
        elif frame.type == "COMMAND_RESULT":
            self._command_result(tx, w, frame, now, rules)

        if rules is not None:
            changes = rules.finish()
            if changes:
                tx.update_escort(rules.id, **changes)
            if rules.release_seal:  # armed, then failed: do not leave the seal armed
                self._queue_deactivate(tx, rules.escort, now)
        escort_id = rules.id if rules is not None else None
        new_events = (rules.events if rules is not None else []) + other_events
        if new_events:
            emitted = ev.iso(self.clock())
            for e in new_events:
                e["emitted_at"] = emitted
            r.events = tx.insert_events(new_events, [escort_id] * len(new_events), now)
        tx.insert_uplink({"seal_id": seal_id, "boot": frame.boot, "seq": frame.seq, "type": frame.type,
                          "crc": frame.crc, "received_at": now, "source": w.source,
                          "escort_id": escort_id, "ack_rseq": ack_rseq})
        w.ack_seq = tx.update_seal_next_seq(seal_id, **seal_updates)  # the ACK's downlink seq
        r.result = "accepted"
        w.ack = {"acked_boot": frame.boot, "acked_seq": frame.seq, "committed_rseq": ack_rseq}
        # The seal is listening right now: send its due command (stop-and-wait, oldest first).
        if not w.hold_commands:
            w.commands = self._due_commands(tx, seal_id, now, w.key or b"")

    def _records(self, tx: StoreTx, w: _Work, frame: Any, now: float, rules: EscortRules | None,
                 seal_updates: dict[str, Any], out_events: list[dict[str, Any]]) -> int:
        p = frame.payload
        count = p["count"]
        if count == 0:
            return NO_RSEQ
        first = p["first_rseq"]
        last_rseq = first + count - 1
        if last_rseq > _U32:  # the run would wrap the u32 counter: no seal can have sent that
            raise _Reject("bad_payload", f"rseq run {first}..{last_rseq} past the u32 range", frame.seal_id)
        fixes = w.fixes if w.fixes is not None else _fix_struct(count).unpack_from(w.raw, _RECORDS_AT)
        existing = tx.existing_rseqs(frame.seal_id, first, last_rseq)
        new = [i for i in range(count) if first + i not in existing] if existing else range(count)
        w.result.records_committed = len(new)
        w.result.records_duplicate = count - len(new)
        if not new:
            return last_rseq
        escort_id = rules.id if rules is not None and rules.monitored else None
        base = p["base_time"]
        stored = tx.insert_wire_fixes(frame.seal_id, escort_id, first, base, fixes, now)
        if stored != len(new):  # cannot happen inside our write transaction; say so if it does
            log.error("seal %s: %d of %d records stored, expected %d new", frame.seal_id, stored, count, len(new))

        seal_id = frame.seal_id

        def row(i: int) -> dict[str, Any]:
            return fix_row(fixes[i * _NF:(i + 1) * _NF], first + i, base, seal_id, escort_id, now)

        # Track state for the seal (last fix, lock, battery) from the newest record; without an
        # escort nothing else needs the records in Python.
        rows = [row(i) for i in new] if rules is not None else None
        newest = rows[-1] if rows else row(new[-1])
        seal_updates.update(last_cable_intact=newest["cable_intact"],
                            last_housing_closed=newest["housing_closed"])
        if newest["battery_pct"] is not None:
            seal_updates["last_battery_pct"] = newest["battery_pct"]
        last_fix = None
        for r in (reversed(rows) if rows else (row(i) for i in reversed(new))):
            if r["fix_quality"] and ev.valid_position(r["lat"], r["lon"]):
                last_fix = r
                break
        if last_fix is not None:
            seal_updates.update(last_fix_time=last_fix["time"], last_lat=last_fix["lat"], last_lon=last_fix["lon"])
        if rows is None or rules is None:
            return last_rseq
        fixes_rows = [r for r in rows if r["fix_quality"] and ev.valid_position(r["lat"], r["lon"])]
        for r in rows:
            rules.fix(r)
        if rules.monitored and fixes_rows:
            positions = [{
                "rseq": r["rseq"], "time": ev.iso(r["time"]), "lat": r["lat"] / 1e7,
                "lon": r["lon"] / 1e7, "speed_kmh": r["speed"] / 10,
                "course_deg": None if r["course"] == 255 else r["course"] * 2,
                "fix_quality": r["fix_quality"], "satellites": r["satellites"],
                "hdop": None if r["hdop"] == 255 else r["hdop"] / 10,
                "cable_intact": bool(r["cable_intact"]), "housing_closed": bool(r["housing_closed"]),
                "battery_pct": r["battery_pct"],
            } for r in fixes_rows]
            f = fixes_rows[-1]
            out_events.append(ev.make_event(
                "POSITION", seal_id=frame.seal_id, fact=f"rseq:{rows[0]['rseq']}-{rows[-1]['rseq']}",
                escort=rules.escort, occurred_at=f["time"], known_at=now, emitted_at=now,
                position=ev.position(f["lat"], f["lon"], f["time"]),
                details={"first_rseq": rows[0]["rseq"], "last_rseq": rows[-1]["rseq"],
                         "count": len(positions), "positions": positions}))
        return last_rseq

    def _seal_event(self, tx: StoreTx, w: _Work, frame: Any, now: float, rules: EscortRules | None,
                    seal_updates: dict[str, Any]) -> None:
        p = frame.payload
        if tx.existing_rseqs(frame.seal_id, p["rseq"], p["rseq"]):
            w.result.records_duplicate = 1
            return
        status = p["status"]
        escort_id = rules.id if rules is not None and rules.monitored else None
        tx.insert_records([{
            "seal_id": frame.seal_id, "rseq": p["rseq"], "escort_id": escort_id, "kind": p["code"],
            "time": p["time"], "lat": p["lat"], "lon": p["lon"], "speed": None, "course": None,
            "fix_quality": None, "satellites": None, "hdop": None,
            "cable_intact": int(bool(status["cable_intact"])), "housing_closed": int(bool(status["housing_closed"])),
            "battery_pct": status["battery_pct"], "value": p["value"], "received_at": now,
        }])
        w.result.records_committed = 1
        seal_updates.update(last_cable_intact=int(bool(status["cable_intact"])),
                            last_housing_closed=int(bool(status["housing_closed"])))
        if rules is not None:
            rules.seal_event(p)

    # ------------------------------------------------------------------------------------------
    # commands
    # ------------------------------------------------------------------------------------------
    def _command_result(self, tx: StoreTx, w: _Work, frame: Any, now: float, rules: EscortRules | None) -> None:
        p = frame.payload
        ref = [p["cmd_boot"], p["cmd_seq"]]
        command = None
        for c in tx.open_commands(frame.seal_id):
            if ref in json.loads(c["sent_seqs"]):
                command = c
                break
        if command is None:
            self.counters["command_results_unmatched"] += 1
            log.info("seal %s: COMMAND_RESULT for (boot %s, seq %s) %s matches no open command",
                     frame.seal_id, p["cmd_boot"], p["cmd_seq"], p["result"])
            return
        result = p["result"]
        ctype = command["type"]
        payload = json.loads(command["payload"])
        ok = result == "OK"
        # Idempotent outcomes: the seal already did what we asked (an earlier transmission got
        # through but its result was lost).
        if result in ("WRONG_STATE", "REPLAYED"):
            if ctype == "ACTIVATE" and p["state"] == "ACTIVE" and p["escort_id"] == payload["escort_id"]:
                ok = True
            elif ctype == "DEACTIVATE" and p["state"] == "INACTIVE":
                ok = True
        if result == "REPLAYED" and not ok:
            # The seal saw a (boot, seq) it considers old: send again with a fresh seq at once.
            tx.update_command(command["command_id"], next_attempt_at=now, result=result, result_at=now)
            return
        if result == "JOURNAL_PENDING" and ctype == "DEACTIVATE":
            # Not yet, never failed: the seal ends the escort only once everything it journaled is
            # acknowledged. Sent again with the answer to its next frame (which follows the ACKs
            # draining the backlog); not with the answer to this refusal (see _waits_for_seal).
            tx.update_command(command["command_id"], next_attempt_at=now, result=result, result_at=now)
            self.counters["commands_journal_pending"] += 1
            w.hold_commands = True
            return
        tx.update_command(command["command_id"], status=CMD_ACKED if ok else CMD_FAILED,
                          result=result, result_at=now,
                          error=None if ok else f"seal answered {result}")
        self.counters["commands_acked" if ok else "commands_failed"] += 1
        if rules is None or command["escort_id"] != rules.id:
            return
        if ctype == "ACTIVATE":
            if ok:
                rules.activation_confirmed(frame.time)
            else:
                rules.activation_failed(result, frame.time, {"command_id": command["command_id"]})
        elif ctype == "DEACTIVATE":
            if ok:
                seal = tx.get_seal(frame.seal_id) or {}
                lock = {"cable_intact": _maybe_bool(seal.get("last_cable_intact")),
                        "housing_closed": _maybe_bool(seal.get("last_housing_closed"))}
                rules.deactivated(frame.time, lock, ev.position(seal.get("last_lat"), seal.get("last_lon"),
                                                               seal.get("last_fix_time")))
            else:
                log.error("seal %s refused DEACTIVATE of escort %s: %s", frame.seal_id, rules.id, result)

    def _reconcile_state(self, tx: StoreTx, rules: EscortRules, p: dict[str, Any], frame: Any) -> None:
        """A STATE showing the seal already did what an open command asked (its result was lost)."""
        if rules.status == ESCORT_REQUESTED and p["state"] == "ACTIVE" and p["escort_id"] == rules.id:
            self._close_commands(tx, rules.id, "ACTIVATE")
            rules.activation_confirmed(frame.time)
        elif rules.status == ESCORT_DEACTIVATION_REQUESTED and p["state"] == "INACTIVE":
            if self._close_commands(tx, rules.id, "DEACTIVATE"):
                lock = p.get("lock") or {}
                rules.deactivated(frame.time, lock, ev.position(p.get("lat"), p.get("lon"), p.get("fix_time") or None))

    def _close_commands(self, tx: StoreTx, escort_id: int, ctype: str) -> bool:
        closed = False
        for c in tx.commands_for_escort(escort_id):
            if c["type"] == ctype and c["status"] in (CMD_QUEUED, CMD_SENT):
                tx.update_command(c["command_id"], status=CMD_ACKED, result="STATE", result_at=self.clock())
                self.counters["commands_acked"] += 1
                closed = True
        return closed

    def _due_commands(self, tx: StoreTx, seal_id: int, now: float, key: bytes) -> list[tuple[int, bytes]]:
        """Send the seal's oldest open command if it is due (stop-and-wait per seal)."""
        commands = tx.open_commands(seal_id)
        if not commands:
            return []
        c = commands[0]
        if c["status"] == CMD_SENT and (c["next_attempt_at"] or 0) > now:
            return []
        seq = tx.next_downlink_seq(seal_id)
        epoch = self.config.command_epoch
        attempts = c["attempts"] + 1
        sent = json.loads(c["sent_seqs"])
        sent.append([epoch, seq])
        backoff = min(self.config.command_retry_initial_s * 2 ** (attempts - 1), self.config.command_retry_max_s)
        try:
            frame = self._encode(c["type"], seal_id, seq, json.loads(c["payload"]), key,
                                 flags=1 if attempts > 1 else 0)
        except (EncodeError, ValueError) as exc:
            # A command that cannot be built would block the seal's queue (and its ACKs) forever.
            log.error("seal %s: command %s (%s) cannot be encoded, failed: %s", seal_id, c["command_id"],
                      c["type"], exc)
            tx.update_command(c["command_id"], status=CMD_FAILED, error=f"cannot encode: {exc}", result_at=now)
            self.counters["commands_failed"] += 1
            return []
        tx.update_command(c["command_id"], status=CMD_SENT, attempts=attempts, sent_at=now,
                          next_attempt_at=now + backoff, boot=epoch, seq=seq,
                          sent_seqs=json.dumps(sent[-50:]))
        self.counters["commands_sent"] += 1
        return [(seal_id, frame)]

    def provision_seal(self, seal_id: int, key: bytes) -> None:
        """Register a seal and its 32-byte key (or replace the key)."""
        with self._lock:
            try:
                self.store.provision_seal(int(seal_id), bytes(key), self.clock())
            except StoreError as exc:
                raise CommandError("bad_request", str(exc)) from None
            self._keys.pop(int(seal_id), None)

    def request_activation(self, request: ActivationRequest | dict[str, Any]) -> dict[str, Any]:
        """Create the escort and queue ACTIVATE for the seal. Returns the escort (status dict).
        Raises CommandError."""
        if isinstance(request, dict):
            request = ActivationRequest.from_dict(request)
        rq = request
        _check_u32(rq.seal_id, "seal_id")
        for name, limit in _STR_LIMITS.items():
            value = getattr(rq, name).strip()
            if not value:
                raise CommandError("bad_request", f"{name} is empty")
            if len(value.encode()) > limit:
                raise CommandError("bad_request", f"{name} is {len(value.encode())} bytes of UTF-8, at most {limit}")
        for name in ("departure_office_code", "departure_office_name"):
            if not getattr(rq, name).strip():
                raise CommandError("bad_request", f"{name} is empty")
        if not (0 <= rq.period_start < rq.period_end <= _U32):
            raise CommandError("bad_request", "transit period: need 0 <= period_start < period_end (Unix s)")
        if not (0 <= rq.corridor_m <= 0xFFFF):
            raise CommandError("bad_request", "corridor_m must be 0..65535 metres")
        wire_route: list[list[int]] = []
        if rq.route:
            try:
                wire_route = densify_route(to_wire_route(rq.route))
            except (TypeError, ValueError, IndexError) as exc:
                raise CommandError("bad_request", f"route: {exc}") from None
            if len(wire_route) > _MAX_ROUTE_POINTS:
                raise CommandError("bad_request", f"route has {len(wire_route)} points after densifying "
                                                  f"long segments; the seal takes at most {_MAX_ROUTE_POINTS}: "
                                                  f"simplify it")
        if rq.corridor_m and not wire_route:
            raise CommandError("bad_request", "corridor_m given without a route")
        with self._lock:
            now = self.clock()
            with self.store.transaction() as tx:
                seal = tx.get_seal(rq.seal_id)
                if seal is None:
                    raise CommandError("unknown_seal", f"seal {rq.seal_id} is not provisioned")
                busy = tx.open_escort_for_seal(rq.seal_id)
                if busy is not None:
                    raise CommandError("busy", f"seal {rq.seal_id} already has escort {busy['escort_id']} "
                                               f"({busy['status']}, declaration {busy['declaration']}); "
                                               f"deactivate it first")
                route_deg = [[lat / 1e5, lon / 1e5] for lat, lon in wire_route] if wire_route else None
                escort_id = tx.insert_escort({
                    "seal_id": rq.seal_id, "declaration": rq.declaration.strip(), "vehicle": rq.vehicle.strip(),
                    "departure_office_code": rq.departure_office_code.strip(),
                    "departure_office_name": rq.departure_office_name.strip(),
                    "dest_office_code": rq.dest_office_code.strip(),
                    "dest_office_name": rq.dest_office_name.strip(),
                    "period_start": rq.period_start, "period_end": rq.period_end,
                    "route": json.dumps(route_deg) if route_deg else None, "corridor_m": rq.corridor_m,
                    "status": ESCORT_REQUESTED, "requested_at": now,
                })
                if escort_id > _U32:
                    raise CommandError("bad_request", "escort id space exhausted")
                payload = {
                    "escort_id": escort_id, "seal_number": rq.seal_id,
                    "declaration": rq.declaration.strip(), "vehicle": rq.vehicle.strip(),
                    "dest_office_code": rq.dest_office_code.strip(), "dest_office_name": rq.dest_office_name.strip(),
                    "period_start": int(rq.period_start), "period_end": int(math.ceil(rq.period_end)),
                    "corridor_m": rq.corridor_m, "route": wire_route,
                }
                self._check_encodes("ACTIVATE", rq.seal_id, payload)
                tx.insert_command({"seal_id": rq.seal_id, "escort_id": escort_id, "type": "ACTIVATE",
                                   "payload": json.dumps(payload, ensure_ascii=False), "status": CMD_QUEUED,
                                   "created_at": now, "next_attempt_at": now})
                created = tx.get_escort(escort_id) or {}
            self.counters["activations_requested"] += 1
        self._wake()
        return self._escort_view(created)

    def request_deactivation(self, seal_id: int, declaration: str, vehicle: str) -> dict[str, Any]:
        """Clause 13: queue DEACTIVATE if seal, declaration and vehicle match the seal's escort;
        emits DEACTIVATION_REQUESTED and starts the one-hour deadline. Raises CommandError."""
        declaration = (declaration or "").strip()
        vehicle = (vehicle or "").strip()
        if not declaration or not vehicle:
            raise CommandError("bad_request", "deactivation needs seal number, declaration and vehicle (clause 13)")
        with self._lock:
            now = self.clock()
            with self.store.transaction() as tx:
                if tx.get_seal(int(seal_id)) is None:
                    raise CommandError("unknown_seal", f"seal {seal_id} is not provisioned")
                escort = tx.open_escort_for_seal(int(seal_id))
                if escort is None:
                    latest = tx.latest_escort_for_seal(int(seal_id))
                    tail = f"; its latest escort {latest['escort_id']} is {latest['status']}" if latest else ""
                    raise CommandError("not_found", f"seal {seal_id} has no open escort{tail}")
                mismatched = []
                if escort["declaration"] != declaration:
                    mismatched.append(f"declaration {declaration!r} (escort has {escort['declaration']!r})")
                if escort["vehicle"] != vehicle:
                    mismatched.append(f"vehicle {vehicle!r} (escort has {escort['vehicle']!r})")
                if mismatched:
                    raise CommandError("mismatch", f"DEACTIVATE refused: seal {seal_id} escort "
                                                   f"{escort['escort_id']} does not match: " + "; ".join(mismatched))
                if escort["status"] == ESCORT_DEACTIVATION_REQUESTED:
                    return self._escort_view(escort)  # asked twice: same request, nothing new
                if escort["status"] not in (ESCORT_REQUESTED, ESCORT_ARMED, ESCORT_ACTIVE):
                    raise CommandError("not_active", f"escort {escort['escort_id']} of seal {seal_id} is "
                                                     f"{escort['status']}")
                if escort["status"] == ESCORT_REQUESTED:
                    # Never confirmed (the seal may be out of reach): withdraw the ACTIVATE. If an
                    # earlier transmission did arm the seal, the DEACTIVATE below disarms it; if not,
                    # the seal answers that it is inactive, which completes the deactivation too.
                    for c in tx.commands_for_escort(escort["escort_id"]):
                        if c["type"] == "ACTIVATE" and c["status"] in (CMD_QUEUED, CMD_SENT):
                            tx.update_command(c["command_id"], status=CMD_CANCELLED, result_at=now,
                                              error="withdrawn by a deactivation request")
                rules = EscortRules(escort, self.config, now)
                rules.deactivation_requested()
                tx.update_escort(rules.id, **rules.finish())
                for e in rules.events:
                    e["emitted_at"] = ev.iso(now)
                new = tx.insert_events(rules.events, [rules.id] * len(rules.events), now)
                self._queue_deactivate(tx, escort, now)
                updated = tx.get_escort(escort["escort_id"]) or escort
            self._count_events(new)
        self._wake()
        return self._escort_view(updated)

    @staticmethod
    def _queue_deactivate(tx: StoreTx, escort: dict[str, Any], now: float) -> None:
        payload = {"escort_id": escort["escort_id"], "seal_number": escort["seal_id"],
                   "declaration": escort["declaration"], "vehicle": escort["vehicle"]}
        tx.insert_command({"seal_id": escort["seal_id"], "escort_id": escort["escort_id"],
                           "type": "DEACTIVATE", "payload": json.dumps(payload, ensure_ascii=False),
                           "status": CMD_QUEUED, "created_at": now, "next_attempt_at": now})

    # ------------------------------------------------------------------------------------------
    # time
    # ------------------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[tuple[int, bytes]]:
        """Run the timed rules (SIGNAL_LOST, TRANSIT_OVERDUE, DEACTIVATION_OVERDUE) and command
        retries at `now` (default: the clock). Returns downlink frames to send (seal_id, bytes).
        New events go to the outbox; `last_tick_events` holds them for the caller's logs."""
        with self._lock:
            now = self.clock() if now is None else now
            out: list[tuple[int, bytes]] = []
            new: list[dict[str, Any]] = []
            try:
                with self.store.transaction() as tx:
                    not_before = self._started_at + self.config.startup_grace_s
                    for escort in tx.escorts_with_seal(MONITORED_STATUSES):
                        rules = EscortRules(escort, self.config, now)
                        rules.tick(now, escort["seal_last_seen_at"] or escort.get("confirmed_at"),
                                   signal_not_before=not_before)
                        changes = rules.finish()
                        if changes:
                            tx.update_escort(rules.id, **changes)
                        if rules.events:
                            new += tx.insert_events(rules.events, [rules.id] * len(rules.events), now)
                    for c in tx.head_commands():
                        if (c["seal_last_seen_at"] or -math.inf) < now - self.config.online_window_s:
                            continue  # offline: sent when it next calls in
                        if _waits_for_seal(c):
                            continue
                        out += self._due_commands(tx, c["seal_id"], now, bytes(c["seal_key"]))
            except Exception:
                log.exception("tick failed at %s; nothing of it was committed", now)
                self.counters["tick_errors"] += 1
                return []
            self._count_events(new)
            self.last_tick_events = new
            return out

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` has something to do (None: nothing pending)."""
        with self._lock:
            now = self.clock()
            times: list[float] = []
            with self.store.transaction() as tx:
                not_before = self._started_at + self.config.startup_grace_s
                for escort in tx.escorts_with_seal(MONITORED_STATUSES):
                    rules = EscortRules(escort, self.config, 0.0)
                    times += rules.deadlines(escort["seal_last_seen_at"] or escort.get("confirmed_at"),
                                             signal_not_before=not_before)
                for c in tx.head_commands():
                    last_seen = c["seal_last_seen_at"]
                    if last_seen is None or _waits_for_seal(c):
                        continue
                    due = c["next_attempt_at"] or c["created_at"]
                    # Only worth waking for while the seal counts as online (tick sends only then);
                    # an offline seal gets its command in the answer to its next frame.
                    if max(due, now) <= last_seen + self.config.online_window_s:
                        times.append(due)
            # A deadline exactly at t is acted on by tick(t') for t' > t (rules use strict ">").
            return min(times) if times else None

    # ------------------------------------------------------------------------------------------
    # status, metrics, retention
    # ------------------------------------------------------------------------------------------
    def status(self, *, seal_id: int | None = None, escort_id: int | None = None,
               declaration: str | None = None, vehicle: str | None = None) -> list[dict[str, Any]]:
        """Escorts matching the filters (all open escorts when none is given), each with its seal's
        last seen time, last position and open commands."""
        with self._lock, self.store.transaction() as tx:
            if seal_id is None and escort_id is None and declaration is None and vehicle is None:
                escorts = tx.escorts_with_status(
                    (ESCORT_REQUESTED, ESCORT_ARMED, ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED))
            else:
                escorts = tx.find_escorts(seal_id=seal_id, escort_id=escort_id,
                                          declaration=declaration, vehicle=vehicle)
            out = []
            for e in escorts:
                view = self._escort_view(e)
                seal = tx.get_seal(e["seal_id"]) or {}
                view["seal"] = {
                    "last_seen_at": ev.iso(seal.get("last_seen_at")),
                    "online": bool(seal.get("last_seen_at")) and
                    seal["last_seen_at"] >= self.clock() - self.config.online_window_s,
                    "last_position": ev.position(seal.get("last_lat"), seal.get("last_lon"), seal.get("last_fix_time")),
                    "cable_intact": _maybe_bool(seal.get("last_cable_intact")),
                    "housing_closed": _maybe_bool(seal.get("last_housing_closed")),
                    "battery_pct": seal.get("last_battery_pct"),
                }
                view["commands"] = [{
                    "command_id": c["command_id"], "type": c["type"], "status": c["status"],
                    "attempts": c["attempts"], "seq": c["seq"], "result": c["result"], "error": c["error"],
                    "created_at": ev.iso(c["created_at"]), "next_attempt_at": ev.iso(c["next_attempt_at"]),
                } for c in tx.commands_for_escort(e["escort_id"])]
                out.append(view)
            return out

    def metrics(self) -> dict[str, Any]:
        """Snapshot for the drivers' Prometheus endpoint:
        frames {(result, reason): n} (reason "" when accepted/duplicate), events {kind: n},
        counters {records_committed, records_duplicate, acks_sent, commands_sent, commands_acked,
        commands_failed, command_results_unmatched, tick_errors, ...}, alarm_latency_s and
        ingest_s histograms ({"buckets": [(le, cumulative)], "sum", "count"})."""
        with self._lock:
            return {
                "frames": dict(self.frames),
                "events": dict(self.events_by_kind),
                "counters": dict(self.counters),
                "alarm_latency_s": self.alarm_latency.snapshot(),
                "ingest_s": self.ingest_time.snapshot(),
            }

    def purge(self, now: float | None = None) -> dict[str, int]:
        """Retention purge (clause 18.3) at `now`; counts of deleted rows per table."""
        with self._lock:
            now = self.clock() if now is None else now
            report = self.store.purge(now, retention_years=self.config.retention_years,
                                      utc_offset_h=self.config.retention_utc_offset_h)
            return report.as_dict()

    # ------------------------------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------------------------------
    def _key_for(self, seal_id: int) -> bytes | None:
        key = self._keys.get(seal_id)
        if key is None:
            key = self.store.seal_key(seal_id)
            if key is not None:
                self._keys[seal_id] = key
        return key

    def _reload_key(self, seal_id: int) -> bool:
        """After a bad MAC: was our cached key stale (replaced by another process)?"""
        cached = self._keys.pop(seal_id, None)
        fresh = self._key_for(seal_id)
        return cached is not None and fresh is not None and fresh != cached

    def _encode(self, type_name: str, seal_id: int, seq: int, payload: dict[str, Any], key: bytes,
                flags: int = 0) -> bytes:
        if type_name == "ACK" and not flags:
            return ack_frame(seal_id, self.config.command_epoch, seq, int(self.clock()) & _U32, payload, key)
        return encode_frame(type_name, seal_id=seal_id, boot=self.config.command_epoch, seq=seq,
                            time=int(self.clock()) & _U32, payload=payload, key=key, flags=flags)

    def _check_encodes(self, type_name: str, seal_id: int, payload: dict[str, Any]) -> None:
        try:
            encode_frame(type_name, seal_id=seal_id, boot=0, seq=0, time=0, payload=payload, key=bytes(32))
        except EncodeError as exc:
            raise CommandError("bad_request", f"{type_name} cannot be encoded: {exc}") from None

    def _excerpt(self, raw: bytes) -> str:
        n = self.config.hex_excerpt_bytes
        text = raw[:n].hex()
        return text + (f"...(+{len(raw) - n} bytes)" if len(raw) > n else "")

    def _rejected(self, w: _Work, rej: _Reject, logged: bool = False) -> None:
        w.result = IngestResult("rejected", rej.reason, rej.seal_id if rej.seal_id is not None else w.result.seal_id,
                                w.result.frame_type)
        w.ack = None
        w.commands = []
        if not logged:
            log.warning("refused frame: reason=%s seal=%s source=%s len=%d detail=%s hex=%s",
                        rej.reason, w.result.seal_id, w.source, len(w.raw), rej.detail, self._excerpt(w.raw))

    def _account(self, w: _Work) -> None:
        r = w.result
        r.ingest_s = _time.perf_counter() - w.t0
        self.frames[(r.result, r.reason or "")] += 1
        self.ingest_time.observe(r.ingest_s)
        self.counters["records_committed"] += r.records_committed
        self.counters["records_duplicate"] += r.records_duplicate
        if r.downlink and r.result != "rejected":
            self.counters["acks_sent"] += 1
        self._count_events(r.events)

    def _count_events(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self.events_by_kind[e["kind"]] += 1
            if e.get("alarm") and e.get("occurred_at"):
                self.alarm_latency.observe(max(0.0, ev.parse_iso(e["emitted_at"]) - ev.parse_iso(e["occurred_at"])))

    def _wake(self) -> None:
        if self.wakeup is not None:
            try:
                self.wakeup()
            except Exception:
                log.exception("wakeup callback failed")

    def _escort_view(self, e: dict[str, Any]) -> dict[str, Any]:
        return {
            "escort_id": e["escort_id"], "seal_id": e["seal_id"], "status": e["status"],
            "declaration": e["declaration"], "vehicle": e["vehicle"],
            "departure_office": {"code": e["departure_office_code"], "name": e["departure_office_name"]},
            "destination_office": {"code": e["dest_office_code"], "name": e["dest_office_name"]},
            "period_start": ev.iso(e["period_start"]), "period_end": ev.iso(e["period_end"]),
            "corridor_m": e["corridor_m"],
            "route_points": len(json.loads(e["route"])) if e["route"] else 0,
            "requested_at": ev.iso(e["requested_at"]), "confirmed_at": ev.iso(e["confirmed_at"]),
            "activated_at": ev.iso(e["activated_at"]), "failed_at": ev.iso(e["failed_at"]),
            "failure_reason": e["failure_reason"],
            "deactivation_requested_at": ev.iso(e["deactivation_requested_at"]),
            "deactivated_at": ev.iso(e["deactivated_at"]),
            "clean": None if e["clean"] is None else bool(e["clean"]),
            "rule_state": json.loads(e["rule_state"] or "{}"),
        }


_RECORDS_AT = schema.HEADER_SIZE + _RECORDS_HEAD.size  # offset of the first record in a frame


def _fix_struct(count: int) -> struct.Struct:
    st = _FIX_STRUCTS.get(count)
    if st is None:
        st = _FIX_STRUCTS[count] = struct.Struct(">" + WIRE_FIX_FORMAT * count)
    return st


def fast_records(raw: bytes, key_for: Callable[[int], bytes | None]) -> tuple[Frame, tuple[int, ...]] | None:
    """An authentic, well-formed RECORDS frame -> (Frame without payload["records"], the records'
    wire fields); None for anything else (then decode_frame decides). See _RECORDS_TYPE above."""
    n = len(raw)
    if n < schema.MIN_FRAME:
        return None
    magic, version, type_code, flags, seal_id, boot, seq, time, length = _HEADER.unpack_from(raw)
    if (magic != schema.MAGIC or version != schema.VERSION or type_code != _RECORDS_TYPE
            or flags & schema.RESERVED_FLAGS or length > schema.MAX_PAYLOAD or n != schema.MIN_FRAME + length
            or length < _RECORDS_HEAD.size):
        return None
    signed_end = schema.HEADER_SIZE + length
    crc = int.from_bytes(raw[signed_end + schema.MAC_SIZE:], "big")
    if zlib.crc32(memoryview(raw)[:signed_end + schema.MAC_SIZE]) != crc:
        return None
    first_rseq, base_time, count = _RECORDS_HEAD.unpack_from(raw, schema.HEADER_SIZE)
    if count > schema.MAX_RECORDS_PER_BATCH or length != _RECORDS_HEAD.size + count * schema.RECORD_SIZE:
        return None
    key = key_for(seal_id)
    if key is None:
        return None
    mac = raw[signed_end:signed_end + schema.MAC_SIZE]
    if not hmac.compare_digest(mac, hmac.digest(key, memoryview(raw)[:signed_end], "sha256")[:schema.MAC_SIZE]):
        return None
    fixes = _fix_struct(count).unpack_from(raw, _RECORDS_AT)
    payload = {"first_rseq": first_rseq, "base_time": base_time, "count": count}
    return Frame(version, "RECORDS", flags, seal_id, boot, seq, time, length, payload, mac, crc, True), fixes


def ack_frame(seal_id: int, boot: int, seq: int, time: int, payload: dict[str, Any], key: bytes) -> bytes:
    """The ACK frame, byte-identical to encode_frame("ACK", ...) (tests/gateway/test_pipeline_gw1.py)."""
    body = _ACK_PAYLOAD.pack(payload["acked_boot"], payload["acked_seq"], payload["committed_rseq"])
    signed = _ACK_HEADER.pack(schema.MAGIC, schema.VERSION, _ACK_TYPE, 0, seal_id, boot, seq, time, len(body)) + body
    signed += schema.mac8(key, signed)
    return signed + zlib.crc32(signed).to_bytes(4, "big")


def _waits_for_seal(command: dict[str, Any]) -> bool:
    """A DEACTIVATE the seal answered JOURNAL_PENDING goes again only in the answer to one of the
    seal's frames: from `tick` it would only be refused again while the backlog drains."""
    return command["result"] == "JOURNAL_PENDING"


def _maybe_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise CommandError("bad_request", f"{name} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise CommandError("bad_request", f"{name} must be an integer, got {value!r}") from None


def _time_value(value: Any, name: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return ev.parse_iso(value)
        except ValueError:
            pass
    raise CommandError("bad_request", f"{name} must be Unix seconds or an RFC 3339 time, got {value!r}")


def _check_u32(value: int, name: str) -> None:
    if not (0 < value <= _U32):
        raise CommandError("bad_request", f"{name} must be 1..{_U32}")
