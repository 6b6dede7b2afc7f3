"""Frame helpers for the bench: one-line summaries for logs, escort data, journal sequence numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from navseal.protocol import DecodeError, Frame, decode_frame


def summary(f: Frame) -> str:
    """One log line for a decoded frame: type, boot/seq, flags and the fields that matter."""
    p = f.payload
    head = f"{f.type} {f.boot}/{f.seq}" + (f" flags={f.flags}" if f.flags else "")
    if f.type == "RECORDS":
        n = p["count"]
        return f"{head} rseq {p['first_rseq']}..{p['first_rseq'] + n - 1} ({n})" if n else f"{head} (0)"
    if f.type == "EVENT":
        return f"{head} rseq {p['rseq']} {p['code']} value={p['value']}"
    if f.type == "STATE":
        alarms = ",".join(k for k, on in p["alarms"].items() if on) or "-"
        fix = f" fix@{p['fix_time']}" if p["fix_time"] else ""
        return (f"{head} {p['state']} escort={p['escort_id']} alarms={alarms} "
                f"pending={p['journal_pending']}{fix}")
    if f.type == "COMMAND_RESULT":
        return f"{head} {p['cmd_type']} {p['cmd_boot']}/{p['cmd_seq']} -> {p['result']} ({p['state']})"
    if f.type == "ACK":
        return f"{head} {p['acked_boot']}/{p['acked_seq']} committed={p['committed_rseq']}"
    if f.type == "HELLO":
        return f"{head} fw {p['fw_major']}.{p['fw_minor']}.{p['fw_patch']} {p['reset_cause']} pending={p['journal_pending']}"
    return head


def summarize(frame: bytes, key: bytes | None = None) -> str:
    try:
        return summary(decode_frame(frame, key))
    except DecodeError as exc:
        return f"<{exc.code}> {len(frame)} bytes"


def rseqs(f: Frame) -> list[int]:
    """Journal sequence numbers a frame carries (RECORDS: a run; EVENT: one; others: none)."""
    if f.type == "RECORDS":
        return list(range(f.payload["first_rseq"], f.payload["first_rseq"] + f.payload["count"]))
    if f.type == "EVENT":
        return [f.payload["rseq"]]
    return []


def last_rseq(f: Frame) -> int | None:
    r = rseqs(f)
    return r[-1] if r else None


@dataclass
class EscortData:
    """Clause 8 data for an ACTIVATE and the clause 13 data for the matching DEACTIVATE."""

    escort_id: int = 7001
    declaration: str = "50508/261126/0009001"
    vehicle: str = "777HIL02"
    dest_office_code: str = "50513"
    dest_office_name: str = "Khorgos customs post"
    period_start: int = 1764115200
    period_end: int = 1764374400
    corridor_m: int = 0
    route: list = field(default_factory=list)  # [[lat_e5, lon_e5], ...]

    def activate(self, seal_number: int) -> dict:
        return {
            "escort_id": self.escort_id, "seal_number": seal_number,
            "declaration": self.declaration, "vehicle": self.vehicle,
            "dest_office_code": self.dest_office_code, "dest_office_name": self.dest_office_name,
            "period_start": self.period_start, "period_end": self.period_end,
            "corridor_m": self.corridor_m, "route": self.route,
        }

    def deactivate(self, seal: int, **override) -> dict:
        out = {"escort_id": self.escort_id, "seal_number": seal,
               "declaration": self.declaration, "vehicle": self.vehicle}
        out.update(override)
        return out
