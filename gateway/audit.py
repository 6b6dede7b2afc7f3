"""The audit log: every decision with who made it, append-only, hash-chained.

`record(tx, actor, action, target, details, outcome)` is the one way to write it, inside the
transaction of the change it records (refusals, which change nothing, in a transaction of their
own). Each row's `hash` is SHA-256 over the previous row's hash and the row's own fields (its
sequence number included), so editing or deleting a row breaks the chain at that row; a deleted
last row shows as a gap between the last row and SQLite's AUTOINCREMENT high-water mark. The
database refuses UPDATE and DELETE on the table (triggers), so a change needs a schema edit first.
`navseal gateway audit verify` checks the chain and prints the head (sequence and hash): copy it
somewhere else now and then, and even a rewrite of the whole chain shows.

Actions in use: seal.provision, seal.rekey, escort.activate, escort.deactivate, user.add,
user.disable, user.password, token.issue, token.revoke, session.login, session.logout,
request.refused (an unauthenticated or unauthorized request: details name the route),
db.open (a command on the gateway host that opened the database directly), purge.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable

from .auth import Actor

GENESIS = "0" * 64
OK, REFUSED = "ok", "refused"
_FIELDS = ("seq", "at", "actor_user", "actor_role", "actor_office", "via", "action", "target", "outcome", "details")


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    body = json.dumps([row[f] for f in _FIELDS], separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


def record(tx, actor: Actor, action: str, target: str | None = None, details: dict[str, Any] | None = None,
           outcome: str = OK, *, office: str | None = None, now: float | None = None) -> int:
    """Append one row to the audit log in the caller's transaction; returns its sequence number."""
    tail = tx.audit_tail()
    prev = tail["hash"] if tail else GENESIS
    row = {
        "seq": (tail["seq"] if tail else 0) + 1,
        "at": round(time.time() if now is None else now, 6),
        "actor_user": actor.user,
        "actor_role": actor.role,
        "actor_office": office,
        "via": actor.via,
        "action": action,
        "target": target,
        "outcome": outcome,
        "details": json.dumps(details or {}, separators=(",", ":"), ensure_ascii=False, sort_keys=True, default=str),
    }
    row["prev_hash"] = prev
    row["hash"] = chain_hash(prev, row)
    return tx.insert_audit(row)


def record_alone(store, actor: Actor, action: str, target: str | None = None,
                 details: dict[str, Any] | None = None, outcome: str = REFUSED, **kw: Any) -> int:
    """Record in a transaction of its own (refusals: nothing else is written)."""
    with store.transaction() as tx:
        return record(tx, actor, action, target, details, outcome, **kw)


@dataclass
class Verdict:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    problems: list[str]


def verify(rows: Iterable[dict[str, Any]], high_water: int | None = None) -> Verdict:
    """Walk the chain in order. `high_water`: the highest sequence number ever assigned (SQLite's
    AUTOINCREMENT counter), which reveals deleted rows at the end."""
    problems: list[str] = []
    prev, expected, count = GENESIS, 1, 0
    last_seq = 0
    for row in rows:
        count += 1
        if row["seq"] != expected:
            problems.append(f"row {expected}: missing (next row is {row['seq']})")
        if row["prev_hash"] != prev:
            problems.append(f"row {row['seq']}: does not follow the row before it (deleted or edited row)")
        if chain_hash(row["prev_hash"], row) != row["hash"]:
            problems.append(f"row {row['seq']}: contents do not match its hash (edited)")
        prev, expected, last_seq = row["hash"], row["seq"] + 1, row["seq"]
    if high_water is not None and high_water > last_seq:
        problems.append(f"rows {last_seq + 1}..{high_water}: deleted from the end")
    return Verdict(not problems, count, last_seq, prev, problems)


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["details"] = json.loads(row["details"])
    return out
