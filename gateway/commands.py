"""Commands: activation and deactivation requests, the per-seal command queue, and the seal's answers.

Per seal, the oldest open command is the only one in flight (the seal's downlink replay window
needs increasing seqs). It goes out in the answer to the seal's next frame (gateway/ingest.py), or
from `tick` while the seal counts as online (heard within `online_window_s`, gateway/timers.py);
unanswered, it is resent with a fresh downlink seq and the RETRANSMIT flag after a capped exponential
backoff, until a COMMAND_RESULT for any of its transmissions (or a STATE showing it done) closes it.
A DEACTIVATE answered JOURNAL_PENDING (the seal still holds records we have not acknowledged) is
"not yet": it stays open and goes again with the answer to the seal's next frame, never from `tick`
and never in the answer to the refusal itself (the backlog is still there then). Every downlink
frame (ACKs too) takes the next persisted per-seal seq.

Requests are checked against the protocol's limits before anything is stored, so a command that
cannot be encoded is refused to the caller instead of blocking the seal's queue.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Callable, Sequence

from navseal.protocol import EncodeError, Frame, encode_frame
from navseal.protocol.schema import densify_route

from . import audit, verdict
from . import events as ev
from .auth import Actor
from .command_requests import ActivationRequest, CommandError
from .config import GatewayConfig
from .geo import to_wire_route
from .metrics import PipelineMetrics
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
    Store,
    StoreTx,
)
from .views import maybe_bool

log = logging.getLogger("navseal.gateway.pipeline.commands")

# Protocol string limits (docs/protocol.md, ACTIVATE/DEACTIVATE): bytes of UTF-8.
_STR_LIMITS = {"declaration": 40, "vehicle": 16, "dest_office_code": 16, "dest_office_name": 64}
_MAX_ROUTE_POINTS = 400
_U32 = 0xFFFFFFFF


class Commands:
    """The commands room; see the module docstring. Called by `Pipeline` under its lock."""

    def __init__(self, store: Store, config: GatewayConfig, clock: Callable[[], float],
                 metrics: PipelineMetrics) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.metrics = metrics

    # -- requests from customs offices --
    def request_activation(self, rq: ActivationRequest, actor: Actor) -> dict[str, Any]:
        """Create the escort and queue ACTIVATE for the seal; the new escort row. Raises CommandError."""
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
                "activated_by": json.dumps(actor.record(rq.departure_office_code.strip())),
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
            _check_encodes("ACTIVATE", rq.seal_id, payload)
            audit.record(tx, actor, "escort.activate", f"escort:{escort_id}",
                         {"seal_id": rq.seal_id, "declaration": payload["declaration"],
                          "vehicle": payload["vehicle"]}, office=rq.departure_office_code.strip(), now=now)
            tx.insert_command({"seal_id": rq.seal_id, "escort_id": escort_id, "type": "ACTIVATE",
                               "payload": json.dumps(payload, ensure_ascii=False), "status": CMD_QUEUED,
                               "created_at": now, "next_attempt_at": now})
            created = tx.get_escort(escort_id) or {}
        self.metrics.count("activations_requested")
        return created

    def request_deactivation(self, seal_id: int, declaration: str, vehicle: str, actor: Actor,
                             offices: Sequence[str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        """Clause 13: queue DEACTIVATE if seal, declaration and vehicle match the seal's escort; emits
        DEACTIVATION_REQUESTED and starts the one-hour deadline. Returns the escort row and the new
        events (None when it was asked already: nothing new). `offices`: only escorts whose
        destination office is one of these ("forbidden" before anything about the escort is said).
        Raises CommandError."""
        declaration = (declaration or "").strip()
        vehicle = (vehicle or "").strip()
        if not declaration or not vehicle:
            raise CommandError("bad_request", "deactivation needs seal number, declaration and vehicle (clause 13)")
        now = self.clock()
        with self.store.transaction() as tx:
            if tx.get_seal(int(seal_id)) is None:
                raise CommandError("unknown_seal", f"seal {seal_id} is not provisioned")
            escort = tx.open_escort_for_seal(int(seal_id))
            if escort is None:
                latest = tx.latest_escort_for_seal(int(seal_id))
                tail = f"; its latest escort {latest['escort_id']} is {latest['status']}" if latest else ""
                raise CommandError("not_found", f"seal {seal_id} has no open escort{tail}")
            if offices is not None and escort["dest_office_code"] not in offices:
                raise CommandError("forbidden", f"seal {seal_id}: its escort's destination office is "
                                                f"not one of yours {sorted(offices)}")
            mismatched = []
            if escort["declaration"] != declaration:
                mismatched.append(f"declaration {declaration!r} (escort has {escort['declaration']!r})")
            if escort["vehicle"] != vehicle:
                mismatched.append(f"vehicle {vehicle!r} (escort has {escort['vehicle']!r})")
            if mismatched:
                raise CommandError("mismatch", f"DEACTIVATE refused: seal {seal_id} escort "
                                               f"{escort['escort_id']} does not match: " + "; ".join(mismatched))
            if escort["status"] == ESCORT_DEACTIVATION_REQUESTED:
                return escort, None  # asked twice: same request, nothing new
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
            rules.deactivation_requested(actor.record(escort["dest_office_code"]))
            audit.record(tx, actor, "escort.deactivate", f"escort:{escort['escort_id']}",
                         {"seal_id": int(seal_id), "declaration": declaration, "vehicle": vehicle},
                         office=escort["dest_office_code"], now=now)
            tx.update_escort(rules.id, **rules.finish())
            for e in rules.events:
                e["emitted_at"] = ev.iso(now)
            new = tx.insert_events(rules.events, [rules.id] * len(rules.events), now)
            self.queue_deactivate(tx, escort, now)
            updated = tx.get_escort(escort["escort_id"]) or escort
        return updated, new

    @staticmethod
    def queue_deactivate(tx: StoreTx, escort: dict[str, Any], now: float) -> None:
        payload = {"escort_id": escort["escort_id"], "seal_number": escort["seal_id"],
                   "declaration": escort["declaration"], "vehicle": escort["vehicle"]}
        tx.insert_command({"seal_id": escort["seal_id"], "escort_id": escort["escort_id"],
                           "type": "DEACTIVATE", "payload": json.dumps(payload, ensure_ascii=False),
                           "status": CMD_QUEUED, "created_at": now, "next_attempt_at": now})

    # -- the queue --
    def due(self, tx: StoreTx, seal_id: int, now: float, key: bytes) -> list[tuple[int, bytes]]:
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
            frame = encode_frame(c["type"], seal_id=seal_id, boot=epoch, seq=seq, time=int(self.clock()) & _U32,
                                 payload=json.loads(c["payload"]), key=key, flags=1 if attempts > 1 else 0)
        except (EncodeError, ValueError) as exc:
            # A command that cannot be built would block the seal's queue (and its ACKs) forever.
            log.error("seal %s: command %s (%s) cannot be encoded, failed: %s", seal_id, c["command_id"],
                      c["type"], exc)
            tx.update_command(c["command_id"], status=CMD_FAILED, error=f"cannot encode: {exc}", result_at=now)
            self.metrics.count("commands_failed")
            return []
        tx.update_command(c["command_id"], status=CMD_SENT, attempts=attempts, sent_at=now,
                          next_attempt_at=now + backoff, boot=epoch, seq=seq,
                          sent_seqs=json.dumps(sent[-50:]))
        self.metrics.count("commands_sent")
        return [(seal_id, frame)]

    # -- the seal's answers --
    def on_result(self, tx: StoreTx, frame: Frame, now: float, rules: EscortRules | None) -> bool:
        """A COMMAND_RESULT: close the command it answers and tell the escort's rules. True when the
        answer to this frame must carry no command (a JOURNAL_PENDING refusal: the backlog is still there)."""
        p = frame.payload
        ref = [p["cmd_boot"], p["cmd_seq"]]
        command = None
        for c in tx.open_commands(frame.seal_id):
            if ref in json.loads(c["sent_seqs"]):
                command = c
                break
        if command is None:
            self.metrics.count("command_results_unmatched")
            log.info("seal %s: COMMAND_RESULT for (boot %s, seq %s) %s matches no open command",
                     frame.seal_id, p["cmd_boot"], p["cmd_seq"], p["result"])
            return False
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
            return False
        if result == "JOURNAL_PENDING" and ctype == "DEACTIVATE":
            # Not yet, never failed: the seal ends the escort only once everything it journaled is
            # acknowledged. Sent again with the answer to its next frame (which follows the ACKs
            # draining the backlog); not with the answer to this refusal (see waits_for_seal).
            tx.update_command(command["command_id"], next_attempt_at=now, result=result, result_at=now)
            self.metrics.count("commands_journal_pending")
            return True
        tx.update_command(command["command_id"], status=CMD_ACKED if ok else CMD_FAILED,
                          result=result, result_at=now,
                          error=None if ok else f"seal answered {result}")
        self.metrics.count("commands_acked" if ok else "commands_failed")
        if rules is None or command["escort_id"] != rules.id:
            return False
        if ctype == "ACTIVATE":
            if ok:
                rules.activation_confirmed(frame.time, p.get("evidence"))
            else:
                rules.activation_failed(result, frame.time, {"command_id": command["command_id"]})
        elif ctype == "DEACTIVATE":
            if ok:
                seal = tx.get_seal(frame.seal_id) or {}
                lock = {"cable_intact": maybe_bool(seal.get("last_cable_intact")),
                        "housing_closed": maybe_bool(seal.get("last_housing_closed"))}
                verdict.confirmed(tx, rules, frame.time, lock,
                                  ev.position(seal.get("last_lat"), seal.get("last_lon"), seal.get("last_fix_time")),
                                  p.get("evidence"))
            else:
                log.error("seal %s refused DEACTIVATE of escort %s: %s", frame.seal_id, rules.id, result)
        return False

    def reconcile_state(self, tx: StoreTx, rules: EscortRules, p: dict[str, Any], frame: Frame) -> None:
        """A STATE showing the seal already did what an open command asked (its result was lost)."""
        if rules.status == ESCORT_REQUESTED and p["state"] == "ACTIVE" and p["escort_id"] == rules.id:
            self._close(tx, rules.id, "ACTIVATE")
            rules.activation_confirmed(frame.time, p.get("evidence"))
        elif rules.status == ESCORT_DEACTIVATION_REQUESTED and p["state"] == "INACTIVE":
            if self._close(tx, rules.id, "DEACTIVATE"):
                lock = p.get("lock") or {}
                verdict.confirmed(tx, rules, frame.time, lock,
                                  ev.position(p.get("lat"), p.get("lon"), p.get("fix_time") or None), p.get("evidence"))

    def _close(self, tx: StoreTx, escort_id: int, ctype: str) -> bool:
        closed = False
        for c in tx.commands_for_escort(escort_id):
            if c["type"] == ctype and c["status"] in (CMD_QUEUED, CMD_SENT):
                tx.update_command(c["command_id"], status=CMD_ACKED, result="STATE", result_at=self.clock())
                self.metrics.count("commands_acked")
                closed = True
        return closed


def waits_for_seal(command: dict[str, Any]) -> bool:
    """A DEACTIVATE the seal answered JOURNAL_PENDING goes again only in the answer to one of the
    seal's frames: from `tick` it would only be refused again while the backlog drains."""
    return command["result"] == "JOURNAL_PENDING"


def _check_encodes(type_name: str, seal_id: int, payload: dict[str, Any]) -> None:
    try:
        encode_frame(type_name, seal_id=seal_id, boot=0, seq=0, time=0, payload=payload, key=bytes(32))
    except EncodeError as exc:
        raise CommandError("bad_request", f"{type_name} cannot be encoded: {exc}") from None


def _check_u32(value: int, name: str) -> None:
    if not (0 < value <= _U32):
        raise CommandError("bad_request", f"{name} must be 1..{_U32}")
