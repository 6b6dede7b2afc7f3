"""The escort rules: clause 3.8 non-routine situations, clause 10 activation, clauses 11/13/14 deadlines.

(Past 400 lines on purpose: every rule of one escort reads and writes the one rule memory below;
the clause 13 verdict itself is gateway/verdict.py.)

Pure decisions on one escort: the pipeline hands an `EscortRules` the escort row (with its persisted
rule memory, `rule_state`), the facts of one frame or one tick, and the current time; the rules
change the escort and collect operator events. No I/O and no clock of their own, so three hours or
five years pass in a test in microseconds.

Rule memory (JSON in escorts.rule_state), all optional:
    armed_seal_time      seal clock when the seal confirmed ACTIVATE (first fix must not be older)
    start_rseq           the seal's journal top when armed (its evidence): records at or below it
                         are not this escort's
    opening, housing     an opening alarm is active (latched until the seal reports LOCK_RESTORED)
    episode, episode_guessed   the seal's number of the open opening episode (guessed from lock
                         bits until the seal's CABLE_CUT / HOUSING_OPENED names it)
    alarmed_opening, alarmed_housing   seal episode numbers already alarmed (one alarm per episode)
    last_episode, restored_rseq   the last ended episode and the rseq of its LOCK_RESTORED
    n_deviation, n_battery, n_gnss_lost, n_anomaly   episode counters (stable event ids)
    gnss_lost_since      seal time the seal's current GNSS loss began (its GNSS_LOST event)
    gnss_alarm           a GNSS_LOST alarm is active (until GNSS_REGAINED)
    seal_evidence, final the seal's evidence and lock at its DEACTIVATE confirmation (verdict.py)
    lost_since           gateway time the seal was last heard before SIGNAL_LOST; None when not lost
    outside              consecutive fixes outside the corridor; deviation  the gateway's check sees one
    seal_deviating       the seal's check sees one (its ROUTE_DEVIATION, no ROUTE_RETURNED yet)
    dev_open             a ROUTE_DEVIATION alarm is open (either side; ROUTE_RETURNED when both are back)
    n_seal_deviation     the seal's ROUTE_DEVIATION events received (reconciled with its evidence)
    outside_first        the first fix of the current run outside (the deviation is dated by it)
    deviation_since, deviation_max_m
    corridor_ref         [lat, lon, distance_m] of the last fix measured exactly (triangle-bound shortcut)
    last_position        last valid fix (position for alarms that have none of their own)
    low_battery          a LOW_BATTERY episode is active
    transit_overdue, deactivation_overdue    emitted once
    non_routine          kinds of non-routine situations seen during the escort (clause 13)
"""

from __future__ import annotations

import json
import math
from typing import Any

from navseal.protocol.schema import GNSS_ANOMALY_KINDS

from . import events as ev
from .config import GatewayConfig
from .geo import Route
from .store import (
    ESCORT_ACTIVE,
    ESCORT_ARMED,
    ESCORT_DEACTIVATION_REQUESTED,
    ESCORT_EVIDENCE_PENDING,
    ESCORT_FAILED,
    ESCORT_REQUESTED,
)

_ROUTE_CACHE: dict[tuple[int, str], Route] = {}


def route_of(escort: dict[str, Any]) -> Route | None:
    """The escort's route as a `Route` (cached per escort: building the index is not free)."""
    text = escort.get("route")
    if not text or not escort.get("corridor_m"):
        return None
    key = (escort["escort_id"], text)
    route = _ROUTE_CACHE.get(key)
    if route is None:
        if len(_ROUTE_CACHE) > 10_000:
            _ROUTE_CACHE.clear()
        route = _ROUTE_CACHE[key] = Route(json.loads(text))
    return route


