"""Operations: outbox state, dead letters, Prometheus metrics, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .. import audit, dead_letters
from ..auth import ANONYMOUS, Actor
from ..command_requests import CommandError
from ..store.interface import DEAD_LETTER_STATUSES
from .access import current_actor
from .models import DeadLetter, DeadLetterPage, Health, Outbox
from .routes_browse import cursor_value
from .routes_escorts import ERRORS, service

router = APIRouter()


@router.get("/v1/outbox", response_model=Outbox, responses=ERRORS, summary="Per sink: cursor, depth, last error")
def outbox(svc: Any = Depends(service)) -> Any:
    return {"sinks": svc.store.outbox_status()}


@router.get("/v1/dead-letters", response_model=DeadLetterPage, responses=ERRORS,
            summary="Events a sink refused for good, oldest first (admin, auditor)")
def dead_letter_list(sink: str | None = Query(default=None, max_length=100),
                     status: str | None = Query(default=None, pattern="^(" + "|".join(DEAD_LETTER_STATUSES) + ")$"),
                     cursor: str | None = Query(default=None, max_length=20),
                     limit: int = Query(default=100, ge=1, le=500), svc: Any = Depends(service)) -> Any:
    rows = svc.store.dead_letters(sink=sink, status=status, after_id=cursor_value(cursor) or 0, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next": str(rows[-1]["dead_letter_id"]) if more else None}


@router.post("/v1/dead-letters/{dead_letter_id}/replay", response_model=DeadLetter, responses=ERRORS,
             summary="Send a dead letter to its sink again (admin; audited)")
def dead_letter_replay(dead_letter_id: int = Path(ge=1, le=2**63 - 1), actor: Actor = Depends(current_actor),
                       svc: Any = Depends(service)) -> Any:
    now = svc.clock()
    try:
        with svc.store.transaction() as tx:
            row = dead_letters.replay(tx, actor, dead_letter_id, now)
    except CommandError as exc:
        audit.record_alone(svc.store, actor, "dead_letter.replay", f"dead_letter:{dead_letter_id}",
                           {"code": exc.code, "reason": exc.message})
        raise
    svc.notify_sinks()
    return svc.store.dead_letters(after_id=row["dead_letter_id"] - 1, limit=1)[0]


@router.get("/metrics", response_class=PlainTextResponse, responses=ERRORS, summary="Prometheus text 0.0.4")
def metrics(svc: Any = Depends(service)) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(svc.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}},
            summary="200 when every part runs, else 503; says whether test keys are accepted; problems, queue and "
                    "outbox depths only to an authenticated caller")
def health(svc: Any = Depends(service), actor: Actor = Depends(current_actor)) -> Any:
    body = svc.health(detail=actor is not ANONYMOUS)  # a stranger learns the status only
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
