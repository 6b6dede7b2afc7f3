"""The clause 13 verdict: DEACTIVATED only on complete evidence from both sides.

The seal is the authority on what it observed (openings, its own corridor check, GNSS loss and
anomalies, reboots and power losses): its Evidence block (docs/protocol.md, "Evidence") is its
account of the escort and says where its journal ends. The gateway is the authority on what only
it can see (radio silence, deadlines). A clean verdict needs both, complete (docs/events.md,
"The verdict"):

- The seal confirms DEACTIVATE (COMMAND_RESULT `OK`, or a STATE showing it inactive): `confirmed`
  keeps its frozen evidence in the escort's rule memory and the escort becomes `evidence_pending`.
- `settle` runs after every frame of that seal and from the timers. It gives the verdict once
  every journal record in `(start_rseq, hw_rseq]` is stored or counted in `thinned`, after the
  seal's counts are reconciled with the gateway's alarms (an opening, a deviation, a GNSS loss or
  anomaly the seal counted but whose event never arrived is raised now, from the evidence).
- At the clause 14 deadline (the request + `deactivation_deadline_s`) it gives the verdict
  anyway: not clean, naming the records that never came. Records that come later are still the
  escort's (gateway/ingest.py attributes them by rseq) and still raise their alarms.

`clean` is false when either side saw a non-routine situation; each reason says which side saw it.
An escort that is not clean is marked high-risk (clause 15): `high_risk` on the escort and on
DEACTIVATED, and one RISK_MARKED event with the reasons for the risk management system.
"""

from __future__ import annotations

import json
from typing import Any

from . import events as ev
from .rules import EscortRules
from .store import ESCORT_DEACTIVATED, ESCORT_DEACTIVATION_REQUESTED, ESCORT_EVIDENCE_PENDING, StoreTx

# Seal evidence counts the gateway must match with its own alarms before a verdict:
# (evidence count field, rule-memory counter of the gateway's alarms, kind raised for the rest).
_RECONCILED = (
    ("deviations", "n_seal_deviation", "ROUTE_DEVIATION"),
    ("anomalies", "n_anomaly", "GNSS_ANOMALY"),
)


def confirmed(tx: StoreTx, rules: EscortRules, seal_time: float, lock: dict[str, Any] | None,
              position: dict | None, evidence: dict[str, Any] | None) -> None:
    """The seal confirmed it ended the escort; its `evidence` is the block it sent with that."""
    if rules.status != ESCORT_DEACTIVATION_REQUESTED:
        return
    rules.state["seal_evidence"] = evidence
    rules.state["final"] = {"seal_time": seal_time, "lock": lock, "position": position}
    rules._set(status=ESCORT_EVIDENCE_PENDING)
    settle(tx, rules)


def settle(tx: StoreTx, rules: EscortRules, *, final: bool = False) -> None:
    """Give the verdict if the evidence is complete (or `final`: the clause 14 hour is over)."""
    if rules.status != ESCORT_EVIDENCE_PENDING:
        return
    missing = missing_records(tx, rules)
    if missing and not final:
        return
    evidence = _own_evidence(rules)
    if evidence is not None:
        reconcile(rules, evidence)
    found = findings(rules, missing)
    clean = not found
    last = rules.state.get("final") or {}
    requested = rules.escort.get("deactivation_requested_at")
    non_routine = list(rules.state.get("non_routine", []))
    rules._set(status=ESCORT_DEACTIVATED, deactivated_at=rules.known_at, clean=int(clean), high_risk=int(not clean))
    reasons = [f"{f['side']}: {f['text']}" for f in found]
    block = rules.state.get("seal_evidence") or {}
    rules.emit("DEACTIVATED", "deactivated", float(last.get("seal_time") or rules.known_at),
               position=last.get("position"), details={
                   "clean": clean,
                   "high_risk": not clean,
                   "reasons": reasons,
                   "findings": found,
                   "non_routine": non_routine,
                   "evidence": {"start_rseq": block.get("start_rseq"), "hw_rseq": block.get("hw_rseq"),
                                "thinned": block.get("thinned"), "records_missing": missing},
                   "requested_at": ev.iso(requested),
                   "within_deadline": requested is None
                   or rules.known_at - requested <= rules.config.deactivation_deadline_s,
                   "requested_by": json.loads(rules.escort.get("deactivation_requested_by") or "null"),
               })
    if not clean:
        rules.emit("RISK_MARKED", "risk_marked", rules.known_at, position=last.get("position"),
                   details={"reasons": reasons, "findings": found})


def missing_records(tx: StoreTx, rules: EscortRules) -> int:
    """Journal records of the escort the gateway neither holds nor knows to be thinned."""
    evidence = _own_evidence(rules)
    if evidence is None:
        return 0
    start, hw = int(evidence["start_rseq"]), int(evidence["hw_rseq"])
    if hw <= start:
        return 0
    stored = tx.count_rseqs(rules.seal_id, start + 1, hw)
    return max(0, hw - start - stored - int(evidence["thinned"]))


