"""Provisioning and re-keying a seal: the key, the rules around replacing it, the audit row, the event.

Re-keying needs the caller's permission (`rekey`, an admin), and re-keying a seal under an open
escort also `force`: until the seal has the same key it rejects the gateway's commands and the
gateway refuses its frames. Every provisioning is audited in the transaction that stores the key;
a re-key also emits SEAL_REKEYED (with the escort when there is one).
"""

from __future__ import annotations

from typing import Any

from . import audit
from . import events as ev
from .auth import Actor


def provision(tx, seal_id: int, key: bytes, *, actor: Actor, now: float, rekey: bool, force: bool,
              error: type[Exception]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Inside the caller's transaction: (answer, new events). Raises `error(code, message)` with
    "forbidden" or "escorted"."""
    existed = tx.get_seal(seal_id) is not None
    escort = tx.open_escort_for_seal(seal_id) if existed else None
    if existed and not rekey:
        raise error("forbidden", f"seal {seal_id} is provisioned already; re-keying is for an admin")
    if escort is not None and not force:
        raise error("escorted", f"seal {seal_id} is under escort {escort['escort_id']} ({escort['status']}): "
                                f"re-keying it needs force (admin)")
    tx.put_seal_key(seal_id, bytes(key), now)
    details = {"seal_id": seal_id, "forced": escort is not None,
               "escort_id": escort["escort_id"] if escort else None}
    seq = audit.record(tx, actor, "seal.rekey" if existed else "seal.provision", f"seal:{seal_id}", details, now=now)
    new: list[dict[str, Any]] = []
    if existed:
        event = ev.make_event("SEAL_REKEYED", seal_id=seal_id, fact=f"audit:{seq}", escort=escort,
                              occurred_at=now, known_at=now, emitted_at=now,
                              details={"forced": escort is not None, "audit_seq": seq, "rekeyed_by": actor.record()})
        new = tx.insert_events([event], [escort["escort_id"] if escort else None], now)
    return {"seal_id": seal_id, "provisioned": True, "rekeyed": existed, "forced": escort is not None}, new
