"""Operations: outbox state, Prometheus metrics, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..auth import ANONYMOUS, Actor
from .access import current_actor
from .models import Health, Outbox
from .routes_escorts import ERRORS, service

router = APIRouter()


@router.get("/v1/outbox", response_model=Outbox, responses=ERRORS, summary="Per sink: cursor, depth, last error")
def outbox(svc: Any = Depends(service)) -> Any:
    return {"sinks": svc.store.outbox_status()}


@router.get("/metrics", response_class=PlainTextResponse, responses=ERRORS, summary="Prometheus text 0.0.4")
def metrics(svc: Any = Depends(service)) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(svc.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}},
            summary="200 when every part runs, else 503; says whether test keys are accepted; problems, queue and "
                    "outbox depths only to an authenticated caller")
def health(svc: Any = Depends(service), actor: Actor = Depends(current_actor)) -> Any:
    body = svc.health()
    status = 200 if body["status"] == "ok" else 503
    if actor is ANONYMOUS:  # a load balancer needs the status; the rest names the inside
        body = {"status": body["status"], "dev_test_keys": body["dev_test_keys"]}
    return JSONResponse(body, status_code=status)