def reconcile(rules: EscortRules, evidence: dict[str, Any]) -> None:
    """Raise, from the seal's evidence, the alarms of episodes whose events never reached us."""
    openings = int(evidence["openings"])
    inputs = evidence.get("opening_inputs") or {}
    for n in range(1, openings + 1):
        if n in rules.alarmed_episodes():
            continue  # raised already (cable or housing) from an event, lock bits or a STATE
        kind = "UNAUTHORIZED_OPENING" if inputs.get("cable") or not inputs.get("housing") else "HOUSING_OPENED"
        when = evidence["opening_first"] if n == 1 and evidence["opening_first"] else rules.known_at
        rules.opening_alarm(kind, n, float(when), None, "seal evidence", None)
    for field, counter, kind in _RECONCILED:
        seen = int(evidence[field])
        have = int(rules.state.get(counter, 0))
        if kind == "ROUTE_DEVIATION":  # detours the gateway's own check raised count as well
            have = max(have, int(rules.state.get("n_deviation", 0)))
            rules.state[counter] = have
        while int(rules.state.get(counter, 0)) < seen:
            n = rules._episode(counter)
            first = {"ROUTE_DEVIATION": "deviation_first", "GNSS_ANOMALY": "anomaly_first"}[kind]
            when = float(evidence[first] or rules.known_at) if n == 1 else rules.known_at
            details: dict[str, Any] = {"source": "seal evidence", "episode": n}
            if kind == "ROUTE_DEVIATION":
                details.update(distance_m=evidence["deviation_max_m"], corridor_m=rules.escort.get("corridor_m", 0))
            rules.emit(kind, f"{kind.lower()}:{n}", when, position=rules.state.get("last_position"),
                       details=details)
    longest = int(evidence["gnss_longest_s"])
    if longest > rules.config.gnss_lost_after_s and not rules.state.get("n_gnss_lost"):
        since = float(evidence["gnss_longest_at"] or rules.known_at - longest)
        rules.gnss_lost(since, longest, None, "seal evidence")


def findings(rules: EscortRules, missing: int) -> list[dict[str, Any]]:
    """Every non-routine finding, each with the side that saw it: [{side, kind, text}]."""
    out: list[dict[str, Any]] = []

    def add(side: str, kind: str, text: str) -> None:
        out.append({"side": side, "kind": kind, "text": text})

    for kind in rules.state.get("non_routine", []):
        add("gateway", kind, f"{kind} raised during the escort")
    if rules.state.get("opening") or rules.state.get("housing"):
        add("gateway", "opening_active", "an opening alarm was still active at deactivation")
    if missing:
        block = rules.state.get("seal_evidence") or {}
        add("gateway", "evidence_incomplete",
            f"{missing} journal record(s) in ({block.get('start_rseq')}, {block.get('hw_rseq')}] never arrived "
            f"and were not thinned")
    lock = (rules.state.get("final") or {}).get("lock") or {}
    if lock.get("cable_intact") is False:
        add("seal", "cable_open", "cable loop not intact at deactivation")
    if lock.get("housing_closed") is False:
        add("seal", "housing_open", "housing not closed at deactivation")
    if rules.escort.get("confirmed_at") is None:
        return out  # never armed: the seal has nothing to account for
    evidence = _own_evidence(rules)
    if evidence is None:
        block = rules.state.get("seal_evidence")
        named = block.get("escort_id") if block else None
        add("seal", "evidence_missing", f"holds no account of this escort (its evidence names escort {named})")
        return out
    flags = evidence.get("flags") or {}
    if evidence["openings"]:
        inputs = [k for k, v in (evidence.get("opening_inputs") or {}).items() if v and not k.startswith("_")]
        add("seal", "opening", f"{evidence['openings']} opening episode(s) ({', '.join(inputs) or 'input unknown'}), "
                               f"first at {ev.iso(evidence['opening_first'] or None)}")
    if flags.get("opening_now"):
        add("seal", "opening_now", "an opening episode was still open at deactivation")
    if evidence["deviations"]:
        add("seal", "route_deviation", f"{evidence['deviations']} route deviation(s) by its own corridor check, "
                                       f"first at {ev.iso(evidence['deviation_first'] or None)}, "
                                       f"farthest {evidence['deviation_max_m']} m")
    if evidence["gnss_longest_s"] > rules.config.gnss_lost_after_s:
        add("seal", "gnss_lost", f"no valid fix for {evidence['gnss_longest_s']} s from "
                                 f"{ev.iso(evidence['gnss_longest_at'] or None)} (over "
                                 f"{rules.config.gnss_lost_after_s:g} s)")
    if evidence["anomalies"]:
        kinds = [k for k, v in (evidence.get("anomaly_kinds") or {}).items() if v and not k.startswith("_")]
        add("seal", "gnss_anomaly", f"{evidence['anomalies']} GNSS anomaly episode(s) ({', '.join(kinds)}), "
                                    f"first at {ev.iso(evidence['anomaly_first'] or None)}")
    if evidence["power_losses"]:
        add("seal", "power_loss", f"power lost {evidence['power_losses']} time(s) during the escort "
                                  f"({evidence['reboots']} reboot(s))")
    return out


def _own_evidence(rules: EscortRules) -> dict[str, Any] | None:
    """The seal's evidence block if it is about this escort."""
    block = rules.state.get("seal_evidence")
    if not block or int(block.get("escort_id") or 0) != rules.id:
        return None
    return block

