"""A seal's trust, for an admin: re-key it, or reset its replay window (issue: a seal must never be
locked out by its own counters). Both audited in the transaction that does them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path

from .. import audit
from ..auth import Actor
from ..secrets import is_test_key
from .access import current_actor
from .errors import ApiError
from .models import Provisioned, Rekey, ReplayReset
from .routes_escorts import ERRORS, run_command, service

router = APIRouter()
SealId = Path(ge=1, le=0xFFFFFFFF, description="the seal's number")


@router.post("/v1/seals/{seal_id}/rekey", response_model=Provisioned, responses=ERRORS,
             summary="Replace a provisioned seal's key (admin; force while the seal is under escort)")
def rekey(body: Rekey, seal_id: int = SealId, actor: Actor = Depends(current_actor),
          svc: Any = Depends(service)) -> Any:
    key = bytes.fromhex(body.key)
    target = f"seal:{seal_id}"
    if svc.store.seal_key(seal_id) is None:
        audit.record_alone(svc.store, actor, "seal.rekey", target, {"code": "unknown_seal"})
        raise ApiError(404, "unknown_seal", f"seal {seal_id} is not provisioned (POST /v1/seals provisions)")
    if is_test_key(seal_id, key) and not svc.config.dev_test_keys:
        audit.record_alone(svc.store, actor, "seal.rekey", target, {"code": "test_key"})
        raise ApiError(400, "test_key", f"seal {seal_id}: this is the published test key; a production "
                                        f"gateway refuses it (dev_test_keys is off)")
    return run_command(svc, actor, "seal.rekey", target,
                       lambda p: p.provision_seal(seal_id, key, actor=actor, rekey=True, force=body.force))


@router.post("/v1/seals/{seal_id}/reset-replay", response_model=ReplayReset, responses=ERRORS,
             summary="Forget a seal's last accepted (boot, seq) so its next new frame is accepted (admin)")
def reset_replay(seal_id: int = SealId, actor: Actor = Depends(current_actor), svc: Any = Depends(service)) -> Any:
    return run_command(svc, actor, "seal.reset_replay", f"seal:{seal_id}",
                       lambda p: p.reset_replay_window(seal_id, actor=actor))