class EscortRules:
    """One escort, one unit of work. Read `changes` (columns to write) and `events` afterwards."""

    def __init__(self, escort: dict[str, Any], config: GatewayConfig, known_at: float, *, late: bool = False) -> None:
        self.escort = dict(escort)
        # `late`: records of a deactivated escort that arrived after its verdict: still evaluated
        # (their alarms raised, never dropped), never timed.
        self.late = late
        self._state_text = escort.get("rule_state") or "{}"
        self.state: dict[str, Any] = json.loads(self._state_text)
        self._state_before = json.loads(self._state_text)  # a copy to compare with at the end
        self.config = config
        self.known_at = known_at
        self.changes: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self._last_fix: dict[str, Any] | None = None
        self._corridor_params: tuple[Any, float, float] | None = None
        # Set when the seal was armed but the escort failed: the pipeline queues a DEACTIVATE.
        self.release_seal = False

    # -- helpers --
    @property
    def id(self) -> int:
        return int(self.escort["escort_id"])

    @property
    def seal_id(self) -> int:
        return int(self.escort["seal_id"])

    @property
    def status(self) -> str:
        return self.escort["status"]

    def _set(self, **columns: Any) -> None:
        self.escort.update(columns)
        self.changes.update(columns)

    def emit(self, kind: str, fact: str, occurred_at: float, *, position: dict | None = None,
             details: dict | None = None) -> None:
        self.events.append(ev.make_event(
            kind, seal_id=self.seal_id, fact=f"escort:{self.id}:{fact}", escort=self.escort,
            occurred_at=occurred_at, known_at=self.known_at, emitted_at=self.known_at,
            position=position, details=details))
        if kind in ev.NON_ROUTINE_KINDS:
            seen = self.state.setdefault("non_routine", [])
            if kind not in seen:
                seen.append(kind)
            if not self.escort.get("high_risk"):
                self._set(high_risk=1)  # clause 15: marked at once; RISK_MARKED comes with the verdict

    def _episode(self, counter: str) -> int:
        self.state[counter] = int(self.state.get(counter, 0)) + 1
        return self.state[counter]

    def finish(self) -> dict[str, Any]:
        """Columns to write (rule_state included when it changed)."""
        if self._last_fix is not None:
            self.state["last_position"] = self._pos(self._last_fix)
        if self.state != self._state_before:
            self.changes["rule_state"] = json.dumps(self.state, sort_keys=True, separators=(",", ":"))
        return self.changes

    @property
    def monitored(self) -> bool:
        return self.late or self.status in (ESCORT_ARMED, ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED,
                                            ESCORT_EVIDENCE_PENDING)

    @property
    def listening(self) -> bool:
        """The seal should be calling in (SIGNAL_LOST, GNSS_LOST with the link up): not once it
        confirmed DEACTIVATE, nor for the late records of an ended escort."""
        return self.status != ESCORT_EVIDENCE_PENDING and not self.late

    @property
    def deactivating(self) -> bool:
        """Asked to deactivate and no verdict yet: the clause 14 hour runs (from the request)."""
        return self.status in (ESCORT_DEACTIVATION_REQUESTED, ESCORT_EVIDENCE_PENDING)

    # -- commands --
    def activation_confirmed(self, seal_time: float, evidence: dict[str, Any] | None = None) -> None:
        """The seal answered ACTIVATE with OK (or showed it is active with our escort id). Its
        evidence's `start_rseq` (its journal top when armed) bounds this escort's records."""
        if self.status != ESCORT_REQUESTED:
            return
        self._set(status=ESCORT_ARMED, confirmed_at=self.known_at)
        self.state["armed_seal_time"] = seal_time
        if evidence and int(evidence.get("escort_id") or 0) == self.id:
            self.state["start_rseq"] = int(evidence["start_rseq"])

    def activation_failed(self, reason: str, seal_time: float, detail: dict | None = None,
                          position: dict | None = None) -> None:
        if self.status not in (ESCORT_REQUESTED, ESCORT_ARMED):
            return
        self.release_seal = self.status == ESCORT_ARMED
        self._set(status=ESCORT_FAILED, failed_at=self.known_at, failure_reason=reason)
        self.emit("ACTIVATION_FAILED", "activation_failed", seal_time, position=position,
                  details={"reason": reason, **(detail or {})})

    def deactivation_requested(self, by: dict[str, Any] | None = None) -> None:
        """`by`: who asked (gateway/auth.Actor.record), carried by this event and DEACTIVATED."""
        self._set(status=ESCORT_DEACTIVATION_REQUESTED, deactivation_requested_at=self.known_at,
                  deactivation_requested_by=json.dumps(by) if by else None)
        self.emit("DEACTIVATION_REQUESTED", "deactivation_requested", self.known_at, details={
            "requested_at": ev.iso(self.known_at),
            "deadline": ev.iso(self.known_at + self.config.deactivation_deadline_s),
            "requested_by": by})

    # -- facts from the seal --
    def heard(self) -> None:
        """Any new authenticated frame from the seal: ends a signal loss (SIGNAL_RESTORED with the
        gap); and while its GNSS is lost (its GNSS_LOST, no GNSS_REGAINED yet) with the link up past
        `gnss_lost_after_s`, that is GNSS_LOST (jammed GNSS, modem left alone)."""
        gnss_since = self.state.get("gnss_lost_since")
        if (gnss_since is not None and self.listening and not self.state.get("gnss_alarm")
                and self.known_at - float(gnss_since) > self.config.gnss_lost_after_s):
            self.gnss_lost(float(gnss_since), self.known_at - float(gnss_since), None,
                           "seal's GNSS_LOST and no GNSS_REGAINED, link up")
        lost_since = self.state.get("lost_since")
        if lost_since is None:
            return
        self.state["lost_since"] = None
        self.emit("SIGNAL_RESTORED", f"restored:{lost_since}", self.known_at, details={
            "last_seen_at": ev.iso(lost_since),
            "gap_s": round(self.known_at - lost_since, 3),
        })

    def fix(self, rec: dict[str, Any]) -> None:
        """One position record (record row: rseq, time, lat, lon, fix_quality, lock, battery)."""
        has_fix = bool(rec.get("fix_quality")) and ev.valid_position(rec.get("lat"), rec.get("lon"))
        cable, housing = rec.get("cable_intact"), rec.get("housing_closed")
        if self.status == ESCORT_ARMED and has_fix:
            lock = {"cable_intact": _bool(cable), "housing_closed": _bool(housing)}
            self._first_fix(rec["time"], lock, self._pos(rec), source=f"record rseq {rec['rseq']}")
        if not self.monitored:
            return
        if cable == 0 or housing == 0:  # the common case (both intact) costs nothing more
            lock = {"cable_intact": _bool(cable), "housing_closed": _bool(housing)}
            self.lock_status(lock, rec["time"], self._pos(rec) if has_fix else None,
                             source=f"record rseq {rec['rseq']}", rseq=rec["rseq"])
        battery = rec.get("battery_pct")
        if battery is not None and (battery < self.config.low_battery_pct or self.state.get("low_battery")):
            self.battery(battery, rec["time"], self._pos(rec) if has_fix else None)
        if has_fix and (self.late or self.status in (ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED,
                                                      ESCORT_EVIDENCE_PENDING)):
            self._corridor(rec)

    @staticmethod
    def _pos(rec: dict[str, Any]) -> dict[str, Any] | None:
        return ev.position(rec.get("lat"), rec.get("lon"), rec["time"])

    def state_report(self, payload: dict[str, Any], seal_time: float) -> None:
        """A STATE frame: first fix for activation, lock status, battery."""
        lock = payload.get("lock") or {}
        has_fix = bool(payload.get("fix_time")) and ev.valid_position(payload.get("lat"), payload.get("lon"))
        pos = ev.position(payload.get("lat"), payload.get("lon"), payload.get("fix_time")) if has_fix else None
        if self.status == ESCORT_ARMED and has_fix:
            self._first_fix(payload["fix_time"], lock, pos, source="STATE")
        if not self.monitored:
            return
        evidence = payload.get("evidence") or {}
        episode = 0
        if int(evidence.get("escort_id") or 0) == self.id and (evidence.get("flags") or {}).get("opening_now"):
            episode = int(evidence.get("openings") or 0)  # the seal's number of the open episode
        self.lock_status(lock, seal_time, pos, source="STATE", episode=episode)
        battery = payload.get("battery_pct")
        self.battery(None if battery == 255 else battery, seal_time, pos)

    def seal_event(self, event: dict[str, Any]) -> None:
        """An EVENT frame (journal event). The seal is the authority on what it observed: its
        openings, its own corridor check, its GNSS loss and anomalies become alarms here, whatever
        the gateway's own view (thinning may have removed the fixes that showed them)."""
        if not self.monitored:
            return
        code = event["code"]
        pos = ev.position(event.get("lat"), event.get("lon"), event.get("time"))
        when = event["time"]
        value = int(event.get("value") or 0)
        source = f"seal event {code} rseq {event['rseq']}"
        if code == "CABLE_CUT":
            self._opening("opening", "UNAUTHORIZED_OPENING", when, pos, source, event.get("status"), episode=value)
        elif code == "HOUSING_OPENED":
            self._opening("housing", "HOUSING_OPENED", when, pos, source, event.get("status"), episode=value)
        elif code == "LOCK_RESTORED":
            self.state.update(opening=False, housing=False, episode=None, episode_guessed=False,
                              restored_rseq=max(int(event["rseq"]), int(self.state.get("restored_rseq", 0))))
            if value >> 8:
                self.state["last_episode"] = max(value >> 8, int(self.state.get("last_episode", 0)))
        elif code == "LOW_BATTERY":
            self.battery(value, when, pos, force=True)
        elif code == "ROUTE_DEVIATION":
            self._episode("n_seal_deviation")
            self.state["seal_deviating"] = True
            if self._deviation_open():
                self.state["dev_open"] = True
                return  # the gateway's own check saw it first: one alarm per detour
            self.state.update(dev_open=True, deviation_since=when, deviation_max_m=value)
            n = self._episode("n_deviation")
            self.emit("ROUTE_DEVIATION", f"deviation:{n}", when, position=pos or self.state.get("last_position"),
                      details={"distance_m": value, "corridor_m": self.escort.get("corridor_m", 0),
                               "rseq": event["rseq"], "source": source})
        elif code == "ROUTE_RETURNED":
            self.state["seal_deviating"] = False
            was_open = self._deviation_open()
            self.state["dev_open"] = was_open
            if not was_open or self.state.get("deviation"):
                return  # nothing open, or the gateway still measures the truck outside
            self.state["dev_open"] = False
            n = int(self.state.get("n_deviation", 0))
            self.emit("ROUTE_RETURNED", f"returned:{n}", when, position=pos, details={
                "distance_m": None, "corridor_m": self.escort.get("corridor_m", 0),
                "deviation_since": ev.iso(self.state.get("deviation_since")),
                "max_distance_m": self.state.get("deviation_max_m"), "rseq": event["rseq"], "source": source})
        elif code == "GNSS_LOST":
            self.state["gnss_lost_since"] = when - value
            if value > self.config.gnss_lost_after_s:
                self.gnss_lost(when - value, value, pos, source)
        elif code == "GNSS_REGAINED":
            since = self.state.get("gnss_lost_since") or when - value
            if value > self.config.gnss_lost_after_s:
                self.gnss_lost(since, value, pos, source)
            self.state["gnss_lost_since"] = None
            if self.state.get("gnss_alarm"):
                self.state["gnss_alarm"] = False
                self.emit("GNSS_RESTORED", f"gnss_restored:{self.state.get('n_gnss_lost', 0)}", when,
                          position=pos, details={"lost_since": ev.iso(since), "lost_for_s": value, "source": source})
        elif code == "GNSS_ANOMALY":
            kinds = {v: k for k, v in GNSS_ANOMALY_KINDS.items()}
            self._episode("n_anomaly")
            self.emit("GNSS_ANOMALY", f"gnss_anomaly:rseq:{event['rseq']}", when, position=pos,
                      details={"anomaly": kinds.get(value >> 24, f"kind {value >> 24}"),
                               "detail": value & 0xFFFFFF, "rseq": event["rseq"], "source": source})
        # GNSS_JUMP, JOURNAL_OVERFLOW, REBOOT, COMMAND_REJECTED are stored in the track and counted in
        # the seal's evidence (its verdict reasons); they raise no operator event of their own.

    def gnss_lost(self, since: float, lost_for_s: float, pos: dict | None, source: str) -> None:
        """No valid fix for more than `gnss_lost_after_s` (the seal's measurement): one alarm per loss."""
        if self.state.get("gnss_alarm"):
            return
        self.state["gnss_alarm"] = True
        n = self._episode("n_gnss_lost")
        self.emit("GNSS_LOST", f"gnss_lost:{n}", since + self.config.gnss_lost_after_s,
                  position=pos or self.state.get("last_position"),
                  details={"lost_since": ev.iso(since), "lost_for_s": round(lost_for_s, 3),
                           "threshold_s": self.config.gnss_lost_after_s, "source": source})

    def lock_status(self, lock: dict[str, Any], when: float, pos: dict | None, source: str,
                    rseq: int | None = None, episode: int = 0) -> None:
        """The lock bits of a record or STATE: an opening the seal's EVENT has not told us yet."""
        if lock.get("cable_intact") is False:
            self._opening("opening", "UNAUTHORIZED_OPENING", when, pos, source, lock, episode=episode, rseq=rseq)
        if lock.get("housing_closed") is False:
            self._opening("housing", "HOUSING_OPENED", when, pos, source, lock, episode=episode, rseq=rseq)

    def battery(self, pct: int | None, when: float, pos: dict | None, force: bool = False) -> None:
        if pct is None:
            return
        if self.state.get("low_battery"):
            if pct >= self.config.low_battery_clear_pct and not force:
                self.state["low_battery"] = False
            return
        if force or pct < self.config.low_battery_pct:
            self.state["low_battery"] = True
            n = self._episode("n_battery")
            self.emit("LOW_BATTERY", f"battery:{n}", when, position=pos,
                      details={"battery_pct": pct, "threshold_pct": self.config.low_battery_pct})

    # -- timed rules --
    def tick(self, now: float, last_seen: float | None, signal_not_before: float = 0.0) -> None:
        if not self.monitored or self.late:
            return
        if self.listening and last_seen is not None and self.state.get("lost_since") is None:
            if now - last_seen > self.config.signal_lost_after_s and now > signal_not_before:
                self.state["lost_since"] = last_seen
                self.emit("SIGNAL_LOST", f"lost:{last_seen}", last_seen + self.config.signal_lost_after_s,
                          position=self.state.get("last_position"), details={
                              "last_seen_at": ev.iso(last_seen),
                              "silent_for_s": round(now - last_seen, 3),
                              "threshold_s": self.config.signal_lost_after_s})
        if (self.status in (ESCORT_ARMED, ESCORT_ACTIVE) and not self.state.get("transit_overdue")
                and now > float(self.escort["period_end"])):
            self.state["transit_overdue"] = True
            self.emit("TRANSIT_OVERDUE", "transit_overdue", float(self.escort["period_end"]),
                      position=self.state.get("last_position"),
                      details={"period_end": ev.iso(float(self.escort["period_end"]))})
        if self.deactivating and not self.state.get("deactivation_overdue"):
            deadline = float(self.escort["deactivation_requested_at"]) + self.config.deactivation_deadline_s
            if now > deadline:
                self.state["deactivation_overdue"] = True
                self.emit("DEACTIVATION_OVERDUE", "deactivation_overdue", deadline,
                          position=self.state.get("last_position"), details={
                              "requested_at": ev.iso(self.escort["deactivation_requested_at"]),
                              "deadline": ev.iso(deadline)})

    def deadlines(self, last_seen: float | None, signal_not_before: float = 0.0) -> list[float]:
        """Times at which `tick` would emit something for this escort."""
        out: list[float] = []
        if not self.monitored:
            return out
        if self.listening and last_seen is not None and self.state.get("lost_since") is None:
            out.append(max(last_seen + self.config.signal_lost_after_s, signal_not_before))
        if self.status in (ESCORT_ARMED, ESCORT_ACTIVE) and not self.state.get("transit_overdue"):
            out.append(float(self.escort["period_end"]))
        if self.deactivating and (not self.state.get("deactivation_overdue")
                                  or self.status == ESCORT_EVIDENCE_PENDING):
            out.append(float(self.escort["deactivation_requested_at"]) + self.config.deactivation_deadline_s)
        return out

    # -- internals --
    def _first_fix(self, fix_time: float, lock: dict[str, Any], pos: dict | None, source: str) -> None:
        """Clause 10: ACTIVATED once the confirmed seal sends a fix with the lock intact."""
        armed = float(self.state.get("armed_seal_time") or 0)
        if fix_time < armed - self.config.activation_fix_max_age_s:
            return  # a fix from before the seal was armed (old journal record) does not count
        intact = lock.get("cable_intact") is True and lock.get("housing_closed") is True
        if not intact:
            self.activation_failed("lock_not_intact_at_first_fix", fix_time,
                                   {"lock": lock, "source": source}, position=pos)
            return
        self._set(status=ESCORT_ACTIVE, activated_at=self.known_at)
        self.state["last_position"] = pos
        self.emit("ACTIVATED", "activated", fix_time, position=pos, details={
            "confirmed_at": ev.iso(self.escort.get("confirmed_at")),
            "lock": lock,
            "source": source,
            "route_points": len(json.loads(self.escort["route"])) if self.escort.get("route") else 0,
            "corridor_m": self.escort.get("corridor_m", 0),
            "period_end": ev.iso(float(self.escort["period_end"])),
            "activated_by": json.loads(self.escort.get("activated_by") or "null"),  # who asked (JSON column)
        })

    def _opening(self, flag: str, kind: str, when: float, pos: dict | None, source: str,
                 lock: dict | None, *, episode: int = 0, rseq: int | None = None) -> None:
        """One alarm per input and opening episode, keyed on the seal's episode number (docs/events.md,
        "Opening episodes"). `episode` 0: lock bits that carry no number (a record, an older STATE)."""
        current = self.state.get("episode")
        if episode:
            if current is not None and self.state.get("episode_guessed") and current != episode:
                for name in ("alarmed_opening", "alarmed_housing"):  # our guess gets the seal's number
                    self.state[name] = [episode if n == current else n for n in self.state.get(name, [])]
            self.state.update(episode=episode, episode_guessed=False)
        else:
            if self.state.get(flag):
                return  # latched: one alarm per episode, however many frames repeat it
            if rseq is not None and rseq <= int(self.state.get("restored_rseq", -1)):
                return  # a record from before the episode's LOCK_RESTORED
            if current is None:
                current = max([int(self.state.get("last_episode", 0))] + self.alarmed_episodes()) + 1
                self.state.update(episode=current, episode_guessed=True)
            episode = current
        self.state[flag] = True
        self.opening_alarm(kind, episode, when, pos, source, lock)

    def _deviation_open(self) -> bool:
        """A ROUTE_DEVIATION alarm is open (no ROUTE_RETURNED yet). One detour is one alarm whichever
        side measured it first; it returns when neither the gateway's check (`deviation`) nor the
        seal's (`seal_deviating`) still sees it outside, so the two checks' different hysteresis
        cannot make it flap."""
        return bool(self.state.get("dev_open", self.state.get("deviation", False)))

    def alarmed_episodes(self) -> list[int]:
        return list(self.state.get("alarmed_opening", [])) + list(self.state.get("alarmed_housing", []))

    def opening_alarm(self, kind: str, episode: int, when: float, pos: dict | None, source: str,
                      lock: dict | None) -> None:
        """UNAUTHORIZED_OPENING (cable) or HOUSING_OPENED for the seal's episode `episode`, once,
        dated by the seal's edge; placed at the last known position (`position_stale`) without a fix."""
        flag = "opening" if kind == "UNAUTHORIZED_OPENING" else "housing"
        alarmed = self.state.setdefault(f"alarmed_{flag}", [])
        if episode in alarmed:
            return
        alarmed.append(episode)
        stale = pos is None
        if pos is None:
            pos = self._pos(self._last_fix) if self._last_fix else self.state.get("last_position")
        self.emit(kind, f"{flag}:{episode}", when, position=pos,
                  details={"source": source, "lock": lock, "episode": episode, "position_stale": stale})

    def _corridor(self, rec: dict[str, Any]) -> None:
        self._last_fix = rec
        # Route and corridor never change during an escort: look them up once per unit of work,
        # not once per fix (a RECORDS frame carries up to 120).
        params = self._corridor_params
        if params is None:
            route = route_of(self.escort)
            corridor = float(self.escort["corridor_m"]) if route is not None else 0.0
            params = self._corridor_params = (
                route, corridor, corridor - min(self.config.route_hysteresis_m, corridor / 2))
        route, corridor, back_within = params
        if route is None:
            return
        lat, lon = rec["lat"] / 1e7, rec["lon"] / 1e7
        deviating = bool(self.state.get("deviation"))
        # Triangle inequality: a fix that moved `moved` metres from a reference fix at distance d
        # is within d + moved of the route. While that bound stays inside the corridor (and no
        # deviation is open) nothing can change, so the exact distance is not needed: most fixes
        # of a vehicle on its route skip the geometry.
        ref = self.state.get("corridor_ref")
        if ref is not None and not deviating:
            moved = _approx_m(ref[0], ref[1], lat, lon) * 1.01 + 1.0
            if ref[2] + moved <= back_within:
                self.state["outside"] = 0
                return
        distance = route.distance_m(lat, lon)
        self.state["corridor_ref"] = [lat, lon, round(distance, 1)]
        if not deviating:
            if distance > corridor:
                pos = self._pos(rec)
                self.state["outside"] = int(self.state.get("outside", 0)) + 1
                if self.state["outside"] == 1:
                    self.state["outside_first"] = {"time": rec["time"], "distance_m": round(distance, 1),
                                                   "rseq": rec["rseq"], "position": pos}
                if self.state["outside"] >= self.config.route_confirm_fixes:
                    first = self.state["outside_first"]
                    was_open = self._deviation_open()
                    self.state.update(deviation=True, outside=0, dev_open=True)
                    if was_open:
                        return  # the seal's own check saw this detour first: one alarm
                    self.state.update(deviation_since=first["time"], deviation_max_m=round(distance, 1))
                    n = self._episode("n_deviation")
                    self.emit("ROUTE_DEVIATION", f"deviation:{n}", first["time"], position=first["position"],
                              details={"distance_m": first["distance_m"], "corridor_m": corridor,
                                       "rseq": first["rseq"], "confirmed_by_rseq": rec["rseq"]})
            else:
                self.state["outside"] = 0
            return
        self.state["deviation_max_m"] = max(float(self.state.get("deviation_max_m", 0)), round(distance, 1))
        if distance <= back_within:
            was_open = self._deviation_open()
            self.state.update(deviation=False, outside=0, dev_open=was_open)
            if not was_open or self.state.get("seal_deviating"):
                return  # the seal still measures a deviation: the episode goes on
            self.state["dev_open"] = False
            n = int(self.state.get("n_deviation", 0))
            self.emit("ROUTE_RETURNED", f"returned:{n}", rec["time"], position=self._pos(rec), details={
                "distance_m": round(distance, 1), "corridor_m": corridor,
                "deviation_since": ev.iso(self.state.get("deviation_since")),
                "max_distance_m": self.state.get("deviation_max_m"), "rseq": rec["rseq"]})


def _approx_m(lat0: float, lon0: float, lat1: float, lon1: float) -> float:
    """Equirectangular distance, slightly generous (the caller adds 1 % and 1 m): a bound only."""
    mean = math.radians((lat0 + lat1) / 2)
    return math.hypot((lat1 - lat0) * 111_700.0, (lon1 - lon0) * 111_700.0 * math.cos(mean))


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)
