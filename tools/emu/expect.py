"""Check a run against its scenario's expectations.

Input: the operator events in the order the sink delivered them (repeats included: a repeat is
how a duplicate would show), per-seal facts from the run (`SealFacts`) and the scenario. Output:
one `Outcome` per expectation, each saying what was expected and what happened, so a failure
message can be read without the scenario file open.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .scenario import EventExpectation, Scenario, format_duration


@dataclass
class SealFacts:
    """What the run knows about one seal at its end (from the seal and the gateway's store)."""

    seal_id: int
    state: str
    journal_pending: int
    last_rseq: int  # highest journal sequence number the seal has written
    stored_rseqs: int  # distinct records (positions and seal events) the gateway committed
    thinned: int  # positions dropped by journal thinning (reported by JOURNAL_OVERFLOW)
    refused: int  # positions the journal refused when full (lost without an rseq)
    rejected_commands: int
    reported_thinned: int | None = None  # sum of the JOURNAL_OVERFLOW values the gateway stored
    evidence: dict[str, Any] = field(default_factory=dict)  # the seal's latched evidence (EVIDENCE_FIELDS)


# What [[expect.seals]] `evidence` may name: the seal's own latched evidence of its current or last
# escort (navseal_fw.evidence.Evidence), read from the seal at the end of the run.
EVIDENCE_FIELDS = ("openings", "deviations", "deviation_max_m", "gnss_losses", "gnss_longest_s", "anomalies",
                   "anomaly_kinds", "reboots", "power_losses", "closed", "thinned")


def seal_evidence(core: Any) -> dict[str, Any]:
    ev = getattr(core, "evidence", None)
    return {} if ev is None else {name: getattr(ev, name) for name in EVIDENCE_FIELDS}


@dataclass
class Outcome:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.outcomes.append(Outcome(name, ok, detail))


def _ts(text: str | None) -> float | None:
    if text is None:
        return None
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FieldPathError(ValueError):
    """A `fields` key or value an expectation cannot mean."""


_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"\[(-?\d+)\]")
_RANGE_KEYS = frozenset({"min", "max"})


def parse_path(dotted: str) -> list[str | int]:
    """'details.value' -> ['details', 'value']; 'notify[0].role' -> ['notify', 0, 'role'];
    'details.positions[-1].rseq' -> [..., -1, 'rseq'] (a negative index counts from the end)."""
    steps: list[str | int] = []
    for part in dotted.split("."):
        m = _STEP.fullmatch(part)
        if not m:
            raise FieldPathError(f"{dotted!r}: {part!r} is not a field name with optional [n] indexes")
        steps.append(m.group(1))
        steps.extend(int(i) for i in _INDEX.findall(m.group(2)))
    return steps


def is_range(want: Any) -> bool:
    """`{ min = .., max = .. }` (either or both) is a range, any other value is compared as it is."""
    return isinstance(want, dict) and bool(want) and set(want) <= _RANGE_KEYS


def check_field_expectation(dotted: str, want: Any) -> None:
    """Raise FieldPathError for a path or range that cannot be matched (checked at load time)."""
    parse_path(dotted)
    if is_range(want):
        for k, v in want.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise FieldPathError(f"range bound {k} must be a number, got {v!r}")
        if "min" in want and "max" in want and want["min"] > want["max"]:
            raise FieldPathError(f"empty range: min {want['min']} > max {want['max']}")


def get_field(event: dict[str, Any], dotted: str) -> Any:
    """The value at a path (see parse_path), or MISSING."""
    value: Any = event
    for step in parse_path(dotted):
        if isinstance(step, int):
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return MISSING
            value = value[step]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return MISSING
    return value


MISSING = object()


def field_matches(value: Any, want: Any) -> bool:
    if value is MISSING:
        return False
    if is_range(want):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return want.get("min", value) <= value <= want.get("max", value)
    return value == want


def _within(t: float | None, lo: float | None, hi: float | None, start: float) -> bool:
    if lo is not None and (t is None or t < start + lo):
        return False
    if hi is not None and (t is None or t > start + hi):
        return False
    return True


