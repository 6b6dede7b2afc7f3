"""Users, tokens, browser sessions and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from .. import audit, auth
from ..auth import Actor
from .access import SESSION_COOKIE, current_actor
from .errors import ApiError
from .models import AuditPage, Login, Me, Token, TokenNew, User, UserList, UserNew
from .routes_escorts import ERRORS, service

router = APIRouter()
UserName = Path(pattern=auth.USER_NAME.pattern)


def _changed(svc: Any, actor: Actor, action: str, target: str, fn, details: dict | None = None) -> Any:
    """Do `fn(tx)` and audit it in the same transaction; audit a refusal on its own."""
    now = svc.clock()
    try:
        with svc.store.transaction() as tx:
            result = fn(tx, now)
            audit.record(tx, actor, action, target, details, now=now)
        return result
    except auth.AccessError as exc:
        audit.record_alone(svc.store, actor, action, target, {"code": exc.code, "reason": exc.message})
        raise


@router.get("/v1/users", response_model=UserList, responses=ERRORS, summary="Users by name, a page at a time (admin)")
def users(cursor: str | None = Query(default=None, pattern=auth.USER_NAME.pattern,
                                     description="the `next` of the previous page"),
          limit: int = Query(default=100, ge=1, le=500), svc: Any = Depends(service)) -> Any:
    with svc.store.transaction() as tx:
        rows = tx.list_users(after_name=cursor or "", limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"users": [auth.public_user(u) for u in rows], "next": rows[-1]["name"] if more else None}


@router.post("/v1/users", status_code=201, response_model=User, responses=ERRORS, summary="Add a user (admin)")
def add_user(body: UserNew, actor: Actor = Depends(current_actor), svc: Any = Depends(service)) -> Any:
    return _changed(svc, actor, "user.add", f"user:{body.name}",
                    lambda tx, now: auth.add_user(tx, name=body.name, role=body.role, offices=body.offices,
                                                  password=body.password, now=now, created_by=actor),
                    {"role": body.role, "offices": body.offices})


@router.post("/v1/users/{name}/disable", response_model=User, responses=ERRORS,
             summary="Disable a user: tokens revoked, sessions ended (admin)")
def disable_user(name: str = UserName, actor: Actor = Depends(current_actor), svc: Any = Depends(service)) -> Any:
    if name == actor.user:
        raise ApiError(409, "bad_request", "an admin cannot disable themself")
    return _changed(svc, actor, "user.disable", f"user:{name}", lambda tx, now: auth.disable_user(tx, name, now))


@router.post("/v1/users/{name}/tokens", status_code=201, response_model=Token, responses=ERRORS,
             summary="Issue an API token for a user (admin); the token is shown once")
def issue_token(body: TokenNew, name: str = UserName, actor: Actor = Depends(current_actor),
                svc: Any = Depends(service)) -> Any:
    def issue(tx, now):
        expires = now + body.expires_in_s if body.expires_in_s else None
        token_id, token = auth.issue_token(tx, name, now=now, label=body.label, expires_at=expires)
        return {"token_id": token_id, "token": token, "user": name}
    result = _changed(svc, actor, "token.issue", f"user:{name}", issue, {"label": body.label})
    return result


@router.delete("/v1/tokens/{token_id}", status_code=204, responses=ERRORS, summary="Revoke a token (admin)")
def revoke_token(token_id: str = Path(pattern=r"^[0-9a-f]{16}$"), actor: Actor = Depends(current_actor),
                 svc: Any = Depends(service)) -> Response:
    _changed(svc, actor, "token.revoke", f"token:{token_id}", lambda tx, now: auth.revoke_token(tx, token_id, now))
    return Response(status_code=204)


@router.get("/v1/me", response_model=Me, responses=ERRORS, summary="Who am I (any user)")
def me(actor: Actor = Depends(current_actor)) -> Any:
    return {"user": actor.user, "role": actor.role, "offices": list(actor.offices), "via": actor.via,
            "csrf": actor.csrf}


@router.post("/v1/session", response_model=Me, responses=ERRORS,
             summary="Log in (browsers): sets the session cookie; answer carries the CSRF token")
def login(body: Login, request: Request, response: Response, svc: Any = Depends(service)) -> Any:
    client = request.client.host if request.client else "-"
    wait = svc.login_throttle.retry_after(body.name, client)
    if wait:
        audit.record_alone(svc.store, auth.ANONYMOUS, "session.login", f"user:{body.name}",
                           {"reason": "too many failed logins", "client": client})
        raise ApiError(429, "too_many_attempts", f"too many failed logins: try again in {wait} s",
                       headers={"Retry-After": str(wait)})
    user = svc.authenticator.password(body.name, body.password)
    if user is None:
        svc.login_throttle.failed(body.name, client)
        audit.record_alone(svc.store, auth.ANONYMOUS, "session.login", f"user:{body.name}",
                           {"reason": "wrong name or password", "client": client})
        raise ApiError(401, "unauthorized", "wrong name or password")
    svc.login_throttle.succeeded(body.name)
    with svc.store.transaction() as tx:
        cookie, csrf = svc.authenticator.open_session(tx, user)
        audit.record(tx, auth.actor_of(user, "session"), "session.login", f"user:{user['name']}", now=svc.clock())
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, secure=True, samesite="strict", path="/",
                        max_age=int(svc.config.http_session_idle_s))
    return {"user": user["name"], "role": user["role"], "offices": user["offices"], "via": "session", "csrf": csrf}


@router.delete("/v1/session", status_code=204, responses=ERRORS, summary="Log out (ends this browser session)")
def logout(actor: Actor = Depends(current_actor), svc: Any = Depends(service)) -> Response:
    if actor.session_id is not None:
        with svc.store.transaction() as tx:
            tx.delete_sessions(session_id=actor.session_id)
            audit.record(tx, actor, "session.logout", f"user:{actor.user}", now=svc.clock())
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/v1/audit", response_model=AuditPage, responses=ERRORS,
            summary="The audit log, oldest first, from after_seq (auditor, admin)")
def audit_log(after_seq: int = Query(default=0, ge=0), limit: int = Query(default=100, ge=1, le=1000),
              svc: Any = Depends(service)) -> Any:
    rows = [audit.public_row(r) for r in svc.store.audit_rows(after_seq=after_seq, limit=limit)]
    return {"rows": rows, "next_after_seq": rows[-1]["seq"] if rows else after_seq}
