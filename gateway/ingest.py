"""Ingest: the per-frame path from uplink bytes to a committed frame and its ACK.

Past 400 lines on purpose: the per-frame steps share one work item and one transaction, and
their order is the contract (nothing is ACKed before its commit); the parts that stand alone
live elsewhere (verdict.py, seal_rejecting.py, commands.py, rules.py).

precheck (protocol/codec.py: CRC, decode, authenticate with the seal's key; no transaction needed)
-> replay window -> de-duplication -> records and seal events -> escort state and rules -> durable
commit, and only then the ACK (protocol/codec.py `encode_ack`).

Replay window: a seal's (boot, seq) must grow. A frame at or below the last accepted one is a
"duplicate" if exactly that (boot, seq) was accepted before (MQTT QoS 1 redelivery, or the seal's
retransmission after a lost ACK): it is re-ACKed with the same committed_rseq and changes nothing,
not even the seal's last-seen time (only new authenticated frames prove a seal alive; a byte copy
replayed while the seal is jammed must not postpone SIGNAL_LOST). A frame whose seal id is not the
one of the MQTT topic it came on is refused ("topic_mismatch", counted).
Otherwise it is refused as "replayed". Records are also de-duplicated by (seal, rseq), so a
journal batch the seal resends under a new seq stores nothing twice and raises no event twice.

A batch of frames is one transaction with one savepoint per frame: a bad frame is refused alone; a
failed commit refuses the whole batch as "store_error" (nothing stored, so no ACK). Commands due for
the seal ride along with its ACK (gateway/commands.py). Called by `Pipeline` under its lock.
"""

from __future__ import annotations

import json
import logging
import time as _time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from navseal.protocol import NO_RSEQ, UPLINK_TYPES, DecodeError, Frame, decode_frame, encode_ack
from navseal.protocol.schema import FLAG_RETRANSMIT

from . import events as ev
from . import verdict
from .commands import Commands
from .config import GatewayConfig
from .metrics import PipelineMetrics
from .rules import EscortRules
from .seal_rejecting import SealRejectingWatch
from .store import ESCORT_DEACTIVATED, RECORD_SIZE, WIRE_FIX_FIELDS, BatchFailed, Store, StoreError, StoreTx, fix_row

log = logging.getLogger("navseal.gateway.pipeline.ingest")

_U32 = 0xFFFFFFFF


@dataclass
class IngestResult:
    """What one uplink frame produced. Downlink frames are safe to send: the commit is done."""

    result: str  # "accepted" | "duplicate" | "rejected"
    reason: str | None = None  # rejection reason: a DecodeError code, "unknown_seal", "replayed",
    #                            "topic_mismatch", "wrong_direction", "store_error", "internal_error"
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


