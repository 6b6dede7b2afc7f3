"""Dead letters: events a sink refused for good (gateway/outbox_worker.py keeps them and moves on).

An admin looks at them (`navseal gateway dead-letter list`, `GET /v1/dead-letters`) and, once the
receiver is fixed, has one sent again (`navseal gateway dead-letter replay ID`,
`POST /v1/dead-letters/{id}/replay`): marked "replay" in the same transaction as its audit row; the
sink's worker sends it before its next outbox rows. Delivered: "replayed"; refused again: "dead"
with the new error.
"""

from __future__ import annotations

from typing import Any

from . import audit
from .auth import Actor
from .command_requests import CommandError


def replay(tx: Any, actor: Actor, dead_letter_id: int, now: float) -> dict[str, Any]:
    """Mark the dead letter for sending again and audit it (`dead_letter.replay`); CommandError
    "not_found" when there is none, "busy" when a replay is already pending."""
    before = tx.get_dead_letter(dead_letter_id)
    if before is None:
        raise CommandError("not_found", f"no dead letter {dead_letter_id}")
    if before["status"] == "replay":
        raise CommandError("busy", f"dead letter {dead_letter_id} is already waiting to be sent again")
    row = tx.request_dead_letter_replay(dead_letter_id, now)
    audit.record(tx, actor, "dead_letter.replay", f"dead_letter:{dead_letter_id}",
                 {"sink": row["sink"], "event_id": row["event_id"], "was": before["status"]}, now=now)
    return row