def _matches(event: dict[str, Any], ex: EventExpectation, start: float) -> bool:
    if event.get("kind") != ex.kind:
        return False
    if ex.seal is not None and event.get("seal_id") != ex.seal:
        return False
    for path, want in ex.fields.items():
        if not field_matches(get_field(event, path), want):
            return False
    if not _within(_ts(event.get("occurred_at")), ex.after, ex.before, start):
        return False
    return _within(_ts(event.get("known_at")), ex.known_after, ex.known_before, start)


def delivered_positions(events: list[dict[str, Any]], seal: int | None = None) -> int:
    """Distinct (seal, rseq) positions carried by the POSITION events."""
    seen = set()
    for e in events:
        if e.get("kind") == "POSITION" and (seal is None or e.get("seal_id") == seal):
            for p in (e.get("details") or {}).get("positions") or []:
                seen.add((e.get("seal_id"), p.get("rseq")))
    return len(seen)


def check(scenario: Scenario, events: list[dict[str, Any]], facts: dict[int, SealFacts]) -> Report:
    exp = scenario.expect
    report = Report()
    start = scenario.start
    unique: dict[str, dict[str, Any]] = {}
    for e in events:
        unique.setdefault(e["event_id"], e)
    distinct = list(unique.values())

    for ex in exp.events:
        hits = [e for e in distinct if _matches(e, ex, start)]
        n = len(hits)
        if ex.count is not None:
            ok, want = n == ex.count, f"exactly {ex.count}"
        else:
            lo = ex.min if ex.min is not None else 0
            hi = ex.max
            ok = n >= lo and (hi is None or n <= hi)
            want = f"{lo}..{hi}" if hi is not None else f"at least {lo}"
        window = ""
        if ex.after is not None or ex.before is not None:
            window = f" occurring in [{format_duration(ex.after or 0)}, " \
                     f"{format_duration(ex.before) if ex.before is not None else 'end'}]"
        if ex.known_after is not None or ex.known_before is not None:
            window += f" known in [{format_duration(ex.known_after or 0)}, " \
                      f"{format_duration(ex.known_before) if ex.known_before is not None else 'end'}]"
        detail = f"want {want}{window}, got {n}"
        if not ok:
            same_kind = [e for e in distinct if e["kind"] == ex.kind]
            if same_kind and n != len(same_kind):
                detail += f" ({len(same_kind)} {ex.kind} in all, e.g. " \
                          f"seal {same_kind[0]['seal_id']} at {same_kind[0]['occurred_at']} " \
                          f"details {same_kind[0].get('details')})"
        if ok and ex.emitted_within is not None:
            late = [e for e in hits if (_ts(e["emitted_at"]) or 0) - (_ts(e["occurred_at"]) or 0) > ex.emitted_within]
            if late:
                ok = False
                detail += f"; {len(late)} emitted more than {format_duration(ex.emitted_within)} after the fact " \
                          f"(first: occurred {late[0]['occurred_at']}, emitted {late[0]['emitted_at']})"
        report.add(ex.describe(), ok, detail)

    for order in exp.order:
        seq = [e["kind"] for e in distinct if order.seal is None or e["seal_id"] == order.seal]
        pos = 0
        for kind in seq:
            if pos < len(order.kinds) and kind == order.kinds[pos]:
                pos += 1
        ok = pos == len(order.kinds)
        who = f" seal {order.seal}" if order.seal is not None else ""
        seen = [k for k in seq if k != "POSITION"]
        detail = "in order" if ok else f"stuck before {order.kinds[pos]!r} (non-POSITION kinds seen: {seen})"
        report.add(f"expect.order[{order.index}]{who} {' -> '.join(order.kinds)}", ok, detail)

    for px in exp.positions:
        n = delivered_positions(distinct, px.seal)
        if px.count is not None:
            ok, want = n == px.count, f"exactly {px.count}"
        else:
            lo = px.min if px.min is not None else 0
            ok = n >= lo and (px.max is None or n <= px.max)
            want = f"{lo}..{px.max}" if px.max is not None else f"at least {lo}"
        who = f" seal {px.seal}" if px.seal is not None else ""
        report.add(f"expect.positions[{px.index}]{who}", ok, f"want {want} delivered positions, got {n}")

    for kind in exp.absent:
        hits = [e for e in distinct if e["kind"] == kind]
        detail = "none" if not hits else f"{len(hits)}, first seal {hits[0]['seal_id']} at {hits[0]['occurred_at']}"
        report.add(f"expect.absent {kind}", not hits, detail)

    if exp.no_duplicate_events:
        repeats = Counter(e["event_id"] for e in events)
        dup_ids = [i for i, n in repeats.items() if n > 1]
        # A fact re-derived under a new id would slip past the id check: compare the facts too.
        facts_seen = Counter(
            (e["kind"], e["seal_id"], e.get("occurred_at"), str(e.get("details")))
            for e in distinct if e["kind"] != "POSITION")
        dup_facts = [k for k, n in facts_seen.items() if n > 1]
        ok = not dup_ids and not dup_facts
        detail = f"{len(events)} events delivered, {len(distinct)} distinct"
        if dup_ids:
            detail += f"; {len(dup_ids)} event_id(s) delivered more than once"
        if dup_facts:
            detail += f"; same fact under different ids: {dup_facts[:3]}"
        report.add("expect.no_duplicate_events", ok, detail)

    if exp.no_lost_records:
        problems = []
        for f in facts.values():
            missing = f.last_rseq - f.stored_rseqs - f.thinned
            if f.journal_pending:
                problems.append(f"seal {f.seal_id}: {f.journal_pending} record(s) still unacknowledged at the end")
            if missing > 0:
                problems.append(f"seal {f.seal_id}: {missing} of {f.last_rseq} record(s) neither stored nor "
                                f"reported thinned ({f.stored_rseqs} stored, {f.thinned} thinned)")
            if f.refused:
                problems.append(f"seal {f.seal_id}: {f.refused} position(s) refused by a full journal")
            if f.reported_thinned is not None and f.reported_thinned < f.thinned:
                problems.append(f"seal {f.seal_id}: {f.thinned} position(s) thinned but JOURNAL_OVERFLOW "
                                f"events at the gateway account for {f.reported_thinned}")
        summary = ", ".join(f"seal {f.seal_id}: {f.stored_rseqs} stored + {f.thinned} thinned"
                            + (f" (reported {f.reported_thinned})" if f.thinned else "") + f" of {f.last_rseq}"
                            for f in facts.values())
        report.add("expect.no_lost_records", not problems, "; ".join(problems) or summary)

    if exp.schema_valid:
        try:
            from navseal.gateway import events as gw_events

            gw_events.validate(distinct)
            report.add("expect.schema_valid", True, f"{len(distinct)} events valid against the event schema")
        except ImportError as exc:  # jsonschema is a test dependency, not a runtime one
            report.add("expect.schema_valid", True, f"skipped: {exc}")
        except Exception as exc:  # jsonschema.ValidationError
            report.add("expect.schema_valid", False, " ".join(str(exc).split())[:300])

    for s in exp.seals:
        f = facts.get(s.seal)
        problems = []
        if f is None:
            problems.append("no facts")
        else:
            if s.state is not None and f.state != s.state:
                problems.append(f"state {f.state}, want {s.state}")
            if s.journal_pending is not None and f.journal_pending != s.journal_pending:
                problems.append(f"journal_pending {f.journal_pending}, want {s.journal_pending}")
            if s.min_rejected_commands is not None and f.rejected_commands < s.min_rejected_commands:
                problems.append(f"rejected commands {f.rejected_commands}, want at least {s.min_rejected_commands}")
            for name, want in s.evidence.items():
                got = f.evidence.get(name, MISSING)
                if not field_matches(got, want):
                    problems.append(f"evidence {name} {'missing' if got is MISSING else got}, want {want}")
        report.add(f"expect.seals[{s.index}] seal {s.seal}", not problems, "; ".join(problems) or "as expected")
    return report