class SealKeys:
    """The seals' keys, read from the store once and kept (a frame needs its seal's key twice)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys: dict[int, bytes] = {}

    def get(self, seal_id: int) -> bytes | None:
        key = self._keys.get(seal_id)
        if key is None:
            key = self._store.seal_key(seal_id)
            if key is not None:
                self._keys[seal_id] = key
        return key

    def reload(self, seal_id: int) -> bool:
        """After a bad MAC: was the kept key stale (replaced by another process)?"""
        cached = self._keys.pop(seal_id, None)
        fresh = self.get(seal_id)
        return cached is not None and fresh is not None and fresh != cached

    def forget(self, seal_id: int) -> None:
        self._keys.pop(seal_id, None)


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
    frame: Frame | None = None
    ack: dict[str, Any] | None = None  # ACK payload; encoded after commit
    ack_seq: int | None = None
    key: bytes | None = None
    commands: list[tuple[int, bytes]] = field(default_factory=list)


class Ingest:
    """The ingest room; see the module docstring."""

    def __init__(self, store: Store, config: GatewayConfig, clock: Callable[[], float], metrics: PipelineMetrics,
                 keys: SealKeys, commands: Commands) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.keys = keys
        self.commands = commands
        self.rejecting = SealRejectingWatch(store, config, clock, metrics)
        self.last_store_error: str | None = None  # the last store error that refused frames

    def handle(self, items: Sequence[tuple[bytes, str]]) -> list[IngestResult]:
        """Several frames in ONE transaction (one savepoint each), results in input order; ACKs are
        built only after the single commit. Never raises."""
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
            except StoreError as exc:  # e.g. the key could not be read: not the frame's fault, no ACK
                self._store_failed(str(exc))
                w.result = IngestResult("rejected", "store_error", w.result.seal_id, w.result.frame_type)
            except Exception as exc:  # a bug must not take the ingest down
                log.exception("internal error before commit: seal=%s source=%s", w.result.seal_id, source)
                self._rejected(w, _Reject("internal_error", repr(exc), w.result.seal_id), logged=True)
        if pending:
            self._commit_batch(pending)
        self._account(works)
        try:
            self.rejecting.observe([w.result for w in works])
        except Exception:  # the frames' outcome stands; the alarm comes with the next refusal
            log.exception("could not record a SEAL_REJECTING change")
        return [w.result for w in works]

    def _store_failed(self, error: str) -> None:
        """Keep the store's error for the driver, which pauses ingest on it (gateway/runner.py)."""
        self.last_store_error = error

    def _precheck(self, w: _Work) -> None:
        """CRC, decode, authenticate: everything that needs no transaction (protocol/codec.py)."""
        try:
            frame = decode_frame(w.raw, self.keys.get, flat_records=True)
        except DecodeError as exc:
            if exc.code == "bad_mac" and exc.seal_id is not None and self.keys.reload(exc.seal_id):
                try:
                    frame = decode_frame(w.raw, self.keys.get, flat_records=True)  # the key was replaced meanwhile
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
        claimed = _topic_seal(w.source)
        if claimed is not None and claimed != frame.seal_id:
            self.metrics.count("frames_topic_mismatch")
            raise _Reject("topic_mismatch", f"seal {frame.seal_id}'s frame on seal {claimed}'s topic", frame.seal_id)
        w.key = self.keys.get(frame.seal_id)
        w.frame = frame

    def _transact(self, pending: list[_Work], done: list[_Work], transaction: Callable[[], Any]) -> None:
        """The batch in one transaction: the rows its seals need read first, one savepoint per frame."""
        with transaction() as tx:
            tx.prefetch([w.frame.seal_id for w in pending if w.frame is not None], _rseq_ranges(pending))
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

    def _commit_batch(self, pending: list[_Work]) -> None:
        done: list[_Work] = []
        try:
            try:
                self._transact(pending, done, self.store.pipelined_transaction)
            except BatchFailed as exc:
                # A statement failed on the server in the pipelined batch, which is lost whole
                # (nothing committed, nothing ACKed). Again, each statement waited for: the frame
                # at fault is then refused alone by its savepoint (decision 0021).
                log.warning("pipelined batch of %d frame(s) failed, again statement by statement: %s",
                            len(pending), exc)
                done.clear()
                for w in pending:
                    w.result = IngestResult("rejected", None, w.result.seal_id, w.result.frame_type)
                    w.ack, w.ack_seq, w.commands = None, None, []
                self._transact(pending, done, self.store.transaction)
        except Exception as exc:  # the commit failed: nothing of this batch is stored, so no ACK
            log.error("store commit failed, %d frame(s) not acknowledged: %s", len(pending), exc)
            self._store_failed(str(exc))
            # Every frame not refused on its own: those done (rolled back), the one the store failed
            # on and those after it (never processed).
            rolled_back = {id(d) for d in done}
            for w in pending:
                if id(w) in rolled_back or w.result.reason is None:
                    w.result = IngestResult("rejected", "store_error", w.result.seal_id, w.result.frame_type)
                w.ack = None
                w.commands = []
            return
        # Committed: now (and only now) the ACKs may be built and released.
        for w in done:
            seal_id, seq, key = w.result.seal_id, w.ack_seq, w.key
            if w.ack is not None and seal_id is not None and seq is not None and key is not None:
                try:
                    w.result.downlink.append((seal_id, encode_ack(seal_id, self.config.command_epoch, seq,
                                                                  int(self.clock()) & _U32, w.ack, key)))
                except Exception:  # stored already; the seal's retransmission gets a re-ACK
                    log.exception("seal %s: could not build the ACK %s", seal_id, w.ack)
                    self.metrics.count("ack_encode_errors")
            w.result.downlink.extend(w.commands)

    def _process(self, tx: StoreTx, w: _Work) -> None:
        frame = w.frame
        assert frame is not None  # set by _precheck for every pending frame
        now = self.clock()
        seal_id = frame.seal_id
        seal = tx.get_seal(seal_id)
        if seal is None:  # deleted between precheck and now
            raise _Reject("unknown_seal", f"seal {seal_id} is not provisioned", seal_id)
        r = w.result
        last = (seal["last_boot"], seal["last_seq"]) if seal["last_boot"] is not None else None
        # After an admin reset of the window (last None) a frame stored before is still a duplicate.
        seen = (tx.get_uplink(seal_id, frame.boot, frame.seq)
                if last is None and seal["last_seen_at"] is not None else None)
        if seen is not None or (last is not None and (frame.boot, frame.seq) <= last):
            seen = seen or tx.get_uplink(seal_id, frame.boot, frame.seq)
            # The same frame: byte-identical (MQTT redelivery), or flagged as the seal's retransmission.
            # Another frame under a (boot, seq) already used (a seal whose counters restarted after
            # a wiped flash) is not a duplicate: it must not be ACKed as one.
            if (seen is None or seen["type"] != frame.type
                    or (seen["crc"] != frame.crc and not frame.flags & FLAG_RETRANSMIT)):
                raise _Reject("replayed", f"(boot {frame.boot}, seq {frame.seq}) is not after "
                                          f"the last accepted {last}", seal_id)
            # A redelivery (MQTT QoS 1) or a retransmission after a lost ACK: same message, already
            # committed. Answer with the same ACK content; change nothing.
            # Only new authenticated frames prove life: a byte copy re-sent by someone who jams the
            # seal must not refresh last-seen nor postpone SIGNAL_LOST.
            r.result = "duplicate"
            w.ack = {"acked_boot": frame.boot, "acked_seq": frame.seq, "committed_rseq": seen["ack_rseq"]}
            w.ack_seq = tx.next_downlink_seq(seal_id)
            return

        escort = tx.open_escort_for_seal(seal_id)
        rules = EscortRules(escort, self.config, now) if escort else None
        span = _journal_span(frame)
        if span is not None:
            # Records belong to an escort by rseq range (the seal's evidence), not by arrival time.
            rseq = span[0]
            if rules is None:  # its verdict is out; its evidence still counts
                ended = _ended_escort_of(tx, seal_id, rseq)
            elif rseq <= int(rules.state.get("start_rseq", -1)):  # journaled before this escort was armed
                ended = _ended_escort_of(tx, seal_id, rseq, before=rules.id)
                rules = None
            else:
                ended = None
            if ended is not None:
                rules = EscortRules(ended, self.config, now, late=True)
        seal_updates: dict[str, Any] = {"last_seen_at": now, "last_source": w.source,
                                        "last_boot": frame.boot, "last_seq": frame.seq}
        if rules is not None:
            rules.heard()
        ack_rseq = NO_RSEQ
        hold_commands = False  # a JOURNAL_PENDING refusal is answered with no command
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
                self.commands.reconcile_state(tx, rules, p, frame)
                rules.state_report(p, frame.time)
        elif frame.type == "HELLO":
            seal_updates["last_hello"] = json.dumps({**p, "boot": frame.boot}, separators=(",", ":"))
        elif frame.type == "COMMAND_RESULT":
            hold_commands = self.commands.on_result(tx, frame, now, rules)

        verdict_events: list[dict[str, Any]] = []
        if rules is not None:
            before = len(rules.events)
            verdict.settle(tx, rules)  # an escort waiting for its evidence: is it complete now?
            verdict_events = rules.events[before:]
            del rules.events[before:]
            changes = rules.finish()
            if changes:
                tx.update_escort(rules.id, **changes)
            if rules.release_seal:  # armed, then failed: do not leave the seal armed
                self.commands.queue_deactivate(tx, rules.escort, now)
        escort_id = rules.id if rules is not None else None
        new_events = (rules.events if rules is not None else []) + other_events + verdict_events
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
        if not hold_commands:
            w.commands = self.commands.due(tx, seal_id, now, w.key or b"")

    def _records(self, tx: StoreTx, w: _Work, frame: Frame, now: float, rules: EscortRules | None,
                 seal_updates: dict[str, Any], out_events: list[dict[str, Any]]) -> int:
        p = frame.payload
        count = p["count"]
        if count == 0:
            return NO_RSEQ
        first = p["first_rseq"]
        last_rseq = first + count - 1
        if last_rseq > _U32:  # the run would wrap the u32 counter: no seal can have sent that
            raise _Reject("bad_payload", f"rseq run {first}..{last_rseq} past the u32 range", frame.seal_id)
        fixes = p["fields"]  # the records' wire values (decode_frame flat_records)
        existing = tx.existing_rseqs(frame.seal_id, first, last_rseq)
        new = [i for i in range(count) if first + i not in existing] if existing else range(count)
        w.result.records_committed = len(new)
        w.result.records_duplicate = count - len(new)
        if not new:
            return last_rseq
        escort_id = rules.id if rules is not None and rules.monitored else None
        base = p["base_time"]
        body = p["body"]  # the records' wire bytes: stored as they came, one run per stretch of new ones
        for start, stop in (_stretches(new) if existing else ((0, count),)):
            tx.insert_fix_run(frame.seal_id, escort_id, first + start, base,
                              body[start * RECORD_SIZE:stop * RECORD_SIZE], now)

        seal_id = frame.seal_id
        nf = WIRE_FIX_FIELDS

        def row(i: int) -> dict[str, Any]:
            return fix_row(fixes[i * nf:(i + 1) * nf], first + i, base, seal_id, escort_id, now)

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
            out_events.append(_position_event(frame.seal_id, rules, rows, fixes_rows, now))
        return last_rseq

    def _seal_event(self, tx: StoreTx, w: _Work, frame: Frame, now: float, rules: EscortRules | None,
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

    # -- outcome --
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

    def _account(self, works: list[_Work]) -> None:
        committed = duplicate = acks = 0
        for w in works:
            r = w.result
            r.ingest_s = _time.perf_counter() - w.t0
            self.metrics.frame(r.result, r.reason or "")
            self.metrics.ingest.observe(r.ingest_s)
            committed += r.records_committed
            duplicate += r.records_duplicate
            if r.downlink and r.result != "rejected":
                acks += 1
            self.metrics.events_created(r.events)
        self.metrics.count("records_committed", committed)
        self.metrics.count("records_duplicate", duplicate)
        self.metrics.count("acks_sent", acks)


def _stretches(indexes: Sequence[int]) -> list[tuple[int, int]]:
    """Ascending indexes as [start, stop) stretches of consecutive ones: [0, 1, 2, 5] -> [(0, 3), (5, 6)]."""
    out: list[tuple[int, int]] = []
    for i in indexes:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def _journal_span(frame: Frame) -> tuple[int, int] | None:
    """The journal rseqs a RECORDS or EVENT frame carries, (first, last) (last < first: none);
    None for the other types."""
    p = frame.payload
    if frame.type == "RECORDS":
        return p["first_rseq"], p["first_rseq"] + p["count"] - 1
    if frame.type == "EVENT":
        return p["rseq"], p["rseq"]
    return None


def _rseq_ranges(pending: Sequence[_Work]) -> dict[int, tuple[int, int]]:
    """Per seal, the rseqs the batch's RECORDS and EVENT frames carry (lowest, highest)."""
    ranges: dict[int, tuple[int, int]] = {}
    for w in pending:
        f = w.frame
        span = _journal_span(f) if f is not None else None
        if f is None or span is None or span[0] > span[1] or span[1] > _U32:  # nothing, or refused by _records
            continue
        lo, hi = span
        held = ranges.get(f.seal_id)
        ranges[f.seal_id] = (min(lo, held[0]), max(hi, held[1])) if held else (lo, hi)
    return ranges


def _topic_seal(source: str) -> int | None:
    """The seal id an MQTT source names ("mqtt:<seal id>", from the topic seals/<id>/up); None for
    other transports."""
    if source.startswith("mqtt:"):
        try:
            return int(source[5:])
        except ValueError:
            return None
    return None


def _ended_escort_of(tx: StoreTx, seal_id: int, rseq: int, before: int | None = None) -> dict[str, Any] | None:
    """The seal's deactivated escort (the latest, or the latest before escort `before`) whose
    journal range (the seal's evidence: rseq in (start_rseq, hw_rseq]) holds `rseq`: records that
    arrive after the verdict (given at the clause 14 deadline without them) are still that
    escort's, attributed and evaluated; a backlog from before an escort was armed is never its."""
    if before is None:
        latest = tx.latest_escort_for_seal(seal_id)
    else:
        older = [e for e in tx.find_escorts(seal_id=seal_id, status=ESCORT_DEACTIVATED) if e["escort_id"] < before]
        latest = older[-1] if older else None
    if latest is None or latest["status"] != ESCORT_DEACTIVATED:
        return None
    block = json.loads(latest["rule_state"] or "{}").get("seal_evidence") or {}
    if int(block.get("escort_id") or 0) != latest["escort_id"]:
        return None
    return latest if int(block["start_rseq"]) < rseq <= int(block["hw_rseq"]) else None


def _position_event(seal_id: int, rules: EscortRules, rows: list[dict[str, Any]], fixes: list[dict[str, Any]],
                    now: float) -> dict[str, Any]:
    """POSITION: the batch's valid fixes (docs/events.md), dated and placed by the newest."""
    positions = [{
        "rseq": r["rseq"], "time": ev.iso(r["time"]), "lat": r["lat"] / 1e7,
        "lon": r["lon"] / 1e7, "speed_kmh": r["speed"] / 10,
        "course_deg": None if r["course"] == 255 else r["course"] * 2,
        "fix_quality": r["fix_quality"], "satellites": r["satellites"],
        "hdop": None if r["hdop"] == 255 else r["hdop"] / 10,
        "cable_intact": bool(r["cable_intact"]), "housing_closed": bool(r["housing_closed"]),
        "battery_pct": r["battery_pct"],
    } for r in fixes]
    f = fixes[-1]
    return ev.make_event(
        "POSITION", seal_id=seal_id, fact=f"rseq:{rows[0]['rseq']}-{rows[-1]['rseq']}",
        escort=rules.escort, occurred_at=f["time"], known_at=now, emitted_at=now,
        position=ev.position(f["lat"], f["lon"], f["time"]),
        details={"first_rseq": rows[0]["rseq"], "last_rseq": rows[-1]["rseq"],
                 "count": len(positions), "positions": positions})
