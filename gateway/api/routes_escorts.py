"""Escort commands and reads (clauses 8-10, 13, 16) and seal provisioning."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Depends, Query, Request

from .. import audit
from ..auth import ADMIN, Actor
from ..command_requests import ActivationRequest, CommandError
from ..secrets import is_test_key
from .access import current_actor, office_scope
from .errors import ApiError
from .models import Activation, Deactivation, EscortAnswer, EscortList, ErrorBody, Provision, Provisioned

router = APIRouter()
COMMAND_TIMEOUT_S = 30.0

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 413, 503)
}


def service(request: Request) -> Any:
    return request.app.state.service


def run_command(svc: Any, actor: Actor, action: str, target: str, fn: Callable[[Any], Any]) -> Any:
    """`fn(pipeline)` on the runner thread (it audits its own success in its transaction); a
    refusal is audited here, in a transaction of its own, and raised for the HTTP answer."""
    try:
        return svc.runner.call(fn, COMMAND_TIMEOUT_S)
    except CommandError as exc:
        audit.record_alone(svc.store, actor, action, target, {"code": exc.code, "reason": exc.message})
        raise


@router.post("/v1/escorts/activate", status_code=202, response_model=EscortAnswer, responses=ERRORS,
             summary="Activate an escort (clause 8 data; operator)")
def activate(body: Activation, actor: Actor = Depends(current_actor), svc: Any = Depends(service)) -> Any:
    try:
        request = ActivationRequest.from_dict(body.checked(svc.clock()))
    except ValueError as exc:
        if isinstance(exc, CommandError):
            raise
        raise ApiError(400, "bad_request", str(exc)) from None
    escort = run_command(svc, actor, "escort.activate", f"seal:{body.seal_id}",
                         lambda p: p.request_activation(request, actor=actor))
    return {"escort": escort}


@router.post("/v1/escorts/deactivate", status_code=202, response_model=EscortAnswer, responses=ERRORS,
             summary="Request deactivation (clause 13 data; operator, or an officer of the destination office)")
def deactivate(body: Deactivation, actor: Actor = Depends(current_actor), offices=Depends(office_scope),
               svc: Any = Depends(service)) -> Any:
    escort = run_command(svc, actor, "escort.deactivate", f"seal:{body.seal_id}",
                         lambda p: p.request_deactivation(body.seal_id, body.declaration, body.vehicle,
                                                          actor=actor, offices=offices))
    return {"escort": escort}


def _escorts(svc: Any, offices: tuple[str, ...] | None, seal_id: int | None, escort_id: int | None,
             declaration: str | None, vehicle: str | None, cursor: str | None, limit: int) -> Any:
    """One page, by escort_id; `next` is the cursor of the following page (None on the last)."""
    from .routes_browse import cursor_value

    filters = {k: v for k, v in (("seal_id", seal_id), ("escort_id", escort_id), ("declaration", declaration),
                                 ("vehicle", vehicle)) if v is not None}
    rows = svc.pipeline.status(offices=offices, after_id=cursor_value(cursor) or 0, limit=limit + 1, **filters)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"escorts": rows, "next": str(rows[-1]["escort_id"]) if more else None}


MAX_PAGE = 500

_QUERY = dict(
    seal_id=Query(default=None, ge=1, le=0xFFFFFFFF),
    escort_id=Query(default=None, ge=1, le=0xFFFFFFFF),
    declaration=Query(default=None, min_length=1, max_length=40),
    vehicle=Query(default=None, min_length=1, max_length=16),
    cursor=Query(default=None, max_length=20, description="the `next` of the previous page"),
    limit=Query(default=100, ge=1, le=MAX_PAGE, description=f"escorts per page (at most {MAX_PAGE})"),
)


@router.get("/v1/escorts", response_model=EscortList, responses=ERRORS,
            summary="Escorts: all open ones, or those matching the filters (an officer sees only their offices')")
def escorts(seal_id: int | None = _QUERY["seal_id"], escort_id: int | None = _QUERY["escort_id"],
            declaration: str | None = _QUERY["declaration"], vehicle: str | None = _QUERY["vehicle"],
            cursor: str | None = _QUERY["cursor"], limit: int = _QUERY["limit"],
            offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    return _escorts(svc, offices, seal_id, escort_id, declaration, vehicle, cursor, limit)


@router.get("/v1/status", response_model=EscortList, responses=ERRORS, summary="Alias of GET /v1/escorts")
def status(seal_id: int | None = _QUERY["seal_id"], escort_id: int | None = _QUERY["escort_id"],
           declaration: str | None = _QUERY["declaration"], vehicle: str | None = _QUERY["vehicle"],
           cursor: str | None = _QUERY["cursor"], limit: int = _QUERY["limit"],
           offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    return _escorts(svc, offices, seal_id, escort_id, declaration, vehicle, cursor, limit)


@router.post("/v1/seals", status_code=201, response_model=Provisioned, responses=ERRORS,
             summary="Provision a seal (admin, operator); re-key (admin; force while escorted)")
def provision(body: Provision, actor: Actor = Depends(current_actor), svc: Any = Depends(service)) -> Any:
    key = bytes.fromhex(body.key)
    target = f"seal:{body.seal_id}"
    if is_test_key(body.seal_id, key) and not svc.config.dev_test_keys:
        audit.record_alone(svc.store, actor, "seal.provision", target, {"code": "test_key"})
        raise ApiError(400, "test_key", f"seal {body.seal_id}: this is the published test key; a production "
                                        f"gateway refuses it (dev_test_keys is off)")
    if body.force and actor.role != ADMIN:
        audit.record_alone(svc.store, actor, "seal.provision", target, {"code": "forbidden", "force": True})
        raise ApiError(403, "forbidden", "force (re-keying an escorted seal) is for an admin")
    return run_command(svc, actor, "seal.provision", target,
                       lambda p: p.provision_seal(body.seal_id, key, actor=actor, rekey=actor.role == ADMIN,
                                                  force=body.force))

